/* pci_cfg.c - the virtual config header of a passthrough function; see pci_cfg.h. */
#include "vfio/pci_cfg.h"

#include <string.h>

#include "vmm/util.h"

#define HEADER_END             0x40
#define PCI_CAP_ID_PM          0x01
#define PCI_PM_CTRL            4 /* PMCSR, from the capability */
#define PCI_PM_CTRL_STATE_MASK 0x3
#define PCI_ROM_ADDRESS_MASK   0xfffff800u
#define PCI_CACHE_LINE         0x0c
#define PCI_LATENCY            0x0d
#define PCI_BIST               0x0f
#define CAP_WALK_MAX           48
#define COMMAND_WRITABLE       0x0547 /* IO, MEM, MASTER, PARITY, SERR, INTX_OFF */
#define STATUS_RW1C            0xf900 /* error bits */
#define MSI_CTRL_WRITABLE      (PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE)
#define MSIX_CTRL_WRITABLE     (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)

static uint32_t dev_read(struct vfio_pci_cfg *c, unsigned off, unsigned len)
{
    uint32_t v = 0;
    if (c->ops->read(c->opaque, off, &v, len) < 0)
        return len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
    return v;
}

static void dev_write(struct vfio_pci_cfg *c, unsigned off, unsigned len, uint32_t v)
{
    c->ops->write(c->opaque, off, &v, len);
}

static unsigned msi_size(const struct vfio_pci_cfg *c)
{
    return 10 + (c->msi_64 ? 4 : 0) + (c->msi_maskable ? 10 : 0);
}

static unsigned msi_data_off(const struct vfio_pci_cfg *c)
{
    return c->msi_64 ? 0xc : 0x8;
}

static unsigned msi_mask_off(const struct vfio_pci_cfg *c)
{
    return c->msi_64 ? 0x10 : 0xc;
}

