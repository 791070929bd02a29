/*
 * iommufd.h - the iommufd IOMMU backend: one IOAS (I/O address space) on
 * /dev/iommu shared by all passthrough devices of the VM, each device
 * through its VFIO cdev /dev/vfio/devices/vfioN (Linux 6.6+ with
 * CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV; virtio-mem-and-vfio.md §5.6-
 * §5.8).  It implements vfio/iommu.h:
 *
 *   add_device  finds the device's cdev in sysfs (BDF/vfio-dev/vfioN),
 *               opens it, VFIO_DEVICE_BIND_IOMMUFD, then
 *               VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS, and re-reads
 *               IOMMU_IOAS_IOVA_RANGES (every attached device may narrow
 *               them).  The device fd is what KVM's VFIO device is given.
 *   map         IOMMU_IOAS_MAP at a fixed IOVA: pins the pages, counted in
 *               VmPin (and charged to RLIMIT_MEMLOCK per user, or per
 *               process in "mm" mode, unless CAP_IPC_LOCK).  No entry limit.
 *   unmap       IOMMU_IOAS_UNMAP.  Unlike type1, an unmap that finds nothing
 *               fails with ENOENT, and one that would split a mapping fails
 *               with ENOENT after removing what it met before the split.  The
 *               callers unmap only exact runs of their own mappings; in the
 *               retry after a failed unmap (VFIO_UNMAP_RETRY), an ENOENT for a
 *               single whole mapping means that call took it: success.
 *   status      "rlimit_mode" ("user" or "mm", as the kernel reports it; with
 *               CAP_IPC_LOCK nothing is charged either way), "ioas_id".
 * The devices are bound before any KVM VM exists (see iommu.h).
 * Main thread, except map and unmap (any thread, but never two on the same
 * range at once: the kernel answers EBUSY to that).
 */
#ifndef MINIVMM_VFIO_IOMMUFD_H
#define MINIVMM_VFIO_IOMMUFD_H

#include <stddef.h>
#include <stdint.h>

#include "vfio/iommu.h"

/*
 * Open /dev/iommu, allocate the IOAS and read the RLIMIT mode.  sysfs is
 * where devices' cdevs are looked up ("/sys").  *out is the backend, or -1
 * with err.
 */
int vfio_iommufd_open(struct vfio_iommu **out, const char *sysfs, char *err, size_t errlen);

/*
 * The backend on an open iommufd with the IOAS ioas_id, reaching the kernel
 * through `kernel` (NULL: ioctl(2); the unit tests give a fake).  It owns fd.
 */
struct vfio_iommu *vfio_iommufd_new(int fd, uint32_t ioas_id, const char *sysfs,
                                    vfio_ioctl_fn kernel);

#endif
