/*
 * vfio_pci.h - one PCI function passed through with VFIO, as a function on
 * minivmm's PCI host.
 *
 * Created by vfio_create_devices() (vfio.h) on the main thread at start-up,
 * after the IOMMU backend took the device (vfio/iommu.h) and boot RAM is
 * mapped.  The device uses the VFIO device fd the backend owns, and owns the
 * mmaps of its BARs, its eventfds and the GSIs of its MSI/MSI-X vectors.
 *
 *   BARs:   memory BARs (and their mmappable parts, from the region's
 *           sparse-mmap capability) are mmapped from the device fd and put
 *           into KVM memslots at the guest's BAR address while memory decode
 *           is on; the MSI-X table and PBA pages, regions that cannot be
 *           mmapped and I/O BARs are trapped (the PCI host's windows call
 *           bar_read/bar_write) and forwarded with pread/pwrite.
 *   INTx:   a trigger eventfd and an unmask eventfd, bound by KVM_IRQFD with
 *           KVM_IRQFD_FLAG_RESAMPLE to the slot's _PRT GSI (level).
 *   MSI(-X):one eventfd and one GSI (an MSI route) per vector, bound by
 *           KVM_IRQFD while the vector is unmasked; routes follow every guest
 *           write to the capability or the table.  Enabling either turns
 *           INTx off at VFIO; disabling both turns it on again.
 *   Reset:  quiesce (on guest reboot, before any other device resets): bus
 *           master off, interrupts off, VFIO_DEVICE_RESET where supported,
 *           BAR memslots removed, the config header back to power-on state.
 * Config accesses run on vCPU threads under the PCI host's config lock;
 * trapped BAR accesses run on vCPU threads concurrently and take the
 * device's irq lock only for the MSI-X table.
 */
#ifndef MINIVMM_VFIO_VFIO_PCI_H
#define MINIVMM_VFIO_VFIO_PCI_H

#include <linux/vfio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/pci.h"
#include "vfio/pci_cfg.h"
#include "vfio/sysfs.h"

struct dev_host;
struct vfio_iommu;
struct json;

#define VFIO_ID_MAX    32
#define VFIO_MAX_AREAS 4 /* mmappable areas per BAR */
#define VFIO_MSIX_MAX  2048

enum vfio_irq_mode { VFIO_IRQ_NONE, VFIO_IRQ_INTX, VFIO_IRQ_MSI, VFIO_IRQ_MSIX };

struct vfio_region {
    uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size;
    uint64_t offset; /* of the region in the device fd */
    uint8_t *map;    /* mmap of the whole region, or NULL */
    struct {
        uint64_t offset, size; /* inside the region, page-aligned */
        int slot;              /* memslot while decoding, else -1 */
    } areas[VFIO_MAX_AREAS];
    unsigned nr_areas;
    uint64_t mapped_at; /* guest address the memslots are at (valid if any slot >= 0) */
};

struct vfio_vector {
    int eventfd;
    int gsi;    /* -1: none */
    bool bound; /* KVM_IRQFD assigned */
};

struct vfio_pci {
    struct device dev;
    struct pci_function fn;
    struct vfio_pci_cfg cfg;
    char id[VFIO_ID_MAX];
    char bdf[VFIO_BDF_LEN];
    int group;
    const struct dev_host *host;
    struct pci_host *pci;
    struct vfio_iommu *iommu; /* for status */
    int fd;                   /* the VFIO device fd, owned by the IOMMU backend */
    uint32_t dev_flags;       /* VFIO_DEVICE_FLAGS_* */
    struct vfio_region bars[PCI_NUM_BARS];
    struct vfio_region rom; /* read with pread while shown (rom=on); size 0 otherwise */
    struct vfio_region config;
    unsigned irq_count[VFIO_PCI_NUM_IRQS];

    pthread_mutex_t irq_lock; /* everything below */
    int vm_fd;
    enum vfio_irq_mode mode;
    int intx_trigger, intx_unmask; /* eventfds, -1 if the device has no INTx */
    unsigned intx_gsi;
    bool intx_bound;
    struct vfio_vector *vectors; /* msix_size or VFIO_MSI_MAX_VECTORS entries */
    unsigned nr_vectors;         /* enabled at VFIO */
    uint32_t (*msix_table)[4];   /* the guest's view: addr_lo, addr_hi, data, ctrl */
    uint64_t irq_errors;         /* failed ioctls, for status */
};

/*
 * Take bdf (its VFIO device fd came from vfio_iommu_add_device), read its
 * regions and interrupts, put it on the PCI host and map its BARs.  With rom,
 * the device's expansion ROM is shown to the guest (read-only, trapped).
 * Returns the device (already added to the VM through the host), or NULL
 * with a one-line reason in err.
 */
struct vfio_pci *vfio_pci_create(const struct dev_host *h, struct pci_host *pci,
                                 struct vfio_iommu *iommu, int fd, const char *id, const char *bdf,
                                 int group, bool rom, char *err, size_t errlen);

/* The status object of the control socket: {"id", "bdf", ...}. */
void vfio_pci_status(struct vfio_pci *d, struct json *j);

const char *vfio_irq_mode_name(enum vfio_irq_mode m);

#endif
