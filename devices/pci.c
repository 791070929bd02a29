/* pci.c - the PCI host: ECAM, conf1, the host bridge and the BAR windows; see pci.h. */
#include "devices/pci.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/host.h"
#include "mm/memmap.h"
#include "vmm/aml.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#define ECAM_BUS_SIZE     (1ULL << 20) /* 32 devices x 8 functions x 4 KiB */
#define CONF1_ADDR_PORT   0xcf8
#define CONF1_PORTS       8 /* 0xCF8-0xCFB address, 0xCFC-0xCFF data */
#define CONF1_ENABLE      0x80000000u
#define MMIO64_ALIGN      (1ULL << 30)
#define MMIO64_SIZE       (64ULL << 30)
#define MIN_MEM_BAR_ALIGN 4096 /* BARs get whole pages, so they can be memslots */

static inline unsigned devfn_slot(unsigned devfn)
{
    return devfn >> 3;
}

/* --- config access --------------------------------------------------------- */

/* The host bridge at 00:00.0: a type-0 header with no BARs and no capabilities. */
static uint32_t bridge_cfg_read(struct pci_host *p, unsigned offset, unsigned len)
{
    uint8_t cfg[64] = {0};
    uint16_t v16;
    v16 = PCI_HOST_VENDOR_ID;
    memcpy(cfg + PCI_VENDOR_ID, &v16, 2);
    v16 = PCI_HOST_DEVICE_ID;
    memcpy(cfg + PCI_DEVICE_ID, &v16, 2);
    memcpy(cfg + PCI_COMMAND, &p->bridge_command, 2);
    v16 = PCI_CLASS_BRIDGE_HOST;
    memcpy(cfg + PCI_CLASS_DEVICE, &v16, 2);
    v16 = PCI_HOST_VENDOR_ID;
    memcpy(cfg + PCI_SUBSYSTEM_VENDOR, &v16, 2);
    uint32_t v = 0;
    if (offset + len <= sizeof(cfg))
        memcpy(&v, cfg + offset, len);
    return v;
}

uint32_t pci_host_cfg_read(struct pci_host *p, unsigned bus, unsigned devfn, unsigned offset,
                           unsigned len)
{
    uint32_t ones = len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
    if (bus != 0 || (devfn & 7) != 0 || offset >= PCI_CFG_SIZE || offset % len)
        return ones;
    unsigned slot = devfn_slot(devfn);
    uint32_t v = ones;
    pthread_mutex_lock(&p->cfg_lock);
    if (slot == 0)
        v = bridge_cfg_read(p, offset, len);
    else if (p->functions[slot])
        v = p->functions[slot]->ops->cfg_read(p->functions[slot]->opaque, offset, len);
    pthread_mutex_unlock(&p->cfg_lock);
    return v;
}

void pci_host_cfg_write(struct pci_host *p, unsigned bus, unsigned devfn, unsigned offset,
                        unsigned len, uint32_t value)
{
    if (bus != 0 || (devfn & 7) != 0 || offset >= PCI_CFG_SIZE || offset % len)
        return;
    unsigned slot = devfn_slot(devfn);
    pthread_mutex_lock(&p->cfg_lock);
    if (slot == 0) {
        if (offset == PCI_COMMAND && len >= 2)
            p->bridge_command = (uint16_t)(value & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
    } else if (p->functions[slot]) {
        p->functions[slot]->ops->cfg_write(p->functions[slot]->opaque, offset, len, value);
    }
    pthread_mutex_unlock(&p->cfg_lock);
}

static uint32_t get_le(const void *data, unsigned len)
{
    uint32_t v = 0;
    memcpy(&v, data, len > 4 ? 4 : len);
    return v;
}

static void put_le(void *data, uint32_t v, unsigned len)
{
    memset(data, 0xff, len);
    memcpy(data, &v, len > 4 ? 4 : len);
}

/* ECAM: offset = bus << 20 | devfn << 12 | register. */
static void ecam_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    if (len > 4) {
        memset(data, 0xff, len);
        return;
    }
    put_le(data,
           pci_host_cfg_read(opaque, (unsigned)(offset >> 20), (unsigned)(offset >> 12) & 0xff,
                             (unsigned)offset & 0xfff, len),
           len);
}

static void ecam_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    if (len > 4)
        return;
    pci_host_cfg_write(opaque, (unsigned)(offset >> 20), (unsigned)(offset >> 12) & 0xff,
                       (unsigned)offset & 0xfff, len, get_le(data, len));
}

static const struct bus_ops ecam_ops = {.read = ecam_read, .write = ecam_write};

