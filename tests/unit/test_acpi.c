/*
 * Unit tests for the ACPI tables (vmm/acpi.c).
 *
 * Field offsets below are written out from the ACPI 6.5 specification (chapter 5)
 * on purpose, independently of the structs in acpi.c, so that a layout mistake
 * there shows up here.  The last tests hand the tables to the ACPICA tools
 * (iasl, acpiexec from the Debian package acpica-tools), the same code Linux uses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/acpi.h"
#include "tests/unit/aml_decode.h"
#include "vmm/aml.h"

/* ---- Spec offsets (ACPI 6.5) ---- */
#define HDR_SIGNATURE    0
#define HDR_LENGTH       4
#define HDR_REVISION     8
#define HDR_OEM_ID       10
#define HDR_OEM_TABLE_ID 16
#define HDR_SIZE         36

#define RSDP_CHECKSUM     8
#define RSDP_OEM_ID       9
#define RSDP_REVISION     15
#define RSDP_RSDT_ADDRESS 16
#define RSDP_LENGTH       20
#define RSDP_XSDT_ADDRESS 24
#define RSDP_V1_SIZE      20
#define RSDP_SIZE         36

#define FADT_FIRMWARE_CTRL   36
#define FADT_DSDT            40
#define FADT_SCI_INT         46
#define FADT_IAPC_BOOT_ARCH  109
#define FADT_FLAGS           112
#define FADT_RESET_REG       116
#define FADT_RESET_VALUE     128
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT          140
#define FADT_SLEEP_CONTROL   244
#define FADT_SLEEP_STATUS    256
#define FADT_HYPERVISOR_ID   268
#define FADT_SIZE            276

#define FADT_FLAG_PWR_BUTTON    (1u << 4)
#define FADT_FLAG_SLP_BUTTON    (1u << 5)
#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_FLAG_HW_REDUCED    (1u << 20)
#define IAPC_8042               (1u << 1)
#define IAPC_VGA_NOT_PRESENT    (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRES  (1u << 5)

#define GAS_SPACE_ID    0
#define GAS_BIT_WIDTH   1
#define GAS_BIT_OFFSET  2
#define GAS_ACCESS_SIZE 3
#define GAS_ADDRESS     4
#define GAS_SIZE        12

#define MADT_LAPIC_ADDR 36
#define MADT_FLAGS      40
#define MADT_ENTRIES    44

/* ---- Test platform ---- */
#define TEST_GPA         0xe0000ull
#define TEST_SLEEP_CTL   0x604
#define TEST_SLEEP_STS   0x605
#define TEST_RESET_PORT  0x606
#define TEST_RESET_VALUE 0x0e
#define TEST_S5_TYPE     5
#define TEST_LAPIC       0xfee00000u
#define TEST_IOAPIC      0xfec00000u
#define VIRTIO_BASE      0xd0000000u
#define VIRTIO_SIZE      0x200u
#define VIRTIO_GSI       5

