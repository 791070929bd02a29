/*
 * host.h - the narrow interface a device (devices/, vfio/) has to the machine
 * it sits in.  Devices never see struct vm: the VM (vmm/) fills in one
 * struct dev_host and hands a pointer to every device's create(); the device
 * keeps the pointer for its whole life.
 *
 * What a device may use:
 *   - the two buses, to claim address ranges (bus.h);
 *   - the guest memory map, for guest-physical accesses (mm_gpa & co.) and
 *     for memslots (mm_slot_add/remove);
 *   - the main thread's event loop, for fds it serves on the main thread;
 *   - the ops below: raise an interrupt line, request a stop, join the VM's
 *     device list, learn the KVM VM fd of the current boot, and confine a
 *     thread the device runs to what that kind of thread needs (seccomp).
 * Fields are set before the first create() and never change, except that
 * dev_host_vm_fd() changes at every boot (it is -1 between two boots).
 */
#ifndef MINIVMM_DEVICES_HOST_H
#define MINIVMM_DEVICES_HOST_H

#include <stdbool.h>
#include <stddef.h>

struct bus;
struct mm_map;
struct evloop;
struct irq_routes;
struct device;

/* Threads a device runs on its own (each confines itself when it starts). */
enum dev_thread_kind {
    DEV_THREAD_CONSOLE, /* the serial console's writer */
};

enum dev_stop_reason {
    DEV_STOP_POWEROFF, /* the guest powered off */
    DEV_STOP_RESET,    /* the guest asked for a system reset (reboot) */
    DEV_STOP_ERROR,    /* the device failed fatally (already reported) */
};

struct dev_host_ops {
    /* Set the level of a GSI of the in-kernel IOAPIC/PIC.  Any thread. */
    void (*irq_line)(void *opaque, unsigned gsi, bool level);
    /* End the current boot.  Any thread; the first reason of a boot wins. */
    void (*request_stop)(void *opaque, enum dev_stop_reason reason);
    /* Join the VM's device list (create() calls it once per instance). */
    void (*add_device)(void *opaque, struct device *dev);
    /* The KVM VM fd of the current boot, or -1 between two boots.  Any thread. */
    int (*vm_fd)(void *opaque);
    /*
     * Optional: confine the calling thread, a device thread of this kind, to
     * the system calls it needs.  Returns 0, or -1 with a one-line reason.
     */
    int (*confine_thread)(void *opaque, enum dev_thread_kind kind, char *err, size_t errlen);
};

struct dev_host {
    struct bus *pio;
    struct bus *mmio;
    struct mm_map *mem;
    struct evloop *loop;       /* main thread */
    unsigned phys_bits;        /* guest CPU physical address width (0: unknown) */
    struct irq_routes *routes; /* the KVM GSI routing table (MSI routes), irq_routes.h */
    const struct dev_host_ops *ops;
    void *opaque; /* passed to every op */
};

static inline void dev_host_irq_line(const struct dev_host *h, unsigned gsi, bool level)
{
    h->ops->irq_line(h->opaque, gsi, level);
}

static inline void dev_host_request_stop(const struct dev_host *h, enum dev_stop_reason reason)
{
    h->ops->request_stop(h->opaque, reason);
}

static inline void dev_host_add_device(const struct dev_host *h, struct device *dev)
{
    h->ops->add_device(h->opaque, dev);
}

static inline int dev_host_vm_fd(const struct dev_host *h)
{
    return h->ops->vm_fd(h->opaque);
}

static inline int dev_host_confine_thread(const struct dev_host *h, enum dev_thread_kind kind,
                                          char *err, size_t errlen)
{
    return h->ops->confine_thread ? h->ops->confine_thread(h->opaque, kind, err, errlen) : 0;
}

#endif
