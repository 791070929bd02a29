/*
 * type1.h - the legacy VFIO IOMMU backend: one type1v2 container
 * (/dev/vfio/vfio) holding the IOMMU groups of all passthrough devices
 * (virtio-mem-and-vfio.md §5.1-§5.5).  It implements vfio/iommu.h:
 *
 *   add_device  opens the device's group (/dev/vfio/GROUP) unless a device
 *               of the same group came first, checks it is viable, attaches
 *               it to the container (the first group sets the IOMMU type)
 *               and re-reads VFIO_IOMMU_GET_INFO (page sizes, IOVA ranges,
 *               DMA_AVAIL as the limit on mappings); the groups go to KVM.
 *               Returns VFIO_GROUP_GET_DEVICE_FD.
 *   map         VFIO_IOMMU_MAP_DMA: pins the pages, counted in VmLck;
 *               each call takes one of dma_entry_limit's entries.
 *   unmap       VFIO_IOMMU_UNMAP_DMA: cannot split a mapping and changes
 *               nothing when the kernel refuses; unmapping fewer bytes than
 *               asked means minivmm's idea of the mappings is wrong: it fails
 *               (EIO), though what was there went.  In the retry after that
 *               (VFIO_UNMAP_RETRY) one whole mapping found gone is success.
 *   status      "dma_avail": the entries left, re-read from the kernel.
 * Main thread, except map and unmap (any thread; the kernel serialises).
 */
#ifndef MINIVMM_VFIO_TYPE1_H
#define MINIVMM_VFIO_TYPE1_H

#include <stddef.h>

#include "vfio/iommu.h"

#define VFIO_MAX_GROUPS 16

/* Open the container and check the API version and type1v2.  *out is the backend, or -1 with err.
 */
int vfio_type1_open(struct vfio_iommu **out, char *err, size_t errlen);

/*
 * The backend on a container fd that is open and checked already, reaching
 * the kernel through `kernel` (NULL: ioctl(2); the unit tests give a fake).
 * It owns fd.
 */
struct vfio_iommu *vfio_type1_new(int fd, vfio_ioctl_fn kernel);

#endif
