/*
 * tracker.h - the sparse-memory tracker: which blocks of a device-memory
 * region (a virtio-mem region) are plugged, and who must hear about it.
 *
 * This is the seam between a device that plugs and unplugs memory and
 * everything that must follow it: host protection of unplugged blocks
 * (guard.h), the KVM memslots of the region (sparse_slots.h) and VFIO DMA
 * mappings (vfio/dma_listener.h).  Those register as listeners; the device
 * never knows who they are.  The rules a listener may rely on:
 *   - populate(range) is called BEFORE a range becomes plugged, for every
 *     listener in registration order.  A listener may refuse (a failed DMA
 *     map); it must then have undone its own part of the call.  Every
 *     listener already told is told discard(range), in reverse order,
 *     nothing changes, and the plug fails (virtio-mem answers BUSY).  The
 *     memory of the range is then given back, except blocks kept from
 *     before if listeners after the refusing one (never told) exist.
 *   - discard(range) is called when a plugged range is unplugged, before
 *     its memory is discarded, for every listener in reverse registration
 *     order (under the lock: nobody sees the range half-unplugged).  Only when every listener let
 *     go does the tracker give the memory back to the host (its backing's
 *     discard: MADV_DONTNEED / punch hole), i.e. memory is never discarded
 *     behind a listener's back.  A listener that cannot let go (an UNMAP_DMA
 *     failed) returns -1: the blocks still become unplugged for the guest,
 *     but their memory is KEPT - never discarded - and counted in
 *     mm_tracker_kept_bytes() until they are plugged again or a later
 *     discard of them succeeds.  The tracker says so in one line.
 *   - Ranges are whole blocks, non-empty, inside the region.  A discard
 *     range is plugged blocks, but not necessarily what one populate
 *     covered: the guest may unplug part of what it plugged, or a run that
 *     joins several plugs.  So a listener must be able to let go of any
 *     single block - type1 VFIO, which cannot split a mapping, maps each
 *     block on its own - and may let go of a contiguous run of its whole
 *     mappings in one call.  populate may name blocks the listener still
 *     holds from a failed discard (kept blocks); it must accept them.
 *   - mm_tracker_hva() gives the host address of any range of the region,
 *     mm_tracker_block_size() the granularity.
 *   - A listener registered while blocks are plugged gets populate() for
 *     every contiguous plugged run, in address order (replay); if it refuses,
 *     the runs replayed so far are discarded for it and registration fails.
 *   - Unregistering calls discard() for every plugged run first.  A leaving
 *     listener that cannot let go (discard fails on unregister or on a
 *     failed registration's undo, or its replay answers MM_POPULATE_KEPT)
 *     leaves those blocks "stuck": their memory is never discarded.
 *
 * Ownership and threads: the device that owns the region owns the tracker
 * (init at start-up, destroy at exit) and the backing it is given.  Every
 * call takes the tracker's mutex, and listeners run with it held, on the
 * thread that plugs or unplugs (the main thread for virtio-mem): a listener
 * must not call back into the tracker.  Lookups (mm_tracker_state,
 * mm_tracker_accessible) may come from any thread, e.g. the guest-memory
 * accessor on a vCPU thread.
 */
#ifndef MINIVMM_MM_TRACKER_H
#define MINIVMM_MM_TRACKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mm_backing;
struct mm_listener;

/* populate's answer when it refused and could not undo its part: keep the memory. */
#define MM_POPULATE_KEPT (-2)

struct mm_listener_ops {
    /*
     * Make [gpa, gpa + len) usable.  Returns 0; or -1 with a reason in err,
     * having undone its own part; or MM_POPULATE_KEPT if it refused and still
     * uses part of the range (its memory is then kept, as for discard).
     */
    int (*populate)(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen);
    /*
     * Stop using [gpa, gpa + len), which is about to be discarded.  Returns
     * 0, or -1 with a reason in err if the listener still uses (part of) it:
     * then the range's memory is kept, not discarded.
     */
    int (*discard)(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen);
    /*
     * Optional: the bytes of the region this listener holds now, reported by
     * the region's owner in its status under the listener's status_key.
     */
    uint64_t (*held_bytes)(struct mm_listener *l);
};