/*
 * conf1: a dword write to 0xCF8 selects bus/device/function/register; the
 * data port 0xCFC-0xCFF then reaches that dword (byte lanes by port).
 * Linux probes the mechanism by writing 0x80000000 and reading it back.
 */
static void conf1_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pci_host *p = opaque;
    if (offset < 4) {
        uint32_t a = __atomic_load_n(&p->conf1_addr, __ATOMIC_RELAXED);
        if (offset == 0 && len == 4)
            put_le(data, a, 4);
        else
            put_le(data, (a >> (8 * offset)), len);
        return;
    }
    unsigned lane = (unsigned)offset - 4;
    uint32_t a = __atomic_load_n(&p->conf1_addr, __ATOMIC_RELAXED);
    if (!(a & CONF1_ENABLE) || lane + len > 4) {
        memset(data, 0xff, len);
        return;
    }
    put_le(data, pci_host_cfg_read(p, (a >> 16) & 0xff, (a >> 8) & 0xff, (a & 0xfc) + lane, len),
           len);
}

static void conf1_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pci_host *p = opaque;
    uint32_t v = get_le(data, len);
    if (offset < 4) {
        if (offset == 0 && len == 4)
            __atomic_store_n(&p->conf1_addr, v & 0x80fffffcu, __ATOMIC_RELAXED);
        return; /* byte writes to 0xCF8-0xCFB (Linux's probe of 0xCFB) change nothing */
    }
    unsigned lane = (unsigned)offset - 4;
    uint32_t a = __atomic_load_n(&p->conf1_addr, __ATOMIC_RELAXED);
    if (!(a & CONF1_ENABLE) || lane + len > 4)
        return;
    pci_host_cfg_write(p, (a >> 16) & 0xff, (a >> 8) & 0xff, (a & 0xfc) + lane, len, v);
}

static const struct bus_ops conf1_ops = {.read = conf1_read, .write = conf1_write};

/* --- BAR windows ------------------------------------------------------------- */

/* The function and BAR decoding [addr, addr + len) of kind, or NULL.  Under bar_lock. */
static struct pci_function *find_bar(struct pci_host *p, bool io, uint64_t addr, unsigned len,
                                     unsigned *bar, uint64_t *offset)
{
    for (unsigned s = 1; s < PCI_SLOTS; s++) {
        struct pci_function *fn = p->functions[s];
        if (!fn)
            continue;
        for (unsigned b = 0; b < PCI_NUM_REGIONS; b++) {
            if (!fn->bars[b].size || (fn->bars[b].kind == PCI_BAR_KIND_IO) != io)
                continue;
            if (addr >= fn->bars[b].addr && addr - fn->bars[b].addr + len <= fn->bars[b].size) {
                *bar = b;
                *offset = addr - fn->bars[b].addr;
                return fn;
            }
        }
    }
    return NULL;
}

static void window_access(struct pci_host *p, bool io, uint64_t addr, void *data, unsigned len,
                          bool is_write)
{
    unsigned bar;
    uint64_t off;
    pthread_rwlock_rdlock(&p->bar_lock);
    struct pci_function *fn = find_bar(p, io, addr, len, &bar, &off);
    if (fn && is_write && fn->ops->bar_write)
        fn->ops->bar_write(fn->opaque, bar, off, data, len);
    else if (fn && !is_write && fn->ops->bar_read)
        fn->ops->bar_read(fn->opaque, bar, off, data, len);
    else if (!is_write)
        memset(data, 0xff, len);
    pthread_rwlock_unlock(&p->bar_lock);
}

/* A window's bus handlers get the window itself: it knows its host, base and kind. */
static void window_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pci_window *w = opaque;
    window_access(w->host, w->io, w->base + offset, data, len, false);
}

static void window_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pci_window *w = opaque;
    window_access(w->host, w->io, w->base + offset, (void *)data, len, true);
}

static const struct bus_ops window_ops = {.read = window_read, .write = window_write};

void pci_bar_update(struct pci_host *p, struct pci_function *fn, unsigned bar, uint64_t addr,
                    uint64_t size)
{
    if (bar >= PCI_NUM_REGIONS)
        return;
    pthread_rwlock_wrlock(&p->bar_lock);
    fn->bars[bar].addr = addr;
    fn->bars[bar].size = size;
    pthread_rwlock_unlock(&p->bar_lock);
}

/* --- set-up ------------------------------------------------------------------ */

