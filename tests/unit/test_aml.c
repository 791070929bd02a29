/*
 * Unit tests for the AML encoder (vmm/aml.c).
 *
 * Expected bytes come from the ACPI 6.5 AML grammar (chapter 20) and resource
 * descriptor layouts (section 6.4), written out by hand; several were
 * cross-checked against what iasl produces for the equivalent ASL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/aml_decode.h"
#include "vmm/aml.h"

/* ---- Allocation failure injection ----
 * The test binary interposes realloc() so that aml.c's growth can be made to fail.
 * All other callers get glibc's implementation unchanged. */
extern void *__libc_realloc(void *ptr, size_t size);
static bool realloc_fails;

void *realloc(void *ptr, size_t size)
{
    if (realloc_fails)
        return NULL;
    return __libc_realloc(ptr, size);
}

/* ---- Helpers ---- */

static void expect_bytes(const struct aml *aml, const uint8_t *expected, size_t n)
{
    if (!aml_ok(aml))
        fail_msg("AML builder failed: %s", aml_error(aml));
    assert_int_equal(aml_size(aml), n);
    assert_memory_equal(aml_data(aml), expected, n);
}

#define EXPECT_AML(aml, ...)                                                                       \
    do {                                                                                           \
        static const uint8_t expected_[] = {__VA_ARGS__};                                          \
        expect_bytes((aml), expected_, sizeof(expected_));                                         \
    } while (0)

/* The smallest PkgLength byte count that can describe a body of body_len bytes. */
static size_t minimal_pkglength_bytes(size_t body_len)
{
    if (body_len + 1 <= 0x3f)
        return 1;
    if (body_len + 2 <= 0xfff)
        return 2;
    if (body_len + 3 <= 0xfffff)
        return 3;
    return 4;
}

/* Build a fresh encoder, run one emitter, and leave the result in *aml. */
static struct aml fresh(void)
{
    struct aml aml;
    aml_init(&aml);
    return aml;
}

/* ---- PkgLength ---- */

static void check_pkglength(size_t body, const uint8_t *expected, size_t n)
{
    uint8_t out[AML_PKGLENGTH_MAX_BYTES];
    size_t got = aml_encode_pkglength(out, body);
    assert_int_equal(got, n);
    assert_memory_equal(out, expected, n);
    size_t nbytes;
    assert_int_equal(decode_pkglength(out, &nbytes), body + n);
    assert_int_equal(nbytes, n);
}

static void test_pkglength_boundaries(void **state)
{
    (void)state;
    /* 1-byte form holds totals up to 63: a 62-byte body fits, a 63-byte body does not. */
    check_pkglength(0, (const uint8_t[]){0x01}, 1);
    check_pkglength(62, (const uint8_t[]){0x3f}, 1);
    check_pkglength(63, (const uint8_t[]){0x41, 0x04}, 2); /* total 65 = 0x041 */
    check_pkglength(64, (const uint8_t[]){0x42, 0x04}, 2); /* total 66 */
    /* 2-byte form holds totals up to 4095. */
    check_pkglength(4093, (const uint8_t[]){0x4f, 0xff}, 2);       /* total 0xfff */
    check_pkglength(4094, (const uint8_t[]){0x81, 0x00, 0x01}, 3); /* total 0x1001 */
    check_pkglength(4096, (const uint8_t[]){0x83, 0x00, 0x01}, 3);
    /* 3-byte form holds totals up to 0xfffff. */
    check_pkglength(0xfffff - 3, (const uint8_t[]){0x8f, 0xff, 0xff}, 3);
    check_pkglength(0xfffff - 2, (const uint8_t[]){0xc1, 0x00, 0x00, 0x01}, 4);
    /* 4-byte form holds totals up to 0xfffffff. */
    check_pkglength(AML_PKGLENGTH_MAX_BODY, (const uint8_t[]){0xcf, 0xff, 0xff, 0xff}, 4);
    uint8_t out[AML_PKGLENGTH_MAX_BYTES];
    assert_int_equal(aml_encode_pkglength(out, AML_PKGLENGTH_MAX_BODY + 1), 0);
}

/*
 * Real Device blocks with every body size from 0 to past 4096: the PkgLength
 * must decode to exactly the bytes that follow the opcode, in the minimal form.
 */
