/*
 * test_virtqueue_fuzz.c - seeded, reproducible fuzzing of the guest-facing
 * device code: split virtqueues (devices/virtqueue.c), the virtio-mmio
 * transport (devices/virtio_mmio.c), the virtio-mem device
 * (devices/virtio_mem.c) and the guest-physical accessor (mm/memmap.c).
 *
 * Three tests, each driven by its own seeded splitmix64 generator:
 *
 *  1. fuzz_virtqueue_model: random queue geometries, descriptor tables and
 *     available rings in a fake guest memory (boot RAM plus a "gated" device
 *     region whose blocks open and close like plugged and unplugged
 *     virtio-mem blocks, closed blocks really PROT_NONE on the host).  Every
 *     virtq_pop(), virtq_chain_read/write() and virtq_push() is compared with
 *     a reference model written here from the contract in virtqueue.h, and
 *     guest memory is compared byte for byte with what the model says the
 *     device may have written.
 *  2. fuzz_virtio_mem_model: the whole device on a test VM without KVM:
 *     Linux's init sequence over MMIO, batches of request chains (well formed
 *     and broken, with buffers and even the rings inside virtio-mem blocks
 *     that the same batch unplugs), resizes, device and system resets,
 *     config-space reads.  A reference model of virtio-mem (VIRTIO 1.2
 *     §5.15, QEMU's check order) and of the queue predicts every used
 *     entry, every response, DEVICE_NEEDS_RESET, the interrupt bits, the
 *     config space, the memslots, and which blocks may be resident.
 *  3. fuzz_mmio_chaos: random register accesses of every width and offset,
 *     random rings and notifications, no model: only invariants that must
 *     hold whatever the guest does.
 *
 * Reproducing a failure: every failure message names the seed and the
 * iteration.  MINIVMM_FUZZ_SEED=<n> replaces the default seeds (each test
 * mixes in its own constant), MINIVMM_FUZZ_ITERS=<n> the iteration count.
 * Wire formats and offsets are spelled out here from the spec, not taken
 * from the devices' headers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio_mem.h"
#include "devices/virtio_mmio.h"
#include "devices/virtqueue.h"
#include "mm/memmap.h"
#include "mm/tracker.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#include "tests/unit/test_vm.h"
#include "tests/unit/virtio_spec.h"

#define CHAIN_MAX     64 /* VIRTQ_CHAIN_MAX, from virtqueue.h's contract */
#define QSIZE_MAX     32768
#define CFG_LEN       56          /* struct virtio_mem_config */
#define USABLE_EXTENT (256 * MiB) /* QEMU's usable-region policy: requested + 256 MiB */

/* ======================================================================== */
/* Generator, failure reports                                               */
/* ======================================================================== */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

static bool chance(struct rng *r, unsigned percent)
{
    return below(r, 100) < percent;
}

static uint64_t g_seed;
static unsigned g_iter;

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    return strtoull(v, NULL, 0);
}

/* The seed for one test: MINIVMM_FUZZ_SEED (mixed with the test's constant) or the default. */
static struct rng fuzz_start(uint64_t test_constant, const char *name)
{
    g_seed = env_u64("MINIVMM_FUZZ_SEED", 0x6d696e69766d6dULL) ^ test_constant;
    g_iter = 0;
    print_message("%s: seed %#llx\n", name, (unsigned long long)g_seed);
    return (struct rng){.s = g_seed};
}

static unsigned fuzz_iters(unsigned dflt)
{
    return (unsigned)env_u64("MINIVMM_FUZZ_ITERS", dflt);
}

static void fuzz_fail(int line, const char *cond, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail_msg("line %d: %s: %s (internal seed %#llx, iteration %u)", line, cond, msg,
             (unsigned long long)g_seed, g_iter);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__LINE__, #cond, __VA_ARGS__);                                               \
    } while (0)

/* ======================================================================== */
/* The model of guest memory: regions, some of them made of gated blocks    */
/* ======================================================================== */

struct mregion {
    uint64_t gpa, size;
    uint8_t *hva;
    const bool *open;    /* NULL: always accessible; else per block */
    uint64_t block_size; /* with open */
};

struct mmem {
    struct mregion r[8];
    unsigned nr;
};

static const struct mregion *mfind(const struct mmem *m, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        len = 1;
    if (gpa > UINT64_MAX - len)
        return NULL;
    for (unsigned i = 0; i < m->nr; i++) {
        const struct mregion *r = &m->r[i];
        if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
            continue;
        if (r->open) {
            for (uint64_t b = (gpa - r->gpa) / r->block_size;
                 b <= (gpa - r->gpa + len - 1) / r->block_size; b++)
                if (!r->open[b])
                    return NULL;
        }
        return r;
    }
    return NULL;
}

static bool maccessible(const struct mmem *m, uint64_t gpa, uint64_t len)
{
    return mfind(m, gpa, len) != NULL;
}

/* The model's own translation (no mm_gpa): host pointer of an accessible range, or NULL. */
static uint8_t *mhost(const struct mmem *m, uint64_t gpa, uint64_t len)
{
    const struct mregion *r = mfind(m, gpa, len);
    return r ? r->hva + (gpa - r->gpa) : NULL;
}

static bool mload(const struct mmem *m, uint64_t gpa, void *out, unsigned len)
{
    uint8_t *p = mhost(m, gpa, len);
    if (!p)
        return false;
    memcpy(out, p, len);
    return true;
}

static bool mload16(const struct mmem *m, uint64_t gpa, uint16_t *v)
{
    uint16_t le;
    if (!mload(m, gpa, &le, sizeof(le)))
        return false;
    *v = le16toh(le);
    return true;
}

/* Boot RAM as mm_map_setup_ram() lays it out (layout.h), checked against the map. */
static void mmem_add_boot_ram(struct mmem *m, const struct mm_map *map, uint64_t ram)
{
    const uint64_t starts[3] = {0, LAYOUT_LOW_RAM_END, LAYOUT_HIGH_RAM_START};
    const uint64_t ends[3] = {LAYOUT_LOW_RAM_END, LAYOUT_HIGH_RAM_START, ram};
    for (unsigned i = 0; i < 3; i++) {
        m->r[m->nr++] = (struct mregion){
            .gpa = starts[i], .size = ends[i] - starts[i], .hva = map->ram.hva + starts[i]};
        const struct mm_region *real = mm_map_find(map, starts[i]);
        assert_non_null(real);
        assert_int_equal(real->gpa, starts[i]);
        assert_int_equal(real->size, ends[i] - starts[i]);
    }
}

/* ======================================================================== */
/* The reference virtqueue (virtqueue.h's contract, written independently)  */
/* ======================================================================== */

enum { M_EMPTY = VIRTQ_EMPTY, M_CHAIN = VIRTQ_CHAIN, M_BROKEN = VIRTQ_BROKEN };

struct mq {
    uint16_t size;
    uint64_t desc, avail, used;
    bool ready;
    uint16_t last_avail, used_idx;
};

struct mbuf {
    uint64_t gpa;
    uint32_t len;
};

struct mchain {
    uint16_t head;
    unsigned nr_out, nr_in;
    struct mbuf out[CHAIN_MAX], in[CHAIN_MAX];
    uint64_t out_len, in_len;
};

static bool mq_geometry_ok(const struct mq *q)
{
    uint64_t n = q->size;
    if (n == 0 || n > QSIZE_MAX || (n & (n - 1)))
        return false;
    if (q->desc % 16 || q->avail % 2 || q->used % 4)
        return false;
    return q->desc <= UINT64_MAX - 16 * n && q->avail <= UINT64_MAX - (6 + 2 * n) &&
           q->used <= UINT64_MAX - (6 + 8 * n);
}

