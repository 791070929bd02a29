/*
 * Unit tests for the passthrough side that needs no VFIO: the virtual config
 * header (vfio/pci_cfg.c) against a fake device, PCI address and --vfio
 * option parsing, and the sysfs checks (vfio/sysfs.c) against a fake tree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio/pci_cfg.h"
#include "vfio/sysfs.h"
#include "vfio/vfio.h"
#include "vmm/util.h"

/* ---- a fake device: real config space, with a record of what reached it ---- */

#define MSI_CAP  0x50
#define MSIX_CAP 0x70
#define PM_CAP   0x40

struct fake {
    uint8_t cfg[PCI_CFG_SIZE];
    unsigned writes;
    unsigned last_off;
    uint32_t last_val;
    unsigned bars_changed, msi_changed, msix_changed;
    unsigned writes_at_bars_changed; /* device writes seen when bars_changed was last called */
};

static void put(struct fake *f, unsigned off, uint32_t v, unsigned len)
{
    memcpy(f->cfg + off, &v, len);
}

static int f_read(void *opaque, unsigned off, void *buf, unsigned len)
{
    struct fake *f = opaque;
    memcpy(buf, f->cfg + off, len);
    return 0;
}

static int f_write(void *opaque, unsigned off, const void *buf, unsigned len)
{
    struct fake *f = opaque;
    f->writes++;
    f->last_off = off;
    f->last_val = 0;
    memcpy(&f->last_val, buf, len);
    memcpy(f->cfg + off, buf, len);
    return 0;
}

static void f_bars(void *opaque)
{
    struct fake *f = opaque;
    f->bars_changed++;
    f->writes_at_bars_changed = f->writes;
}
static void f_msi(void *opaque)
{
    ((struct fake *)opaque)->msi_changed++;
}
static void f_msix(void *opaque)
{
    ((struct fake *)opaque)->msix_changed++;
}

static const struct vfio_pci_cfg_ops ops = {f_read, f_write, f_bars, f_msi, f_msix};

struct fx {
    struct fake dev;
    struct vfio_pci_cfg cfg;
};

/*
 * The fake: 1234:11e8, BAR0 32-bit 1 MiB, BAR1 I/O 256, BAR2-3 64-bit
 * prefetchable 16 KiB; capabilities PM (0x40) -> MSI 64-bit maskable, 4
 * vectors (0x50) -> MSI-X with 8 entries, table in BAR2 at 0x2000, PBA at
 * 0x3000 (0x70).  The real BARs hold host addresses the guest must never see.
 */
