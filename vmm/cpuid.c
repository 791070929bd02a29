/* cpuid.c - per-vCPU CPUID adjustments; see cpuid.h. */
#include "vmm/cpuid.h"

#include <stddef.h>

#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID_1_ECX_HYPERVISOR   (1U << 31)
#define CPUID_1_EDX_HTT          (1U << 28)
#define CPUID_LEAF_TOPOLOGY      0x0b
#define CPUID_LEAF_TOPOLOGY_V2   0x1f
#define CPUID_LEAF_AMD_EXT_APIC  0x8000001e

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, unsigned function, unsigned index)
{
    for (unsigned i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        if (e->function != function)
            continue;
        if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
            continue;
        return e;
    }
    return NULL;
}

void cpuid_patch(struct kvm_cpuid2 *cpuid, const struct cpuid_options *opt)
{
    for (unsigned i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 1:
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (opt->tsc_deadline)
                e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
            else
                e->ecx &= ~CPUID_1_ECX_TSC_DEADLINE;
            /* EBX[31:24] initial APIC id, EBX[23:16] logical processors per package. */
            e->ebx &= 0x0000ffff;
            e->ebx |= (opt->apic_id & 0xff) << 24;
            if (opt->nr_cpus > 1) {
                unsigned n = opt->nr_cpus > 255 ? 255 : opt->nr_cpus;
                e->ebx |= n << 16;
                e->edx |= CPUID_1_EDX_HTT;
            } else {
                e->edx &= ~CPUID_1_EDX_HTT;
            }
            break;
        case CPUID_LEAF_TOPOLOGY:
        case CPUID_LEAF_TOPOLOGY_V2:
            e->edx = opt->apic_id; /* x2APIC id, the same in every sub-leaf */
            break;
        case CPUID_LEAF_AMD_EXT_APIC:
            e->eax = opt->apic_id;
            break;
        default:
            break;
        }
    }
}