static int mq_pop(const struct mmem *m, struct mq *q, struct mchain *c)
{
    static bool visited[QSIZE_MAX];
    if (!q->ready)
        return M_EMPTY;
    if (!mq_geometry_ok(q))
        return M_BROKEN;
    uint16_t idx, head;
    if (!mload16(m, q->avail + A_IDX, &idx))
        return M_BROKEN;
    uint16_t pending = (uint16_t)(idx - q->last_avail);
    if (pending == 0)
        return M_EMPTY;
    if (pending > q->size)
        return M_BROKEN;
    if (!mload16(m, q->avail + A_RING + 2ULL * (q->last_avail % q->size), &head) || head >= q->size)
        return M_BROKEN;

    memset(visited, 0, q->size);
    memset(c, 0, sizeof(*c));
    c->head = head;
    bool seen_write = false;
    unsigned count = 0;
    for (uint16_t i = head;;) {
        if (count == CHAIN_MAX)
            return M_BROKEN;
        count++;
        visited[i] = true;
        uint8_t d[D_SIZE];
        if (!mload(m, q->desc + (uint64_t)i * D_SIZE, d, sizeof(d)))
            return M_BROKEN;
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
        memcpy(&addr, d, 8);
        memcpy(&len, d + 8, 4);
        memcpy(&flags, d + 12, 2);
        memcpy(&next, d + 14, 2);
        addr = le64toh(addr);
        len = le32toh(len);
        flags = le16toh(flags);
        next = le16toh(next);
        if (flags & F_INDIRECT)
            return M_BROKEN;
        bool w = flags & F_WRITE;
        if (!w && seen_write)
            return M_BROKEN;
        seen_write |= w;
        if (len) {
            if (!maccessible(m, addr, len) || c->out_len + c->in_len + len > UINT32_MAX)
                return M_BROKEN;
            if (w) {
                c->in[c->nr_in++] = (struct mbuf){addr, len};
                c->in_len += len;
            } else {
                c->out[c->nr_out++] = (struct mbuf){addr, len};
                c->out_len += len;
            }
        }
        if (!(flags & F_NEXT))
            break;
        if (next >= q->size || visited[next])
            return M_BROKEN;
        i = next;
    }
    q->last_avail++;
    return M_CHAIN;
}

/*
 * The copy contract: skip offset bytes of the part, then copy piece by
 * piece, stopping at the first piece that is not accessible now.  data is
 * read (to_guest) or filled; if expect is not NULL, guest writes are applied
 * to it through put (the expected image of guest memory).
 */
typedef void (*mput_fn)(void *ctx, uint64_t gpa, const uint8_t *data, uint64_t len);

static size_t mq_copy(const struct mmem *m, const struct mbuf *b, unsigned nr, uint64_t offset,
                      uint8_t *data, size_t len, bool to_guest, mput_fn put, void *ctx)
{
    size_t done = 0;
    for (unsigned i = 0; i < nr && done < len; i++) {
        if (offset >= b[i].len) {
            offset -= b[i].len;
            continue;
        }
        uint64_t n = b[i].len - offset;
        if (n > len - done)
            n = len - done;
        uint8_t *host = mhost(m, b[i].gpa + offset, n);
        if (!host)
            break;
        if (to_guest)
            put(ctx, b[i].gpa + offset, data + done, n);
        else
            memcpy(data + done, host, n);
        done += n;
        offset = 0;
    }
    return done;
}

/* The push contract: element, then index, each only if accessible; 0 or -1. */
static int mq_push(const struct mmem *m, struct mq *q, uint16_t head, uint32_t written, mput_fn put,
                   void *ctx)
{
    if (!mq_geometry_ok(q) || head >= q->size)
        return -1;
    uint64_t elem = q->used + U_RING + (uint64_t)(q->used_idx % q->size) * U_ELEM_SIZE;
    uint32_t id_le = htole32(head), len_le = htole32(written);
    if (!maccessible(m, elem, 4))
        return -1;
    put(ctx, elem, (const uint8_t *)&id_le, 4);
    if (!maccessible(m, elem + 4, 4))
        return -1;
    put(ctx, elem + 4, (const uint8_t *)&len_le, 4);
    uint16_t next = (uint16_t)(q->used_idx + 1), next_le = htole16(next);
    if (!maccessible(m, q->used + U_IDX, 2))
        return -1;
    put(ctx, q->used + U_IDX, (const uint8_t *)&next_le, 2);
    q->used_idx = next;
    return 0;
}

struct image {
    uint64_t gpa, size;
    uint8_t *want;
};

static void image_put(void *ctx, uint64_t gpa, const uint8_t *data, uint64_t len)
{
    struct image *im = ctx;
    /* Writes outside the window are not tracked (nothing to compare them with). */
    for (uint64_t i = 0; i < len; i++)
        if (gpa + i >= im->gpa && gpa + i - im->gpa < im->size)
            im->want[gpa + i - im->gpa] = data[i];
}

static void image_check(const struct image *im, const uint8_t *have, const char *what)
{
    if (memcmp(im->want, have, im->size) == 0)
        return;
    for (uint64_t i = 0; i < im->size; i++)
        CHECK(im->want[i] == have[i], "%s: guest byte %#llx is %#x, expected %#x", what,
              (unsigned long long)(im->gpa + i), have[i], im->want[i]);
}

/* ======================================================================== */
/* 1. virtqueue.c against the reference model                              */
/* ======================================================================== */

#define Q_RAM        (16 * MiB)
#define Q_WIN        0x100000ULL /* compared window: rings and buffers */
#define Q_WIN_SIZE   0x20000ULL
#define Q_DESC       0x100000ULL
#define Q_AVAIL      0x104000ULL
#define Q_USED       0x106000ULL
#define Q_ARENA      0x110000ULL
#define Q_ARENA_SIZE 0x10000ULL
#define Q_GATED      (8 * GiB)
#define Q_GBLOCK     (16 * KiB)
#define Q_GBLOCKS    4

struct qfx {
    struct mm_map mem;
    uint8_t *gated;
    bool open[Q_GBLOCKS];
    struct mmem model;
    uint8_t *expect_win, *expect_gated;
    char err[256];
};

static bool gated_accessible(void *opaque, uint64_t gpa, uint64_t len)
{
    struct qfx *f = opaque;
    for (uint64_t b = (gpa - Q_GATED) / Q_GBLOCK; b <= (gpa - Q_GATED + len - 1) / Q_GBLOCK; b++)
        if (!f->open[b])
            return false;
    return true;
}

/* Open or close a gated block; a closed one is PROT_NONE, so any host access to it faults. */
static void gate(struct qfx *f, unsigned b, bool open)
{
    assert_int_equal(
        mprotect(f->gated + b * Q_GBLOCK, Q_GBLOCK, open ? PROT_READ | PROT_WRITE : PROT_NONE), 0);
    f->open[b] = open;
}

static int qfx_setup(void **state)
{
    char err[256];
    struct qfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    mm_map_init(&f->mem);
    if (mm_map_setup_ram(&f->mem, Q_RAM, err, sizeof(err)) < 0)
        fail_msg("mm_map_setup_ram: %s", err);
    f->gated = mmap(NULL, Q_GBLOCKS * Q_GBLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    assert_true(f->gated != MAP_FAILED);
    for (unsigned b = 0; b < Q_GBLOCKS; b++)
        f->open[b] = true;
    struct mm_region r = {.gpa = Q_GATED,
                          .size = Q_GBLOCKS * Q_GBLOCK,
                          .type = MM_REGION_DEVICE,
                          .hva = f->gated,
                          .name = "gated",
                          .accessible = gated_accessible,
                          .opaque = f};
    assert_int_equal(mm_map_add(&f->mem, &r, err, sizeof(err)), 0);
    mmem_add_boot_ram(&f->model, &f->mem, Q_RAM);
    f->model.r[f->model.nr++] = (struct mregion){.gpa = Q_GATED,
                                                 .size = Q_GBLOCKS * Q_GBLOCK,
                                                 .hva = f->gated,
                                                 .open = f->open,
                                                 .block_size = Q_GBLOCK};
    f->expect_win = malloc(Q_WIN_SIZE);
    f->expect_gated = malloc(Q_GBLOCKS * Q_GBLOCK);
    assert_non_null(f->expect_win);
    assert_non_null(f->expect_gated);
    *state = f;
    return 0;
}

static int qfx_teardown(void **state)
{
    struct qfx *f = *state;
    munmap(f->gated, Q_GBLOCKS * Q_GBLOCK);
    mm_map_destroy(&f->mem);
    free(f->expect_win);
    free(f->expect_gated);
    free(f);
    return 0;
}

/* The driver writes through its own mapping; bytes it cannot reach (a closed block) are skipped. */
static void qput(struct qfx *f, uint64_t gpa, const void *data, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        uint8_t *p = mhost(&f->model, gpa + i, 1);
        if (p)
            *p = ((const uint8_t *)data)[i];
    }
}

static void qput16(struct qfx *f, uint64_t gpa, uint16_t v)
{
    v = htole16(v);
    qput(f, gpa, &v, 2);
}

/* An address for a buffer or a ring: mostly sensible, sometimes at an edge, sometimes wild. */
static uint64_t q_addr(struct rng *r, uint64_t len)
{
    switch (below(r, 16)) {
    case 0:
    case 1:
        return Q_GATED + below(r, Q_GBLOCKS * Q_GBLOCK);
    case 2:
        return Q_GATED + (1 + below(r, Q_GBLOCKS - 1)) * Q_GBLOCK - below(r, 16); /* straddle */
    case 3:
        return LAYOUT_LOW_RAM_END - below(r, 32); /* straddles two RAM regions */
    case 4:
        return Q_RAM - below(r, 64); /* end of RAM */
    case 5:
        return UINT64_MAX - below(r, 64) - (chance(r, 50) ? len : 0); /* wraps, or nearly */
    case 6:
        return rnd(r);
    case 7:
        return LAYOUT_PCI_HOLE_START + below(r, GiB); /* no memory there */
    default:
        return Q_ARENA + below(r, Q_ARENA_SIZE - 64);
    }
}

