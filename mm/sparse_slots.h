/*
 * sparse_slots.h - the KVM memslots of a device-memory region with holes.
 *
 * A virtio-mem region can be far larger than what is plugged.  Registering
 * one memslot for all of it would make the host's KVM cost follow the region
 * size; instead the region is cut into fixed-size chunks (chunk_size, e.g.
 * 128 MiB) and each chunk gets a memslot only while at least one of its
 * blocks is plugged.  struct mm_sparse_slots is a tracker listener that
 * does exactly that: populate adds the slots a range needs (failing if KVM
 * has no slot left, which makes the plug fail), discard removes slots whose
 * chunk became empty.  In "full" mode every chunk has a slot whatever is
 * plugged: used when the guest did not promise to leave unplugged memory
 * alone (virtio-mem without VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE), so that
 * reads of unplugged memory keep working.
 *
 * The device owning the region creates it (mm_sparse_slots_init), registers
 * its listener with the region's tracker, switches modes with
 * mm_sparse_slots_set_full(), and destroys it at exit.  Calls come from the
 * main thread; listener callbacks run under the tracker lock.
 */
#ifndef MINIVMM_MM_SPARSE_SLOTS_H
#define MINIVMM_MM_SPARSE_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/memmap.h"
#include "mm/tracker.h"

#define MM_SPARSE_CHUNK_MIN (128ULL << 20)

struct mm_sparse_slots {
    struct mm_listener listener; /* register with the region's tracker */
    struct mm_map *map;
    uint64_t base, size; /* the region */
    uint8_t *hva;        /* host address of base */
    uint64_t chunk_size;
    uint64_t nr_chunks;
    uint64_t *plugged; /* bytes plugged per chunk */
    int *slot;         /* memslot id per chunk, or -1 */
    bool full;
};

/*
 * The chunk size for a region: at least MM_SPARSE_CHUNK_MIN and the block
 * size, and large enough that the region needs at most max_slots chunks.
 * Always a power of two.
 */
uint64_t mm_sparse_chunk_size(uint64_t region_size, uint64_t block_size, unsigned max_slots);

/* Returns 0, or -1 with a reason in err. */
int mm_sparse_slots_init(struct mm_sparse_slots *s, struct mm_map *map, uint64_t base,
                         uint64_t size, uint8_t *hva, uint64_t chunk_size, const char *name,
                         char *err, size_t errlen);
/* Remove every slot and free the state (unregister the listener first). */
void mm_sparse_slots_destroy(struct mm_sparse_slots *s);

/* Switch between "a slot per chunk with plugged blocks" and "a slot per chunk". */
int mm_sparse_slots_set_full(struct mm_sparse_slots *s, bool full, char *err, size_t errlen);

/* Memslots this region uses now. */
unsigned mm_sparse_slots_count(const struct mm_sparse_slots *s);

#endif
