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
 *
 * Every run of blocks in one state is one host mapping (VMA) of its own, and
 * a process has at most vm.max_map_count of them: past it mprotect fails, an
 * unplugged block would stay open and every later mmap of minivmm would fail.
 * So the guard has a budget of mappings (max_runs), and the owner asks
 * mm_guard_check() before every plug and unplug and refuses the request
 * (virtio-mem: BUSY) when it would go over: a guest that plugs and unplugs
 * alternate blocks meets the budget, never the kernel's limit.
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
    uint64_t base;     /* the region's guest-physical base */
    uint8_t *hva;      /* host address of base */
    bool readable;     /* unplugged blocks PROT_READ instead of PROT_NONE */
    uint64_t max_runs; /* host mappings the region may use (runs of blocks in one state) */
};

/*
 * Close the whole region (nothing is plugged yet); max_runs >= 3 +
 * MM_GUARD_PIECE_SLACK (one block plugged in the middle, in pieces).
 * Returns 0 or -1 with err.
 */
int mm_guard_init(struct mm_guard *g, struct mm_tracker *tracker, uint64_t base, uint64_t size,
                  uint8_t *hva, uint64_t max_runs, char *err, size_t errlen);

/*
 * A range plugged or unplugged in pieces (virtio-mem does that with long
 * work) may need this many more mappings half-way than at the end.
 */
#define MM_GUARD_PIECE_SLACK 2

/*
 * May [gpa, gpa + len) become plugged (plug true) or unplugged within the
 * budget, also when carried out in pieces?  Returns 0, or -1 with the reason
 * in err.  Not from a listener callback (it asks the tracker).
 */
int mm_guard_check(struct mm_guard *g, uint64_t gpa, uint64_t len, bool plug, char *err,
                   size_t errlen);

/* Let the guest read unplugged blocks (true) or not (false).  Returns 0 or -1 with err. */
int mm_guard_set_readable(struct mm_guard *g, bool readable, char *err, size_t errlen);

#endif