static uint32_t q_len(struct rng *r)
{
    switch (below(r, 16)) {
    case 0:
        return 0;
    case 1:
        return (uint32_t)rnd(r);
    case 2:
        return UINT32_MAX - (uint32_t)below(r, 4);
    default:
        return 1 + (uint32_t)below(r, 64);
    }
}

static void q_put_desc(struct qfx *f, const struct mq *q, uint16_t i, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    uint8_t d[D_SIZE];
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    flags = htole16(flags);
    next = htole16(next);
    memcpy(d, &a, 8);
    memcpy(d + 8, &l, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    qput(f, q->desc + (uint64_t)i * D_SIZE, d, sizeof(d));
}

/* A table that is partly well-formed chains (i -> i+1, readable then writable), partly garbage. */
static void q_fill_table(struct qfx *f, struct rng *r, const struct mq *q, unsigned n)
{
    bool structured = chance(r, 60);
    bool writing = false;
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = q_len(r);
        uint64_t addr = q_addr(r, len);
        uint16_t flags, next;
        if (structured) {
            if (chance(r, 30))
                writing = true;
            bool last = i + 1 == n || chance(r, 25);
            flags = (uint16_t)((last ? 0 : F_NEXT) | (writing ? F_WRITE : 0));
            next = (uint16_t)(i + 1);
            if (chance(r, 3))
                flags |= F_INDIRECT;
            if (chance(r, 3))
                next = (uint16_t)below(r, n + 2); /* loops, out of range */
            if (last)
                writing = false;
        } else {
            flags = (uint16_t)(chance(r, 10) ? rnd(r) : below(r, 4));
            next = (uint16_t)(chance(r, 5) ? rnd(r) : below(r, n + 2));
        }
        q_put_desc(f, q, (uint16_t)i, addr, len, flags, next);
    }
}

static uint16_t q_size(struct rng *r)
{
    switch (below(r, 20)) {
    case 0:
        return (uint16_t)rnd(r); /* mostly invalid */
    case 1:
        return 0;
    case 2:
        return 1;
    case 3:
        return 128;
    case 4:
        return 1024;
    default:
        return (uint16_t)(1u << (1 + below(r, 5))); /* 2..32 */
    }
}

/* Ring addresses: mostly the fixed ones, sometimes misaligned, gated, at an edge or wild. */
static uint64_t q_ring(struct rng *r, uint64_t fixed)
{
    if (chance(r, 85))
        return fixed;
    switch (below(r, 4)) {
    case 0:
        return fixed + 1 + below(r, 15);
    case 1:
        return Q_GATED + below(r, Q_GBLOCKS) * Q_GBLOCK + 16 * below(r, 8);
    case 2:
        return Q_RAM - 16 * below(r, 8);
    default:
        return rnd(r) & ~15ULL;
    }
}

static void q_snapshot(struct qfx *f)
{
    memcpy(f->expect_win, f->mem.ram.hva + Q_WIN, Q_WIN_SIZE);
    for (unsigned b = 0; b < Q_GBLOCKS; b++)
        if (f->open[b])
            memcpy(f->expect_gated + b * Q_GBLOCK, f->gated + b * Q_GBLOCK, Q_GBLOCK);
}

/* Both images: the RAM window and the gated region (open blocks only are compared). */
struct qimages {
    struct image win, gated;
};

static void q_image_put(void *ctx, uint64_t gpa, const uint8_t *data, uint64_t len)
{
    struct qimages *im = ctx;
    image_put(&im->win, gpa, data, len);
    image_put(&im->gated, gpa, data, len);
}

static void q_compare(struct qfx *f, struct qimages *im)
{
    image_check(&im->win, f->mem.ram.hva + Q_WIN, "RAM window");
    for (unsigned b = 0; b < Q_GBLOCKS; b++) {
        if (!f->open[b])
            continue;
        struct image blk = {.gpa = Q_GATED + b * Q_GBLOCK,
                            .size = Q_GBLOCK,
                            .want = f->expect_gated + b * Q_GBLOCK};
        image_check(&blk, f->gated + b * Q_GBLOCK, "gated block");
    }
}

static void check_chain_equal(const struct virtq_chain *c, const struct mchain *m)
{
    CHECK(c->head == m->head, "head %u, model %u", c->head, m->head);
    CHECK(c->nr_out == m->nr_out && c->nr_in == m->nr_in, "buffers %u+%u, model %u+%u", c->nr_out,
          c->nr_in, m->nr_out, m->nr_in);
    CHECK(c->out_len == m->out_len && c->in_len == m->in_len, "lengths differ from the model");
    for (unsigned i = 0; i < m->nr_out; i++)
        CHECK(c->out[i].gpa == m->out[i].gpa && c->out[i].len == m->out[i].len,
              "readable buffer %u differs", i);
    for (unsigned i = 0; i < m->nr_in; i++)
        CHECK(c->in[i].gpa == m->in[i].gpa && c->in[i].len == m->in[i].len,
              "writable buffer %u differs", i);
}

static void test_fuzz_virtqueue_model(void **state)
{
    struct qfx *f = *state;
    struct rng r = fuzz_start(0x7175657565ULL, "virtqueue model");
    unsigned iters = fuzz_iters(3000);
    unsigned seen[3] = {0}, short_copies = 0, push_fail = 0;
    static struct virtq_chain chain;
    static struct mchain mchain;

    for (g_iter = 0; g_iter < iters; g_iter++) {
        for (unsigned b = 0; b < Q_GBLOCKS; b++)
            gate(f, b, chance(&r, 80));
        struct mq q = {.size = q_size(&r),
                       .desc = q_ring(&r, Q_DESC),
                       .avail = q_ring(&r, Q_AVAIL),
                       .used = q_ring(&r, Q_USED),
                       .ready = chance(&r, 97),
                       .last_avail = (uint16_t)rnd(&r),
                       .used_idx = (uint16_t)rnd(&r)};
        unsigned n = q.size && q.size <= 1024 ? q.size : 32;
        q_fill_table(f, &r, &q, n);
        for (unsigned i = 0; i < n; i++)
            qput16(f, q.avail + A_RING + 2ULL * i,
                   (uint16_t)(chance(&r, 90) ? below(&r, n) : rnd(&r)));
        qput16(f, q.avail + A_FLAGS, (uint16_t)below(&r, 2));
        uint16_t ahead = (uint16_t)(chance(&r, 90) ? below(&r, n + 1u) : rnd(&r));
        qput16(f, q.avail + A_IDX, (uint16_t)(q.last_avail + ahead));

        struct virtq vq = {.size = q.size,
                           .desc_gpa = q.desc,
                           .avail_gpa = q.avail,
                           .used_gpa = q.used,
                           .ready = q.ready,
                           .last_avail = q.last_avail,
                           .used_idx = q.used_idx};
        for (unsigned pops = 0;; pops++) {
            CHECK(pops <= q.size, "more chains than the ring holds");
            q_snapshot(f);
            struct qimages im = {
                .win = {.gpa = Q_WIN, .size = Q_WIN_SIZE, .want = f->expect_win},
                .gated = {.gpa = Q_GATED, .size = Q_GBLOCKS * Q_GBLOCK, .want = f->expect_gated}};
            f->err[0] = '\0';
            uint16_t before = vq.last_avail;
            int got = virtq_pop(&vq, &f->mem, &chain, f->err, sizeof(f->err));
            int want = mq_pop(&f->model, &q, &mchain);
            CHECK(got == want, "virtq_pop returned %d, the model %d (%s)", got, want, f->err);
            CHECK(vq.last_avail == q.last_avail, "last_avail %u, model %u", vq.last_avail,
                  q.last_avail);
            seen[got]++;
            if (got == M_BROKEN) {
                CHECK(f->err[0] != '\0' && !strchr(f->err, '\n'), "no one-line reason");
                CHECK(vq.last_avail == before, "a broken pop consumed an entry");
            }
            q_compare(f, &im); /* a pop writes nothing */
            if (got != M_CHAIN)
                break;
            check_chain_equal(&chain, &mchain);

            /* The driver may pull memory away between pop and use (an unplug). */
            if (chance(&r, 20))
                gate(f, (unsigned)below(&r, Q_GBLOCKS), false);
            if (chance(&r, 5))
                gate(f, (unsigned)below(&r, Q_GBLOCKS), true);
            q_snapshot(f);

            uint8_t buf[300], want_buf[300];
            uint64_t off = chance(&r, 5) ? rnd(&r) : below(&r, mchain.out_len + 8);
            size_t len = (size_t)below(&r, sizeof(buf) + 1);
            size_t rd = virtq_chain_read(&f->mem, &chain, off, buf, len);
            size_t mrd = mq_copy(&f->model, mchain.out, mchain.nr_out, off, want_buf, len, false,
                                 NULL, NULL);
            CHECK(rd == mrd, "chain_read copied %zu bytes, the model %zu", rd, mrd);
            CHECK(memcmp(buf, want_buf, rd) == 0, "chain_read returned other bytes");
            short_copies += rd < len && off + len <= mchain.out_len;

            for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)rnd(&r);
            off = chance(&r, 5) ? rnd(&r) : below(&r, mchain.in_len + 8);
            len = (size_t)below(&r, sizeof(buf) + 1);
            size_t wr = virtq_chain_write(&f->mem, &chain, off, buf, len);
            size_t mwr =
                mq_copy(&f->model, mchain.in, mchain.nr_in, off, buf, len, true, q_image_put, &im);
            CHECK(wr == mwr, "chain_write copied %zu bytes, the model %zu", wr, mwr);

            uint16_t head = chance(&r, 95) ? chain.head : (uint16_t)rnd(&r);
            uint32_t written = (uint32_t)rnd(&r);
            int pr = virtq_push(&vq, &f->mem, head, written);
            int mpr = mq_push(&f->model, &q, head, written, q_image_put, &im);
            CHECK(pr == mpr, "virtq_push returned %d, the model %d", pr, mpr);
            CHECK(vq.used_idx == q.used_idx, "used_idx %u, model %u", vq.used_idx, q.used_idx);
            push_fail += pr < 0;
            (void)virtq_should_interrupt(&vq, &f->mem);
            q_compare(f, &im);
        }
    }
    /* The generator must reach every outcome, or it tests too little. */
    print_message("virtqueue model: %u chains, %u empty, %u broken, %u short reads, %u failed "
                  "pushes\n",
                  seen[M_CHAIN], seen[M_EMPTY], seen[M_BROKEN], short_copies, push_fail);
    assert_true(seen[M_CHAIN] > iters / 8);
    assert_true(seen[M_EMPTY] > iters / 40);
    assert_true(seen[M_BROKEN] > iters / 8);
    assert_true(push_fail > 0);
}