static uint64_t memmap_end(const struct mm_map *m)
{
    uint64_t end = LAYOUT_PCI_HOLE_END;
    for (unsigned i = 0; i < m->nr_regions; i++)
        if (m->regions[i].gpa + m->regions[i].size > end)
            end = m->regions[i].gpa + m->regions[i].size;
    return end;
}

static void pci_host_dev_describe(struct device *dev, struct aml *aml)
{
    pci_host_describe_acpi(container_of(dev, struct pci_host, dev), aml);
}

static const struct device_ops pci_host_dev_ops = {.describe_acpi = pci_host_dev_describe};

int pci_host_init(struct pci_host *p, const struct dev_host *h, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->host = h;
    p->ecam_base = LAYOUT_PCI_ECAM_START;
    p->mmio32 = (struct pci_window){LAYOUT_PCI_MMIO_START,
                                    LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO_START, p, false};
    p->io =
        (struct pci_window){LAYOUT_PCI_IO_START, LAYOUT_PCI_IO_END - LAYOUT_PCI_IO_START, p, true};
    uint64_t base64 = ALIGN_UP(memmap_end(h->mem), MMIO64_ALIGN);
    uint64_t limit = h->phys_bits >= 32 && h->phys_bits < 64 ? 1ULL << h->phys_bits : 0;
    uint64_t size64 = MMIO64_SIZE;
    if (limit && base64 + size64 > limit)
        size64 = limit > base64 ? limit - base64 : 0;
    p->mmio64 = (struct pci_window){base64, size64, p, false};
    p->next32 = p->mmio32.base;
    p->next64 = p->mmio64.base;
    p->next_io = p->io.base;
    pthread_mutex_init(&p->cfg_lock, NULL);
    pthread_rwlock_init(&p->bar_lock, NULL);

    if (bus_register(h->mmio, p->ecam_base, ECAM_BUS_SIZE, &ecam_ops, p, "pci-ecam") < 0 ||
        bus_register(h->pio, CONF1_ADDR_PORT, CONF1_PORTS, &conf1_ops, p, "pci-conf1") < 0 ||
        bus_register(h->mmio, p->mmio32.base, p->mmio32.size, &window_ops, &p->mmio32,
                     "pci-mmio32") < 0 ||
        bus_register(h->pio, p->io.base, p->io.size, &window_ops, &p->io, "pci-io") < 0 ||
        (p->mmio64.size && bus_register(h->mmio, p->mmio64.base, p->mmio64.size, &window_ops,
                                        &p->mmio64, "pci-mmio64") < 0))
        return errf(err, errlen,
                    "PCI host: an address range of ECAM, conf1 or a BAR window "
                    "is already taken (internal layout conflict)");
    p->dev.name = "pci-host";
    p->dev.ops = &pci_host_dev_ops;
    if (h->ops)
        dev_host_add_device(h, &p->dev);
    return 0;
}

void pci_host_destroy(struct pci_host *p)
{
    pthread_mutex_destroy(&p->cfg_lock);
    pthread_rwlock_destroy(&p->bar_lock);
}

/* Take size bytes (naturally aligned) from a window; 0 if it does not fit. */
static uint64_t window_take(const struct pci_window *w, uint64_t *cursor, uint64_t size)
{
    uint64_t at = ALIGN_UP(*cursor, size);
    if (at < *cursor || at + size < at || at + size > w->base + w->size)
        return 0;
    *cursor = at + size;
    return at;
}

int pci_add_function(struct pci_host *p, struct pci_function *fn,
                     const struct pci_bar_decl bars[PCI_NUM_REGIONS],
                     uint64_t assigned[PCI_NUM_REGIONS], char *err, size_t errlen)
{
    unsigned slot = 1;
    while (slot < PCI_SLOTS && p->functions[slot])
        slot++;
    if (slot == PCI_SLOTS)
        return errf(err, errlen, "%s: the PCI bus has no free slot (at most %d devices)", fn->name,
                    PCI_SLOTS - 1);
    for (unsigned b = 0; b < PCI_NUM_REGIONS; b++) {
        assigned[b] = 0;
        if (bars[b].kind == PCI_BAR_NONE || !bars[b].size)
            continue;
        uint64_t size = bars[b].size;
        if (size & (size - 1))
            return errf(err, errlen, "%s: BAR %u size %#llx is not a power of two", fn->name, b,
                        (unsigned long long)size);
        if (bars[b].kind == PCI_BAR_KIND_IO) {
            assigned[b] = window_take(&p->io, &p->next_io, size < 4 ? 4 : size);
        } else {
            if (size < MIN_MEM_BAR_ALIGN)
                size = MIN_MEM_BAR_ALIGN;
            /* Below 4 GiB if it fits (every guest handles that), else 64-bit BARs go high. */
            assigned[b] = window_take(&p->mmio32, &p->next32, size);
            if (!assigned[b] && bars[b].kind == PCI_BAR_KIND_MEM64)
                assigned[b] = window_take(&p->mmio64, &p->next64, size);
        }
        if (!assigned[b]) {
            char sz[32];
            return errf(err, errlen, "%s: BAR %u (%s) does not fit in the PCI windows", fn->name, b,
                        format_size(bars[b].size, sz, sizeof(sz)));
        }
    }
    for (unsigned b = 0; b < PCI_NUM_REGIONS; b++)
        fn->bars[b] = (__typeof__(fn->bars[b])){.kind = bars[b].kind};
    fn->slot = slot;
    pthread_mutex_lock(&p->cfg_lock);
    p->functions[slot] = fn;
    pthread_mutex_unlock(&p->cfg_lock);
    return 0;
}

