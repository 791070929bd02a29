/* vfio_pci.c - a PCI function passed through with VFIO; see vfio_pci.h. */
#include "vfio/vfio_pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/host.h"
#include "devices/irq_routes.h"
#include "mm/memmap.h"
#include "vfio/iommu.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define PAGE_SIZE_4K 4096ULL

static struct vfio_pci *vfio_pci_of(struct device *dev)
{
    return container_of(dev, struct vfio_pci, dev);
}

const char *vfio_irq_mode_name(enum vfio_irq_mode m)
{
    switch (m) {
    case VFIO_IRQ_INTX:
        return "intx";
    case VFIO_IRQ_MSI:
        return "msi";
    case VFIO_IRQ_MSIX:
        return "msix";
    case VFIO_IRQ_NONE:
    default:
        return "none";
    }
}

/* --- config space -------------------------------------------------------------- */

static int real_cfg_read(void *opaque, unsigned offset, void *buf, unsigned len)
{
    struct vfio_pci *d = opaque;
    if (offset + len > d->config.size)
        return -1;
    return pread(d->fd, buf, len, (off_t)(d->config.offset + offset)) == (ssize_t)len ? 0 : -1;
}

static int real_cfg_write(void *opaque, unsigned offset, const void *buf, unsigned len)
{
    struct vfio_pci *d = opaque;
    if (offset + len > d->config.size)
        return -1;
    return pwrite(d->fd, buf, len, (off_t)(d->config.offset + offset)) == (ssize_t)len ? 0 : -1;
}

/* --- BARs ---------------------------------------------------------------------- */

static void unmap_bar(struct vfio_pci *d, unsigned b)
{
    struct vfio_region *r = &d->bars[b];
    for (unsigned a = 0; a < r->nr_areas; a++) {
        if (r->areas[a].slot >= 0) {
            mm_slot_remove(d->host->mem, r->areas[a].slot);
            r->areas[a].slot = -1;
        }
    }
}

static bool bar_mapped(const struct vfio_region *r)
{
    for (unsigned a = 0; a < r->nr_areas; a++)
        if (r->areas[a].slot >= 0)
            return true;
    return false;
}

/* Put the mmappable areas of BAR b at guest address addr as memslots. */
static void map_bar(struct vfio_pci *d, unsigned b, uint64_t addr)
{
    struct vfio_region *r = &d->bars[b];
    if (!r->map || addr % PAGE_SIZE_4K ||
        !pci_host_in_window(d->pci, false, addr, d->cfg.bars[b].size))
        return; /* trapped: accesses reach bar_read/bar_write */
    for (unsigned a = 0; a < r->nr_areas; a++) {
        int slot = mm_slot_add(d->host->mem, addr + r->areas[a].offset, r->areas[a].size,
                               r->map + r->areas[a].offset, 0);
        if (slot < 0)
            warn_limited("%s: BAR %u at %#llx: no memslot (%s); its accesses are trapped", d->id, b,
                         (unsigned long long)addr, strerror(errno));
        r->areas[a].slot = slot;
    }
    r->mapped_at = addr;
}

static void vfio_bars_changed(void *opaque)
{
    struct vfio_pci *d = opaque;
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        if (d->cfg.bars[b].kind == PCI_BAR_NONE)
            continue;
        uint64_t addr = 0;
        bool on = vfio_pci_cfg_bar_decodes(&d->cfg, b, &addr);
        struct vfio_region *r = &d->bars[b];
        bool was = d->fn.bars[b].size != 0;
        if (was && on && d->fn.bars[b].addr == addr)
            continue;
        if (bar_mapped(r))
            unmap_bar(d, b);
        pci_bar_update(d->pci, &d->fn, b, on ? addr : 0, on ? d->cfg.bars[b].size : 0);
        if (on && d->cfg.bars[b].kind != PCI_BAR_KIND_IO)
            map_bar(d, b, addr);
    }
    uint64_t rom = 0;
    bool on = vfio_pci_cfg_rom_decodes(&d->cfg, &rom);
    pci_bar_update(d->pci, &d->fn, PCI_ROM_REGION, on ? rom : 0, on ? d->cfg.rom_size : 0);
}