/* ======================================================================== */
/* 2. virtio-mem through the transport and the queue, against a model      */
/* ======================================================================== */

#define V_RAM        (16 * MiB)
#define V_REGION     (4 * GiB)
#define V_SIZE       (1 * GiB)
#define V_BLOCK      (2 * MiB)
#define V_BLOCKS     (V_SIZE / V_BLOCK)
#define V_CHUNK      (128 * MiB)
#define V_QSIZE      16
#define V_WIN        0x200000ULL /* compared window: rings (in RAM) and RAM buffer slots */
#define V_WIN_SIZE   0x10000ULL
#define V_DESC       0x200000ULL
#define V_AVAIL      0x201000ULL
#define V_USED       0x202000ULL
#define V_SLOTS      0x208000ULL /* chain j's RAM buffers: V_SLOTS + j * V_SLOT */
#define V_SLOT       0x400ULL
#define V_RING_SPAN  0x400ULL /* desc at +0, avail at +0x100, used at +0x200 */
#define V_MAX_CHAINS 5

struct vmodel {
    bool plugged[V_BLOCKS];
    bool plugged_at_start[V_BLOCKS]; /* of the current batch */
    unsigned epoch[V_BLOCKS];        /* unplugs of each block */
    unsigned epoch_at_start[V_BLOCKS];
    uint64_t nr_plugged, requested, usable;
    bool full_slots; /* memslot mode: a slot for every chunk (no UNPLUGGED_INACCESSIBLE) */
    bool live, needs_reset;
    struct mq q;
    uint64_t recent[64]; /* blocks unplugged since the last check (all of them if nr > 64) */
    unsigned nr_recent;
};

struct vfx {
    struct test_vm vm;
    struct virtio_mem *m;
    struct vmodel model;
    struct mmem mm;
    uint16_t avail_idx;
    uint8_t *expect;
};

static int vfx_setup(void **state)
{
    char err[512];
    struct vfx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    struct test_vm *vm = &fx->vm;
    test_vm_init(vm, V_RAM);

    struct virtio_mem_options o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "fuzz0");
    o.size = V_SIZE;
    o.block_size = V_BLOCK;
    o.backend = MM_BACKING_ANON;
    fx->m = calloc(1, sizeof(*fx->m));
    assert_non_null(fx->m);
    const struct virtio_mem_budget budget = {.memslots = MM_MAX_SLOTS / VIRTIO_MEM_MAX_DEVICES,
                                             .mappings = 8192};
    if (virtio_mem_init(fx->m, &vm->host, &vm->virtio_mmio, &o, V_REGION, &budget, err,
                        sizeof(err)) < 0)
        fail_msg("virtio_mem_init: %s", err);

    mmem_add_boot_ram(&fx->mm, &vm->mem, V_RAM);
    fx->mm.r[fx->mm.nr++] = (struct mregion){.gpa = V_REGION,
                                             .size = V_SIZE,
                                             .hva = fx->m->backing.hva,
                                             .open = fx->model.plugged,
                                             .block_size = V_BLOCK};
    fx->expect = malloc(V_WIN_SIZE);
    assert_non_null(fx->expect);
    *state = fx;
    return 0;
}

static int vfx_teardown(void **state)
{
    struct vfx *fx = *state;
    test_vm_destroy(&fx->vm); /* the devices free the virtio_mem */
    free(fx->expect);
    free(fx);
    return 0;
}

static void mmio_access(struct vfx *fx, uint64_t off, void *data, unsigned len, bool write)
{
    assert_true(bus_access(&fx->vm.mmio, fx->m->transport.base + off, data, len, write));
}

