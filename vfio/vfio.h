/*
 * vfio.h - PCI passthrough for the VM: the --vfio devices, their IOMMU
 * backend (type1 or iommufd, vfio/iommu.h) and boot RAM's DMA mappings.
 * The VM (vmm/) calls, on the main thread:
 *
 *   1. vfio_open()      at start-up, before KVM is set up: checks every
 *                       device in sysfs (vfio/sysfs.h), chooses the IOMMU
 *                       backend (vfio_choose_iommu), opens it and adds every
 *                       device to it (an auto choice of iommufd that fails
 *                       there falls back to type1, with a warning).  A
 *                       failure is a user error (exit 2).
 *   2. vfio_limit_map() once the memory map exists, before any device
 *                       region is placed: the IOMMU's IOVA ranges become the
 *                       map's DMA spans, so that regions are placed inside.
 *   3. vfio_setup_dma() once every region exists (virtio-mem is created
 *                       first): the start-up checks (IOVA ranges, block size
 *                       against the IOMMU page, DMA entries where the backend
 *                       limits them, RLIMIT_MEMLOCK for the worst case unless
 *                       CAP_IPC_LOCK), then boot RAM is DMA-mapped at IOVA
 *                       == GPA (pinned until exit, across reboots) and a DMA
 *                       listener (dma_listener.h) is started on every region
 *                       with a tracker: those are mapped block by block while
 *                       plugged.
 *      vfio_create_devices() with the device host and the PCI host: one
 *                       vfio_pci function per --vfio, and a device that
 *                       creates the KVM VFIO device at every boot and stops
 *                       the DMA listeners at exit.
 *   4. vfio_status()    from the control socket (main thread).
 *   5. vfio_close()     at exit, after the devices were destroyed.
 * The thread rules of the listeners are those of mm/tracker.h.
 * mm/ knows nothing of this; VFIO is a user of the memory map.
 */
#ifndef MINIVMM_VFIO_VFIO_H
#define MINIVMM_VFIO_VFIO_H

#include <stdbool.h>
#include <stddef.h>

#include "devices/device.h"
#include "vfio/dma_limits.h"
#include "vfio/dma_listener.h"
#include "vfio/iommu.h"
#include "vfio/sysfs.h"
#include "vfio/vfio_pci.h"

struct dev_host;
struct pci_host;
struct mm_map;
struct json;

#define VFIO_MAX_DEVICES 8

enum vfio_iommu_kind {
    VFIO_IOMMU_AUTO,    /* iommufd where the host has it and this user may use it, else type1 */
    VFIO_IOMMU_TYPE1,   /* the legacy container, /dev/vfio/vfio */
    VFIO_IOMMU_IOMMUFD, /* /dev/iommu and the device's cdev */
};

/* One --vfio option. */
struct vfio_options {
    char id[VFIO_ID_MAX];   /* "vfio0", ... unless id= was given */
    char bdf[VFIO_BDF_LEN]; /* canonical dddd:bb:dd.f */
    bool rom;               /* rom=on: show the device's expansion ROM to the guest */
    enum vfio_iommu_kind iommu;
};

/*
 * Parse the value of one --vfio option
 * ("0000:01:00.0[,id=NAME][,rom=on|off][,iommu=type1|iommufd|auto]"); index
 * is its position (for the default id).  Returns 0, or -1 with err.
 */
int vfio_parse_option(const char *arg, unsigned index, struct vfio_options *o, char *err,
                      size_t errlen);

/*
 * The one IOMMU backend of the VM (every device shares one address space,
 * so boot RAM and each plugged block are mapped and pinned once): the
 * devices' explicit iommu= choices, which must agree; with none, iommufd if
 * this user may open dev/iommu and every device's cdev (found in sysfs, under
 * dev/vfio/devices/), else type1.  sysfs and dev are "/sys" and "/dev"
 * (a fake tree in the unit tests).  why says how it chose ("auto: ..." or
 * "asked for").  0, or -1 with err.  (vfio_open also falls back from an
 * auto iommufd that cannot take the devices to type1, before anything is
 * mapped.)
 */
int vfio_choose_iommu(const struct vfio_options *opts, unsigned n, const char *sysfs,
                      const char *dev, enum vfio_iommu_kind *kind, char *why, size_t whylen,
                      char *err, size_t errlen);

const char *vfio_iommu_kind_name(enum vfio_iommu_kind k);

struct vfio {
    struct device dev;        /* attach: the KVM VFIO device of each boot */
    struct vfio_iommu *iommu; /* the backend, NULL before vfio_open */
    const struct vfio_options *opts;
    unsigned nr;
    int group[VFIO_MAX_DEVICES];     /* IOMMU group of each device */
    int device_fd[VFIO_MAX_DEVICES]; /* its VFIO device fd (the backend owns it) */
    struct vfio_pci *devices[VFIO_MAX_DEVICES];
    struct vfio_dma_listener dma[VFIO_DMA_MAX_REGIONS]; /* one per tracked region */
    unsigned nr_dma;
    const char *sysfs, *dev_root; /* "/sys", "/dev" */
};

int vfio_open(struct vfio *v, const struct vfio_options *opts, unsigned n, char *err,
              size_t errlen);

void vfio_limit_map(struct vfio *v, struct mm_map *map);

/*
 * Check, map boot RAM, start the DMA listeners.  Returns 0, or -1 with err;
 * *user_error says whether the user can fix it (exit 2) or not (exit 1).
 */
int vfio_setup_dma(struct vfio *v, const struct mm_map *map, bool *user_error, char *err,
                   size_t errlen);

int vfio_create_devices(struct vfio *v, const struct dev_host *h, struct pci_host *pci, char *err,
                        size_t errlen);

/* "vfio": [ {per device}, ... ] as a key and value of the status object. */
void vfio_status(struct vfio *v, struct json *j);

void vfio_close(struct vfio *v);

/* Bytes of RLIMIT_MEMLOCK needed for size pinned bytes, and whether the limit allows it. */
bool vfio_memlock_ok(uint64_t pinned, uint64_t *limit);

#endif