static void test_device_pkglength_sweep(void **state)
{
    (void)state;
    static uint8_t payload[4200];
    bool seen[5] = {false};
    for (size_t len = 0; len <= sizeof(payload); len += 1) {
        struct aml aml = fresh();
        size_t dev = aml_device_begin(&aml, "DEVX");
        aml_name_buffer(&aml, "BUFF", payload, len);
        aml_end(&aml, dev);
        assert_true(aml_ok(&aml));
        const uint8_t *p = aml_data(&aml);
        assert_int_equal(p[0], 0x5b);
        assert_int_equal(p[1], 0x82);
        size_t nbytes;
        size_t pkglen = decode_pkglength(p + 2, &nbytes);
        assert_int_equal(pkglen, aml_size(&aml) - 2);
        assert_int_equal(nbytes, minimal_pkglength_bytes(pkglen - nbytes));
        assert_memory_equal(p + 2 + nbytes, "DEVX", 4);
        seen[nbytes] = true;
        aml_release(&aml);
    }
    assert_true(seen[1] && seen[2] && seen[3]);
}

/* Walk a Scope holding two Devices, the first with a body above 4095 bytes. */
static void test_nested_blocks(void **state)
{
    (void)state;
    static uint8_t big[5000];
    struct aml aml = fresh();
    size_t sb = aml_scope_begin(&aml, "\\_SB");
    size_t a = aml_device_begin(&aml, "DEVA");
    aml_name_buffer(&aml, "BUFF", big, sizeof(big));
    aml_end(&aml, a);
    size_t b = aml_device_begin(&aml, "DEVB");
    aml_name_integer(&aml, "_UID", 7);
    aml_end(&aml, b);
    aml_end(&aml, sb);
    assert_true(aml_ok(&aml));

    const uint8_t *p = aml_data(&aml);
    size_t n;
    assert_int_equal(p[0], 0x10); /* ScopeOp */
    assert_int_equal(decode_pkglength(p + 1, &n), aml_size(&aml) - 1);
    const uint8_t *devs = p + 1 + n + 5; /* skip PkgLength and "\_SB_" */
    assert_memory_equal(p + 1 + n, "\\_SB_", 5);
    assert_int_equal(devs[0], 0x5b);
    assert_int_equal(devs[1], 0x82);
    size_t len_a = decode_pkglength(devs + 2, &n);
    assert_int_equal(n, 3);
    const uint8_t *dev_b = devs + 2 + len_a;
    static const uint8_t dev_b_bytes[] = {0x5b, 0x82, 0x0c, 'D', 'E', 'V',  'B',
                                          0x08, '_',  'U',  'I', 'D', 0x0a, 0x07};
    assert_memory_equal(dev_b, dev_b_bytes, sizeof(dev_b_bytes));
    assert_int_equal((size_t)(dev_b + 14 - p), aml_size(&aml));
    aml_release(&aml);
}

/* ---- Integers ---- */

static void check_integer(uint64_t value, const uint8_t *expected, size_t n)
{
    struct aml aml = fresh();
    aml_integer(&aml, value);
    expect_bytes(&aml, expected, n);
    aml_release(&aml);
}

static void test_integer_encodings(void **state)
{
    (void)state;
    check_integer(0, (const uint8_t[]){0x00}, 1);          /* Zero */
    check_integer(1, (const uint8_t[]){0x01}, 1);          /* One */
    check_integer(UINT64_MAX, (const uint8_t[]){0xff}, 1); /* Ones */
    check_integer(2, (const uint8_t[]){0x0a, 0x02}, 2);    /* BytePrefix */
    check_integer(0xff, (const uint8_t[]){0x0a, 0xff}, 2);
    check_integer(0x100, (const uint8_t[]){0x0b, 0x00, 0x01}, 3); /* WordPrefix */
    check_integer(0xffff, (const uint8_t[]){0x0b, 0xff, 0xff}, 3);
    check_integer(0x10000, (const uint8_t[]){0x0c, 0x00, 0x00, 0x01, 0x00}, 5); /* DWord */
    check_integer(0xffffffff, (const uint8_t[]){0x0c, 0xff, 0xff, 0xff, 0xff}, 5);
    check_integer(0x100000000, (const uint8_t[]){0x0e, 0, 0, 0, 0, 1, 0, 0, 0}, 9); /* QWord */
    check_integer(UINT64_MAX - 1,
                  (const uint8_t[]){0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9);
}

/* ---- EISA ids ---- */

static void test_eisaid(void **state)
{
    (void)state;
    uint32_t v;
    assert_true(aml_eisaid_value("PNP0501", &v));
    assert_int_equal(v, 0x0105d041);
    assert_true(aml_eisaid_value("PNP0A03", &v));
    assert_int_equal(v, 0x030ad041);
    assert_true(aml_eisaid_value("PNP0A08", &v));
    assert_int_equal(v, 0x080ad041);
    assert_true(aml_eisaid_value("ABC0000", &v)); /* A=1 B=2 C=3: 0 00001 00010 00011 */
    assert_int_equal(v, 0x00004304);

    const char *bad[] = {"pnp0501", "PNP050", "PNP05010", "PNP05G1", "P1P0501", "PNP050a", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(aml_eisaid_value(bad[i], &v));
    assert_false(aml_eisaid_value(NULL, &v));

    struct aml aml = fresh();
    aml_name_eisaid(&aml, "_HID", "PNP0501");
    EXPECT_AML(&aml, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01);
    aml_release(&aml);

    aml = fresh();
    aml_eisaid(&aml, "PNP05O1"); /* letter O, not zero */
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "EISA"));
    aml_release(&aml);
}

