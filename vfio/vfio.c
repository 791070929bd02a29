/* vfio.c - the VM's passthrough devices, their IOMMU backend and boot RAM's mappings; see vfio.h.
 */
#include "vfio/vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "devices/host.h"
#include "devices/pci.h"
#include "mm/memmap.h"
#include "vfio/iommufd.h"
#include "vfio/type1.h"
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
        } else if (strncmp(tok, "iommu=", 6) == 0) {
            const char *k = tok + 6;
            if (strcmp(k, "auto") == 0)
                o->iommu = VFIO_IOMMU_AUTO;
            else if (strcmp(k, "type1") == 0)
                o->iommu = VFIO_IOMMU_TYPE1;
            else if (strcmp(k, "iommufd") == 0)
                o->iommu = VFIO_IOMMU_IOMMUFD;
            else
                return errf(err, errlen, "--vfio %s: iommu= takes type1, iommufd or auto, not '%s'",
                            arg, k);
        } else {
            return errf(err, errlen,
                        "--vfio %s: unknown option '%s' (the options are id=NAME, rom=on|off "
                        "and iommu=type1|iommufd|auto)",
                        arg, tok);
        }
    }
    return 0;
}

const char *vfio_iommu_kind_name(enum vfio_iommu_kind k)
{
    return k == VFIO_IOMMU_TYPE1 ? "type1" : k == VFIO_IOMMU_IOMMUFD ? "iommufd" : "auto";
}

/* May this process (its effective ids) open path for reading and writing? */
static bool usable(const char *path)
{
    return faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == 0;
}

/* Does the device have a VFIO cdev that this host's /dev shows and this process may open? */
static bool has_cdev(const char *sysfs, const char *dev, const char *bdf)
{
    char name[32], path[PATH_MAX];
    if (vfio_sysfs_cdev(sysfs, bdf, name, sizeof(name)) < 0)
        return false;
    snprintf(path, sizeof(path), "%s/vfio/devices/%s", dev, name);
    return usable(path);
}

int vfio_choose_iommu(const struct vfio_options *opts, unsigned n, const char *sysfs,
                      const char *dev, enum vfio_iommu_kind *kind, char *why, size_t whylen,
                      char *err, size_t errlen)
{
    const struct vfio_options *chosen = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (opts[i].iommu == VFIO_IOMMU_AUTO)
            continue;
        if (chosen && chosen->iommu != opts[i].iommu)
            return errf(err, errlen,
                        "--vfio: %s asks for iommu=%s and %s for iommu=%s, but the devices of a "
                        "VM share one IOMMU backend (memory is mapped once for all); give them "
                        "the same iommu=",
                        chosen->bdf, vfio_iommu_kind_name(chosen->iommu), opts[i].bdf,
                        vfio_iommu_kind_name(opts[i].iommu));
        chosen = &opts[i];
    }
    if (chosen) {
        *kind = chosen->iommu;
        snprintf(why, whylen, "asked for");
        return 0;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/iommu", dev);
    *kind = VFIO_IOMMU_TYPE1;
    /* A user set up for type1 (the group's device only) keeps type1. */
    if (access(path, F_OK) < 0) {
        snprintf(why, whylen, "auto: the host has no %s", path);
        return 0;
    }
    if (!usable(path)) {
        snprintf(why, whylen, "auto: this user may not open %s", path);
        return 0;
    }
    for (unsigned i = 0; i < n; i++)
        if (!has_cdev(sysfs, dev, opts[i].bdf)) {
            snprintf(why, whylen,
                     "auto: %s has no VFIO cdev under %s/vfio/devices that this user may open",
                     opts[i].bdf, dev);
            return 0;
        }
    *kind = VFIO_IOMMU_IOMMUFD;
    snprintf(why, whylen, "auto: the host has %s and every device a VFIO cdev", path);
    return 0;
}

static int vfio_attach(struct device *dev, int vm_fd, char *err, size_t errlen)
{
    struct vfio *v = container_of(dev, struct vfio, dev);
    return vfio_iommu_attach_kvm(v->iommu, vm_fd, err, errlen);
}

