/*
 * vfio.h - PCI passthrough for the VM: the --vfio devices, their container,
 * and boot RAM's DMA mappings.  The VM (vmm/) calls, on the main thread:
 *
 *   1. vfio_open()      at start-up, before KVM is set up: checks every
 *                       device in sysfs (vfio/sysfs.h), opens the container
 *                       and the groups.  A failure is a user error (exit 2).
 *   2. vfio_map_ram()   once the memory map holds boot RAM: checks
 *                       RLIMIT_MEMLOCK against what must be pinned (unless
 *                       the process has CAP_IPC_LOCK) and the IOVA ranges,
 *                       then DMA-maps every RAM region at IOVA == GPA.  The
 *                       mappings stay until exit, across guest reboots.
 *   3. vfio_create_devices() with the device host and the PCI host: one
 *                       vfio_pci function per --vfio, and a device that
 *                       creates the KVM VFIO device at every boot.
 *   4. vfio_status()    from the control socket (main thread).
 *   5. vfio_close()     at exit, after the devices were destroyed.
 * mm/ knows nothing of this; VFIO is a user of the memory map.
 */
#ifndef MINIVMM_VFIO_VFIO_H
#define MINIVMM_VFIO_VFIO_H

#include <stdbool.h>
#include <stddef.h>

#include "devices/device.h"
#include "vfio/container.h"
#include "vfio/sysfs.h"
#include "vfio/vfio_pci.h"

struct dev_host;
struct pci_host;
struct mm_map;
struct json;

#define VFIO_MAX_DEVICES 8

/* One --vfio option. */
struct vfio_options {
    char id[VFIO_ID_MAX];   /* "vfio0", ... unless id= was given */
    char bdf[VFIO_BDF_LEN]; /* canonical dddd:bb:dd.f */
    bool rom;               /* rom=on: show the device's expansion ROM to the guest */
};

/*
 * Parse the value of one --vfio option ("0000:01:00.0[,id=NAME][,rom=on|off]"); index is
 * its position (for the default id).  Returns 0, or -1 with err.
 */
int vfio_parse_option(const char *arg, unsigned index, struct vfio_options *o, char *err,
                      size_t errlen);

struct vfio {
    struct device dev; /* attach: the KVM VFIO device of each boot */
    struct vfio_container container;
    const struct vfio_options *opts;
    unsigned nr;
    int group[VFIO_MAX_DEVICES];       /* IOMMU group of each device */
    int group_index[VFIO_MAX_DEVICES]; /* its index in the container */
    struct vfio_pci *devices[VFIO_MAX_DEVICES];
    const char *sysfs; /* "/sys" */
};

int vfio_open(struct vfio *v, const struct vfio_options *opts, unsigned n, char *err,
              size_t errlen);

/*
 * Map boot RAM.  Returns 0, or -1 with err; *user_error says whether the
 * user can fix it (RLIMIT_MEMLOCK, IOVA ranges: exit 2) or not (exit 1).
 */
int vfio_map_ram(struct vfio *v, const struct mm_map *map, bool *user_error, char *err,
                 size_t errlen);

int vfio_create_devices(struct vfio *v, const struct dev_host *h, struct pci_host *pci, char *err,
                        size_t errlen);

/* "vfio": [ {per device}, ... ] as a key and value of the status object. */
void vfio_status(struct vfio *v, struct json *j);

void vfio_close(struct vfio *v);

/* Bytes of RLIMIT_MEMLOCK needed for size pinned bytes, and whether the limit allows it. */
bool vfio_memlock_ok(uint64_t pinned, uint64_t *limit);

#endif