#define BUF_SIZE 65536
static uint8_t buf[BUF_SIZE];

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum8(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

/* ---- Example device descriptions (what device code passes through the callback) ---- */

/* The COM1 16550 UART: what devices/uart should emit. */
static void describe_com1(struct aml *aml)
{
    size_t dev = aml_device_begin(aml, "COM1");
    aml_name_eisaid(aml, "_HID", "PNP0501");
    aml_name_integer(aml, "_UID", 1);
    struct aml_res res;
    aml_res_init(&res);
    aml_res_io(&res, 0x3f8, 0x3f8, 1, 8);
    aml_res_irq_noflags(&res, 4);
    aml_name_resource(aml, "_CRS", &res);
    aml_end(aml, dev);
}

/* A virtio-mmio transport, as Linux's virtio_mmio ACPI match ("LNRO0005") expects. */
static void describe_virtio_mmio(struct aml *aml, unsigned index, uint32_t base, uint32_t gsi)
{
    char name[5];
    snprintf(name, sizeof(name), "VR%02X", index);
    size_t dev = aml_device_begin(aml, name);
    aml_name_string(aml, "_HID", "LNRO0005");
    aml_name_integer(aml, "_UID", index);
    aml_name_integer(aml, "_CCA", 1);
    struct aml_res res;
    aml_res_init(&res);
    aml_res_memory32_fixed(&res, AML_MEM_READ_WRITE, base, VIRTIO_SIZE);
    aml_res_interrupt(&res, AML_IRQ_LEVEL, AML_IRQ_ACTIVE_HIGH, AML_IRQ_EXCLUSIVE, gsi);
    aml_name_resource(aml, "_CRS", &res);
    aml_end(aml, dev);
}

struct sample {
    int calls;
    void *seen_opaque;
};

static void sample_devices(void *opaque, struct aml *aml)
{
    struct sample *s = opaque;
    s->calls++;
    s->seen_opaque = opaque;
    describe_com1(aml);
    describe_virtio_mmio(aml, 0, VIRTIO_BASE, VIRTIO_GSI);
}

static struct acpi_config test_config(unsigned ncpus, struct sample *sample)
{
    return (struct acpi_config){
        .ncpus = ncpus,
        .lapic_addr = TEST_LAPIC,
        .ioapic_addr = TEST_IOAPIC,
        .ioapic_id = 0,
        .sleep_control_port = TEST_SLEEP_CTL,
        .sleep_status_port = TEST_SLEEP_STS,
        .s5_sleep_type = TEST_S5_TYPE,
        .reset_port = TEST_RESET_PORT,
        .reset_value = TEST_RESET_VALUE,
        .describe_devices = sample ? sample_devices : NULL,
        .opaque = sample,
    };
}

/* ---- Locating the tables the way a guest does: RSDP -> XSDT -> FADT -> DSDT ---- */

struct tables {
    uint64_t gpa;
    size_t len;
    const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;
};

/* A table header at guest address `addr`, which must lie inside the returned bytes. */
static const uint8_t *table_at(const struct tables *t, uint64_t addr, const char *sig)
{
    if (addr < t->gpa || addr - t->gpa + HDR_SIZE > t->len)
        fail_msg("%s at 0x%llx is outside the tables [0x%llx, +%zu)", sig, (unsigned long long)addr,
                 (unsigned long long)t->gpa, t->len);
    const uint8_t *p = buf + (addr - t->gpa);
    if (memcmp(p + HDR_SIGNATURE, sig, 4) != 0)
        fail_msg("expected %s at 0x%llx, found %.4s", sig, (unsigned long long)addr, p);
    if (addr - t->gpa + rd32(p + HDR_LENGTH) > t->len)
        fail_msg("%s runs past the end of the tables", sig);
    return p;
}

static struct tables build(const struct acpi_config *cfg, uint64_t gpa)
{
    struct tables t = {.gpa = gpa};
    memset(buf, 0xa5, sizeof(buf));
    t.len = acpi_build_tables(cfg, gpa, buf, sizeof(buf));
    assert_int_not_equal(t.len, 0);
    t.rsdp = buf;
    assert_memory_equal(t.rsdp, "RSD PTR ", 8);
    t.xsdt = table_at(&t, rd64(t.rsdp + RSDP_XSDT_ADDRESS), "XSDT");
    size_t entries = (rd32(t.xsdt + HDR_LENGTH) - HDR_SIZE) / 8;
    for (size_t i = 0; i < entries; i++) {
        uint64_t addr = rd64(t.xsdt + HDR_SIZE + 8 * i);
        assert_true(addr >= gpa && addr - gpa + HDR_SIZE <= t.len);
        const uint8_t *p = buf + (addr - gpa);
        if (memcmp(p, "FACP", 4) == 0)
            t.fadt = table_at(&t, addr, "FACP");
        else if (memcmp(p, "APIC", 4) == 0)
            t.madt = table_at(&t, addr, "APIC");
        else
            fail_msg("unexpected table %.4s in the XSDT", p);
    }
    assert_non_null(t.fadt);
    assert_non_null(t.madt);
    t.dsdt = table_at(&t, rd64(t.fadt + FADT_X_DSDT), "DSDT");
    return t;
}

/* Find `needle` in the DSDT's AML; returns its offset from the table start, or 0. */
static size_t dsdt_find(const struct tables *t, const void *needle, size_t n)
{
    size_t len = rd32(t->dsdt + HDR_LENGTH);
    for (size_t i = HDR_SIZE; i + n <= len; i++)
        if (memcmp(t->dsdt + i, needle, n) == 0)
            return i;
    return 0;
}

/* ---- RSDP, checksums, lengths, pointers ---- */

static void test_rsdp(void **state)
{
    (void)state;
    struct acpi_config cfg = test_config(1, NULL);
    struct tables t = build(&cfg, TEST_GPA);
    assert_int_equal(t.rsdp[RSDP_REVISION], 2);
    assert_memory_equal(t.rsdp + RSDP_OEM_ID, "MINVMM", 6);
    assert_int_equal(rd32(t.rsdp + RSDP_LENGTH), RSDP_SIZE);
    assert_int_equal(rd32(t.rsdp + RSDP_RSDT_ADDRESS), 0);
    assert_int_equal(sum8(t.rsdp, RSDP_V1_SIZE), 0);
    assert_int_equal(sum8(t.rsdp, RSDP_SIZE), 0);
    assert_int_not_equal(t.rsdp[RSDP_CHECKSUM], 0xa5); /* really written */
    assert_int_equal(rd64(t.rsdp + RSDP_XSDT_ADDRESS) % 8, 0);
}

static void check_table_common(const uint8_t *table, const char *sig, uint32_t expected_len)
{
    uint32_t len = rd32(table + HDR_LENGTH);
    if (expected_len)
        assert_int_equal(len, expected_len);
    if (sum8(table, len) != 0)
        fail_msg("%s checksum wrong (sum 0x%02x)", sig, sum8(table, len));
    assert_memory_equal(table + HDR_OEM_ID, "MINVMM", 6);
}

static size_t madt_size(unsigned ncpus)
{
    return 44 + 8 * (size_t)ncpus + 12 /* IOAPIC */ + 10 /* ISO */ + 6 /* LAPIC NMI */;
}

static void test_checksums_and_lengths(void **state)
{
    (void)state;
    const unsigned counts[] = {1, 2, 8, 255};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct sample sample = {0};
        struct acpi_config cfg = test_config(counts[i], &sample);
        struct tables t = build(&cfg, TEST_GPA);
        check_table_common(t.xsdt, "XSDT", HDR_SIZE + 2 * 8);
        check_table_common(t.fadt, "FACP", FADT_SIZE);
        check_table_common(t.madt, "APIC", (uint32_t)madt_size(counts[i]));
        check_table_common(t.dsdt, "DSDT", 0);
        /* The DSDT is last and ends exactly at the returned length. */
        assert_int_equal((size_t)(t.dsdt - buf) + rd32(t.dsdt + HDR_LENGTH), t.len);
        /* Bytes after the returned length are untouched. */
        assert_int_equal(buf[t.len], 0xa5);
        /* XSDT and FADT OEM table ids must match (ACPI 6.5 §5.2.8). */
        assert_memory_equal(t.xsdt + HDR_OEM_TABLE_ID, t.fadt + HDR_OEM_TABLE_ID, 8);
        /* Tables are 8-byte aligned at least, in the order RSDP < XSDT < FADT < MADT < DSDT. */
        assert_true(t.rsdp < t.xsdt && t.xsdt < t.fadt && t.fadt < t.madt && t.madt < t.dsdt);
        assert_int_equal((t.madt - buf) % 8, 0);
        assert_int_equal((t.dsdt - buf) % 8, 0);
    }
}

