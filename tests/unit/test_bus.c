/* Unit tests for bus dispatch (devices/bus.c) and per-vCPU CPUID (vmm/cpuid.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "vmm/cpuid.h"

struct recorder {
    uint64_t last_offset;
    unsigned last_len;
    uint32_t last_value;
    unsigned reads, writes;
};

static void rec_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct recorder *r = opaque;
    r->reads++;
    r->last_offset = offset;
    r->last_len = len;
    memset(data, 0, len);
    memcpy(data, &offset, len < 8 ? len : 8); /* reads return their own offset */
}

static void rec_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct recorder *r = opaque;
    r->writes++;
    r->last_offset = offset;
    r->last_len = len;
    r->last_value = 0;
    memcpy(&r->last_value, data, len < 4 ? len : 4);
}

static const struct bus_ops rec_ops = {.read = rec_read, .write = rec_write};

static void test_dispatch(void **state)
{
    (void)state;
    struct bus bus;
    struct recorder a = {0}, b = {0};
    bus_init(&bus, "test");
    assert_int_equal(bus_register(&bus, 0x3f8, 8, &rec_ops, &a, "a"), 0);
    assert_int_equal(bus_register(&bus, 0x600, 3, &rec_ops, &b, "b"), 0);

    uint32_t v = 0;
    assert_true(bus_access(&bus, 0x3fd, &v, 1, false));
    assert_int_equal(a.reads, 1);
    assert_int_equal(a.last_offset, 5);
    assert_int_equal(v, 5);

    v = 0x34;
    assert_true(bus_access(&bus, 0x602, &v, 1, true));
    assert_int_equal(b.writes, 1);
    assert_int_equal(b.last_offset, 2);
    assert_int_equal(b.last_value, 0x34);

    /* Unclaimed: reads give all ones, writes vanish, both counted. */
    v = 0;
    assert_false(bus_access(&bus, 0x500, &v, 4, false));
    assert_int_equal(v, 0xffffffff);
    assert_false(bus_access(&bus, 0x500, &v, 4, true));
    assert_int_equal(bus.unclaimed, 2);
    /* An access running past the end of a range is not dispatched. */
    assert_false(bus_access(&bus, 0x3ff, &v, 2, false));
    assert_int_equal(a.reads, 1);
    bus_destroy(&bus);
}

static void test_overlaps(void **state)
{
    (void)state;
    struct bus bus;
    struct recorder a = {0};
    bus_init(&bus, "test");
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &rec_ops, &a, "a"), 0);
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &rec_ops, &a, "dup"), -1);
    assert_int_equal(bus_register(&bus, 0x10ff, 1, &rec_ops, &a, "tail"), -1);
    assert_int_equal(bus_register(&bus, 0xf00, 0x101, &rec_ops, &a, "head"), -1);
    assert_int_equal(bus_register(&bus, 0xf00, 0x100, &rec_ops, &a, "before"), 0);
    assert_int_equal(bus_register(&bus, 0x1100, 0x100, &rec_ops, &a, "after"), 0);
    assert_int_equal(bus_register(&bus, 0x2000, 0, &rec_ops, &a, "empty"), -1);
    assert_int_equal(bus_register(&bus, UINT64_MAX, 2, &rec_ops, &a, "wrap"), -1);
    assert_int_equal(bus_register(&bus, UINT64_MAX, 1, &rec_ops, &a, "last"), 0);
    assert_int_equal(bus.nr, 4);
    for (unsigned i = 1; i < bus.nr; i++)
        assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
    /* Unregister and re-register. */
    assert_int_equal(bus_unregister(&bus, 0x1000), 0);
    assert_int_equal(bus_unregister(&bus, 0x1000), -1);
    assert_int_equal(bus_register(&bus, 0x1080, 0x10, &rec_ops, &a, "middle"), 0);
    uint8_t v;
    assert_true(bus_access(&bus, 0x1085, &v, 1, false));
    assert_int_equal(a.last_offset, 5);
    bus_destroy(&bus);
}

static void test_many_ranges(void **state)
{
    (void)state;
    struct bus bus;
    struct recorder r[100];
    memset(r, 0, sizeof(r));
    bus_init(&bus, "test");
    /* Register in a scrambled order; lookups must still find each one. */
    for (unsigned i = 0; i < 100; i++) {
        unsigned k = (i * 37) % 100;
        assert_int_equal(bus_register(&bus, 0x10000 + k * 0x1000, 0x800, &rec_ops, &r[k], "r"), 0);
    }
    for (unsigned k = 0; k < 100; k++) {
        uint32_t v;
        assert_true(bus_access(&bus, 0x10000 + k * 0x1000 + 0x7fc, &v, 4, false));
        assert_int_equal(r[k].reads, 1);
        assert_false(bus_access(&bus, 0x10000 + k * 0x1000 + 0x800, &v, 4, false));
    }
    bus_destroy(&bus);
}

static struct kvm_cpuid2 *fake_cpuid(void)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(struct kvm_cpuid_entry2));
    c->nent = 4;
    c->entries[0] =
        (struct kvm_cpuid_entry2){.function = 1, .ebx = 0xff0a0800, .ecx = 0x1, .edx = 1u << 28};
    c->entries[1] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .edx = 7};
    c->entries[2] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .edx = 7};
    c->entries[3] = (struct kvm_cpuid_entry2){.function = 0x40000000, .eax = 0x40000001};
    return c;
}

