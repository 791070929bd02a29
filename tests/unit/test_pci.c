/*
 * Unit tests for the PCI host (devices/pci.c): ECAM and conf1 decoding, the
 * host bridge, initial BAR assignment, BAR windows dispatch, INTx swizzling,
 * and its ACPI description (MCFG, _CRS, _PRT) as iasl disassembles it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/host.h"
#include "devices/pci.h"
#include "mm/memmap.h"
#include "vmm/acpi.h"
#include "vmm/layout.h"
#include "vmm/util.h"

/* A fake function: 256 bytes of config space it records writes to, and a BAR it answers. */
struct fake_fn {
    struct pci_function fn;
    uint8_t cfg[PCI_CFG_SIZE];
    unsigned writes;
    unsigned last_off, last_len;
    uint32_t last_val;
    uint64_t bar_off;
    unsigned bar_reads, bar_writes;
};

static uint32_t fake_cfg_read(void *opaque, unsigned offset, unsigned len)
{
    struct fake_fn *f = opaque;
    uint32_t v = 0;
    memcpy(&v, f->cfg + offset, len);
    return v;
}

static void fake_cfg_write(void *opaque, unsigned offset, unsigned len, uint32_t value)
{
    struct fake_fn *f = opaque;
    f->writes++;
    f->last_off = offset;
    f->last_len = len;
    f->last_val = value;
    memcpy(f->cfg + offset, &value, len);
}

static void fake_bar_read(void *opaque, unsigned bar, uint64_t offset, void *data, unsigned len)
{
    struct fake_fn *f = opaque;
    (void)bar;
    f->bar_reads++;
    f->bar_off = offset;
    memset(data, 0x5a, len);
}

static void fake_bar_write(void *opaque, unsigned bar, uint64_t offset, const void *data,
                           unsigned len)
{
    struct fake_fn *f = opaque;
    (void)bar;
    (void)data;
    (void)len;
    f->bar_writes++;
    f->bar_off = offset;
}

static const struct pci_function_ops fake_ops = {
    .cfg_read = fake_cfg_read,
    .cfg_write = fake_cfg_write,
    .bar_read = fake_bar_read,
    .bar_write = fake_bar_write,
};

