/*
 * pci_cfg.h - the virtual config header of a passthrough function: what the
 * guest sees when it reads the config space of a VFIO device, and what its
 * writes do.
 *
 * minivmm emulates: the BARs (sizing, 32/64-bit, prefetchable, relocation),
 * the decode bits of the command register (the guest-physical side of
 * decoding is minivmm's: memslots and traps), the expansion ROM BAR (hidden,
 * reading 0, unless a ROM size is given: then sized, placed and enabled like
 * a BAR), the interrupt line, and the MSI and MSI-X capabilities (enable,
 * masks, MSI address/data), which become KVM routes instead of reaching the
 * device.  Everything else is read from the device; writes go to the device
 * only where it is safe: the command register (bus master, INTx disable,
 * decode, SERR, parity), the status register's write-1-to-clear bits, cache
 * line size and latency timer, capabilities other than MSI/MSI-X and the
 * extended space (which vfio-pci filters itself).  Turning memory decode off
 * or the power state away from D0 reports bars_changed *before* the device
 * stops decoding (vfio-pci revokes BAR mmaps then), and BARs decode nowhere
 * while the device is not in D0.  Writes to read-only
 * header fields are dropped.
 *
 * Pure: the device is reached only through the backend ops (pread/pwrite of
 * the VFIO config region in minivmm, a fake in the unit tests), and effects
 * are reported through the event ops.  Not thread-safe: the PCI host
 * serialises config accesses (pci.h), and events run inside them.
 */
#ifndef MINIVMM_VFIO_PCI_CFG_H
#define MINIVMM_VFIO_PCI_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci.h"

#define VFIO_MSI_MAX_VECTORS 32

struct vfio_pci_cfg_ops {
    /* Read/write len bytes of the device's real config space at offset; 0 or -1. */
    int (*read)(void *opaque, unsigned offset, void *buf, unsigned len);
    int (*write)(void *opaque, unsigned offset, const void *buf, unsigned len);
    /* After a write that may have changed where BARs decode (command or a BAR). */
    void (*bars_changed)(void *opaque);
    /* After a write to the MSI capability (enable, MME, address, data, mask). */
    void (*msi_changed)(void *opaque);
    /* After a write to MSI-X message control (enable, function mask). */
    void (*msix_changed)(void *opaque);
};

struct vfio_pci_bar {
    enum pci_bar_kind kind; /* PCI_BAR_NONE for an unused BAR (or the high half of a 64-bit one) */
    bool prefetchable;
    uint64_t size;
};

struct vfio_pci_cfg {
    const struct vfio_pci_cfg_ops *ops;
    void *opaque;
    struct vfio_pci_bar bars[PCI_NUM_BARS];
    uint32_t bar_reg[PCI_NUM_BARS];  /* the guest-visible BAR registers */
    uint32_t bar_init[PCI_NUM_BARS]; /* their values at reset (the initial assignment) */
    uint16_t command;                /* guest-visible command register */
    uint64_t rom_size;               /* 0: the expansion ROM is hidden (reads 0) */
    uint32_t rom_reg, rom_init;      /* guest-visible ROM BAR, and its value at reset */
    uint8_t irq_line;
    uint8_t irq_pin; /* from the device: 0 none, 1-4 INTA-INTD */

    /* Power management capability (pm_off 0: none); low_power: not in D0 */
    unsigned pm_off;
    bool low_power;

    /* MSI capability (msi_off 0: none) */
    unsigned msi_off;
    bool msi_64, msi_maskable;
    unsigned msi_max; /* vectors the device offers (1 << MMC) */
    uint16_t msi_ctrl;
    uint64_t msi_address;
    uint16_t msi_data;
    uint32_t msi_mask;

    /* MSI-X capability (msix_off 0: none) */
    unsigned msix_off;
    uint16_t msix_ctrl; /* guest-visible enable and function-mask bits */
    unsigned msix_size; /* table entries */
    unsigned msix_table_bar, msix_pba_bar;
    uint32_t msix_table_offset, msix_pba_offset;
};

#define PCI_MSI_FLAGS_ENABLE        0x0001
#define PCI_MSI_FLAGS_QMASK         0x000e /* multiple message capable */
#define PCI_MSI_FLAGS_QSIZE         0x0070 /* multiple message enable */
#define PCI_MSI_FLAGS_64BIT         0x0080
#define PCI_MSI_FLAGS_MASKBIT       0x0100
#define PCI_MSIX_FLAGS_ENABLE       0x8000
#define PCI_MSIX_FLAGS_MASKALL      0x4000
#define PCI_MSIX_FLAGS_QSIZE        0x07ff
#define PCI_MSIX_ENTRY_SIZE         16
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1

/*
 * Read the device's header through ops and set up the virtual one: bars[]
 * gives each BAR's kind and size (from the VFIO region info and the real
 * BAR's type bits), initial[] the address the PCI host assigned.  Walks the
 * capability list to find MSI and MSI-X.  Returns 0, or -1 with err (the
 * device's config space cannot be read, or it is not a type-0 header).
 */
int vfio_pci_cfg_init(struct vfio_pci_cfg *c, const struct vfio_pci_cfg_ops *ops, void *opaque,
                      const struct vfio_pci_bar bars[PCI_NUM_BARS],
                      const uint64_t initial[PCI_NUM_BARS], char *err, size_t errlen);

/* Show the expansion ROM: size bytes (a power of two), initially at addr, disabled.  After init. */
void vfio_pci_cfg_show_rom(struct vfio_pci_cfg *c, uint64_t size, uint64_t addr);

/* Where the ROM decodes now: true and its address if it is enabled and memory decode is on. */
bool vfio_pci_cfg_rom_decodes(const struct vfio_pci_cfg *c, uint64_t *addr);

/* Back to the state after init (system reset): BARs at their initial addresses, decode off. */
void vfio_pci_cfg_reset(struct vfio_pci_cfg *c);

uint32_t vfio_pci_cfg_read(struct vfio_pci_cfg *c, unsigned offset, unsigned len);
void vfio_pci_cfg_write(struct vfio_pci_cfg *c, unsigned offset, unsigned len, uint32_t value);

/* Where BAR bar decodes now: true and its address if decode is on for its kind. */
bool vfio_pci_cfg_bar_decodes(const struct vfio_pci_cfg *c, unsigned bar, uint64_t *addr);

/* MSI state as the guest programmed it. */
bool vfio_pci_cfg_msi_enabled(const struct vfio_pci_cfg *c);
unsigned vfio_pci_cfg_msi_vectors(const struct vfio_pci_cfg *c); /* enabled vectors (1 << MME) */
bool vfio_pci_cfg_msix_enabled(const struct vfio_pci_cfg *c);
bool vfio_pci_cfg_msix_masked(const struct vfio_pci_cfg *c); /* function mask */

#endif
