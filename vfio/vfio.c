/* vfio.c - the VM's passthrough devices, their container and boot RAM's mappings; see vfio.h. */
#include "vfio/vfio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "devices/host.h"
#include "devices/pci.h"
#include "mm/memmap.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define CAP_IPC_LOCK_BIT 14

int vfio_parse_option(const char *arg, unsigned index, struct vfio_options *o, char *err,
                      size_t errlen)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "vfio%u", index);
    char buf[256];
    if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
        return errf(err, errlen, "--vfio: the value is too long");
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    if (!tok)
        return errf(err, errlen, "--vfio: give the device's PCI address, e.g. --vfio 0000:01:00.0");
    if (vfio_parse_bdf(tok, o->bdf, err, errlen) < 0)
        return -1;
    while ((tok = strtok_r(NULL, ",", &save))) {
        if (strncmp(tok, "id=", 3) == 0) {
            const char *id = tok + 3;
            size_t len = strlen(id);
            if (len == 0 || len >= sizeof(o->id))
                return errf(err, errlen, "--vfio %s: id= takes 1 to %zu characters", arg,
                            sizeof(o->id) - 1);
            for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
                    return errf(err, errlen,
                                "--vfio %s: id= may hold letters, digits, '-' and '_' only", arg);
            snprintf(o->id, sizeof(o->id), "%s", id);
        } else if (strcmp(tok, "rom=on") == 0 || strcmp(tok, "rom=off") == 0) {
            o->rom = tok[5] == 'n';
        } else {
            return errf(err, errlen,
                        "--vfio %s: unknown option '%s' (the options are id=NAME and rom=on|off)",
                        arg, tok);
        }
    }
    return 0;
}

static int vfio_attach(struct device *dev, int vm_fd, char *err, size_t errlen)
{
    struct vfio *v = container_of(dev, struct vfio, dev);
    if (v->container.kvm_dev_fd >= 0) {
        close(v->container.kvm_dev_fd); /* it belonged to the previous boot's VM */
        v->container.kvm_dev_fd = -1;
    }
    return vfio_container_attach_kvm(&v->container, vm_fd, err, errlen);
}

/* At exit, newest device first: the regions' trackers still exist. */
static void vfio_container_destroy(struct device *dev)
{
    struct vfio *v = container_of(dev, struct vfio, dev);
    for (unsigned i = 0; i < v->nr_dma; i++)
        vfio_dma_listener_stop(&v->dma[i]);
    v->nr_dma = 0;
}

static const struct device_ops vfio_container_dev_ops = {
    .attach = vfio_attach,
    .destroy = vfio_container_destroy,
};

int vfio_open(struct vfio *v, const struct vfio_options *opts, unsigned n, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    v->container.fd = -1;
    v->opts = opts;
    v->nr = n;
    if (!v->sysfs)
        v->sysfs = "/sys";
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(opts[i].bdf, opts[j].bdf) == 0)
                return errf(err, errlen, "--vfio %s is given twice", opts[i].bdf);
            if (strcmp(opts[i].id, opts[j].id) == 0)
                return errf(err, errlen,
                            "--vfio: two devices have the id %s; give each its own "
                            "id=",
                            opts[i].id);
        }
        if (vfio_sysfs_check(v->sysfs, opts[i].bdf, &v->group[i], err, errlen) < 0)
            return -1;
    }
    if (vfio_container_open(&v->container, err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        v->group_index[i] =
            vfio_container_add_group(&v->container, v->group[i], opts[i].bdf, err, errlen);
        if (v->group_index[i] < 0)
            return -1;
    }
    return 0;
}

/* Does this process have CAP_IPC_LOCK (pinning then ignores RLIMIT_MEMLOCK)? */
static bool has_ipc_lock(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return false;
    char line[256];
    bool yes = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long caps;
        if (sscanf(line, "CapEff: %llx", &caps) == 1) {
            yes = caps & (1ULL << CAP_IPC_LOCK_BIT);
            break;
        }
    }
    fclose(f);
    return yes;
}

bool vfio_memlock_ok(uint64_t pinned, uint64_t *limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) {
        *limit = UINT64_MAX;
        return true;
    }
    *limit = rl.rlim_cur;
    return has_ipc_lock() || rl.rlim_cur >= pinned;
}

