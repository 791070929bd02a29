/*
 * Unit tests for VFIO DMA mappings that follow a sparse region
 * (vfio/dma_listener.c) on both IOMMU backends (vfio/type1.c,
 * vfio/iommufd.c, behind vfio/iommu.h), and for the type1 DMA entry
 * arithmetic (vfio/dma_limits.c).
 *
 * The listener runs on a real tracker (mm/tracker.c) with real host memory
 * (an anonymous mm_backing of NR_BLOCKS blocks at BASE), behind a real memory
 * guard registered first, as virtio-mem does (mm/guard.c), so the order
 * guard -> vfio on populate and vfio -> guard -> discard on unplug is the
 * real one.  It maps through a real backend (type1 or iommufd, with their
 * own error handling and counting) whose ioctls reach a fake kernel instead
 * of /dev/vfio/vfio or /dev/iommu.  Every listener test runs on both.
 *
 * The fake kernel follows the kernel's rules (virtio-mem-and-vfio.md
 * §5.3-§5.7), per backend:
 *   map    (VFIO_IOMMU_MAP_DMA, IOMMU_IOAS_MAP) one mapping {iova, size,
 *          hva} per call; EINVAL for a zero or misaligned size; EEXIST if it
 *          overlaps a mapping; ENOMEM for the fail_map_in-th map from now
 *          (RLIMIT_MEMLOCK exhausted); type1 only: ENOSPC once entry_limit
 *          mappings exist (dma_entry_limit; iommufd has no such limit).
 *   unmap  type1 (VFIO_IOMMU_UNMAP_DMA): EINVAL, changing nothing, if a
 *          mapping straddles either end of [iova, iova + size) (type1
 *          cannot split); otherwise removes every mapping wholly inside and
 *          reports their bytes (0 if none: success).
 *          iommufd (IOMMU_IOAS_UNMAP): the mappings of the range in IOVA
 *          order, each removed as it is met; one that straddles an end
 *          fails the call with ENOENT - after the ones met before it are
 *          gone (not atomic); a range holding nothing is ENOENT too.
 *          Either can be told to fail every unmap, or those that cover one
 *          block (EPERM; on iommufd, too, what comes before that block in
 *          the range is gone already).  These are injected faults: minivmm
 *          only unmaps exact runs of its own mappings, so a real kernel
 *          fails them only for reasons the testbed cannot provoke (iommufd's
 *          EBUSY or EDEADLOCK while an in-kernel user holds pages).
 * On top of the kernel's rules it checks what a test must not miss, and
 * records the first breach in `violation` (never failing inside a callback:
 * the tracker's lock is held there):
 *   - a map's hva is memory base + (iova - BASE) (IOVA == GPA);
 *   - an unmap covers only blocks that are mapped, apart from blocks an
 *     earlier failed iommufd unmap removed behind the caller's back;
 *   - a block given a pattern by fill() still holds it, and is readable,
 *     when an unmap of it is attempted: unmap happens strictly before
 *     discard (MADV_DONTNEED makes anonymous memory read zero) and before
 *     the guard closes it.
 * Every call is appended to a log, in block numbers relative to BASE:
 *   "M5 " map of block 5, "M5!ENOSPC " a refused map,
 *   "U2+4 " unmap of blocks [2, 6), "U2+4!EINVAL " a refused unmap,
 * so that tests can assert exact call sequences (expect_log).  expect_table
 * also checks that the backend's counters (dma_mappings, dma_mapped_bytes
 * in status) agree with the fake's table.  The teardown stops the listener
 * and fails if the fake saw a breach or still holds a mapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mm/guard.h"
#include "mm/memmap.h"
#include "mm/tracker.h"
#include "vfio/dma_limits.h"
#include "vfio/dma_listener.h"
#include "vfio/iommufd.h"
#include "vfio/iommufd_uapi.h"
#include "vfio/type1.h"
#include "vmm/util.h"

#define BASE      0x100000000ULL
#define BLOCK     (2ULL << 20)
#define NR_BLOCKS 64
#define SIZE      (NR_BLOCKS * BLOCK)
#define PAGE      4096ULL
#define FAKE_MAX  128
#define FAKE_IOAS 7

static uint64_t B(uint64_t n)
{
    return BASE + n * BLOCK;
}

/* --- probing host memory without dying ---------------------------------------- */

static sigjmp_buf probe_env;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(probe_env, 1);
}

/* Can the byte at p be read? */
static bool readable(const volatile uint8_t *p)
{
    struct sigaction sa = {.sa_handler = on_segv}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    volatile bool ok = false;
    if (sigsetjmp(probe_env, 1) == 0) {
        (void)*p;
        ok = true;
    }
    sigaction(SIGSEGV, &old, NULL);
    return ok;
}

/* Does the (readable) block at p hold byte everywhere?  First and last byte of every page. */
static bool holds(const uint8_t *p, uint8_t byte)
{
    for (uint64_t off = 0; off < BLOCK; off += PAGE)
        if (p[off] != byte || p[off + PAGE - 1] != byte)
            return false;
    return true;
}

/* --- the fake kernel ------------------------------------------------------------ */

enum fake_kind { FAKE_TYPE1, FAKE_IOMMUFD };

struct fake_mapping {
    uint64_t iova, size;
    const void *hva;
};

struct fake {
    enum fake_kind kind;
    struct fake_mapping map[FAKE_MAX];
    unsigned nr;
    uint64_t entry_limit;       /* like vfio_iommu_type1.dma_entry_limit (type1 only) */
    int fail_map_in;            /* > 0: the fail_map_in-th map from now fails with ENOMEM */
    bool fail_unmaps;           /* every unmap fails */
    int refuse_unmap_block;     /* >= 0: unmaps covering this block fail */
    unsigned splits;            /* unmaps refused because they would split a mapping */
    uint8_t *mem;               /* host address of BASE */
    uint8_t pattern[NR_BLOCKS]; /* non-zero: the block must hold this byte when unmapped */
    bool lost[NR_BLOCKS];       /* removed by a failed iommufd unmap: a retry may find nothing */
    char log[16384];
    char violation[512];
};

/* The kernel the backends under test reach (one at a time). */
static struct fake *kernel;

static __attribute__((format(printf, 2, 3))) void fake_log(struct fake *k, const char *fmt, ...)
{
    size_t used = strlen(k->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->log + used, sizeof(k->log) - used, fmt, ap);
    va_end(ap);
}

static __attribute__((format(printf, 2, 3))) void violate(struct fake *k, const char *fmt, ...)
{
    if (k->violation[0])
        return; /* the first one tells */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->violation, sizeof(k->violation), fmt, ap);
    va_end(ap);
}

/* "M5", "M5+2", "U2+4", or with a raw address if not block-aligned. */
static void label(char *buf, size_t len, char op, uint64_t iova, uint64_t size, bool always_n)
{
    if (iova >= BASE && (iova - BASE) % BLOCK == 0 && size % BLOCK == 0 && size) {
        unsigned long long first = (iova - BASE) / BLOCK, n = size / BLOCK;
        if (n == 1 && !always_n)
            snprintf(buf, len, "%c%llu", op, first);
        else
            snprintf(buf, len, "%c%llu+%llu", op, first, n);
    } else {
        snprintf(buf, len, "%c@%#llx:%#llx", op, (unsigned long long)iova,
                 (unsigned long long)size);
    }
}

static const char *ename(int e)
{
    switch (e) {
    case EINVAL:
        return "EINVAL";
    case EEXIST:
        return "EEXIST";
    case ENOSPC:
        return "ENOSPC";
    case ENOMEM:
        return "ENOMEM";
    case EPERM:
        return "EPERM";
    case ENOENT:
        return "ENOENT";
    case EIO:
        return "EIO";
    }
    return "E?";
}

static void fake_init(struct fake *k, enum fake_kind kind, uint8_t *mem)
{
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    k->entry_limit = VFIO_DMA_DEFAULT_LIMIT;
    k->refuse_unmap_block = -1;
    k->mem = mem;
}