static void test_pointers_follow_gpa(void **state)
{
    (void)state;
    struct acpi_config cfg = test_config(2, NULL);
    struct tables a = build(&cfg, TEST_GPA);
    size_t xsdt_off = (size_t)(a.xsdt - buf), fadt_off = (size_t)(a.fadt - buf);
    size_t madt_off = (size_t)(a.madt - buf), dsdt_off = (size_t)(a.dsdt - buf);
    assert_int_equal(rd64(a.rsdp + RSDP_XSDT_ADDRESS), TEST_GPA + xsdt_off);
    assert_int_equal(rd64(a.xsdt + HDR_SIZE + 0), TEST_GPA + fadt_off);
    assert_int_equal(rd64(a.xsdt + HDR_SIZE + 8), TEST_GPA + madt_off);
    assert_int_equal(rd64(a.fadt + FADT_X_DSDT), TEST_GPA + dsdt_off);
    assert_int_equal(rd32(a.fadt + FADT_DSDT), TEST_GPA + dsdt_off);

    /* Same tables for another address: only the pointers (and checksums) move. */
    const uint64_t high = 0x1234560000ull; /* above 4 GiB */
    struct tables b = build(&cfg, high);
    assert_int_equal(rd64(b.rsdp + RSDP_XSDT_ADDRESS), high + xsdt_off);
    assert_int_equal(rd64(b.xsdt + HDR_SIZE + 0), high + fadt_off);
    assert_int_equal(rd64(b.xsdt + HDR_SIZE + 8), high + madt_off);
    assert_int_equal(rd64(b.fadt + FADT_X_DSDT), high + dsdt_off);
    assert_int_equal(rd32(b.fadt + FADT_DSDT), 0); /* 32-bit pointer cannot reach it */
    assert_int_equal(sum8(b.rsdp, RSDP_V1_SIZE), 0);
    assert_int_equal(sum8(b.rsdp, RSDP_SIZE), 0);
    assert_int_equal(sum8(b.xsdt, rd32(b.xsdt + HDR_LENGTH)), 0);
    assert_int_equal(sum8(b.fadt, FADT_SIZE), 0);
}

