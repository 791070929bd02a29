/*
 * virtqueue.c - split virtqueues (VIRTIO 1.2 §2.7), device side; see virtqueue.h.
 *
 * Everything the driver can write is treated as hostile input:
 *
 *  - Guest memory is reached only through mm_gpa(), for the exact range of
 *    one field or one buffer, every time it is used.  Ring fields are read
 *    and written with __atomic builtins on naturally aligned host pointers,
 *    so that each field is read exactly once: a value is copied, then
 *    validated, and only the copy is used afterwards (no double fetch).
 *  - Every address computation on a guest-supplied value is checked for
 *    64-bit overflow before mm_gpa() sees it.
 *  - Every loop is bounded by a constant: a chain walk visits at most
 *    VIRTQ_CHAIN_MAX descriptors and detects a loop on the first repeat.
 *
 * Memory ordering (the driver runs concurrently on other CPUs):
 *  - pop: the available index is loaded with acquire semantics before any
 *    ring entry or descriptor is read, pairing with the driver's barrier
 *    before it publishes the index.
 *  - push: the used element is stored first, then the used index with
 *    release semantics, pairing with the driver's read barrier.
 *  - should_interrupt: a full fence between publishing the used index and
 *    reading the driver's flags (store-load ordering; see the function).
 *
 * All ring fields are little endian (VIRTIO 1.x, no legacy interface); the
 * le*toh/htole* conversions document that, and are no-ops on x86.
 */
#include "devices/virtqueue.h"

#include <endian.h>
#include <string.h>

#include "vmm/util.h"

/* Descriptor table: struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }. */
#define VIRTQ_DESC_SIZE        16
#define VIRTQ_DESC_OFF_ADDR    0
#define VIRTQ_DESC_OFF_LEN     8
#define VIRTQ_DESC_OFF_FLAGS   12
#define VIRTQ_DESC_OFF_NEXT    14
#define VIRTQ_DESC_TABLE_ALIGN 16

/* Available ring: le16 flags; le16 idx; le16 ring[size]; le16 used_event. */
#define VIRTQ_AVAIL_OFF_FLAGS  0
#define VIRTQ_AVAIL_OFF_IDX    2
#define VIRTQ_AVAIL_OFF_RING   4
#define VIRTQ_AVAIL_ENTRY_SIZE 2
#define VIRTQ_AVAIL_TAIL_SIZE  2 /* used_event (only used with VIRTIO_F_EVENT_IDX) */
#define VIRTQ_AVAIL_ALIGN      2

/* Used ring: le16 flags; le16 idx; struct { le32 id; le32 len; } ring[size]; le16 avail_event. */
#define VIRTQ_USED_OFF_FLAGS    0
#define VIRTQ_USED_OFF_IDX      2
#define VIRTQ_USED_OFF_RING     4
#define VIRTQ_USED_ELEM_SIZE    8
#define VIRTQ_USED_ELEM_OFF_ID  0
#define VIRTQ_USED_ELEM_OFF_LEN 4
#define VIRTQ_USED_TAIL_SIZE    2 /* avail_event (only used with VIRTIO_F_EVENT_IDX) */
#define VIRTQ_USED_ALIGN        4

/* The largest total length of one chain: the used ring's len field is 32 bits. */
#define VIRTQ_CHAIN_BYTES_MAX UINT32_MAX

/* Scratch space for a reason nobody will read (functions without an err parameter). */
#define VIRTQ_SCRATCH_ERR 160

