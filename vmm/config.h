/*
 * config.h - the command line, parsed into a struct vm_config.
 *
 * main() calls config_parse() once, before anything else; every other
 * subsystem reads the resulting struct vm_config and never looks at argv.
 * Parsing is pure: it opens no file and touches no device, so the unit tests
 * drive it directly.  Checks that need the host (does the kernel file exist,
 * how many vCPUs does KVM allow) happen later, in the subsystem that owns
 * the resource.
 */
#ifndef MINIVMM_CONFIG_H
#define MINIVMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/serial.h"
#include "devices/virtio_mem_options.h"
#include "mm/memmap.h"
#include "vfio/vfio.h"
#include "vmm/seccomp.h"

#define CONFIG_DEFAULT_MEMORY  (512ULL << 20)
#define CONFIG_MIN_MEMORY      (32ULL << 20)
#define CONFIG_MAX_CPUS        254 /* 8-bit xAPIC ids, 255 is the broadcast id */
#define CONFIG_DEFAULT_CMDLINE "console=ttyS0"
#define CONFIG_MAX_PHYS_ADDR   (1ULL << 52) /* the largest physical address space of x86 */

struct vm_config {
    const char *kernel_path;      /* required */
    const char *initrd_path;      /* NULL: no initrd */
    const char *cmdline;          /* never NULL after parsing */
    uint64_t memory;              /* boot RAM in bytes, multiple of 4 KiB */
    unsigned cpus;                /* 1..CONFIG_MAX_CPUS */
    struct serial_options serial; /* --console */
    bool no_reboot;               /* guest reboot ends minivmm (exit 0) */
    bool verbose;
    enum seccomp_mode seccomp; /* --seccomp, default on */
    struct virtio_mem_options virtio_mem[VIRTIO_MEM_MAX_DEVICES];
    unsigned nr_virtio_mem;
    bool virtio_mmio_cmdline; /* also describe virtio-mmio devices on the kernel command line */
    const char *api_socket;   /* control socket path, or NULL */
    struct vfio_options vfio[VFIO_MAX_DEVICES]; /* --vfio, in order */
    unsigned nr_vfio;
};

enum config_result {
    CONFIG_OK = 0,
    CONFIG_HELP,    /* --help: caller prints config_usage() and exits 0 */
    CONFIG_VERSION, /* --version: caller prints the version and exits 0 */
    CONFIG_ERROR,   /* err holds one line naming the option and the problem */
};

/*
 * Parse argv (argv[0] is the program name) into cfg.  Strings in cfg point
 * into argv.  Besides each value on its own, it checks what the command line
 * alone decides: --virtio-mem regions given with addr= must not overlap each
 * other or boot RAM (placed by --memory), and the --api-socket path must fit
 * in a unix socket address.  On CONFIG_ERROR, err (errlen bytes) holds a one-line message
 * without trailing newline; the caller exits with status 2.
 */
enum config_result config_parse(struct vm_config *cfg, int argc, char **argv, char *err,
                                size_t errlen);

/*
 * Parse the value of one --virtio-mem option ("size=4G,requested=1G,...")
 * into o; index is the option's position (for the default id).  Checks
 * everything that does not depend on the host or the memory map.  Returns
 * 0, or -1 with a one-line reason in err.
 */
int config_parse_virtio_mem(const char *arg, unsigned index, struct virtio_mem_options *o,
                            char *err, size_t errlen);

/* The --help text. */
const char *config_usage(void);

/*
 * Parse a size the way QEMU does: a decimal number (fractions allowed, e.g.
 * "1.5G") or a 0x-prefixed hex number, with an optional suffix B, K, M, G, T,
 * P or E (upper or lower case; powers of 1024).  A number without suffix is
 * multiplied by default_unit (1 for bytes, 1 MiB for --memory as in QEMU's
 * -m).  Returns 0 and stores the byte count, or -1 with errno EINVAL if str
 * is not a size, ERANGE if it is one but does not fit in 64 bits (*out is
 * then untouched).
 */
int config_parse_size(const char *str, uint64_t default_unit, uint64_t *out);

#endif
