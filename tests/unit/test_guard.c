/* Unit tests for the memory guard (mm/guard.c): host access follows plugged blocks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "mm/guard.h"
#include "mm/memmap.h"
#include "mm/tracker.h"
#include "vmm/util.h"

#define BASE  (8ULL << 30)
#define BLOCK (2ULL << 20)
#define SIZE  (16 * BLOCK)

static sigjmp_buf probe_env;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(probe_env, 1);
}

/* Does reading (write = false) or writing the byte at p fault? */
static bool faults(volatile uint8_t *p, bool write)
{
    struct sigaction sa = {.sa_handler = on_segv}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    bool faulted = true;
    if (sigsetjmp(probe_env, 1) == 0) {
        if (write)
            *p = 0x5a;
        else
            (void)*p;
        faulted = false;
    }
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

struct fixture {
    struct mm_backing backing;
    struct mm_tracker tracker;
    struct mm_guard guard;
};

static int setup(void **state)
{
    static struct fixture f;
    char err[256];
    memset(&f, 0, sizeof(f));
    assert_int_equal(mm_backing_alloc(&f.backing, MM_BACKING_ANON, SIZE, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(mm_tracker_init(&f.tracker, BASE, SIZE, BLOCK, NULL), 0);
    assert_int_equal(
        mm_guard_init(&f.guard, &f.tracker, BASE, SIZE, f.backing.hva, 1024, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&f.tracker, &f.guard.listener, err, sizeof(err)), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mm_tracker_unregister(&f->tracker, &f->guard.listener);
    mm_tracker_destroy(&f->tracker);
    mm_backing_free(&f->backing);
    return 0;
}

static uint8_t *host(struct fixture *f, uint64_t block)
{
    return f->backing.hva + block * BLOCK;
}

static void test_unplugged_is_closed(void **state)
{
    struct fixture *f = *state;
    assert_true(faults(host(f, 0), false));
    assert_true(faults(host(f, 15) + BLOCK - 1, true));
}

static void test_plug_opens_unplug_closes(void **state)
{
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(mm_tracker_plug(&f->tracker, BASE + 2 * BLOCK, 3 * BLOCK, err, sizeof(err)),
                     0);
    assert_false(faults(host(f, 2), true));
    assert_false(faults(host(f, 4) + BLOCK - 1, true));
    assert_true(faults(host(f, 1) + BLOCK - 1, false)); /* the neighbours stay closed */
    assert_true(faults(host(f, 5), false));
    assert_int_equal(mm_tracker_unplug(&f->tracker, BASE + 3 * BLOCK, BLOCK), 0);
    assert_true(faults(host(f, 3), false));
    assert_false(faults(host(f, 2), true));
    assert_false(faults(host(f, 4), true));
    mm_tracker_unplug_all(&f->tracker);
    assert_true(faults(host(f, 2), false));
}

/* Readable mode: unplugged memory can be read (as zeroes) but never written. */
static void test_readable_mode(void **state)
{
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(mm_tracker_plug(&f->tracker, BASE, BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mm_guard_set_readable(&f->guard, true, err, sizeof(err)), 0);
    assert_false(faults(host(f, 7), false));
    assert_true(faults(host(f, 7), true));
    assert_false(faults(host(f, 0), true)); /* plugged stays writable */
    /* A block unplugged in readable mode becomes readable, not closed. */
    assert_int_equal(mm_tracker_unplug(&f->tracker, BASE, BLOCK), 0);
    assert_false(faults(host(f, 0), false));
    assert_true(faults(host(f, 0), true));
    /* Back to closed. */
    assert_int_equal(mm_guard_set_readable(&f->guard, false, err, sizeof(err)), 0);
    assert_true(faults(host(f, 7), false));
    assert_true(faults(host(f, 0), false));
}

/* The guard must come first: a later listener that refuses leaves the memory closed. */
static int refuse(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    (void)l;
    (void)gpa;
    (void)len;
    snprintf(err, errlen, "no");
    return -1;
}
static int nothing(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    (void)l;
    (void)gpa;
    (void)len;
    (void)err;
    (void)errlen;
    return 0;
}
static const struct mm_listener_ops refuse_ops = {.populate = refuse, .discard = nothing};

static void test_refused_plug_stays_closed(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct mm_listener r = {.ops = &refuse_ops, .name = "refuser"};
    assert_int_equal(mm_tracker_register(&f->tracker, &r, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&f->tracker, BASE + BLOCK, BLOCK, err, sizeof(err)), -1);
    assert_true(faults(host(f, 1), false));
    mm_tracker_unregister(&f->tracker, &r);
}

/* Host mappings (lines of /proc/self/maps) that overlap [p, p + len). */
static unsigned mappings_in(const uint8_t *p, uint64_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    unsigned n = 0;
    unsigned long long lo, hi;
    char line[512];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && lo < (uintptr_t)p + len &&
            hi > (uintptr_t)p)
            n++;
    fclose(f);
    return n;
}

/*
 * Alternate plugs split the region into one mapping per run: the check
 * refuses the plug that would need more than the budget, before mprotect
 * could fail, and the mappings never exceed it - also for unplugs that
 * would split a plugged run.
 */
static void test_mapping_budget(void **state)
{
    struct fixture *f = *state;
    char err[256];
    f->guard.max_runs = 8 + MM_GUARD_PIECE_SLACK;
    assert_int_equal(mappings_in(f->backing.hva, SIZE), 1);
    unsigned plugged = 0;
    for (uint64_t b = 1; b < 16; b += 2) {
        if (mm_guard_check(&f->guard, BASE + b * BLOCK, BLOCK, true, err, sizeof(err)) < 0) {
            assert_non_null(strstr(err, "more than the 10 host mappings"));
            break;
        }
        assert_int_equal(mm_tracker_plug(&f->tracker, BASE + b * BLOCK, BLOCK, err, sizeof(err)),
                         0);
        plugged++;
        assert_int_equal(mappings_in(f->backing.hva, SIZE), mm_tracker_runs(&f->tracker));
    }
    assert_int_equal(plugged, 3); /* 7 runs; a fourth block would make 9 */
    assert_int_equal(mappings_in(f->backing.hva, SIZE), 7);
    /* Joining runs is always allowed and gives mappings back. */
    assert_int_equal(mm_guard_check(&f->guard, BASE + 2 * BLOCK, BLOCK, true, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_plug(&f->tracker, BASE + 2 * BLOCK, BLOCK, err, sizeof(err)), 0);
    assert_int_equal(mappings_in(f->backing.hva, SIZE), 5);
    /* Unplugging the middle of [1, 4) would split it: 7 runs, allowed; then no further split. */
    assert_int_equal(mm_guard_check(&f->guard, BASE + 2 * BLOCK, BLOCK, false, err, sizeof(err)),
                     0);
    assert_int_equal(mm_tracker_unplug(&f->tracker, BASE + 2 * BLOCK, BLOCK), 0);
    assert_int_equal(mappings_in(f->backing.hva, SIZE), 7);
    /* A new run apart from the others would make 9; one joining block 5 keeps 7. */
    assert_int_equal(mm_guard_check(&f->guard, BASE + 8 * BLOCK, 3 * BLOCK, true, err, sizeof(err)),
                     -1);
    assert_int_equal(mm_guard_check(&f->guard, BASE + 6 * BLOCK, 3 * BLOCK, true, err, sizeof(err)),
                     0);
    assert_int_equal(mm_tracker_plug(&f->tracker, BASE + 6 * BLOCK, 3 * BLOCK, err, sizeof(err)),
                     0);
    assert_int_equal(mappings_in(f->backing.hva, SIZE), 7);
    /* Unplugging from the middle of [5, 9) would split it into 9 runs. */
    assert_int_equal(mm_guard_check(&f->guard, BASE + 7 * BLOCK, BLOCK, false, err, sizeof(err)),
                     -1);
    assert_int_equal(mm_guard_check(&f->guard, BASE + 8 * BLOCK, BLOCK, false, err, sizeof(err)),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unplugged_is_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug_opens_unplug_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readable_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_plug_stays_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