/* One descriptor, copied once out of guest memory and converted to host order. */
struct virtq_desc_copy {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* One of the three areas of a queue, for the layout checks. */
struct virtq_area {
    const char *name;
    uint64_t gpa;
    uint64_t size;
    uint64_t align;
};

/* --- guest field access ------------------------------------------------ */

/*
 * Host pointer for one naturally aligned field of len bytes at gpa, or NULL
 * if it is not in accessible guest memory or its host address is misaligned
 * (atomic access needs natural alignment).
 */
static void *virtq_field(const struct mm_map *mem, uint64_t gpa, uint64_t len)
{
    void *p = mm_gpa(mem, gpa, len);
    if (!p || (uintptr_t)p % len != 0)
        return NULL;
    return p;
}

static bool virtq_load16(const struct mm_map *mem, uint64_t gpa, uint16_t *val)
{
    uint16_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    *val = le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
    return true;
}

static bool virtq_load16_acquire(const struct mm_map *mem, uint64_t gpa, uint16_t *val)
{
    uint16_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    *val = le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
    return true;
}

static bool virtq_load32(const struct mm_map *mem, uint64_t gpa, uint32_t *val)
{
    uint32_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    *val = le32toh(__atomic_load_n(p, __ATOMIC_RELAXED));
    return true;
}

static bool virtq_load64(const struct mm_map *mem, uint64_t gpa, uint64_t *val)
{
    uint64_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    *val = le64toh(__atomic_load_n(p, __ATOMIC_RELAXED));
    return true;
}

static bool virtq_store32(const struct mm_map *mem, uint64_t gpa, uint32_t val)
{
    uint32_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    __atomic_store_n(p, htole32(val), __ATOMIC_RELAXED);
    return true;
}

static bool virtq_store16_release(const struct mm_map *mem, uint64_t gpa, uint16_t val)
{
    uint16_t *p = virtq_field(mem, gpa, sizeof(*p));
    if (!p)
        return false;
    __atomic_store_n(p, htole16(val), __ATOMIC_RELEASE);
    return true;
}

/* --- layout ------------------------------------------------------------ */

static bool virtq_size_valid(uint16_t size)
{
    return size != 0 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) == 0;
}

/* The three areas with the sizes of VIRTIO 1.2 §2.7 (including used_event and avail_event). */
static void virtq_areas(const struct virtq *vq, struct virtq_area areas[3])
{
    uint64_t n = vq->size;
    areas[0] = (struct virtq_area){"descriptor table", vq->desc_gpa, VIRTQ_DESC_SIZE * n,
                                   VIRTQ_DESC_TABLE_ALIGN};
    areas[1] = (struct virtq_area){"available ring", vq->avail_gpa,
                                   VIRTQ_AVAIL_OFF_RING + VIRTQ_AVAIL_ENTRY_SIZE * n +
                                       VIRTQ_AVAIL_TAIL_SIZE,
                                   VIRTQ_AVAIL_ALIGN};
    areas[2] = (struct virtq_area){
        "used ring", vq->used_gpa,
        VIRTQ_USED_OFF_RING + VIRTQ_USED_ELEM_SIZE * n + VIRTQ_USED_TAIL_SIZE, VIRTQ_USED_ALIGN};
}

static int virtq_check_area(const struct virtq_area *a, char *err, size_t errlen)
{
    if (a->gpa % a->align != 0)
        return errf(err, errlen, "%s at 0x%llx is not %llu-byte aligned", a->name,
                    (unsigned long long)a->gpa, (unsigned long long)a->align);
    if (a->gpa > UINT64_MAX - a->size)
        return errf(err, errlen, "%s [0x%llx, +0x%llx) wraps around the 64-bit address space",
                    a->name, (unsigned long long)a->gpa, (unsigned long long)a->size);
    return 0;
}

/*
 * Arithmetic checks only (no guest memory access): the size is valid, and
 * every area is aligned and does not wrap, so that base + offset of any
 * field inside an area cannot overflow.
 */
static int virtq_check_geometry(const struct virtq *vq, char *err, size_t errlen)
{
    if (!virtq_size_valid(vq->size))
        return errf(err, errlen, "queue size %u is not a power of two between 1 and %u", vq->size,
                    VIRTQ_MAX_SIZE);
    struct virtq_area areas[3];
    virtq_areas(vq, areas);
    for (unsigned i = 0; i < ARRAY_SIZE(areas); i++)
        if (virtq_check_area(&areas[i], err, errlen) < 0)
            return -1;
    return 0;
}

void virtq_reset(struct virtq *vq)
{
    *vq = (struct virtq){0};
}

