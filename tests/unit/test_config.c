/* Unit tests for the command line and the size parser (vmm/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
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
    assert_int_equal(cfg.console, CONSOLE_STDIO);
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
    assert_int_equal(cfg.console, CONSOLE_FILE);
    assert_string_equal(cfg.console_path, "/tmp/x.log");
    assert_true(cfg.no_reboot);
    assert_true(cfg.verbose);

    /* --opt=value form and the last occurrence winning. */
    assert_int_equal(parse(&cfg, err, sizeof(err), "--kernel=k", "--memory=256", "--cpus=3",
                           "--cpus=4", "--console=none", NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.memory, 256 * MiB);
    assert_int_equal(cfg.cpus, 4);
    assert_int_equal(cfg.console, CONSOLE_NONE);
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
    char err[256] = "";
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_suffixes), cmocka_unit_test(test_size_rejects),
        cmocka_unit_test(test_size_limits),   cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_options),   cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_cpus_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
