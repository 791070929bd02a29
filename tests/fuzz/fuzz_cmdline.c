/*
 * fuzz_cmdline.c - libFuzzer target for the command line (vmm/config.c:
 * config_parse, config_parse_virtio_mem, config_parse_size, and through them
 * vfio_parse_option and ctl_socket_addr).
 *
 * Input: the arguments after argv[0] ("minivmm"), separated by NUL bytes
 * (at most MAX_ARGS of them).  Each argument is also given on its own to
 * config_parse_virtio_mem and config_parse_size.
 *
 * config_parse never exits or prints (it returns CONFIG_HELP/CONFIG_VERSION
 * and leaves the printing to main); an exit would show as a libFuzzer crash
 * ("fuzz target exited").  config_parse_virtio_mem keeps an xstrdup() copy
 * of its argument for the life of the process on success (the option's
 * strings point into it), which the leak checker would report: this target
 * is linked with -Wl,--wrap=xstrdup,--wrap=free (fuzz.mk) so it can free
 * the copies still alive once an input is done.
 *
 * Checks on CONFIG_OK: a non-empty kernel path, memory a multiple of 4 KiB,
 * 1..CONFIG_MAX_CPUS vCPUs, and every virtio-mem device valid (block size a
 * power of two >= 4 KiB, size a non-zero multiple of it, requested <= size
 * and a multiple of it, addr 0 or 128 MiB aligned above 4 GiB, ids unique).
 * On CONFIG_ERROR: a message that fits err.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/util.h"
#include "tests/fuzz/common/input.h"

#define MAX_ARGS   64
#define MAX_COPIES (4 * MAX_ARGS)

/* --- the xstrdup copies config_parse_virtio_mem keeps ------------------- */

char *__real_xstrdup(const char *s);
void __real_free(void *p);
char *__wrap_xstrdup(const char *s);
void __wrap_free(void *p);

static char *copies[MAX_COPIES];
static unsigned nr_copies;

char *__wrap_xstrdup(const char *s)
{
    char *p = __real_xstrdup(s);
    FUZZ_CHECK(nr_copies < MAX_COPIES, "more than %d xstrdup copies for one input", MAX_COPIES);
    copies[nr_copies++] = p;
    return p;
}

/* Every free() of the program comes here: a copy freed by the project is forgotten. */
void __wrap_free(void *p)
{
    for (unsigned i = 0; p && i < nr_copies; i++) {
        if (copies[i] == p) {
            copies[i] = copies[--nr_copies];
            break;
        }
    }
    __real_free(p);
}

static void free_copies(void)
{
    while (nr_copies)
        __wrap_free(copies[nr_copies - 1]);
}

/* --- checks ------------------------------------------------------------- */

static void check_err(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    /* Not checked: a newline the user put into an argument is quoted back as it is. */
    FUZZ_CHECK(n > 0 && n < errlen, "error message of %zu bytes", n);
}

static void check_vmem(const struct virtio_mem_options *o)
{
    uint64_t bs = o->block_size;
    FUZZ_CHECK(bs >= VIRTIO_MEM_MIN_BLOCK_SIZE && (bs & (bs - 1)) == 0, "block size %#llx",
               (unsigned long long)bs);
    FUZZ_CHECK(o->size > 0 && o->size % bs == 0, "size %#llx", (unsigned long long)o->size);
    FUZZ_CHECK(o->requested <= o->size && o->requested % bs == 0, "requested %#llx",
               (unsigned long long)o->requested);
    FUZZ_CHECK(o->addr == 0 ||
                   (o->addr >= VIRTIO_MEM_MIN_ADDR && o->addr % virtio_mem_region_align(o) == 0 &&
                    o->addr + o->size > o->addr),
               "addr %#llx", (unsigned long long)o->addr);
    FUZZ_CHECK(o->id[0] && strnlen(o->id, sizeof(o->id)) < sizeof(o->id), "id");
}

static void check_config(const struct vm_config *cfg)
{
    FUZZ_CHECK(cfg->kernel_path && cfg->kernel_path[0], "no kernel path");
    FUZZ_CHECK(cfg->cmdline != NULL, "no command line");
    FUZZ_CHECK(cfg->memory > 0 && cfg->memory % 4096 == 0, "memory %#llx",
               (unsigned long long)cfg->memory);
    FUZZ_CHECK(cfg->cpus >= 1 && cfg->cpus <= CONFIG_MAX_CPUS, "cpus %u", cfg->cpus);
    FUZZ_CHECK(cfg->nr_virtio_mem <= VIRTIO_MEM_MAX_DEVICES, "%u virtio-mem devices",
               cfg->nr_virtio_mem);
    FUZZ_CHECK(cfg->nr_vfio <= VFIO_MAX_DEVICES, "%u vfio devices", cfg->nr_vfio);
    for (unsigned i = 0; i < cfg->nr_virtio_mem; i++) {
        check_vmem(&cfg->virtio_mem[i]);
        for (unsigned j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(cfg->virtio_mem[i].id, cfg->virtio_mem[j].id) != 0, "id '%s' twice",
                       cfg->virtio_mem[i].id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL, "out of memory");
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "minivmm";
    for (size_t i = 0; i < size && argc <= MAX_ARGS; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;
    char *args[MAX_ARGS + 2];
    memcpy(args, argv, sizeof(args)); /* getopt_long permutes argv */

    static struct vm_config cfg;
    char err[512];
    memset(err, 0, sizeof(err));
    enum config_result r = config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == CONFIG_OK)
        check_config(&cfg);
    else if (r == CONFIG_ERROR)
        check_err(err, sizeof(err));
    else
        FUZZ_CHECK(r == CONFIG_HELP || r == CONFIG_VERSION, "result %d", r);

    for (int i = 1; i < argc; i++) {
        struct virtio_mem_options o;
        uint64_t v;
        memset(err, 0, sizeof(err));
        if (config_parse_virtio_mem(args[i], 0, &o, err, sizeof(err)) == 0)
            check_vmem(&o);
        else
            check_err(err, sizeof(err));
        config_parse_size(args[i], 1, &v);
        config_parse_size(args[i], MiB, &v);
    }
    free_copies();
    free(buf);
    return 0;
}