/* The kernel's map: 0 or an errno; why says more. */
static int kernel_map(struct fake *k, uint64_t iova, uint64_t size, const void *hva,
                      const char **why)
{
    if (size == 0 || size % PAGE || iova % PAGE || (uintptr_t)hva % PAGE || iova + size < iova) {
        *why = "size zero, misaligned or wrapping";
        return EINVAL;
    }
    for (unsigned i = 0; i < k->nr; i++)
        if (ranges_overlap(iova, size, k->map[i].iova, k->map[i].size)) {
            *why = "overlaps an existing mapping";
            return EEXIST;
        }
    if (k->kind == FAKE_TYPE1 && k->nr >= k->entry_limit) {
        *why = "dma_avail is 0 (dma_entry_limit reached)";
        return ENOSPC;
    }
    if (k->fail_map_in > 0 && --k->fail_map_in == 0) {
        *why = "RLIMIT_MEMLOCK exceeded";
        return ENOMEM;
    }
    if (k->nr == FAKE_MAX) {
        *why = "the fake's table is full";
        return ENOMEM;
    }
    k->map[k->nr++] = (struct fake_mapping){iova, size, hva};
    for (uint64_t b = (iova - BASE) / BLOCK; iova >= BASE && b < NR_BLOCKS && B(b) < iova + size;
         b++)
        k->lost[b] = false;
    return 0;
}

static bool refused_at(const struct fake *k, uint64_t iova, uint64_t size)
{
    return k->refuse_unmap_block >= 0 &&
           ranges_overlap(iova, size, B((uint64_t)k->refuse_unmap_block), BLOCK);
}

static void remove_mapping(struct fake *k, unsigned i, uint64_t *bytes)
{
    *bytes += k->map[i].size;
    k->map[i] = k->map[--k->nr];
}

/* type1v2's UNMAP_DMA: 0 with *bytes, or an errno (then nothing changed). */
static int kernel_unmap_type1(struct fake *k, uint64_t iova, uint64_t size, uint64_t *bytes,
                              const char **why)
{
    uint64_t end = iova + size;
    *bytes = 0;
    for (unsigned i = 0; i < k->nr; i++) {
        uint64_t ms = k->map[i].iova, me = ms + k->map[i].size;
        if ((ms < iova && iova < me) || (ms < end && end < me)) {
            k->splits++;
            *why = "would split a mapping";
            return EINVAL;
        }
    }
    if (k->fail_unmaps || refused_at(k, iova, size)) {
        *why = "refused (the test said so)";
        return EPERM;
    }
    for (unsigned i = 0; i < k->nr;)
        if (k->map[i].iova >= iova && k->map[i].iova + k->map[i].size <= end)
            remove_mapping(k, i, bytes);
        else
            i++;
    return 0;
}

/* The mapping overlapping [iova, end) with the lowest IOVA, or -1. */
static int first_mapping_in(const struct fake *k, uint64_t iova, uint64_t end)
{
    int best = -1;
    for (unsigned i = 0; i < k->nr; i++)
        if (ranges_overlap(iova, end - iova, k->map[i].iova, k->map[i].size) &&
            (best < 0 || k->map[i].iova < k->map[best].iova))
            best = (int)i;
    return best;
}

/*
 * iommufd's IOAS_UNMAP: 0 with *bytes, or an errno, after removing the
 * mappings met before the failure (their blocks are marked lost).
 */
static int kernel_unmap_iommufd(struct fake *k, uint64_t iova, uint64_t size, uint64_t *bytes,
                                const char **why)
{
    uint64_t end = iova + size;
    *bytes = 0;
    if (k->fail_unmaps) {
        *why = "refused (the test said so)";
        return EPERM;
    }
    int e = 0;
    for (int i; !e && (i = first_mapping_in(k, iova, end)) >= 0;) {
        const struct fake_mapping *m = &k->map[i];
        if (m->iova < iova || m->iova + m->size > end) {
            k->splits++;
            *why = "would split a mapping";
            e = ENOENT;
        } else if (refused_at(k, m->iova, m->size)) {
            *why = "refused (the test said so)";
            e = EPERM;
        } else {
            remove_mapping(k, (unsigned)i, bytes);
        }
    }
    if (!e && *bytes == 0) {
        *why = "nothing is mapped there";
        e = ENOENT;
    }
    return e;
}

/* Test check: the patterned blocks of [iova, iova + size) are readable and intact. */
static void check_not_discarded(struct fake *k, uint64_t iova, uint64_t size)
{
    if (iova < BASE || iova - BASE >= SIZE)
        return;
    uint64_t first = (iova - BASE) / BLOCK;
    uint64_t last = (iova - BASE + size + BLOCK - 1) / BLOCK;
    for (uint64_t b = first; b < last && b < NR_BLOCKS; b++) {
        if (!k->pattern[b])
            continue;
        const uint8_t *p = k->mem + b * BLOCK;
        if (!readable(p))
            violate(k, "block %llu was closed by the guard before its unmap",
                    (unsigned long long)b);
        else if (!holds(p, k->pattern[b]))
            violate(k, "block %llu was discarded before its unmap", (unsigned long long)b);
    }
}

/* Is block b mapped (by any mapping)? */
static bool block_mapped(const struct fake *k, uint64_t b)
{
    for (unsigned i = 0; i < k->nr; i++)
        if (B(b) >= k->map[i].iova && B(b) < k->map[i].iova + k->map[i].size)
            return true;
    return false;
}

/* Test check: every block of [iova, iova + size) is mapped (or was lost by a failed unmap). */
static void check_all_mapped(struct fake *k, uint64_t iova, uint64_t size, const char *what)
{
    if (iova < BASE || (iova - BASE) % BLOCK || size % BLOCK)
        return;
    for (uint64_t b = (iova - BASE) / BLOCK; b < NR_BLOCKS && B(b) < iova + size; b++) {
        if (!block_mapped(k, b) && !k->lost[b])
            violate(k, "unmap %s covers block %llu, which is not mapped", what,
                    (unsigned long long)b);
    }
}

/* A map, as the kernel sees it: logged and checked.  0, or -1 with errno. */
static int fake_map(struct fake *k, uint64_t iova, uint64_t size, const void *hva)
{
    char what[64];
    const char *why = "";
    label(what, sizeof(what), 'M', iova, size, false);
    int e = kernel_map(k, iova, size, hva, &why);
    if (e) {
        fake_log(k, "%s!%s ", what, ename(e));
        errno = e;
        return -1;
    }
    fake_log(k, "%s ", what);
    if (iova < BASE || size > SIZE || iova - BASE > SIZE - size)
        violate(k, "map %s lies outside the region", what);
    else if (hva != k->mem + (iova - BASE))
        violate(k, "map %s has hva %p, not memory base + %#llx = %p", what, hva,
                (unsigned long long)(iova - BASE), (void *)(k->mem + (iova - BASE)));
    return 0;
}

/* An unmap, as the kernel sees it.  0 with *bytes, or -1 with errno. */
static int fake_unmap(struct fake *k, uint64_t iova, uint64_t size, uint64_t *bytes)
{
    char what[64];
    const char *why = "";
    label(what, sizeof(what), 'U', iova, size, true);
    check_not_discarded(k, iova, size);
    check_all_mapped(k, iova, size, what);
    *bytes = 0;
    bool was[NR_BLOCKS];
    for (uint64_t b = 0; b < NR_BLOCKS; b++)
        was[b] = block_mapped(k, b);
    int e = EINVAL;
    if (size && size % PAGE == 0 && iova % PAGE == 0 && iova + size > iova)
        e = k->kind == FAKE_TYPE1 ? kernel_unmap_type1(k, iova, size, bytes, &why)
                                  : kernel_unmap_iommufd(k, iova, size, bytes, &why);
    for (uint64_t b = 0; b < NR_BLOCKS; b++) {
        if (!was[b] || block_mapped(k, b))
            continue;
        k->pattern[b] = 0; /* unmapped: the memory may be discarded from now on */
        /* A call the backend reports failed (an error, or short) took it behind the caller's back.
         */
        if (e || *bytes != size)
            k->lost[b] = true;
    }
    if (e) {
        fake_log(k, "%s!%s ", what, ename(e));
        errno = e;
        return -1;
    }
    fake_log(k, "%s ", what);
    return 0;
}