static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    struct fake *f = &x->dev;
    put(f, PCI_VENDOR_ID, 0x11e81234, 4);
    put(f, PCI_COMMAND, 0, 2);
    put(f, PCI_STATUS, PCI_STATUS_CAP_LIST, 2);
    put(f, PCI_BASE_ADDRESS_0, 0xfe800000, 4);
    put(f, PCI_BASE_ADDRESS_0 + 4, 0xc001, 4);
    put(f, PCI_BASE_ADDRESS_0 + 8, 0xfd00000c, 4);
    put(f, PCI_BASE_ADDRESS_0 + 12, 0x1, 4);
    put(f, PCI_ROM_ADDRESS, 0xfe000000, 4);
    put(f, PCI_CAPABILITY_LIST, PM_CAP, 1);
    put(f, PCI_INTERRUPT_PIN, 1, 1);
    put(f, PM_CAP, 0x01 | MSI_CAP << 8, 2);
    put(f, MSI_CAP, PCI_CAP_ID_MSI | MSIX_CAP << 8, 2);
    put(f, MSI_CAP + 2, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1), 2);
    put(f, MSIX_CAP, PCI_CAP_ID_MSIX, 2);
    put(f, MSIX_CAP + 2, 7, 2);
    put(f, MSIX_CAP + 4, 0x2000 | 2, 4);
    put(f, MSIX_CAP + 8, 0x3000 | 2, 4);
    struct vfio_pci_bar bars[PCI_NUM_BARS] = {
        [0] = {PCI_BAR_KIND_MEM32, false, 1 << 20},
        [1] = {PCI_BAR_KIND_IO, false, 256},
        [2] = {PCI_BAR_KIND_MEM64, true, 16 << 10},
    };
    uint64_t initial[PCI_NUM_BARS] = {0xc0000000, 0xc000, 0xc0100000};
    char err[128];
    if (vfio_pci_cfg_init(&x->cfg, &ops, f, bars, initial, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    f->writes = 0;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static uint32_t rd(struct fx *x, unsigned off, unsigned len)
{
    return vfio_pci_cfg_read(&x->cfg, off, len);
}

static void wr(struct fx *x, unsigned off, unsigned len, uint32_t v)
{
    vfio_pci_cfg_write(&x->cfg, off, len, v);
}

static void test_identity_and_initial_bars(void **state)
{
    struct fx *x = *state;
    assert_int_equal(rd(x, PCI_VENDOR_ID, 4), 0x11e81234);
    /* The guest sees the addresses minivmm assigned, with the device's type bits. */
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0, 4), 0xc0000000);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 4, 4), 0xc001);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 8, 4), 0xc010000c);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 12, 4), 0);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 16, 4), 0);
    assert_int_equal(rd(x, PCI_INTERRUPT_PIN, 1), 1);
    assert_int_equal(x->cfg.msi_off, MSI_CAP);
    assert_int_equal(x->cfg.msix_off, MSIX_CAP);
    assert_int_equal(x->cfg.msix_size, 8);
    assert_int_equal(x->cfg.msix_table_bar, 2);
    assert_int_equal(x->cfg.msix_table_offset, 0x2000);
    assert_int_equal(x->cfg.msi_max, 4);
}

static void test_bar_sizing_32_and_io(void **state)
{
    struct fx *x = *state;
    wr(x, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0, 4), 0xfff00000);
    wr(x, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffff);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 4, 4), 0xffffff01);
    /* Unused BARs size to 0. */
    wr(x, PCI_BASE_ADDRESS_0 + 16, 4, 0xffffffff);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 16, 4), 0);
    /* Relocation keeps only the bits the size allows. */
    wr(x, PCI_BASE_ADDRESS_0, 4, 0xd0012345);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0, 4), 0xd0000000);
    /* None of this reached the device, whose BARs keep the host's addresses. */
    assert_int_equal(x->dev.writes, 0);
    uint32_t real;
    memcpy(&real, x->dev.cfg + PCI_BASE_ADDRESS_0, 4);
    assert_int_equal(real, 0xfe800000);
    assert_true(x->dev.bars_changed >= 4);
}

static void test_bar_sizing_64(void **state)
{
    struct fx *x = *state;
    wr(x, PCI_BASE_ADDRESS_0 + 8, 4, 0xffffffff);
    wr(x, PCI_BASE_ADDRESS_0 + 12, 4, 0xffffffff);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 8, 4), 0xffffc00c);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0 + 12, 4), 0xffffffff);
    /* Move it above 4 GiB. */
    wr(x, PCI_BASE_ADDRESS_0 + 8, 4, 0x00004000);
    wr(x, PCI_BASE_ADDRESS_0 + 12, 4, 0x10);
    uint64_t a;
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 2, &a)); /* memory decode is off */
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 2, &a));
    assert_int_equal(a, 0x1000004000ULL);
    /* The high half is never a BAR of its own. */
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 3, &a));
}

