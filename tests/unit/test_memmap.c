/* Unit tests for the memory map, its accessor and host backing (mm/memmap.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/memmap.h"
#include "vmm/layout.h"
#include "vmm/util.h"

static void test_ram_layout_small(void **state)
{
    (void)state;
    struct mm_map m;
    char err[256];
    mm_map_init(&m);
    assert_int_equal(mm_map_setup_ram(&m, 128 * MiB, err, sizeof(err)), 0);
    assert_int_equal(m.nr_regions, 3);
    assert_int_equal(m.regions[0].type, MM_REGION_RAM);
    assert_int_equal(m.regions[1].type, MM_REGION_RESERVED);
    assert_int_equal(m.regions[2].gpa, MiB);
    assert_int_equal(m.regions[2].gpa + m.regions[2].size, 128 * MiB);
    assert_int_equal(m.low_ram_end, 128 * MiB);
    assert_int_equal(mm_slot_count(&m), 1); /* one memslot for all of it */
    /* Reserved and RAM share the backing: contiguous host memory. */
    assert_ptr_equal(mm_gpa(&m, 0xe0000, 1), m.ram.hva + 0xe0000);
    mm_map_destroy(&m);
}

static void test_ram_layout_split(void **state)
{
    (void)state;
    struct mm_map m;
    char err[256];
    mm_map_init(&m);
    assert_int_equal(mm_map_setup_ram(&m, 4 * GiB, err, sizeof(err)), 0);
    assert_int_equal(m.low_ram_end, LAYOUT_PCI_HOLE_START);
    assert_int_equal(mm_slot_count(&m), 2);
    const struct mm_region *hi = mm_map_find(&m, 4 * GiB);
    assert_non_null(hi);
    assert_int_equal(hi->size, 4 * GiB - LAYOUT_PCI_HOLE_START);
    assert_null(mm_map_find(&m, LAYOUT_PCI_HOLE_START));
    assert_null(mm_map_find(&m, 5 * GiB));
    /* The byte after the hole is the host byte after the last low byte. */
    assert_ptr_equal(mm_gpa(&m, 4 * GiB, 1),
                     (uint8_t *)mm_gpa(&m, LAYOUT_PCI_HOLE_START - 1, 1) + 1);
    mm_map_destroy(&m);
}