int virtq_check_layout(const struct virtq *vq, const struct mm_map *mem, char *err, size_t errlen)
{
    if (virtq_check_geometry(vq, err, errlen) < 0)
        return -1;
    struct virtq_area areas[3];
    virtq_areas(vq, areas);
    for (unsigned i = 0; i < ARRAY_SIZE(areas); i++) {
        const struct virtq_area *a = &areas[i];
        void *host = mm_gpa(mem, a->gpa, a->size);
        if (!host)
            return errf(err, errlen, "%s [0x%llx, +0x%llx) is outside accessible guest memory",
                        a->name, (unsigned long long)a->gpa, (unsigned long long)a->size);
        if ((uintptr_t)host % a->align != 0)
            return errf(err, errlen, "%s at 0x%llx has a misaligned host mapping", a->name,
                        (unsigned long long)a->gpa);
    }
    return 0;
}

/* --- consuming chains -------------------------------------------------- */

/* Copy descriptor idx (< size, checked by the caller) out of the table, one load per field. */
static int virtq_read_desc(const struct virtq *vq, const struct mm_map *mem, uint16_t idx,
                           struct virtq_desc_copy *d, char *err, size_t errlen)
{
    uint64_t gpa = vq->desc_gpa + (uint64_t)idx * VIRTQ_DESC_SIZE;
    if (!virtq_load64(mem, gpa + VIRTQ_DESC_OFF_ADDR, &d->addr) ||
        !virtq_load32(mem, gpa + VIRTQ_DESC_OFF_LEN, &d->len) ||
        !virtq_load16(mem, gpa + VIRTQ_DESC_OFF_FLAGS, &d->flags) ||
        !virtq_load16(mem, gpa + VIRTQ_DESC_OFF_NEXT, &d->next)) {
        errf(err, errlen, "descriptor %u at 0x%llx is outside accessible guest memory", idx,
             (unsigned long long)gpa);
        return -1; /* explicit, so the compiler sees *d is only used on success */
    }
    return 0;
}

/* Validate one descriptor's buffer (len > 0): no wrap-around, inside accessible memory. */
static int virtq_check_buffer(const struct mm_map *mem, uint16_t idx,
                              const struct virtq_desc_copy *d, char *err, size_t errlen)
{
    if (d->addr > UINT64_MAX - d->len)
        return errf(err, errlen,
                    "descriptor %u: buffer [0x%llx, +0x%x) wraps around the 64-bit address space",
                    idx, (unsigned long long)d->addr, d->len);
    if (!mm_gpa(mem, d->addr, d->len))
        return errf(err, errlen,
                    "descriptor %u: buffer [0x%llx, +0x%x) is outside accessible guest memory", idx,
                    (unsigned long long)d->addr, d->len);
    return 0;
}

/*
 * Add descriptor idx to the chain.  Flags are checked for every descriptor
 * (*seen_write tracks whether a device-writable one came before); a
 * zero-length descriptor is then skipped: it adds no buffer and its address
 * is never checked or used (no byte of it can ever be accessed).
 */
static int virtq_add_desc(struct virtq_chain *chain, const struct mm_map *mem, uint16_t idx,
                          const struct virtq_desc_copy *d, bool *seen_write, char *err,
                          size_t errlen)
{
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    if (d->flags & VIRTQ_DESC_F_INDIRECT)
        return errf(
            err, errlen,
            "descriptor %u: INDIRECT descriptor, but VIRTIO_F_INDIRECT_DESC was not offered", idx);
    if (!writable && *seen_write)
        return errf(err, errlen, "device-readable descriptor %u after a device-writable one", idx);
    *seen_write |= writable;
    if (d->len == 0)
        return 0;
    if (virtq_check_buffer(mem, idx, d, err, errlen) < 0)
        return -1;
    if (chain->out_len + chain->in_len + d->len > VIRTQ_CHAIN_BYTES_MAX)
        return errf(err, errlen, "descriptor %u: the chain is longer than 0x%x bytes in total", idx,
                    VIRTQ_CHAIN_BYTES_MAX);

    unsigned *nr = writable ? &chain->nr_in : &chain->nr_out;
    struct virtq_buf *bufs = writable ? chain->in : chain->out;
    if (*nr >= VIRTQ_CHAIN_MAX) /* cannot happen: the walk visits at most VIRTQ_CHAIN_MAX */
        return errf(err, errlen, "descriptor %u: too many buffers in one chain", idx);
    bufs[(*nr)++] = (struct virtq_buf){.gpa = d->addr, .len = d->len};
    if (writable)
        chain->in_len += d->len;
    else
        chain->out_len += d->len;
    return 0;
}