/* The ioctls the backends use to map and unmap, as the two kernel interfaces take them. */
static int fake_ioctl(int fd, unsigned long request, void *arg)
{
    struct fake *k = kernel;
    (void)fd;
    bool type1 = k->kind == FAKE_TYPE1;
    if (request == VFIO_IOMMU_MAP_DMA && type1) {
        struct vfio_iommu_type1_dma_map *m = arg;
        if (m->argsz < sizeof(*m) || m->flags != (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
            violate(k, "MAP_DMA with argsz %u, flags %#x", m->argsz, m->flags);
        return fake_map(k, m->iova, m->size, (const void *)(uintptr_t)m->vaddr);
    }
    if (request == VFIO_IOMMU_UNMAP_DMA && type1) {
        struct vfio_iommu_type1_dma_unmap *u = arg;
        uint64_t bytes;
        if (u->argsz < sizeof(*u) || u->flags)
            violate(k, "UNMAP_DMA with argsz %u, flags %#x", u->argsz, u->flags);
        int rc = fake_unmap(k, u->iova, u->size, &bytes);
        if (rc == 0)
            u->size = bytes;
        return rc;
    }
    if (request == IOMMU_IOAS_MAP && !type1) {
        struct iommu_ioas_map *m = arg;
        uint32_t want =
            IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
        if (m->size != sizeof(*m) || m->flags != want || m->ioas_id != FAKE_IOAS || m->__reserved)
            violate(k, "IOAS_MAP with size %u, flags %#x, IOAS %u", m->size, m->flags, m->ioas_id);
        return fake_map(k, m->iova, m->length, (const void *)(uintptr_t)m->user_va);
    }
    if (request == IOMMU_IOAS_UNMAP && !type1) {
        struct iommu_ioas_unmap *u = arg;
        uint64_t bytes;
        if (u->size != sizeof(*u) || u->ioas_id != FAKE_IOAS)
            violate(k, "IOAS_UNMAP with size %u, IOAS %u", u->size, u->ioas_id);
        int rc = fake_unmap(k, u->iova, u->length, &bytes);
        if (rc == 0)
            u->length = bytes;
        return rc;
    }
    if (request == IOMMU_OPTION && !type1) {
        struct iommu_option *o = arg;
        if (o->option_id == IOMMU_OPTION_RLIMIT_MODE && o->op == IOMMU_OPTION_OP_GET) {
            o->val64 = 0; /* per user, as /dev/iommu starts */
            return 0;
        }
    }
    errno = ENOTTY;
    return -1;
}

/* The fake's table as "0 1 2 12" (block numbers in IOVA order, "+n" for bigger mappings). */
static void fake_table(const struct fake *k, char *buf, size_t len)
{
    struct fake_mapping m[FAKE_MAX];
    memcpy(m, k->map, k->nr * sizeof(m[0]));
    for (unsigned i = 1; i < k->nr; i++)
        for (unsigned j = i; j > 0 && m[j - 1].iova > m[j].iova; j--) {
            struct fake_mapping t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    buf[0] = '\0';
    for (unsigned i = 0; i < k->nr; i++) {
        char one[64];
        label(one, sizeof(one), ' ', m[i].iova, m[i].size, false);
        strncat(buf, i ? one : one + 1, len - strlen(buf) - 1);
    }
}

/* --- fixture --------------------------------------------------------------------- */

struct fixture {
    struct mm_backing backing;
    struct mm_tracker tracker;
    struct mm_guard guard;
    struct vfio_dma_listener dma;
    bool dma_started;
    struct vfio_iommu *iommu; /* the backend under test, on the fake kernel */
    struct fake fake;
};

static bool on_type1(const struct fixture *f)
{
    return f->fake.kind == FAKE_TYPE1;
}

/* Memory, tracker and the guard (registered first, as virtio-mem does); no DMA listener. */
static int setup_guard_only(void **state, enum fake_kind kind)
{
    static struct fixture f;
    char err[256];
    memset(&f, 0, sizeof(f));
    assert_int_equal(mm_backing_alloc(&f.backing, MM_BACKING_ANON, SIZE, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(mm_tracker_init(&f.tracker, BASE, SIZE, BLOCK, &f.backing), 0);
    assert_int_equal(
        mm_guard_init(&f.guard, &f.tracker, BASE, SIZE, f.backing.hva, 1024, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&f.tracker, &f.guard.listener, err, sizeof(err)), 0);
    fake_init(&f.fake, kind, f.backing.hva);
    kernel = &f.fake;
    f.iommu = kind == FAKE_TYPE1 ? vfio_type1_new(-1, fake_ioctl)
                                 : vfio_iommufd_new(-1, FAKE_IOAS, "/nonexistent", fake_ioctl);
    *state = &f;
    return 0;
}

/* The same, with the DMA listener registered after the guard. */
static int setup(void **state, enum fake_kind kind)
{
    setup_guard_only(state, kind);
    struct fixture *f = *state;
    char err[256] = "";
    if (vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)) < 0)
        fail_msg("vfio_dma_listener_start: %s", err);
    f->dma_started = true;
    return 0;
}

static int setup_type1(void **state)
{
    return setup(state, FAKE_TYPE1);
}
static int setup_iommufd(void **state)
{
    return setup(state, FAKE_IOMMUFD);
}
static int setup_guard_only_type1(void **state)
{
    return setup_guard_only(state, FAKE_TYPE1);
}
static int setup_guard_only_iommufd(void **state)
{
    return setup_guard_only(state, FAKE_IOMMUFD);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int ret = 0;
    f->fake.fail_unmaps = false;
    f->fake.refuse_unmap_block = -1;
    if (f->dma_started)
        vfio_dma_listener_stop(&f->dma);
    f->dma_started = false;
    if (f->fake.violation[0]) {
        print_error("fake kernel: %s\n", f->fake.violation);
        ret = -1;
    }
    if (f->fake.nr) {
        char table[1024];
        fake_table(&f->fake, table, sizeof(table));
        print_error("mappings left after the listener stopped: %s\n", table);
        ret = -1;
    }
    vfio_iommu_close(f->iommu);
    mm_tracker_unregister(&f->tracker, &f->guard.listener);
    mm_tracker_destroy(&f->tracker);
    mm_backing_free(&f->backing);
    return ret;
}

/* --- helpers --------------------------------------------------------------------- */

static void assert_no_violation(struct fixture *f)
{
    if (f->fake.violation[0])
        fail_msg("fake kernel: %s", f->fake.violation);
}

static void expect_log(struct fixture *f, const char *want)
{
    assert_no_violation(f);
    if (strcmp(f->fake.log, want) != 0)
        fail_msg("kernel calls were\n  '%s'\nexpected\n  '%s'", f->fake.log, want);
    f->fake.log[0] = '\0';
}

/* The log differs between the backends (errors, iommufd's partial unmaps). */
static void expect_log_of(struct fixture *f, const char *type1, const char *iommufd)
{
    expect_log(f, on_type1(f) ? type1 : iommufd);
}

/* The fake's table is want. */
static void expect_fake_table(struct fixture *f, const char *want)
{
    char table[1024];
    fake_table(&f->fake, table, sizeof(table));
    if (strcmp(table, want) != 0)
        fail_msg("fake mappings are\n  '%s'\nexpected\n  '%s'", table, want);
}

/* The fake's table is want, and the backend counts exactly those mappings. */
static void expect_table(struct fixture *f, const char *want)
{
    expect_fake_table(f, want);
    uint64_t bytes = 0;
    for (unsigned i = 0; i < f->fake.nr; i++)
        bytes += f->fake.map[i].size;
    if (f->iommu->mappings != f->fake.nr || f->iommu->mapped_bytes != bytes)
        fail_msg("the backend counts %llu mappings of %llu bytes, the kernel holds %u of %llu",
                 (unsigned long long)f->iommu->mappings, (unsigned long long)f->iommu->mapped_bytes,
                 f->fake.nr, (unsigned long long)bytes);
}

static void plug(struct fixture *f, uint64_t first, uint64_t n)
{
    char err[512] = "";
    if (mm_tracker_plug(&f->tracker, B(first), n * BLOCK, err, sizeof(err)) < 0)
        fail_msg("plug of blocks [%llu, %llu): %s", (unsigned long long)first,
                 (unsigned long long)(first + n), err);
}

static void unplug(struct fixture *f, uint64_t first, uint64_t n)
{
    assert_int_equal(mm_tracker_unplug(&f->tracker, B(first), n * BLOCK), 0);
}

static uint8_t pattern_of(uint64_t block)
{
    return (uint8_t)(0x80 | block);
}

/* Write blocks [first, first + n) (plugged, so writable) and have the fake check them. */
static void fill(struct fixture *f, uint64_t first, uint64_t n)
{
    for (uint64_t b = first; b < first + n; b++) {
        memset(f->backing.hva + b * BLOCK, pattern_of(b), BLOCK);
        f->fake.pattern[b] = pattern_of(b);
    }
}

/* Blocks [first, first + n) read back their pattern (intact) or zero (discarded). */
static void expect_blocks(struct fixture *f, uint64_t first, uint64_t n, bool intact)
{
    for (uint64_t b = first; b < first + n; b++) {
        const uint8_t *p = f->backing.hva + b * BLOCK;
        if (!readable(p))
            fail_msg("block %llu cannot be read", (unsigned long long)b);
        if (!holds(p, intact ? pattern_of(b) : 0))
            fail_msg("block %llu does not read %s", (unsigned long long)b,
                     intact ? "its pattern (it was discarded)" : "zero (it was not discarded)");
    }
}

static void set_readable(struct fixture *f, bool readable_mode)
{
    char err[256];
    assert_int_equal(mm_guard_set_readable(&f->guard, readable_mode, err, sizeof(err)), 0);
}

struct report {
    unsigned n;
    char keys[256];
    uint64_t bytes;
};

static void collect(void *opaque, const char *key, uint64_t bytes)
{
    struct report *r = opaque;
    r->n++;
    strncat(r->keys, key, sizeof(r->keys) - strlen(r->keys) - 1);
    strncat(r->keys, " ", sizeof(r->keys) - strlen(r->keys) - 1);
    r->bytes = bytes;
}

/* --- the fake kernel itself ------------------------------------------------------ */

/* Map and unmap through the backend under test: 0 or -1 (errno). */
static int be_map(struct fixture *f, uint64_t first, uint64_t n)
{
    char err[256];
    return vfio_iommu_map(f->iommu, B(first), n * BLOCK, f->backing.hva + first * BLOCK, err,
                          sizeof(err));
}

static int be_unmap(struct fixture *f, uint64_t first, uint64_t n, uint64_t nr, unsigned flags)
{
    char err[256];
    return vfio_iommu_unmap(f->iommu, B(first), n * BLOCK, nr, flags, err, sizeof(err));
}

static void expect_violation(struct fixture *f, const char *what)
{
    if (!strstr(f->fake.violation, what))
        fail_msg("expected a violation about '%s', got '%s'", what, f->fake.violation);
    f->fake.violation[0] = '\0';
}

/* What both kernels do alike, and the fake's own checks. */
static void check_common_rules(struct fixture *f)
{
    struct fake *k = &f->fake;
    uint8_t *mem = f->backing.hva;
    uint64_t bytes;

    assert_int_equal(fake_map(k, B(0), BLOCK, mem), 0);
    /* Mapping an already-mapped block, or part of it, again: EEXIST. */
    assert_int_equal(fake_map(k, B(0), BLOCK, mem), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(fake_map(k, B(0) + BLOCK / 2, BLOCK, mem + BLOCK / 2), -1);
    assert_int_equal(errno, EEXIST);
    /* Zero or misaligned size: EINVAL. */
    assert_int_equal(fake_map(k, B(5), 0, mem + 5 * BLOCK), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(fake_map(k, B(5), PAGE + 1, mem + 5 * BLOCK), -1);
    assert_int_equal(errno, EINVAL);
    expect_log(f, "M0 M0!EEXIST M@0x100100000:0x200000!EEXIST M@0x100a00000:0!EINVAL "
                  "M@0x100a00000:0x1001!EINVAL ");

    /* ENOMEM for the n-th map from now, once. */
    k->fail_map_in = 2;
    assert_int_equal(fake_map(k, B(20), BLOCK, mem + 20 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(21), BLOCK, mem + 21 * BLOCK), -1);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(fake_map(k, B(21), BLOCK, mem + 21 * BLOCK), 0);

    /* Unmaps told to fail, by block or all. */
    k->fail_unmaps = true;
    assert_int_equal(fake_unmap(k, B(21), BLOCK, &bytes), -1);
    assert_int_equal(errno, EPERM);
    k->fail_unmaps = false;
    k->refuse_unmap_block = 21;
    assert_int_equal(fake_unmap(k, B(21), BLOCK, &bytes), -1);
    assert_int_equal(errno, EPERM);
    k->refuse_unmap_block = -1;
    k->log[0] = '\0';

    /* Its own checks: a wrong hva; an unmap over a block that is not mapped. */
    assert_int_equal(fake_map(k, B(30), BLOCK, mem), 0);
    expect_violation(f, "hva");
    assert_int_equal(fake_unmap(k, B(30), 2 * BLOCK, &bytes), 0);
    expect_violation(f, "block 31, which is not mapped");

    /* And the pattern check: a block discarded before its unmap is seen. */
    plug(f, 40, 2);
    assert_int_equal(fake_map(k, B(40), BLOCK, mem + 40 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(41), BLOCK, mem + 41 * BLOCK), 0);
    fill(f, 40, 2);
    assert_int_equal(fake_unmap(k, B(40), BLOCK, &bytes), 0);
    assert_no_violation(f);
    char err[256];
    assert_int_equal(mm_backing_discard(&f->backing, 41 * BLOCK, BLOCK, err, sizeof(err)), 0);
    assert_int_equal(fake_unmap(k, B(41), BLOCK, &bytes), 0);
    expect_violation(f, "block 41 was discarded");
    /* ... and so is a block the guard closed before its unmap. */
    assert_int_equal(fake_map(k, B(50), BLOCK, mem + 50 * BLOCK), 0);
    k->pattern[50] = pattern_of(50); /* unplugged: PROT_NONE */
    assert_int_equal(fake_unmap(k, B(50), BLOCK, &bytes), 0);
    expect_violation(f, "block 50 was closed");
    mm_tracker_unplug_all(&f->tracker);

    /* Clean up for what follows. */
    k->nr = 0;
    k->log[0] = '\0';
    k->splits = 0;
}

/* The tests below trust the fake: check that it has type1v2's semantics. */
static void test_fake_is_type1v2(void **state)
{
    struct fixture *f = *state;
    struct fake *k = &f->fake;
    uint8_t *mem = f->backing.hva;
    uint64_t bytes;
    check_common_rules(f);

    /* A 2-block mapping cannot be split: EINVAL, and nothing changes. */
    assert_int_equal(fake_map(k, B(1), 2 * BLOCK, mem + BLOCK), 0);
    assert_int_equal(fake_unmap(k, B(1), BLOCK, &bytes), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(fake_map(k, B(0), BLOCK, mem), 0);
    assert_int_equal(fake_unmap(k, B(0), 2 * BLOCK, &bytes), -1); /* the end straddles */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(fake_unmap(k, B(2), BLOCK, &bytes), -1); /* the start */
    assert_int_equal(k->splits, 3);
    expect_fake_table(f, "0 1+2");
    /* One unmap of several whole mappings. */
    assert_int_equal(fake_unmap(k, B(0), 3 * BLOCK, &bytes), 0);
    assert_int_equal(bytes, 3 * BLOCK);
    expect_fake_table(f, "");

    /* Unmapping over holes counts only what was mapped (§5.4: blocks 4-8 with 5-7 mapped). */
    for (uint64_t b = 5; b < 8; b++)
        assert_int_equal(fake_map(k, B(b), BLOCK, mem + b * BLOCK), 0);
    const char *why;
    assert_int_equal(kernel_unmap_type1(k, B(4), 5 * BLOCK, &bytes, &why), 0);
    assert_int_equal(bytes, 3 * BLOCK);
    /* Over nothing at all: success, 0 bytes. */
    assert_int_equal(kernel_unmap_type1(k, B(4), 5 * BLOCK, &bytes, &why), 0);
    assert_int_equal(bytes, 0);

    /* The entry limit: ENOSPC once it is reached; an unmap gives the entry back. */
    k->entry_limit = 2;
    assert_int_equal(fake_map(k, B(10), BLOCK, mem + 10 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(11), BLOCK, mem + 11 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(12), BLOCK, mem + 12 * BLOCK), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(fake_unmap(k, B(10), BLOCK, &bytes), 0);
    assert_int_equal(fake_map(k, B(12), BLOCK, mem + 12 * BLOCK), 0);
    k->entry_limit = VFIO_DMA_DEFAULT_LIMIT;
    assert_int_equal(fake_unmap(k, B(11), 2 * BLOCK, &bytes), 0);
    k->log[0] = '\0';

    /* Through the backend (type1.c): counted; a short unmap is a failure (EIO). */
    assert_int_equal(be_map(f, 5, 1), 0);
    assert_int_equal(be_map(f, 6, 1), 0);
    expect_table(f, "5 6");
    assert_int_equal(be_unmap(f, 5, 2, 2, 0), 0);
    expect_table(f, "");
    assert_int_equal(be_map(f, 4, 1), 0);
    assert_int_equal(be_map(f, 5, 1), 0);
    k->lost[4] = true; /* 4 goes behind the caller's back (the fake is told, not to object) */
    assert_int_equal(kernel_unmap_type1(k, B(4), BLOCK, &bytes, &why), 0);
    assert_int_equal(be_unmap(f, 4, 2, 2, 0), -1); /* 5 went, 4 was not there: EIO */
    assert_int_equal(errno, EIO);
    assert_int_equal(f->iommu->mappings, 2); /* still counted, as the caller keeps them */
    /* The caller's retry, block by block: a block that is not there any more went. */
    assert_int_equal(be_unmap(f, 4, 1, 1, 0), -1); /* not without VFIO_UNMAP_RETRY */
    assert_int_equal(errno, EIO);
    assert_int_equal(be_unmap(f, 4, 1, 1, VFIO_UNMAP_RETRY), 0);
    assert_int_equal(be_unmap(f, 5, 1, 1, VFIO_UNMAP_RETRY), 0);
    expect_table(f, "");
    expect_log(f, "M5 M6 U5+2 M4 M5 U4+2 U4+1 U4+1 U5+1 ");
    assert_int_equal(f->iommu->limits.max_mappings, VFIO_DMA_DEFAULT_LIMIT);
    assert_string_equal(f->iommu->ops->pinned_field, "VmLck");
    assert_false(f->iommu->limits.memlock_per_user);
}

/* ... and iommufd's: ENOENT on an empty range and on a split, which is not atomic; no limit. */
static void test_fake_is_iommufd(void **state)
{
    struct fixture *f = *state;
    struct fake *k = &f->fake;
    uint8_t *mem = f->backing.hva;
    uint64_t bytes;
    check_common_rules(f);

    /* Blocks 4, 5 and [6, 8) mapped; an unmap of [4, 7) splits [6, 8). */
    assert_int_equal(fake_map(k, B(4), BLOCK, mem + 4 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(5), BLOCK, mem + 5 * BLOCK), 0);
    assert_int_equal(fake_map(k, B(6), 2 * BLOCK, mem + 6 * BLOCK), 0);
    assert_int_equal(fake_unmap(k, B(4), 3 * BLOCK, &bytes), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(k->splits, 1);
    expect_fake_table(f, "6+2"); /* 4 and 5 went before the split was found (§5.7) */
    assert_true(k->lost[4] && k->lost[5]);
    /* Nothing mapped in the range: ENOENT, not success. */
    assert_int_equal(fake_unmap(k, B(4), 2 * BLOCK, &bytes), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(fake_unmap(k, B(6), 2 * BLOCK, &bytes), 0);
    assert_int_equal(bytes, 2 * BLOCK);
    /* A refused mapping in the middle of a range: those before it are gone. */
    for (uint64_t b = 10; b < 14; b++)
        assert_int_equal(fake_map(k, B(b), BLOCK, mem + b * BLOCK), 0);
    k->refuse_unmap_block = 12;
    assert_int_equal(fake_unmap(k, B(10), 4 * BLOCK, &bytes), -1);
    assert_int_equal(errno, EPERM);
    k->refuse_unmap_block = -1;
    expect_fake_table(f, "12 13");
    /* No entry limit. */
    k->entry_limit = 2;
    for (uint64_t b = 20; b < 30; b++)
        assert_int_equal(fake_map(k, B(b), BLOCK, mem + b * BLOCK), 0);
    k->entry_limit = VFIO_DMA_DEFAULT_LIMIT;
    assert_int_equal(fake_unmap(k, B(12), 2 * BLOCK, &bytes), 0);
    assert_int_equal(fake_unmap(k, B(20), 10 * BLOCK, &bytes), 0);
    expect_fake_table(f, "");
    k->log[0] = '\0';

    /*
     * Through the backend (iommufd.c): counted; an ENOENT for one whole
     * mapping means it is gone already (success); for several it is a failure.
     */
    assert_int_equal(be_map(f, 1, 1), 0);
    assert_int_equal(be_map(f, 2, 1), 0);
    assert_int_equal(be_map(f, 3, 1), 0);
    expect_table(f, "1 2 3");
    k->refuse_unmap_block = 3;
    assert_int_equal(be_unmap(f, 1, 3, 3, 0), -1); /* 1 and 2 go, 3 stays */
    k->refuse_unmap_block = -1;
    expect_fake_table(f, "3"); /* (the backend still counts all three, as its caller does) */
    assert_int_equal(f->iommu->mappings, 3);
    /* ENOENT over two mappings may be a split: a failure, retry or not. */
    assert_int_equal(be_unmap(f, 1, 2, 2, VFIO_UNMAP_RETRY), -1);
    assert_int_equal(errno, ENOENT);
    /* Over one, it is "gone already" only in a retry: else it is an error. */
    assert_int_equal(be_unmap(f, 1, 1, 1, 0), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(be_unmap(f, 1, 1, 1, VFIO_UNMAP_RETRY), 0);
    assert_int_equal(be_unmap(f, 2, 1, 1, VFIO_UNMAP_RETRY), 0);
    assert_int_equal(be_unmap(f, 3, 1, 1, VFIO_UNMAP_RETRY), 0);
    expect_table(f, "");
    expect_log(f, "M1 M2 M3 U1+3!EPERM U1+2!ENOENT U1+1!ENOENT U1+1!ENOENT U2+1!ENOENT U3+1 ");
    assert_int_equal(f->iommu->limits.max_mappings, 0);
    assert_string_equal(f->iommu->ops->pinned_field, "VmPin");
    assert_true(f->iommu->limits.memlock_per_user); /* the fake's RLIMIT mode 0 */
}

/* --- the listener -------------------------------------------------------------- */

/* 1. One MAP per plugged block, IOVA == GPA, the right host address; the bytes reported. */
static void test_map_per_block(void **state)
{
    struct fixture *f = *state;
    plug(f, 3, 5);
    expect_log(f, "M3 M4 M5 M6 M7 ");
    plug(f, 20, 1);
    plug(f, 63, 1); /* the last block of the region */
    plug(f, 62, 1); /* next to a mapped block: still its own mapping */
    expect_log(f, "M20 M63 M62 ");
    expect_table(f, "3 4 5 6 7 20 62 63");
    for (unsigned i = 0; i < f->fake.nr; i++) {
        assert_int_equal(f->fake.map[i].size, BLOCK);
        assert_ptr_equal(f->fake.map[i].hva, f->backing.hva + (f->fake.map[i].iova - BASE));
    }

    uint64_t plugged = mm_tracker_plugged_bytes(&f->tracker);
    assert_int_equal(plugged, 8 * BLOCK);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), plugged);
    assert_int_equal(f->dma.listener.ops->held_bytes(&f->dma.listener), plugged);
    assert_int_equal(f->dma.map_calls, 8);
    assert_int_equal(f->dma.unmap_calls, 0);

    /* Only the DMA listener reports what it holds (the guard holds nothing). */
    struct report r = {0};
    mm_tracker_report(&f->tracker, collect, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.keys, "dma_mapped_bytes ");
    assert_int_equal(r.bytes, plugged);

    unplug(f, 20, 1);
    memset(&r, 0, sizeof(r));
    mm_tracker_report(&f->tracker, collect, &r);
    assert_int_equal(r.bytes, 7 * BLOCK);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma),
                     mm_tracker_plugged_bytes(&f->tracker));
    expect_log(f, "U20+1 ");
}

/* 2. One UNMAP per contiguous run of mapped blocks, never one that splits a mapping. */
static void test_unmap_runs(void **state)
{
    struct fixture *f = *state;
    plug(f, 0, 10);
    plug(f, 12, 2);
    expect_log(f, "M0 M1 M2 M3 M4 M5 M6 M7 M8 M9 M12 M13 ");

    unplug(f, 2, 4);
    expect_log(f, "U2+4 ");
    expect_table(f, "0 1 6 7 8 9 12 13");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 8 * BLOCK);

    assert_int_equal(mm_tracker_unplug_all(&f->tracker), 8 * BLOCK);
    expect_log(f, "U0+2 U6+4 U12+2 ");
    expect_table(f, "");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 0);

    /* A run that joins two plugs, and one that is part of a plug, each in one call. */
    plug(f, 0, 4);
    plug(f, 4, 4);
    expect_log(f, "M0 M1 M2 M3 M4 M5 M6 M7 ");
    unplug(f, 2, 4);
    unplug(f, 7, 1);
    expect_log(f, "U2+4 U7+1 ");
    assert_int_equal(mm_tracker_unplug_all(&f->tracker), 3 * BLOCK);
    expect_log(f, "U0+2 U6+1 ");
    assert_int_equal(f->fake.splits, 0);
}

/* 3. Unmap strictly before discard, for UNPLUG and for UNPLUG_ALL (reboot). */
static void test_unmap_before_discard(void **state)
{
    struct fixture *f = *state;
    plug(f, 0, 8);
    plug(f, 10, 2);
    fill(f, 0, 8);
    fill(f, 10, 2);
    f->fake.log[0] = '\0';

    /* The guard closes unplugged blocks (PROT_NONE): the fake's probe sees that too. */
    unplug(f, 2, 3);
    expect_log(f, "U2+3 ");
    set_readable(f, true);
    expect_blocks(f, 2, 3, false); /* discarded after the unmap */
    expect_blocks(f, 0, 2, true);  /* the neighbours are untouched */
    expect_blocks(f, 5, 3, true);
    expect_blocks(f, 10, 2, true);
    set_readable(f, false);

    assert_int_equal(mm_tracker_unplug_all(&f->tracker), 7 * BLOCK);
    expect_log(f, "U0+2 U5+3 U10+2 ");
    expect_table(f, "");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 0);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 0);
    set_readable(f, true);
    expect_blocks(f, 0, 8, false);
    expect_blocks(f, 10, 2, false);
}

/* 4. A map failure in the middle of a request rolls back exactly this request's maps. */
static void test_map_failure_rolls_back(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    plug(f, 0, 2);  /* just before the request */
    plug(f, 10, 1); /* just after it */
    plug(f, 30, 3); /* elsewhere */
    fill(f, 0, 2);
    fill(f, 10, 1);
    f->fake.log[0] = '\0';
    char before[1024];
    fake_table(&f->fake, before, sizeof(before));

    f->fake.fail_map_in = 4; /* the 4th map of the 8-block plug [2, 10) */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(2), 8 * BLOCK, err, sizeof(err)), -1);
    expect_log(f, "M2 M3 M4 M5!ENOMEM U2+3 ");
    /* The error names who refused, what and why, with the backend's message. */
    assert_non_null(strstr(err, "vfio dma"));
    assert_non_null(strstr(err, "0x100400000"));
    assert_non_null(strstr(err, "cannot pin 2 MiB at 0x100a00000"));
    assert_non_null(strstr(err, "RLIMIT_MEMLOCK"));

    expect_table(f, before);
    assert_int_equal(mm_tracker_state(&f->tracker, B(2), 8 * BLOCK), MM_BLOCKS_UNPLUGGED);
    assert_int_equal(mm_tracker_state(&f->tracker, B(0), 2 * BLOCK), MM_BLOCKS_PLUGGED);
    assert_int_equal(mm_tracker_state(&f->tracker, B(10), BLOCK), MM_BLOCKS_PLUGGED);
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 6 * BLOCK);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 6 * BLOCK);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    expect_blocks(f, 0, 2, true);
    expect_blocks(f, 10, 1, true);

    /* The guest retries after BUSY and it works. */
    plug(f, 2, 8);
    expect_log(f, "M2 M3 M4 M5 M6 M7 M8 M9 ");
    expect_table(f, "0 1 2 3 4 5 6 7 8 9 10 30 31 32");
    assert_int_equal(mm_tracker_unplug_all(&f->tracker), 14 * BLOCK);
    expect_log(f, "U0+11 U30+3 ");
    assert_int_equal(f->fake.splits, 0);
}

