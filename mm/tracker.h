/*
 * tracker.h - the sparse-memory tracker: which blocks of a device-memory
 * region (a virtio-mem region) are plugged, and who must hear about it.
 *
 * This is the seam between a device that plugs and unplugs memory and
 * everything that must follow it: the KVM memslots of the region
 * (sparse_slots.h) and, next, VFIO DMA mappings.  Those register as
 * listeners.  The rules:
 *   - populate(range) is called BEFORE a range becomes plugged, for every
 *     listener in registration order.  A listener may refuse (a failed DMA
 *     map); then every listener already told is told discard(range), in
 *     reverse order, nothing changes, and the plug fails (virtio-mem answers
 *     BUSY).
 *   - discard(range) is called BEFORE a plugged range is unplugged, for every
 *     listener in reverse registration order; it cannot fail.  Only after
 *     that does the owner discard the memory (MADV_DONTNEED / punch hole):
 *     a coordinated discard.  discard ranges are always whole runs that were
 *     populated, so a listener can unmap one contiguous run in one call.
 *   - A listener registered while blocks are plugged gets populate() for
 *     every contiguous plugged run, in address order (replay); if it refuses,
 *     the runs replayed so far are discarded for it and registration fails.
 *   - Unregistering calls discard() for every plugged run first.
 * Ranges passed to listeners are whole blocks, non-empty, inside the region.
 *
 * Ownership and threads: the device that owns the region owns the tracker
 * (init at start-up, destroy at exit).  Every call takes the tracker's
 * mutex, and listeners run with it held: a listener must not call back into
 * the tracker.  Lookups (mm_tracker_state) may come from any thread, e.g.
 * the guest-memory accessor on a vCPU thread.
 */
#ifndef MINIVMM_MM_TRACKER_H
#define MINIVMM_MM_TRACKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mm_listener;

struct mm_listener_ops {
    /* Make [gpa, gpa + len) usable.  Returns 0, or -1 with a reason in err. */
    int (*populate)(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen);
    /* Stop using [gpa, gpa + len), which is about to be discarded. */
    void (*discard)(struct mm_listener *l, uint64_t gpa, uint64_t len);
};

/* Embedded in the listener's own state (recover it with container_of). */
struct mm_listener {
    const struct mm_listener_ops *ops;
    const char *name;                /* for messages: "kvm memslots", "vfio 0000:00:03.0" */
    struct mm_listener *next, *prev; /* owned by the tracker while registered */
};

enum mm_block_state {
    MM_BLOCKS_PLUGGED,   /* every block of the range is plugged */
    MM_BLOCKS_UNPLUGGED, /* no block of the range is plugged */
    MM_BLOCKS_MIXED,
};

struct mm_tracker {
    pthread_mutex_t lock;
    uint64_t base;       /* guest-physical start of the region */
    uint64_t size;       /* bytes, a multiple of block_size */
    uint64_t block_size; /* a power of two */
    uint64_t nr_blocks;
    uint64_t nr_plugged;
    uint64_t *bitmap;                     /* bit n set: block n plugged */
    struct mm_listener *listeners, *last; /* registration order */
};

/* Returns 0, or -1 (errno EINVAL/ENOMEM) if the geometry is invalid or no memory. */
int mm_tracker_init(struct mm_tracker *t, uint64_t base, uint64_t size, uint64_t block_size);
void mm_tracker_destroy(struct mm_tracker *t);

/*
 * True if [gpa, gpa + len) is whole blocks inside the region (non-empty,
 * block-aligned, no wrap-around).
 */
bool mm_tracker_valid_range(const struct mm_tracker *t, uint64_t gpa, uint64_t len);

/*
 * Plug [gpa, gpa + len): a valid range whose blocks are all unplugged.
 * Returns 0, or -1 with a reason in err: the range is invalid or not all
 * unplugged (nothing happens), or a listener refused (rolled back).
 */
int mm_tracker_plug(struct mm_tracker *t, uint64_t gpa, uint64_t len, char *err, size_t errlen);

/*
 * Unplug [gpa, gpa + len): a valid range whose blocks are all plugged.
 * Listeners are told discard() first; then the blocks are marked unplugged.
 * The caller discards the memory afterwards.  Returns 0, or -1 (nothing
 * happens) if the range is invalid or not all plugged.
 */
int mm_tracker_unplug(struct mm_tracker *t, uint64_t gpa, uint64_t len);

/*
 * Unplug every plugged block, one contiguous run at a time: listeners'
 * discard(run), then the blocks are marked unplugged, then after(opaque,
 * run) (the caller's memory discard; may be NULL).  Returns the bytes unplugged.
 */
uint64_t mm_tracker_unplug_all(struct mm_tracker *t,
                               void (*after)(void *opaque, uint64_t gpa, uint64_t len),
                               void *opaque);

/* Register / unregister a listener, with replay as described above. */
int mm_tracker_register(struct mm_tracker *t, struct mm_listener *l, char *err, size_t errlen);
void mm_tracker_unregister(struct mm_tracker *t, struct mm_listener *l);

/* State of a valid range (MM_BLOCKS_MIXED for an invalid one). */
enum mm_block_state mm_tracker_state(struct mm_tracker *t, uint64_t gpa, uint64_t len);
/* True if [gpa, gpa + len) (any alignment, inside the region) lies in plugged blocks only. */
bool mm_tracker_accessible(struct mm_tracker *t, uint64_t gpa, uint64_t len);
uint64_t mm_tracker_plugged_bytes(struct mm_tracker *t);

/*
 * Call fn(opaque, gpa, len) for every maximal run of plugged blocks, in
 * address order, with the lock held (fn must not call into the tracker).
 */
void mm_tracker_for_each_plugged(struct mm_tracker *t,
                                 void (*fn)(void *opaque, uint64_t gpa, uint64_t len),
                                 void *opaque);
/* The same for every maximal run of unplugged blocks. */
void mm_tracker_for_each_unplugged(struct mm_tracker *t,
                                   void (*fn)(void *opaque, uint64_t gpa, uint64_t len),
                                   void *opaque);

#endif
