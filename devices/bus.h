/*
 * bus.h - the port-I/O and MMIO buses: which device answers which address.
 *
 * A VM has two buses, pio and mmio (owned by struct vm; devices reach them
 * through their struct dev_host, host.h).  Devices claim address ranges
 * with bus_register() while the VM is set up (and, later, when a guest moves
 * a PCI BAR); vCPU threads call bus_access() for every KVM_EXIT_IO and
 * KVM_EXIT_MMIO.  Lookups take a read lock, so many vCPUs dispatch at once;
 * a handler is therefore called concurrently from several vCPU threads and
 * does its own locking.  Unclaimed reads return all ones, unclaimed writes
 * are dropped (what a real bus does); both are counted for --verbose.
 * A handler must not (un)register ranges on the bus that called it: it runs
 * under that bus's read lock.
 */
#ifndef MINIVMM_DEVICES_BUS_H
#define MINIVMM_DEVICES_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Handlers for one claimed range.  offset is relative to the range's base;
 * len is 1, 2, 4 or 8.  read fills exactly len bytes of data (little endian).
 */
struct bus_ops {
    void (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
    void (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

struct bus_range {
    uint64_t base;
    uint64_t len;
    const struct bus_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    const char *name; /* "pio" or "mmio", for messages */
    pthread_rwlock_t lock;
    struct bus_range *ranges; /* sorted by base, never overlapping */
    unsigned nr, cap;
    uint64_t unclaimed; /* accesses nobody answered */
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Claim [base, base + len).  Returns 0, or -1 if it is empty, wraps or overlaps. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name);
/* Release the range registered at base.  Returns 0, or -1 if none is. */
int bus_unregister(struct bus *bus, uint64_t base);

/*
 * Dispatch one access.  Returns true if a device claimed addr; if none did,
 * a read fills data with 0xff bytes and false is returned.  An access that
 * runs past the end of the claiming range is not dispatched either (treated
 * as unclaimed).
 */
bool bus_access(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write);

#endif