static void test_command_register(void **state)
{
    struct fx *x = *state;
    uint64_t a;
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 1, &a));
    unsigned before = x->dev.bars_changed;
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | 0x8000);
    assert_int_equal(x->dev.bars_changed, before + 1);
    /* Bus master reaches the device; bits that are not writable do not. */
    assert_int_equal(x->dev.last_off, PCI_COMMAND);
    assert_int_equal(x->dev.last_val, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    assert_int_equal(rd(x, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    assert_int_equal(a, 0xc0000000);
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 1, &a)); /* I/O decode is still off */
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_IO);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 1, &a));
    assert_int_equal(a, 0xc000);
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    /* A dword write to command+status: status error bits are write-1-to-clear on the device. */
    put(&x->dev, PCI_STATUS, PCI_STATUS_CAP_LIST | 0x2000, 2);
    wr(x, PCI_COMMAND, 4, 0x2000u << 16 | PCI_COMMAND_MEMORY);
    assert_int_equal(x->dev.last_off, PCI_STATUS);
    assert_int_equal(x->dev.last_val, 0x2000);
    /* Reset puts decode off and the BARs back where minivmm put them. */
    wr(x, PCI_BASE_ADDRESS_0, 4, 0xd0000000);
    vfio_pci_cfg_reset(&x->cfg);
    assert_int_equal(rd(x, PCI_COMMAND, 2), 0);
    assert_int_equal(rd(x, PCI_BASE_ADDRESS_0, 4), 0xc0000000);
}

/* vfio-pci revokes BAR mmaps when decode goes off or the device leaves D0: memslots go first. */
static void test_memslots_go_before_decode_stops(void **state)
{
    struct fx *x = *state;
    uint64_t a;
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    /* Turning decode on: the device decodes first, then the memslots come. */
    assert_int_equal(x->dev.writes_at_bars_changed, x->dev.writes);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    unsigned writes = x->dev.writes;
    wr(x, PCI_COMMAND, 2, 0);
    assert_int_equal(x->dev.writes, writes + 1);
    assert_int_equal(x->dev.writes_at_bars_changed, writes); /* before the write */
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));

    /* D3hot through the power-management capability (PMCSR at cap + 4). */
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    writes = x->dev.writes;
    wr(x, PM_CAP + 4, 2, 3);
    assert_int_equal(x->dev.writes, writes + 1);
    assert_int_equal(x->dev.last_off, PM_CAP + 4); /* the state change reaches the device */
    assert_int_equal(x->dev.writes_at_bars_changed, writes);
    assert_false(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    /* Back to D0: written first, then the BARs decode again. */
    wr(x, PM_CAP + 4, 2, 0);
    assert_int_equal(x->dev.writes_at_bars_changed, writes + 2);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
    /* A reset (VFIO_DEVICE_RESET) leaves the device in D0. */
    wr(x, PM_CAP + 4, 2, 3);
    vfio_pci_cfg_reset(&x->cfg);
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert_true(vfio_pci_cfg_bar_decodes(&x->cfg, 0, &a));
}

static void test_rom_hidden_and_readonly_header(void **state)
{
    struct fx *x = *state;
    assert_int_equal(rd(x, PCI_ROM_ADDRESS, 4), 0);
    wr(x, PCI_ROM_ADDRESS, 4, 0xffffffff);
    assert_int_equal(rd(x, PCI_ROM_ADDRESS, 4), 0);
    wr(x, PCI_VENDOR_ID, 4, 0);
    wr(x, PCI_CAPABILITY_LIST, 1, 0);
    wr(x, PCI_INTERRUPT_PIN, 1, 3);
    assert_int_equal(x->dev.writes, 0);
    assert_int_equal(rd(x, PCI_VENDOR_ID, 4), 0x11e81234);
    assert_int_equal(rd(x, PCI_INTERRUPT_PIN, 1), 1);
    /* The interrupt line is the guest's own scratch register. */
    wr(x, PCI_INTERRUPT_LINE, 1, 11);
    assert_int_equal(rd(x, PCI_INTERRUPT_LINE, 1), 11);
    assert_int_equal(x->dev.writes, 0);
    /* Cache line size and other capabilities pass through (vfio-pci filters them). */
    wr(x, 0x0c, 1, 0x10);
    assert_int_equal(x->dev.last_off, 0x0c);
    wr(x, PM_CAP + 4, 2, 0x3);
    assert_int_equal(x->dev.last_off, PM_CAP + 4);
    wr(x, 0x100, 4, 0x1);
    assert_int_equal(x->dev.last_off, 0x100);
}