static bool window_holds(const struct pci_window *w, uint64_t addr, uint64_t size)
{
    return size && addr >= w->base && addr + size >= addr && addr + size <= w->base + w->size;
}

bool pci_host_in_window(const struct pci_host *p, bool io, uint64_t addr, uint64_t size)
{
    if (io)
        return window_holds(&p->io, addr, size);
    return window_holds(&p->mmio32, addr, size) || window_holds(&p->mmio64, addr, size);
}

unsigned pci_intx_gsi(unsigned slot, unsigned pin)
{
    return PCI_INTX_GSI_BASE + (slot + (pin ? pin - 1 : 0)) % PCI_INTX_PINS;
}

/* --- ACPI -------------------------------------------------------------------- */

void pci_host_describe_acpi(const struct pci_host *p, struct aml *aml)
{
    size_t dev = aml_device_begin(aml, "PCI0");
    aml_name_eisaid(aml, "_HID", "PNP0A08");
    aml_name_eisaid(aml, "_CID", "PNP0A03");
    aml_name_integer(aml, "_SEG", 0);
    aml_name_integer(aml, "_BBN", 0);
    aml_name_integer(aml, "_UID", 0);

    struct aml_res res;
    aml_res_init(&res);
    aml_res_word_bus_number(&res, AML_RES_PRODUCER, 0, 0);
    aml_res_io(&res, CONF1_ADDR_PORT, CONF1_ADDR_PORT, 1, CONF1_PORTS);
    aml_res_word_io(&res, AML_RES_PRODUCER, (uint16_t)p->io.base,
                    (uint16_t)(p->io.base + p->io.size - 1));
    aml_res_dword_memory(&res, AML_RES_PRODUCER, AML_MEM_NON_CACHEABLE, AML_MEM_READ_WRITE,
                         (uint32_t)p->mmio32.base, (uint32_t)(p->mmio32.base + p->mmio32.size - 1));
    if (p->mmio64.size)
        aml_res_qword_memory(&res, AML_RES_PRODUCER, AML_MEM_NON_CACHEABLE, AML_MEM_READ_WRITE,
                             p->mmio64.base, p->mmio64.base + p->mmio64.size - 1);
    aml_name_resource(aml, "_CRS", &res);

    /* _PRT: Package { Package { slot << 16 | 0xffff, pin, 0, gsi } ... } for every slot. */
    aml_name(aml, "_PRT");
    size_t prt = aml_package_begin(aml);
    for (unsigned s = 0; s < PCI_SLOTS; s++) {
        for (unsigned pin = 0; pin < PCI_INTX_PINS; pin++) {
            size_t e = aml_package_begin(aml);
            aml_integer(aml, ((uint64_t)s << 16) | 0xffff);
            aml_integer(aml, pin);
            aml_integer(aml, 0);
            aml_integer(aml, pci_intx_gsi(s, pin + 1));
            aml_end(aml, e);
        }
    }
    aml_end(aml, prt);
    aml_end(aml, dev);

    /* ECAM must be reserved in motherboard resources, or Linux will not use it. */
    size_t pres = aml_device_begin(aml, "PRES");
    aml_name_eisaid(aml, "_HID", "PNP0C02");
    aml_name_integer(aml, "_UID", 1);
    aml_res_init(&res);
    aml_res_memory32_fixed(&res, AML_MEM_READ_WRITE, (uint32_t)p->ecam_base,
                           (uint32_t)ECAM_BUS_SIZE);
    aml_name_resource(aml, "_CRS", &res);
    aml_end(aml, pres);
}