void vfio_limit_map(struct vfio *v, struct mm_map *map)
{
    const struct vfio_container *c = &v->container;
    map->nr_dma_spans = 0;
    for (unsigned i = 0; i < c->nr_ranges && i < MM_MAX_DMA_SPANS; i++)
        map->dma_spans[map->nr_dma_spans++] =
            (struct mm_span){.first = c->ranges[i].start, .last = c->ranges[i].end};
}

/* "0x0-0xfedfffff, 0xfef00000-0x7fffffffff" */
static const char *iova_ranges_text(const struct vfio_container *c, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < c->nr_ranges && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%#llx-%#llx", i ? ", " : "",
                                (unsigned long long)c->ranges[i].start,
                                (unsigned long long)c->ranges[i].end);
    return buf;
}

/* limit and need as text that tells them apart ("2.5 GiB" twice would not). */
static void format_two_sizes(uint64_t limit, uint64_t need, char *a, char *b, size_t len)
{
    format_size(limit, a, len);
    format_size(need, b, len);
    if (strcmp(a, b) == 0) {
        snprintf(a, len, "%llu KiB", (unsigned long long)(limit / 1024));
        snprintf(b, len, "%llu KiB", (unsigned long long)((need + 1023) / 1024));
    }
}

/* The checks that need no mapping yet, over RAM and every tracked region.  0 or -1 with err. */
static int check_dma_plan(struct vfio *v, const struct mm_map *map, struct vfio_dma_plan *plan,
                          uint64_t *pinned_worst, char *err, size_t errlen)
{
    const struct vfio_container *c = &v->container;
    char a[32], b[32], ranges[256];
    uint64_t ram = 0, regions = 0;
    uint64_t min_page = c->iova_pgsizes ? c->iova_pgsizes & -c->iova_pgsizes : 4096;
    memset(plan, 0, sizeof(*plan));
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (r->type == MM_REGION_RAM) {
            if (!vfio_iova_ok(c, r->gpa, r->size))
                return errf(err, errlen,
                            "--vfio: guest RAM at %#llx-%#llx lies outside the IOVA ranges this "
                            "host's IOMMU can map (%s); use a smaller --memory",
                            (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size - 1),
                            iova_ranges_text(c, ranges, sizeof(ranges)));
            plan->ram_mappings++;
            ram += r->size;
            continue;
        }
        if (!r->tracker)
            continue;
        if (!vfio_iova_ok(c, r->gpa, r->size))
            return errf(err, errlen,
                        "--vfio: %s at %#llx-%#llx lies outside the IOVA ranges this host's "
                        "IOMMU can map (%s); give it an addr= inside them, or none",
                        r->name, (unsigned long long)r->gpa,
                        (unsigned long long)(r->gpa + r->size - 1),
                        iova_ranges_text(c, ranges, sizeof(ranges)));
        uint64_t block = mm_tracker_block_size(r->tracker);
        if (block < min_page)
            return errf(err, errlen,
                        "--vfio: %s has block-size %s, below the smallest page the IOMMU maps "
                        "(%s); use block-size=%s or larger",
                        r->name, format_size(block, a, sizeof(a)),
                        format_size(min_page, b, sizeof(b)),
                        format_size_option(min_page, ranges, sizeof(ranges)));
        if (plan->nr_regions == VFIO_DMA_MAX_REGIONS)
            return errf(err, errlen, "--vfio: more than %d virtio-mem regions",
                        VFIO_DMA_MAX_REGIONS);
        plan->size[plan->nr_regions] = r->size;
        plan->block_size[plan->nr_regions++] = block;
        regions += r->size;
    }
    uint64_t avail = c->have_dma_avail ? c->dma_avail : VFIO_DMA_DEFAULT_LIMIT;
    uint64_t need = vfio_dma_entries(plan, 0);
    if (need > avail) {
        uint64_t fit = vfio_dma_suggest_block(plan, avail);
        char hint[96] = "";
        if (fit)
            snprintf(hint, sizeof(hint), "use block-size=%s (%llu mappings), or ",
                     format_size_option(fit, a, sizeof(a)),
                     (unsigned long long)vfio_dma_entries(plan, fit));
        return errf(err, errlen,
                    "--vfio: fully plugged, the virtio-mem regions and boot RAM need %llu DMA "
                    "mappings (one per block, %u spare) but the IOMMU allows %llu; %sraise "
                    "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit to %llu",
                    (unsigned long long)need, VFIO_DMA_HEADROOM, (unsigned long long)avail, hint,
                    (unsigned long long)need);
    }
    *pinned_worst = ram + regions;
    uint64_t limit;
    if (!vfio_memlock_ok(*pinned_worst, &limit)) {
        char need_s[32];
        format_two_sizes(limit, *pinned_worst, a, need_s, sizeof(need_s));
        if (regions)
            return errf(err, errlen,
                        "RLIMIT_MEMLOCK %s is below the %s that --vfio may have to pin (boot RAM "
                        "%s and every virtio-mem region fully plugged); raise it with ulimit -l "
                        "%llu (or more), or give minivmm CAP_IPC_LOCK",
                        a, need_s, format_size(ram, b, sizeof(b)),
                        (unsigned long long)((*pinned_worst + 1023) / 1024));
        return errf(err, errlen,
                    "RLIMIT_MEMLOCK %s is below the %s of boot RAM that --vfio must pin; raise it "
                    "with ulimit -l %llu (or more), or give minivmm CAP_IPC_LOCK",
                    a, need_s, (unsigned long long)((*pinned_worst + 1023) / 1024));
    }
    return 0;
}