static void test_accessor_bounds(void **state)
{
    (void)state;
    struct mm_map m;
    char err[256];
    mm_map_init(&m);
    assert_int_equal(mm_map_setup_ram(&m, 64 * MiB, err, sizeof(err)), 0);
    const uint64_t end = 64 * MiB;
    assert_non_null(mm_gpa(&m, end - 8, 8));
    assert_null(mm_gpa(&m, end - 8, 9));        /* runs past the end */
    assert_null(mm_gpa(&m, end, 1));            /* just outside */
    assert_null(mm_gpa(&m, UINT64_MAX, 2));     /* wraps */
    assert_null(mm_gpa(&m, UINT64_MAX - 3, 8)); /* wraps */
    assert_null(mm_gpa(&m, 16, UINT64_MAX));    /* huge length */
    assert_non_null(mm_gpa(&m, 0, 0));          /* len 0 treated as 1 */
    /* A range that crosses from one region into the next is refused. */
    assert_null(mm_gpa(&m, LAYOUT_LOW_RAM_END - 4, 8));

    uint8_t buf[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, out[16];
    assert_int_equal(mm_write(&m, 0x5000, buf, sizeof(buf)), 0);
    assert_int_equal(mm_read(&m, 0x5000, out, sizeof(out)), 0);
    assert_memory_equal(buf, out, sizeof(buf));
    assert_int_equal(mm_write(&m, end - 4, buf, sizeof(buf)), -1);
    assert_int_equal(mm_read(&m, end - 4, out, sizeof(out)), -1);
    mm_map_destroy(&m);
}

static bool only_first_page(void *opaque, uint64_t gpa, uint64_t len)
{
    uint64_t base = *(uint64_t *)opaque;
    return gpa >= base && gpa + len <= base + 4096;
}

static void test_regions_and_accessible(void **state)
{
    (void)state;
    struct mm_map m;
    char err[256];
    mm_map_init(&m);
    static uint8_t backing[3 * 4096];
    uint64_t base = 8 * GiB;
    struct mm_region r = {.gpa = base,
                          .size = sizeof(backing),
                          .type = MM_REGION_DEVICE,
                          .hva = backing,
                          .name = "dev",
                          .accessible = only_first_page,
                          .opaque = &base};
    assert_int_equal(mm_map_add(&m, &r, err, sizeof(err)), 0);
    assert_ptr_equal(mm_gpa(&m, base + 8, 8), backing + 8);
    assert_null(mm_gpa(&m, base + 4096, 8)); /* not accessible now */

    /* Overlaps and wrap-around are refused with a message naming both. */
    struct mm_region o = {.gpa = base + 4096, .size = 4096, .name = "other"};
    assert_int_equal(mm_map_add(&m, &o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'other'"));
    assert_non_null(strstr(err, "'dev'"));
    struct mm_region w = {.gpa = UINT64_MAX - 4095, .size = 8192, .name = "wrap"};
    assert_int_equal(mm_map_add(&m, &w, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "wraps"));
    struct mm_region z = {.gpa = 0, .size = 0, .name = "empty"};
    assert_int_equal(mm_map_add(&m, &z, err, sizeof(err)), -1);

    /* Kept sorted. */
    struct mm_region lo = {.gpa = 4096, .size = 4096, .name = "low"};
    assert_int_equal(mm_map_add(&m, &lo, err, sizeof(err)), 0);
    assert_int_equal(m.regions[0].gpa, 4096);
    assert_int_equal(m.regions[1].gpa, base);
    assert_null(mm_gpa(&m, 4096, 1)); /* unbacked region: no host pointer */
    mm_map_destroy(&m);
}

static void test_slots(void **state)
{
    (void)state;
    struct mm_map m;
    mm_map_init(&m);
    static uint8_t mem[8192];
    int a = mm_slot_add(&m, 0x1000, 4096, mem, 0);
    int b = mm_slot_add(&m, 0x2000, 4096, mem + 4096, 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(mm_slot_count(&m), 2);
    assert_int_equal(mm_slot_remove(&m, a), 0);
    assert_int_equal(mm_slot_remove(&m, a), -1);
    assert_int_equal(mm_slot_count(&m), 1);
    assert_int_equal(mm_slot_add(&m, 0x3000, 4096, mem, 0), 0); /* lowest free id reused */
    assert_int_equal(mm_slot_remove(&m, MM_MAX_SLOTS), -1);
    mm_map_destroy(&m);
}

/* Resident pages of [p, p + len), from mincore(). */
static size_t resident_pages(void *p, size_t len)
{
    size_t pages = len / 4096, n = 0;
    unsigned char vec[256];
    assert_true(pages <= sizeof(vec));
    assert_int_equal(mincore(p, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

static void check_discard(enum mm_backing_kind kind)
{
    struct mm_backing b;
    char err[256];
    assert_int_equal(mm_backing_alloc(&b, kind, 64 * 4096, NULL, err, sizeof(err)), 0);
    assert_int_equal(b.size, 64 * 4096);
    assert_int_equal((uintptr_t)b.hva % MM_BACKING_ALIGN, 0); /* huge-page aligned */
    memset(b.hva, 0xab, b.size);
    assert_int_equal(resident_pages(b.hva, b.size), 64);
    assert_int_equal(mm_backing_discard(&b, 8 * 4096, 16 * 4096, err, sizeof(err)), 0);
    assert_int_equal(resident_pages(b.hva, b.size), 48);
    /* Discarded memory reads back as zero; the rest is untouched. */
    assert_int_equal(b.hva[8 * 4096], 0);
    assert_int_equal(b.hva[24 * 4096 - 1], 0);
    assert_int_equal(b.hva[24 * 4096], 0xab);
    assert_int_equal(b.hva[8 * 4096 - 1], 0xab);
    /* Misaligned or out-of-range discards are refused. */
    assert_int_equal(mm_backing_discard(&b, 100, 4096, err, sizeof(err)), -1);
    assert_int_equal(mm_backing_discard(&b, 60 * 4096, 8 * 4096, err, sizeof(err)), -1);
    assert_int_equal(mm_backing_discard(&b, 4096, UINT64_MAX - 100, err, sizeof(err)), -1);
    mm_backing_free(&b);
}

static void test_backing_anon(void **state)
{
    (void)state;
    check_discard(MM_BACKING_ANON);
}

static void test_backing_memfd(void **state)
{
    (void)state;
    check_discard(MM_BACKING_MEMFD);
}

static void test_backing_hugetlbfs_errors(void **state)
{
    (void)state;
    struct mm_backing b;
    char err[256];
    assert_int_equal(mm_backing_alloc(&b, MM_BACKING_HUGETLBFS, 2 * MiB, "/tmp", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "not a hugetlbfs mount"));
    assert_int_equal(
        mm_backing_alloc(&b, MM_BACKING_HUGETLBFS, 2 * MiB, "/nonexistent/dir", err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
}

/* Device regions are placed where DMA reaches: inside one span, around reserved holes. */
static void test_dma_spans(void **state)
{
    (void)state;
    struct mm_map map;
    const uint64_t G = 1ULL << 30, M = 1ULL << 20;
    mm_map_init(&map);
    /* No spans: anywhere, just aligned. */
    assert_int_equal(mm_map_dma_fit(&map, 4 * G + 1, G, 128 * M), 4 * G + 128 * M);
    assert_int_equal(mm_map_dma_fit(&map, UINT64_MAX - M, G, 128 * M), UINT64_MAX);
    /* q35's VT-d: below the MSI window, then up to 512 GiB; plus a hole at 8-9 GiB. */
    map.dma_spans[0] = (struct mm_span){0, 0xfedfffffULL};
    map.dma_spans[1] = (struct mm_span){0xfef00000ULL, 8 * G - 1};
    map.dma_spans[2] = (struct mm_span){9 * G, 512 * G - 1};
    map.nr_dma_spans = 3;
    assert_int_equal(mm_map_dma_fit(&map, 4 * G, 4 * G, 128 * M), 4 * G); /* ends at 8 GiB */
    assert_int_equal(mm_map_dma_fit(&map, 4 * G, 4 * G + 2 * M, 128 * M), 9 * G); /* moved */
    assert_int_equal(mm_map_dma_fit(&map, 4 * G, 503 * G, 128 * M), 9 * G);
    assert_int_equal(mm_map_dma_fit(&map, 4 * G, 504 * G, 128 * M), UINT64_MAX); /* no room */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_layout_small),
        cmocka_unit_test(test_ram_layout_split),
        cmocka_unit_test(test_accessor_bounds),
        cmocka_unit_test(test_regions_and_accessible),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_backing_anon),
        cmocka_unit_test(test_backing_memfd),
        cmocka_unit_test(test_backing_hugetlbfs_errors),
        cmocka_unit_test(test_dma_spans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