/* Is [off, off + len) of BAR b inside the MSI-X table?  Sets the entry and the word. */
static bool in_msix_table(const struct vfio_pci *d, unsigned b, uint64_t off, unsigned len,
                          unsigned *entry, unsigned *word)
{
    const struct vfio_pci_cfg *c = &d->cfg;
    if (!c->msix_off || b != c->msix_table_bar || off < c->msix_table_offset)
        return false;
    uint64_t rel = off - c->msix_table_offset;
    if (rel >= (uint64_t)c->msix_size * PCI_MSIX_ENTRY_SIZE)
        return false;
    *entry = (unsigned)(rel / PCI_MSIX_ENTRY_SIZE);
    *word = (unsigned)(rel % PCI_MSIX_ENTRY_SIZE) / 4;
    return (len == 4 || len == 8) && rel % 4 == 0 && !(len == 8 && *word % 2);
}

static void update_vector_locked(struct vfio_pci *d, unsigned i);

static void vfio_bar_read(void *opaque, unsigned b, uint64_t off, void *data, unsigned len)
{
    struct vfio_pci *d = opaque;
    unsigned entry, word;
    memset(data, 0xff, len);
    if (in_msix_table(d, b, off, len, &entry, &word)) {
        pthread_mutex_lock(&d->irq_lock);
        memcpy(data, &d->msix_table[entry][word], len);
        pthread_mutex_unlock(&d->irq_lock);
        return;
    }
    const struct vfio_region *r = b == PCI_ROM_REGION ? &d->rom : &d->bars[b];
    if (off + len <= r->size && (r->flags & VFIO_REGION_INFO_FLAG_READ) &&
        pread(d->fd, data, len, (off_t)(r->offset + off)) != (ssize_t)len)
        memset(data, 0xff, len);
}

static void vfio_bar_write(void *opaque, unsigned b, uint64_t off, const void *data, unsigned len)
{
    struct vfio_pci *d = opaque;
    unsigned entry, word;
    if (in_msix_table(d, b, off, len, &entry, &word)) {
        pthread_mutex_lock(&d->irq_lock);
        memcpy(&d->msix_table[entry][word], data, len);
        if (d->mode == VFIO_IRQ_MSIX)
            update_vector_locked(d, entry);
        pthread_mutex_unlock(&d->irq_lock);
        return;
    }
    const struct vfio_pci_cfg *c = &d->cfg;
    if (b == PCI_ROM_REGION)
        return; /* read-only memory */
    if (c->msix_off && b == c->msix_pba_bar && off >= c->msix_pba_offset &&
        off < c->msix_pba_offset + (c->msix_size + 63) / 64 * 8)
        return; /* the PBA is read-only */
    const struct vfio_region *r = &d->bars[b];
    if (off + len <= r->size && (r->flags & VFIO_REGION_INFO_FLAG_WRITE) &&
        pwrite(d->fd, data, len, (off_t)(r->offset + off)) != (ssize_t)len)
        warn_limited("%s: write to BAR %u at %#llx failed: %s", d->id, b, (unsigned long long)off,
                     strerror(errno));
}

static const struct pci_function_ops vfio_fn_ops;

/* --- interrupts ------------------------------------------------------------------ */

static int set_irqs(struct vfio_pci *d, unsigned index, uint32_t flags, unsigned start,
                    unsigned count, const int32_t *fds)
{
    size_t sz = sizeof(struct vfio_irq_set) + (size_t)count * sizeof(int32_t);
    struct vfio_irq_set *s = xzalloc(sz);
    s->argsz = (uint32_t)sz;
    s->flags = flags;
    s->index = index;
    s->start = start;
    s->count = count;
    if (count && fds)
        memcpy(s->data, fds, (size_t)count * sizeof(int32_t));
    int rc = ioctl(d->fd, VFIO_DEVICE_SET_IRQS, s);
    int e = errno;
    free(s);
    if (rc < 0) {
        d->irq_errors++;
        warn_limited("%s: VFIO_DEVICE_SET_IRQS (index %u, %u vectors): %s", d->id, index, count,
                     strerror(e));
    }
    errno = e;
    return rc;
}

