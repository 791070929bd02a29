/* type1.c - the type1v2 VFIO container as an IOMMU backend; see type1.h. */
#include "vfio/type1.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio/dma_limits.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define VFIO_DIR            "/dev/vfio"
#define VFIO_CONTAINER_PATH VFIO_DIR "/vfio"

struct vfio_group {
    int number;
    int fd;
};

struct vfio_type1 {
    struct vfio_iommu iommu;
    int fd; /* the container */
    struct vfio_group groups[VFIO_MAX_GROUPS];
    unsigned nr_groups;
    int device_fds[VFIO_MAX_KVM_FILES]; /* handed out by add_device, closed at close */
    unsigned nr_devices;
};

static struct vfio_type1 *type1_of(struct vfio_iommu *io)
{
    return container_of(io, struct vfio_type1, iommu);
}

/*
 * VFIO_IOMMU_GET_INFO with its capability chain: page sizes, IOVA ranges
 * and DMA_AVAIL into *l (what is not reported is left as it was).
 */
static void read_iommu_info(struct vfio_type1 *t, struct vfio_iommu_limits *l, bool *have_avail,
                            uint32_t *avail)
{
    *have_avail = false;
    struct vfio_iommu_type1_info probe = {.argsz = sizeof(probe)};
    if (t->iommu.ioctl(t->fd, VFIO_IOMMU_GET_INFO, &probe) < 0)
        return;
    if (probe.iova_pgsizes)
        l->min_page = probe.iova_pgsizes & -probe.iova_pgsizes;
    if (probe.argsz <= sizeof(probe) || probe.argsz > 1 << 20)
        return;
    struct vfio_iommu_type1_info *info = xzalloc(probe.argsz);
    info->argsz = probe.argsz;
    if (t->iommu.ioctl(t->fd, VFIO_IOMMU_GET_INFO, info) < 0 ||
        !(info->flags & VFIO_IOMMU_INFO_CAPS)) {
        free(info);
        return;
    }
    uint32_t off = info->cap_offset;
    unsigned hops = 0;
    while (off && off + sizeof(struct vfio_info_cap_header) <= info->argsz && hops++ < 64) {
        const struct vfio_info_cap_header *h = (const void *)((const char *)info + off);
        if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
            off + sizeof(struct vfio_iommu_type1_info_cap_iova_range) <= info->argsz) {
            const struct vfio_iommu_type1_info_cap_iova_range *r = (const void *)h;
            uint32_t n = r->nr_iovas;
            if (off + sizeof(*r) + (uint64_t)n * sizeof(r->iova_ranges[0]) <= info->argsz) {
                l->nr_ranges = 0;
                for (uint32_t i = 0; i < n && l->nr_ranges < VFIO_MAX_IOVA_RANGES; i++)
                    l->ranges[l->nr_ranges++] =
                        (struct vfio_iova_span){r->iova_ranges[i].start, r->iova_ranges[i].end};
            }
        } else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
                   off + sizeof(struct vfio_iommu_type1_info_dma_avail) <= info->argsz) {
            *have_avail = true;
            *avail = ((const struct vfio_iommu_type1_info_dma_avail *)h)->avail;
        }
        if (h->next <= off)
            break; /* the chain only moves forward */
        off = h->next;
    }
    free(info);
}

/* The group's fd, opened, checked and attached to the container if it is new.  -1 with err. */
static int type1_group(struct vfio_type1 *t, int group, const char *bdf, char *err, size_t errlen)
{
    for (unsigned i = 0; i < t->nr_groups; i++)
        if (t->groups[i].number == group)
            return t->groups[i].fd;
    if (t->nr_groups == VFIO_MAX_GROUPS)
        return errf(err, errlen, "--vfio %s: more than %d IOMMU groups", bdf, VFIO_MAX_GROUPS);
    char path[64];
    snprintf(path, sizeof(path), "%s/%d", VFIO_DIR, group);
    int fd = vfio_open_node(path, bdf, err, errlen);
    if (fd < 0)
        return -1;
    struct vfio_group_status st = {.argsz = sizeof(st)};
    if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st) < 0) {
        close(fd);
        return errf(err, errlen, "--vfio %s: VFIO_GROUP_GET_STATUS on %s: %s", bdf, path,
                    strerror(errno));
    }
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        close(fd);
        return errf(err, errlen,
                    "--vfio %s: IOMMU group %d is not viable: bind every device in "
                    "/sys/kernel/iommu_groups/%d/devices to vfio-pci or unbind it",
                    bdf, group, group);
    }
    if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &t->fd) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, "--vfio %s: VFIO_GROUP_SET_CONTAINER for group %d: %s", bdf, group,
                    strerror(e));
    }
    /* VFIO_SET_IOMMU needs one attached group. */
    if (t->nr_groups == 0 && ioctl(t->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, "--vfio %s: VFIO_SET_IOMMU (type1v2): %s", bdf, strerror(e));
    }
    /* Each group may narrow the IOVA ranges. */
    bool have_avail;
    uint32_t avail = 0;
    read_iommu_info(t, &t->iommu.limits, &have_avail, &avail);
    t->iommu.limits.max_mappings = have_avail ? avail : VFIO_DMA_DEFAULT_LIMIT;
    t->groups[t->nr_groups++] = (struct vfio_group){group, fd};
    t->iommu.kvm_files[t->iommu.nr_kvm_files++] = fd;
    return fd;
}