/* ---- Names ---- */

static void check_name(const char *path, const uint8_t *expected, size_t n)
{
    struct aml aml = fresh();
    aml_namestring(&aml, path);
    expect_bytes(&aml, expected, n);
    aml_release(&aml);
}

static void test_name_paths(void **state)
{
    (void)state;
    check_name("COM1", (const uint8_t *)"COM1", 4);
    check_name("_S5", (const uint8_t *)"_S5_", 4);
    check_name("A", (const uint8_t *)"A___", 4);
    check_name("\\_SB", (const uint8_t *)"\\_SB_", 5);
    check_name("\\", (const uint8_t[]){'\\', 0x00}, 2); /* root alone: NullName */
    check_name("^^FOO", (const uint8_t *)"^^FOO_", 6);
    check_name("_SB.PCI0", (const uint8_t *)"\x2e_SB_PCI0", 9);
    check_name("\\_SB.PCI0", (const uint8_t *)"\\\x2e_SB_PCI0", 10);
    check_name("\\_SB.PCI0.S08", (const uint8_t *)"\\\x2f\x03_SB_PCI0S08_", 15);
    check_name("A.B.C.D",
               (const uint8_t *)"\x2f\x04"
                                "A___B___C___D___",
               18);
}

static void test_invalid_names(void **state)
{
    (void)state;
    const char *bad[] = {"",   "com1",  "TOOLONG", "1ABC", "A..B", "A.",
                         ".A", "\\\\A", "^\\A",    "A-B",  "_SB.", "AB CD"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct aml aml = fresh();
        aml_name_integer(&aml, bad[i], 1);
        if (aml_ok(&aml))
            fail_msg("name \"%s\" was accepted", bad[i]);
        assert_non_null(strstr(aml_error(&aml), "invalid name"));
        aml_release(&aml);
    }
    struct aml aml = fresh();
    aml_namestring(&aml, NULL);
    assert_false(aml_ok(&aml));
    aml_release(&aml);
}

/* ---- Named objects, packages, methods ---- */

static void test_name_objects(void **state)
{
    (void)state;
    struct aml aml = fresh();
    aml_name_integer(&aml, "_UID", 1);
    aml_name_string(&aml, "_HID", "LNRO0005");
    EXPECT_AML(&aml, 0x08, '_', 'U', 'I', 'D', 0x01, 0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R',
               'O', '0', '0', '0', '5', 0x00);
    aml_release(&aml);

    aml = fresh();
    aml_name_buffer(&aml, "BUF0", (const uint8_t[]){0xaa, 0xbb}, 2);
    /* Buffer: 11 PkgLength(5) BufferSize(0A 02) AA BB */
    EXPECT_AML(&aml, 0x08, 'B', 'U', 'F', '0', 0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb);
    aml_release(&aml);

    aml = fresh();
    aml_name_string(&aml, "STR0", "caf\xc3\xa9");
    assert_false(aml_ok(&aml));
    aml_release(&aml);
}

static void test_package_of_integers(void **state)
{
    (void)state;
    struct aml aml = fresh();
    const uint64_t s5[] = {5, 0, 0, 0};
    aml_name_package_integers(&aml, "\\_S5", s5, 4);
    /* The same bytes iasl emits for Name (\_S5, Package (0x04) {0x05, Zero, Zero, Zero}). */
    EXPECT_AML(&aml, 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00,
               0x00);
    aml_release(&aml);

    aml = fresh();
    aml_name_package_integers(&aml, "EMPT", NULL, 0);
    EXPECT_AML(&aml, 0x08, 'E', 'M', 'P', 'T', 0x12, 0x02, 0x00);
    aml_release(&aml);
}