static void test_cpuid_patch(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = fake_cpuid();
    struct cpuid_options opt = {.apic_id = 3, .nr_cpus = 4, .tsc_deadline = true};
    cpuid_patch(c, &opt);
    struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
    assert_non_null(l1);
    assert_int_equal(l1->ebx >> 24, 3);
    assert_int_equal((l1->ebx >> 16) & 0xff, 4);
    assert_int_equal(l1->ebx & 0xffff, 0x0800); /* CLFLUSH size etc. untouched */
    assert_true(l1->ecx & (1u << 31));          /* hypervisor */
    assert_true(l1->ecx & (1u << 24));          /* TSC deadline */
    assert_true(l1->ecx & 1);                   /* other bits kept */
    assert_int_equal(cpuid_find(c, 0xb, 0)->edx, 3);
    assert_int_equal(cpuid_find(c, 0xb, 1)->edx, 3);
    assert_ptr_equal(cpuid_find(c, 0xb, 1), &c->entries[2]);
    assert_int_equal(cpuid_find(c, 0x40000000, 5)->eax, 0x40000001); /* index ignored */
    assert_null(cpuid_find(c, 7, 0));

    opt = (struct cpuid_options){.apic_id = 0, .nr_cpus = 1, .tsc_deadline = false};
    cpuid_patch(c, &opt);
    assert_int_equal(l1->ebx >> 24, 0);
    assert_int_equal((l1->ebx >> 16) & 0xff, 0);
    assert_false(l1->edx & (1u << 28)); /* no HTT with one CPU */
    assert_false(l1->ecx & (1u << 24));
    free(c);
}

/* A 2-core host must not leak into a 3-vCPU guest: one package of 3 cores. */
static void test_cpuid_topology(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(struct kvm_cpuid_entry2));
    c->nent = 8;
    const uint32_t sig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    c->entries[0] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 0, .flags = sig, .eax = 1, .ebx = 2, .ecx = 0x100};
    c->entries[1] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 1, .flags = sig, .eax = 1, .ebx = 2, .ecx = 0x201};
    c->entries[2] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 2, .flags = sig, .eax = 7, .ebx = 7, .ecx = 0x302};
    /* Leaf 4: an L1 data cache (type 1, level 1) and an L3 (type 3, level 3). */
    c->entries[3] = (struct kvm_cpuid_entry2){
        .function = 4, .index = 0, .flags = sig, .eax = 1u << 26 | 1u << 14 | 1 << 5 | 1};
    c->entries[4] = (struct kvm_cpuid_entry2){
        .function = 4, .index = 3, .flags = sig, .eax = 1u << 26 | 1u << 14 | 3 << 5 | 3};
    c->entries[5] = (struct kvm_cpuid_entry2){
        .function = 0x80000008, .eax = 0x3030, .ecx = 1u << 12 | 1 | 0xa0000};
    c->entries[6] = (struct kvm_cpuid_entry2){.function = 0x8000001e, .ebx = 0x101, .ecx = 0x100};
    c->entries[7] = (struct kvm_cpuid_entry2){
        .function = 0x8000001d, .index = 3, .flags = sig, .eax = 1u << 14 | 3 << 5 | 3};
    struct cpuid_options opt = {.apic_id = 2, .nr_cpus = 3};
    cpuid_patch(c, &opt);

    struct kvm_cpuid_entry2 *smt = cpuid_find(c, 0xb, 0), *core = cpuid_find(c, 0xb, 1);
    assert_int_equal(smt->eax, 0);                   /* no thread bits in the APIC id */
    assert_int_equal(smt->ebx, 1);                   /* one thread per core */
    assert_int_equal(smt->ecx, 0x100);               /* level 0 is SMT */
    assert_int_equal(core->eax, 2);                  /* 2 bits number 3 cores */
    assert_int_equal(core->ebx, 3);                  /* 3 logical processors in the package */
    assert_int_equal(core->ecx, 0x201);              /* level 1 is core */
    assert_int_equal(cpuid_find(c, 0xb, 2)->ebx, 0); /* and nothing above */
    assert_int_equal(cpuid_find(c, 0xb, 2)->ecx, 2);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(cpuid_find(c, 0xb, i)->edx, 2);
    /* Leaf 4: 4 addressable cores (power of two); the L3 is shared by all 3. */
    assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 3);
    assert_int_equal((cpuid_find(c, 4, 0)->eax >> 14) & 0xfff, 0);
    assert_int_equal((cpuid_find(c, 4, 3)->eax >> 14) & 0xfff, 2);
    assert_int_equal(cpuid_find(c, 4, 3)->eax & 0x3fff, 3 << 5 | 3); /* type and level kept */
    /* AMD: 3 cores (NC = 2), 2 core bits in the APIC id, other bits kept. */
    assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx, 0xa0000 | 2u << 12 | 2);
    assert_int_equal(cpuid_find(c, 0x80000008, 0)->eax, 0x3030);
    assert_int_equal(cpuid_find(c, 0x8000001e, 0)->eax, 2);
    assert_int_equal(cpuid_find(c, 0x8000001e, 0)->ebx, 2); /* core 2, one thread */
    assert_int_equal(cpuid_find(c, 0x8000001e, 0)->ecx, 0);
    assert_int_equal((cpuid_find(c, 0x8000001d, 3)->eax >> 14) & 0xfff, 2);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),       cmocka_unit_test(test_overlaps),
        cmocka_unit_test(test_many_ranges),    cmocka_unit_test(test_cpuid_patch),
        cmocka_unit_test(test_cpuid_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
