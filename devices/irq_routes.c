/* irq_routes.c - the KVM GSI routing table; see irq_routes.h. */
#include "devices/irq_routes.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/util.h"

#define PIC_PINS 16 /* GSIs 0-15 reach both PICs as well as the IOAPIC */

void irq_routes_init(struct irq_routes *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->vm_fd = -1;
}

void irq_routes_destroy(struct irq_routes *r)
{
    pthread_mutex_destroy(&r->lock);
}

/* Build and send the whole table: KVM's default irqchip routes, then the MSI routes. */
static int send_locked(struct irq_routes *r)
{
    if (r->vm_fd < 0)
        return 0;
    size_t max = PIC_PINS * 2 + IRQ_ROUTES_IOAPIC_PINS + IRQ_ROUTES_MAX_MSI;
    struct kvm_irq_routing *t = xzalloc(sizeof(*t) + max * sizeof(struct kvm_irq_routing_entry));
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < IRQ_ROUTES_IOAPIC_PINS; gsi++) {
        if (gsi < PIC_PINS) {
            t->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi,
                .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                              .pin = gsi % 8},
            };
        }
        t->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
        };
    }
    for (unsigned i = 0; i < IRQ_ROUTES_MAX_MSI; i++) {
        if (!r->msi[i].used)
            continue;
        t->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = IRQ_ROUTES_IOAPIC_PINS + i,
            .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = {.address_lo = (uint32_t)r->msi[i].address,
                      .address_hi = (uint32_t)(r->msi[i].address >> 32),
                      .data = r->msi[i].data},
        };
    }
    t->nr = n;
    int rc = ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t);
    int e = errno;
    free(t);
    errno = e;
    return rc < 0 ? -1 : 0;
}

int irq_routes_alloc(struct irq_routes *r)
{
    int gsi = -1;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < IRQ_ROUTES_MAX_MSI; i++) {
        if (!r->msi[i].used) {
            r->msi[i].used = true;
            r->msi[i].address = 0;
            r->msi[i].data = 0;
            gsi = (int)(IRQ_ROUTES_IOAPIC_PINS + i);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return gsi;
}

static bool msi_gsi(int gsi)
{
    return gsi >= IRQ_ROUTES_IOAPIC_PINS && gsi < IRQ_ROUTES_IOAPIC_PINS + IRQ_ROUTES_MAX_MSI;
}

int irq_routes_free(struct irq_routes *r, int gsi)
{
    if (!msi_gsi(gsi)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    r->msi[gsi - IRQ_ROUTES_IOAPIC_PINS].used = false;
    int rc = send_locked(r);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int irq_routes_set_msi(struct irq_routes *r, int gsi, uint64_t address, uint32_t data)
{
    if (!msi_gsi(gsi)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    unsigned i = (unsigned)gsi - IRQ_ROUTES_IOAPIC_PINS;
    int rc = 0;
    if (!r->msi[i].used) {
        errno = EINVAL;
        rc = -1;
    } else if (r->msi[i].address != address || r->msi[i].data != data) {
        r->msi[i].address = address;
        r->msi[i].data = data;
        rc = send_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int irq_routes_commit(struct irq_routes *r, int vm_fd)
{
    pthread_mutex_lock(&r->lock);
    r->vm_fd = vm_fd;
    int rc = send_locked(r);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void irq_routes_reset(struct irq_routes *r)
{
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < IRQ_ROUTES_MAX_MSI; i++)
        r->msi[i].used = false;
    r->vm_fd = -1; /* the VM fd is closed at a reset; the next boot commits again */
    pthread_mutex_unlock(&r->lock);
}
