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

static const struct device_ops vfio_container_dev_ops = {.attach = vfio_attach};

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

int vfio_map_ram(struct vfio *v, const struct mm_map *map, bool *user_error, char *err,
                 size_t errlen)
{
    *user_error = true;
    uint64_t pinned = 0;
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (r->type != MM_REGION_RAM)
            continue;
        pinned += r->size;
        if (!vfio_iova_ok(&v->container, r->gpa, r->size))
            return errf(err, errlen,
                        "--vfio: guest RAM at %#llx-%#llx lies outside the IOVA ranges this "
                        "host's IOMMU can map; use a smaller --memory",
                        (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size - 1));
    }
    uint64_t limit;
    if (!vfio_memlock_ok(pinned, &limit)) {
        char have[32], need[32];
        return errf(err, errlen,
                    "RLIMIT_MEMLOCK %s is below the %s of boot RAM that --vfio must pin; raise it "
                    "with ulimit -l %llu (or more), or give minivmm CAP_IPC_LOCK",
                    format_size(limit, have, sizeof(have)), format_size(pinned, need, sizeof(need)),
                    (unsigned long long)((pinned + 1023) / 1024));
    }
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
    debug("vfio: %u mappings, %llu bytes of boot RAM pinned", (unsigned)v->container.mappings,
          (unsigned long long)pinned);
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
