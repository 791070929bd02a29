/* config.c - command-line parsing; see config.h. */
#include "vmm/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/ctl.h"
#include "vmm/layout.h"
#include "vmm/util.h"

static const char usage_text[] =
    "Usage: minivmm --kernel PATH [options]\n"
    "\n"
    "Boot a Linux bzImage in a KVM virtual machine.\n"
    "\n"
    "  --kernel PATH          bzImage to boot (Linux boot protocol 2.12 or newer, 64-bit)\n"
    "  --initrd PATH          initial ramdisk\n"
    "  --cmdline STR          kernel command line (default \"" CONFIG_DEFAULT_CMDLINE "\")\n"
    "  --memory SIZE          boot RAM (default 512M; a number without suffix is MiB)\n"
    "  --cpus N               number of vCPUs (default 1, at most 254)\n"
    "  --console MODE         stdio (default), none, or file=PATH: where the guest's\n"
    "                         serial console (ttyS0) goes; only stdio takes input\n"
    "  --no-reboot            exit (status 0) when the guest reboots instead of resetting it\n"
    "  --virtio-mem size=SIZE[,id=NAME][,block-size=SIZE][,requested=SIZE][,addr=GPA]\n"
    "             [,backend=anon|memfd|hugetlbfs=PATH][,prealloc=on|off]\n"
    "                         a virtio-mem device (virtio-mmio) whose memory the guest plugs\n"
    "                         and unplugs at run time, up to SIZE; repeatable.  Defaults:\n"
    "                         id mem0, mem1, ...; block-size 2M; requested 0; addr: above\n"
    "                         RAM, 128M-aligned; backend anon\n"
    "  --vfio BDF[,id=NAME][,rom=on]\n"
    "                         pass the PCI device BDF (e.g. 0000:01:00.0, bound to vfio-pci)\n"
    "                         through to the guest; repeatable; rom=on shows its ROM\n"
    "  --virtio-mmio-cmdline  also list virtio-mmio devices on the kernel command line\n"
    "                         (virtio_mmio.device=...), for kernels without ACPI support\n"
    "  --api-socket PATH      control socket: minivmm ctl --api-socket PATH status|\n"
    "                         resize [ID] SIZE|dump|shutdown\n"
    "  --seccomp MODE         on (default): each thread may make only the system calls it\n"
    "                         needs, others end minivmm with a report; log: allow and log\n"
    "                         them (dmesg); off\n"
    "  --verbose              log what the VMM does on stderr\n"
    "  --help                 show this help\n"
    "  --version              show the version\n"
    "\n"
    "Sizes take the suffixes K, M, G, T (powers of 1024), e.g. 512M or 1.5G.\n"
    "\n"
    "  minivmm ctl --api-socket PATH COMMAND   talk to a running minivmm\n"
    "Exit status: 0 when the guest powers off, 1 on a VMM or guest failure,\n"
    "2 on an invalid command line.\n";

const char *config_usage(void)
{
    return usage_text;
}

static int suffix_shift(char c)
{
    switch (toupper((unsigned char)c)) {
    case 'B':
        return 0;
    case 'K':
        return 10;
    case 'M':
        return 20;
    case 'G':
        return 30;
    case 'T':
        return 40;
    case 'P':
        return 50;
    case 'E':
        return 60;
    default:
        return -1;
    }
}

/* config_parse_size()'s failures: errno says which. */
static int size_invalid(void)
{
    errno = EINVAL;
    return -1;
}

static int size_too_large(void)
{
    errno = ERANGE;
    return -1;
}

