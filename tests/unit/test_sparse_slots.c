/* Unit tests for per-chunk memslots (mm/sparse_slots.c) and the discard fence (mm/discard.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "mm/discard.h"
#include "mm/memmap.h"
#include "mm/sparse_slots.h"
#include "mm/tracker.h"
#include "vmm/util.h"

#define BASE  (8ULL << 30)
#define BLOCK (2ULL << 20)
#define CHUNK (128ULL << 20)
#define SIZE  (1ULL << 30) /* 8 chunks */

struct fixture {
    struct mm_map map;
    struct mm_tracker tracker;
    struct mm_sparse_slots slots;
    uint8_t *hva;
};

static int setup(void **state)
{
    static struct fixture f;
    char err[256];
    memset(&f, 0, sizeof(f));
    mm_map_init(&f.map);
    f.hva = (uint8_t *)(uintptr_t)0x7f0000000000ULL; /* never dereferenced: no KVM here */
    assert_int_equal(mm_tracker_init(&f.tracker, BASE, SIZE, BLOCK, NULL), 0);
    assert_int_equal(mm_sparse_slots_init(&f.slots, &f.map, BASE, SIZE, f.hva, CHUNK, "memslots",
                                          err, sizeof(err)),
                     0);
    assert_int_equal(mm_tracker_register(&f.tracker, &f.slots.listener, err, sizeof(err)), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mm_tracker_unregister(&f->tracker, &f->slots.listener);
    mm_sparse_slots_destroy(&f->slots);
    mm_tracker_destroy(&f->tracker);
    assert_int_equal(mm_slot_count(&f->map), 0); /* nothing leaked */
    mm_map_destroy(&f->map);
    return 0;
}

static uint64_t B(uint64_t n)
{
    return BASE + n * BLOCK;
}

/* The slot of chunk c must cover exactly that chunk. */
static void expect_chunk_slot(struct fixture *f, uint64_t c, bool present)
{
    int id = f->slots.slot[c];
    if (!present) {
        assert_int_equal(id, -1);
        return;
    }
    assert_true(id >= 0);
    assert_true(f->map.slots[id].used);
    assert_int_equal(f->map.slots[id].gpa, BASE + c * CHUNK);
    assert_int_equal(f->map.slots[id].size, CHUNK);
    assert_ptr_equal(f->map.slots[id].hva, f->hva + c * CHUNK);
}

static void test_slots_follow_plugs(void **state)
{
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(mm_sparse_slots_count(&f->slots), 0);
    /* Two blocks in chunk 0: one slot. */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(0), 2 * BLOCK, err, sizeof(err)), 0);
    expect_chunk_slot(f, 0, true);
    assert_int_equal(mm_sparse_slots_count(&f->slots), 1);
    /* A run across chunks 1..2 (blocks 63..65 of 64 per chunk): two more slots. */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(127), 3 * BLOCK, err, sizeof(err)), 0);
    expect_chunk_slot(f, 1, true);
    expect_chunk_slot(f, 2, true);
    assert_int_equal(mm_slot_count(&f->map), 3);
    /* Unplugging part of chunk 0 keeps its slot; the rest removes it. */
    assert_int_equal(mm_tracker_unplug(&f->tracker, B(1), BLOCK), 0);
    expect_chunk_slot(f, 0, true);
    assert_int_equal(mm_tracker_unplug(&f->tracker, B(0), BLOCK), 0);
    expect_chunk_slot(f, 0, false);
    /* unplug_all removes everything. */
    mm_tracker_unplug_all(&f->tracker);
    assert_int_equal(mm_sparse_slots_count(&f->slots), 0);
    assert_int_equal(mm_slot_count(&f->map), 0);
}

static void test_full_mode(void **state)
{
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(mm_tracker_plug(&f->tracker, B(200), BLOCK, err, sizeof(err)),
                     0); /* chunk 3 */
    assert_int_equal(mm_sparse_slots_set_full(&f->slots, true, err, sizeof(err)), 0);
    assert_int_equal(mm_sparse_slots_count(&f->slots), SIZE / CHUNK);
    for (uint64_t c = 0; c < SIZE / CHUNK; c++)
        expect_chunk_slot(f, c, true);
    /* Unplugging in full mode keeps the slot. */
    assert_int_equal(mm_tracker_unplug(&f->tracker, B(200), BLOCK), 0);
    expect_chunk_slot(f, 3, true);
    assert_int_equal(mm_tracker_plug(&f->tracker, B(70), BLOCK, err, sizeof(err)), 0); /* chunk 1 */
    /* Back to sparse: only chunk 1 keeps a slot. */
    assert_int_equal(mm_sparse_slots_set_full(&f->slots, false, err, sizeof(err)), 0);
    assert_int_equal(mm_sparse_slots_count(&f->slots), 1);
    expect_chunk_slot(f, 1, true);
    mm_tracker_unplug_all(&f->tracker);
}