/* At exit, newest device first: the regions' trackers still exist. */
static void vfio_iommu_destroy(struct device *dev)
{
    struct vfio *v = container_of(dev, struct vfio, dev);
    for (unsigned i = 0; i < v->nr_dma; i++)
        vfio_dma_listener_stop(&v->dma[i]);
    v->nr_dma = 0;
}

static const struct device_ops vfio_iommu_dev_ops = {
    .attach = vfio_attach,
    .destroy = vfio_iommu_destroy,
};

/* Open the backend of kind and add every device to it; on failure nothing stays open. */
static int open_backend(struct vfio *v, enum vfio_iommu_kind kind, char *err, size_t errlen)
{
    if ((kind == VFIO_IOMMU_IOMMUFD ? vfio_iommufd_open(&v->iommu, v->sysfs, err, errlen)
                                    : vfio_type1_open(&v->iommu, err, errlen)) < 0)
        return -1;
    for (unsigned i = 0; i < v->nr; i++) {
        v->device_fd[i] = vfio_iommu_add_device(v->iommu, v->opts[i].bdf, v->group[i], err, errlen);
        if (v->device_fd[i] < 0) {
            vfio_iommu_close(v->iommu); /* closes the devices added so far */
            v->iommu = NULL;
            return -1;
        }
    }
    return 0;
}

int vfio_open(struct vfio *v, const struct vfio_options *opts, unsigned n, char *err, size_t errlen)
{
    const char *sysfs = v->sysfs ? v->sysfs : "/sys",
               *dev_root = v->dev_root ? v->dev_root : "/dev";
    memset(v, 0, sizeof(*v));
    v->opts = opts;
    v->nr = n;
    v->sysfs = sysfs;
    v->dev_root = dev_root;
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
    enum vfio_iommu_kind kind;
    char why[256];
    if (vfio_choose_iommu(opts, n, v->sysfs, v->dev_root, &kind, why, sizeof(why), err, errlen) < 0)
        return -1;
    debug("vfio: IOMMU backend %s (%s)", vfio_iommu_kind_name(kind), why);
    if (open_backend(v, kind, err, errlen) == 0)
        return 0;
    if (kind != VFIO_IOMMU_IOMMUFD || strncmp(why, "auto", 4) != 0)
        return -1;
    /* auto: nothing is mapped yet, so type1 can still take over. */
    char first[512];
    snprintf(first, sizeof(first), "%s", err);
    if (open_backend(v, VFIO_IOMMU_TYPE1, err, errlen) == 0) {
        warn("vfio: iommu=auto: iommufd could not take the devices (%s); using type1", first);
        return 0;
    }
    char second[512];
    snprintf(second, sizeof(second), "%s", err);
    return errf(err, errlen, "%s (and type1, tried next: %s)", first, second);
}