int config_parse_size(const char *str, uint64_t default_unit, uint64_t *out)
{
    if (!str || !isdigit((unsigned char)str[0]))
        return size_invalid();

    const char *p = str;
    uint64_t whole = 0;
    uint64_t frac_num = 0, frac_den = 1;
    bool overflow = false;
    bool hex = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'));

    if (hex) {
        p += 2;
        if (!isxdigit((unsigned char)*p))
            return size_invalid();
        for (; isxdigit((unsigned char)*p); p++) {
            unsigned d = isdigit((unsigned char)*p)
                             ? (unsigned)(*p - '0')
                             : (unsigned)(toupper((unsigned char)*p) - 'A' + 10);
            if (whole > (UINT64_MAX - d) / 16)
                overflow = true;
            else
                whole = whole * 16 + d;
        }
    } else {
        for (; isdigit((unsigned char)*p); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (whole > (UINT64_MAX - d) / 10)
                overflow = true;
            else
                whole = whole * 10 + d;
        }
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return size_invalid();
            /* Up to 9 fractional digits are significant; the rest must be digits. */
            for (int n = 0; isdigit((unsigned char)*p); p++, n++) {
                if (n < 9) {
                    frac_num = frac_num * 10 + (uint64_t)(*p - '0');
                    frac_den *= 10;
                }
            }
        }
    }

    uint64_t unit = default_unit;
    if (*p) {
        int shift = suffix_shift(*p);
        if (shift < 0 || p[1] != '\0')
            return size_invalid();
        unit = 1ULL << shift;
    }
    if (unit == 0)
        return size_invalid();

    /* The syntax is checked to the end first: "99999999999999999999X" is not a size. */
    if (overflow || whole > UINT64_MAX / unit)
        return size_too_large();
    uint64_t bytes = whole * unit;
    if (frac_num) {
        /* frac_num/frac_den < 1 and unit <= 2^60, so this cannot overflow 128 bits. */
        unsigned __int128 f = (unsigned __int128)frac_num * unit / frac_den;
        if (bytes > UINT64_MAX - (uint64_t)f)
            return size_too_large();
        bytes += (uint64_t)f;
    }
    *out = bytes;
    return 0;
}

static int parse_console(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
    if (strcmp(arg, "stdio") == 0) {
        cfg->serial.console = CONSOLE_STDIO;
    } else if (strcmp(arg, "none") == 0) {
        cfg->serial.console = CONSOLE_NONE;
    } else if (strncmp(arg, "file=", 5) == 0) {
        if (arg[5] == '\0')
            return errf(err, errlen, "--console file= needs a path, e.g. --console file=guest.log");
        cfg->serial.console = CONSOLE_FILE;
        cfg->serial.console_path = arg + 5;
    } else {
        return errf(err, errlen,
                    "--console: '%s' is not a console mode (use stdio, none or file=PATH)", arg);
    }
    return 0;
}

static int parse_seccomp(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
    if (strcmp(arg, "on") == 0)
        cfg->seccomp = SECCOMP_ON;
    else if (strcmp(arg, "log") == 0)
        cfg->seccomp = SECCOMP_LOG;
    else if (strcmp(arg, "off") == 0)
        cfg->seccomp = SECCOMP_OFF;
    else
        return errf(err, errlen, "--seccomp: '%s' is not a mode (use on, log or off)", arg);
    return 0;
}

static int parse_cpus(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(arg, &end, 10);
    if (!isdigit((unsigned char)arg[0]) || *end || (errno && errno != ERANGE))
        return errf(err, errlen, "--cpus: '%s' is not a number (use 1 to %d)", arg,
                    CONFIG_MAX_CPUS);
    if (errno == ERANGE || n < 1 || n > CONFIG_MAX_CPUS)
        return errf(err, errlen, "--cpus: %s is out of range (use 1 to %d)", arg, CONFIG_MAX_CPUS);
    cfg->cpus = (unsigned)n;
    return 0;
}

static int parse_memory(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
    uint64_t bytes = 0;
    char a[32];
    bool too_large = false;
    if (config_parse_size(arg, MiB, &bytes) < 0) {
        if (errno != ERANGE)
            return errf(err, errlen,
                        "--memory: '%s' is not a size (use a number with an optional K, M, G or T "
                        "suffix, e.g. 512M)",
                        arg);
        too_large = true;
    }
    /* Guest-physical space is bounded by 52 bits on every x86 CPU. */
    if (too_large || bytes > (1ULL << 46))
        return errf(err, errlen, "--memory: %s is more than 64T, which no x86 host can back", arg);
    if (bytes < CONFIG_MIN_MEMORY)
        return errf(err, errlen, "--memory: %s is too small for a Linux guest (use at least 32M)",
                    arg);
    if (bytes % (4 * KiB))
        return errf(err, errlen,
                    "--memory: %s is not a multiple of 4K (the page size); use e.g. --memory %s",
                    arg, format_size_option(ALIGN_DOWN(bytes, MiB), a, sizeof(a)));
    cfg->memory = bytes;
    return 0;
}