static void test_no_slot_left_refuses_plug(void **state)
{
    struct fixture *f = *state;
    char err[256];
    /* Use up the memslot table except one entry. */
    int filler[MM_MAX_SLOTS];
    unsigned n = 0;
    while (mm_slot_count(&f->map) < MM_MAX_SLOTS - 1)
        filler[n++] = mm_slot_add(&f->map, 1ULL << 40, 4096, f->hva, 0);
    /* A run over two chunks needs two slots: refused, and nothing is left behind. */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(63), 2 * BLOCK, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "memslots refused"));
    assert_non_null(strstr(err, "cannot add a KVM memslot"));
    assert_int_equal(mm_tracker_plugged_bytes(&f->tracker), 0);
    assert_int_equal(mm_slot_count(&f->map), MM_MAX_SLOTS - 1);
    expect_chunk_slot(f, 0, false);
    /* One chunk fits. */
    assert_int_equal(mm_tracker_plug(&f->tracker, B(0), BLOCK, err, sizeof(err)), 0);
    mm_tracker_unplug_all(&f->tracker);
    for (unsigned i = 0; i < n; i++)
        mm_slot_remove(&f->map, filler[i]);
}

static void test_chunk_size(void **state)
{
    (void)state;
    assert_int_equal(mm_sparse_chunk_size(16ULL << 30, 2 << 20, 256), 128 << 20);
    assert_int_equal(mm_sparse_chunk_size(64ULL << 30, 2 << 20, 256), 256 << 20);
    assert_int_equal(mm_sparse_chunk_size(1ULL << 30, 1ULL << 30, 256), 1ULL << 30);
    assert_int_equal(mm_sparse_chunk_size(100ULL << 20, 4096, 256), 128 << 20);
}

static void test_discard_policy(void **state)
{
    (void)state;
    struct mm_discard_policy p = {0};
    char err[256];
    /* virtio-mem (coordinated) and VFIO (forbids uncoordinated) go together. */
    assert_int_equal(
        mm_discard_require(&p, MM_DISCARD_COORDINATED, "virtio-mem mem0", err, sizeof(err)), 0);
    assert_int_equal(
        mm_discard_forbid(&p, MM_DISCARD_UNCOORDINATED, "vfio 0000:00:03.0", err, sizeof(err)), 0);
    /* An uncoordinated discarder arriving later is refused, naming both. */
    assert_int_equal(mm_discard_require(&p, MM_DISCARD_UNCOORDINATED, "balloon", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "balloon discards guest memory without notifying"));
    assert_non_null(strstr(err, "vfio 0000:00:03.0 must keep the memory it maps"));
    /* Something that cannot follow any discard conflicts with virtio-mem. */
    assert_int_equal(mm_discard_forbid(&p, MM_DISCARD_COORDINATED, "legacy-dma", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "virtio-mem mem0 discards guest memory (after notifying"));

    /* The other order: the uncoordinated discarder first, VFIO refused. */
    struct mm_discard_policy q = {0};
    assert_int_equal(mm_discard_require(&q, MM_DISCARD_UNCOORDINATED, "balloon", err, sizeof(err)),
                     0);
    assert_int_equal(mm_discard_forbid(&q, MM_DISCARD_UNCOORDINATED, "vfio", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "balloon discards"));
    /* Forbidding everything also rules out the uncoordinated kind. */
    struct mm_discard_policy r = {0};
    assert_int_equal(mm_discard_forbid(&r, MM_DISCARD_COORDINATED, "strict", err, sizeof(err)), 0);
    assert_int_equal(mm_discard_require(&r, MM_DISCARD_UNCOORDINATED, "balloon", err, sizeof(err)),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots_follow_plugs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_slot_left_refuses_plug, setup, teardown),
        cmocka_unit_test(test_chunk_size),
        cmocka_unit_test(test_discard_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