/* ---- FADT ---- */

static void check_io_gas(const uint8_t *gas, uint16_t port)
{
    assert_int_equal(gas[GAS_SPACE_ID], 1);  /* SystemIO */
    assert_int_equal(gas[GAS_BIT_WIDTH], 8); /* 8-bit register */
    assert_int_equal(gas[GAS_BIT_OFFSET], 0);
    assert_int_equal(gas[GAS_ACCESS_SIZE], 1); /* byte access */
    assert_int_equal(rd64(gas + GAS_ADDRESS), port);
}

static void test_fadt_fields(void **state)
{
    (void)state;
    struct acpi_config cfg = test_config(1, NULL);
    struct tables t = build(&cfg, TEST_GPA);
    const uint8_t *f = t.fadt;
    assert_int_equal(f[HDR_REVISION], 6);
    uint32_t flags = rd32(f + FADT_FLAGS);
    assert_true(flags & FADT_FLAG_HW_REDUCED);
    assert_true(flags & FADT_FLAG_RESET_REG_SUP);
    assert_true(flags & FADT_FLAG_PWR_BUTTON);
    assert_true(flags & FADT_FLAG_SLP_BUTTON);
    uint16_t boot = rd16(f + FADT_IAPC_BOOT_ARCH);
    assert_true(boot & IAPC_VGA_NOT_PRESENT);
    assert_true(boot & IAPC_CMOS_RTC_NOT_PRES);
    assert_false(boot & IAPC_8042);
    check_io_gas(f + FADT_RESET_REG, TEST_RESET_PORT);
    assert_int_equal(f[FADT_RESET_VALUE], TEST_RESET_VALUE);
    check_io_gas(f + FADT_SLEEP_CONTROL, TEST_SLEEP_CTL);
    check_io_gas(f + FADT_SLEEP_STATUS, TEST_SLEEP_STS);
    assert_int_equal(rd16(f + FADT_SCI_INT), 0);
    assert_int_equal(rd32(f + FADT_FIRMWARE_CTRL), 0); /* no FACS */
    assert_int_equal(rd64(f + FADT_X_FIRMWARE_CTRL), 0);
    assert_memory_equal(f + FADT_HYPERVISOR_ID, "MINIVMM", 7);
    assert_int_equal(rd32(f + FADT_DSDT), rd64(f + FADT_X_DSDT));
}

static void test_fadt_without_optional_registers(void **state)
{
    (void)state;
    static const uint8_t zero_gas[GAS_SIZE];
    struct acpi_config cfg = test_config(1, NULL);
    cfg.reset_port = 0;
    cfg.sleep_control_port = 0;
    cfg.sleep_status_port = 0;
    struct tables t = build(&cfg, TEST_GPA);
    assert_false(rd32(t.fadt + FADT_FLAGS) & FADT_FLAG_RESET_REG_SUP);
    assert_true(rd32(t.fadt + FADT_FLAGS) & FADT_FLAG_HW_REDUCED);
    assert_memory_equal(t.fadt + FADT_RESET_REG, zero_gas, GAS_SIZE);
    assert_memory_equal(t.fadt + FADT_SLEEP_CONTROL, zero_gas, GAS_SIZE);
    assert_memory_equal(t.fadt + FADT_SLEEP_STATUS, zero_gas, GAS_SIZE);
}

