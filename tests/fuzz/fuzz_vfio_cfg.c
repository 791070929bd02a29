/*
 * fuzz_vfio_cfg.c - libFuzzer target for the virtual config header of a
 * passthrough function (vfio/pci_cfg.c): vfio_pci_cfg_init's capability walk
 * over a device config space the input supplies (a hostile or broken device),
 * then guest config reads and writes of any width and offset (BAR sizing and
 * moves, the command register, the ROM BAR, power management, MSI and MSI-X
 * control) and resets.  The device is a fake whose config space is an array
 * (what vfio/vfio_pci.c reaches with pread/pwrite on the VFIO region).
 *
 * Input: 6 BAR declarations {u8 kind (bits 0-1) | prefetchable (bit 2),
 * u8 log2 size}, 6 x u32 initial address (aligned to the size by the
 * harness, as the PCI host does), u8 ROM (bit 0: shown, size 2 KiB << bits
 * 1-4) and u32 ROM address, u8 number of ops, 8-byte ops {u8 kind, u8 len,
 * u16 offset, u32 value} (kind % 4: read, write, write, reset), then the
 * device's config space (4 KiB, zeroes past the input).
 *
 * Checks: the emulation never reaches outside the device's 4 KiB; a write
 * never reaches the device's BARs, ROM BAR or other read-only header fields,
 * nor the MSI/MSI-X registers it emulates; a decoding BAR (or ROM) sits at
 * a non-zero address aligned to its size; BAR sizing reads back the size
 * mask and the type bits; MSI never enables more vectors than the device
 * offers, nor masks bits beyond them; a reset turns decode off.
 */
#include <stdint.h>
#include <string.h>

#include "devices/pci.h"
#include "vfio/pci_cfg.h"
#include "tests/fuzz/common/input.h"

#define MAX_OPS 128

struct fake_dev {
    uint8_t cfg[PCI_CFG_SIZE];
    const struct vfio_pci_cfg *c;
    bool pm_write; /* the write in progress goes to the power management register */
};

static int dev_read(void *opaque, unsigned off, void *buf, unsigned len)
{
    struct fake_dev *d = opaque;
    FUZZ_CHECK(len <= 4 && off < PCI_CFG_SIZE && len <= PCI_CFG_SIZE - off,
               "device read of %u bytes at %#x", len, off);
    memcpy(buf, d->cfg + off, len);
    return 0;
}

/* Header bytes the guest may write through to the device: command, status, cache line, latency. */
static bool header_writable(unsigned off)
{
    return (off >= PCI_COMMAND && off < PCI_COMMAND + 4) || off == 0x0c || off == 0x0d;
}

static int dev_write(void *opaque, unsigned off, const void *buf, unsigned len)
{
    struct fake_dev *d = opaque;
    const struct vfio_pci_cfg *c = d->c;
    FUZZ_CHECK(len <= 4 && off < PCI_CFG_SIZE && len <= PCI_CFG_SIZE - off,
               "device write of %u bytes at %#x", len, off);
    for (unsigned i = off; i < off + len && c; i++) {
        FUZZ_CHECK(i >= 0x40 || header_writable(i), "a write reached header byte %#x", i);
        if (d->pm_write)
            continue; /* a device whose capabilities overlap gets the PM write whole */
        FUZZ_CHECK(!c->msi_off || i < c->msi_off + 2 || i >= c->msi_off + 10,
                   "a write reached MSI register byte %#x", i);
        FUZZ_CHECK(!c->msix_off || i < c->msix_off + 2 || i >= c->msix_off + 4,
                   "a write reached MSI-X control byte %#x", i);
    }
    memcpy(d->cfg + off, buf, len);
    return 0;
}

static void changed(void *opaque)
{
    (void)opaque;
}

static const struct vfio_pci_cfg_ops ops = {dev_read, dev_write, changed, changed, changed};

static void check_state(const struct vfio_pci_cfg *c)
{
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        uint64_t addr;
        if (!vfio_pci_cfg_bar_decodes(c, b, &addr))
            continue;
        FUZZ_CHECK(addr != 0 && c->bars[b].size && addr % c->bars[b].size == 0,
                   "BAR %u decodes at %#llx, size %#llx", b, (unsigned long long)addr,
                   (unsigned long long)c->bars[b].size);
    }
    uint64_t rom;
    if (vfio_pci_cfg_rom_decodes(c, &rom))
        FUZZ_CHECK(rom && rom % c->rom_size == 0, "ROM decodes at %#llx", (unsigned long long)rom);
    if (c->msi_off) {
        FUZZ_CHECK(vfio_pci_cfg_msi_vectors(c) <= c->msi_max, "%u MSI vectors of %u",
                   vfio_pci_cfg_msi_vectors(c), c->msi_max);
        FUZZ_CHECK(c->msi_max >= 32 || (c->msi_mask >> c->msi_max) == 0, "MSI mask %#x of %u",
                   c->msi_mask, c->msi_max);
    }
}

