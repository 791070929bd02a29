/*
 * pci.h - the PCI host: one PCI Express root bus (bus 0) with a host bridge
 * at 00:00.0, reached through ECAM (an MMIO window described by the MCFG
 * table) and through the type-1 mechanism on ports 0xCF8/0xCFC; plus the
 * address windows in which functions' BARs live.
 *
 * Order of calls (main thread):
 *   1. pci_host_init() once, after every device-memory region (virtio-mem)
 *      has been placed: it claims ECAM, conf1 and the BAR windows on the
 *      buses, and places the 64-bit window above everything in the memory map.
 *   2. pci_add_function() for each function (a passthrough device): it gets
 *      a slot on bus 0 and initial addresses for its BARs (as firmware would
 *      assign them), which the guest may later move.
 *   3. pci_host_describe_acpi() while the DSDT is built (at every boot):
 *      the PNP0A08 root bridge with _CRS and _PRT, and a PNP0C02 device
 *      reserving ECAM; pci_host_mcfg() gives the MCFG table's contents.
 *   4. pci_host_destroy() at exit.
 *
 * Run time (vCPU threads): every config access of the guest ends in the
 * function's cfg_read/cfg_write, serialised by the host's config lock (one
 * config access at a time for the whole bus).  A function reports where its
 * BARs decode with pci_bar_update() (from inside cfg_write, under the config
 * lock).  Accesses to a BAR that is not mapped into the guest by a memslot
 * come to bar_read/bar_write through the host's windows, concurrently from
 * several vCPUs (a function does its own locking there).  The host never
 * (un)registers bus ranges after init, so BAR moves need no bus changes.
 *
 * INTx: pin INTA..INTD of slot s is swizzled to IOAPIC input
 * PCI_INTX_GSI_BASE + (s + pin) % 4 (level-triggered, active low), which the
 * DSDT's _PRT says; pci_intx_gsi() computes it.
 */
#ifndef MINIVMM_DEVICES_PCI_H
#define MINIVMM_DEVICES_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

struct dev_host;
struct aml;

#define PCI_SLOTS          32
#define PCI_CFG_SIZE       4096 /* PCIe config space of one function */
#define PCI_CFG_LEGACY     256  /* what conf1 reaches */
#define PCI_NUM_BARS       6
#define PCI_ROM_REGION     6 /* the expansion ROM, after the six BARs */
#define PCI_NUM_REGIONS    7
#define PCI_INTX_GSI_BASE  20 /* INTA..INTD of slot 0 -> GSI 20..23 */
#define PCI_INTX_PINS      4
#define PCI_HOST_VENDOR_ID 0x1b36 /* Red Hat, Inc. (the ID QEMU's generic devices use) */
#define PCI_HOST_DEVICE_ID 0x0008 /* "PCIe host bridge" */

/* Standard config header offsets and bits (PCI Local Bus 3.0, PCIe 5.0 ch. 7). */
#define PCI_VENDOR_ID         0x00
#define PCI_DEVICE_ID         0x02
#define PCI_COMMAND           0x04
#define PCI_STATUS            0x06
#define PCI_REVISION_ID       0x08
#define PCI_CLASS_PROG        0x09
#define PCI_CLASS_DEVICE      0x0a
#define PCI_HEADER_TYPE       0x0e
#define PCI_BASE_ADDRESS_0    0x10
#define PCI_SUBSYSTEM_VENDOR  0x2c
#define PCI_ROM_ADDRESS       0x30
#define PCI_CAPABILITY_LIST   0x34
#define PCI_INTERRUPT_LINE    0x3c
#define PCI_INTERRUPT_PIN     0x3d
#define PCI_COMMAND_IO        0x0001
#define PCI_COMMAND_MEMORY    0x0002
#define PCI_COMMAND_MASTER    0x0004
#define PCI_COMMAND_INTX_OFF  0x0400
#define PCI_STATUS_CAP_LIST   0x0010
#define PCI_BAR_IO            0x1
#define PCI_BAR_MEM_TYPE_MASK 0x6
#define PCI_BAR_MEM_64        0x4
#define PCI_BAR_MEM_PREFETCH  0x8
#define PCI_BAR_IO_MASK       (~0x3u)
#define PCI_BAR_MEM_MASK      (~0xfu)
#define PCI_ROM_ENABLE        0x1
#define PCI_CAP_ID_MSI        0x05
#define PCI_CAP_ID_MSIX       0x11
#define PCI_CLASS_BRIDGE_HOST 0x0600

enum pci_bar_kind { PCI_BAR_NONE, PCI_BAR_KIND_IO, PCI_BAR_KIND_MEM32, PCI_BAR_KIND_MEM64 };