/* 5. ENOSPC from the entry limit mid-request: the same rollback; a higher limit lets it pass. */
static void test_entry_limit(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    plug(f, 0, 4);
    f->fake.log[0] = '\0';
    f->fake.entry_limit = 6; /* room for two more */

    assert_int_equal(mm_tracker_plug(&f->tracker, B(10), 6 * BLOCK, err, sizeof(err)), -1);
    expect_log(f, "M10 M11 M12!ENOSPC U10+2 ");
    assert_non_null(strstr(err, "vfio dma"));
    assert_non_null(strstr(err, "mapping entries are used up"));
    assert_non_null(strstr(err, "dma_entry_limit"));
    expect_table(f, "0 1 2 3");
    assert_int_equal(mm_tracker_state(&f->tracker, B(10), 6 * BLOCK), MM_BLOCKS_UNPLUGGED);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 4 * BLOCK);

    f->fake.entry_limit = 10;
    plug(f, 10, 6);
    expect_log(f, "M10 M11 M12 M13 M14 M15 ");
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 10 * BLOCK);

    /* Full: a refused first map leaves nothing to roll back. */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(20), BLOCK, err, sizeof(err)), -1);
    expect_log(f, "M20!ENOSPC ");
    assert_int_equal(mm_tracker_state(&f->tracker, B(20), BLOCK), MM_BLOCKS_UNPLUGGED);
    /* An unplug gives an entry back. */
    unplug(f, 0, 1);
    plug(f, 20, 1);
    expect_log(f, "U0+1 M20 ");
}

