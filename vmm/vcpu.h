/*
 * vcpu.h - one virtual CPU and the thread that runs it.
 *
 * vm.c creates all vCPUs after the VM fd, irqchip and memslots exist
 * (vcpu_create: KVM_CREATE_VCPU, CPUID with this vCPU's APIC id and the
 * hypervisor bit, the MSRs Linux expects), puts the boot vCPU (id 0) into the
 * 64-bit entry state (vcpu_set_boot_state), starts one thread per vCPU
 * (vcpu_start) and, to stop, kicks and joins them (vcpu_kick, vcpu_join)
 * before vcpu_destroy.  The other vCPUs wait in KVM for the guest's
 * INIT/SIPI.  The thread dispatches I/O and MMIO exits to the VM's buses; a
 * KVM internal error, failed entry or triple fault prints the registers and
 * stops the VM with VM_STOP_ERROR.
 */
#ifndef MINIVMM_VCPU_H
#define MINIVMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct vm;
struct boot_entry;
struct kvm_run;

struct vcpu {
    struct vm *vm;
    unsigned id; /* also its APIC id */
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool started;
};

/* Returns 0, or -1 with a one-line reason in err. */
int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned id, char *err, size_t errlen);
int vcpu_set_boot_state(struct vcpu *vcpu, const struct boot_entry *entry, char *err,
                        size_t errlen);
int vcpu_start(struct vcpu *vcpu);
/* Make the thread leave KVM_RUN soon; it exits once vm_stopping() is true. */
void vcpu_kick(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/* Install the (no-op) signal handler that vcpu_kick relies on.  Once, at start-up. */
void vcpu_init_signals(void);

#endif
