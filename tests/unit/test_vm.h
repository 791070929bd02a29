/*
 * test_vm.h - a VM without KVM for the device unit tests.  It plays the
 * part struct vm plays for devices: it owns boot RAM, the port-I/O and MMIO
 * buses, the event loop, the device list and the virtio-mmio windows, and
 * fills in the struct dev_host (devices/host.h) that devices are created on.
 * Its ops record instead of reaching KVM, so tests can assert on them:
 *   irq_line      stores each GSI's level and counts its rising edges;
 *   request_stop  counts the requests and keeps the first reason;
 *   add_device    appends to devices, in creation order;
 *   vm_fd         returns vm_fd (-1: no KVM VM, as between two boots).
 * A test's setup calls test_vm_init(), creates its devices on &vm->host,
 * and its teardown calls test_vm_destroy(), which destroys the devices too.
 */
#ifndef MINIVMM_TESTS_TEST_VM_H
#define MINIVMM_TESTS_TEST_VM_H

#include <stdbool.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/host.h"
#include "devices/virtio_mmio.h"
#include "mm/memmap.h"
#include "vmm/evloop.h"

#define TEST_VM_GSIS 24 /* the IOAPIC's pins */

struct test_vm {
    struct dev_host host; /* what the devices get */
    struct mm_map mem;
    struct bus pio;
    struct bus mmio;
    struct evloop loop;
    struct device *devices; /* in creation order */
    struct device **devices_tail;
    struct virtio_mmio_windows virtio_mmio;
    int vm_fd; /* what the vm_fd op answers */
    /* Recorded by the ops (atomics: devices may call them from any thread). */
    bool irq_level[TEST_VM_GSIS];
    unsigned irq_raised[TEST_VM_GSIS]; /* low-to-high transitions */
    unsigned stop_requests;
    enum dev_stop_reason first_stop; /* valid once stop_requests > 0 */
};

static inline void test_vm_irq_line(void *opaque, unsigned gsi, bool level)
{
    struct test_vm *vm = opaque;
    if (gsi >= TEST_VM_GSIS)
        fail_msg("irq_line: GSI %u does not exist", gsi);
    bool was = __atomic_exchange_n(&vm->irq_level[gsi], level, __ATOMIC_SEQ_CST);
    if (level && !was)
        __atomic_add_fetch(&vm->irq_raised[gsi], 1, __ATOMIC_SEQ_CST);
}

static inline void test_vm_request_stop(void *opaque, enum dev_stop_reason reason)
{
    struct test_vm *vm = opaque;
    if (__atomic_fetch_add(&vm->stop_requests, 1, __ATOMIC_SEQ_CST) == 0)
        vm->first_stop = reason;
}

static inline void test_vm_add_device(void *opaque, struct device *dev)
{
    struct test_vm *vm = opaque;
    dev->next = NULL;
    *vm->devices_tail = dev;
    vm->devices_tail = &dev->next;
}

static inline int test_vm_fd(void *opaque)
{
    struct test_vm *vm = opaque;
    return vm->vm_fd;
}

static const struct dev_host_ops test_vm_host_ops = {
    .irq_line = test_vm_irq_line,
    .request_stop = test_vm_request_stop,
    .add_device = test_vm_add_device,
    .vm_fd = test_vm_fd,
};

/* vm gets ram_size bytes of boot RAM (0: no memory map at all) and a dev_host. */
static inline void test_vm_init(struct test_vm *vm, uint64_t ram_size)
{
    char err[256];
    memset(vm, 0, sizeof(*vm));
    vm->vm_fd = -1;
    mm_map_init(&vm->mem);
    if (ram_size && mm_map_setup_ram(&vm->mem, ram_size, err, sizeof(err)) < 0)
        fail_msg("mm_map_setup_ram: %s", err);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    assert_int_equal(evloop_init(&vm->loop), 0);
    vm->devices_tail = &vm->devices;
    vm->host = (struct dev_host){
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .mem = &vm->mem,
        .loop = &vm->loop,
        .phys_bits = 0, /* unknown; a test may set it */
        .ops = &test_vm_host_ops,
        .opaque = vm,
    };
}

/* Destroy vm's devices (each frees itself), then the VM. */
static inline void test_vm_destroy(struct test_vm *vm)
{
    for (struct device *d = vm->devices, *next; d; d = next) {
        next = d->next;
        if (d->ops->destroy)
            d->ops->destroy(d);
    }
    vm->devices = NULL;
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    mm_map_destroy(&vm->mem);
    evloop_destroy(&vm->loop);
}

#endif
