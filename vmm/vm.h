/*
 * vm.h - one virtual machine: the KVM VM, its memory, buses, devices and
 * vCPUs, and its life cycle across guest reboots.
 *
 * main() calls, in order:
 *   vm_create()   open the kernel and initrd, open /dev/kvm, check
 *                 capabilities, allocate guest memory, set up the buses and
 *                 the main loop, fill in vm->host, then create the devices
 *                 from the device table (vmm/device_table.h), in table
 *                 order.  Dies with a one-line message on any failure the
 *                 user can fix.
 *   vm_run()      boot the guest and run it until it powers off or fails.
 *                 Every boot creates the KVM VM, registers the memslots and
 *                 attaches every device to the new VM fd (list order), then
 *                 builds the ACPI tables the devices describe themselves in.
 *                 A guest reboot tears the KVM VM down (vCPUs, irqchip,
 *                 memslots), quiesces and then resets every device and boots
 *                 again with the same host memory, unless --no-reboot.
 *                 Returns the exit status for main(): 0 power-off (or
 *                 reboot with --no-reboot), 1 guest or VMM failure, 128+N on
 *                 signal N.
 *   vm_destroy()  close the control socket, destroy every device (list
 *                 order), then release the rest.
 *
 * The VM is the layer that wires things together: it alone sees both the
 * configuration and the devices.  A device (devices/, vfio/) never sees
 * struct vm: it is created with its own options and &vm->host, the narrow
 * interface of devices/host.h, whose ops vm.c implements (KVM_IRQ_LINE,
 * vm_request_stop() with DEV_STOP_* mapped to VM_STOP_*, the device list,
 * the current vm_fd).  Once a device joined the list through the host it
 * belongs to the VM, as do the resources the VM hands out to devices (the
 * virtio-mmio windows) and what it keeps of them (vm->virtio_mem, for the
 * control socket, vm_ctl.h).  vCPU threads and the control socket call
 * vm_request_stop() directly.
 */
#ifndef MINIVMM_VM_H
#define MINIVMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/irq_routes.h"
#include "devices/pci.h"
#include "devices/host.h"
#include "devices/virtio_mmio.h"
#include "mm/memmap.h"
#include "vmm/config.h"
#include "vmm/ctl.h"
#include "vmm/evloop.h"
#include "vfio/vfio.h"

struct vcpu;
struct kvm_cpuid2;
struct virtio_mem;

enum vm_stop_reason {
    VM_STOP_NONE = 0,
    VM_STOP_POWEROFF, /* guest powered off: exit 0 */
    VM_STOP_RESET,    /* guest reboot: boot again, or exit 0 with --no-reboot */
    VM_STOP_ERROR,    /* guest crashed or the VMM failed (already reported): exit 1 */
    VM_STOP_SIGNAL,   /* SIGINT/SIGTERM on the VMM: exit 128 + signal */
    VM_STOP_SHUTDOWN, /* "shutdown" on the control socket: exit 0 */
};

struct vm {
    const struct vm_config *cfg;
    int kvm_fd;
    int vm_fd;                /* -1 between two boots */
    int run_size;             /* size of each vCPU's kvm_run mapping */
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
    bool tsc_deadline;        /* KVM emulates the TSC-deadline timer */
    unsigned max_memslots;    /* KVM_CAP_NR_MEMSLOTS (0: unknown) */

    struct mm_map mem;
    struct bus pio;
    struct bus mmio;
    struct dev_host host;   /* all devices see of this VM: mem, pio, mmio, loop, ops */
    struct device *devices; /* in creation order; owned by the VM */
    struct device **devices_tail;
    struct virtio_mmio_windows virtio_mmio_windows;        /* handed out by virtio_mmio_init */
    struct virtio_mem *virtio_mem[VIRTIO_MEM_MAX_DEVICES]; /* handed back; control socket */
    unsigned nr_virtio_mem;

    struct pci_host pci;
    struct irq_routes routes; /* GSI routing: IOAPIC/PIC pins and MSI vectors */
    struct vfio vfio;         /* --vfio devices, their IOMMU backend, boot RAM's DMA mappings */

    struct vcpu *vcpus;
    unsigned nr_vcpus;

    struct evloop loop;              /* main thread */
    int stop_fd;                     /* eventfd: a stop was requested */
    int signal_fd;                   /* SIGINT/SIGTERM */
    enum vm_stop_reason stop_reason; /* why the current boot stops; reset at every boot */
    enum vm_stop_reason final_stop;  /* a stop that also ends minivmm (signal, shutdown,
                                        error): survives a reboot in progress */
    int stop_signal;

    struct ctl_server ctl; /* --api-socket */
    bool ctl_open;

    /* Boot inputs, loaded once. */
    uint8_t *kernel;
    size_t kernel_size;
    int initrd_fd;
    uint64_t initrd_size;
    char *cmdline; /* --cmdline plus, with --virtio-mmio-cmdline, the devices' parameters */

    unsigned boots;    /* how many times the guest was started */
    uint64_t start_ns; /* when vm_create() began */
};

void vm_create(struct vm *vm, const struct vm_config *cfg);
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);

/*
 * Ask the main thread to stop the guest.  Callable from any thread; the
 * first reason wins until the next boot.  vCPU threads stop before they run
 * guest code again.  VM_STOP_SIGNAL, VM_STOP_SHUTDOWN and VM_STOP_ERROR also
 * end minivmm even when they arrive while a guest reboot is being handled.
 */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);
/* True once a stop was requested for the current boot. */
bool vm_stopping(struct vm *vm);

#endif