static int type1_add_device(struct vfio_iommu *io, const char *bdf, int group, char *err,
                            size_t errlen)
{
    struct vfio_type1 *t = type1_of(io);
    int gfd = type1_group(t, group, bdf, err, errlen);
    if (gfd < 0)
        return -1;
    if (t->nr_devices == VFIO_MAX_KVM_FILES)
        return errf(err, errlen, "--vfio %s: more than %d devices", bdf, VFIO_MAX_KVM_FILES);
    int fd = ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, bdf);
    if (fd < 0)
        return errf(err, errlen, "--vfio %s: VFIO_GROUP_GET_DEVICE_FD: %s%s", bdf, strerror(errno),
                    errno == EBUSY ? " (the device is already in use, by another VMM?)" : "");
    t->device_fds[t->nr_devices++] = fd;
    return fd;
}

static int type1_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *hva, char *err,
                     size_t errlen)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uint64_t)(uintptr_t)hva,
        .iova = iova,
        .size = size,
    };
    if (io->ioctl(type1_of(io)->fd, VFIO_IOMMU_MAP_DMA, &map) == 0)
        return 0;
    int e = errno;
    char sz[32];
    format_size(size, sz, sizeof(sz));
    if (e == ENOMEM)
        errf(err, errlen,
             "VFIO cannot pin %s at %#llx: the locked-memory limit is used up or memory is "
             "short; raise RLIMIT_MEMLOCK (ulimit -l, or prlimit --memlock on the running "
             "minivmm)",
             sz, (unsigned long long)iova);
    else if (e == ENOSPC)
        errf(err, errlen,
             "VFIO cannot map %s at %#llx: the IOMMU's mapping entries are used up (raise "
             "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit and restart minivmm, "
             "or use a larger block-size, or iommu=iommufd)",
             sz, (unsigned long long)iova);
    else
        errf(err, errlen, "VFIO_IOMMU_MAP_DMA of %s at %#llx: %s", sz, (unsigned long long)iova,
             strerror(e));
    errno = e;
    return -1;
}

static int type1_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t nr,
                       unsigned flags, char *err, size_t errlen)
{
    struct vfio_iommu_type1_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .iova = iova,
        .size = size,
    };
    if (io->ioctl(type1_of(io)->fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
        int e = errno;
        char sz[32];
        errf(err, errlen, "VFIO_IOMMU_UNMAP_DMA of %s at %#llx: %s",
             format_size(size, sz, sizeof(sz)), (unsigned long long)iova, strerror(e));
        errno = e;
        return -1;
    }
    /* Nothing there: one whole mapping of ours that an earlier short unmap took already. */
    if (unmap.size == 0 && nr == 1 && (flags & VFIO_UNMAP_RETRY))
        return 0;
    if (unmap.size != size) {
        /* Someone else's idea of the mappings differs from ours: say so, trust nothing. */
        errno = EIO;
        return errf(err, errlen,
                    "VFIO_IOMMU_UNMAP_DMA at %#llx unmapped %llu of the %llu bytes minivmm mapped",
                    (unsigned long long)iova, (unsigned long long)unmap.size,
                    (unsigned long long)size);
    }
    return 0;
}

static void type1_status(struct vfio_iommu *io, struct json *j)
{
    struct vfio_iommu_limits now = {0};
    bool have;
    uint32_t avail = 0;
    read_iommu_info(type1_of(io), &now, &have, &avail); /* as the kernel counts it, now */
    if (have)
        json_kv_u64(j, "dma_avail", avail);
}

static void type1_close(struct vfio_iommu *io)
{
    struct vfio_type1 *t = type1_of(io);
    for (unsigned i = 0; i < t->nr_devices; i++)
        close(t->device_fds[i]);
    for (unsigned i = 0; i < t->nr_groups; i++)
        close(t->groups[i].fd);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static const struct vfio_iommu_ops type1_ops = {
    .name = "type1",
    .pinned_field = "VmLck", /* mm->locked_vm */
    .add_device = type1_add_device,
    .map = type1_map,
    .unmap = type1_unmap,
    .status = type1_status,
    .close = type1_close,
};

struct vfio_iommu *vfio_type1_new(int fd, vfio_ioctl_fn kernel)
{
    struct vfio_type1 *t = xzalloc(sizeof(*t));
    vfio_iommu_init(&t->iommu, &type1_ops, kernel);
    t->iommu.limits.max_mappings = VFIO_DMA_DEFAULT_LIMIT;
    t->fd = fd;
    return &t->iommu;
}

int vfio_type1_open(struct vfio_iommu **out, char *err, size_t errlen)
{
    int fd = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return errf(err, errlen,
                        "--vfio: %s does not exist: load the VFIO modules (modprobe vfio-pci "
                        "vfio_iommu_type1)",
                        VFIO_CONTAINER_PATH);
        return errf(err, errlen, "--vfio: cannot open %s: %s%s", VFIO_CONTAINER_PATH, strerror(e),
                    e == EACCES ? "; give this user access to it (it is normally mode 0666)" : "");
    }
    struct vfio_type1 *t = type1_of(vfio_type1_new(fd, NULL));
    int api = ioctl(t->fd, VFIO_GET_API_VERSION);
    if (api != VFIO_API_VERSION) {
        vfio_iommu_close(&t->iommu);
        return errf(err, errlen, "--vfio: %s speaks VFIO API %d, minivmm needs %d",
                    VFIO_CONTAINER_PATH, api, VFIO_API_VERSION);
    }
    if (ioctl(t->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
        vfio_iommu_close(&t->iommu);
        return errf(err, errlen,
                    "--vfio: this host's VFIO has no type1v2 IOMMU backend: load "
                    "vfio_iommu_type1 (modprobe vfio_iommu_type1)");
    }
    *out = &t->iommu;
    return 0;
}
