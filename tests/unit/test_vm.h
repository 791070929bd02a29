/*
 * test_vm.h - a struct vm without KVM for the device unit tests: boot RAM,
 * the port-I/O and MMIO buses and the event loop, no VM fd (interrupts go
 * nowhere).  A test's setup calls test_vm_init(), creates its devices on the
 * VM, and its teardown calls test_vm_destroy(), which destroys the devices
 * too.
 */
#ifndef MINIVMM_TESTS_TEST_VM_H
#define MINIVMM_TESTS_TEST_VM_H

#include "devices/bus.h"
#include "devices/device.h"
#include "mm/memmap.h"
#include "vmm/evloop.h"
#include "vmm/vm.h"

/* vm (zeroed by the caller) gets ram_size bytes of boot RAM; cfg may be NULL. */
static inline void test_vm_init(struct vm *vm, struct vm_config *cfg, uint64_t ram_size)
{
    char err[256];
    vm->vm_fd = -1;
    vm->kvm_fd = -1;
    vm->cfg = cfg;
    mm_map_init(&vm->mem);
    if (mm_map_setup_ram(&vm->mem, ram_size, err, sizeof(err)) < 0)
        fail_msg("mm_map_setup_ram: %s", err);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    assert_int_equal(evloop_init(&vm->loop), 0);
    vm->devices_tail = &vm->devices;
}

/* Destroy vm's devices (each frees itself), then the VM. */
static inline void test_vm_destroy(struct vm *vm)
{
    for (struct device *d = vm->devices, *next; d; d = next) {
        next = d->next;
        d->ops->destroy(d);
    }
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    mm_map_destroy(&vm->mem);
    evloop_destroy(&vm->loop);
}

#endif
