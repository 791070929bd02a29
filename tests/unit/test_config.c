/* Unit tests for the command line and the size parser (vmm/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/util.h"

static void size_ok(const char *s, uint64_t unit, uint64_t want)
{
    uint64_t got = 0;
    if (config_parse_size(s, unit, &got) != 0)
        fail_msg("'%s' was refused", s);
    if (got != want)
        fail_msg("'%s' parsed as %llu, want %llu", s, (unsigned long long)got,
                 (unsigned long long)want);
}

static void size_bad(const char *s)
{
    uint64_t got = 12345;
    if (config_parse_size(s, 1, &got) == 0)
        fail_msg("'%s' was accepted as %llu", s, (unsigned long long)got);
    assert_int_equal(got, 12345); /* untouched on failure */
}

static void test_size_suffixes(void **state)
{
    (void)state;
    size_ok("0", 1, 0);
    size_ok("4096", 1, 4096);
    size_ok("512", MiB, 512 * MiB); /* --memory: bare number is MiB, as QEMU's -m */
    size_ok("1B", MiB, 1);
    size_ok("4K", 1, 4 * KiB);
    size_ok("4k", 1, 4 * KiB);
    size_ok("512M", 1, 512 * MiB);
    size_ok("2G", 1, 2 * GiB);
    size_ok("1T", 1, 1024 * GiB);
    size_ok("1.5G", 1, 3 * GiB / 2);
    size_ok("0.5M", 1, 512 * KiB);
    size_ok("0x1000", 1, 0x1000);
    size_ok("0x10M", 1, 16 * MiB);
    size_ok("15E", 1, 15ULL << 60);
}

static void test_size_rejects(void **state)
{
    (void)state;
    size_bad("");
    size_bad("M");
    size_bad("-1");
    size_bad(" 1");
    size_bad("1 M");
    size_bad("1MB");
    size_bad("1X");
    size_bad("1.");
    size_bad(".5G");
    size_bad("0x");
    size_bad("0xG");
    size_bad("16E");                  /* 2^64 */
    size_bad("18446744073709551616"); /* 2^64 */
    size_bad("99999999999999999999999");
    size_bad("18014398509481984K"); /* 2^54 KiB = 2^64 */
}

/* Failures say which: not a size (EINVAL) or a size too large for 64 bits (ERANGE). */
static void size_errno(const char *s, int want)
{
    uint64_t got = 12345;
    errno = 0;
    if (config_parse_size(s, 1, &got) == 0)
        fail_msg("'%s' was accepted as %llu", s, (unsigned long long)got);
    if (errno != want)
        fail_msg("'%s': errno %d, want %d", s, errno, want);
    assert_int_equal(got, 12345);
}

static void test_size_errno(void **state)
{
    (void)state;
    size_errno("", EINVAL);
    size_errno("-1", EINVAL);
    size_errno("1X", EINVAL);
    size_errno("0x", EINVAL);
    size_errno("99999999999999999999X", EINVAL); /* bad syntax wins over overflow */
    size_errno("16E", ERANGE);
    size_errno("99999999T", ERANGE);
    size_errno("18446744073709551616", ERANGE);
    size_errno("0x10000000000000000", ERANGE);
}

static void test_size_limits(void **state)
{
    (void)state;
    size_ok("18446744073709551615", 1, UINT64_MAX);
    size_ok("0xffffffffffffffff", 1, UINT64_MAX);
    size_ok("18014398509481983K", 1, (18014398509481983ULL) * 1024);
    size_bad("18446744073709551615K");
}

/* Parse a NULL-terminated argument list. */
static enum config_result parse(struct vm_config *cfg, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = "minivmm";
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return config_parse(cfg, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "bz", NULL), CONFIG_OK);
    assert_string_equal(cfg.kernel_path, "bz");
    assert_null(cfg.initrd_path);
    assert_string_equal(cfg.cmdline, CONFIG_DEFAULT_CMDLINE);
    assert_int_equal(cfg.memory, 512 * MiB);
    assert_int_equal(cfg.cpus, 1);
    assert_int_equal(cfg.serial.console, CONSOLE_STDIO);
    assert_false(cfg.no_reboot);
}

