/*
 * irq_routes.h - the VM's KVM GSI routing table: the IOAPIC/PIC pins every
 * VM has, plus one MSI route per interrupt vector a passthrough device uses.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so one owner keeps it: the
 * VM has one struct irq_routes (reached through dev_host.routes).
 *   - irq_routes_alloc() / irq_routes_free() hand out GSIs above the IOAPIC
 *     pins for MSI vectors;
 *   - irq_routes_set_msi() points a GSI at an MSI address/data and sends the
 *     table to KVM at once (a KVM_IRQFD bound to that GSI then delivers it);
 *   - irq_routes_commit() sends the table to a new VM fd (every boot, before
 *     the devices attach).
 * Any thread; one mutex serialises changes.
 */
#ifndef MINIVMM_DEVICES_IRQ_ROUTES_H
#define MINIVMM_DEVICES_IRQ_ROUTES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IRQ_ROUTES_IOAPIC_PINS 24
#define IRQ_ROUTES_MAX_MSI     1024

struct irq_routes {
    pthread_mutex_t lock;
    struct {
        bool used;
        uint64_t address;
        uint32_t data;
    } msi[IRQ_ROUTES_MAX_MSI]; /* msi[i] is GSI IRQ_ROUTES_IOAPIC_PINS + i */
    int vm_fd;                 /* table sent here on every change; -1: nowhere yet */
};

void irq_routes_init(struct irq_routes *r);
void irq_routes_destroy(struct irq_routes *r);

/* A free GSI for an MSI vector (route: none until set), or -1 if all are taken. */
int irq_routes_alloc(struct irq_routes *r);
/* Give gsi back; the table is sent again.  Returns 0 or -1 with errno. */
int irq_routes_free(struct irq_routes *r, int gsi);
/* Route gsi to MSI (address, data) and send the table.  Returns 0 or -1 with errno. */
int irq_routes_set_msi(struct irq_routes *r, int gsi, uint64_t address, uint32_t data);
/* Send the table to vm_fd (a new boot) and remember it.  Returns 0 or -1 with errno. */
int irq_routes_commit(struct irq_routes *r, int vm_fd);
/* Forget every MSI route and the VM fd (system reset: that fd is closed); the next boot commits. */
void irq_routes_reset(struct irq_routes *r);

#endif
