/*
 * test_acpi_pm.c - unit tests of the ACPI power-management registers
 * (devices/acpi_pm.c), without KVM.
 *
 * The device sits on a test VM (test_vm.h) whose request_stop op records
 * what it is asked; the tests write the registers through bus_access() as a
 * vCPU's port-I/O exit does.  Register bits come from the ACPI spec (6.5
 * §4.8.3.7 sleep control: SLP_TYP in bits 2-4, SLP_EN bit 5), written out
 * here on purpose; the sleep type and reset value are the ones the VM puts
 * in its DSDT \_S5 and FADT (vmm/layout.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/acpi_pm.h"
#include "vmm/layout.h"

#include "tests/unit/test_vm.h"

#define SLP_EN         0x20
#define SLP_TYP(t)     ((uint8_t)((t) << 2))
#define WAK_STS        0x80
#define SLEEP_CONTROL  0x600
#define SLEEP_STATUS   0x601
#define RESET_REGISTER 0x602

static int setup(void **state)
{
    char err[256];
    struct test_vm *vm = calloc(1, sizeof(*vm));
    assert_non_null(vm);
    test_vm_init(vm, 0);
    if (acpi_pm_create(&vm->host, err, sizeof(err)) < 0)
        fail_msg("acpi_pm_create: %s", err);
    *state = vm;
    return 0;
}

static int teardown(void **state)
{
    struct test_vm *vm = *state;
    test_vm_destroy(vm);
    free(vm);
    return 0;
}

static void port_write(struct test_vm *vm, uint16_t port, uint8_t v)
{
    assert_true(bus_access(&vm->pio, port, &v, 1, true));
}

static uint8_t port_read(struct test_vm *vm, uint16_t port)
{
    uint8_t v = 0xff;
    assert_true(bus_access(&vm->pio, port, &v, 1, false));
    return v;
}

/* The layout the VM advertises is the one tested here. */
static void test_ports_match_layout(void **state)
{
    struct test_vm *vm = *state;
    assert_int_equal(LAYOUT_PM_SLEEP_CONTROL, SLEEP_CONTROL);
    assert_int_equal(LAYOUT_PM_SLEEP_STATUS, SLEEP_STATUS);
    assert_int_equal(LAYOUT_PM_RESET, RESET_REGISTER);
    /* One device in the VM's list, and nothing requested by being created. */
    assert_non_null(vm->devices);
    assert_null(vm->devices->next);
    assert_string_equal(vm->devices->name, "acpi-pm");
    assert_int_equal(vm->stop_requests, 0);
}

/* S5 with SLP_EN is a power-off: one stop request, POWEROFF. */
static void test_s5_powers_off(void **state)
{
    struct test_vm *vm = *state;
    port_write(vm, SLEEP_CONTROL, SLP_TYP(LAYOUT_PM_S5_SLEEP_TYPE) | SLP_EN);
    assert_int_equal(vm->stop_requests, 1);
    assert_int_equal(vm->first_stop, DEV_STOP_POWEROFF);
}

/* The sleep type without SLP_EN is no sleep request: nothing until SLP_EN is set. */
static void test_sleep_type_without_enable_is_ignored(void **state)
{
    struct test_vm *vm = *state;
    port_write(vm, SLEEP_CONTROL, SLP_TYP(LAYOUT_PM_S5_SLEEP_TYPE));
    assert_int_equal(vm->stop_requests, 0);
    port_write(vm, SLEEP_CONTROL, SLP_TYP(LAYOUT_PM_S5_SLEEP_TYPE) | SLP_EN);
    assert_int_equal(vm->stop_requests, 1);
}

/* A sleep state minivmm does not offer (S3) is refused: no stop. */
static void test_other_sleep_type_is_refused(void **state)
{
    struct test_vm *vm = *state;
    port_write(vm, SLEEP_CONTROL, SLP_TYP(3) | SLP_EN);
    assert_int_equal(vm->stop_requests, 0);
}

/* The reset value on the reset register is a reboot; other values are not. */
static void test_reset_register(void **state)
{
    struct test_vm *vm = *state;
    port_write(vm, RESET_REGISTER, (uint8_t)(LAYOUT_PM_RESET_VALUE + 1));
    assert_int_equal(vm->stop_requests, 0);
    port_write(vm, RESET_REGISTER, LAYOUT_PM_RESET_VALUE);
    assert_int_equal(vm->stop_requests, 1);
    assert_int_equal(vm->first_stop, DEV_STOP_RESET);
}

/* Sleep status never says "woken", and clearing WAK_STS is harmless. */
static void test_sleep_status_reads_zero(void **state)
{
    struct test_vm *vm = *state;
    assert_int_equal(port_read(vm, SLEEP_STATUS), 0);
    port_write(vm, SLEEP_STATUS, WAK_STS);
    assert_int_equal(port_read(vm, SLEEP_STATUS), 0);
    assert_int_equal(vm->stop_requests, 0);
}

/* A second device on the same ports is refused with a message naming them. */
static void test_ports_taken(void **state)
{
    struct test_vm *vm = *state;
    char err[256] = "";
    assert_int_equal(acpi_pm_create(&vm->host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "0x600"));
    assert_null(vm->devices->next);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ports_match_layout),
        T(test_s5_powers_off),
        T(test_sleep_type_without_enable_is_ignored),
        T(test_other_sleep_type_is_refused),
        T(test_reset_register),
        T(test_sleep_status_reads_zero),
        T(test_ports_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