/* Does this process have CAP_IPC_LOCK (pinning then ignores RLIMIT_MEMLOCK)? */
static bool has_ipc_lock(void)
{
    unsigned long long caps;
    return proc_status_value("CapEff", 16, &caps) && (caps & (1ULL << CAP_IPC_LOCK_BIT));
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
    const struct vfio_iommu_limits *l = &v->iommu->limits;
    map->nr_dma_spans = 0;
    for (unsigned i = 0; i < l->nr_ranges && i < MM_MAX_DMA_SPANS; i++)
        map->dma_spans[map->nr_dma_spans++] =
            (struct mm_span){.first = l->ranges[i].start, .last = l->ranges[i].end};
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
    const struct vfio_iommu_limits *l = &v->iommu->limits;
    char a[32], b[32], ranges[256];
    uint64_t ram = 0, regions = 0;
    uint64_t min_page = l->min_page;
    memset(plan, 0, sizeof(*plan));
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (r->type == MM_REGION_RAM) {
            if (!vfio_iova_ok(l, r->gpa, r->size))
                return errf(err, errlen,
                            "--vfio: guest RAM at %#llx-%#llx lies outside the IOVA ranges this "
                            "host's IOMMU can map (%s); use a smaller --memory",
                            (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size - 1),
                            vfio_iova_ranges_text(l, ranges, sizeof(ranges)));
            plan->ram_mappings++;
            ram += r->size;
            continue;
        }
        if (!r->tracker)
            continue;
        if (!vfio_iova_ok(l, r->gpa, r->size))
            return errf(err, errlen,
                        "--vfio: %s at %#llx-%#llx lies outside the IOVA ranges this host's "
                        "IOMMU can map (%s); give it an addr= inside them, or none",
                        r->name, (unsigned long long)r->gpa,
                        (unsigned long long)(r->gpa + r->size - 1),
                        vfio_iova_ranges_text(l, ranges, sizeof(ranges)));
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
    /* Only type1 limits the number of mappings. */
    uint64_t avail = l->max_mappings;
    uint64_t need = vfio_dma_entries(plan, 0);
    if (avail && need > avail) {
        uint64_t fit = vfio_dma_suggest_block(plan, avail);
        char hint[96] = "";
        if (fit)
            snprintf(hint, sizeof(hint), "use block-size=%s (%llu mappings), or ",
                     format_size_option(fit, a, sizeof(a)),
                     (unsigned long long)vfio_dma_entries(plan, fit));
        return errf(err, errlen,
                    "--vfio: fully plugged, the virtio-mem regions and boot RAM need %llu DMA "
                    "mappings (one per block, %u spare) but the IOMMU allows %llu; %sraise "
                    "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit to %llu, or use "
                    "iommu=iommufd (no such limit) on a kernel that has it",
                    (unsigned long long)need, VFIO_DMA_HEADROOM, (unsigned long long)avail, hint,
                    (unsigned long long)need);
    }
    *pinned_worst = ram + regions;
    uint64_t limit;
    if (!vfio_memlock_ok(*pinned_worst, &limit)) {
        char need_s[32];
        format_two_sizes(limit, *pinned_worst, a, need_s, sizeof(need_s));
        /* iommufd's default: every process of the user that pins draws on the same limit. */
        const char *scope = l->memlock_per_user ? "; iommufd counts it per user, so memory other "
                                                  "processes of this user pin counts too"
                                                : "";
        if (regions)
            return errf(err, errlen,
                        "RLIMIT_MEMLOCK %s is below the %s that --vfio may have to pin (boot RAM "
                        "%s and every virtio-mem region fully plugged); raise it with ulimit -l "
                        "%llu (or more), or give minivmm CAP_IPC_LOCK%s",
                        a, need_s, format_size(ram, b, sizeof(b)),
                        (unsigned long long)((*pinned_worst + 1023) / 1024), scope);
        return errf(err, errlen,
                    "RLIMIT_MEMLOCK %s is below the %s of boot RAM that --vfio must pin; raise it "
                    "with ulimit -l %llu (or more), or give minivmm CAP_IPC_LOCK%s",
                    a, need_s, (unsigned long long)((*pinned_worst + 1023) / 1024), scope);
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
        if (vfio_iommu_map(v->iommu, r->gpa, r->size, r->hva, why, sizeof(why)) < 0) {
            *user_error = errno == ENOMEM;
            return errf(err, errlen, "--vfio: mapping boot RAM for DMA: %s", why);
        }
    }
    /* Each tracked region is mapped block by block while plugged, after its guard opened it. */
    for (unsigned i = 0; i < map->nr_regions; i++) {
        struct mm_tracker *t = map->regions[i].tracker;
        if (!t)
            continue;
        char why[256];
        if (vfio_dma_listener_start(&v->dma[v->nr_dma], v->iommu, t, why, sizeof(why)) < 0)
            return errf(err, errlen, "--vfio: %s: %s", map->regions[i].name, why);
        v->nr_dma++;
    }
    debug("vfio: %u mappings of boot RAM (%s); %u virtio-mem regions mapped while plugged; up to "
          "%llu bytes pinned",
          (unsigned)v->iommu->mappings, v->iommu->ops->name, v->nr_dma, (unsigned long long)worst);
    return 0;
}

int vfio_create_devices(struct vfio *v, const struct dev_host *h, struct pci_host *pci, char *err,
                        size_t errlen)
{
    v->dev.name = "vfio-iommu";
    v->dev.ops = &vfio_iommu_dev_ops;
    dev_host_add_device(h, &v->dev);
    for (unsigned i = 0; i < v->nr; i++) {
        v->devices[i] = vfio_pci_create(h, pci, v->iommu, v->device_fd[i], v->opts[i].id,
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
    if (v->iommu)
        vfio_iommu_close(v->iommu);
    v->iommu = NULL;
}
