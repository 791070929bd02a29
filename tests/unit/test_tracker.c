/* Unit tests for the sparse-memory tracker (mm/tracker.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mm/memmap.h"
#include "mm/tracker.h"
#include "vmm/util.h"

#define BASE  (4ULL << 30)
#define BLOCK (2ULL << 20)

/* Every listener call is appended to one shared log, as "NAME+ off len" / "NAME- off len". */
static char event_log[8192];

static void log_event(const char *name, char op, uint64_t gpa, uint64_t len)
{
    char line[96];
    snprintf(line, sizeof(line), "%s%c%llu,%llu ", name, op,
             (unsigned long long)((gpa - BASE) / BLOCK), (unsigned long long)(len / BLOCK));
    strncat(event_log, line, sizeof(event_log) - strlen(event_log) - 1);
}

struct test_listener {
    struct mm_listener l;
    int refuse_after; /* populate calls that succeed before one is refused; -1: never */
    int populates;
};

static int tl_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct test_listener *t = container_of(l, struct test_listener, l);
    if (t->refuse_after >= 0 && t->populates >= t->refuse_after) {
        log_event(l->name, '!', gpa, len);
        snprintf(err, errlen, "no more DMA entries");
        return -1;
    }
    t->populates++;
    log_event(l->name, '+', gpa, len);
    return 0;
}

static int tl_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    log_event(l->name, '-', gpa, len);
    return 0;
}

static const struct mm_listener_ops tl_ops = {.populate = tl_populate, .discard = tl_discard};

static void tl_init(struct test_listener *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    t->l.ops = &tl_ops;
    t->l.name = name;
    t->refuse_after = -1;
}

static uint64_t B(uint64_t n)
{
    return BASE + n * BLOCK;
}

static void expect_log(const char *want)
{
    if (strcmp(event_log, want) != 0)
        fail_msg("listener calls were\n  '%s'\nexpected\n  '%s'", event_log, want);
    event_log[0] = '\0';
}

static void test_geometry(void **state)
{
    (void)state;
    struct mm_tracker t;
    assert_int_equal(mm_tracker_init(&t, BASE, 0, BLOCK, NULL), -1);
    assert_int_equal(mm_tracker_init(&t, BASE, 3 * BLOCK, 3 << 20, NULL),
                     -1); /* not a power of two */
    assert_int_equal(mm_tracker_init(&t, BASE, BLOCK + 4096, BLOCK, NULL), -1);
    assert_int_equal(mm_tracker_init(&t, BASE + 4096, 4 * BLOCK, BLOCK, NULL), -1);
    assert_int_equal(mm_tracker_init(&t, UINT64_MAX - BLOCK + 1, 2 * BLOCK, BLOCK, NULL), -1);
    assert_int_equal(mm_tracker_init(&t, BASE, 130 * BLOCK, BLOCK, NULL), 0);
    assert_int_equal(t.nr_blocks, 130);
    assert_true(mm_tracker_valid_range(&t, B(0), BLOCK));
    assert_true(mm_tracker_valid_range(&t, B(0), 130 * BLOCK));
    assert_false(mm_tracker_valid_range(&t, B(0), 131 * BLOCK));
    assert_false(mm_tracker_valid_range(&t, B(129), 2 * BLOCK));
    assert_false(mm_tracker_valid_range(&t, B(1) + 4096, BLOCK));
    assert_false(mm_tracker_valid_range(&t, B(1), BLOCK / 2));
    assert_false(mm_tracker_valid_range(&t, B(1), 0));
    assert_false(mm_tracker_valid_range(&t, BASE - BLOCK, BLOCK));
    assert_false(mm_tracker_valid_range(&t, B(2), UINT64_MAX - BLOCK + 1));
    mm_tracker_destroy(&t);
}