static int irqfd(int vm_fd, int fd, unsigned gsi, uint32_t flags, int resample)
{
    struct kvm_irqfd f = {.fd = (uint32_t)fd, .gsi = gsi, .flags = flags};
    if (resample >= 0)
        f.resamplefd = (uint32_t)resample;
    return ioctl(vm_fd, KVM_IRQFD, &f);
}

static void intx_on_locked(struct vfio_pci *d)
{
    if (d->intx_trigger < 0) {
        d->mode = VFIO_IRQ_NONE;
        return;
    }
    int32_t t = d->intx_trigger, u = d->intx_unmask;
    if (set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX,
                 VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &t) == 0)
        set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
                 0, 1, &u);
    if (d->vm_fd >= 0 && !d->intx_bound) {
        if (irqfd(d->vm_fd, d->intx_trigger, d->intx_gsi, KVM_IRQFD_FLAG_RESAMPLE,
                  d->intx_unmask) == 0)
            d->intx_bound = true;
        else
            warn_limited("%s: KVM_IRQFD for INTx (GSI %u): %s", d->id, d->intx_gsi,
                         strerror(errno));
    }
    d->mode = VFIO_IRQ_INTX;
}

static void intx_off_locked(struct vfio_pci *d)
{
    if (d->intx_trigger >= 0)
        set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                 0, 0, NULL);
}