static void test_nested_package_counts_elements(void **state)
{
    (void)state;
    struct aml aml = fresh();
    aml_name(&aml, "_PRT");
    size_t outer = aml_package_begin(&aml);
    size_t inner = aml_package_begin(&aml);
    aml_integer(&aml, 0xffff);
    aml_integer(&aml, 0);
    aml_namestring(&aml, "LNKA");
    aml_integer(&aml, 0);
    aml_end(&aml, inner);
    aml_string(&aml, "x");
    aml_end(&aml, outer);
    EXPECT_AML(&aml, 0x08, '_', 'P', 'R', 'T', /* Name (_PRT, */
               0x12, 0x11, 0x02,               /* Package, PkgLength 17, 2 elements */
               0x12, 0x0b, 0x04,               /* Package, PkgLength 11, 4 elements */
               0x0b, 0xff, 0xff, 0x00, 'L', 'N', 'K', 'A', 0x00, /* 0xFFFF, Zero, LNKA, Zero */
               0x0d, 'x', 0x00);                                 /* "x" */
    aml_release(&aml);

    aml = fresh();
    aml_name(&aml, "BIGP");
    size_t pkg = aml_package_begin(&aml);
    for (int i = 0; i < 256; i++)
        aml_integer(&aml, 0);
    aml_end(&aml, pkg);
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "Package"));
    aml_release(&aml);

    aml = fresh();
    aml_name(&aml, "PKG0");
    pkg = aml_package_begin(&aml);
    aml_name_integer(&aml, "_UID", 1); /* a Name is not a package element */
    aml_end(&aml, pkg);
    assert_false(aml_ok(&aml));
    aml_release(&aml);
}

static void test_method(void **state)
{
    (void)state;
    struct aml aml = fresh();
    size_t m = aml_method_begin(&aml, "_STA", 0, false);
    aml_return_integer(&aml, 0x0f);
    aml_end(&aml, m);
    /* Method (_STA, 0, NotSerialized) { Return (0x0F) } */
    EXPECT_AML(&aml, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
    aml_release(&aml);

    aml = fresh();
    m = aml_method_begin(&aml, "MTH2", 2, true);
    aml_return_integer(&aml, 0);
    aml_end(&aml, m);
    EXPECT_AML(&aml, 0x14, 0x08, 'M', 'T', 'H', '2', 0x0a, 0xa4, 0x00);
    aml_release(&aml);

    aml = fresh();
    m = aml_method_begin(&aml, "MTH8", 8, false);
    aml_end(&aml, m);
    assert_false(aml_ok(&aml));
    aml_release(&aml);
}

/* ---- Resource templates ---- */

static void check_resource(const struct aml_res *res, const uint8_t *desc, size_t n)
{
    struct aml aml = fresh();
    aml_resource(&aml, res);
    if (!aml_ok(&aml))
        fail_msg("resource template failed: %s", aml_error(&aml));
    const uint8_t *p = aml_data(&aml);
    size_t nbytes;
    assert_int_equal(p[0], 0x11); /* BufferOp */
    size_t pkglen = decode_pkglength(p + 1, &nbytes);
    assert_int_equal(pkglen, aml_size(&aml) - 1);
    const uint8_t *size = p + 1 + nbytes;
    size_t size_len = size[0] == 0x0a ? 2 : 3;
    size_t buf_len = size[0] == 0x0a ? size[1] : (size_t)(size[1] | size[2] << 8);
    assert_int_equal(buf_len, n + 2);
    const uint8_t *data = size + size_len;
    assert_memory_equal(data, desc, n);
    assert_int_equal(data[n], 0x79); /* EndTag */
    assert_int_equal(data[n + 1], 0x00);
    assert_int_equal((size_t)(data + n + 2 - p), aml_size(&aml));
    aml_release(&aml);
}

static void test_res_com1(void **state)
{
    (void)state;
    struct aml_res res;
    aml_res_init(&res);
    aml_res_io(&res, 0x3f8, 0x3f8, 1, 8);
    aml_res_irq_noflags(&res, 4);
    check_resource(
        &res, (const uint8_t[]){0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00},
        11);

    aml_res_init(&res);
    aml_res_irq_noflags(&res, 16);
    struct aml aml = fresh();
    aml_name_resource(&aml, "_CRS", &res);
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "IRQ"));
    aml_release(&aml);
}

