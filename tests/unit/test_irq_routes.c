/*
 * Unit tests for the GSI routing table (devices/irq_routes.c) without KVM:
 * MSI GSIs are handed out above the IOAPIC pins, given back, refused when
 * all are taken or not allocated, and forgotten at a system reset.  The
 * table only goes to KVM once a VM fd is set; a bad fd makes that fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "devices/irq_routes.h"

static void test_alloc_free(void **state)
{
    (void)state;
    struct irq_routes r;
    irq_routes_init(&r);
    int a = irq_routes_alloc(&r), b = irq_routes_alloc(&r);
    assert_int_equal(a, IRQ_ROUTES_IOAPIC_PINS);
    assert_int_equal(b, IRQ_ROUTES_IOAPIC_PINS + 1);
    /* No VM fd yet: routes are kept, nothing is sent. */
    assert_int_equal(irq_routes_set_msi(&r, a, 0xfee00000, 0x4021), 0);
    assert_int_equal(r.msi[0].address, 0xfee00000);
    assert_int_equal(r.msi[0].data, 0x4021);
    assert_int_equal(irq_routes_free(&r, a), 0);
    assert_int_equal(irq_routes_alloc(&r), a); /* reused */
    /* IOAPIC pins and unallocated GSIs are not MSI routes. */
    assert_int_equal(irq_routes_set_msi(&r, 5, 0xfee00000, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(irq_routes_set_msi(&r, b + 1, 0xfee00000, 1), -1);
    assert_int_equal(irq_routes_free(&r, 3), -1);
    irq_routes_destroy(&r);
}

static void test_exhaustion_and_reset(void **state)
{
    (void)state;
    struct irq_routes r;
    irq_routes_init(&r);
    for (unsigned i = 0; i < IRQ_ROUTES_MAX_MSI; i++)
        assert_int_equal(irq_routes_alloc(&r), (int)(IRQ_ROUTES_IOAPIC_PINS + i));
    assert_int_equal(irq_routes_alloc(&r), -1);
    irq_routes_reset(&r);
    assert_int_equal(irq_routes_alloc(&r), IRQ_ROUTES_IOAPIC_PINS);
    irq_routes_destroy(&r);
}

static void test_commit_reaches_the_fd(void **state)
{
    (void)state;
    struct irq_routes r;
    irq_routes_init(&r);
    /* A fd that is no KVM VM: the ioctl fails and the caller hears of it. */
    assert_int_equal(irq_routes_commit(&r, 0x7fff), -1);
    int g = irq_routes_alloc(&r);
    assert_int_equal(irq_routes_set_msi(&r, g, 0xfee00000, 0x30), -1);
    /* Setting the same message again sends nothing, so it cannot fail. */
    assert_int_equal(irq_routes_set_msi(&r, g, 0xfee00000, 0x30), 0);
    irq_routes_reset(&r); /* forgets the fd too */
    assert_int_equal(r.vm_fd, -1);
    irq_routes_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free),
        cmocka_unit_test(test_exhaustion_and_reset),
        cmocka_unit_test(test_commit_reaches_the_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