static void walk_capabilities(struct vfio_pci_cfg *c)
{
    if (!(dev_read(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
        return;
    unsigned off = dev_read(c, PCI_CAPABILITY_LIST, 1) & ~3u;
    for (unsigned n = 0; off >= HEADER_END && off < PCI_CFG_LEGACY && n < CAP_WALK_MAX; n++) {
        unsigned id = dev_read(c, off, 1);
        if (id == PCI_CAP_ID_PM && !c->pm_off) {
            c->pm_off = off;
        } else if (id == PCI_CAP_ID_MSI && !c->msi_off) {
            uint16_t ctrl = (uint16_t)dev_read(c, off + 2, 2);
            c->msi_off = off;
            c->msi_64 = ctrl & PCI_MSI_FLAGS_64BIT;
            c->msi_maskable = ctrl & PCI_MSI_FLAGS_MASKBIT;
            unsigned mmc = (ctrl & PCI_MSI_FLAGS_QMASK) >> 1;
            c->msi_max = 1u << (mmc > 5 ? 5 : mmc);
        } else if (id == PCI_CAP_ID_MSIX && !c->msix_off) {
            uint16_t ctrl = (uint16_t)dev_read(c, off + 2, 2);
            uint32_t table = dev_read(c, off + 4, 4), pba = dev_read(c, off + 8, 4);
            c->msix_off = off;
            c->msix_size = (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1u;
            c->msix_table_bar = table & 7;
            c->msix_table_offset = table & ~7u;
            c->msix_pba_bar = pba & 7;
            c->msix_pba_offset = pba & ~7u;
            if (c->msix_table_bar >= PCI_NUM_BARS || c->msix_pba_bar >= PCI_NUM_BARS)
                c->msix_off = c->msix_size = 0; /* a broken capability: no MSI-X */
        }
        off = dev_read(c, off + 1, 1) & ~3u;
    }
}

void vfio_pci_cfg_reset(struct vfio_pci_cfg *c)
{
    memcpy(c->bar_reg, c->bar_init, sizeof(c->bar_reg));
    c->rom_reg = c->rom_init;
    c->low_power = false; /* VFIO_DEVICE_RESET puts the device in D0 */
    c->command = 0;
    c->irq_line = 0;
    c->msi_ctrl = 0;
    c->msi_address = 0;
    c->msi_data = 0;
    c->msi_mask = 0;
    c->msix_ctrl = 0;
}

int vfio_pci_cfg_init(struct vfio_pci_cfg *c, const struct vfio_pci_cfg_ops *ops, void *opaque,
                      const struct vfio_pci_bar bars[PCI_NUM_BARS],
                      const uint64_t initial[PCI_NUM_BARS], char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->opaque = opaque;
    uint32_t id;
    if (ops->read(opaque, PCI_VENDOR_ID, &id, 4) < 0 || id == 0xffffffffu)
        return errf(err, errlen, "cannot read the device's config space");
    if ((dev_read(c, PCI_HEADER_TYPE, 1) & 0x7f) != 0)
        return errf(err, errlen,
                    "the device is a bridge (header type %u); only endpoints can "
                    "be passed through",
                    dev_read(c, PCI_HEADER_TYPE, 1) & 0x7f);
    memcpy(c->bars, bars, sizeof(c->bars));
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        const struct vfio_pci_bar *d = &bars[b];
        uint32_t flags = 0;
        if (d->kind == PCI_BAR_KIND_IO)
            flags = PCI_BAR_IO;
        else if (d->kind == PCI_BAR_KIND_MEM32 || d->kind == PCI_BAR_KIND_MEM64)
            flags = (d->kind == PCI_BAR_KIND_MEM64 ? PCI_BAR_MEM_64 : 0) |
                    (d->prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
        if (d->kind != PCI_BAR_NONE)
            c->bar_init[b] = (uint32_t)initial[b] | flags;
        if (d->kind == PCI_BAR_KIND_MEM64 && b + 1 < PCI_NUM_BARS)
            c->bar_init[b + 1] = (uint32_t)(initial[b] >> 32);
    }
    c->irq_pin = (uint8_t)dev_read(c, PCI_INTERRUPT_PIN, 1);
    if (c->irq_pin > 4)
        c->irq_pin = 0;
    walk_capabilities(c);
    vfio_pci_cfg_reset(c);
    return 0;
}

/* Is BAR register b the upper half of a 64-bit BAR? */
static bool bar_is_high(const struct vfio_pci_cfg *c, unsigned b)
{
    return b > 0 && c->bars[b - 1].kind == PCI_BAR_KIND_MEM64;
}

static uint32_t bar_flags(const struct vfio_pci_cfg *c, unsigned b)
{
    return c->bar_init[b] & (c->bars[b].kind == PCI_BAR_KIND_IO ? 0x3u : 0xfu);
}

/* A guest write of a whole BAR register: keep the address bits the BAR's size allows. */
static void bar_write(struct vfio_pci_cfg *c, unsigned b, uint32_t v)
{
    if (bar_is_high(c, b)) {
        uint64_t mask = ~(c->bars[b - 1].size - 1);
        c->bar_reg[b] = v & (uint32_t)(mask >> 32);
        return;
    }
    const struct vfio_pci_bar *d = &c->bars[b];
    if (d->kind == PCI_BAR_NONE || !d->size) {
        c->bar_reg[b] = 0;
        return;
    }
    uint32_t low = d->kind == PCI_BAR_KIND_IO ? PCI_BAR_IO_MASK : PCI_BAR_MEM_MASK;
    c->bar_reg[b] = (v & (uint32_t) ~(d->size - 1) & low) | bar_flags(c, b);
}

bool vfio_pci_cfg_bar_decodes(const struct vfio_pci_cfg *c, unsigned b, uint64_t *addr)
{
    if (b >= PCI_NUM_BARS || c->bars[b].kind == PCI_BAR_NONE || !c->bars[b].size)
        return false;
    bool io = c->bars[b].kind == PCI_BAR_KIND_IO;
    if (c->low_power || !(c->command & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)))
        return false;
    uint64_t a = c->bar_reg[b] & (io ? PCI_BAR_IO_MASK : PCI_BAR_MEM_MASK);
    if (c->bars[b].kind == PCI_BAR_KIND_MEM64 && b + 1 < PCI_NUM_BARS)
        a |= (uint64_t)c->bar_reg[b + 1] << 32;
    if (a == 0)
        return false;
    *addr = a;
    return true;
}

/* The guest-visible value of the config byte at off (real is the device's byte). */
static uint8_t virtual_byte(struct vfio_pci_cfg *c, unsigned off, uint8_t real)
{
    if (off >= PCI_COMMAND && off < PCI_COMMAND + 2)
        return (uint8_t)(c->command >> (8 * (off - PCI_COMMAND)));
    if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS) {
        unsigned b = (off - PCI_BASE_ADDRESS_0) / 4;
        return (uint8_t)(c->bar_reg[b] >> (8 * (off % 4)));
    }
    if (off >= PCI_ROM_ADDRESS && off < PCI_ROM_ADDRESS + 4)
        return (uint8_t)(c->rom_reg >> (8 * (off - PCI_ROM_ADDRESS))); /* 0 while hidden */
    if (off == PCI_INTERRUPT_LINE)
        return c->irq_line;
    if (off == PCI_INTERRUPT_PIN)
        return c->irq_pin;
    if (c->msi_off && off >= c->msi_off + 2 && off < c->msi_off + msi_size(c)) {
        unsigned r = off - c->msi_off;
        uint64_t v;
        unsigned base;
        if (r < 4) {
            uint16_t caps = (uint16_t)dev_read(c, c->msi_off + 2, 2) &
                            (uint16_t) ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
            v = caps | c->msi_ctrl;
            base = 2;
        } else if (r < 8) {
            v = (uint32_t)c->msi_address;
            base = 4;
        } else if (c->msi_64 && r < 0xc) {
            v = c->msi_address >> 32;
            base = 8;
        } else if (r < msi_data_off(c) + 4) {
            v = c->msi_data;
            base = msi_data_off(c);
        } else if (r < msi_mask_off(c) + 4) {
            v = c->msi_mask;
            base = msi_mask_off(c);
        } else {
            return 0; /* pending bits: nothing is pending that the guest could see */
        }
        return (uint8_t)(v >> (8 * (r - base)));
    }
    if (c->msix_off && off >= c->msix_off + 2 && off < c->msix_off + 4) {
        uint16_t real16 = (uint16_t)dev_read(c, c->msix_off + 2, 2);
        uint16_t v = (real16 & (uint16_t)~MSIX_CTRL_WRITABLE) | c->msix_ctrl;
        return (uint8_t)(v >> (8 * (off - c->msix_off - 2)));
    }
    return real;
}

uint32_t vfio_pci_cfg_read(struct vfio_pci_cfg *c, unsigned offset, unsigned len)
{
    if (len != 1 && len != 2 && len != 4)
        return 0xffffffffu;
    uint32_t real = dev_read(c, offset, len), v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)virtual_byte(c, offset + i, (uint8_t)(real >> (8 * i))) << (8 * i);
    return v;
}

/* Merge a write of len bytes at offset into the 32-bit register at base holding old. */
static uint32_t merge(uint32_t old, unsigned base, unsigned offset, unsigned len, uint32_t value)
{
    for (unsigned i = 0; i < len; i++) {
        int at = (int)(offset + i) - (int)base;
        if (at < 0 || at > 3)
            continue;
        old &= ~(0xffu << (8 * at));
        old |= ((value >> (8 * i)) & 0xffu) << (8 * at);
    }
    return old;
}

static void msi_write(struct vfio_pci_cfg *c, unsigned offset, unsigned len, uint32_t value)
{
    unsigned r = offset - c->msi_off;
    if (r < 4) {
        uint32_t ctrl = merge((uint32_t)c->msi_ctrl << 16, 0, r, len, value) >> 16;
        uint16_t v = (uint16_t)ctrl & MSI_CTRL_WRITABLE;
        /* MME may not exceed what the device offers (MMC). */
        unsigned mme = (v & PCI_MSI_FLAGS_QSIZE) >> 4;
        while (mme && (1u << mme) > c->msi_max)
            mme--;
        c->msi_ctrl = (uint16_t)((v & PCI_MSI_FLAGS_ENABLE) | (mme << 4));
    } else if (r < 8) {
        c->msi_address = (c->msi_address & ~0xffffffffULL) |
                         (merge((uint32_t)c->msi_address, 4, r, len, value) & ~3u);
    } else if (c->msi_64 && r < 0xc) {
        c->msi_address = (c->msi_address & 0xffffffffULL) |
                         (uint64_t)merge((uint32_t)(c->msi_address >> 32), 8, r, len, value) << 32;
    } else if (r < msi_data_off(c) + 4) {
        c->msi_data = (uint16_t)merge(c->msi_data, msi_data_off(c), r, len, value);
    } else if (c->msi_maskable && r < msi_mask_off(c) + 4) {
        uint32_t valid = c->msi_max >= 32 ? 0xffffffffu : (1u << c->msi_max) - 1;
        c->msi_mask = merge(c->msi_mask, msi_mask_off(c), r, len, value) & valid;
    } else {
        return;
    }
    c->ops->msi_changed(c->opaque);
}

void vfio_pci_cfg_write(struct vfio_pci_cfg *c, unsigned offset, unsigned len, uint32_t value)
{
    if ((len != 1 && len != 2 && len != 4) || offset % len || offset >= PCI_CFG_SIZE)
        return;
    if (offset < HEADER_END) {
        unsigned dword = offset & ~3u;
        if (dword == PCI_COMMAND) {
            /* Command (and status in the same dword). */
            if (offset < PCI_STATUS) {
                uint32_t cmd = merge(c->command, PCI_COMMAND, offset, len, value) & 0xffff;
                uint16_t old = c->command;
                c->command = (uint16_t)(cmd & COMMAND_WRITABLE);
                /*
                 * vfio-pci revokes its BAR mmaps while decode is off: the
                 * memslots must be gone before the device stops decoding, and
                 * may come back only once it decodes again.
                 */
                bool mem_off = (old & PCI_COMMAND_MEMORY) && !(c->command & PCI_COMMAND_MEMORY);
                if (mem_off)
                    c->ops->bars_changed(c->opaque);
                dev_write(c, PCI_COMMAND, 2, c->command);
                if (!mem_off)
                    c->ops->bars_changed(c->opaque);
            }
            if (offset + len > PCI_STATUS) {
                uint32_t st = merge(0, PCI_STATUS, offset, len, value) & STATUS_RW1C;
                if (st)
                    dev_write(c, PCI_STATUS, 2, st);
            }
        } else if (dword >= PCI_BASE_ADDRESS_0 && dword < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS) {
            unsigned b = (dword - PCI_BASE_ADDRESS_0) / 4;
            bar_write(c, b, merge(c->bar_reg[b], dword, offset, len, value));
            c->ops->bars_changed(c->opaque);
        } else if (dword == PCI_CACHE_LINE) {
            for (unsigned i = 0; i < len; i++) {
                unsigned o = offset + i;
                if (o == PCI_CACHE_LINE || o == PCI_LATENCY)
                    dev_write(c, o, 1, (value >> (8 * i)) & 0xff);
            }
        } else if (dword == PCI_ROM_ADDRESS) {
            if (c->rom_size) {
                uint32_t v = merge(c->rom_reg, dword, offset, len, value);
                c->rom_reg = (v & (uint32_t) ~(c->rom_size - 1) & PCI_ROM_ADDRESS_MASK) |
                             (v & PCI_ROM_ENABLE);
                c->ops->bars_changed(c->opaque);
            }
        } else if (dword == PCI_INTERRUPT_LINE) {
            if (offset == PCI_INTERRUPT_LINE)
                c->irq_line = (uint8_t)value;
        }
        /* Everything else in the header is read-only or hidden (ROM): dropped. */
        return;
    }
    if (c->pm_off && offset <= c->pm_off + PCI_PM_CTRL && offset + len > c->pm_off + PCI_PM_CTRL) {
        /*
         * A power state other than D0 makes vfio-pci revoke the BAR mmaps
         * too: memslots go before the device sleeps and return once it is
         * in D0 again.
         */
        unsigned shift = 8 * (c->pm_off + PCI_PM_CTRL - offset);
        bool sleep = ((value >> shift) & PCI_PM_CTRL_STATE_MASK) != 0;
        if (sleep) {
            c->low_power = true;
            c->ops->bars_changed(c->opaque);
        }
        dev_write(c, offset, len, value);
        if (!sleep) {
            c->low_power = false;
            c->ops->bars_changed(c->opaque);
        }
        return;
    }
    if (c->msi_off && offset >= c->msi_off && offset < c->msi_off + msi_size(c)) {
        if (offset >= c->msi_off + 2)
            msi_write(c, offset, len, value);
        else if (offset + len > c->msi_off + 2)
            msi_write(c, c->msi_off + 2, 2, value >> (8 * (c->msi_off + 2 - offset)));
        return;
    }
    if (c->msix_off && offset >= c->msix_off && offset < c->msix_off + 12) {
        if (offset + len > c->msix_off + 2 && offset < c->msix_off + 4) {
            uint32_t ctrl = merge((uint32_t)c->msix_ctrl << 16, c->msix_off, offset, len, value);
            c->msix_ctrl = (uint16_t)(ctrl >> 16) & MSIX_CTRL_WRITABLE;
            c->ops->msix_changed(c->opaque);
        }
        return; /* table and PBA locations are read-only */
    }
    /* Other capabilities and the extended space: vfio-pci filters what reaches the device. */
    dev_write(c, offset, len, value);
}

void vfio_pci_cfg_show_rom(struct vfio_pci_cfg *c, uint64_t size, uint64_t addr)
{
    c->rom_size = size;
    c->rom_init = (uint32_t)addr & PCI_ROM_ADDRESS_MASK;
    c->rom_reg = c->rom_init;
}

bool vfio_pci_cfg_rom_decodes(const struct vfio_pci_cfg *c, uint64_t *addr)
{
    if (!c->rom_size || c->low_power || !(c->rom_reg & PCI_ROM_ENABLE) ||
        !(c->command & PCI_COMMAND_MEMORY))
        return false;
    *addr = c->rom_reg & PCI_ROM_ADDRESS_MASK;
    return *addr != 0;
}

bool vfio_pci_cfg_msi_enabled(const struct vfio_pci_cfg *c)
{
    return c->msi_off && (c->msi_ctrl & PCI_MSI_FLAGS_ENABLE);
}

unsigned vfio_pci_cfg_msi_vectors(const struct vfio_pci_cfg *c)
{
    return 1u << ((c->msi_ctrl & PCI_MSI_FLAGS_QSIZE) >> 4);
}

bool vfio_pci_cfg_msix_enabled(const struct vfio_pci_cfg *c)
{
    return c->msix_off && (c->msix_ctrl & PCI_MSIX_FLAGS_ENABLE);
}

bool vfio_pci_cfg_msix_masked(const struct vfio_pci_cfg *c)
{
    return c->msix_ctrl & PCI_MSIX_FLAGS_MASKALL;
}