/* The MSI message and mask of vector i as the guest programmed it now. */
static void vector_message(struct vfio_pci *d, unsigned i, uint64_t *addr, uint32_t *data,
                           bool *masked)
{
    const struct vfio_pci_cfg *c = &d->cfg;
    if (d->mode == VFIO_IRQ_MSIX) {
        *addr = d->msix_table[i][0] | (uint64_t)d->msix_table[i][1] << 32;
        *data = d->msix_table[i][2];
        *masked =
            (d->msix_table[i][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT) || vfio_pci_cfg_msix_masked(c);
    } else {
        unsigned n = d->nr_vectors;
        *addr = c->msi_address;
        *data = (c->msi_data & ~(n - 1)) | i;
        *masked = c->msi_maskable && (c->msi_mask & (1u << i));
    }
}

static void update_vector_locked(struct vfio_pci *d, unsigned i)
{
    if (i >= d->nr_vectors)
        return;
    struct vfio_vector *v = &d->vectors[i];
    uint64_t addr;
    uint32_t data;
    bool masked;
    vector_message(d, i, &addr, &data, &masked);
    if (masked || !addr) {
        /* Events stay counted in the eventfd; KVM delivers them when it is bound again. */
        if (v->bound && d->vm_fd >= 0)
            irqfd(d->vm_fd, v->eventfd, (unsigned)v->gsi, KVM_IRQFD_FLAG_DEASSIGN, -1);
        v->bound = false;
        return;
    }
    if (irq_routes_set_msi(d->host->routes, v->gsi, addr, data) < 0) {
        d->irq_errors++;
        warn_limited("%s: KVM_SET_GSI_ROUTING for vector %u: %s", d->id, i, strerror(errno));
        return;
    }
    if (!v->bound && d->vm_fd >= 0) {
        if (irqfd(d->vm_fd, v->eventfd, (unsigned)v->gsi, 0, -1) == 0)
            v->bound = true;
        else {
            d->irq_errors++;
            warn_limited("%s: KVM_IRQFD for vector %u: %s", d->id, i, strerror(errno));
        }
    }
}

static void vectors_off_locked(struct vfio_pci *d)
{
    if (d->mode != VFIO_IRQ_MSI && d->mode != VFIO_IRQ_MSIX)
        return;
    unsigned index = d->mode == VFIO_IRQ_MSIX ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
    set_irqs(d, index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
    for (unsigned i = 0; i < d->nr_vectors; i++) {
        struct vfio_vector *v = &d->vectors[i];
        if (v->bound && d->vm_fd >= 0)
            irqfd(d->vm_fd, v->eventfd, (unsigned)v->gsi, KVM_IRQFD_FLAG_DEASSIGN, -1);
        if (v->gsi >= 0 && d->vm_fd >= 0)
            irq_routes_free(d->host->routes, v->gsi);
        if (v->eventfd >= 0)
            close(v->eventfd);
        *v = (struct vfio_vector){.eventfd = -1, .gsi = -1};
    }
    d->nr_vectors = 0;
    d->mode = VFIO_IRQ_NONE;
}

/* Switch to MSI or MSI-X with n vectors.  On failure INTx is restored. */
static void vectors_on_locked(struct vfio_pci *d, enum vfio_irq_mode mode, unsigned n)
{
    unsigned index = mode == VFIO_IRQ_MSIX ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
    if (n == 0 || n > d->irq_count[index]) {
        warn_limited("%s: the guest enabled %u %s vectors; the device has %u", d->id, n,
                     vfio_irq_mode_name(mode), d->irq_count[index]);
        return;
    }
    intx_off_locked(d);
    d->mode = mode;
    int32_t *fds = xzalloc(n * sizeof(*fds));
    for (unsigned i = 0; i < n; i++) {
        struct vfio_vector *v = &d->vectors[i];
        v->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        v->gsi = irq_routes_alloc(d->host->routes);
        v->bound = false;
        fds[i] = v->eventfd;
        if (v->eventfd < 0 || v->gsi < 0) {
            warn_limited("%s: no eventfd or GSI for vector %u; %s stays off", d->id, i,
                         vfio_irq_mode_name(mode));
            d->nr_vectors = i + 1;
            free(fds);
            vectors_off_locked(d);
            intx_on_locked(d);
            return;
        }
    }
    d->nr_vectors = n;
    int rc = set_irqs(d, index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, n, fds);
    free(fds);
    if (rc < 0) {
        vectors_off_locked(d);
        intx_on_locked(d);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        update_vector_locked(d, i);
}

static void vfio_msi_changed(void *opaque)
{
    struct vfio_pci *d = opaque;
    pthread_mutex_lock(&d->irq_lock);
    bool want = vfio_pci_cfg_msi_enabled(&d->cfg);
    if (want && d->mode == VFIO_IRQ_MSI && d->nr_vectors != vfio_pci_cfg_msi_vectors(&d->cfg))
        vectors_off_locked(d); /* MME changed while enabled: start again */
    if (want && d->mode != VFIO_IRQ_MSI && d->mode != VFIO_IRQ_MSIX)
        vectors_on_locked(d, VFIO_IRQ_MSI, vfio_pci_cfg_msi_vectors(&d->cfg));
    else if (!want && d->mode == VFIO_IRQ_MSI) {
        vectors_off_locked(d);
        intx_on_locked(d);
    } else if (d->mode == VFIO_IRQ_MSI)
        for (unsigned i = 0; i < d->nr_vectors; i++)
            update_vector_locked(d, i);
    pthread_mutex_unlock(&d->irq_lock);
}

static void vfio_msix_changed(void *opaque)
{
    struct vfio_pci *d = opaque;
    pthread_mutex_lock(&d->irq_lock);
    bool want = vfio_pci_cfg_msix_enabled(&d->cfg);
    if (want && d->mode != VFIO_IRQ_MSIX) {
        if (d->mode == VFIO_IRQ_MSI)
            vectors_off_locked(d);
        vectors_on_locked(d, VFIO_IRQ_MSIX, d->cfg.msix_size);
    } else if (!want && d->mode == VFIO_IRQ_MSIX) {
        vectors_off_locked(d);
        intx_on_locked(d);
    } else if (d->mode == VFIO_IRQ_MSIX) {
        for (unsigned i = 0; i < d->nr_vectors; i++)
            update_vector_locked(d, i); /* the function mask changed */
    }
    pthread_mutex_unlock(&d->irq_lock);
}

static const struct vfio_pci_cfg_ops cfg_ops = {
    .read = real_cfg_read,
    .write = real_cfg_write,
    .bars_changed = vfio_bars_changed,
    .msi_changed = vfio_msi_changed,
    .msix_changed = vfio_msix_changed,
};

static uint32_t vfio_fn_cfg_read(void *opaque, unsigned offset, unsigned len)
{
    struct vfio_pci *d = opaque;
    return vfio_pci_cfg_read(&d->cfg, offset, len);
}

static void vfio_fn_cfg_write(void *opaque, unsigned offset, unsigned len, uint32_t value)
{
    struct vfio_pci *d = opaque;
    vfio_pci_cfg_write(&d->cfg, offset, len, value);
}

static const struct pci_function_ops vfio_fn_ops = {
    .cfg_read = vfio_fn_cfg_read,
    .cfg_write = vfio_fn_cfg_write,
    .bar_read = vfio_bar_read,
    .bar_write = vfio_bar_write,
};

/* --- device life cycle ------------------------------------------------------------ */

static int vfio_pci_attach(struct device *dev, int vm_fd, char *err, size_t errlen)
{
    struct vfio_pci *d = vfio_pci_of(dev);
    (void)err;
    (void)errlen;
    pthread_mutex_lock(&d->irq_lock);
    d->vm_fd = vm_fd;
    d->intx_bound = false;
    intx_on_locked(d);
    pthread_mutex_unlock(&d->irq_lock);
    return 0;
}

static void drain(int fd)
{
    uint64_t v;
    if (fd >= 0 && read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending */
    }
}

/* No DMA from the device after this: bus master off, interrupts off, device reset. */
static void vfio_pci_quiesce(struct device *dev)
{
    struct vfio_pci *d = vfio_pci_of(dev);
    uint16_t cmd = 0;
    real_cfg_write(d, PCI_COMMAND, &cmd, 2);
    pthread_mutex_lock(&d->irq_lock);
    d->vm_fd = -1; /* the VM fd is closed: its irqfds and routes went with it */
    vectors_off_locked(d);
    intx_off_locked(d);
    d->intx_bound = false;
    d->mode = VFIO_IRQ_NONE;
    for (unsigned i = 0; d->msix_table && i < d->cfg.msix_size; i++) {
        memset(d->msix_table[i], 0, sizeof(d->msix_table[i]));
        d->msix_table[i][3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    pthread_mutex_unlock(&d->irq_lock);
    drain(d->intx_trigger);
    drain(d->intx_unmask);
    if ((d->dev_flags & VFIO_DEVICE_FLAGS_RESET) && ioctl(d->fd, VFIO_DEVICE_RESET) < 0)
        warn("%s: VFIO_DEVICE_RESET: %s", d->id, strerror(errno));
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        unmap_bar(d, b);
        pci_bar_update(d->pci, &d->fn, b, 0, 0);
    }
    pci_bar_update(d->pci, &d->fn, PCI_ROM_REGION, 0, 0);
    vfio_pci_cfg_reset(&d->cfg);
}

static void vfio_pci_destroy(struct device *dev)
{
    struct vfio_pci *d = vfio_pci_of(dev);
    for (unsigned b = 0; b < PCI_NUM_BARS; b++)
        if (d->bars[b].map)
            munmap(d->bars[b].map, d->bars[b].size);
    if (d->intx_trigger >= 0)
        close(d->intx_trigger);
    if (d->intx_unmask >= 0)
        close(d->intx_unmask);
    for (unsigned i = 0; i < d->nr_vectors; i++)
        if (d->vectors[i].eventfd >= 0)
            close(d->vectors[i].eventfd);
    pthread_mutex_destroy(&d->irq_lock);
    free(d->vectors);
    free(d->msix_table);
    free(d);
}

static const struct device_ops vfio_pci_dev_ops = {
    .attach = vfio_pci_attach,
    .quiesce = vfio_pci_quiesce,
    .destroy = vfio_pci_destroy,
};

/* --- set-up --------------------------------------------------------------------- */

/* Region info with its capabilities; fills r (areas: the mmappable parts). */
static int read_region(struct vfio_pci *d, unsigned index, struct vfio_region *r)
{
    struct vfio_region_info probe = {.argsz = sizeof(probe), .index = index};
    memset(r, 0, sizeof(*r));
    if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &probe) < 0)
        return -1;
    r->flags = probe.flags;
    r->size = probe.size;
    r->offset = probe.offset;
    for (unsigned a = 0; a < VFIO_MAX_AREAS; a++)
        r->areas[a].slot = -1;
    if (!(probe.flags & VFIO_REGION_INFO_FLAG_MMAP) || probe.size < PAGE_SIZE_4K)
        return 0;
    r->areas[0].offset = 0;
    r->areas[0].size = probe.size;
    r->nr_areas = 1;
    if (!(probe.flags & VFIO_REGION_INFO_FLAG_CAPS) || probe.argsz <= sizeof(probe) ||
        probe.argsz > 65536)
        return 0;
    struct vfio_region_info *info = xzalloc(probe.argsz);
    info->argsz = probe.argsz;
    info->index = index;
    if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, info) == 0) {
        uint32_t off = info->cap_offset;
        for (unsigned hops = 0;
             off && off + sizeof(struct vfio_info_cap_header) <= info->argsz && hops < 16; hops++) {
            const struct vfio_info_cap_header *h = (const void *)((const char *)info + off);
            if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
                off + sizeof(struct vfio_region_info_cap_sparse_mmap) <= info->argsz) {
                const struct vfio_region_info_cap_sparse_mmap *s = (const void *)h;
                r->nr_areas = 0;
                for (uint32_t i = 0; i < s->nr_areas && r->nr_areas < VFIO_MAX_AREAS; i++) {
                    if (off + sizeof(*s) + (i + 1) * sizeof(s->areas[0]) > info->argsz)
                        break;
                    uint64_t ao = s->areas[i].offset, as = s->areas[i].size;
                    if (ao % PAGE_SIZE_4K || as % PAGE_SIZE_4K || !as || ao + as > r->size)
                        continue;
                    r->areas[r->nr_areas].offset = ao;
                    r->areas[r->nr_areas].size = as;
                    r->nr_areas++;
                }
            }
            if (h->next <= off)
                break;
            off = h->next;
        }
    }
    free(info);
    return 0;
}