static void test_sleep_control_value(void **state)
{
    (void)state;
    /* What ACPICA's acpi_hw_extended_sleep() writes: ((SLP_TYP << 2) & 0x1c) | SLP_EN. */
    for (unsigned typ = 0; typ <= ACPI_SLEEP_TYPE_MAX; typ++)
        assert_int_equal(ACPI_SLEEP_CONTROL_VALUE(typ), ((typ << 2) & 0x1c) | 0x20);
    assert_int_equal(ACPI_SLEEP_CONTROL_VALUE(5), 0x34);
    assert_int_equal(ACPI_SLEEP_STATUS_WAK_STS, 0x80);
}

/* ---- MADT ---- */

static void check_madt(unsigned ncpus)
{
    struct acpi_config cfg = test_config(ncpus, NULL);
    cfg.ioapic_id = 3;
    struct tables t = build(&cfg, TEST_GPA);
    const uint8_t *m = t.madt;
    assert_int_equal(rd32(m + MADT_LAPIC_ADDR), TEST_LAPIC);
    assert_int_equal(rd32(m + MADT_FLAGS) & 1, 0); /* PCAT_COMPAT clear */
    unsigned lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
    size_t len = rd32(m + HDR_LENGTH);
    size_t off = MADT_ENTRIES;
    while (off < len) {
        const uint8_t *e = m + off;
        assert_true(e[1] >= 2 && off + e[1] <= len);
        switch (e[0]) {
        case 0: /* Processor Local APIC */
            assert_int_equal(e[1], 8);
            assert_int_equal(e[2], lapics);   /* ACPI processor UID */
            assert_int_equal(e[3], lapics);   /* APIC id */
            assert_int_equal(rd32(e + 4), 1); /* enabled */
            lapics++;
            break;
        case 1: /* I/O APIC */
            assert_int_equal(e[1], 12);
            assert_int_equal(e[2], 3);
            assert_int_equal(rd32(e + 4), TEST_IOAPIC);
            assert_int_equal(rd32(e + 8), 0); /* GSI base */
            ioapics++;
            break;
        case 2: /* Interrupt Source Override */
            assert_int_equal(e[1], 10);
            assert_int_equal(e[2], 0);          /* ISA bus */
            assert_int_equal(e[3], 0);          /* IRQ0 ... */
            assert_int_equal(rd32(e + 4), 2);   /* ... to GSI 2 */
            assert_int_equal(rd16(e + 8), 0x5); /* edge (01 << 2), active high (01) */
            overrides++;
            break;
        case 4: /* Local APIC NMI */
            assert_int_equal(e[1], 6);
            assert_int_equal(e[2], 0xff); /* all processors */
            assert_int_equal(e[5], 1);    /* LINT1 */
            nmis++;
            break;
        default:
            fail_msg("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    assert_int_equal(off, len);
    assert_int_equal(lapics, ncpus);
    assert_int_equal(ioapics, 1);
    assert_int_equal(overrides, 1);
    assert_int_equal(nmis, 1);
}

static void test_madt_cpu_counts(void **state)
{
    (void)state;
    const unsigned counts[] = {1, 2, 8, 254, ACPI_MAX_CPUS};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        check_madt(counts[i]);
}

/* ---- Invalid input and buffer sizes ---- */

static void test_invalid_configs(void **state)
{
    (void)state;
    struct acpi_config cfg = test_config(0, NULL);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);
    cfg.ncpus = ACPI_MAX_CPUS + 1;
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);
    cfg.ncpus = ACPI_MAX_CPUS;
    assert_int_not_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);

    cfg = test_config(1, NULL);
    cfg.s5_sleep_type = ACPI_SLEEP_TYPE_MAX + 1;
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);
    cfg.s5_sleep_type = ACPI_SLEEP_TYPE_MAX;
    assert_int_not_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);

    cfg = test_config(1, NULL);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA + 8, buf, sizeof(buf)), 0);
    assert_int_equal(acpi_build_tables(NULL, TEST_GPA, buf, sizeof(buf)), 0);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, NULL, sizeof(buf)), 0);
}

static void test_buffer_too_small(void **state)
{
    (void)state;
    struct sample sample = {0};
    struct acpi_config cfg = test_config(8, &sample);
    size_t need = acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf));
    assert_int_not_equal(need, 0);

    memset(buf, 0xa5, sizeof(buf));
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, need - 1), 0);
    for (size_t i = 0; i < need; i++) /* nothing written on failure */
        assert_int_equal(buf[i], 0xa5);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, 0), 0);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, 36), 0);
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, need), need);
    assert_int_equal(buf[need], 0xa5);
}

