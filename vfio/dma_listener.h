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
 *                     before the memory is discarded.  Type1 cannot split
 *                     a mapping, so each block is its own mapping and any
 *                     run of them can go in one call.  If an unmap fails the
 *                     block stays mapped (the bitmap below says so) and the
 *                     tracker keeps the memory instead of discarding it.
 * Its bitmap of mapped blocks is the authority on what is mapped
 * (virtio-mem-and-vfio.md §5.7): it only ever unmaps exact runs of blocks it
 * mapped, and never infers state from the kernel's error codes.
 *
 * The backend (the container, or a fake in the unit tests) does the
 * mapping.  Calls come with the tracker's lock held, on the thread that
 * plugs (the main thread).
 */
#ifndef MINIVMM_VFIO_DMA_LISTENER_H
#define MINIVMM_VFIO_DMA_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "mm/tracker.h"

/* How to map and unmap (vfio/container.c for type1v2). */
struct vfio_dma_backend {
    /* Map [iova, iova + size) to hva, one mapping.  0, or -1 with err and errno set. */
    int (*map)(void *ctx, uint64_t iova, uint64_t size, void *hva, char *err, size_t errlen);
    /* Unmap [iova, iova + size), exactly nr whole mappings.  0, or -1 with err. */
    int (*unmap)(void *ctx, uint64_t iova, uint64_t size, uint64_t nr, char *err, size_t errlen);
    void *ctx;
};

struct vfio_dma_listener {
    struct mm_listener listener;
    struct vfio_dma_backend backend;
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
int vfio_dma_listener_start(struct vfio_dma_listener *l, const struct vfio_dma_backend *backend,
                            struct mm_tracker *tracker, char *err, size_t errlen);

/* Unregister (unmapping everything plugged) and free the state. */
void vfio_dma_listener_stop(struct vfio_dma_listener *l);

/* Bytes of the region mapped now. */
uint64_t vfio_dma_listener_mapped_bytes(const struct vfio_dma_listener *l);

#endif
