/*
 * guard.h - host-side protection of a region's unplugged blocks.
 *
 * The guest may only use plugged memory, but KVM memslots cover whole
 * chunks (sparse_slots.h), so a hostile guest could write unplugged blocks
 * inside a chunk that has a plugged one, or anywhere in the region when the
 * whole region stays mapped, and make minivmm allocate memory it never
 * plugged.  struct mm_guard closes that: it is a tracker listener that keeps
 * the host mapping of every unplugged block PROT_NONE (or PROT_READ while
 * the guest is allowed to read unplugged memory, i.e. virtio-mem without
 * VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE) and opens a block read-write before
 * it becomes plugged.  A guest access the protection refuses makes KVM_RUN
 * fail with EFAULT: the guest broke the virtio-mem contract and is stopped;
 * the host is unharmed.
 *
 * The device owning the region creates the guard and registers its listener
 * with the region's tracker BEFORE any other listener: populate must open
 * the memory before others (DMA mapping) touch it, and discard must close
 * it after they let go.  Main thread or the thread holding the device lock.
 */
#ifndef MINIVMM_MM_GUARD_H
#define MINIVMM_MM_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/tracker.h"

struct mm_guard {
    struct mm_listener listener;
    struct mm_tracker *tracker;
    uint64_t base; /* the region's guest-physical base */
    uint8_t *hva;  /* host address of base */
    bool readable; /* unplugged blocks PROT_READ instead of PROT_NONE */
};

/* Close the whole region (nothing is plugged yet).  Returns 0 or -1 with err. */
int mm_guard_init(struct mm_guard *g, struct mm_tracker *tracker, uint64_t base, uint64_t size,
                  uint8_t *hva, char *err, size_t errlen);

/* Let the guest read unplugged blocks (true) or not (false).  Returns 0 or -1 with err. */
int mm_guard_set_readable(struct mm_guard *g, bool readable, char *err, size_t errlen);

#endif
