/*
 * device.h - what every emulated device looks like to the VM.
 *
 * A device sees the VM only through the struct dev_host (host.h) it is
 * created on, and its own options; it never includes the VM's own headers
 * (struct vm, struct vm_config, CPUID).  The VM (vmm/) sees a device only
 * through the struct device below.
 *
 * Life cycle, in order:
 *   1. create:  vm_create() walks the device table (vmm/device_table.h);
 *               each entry calls its device's create function with the
 *               device's own options and &vm->host.  It builds zero or more
 *               instances, claims bus ranges on host->pio / host->mmio with
 *               bus_register() and hands each instance to
 *               dev_host_add_device().  From then on the VM owns the
 *               instance (it is in the VM's device list, in creation order,
 *               and only destroy() frees it).
 *   2. attach:  every time a KVM VM fd is created (start-up, and again after
 *               a guest reboot) the VM calls attach(dev, vm_fd) on every
 *               device, in list order, so it can bind its kernel-side
 *               resources (irqfd, ioeventfd) to the new fd.  The fd is the
 *               VM's: the device does not close it.
 *   3. describe_acpi: while the VM builds its ACPI tables (at every boot) the
 *               device adds its objects to the DSDT, inside Scope(\_SB);
 *               kernel_cmdline likewise, when the user asked for it.
 *   4. quiesce, then reset: on a guest reboot (system reset), after the
 *               vCPUs stopped and the KVM VM is gone, before the next attach:
 *               quiesce() on every device, then reset() on every device:
 *               return to power-on state.
 *   5. destroy: at exit, after every vCPU thread has stopped, in list order;
 *               the device releases what it holds and frees itself.
 * Bus handlers (bus.h) run on vCPU threads between attach and reset; every
 * callback here runs on the main thread while no vCPU runs, except where a
 * device documents otherwise.  All callbacks are optional.
 */
#ifndef MINIVMM_DEVICES_DEVICE_H
#define MINIVMM_DEVICES_DEVICE_H

#include <stddef.h>

struct aml;
struct device;
struct json;

struct device_ops {
    int (*attach)(struct device *dev, int vm_fd, char *err, size_t errlen);
    void (*describe_acpi)(struct device *dev, struct aml *aml);
    /*
     * Kernel parameters that describe the device to guests without ACPI
     * support for it (virtio_mmio.device=...), used with
     * --virtio-mmio-cmdline.  Writes a NUL-terminated string of at most len
     * bytes (no leading space) and returns its length, or -1 if it does not fit.
     */
    int (*kernel_cmdline)(struct device *dev, char *buf, size_t len);
    /*
     * Guest reboot, first step: stop everything that can write guest memory
     * (DMA of a passthrough device).  Called on every device before any
     * device's reset(), after the vCPUs stopped.
     */
    void (*quiesce)(struct device *dev);
    void (*reset)(struct device *dev);
    void (*destroy)(struct device *dev);
    /*
     * `minivmm ctl dump`: add the device's state (registers, queues, what it
     * holds) as members of the JSON object out is in.  Main thread, while
     * vCPUs run: the device takes its own locks.
     */
    void (*dump)(struct device *dev, struct json *out);
};

/* Embedded in each device's own state; recover it with container_of(). */
struct device {
    const char *name; /* instance name for messages, e.g. "serial0" */
    const struct device_ops *ops;
    struct device *next; /* owned by the VM's device list */
};

#endif