static void test_all_options(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--initrd", "i", "--cmdline",
                           "console=ttyS0 quiet", "--memory", "1G", "--cpus", "2", "--console",
                           "file=/tmp/x.log", "--no-reboot", "--verbose", NULL),
                     CONFIG_OK);
    assert_string_equal(cfg.initrd_path, "i");
    assert_string_equal(cfg.cmdline, "console=ttyS0 quiet");
    assert_int_equal(cfg.memory, GiB);
    assert_int_equal(cfg.cpus, 2);
    assert_int_equal(cfg.serial.console, CONSOLE_FILE);
    assert_string_equal(cfg.serial.console_path, "/tmp/x.log");
    assert_true(cfg.no_reboot);
    assert_true(cfg.verbose);

    /* --opt=value form and the last occurrence winning. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel=k", "--memory=256", "--cpus=3",
                           "--cpus=4", "--console=none", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.memory, 256 * MiB);
    assert_int_equal(cfg.cpus, 4);
    assert_int_equal(cfg.serial.console, CONSOLE_NONE);
}

static void test_help_version(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--help", NULL), CONFIG_HELP);
    assert_int_equal(parse(&cfg, err, sizeof(err), "--version", NULL), CONFIG_VERSION);
    assert_non_null(strstr(config_usage(), "--kernel PATH"));
}

/* An invalid command line gives one line that names the option. */
static void expect_error(const char *needle, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = "minivmm";
    va_start(ap, needle);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    struct vm_config cfg;
    char err[512] = "";
    if (config_parse(&cfg, argc, argv, err, sizeof(err)) != CONFIG_ERROR)
        fail_msg("accepted a command line that should fail with '%s'", needle);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(strchr(err, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("--kernel PATH is required", NULL);
    expect_error("--kernel PATH is required", "--memory", "1G", NULL);
    expect_error("--memory: 'lots' is not a size", "--kernel", "k", "--memory", "lots", NULL);
    expect_error("--memory: 1M is too small", "--kernel", "k", "--memory", "1M", NULL);
    expect_error("--memory: 33554433B is not a multiple of 4K", "--kernel", "k", "--memory",
                 "33554433B", NULL);
    expect_error("--memory: 65T is more than 64T", "--kernel", "k", "--memory", "65T", NULL);
    expect_error("--cpus: 'two' is not a number", "--kernel", "k", "--cpus", "two", NULL);
    expect_error("--cpus: 0 is out of range", "--kernel", "k", "--cpus", "0", NULL);
    expect_error("--cpus: 255 is out of range", "--kernel", "k", "--cpus", "255", NULL);
    expect_error("--cpus: '-1' is not a number", "--kernel", "k", "--cpus", "-1", NULL);
    expect_error("--console: 'serial' is not a console mode", "--kernel", "k", "--console",
                 "serial", NULL);
    expect_error("--console file= needs a path", "--kernel", "k", "--console", "file=", NULL);
    expect_error("unknown option '--frobnicate'", "--kernel", "k", "--frobnicate", NULL);
    expect_error("--memory needs a value", "--kernel", "k", "--memory", NULL);
    expect_error("unexpected argument 'extra'", "--kernel", "k", "extra", NULL);
    expect_error("--kernel: the path is empty", "--kernel", "", NULL);
}

/* Messages that name the right option and say how to fix the value. */
static void test_error_messages(void **state)
{
    (void)state;
    /* An option that takes no value, given one: named, not "unknown". */
    expect_error("--no-reboot takes no value; remove '=1'", "--kernel", "k", "--no-reboot=1", NULL);
    expect_error("--verbose takes no value", "--kernel", "k", "--verbose=yes", NULL);
    /* An abbreviation that fits several options. */
    expect_error("option '--v' is ambiguous (it could be --virtio-mem, --virtio-mmio-cmdline, "
                 "--vfio, --verbose, --version); spell it out",
                 "--kernel", "k", "--v", NULL);
    expect_error("option '--virtio-m' is ambiguous", "--kernel", "k", "--virtio-m=1", NULL);
    expect_error("unknown option '-x' (options are long", "--kernel", "k", "-x", NULL);
    expect_error("unknown option '--foo=bar'", "--kernel", "k", "--foo=bar", NULL);
    /* A missing value: the full option name, even for an abbreviation. */
    expect_error("--memory needs a value", "--kernel", "k", "--mem", NULL);
    /* The next option is not taken as the value. */
    expect_error("--kernel needs a value before --memory", "--kernel", "--memory", "1G", NULL);
    expect_error("--initrd needs a value before --cpus=2", "--kernel", "k", "--initrd", "--cpus=2",
                 NULL);
    /* Sizes too large for 64 bits are too large, not "not a size". */
    expect_error("--memory: 99999999T is more than 64T", "--kernel", "k", "--memory", "99999999T",
                 NULL);
    expect_error("--memory: 16E is more than 64T", "--kernel", "k", "--memory", "16E", NULL);
    /* Too large beats misaligned. */
    expect_error("--memory: 15.99999999999E is more than 64T", "--kernel", "k", "--memory",
                 "15.99999999999E", NULL);
    expect_error("--memory: 33.3 is not a multiple of 4K (the page size); use e.g. --memory 33M",
                 "--kernel", "k", "--memory", "33.3", NULL);
    expect_error("--cpus: 99999999999999999999 is out of range", "--kernel", "k", "--cpus",
                 "99999999999999999999", NULL);
    /* A socket path that cannot fit in sun_path is refused before anything starts. */
    char path[200];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    expect_error("is too long (199 bytes; a unix socket path has at most 107)", "--kernel", "k",
                 "--api-socket", path, NULL);
    path[107] = '\0';
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--api-socket", path, NULL),
                     CONFIG_OK);
}

static void test_vfio_options(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--vfio", "00:03.0", "--vfio",
                           "0000:00:04.0,id=second", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.nr_vfio, 2);
    assert_string_equal(cfg.vfio[0].bdf, "0000:00:03.0");
    assert_string_equal(cfg.vfio[0].id, "vfio0");
    assert_string_equal(cfg.vfio[1].bdf, "0000:00:04.0");
    assert_string_equal(cfg.vfio[1].id, "second");
    expect_error("--vfio 3: not a PCI address", "--kernel", "k", "--vfio", "3", NULL);
    expect_error("--vfio needs a value", "--kernel", "k", "--vfio", NULL);
    /* Passthrough next to virtio-mem: the plugged blocks are DMA-mapped as they are plugged. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--vfio", "00:03.0",
                           "--virtio-mem", "size=1G", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.nr_vfio, 1);
    assert_int_equal(cfg.nr_virtio_mem, 1);
    const char *many[32] = {"--kernel", "k"};
    unsigned n = 2;
    static char bdfs[VFIO_MAX_DEVICES + 1][16];
    for (unsigned i = 0; i <= VFIO_MAX_DEVICES; i++) {
        snprintf(bdfs[i], sizeof(bdfs[i]), "00:%02x.0", i + 3);
        many[n++] = "--vfio";
        many[n++] = bdfs[i];
    }
    many[n] = NULL;
    assert_int_equal(config_parse(&cfg, (int)n, (char **)many, err, sizeof(err)), CONFIG_ERROR);
    assert_non_null(strstr(err, "at most 8 devices"));
}

static void test_virtio_mem_messages(void **state)
{
    (void)state;
#define VM_ERR(needle, value) expect_error(needle, "--kernel", "k", "--virtio-mem", value, NULL)
    /* The values as the user wrote them, not rounded ("1.0 GiB"), and a value that works. */
    VM_ERR("size=1025M is not a multiple of block-size=2M (the default); use e.g. size=1G",
           "size=1025M");
    VM_ERR("size=1M is not a multiple of block-size=2M (the default); use e.g. size=2M", "size=1M");
    VM_ERR("size=1G is not a multiple of block-size=2G; use e.g. size=2G", "size=1G,block-size=2G");
    VM_ERR("block-size=0 must be a power of two of at least 4K (e.g. block-size=2M)",
           "size=1G,block-size=0");
    VM_ERR("size must not be 0 (e.g. size=4G)", "size=0");
    VM_ERR("size=99999999T is too large", "size=99999999T");
    VM_ERR("size=8E is larger than the guest-physical address space", "size=8E");
    VM_ERR("requested=2G is larger than size=1G; lower requested= or raise size=",
           "size=1G,requested=2G");
    VM_ERR("requested=1M is not a multiple of block-size=2M (the default); use e.g. requested=2M",
           "size=1G,requested=1M");
    VM_ERR("requested=3M is not a multiple of block-size=2M (the default); use e.g. requested=4M",
           "size=4M,requested=3M");
    VM_ERR("addr=0x108000000 must be a multiple of 128M and of block-size; use e.g. "
           "addr=0x140000000",
           "size=1G,block-size=1G,addr=0x108000000");
    VM_ERR("use addr=4G or higher, or leave addr= out", "size=1G,addr=0x1000");
    VM_ERR("size is given twice (size=1G and size=2G); give it once", "size=1G,size=2G");
    VM_ERR("backend=hugetlbfs needs the directory of a hugetlbfs mount, e.g. "
           "backend=hugetlbfs=/dev/hugepages",
           "size=1G,backend=hugetlbfs");
#undef VM_ERR
    expect_error("id 'mem1' is used twice; give each device its own id=", "--kernel", "k",
                 "--virtio-mem", "size=1G,id=mem1", "--virtio-mem", "size=1G", NULL);
}