/* True if descriptor idx is among the n already visited by this chain. */
static bool virtq_visited(const uint16_t *visited, unsigned n, uint16_t idx)
{
    for (unsigned i = 0; i < n; i++)
        if (visited[i] == idx)
            return true;
    return false;
}

/*
 * Walk the chain starting at head (< size) into *chain.  Bounded: at most
 * VIRTQ_CHAIN_MAX descriptors are read, and a repeated index (a loop) is
 * caught the first time it comes round.
 */
static int virtq_walk_chain(const struct virtq *vq, const struct mm_map *mem, uint16_t head,
                            struct virtq_chain *chain, char *err, size_t errlen)
{
    uint16_t visited[VIRTQ_CHAIN_MAX];
    unsigned nr_visited = 0;
    uint16_t idx = head;
    bool seen_write = false;

    chain->head = head;
    chain->nr_out = chain->nr_in = 0;
    chain->out_len = chain->in_len = 0;
    for (;;) {
        if (nr_visited == VIRTQ_CHAIN_MAX)
            return errf(err, errlen, "descriptor chain is longer than %u descriptors",
                        VIRTQ_CHAIN_MAX);
        visited[nr_visited++] = idx;

        struct virtq_desc_copy d;
        if (virtq_read_desc(vq, mem, idx, &d, err, errlen) < 0 ||
            virtq_add_desc(chain, mem, idx, &d, &seen_write, err, errlen) < 0)
            return -1;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (d.next >= vq->size)
            return errf(err, errlen,
                        "descriptor %u: next index %u is outside the queue of %u entries", idx,
                        d.next, vq->size);
        if (virtq_visited(visited, nr_visited, d.next))
            return errf(err, errlen,
                        "descriptor chain loops (descriptor %u links back to descriptor %u)", idx,
                        d.next);
        idx = d.next;
    }
}

/* Read the head index in the available ring slot for vq->last_avail and check it. */
static int virtq_read_head(const struct virtq *vq, const struct mm_map *mem, uint16_t *head,
                           char *err, size_t errlen)
{
    uint16_t slot = vq->last_avail & (vq->size - 1);
    uint64_t gpa = vq->avail_gpa + VIRTQ_AVAIL_OFF_RING + (uint64_t)slot * VIRTQ_AVAIL_ENTRY_SIZE;
    if (!virtq_load16(mem, gpa, head)) {
        errf(err, errlen, "available ring entry %u at 0x%llx is outside accessible guest memory",
             slot, (unsigned long long)gpa);
        return -1; /* explicit, so the compiler sees *head is only used on success */
    }
    if (*head >= vq->size)
        return errf(err, errlen,
                    "available ring entry %u: head index %u is outside the queue of %u entries",
                    slot, *head, vq->size);
    return 0;
}

enum virtq_pop_result virtq_pop(struct virtq *vq, const struct mm_map *mem,
                                struct virtq_chain *chain, char *err, size_t errlen)
{
    if (!vq->ready)
        return VIRTQ_EMPTY;
    if (virtq_check_geometry(vq, err, errlen) < 0)
        return VIRTQ_BROKEN;

    uint16_t avail_idx;
    uint64_t idx_gpa = vq->avail_gpa + VIRTQ_AVAIL_OFF_IDX;
    if (!virtq_load16_acquire(mem, idx_gpa, &avail_idx)) {
        errf(err, errlen, "available index at 0x%llx is outside accessible guest memory",
             (unsigned long long)idx_gpa);
        return VIRTQ_BROKEN;
    }
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
    if (pending == 0)
        return VIRTQ_EMPTY;
    if (pending > vq->size) {
        errf(err, errlen, "available index jumped by %u (queue has %u entries)", pending, vq->size);
        return VIRTQ_BROKEN;
    }

