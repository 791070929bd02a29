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
#include <stdint.h>

struct vm;
struct boot_entry;
struct kvm_run;

/* What `minivmm ctl dump` shows of a vCPU (vcpu_snapshot). */
struct vcpu_snapshot {
    bool answered; /* the thread took the snapshot in time (else only the exit fields) */
    uint64_t rip, rsp, rflags, cr0, cr3, cr4, efer;
    uint16_t cs;
    const char *mode;      /* "real", "protected", "compatibility", "long" */
    const char *mp_state;  /* "runnable", "halted", "uninitialized" (waits for SIPI), ... */
    uint64_t exits;        /* exits handled so far in this boot */
    uint32_t last_exit;    /* KVM exit reason of the last exit */
    uint64_t last_io_addr; /* its port (IO) or guest-physical address (MMIO) */
};

struct vcpu {
    struct vm *vm;
    unsigned id; /* also its APIC id */
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool started;
    /* Diagnostics: written by the vCPU thread, read by vcpu_snapshot() (main thread). */
    uint64_t exits, last_io_addr;
    uint32_t last_exit;
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_done;
    bool snap_wanted; /* snap_lock: the main thread asks, the vCPU thread answers */
    bool exited;      /* the thread left its run loop */
    struct vcpu_snapshot snap;
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

/*
 * Main thread, while the vCPU's thread runs: have the thread read its own
 * registers (it is kicked out of KVM_RUN, answers, and goes on), waiting at
 * most timeout_ms.  A thread that does not answer in time (stuck in device
 * emulation) leaves out->answered false; the exit fields are filled anyway.
 */
void vcpu_snapshot(struct vcpu *vcpu, struct vcpu_snapshot *out, int timeout_ms);
/* "io", "mmio", "hlt", ... for a KVM exit reason. */
const char *vcpu_exit_name(uint32_t reason);

/* Install the (no-op) signal handler that vcpu_kick relies on.  Once, at start-up. */
void vcpu_init_signals(void);

#endif