/* Sizing a whole 32-bit BAR register reads back ~(size - 1) and the type bits. */
static void check_sizing(struct vfio_pci_cfg *c, unsigned b)
{
    const struct vfio_pci_bar *bar = &c->bars[b];
    if (b > 0 && c->bars[b - 1].kind == PCI_BAR_KIND_MEM64)
        return;
    uint32_t got = vfio_pci_cfg_read(c, PCI_BASE_ADDRESS_0 + 4 * b, 4);
    if (bar->kind == PCI_BAR_NONE || !bar->size) {
        FUZZ_CHECK(got == 0, "unused BAR %u reads %#x after sizing", b, got);
        return;
    }
    bool io = bar->kind == PCI_BAR_KIND_IO;
    uint32_t mask = (uint32_t) ~(bar->size - 1) & (io ? ~0x3u : ~0xfu);
    uint32_t type =
        io ? 1 : (bar->kind == PCI_BAR_KIND_MEM64 ? 4 : 0) | (bar->prefetchable ? 8 : 0);
    FUZZ_CHECK(got == (mask | type), "BAR %u reads %#x after sizing, expected %#x", b, got,
               mask | type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fake_dev dev;
    static struct vfio_pci_cfg c;
    struct fuzz_in in = fuzz_in_make(data, size);
    struct vfio_pci_bar bars[PCI_NUM_BARS];
    uint64_t initial[PCI_NUM_BARS];
    uint8_t ops_buf[8 * MAX_OPS];
    char err[256];

    memset(bars, 0, sizeof(bars));
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        uint8_t k = in_u8(&in), lg = in_u8(&in);
        bars[b].kind = (enum pci_bar_kind)(k & 3);
        bars[b].prefetchable = k & 4;
        if (bars[b].kind == PCI_BAR_KIND_IO)
            bars[b].size = 1ULL << (2 + lg % 7); /* 4 .. 256 bytes */
        else if (bars[b].kind != PCI_BAR_NONE)
            bars[b].size = 1ULL << (4 + lg % (bars[b].kind == PCI_BAR_KIND_MEM64 ? 36 : 28));
        /* A 64-bit BAR takes two registers; the last one cannot start one. */
        if (bars[b].kind == PCI_BAR_KIND_MEM64 && b == PCI_NUM_BARS - 1)
            bars[b] = (struct vfio_pci_bar){PCI_BAR_KIND_MEM32, false, 1ULL << 12};
        if (b > 0 && bars[b - 1].kind == PCI_BAR_KIND_MEM64)
            bars[b] = (struct vfio_pci_bar){PCI_BAR_NONE, false, 0};
    }
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        uint64_t a = (uint64_t)in_u32(&in) << (bars[b].kind == PCI_BAR_KIND_MEM64 ? 12 : 0);
        initial[b] = bars[b].size ? a & ~(bars[b].size - 1) : 0;
        if (bars[b].kind == PCI_BAR_KIND_IO)
            initial[b] &= 0xffff;
        else if (bars[b].kind == PCI_BAR_KIND_MEM32)
            initial[b] &= 0xffffffffULL;
    }
    uint8_t rom = in_u8(&in);
    uint32_t rom_addr = in_u32(&in);
    unsigned nops = in_u8(&in) % (MAX_OPS + 1);
    memset(ops_buf, 0, sizeof(ops_buf));
    in_bytes(&in, ops_buf, 8 * nops);
    memset(&dev, 0, sizeof(dev));
    in_bytes(&in, dev.cfg, sizeof(dev.cfg));

    if (vfio_pci_cfg_init(&c, &ops, &dev, bars, initial, err, sizeof(err)) < 0)
        return 0;
    dev.c = &c;
    if (rom & 1) {
        uint64_t rs = 2048ULL << ((rom >> 1) % 15);
        vfio_pci_cfg_show_rom(&c, rs, rom_addr & ~(rs - 1));
    }
    check_state(&c);
    for (unsigned i = 0; i < nops; i++) {
        const uint8_t *op = ops_buf + 8 * i;
        unsigned len = 1u << (op[1] % 3);
        unsigned off = (unsigned)(op[2] | op[3] << 8) % PCI_CFG_SIZE / len * len;
        uint32_t value =
            (uint32_t)op[4] | (uint32_t)op[5] << 8 | (uint32_t)op[6] << 16 | (uint32_t)op[7] << 24;
        switch (op[0] % 4) {
        case 0:
            vfio_pci_cfg_read(&c, off, len);
            break;
        case 3:
            vfio_pci_cfg_reset(&c);
            FUZZ_CHECK(c.command == 0, "command %#x after reset", c.command);
            break;
        default:
            dev.pm_write = c.pm_off && off <= c.pm_off + 4 && off + len > c.pm_off + 4;
            vfio_pci_cfg_write(&c, off, len, value);
            dev.pm_write = false;
            unsigned dword = off & ~3u;
            if (len == 4 && value == 0xffffffffu && dword >= PCI_BASE_ADDRESS_0 &&
                dword < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS)
                check_sizing(&c, (dword - PCI_BASE_ADDRESS_0) / 4);
            break;
        }
        check_state(&c);
    }
    return 0;
}