    uint16_t head;
    if (virtq_read_head(vq, mem, &head, err, errlen) < 0 ||
        virtq_walk_chain(vq, mem, head, chain, err, errlen) < 0)
        return VIRTQ_BROKEN;
    vq->last_avail++;
    return VIRTQ_CHAIN;
}

/* --- buffer contents --------------------------------------------------- */

/*
 * Copy between data and the buffers bufs[0..nr), starting offset bytes into
 * them.  Each piece goes through mm_gpa() for exactly its own range, so a
 * buffer that became inaccessible since virtq_pop() ends the copy early.
 */
static size_t virtq_copy(const struct mm_map *mem, const struct virtq_buf *bufs, unsigned nr,
                         uint64_t offset, uint8_t *data, size_t len, bool to_guest)
{
    size_t done = 0;
    if (nr > VIRTQ_CHAIN_MAX)
        nr = VIRTQ_CHAIN_MAX;
    for (unsigned i = 0; i < nr && done < len; i++) {
        uint64_t blen = bufs[i].len;
        if (offset >= blen) {
            offset -= blen;
            continue;
        }
        uint64_t n = blen - offset;
        if (n > len - done)
            n = len - done;
        uint8_t *host = mm_gpa(mem, bufs[i].gpa + offset, n);
        if (!host)
            break;
        if (to_guest)
            memcpy(host, data + done, n);
        else
            memcpy(data + done, host, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t virtq_chain_read(const struct mm_map *mem, const struct virtq_chain *chain, uint64_t offset,
                        void *buf, size_t len)
{
    return virtq_copy(mem, chain->out, chain->nr_out, offset, buf, len, false);
}

size_t virtq_chain_write(const struct mm_map *mem, const struct virtq_chain *chain, uint64_t offset,
                         const void *buf, size_t len)
{
    /* virtq_copy() only reads from data when copying to the guest. */
    return virtq_copy(mem, chain->in, chain->nr_in, offset, (uint8_t *)buf, len, true);
}

/* --- returning chains -------------------------------------------------- */

int virtq_push(struct virtq *vq, const struct mm_map *mem, uint16_t head, uint32_t written)
{
    char scratch[VIRTQ_SCRATCH_ERR];
    if (virtq_check_geometry(vq, scratch, sizeof(scratch)) < 0 || head >= vq->size)
        return -1;

    uint16_t slot = vq->used_idx & (vq->size - 1);
    uint64_t elem = vq->used_gpa + VIRTQ_USED_OFF_RING + (uint64_t)slot * VIRTQ_USED_ELEM_SIZE;
    if (!virtq_store32(mem, elem + VIRTQ_USED_ELEM_OFF_ID, head) ||
        !virtq_store32(mem, elem + VIRTQ_USED_ELEM_OFF_LEN, written))
        return -1;
    /* Release: the element above is visible before the index that publishes it. */
    uint16_t next = (uint16_t)(vq->used_idx + 1);
    if (!virtq_store16_release(mem, vq->used_gpa + VIRTQ_USED_OFF_IDX, next))
        return -1;
    vq->used_idx = next;
    return 0;
}

bool virtq_should_interrupt(const struct virtq *vq, const struct mm_map *mem)
{
    char scratch[VIRTQ_SCRATCH_ERR];
    /*
     * Full fence: the used index stored by virtq_push() must be visible
     * before the flags are read.  Otherwise the driver may set
     * NO_INTERRUPT, miss the new used index, clear NO_INTERRUPT again and
     * wait, while we read the stale flag and never interrupt it.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    uint16_t flags;
    if (virtq_check_geometry(vq, scratch, sizeof(scratch)) < 0 ||
        !virtq_load16(mem, vq->avail_gpa + VIRTQ_AVAIL_OFF_FLAGS, &flags))
        return true; /* a spurious interrupt is harmless, a missing one is not */
    return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
