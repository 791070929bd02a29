/*
 * vm_ctl.h - the VM's answers to control-socket commands.  vm_create()
 * passes vm_ctl_handlers (with the struct vm as opaque) to ctl_server_open().
 */
#ifndef MINIVMM_VM_CTL_H
#define MINIVMM_VM_CTL_H

#include "vmm/ctl.h"

extern const struct ctl_handlers vm_ctl_handlers;

#endif
