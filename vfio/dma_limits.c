/* dma_limits.c - type1 DMA entry arithmetic; see dma_limits.h. */
#include "vfio/dma_limits.h"

uint64_t vfio_dma_entries(const struct vfio_dma_plan *p, uint64_t min_block)
{
    uint64_t n = p->ram_mappings + VFIO_DMA_HEADROOM;
    for (unsigned i = 0; i < p->nr_regions; i++) {
        uint64_t b = p->block_size[i] > min_block ? p->block_size[i] : min_block;
        n += p->size[i] / b;
    }
    return n;
}

/* Can every region whose block size is below b use b? */
static int block_divides(const struct vfio_dma_plan *p, uint64_t b)
{
    for (unsigned i = 0; i < p->nr_regions; i++)
        if (p->block_size[i] < b && p->size[i] % b)
            return 0;
    return 1;
}

uint64_t vfio_dma_suggest_block(const struct vfio_dma_plan *p, uint64_t avail)
{
    uint64_t smallest = UINT64_MAX, largest = 0;
    for (unsigned i = 0; i < p->nr_regions; i++) {
        if (p->block_size[i] < smallest)
            smallest = p->block_size[i];
        if (p->size[i] > largest)
            largest = p->size[i];
    }
    if (p->nr_regions == 0 || smallest == 0)
        return 0;
    for (uint64_t b = smallest; b && b <= largest; b <<= 1)
        if (block_divides(p, b) && vfio_dma_entries(p, b) <= avail)
            return b;
    return 0;
}
