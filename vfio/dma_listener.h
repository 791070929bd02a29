/*
 * dma_listener.h - VFIO DMA mappings that follow a sparse region's plugged
 * blocks: the reason minivmm exists.
 *
 * One struct vfio_dma_listener per tracked region (a virtio-mem region,
 * found through the memory map's mm_region.tracker; vfio/ never sees the
 * device that owns it).  It is a tracker listener (mm/tracker.h), registered
 * after the region's memory guard, so it runs last on populate and first on
 * discard:
 *   populate(range) - one MAP_DMA per block (IOVA == GPA, host address from
 *                     the tracker), before the plug is acknowledged.  A
 *                     failed map unmaps what is mapped in the range (this
 *                     call's maps, and blocks kept from a failed unmap) and
 *                     refuses: the plug is answered BUSY.  If that unmap
 *                     fails too it answers MM_POPULATE_KEPT, so the tracker
 *                     keeps the memory.
 *   discard(range)  - one UNMAP_DMA per contiguous run of mapped blocks,
 *                     before the memory is discarded.  Neither type1 nor
 *                     iommufd can split a mapping, so each block is its
 *                     own mapping and any run of them can go in one call.
 *                     If a run's unmap fails, its blocks are unmapped one by
 *                     one (a failed iommufd unmap may have removed some of
 *                     them).  A block whose unmap fails stays mapped (the
 *                     bitmap below says so) and the tracker keeps its
 *                     memory instead of discarding it.
 * Its bitmap of mapped blocks is the authority on what is mapped
 * (virtio-mem-and-vfio.md §5.7): it only ever unmaps exact runs of blocks it
 * mapped, and infers nothing from the kernel's answers but this: in the
 * block-by-block retry after a failed unmap, one block the kernel no longer
 * has went in that failed call (VFIO_UNMAP_RETRY, vfio/iommu.h).
 *
 * The IOMMU backend (vfio/iommu.h: type1 or iommufd, or a fake in the unit
 * tests) does the mapping; the rules above hold for both, since they keep
 * to what both allow: one mapping per block, unmaps of exact runs of whole
 * mappings.  Calls come with the tracker's lock held, on the thread that
 * plugs (the main thread).
 */
#ifndef MINIVMM_VFIO_DMA_LISTENER_H
#define MINIVMM_VFIO_DMA_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "mm/tracker.h"
#include "vfio/iommu.h"

struct vfio_dma_listener {
    struct mm_listener listener;
    struct vfio_iommu *iommu;
    struct mm_tracker *tracker;
    uint64_t base, block_size, nr_blocks;
    uint64_t *mapped;   /* bit n set: block n is DMA-mapped */
    uint64_t nr_mapped; /* blocks mapped */
    uint64_t map_calls, unmap_calls;
};

/*
 * Set up the listener for tracker's region and register it (replaying what
 * is plugged already).  Start-up, main thread, after the region's guard was
 * registered.  Returns 0, or -1 with err.
 */
int vfio_dma_listener_start(struct vfio_dma_listener *l, struct vfio_iommu *iommu,
                            struct mm_tracker *tracker, char *err, size_t errlen);

/* Unregister (unmapping everything plugged) and free the state. */
void vfio_dma_listener_stop(struct vfio_dma_listener *l);

/* Bytes of the region mapped now. */
uint64_t vfio_dma_listener_mapped_bytes(const struct vfio_dma_listener *l);

#endif