static bool is_power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= VIRTIO_MEM_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

/* The keys of --virtio-mem, and the text each was given as (for error messages). */
enum vmem_key_id {
    VMEM_SIZE,
    VMEM_ID,
    VMEM_BLOCK_SIZE,
    VMEM_REQUESTED,
    VMEM_ADDR,
    VMEM_BACKEND,
    VMEM_PREALLOC,
    VMEM_NR_KEYS,
};

static const char *const vmem_key_names[VMEM_NR_KEYS] = {
    "size", "id", "block-size", "requested", "addr", "backend", "prealloc",
};

struct vmem_text {
    const char *value[VMEM_NR_KEYS]; /* NULL: key not given */
};

/* "size=TEXT" as the user wrote it, or the value in exact form (a default). */
static const char *vmem_show(const struct vmem_text *t, enum vmem_key_id k, uint64_t v, char *buf,
                             size_t len)
{
    char exact[32];
    if (t->value[k])
        snprintf(buf, len, "%s=%s", vmem_key_names[k], t->value[k]);
    else
        snprintf(buf, len, "%s=%s (the default)", vmem_key_names[k],
                 format_size_option(v, exact, sizeof(exact)));
    return buf;
}

/* Parse "key=SIZE" values of --virtio-mem. */
static int vmem_size(const char *key, const char *value, uint64_t *out, char *err, size_t errlen)
{
    if (config_parse_size(value, 1, out) == 0)
        return 0;
    if (errno == ERANGE)
        return errf(err, errlen,
                    "--virtio-mem: %s=%s is too large (guest-physical addresses end at 4P)", key,
                    value);
    return errf(err, errlen, "--virtio-mem: %s='%s' is not a size (e.g. %s=4G)", key, value, key);
}

static int vmem_backend(const char *value, struct virtio_mem_options *o, char *err, size_t errlen)
{
    if (strcmp(value, "anon") == 0) {
        o->backend = MM_BACKING_ANON;
    } else if (strcmp(value, "memfd") == 0) {
        o->backend = MM_BACKING_MEMFD;
    } else if (strncmp(value, "hugetlbfs=", 10) == 0 && value[10]) {
        o->backend = MM_BACKING_HUGETLBFS;
        o->hugetlbfs_path = value + 10;
    } else if (strcmp(value, "hugetlbfs") == 0 || strcmp(value, "hugetlbfs=") == 0) {
        return errf(err, errlen,
                    "--virtio-mem: backend=hugetlbfs needs the directory of a hugetlbfs mount, "
                    "e.g. backend=hugetlbfs=/dev/hugepages");
    } else {
        return errf(err, errlen,
                    "--virtio-mem: backend='%s' is not a backend (use anon, memfd or "
                    "hugetlbfs=PATH)",
                    value);
    }
    return 0;
}

/* One key=value of --virtio-mem.  value points into the caller's copy. */
static int vmem_key(struct virtio_mem_options *o, const char *key, const char *value,
                    struct vmem_text *t, char *err, size_t errlen)
{
    int k = 0;
    while (k < VMEM_NR_KEYS && strcmp(key, vmem_key_names[k]) != 0)
        k++;
    if (k == VMEM_NR_KEYS)
        return errf(err, errlen,
                    "--virtio-mem: unknown key '%s' (use size, id, block-size, requested, addr, "
                    "backend, prealloc)",
                    key);
    if (t->value[k])
        return errf(err, errlen, "--virtio-mem: %s is given twice (%s=%s and %s=%s); give it once",
                    key, key, t->value[k], key, value);
    t->value[k] = value;