static uint32_t rd32(struct vfx *fx, uint64_t off)
{
    uint8_t b[4];
    mmio_access(fx, off, b, 4, false);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void wr32(struct vfx *fx, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    mmio_access(fx, off, b, 4, true);
}

static void run_loop(struct vfx *fx)
{
    while (evloop_run_once(&fx->vm.loop, 0) > 0) {
    }
}

static uint64_t irq_drain(struct vfx *fx)
{
    uint64_t v;
    if (read(fx->m->transport.irq_fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void vm_update_usable(struct vmodel *v, bool can_shrink)
{
    uint64_t u = 0;
    if (v->requested) {
        u = v->requested + USABLE_EXTENT;
        if (u > V_SIZE)
            u = V_SIZE;
        u = (u + V_BLOCK - 1) / V_BLOCK * V_BLOCK;
    }
    if (u >= v->usable || can_shrink)
        v->usable = u;
}

static void vm_unplug_block(struct vmodel *v, uint64_t b)
{
    v->plugged[b] = false;
    v->epoch[b]++;
    v->nr_plugged--;
    if (v->nr_recent < ARRAY_SIZE(v->recent))
        v->recent[v->nr_recent] = b;
    v->nr_recent++;
}

static void vm_unplug_all(struct vmodel *v)
{
    for (uint64_t b = 0; b < V_BLOCKS; b++)
        if (v->plugged[b])
            vm_unplug_block(v, b);
    vm_update_usable(v, true);
}

/* Response type, or -1 for a request the driver may not send (an unknown type). */
static int vm_handle(struct vmodel *v, uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
    *state = 0;
    if (type == REQ_UNPLUG_ALL) {
        vm_unplug_all(v);
        return RESP_ACK;
    }
    if (type > REQ_STATE)
        return -1;
    bool valid = nb != 0 && addr % V_BLOCK == 0 && addr >= V_REGION &&
                 addr - V_REGION <= v->usable &&
                 (uint64_t)nb * V_BLOCK <= v->usable - (addr - V_REGION);
    if (!valid)
        return RESP_ERROR;
    uint64_t first = (addr - V_REGION) / V_BLOCK, np = 0;
    for (uint64_t b = first; b < first + nb; b++)
        np += v->plugged[b];
    switch (type) {
    case REQ_PLUG:
        if ((v->nr_plugged + nb) * V_BLOCK > v->requested)
            return 1; /* NACK */
        if (np)
            return RESP_ERROR;
        for (uint64_t b = first; b < first + nb; b++)
            v->plugged[b] = true;
        v->nr_plugged += nb;
        return RESP_ACK;
    case REQ_UNPLUG:
        if (np != nb)
            return RESP_ERROR;
        for (uint64_t b = first; b < first + nb; b++)
            vm_unplug_block(v, b);
        return RESP_ACK;
    default:
        *state = np == nb ? S_PLUGGED : np == 0 ? S_UNPLUGGED : S_MIXED;
        return RESP_ACK;
    }
}

static void vm_config_bytes(const struct vmodel *v, uint8_t cfg[CFG_LEN])
{
    const uint64_t fields[] = {V_BLOCK,     0, V_REGION, V_SIZE, v->usable, v->nr_plugged * V_BLOCK,
                               v->requested};
    for (unsigned f = 0; f < ARRAY_SIZE(fields); f++)
        for (unsigned i = 0; i < 8; i++)
            cfg[f * 8 + i] = (uint8_t)(fields[f] >> (8 * i));
}

static uint64_t random_plugged_block(struct vfx *fx, struct rng *r)
{
    if (!fx->model.nr_plugged)
        return V_BLOCKS;
    for (;;) {
        uint64_t b = below(r, V_BLOCKS);
        if (fx->model.plugged[b])
            return b;
    }
}

/* Linux's init sequence; the rings in RAM or, sometimes, in a plugged block. */
static void driver_init(struct vfx *fx, struct rng *r)
{
    struct vmodel *v = &fx->model;
    bool inaccessible = chance(r, 75);
    wr32(fx, REG_STATUS, 0);
    wr32(fx, REG_STATUS, ST_ACK);
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER);
    wr32(fx, REG_DRIVER_FEAT_SEL, 1);
    wr32(fx, REG_DRIVER_FEATURES, 1); /* VIRTIO_F_VERSION_1 */
    wr32(fx, REG_DRIVER_FEAT_SEL, 0);
    wr32(fx, REG_DRIVER_FEATURES, inaccessible ? F_UNPLUGGED_INACCESSIBLE : 0);
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    CHECK(rd32(fx, REG_STATUS) == (ST_ACK | ST_DRIVER | ST_FEATURES_OK), "features refused");
    v->full_slots = !inaccessible;
    v->live = false;
    v->needs_reset = false;

    uint64_t base = V_DESC, b = random_plugged_block(fx, r);
    if (b < V_BLOCKS && chance(r, 25))
        base = V_REGION + b * V_BLOCK + below(r, V_BLOCK / V_RING_SPAN) * V_RING_SPAN;
    v->q = (struct mq){.size = V_QSIZE,
                       .desc = base,
                       .avail = base == V_DESC ? V_AVAIL : base + 0x100,
                       .used = base == V_DESC ? V_USED : base + 0x200};
    static const uint8_t zero[0x1000];
    assert_int_equal(mm_write(&fx->vm.mem, v->q.desc, zero, V_QSIZE * D_SIZE), 0);
    assert_int_equal(mm_write(&fx->vm.mem, v->q.avail, zero, 6 + 2 * V_QSIZE), 0);
    assert_int_equal(mm_write(&fx->vm.mem, v->q.used, zero, 6 + 8 * V_QSIZE), 0);
    fx->avail_idx = 0;
    wr32(fx, REG_QUEUE_SEL, 0);
    wr32(fx, REG_QUEUE_NUM, V_QSIZE);
    wr32(fx, REG_QUEUE_DESC_LO, (uint32_t)v->q.desc);
    wr32(fx, REG_QUEUE_DESC_HI, (uint32_t)(v->q.desc >> 32));
    wr32(fx, REG_QUEUE_DRIVER_LO, (uint32_t)v->q.avail);
    wr32(fx, REG_QUEUE_DRIVER_HI, (uint32_t)(v->q.avail >> 32));
    wr32(fx, REG_QUEUE_DEVICE_LO, (uint32_t)v->q.used);
    wr32(fx, REG_QUEUE_DEVICE_HI, (uint32_t)(v->q.used >> 32));
    wr32(fx, REG_QUEUE_READY, 1);
    v->q.ready = true;
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    v->live = true;
    run_loop(fx); /* DRIVER_OK rescans the queue: nothing there */
    wr32(fx, REG_INT_ACK, INT_USED | INT_CONFIG);
    irq_drain(fx);
}

/* A request address: mostly block aligned around the usable region, sometimes anything. */
static uint64_t req_addr(struct vfx *fx, struct rng *r)
{
    switch (below(r, 10)) {
    case 0:
        return rnd(r);
    case 1:
        return V_REGION + below(r, V_SIZE); /* misaligned */
    case 2: {
        uint64_t b = random_plugged_block(fx, r);
        return b < V_BLOCKS ? V_REGION + b * V_BLOCK : V_REGION;
    }
    default: {
        uint64_t span = fx->model.usable / V_BLOCK + 4;
        return V_REGION + (below(r, span) - 2) * V_BLOCK;
    }
    }
}

static uint16_t req_nb(struct rng *r)
{
    if (chance(r, 5))
        return 0;
    if (chance(r, 5))
        return (uint16_t)rnd(r);
    return (uint16_t)(1 + below(r, 4));
}

static void make_req(uint8_t out[REQ_LEN], uint16_t type, uint64_t addr, uint16_t nb, struct rng *r)
{
    for (unsigned i = 0; i < REQ_LEN; i++)
        out[i] = (uint8_t)rnd(r); /* padding: anything */
    for (unsigned i = 0; i < 2; i++)
        out[i] = (uint8_t)(type >> (8 * i));
    for (unsigned i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(addr >> (8 * i));
    for (unsigned i = 0; i < 2; i++)
        out[16 + i] = (uint8_t)(nb >> (8 * i));
}

struct vdesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* Where chain j puts a buffer of len bytes at offset off of its slot. */
static uint64_t buf_home(struct vfx *fx, struct rng *r, unsigned j, uint64_t off, uint32_t len)
{
    switch (below(r, 50)) {
    case 0:
    case 1:
    case 2:
    case 3: { /* a virtio-mem block, plugged or not */
        uint64_t b = chance(r, 90) ? random_plugged_block(fx, r) : below(r, V_BLOCKS);
        if (b >= V_BLOCKS) /* nothing plugged: mostly RAM after all */
            return chance(r, 80) ? V_SLOTS + j * V_SLOT + off : V_REGION + 0x10000 + off;
        return V_REGION + b * V_BLOCK + 0x10000 + j * V_SLOT + off;
    }
    case 4: { /* straddling the end of a block */
        uint64_t b = below(r, V_BLOCKS - 1);
        return V_REGION + (b + 1) * V_BLOCK - below(r, len + 1);
    }
    case 5:
        return chance(r, 50) ? LAYOUT_PCI_HOLE_START : V_REGION + V_SIZE - below(r, 16);
    default:
        return V_SLOTS + j * V_SLOT + off;
    }
}

/*
 * One chain: a well-formed request (possibly split, with zero-length
 * descriptors) or one of the ways a driver can get it wrong.  Returns the
 * number of descriptors in d[].
 */
static unsigned build_chain(struct vfx *fx, struct rng *r, unsigned j, struct vdesc *d,
                            unsigned max, uint8_t req[REQ_LEN])
{
    unsigned n = 0;
    uint16_t type = (uint16_t)(chance(r, 2) ? rnd(r) : below(r, 4));
    make_req(req, type, req_addr(fx, r), req_nb(r), r);

    /* Readable part: the request in 1-3 pieces, maybe short. */
    uint32_t out_total = chance(r, 3) ? (uint32_t)below(r, REQ_LEN) : REQ_LEN;
    unsigned pieces = 1 + (unsigned)below(r, 3);
    uint64_t off = 0;
    for (unsigned p = 0; p < pieces && n < max - 1; p++) {
        uint32_t len =
            p + 1 == pieces ? out_total - (uint32_t)off : (uint32_t)below(r, out_total - off + 1);
        if (chance(r, 10) && n < max - 2)
            d[n++] = (struct vdesc){.addr = rnd(r), .len = 0}; /* address never checked */
        d[n++] = (struct vdesc){.addr = buf_home(fx, r, j, off, len), .len = len};
        off += len;
    }
    /* Writable part: 1-2 pieces, at least RESP_LEN bytes unless short. */
    uint32_t in_total = chance(r, 3) ? (uint32_t)below(r, RESP_LEN) : RESP_LEN + below(r, 8);
    pieces = 1 + (unsigned)below(r, 2);
    off = 0x100;
    for (unsigned p = 0; p < pieces && n < max; p++) {
        uint32_t len = p + 1 == pieces ? in_total - (uint32_t)(off - 0x100)
                                       : (uint32_t)below(r, in_total - (off - 0x100) + 1);
        d[n++] = (struct vdesc){.addr = buf_home(fx, r, j, off, len), .len = len, .flags = F_WRITE};
        off += len;
    }
    /* The ways of breaking it that the buffers alone do not cover. */
    switch (below(r, 100)) {
    case 0:
        d[below(r, n)].flags |= F_INDIRECT;
        break;
    case 1:
        d[n - 1].flags &= (uint16_t)~F_WRITE; /* readable after writable */
        break;
    case 2:
        d[below(r, n)].len = UINT32_MAX;
        break;
    case 3:
        d[0].flags |= F_WRITE; /* the request is device-writable */
        break;
    default:
        break;
    }
    return n;
}

/* Byte i of chain j's request as the device will read it (0 where memory was discarded). */
struct pending {
    unsigned nd;
    uint16_t idx[V_QSIZE];
    struct vdesc d[V_QSIZE];
    uint8_t req[REQ_LEN];
};

static void write_buffers(struct vfx *fx, const struct pending *p)
{
    uint64_t off = 0;
    for (unsigned i = 0; i < p->nd; i++) {
        const struct vdesc *d = &p->d[i];
        if (d->flags & F_WRITE || d->len == 0)
            continue;
        for (uint32_t k = 0; k < d->len && off + k < REQ_LEN; k++) {
            uint8_t *h = mhost(&fx->mm, d->addr + k, 1);
            if (h)
                *h = p->req[off + k];
        }
        off += d->len;
    }
}

static void write_desc(struct vfx *fx, uint16_t i, const struct vdesc *d)
{
    uint8_t raw[D_SIZE];
    uint64_t a = htole64(d->addr);
    uint32_t l = htole32(d->len);
    uint16_t fl = htole16(d->flags), nx = htole16(d->next);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &l, 4);
    memcpy(raw + 12, &fl, 2);
    memcpy(raw + 14, &nx, 2);
    assert_int_equal(mm_write(&fx->vm.mem, fx->model.q.desc + (uint64_t)i * D_SIZE, raw, D_SIZE),
                     0);
}

/* What the device will read from the readable part: guest memory as of the batch start. */
static void model_read_request(struct vfx *fx, const struct mchain *c, uint8_t req[REQ_LEN])
{
    struct vmodel *v = &fx->model;
    uint64_t done = 0;
    for (unsigned i = 0; i < c->nr_out && done < REQ_LEN; i++) {
        for (uint64_t k = 0; k < c->out[i].len && done < REQ_LEN; k++, done++) {
            uint64_t gpa = c->out[i].gpa + k;
            if (gpa >= V_REGION && gpa - V_REGION < V_SIZE) {
                uint64_t b = (gpa - V_REGION) / V_BLOCK;
                if (!v->plugged_at_start[b] || v->epoch[b] != v->epoch_at_start[b]) {
                    req[done] = 0; /* discarded (or never touched): reads as zero */
                    continue;
                }
            }
            const struct mregion *reg = NULL;
            for (unsigned ri = 0; ri < fx->mm.nr; ri++)
                if (gpa >= fx->mm.r[ri].gpa && gpa - fx->mm.r[ri].gpa < fx->mm.r[ri].size)
                    reg = &fx->mm.r[ri];
            assert_non_null(reg);
            req[done] = reg->hva[gpa - reg->gpa];
        }
    }
}

struct batch_result {
    unsigned answered;
    bool broke;
    uint16_t heads[V_QSIZE * 2];
};

/* Simulate the device on the batch, updating the model and the expected RAM window. */
static void model_run(struct vfx *fx, struct image *im, struct batch_result *res)
{
    struct vmodel *v = &fx->model;
    static struct mchain c;
    memset(res, 0, sizeof(*res));
    if (!v->live || v->needs_reset || !v->q.ready)
        return;
    for (;;) {
        int pr = mq_pop(&fx->mm, &v->q, &c);
        if (pr == M_EMPTY)
            break;
        if (pr == M_BROKEN || c.out_len < REQ_LEN || c.in_len < RESP_LEN) {
            res->broke = true;
            break;
        }
        uint8_t req[REQ_LEN], resp[RESP_LEN];
        model_read_request(fx, &c, req);
        uint16_t type = (uint16_t)(req[0] | req[1] << 8), nb = (uint16_t)(req[16] | req[17] << 8);
        uint64_t addr = 0;
        for (unsigned i = 0; i < 8; i++)
            addr |= (uint64_t)req[8 + i] << (8 * i);
        uint16_t st;
        int t = vm_handle(v, type, addr, nb, &st);
        if (t < 0) {
            res->broke = true;
            break;
        }
        memset(resp, 0, sizeof(resp));
        resp[0] = (uint8_t)t;
        resp[8] = (uint8_t)st;
        if (mq_copy(&fx->mm, c.in, c.nr_in, 0, resp, RESP_LEN, true, image_put, im) != RESP_LEN ||
            mq_push(&fx->mm, &v->q, c.head, RESP_LEN, image_put, im) < 0) {
            res->broke = true;
            break;
        }
        CHECK(res->answered < ARRAY_SIZE(res->heads), "too many answers");
        res->heads[res->answered++] = c.head;
    }
    if (res->broke)
        v->needs_reset = true;
}

/* Invariants that hold after every step, checked against the model. */
static void check_device(struct vfx *fx, struct rng *r, bool full_scan)
{
    struct vmodel *v = &fx->model;
    uint8_t want[CFG_LEN];
    vm_config_bytes(v, want);
    for (unsigned off = 0; off < CFG_LEN; off += 4) {
        uint32_t got = rd32(fx, REG_CONFIG + off);
        uint32_t w = (uint32_t)want[off] | (uint32_t)want[off + 1] << 8 |
                     (uint32_t)want[off + 2] << 16 | (uint32_t)want[off + 3] << 24;
        CHECK(got == w, "config dword %#x is %#x, the model says %#x", off, got, w);
    }
    /* One random access of any width anywhere in config space: in range, or zeroes. */
    static const unsigned widths[] = {1, 2, 4, 8};
    unsigned len = widths[below(r, 4)], off = (unsigned)below(r, 0x100 - 8 + 1);
    uint8_t got[8];
    mmio_access(fx, REG_CONFIG + off, got, len, false);
    for (unsigned i = 0; i < len; i++)
        CHECK(got[i] == (off + len <= CFG_LEN ? want[off + i] : 0),
              "config byte %#x of a %u-byte read at %#x", off + i, len, off);

    CHECK(mm_tracker_plugged_bytes(&fx->m->tracker) == v->nr_plugged * V_BLOCK,
          "tracker has %llu bytes plugged, model %llu",
          (unsigned long long)mm_tracker_plugged_bytes(&fx->m->tracker),
          (unsigned long long)(v->nr_plugged * V_BLOCK));
    uint32_t st = rd32(fx, REG_STATUS);
    CHECK(!!(st & ST_NEEDS_RESET) == v->needs_reset, "status %#x, model needs_reset %d", st,
          v->needs_reset);
    CHECK(!!(st & ST_DRIVER_OK) == v->live, "status %#x, model live %d", st, v->live);

    /* Memslots: a slot per chunk with a plugged block, or every chunk without the promise. */
    unsigned want_slots = 0;
    for (uint64_t c = 0; c < V_SIZE / V_CHUNK; c++) {
        bool any = v->full_slots;
        for (uint64_t b = c * (V_CHUNK / V_BLOCK); b < (c + 1) * (V_CHUNK / V_BLOCK); b++)
            any |= v->plugged[b];
        want_slots += any;
    }
    CHECK(mm_sparse_slots_count(&fx->m->slots) == want_slots, "%u memslots, model %u",
          mm_sparse_slots_count(&fx->m->slots), want_slots);

    /* Unplugged blocks: no accessor pointer, and no host memory behind them. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    static unsigned char vec[V_BLOCK / 4096];
    bool recent = v->nr_recent && v->nr_recent <= ARRAY_SIZE(v->recent);
    full_scan |= v->nr_recent > ARRAY_SIZE(v->recent);
    unsigned nr = full_scan ? V_BLOCKS : recent ? v->nr_recent + 8 : 8;
    for (unsigned k = 0; k < nr; k++) {
        /* Every block just unplugged (its memory must be gone), then a few at random. */
        uint64_t b = full_scan ? k : recent && k < v->nr_recent ? v->recent[k] : below(r, V_BLOCKS);
        uint64_t gpa = V_REGION + b * V_BLOCK;
        void *p = mm_gpa(&fx->vm.mem, gpa + below(r, V_BLOCK), 1);
        CHECK((p != NULL) == v->plugged[b], "block %llu: accessor %p, model plugged %d",
              (unsigned long long)b, p, v->plugged[b]);
        if (v->plugged[b])
            continue;
        assert_int_equal(mincore(fx->m->backing.hva + b * V_BLOCK, V_BLOCK, vec), 0);
        for (size_t i = 0; i < V_BLOCK / page; i++)
            CHECK(!(vec[i] & 1), "unplugged block %llu has resident page %zu",
                  (unsigned long long)b, i);
    }
    v->nr_recent = 0;
}

static void vmodel_system_reset(struct vmodel *v)
{
    vm_unplug_all(v);
    v->full_slots = false; /* back to sparse until the driver negotiates again */
    v->live = false;
    v->needs_reset = false;
    v->q.ready = false;
}

/* Write 1-5 chains (and garbage around them) into the rings and publish them. */
static void publish_batch(struct vfx *fx, struct rng *r)
{
    struct vmodel *v = &fx->model;
    static struct pending p[V_MAX_CHAINS];
    unsigned k = 1 + (unsigned)below(r, V_MAX_CHAINS), used = 0;
    uint16_t perm[V_QSIZE];
    for (unsigned i = 0; i < V_QSIZE; i++)
        perm[i] = (uint16_t)i;
    for (unsigned i = V_QSIZE - 1; i > 0; i--) {
        unsigned j = (unsigned)below(r, i + 1);
        uint16_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* Garbage in every descriptor first; the chains overwrite theirs. */
    for (unsigned i = 0; i < V_QSIZE; i++) {
        struct vdesc g = {.addr = rnd(r),
                          .len = (uint32_t)rnd(r),
                          .flags = (uint16_t)rnd(r),
                          .next = (uint16_t)rnd(r)};
        write_desc(fx, (uint16_t)i, &g);
    }
    for (unsigned j = 0; j < k; j++) {
        struct pending *c = &p[j];
        c->nd = 0;
        if (used + 2 > V_QSIZE)
            break;
        unsigned nd = build_chain(fx, r, j, c->d, V_QSIZE - used > 6 ? 6 : V_QSIZE - used, c->req);
        for (unsigned i = 0; i < nd; i++)
            c->idx[i] = perm[used + i];
        for (unsigned i = 0; i < nd; i++) {
            if (i + 1 < nd) {
                c->d[i].flags |= F_NEXT;
                c->d[i].next = c->idx[i + 1];
            }
        }
        if (chance(r, 2)) /* a loop or a link out of the table */
            c->d[below(r, nd)].next = (uint16_t)(chance(r, 50) ? c->idx[0] : V_QSIZE);
        used += nd;
        c->nd = nd;
        write_buffers(fx, c);
        for (unsigned i = 0; i < nd; i++)
            write_desc(fx, c->idx[i], &c->d[i]);
        uint16_t head = c->idx[0];
        if (chance(r, 2))
            head = (uint16_t)(chance(r, 50) ? rnd(r) : c->idx[nd - 1]);
        uint16_t le = htole16(head);
        assert_int_equal(
            mm_write(&fx->vm.mem, v->q.avail + A_RING + 2ULL * (fx->avail_idx % V_QSIZE), &le, 2),
            0);
        fx->avail_idx++;
    }
    uint16_t flags = htole16(chance(r, 20) ? A_NO_INTR : 0);
    assert_int_equal(mm_write(&fx->vm.mem, v->q.avail + A_FLAGS, &flags, 2), 0);
    uint16_t idx = fx->avail_idx;
    if (chance(r, 2))
        idx = (uint16_t)(idx + V_QSIZE + 1 + below(r, 100)); /* jumps too far */
    uint16_t le = htole16(idx);
    assert_int_equal(mm_write(&fx->vm.mem, v->q.avail + A_IDX, &le, 2), 0);
}

/* One batch of chains: publish, notify, let the main loop run, compare with the model. */
static void run_batch(struct vfx *fx, struct rng *r, unsigned *answered_total,
                      unsigned *broken_total)
{
    struct vmodel *v = &fx->model;
    /* The rings may be gone (a block unplugged under them): the device must notice. */
    if (maccessible(&fx->mm, v->q.desc, V_QSIZE * D_SIZE) &&
        maccessible(&fx->mm, v->q.avail, 6 + 2 * V_QSIZE) &&
        maccessible(&fx->mm, v->q.used, 6 + 8 * V_QSIZE))
        publish_batch(fx, r);

    /* Model first, on the memory as it is now; then the device; then compare. */
    wr32(fx, REG_INT_ACK, INT_USED | INT_CONFIG);
    irq_drain(fx);
    memcpy(v->plugged_at_start, v->plugged, sizeof(v->plugged));
    memcpy(v->epoch_at_start, v->epoch, sizeof(v->epoch));
    memcpy(fx->expect, fx->vm.mem.ram.hva + V_WIN, V_WIN_SIZE);
    struct image im = {.gpa = V_WIN, .size = V_WIN_SIZE, .want = fx->expect};
    bool was_broken = v->needs_reset;
    struct batch_result res;
    model_run(fx, &im, &res);
    uint16_t flags_now;
    bool flags_ok = mload16(&fx->mm, v->q.avail + A_FLAGS, &flags_now);

    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);

    image_check(&im, fx->vm.mem.ram.hva + V_WIN, "RAM window after a batch");
    uint32_t ist = rd32(fx, REG_INT_STATUS);
    bool want_used = res.answered && (!flags_ok || !(flags_now & A_NO_INTR));
    CHECK(!!(ist & INT_USED) == want_used, "InterruptStatus %#x, %u answered", ist, res.answered);
    CHECK(!!(ist & INT_CONFIG) == (v->needs_reset && !was_broken),
          "InterruptStatus %#x, needs_reset %d", ist, v->needs_reset);
    CHECK((irq_drain(fx) > 0) == (ist != 0), "interrupt line and InterruptStatus %#x", ist);
    *answered_total += res.answered;
    *broken_total += res.broke;
}

static void test_fuzz_virtio_mem_model(void **state)
{
    struct vfx *fx = *state;
    struct vmodel *v = &fx->model;
    struct rng r = fuzz_start(0x7669727469ULL, "virtio-mem model");
    unsigned iters = fuzz_iters(1500);
    unsigned answered = 0, broken = 0, direct = 0, resets = 0;
    char err[256];

    vm_update_usable(v, true);
    driver_init(fx, &r);
    for (g_iter = 0; g_iter < iters; g_iter++) {
        unsigned what = (unsigned)below(&r, 100);
        if (v->needs_reset || !v->live) {
            driver_init(fx, &r);
        } else if (what < 50) {
            run_batch(fx, &r, &answered, &broken);
        } else if (what < 65) {
            uint64_t req =
                chance(&r, 80) ? below(&r, 33) * V_BLOCK : below(&r, V_BLOCKS + 1) * V_BLOCK;
            assert_int_equal(virtio_mem_resize(fx->m, req, err, sizeof(err)), 0);
            v->requested = req;
            vm_update_usable(v, false);
            /* Refused sizes change nothing. */
            assert_int_equal(virtio_mem_resize(fx->m, req + 1, err, sizeof(err)), -1);
            assert_int_equal(virtio_mem_resize(fx->m, V_SIZE + V_BLOCK, err, sizeof(err)), -1);
        } else if (what < 85) {
            /* A request straight to the handler, as serve_chain makes it. */
            struct virtio_mem_req req;
            make_req((uint8_t *)&req, (uint16_t)(chance(&r, 3) ? rnd(&r) : below(&r, 4)),
                     req_addr(fx, &r), req_nb(&r), &r);
            uint16_t st = 0xbeef, mst;
            virtio_mmio_lock(&fx->m->transport);
            int got = virtio_mem_handle_request(fx->m, &req, &st);
            virtio_mmio_unlock(&fx->m->transport);
            int want =
                vm_handle(v, le16toh(req.type), le64toh(req.addr), le16toh(req.nb_blocks), &mst);
            CHECK(got == want, "response %d, model %d", got, want);
            CHECK(got < 0 || st == mst, "state %u, model %u", st, mst);
            direct++;
        } else if (what < 90) {
            /* Write something into a plugged block, as the guest would use it. */
            uint64_t b = random_plugged_block(fx, &r);
            if (b < V_BLOCKS) {
                uint8_t *p = mm_gpa(&fx->vm.mem, V_REGION + b * V_BLOCK, V_BLOCK);
                CHECK(p != NULL, "plugged block %llu not accessible", (unsigned long long)b);
                p[below(&r, V_BLOCK)] = (uint8_t)rnd(&r);
            }
        } else if (what < 95) {
            wr32(fx, REG_STATUS, 0); /* device reset: the blocks stay */
            v->live = false;
            v->needs_reset = false;
            v->q.ready = false;
            resets++;
        } else {
            fx->m->transport.dev.ops->reset(&fx->m->transport.dev);
            vmodel_system_reset(v);
            resets++;
        }
        check_device(fx, &r, g_iter % 100 == 0);
    }
    check_device(fx, &r, true);
    print_message("virtio-mem model: %u chains answered, %u batches broken, %u direct requests, "
                  "%u resets\n",
                  answered, broken, direct, resets);
    assert_true(answered > iters / 8);
    assert_true(broken > iters / 100);
    assert_true(broken < iters / 2);
}

/* ======================================================================== */
/* 3. Register chaos: no model, only what must hold whatever the guest does */
/* ======================================================================== */

static uint32_t chaos_value(struct rng *r)
{
    static const uint32_t interesting[] = {
        0,          1,          2,          3,        4,        8,        15,       16,
        64,         127,        128,        129,      0x8000,   0xffff,   0x10000,  0x7fffffff,
        0x80000000, 0xfffffffe, 0xffffffff, 0x200000, 0x201000, 0x202000, 0x200001, 0x1fffff0};
    if (chance(r, 70))
        return interesting[below(r, ARRAY_SIZE(interesting))];
    return (uint32_t)rnd(r);
}

static void test_fuzz_mmio_chaos(void **state)
{
    struct vfx *fx = *state;
    struct rng r = fuzz_start(0x63616f73ULL, "mmio chaos");
    unsigned iters = fuzz_iters(20000);
    struct virtio_mmio *t = &fx->m->transport;
    char err[256];
    unsigned ready_seen = 0, notified = 0;

    assert_int_equal(virtio_mem_resize(fx->m, 64 * MiB, err, sizeof(err)), 0);
    for (g_iter = 0; g_iter < iters; g_iter++) {
        /* Now and then, plausible rings and requests at the addresses chaos likes. */
        if (g_iter % 64 == 0) {
            uint8_t *ram = fx->vm.mem.ram.hva;
            for (uint64_t i = 0; i < 128; i++) {
                uint8_t *d = ram + V_DESC + i * D_SIZE;
                uint64_t a = htole64(V_SLOTS + below(&r, 16) * V_SLOT);
                uint32_t l = htole32((uint32_t)(chance(&r, 80) ? 24 + below(&r, 16) : rnd(&r)));
                uint16_t fl = htole16((uint16_t)below(&r, 4)),
                         nx = htole16((uint16_t)below(&r, 130));
                memcpy(d, &a, 8);
                memcpy(d + 8, &l, 4);
                memcpy(d + 12, &fl, 2);
                memcpy(d + 14, &nx, 2);
            }
            for (uint64_t i = 0; i < 0x1000; i += 2) {
                uint16_t v16 = htole16((uint16_t)(chance(&r, 80) ? below(&r, 130) : rnd(&r)));
                memcpy(ram + V_AVAIL + i, &v16, 2);
            }
            for (unsigned j = 0; j < 16; j++) {
                uint8_t req[REQ_LEN];
                make_req(req, (uint16_t)below(&r, 5), req_addr(fx, &r), req_nb(&r), &r);
                memcpy(ram + V_SLOTS + j * V_SLOT, req, REQ_LEN);
            }
        }

        uint32_t before = t->status;
        unsigned kind = (unsigned)below(&r, 100);
        if (kind < 70) {
            /* Any register, any width, aligned or not, read or write. */
            static const unsigned widths[] = {1, 2, 4, 8};
            unsigned len = chance(&r, 80) ? 4 : widths[below(&r, 4)];
            uint64_t off = chance(&r, 85) ? below(&r, 0x48) * 4 : below(&r, 0x1000 - len + 1);
            uint8_t data[8];
            uint32_t v = chaos_value(&r);
            for (unsigned i = 0; i < 8; i++)
                data[i] = (uint8_t)(v >> (8 * (i % 4)));
            bool write = chance(&r, 60);
            bool was_ready = t->queues[0].ready;
            mmio_access(fx, off, data, len, write);
            if (write && off == REG_QUEUE_NOTIFY && len == 4)
                notified++;
            if (write && off == REG_QUEUE_READY && len == 4 && v && t->queue_sel == 0) {
                /* A queue the device accepts has a layout that checks out right now. */
                if (!was_ready && t->queues[0].ready) {
                    ready_seen++;
                    CHECK(virtq_check_layout(&t->queues[0], &fx->vm.mem, err, sizeof(err)) == 0,
                          "ready queue with a bad layout: %s", err);
                }
            }
        } else if (kind < 80) {
            run_loop(fx);
        } else if (kind < 85) {
            uint64_t req = below(&r, 65) * V_BLOCK;
            assert_int_equal(virtio_mem_resize(fx->m, req, err, sizeof(err)), 0);
        } else if (kind < 87) {
            t->dev.ops->reset(&t->dev);
        } else {
            /* A plausible driver step, so that chaos reaches the live states too. */
            static const uint32_t steps[] = {ST_ACK, ST_ACK | ST_DRIVER,
                                             ST_ACK | ST_DRIVER | ST_FEATURES_OK,
                                             ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK};
            wr32(fx, REG_DRIVER_FEAT_SEL, 1);
            wr32(fx, REG_DRIVER_FEATURES, 1);
            wr32(fx, REG_DRIVER_FEAT_SEL, 0);
            wr32(fx, REG_DRIVER_FEATURES, (uint32_t)below(&r, 4));
            wr32(fx, REG_STATUS, steps[below(&r, ARRAY_SIZE(steps))]);
            if (chance(&r, 50)) {
                /* A plausible queue set-up, with the odd wrong value. */
                static const uint32_t lo[] = {V_DESC, V_AVAIL, V_USED};
                static const unsigned regs[] = {REG_QUEUE_DESC_LO, REG_QUEUE_DRIVER_LO,
                                                REG_QUEUE_DEVICE_LO};
                bool was_ready = t->queues[0].ready;
                wr32(fx, REG_QUEUE_SEL, chance(&r, 95) ? 0 : chaos_value(&r));
                wr32(fx, REG_QUEUE_NUM, chance(&r, 80) ? 1u << below(&r, 8) : chaos_value(&r));
                for (unsigned i = 0; i < 3; i++) {
                    wr32(fx, regs[i], chance(&r, 90) ? lo[i] : chaos_value(&r));
                    wr32(fx, regs[i] + 4, chance(&r, 90) ? 0 : chaos_value(&r));
                }
                wr32(fx, REG_QUEUE_READY, 1);
                if (!was_ready && t->queue_sel == 0 && t->queues[0].ready) {
                    ready_seen++;
                    CHECK(virtq_check_layout(&t->queues[0], &fx->vm.mem, err, sizeof(err)) == 0,
                          "ready queue with a bad layout: %s", err);
                }
            }
        }
        /* DEVICE_NEEDS_RESET is sticky until a reset. */
        if ((before & ST_NEEDS_RESET) && t->status != 0)
            CHECK(t->status & ST_NEEDS_RESET, "DEVICE_NEEDS_RESET cleared without a reset");
        CHECK(!(t->status & ST_DRIVER_OK) || t->status & ST_FEATURES_OK || (before & ST_DRIVER_OK),
              "DRIVER_OK %#x accepted without FEATURES_OK", t->status);

        /* Whatever happened, the device's memory state is consistent. */
        uint64_t plugged = mm_tracker_plugged_bytes(&fx->m->tracker);
        CHECK(plugged == fx->m->plugged_size, "tracker %llu, plugged_size %llu",
              (unsigned long long)plugged, (unsigned long long)fx->m->plugged_size);
        CHECK(fx->m->usable_region_size <= V_SIZE, "usable region beyond the region");
        if (g_iter % 500 == 0) {
            for (uint64_t b = 0; b < V_BLOCKS; b++) {
                bool pl = mm_tracker_state(&fx->m->tracker, V_REGION + b * V_BLOCK, V_BLOCK) ==
                          MM_BLOCKS_PLUGGED;
                CHECK(!pl || b * V_BLOCK < fx->m->usable_region_size,
                      "block %llu plugged outside the usable region", (unsigned long long)b);
                CHECK((mm_gpa(&fx->vm.mem, V_REGION + b * V_BLOCK, 1) != NULL) == pl,
                      "accessor and tracker disagree on block %llu", (unsigned long long)b);
            }
        }
    }
    print_message("mmio chaos: %u accepted QueueReady, %u notifies, status %#x, %llu MiB "
                  "plugged\n",
                  ready_seen, notified, t->status, (unsigned long long)(fx->m->plugged_size / MiB));
    assert_true(ready_seen > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fuzz_virtqueue_model, qfx_setup, qfx_teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_virtio_mem_model, vfx_setup, vfx_teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_mmio_chaos, vfx_setup, vfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
