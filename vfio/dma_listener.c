/* dma_listener.c - per-block DMA mappings of a sparse region; see dma_listener.h. */
#include "vfio/dma_listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/bitmap.h"
#include "vmm/util.h"

static bool is_mapped(const struct vfio_dma_listener *l, uint64_t block)
{
    return bitmap_test(l->mapped, block);
}

/* Mark blocks [first, end) mapped or not, keeping nr_mapped in step. */
static void set_mapped(struct vfio_dma_listener *l, uint64_t first, uint64_t end, bool mapped)
{
    uint64_t before = bitmap_count(l->mapped, first, end - first);
    bitmap_assign(l->mapped, first, end - first, mapped);
    l->nr_mapped += (mapped ? end - first : 0) - before;
}

static uint64_t gpa_of(const struct vfio_dma_listener *l, uint64_t block)
{
    return l->base + block * l->block_size;
}

/*
 * Unmap every mapped block of [first, end): one call per contiguous run; if
 * a run's call fails, block by block, so that the bitmap stays exact.
 * Returns 0 if nothing of the range is mapped any more, else -1 with err
 * (about the first failure).
 */
static int unmap_blocks(struct vfio_dma_listener *l, uint64_t first, uint64_t end, char *err,
                        size_t errlen)
{
    int ret = 0;
    for (uint64_t i = bitmap_find(l->mapped, first, end, true); i < end;) {
        uint64_t stop = bitmap_find(l->mapped, i, end, false);
        char why[256];
        l->unmap_calls++;
        if (vfio_iommu_unmap(l->iommu, gpa_of(l, i), (stop - i) * l->block_size, stop - i, 0, why,
                             sizeof(why)) == 0) {
            set_mapped(l, i, stop, false);
        } else if (stop - i == 1) {
            if (ret == 0)
                errf(err, errlen, "%s", why);
            ret = -1;
        } else {
            /*
             * Try each block alone: what can go, goes; the bitmap says what
             * stays.  The failed call may have taken some of them already.
             */
            for (uint64_t b = i; b < stop; b++) {
                l->unmap_calls++;
                if (vfio_iommu_unmap(l->iommu, gpa_of(l, b), l->block_size, 1, VFIO_UNMAP_RETRY,
                                     why, sizeof(why)) == 0) {
                    set_mapped(l, b, b + 1, false);
                } else {
                    if (ret == 0)
                        errf(err, errlen, "%s", why);
                    ret = -1;
                }
            }
        }
        i = bitmap_find(l->mapped, stop, end, true);
    }
    return ret;
}

static int dma_populate(struct mm_listener *ml, uint64_t gpa, uint64_t len, char *err,
                        size_t errlen)
{
    struct vfio_dma_listener *l = container_of(ml, struct vfio_dma_listener, listener);
    uint64_t first = (gpa - l->base) / l->block_size, end = first + len / l->block_size;
    for (uint64_t b = first; b < end; b++) {
        if (is_mapped(l, b))
            continue; /* kept from a failed unmap: still the same memory, still mapped */
        char why[256];
        l->map_calls++;
        if (vfio_iommu_map(l->iommu, gpa_of(l, b), l->block_size,
                           mm_tracker_hva(l->tracker, gpa_of(l, b)), why, sizeof(why)) == 0) {
            set_mapped(l, b, b + 1, true);
            continue;
        }
        errf(err, errlen, "%s", why);
        /*
         * Roll back this request: nothing of it stays mapped (blocks kept
         * from an earlier failed unmap included: they are unplugged).
         */
        char uerr[256];
        if (unmap_blocks(l, first, end, uerr, sizeof(uerr)) < 0) {
            warn("vfio: cannot undo a failed plug's mappings: %s", uerr);
            return MM_POPULATE_KEPT;
        }
        return -1;
    }
    return 0;
}

static int dma_discard(struct mm_listener *ml, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct vfio_dma_listener *l = container_of(ml, struct vfio_dma_listener, listener);
    uint64_t first = (gpa - l->base) / l->block_size;
    return unmap_blocks(l, first, first + len / l->block_size, err, errlen);
}

static uint64_t dma_held_bytes(struct mm_listener *ml)
{
    return vfio_dma_listener_mapped_bytes(container_of(ml, struct vfio_dma_listener, listener));
}

static const struct mm_listener_ops dma_listener_ops = {
    .populate = dma_populate,
    .discard = dma_discard,
    .held_bytes = dma_held_bytes,
};

int vfio_dma_listener_start(struct vfio_dma_listener *l, struct vfio_iommu *iommu,
                            struct mm_tracker *tracker, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->listener.ops = &dma_listener_ops;
    l->listener.name = "vfio dma";
    l->listener.status_key = "dma_mapped_bytes";
    l->iommu = iommu;
    l->tracker = tracker;
    l->base = tracker->base;
    l->block_size = mm_tracker_block_size(tracker);
    l->nr_blocks = tracker->nr_blocks;
    l->mapped = calloc(bitmap_words(l->nr_blocks), sizeof(uint64_t));
    if (!l->mapped)
        return errf(err, errlen, "vfio: no memory for a bitmap of %llu blocks",
                    (unsigned long long)l->nr_blocks);
    if (mm_tracker_register(tracker, &l->listener, err, errlen) < 0) {
        free(l->mapped);
        l->mapped = NULL;
        return -1;
    }
    return 0;
}

void vfio_dma_listener_stop(struct vfio_dma_listener *l)
{
    if (!l->mapped)
        return;
    mm_tracker_unregister(l->tracker, &l->listener);
    free(l->mapped);
    l->mapped = NULL;
}

uint64_t vfio_dma_listener_mapped_bytes(const struct vfio_dma_listener *l)
{
    return l->nr_mapped * l->block_size;
}