struct fixture {
    struct bus pio, mmio;
    struct mm_map mem;
    struct dev_host host;
    struct pci_host pci;
    struct fake_fn fn;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char err[256];
    bus_init(&fx->pio, "pio");
    bus_init(&fx->mmio, "mmio");
    mm_map_init(&fx->mem);
    if (mm_map_setup_ram(&fx->mem, 64 * MiB, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    fx->host =
        (struct dev_host){.pio = &fx->pio, .mmio = &fx->mmio, .mem = &fx->mem, .phys_bits = 40};
    if (pci_host_init(&fx->pci, &fx->host, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    fx->fn.fn = (struct pci_function){.name = "fake", .ops = &fake_ops, .opaque = &fx->fn};
    uint32_t id = 0x11e81234;
    memcpy(fx->fn.cfg, &id, 4);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    pci_host_destroy(&fx->pci);
    bus_destroy(&fx->pio);
    bus_destroy(&fx->mmio);
    mm_map_destroy(&fx->mem);
    free(fx);
    return 0;
}

static void add_fake(struct fixture *fx, const struct pci_bar_decl *bars, uint64_t *assigned)
{
    char err[256];
    struct pci_bar_decl none[PCI_NUM_REGIONS] = {0};
    uint64_t dummy[PCI_NUM_REGIONS];
    if (pci_add_function(&fx->pci, &fx->fn.fn, bars ? bars : none, assigned ? assigned : dummy, err,
                         sizeof(err)) < 0)
        fail_msg("%s", err);
}

static uint32_t ecam_read(struct fixture *fx, unsigned dev, unsigned reg, unsigned len)
{
    uint32_t v = 0;
    bus_access(&fx->mmio, LAYOUT_PCI_ECAM_START + ((uint64_t)dev << 15) + reg, &v, len, false);
    return v;
}

static void conf1_select(struct fixture *fx, unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
    uint32_t a = 0x80000000u | bus << 16 | dev << 11 | fn << 8 | reg;
    bus_access(&fx->pio, 0xcf8, &a, 4, true);
}

static void test_host_bridge_at_00_0(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(ecam_read(fx, 0, PCI_VENDOR_ID, 2), PCI_HOST_VENDOR_ID);
    assert_int_equal(ecam_read(fx, 0, PCI_DEVICE_ID, 2), PCI_HOST_DEVICE_ID);
    assert_int_equal(ecam_read(fx, 0, PCI_CLASS_DEVICE, 2), PCI_CLASS_BRIDGE_HOST);
    assert_int_equal(ecam_read(fx, 0, PCI_HEADER_TYPE, 1), 0);
    /* No function at slot 1 yet: all ones, as for an empty slot on real hardware. */
    assert_int_equal(ecam_read(fx, 1, PCI_VENDOR_ID, 4), 0xffffffffu);
}

static void test_ecam_reaches_function(void **state)
{
    struct fixture *fx = *state;
    add_fake(fx, NULL, NULL);
    assert_int_equal(fx->fn.fn.slot, 1);
    assert_int_equal(ecam_read(fx, 1, 0, 4), 0x11e81234);
    assert_int_equal(ecam_read(fx, 1, 2, 2), 0x11e8);
    /* Functions 1-7 of the slot do not exist. */
    uint32_t v = 0;
    bus_access(&fx->mmio, LAYOUT_PCI_ECAM_START + (1 << 15) + (3 << 12), &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    /* Extended config space (offset >= 256) is reachable through ECAM. */
    uint32_t w = 0xabcd;
    bus_access(&fx->mmio, LAYOUT_PCI_ECAM_START + (1 << 15) + 0x104, &w, 4, true);
    assert_int_equal(fx->fn.last_off, 0x104);
    assert_int_equal(fx->fn.last_val, 0xabcd);
    /* Misaligned accesses are dropped. */
    unsigned writes = fx->fn.writes;
    bus_access(&fx->mmio, LAYOUT_PCI_ECAM_START + (1 << 15) + 0x41, &w, 2, true);
    assert_int_equal(fx->fn.writes, writes);
}

static void test_conf1(void **state)
{
    struct fixture *fx = *state;
    add_fake(fx, NULL, NULL);
    /* Linux's probe: write 0x80000000 to 0xCF8 and read it back. */
    uint32_t a = 0x80000000u, back = 0;
    bus_access(&fx->pio, 0xcf8, &a, 4, true);
    bus_access(&fx->pio, 0xcf8, &back, 4, false);
    assert_int_equal(back, 0x80000000u);
    /* A byte write to 0xCFB (Linux writes 0x01 there first) leaves the address alone. */
    uint8_t one = 1;
    bus_access(&fx->pio, 0xcfb, &one, 1, true);
    bus_access(&fx->pio, 0xcf8, &back, 4, false);
    assert_int_equal(back, 0x80000000u);

    conf1_select(fx, 0, 1, 0, 0);
    uint32_t v = 0;
    bus_access(&fx->pio, 0xcfc, &v, 4, false);
    assert_int_equal(v, 0x11e81234);
    uint16_t d = 0;
    bus_access(&fx->pio, 0xcfe, &d, 2, false); /* the upper lanes of the dword */
    assert_int_equal(d, 0x11e8);
    /* Writes reach the selected register at the port's byte lane. */
    conf1_select(fx, 0, 1, 0, 0x3c);
    uint8_t line = 11;
    bus_access(&fx->pio, 0xcfc, &line, 1, true);
    assert_int_equal(fx->fn.last_off, 0x3c);
    assert_int_equal(fx->fn.last_len, 1);
    /* Without the enable bit nothing is reached. */
    a = (1 << 11);
    bus_access(&fx->pio, 0xcf8, &a, 4, true);
    bus_access(&fx->pio, 0xcfc, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    /* Bus 1 does not exist. */
    conf1_select(fx, 1, 0, 0, 0);
    bus_access(&fx->pio, 0xcfc, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
}

static void test_bar_assignment(void **state)
{
    struct fixture *fx = *state;
    struct pci_bar_decl bars[PCI_NUM_REGIONS] = {
        [0] = {PCI_BAR_KIND_MEM32, 1 * MiB, false},
        [1] = {PCI_BAR_KIND_IO, 256, false},
        [2] = {PCI_BAR_KIND_MEM64, 16 * KiB, true},
        [4] = {PCI_BAR_KIND_MEM32, 256, false}, /* small: gets a whole page */
    };
    uint64_t at[PCI_NUM_REGIONS];
    add_fake(fx, bars, at);
    assert_int_equal(at[0], LAYOUT_PCI_MMIO_START);
    assert_int_equal(at[0] % MiB, 0);
    assert_true(at[1] >= LAYOUT_PCI_IO_START && at[1] < LAYOUT_PCI_IO_END);
    assert_int_equal(at[1] % 256, 0);
    assert_int_equal(at[2] % (16 * KiB), 0);
    assert_true(at[2] >= LAYOUT_PCI_MMIO_START && at[2] < LAYOUT_PCI_MMIO_END);
    assert_int_equal(at[3], 0);
    assert_int_equal(at[4] % 4096, 0);
    assert_false(ranges_overlap(at[0], MiB, at[2], 16 * KiB));
    assert_false(ranges_overlap(at[2], 16 * KiB, at[4], 4096));

    /* A 64-bit BAR larger than the 32-bit window goes above 4 GiB, above all memory. */
    struct fake_fn big = {.fn = {.name = "big", .ops = &fake_ops}};
    big.fn.opaque = &big;
    struct pci_bar_decl huge[PCI_NUM_REGIONS] = {[0] = {PCI_BAR_KIND_MEM64, 4 * GiB, true}};
    char err[256];
    assert_int_equal(pci_add_function(&fx->pci, &big.fn, huge, at, err, sizeof(err)), 0);
    assert_true(at[0] >= LAYOUT_PCI_HOLE_END);
    assert_int_equal(at[0] % (4 * GiB), 0);
    /* A 32-bit BAR that cannot fit is refused with a message. */
    struct fake_fn bad = {.fn = {.name = "bad", .ops = &fake_ops}};
    struct pci_bar_decl toobig[PCI_NUM_REGIONS] = {[0] = {PCI_BAR_KIND_MEM32, 1 * GiB, false}};
    assert_int_equal(pci_add_function(&fx->pci, &bad.fn, toobig, at, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "does not fit"));
}

static void test_window_dispatch_follows_bar_updates(void **state)
{
    struct fixture *fx = *state;
    struct pci_bar_decl bars[PCI_NUM_REGIONS] = {
        [0] = {PCI_BAR_KIND_MEM32, 0x1000, false},
        [1] = {PCI_BAR_KIND_IO, 0x100, false},
    };
    add_fake(fx, bars, NULL);
    uint64_t a = LAYOUT_PCI_MMIO_START + 0x100000;
    uint32_t v = 0;
    /* Nothing decodes there yet: all ones, the function is not called. */
    bus_access(&fx->mmio, a + 8, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    assert_int_equal(fx->fn.bar_reads, 0);
    pci_bar_update(&fx->pci, &fx->fn.fn, 0, a, 0x1000);
    bus_access(&fx->mmio, a + 8, &v, 4, false);
    assert_int_equal(v, 0x5a5a5a5a);
    assert_int_equal(fx->fn.bar_off, 8);
    /* Moved: the old address is dead, the new one answers. */
    pci_bar_update(&fx->pci, &fx->fn.fn, 0, a + 0x10000, 0x1000);
    bus_access(&fx->mmio, a + 8, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    bus_access(&fx->mmio, a + 0x10000 + 0x10, &v, 4, true);
    assert_int_equal(fx->fn.bar_writes, 1);
    assert_int_equal(fx->fn.bar_off, 0x10);
    /* An access running past the BAR's end is not dispatched. */
    bus_access(&fx->mmio, a + 0x10000 + 0xffe, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    /* I/O BARs live in the I/O window (their kind comes from the declaration). */
    pci_bar_update(&fx->pci, &fx->fn.fn, 1, LAYOUT_PCI_IO_START, 0x100);
    uint8_t b = 0;
    bus_access(&fx->pio, LAYOUT_PCI_IO_START + 4, &b, 1, false);
    assert_int_equal(b, 0x5a);
    /* An I/O BAR given a memory-window address is not reached through memory. */
    unsigned reads = fx->fn.bar_reads;
    pci_bar_update(&fx->pci, &fx->fn.fn, 1, a + 0x20000, 0x100);
    bus_access(&fx->mmio, a + 0x20000, &v, 4, false);
    assert_int_equal(v, 0xffffffffu);
    assert_int_equal(fx->fn.bar_reads, reads);
    assert_true(pci_host_in_window(&fx->pci, false, a, 0x1000));
    assert_false(pci_host_in_window(&fx->pci, false, 0x1000, 0x1000)); /* RAM */
    assert_true(pci_host_in_window(&fx->pci, true, LAYOUT_PCI_IO_START, 0x100));
}

static void test_intx_swizzle(void **state)
{
    (void)state;
    assert_int_equal(pci_intx_gsi(0, 1), PCI_INTX_GSI_BASE);
    assert_int_equal(pci_intx_gsi(1, 1), PCI_INTX_GSI_BASE + 1);
    assert_int_equal(pci_intx_gsi(3, 2), PCI_INTX_GSI_BASE + 0);
    assert_int_equal(pci_intx_gsi(2, 4), PCI_INTX_GSI_BASE + 1);
    for (unsigned s = 0; s < PCI_SLOTS; s++)
        for (unsigned p = 1; p <= 4; p++) {
            unsigned g = pci_intx_gsi(s, p);
            assert_true(g >= PCI_INTX_GSI_BASE && g < PCI_INTX_GSI_BASE + 4);
            assert_true(g < LAYOUT_IOAPIC_PINS);
        }
}

/* ---- ACPI: what iasl makes of the tables with a PCI host ---- */

static void describe(void *opaque, struct aml *aml)
{
    pci_host_describe_acpi(opaque, aml);
}

static int sh(const char *dir, const char *cmd, char *out, size_t len)
{
    char line[512];
    snprintf(line, sizeof(line), "cd %s && { %s; } > run.log 2>&1", dir, cmd);
    int rc = system(line);
    char path[128];
    snprintf(path, sizeof(path), "%s/run.log", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    return rc;
}

static char *slurp(const char *dir, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s was not produced", path);
    char *buf = calloc(1, 1 << 20);
    fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static void dump(const char *dir, const char *name, const uint8_t *table)
{
    uint32_t len;
    memcpy(&len, table + 4, 4);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(table, 1, len, f), len);
    fclose(f);
}

static const uint8_t *find_table(const uint8_t *buf, size_t len, const char *sig)
{
    for (size_t off = 0; off + 4 <= len; off += 16)
        if (memcmp(buf + off, sig, 4) == 0)
            return buf + off;
    return NULL;
}

static void test_acpi_tables_disassemble(void **state)
{
    struct fixture *fx = *state;
    if (system("command -v iasl >/dev/null 2>&1") != 0)
        fail_msg("iasl not found: install the Debian package acpica-tools");
    char dir[] = "/tmp/minivmm-test-pci-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static uint8_t buf[64 * 1024];
    struct acpi_config cfg = {
        .ncpus = 2,
        .lapic_addr = 0xfee00000,
        .ioapic_addr = 0xfec00000,
        .mcfg_base = fx->pci.ecam_base,
        .mcfg_bus_end = 0,
        .describe_devices = describe,
        .opaque = &fx->pci,
    };
    size_t len = acpi_build_tables(&cfg, LAYOUT_ACPI_START, buf, sizeof(buf));
    assert_true(len > 0);
    const uint8_t *mcfg = find_table(buf, len, "MCFG"), *dsdt = find_table(buf, len, "DSDT"),
                  *xsdt = find_table(buf, len, "XSDT");
    assert_non_null(mcfg);
    assert_non_null(dsdt);
    assert_non_null(xsdt);
    dump(dir, "mcfg.dat", mcfg);
    dump(dir, "dsdt.dat", dsdt);
    dump(dir, "xsdt.dat", xsdt);
    char out[8192];
    int rc = sh(dir, "iasl -d mcfg.dat dsdt.dat xsdt.dat", out, sizeof(out));
    if (rc != 0 || strstr(out, "rror") || strstr(out, "arning"))
        fail_msg("iasl -d failed (%d):\n%s", rc, out);

    char *m = slurp(dir, "mcfg.dsl");
    assert_non_null(strstr(m, "Base Address : 00000000E0000000"));
    assert_non_null(strstr(m, "Start Bus Number : 00"));
    assert_non_null(strstr(m, "End Bus Number : 00"));
    free(m);
    char *x = slurp(dir, "xsdt.dsl");
    size_t entries = 0;
    for (const char *p = x; (p = strstr(p, "ACPI Table Address")); p++)
        entries++;
    assert_int_equal(entries, 3);
    free(x);

    char *d = slurp(dir, "dsdt.dsl");
    assert_non_null(strstr(d, "Device (PCI0)"));
    assert_non_null(strstr(d, "EisaId (\"PNP0A08\")"));
    assert_non_null(strstr(d, "EisaId (\"PNP0A03\")"));
    assert_non_null(strstr(d, "WordBusNumber (ResourceProducer"));
    assert_non_null(strstr(d, "0xC000,             // Range Minimum")); /* the I/O window */
    assert_non_null(strstr(d, "0xC0000000,         // Range Minimum"));
    assert_non_null(strstr(d, "0xDFFFFFFF,         // Range Maximum"));
    assert_non_null(strstr(d, "QWordMemory (ResourceProducer"));
    assert_non_null(strstr(d, "Name (_PRT, Package (0x80)"));
    /* Slot 1, INTA -> GSI 21 (0x15): { 0x0001FFFF, Zero, Zero, 0x15 } */
    assert_non_null(strstr(d, "0x0001FFFF"));
    assert_non_null(strstr(d, "0x15"));
    assert_non_null(strstr(d, "Device (PRES)"));
    assert_non_null(strstr(d, "EisaId (\"PNP0C02\")"));
    assert_non_null(strstr(d, "0xE0000000,         // Address Base"));
    assert_non_null(strstr(d, "0x00100000,         // Address Length"));
    free(d);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host_bridge_at_00_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecam_reaches_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_assignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_dispatch_follows_bar_updates, setup, teardown),
        cmocka_unit_test(test_intx_swizzle),
        cmocka_unit_test_setup_teardown(test_acpi_tables_disassemble, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