static void test_rom_shown_when_asked(void **state)
{
    struct fx *x = *state;
    vfio_pci_cfg_show_rom(&x->cfg, 64 << 10, 0xc0200000);
    uint64_t a;
    assert_int_equal(rd(x, PCI_ROM_ADDRESS, 4), 0xc0200000); /* disabled: bit 0 clear */
    /* Sizing: the guest writes all ones (but the enable bit) and reads the size mask. */
    wr(x, PCI_ROM_ADDRESS, 4, 0xfffff800);
    assert_int_equal(rd(x, PCI_ROM_ADDRESS, 4), 0xffff0000);
    wr(x, PCI_ROM_ADDRESS, 4, 0xc0210000 | PCI_ROM_ENABLE);
    assert_false(vfio_pci_cfg_rom_decodes(&x->cfg, &a)); /* memory decode is off */
    wr(x, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert_true(vfio_pci_cfg_rom_decodes(&x->cfg, &a));
    assert_int_equal(a, 0xc0210000);
    wr(x, PCI_ROM_ADDRESS, 4, 0xc0210000);
    assert_false(vfio_pci_cfg_rom_decodes(&x->cfg, &a)); /* ROM enable off */
    /* The device's own ROM BAR (the host's address) is never written. */
    uint32_t real;
    memcpy(&real, x->dev.cfg + PCI_ROM_ADDRESS, 4);
    assert_int_equal(real, 0xfe000000);
    vfio_pci_cfg_reset(&x->cfg);
    assert_int_equal(rd(x, PCI_ROM_ADDRESS, 4), 0xc0200000);
}

static void test_msi_virtualised(void **state)
{
    struct fx *x = *state;
    /* The capability list is walked from the device: PM -> MSI -> MSI-X. */
    assert_int_equal(rd(x, PCI_CAPABILITY_LIST, 1), PM_CAP);
    assert_int_equal(rd(x, PM_CAP + 1, 1), MSI_CAP);
    assert_int_equal(rd(x, MSI_CAP + 1, 1), MSIX_CAP);
    wr(x, MSI_CAP + 4, 4, 0xfee01004);
    wr(x, MSI_CAP + 8, 4, 0);
    wr(x, MSI_CAP + 0xc, 2, 0x4021);
    wr(x, MSI_CAP + 0x10, 4, 0xffffffff);
    /* MME 3 (8 vectors) is more than MMC 2 (4) offers: clamped. */
    wr(x, MSI_CAP + 2, 2, PCI_MSI_FLAGS_ENABLE | (3 << 4));
    assert_true(vfio_pci_cfg_msi_enabled(&x->cfg));
    assert_int_equal(vfio_pci_cfg_msi_vectors(&x->cfg), 4);
    assert_int_equal(x->cfg.msi_address, 0xfee01004);
    assert_int_equal(x->cfg.msi_data, 0x4021);
    assert_int_equal(x->cfg.msi_mask, 0xf); /* only 4 vectors can be masked */
    assert_int_equal(x->dev.msi_changed, 5);
    /* The guest reads back what it wrote, with the device's capability bits. */
    assert_int_equal(rd(x, MSI_CAP + 2, 2), PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1) |
                                                PCI_MSI_FLAGS_ENABLE | (2 << 4));
    assert_int_equal(rd(x, MSI_CAP + 4, 4), 0xfee01004);
    assert_int_equal(rd(x, MSI_CAP + 0xc, 2), 0x4021);
    /* Nothing of it reached the device: vfio-pci programs the real capability. */
    assert_int_equal(x->dev.writes, 0);
    /* A dword write over id/next/control changes only control. */
    wr(x, MSI_CAP, 4, 0);
    assert_false(vfio_pci_cfg_msi_enabled(&x->cfg));
    assert_int_equal(rd(x, MSI_CAP, 1), PCI_CAP_ID_MSI);
}