    switch ((enum vmem_key_id)k) {
    case VMEM_SIZE:
        return vmem_size(key, value, &o->size, err, errlen);
    case VMEM_BLOCK_SIZE:
        return vmem_size(key, value, &o->block_size, err, errlen);
    case VMEM_REQUESTED:
        return vmem_size(key, value, &o->requested, err, errlen);
    case VMEM_ADDR:
        return vmem_size(key, value, &o->addr, err, errlen);
    case VMEM_BACKEND:
        return vmem_backend(value, o, err, errlen);
    case VMEM_ID:
        if (!valid_id(value))
            return errf(err, errlen,
                        "--virtio-mem: id='%s' must be 1 to %d letters, digits, '-' or '_'", value,
                        VIRTIO_MEM_ID_MAX - 1);
        snprintf(o->id, sizeof(o->id), "%s", value);
        return 0;
    case VMEM_PREALLOC:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            return errf(err, errlen, "--virtio-mem: prealloc='%s' must be on or off", value);
        o->prealloc = strcmp(value, "on") == 0;
        return 0;
    case VMEM_NR_KEYS:
        break;
    }
    return -1;
}

/* Checks between the values of one --virtio-mem. */
static int vmem_check(const struct virtio_mem_options *o, const struct vmem_text *t, char *err,
                      size_t errlen)
{
    char a[96], b[96], c[32];
    if (!is_power_of_two(o->block_size) || o->block_size < VIRTIO_MEM_MIN_BLOCK_SIZE)
        return errf(err, errlen,
                    "--virtio-mem: %s must be a power of two of at least 4K (e.g. block-size=2M)",
                    vmem_show(t, VMEM_BLOCK_SIZE, o->block_size, a, sizeof(a)));
    if (o->size == 0)
        return errf(err, errlen, "--virtio-mem: size must not be 0 (e.g. size=4G)");
    if (o->size > CONFIG_MAX_PHYS_ADDR - VIRTIO_MEM_MIN_ADDR)
        return errf(err, errlen,
                    "--virtio-mem: %s is larger than the guest-physical address space (4P on "
                    "x86); lower it",
                    vmem_show(t, VMEM_SIZE, o->size, a, sizeof(a)));
    if (o->size % o->block_size) {
        uint64_t fix = o->size > o->block_size ? ALIGN_DOWN(o->size, o->block_size) : o->block_size;
        return errf(err, errlen, "--virtio-mem: %s is not a multiple of %s; use e.g. size=%s",
                    vmem_show(t, VMEM_SIZE, o->size, a, sizeof(a)),
                    vmem_show(t, VMEM_BLOCK_SIZE, o->block_size, b, sizeof(b)),
                    format_size_option(fix, c, sizeof(c)));
    }
    if (o->requested > o->size)
        return errf(err, errlen,
                    "--virtio-mem: %s is larger than %s; lower requested= or raise size=",
                    vmem_show(t, VMEM_REQUESTED, o->requested, a, sizeof(a)),
                    vmem_show(t, VMEM_SIZE, o->size, b, sizeof(b)));
    if (o->requested % o->block_size) {
        /* requested < size and size is a multiple of the block: rounding up stays in. */
        uint64_t fix = ALIGN_UP(o->requested, o->block_size);
        return errf(err, errlen, "--virtio-mem: %s is not a multiple of %s; use e.g. requested=%s",
                    vmem_show(t, VMEM_REQUESTED, o->requested, a, sizeof(a)),
                    vmem_show(t, VMEM_BLOCK_SIZE, o->block_size, b, sizeof(b)),
                    format_size_option(fix, c, sizeof(c)));
    }
    /* prealloc is on for hugetlbfs unless prealloc=off was given. */
    if (o->backend == MM_BACKING_HUGETLBFS && !o->prealloc)
        return errf(err, errlen,
                    "--virtio-mem: backend=hugetlbfs needs prealloc=on (without it, a plugged "
                    "block with no huge page left would kill minivmm with SIGBUS)");
    if (o->addr) {
        uint64_t align = virtio_mem_region_align(o);
        if (o->addr < VIRTIO_MEM_MIN_ADDR)
            return errf(err, errlen,
                        "--virtio-mem: %s is below 4G (virtio-mem regions live above RAM "
                        "and the 32-bit hole); use addr=4G or higher, or leave addr= out",
                        vmem_show(t, VMEM_ADDR, o->addr, a, sizeof(a)));
        if (o->addr > CONFIG_MAX_PHYS_ADDR || o->size > CONFIG_MAX_PHYS_ADDR - o->addr)
            return errf(err, errlen,
                        "--virtio-mem: %s + %s ends above 4P, the largest guest-physical "
                        "address space of x86; lower addr= or size=",
                        vmem_show(t, VMEM_ADDR, o->addr, a, sizeof(a)),
                        vmem_show(t, VMEM_SIZE, o->size, b, sizeof(b)));
        if (o->addr % align)
            return errf(err, errlen,
                        "--virtio-mem: %s must be a multiple of 128M and of block-size; use "
                        "e.g. addr=%#llx",
                        vmem_show(t, VMEM_ADDR, o->addr, a, sizeof(a)),
                        (unsigned long long)ALIGN_UP(o->addr, align));
    }
    return 0;
}

