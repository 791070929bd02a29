/*
 * fake_vm.h - a machine without KVM for the fuzz targets: boot RAM, the MMIO
 * and port-I/O buses, the main event loop and a device list, behind the
 * struct dev_host the devices are created on (devices/host.h).  Interrupt
 * lines and stop requests are only counted; vm_fd is always -1 (no KVM VM),
 * so memslots stay in the memory map and no ioctl is ever made.
 *
 * Every fuzz input builds its own machine with fake_vm_create() and frees
 * it with fake_vm_free(), which destroys the devices first, so no state
 * leaks from one input into the next.
 */
#ifndef MINIVMM_TESTS_FUZZ_FAKE_VM_H
#define MINIVMM_TESTS_FUZZ_FAKE_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/host.h"
#include "devices/virtio_mem.h"
#include "devices/virtio_mmio.h"
#include "mm/memmap.h"
#include "vmm/evloop.h"

#define FAKE_VM_GSIS 24

struct fake_vm {
    struct dev_host host;
    struct mm_map mem;
    struct bus pio, mmio;
    struct evloop loop;
    struct device *devices, **tail; /* creation order */
    struct virtio_mmio_windows windows;
    unsigned irq_raised[FAKE_VM_GSIS]; /* low-to-high edges per GSI */
    bool irq_level[FAKE_VM_GSIS];
    unsigned stop_requests;
};

/* A machine with ram bytes of boot RAM (>= 2 MiB).  Aborts if the host refuses (no memory). */
struct fake_vm *fake_vm_create(uint64_t ram);
/* Destroy the devices (each frees itself), then the machine. */
void fake_vm_free(struct fake_vm *vm);

/* Run the main loop until nothing is ready, at most max_turns turns; returns the turns run. */
unsigned fake_vm_run_loop(struct fake_vm *vm, unsigned max_turns);

/*
 * A virtio-mem device (anonymous backing, no prealloc) with its region at
 * addr, on the next virtio-mmio window, with 4 memslots and a budget of
 * mappings host mappings for its guard (>= 3; a small one makes plugs and
 * unplugs meet the budget).  The device belongs to vm from then on.  Aborts
 * if the project refuses options the target chose as valid.
 */
/*
 * A virtio-mem device at 0 of size region whose geometry comes from one input
 * byte geo: block size (bits 0-1), guard mapping budget (2-3), requested MiB
 * rounded to the block (4-7).
 */
struct virtio_mem *fake_vm_add_virtio_mem_geo(struct fake_vm *vm, uint64_t region, uint8_t geo);

struct virtio_mem *fake_vm_add_virtio_mem(struct fake_vm *vm, uint64_t addr, uint64_t size,
                                          uint64_t block_size, uint64_t requested,
                                          uint64_t mappings);

#endif
