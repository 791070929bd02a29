/* bus.c - address-range dispatch for port I/O and MMIO; see bus.h. */
#include "devices/bus.h"

#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->nr = bus->cap = 0;
    pthread_rwlock_destroy(&bus->lock);
}

/* Index of the range containing addr, or -1.  Caller holds the lock. */
static int bus_find(const struct bus *bus, uint64_t addr)
{
    unsigned lo = 0, hi = bus->nr;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            return (int)mid;
    }
    return -1;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name)
{
    if (len == 0 || base + len - 1 < base)
        return -1;
    pthread_rwlock_wrlock(&bus->lock);
    unsigned pos = 0;
    while (pos < bus->nr && bus->ranges[pos].base < base)
        pos++;
    /* Neighbours must end before us and start after us. */
    bool clash = (pos > 0 && bus->ranges[pos - 1].base + bus->ranges[pos - 1].len > base) ||
                 (pos < bus->nr && bus->ranges[pos].base <= base + len - 1);
    if (clash) {
        pthread_rwlock_unlock(&bus->lock);
        return -1;
    }
    if (bus->nr == bus->cap) {
        unsigned cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));
        if (!n)
            die("out of memory registering %s range '%s'", bus->name, name);
        bus->ranges = n;
        bus->cap = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] =
        (struct bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque, .name = name};
    bus->nr++;
    pthread_rwlock_unlock(&bus->lock);
    return 0;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
    pthread_rwlock_wrlock(&bus->lock);
    int i = bus_find(bus, base);
    if (i < 0 || bus->ranges[i].base != base) {
        pthread_rwlock_unlock(&bus->lock);
        return -1;
    }
    memmove(&bus->ranges[i], &bus->ranges[i + 1],
            (bus->nr - (unsigned)i - 1) * sizeof(*bus->ranges));
    bus->nr--;
    pthread_rwlock_unlock(&bus->lock);
    return 0;
}

bool bus_access(struct bus *bus, uint64_t addr, void *data, unsigned len, bool is_write)
{
    pthread_rwlock_rdlock(&bus->lock);
    int i = bus_find(bus, addr);
    const struct bus_range *r = i < 0 ? NULL : &bus->ranges[i];
    if (r && len <= r->len - (addr - r->base)) {
        const struct bus_ops *ops = r->ops;
        void *opaque = r->opaque;
        uint64_t off = addr - r->base;
        /*
         * The handler runs under the read lock: unregistering a range waits
         * until no vCPU is inside its handler, so opaque stays valid.
         */
        if (is_write) {
            if (ops->write)
                ops->write(opaque, off, data, len);
        } else if (ops->read) {
            ops->read(opaque, off, data, len);
        } else {
            memset(data, 0xff, len);
        }
        pthread_rwlock_unlock(&bus->lock);
        return true;
    }
    pthread_rwlock_unlock(&bus->lock);
    __atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
    if (!is_write)
        memset(data, 0xff, len);
    return false;
}