/*
 * 5b. iommufd reports no entry limit (the start-up check then counts none),
 * and the listener maps more blocks through it than type1's limit would allow.
 */
static void test_no_entry_limit(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->iommu->limits.max_mappings, 0);
    f->fake.entry_limit = 2; /* what type1 would enforce */
    plug(f, 0, NR_BLOCKS);
    assert_int_equal(f->fake.nr, NR_BLOCKS);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), SIZE);
    assert_int_equal(f->iommu->mappings, NR_BLOCKS);
    assert_int_equal(mm_tracker_unplug_all(&f->tracker), SIZE);
    expect_table(f, "");
}

/* 6. A listener started while blocks are plugged maps them (replay), or fails cleanly. */
static void test_replay(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    plug(f, 1, 3);
    plug(f, 10, 1);
    plug(f, 40, 2);
    expect_log(f, ""); /* only the guard so far */

    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), 0);
    f->dma_started = true;
    expect_log(f, "M1 M2 M3 M10 M40 M41 ");
    expect_table(f, "1 2 3 10 40 41");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 6 * BLOCK);
    /* Registered after the guard: it follows new plugs too. */
    plug(f, 5, 1);
    unplug(f, 1, 3);
    expect_log(f, "M5 U1+3 ");
    vfio_dma_listener_stop(&f->dma);
    f->dma_started = false;
    expect_log(f, "U5+1 U10+1 U40+2 ");
    plug(f, 1, 3);

    /* Refused at the first block of the third run: the runs before it are unmapped. */
    f->fake.fail_map_in = 6;
    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), -1);
    expect_log(f, "M1 M2 M3 M5 M10 M40!ENOMEM U1+3 U5+1 U10+1 ");
    assert_non_null(strstr(err, "RLIMIT_MEMLOCK"));
    expect_table(f, "");
    /* Nothing changed for the tracker, and the listener is not registered. */
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 7 * BLOCK);
    plug(f, 20, 1);
    unplug(f, 20, 1);
    expect_log(f, "");

    /* Refused in the middle of a run: that run's maps are undone too. */
    f->fake.fail_map_in = 3;
    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), -1);
    expect_log(f, "M1 M2 M3!ENOMEM U1+2 ");
    expect_table(f, "");

    /* And with the IOMMU willing, it starts. */
    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), 0);
    f->dma_started = true;
    expect_log(f, "M1 M2 M3 M5 M10 M40 M41 ");
    assert_int_equal(f->fake.splits, 0);
}