int config_parse_virtio_mem(const char *arg, unsigned index, struct virtio_mem_options *o,
                            char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "mem%u", index);
    o->block_size = VIRTIO_MEM_DEFAULT_BLOCK_SIZE;
    o->backend = MM_BACKING_ANON;

    /* The strings in o point into this copy, which lives as long as the process. */
    char *copy = xstrdup(arg);
    struct vmem_text text = {{NULL}};
    int r = 0;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item && r == 0;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            r = errf(err, errlen, "--virtio-mem: '%s' is not key=value (e.g. size=4G)", item);
            break;
        }
        *eq = '\0';
        r = vmem_key(o, item, eq + 1, &text, err, errlen);
    }
    /* Huge pages can run out: allocate at plug time so that a shortage is a BUSY. */
    if (r == 0 && o->backend == MM_BACKING_HUGETLBFS && !text.value[VMEM_PREALLOC])
        o->prealloc = true;
    if (r == 0 && !text.value[VMEM_SIZE])
        r = errf(err, errlen, "--virtio-mem needs size=SIZE (e.g. --virtio-mem size=4G)");
    if (r == 0)
        r = vmem_check(o, &text, err, errlen);
    if (r < 0) {
        free(copy);
        o->hugetlbfs_path = NULL;
    }
    return r;
}

