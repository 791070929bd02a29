/*
 * container.h - the VM's one VFIO type1v2 container: the IOMMU groups of all
 * passthrough devices, the DMA mappings (IOVA == guest-physical address) and
 * the KVM VFIO device that tells KVM about the groups.
 *
 * Order of calls (main thread unless said otherwise):
 *   1. vfio_container_open(), then vfio_container_add_group() for each
 *      device's group, at start-up before KVM is set up (a second device of
 *      an already added group shares it).  The first group fixes the IOMMU
 *      type (VFIO_SET_IOMMU needs one attached group) and the container reads
 *      VFIO_IOMMU_GET_INFO: page sizes, IOVA ranges, DMA_AVAIL.
 *   2. vfio_container_device_fd() for each device.
 *   3. vfio_dma_map() / vfio_dma_unmap(): boot RAM once at start-up, before
 *      the first vCPU runs; it stays mapped across guest reboots.  Blocks of
 *      virtio-mem regions while they are plugged, through the DMA listeners
 *      (vfio_container_backend()).  Mapping pins the pages (counted in the
 *      process's VmLck).  Callable from any thread; the counters are updated
 *      under the container's lock.
 *   4. vfio_container_attach_kvm() on every new KVM VM fd (every boot).
 *   5. vfio_container_close() at exit: closing the container unmaps and
 *      unpins everything.
 */
#ifndef MINIVMM_VFIO_CONTAINER_H
#define MINIVMM_VFIO_CONTAINER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio/dma_listener.h"

#define VFIO_MAX_GROUPS      16
#define VFIO_MAX_IOVA_RANGES 16

struct vfio_iova_span {
    uint64_t start, end; /* inclusive */
};

struct vfio_group {
    int number;
    int fd;
};

struct vfio_container {
    int fd;
    const char *dev_dir; /* "/dev/vfio" (tests use another) */
    struct vfio_group groups[VFIO_MAX_GROUPS];
    unsigned nr_groups;
    int kvm_dev_fd; /* the KVM VFIO device of the current boot, or -1 */

    /* VFIO_IOMMU_GET_INFO */
    uint64_t iova_pgsizes;
    struct vfio_iova_span ranges[VFIO_MAX_IOVA_RANGES];
    unsigned nr_ranges; /* 0: the kernel reported none (no limit known) */
    bool have_dma_avail;
    uint32_t dma_avail; /* mapping entries left when the info was read */

    pthread_mutex_t lock;
    uint64_t mappings;     /* MAP_DMA entries made by minivmm */
    uint64_t mapped_bytes; /* bytes they cover */
};

/* Open /dev/vfio/vfio and check the API version and type1v2.  0 or -1 with err. */
int vfio_container_open(struct vfio_container *c, char *err, size_t errlen);

/*
 * Open the group (if not open yet), check it is viable, attach it to the
 * container and, for the first group, set the IOMMU type and read the info.
 * Returns the index of the group in groups[], or -1 with err.
 */
int vfio_container_add_group(struct vfio_container *c, int group, const char *bdf, char *err,
                             size_t errlen);

/* The device fd of bdf in groups[index].  Returns the fd, or -1 with err. */
int vfio_container_device_fd(struct vfio_container *c, unsigned index, const char *bdf, char *err,
                             size_t errlen);

/* Is [iova, iova + size) inside one of the IOVA ranges the IOMMU reports (or are none known)? */
bool vfio_iova_ok(const struct vfio_container *c, uint64_t iova, uint64_t size);

/*
 * MAP_DMA [iova, iova + size) to host memory hva, read and write.  Returns 0,
 * or -1 with err naming the cause (ENOMEM: RLIMIT_MEMLOCK; ENOSPC: the
 * entry limit) and errno set.
 */
int vfio_dma_map(struct vfio_container *c, uint64_t iova, uint64_t size, void *hva, char *err,
                 size_t errlen);
/*
 * UNMAP_DMA of [iova, iova + size), which covers exactly nr whole mappings
 * made by vfio_dma_map (type1v2 cannot split one).  Returns 0, or -1 with
 * err if the kernel refused or unmapped other than size bytes.
 */
int vfio_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size, uint64_t nr, char *err,
                   size_t errlen);

/* The container as the DMA backend of vfio/dma_listener.h. */
struct vfio_dma_backend vfio_container_backend(struct vfio_container *c);

/* Re-read DMA_AVAIL from the kernel (main thread).  False if the kernel does not report it. */
bool vfio_container_read_dma_avail(struct vfio_container *c, uint32_t *avail);

/* Create the KVM VFIO device on vm_fd and add every group.  0 or -1 with err. */
int vfio_container_attach_kvm(struct vfio_container *c, int vm_fd, char *err, size_t errlen);

void vfio_container_close(struct vfio_container *c);

#endif