/* 7. A failed unmap keeps the memory: never discarded while it may still be mapped. */
static void test_unmap_failure_keeps_memory(void **state)
{
    struct fixture *f = *state;
    set_readable(f, true); /* to look at unplugged memory */
    plug(f, 0, 6);
    fill(f, 0, 6);
    f->fake.log[0] = '\0';

    f->fake.fail_unmaps = true;
    unplug(f, 2, 3); /* the guest's view changes all the same */
    /* The run, then (dma_listener.c) each block alone so that the bitmap stays exact. */
    expect_log(f, "U2+3!EPERM U2+1!EPERM U3+1!EPERM U4+1!EPERM ");
    assert_int_equal(mm_tracker_state(&f->tracker, B(2), 3 * BLOCK), MM_BLOCKS_UNPLUGGED);
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 3 * BLOCK);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 3 * BLOCK);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 6 * BLOCK);
    expect_table(f, "0 1 2 3 4 5");
    expect_blocks(f, 2, 3, true); /* not discarded */

    /* Plugged again: the kept blocks are still mapped, so no new MAP (EEXIST otherwise). */
    f->fake.fail_unmaps = false;
    plug(f, 2, 3);
    expect_log(f, "");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 6 * BLOCK);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 6 * BLOCK);
    expect_blocks(f, 2, 3, true);

    /* Now the unplug works: unmapped, then discarded. */
    unplug(f, 2, 3);
    expect_log(f, "U2+3 ");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    expect_table(f, "0 1 5");
    expect_blocks(f, 2, 3, false);

    /* Only one block of a run refuses: the others are unmapped, the whole range is kept. */
    plug(f, 2, 3);
    expect_log(f, "M2 M3 M4 ");
    fill(f, 2, 3);
    f->fake.refuse_unmap_block = 3;
    unplug(f, 2, 3);
    /* iommufd's failed unmap took block 2 already: its own unmap then finds nothing. */
    expect_log_of(f, "U2+3!EPERM U2+1 U3+1!EPERM U4+1 ", "U2+3!EPERM U2+1!ENOENT U3+1!EPERM U4+1 ");
    expect_table(f, "0 1 3 5");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 4 * BLOCK);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 3 * BLOCK);
    expect_blocks(f, 2, 3, true);

    /*
     * A plug over the kept block that fails before reaching it: the kept
     * mapping is undone too (the blocks stay unplugged), then the memory goes.
     */
    f->fake.refuse_unmap_block = -1;
    f->fake.fail_map_in = 1;
    char err[512];
    assert_int_equal(mm_tracker_plug(&f->tracker, B(2), 3 * BLOCK, err, sizeof(err)), -1);
    expect_log(f, "M2!ENOMEM U3+1 ");
    expect_table(f, "0 1 5");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 3 * BLOCK);
    expect_blocks(f, 2, 3, false);

    /* A single block whose unmap fails stays mapped, and is not mapped twice. */
    plug(f, 2, 3);
    expect_log(f, "M2 M3 M4 ");
    fill(f, 4, 1);
    f->fake.fail_unmaps = true;
    unplug(f, 4, 1);
    expect_log(f, "U4+1!EPERM ");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 6 * BLOCK);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), BLOCK);
    expect_blocks(f, 4, 1, true);
    f->fake.fail_unmaps = false;
    plug(f, 4, 1);
    expect_log(f, "");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    assert_int_equal(f->fake.splits, 0);
}

