/* cpuid.c - per-vCPU CPUID adjustments; see cpuid.h. */
#include "vmm/cpuid.h"

#include <stddef.h>

#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID_1_ECX_HYPERVISOR   (1U << 31)
#define CPUID_1_EDX_HTT          (1U << 28)
#define CPUID_LEAF_CACHE         0x04
#define CPUID_LEAF_TOPOLOGY      0x0b
#define CPUID_LEAF_TOPOLOGY_V2   0x1f
#define CPUID_LEAF_ADDR_SIZES    0x80000008
#define CPUID_LEAF_AMD_CACHE     0x8000001d
#define CPUID_LEAF_AMD_EXT_APIC  0x8000001e

/* Topology levels of leaves 0xb/0x1f (ECX[15:8]). */
#define TOPO_LEVEL_SMT  1
#define TOPO_LEVEL_CORE 2

/* Bits needed to number n items: ceil(log2(n)). */
static unsigned order_bits(unsigned n)
{
    unsigned bits = 0;
    while ((1u << bits) < n)
        bits++;
    return bits;
}

/*
 * The machine minivmm presents: one package with nr_cpus cores of one
 * thread each, APIC id = core number.  Every leaf that describes topology
 * is rewritten to say so; otherwise the host's layout leaks through (a
 * 2-core host made a 4-vCPU guest see two packages).
 */
static void patch_topology_leaf(struct kvm_cpuid_entry2 *e, const struct cpuid_options *opt)
{
    unsigned n = opt->nr_cpus, bits = order_bits(n);
    switch (e->function) {
    case CPUID_LEAF_TOPOLOGY:
    case CPUID_LEAF_TOPOLOGY_V2:
        /* Sub-leaf 0: threads of a core; 1: cores of the package; then nothing. */
        if (e->index == 0) {
            e->eax = 0;
            e->ebx = 1;
            e->ecx = TOPO_LEVEL_SMT << 8;
        } else if (e->index == 1) {
            e->eax = bits;
            e->ebx = n;
            e->ecx = TOPO_LEVEL_CORE << 8 | 1;
        } else {
            e->eax = e->ebx = 0;
            e->ecx = e->index;
        }
        e->edx = opt->apic_id; /* x2APIC id, the same in every sub-leaf */
        break;
    case CPUID_LEAF_CACHE:
        if ((e->eax & 0x1f) == 0) /* no cache at this index */
            break;
        /* EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing - 1. */
        e->eax &= 0x3fff;
        e->eax |= ((1u << bits) - 1) << 26;
        if (((e->eax >> 5) & 7) >= 3) /* the L3 is shared by the package */
            e->eax |= (n - 1) << 14;
        break;
    case CPUID_LEAF_AMD_CACHE:
        if ((e->eax & 0x1f) == 0)
            break;
        e->eax &= ~(0xfffu << 14);
        if (((e->eax >> 5) & 7) >= 3)
            e->eax |= (n - 1) << 14;
        break;
    case CPUID_LEAF_ADDR_SIZES:
        /* ECX[7:0]: cores - 1; ECX[15:12]: APIC id bits that number the core. */
        e->ecx &= ~0xf0ffu;
        e->ecx |= (n - 1) | bits << 12;
        break;
    case CPUID_LEAF_AMD_EXT_APIC:
        e->eax = opt->apic_id;
        e->ebx = opt->apic_id & 0xff; /* core id; EBX[15:8] = threads per core - 1 = 0 */
        e->ecx = 0;                   /* node 0 of a 1-node package */
        break;
    default:
        break;
    }
}

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
                /* Addressable ids per package: a power of two, at most 255. */
                unsigned n = 1u << order_bits(opt->nr_cpus);
                e->ebx |= (n > 255 ? 255 : n) << 16;
                e->edx |= CPUID_1_EDX_HTT;
            } else {
                e->edx &= ~CPUID_1_EDX_HTT;
            }
            break;
        default:
            patch_topology_leaf(e, opt);
            break;
        }
    }
}

unsigned cpuid_phys_bits(struct kvm_cpuid2 *cpuid)
{
    struct kvm_cpuid_entry2 *e = cpuid_find(cpuid, CPUID_LEAF_ADDR_SIZES, 0);
    return e ? (e->eax & 0xff) : 0;
}