/* Take [hole, hole + len) (rounded out to pages) out of BAR r's mmappable areas. */
static void punch_area(struct vfio_region *r, uint64_t hole, uint64_t len)
{
    uint64_t lo = ALIGN_DOWN(hole, PAGE_SIZE_4K), hi = ALIGN_UP(hole + len, PAGE_SIZE_4K);
    for (unsigned a = 0; a < r->nr_areas; a++) {
        uint64_t s = r->areas[a].offset, e = s + r->areas[a].size;
        if (!ranges_overlap(s, e - s, lo, hi - lo))
            continue;
        /* Keep [s, lo) here and [hi, e) in a new area. */
        if (hi < e && r->nr_areas < VFIO_MAX_AREAS) {
            r->areas[r->nr_areas].offset = hi;
            r->areas[r->nr_areas].size = e - hi;
            r->areas[r->nr_areas].slot = -1;
            r->nr_areas++;
        }
        if (lo > s) {
            r->areas[a].size = lo - s;
        } else {
            r->areas[a] = r->areas[--r->nr_areas];
            a--;
        }
    }
}

static enum pci_bar_kind bar_kind(uint32_t reg, bool *prefetch)
{
    *prefetch = false;
    if (reg & PCI_BAR_IO)
        return PCI_BAR_KIND_IO;
    *prefetch = reg & PCI_BAR_MEM_PREFETCH;
    return (reg & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_64 ? PCI_BAR_KIND_MEM64
                                                           : PCI_BAR_KIND_MEM32;
}

struct vfio_pci *vfio_pci_create(const struct dev_host *h, struct pci_host *pci,
                                 struct vfio_iommu *iommu, int fd, const char *id, const char *bdf,
                                 int group, bool rom, char *err, size_t errlen)
{
    struct vfio_pci *d = xzalloc(sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
    d->group = group;
    d->host = h;
    d->pci = pci;
    d->iommu = iommu;
    d->fd = fd;
    d->vm_fd = -1;
    d->intx_trigger = d->intx_unmask = -1;
    pthread_mutex_init(&d->irq_lock, NULL);
    struct vfio_device_info info = {.argsz = sizeof(info)};
    if (ioctl(d->fd, VFIO_DEVICE_GET_INFO, &info) < 0 || !(info.flags & VFIO_DEVICE_FLAGS_PCI) ||
        info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        errf(err, errlen, "--vfio %s: VFIO does not describe it as a PCI device", bdf);
        goto fail;
    }
    d->dev_flags = info.flags;
    if (read_region(d, VFIO_PCI_CONFIG_REGION_INDEX, &d->config) < 0 || !d->config.size) {
        errf(err, errlen, "--vfio %s: cannot read its config region: %s", bdf, strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < VFIO_PCI_NUM_IRQS && i < info.num_irqs; i++) {
        struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = i};
        if (ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0)
            d->irq_count[i] = ii.count;
    }

    /* Quiet the device before the guest sees it: no DMA, no interrupts from a former user. */
    uint16_t cmd = 0;
    real_cfg_write(d, PCI_COMMAND, &cmd, 2);
    if ((d->dev_flags & VFIO_DEVICE_FLAGS_RESET) && ioctl(d->fd, VFIO_DEVICE_RESET) < 0)
        debug("%s: VFIO_DEVICE_RESET at start-up: %s", bdf, strerror(errno));

    struct vfio_pci_bar bars[PCI_NUM_BARS] = {0};
    struct pci_bar_decl decl[PCI_NUM_REGIONS] = {0};
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        if (read_region(d, VFIO_PCI_BAR0_REGION_INDEX + b, &d->bars[b]) < 0 || !d->bars[b].size)
            continue;
        uint32_t reg = 0;
        real_cfg_read(d, PCI_BASE_ADDRESS_0 + 4 * b, &reg, 4);
        bool pf;
        enum pci_bar_kind k = bar_kind(reg, &pf);
        uint64_t size = d->bars[b].size;
        if (size & (size - 1)) {
            errf(err, errlen, "--vfio %s: BAR %u size %#llx is not a power of two", bdf, b,
                 (unsigned long long)size);
            goto fail;
        }
        bars[b] = (struct vfio_pci_bar){k, pf, size};
        decl[b] = (struct pci_bar_decl){k, size, pf};
        if (k == PCI_BAR_KIND_MEM64)
            b++; /* the upper half */
    }

    if (rom) {
        if (read_region(d, VFIO_PCI_ROM_REGION_INDEX, &d->rom) < 0 || !d->rom.size) {
            errf(err, errlen, "--vfio %s,rom=on: the device has no expansion ROM; leave rom= out",
                 bdf);
            goto fail;
        }
        if (d->rom.size & (d->rom.size - 1)) {
            errf(err, errlen, "--vfio %s: its ROM size %#llx is not a power of two", bdf,
                 (unsigned long long)d->rom.size);
            goto fail;
        }
        decl[PCI_ROM_REGION] = (struct pci_bar_decl){PCI_BAR_KIND_MEM32, d->rom.size, false};
    }
    d->fn.name = d->id;
    d->fn.ops = &vfio_fn_ops;
    d->fn.opaque = d;
    uint64_t assigned[PCI_NUM_REGIONS];
    if (pci_add_function(pci, &d->fn, decl, assigned, err, errlen) < 0)
        goto fail;
    char why[256];
    if (vfio_pci_cfg_init(&d->cfg, &cfg_ops, d, bars, assigned, why, sizeof(why)) < 0) {
        errf(err, errlen, "--vfio %s: %s", bdf, why);
        goto fail;
    }
    if (rom)
        vfio_pci_cfg_show_rom(&d->cfg, d->rom.size, assigned[PCI_ROM_REGION]);

    /* MSI-X table and PBA are trapped even where the kernel would let them be mapped. */
    if (d->cfg.msix_off) {
        punch_area(&d->bars[d->cfg.msix_table_bar], d->cfg.msix_table_offset,
                   (uint64_t)d->cfg.msix_size * PCI_MSIX_ENTRY_SIZE);
        punch_area(&d->bars[d->cfg.msix_pba_bar], d->cfg.msix_pba_offset,
                   (d->cfg.msix_size + 63) / 64 * 8);
        d->msix_table = xzalloc((size_t)d->cfg.msix_size * sizeof(*d->msix_table));
        for (unsigned i = 0; i < d->cfg.msix_size; i++)
            d->msix_table[i][3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    unsigned nvec =
        d->cfg.msix_size > VFIO_MSI_MAX_VECTORS ? d->cfg.msix_size : VFIO_MSI_MAX_VECTORS;
    d->vectors = xzalloc(nvec * sizeof(*d->vectors));
    for (unsigned i = 0; i < nvec; i++)
        d->vectors[i] = (struct vfio_vector){.eventfd = -1, .gsi = -1};

    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        struct vfio_region *r = &d->bars[b];
        if (bars[b].kind == PCI_BAR_NONE || bars[b].kind == PCI_BAR_KIND_IO || !r->nr_areas)
            continue;
        /* Reserve the BAR's size, then map each mmappable area over it from the device fd. */
        void *m =
            mmap(NULL, r->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            errf(err, errlen, "--vfio %s: cannot reserve address space for BAR %u: %s", bdf, b,
                 strerror(errno));
            goto fail;
        }
        r->map = m;
        for (unsigned a = 0; a < r->nr_areas; a++) {
            void *at = r->map + r->areas[a].offset;
            if (mmap(at, r->areas[a].size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, d->fd,
                     (off_t)(r->offset + r->areas[a].offset)) == MAP_FAILED) {
                debug("%s: BAR %u area %#llx cannot be mmapped (%s); it is trapped", bdf, b,
                      (unsigned long long)r->areas[a].offset, strerror(errno));
                r->areas[a] = r->areas[--r->nr_areas];
                a--;
            }
        }
    }

    if (d->irq_count[VFIO_PCI_INTX_IRQ_INDEX] && d->cfg.irq_pin) {
        d->intx_trigger = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        d->intx_unmask = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->intx_trigger < 0 || d->intx_unmask < 0) {
            errf(err, errlen, "--vfio %s: eventfd: %s", bdf, strerror(errno));
            goto fail;
        }
        d->intx_gsi = pci_intx_gsi(d->fn.slot, d->cfg.irq_pin);
    }
    d->dev.name = d->id;
    d->dev.ops = &vfio_pci_dev_ops;
    dev_host_add_device(h, &d->dev);
    debug("%s: %s in IOMMU group %d at 00:%02x.0, INTx GSI %u, %u MSI / %u MSI-X vectors", d->id,
          bdf, group, d->fn.slot, d->intx_gsi, d->irq_count[VFIO_PCI_MSI_IRQ_INDEX],
          d->irq_count[VFIO_PCI_MSIX_IRQ_INDEX]);
    return d;
fail:
    free(d->vectors);
    free(d->msix_table);
    free(d);
    return NULL;
}

void vfio_pci_status(struct vfio_pci *d, struct json *j)
{
    json_object_begin(j);
    json_kv_string(j, "id", d->id);
    json_kv_string(j, "bdf", d->bdf);
    json_kv_u64(j, "iommu_group", (uint64_t)d->group);
    vfio_iommu_status(d->iommu, j); /* the address space all devices share */
    pthread_mutex_lock(&d->irq_lock);
    json_kv_string(j, "irq", vfio_irq_mode_name(d->mode));
    json_kv_u64(j, "irq_vectors", d->nr_vectors);
    pthread_mutex_unlock(&d->irq_lock);
    uint32_t id = vfio_pci_cfg_read(&d->cfg, PCI_VENDOR_ID, 4);
    char buf[16];
    snprintf(buf, sizeof(buf), "%04x:%04x", id & 0xffff, id >> 16);
    json_kv_string(j, "vendor_device", buf);
    json_object_end(j);
}
