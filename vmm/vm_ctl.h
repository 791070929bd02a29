/*
 * vm_ctl.h - the VM's answers to control-socket commands.  vm_create()
 * passes vm_ctl_handlers (with the struct vm as opaque) to ctl_server_open().
 * The devices they act on are the VM's: the virtio-mem instances that
 * virtio_mem_create() handed back to the device table (vm->virtio_mem).
 */
#ifndef MINIVMM_VM_CTL_H
#define MINIVMM_VM_CTL_H

#include "vmm/ctl.h"

extern const struct ctl_handlers vm_ctl_handlers;

struct virtio_mem;

/*
 * Of the VM's virtio-mem devices (devices[0..n-1], vm->virtio_mem): the one
 * called id, or the only one if id is "" and there is exactly one; else NULL.
 */
struct virtio_mem *vm_ctl_find_virtio_mem(struct virtio_mem *const *devices, unsigned n,
                                          const char *id);

#endif
