/*
 * dma_limits.h - how many type1 DMA mappings a configuration needs, and
 * what to change when the IOMMU allows fewer (virtio-mem-and-vfio.md §5.5).
 *
 * Every MAP_DMA takes one of the container's entries (DMA_AVAIL, 65535 by
 * default: the module parameter vfio_iommu_type1.dma_entry_limit).  Boot
 * RAM takes one per RAM region; a virtio-mem region, mapped block by block,
 * takes up to size / block_size when fully plugged.  minivmm refuses at
 * start-up what could run out at run time.  Pure functions (unit-tested);
 * vfio.c applies them.
 */
#ifndef MINIVMM_VFIO_DMA_LIMITS_H
#define MINIVMM_VFIO_DMA_LIMITS_H

#include <stdint.h>

/* Entries kept free beyond the worst case, for mappings made later. */
#define VFIO_DMA_HEADROOM 16
/* What type1 allows when the kernel does not report DMA_AVAIL (its default). */
#define VFIO_DMA_DEFAULT_LIMIT 65535
#define VFIO_DMA_MAX_REGIONS   16

struct vfio_dma_plan {
    uint64_t ram_mappings; /* boot RAM's mappings */
    unsigned nr_regions;
    uint64_t size[VFIO_DMA_MAX_REGIONS];       /* each tracked region's size */
    uint64_t block_size[VFIO_DMA_MAX_REGIONS]; /* and its block size (a power of two) */
};

/*
 * Entries the plan needs when fully plugged, with every region's block size
 * raised to at least min_block (0: as given): RAM + sum of size / block +
 * VFIO_DMA_HEADROOM.
 */
uint64_t vfio_dma_entries(const struct vfio_dma_plan *p, uint64_t min_block);

/*
 * The smallest power-of-two block size B such that raising every smaller
 * block size to B fits in avail entries, where B divides every region it
 * raises; 0 if no B up to the largest region's size does.
 */
uint64_t vfio_dma_suggest_block(const struct vfio_dma_plan *p, uint64_t avail);

#endif
