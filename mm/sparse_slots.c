/* sparse_slots.c - per-chunk memslots that follow plugged memory; see sparse_slots.h. */
#include "mm/sparse_slots.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

uint64_t mm_sparse_chunk_size(uint64_t region_size, uint64_t block_size, unsigned max_slots)
{
    uint64_t chunk = MM_SPARSE_CHUNK_MIN;
    while (chunk < block_size)
        chunk <<= 1;
    while (max_slots && (region_size + chunk - 1) / chunk > max_slots)
        chunk <<= 1;
    return chunk;
}

static uint64_t chunk_base(const struct mm_sparse_slots *s, uint64_t c)
{
    return s->base + c * s->chunk_size;
}

static uint64_t chunk_len(const struct mm_sparse_slots *s, uint64_t c)
{
    uint64_t end = (c + 1) * s->chunk_size;
    return (end > s->size ? s->size : end) - c * s->chunk_size;
}

static bool chunk_wanted(const struct mm_sparse_slots *s, uint64_t c)
{
    return s->full || s->plugged[c] > 0;
}

/* Add or remove chunk c's slot so that it matches chunk_wanted(). */
static int chunk_sync(struct mm_sparse_slots *s, uint64_t c, char *err, size_t errlen)
{
    bool want = chunk_wanted(s, c);
    if (want && s->slot[c] < 0) {
        int id =
            mm_slot_add(s->map, chunk_base(s, c), chunk_len(s, c), s->hva + c * s->chunk_size, 0);
        if (id < 0)
            return errf(err, errlen, "cannot add a KVM memslot for [%#llx, +%#llx): %s",
                        (unsigned long long)chunk_base(s, c), (unsigned long long)chunk_len(s, c),
                        strerror(errno));
        s->slot[c] = id;
    } else if (!want && s->slot[c] >= 0) {
        /* On failure the slot stays (in KVM and here); the next sync tries again. */
        if (mm_slot_remove(s->map, s->slot[c]) < 0)
            warn_limited("cannot remove the KVM memslot of [%#llx, +%#llx): %s",
                         (unsigned long long)chunk_base(s, c), (unsigned long long)chunk_len(s, c),
                         strerror(errno));
        else
            s->slot[c] = -1;
    }
    return 0;
}

/* Add (sign +1) or remove (-1) the bytes of [gpa, gpa + len) from the chunk counts. */
static void account(struct mm_sparse_slots *s, uint64_t gpa, uint64_t len, int sign)
{
    uint64_t off = gpa - s->base, end = off + len;
    while (off < end) {
        uint64_t c = off / s->chunk_size;
        uint64_t stop = (c + 1) * s->chunk_size < end ? (c + 1) * s->chunk_size : end;
        if (sign > 0)
            s->plugged[c] += stop - off;
        else
            s->plugged[c] -= stop - off;
        off = stop;
    }
}

static int slots_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                          size_t errlen)
{
    struct mm_sparse_slots *s = container_of(l, struct mm_sparse_slots, listener);
    uint64_t first = (gpa - s->base) / s->chunk_size;
    uint64_t last = (gpa - s->base + len - 1) / s->chunk_size;
    account(s, gpa, len, +1);
    for (uint64_t c = first; c <= last; c++) {
        if (chunk_sync(s, c, err, errlen) < 0) {
            account(s, gpa, len, -1);
            for (uint64_t u = first; u <= last; u++)
                chunk_sync(s, u, NULL, 0); /* removing cannot fail */
            return -1;
        }
    }
    return 0;
}

/* Removing a memslot cannot fail. */
static int slots_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                         size_t errlen)
{
    (void)err;
    (void)errlen;
    struct mm_sparse_slots *s = container_of(l, struct mm_sparse_slots, listener);
    uint64_t first = (gpa - s->base) / s->chunk_size;
    uint64_t last = (gpa - s->base + len - 1) / s->chunk_size;
    account(s, gpa, len, -1);
    for (uint64_t c = first; c <= last; c++)
        chunk_sync(s, c, NULL, 0);
    return 0;
}

static const struct mm_listener_ops slots_ops = {
    .populate = slots_populate,
    .discard = slots_discard,
};

int mm_sparse_slots_init(struct mm_sparse_slots *s, struct mm_map *map, uint64_t base,
                         uint64_t size, uint8_t *hva, uint64_t chunk_size, const char *name,
                         char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (chunk_size == 0 || (chunk_size & (chunk_size - 1)) || size == 0)
        return errf(err, errlen, "invalid memslot chunk size %#llx",
                    (unsigned long long)chunk_size);
    s->listener.ops = &slots_ops;
    s->listener.name = name;
    s->map = map;
    s->base = base;
    s->size = size;
    s->hva = hva;
    s->chunk_size = chunk_size;
    s->nr_chunks = (size + chunk_size - 1) / chunk_size;
    s->plugged = calloc(s->nr_chunks, sizeof(*s->plugged));
    s->slot = malloc(s->nr_chunks * sizeof(*s->slot));
    if (!s->plugged || !s->slot)
        return errf(err, errlen, "out of memory for %llu memslot chunks",
                    (unsigned long long)s->nr_chunks);
    for (uint64_t c = 0; c < s->nr_chunks; c++)
        s->slot[c] = -1;
    return 0;
}

void mm_sparse_slots_destroy(struct mm_sparse_slots *s)
{
    if (s->slot) {
        s->full = false;
        memset(s->plugged, 0, s->nr_chunks * sizeof(*s->plugged));
        for (uint64_t c = 0; c < s->nr_chunks; c++)
            chunk_sync(s, c, NULL, 0);
    }
    free(s->plugged);
    free(s->slot);
    s->plugged = NULL;
    s->slot = NULL;
}

int mm_sparse_slots_set_full(struct mm_sparse_slots *s, bool full, char *err, size_t errlen)
{
    bool was = s->full;
    s->full = full;
    for (uint64_t c = 0; c < s->nr_chunks; c++) {
        if (chunk_sync(s, c, err, errlen) < 0) {
            s->full = was;
            for (uint64_t u = 0; u < s->nr_chunks; u++)
                chunk_sync(s, u, NULL, 0);
            return -1;
        }
    }
    return 0;
}

unsigned mm_sparse_slots_count(const struct mm_sparse_slots *s)
{
    unsigned n = 0;
    for (uint64_t c = 0; c < s->nr_chunks; c++)
        n += s->slot[c] >= 0;
    return n;
}