/* One BAR as the function declares it at pci_add_function(). */
struct pci_bar_decl {
    enum pci_bar_kind kind;
    uint64_t size; /* a power of two; 0: no BAR */
    bool prefetchable;
};

struct pci_function_ops {
    /* Config space access, offset < PCI_CFG_SIZE, aligned to len (1, 2 or 4). */
    uint32_t (*cfg_read)(void *opaque, unsigned offset, unsigned len);
    void (*cfg_write)(void *opaque, unsigned offset, unsigned len, uint32_t value);
    /* A trapped access inside BAR bar at offset (len 1, 2, 4 or 8). */
    void (*bar_read)(void *opaque, unsigned bar, uint64_t offset, void *data, unsigned len);
    void (*bar_write)(void *opaque, unsigned bar, uint64_t offset, const void *data, unsigned len);
};

struct pci_function {
    const char *name;
    unsigned slot;
    const struct pci_function_ops *ops;
    void *opaque;
    /* Where each BAR decodes now (0 size: nowhere); written by pci_bar_update(). */
    struct {
        enum pci_bar_kind kind;
        uint64_t addr, size;
    } bars[PCI_NUM_REGIONS]; /* BARs, then the expansion ROM */
};

struct pci_host;

/* An address window of the host bridge (_CRS) in which BARs live. */
struct pci_window {
    uint64_t base, size;
    struct pci_host *host;
    bool io; /* port I/O, else memory */
};

struct pci_host {
    struct device dev; /* in the VM's device list: describe_acpi */
    const struct dev_host *host;
    uint64_t ecam_base;               /* bus 0 only: 1 MiB */
    struct pci_window mmio32;         /* non-prefetchable and small BARs, below 4 GiB */
    struct pci_window mmio64;         /* 64-bit BARs that do not fit below 4 GiB */
    struct pci_window io;             /* I/O BARs */
    uint64_t next32, next64, next_io; /* initial-assignment cursors */
    struct pci_function *functions[PCI_SLOTS];
    pthread_mutex_t cfg_lock;  /* one config access at a time */
    pthread_rwlock_t bar_lock; /* bars[] of every function */
    uint32_t conf1_addr;       /* last value written to 0xCF8 */
    uint16_t bridge_command;   /* the host bridge's command register */
};

/*
 * Claim ECAM, conf1 and the windows on h's buses and join the VM's device
 * list (for the DSDT).  The 64-bit window starts
 * at the first 1 GiB boundary above every region of the memory map and stays
 * below 2^phys_bits.  Returns 0 or -1 with err.
 */
int pci_host_init(struct pci_host *p, const struct dev_host *h, char *err, size_t errlen);
void pci_host_destroy(struct pci_host *p);

/*
 * Put fn on bus 0 (the next free slot) and assign initial addresses to the
 * BARs (and the ROM, index PCI_ROM_REGION, a 32-bit memory region) declared in bars[] (fn->bars[]
 * is left for the function's config emulation to fill with pci_bar_update()).  assigned[i] receives
 * BAR i's address.  Returns 0 or -1 with err (no slot, a BAR that does not fit).
 */
int pci_add_function(struct pci_host *p, struct pci_function *fn,
                     const struct pci_bar_decl bars[PCI_NUM_REGIONS],
                     uint64_t assigned[PCI_NUM_REGIONS], char *err, size_t errlen);

/* Say where region bar (a BAR or PCI_ROM_REGION) of fn decodes now (size 0: nowhere).  Under the
 * config lock. */
void pci_bar_update(struct pci_host *p, struct pci_function *fn, unsigned bar, uint64_t addr,
                    uint64_t size);

/* Does [addr, addr + size) lie inside one of the host's memory (io false) or I/O windows? */
bool pci_host_in_window(const struct pci_host *p, bool io, uint64_t addr, uint64_t size);

/* The IOAPIC input INTx pin (1 = INTA .. 4 = INTD) of slot reaches. */
unsigned pci_intx_gsi(unsigned slot, unsigned pin);

/* DSDT objects: Device (PCI0) with _HID PNP0A08, _CRS, _PRT; Device (PRES) reserving ECAM. */
void pci_host_describe_acpi(const struct pci_host *p, struct aml *aml);

/* Config access by bus/device/function/offset, as ECAM and conf1 decode it (for tests too). */
uint32_t pci_host_cfg_read(struct pci_host *p, unsigned bus, unsigned devfn, unsigned offset,
                           unsigned len);
void pci_host_cfg_write(struct pci_host *p, unsigned bus, unsigned devfn, unsigned offset,
                        unsigned len, uint32_t value);

#endif