/*
 * 7c. A mapping that vanished behind the listener's back (not something
 * minivmm does; the kernel's word is all it has then): the run's unmap
 * comes out short and fails, and the retry, block by block, finds that
 * block gone and the others unmapped by the failed call - nothing stays
 * counted or kept.
 */
static void test_vanished_mapping(void **state)
{
    struct fixture *f = *state;
    uint64_t bytes;
    const char *why;
    plug(f, 2, 3);
    fill(f, 2, 3);
    f->fake.lost[3] = true; /* (so that the fake does not object to the unmap over it) */
    if (on_type1(f))
        assert_int_equal(kernel_unmap_type1(&f->fake, B(3), BLOCK, &bytes, &why), 0);
    else
        assert_int_equal(kernel_unmap_iommufd(&f->fake, B(3), BLOCK, &bytes, &why), 0);
    f->fake.log[0] = '\0';
    unplug(f, 2, 3);
    expect_log_of(f, "U2+3 U2+1 U3+1 U4+1 ", "U2+3 U2+1!ENOENT U3+1!ENOENT U4+1!ENOENT ");
    expect_table(f, "");
    assert_int_equal(vfio_dma_listener_mapped_bytes(&f->dma), 0);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    set_readable(f, true);
    expect_blocks(f, 2, 3, false); /* given back */
}

/* 8. Stopping the listener unmaps everything still plugged; the blocks stay plugged. */
static void test_stop_unmaps_all(void **state)
{
    struct fixture *f = *state;
    plug(f, 0, 4);
    plug(f, 7, 1);
    plug(f, 9, 2);
    fill(f, 0, 4);
    fill(f, 7, 1);
    fill(f, 9, 2);
    unplug(f, 1, 1);
    f->fake.log[0] = '\0';

    vfio_dma_listener_stop(&f->dma);
    f->dma_started = false;
    expect_log(f, "U0+1 U2+2 U7+1 U9+2 ");
    expect_table(f, "");
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 6 * BLOCK);
    /* Plugged memory is not discarded by a listener leaving. */
    expect_blocks(f, 0, 1, true);
    expect_blocks(f, 2, 2, true);
    expect_blocks(f, 7, 1, true);
    expect_blocks(f, 9, 2, true);
    /* Nobody listens any more. */
    plug(f, 20, 1);
    mm_tracker_unplug_all(&f->tracker);
    expect_log(f, "");
    assert_int_equal(f->fake.splits, 0);
}

/*
 * 7b. A listener registered before VFIO (memslots, the guard) refuses a plug
 * over a block kept from a failed unmap: VFIO was never told, still maps the
 * block, so its memory must stay - only the other blocks are given back.
 */
struct refusing_listener {
    struct mm_listener l;
    bool refuse;
};

static int rl_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct refusing_listener *r = (struct refusing_listener *)l;
    (void)gpa;
    (void)len;
    if (!r->refuse)
        return 0;
    snprintf(err, errlen, "no memslot left");
    return -1;
}

static int rl_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    (void)l;
    (void)gpa;
    (void)len;
    (void)err;
    (void)errlen;
    return 0;
}

static const struct mm_listener_ops rl_ops = {.populate = rl_populate, .discard = rl_discard};

static void test_earlier_refusal_keeps_kept_blocks(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    char table[256];
    struct refusing_listener slots = {.l = {.ops = &rl_ops, .name = "memslots"}};
    assert_int_equal(mm_tracker_register(&f->tracker, &slots.l, err, sizeof(err)), 0);
    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), 0);
    f->dma_started = true;
    set_readable(f, true);
    plug(f, 0, 4);
    fill(f, 0, 4);
    f->fake.refuse_unmap_block = 1;
    unplug(f, 1, 1); /* kept: still mapped */
    f->fake.refuse_unmap_block = -1;
    unplug(f, 0, 1);
    unplug(f, 2, 2);
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), BLOCK);

    slots.refuse = true;
    assert_int_equal(mm_tracker_plug(&f->tracker, B(0), 4 * BLOCK, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no memslot left"));
    fake_table(&f->fake, table, sizeof(table));
    assert_string_equal(table, "1");                             /* VFIO was not told */
    expect_blocks(f, 1, 1, true);                                /* so its memory stayed */
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), BLOCK); /* and is still counted */

    slots.refuse = false;
    plug(f, 0, 4); /* block 1 is still mapped: no second MAP for it */
    fake_table(&f->fake, table, sizeof(table));
    assert_string_equal(table, "0 1 2 3");
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 0);
    vfio_dma_listener_stop(&f->dma);
    f->dma_started = false;
    mm_tracker_unregister(&f->tracker, &slots.l);
}

/*
 * 8b. A listener that leaves while it cannot let go (its replay refused and
 * could not undo itself, or its unmaps fail when it stops): the tracker
 * remembers, and the memory it still maps is never discarded afterwards.
 */
static void test_leaving_listener_keeps_memory(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    char table[256];
    plug(f, 1, 3);
    fill(f, 1, 3);
    f->fake.fail_map_in = 3;
    f->fake.fail_unmaps = true;
    assert_int_equal(vfio_dma_listener_start(&f->dma, f->iommu, &f->tracker, err, sizeof(err)), -1);
    f->fake.fail_unmaps = false;
    fake_table(&f->fake, table, sizeof(table));
    assert_string_equal(table, "1 2"); /* still mapped in the IOMMU */
    f->fake.log[0] = '\0';
    unplug(f, 1, 3);
    expect_log(f, ""); /* the listener is gone */
    set_readable(f, true);
    expect_blocks(f, 1, 3, true); /* kept, not discarded */
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), 3 * BLOCK);
    /* Plugged again and unplugged again: still never discarded. */
    plug(f, 1, 3);
    unplug(f, 1, 3);
    expect_blocks(f, 1, 3, true);
    f->fake.nr = 0; /* the mappings would go when the container closes */
}