static int add_virtio_mem(struct vm_config *cfg, const char *arg, char *err, size_t errlen)
{
    if (cfg->nr_virtio_mem == VIRTIO_MEM_MAX_DEVICES)
        return errf(err, errlen, "--virtio-mem: at most %d devices; merge some into a larger one",
                    VIRTIO_MEM_MAX_DEVICES);
    struct virtio_mem_options *o = &cfg->virtio_mem[cfg->nr_virtio_mem];
    if (config_parse_virtio_mem(arg, cfg->nr_virtio_mem, o, err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < cfg->nr_virtio_mem; i++)
        if (strcmp(cfg->virtio_mem[i].id, o->id) == 0)
            return errf(err, errlen,
                        "--virtio-mem: id '%s' is used twice; give each device its own id=", o->id);
    cfg->nr_virtio_mem++;
    return 0;
}

/*
 * Regions given with addr= must not overlap boot RAM (which --memory, given
 * anywhere on the command line, extends above 4 GiB) or each other.  Regions
 * without addr= are placed later, around these.
 */
static int check_virtio_mem_layout(const struct vm_config *cfg, char *err, size_t errlen)
{
    char m[32];
    uint64_t ram_end = layout_ram_end(cfg->memory); /* addr= below 4G is refused before */
    for (unsigned i = 0; i < cfg->nr_virtio_mem; i++) {
        const struct virtio_mem_options *o = &cfg->virtio_mem[i];
        if (!o->addr)
            continue;
        if (o->addr < ram_end)
            return errf(err, errlen,
                        "--virtio-mem %s: addr=%#llx is inside boot RAM, which --memory %s "
                        "places up to %#llx; use addr=%#llx or higher, or leave addr= out",
                        o->id, (unsigned long long)o->addr,
                        format_size_option(cfg->memory, m, sizeof(m)), (unsigned long long)ram_end,
                        (unsigned long long)ALIGN_UP(ram_end, virtio_mem_region_align(o)));
        for (unsigned j = 0; j < i; j++) {
            const struct virtio_mem_options *p = &cfg->virtio_mem[j];
            if (!p->addr || !ranges_overlap(o->addr, o->size, p->addr, p->size))
                continue;
            return errf(
                err, errlen,
                "--virtio-mem %s: [%#llx, %#llx) overlaps %s [%#llx, %#llx); use "
                "addr=%#llx, or leave addr= out",
                o->id, (unsigned long long)o->addr, (unsigned long long)(o->addr + o->size), p->id,
                (unsigned long long)p->addr, (unsigned long long)(p->addr + p->size),
                (unsigned long long)ALIGN_UP(p->addr + p->size, virtio_mem_region_align(o)));
        }
    }
    return 0;
}

/* errf() for config_parse(): the message, then CONFIG_ERROR. */
#define config_error(err, errlen, ...) (errf(err, errlen, __VA_ARGS__), CONFIG_ERROR)

enum option_id {
    OPT_KERNEL = 256,
    OPT_INITRD,
    OPT_CMDLINE,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_CONSOLE,
    OPT_NO_REBOOT,
    OPT_VIRTIO_MEM,
    OPT_VIRTIO_MMIO_CMDLINE,
    OPT_VFIO,
    OPT_API_SOCKET,
    OPT_SECCOMP,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"cmdline", required_argument, NULL, OPT_CMDLINE},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"console", required_argument, NULL, OPT_CONSOLE},
    {"no-reboot", no_argument, NULL, OPT_NO_REBOOT},
    {"virtio-mem", required_argument, NULL, OPT_VIRTIO_MEM},
    {"virtio-mmio-cmdline", no_argument, NULL, OPT_VIRTIO_MMIO_CMDLINE},
    {"vfio", required_argument, NULL, OPT_VFIO},
    {"api-socket", required_argument, NULL, OPT_API_SOCKET},
    {"seccomp", required_argument, NULL, OPT_SECCOMP},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void config_defaults(struct vm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cmdline = CONFIG_DEFAULT_CMDLINE;
    cfg->memory = CONFIG_DEFAULT_MEMORY;
    cfg->cpus = 1;
    cfg->serial.console = CONSOLE_STDIO;
    cfg->seccomp = SECCOMP_ON;
}

/* Name of the option argv[optind - 1] refers to, for error messages. */
static const char *current_arg(int argc, char **argv)
{
    if (optind >= 1 && optind - 1 < argc)
        return argv[optind - 1];
    return "?";
}

/* The long option whose value is id. */
static const char *option_name(int id)
{
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == id)
            return o->name;
    return "?";
}

/* Is arg one of our options ("--memory", "--memory=1G")?  Then it is no option's value. */
static bool is_our_option(const char *arg)
{
    if (strncmp(arg, "--", 2) != 0)
        return false;
    size_t n = strcspn(arg + 2, "=");
    for (const struct option *o = long_options; o->name; o++)
        if (strlen(o->name) == n && strncmp(o->name, arg + 2, n) == 0)
            return true;
    return false;
}

/* getopt_long() refused arg: say why (unknown, ambiguous, or a value it does not take). */
static int bad_option(const char *arg, char *err, size_t errlen)
{
    if (optopt >= OPT_KERNEL)
        return errf(err, errlen, "--%s takes no value; remove '%s'", option_name(optopt),
                    strchr(arg, '=') ? strchr(arg, '=') : arg);
    if (optopt > 0 && optopt < 256)
        return errf(err, errlen,
                    "unknown option '-%c' (options are long, e.g. --kernel; see "
                    "minivmm --help)",
                    optopt);
    if (strncmp(arg, "--", 2) == 0 && arg[2]) {
        size_t n = strcspn(arg + 2, "=");
        char list[256] = "";
        size_t used = 0;
        unsigned matches = 0;
        for (const struct option *o = long_options; o->name; o++) {
            if (strncmp(o->name, arg + 2, n) != 0)
                continue;
            matches++;
            if (used < sizeof(list))
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s--%s",
                                         used ? ", " : "", o->name);
        }
        if (matches > 1)
            return errf(err, errlen, "option '%.*s' is ambiguous (it could be %s); spell it out",
                        (int)n + 2, arg, list);
    }
    return errf(err, errlen, "unknown option '%s' (see minivmm --help)", arg);
}

