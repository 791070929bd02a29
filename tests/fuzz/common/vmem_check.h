/*
 * vmem_check.h - the invariants of a virtio-mem device that must hold after
 * any sequence of guest requests, resizes and resets, shared by the
 * virtio-mmio and virtio-mem fuzz targets.  Each broken one aborts
 * (FUZZ_CHECK) with the values involved.
 */
#ifndef MINIVMM_TESTS_FUZZ_VMEM_CHECK_H
#define MINIVMM_TESTS_FUZZ_VMEM_CHECK_H

#include "devices/virtio_mem.h"
#include "mm/memmap.h"
#include "mm/tracker.h"
#include "tests/fuzz/common/input.h"

/*
 * plugged_size is what the tracker has plugged, a whole number of blocks
 * inside the region; the usable region is blocks, inside the region, at least
 * the requested size; every plugged block lies in the usable region and is
 * reachable through the accessor, every unplugged one is not (the per-block
 * part only with blocks: it costs a tracker lookup per block).
 */
static inline void vmem_check(struct virtio_mem *m, const struct mm_map *mem, bool blocks)
{
    uint64_t bs = m->block_size;
    uint64_t tracked = mm_tracker_plugged_bytes(&m->tracker);
    FUZZ_CHECK(m->plugged_size == tracked, "plugged_size %#llx, tracker %#llx",
               (unsigned long long)m->plugged_size, (unsigned long long)tracked);
    FUZZ_CHECK(m->plugged_size <= m->region_size && m->plugged_size % bs == 0, "plugged_size %#llx",
               (unsigned long long)m->plugged_size);
    FUZZ_CHECK(m->usable_region_size <= m->region_size && m->usable_region_size % bs == 0,
               "usable_region_size %#llx", (unsigned long long)m->usable_region_size);
    FUZZ_CHECK(m->requested_size <= m->usable_region_size,
               "requested %#llx beyond the usable region %#llx",
               (unsigned long long)m->requested_size, (unsigned long long)m->usable_region_size);
    for (uint64_t off = 0; blocks && off < m->region_size; off += bs) {
        bool plugged = mm_tracker_state(&m->tracker, m->addr + off, bs) == MM_BLOCKS_PLUGGED;
        FUZZ_CHECK(!plugged || off < m->usable_region_size,
                   "block at +%#llx plugged outside the usable region %#llx",
                   (unsigned long long)off, (unsigned long long)m->usable_region_size);
        FUZZ_CHECK((mm_gpa(mem, m->addr + off, bs) != NULL) == plugged,
                   "accessor and tracker disagree on the block at +%#llx (plugged %d)",
                   (unsigned long long)off, plugged);
    }
}

#endif