static void test_stopped_listener_keeps_memory(void **state)
{
    struct fixture *f = *state;
    char table[256];
    plug(f, 1, 1);
    plug(f, 5, 1);
    fill(f, 1, 1);
    fill(f, 5, 1);
    f->fake.refuse_unmap_block = 1;
    vfio_dma_listener_stop(&f->dma);
    f->dma_started = false;
    f->fake.refuse_unmap_block = -1;
    fake_table(&f->fake, table, sizeof(table));
    assert_string_equal(table, "1");
    set_readable(f, true);
    unplug(f, 1, 1);
    unplug(f, 5, 1);
    expect_blocks(f, 1, 1, true);  /* still mapped: kept */
    expect_blocks(f, 5, 1, false); /* let go of: discarded */
    assert_int_equal(mm_tracker_kept_bytes(&f->tracker), BLOCK);
    f->fake.nr = 0;
}

/* --- DMA entry arithmetic ---------------------------------------------------------- */

struct limits_case {
    const char *what;
    uint64_t ram;
    unsigned nr;
    uint64_t size[2], block[2];
    uint64_t avail;
    uint64_t entries;    /* vfio_dma_entries(plan, 0) */
    uint64_t suggest;    /* vfio_dma_suggest_block(plan, avail) */
    uint64_t at_suggest; /* vfio_dma_entries(plan, suggest), if any */
};

/* 9. Entries = RAM mappings + sum of size / block + VFIO_DMA_HEADROOM (16). */
static void test_dma_limits(void **state)
{
    (void)state;
    assert_int_equal(VFIO_DMA_HEADROOM, 16);
    const struct limits_case cases[] = {
        /* 4G/2M = 2048, + 2 + 16 = 2066: fits, the block as given. */
        {"4 GiB at 2 MiB", 2, 1, {4 * GiB}, {2 * MiB}, 65535, 2066, 2 * MiB, 2066},
        /* 2066 > 1100; at 4 MiB 1024 + 18 = 1042 <= 1100. */
        {"4 GiB at 2 MiB, 1100", 2, 1, {4 * GiB}, {2 * MiB}, 1100, 2066, 4 * MiB, 1042},
        /* Exactly 1042 is enough; 1041 is not: 8 MiB, 512 + 18 = 530. */
        {"4 GiB at 2 MiB, 1042", 2, 1, {4 * GiB}, {2 * MiB}, 1042, 2066, 4 * MiB, 1042},
        {"4 GiB at 2 MiB, 1041", 2, 1, {4 * GiB}, {2 * MiB}, 1041, 2066, 8 * MiB, 530},
        /* 128G/2M = 65536, + 18 = 65554 > 65535; at 4 MiB 32768 + 18 = 32786. */
        {"128 GiB at 2 MiB",
         2,
         1,
         {128 * GiB},
         {2 * MiB},
         VFIO_DMA_DEFAULT_LIMIT,
         65554,
         4 * MiB,
         32786},
        /* 64G/2M = 32768, + 18 = 32786: fits. */
        {"64 GiB at 2 MiB",
         2,
         1,
         {64 * GiB},
         {2 * MiB},
         VFIO_DMA_DEFAULT_LIMIT,
         32786,
         2 * MiB,
         32786},
        /* 32768 + 32751 + 16 = 65535 exactly; one RAM mapping more needs 16384 + 32752 + 16. */
        {"64 GiB, full", 32751, 1, {64 * GiB}, {2 * MiB}, 65535, 65535, 2 * MiB, 65535},
        {"64 GiB, one over", 32752, 1, {64 * GiB}, {2 * MiB}, 65535, 65536, 4 * MiB, 49152},
        /* 384M = 3 * 128M: 192 + 16 = 208; at 128 MiB 3 + 16 = 19. */
        {"384 MiB, 19", 0, 1, {384 * MiB}, {2 * MiB}, 19, 208, 128 * MiB, 19},
        /* 128 MiB needs 19 > 17; 256 MiB would count 384/256 = 1 (+16 = 17) but does not
         * divide 384 MiB, and 512 MiB is above the region: nothing. */
        {"384 MiB, 17", 0, 1, {384 * MiB}, {2 * MiB}, 17, 208, 0, 0},
        /* The largest block is the region itself: 1 + 2 + 16 = 19. */
        {"one block", 2, 1, {4 * GiB}, {2 * MiB}, 19, 2066, 4 * GiB, 19},
        /* Even one 4 GiB block: 1 + 2 + 16 = 19 > 18. */
        {"nothing fits", 2, 1, {4 * GiB}, {2 * MiB}, 18, 2066, 0, 0},
        /* Below the headroom. */
        {"avail 10", 0, 1, {4 * GiB}, {2 * MiB}, 10, 2064, 0, 0},
        /* A 4G at 2M (2048) and B 8G at 128M (64), 1 RAM: 2048 + 64 + 17 = 2129.  Raising A:
         * 4M 1024+64+17 = 1105, 8M 593, 16M 337, 32M 209, 64M 64+64+17 = 145 <= 150; B stays at
         * 128M (lowering it to 64M would make 209). */
        {"two regions, 150",
         1,
         2,
         {4 * GiB, 8 * GiB},
         {2 * MiB, 128 * MiB},
         150,
         2129,
         64 * MiB,
         145},
        /* 64M 145 > 100, 128M 32 + 64 + 17 = 113 > 100; 256M raises B too: 16 + 32 + 17 = 65. */
        {"two regions, 100",
         1,
         2,
         {4 * GiB, 8 * GiB},
         {2 * MiB, 128 * MiB},
         100,
         2129,
         256 * MiB,
         65},
        /* A 4G at 2M, B 384M at 128M: 2048 + 3 + 16 = 2067.  128M: 32 + 3 + 16 = 51 (B as is).
         * With 30, any larger block would raise B too, which 384 MiB cannot take: nothing. */
        {"two regions, 51",
         0,
         2,
         {4 * GiB, 384 * MiB},
         {2 * MiB, 128 * MiB},
         51,
         2067,
         128 * MiB,
         51},
        {"two regions, 30", 0, 2, {4 * GiB, 384 * MiB}, {2 * MiB, 128 * MiB}, 30, 2067, 0, 0},
        /* No region: only RAM and headroom, and nothing to suggest. */
        {"no region", 3, 0, {0}, {0}, 10, 19, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct limits_case *c = &cases[i];
        struct vfio_dma_plan p = {.ram_mappings = c->ram, .nr_regions = c->nr};
        for (unsigned r = 0; r < c->nr; r++) {
            p.size[r] = c->size[r];
            p.block_size[r] = c->block[r];
        }
        uint64_t entries = vfio_dma_entries(&p, 0);
        uint64_t suggest = vfio_dma_suggest_block(&p, c->avail);
        if (entries != c->entries || suggest != c->suggest)
            fail_msg("%s: entries %llu, suggestion %llu MiB; expected %llu, %llu MiB", c->what,
                     (unsigned long long)entries, (unsigned long long)(suggest / MiB),
                     (unsigned long long)c->entries, (unsigned long long)(c->suggest / MiB));
        if (!suggest)
            continue;
        uint64_t at = vfio_dma_entries(&p, suggest);
        if (at != c->at_suggest || at > c->avail)
            fail_msg("%s: %llu entries at the suggested block, expected %llu (avail %llu)", c->what,
                     (unsigned long long)at, (unsigned long long)c->at_suggest,
                     (unsigned long long)c->avail);
    }
}

/* Each listener test on both backends. */
#define ON_BOTH(test, setup)                                                                       \
    {#test " (type1)", test, setup##_type1, teardown, NULL},                                       \
    {                                                                                              \
#test " (iommufd)", test, setup##_iommufd, teardown, NULL                                  \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fake_is_type1v2, setup_guard_only_type1, teardown),
        cmocka_unit_test_setup_teardown(test_fake_is_iommufd, setup_guard_only_iommufd, teardown),
        ON_BOTH(test_map_per_block, setup),
        ON_BOTH(test_unmap_runs, setup),
        ON_BOTH(test_unmap_before_discard, setup),
        ON_BOTH(test_map_failure_rolls_back, setup),
        cmocka_unit_test_setup_teardown(test_entry_limit, setup_type1, teardown),
        cmocka_unit_test_setup_teardown(test_no_entry_limit, setup_iommufd, teardown),
        ON_BOTH(test_replay, setup_guard_only),
        ON_BOTH(test_unmap_failure_keeps_memory, setup),
        ON_BOTH(test_vanished_mapping, setup),
        ON_BOTH(test_stop_unmaps_all, setup),
        ON_BOTH(test_leaving_listener_keeps_memory, setup_guard_only),
        ON_BOTH(test_earlier_refusal_keeps_kept_blocks, setup_guard_only),
        ON_BOTH(test_stopped_listener_keeps_memory, setup),
        cmocka_unit_test(test_dma_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
