/* tracker.c - plugged-block bitmap and listener notification; see tracker.h. */
#include "mm/tracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/bitmap.h"
#include "mm/memmap.h"
#include "vmm/util.h"

/* --- geometry ------------------------------------------------------------- */

int mm_tracker_init(struct mm_tracker *t, uint64_t base, uint64_t size, uint64_t block_size,
                    struct mm_backing *memory)
{
    memset(t, 0, sizeof(*t));
    if (block_size == 0 || (block_size & (block_size - 1)) || size == 0 || size % block_size ||
        base % block_size || base + size < base) {
        errno = EINVAL;
        return -1;
    }
    t->base = base;
    t->size = size;
    t->block_size = block_size;
    t->nr_blocks = size / block_size;
    t->memory = memory;
    t->nr_runs = 1;
    size_t words = bitmap_words(t->nr_blocks);
    t->bitmap = calloc(words, sizeof(uint64_t));
    t->kept = calloc(words, sizeof(uint64_t));
    t->stuck = calloc(words, sizeof(uint64_t));
    if (!t->bitmap || !t->kept || !t->stuck) {
        free(t->bitmap);
        free(t->kept);
        free(t->stuck);
        t->bitmap = t->kept = t->stuck = NULL;
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

void mm_tracker_destroy(struct mm_tracker *t)
{
    free(t->bitmap);
    free(t->kept);
    free(t->stuck);
    t->bitmap = t->kept = t->stuck = NULL;
    t->listeners = t->last = NULL;
    pthread_mutex_destroy(&t->lock);
}

bool mm_tracker_valid_range(const struct mm_tracker *t, uint64_t gpa, uint64_t len)
{
    if (len == 0 || gpa < t->base || gpa + len < gpa)
        return false;
    uint64_t off = gpa - t->base;
    return off % t->block_size == 0 && len % t->block_size == 0 && off <= t->size &&
           len <= t->size - off;
}

static uint64_t block_of(const struct mm_tracker *t, uint64_t gpa)
{
    return (gpa - t->base) / t->block_size;
}

static uint64_t gpa_of(const struct mm_tracker *t, uint64_t block)
{
    return t->base + block * t->block_size;
}

/* Locked: the state of blocks [first, first + n). */
static enum mm_block_state blocks_state(const struct mm_tracker *t, uint64_t first, uint64_t n)
{
    uint64_t end = first + n;
    bool any_plugged = bitmap_find(t->bitmap, first, end, true) < end;
    bool any_unplugged = bitmap_find(t->bitmap, first, end, false) < end;
    if (any_plugged && any_unplugged)
        return MM_BLOCKS_MIXED;
    return any_plugged ? MM_BLOCKS_PLUGGED : MM_BLOCKS_UNPLUGGED;
}

/* --- notification and memory ------------------------------------------------- */

/* Locked: mark blocks [first, first + n) kept (true) or not. */
static void set_kept(struct mm_tracker *t, uint64_t first, uint64_t n, bool kept)
{
    uint64_t before = bitmap_count(t->kept, first, n);
    bitmap_assign(t->kept, first, n, kept);
    t->nr_kept += (kept ? n : 0) - before;
}

/*
 * Locked: the listeners told let go of [gpa, gpa + len) (ok), so its memory
 * goes back to the host; or one did not, and the memory is kept.  partial:
 * not every listener was told (a populate was refused half-way), so blocks
 * kept from before may still be used by those not told: they stay kept.
 */
static void release_memory(struct mm_tracker *t, uint64_t gpa, uint64_t len, bool ok,
                           const char *why, bool partial)
{
    uint64_t first = block_of(t, gpa), n = len / t->block_size;
    if (ok && bitmap_count(t->stuck, first, n)) {
        ok = false;
        why = "a listener that stopped could not let go of it";
    }
    if (!ok) {
        set_kept(t, first, n, true);
        warn("[%#llx, +%#llx) stays allocated and is never given back while %s; %llu bytes are "
             "kept",
             (unsigned long long)gpa, (unsigned long long)len, why,
             (unsigned long long)(t->nr_kept * t->block_size));
        return;
    }
    /* Runs of blocks that may go: all of them, or those not kept from before. */
    uint64_t end = first + n;
    for (uint64_t i = partial ? bitmap_find(t->kept, first, end, false) : first; i < end;) {
        uint64_t stop = partial ? bitmap_find(t->kept, i, end, true) : end;
        set_kept(t, i, stop - i, false);
        char err[256];
        /* The state has already changed; a failure only costs memory (as in Cloud Hypervisor). */
        if (t->memory && mm_backing_discard(t->memory, gpa_of(t, i) - t->base,
                                            (stop - i) * t->block_size, err, sizeof(err)) < 0)
            warn("cannot give [%#llx, +%#llx) back to the host: %s",
                 (unsigned long long)gpa_of(t, i), (unsigned long long)((stop - i) * t->block_size),
                 err);
        i = partial ? bitmap_find(t->kept, stop, end, false) : end;
    }
}

/*
 * Locked: tell the listeners registered before `stop` (all of them if stop is
 * NULL) to discard, newest first; then release the memory, or keep it if one
 * of them (or holder, a listener that refused a populate) still uses it.
 */
static void discard_until(struct mm_tracker *t, struct mm_listener *stop, uint64_t gpa,
                          uint64_t len, const struct mm_listener *holder)
{
    char why[320] = "";
    bool ok = !holder;
    if (holder)
        snprintf(why, sizeof(why), "%s still uses part of it", holder->name);
    for (struct mm_listener *l = stop ? stop->prev : t->last; l; l = l->prev) {
        char err[256] = "";
        if (l->ops->discard(l, gpa, len, err, sizeof(err)) < 0 && ok) {
            ok = false;
            snprintf(why, sizeof(why), "%s still uses it (%s)", l->name, err);
        }
    }
    /* Listeners after the one that refused were never told: what they hold stays. */
    release_memory(t, gpa, len, ok, why, stop && stop->next);
}

/* Locked: populate every listener; on refusal roll back and return -1. */
static int populate_all(struct mm_tracker *t, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    for (struct mm_listener *l = t->listeners; l; l = l->next) {
        char why[256] = "";
        int r = l->ops->populate(l, gpa, len, why, sizeof(why));
        if (r < 0) {
            /* The memory may have been touched (a DMA map faults it in): give it back. */
            discard_until(t, l, gpa, len, r == MM_POPULATE_KEPT ? l : NULL);
            return errf(err, errlen, "%s refused [%#llx, +%#llx): %s", l->name,
                        (unsigned long long)gpa, (unsigned long long)len, why);
        }
    }
    return 0;
}

/*
 * Locked: the region's run count after [first, first + n), all in state
 * !plugged, became plugged: only the two edges of the range can change.
 */
static uint64_t runs_after(const struct mm_tracker *t, uint64_t first, uint64_t n, bool plugged)
{
    uint64_t runs = t->nr_runs;
    if (first > 0)
        runs = bitmap_test(t->bitmap, first - 1) == plugged ? runs - 1 : runs + 1;
    if (first + n < t->nr_blocks)
        runs = bitmap_test(t->bitmap, first + n) == plugged ? runs - 1 : runs + 1;
    return runs;
}

uint64_t mm_tracker_runs_after(struct mm_tracker *t, uint64_t gpa, uint64_t len, bool plugged)
{
    pthread_mutex_lock(&t->lock);
    uint64_t runs = t->nr_runs;
    if (mm_tracker_valid_range(t, gpa, len)) {
        uint64_t first = block_of(t, gpa), n = len / t->block_size;
        enum mm_block_state now = blocks_state(t, first, n);
        if (now == (plugged ? MM_BLOCKS_UNPLUGGED : MM_BLOCKS_PLUGGED))
            runs = runs_after(t, first, n, plugged);
    }
    pthread_mutex_unlock(&t->lock);
    return runs;
}

uint64_t mm_tracker_runs(struct mm_tracker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t runs = t->nr_runs;
    pthread_mutex_unlock(&t->lock);
    return runs;
}

int mm_tracker_plug(struct mm_tracker *t, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    if (!mm_tracker_valid_range(t, gpa, len))
        return errf(err, errlen, "[%#llx, +%#llx) is not whole blocks of the region",
                    (unsigned long long)gpa, (unsigned long long)len);
    pthread_mutex_lock(&t->lock);
    uint64_t first = block_of(t, gpa), n = len / t->block_size;
    int ret = -1;
    if (blocks_state(t, first, n) != MM_BLOCKS_UNPLUGGED)
        errf(err, errlen, "[%#llx, +%#llx) is not entirely unplugged", (unsigned long long)gpa,
             (unsigned long long)len);
    else if (populate_all(t, gpa, len, err, errlen) == 0) {
        t->nr_runs = runs_after(t, first, n, true);
        bitmap_assign(t->bitmap, first, n, true);
        set_kept(t, first, n, false); /* kept memory is in use again */
        t->nr_plugged += n;
        ret = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}

/*
 * Locked: clear the blocks, tell every listener, then release the memory
 * (the order of the first two is invisible: the lock is held throughout).
 */
static void unplug_run(struct mm_tracker *t, uint64_t first, uint64_t n)
{
    t->nr_runs = runs_after(t, first, n, false);
    bitmap_assign(t->bitmap, first, n, false);
    t->nr_plugged -= n;
    discard_until(t, NULL, gpa_of(t, first), n * t->block_size, NULL);
}

int mm_tracker_unplug(struct mm_tracker *t, uint64_t gpa, uint64_t len)
{
    if (!mm_tracker_valid_range(t, gpa, len))
        return -1;
    pthread_mutex_lock(&t->lock);
    uint64_t first = block_of(t, gpa), n = len / t->block_size;
    int ret = -1;
    if (blocks_state(t, first, n) == MM_BLOCKS_PLUGGED) {
        unplug_run(t, first, n);
        ret = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}

uint64_t mm_tracker_unplug_all(struct mm_tracker *t)
{
    uint64_t bytes = 0;
    pthread_mutex_lock(&t->lock);
    uint64_t i = bitmap_find(t->bitmap, 0, t->nr_blocks, true);
    while (i < t->nr_blocks) {
        uint64_t end = bitmap_find(t->bitmap, i, t->nr_blocks, false);
        unplug_run(t, i, end - i);
        bytes += (end - i) * t->block_size;
        i = bitmap_find(t->bitmap, end, t->nr_blocks, true);
    }
    pthread_mutex_unlock(&t->lock);
    return bytes;
}

/* --- listeners --------------------------------------------------------------- */

/* Locked: call fn for each run of blocks in state `plugged` in [0, limit_block). */
static void each_run_of(struct mm_tracker *t, uint64_t limit, bool plugged,
                        bool (*fn)(struct mm_tracker *t, void *ctx, uint64_t gpa, uint64_t len),
                        void *ctx)
{
    uint64_t i = bitmap_find(t->bitmap, 0, limit, plugged);
    while (i < limit) {
        uint64_t end = bitmap_find(t->bitmap, i, limit, !plugged);
        if (!fn(t, ctx, gpa_of(t, i), (end - i) * t->block_size))
            return;
        i = bitmap_find(t->bitmap, end, limit, plugged);
    }
}

/* Locked: call fn for each plugged run in [0, limit_block). */
static void each_run(struct mm_tracker *t, uint64_t limit,
                     bool (*fn)(struct mm_tracker *t, void *ctx, uint64_t gpa, uint64_t len),
                     void *ctx)
{
    each_run_of(t, limit, true, fn, ctx);
}

/*
 * Locked: a listener that is leaving (unregistered, or its registration
 * failed) still uses [gpa, gpa + len) of plugged memory.  Nobody will tell
 * it again, so that memory is never discarded: when unplugged, it is kept.
 */
static void mark_stuck(struct mm_tracker *t, const struct mm_listener *l, uint64_t gpa,
                       uint64_t len, const char *why)
{
    bitmap_assign(t->stuck, block_of(t, gpa), len / t->block_size, true);
    warn("%s cannot let go of [%#llx, +%#llx) (%s); that memory is never given back", l->name,
         (unsigned long long)gpa, (unsigned long long)len, why);
}

struct replay {
    struct mm_listener *l;
    char *err;
    size_t errlen;
    uint64_t failed_at; /* gpa of the run that was refused */
    bool failed;
};

static bool replay_populate(struct mm_tracker *t, void *ctx, uint64_t gpa, uint64_t len)
{
    struct replay *r = ctx;
    char why[256] = "";
    int ret = r->l->ops->populate(r->l, gpa, len, why, sizeof(why));
    if (ret == 0)
        return true;
    if (ret == MM_POPULATE_KEPT)
        mark_stuck(t, r->l, gpa, len, why);
    errf(r->err, r->errlen, "%s refused [%#llx, +%#llx): %s", r->l->name, (unsigned long long)gpa,
         (unsigned long long)len, why);
    r->failed = true;
    r->failed_at = gpa;
    return false;
}

/* The blocks stay plugged: nothing is released now. */
static bool replay_discard(struct mm_tracker *t, void *ctx, uint64_t gpa, uint64_t len)
{
    struct mm_listener *l = ctx;
    char err[256] = "";
    if (l->ops->discard(l, gpa, len, err, sizeof(err)) < 0)
        mark_stuck(t, l, gpa, len, err);
    return true;
}

int mm_tracker_register(struct mm_tracker *t, struct mm_listener *l, char *err, size_t errlen)
{
    pthread_mutex_lock(&t->lock);
    struct replay r = {.l = l, .err = err, .errlen = errlen};
    each_run(t, t->nr_blocks, replay_populate, &r);
    if (r.failed) {
        /* Undo the runs before the refused one: they all end before failed_at. */
        each_run(t, block_of(t, r.failed_at), replay_discard, l);
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    l->next = NULL;
    l->prev = t->last;
    if (t->last)
        t->last->next = l;
    else
        t->listeners = l;
    t->last = l;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void mm_tracker_unregister(struct mm_tracker *t, struct mm_listener *l)
{
    pthread_mutex_lock(&t->lock);
    for (struct mm_listener *p = t->listeners; p; p = p->next) {
        if (p != l)
            continue;
        if (l->prev)
            l->prev->next = l->next;
        else
            t->listeners = l->next;
        if (l->next)
            l->next->prev = l->prev;
        else
            t->last = l->prev;
        each_run(t, t->nr_blocks, replay_discard, l);
        l->next = l->prev = NULL;
        break;
    }
    pthread_mutex_unlock(&t->lock);
}

/* --- queries ------------------------------------------------------------------ */

enum mm_block_state mm_tracker_state(struct mm_tracker *t, uint64_t gpa, uint64_t len)
{
    if (!mm_tracker_valid_range(t, gpa, len))
        return MM_BLOCKS_MIXED;
    pthread_mutex_lock(&t->lock);
    enum mm_block_state s = blocks_state(t, block_of(t, gpa), len / t->block_size);
    pthread_mutex_unlock(&t->lock);
    return s;
}

bool mm_tracker_accessible(struct mm_tracker *t, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        len = 1;
    if (gpa < t->base || gpa + len < gpa || gpa - t->base >= t->size ||
        len > t->size - (gpa - t->base))
        return false;
    uint64_t first = block_of(t, gpa), last = block_of(t, gpa + len - 1);
    pthread_mutex_lock(&t->lock);
    bool ok = bitmap_find(t->bitmap, first, last + 1, false) == last + 1;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

uint64_t mm_tracker_plugged_bytes(struct mm_tracker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t b = t->nr_plugged * t->block_size;
    pthread_mutex_unlock(&t->lock);
    return b;
}

uint64_t mm_tracker_kept_bytes(struct mm_tracker *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t b = t->nr_kept * t->block_size;
    pthread_mutex_unlock(&t->lock);
    return b;
}

uint8_t *mm_tracker_hva(const struct mm_tracker *t, uint64_t gpa)
{
    if (!t->memory || gpa < t->base || gpa - t->base >= t->size)
        return NULL;
    return t->memory->hva + (gpa - t->base);
}

void mm_tracker_report(struct mm_tracker *t,
                       void (*fn)(void *opaque, const char *key, uint64_t bytes), void *opaque)
{
    pthread_mutex_lock(&t->lock);
    for (struct mm_listener *l = t->listeners; l; l = l->next)
        if (l->ops->held_bytes && l->status_key)
            fn(opaque, l->status_key, l->ops->held_bytes(l));
    pthread_mutex_unlock(&t->lock);
}

struct for_each_ctx {
    void (*fn)(void *opaque, uint64_t gpa, uint64_t len);
    void *opaque;
};

static bool for_each_cb(struct mm_tracker *t, void *ctx, uint64_t gpa, uint64_t len)
{
    struct for_each_ctx *c = ctx;
    (void)t;
    c->fn(c->opaque, gpa, len);
    return true;
}

void mm_tracker_for_each_plugged(struct mm_tracker *t,
                                 void (*fn)(void *opaque, uint64_t gpa, uint64_t len), void *opaque)
{
    struct for_each_ctx c = {.fn = fn, .opaque = opaque};
    pthread_mutex_lock(&t->lock);
    each_run(t, t->nr_blocks, for_each_cb, &c);
    pthread_mutex_unlock(&t->lock);
}

void mm_tracker_for_each_unplugged(struct mm_tracker *t,
                                   void (*fn)(void *opaque, uint64_t gpa, uint64_t len),
                                   void *opaque)
{
    struct for_each_ctx c = {.fn = fn, .opaque = opaque};
    pthread_mutex_lock(&t->lock);
    each_run_of(t, t->nr_blocks, false, for_each_cb, &c);
    pthread_mutex_unlock(&t->lock);
}