/* Regions with addr= may not overlap each other or boot RAM, wherever --memory is given. */
static void test_virtio_mem_layout(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    expect_error("--virtio-mem mem1: [0x200000000, 0x240000000) overlaps mem0 [0x200000000, "
                 "0x240000000); use addr=0x240000000",
                 "--kernel", "k", "--virtio-mem", "size=1G,addr=8G", "--virtio-mem",
                 "size=1G,addr=8G", NULL);
    expect_error("--virtio-mem b: [0x240000000, 0x280000000) overlaps a [0x200000000, "
                 "0x280000000); use addr=0x280000000",
                 "--kernel", "k", "--virtio-mem", "size=2G,addr=8G,id=a", "--virtio-mem",
                 "size=1G,addr=9G,id=b", NULL);
    expect_error("--virtio-mem mem0: addr=0x100000000 is inside boot RAM, which --memory 8G "
                 "places up to 0x240000000; use addr=0x240000000 or higher",
                 "--kernel", "k", "--virtio-mem", "size=1G,addr=4G", "--memory", "8G", NULL);
    /* Touching is not overlapping; regions without addr= are placed later. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--memory", "5G",
                           "--virtio-mem", "size=1G,addr=6G", "--virtio-mem", "size=1G,addr=7G",
                           "--virtio-mem", "size=1G", NULL),
                     CONFIG_OK);
    /* RAM up to 3G stays below 4G: any addr= from 4G is free. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--memory", "3G",
                           "--virtio-mem", "size=1G,addr=4G", NULL),
                     CONFIG_OK);
}

static void test_cpus_range(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--cpus", "254", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.cpus, 254);
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--cpus", "1", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.cpus, 1);
}

static void test_virtio_mem_defaults(void **state)
{
    (void)state;
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--virtio-mem", "size=4G",
                           "--virtio-mem",
                           "size=1G,id=big-1,block-size=128M,requested=256M,addr=0x200000000,"
                           "backend=memfd,prealloc=on",
                           "--virtio-mmio-cmdline", "--api-socket", "/run/vm.sock", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.nr_virtio_mem, 2);
    struct virtio_mem_options *a = &cfg.virtio_mem[0], *b = &cfg.virtio_mem[1];
    assert_string_equal(a->id, "mem0");
    assert_int_equal(a->size, 4 * GiB);
    assert_int_equal(a->block_size, 2 * MiB);
    assert_int_equal(a->requested, 0);
    assert_int_equal(a->addr, 0);
    assert_int_equal(a->backend, MM_BACKING_ANON);
    assert_false(a->prealloc);
    assert_string_equal(b->id, "big-1");
    assert_int_equal(b->size, GiB);
    assert_int_equal(b->block_size, 128 * MiB);
    assert_int_equal(b->requested, 256 * MiB);
    assert_int_equal(b->addr, 0x200000000ULL);
    assert_int_equal(b->backend, MM_BACKING_MEMFD);
    assert_true(b->prealloc);
    assert_true(cfg.virtio_mmio_cmdline);
    assert_string_equal(cfg.api_socket, "/run/vm.sock");

    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--virtio-mem",
                           "backend=hugetlbfs=/dev/hugepages,size=2G", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.virtio_mem[0].backend, MM_BACKING_HUGETLBFS);
    assert_string_equal(cfg.virtio_mem[0].hugetlbfs_path, "/dev/hugepages");
    assert_true(cfg.virtio_mem[0].prealloc); /* implied for hugetlbfs */
    /* The default id counts devices: the second one is mem1. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel", "k", "--virtio-mem", "size=1G",
                           "--virtio-mem", "size=1G", NULL),
                     CONFIG_OK);
    assert_string_equal(cfg.virtio_mem[1].id, "mem1");
}

static void test_virtio_mem_errors(void **state)
{
    (void)state;
#define VM_ERR(needle, value) expect_error(needle, "--kernel", "k", "--virtio-mem", value, NULL)
    VM_ERR("needs size=SIZE", "requested=1G");
    VM_ERR("size must not be 0", "size=0");
    VM_ERR("size='lots' is not a size", "size=lots");
    VM_ERR("'size' is not key=value", "size");
    VM_ERR("'=4G' is not key=value", "=4G");
    VM_ERR("unknown key 'colour'", "size=4G,colour=blue");
    VM_ERR("block-size=3M must be a power of two", "size=3G,block-size=3M");
    VM_ERR("block-size=2K must be a power of two of at least 4K", "size=4G,block-size=2K");
    VM_ERR("size=5M is not a multiple of block-size=2M (the default); use e.g. size=4M", "size=5M");
    VM_ERR("requested=8G is larger than size=4G", "size=4G,requested=8G");
    VM_ERR("requested=3M is not a multiple of block-size=2M (the default); use e.g. requested=4M",
           "size=4G,requested=3M");
    VM_ERR("addr=1G is below 4G", "size=4G,addr=1G");
    VM_ERR("must be a multiple of 128M and of block-size; use e.g. addr=0x108000000",
           "size=4G,addr=0x100200000");
    VM_ERR("ends above 4P", "size=4G,addr=0xfffffffff8000000");
    VM_ERR("backend='disk' is not a backend", "size=4G,backend=disk");
    VM_ERR("backend=hugetlbfs needs the directory of a hugetlbfs mount",
           "size=4G,backend=hugetlbfs=");
    VM_ERR("prealloc='yes' must be on or off", "size=4G,prealloc=yes");
    VM_ERR("backend=hugetlbfs needs prealloc=on", "size=4G,backend=hugetlbfs=/h,prealloc=off");
    VM_ERR("id='a b' must be 1 to 31 letters", "size=4G,id=a b");
    VM_ERR("id='' must be", "size=4G,id=");
#undef VM_ERR
    expect_error("id 'x' is used twice", "--kernel", "k", "--virtio-mem", "size=1G,id=x",
                 "--virtio-mem", "size=1G,id=x", NULL);
    expect_error("at most 8 devices", "--kernel", "k", "--virtio-mem", "size=1G", "--virtio-mem",
                 "size=1G", "--virtio-mem", "size=1G", "--virtio-mem", "size=1G", "--virtio-mem",
                 "size=1G", "--virtio-mem", "size=1G", "--virtio-mem", "size=1G", "--virtio-mem",
                 "size=1G", "--virtio-mem", "size=1G", NULL);
    expect_error("--api-socket: the path is empty", "--kernel", "k", "--api-socket", "", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_suffixes),
        cmocka_unit_test(test_size_rejects),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_size_errno),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_vfio_options),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cpus_range),
        cmocka_unit_test(test_virtio_mem_defaults),
        cmocka_unit_test(test_virtio_mem_errors),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_virtio_mem_messages),
        cmocka_unit_test(test_virtio_mem_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