/* ---- DSDT ---- */

static void check_s5(uint8_t sleep_type, const uint8_t *encoded_type, size_t n)
{
    struct acpi_config cfg = test_config(1, NULL);
    cfg.s5_sleep_type = sleep_type;
    struct tables t = build(&cfg, TEST_GPA);
    assert_int_equal(t.dsdt[HDR_REVISION], 2);
    size_t at = dsdt_find(&t, "_S5_", 4);
    assert_int_not_equal(at, 0);
    /* Name (\_S5, Package () { type, Zero, Zero, Zero }) */
    assert_int_equal(t.dsdt[at - 2], 0x08); /* NameOp */
    assert_int_equal(t.dsdt[at - 1], '\\');
    const uint8_t *pkg = t.dsdt + at + 4;
    assert_int_equal(pkg[0], 0x12);          /* PackageOp */
    assert_int_equal(pkg[1], 1 + 1 + n + 3); /* PkgLength */
    assert_int_equal(pkg[2], 4);             /* NumElements */
    assert_memory_equal(pkg + 3, encoded_type, n);
    assert_memory_equal(pkg + 3 + n, "\0\0\0", 3);
}

static void test_dsdt_s5(void **state)
{
    (void)state;
    check_s5(0, (const uint8_t[]){0x00}, 1);
    check_s5(1, (const uint8_t[]){0x01}, 1);
    check_s5(5, (const uint8_t[]){0x0a, 0x05}, 2);
    check_s5(7, (const uint8_t[]){0x0a, 0x07}, 2);
}

static void test_dsdt_devices_inside_sb(void **state)
{
    (void)state;
    struct sample sample = {0};
    struct acpi_config cfg = test_config(1, &sample);
    struct tables t = build(&cfg, TEST_GPA);
    assert_int_equal(sample.calls, 1);
    assert_ptr_equal(sample.seen_opaque, &sample);

    size_t sb = dsdt_find(&t, "\\_SB_", 5);
    size_t com1 = dsdt_find(&t, "COM1", 4);
    size_t vr00 = dsdt_find(&t, "VR00", 4);
    assert_true(sb && com1 && vr00);
    assert_true(com1 > sb && vr00 > com1);
    assert_int_not_equal(dsdt_find(&t, "LNRO0005", 8), 0);
    /* ScopeOp and a PkgLength that runs from itself to the end of the table precede \_SB. */
    size_t table_len = rd32(t.dsdt + HDR_LENGTH);
    bool scope_found = false;
    for (size_t n = 1; n <= 4 && !scope_found; n++) {
        size_t nbytes;
        size_t pkglen = decode_pkglength(t.dsdt + sb - n, &nbytes);
        scope_found = t.dsdt[sb - n - 1] == 0x10 && nbytes == n && pkglen == table_len - (sb - n);
    }
    assert_true(scope_found);

    /* Without a callback the scope is empty. */
    struct acpi_config bare = test_config(1, NULL);
    struct tables e = build(&bare, TEST_GPA);
    size_t at = dsdt_find(&e, "\\_SB_", 5);
    assert_int_equal(e.dsdt[at - 2], 0x10);
    assert_int_equal(e.dsdt[at - 1], 6); /* PkgLength covers only itself and the name */
    assert_int_equal(at + 5, rd32(e.dsdt + HDR_LENGTH));
}

static void bad_name_device(void *opaque, struct aml *aml)
{
    (void)opaque;
    size_t dev = aml_device_begin(aml, "uart"); /* lower case: invalid */
    aml_end(aml, dev);
}

static void unclosed_device(void *opaque, struct aml *aml)
{
    (void)opaque;
    aml_device_begin(aml, "OPEN");
}

static void test_device_errors_fail_the_build(void **state)
{
    (void)state;
    struct acpi_config cfg = test_config(1, NULL);
    cfg.describe_devices = bad_name_device;
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);
    cfg.describe_devices = unclosed_device;
    assert_int_equal(acpi_build_tables(&cfg, TEST_GPA, buf, sizeof(buf)), 0);
}

/* ---- ACPICA tools: iasl and acpiexec ---- */

static char tmpdir[64];