static void test_msix_virtualised(void **state)
{
    struct fx *x = *state;
    assert_false(vfio_pci_cfg_msix_enabled(&x->cfg));
    wr(x, MSIX_CAP + 2, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 0x7ff);
    assert_true(vfio_pci_cfg_msix_enabled(&x->cfg));
    assert_true(vfio_pci_cfg_msix_masked(&x->cfg));
    assert_int_equal(x->dev.msix_changed, 1);
    /* The table size stays the device's. */
    assert_int_equal(rd(x, MSIX_CAP + 2, 2), PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 7);
    wr(x, MSIX_CAP, 4, (uint32_t)PCI_MSIX_FLAGS_ENABLE << 16);
    assert_false(vfio_pci_cfg_msix_masked(&x->cfg));
    assert_int_equal(x->dev.msix_changed, 2);
    /* Table and PBA locations are read-only. */
    wr(x, MSIX_CAP + 4, 4, 0);
    assert_int_equal(rd(x, MSIX_CAP + 4, 4), 0x2002);
    assert_int_equal(x->dev.writes, 0);
}

static void test_broken_capability_list_terminates(void **state)
{
    (void)state;
    struct fake f = {0};
    put(&f, PCI_VENDOR_ID, 0x11e81234, 4);
    put(&f, PCI_STATUS, PCI_STATUS_CAP_LIST, 2);
    put(&f, PCI_CAPABILITY_LIST, 0x40, 1);
    put(&f, 0x40, 0x01 | 0x40 << 8, 2); /* points at itself */
    struct vfio_pci_cfg c;
    struct vfio_pci_bar bars[PCI_NUM_BARS] = {0};
    uint64_t initial[PCI_NUM_BARS] = {0};
    char err[128];
    assert_int_equal(vfio_pci_cfg_init(&c, &ops, &f, bars, initial, err, sizeof(err)), 0);
    assert_int_equal(c.msi_off, 0);
    assert_int_equal(c.msix_off, 0);
    /* A bridge is refused. */
    put(&f, PCI_HEADER_TYPE, 1, 1);
    assert_int_equal(vfio_pci_cfg_init(&c, &ops, &f, bars, initial, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bridge"));
}

/* ---- PCI addresses and --vfio ---- */

static void test_parse_bdf(void **state)
{
    (void)state;
    char out[VFIO_BDF_LEN], err[256];
    assert_int_equal(vfio_parse_bdf("0000:01:00.0", out, err, sizeof(err)), 0);
    assert_string_equal(out, "0000:01:00.0");
    assert_int_equal(vfio_parse_bdf("01:00.0", out, err, sizeof(err)), 0);
    assert_string_equal(out, "0000:01:00.0");
    assert_int_equal(vfio_parse_bdf("00:1F.7", out, err, sizeof(err)), 0);
    assert_string_equal(out, "0000:00:1f.7");
    assert_int_equal(vfio_parse_bdf("abcd:ff:1f.3", out, err, sizeof(err)), 0);
    assert_string_equal(out, "abcd:ff:1f.3");
    const char *bad[] = {"",         "0",         "01:00",    "01:00.8", "01:20.0",
                         "100:00.0", "0:0:0:0.0", "01:00.0x", "g1:00.0", "00000:01:00.0",
                         "01.00.0",  ":01:00.0"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (vfio_parse_bdf(bad[i], out, err, sizeof(err)) == 0)
            fail_msg("'%s' parsed as %s", bad[i], out);
        assert_non_null(strstr(err, "not a PCI address"));
    }
}

static void test_parse_option(void **state)
{
    (void)state;
    struct vfio_options o;
    char err[256];
    assert_int_equal(vfio_parse_option("01:00.0", 2, &o, err, sizeof(err)), 0);
    assert_string_equal(o.id, "vfio2");
    assert_string_equal(o.bdf, "0000:01:00.0");
    assert_int_equal(vfio_parse_option("0000:00:03.0,id=edu", 0, &o, err, sizeof(err)), 0);
    assert_string_equal(o.id, "edu");
    assert_false(o.rom);
    assert_int_equal(vfio_parse_option("00:03.0,rom=on", 0, &o, err, sizeof(err)), 0);
    assert_true(o.rom);
    assert_int_equal(vfio_parse_option("00:03.0,rom=off", 0, &o, err, sizeof(err)), 0);
    assert_false(o.rom);
    assert_int_equal(vfio_parse_option("00:03.0,rom=yes", 0, &o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown option 'rom=yes' (the options are id=NAME, rom=on|off "
                                "and iommu=type1|iommufd|auto)"));
    /* iommu=: auto unless given. */
    assert_int_equal(vfio_parse_option("00:03.0", 0, &o, err, sizeof(err)), 0);
    assert_int_equal(o.iommu, VFIO_IOMMU_AUTO);
    assert_int_equal(vfio_parse_option("00:03.0,iommu=iommufd", 0, &o, err, sizeof(err)), 0);
    assert_int_equal(o.iommu, VFIO_IOMMU_IOMMUFD);
    assert_int_equal(vfio_parse_option("00:03.0,iommu=type1,id=x", 0, &o, err, sizeof(err)), 0);
    assert_int_equal(o.iommu, VFIO_IOMMU_TYPE1);
    assert_string_equal(o.id, "x");
    assert_int_equal(vfio_parse_option("00:03.0,iommu=auto", 0, &o, err, sizeof(err)), 0);
    assert_int_equal(o.iommu, VFIO_IOMMU_AUTO);
    assert_int_equal(vfio_parse_option("00:03.0,iommu=vfio", 0, &o, err, sizeof(err)), -1);
    assert_string_equal(err, "--vfio 00:03.0,iommu=vfio: iommu= takes type1, iommufd or auto, "
                             "not 'vfio'");
    assert_int_equal(vfio_parse_option("00:03.0,foo=1", 0, &o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown option"));
    assert_int_equal(vfio_parse_option("00:03.0,id=", 0, &o, err, sizeof(err)), -1);
    assert_int_equal(vfio_parse_option("00:03.0,id=a b", 0, &o, err, sizeof(err)), -1);
    assert_int_equal(vfio_parse_option("", 0, &o, err, sizeof(err)), -1);
}

/* ---- sysfs checks against a fake tree ---- */

static char root[64];

static void mk(const char *fmt, ...)
{
    char path[256], cmd[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, path);
    assert_int_equal(system(cmd), 0);
}

static void ln(const char *target, const char *name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    unlink(path);
    assert_int_equal(symlink(target, path), 0);
}

/* A device in group g, bound to drv (NULL: no driver). */
static void fake_device(const char *bdf, int g, const char *drv)
{
    char p[256], t[256];
    mk("bus/pci/devices/%s", bdf);
    mk("kernel/iommu_groups/%d/devices", g);
    if (drv) {
        mk("bus/pci/drivers/%s", drv);
        snprintf(p, sizeof(p), "bus/pci/devices/%s/driver", bdf);
        snprintf(t, sizeof(t), "../../../../bus/pci/drivers/%s", drv);
        ln(t, p);
    }
    snprintf(p, sizeof(p), "bus/pci/devices/%s/iommu_group", bdf);
    snprintf(t, sizeof(t), "../../../../kernel/iommu_groups/%d", g);
    ln(t, p);
    snprintf(p, sizeof(p), "kernel/iommu_groups/%d/devices/%s", g, bdf);
    snprintf(t, sizeof(t), "../../../../bus/pci/devices/%s", bdf);
    ln(t, p);
}

static int sysfs_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/minivmm-test-sysfs-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int sysfs_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd);
}

static void test_sysfs_checks(void **state)
{
    (void)state;
    char err[1024];
    int g = -1;
    fake_device("0000:00:03.0", 3, "vfio-pci");
    assert_int_equal(vfio_sysfs_check(root, "0000:00:03.0", &g, err, sizeof(err)), 0);
    assert_int_equal(g, 3);

    /* Missing device. */
    assert_int_equal(vfio_sysfs_check(root, "0000:00:09.0", &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no PCI device 0000:00:09.0"));
    assert_non_null(strstr(err, "lspci -D"));

    /* Bound to another driver: the message names it and gives the rebind commands. */
    fake_device("0000:00:04.0", 4, "e1000e");
    assert_int_equal(vfio_sysfs_check(root, "0000:00:04.0", &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bound to e1000e, not vfio-pci"));
    assert_non_null(strstr(err, "echo 0000:00:04.0 > /sys/bus/pci/devices/0000:00:04.0/driver/"
                                "unbind"));
    assert_non_null(strstr(err, "echo vfio-pci > /sys/bus/pci/devices/0000:00:04.0/"
                                "driver_override"));
    assert_null(strchr(err, '\n'));

    /* Bound to nothing. */
    fake_device("0000:00:05.0", 5, NULL);
    assert_int_equal(vfio_sysfs_check(root, "0000:00:05.0", &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bound to no driver"));

    /* A group that also holds a device with a foreign driver is not viable. */
    fake_device("0000:00:06.0", 6, "vfio-pci");
    fake_device("0000:00:06.1", 6, "snd_hda_intel");
    assert_int_equal(vfio_sysfs_check(root, "0000:00:06.0", &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "IOMMU group 6 is not viable"));
    assert_non_null(strstr(err, "0000:00:06.1, bound to snd_hda_intel"));
    /* ... and is viable once that device has no driver (or vfio-pci, or pci-stub). */
    fake_device("0000:00:06.1", 6, "pci-stub");
    assert_int_equal(vfio_sysfs_check(root, "0000:00:06.0", &g, err, sizeof(err)), 0);
    char p[256];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:00:06.1/driver", root);
    unlink(p);
    assert_int_equal(vfio_sysfs_check(root, "0000:00:06.0", &g, err, sizeof(err)), 0);
    assert_int_equal(g, 6);

    /* No IOMMU group: the IOMMU is off. */
    mk("bus/pci/devices/0000:00:07.0");
    mk("bus/pci/drivers/vfio-pci");
    ln("../../../../bus/pci/drivers/vfio-pci", "bus/pci/devices/0000:00:07.0/driver");
    assert_int_equal(vfio_sysfs_check(root, "0000:00:07.0", &g, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "intel_iommu=on"));
}

/* ---- which IOMMU backend: iommu= choices, and auto on a fake sysfs and /dev ---- */

/* A VFIO cdev for bdf: in sysfs (vfio-dev/NAME) and, with dev, as dev/vfio/devices/NAME. */
static void fake_cdev(const char *bdf, const char *name, bool dev)
{
    mk("sys/bus/pci/devices/%s/vfio-dev/%s", bdf, name);
    if (dev)
        mk("dev/vfio/devices/%s", name);
}

static char why_buf[256];

static enum vfio_iommu_kind choose(struct vfio_options *o, unsigned n, const char **why, int *rc,
                                   char *err, size_t errlen)
{
    char sys[128], dev[128];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(dev, sizeof(dev), "%s/dev", root);
    enum vfio_iommu_kind k = VFIO_IOMMU_AUTO;
    why_buf[0] = '\0';
    *rc = vfio_choose_iommu(o, n, sys, dev, &k, why_buf, sizeof(why_buf), err, errlen);
    *why = why_buf;
    return k;
}

static void test_choose_iommu(void **state)
{
    (void)state;
    char err[512] = "";
    const char *why = "";
    int rc;
    struct vfio_options o[2];
    assert_int_equal(vfio_parse_option("00:03.0", 0, &o[0], err, sizeof(err)), 0);
    assert_int_equal(vfio_parse_option("00:04.0", 1, &o[1], err, sizeof(err)), 0);

    /* A host without /dev/iommu (the Debian kernels): type1. */
    mk("sys/bus/pci/devices/0000:00:03.0");
    mk("sys/bus/pci/devices/0000:00:04.0");
    mk("dev/vfio");
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_TYPE1);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(why, "the host has no /tmp/"));
    assert_non_null(strstr(why, "/dev/iommu"));

    /* /dev/iommu, but devices without cdevs (no CONFIG_VFIO_DEVICE_CDEV): type1. */
    mk("dev/iommu");
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_TYPE1);
    assert_non_null(strstr(why, "0000:00:03.0 has no VFIO cdev"));
    /* (Access rights are checked too, but the tests run as root, who may open anything.) */
    /* One of the two has one; one in sysfs only (no /dev node) does not count. */
    fake_cdev("0000:00:03.0", "vfio0", true);
    fake_cdev("0000:00:04.0", "vfio1", false);
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_TYPE1);
    /* Both: iommufd. */
    fake_cdev("0000:00:04.0", "vfio1", true);
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_IOMMUFD);
    assert_non_null(strstr(why, "every device a VFIO cdev"));

    /* An explicit choice wins over auto, for every device. */
    o[1].iommu = VFIO_IOMMU_TYPE1;
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_TYPE1);
    assert_string_equal(why, "asked for");
    /* Two explicit choices must agree: one address space for all devices. */
    o[0].iommu = VFIO_IOMMU_IOMMUFD;
    choose(o, 2, &why, &rc, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_string_equal(err, "--vfio: 0000:00:03.0 asks for iommu=iommufd and 0000:00:04.0 for "
                             "iommu=type1, but the devices of a VM share one IOMMU backend "
                             "(memory is mapped once for all); give them the same iommu=");
    o[1].iommu = VFIO_IOMMU_IOMMUFD;
    assert_int_equal(choose(o, 2, &why, &rc, err, sizeof(err)), VFIO_IOMMU_IOMMUFD);
    assert_int_equal(rc, 0);
    /* iommu=iommufd is taken as asked even where the host lacks it: opening it says why. */
    char path[256];
    snprintf(path, sizeof(path), "%s/dev/iommu", root);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(choose(o, 1, &why, &rc, err, sizeof(err)), VFIO_IOMMU_IOMMUFD);
    o[0].iommu = VFIO_IOMMU_AUTO;
    assert_int_equal(choose(o, 1, &why, &rc, err, sizeof(err)), VFIO_IOMMU_TYPE1);
}

static void test_sysfs_cdev(void **state)
{
    (void)state;
    char name[32] = "";
    char sys[128];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    mk("sys/bus/pci/devices/0000:00:03.0");
    assert_int_equal(vfio_sysfs_cdev(sys, "0000:00:03.0", name, sizeof(name)), -1);
    fake_cdev("0000:00:03.0", "vfio12", false);
    assert_int_equal(vfio_sysfs_cdev(sys, "0000:00:03.0", name, sizeof(name)), 0);
    assert_string_equal(name, "vfio12");
    /* A name that does not fit is not cut short. */
    assert_int_equal(vfio_sysfs_cdev(sys, "0000:00:03.0", name, 6), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_initial_bars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing_32_and_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing_64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memslots_go_before_decode_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rom_hidden_and_readonly_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rom_shown_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msi_virtualised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_virtualised, setup, teardown),
        cmocka_unit_test(test_broken_capability_list_terminates),
        cmocka_unit_test(test_parse_bdf),
        cmocka_unit_test(test_parse_option),
        cmocka_unit_test_setup_teardown(test_sysfs_checks, sysfs_setup, sysfs_teardown),
        cmocka_unit_test_setup_teardown(test_choose_iommu, sysfs_setup, sysfs_teardown),
        cmocka_unit_test_setup_teardown(test_sysfs_cdev, sysfs_setup, sysfs_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
