/*
 * cpuid.h - the CPUID a vCPU sees.
 *
 * vcpu_create() copies the host's KVM_GET_SUPPORTED_CPUID table (fetched
 * once by vm_create()) and passes it through cpuid_patch() before
 * KVM_SET_CPUID2.  Pure function on the table, unit-tested without KVM.
 */
#ifndef MINIVMM_CPUID_H
#define MINIVMM_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

struct cpuid_options {
    unsigned apic_id;  /* this vCPU's (x)APIC id */
    unsigned nr_cpus;  /* vCPUs in the VM */
    bool tsc_deadline; /* advertise the TSC-deadline timer (KVM_CAP_TSC_DEADLINE_TIMER) */
};

/*
 * Adjust a supported-CPUID table for one vCPU: set the hypervisor bit,
 * TSC-deadline, the initial APIC id (leaf 1 EBX[31:24], leaves 0xb/0x1f
 * EDX, AMD leaf 0x8000001e EAX), and describe one package of nr_cpus
 * single-thread cores in every topology leaf (1, 4, 0xb, 0x1f, 0x80000008,
 * 0x8000001d, 0x8000001e), whatever the host's layout is.
 */
void cpuid_patch(struct kvm_cpuid2 *cpuid, const struct cpuid_options *opt);

/* Entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, unsigned function, unsigned index);

/* The CPU's physical address bits (leaf 0x80000008 EAX[7:0]), or 0 if cpuid lacks the leaf. */
unsigned cpuid_phys_bits(struct kvm_cpuid2 *cpuid);

#endif