int vfio_setup_dma(struct vfio *v, const struct mm_map *map, bool *user_error, char *err,
                   size_t errlen)
{
    struct vfio_dma_plan plan;
    uint64_t worst = 0;
    *user_error = true;
    if (check_dma_plan(v, map, &plan, &worst, err, errlen) < 0)
        return -1;
    *user_error = false;
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (r->type != MM_REGION_RAM)
            continue;
        char why[256];
        if (vfio_dma_map(&v->container, r->gpa, r->size, r->hva, why, sizeof(why)) < 0) {
            *user_error = errno == ENOMEM;
            return errf(err, errlen, "--vfio: mapping boot RAM for DMA: %s", why);
        }
    }
    /* Each tracked region is mapped block by block while plugged, after its guard opened it. */
    struct vfio_dma_backend backend = vfio_container_backend(&v->container);
    for (unsigned i = 0; i < map->nr_regions; i++) {
        struct mm_tracker *t = map->regions[i].tracker;
        if (!t)
            continue;
        char why[256];
        if (vfio_dma_listener_start(&v->dma[v->nr_dma], &backend, t, why, sizeof(why)) < 0)
            return errf(err, errlen, "--vfio: %s: %s", map->regions[i].name, why);
        v->nr_dma++;
    }
    debug("vfio: %u mappings of boot RAM; %u virtio-mem regions mapped while plugged; up to %llu "
          "bytes pinned",
          (unsigned)v->container.mappings, v->nr_dma, (unsigned long long)worst);
    return 0;
}

int vfio_create_devices(struct vfio *v, const struct dev_host *h, struct pci_host *pci, char *err,
                        size_t errlen)
{
    v->dev.name = "vfio-container";
    v->dev.ops = &vfio_container_dev_ops;
    dev_host_add_device(h, &v->dev);
    for (unsigned i = 0; i < v->nr; i++) {
        v->devices[i] =
            vfio_pci_create(h, pci, &v->container, (unsigned)v->group_index[i], v->opts[i].id,
                            v->opts[i].bdf, v->group[i], v->opts[i].rom, err, errlen);
        if (!v->devices[i])
            return -1;
    }
    return 0;
}

void vfio_status(struct vfio *v, struct json *j)
{
    json_key(j, "vfio");
    json_array_begin(j);
    for (unsigned i = 0; i < v->nr; i++)
        if (v->devices[i])
            vfio_pci_status(v->devices[i], j);
    json_array_end(j);
}

void vfio_close(struct vfio *v)
{
    if (v->container.fd >= 0)
        vfio_container_close(&v->container);
}