enum config_result config_parse(struct vm_config *cfg, int argc, char **argv, char *err,
                                size_t errlen)
{
    config_defaults(cfg);
    optind = 0; /* GNU getopt: full re-initialisation, so the parser can run twice */
    opterr = 0; /* we print our own one-line errors */

    for (;;) {
        int opt = getopt_long(argc, argv, ":", long_options, NULL);
        if (opt == -1)
            break;
        /* "--kernel --memory 1G": the kernel path is missing, "--memory" is no path. */
        if (opt >= OPT_KERNEL && optarg && is_our_option(optarg))
            return config_error(err, errlen, "--%s needs a value before %s (see minivmm --help)",
                                option_name(opt), optarg);
        int r = 0;
        switch (opt) {
        case OPT_KERNEL:
            cfg->kernel_path = optarg;
            break;
        case OPT_INITRD:
            cfg->initrd_path = optarg;
            break;
        case OPT_CMDLINE:
            cfg->cmdline = optarg;
            break;
        case OPT_MEMORY:
            r = parse_memory(cfg, optarg, err, errlen);
            break;
        case OPT_CPUS:
            r = parse_cpus(cfg, optarg, err, errlen);
            break;
        case OPT_CONSOLE:
            r = parse_console(cfg, optarg, err, errlen);
            break;
        case OPT_NO_REBOOT:
            cfg->no_reboot = true;
            break;
        case OPT_VIRTIO_MEM:
            r = add_virtio_mem(cfg, optarg, err, errlen);
            break;
        case OPT_VIRTIO_MMIO_CMDLINE:
            cfg->virtio_mmio_cmdline = true;
            break;
        case OPT_VFIO:
            if (cfg->nr_vfio == VFIO_MAX_DEVICES)
                r = errf(err, errlen, "--vfio: at most %d devices", VFIO_MAX_DEVICES);
            else
                r = vfio_parse_option(optarg, cfg->nr_vfio, &cfg->vfio[cfg->nr_vfio], err, errlen);
            if (r == 0)
                cfg->nr_vfio++;
            break;
        case OPT_API_SOCKET: {
            struct sockaddr_un addr;
            r = ctl_socket_addr(optarg, &addr, err, errlen);
            cfg->api_socket = optarg;
            break;
        }
        case OPT_SECCOMP:
            r = parse_seccomp(cfg, optarg, err, errlen);
            break;
        case OPT_VERBOSE:
            cfg->verbose = true;
            break;
        case OPT_HELP:
            return CONFIG_HELP;
        case OPT_VERSION:
            return CONFIG_VERSION;
        case ':':
            if (optopt >= OPT_KERNEL)
                r = errf(err, errlen, "--%s needs a value (see minivmm --help)",
                         option_name(optopt));
            else
                r = errf(err, errlen, "%s needs a value (see minivmm --help)",
                         current_arg(argc, argv));
            break;
        default:
            r = bad_option(current_arg(argc, argv), err, errlen);
            break;
        }
        if (r < 0)
            return CONFIG_ERROR;
    }
    if (optind < argc)
        return config_error(err, errlen,
                            "unexpected argument '%s' (options start with --; see minivmm --help)",
                            argv[optind]);
    if (!cfg->kernel_path)
        return config_error(err, errlen, "--kernel PATH is required (the bzImage to boot)");
    if (cfg->kernel_path[0] == '\0')
        return config_error(err, errlen, "--kernel: the path is empty");
    if (cfg->initrd_path && cfg->initrd_path[0] == '\0')
        return config_error(err, errlen, "--initrd: the path is empty");
    if (check_virtio_mem_layout(cfg, err, errlen) < 0)
        return CONFIG_ERROR;
    return CONFIG_OK;
}