static int tools_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/minivmm-test-acpi-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Remove tmpdir and the files the tools left in it (there are no subdirectories). */
static int tools_teardown(void **state)
{
    (void)state;
    DIR *dir = opendir(tmpdir);
    if (!dir)
        return -1;
    struct dirent *e;
    char path[sizeof(tmpdir) + 256 + 2];
    while ((e = readdir(dir))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(dir);
    return rmdir(tmpdir);
}

static void require_tool(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0)
        fail_msg("%s not found: install the Debian package acpica-tools "
                 "(apt-get install acpica-tools)",
                 tool);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Read a whole file from tmpdir into a NUL-terminated heap buffer; *len gets its size. */
static char *read_file(const char *name, size_t *len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s was not produced", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    char *data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    data[size] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)size;
    return data;
}

/* Run a shell command inside tmpdir with output captured; returns exit status and output. */
static int run_in_tmpdir(const char *cmd, char **output)
{
    char line[512];
    snprintf(line, sizeof(line), "cd '%s' && { %s; } > run.log 2>&1", tmpdir, cmd);
    int status = system(line);
    *output = read_file("run.log", NULL);
    return status;
}

/* Case-insensitive strstr() for ASCII needles. */
static bool contains_nocase(const char *text, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* Fail if ACPICA complained: any error, warning, bad checksum or invalid field. */
static void assert_clean(const char *what, const char *text)
{
    static const char *const bad[] = {"error", "warning", "incorrect", "invalid", "AE_"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (contains_nocase(text, bad[i]))
            fail_msg("%s reports \"%s\":\n%s", what, bad[i], text);
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void assert_contains(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("%s lacks \"%s\":\n%s", what, needle, text);
}

static const char *const table_files[] = {"xsdt.dat", "facp.dat", "apic.dat", "dsdt.dat"};

static struct tables dump_tables(unsigned ncpus, struct sample *sample)
{
    struct acpi_config cfg = test_config(ncpus, sample);
    struct tables t = build(&cfg, TEST_GPA);
    const uint8_t *tabs[] = {t.xsdt, t.fadt, t.madt, t.dsdt};
    for (size_t i = 0; i < 4; i++)
        write_file(table_files[i], tabs[i], rd32(tabs[i] + HDR_LENGTH));
    return t;
}

static void test_iasl_disassembles_tables(void **state)
{
    (void)state;
    require_tool("iasl");
    const unsigned ncpus = 4;
    struct sample sample = {0};
    dump_tables(ncpus, &sample);
    /* iasl 20200925 cannot read a bare RSDP from a binary file; test_rsdp covers it. */
    for (size_t i = 0; i < 4; i++) {
        char cmd[128], *out;
        snprintf(cmd, sizeof(cmd), "iasl -d %s", table_files[i]);
        int status = run_in_tmpdir(cmd, &out);
        if (status != 0)
            fail_msg("iasl -d %s failed (status %d):\n%s", table_files[i], status, out);
        assert_clean(cmd, out);
        free(out);
    }

    char *dsl = read_file("dsdt.dsl", NULL);
    assert_clean("dsdt.dsl", dsl);
    assert_contains("dsdt.dsl", dsl, "Name (\\_S5, Package (0x04)");
    assert_contains("dsdt.dsl", dsl, "Scope (\\_SB)");
    assert_contains("dsdt.dsl", dsl, "Device (COM1)");
    assert_contains("dsdt.dsl", dsl, "EisaId (\"PNP0501\")");
    assert_contains("dsdt.dsl", dsl, "IRQNoFlags ()");
    assert_contains("dsdt.dsl", dsl, "Device (VR00)");
    assert_contains("dsdt.dsl", dsl, "Name (_HID, \"LNRO0005\")");
    assert_contains("dsdt.dsl", dsl, "Memory32Fixed (ReadWrite,");
    assert_contains("dsdt.dsl", dsl, "0xD0000000,");
    assert_contains("dsdt.dsl", dsl, "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive");
    free(dsl);

    char *facp = read_file("facp.dsl", NULL);
    assert_clean("facp.dsl", facp);
    assert_contains("facp.dsl", facp, "Hardware Reduced (V5) : 1");
    assert_contains("facp.dsl", facp, "Reset Register Supported (V2) : 1");
    assert_contains("facp.dsl", facp, "VGA Not Present (V4) : 1");
    assert_contains("facp.dsl", facp, "CMOS RTC Not Present (V5) : 1");
    assert_contains("facp.dsl", facp, "Sleep Control Register : [Generic Address Structure]");
    assert_int_equal(count(facp, "Space ID : 01 [SystemIO]"), 3);
    assert_contains("facp.dsl", facp, "Address : 0000000000000604");
    assert_contains("facp.dsl", facp, "Address : 0000000000000605");
    assert_contains("facp.dsl", facp, "Address : 0000000000000606");
    free(facp);

    char *apic = read_file("apic.dsl", NULL);
    assert_clean("apic.dsl", apic);
    assert_int_equal(count(apic, "[Processor Local APIC]"), ncpus);
    assert_int_equal(count(apic, "[I/O APIC]"), 1);
    assert_int_equal(count(apic, "[Interrupt Source Override]"), 1);
    assert_contains("apic.dsl", apic, "PC-AT Compatibility : 0");
    free(apic);

    char *xsdt = read_file("xsdt.dsl", NULL);
    assert_clean("xsdt.dsl", xsdt);
    assert_int_equal(count(xsdt, "ACPI Table Address"), 2);
    free(xsdt);
}

/* Disassemble the DSDT and compile it back without optimisation: the AML must match ours. */
static void test_iasl_recompiles_dsdt_identically(void **state)
{
    (void)state;
    require_tool("iasl");
    struct sample sample = {0};
    struct tables t = dump_tables(1, &sample);
    char *out;
    int status = run_in_tmpdir("iasl -d dsdt.dat && iasl -oa -p roundtrip dsdt.dsl", &out);
    if (status != 0 || !strstr(out, "0 Errors, 0 Warnings"))
        fail_msg("iasl round trip failed (status %d):\n%s", status, out);
    free(out);
    size_t len;
    uint8_t *aml = (uint8_t *)read_file("roundtrip.aml", &len);
    size_t ours = rd32(t.dsdt + HDR_LENGTH);
    if (len != ours || memcmp(aml + HDR_SIZE, t.dsdt + HDR_SIZE, ours - HDR_SIZE) != 0) {
        size_t i = HDR_SIZE;
        while (i < len && i < ours && aml[i] == t.dsdt[i])
            i++;
        fail_msg("iasl's AML (%zu bytes) differs from ours (%zu bytes) at offset %zu", len, ours,
                 i);
    }
    free(aml);
}

/* Load our FADT and DSDT into ACPICA's acpiexec and enter S5 through the sleep registers. */
static void test_acpiexec_power_off(void **state)
{
    (void)state;
    require_tool("acpiexec");
    struct sample sample = {0};
    dump_tables(2, &sample);
    char *out;
    int status = run_in_tmpdir("timeout 60 acpiexec -b 'sleep 5; evaluate \\_SB.VR00._CRS' "
                               "facp.dat dsdt.dat",
                               &out);
    if (status != 0)
        fail_msg("acpiexec failed (status %d):\n%s", status, out);
    assert_clean("acpiexec", out);
    assert_contains("acpiexec", out, "FACP");
    assert_contains("acpiexec", out, "MINVMM"); /* our FADT was used, not acpiexec's own */
    assert_contains("acpiexec", out, "Sleep-A: 05");
    assert_contains("acpiexec", out, "HwExtendedSleep"); /* the HW-reduced sleep path */
    assert_contains("acpiexec", out, "[Buffer] Length 17");
    free(out);
}

int main(void)
{
    const struct CMUnitTest table_tests[] = {
        cmocka_unit_test(test_rsdp),
        cmocka_unit_test(test_checksums_and_lengths),
        cmocka_unit_test(test_pointers_follow_gpa),
        cmocka_unit_test(test_fadt_fields),
        cmocka_unit_test(test_fadt_without_optional_registers),
        cmocka_unit_test(test_sleep_control_value),
        cmocka_unit_test(test_madt_cpu_counts),
        cmocka_unit_test(test_invalid_configs),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_dsdt_s5),
        cmocka_unit_test(test_dsdt_devices_inside_sb),
        cmocka_unit_test(test_device_errors_fail_the_build),
    };
    const struct CMUnitTest tool_tests[] = {
        cmocka_unit_test(test_iasl_disassembles_tables),
        cmocka_unit_test(test_iasl_recompiles_dsdt_identically),
        cmocka_unit_test(test_acpiexec_power_off),
    };
    int failed = cmocka_run_group_tests_name("acpi tables", table_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("acpica tools", tool_tests, tools_setup, tools_teardown);
    return failed;
}
