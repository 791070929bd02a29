/*
 * device_table.h - the kinds of device a VM has and how each one is created
 * from the configuration.
 *
 * vm_create() walks device_kinds[] once, in table order, after it has set up
 * guest memory, the buses, the main loop and vm->host (devices/host.h), and
 * before the first boot.  Each entry is a small function here, on the VMM
 * side: it hands one device kind its own options (taken from vm->cfg) and
 * &vm->host, and keeps what the VM needs back (e.g. the virtio-mem
 * instances for the control socket).  Devices never see struct vm.
 *
 * Adding a device means writing its file in devices/ and adding one entry
 * (its table line and, if it takes options, a few-line create function)
 * to device_table.c; nothing else in the VMM changes.
 */
#ifndef MINIVMM_DEVICE_TABLE_H
#define MINIVMM_DEVICE_TABLE_H

#include <stddef.h>

struct vm;

/* A kind of device and the function that creates its instances for a VM. */
struct device_kind {
    const char *name;
    /* Returns 0, or -1 with a one-line reason in err (the VM then exits 1). */
    int (*create)(struct vm *vm, char *err, size_t errlen);
};

/* Terminated by an entry whose name is NULL.  Created in this order. */
extern const struct device_kind device_kinds[];

#endif