/* Embedded in the listener's own state (recover it with container_of). */
struct mm_listener {
    const struct mm_listener_ops *ops;
    const char *name;                /* for messages: "kvm memslots", "vfio dma" */
    const char *status_key;          /* with held_bytes: "dma_mapped_bytes" */
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
    uint64_t nr_kept;
    uint64_t nr_runs; /* maximal runs of blocks in one state (plugged or not), >= 1 */
    uint64_t *bitmap; /* bit n set: block n plugged */
    uint64_t *kept;   /* bit n set: block n unplugged, memory kept */
    uint64_t *stuck;  /* bit n set: a listener that left still uses block n: never discarded */
    struct mm_backing *memory;            /* host memory of the region, or NULL */
    struct mm_listener *listeners, *last; /* registration order */
};

/*
 * memory backs [base, base + size) from its start (NULL: no host memory,
 * nothing to discard; unit tests).  Returns 0, or -1 (errno EINVAL/ENOMEM)
 * if the geometry is invalid or no memory.
 */
int mm_tracker_init(struct mm_tracker *t, uint64_t base, uint64_t size, uint64_t block_size,
                    struct mm_backing *memory);
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
 * The blocks are marked unplugged and listeners told discard(), then the
 * memory is discarded (or kept, see above).  Returns 0, or -1
 * (nothing happens) if the range is invalid or not all plugged.
 */
int mm_tracker_unplug(struct mm_tracker *t, uint64_t gpa, uint64_t len);

/* Unplug every plugged block, one contiguous run at a time.  Returns the bytes unplugged. */
uint64_t mm_tracker_unplug_all(struct mm_tracker *t);

/* Register / unregister a listener, with replay as described above. */
int mm_tracker_register(struct mm_tracker *t, struct mm_listener *l, char *err, size_t errlen);
void mm_tracker_unregister(struct mm_tracker *t, struct mm_listener *l);

/* State of a valid range (MM_BLOCKS_MIXED for an invalid one). */
enum mm_block_state mm_tracker_state(struct mm_tracker *t, uint64_t gpa, uint64_t len);
/* True if [gpa, gpa + len) (any alignment, inside the region) lies in plugged blocks only. */
bool mm_tracker_accessible(struct mm_tracker *t, uint64_t gpa, uint64_t len);
uint64_t mm_tracker_plugged_bytes(struct mm_tracker *t);
/*
 * The number of maximal runs of blocks in one state the region would have
 * after [gpa, gpa + len) became plugged (plugged true) or unplugged: 1 when
 * everything is in one state, 3 after plugging one block in the middle.
 * Each run costs whoever protects blocks per state one host mapping
 * (guard.h).  For a range that is invalid or not all in the other state
 * (the plug or unplug would fail anyway): the number now.
 */
uint64_t mm_tracker_runs_after(struct mm_tracker *t, uint64_t gpa, uint64_t len, bool plugged);
/* The number of such runs now. */
uint64_t mm_tracker_runs(struct mm_tracker *t);
/* Bytes of unplugged blocks whose memory a listener would not let go of. */
uint64_t mm_tracker_kept_bytes(struct mm_tracker *t);
/* Host address of gpa inside the region, or NULL without host memory.  No lock needed. */
uint8_t *mm_tracker_hva(const struct mm_tracker *t, uint64_t gpa);
static inline uint64_t mm_tracker_block_size(const struct mm_tracker *t)
{
    return t->block_size;
}

/* fn(opaque, status_key, held_bytes) for each listener that reports what it holds. */
void mm_tracker_report(struct mm_tracker *t,
                       void (*fn)(void *opaque, const char *key, uint64_t bytes), void *opaque);

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