static void test_res_virtio_mmio(void **state)
{
    (void)state;
    struct aml_res res;
    aml_res_init(&res);
    aml_res_memory32_fixed(&res, AML_MEM_READ_WRITE, 0xd0000000, 0x200);
    aml_res_interrupt(&res, AML_IRQ_LEVEL, AML_IRQ_ACTIVE_HIGH, AML_IRQ_EXCLUSIVE, 5);
    check_resource(
        &res, (const uint8_t[]){0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00,
                                0x02, 0x00, 0x00, /* Memory32Fixed (ReadWrite, 0xd0000000, 0x200) */
                                0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00},
        21);

    const uint32_t gsis[] = {9, 0x12345678};
    aml_res_init(&res);
    aml_res_memory32_fixed(&res, AML_MEM_READ_ONLY, 0x1000, 0x10);
    aml_res_interrupts(&res, AML_IRQ_EDGE, AML_IRQ_ACTIVE_LOW, AML_IRQ_SHARED, gsis, 2);
    check_resource(&res, (const uint8_t[]){0x86, 0x09, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x10,
                                           0x00, 0x00, 0x00, 0x89, 0x0a, 0x00, 0x0f, 0x02, 0x09,
                                           0x00, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12},
                   25);
}

static void test_res_pci_host_windows(void **state)
{
    (void)state;
    struct aml_res res;
    aml_res_init(&res);
    aml_res_word_bus_number(&res, AML_RES_PRODUCER, 0, 0xff);
    aml_res_word_io(&res, AML_RES_PRODUCER, 0x0d00, 0xffff);
    aml_res_dword_memory(&res, AML_RES_PRODUCER, AML_MEM_NON_CACHEABLE, AML_MEM_READ_WRITE,
                         0xc0000000, 0xfebfffff);
    aml_res_qword_memory(&res, AML_RES_CONSUMER, AML_MEM_PREFETCHABLE, AML_MEM_READ_ONLY,
                         0x8000000000, 0xffffffffff);
    static const uint8_t expected[] = {
        /* WordBusNumber: type 2, flags MinFixed|MaxFixed, gran 0, 0-0xff, len 0x100 */
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
        0x01,
        /* WordIO: type 1, EntireRange, 0xd00-0xffff, len 0xf300 */
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00,
        0xf3,
        /* DWordMemory: type 0, ReadWrite NonCacheable, 0xc0000000-0xfebfffff */
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff,
        0xff, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x3e,
        /* QWordMemory: consumer, Prefetchable ReadOnly (3 << 1), 0x80_0000_0000-0xff_ffff_ffff */
        0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, /* granularity */
        0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,             /* min */
        0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,             /* max */
        0, 0, 0, 0, 0, 0, 0, 0,                                     /* translation */
        0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,             /* length */
    };
    check_resource(&res, expected, sizeof(expected));
}

static void test_res_errors(void **state)
{
    (void)state;
    struct aml_res res;

    aml_res_init(&res);
    aml_res_word_io(&res, AML_RES_PRODUCER, 0x100, 0xff); /* min > max */
    assert_true(res.failed);

    aml_res_init(&res);
    aml_res_word_io(&res, AML_RES_PRODUCER, 0, 0xffff); /* length 0x10000 does not fit */
    assert_true(res.failed);

    aml_res_init(&res);
    aml_res_qword_memory(&res, AML_RES_PRODUCER, AML_MEM_CACHEABLE, AML_MEM_READ_WRITE, 0,
                         UINT64_MAX);
    assert_true(res.failed);

    aml_res_init(&res);
    aml_res_interrupts(&res, AML_IRQ_EDGE, AML_IRQ_ACTIVE_HIGH, AML_IRQ_EXCLUSIVE, NULL, 0);
    assert_true(res.failed);

    aml_res_init(&res);
    for (int i = 0; i < 20; i++) /* 20 x 46 bytes > AML_RES_MAX */
        aml_res_qword_memory(&res, AML_RES_PRODUCER, AML_MEM_CACHEABLE, AML_MEM_READ_WRITE, 0,
                             0xfff);
    assert_true(res.failed);
    assert_true(res.len <= AML_RES_MAX);
    struct aml aml = fresh();
    aml_name_resource(&aml, "_CRS", &res);
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "full"));
    aml_release(&aml);
}

