/* guard.c - PROT_NONE/PROT_READ for unplugged blocks; see guard.h. */
#include "mm/guard.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/util.h"

static int closed_prot(const struct mm_guard *g)
{
    return g->readable ? PROT_READ : PROT_NONE;
}

static int protect(struct mm_guard *g, uint64_t gpa, uint64_t len, int prot, char *err,
                   size_t errlen)
{
    if (mprotect(g->hva + (gpa - g->base), len, prot) < 0)
        return errf(err, errlen, "mprotect of [%#llx, +%#llx): %s", (unsigned long long)gpa,
                    (unsigned long long)len, strerror(errno));
    return 0;
}

static int guard_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                          size_t errlen)
{
    struct mm_guard *g = container_of(l, struct mm_guard, listener);
    return protect(g, gpa, len, PROT_READ | PROT_WRITE, err, errlen);
}

/* A block that stays open costs only protection, never correctness: the memory may go. */
static int guard_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                         size_t errlen)
{
    struct mm_guard *g = container_of(l, struct mm_guard, listener);
    (void)err;
    (void)errlen;
    char why[256];
    if (protect(g, gpa, len, closed_prot(g), why, sizeof(why)) < 0)
        warn("cannot close unplugged memory: %s", why);
    return 0;
}

static const struct mm_listener_ops guard_ops = {
    .populate = guard_populate,
    .discard = guard_discard,
};

int mm_guard_init(struct mm_guard *g, struct mm_tracker *tracker, uint64_t base, uint64_t size,
                  uint8_t *hva, uint64_t max_runs, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    if (max_runs < 3 + MM_GUARD_PIECE_SLACK)
        return errf(err, errlen, "%llu host mappings are too few to protect unplugged memory",
                    (unsigned long long)max_runs);
    g->max_runs = max_runs;
    g->listener.ops = &guard_ops;
    g->listener.name = "memory guard";
    g->tracker = tracker;
    g->base = base;
    g->hva = hva;
    return protect(g, base, size, PROT_NONE, err, errlen);
}

int mm_guard_check(struct mm_guard *g, uint64_t gpa, uint64_t len, bool plug, char *err,
                   size_t errlen)
{
    uint64_t runs = mm_tracker_runs_after(g->tracker, gpa, len, plug);
    if (runs + MM_GUARD_PIECE_SLACK <= g->max_runs)
        return 0;
    return errf(err, errlen,
                "plugged and unplugged blocks would alternate in %llu runs (%d more half-way), "
                "more than the %llu host mappings this region may use (vm.max_map_count)",
                (unsigned long long)runs, MM_GUARD_PIECE_SLACK, (unsigned long long)g->max_runs);
}

struct reprotect {
    struct mm_guard *g;
    int failed;
    char *err;
    size_t errlen;
};

static void reprotect_run(void *opaque, uint64_t gpa, uint64_t len)
{
    struct reprotect *r = opaque;
    if (!r->failed && protect(r->g, gpa, len, closed_prot(r->g), r->err, r->errlen) < 0)
        r->failed = 1;
}

int mm_guard_set_readable(struct mm_guard *g, bool readable, char *err, size_t errlen)
{
    if (g->readable == readable)
        return 0;
    g->readable = readable;
    struct reprotect r = {.g = g, .err = err, .errlen = errlen};
    mm_tracker_for_each_unplugged(g->tracker, reprotect_run, &r);
    return r.failed ? -1 : 0;
}