static void test_plug_unplug_state(void **state)
{
    (void)state;
    struct mm_tracker t;
    char err[256];
    assert_int_equal(mm_tracker_init(&t, BASE, 130 * BLOCK, BLOCK, NULL), 0);
    /* A run across the 64-bit word boundary of the bitmap. */
    assert_int_equal(mm_tracker_plug(&t, B(60), 10 * BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plugged_bytes(&t), 10 * BLOCK);
    assert_int_equal(mm_tracker_state(&t, B(60), 10 * BLOCK), MM_BLOCKS_PLUGGED);
    assert_int_equal(mm_tracker_state(&t, B(59), 2 * BLOCK), MM_BLOCKS_MIXED);
    assert_int_equal(mm_tracker_state(&t, B(70), 60 * BLOCK), MM_BLOCKS_UNPLUGGED);
    assert_int_equal(mm_tracker_state(&t, B(0), 130 * BLOCK), MM_BLOCKS_MIXED);
    assert_int_equal(mm_tracker_state(&t, B(0), 131 * BLOCK), MM_BLOCKS_MIXED); /* invalid */

    /* Plugging a range that is partly plugged is refused and changes nothing. */
    assert_int_equal(mm_tracker_plug(&t, B(69), 2 * BLOCK, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not entirely unplugged"));
    assert_int_equal(mm_tracker_state(&t, B(70), BLOCK), MM_BLOCKS_UNPLUGGED);
    /* Unplugging a partly unplugged range too. */
    assert_int_equal(mm_tracker_unplug(&t, B(69), 2 * BLOCK), -1);
    assert_int_equal(mm_tracker_state(&t, B(69), BLOCK), MM_BLOCKS_PLUGGED);
    assert_int_equal(mm_tracker_plug(&t, B(1) + 1, BLOCK, err, sizeof(err)), -1);

    assert_int_equal(mm_tracker_unplug(&t, B(62), 3 * BLOCK), 0);
    assert_int_equal(mm_tracker_plugged_bytes(&t), 7 * BLOCK);
    assert_int_equal(mm_tracker_state(&t, B(60), 10 * BLOCK), MM_BLOCKS_MIXED);

    /* Byte-granular accessibility (what the guest-memory accessor asks). */
    assert_true(mm_tracker_accessible(&t, B(60) + 100, 16));
    assert_true(mm_tracker_accessible(&t, B(60), 2 * BLOCK));
    assert_false(mm_tracker_accessible(&t, B(61) + BLOCK - 8, 16)); /* into block 62 */
    assert_false(mm_tracker_accessible(&t, B(62), 1));
    assert_false(mm_tracker_accessible(&t, BASE - 1, 2));
    assert_false(mm_tracker_accessible(&t, B(129) + BLOCK - 1, 2));
    assert_false(mm_tracker_accessible(&t, UINT64_MAX, 2));
    mm_tracker_destroy(&t);
}

static void test_listener_order(void **state)
{
    (void)state;
    struct mm_tracker t;
    struct test_listener a, b, c;
    char err[256];
    tl_init(&a, "A");
    tl_init(&b, "B");
    tl_init(&c, "C");
    event_log[0] = '\0';
    assert_int_equal(mm_tracker_init(&t, BASE, 64 * BLOCK, BLOCK, NULL), 0);
    assert_int_equal(mm_tracker_register(&t, &a.l, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&t, &b.l, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&t, &c.l, err, sizeof(err)), 0);
    expect_log(""); /* nothing plugged: nothing replayed */

    /* populate in registration order, discard in reverse, one call per run. */
    assert_int_equal(mm_tracker_plug(&t, B(4), 4 * BLOCK, err, sizeof(err)), 0);
    expect_log("A+4,4 B+4,4 C+4,4 ");
    assert_int_equal(mm_tracker_unplug(&t, B(4), 4 * BLOCK), 0);
    expect_log("C-4,4 B-4,4 A-4,4 ");

    /* B refuses: A is rolled back, C never hears of it, nothing is plugged. */
    b.refuse_after = b.populates;
    assert_int_equal(mm_tracker_plug(&t, B(8), 2 * BLOCK, err, sizeof(err)), -1);
    expect_log("A+8,2 B!8,2 A-8,2 ");
    assert_non_null(strstr(err, "B refused"));
    assert_non_null(strstr(err, "no more DMA entries"));
    assert_int_equal(mm_tracker_plugged_bytes(&t), 0);
    assert_int_equal(mm_tracker_state(&t, B(8), 2 * BLOCK), MM_BLOCKS_UNPLUGGED);

    /* The first listener refusing: nobody else is called. */
    b.refuse_after = -1;
    a.refuse_after = a.populates;
    assert_int_equal(mm_tracker_plug(&t, B(8), 2 * BLOCK, err, sizeof(err)), -1);
    expect_log("A!8,2 ");
    a.refuse_after = -1;

    /* Unregistering B: B discards what is plugged, later calls skip B. */
    assert_int_equal(mm_tracker_plug(&t, B(0), BLOCK, err, sizeof(err)), 0);
    expect_log("A+0,1 B+0,1 C+0,1 ");
    mm_tracker_unregister(&t, &b.l);
    expect_log("B-0,1 ");
    assert_int_equal(mm_tracker_unplug(&t, B(0), BLOCK), 0);
    expect_log("C-0,1 A-0,1 ");
    mm_tracker_unregister(&t, &a.l);
    mm_tracker_unregister(&t, &c.l);
    mm_tracker_unregister(&t, &c.l); /* not registered: no effect */
    expect_log("");
    mm_tracker_destroy(&t);
}

static void record_after(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)opaque;
    log_event("mem", '-', gpa, len);
}

/* The tracker's memory, when a test gives it some: a listener checks it is still there. */
static struct mm_backing *test_memory;

static int checking_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                            size_t errlen)
{
    (void)err;
    (void)errlen;
    const uint8_t *p = test_memory->hva + (gpa - BASE);
    bool intact = true;
    for (uint64_t off = 0; off < len; off += 4096)
        intact &= p[off] == 0xa5;
    log_event(intact ? l->name : "discarded-too-early", '-', gpa, len);
    return 0;
}

static const struct mm_listener_ops checking_ops = {.populate = tl_populate,
                                                    .discard = checking_discard};

static void test_unplug_all_runs(void **state)
{
    (void)state;
    struct mm_tracker t;
    struct mm_backing mem;
    struct test_listener a, b;
    char err[256];
    tl_init(&a, "A");
    tl_init(&b, "B");
    b.l.ops = &checking_ops;
    assert_int_equal(mm_backing_alloc(&mem, MM_BACKING_ANON, 130 * BLOCK, NULL, err, sizeof(err)),
                     0);
    test_memory = &mem;
    assert_int_equal(mm_tracker_init(&t, BASE, 130 * BLOCK, BLOCK, &mem), 0);
    assert_int_equal(mm_tracker_register(&t, &a.l, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&t, &b.l, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&t, B(0), 3 * BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&t, B(3), 2 * BLOCK, err, sizeof(err)), 0); /* adjacent */
    assert_int_equal(mm_tracker_plug(&t, B(63), 3 * BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&t, B(129), BLOCK, err, sizeof(err)), 0);
    memset(mem.hva, 0xa5, 130 * BLOCK);
    event_log[0] = '\0';
    /*
     * Adjacent plugs merge into one run; every listener is told while the
     * memory is still there, and only then is it given back: unplugged
     * blocks read zero, the others keep their data.
     */
    assert_int_equal(mm_tracker_unplug_all(&t), 9 * BLOCK);
    expect_log("B-0,5 A-0,5 B-63,3 A-63,3 B-129,1 A-129,1 ");
    assert_int_equal(mm_tracker_plugged_bytes(&t), 0);
    assert_int_equal(mm_tracker_kept_bytes(&t), 0);
    assert_int_equal(mem.hva[B(4) - BASE], 0);
    assert_int_equal(mem.hva[B(63) - BASE + BLOCK - 1], 0);
    assert_int_equal(mem.hva[B(129) - BASE], 0);
    assert_int_equal(mem.hva[B(5) - BASE], 0xa5); /* never plugged, never discarded */
    assert_int_equal(mm_tracker_unplug_all(&t), 0);
    expect_log("");
    mm_tracker_destroy(&t);
    mm_backing_free(&mem);
}

static void test_replay_late_listener(void **state)
{
    (void)state;
    struct mm_tracker t;
    struct test_listener late, again;
    char err[256];
    assert_int_equal(mm_tracker_init(&t, BASE, 130 * BLOCK, BLOCK, NULL), 0);
    assert_int_equal(mm_tracker_plug(&t, B(1), 2 * BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&t, B(64), BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&t, B(100), 30 * BLOCK, err, sizeof(err)), 0);
    event_log[0] = '\0';

    tl_init(&late, "L");
    assert_int_equal(mm_tracker_register(&t, &late.l, err, sizeof(err)), 0);
    expect_log("L+1,2 L+64,1 L+100,30 ");

    /* A listener that refuses the second run: the first is undone, it is not registered. */
    tl_init(&again, "R");
    again.refuse_after = 1;
    assert_int_equal(mm_tracker_register(&t, &again.l, err, sizeof(err)), -1);
    expect_log("R+1,2 R!64,1 R-1,2 ");
    assert_non_null(strstr(err, "R refused"));
    assert_int_equal(mm_tracker_plug(&t, B(10), BLOCK, err, sizeof(err)), 0);
    expect_log("L+10,1 "); /* R is not a listener */

    /* Iteration sees the runs in address order. */
    mm_tracker_for_each_plugged(&t, record_after, NULL);
    expect_log("mem-1,2 mem-10,1 mem-64,1 mem-100,30 ");
    mm_tracker_destroy(&t);
}

/* Runs of blocks in one state, counted the slow way. */
static uint64_t count_runs(struct mm_tracker *t)
{
    uint64_t runs = 1;
    for (uint64_t i = 1; i < t->nr_blocks; i++)
        if ((mm_tracker_state(t, B(i - 1), BLOCK) == MM_BLOCKS_PLUGGED) !=
            (mm_tracker_state(t, B(i), BLOCK) == MM_BLOCKS_PLUGGED))
            runs++;
    return runs;
}

/* The run count (the guard's mapping count) follows every plug and unplug, and predicts it. */
static void test_runs(void **state)
{
    (void)state;
    struct mm_tracker t;
    char err[256];
    const uint64_t n = 64;
    assert_int_equal(mm_tracker_init(&t, BASE, n * BLOCK, BLOCK, NULL), 0);
    assert_int_equal(mm_tracker_runs(&t), 1);
    /* One block in the middle: 3; at the start: 2 more would be 4 ... */
    assert_int_equal(mm_tracker_runs_after(&t, B(10), BLOCK, true), 3);
    assert_int_equal(mm_tracker_runs_after(&t, B(0), BLOCK, true), 2);
    assert_int_equal(mm_tracker_runs_after(&t, B(0), n * BLOCK, true), 1);
    /* Asking about an impossible change answers the count now. */
    assert_int_equal(mm_tracker_runs_after(&t, B(10), BLOCK, false), 1);
    assert_int_equal(mm_tracker_runs_after(&t, B(10) + 1, BLOCK, true), 1);

    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t first = (seed >> 33) % n;
        uint64_t len = 1 + (seed >> 20) % 4;
        if (first + len > n)
            len = n - first;
        bool plug = (seed >> 8) & 1;
        uint64_t predicted = mm_tracker_runs_after(&t, B(first), len * BLOCK, plug);
        if (plug)
            mm_tracker_plug(&t, B(first), len * BLOCK, err, sizeof(err));
        else
            mm_tracker_unplug(&t, B(first), len * BLOCK);
        uint64_t real = count_runs(&t);
        if (mm_tracker_runs(&t) != real || predicted != real)
            fail_msg("step %d: %s [%llu, +%llu): runs %llu, predicted %llu, counted %llu", step,
                     plug ? "plug" : "unplug", (unsigned long long)first, (unsigned long long)len,
                     (unsigned long long)mm_tracker_runs(&t), (unsigned long long)predicted,
                     (unsigned long long)real);
        if (step % 1000 == 999) {
            mm_tracker_unplug_all(&t);
            assert_int_equal(mm_tracker_runs(&t), 1);
        }
    }
    mm_tracker_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_plug_unplug_state),
        cmocka_unit_test(test_listener_order),
        cmocka_unit_test(test_unplug_all_runs),
        cmocka_unit_test(test_replay_late_listener),
        cmocka_unit_test(test_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