/* ---- Error handling ---- */

static void test_unbalanced_blocks(void **state)
{
    (void)state;
    struct aml aml = fresh();
    size_t a = aml_device_begin(&aml, "DEVA");
    size_t b = aml_device_begin(&aml, "DEVB");
    aml_end(&aml, a); /* wrong order */
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "aml_end"));
    aml_end(&aml, b);
    assert_false(aml_ok(&aml)); /* sticky */
    aml_release(&aml);

    aml = fresh();
    aml_device_begin(&aml, "OPEN");
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "unclosed"));
    aml_release(&aml);

    aml = fresh();
    aml_end(&aml, 0); /* nothing open */
    assert_false(aml_ok(&aml));
    aml_release(&aml);

    aml = fresh();
    size_t blocks[AML_MAX_DEPTH + 1];
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        blocks[i] = aml_scope_begin(&aml, "DEEP");
    assert_int_equal(blocks[AML_MAX_DEPTH], AML_BAD_BLOCK);
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "nested"));
    aml_release(&aml);
}

static void test_error_is_sticky_and_stops_output(void **state)
{
    (void)state;
    struct aml aml = fresh();
    aml_name_integer(&aml, "GOOD", 1);
    size_t before = aml_size(&aml);
    aml_name_integer(&aml, "bad!", 1);
    assert_false(aml_ok(&aml));
    const char *first = aml_error(&aml);
    assert_non_null(strstr(first, "bad!"));
    aml_name_integer(&aml, "NEXT", 2);
    aml_eisaid(&aml, "nonsense");
    assert_true(aml_size(&aml) <= before + 1);        /* nothing after the NameOp of the bad name */
    assert_non_null(strstr(aml_error(&aml), "bad!")); /* the first error is kept */
    aml_release(&aml);
}

static void test_allocation_failure_is_sticky(void **state)
{
    (void)state;
    struct aml aml = fresh();
    size_t dev = aml_device_begin(&aml, "DEVA");
    realloc_fails = true;
    static uint8_t big[1024];
    aml_name_buffer(&aml, "BUFF", big, sizeof(big)); /* needs to grow the 256-byte buffer */
    realloc_fails = false;
    aml_name_integer(&aml, "_UID", 1);
    aml_end(&aml, dev);
    assert_false(aml_ok(&aml));
    assert_non_null(strstr(aml_error(&aml), "out of memory"));
    aml_release(&aml);

    /* After release the struct is reusable. */
    aml_init(&aml);
    aml_name_integer(&aml, "_UID", 1);
    assert_true(aml_ok(&aml));
    aml_release(&aml);
}

static void test_com1_example_from_header(void **state)
{
    (void)state;
    struct aml aml = fresh();
    size_t dev = aml_device_begin(&aml, "COM1");
    aml_name_eisaid(&aml, "_HID", "PNP0501");
    aml_name_integer(&aml, "_UID", 1);
    struct aml_res res;
    aml_res_init(&res);
    aml_res_io(&res, 0x3f8, 0x3f8, 1, 8);
    aml_res_irq_noflags(&res, 4);
    aml_name_resource(&aml, "_CRS", &res);
    aml_end(&aml, dev);
    /* Byte-identical to iasl's output for the equivalent ASL. */
    EXPECT_AML(&aml, 0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1', 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41,
               0xd0, 0x05, 0x01, 0x08, '_', 'U', 'I', 'D', 0x01, 0x08, '_', 'C', 'R', 'S', 0x11,
               0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00,
               0x79, 0x00);
    aml_release(&aml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkglength_boundaries),
        cmocka_unit_test(test_device_pkglength_sweep),
        cmocka_unit_test(test_nested_blocks),
        cmocka_unit_test(test_integer_encodings),
        cmocka_unit_test(test_eisaid),
        cmocka_unit_test(test_name_paths),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_name_objects),
        cmocka_unit_test(test_package_of_integers),
        cmocka_unit_test(test_nested_package_counts_elements),
        cmocka_unit_test(test_method),
        cmocka_unit_test(test_res_com1),
        cmocka_unit_test(test_res_virtio_mmio),
        cmocka_unit_test(test_res_pci_host_windows),
        cmocka_unit_test(test_res_errors),
        cmocka_unit_test(test_unbalanced_blocks),
        cmocka_unit_test(test_error_is_sticky_and_stops_output),
        cmocka_unit_test(test_allocation_failure_is_sticky),
        cmocka_unit_test(test_com1_example_from_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
