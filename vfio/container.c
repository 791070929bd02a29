/* container.c - the type1v2 VFIO container and the KVM VFIO device; see container.h. */
#include "vfio/container.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/util.h"

#define VFIO_CONTAINER_PATH "/dev/vfio/vfio"

int vfio_container_open(struct vfio_container *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->kvm_dev_fd = -1;
    if (!c->dev_dir)
        c->dev_dir = "/dev/vfio";
    pthread_mutex_init(&c->lock, NULL);
    c->fd = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
    if (c->fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return errf(err, errlen,
                        "--vfio: %s does not exist: load the VFIO modules (modprobe vfio-pci "
                        "vfio_iommu_type1)",
                        VFIO_CONTAINER_PATH);
        return errf(err, errlen, "--vfio: cannot open %s: %s%s", VFIO_CONTAINER_PATH, strerror(e),
                    e == EACCES ? "; give this user access to it (it is normally mode 0666)" : "");
    }
    int api = ioctl(c->fd, VFIO_GET_API_VERSION);
    if (api != VFIO_API_VERSION)
        return errf(err, errlen, "--vfio: %s speaks VFIO API %d, minivmm needs %d",
                    VFIO_CONTAINER_PATH, api, VFIO_API_VERSION);
    if (ioctl(c->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
        return errf(err, errlen,
                    "--vfio: this host's VFIO has no type1v2 IOMMU backend: load "
                    "vfio_iommu_type1 (modprobe vfio_iommu_type1)");
    return 0;
}

/* VFIO_IOMMU_GET_INFO with its capability chain. */
static void read_iommu_info(struct vfio_container *c)
{
    c->nr_ranges = 0;
    c->have_dma_avail = false;
    struct vfio_iommu_type1_info probe = {.argsz = sizeof(probe)};
    if (ioctl(c->fd, VFIO_IOMMU_GET_INFO, &probe) < 0)
        return;
    c->iova_pgsizes = probe.iova_pgsizes;
    if (probe.argsz <= sizeof(probe) || probe.argsz > 1 << 20)
        return;
    struct vfio_iommu_type1_info *info = xzalloc(probe.argsz);
    info->argsz = probe.argsz;
    if (ioctl(c->fd, VFIO_IOMMU_GET_INFO, info) < 0 || !(info->flags & VFIO_IOMMU_INFO_CAPS)) {
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
                for (uint32_t i = 0; i < n && c->nr_ranges < VFIO_MAX_IOVA_RANGES; i++)
                    c->ranges[c->nr_ranges++] =
                        (struct vfio_iova_span){r->iova_ranges[i].start, r->iova_ranges[i].end};
            }
        } else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
                   off + sizeof(struct vfio_iommu_type1_info_dma_avail) <= info->argsz) {
            c->have_dma_avail = true;
            c->dma_avail = ((const struct vfio_iommu_type1_info_dma_avail *)h)->avail;
        }
        if (h->next <= off)
            break; /* the chain only moves forward */
        off = h->next;
    }
    free(info);
}

int vfio_container_add_group(struct vfio_container *c, int group, const char *bdf, char *err,
                             size_t errlen)
{
    for (unsigned i = 0; i < c->nr_groups; i++)
        if (c->groups[i].number == group)
            return (int)i;
    if (c->nr_groups == VFIO_MAX_GROUPS)
        return errf(err, errlen, "--vfio %s: more than %d IOMMU groups", bdf, VFIO_MAX_GROUPS);
    char path[64];
    snprintf(path, sizeof(path), "%s/%d", c->dev_dir, group);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            return errf(err, errlen,
                        "--vfio %s: no permission to open %s: run as root or give this user the "
                        "group's device (chown USER %s)",
                        bdf, path, path);
        if (e == EBUSY)
            return errf(err, errlen,
                        "--vfio %s: IOMMU group %d (%s) is in use by another process (another "
                        "VMM?); stop it first",
                        bdf, group, path);
        return errf(err, errlen, "--vfio %s: cannot open %s: %s", bdf, path, strerror(e));
    }
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
    if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, "--vfio %s: VFIO_GROUP_SET_CONTAINER for group %d: %s", bdf, group,
                    strerror(e));
    }
    if (c->nr_groups == 0) {
        if (ioctl(c->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
            int e = errno;
            close(fd);
            return errf(err, errlen, "--vfio %s: VFIO_SET_IOMMU (type1v2): %s", bdf, strerror(e));
        }
        read_iommu_info(c);
    }
    c->groups[c->nr_groups] = (struct vfio_group){group, fd};
    return (int)c->nr_groups++;
}

int vfio_container_device_fd(struct vfio_container *c, unsigned index, const char *bdf, char *err,
                             size_t errlen)
{
    int fd = ioctl(c->groups[index].fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
    if (fd < 0)
        return errf(err, errlen, "--vfio %s: VFIO_GROUP_GET_DEVICE_FD: %s%s", bdf, strerror(errno),
                    errno == EBUSY ? " (the device is already in use, by another VMM?)" : "");
    return fd;
}

bool vfio_iova_ok(const struct vfio_container *c, uint64_t iova, uint64_t size)
{
    if (c->nr_ranges == 0)
        return true;
    uint64_t last = iova + size - 1;
    for (unsigned i = 0; i < c->nr_ranges; i++)
        if (iova >= c->ranges[i].start && last <= c->ranges[i].end && last >= iova)
            return true;
    return false;
}

int vfio_dma_map(struct vfio_container *c, uint64_t iova, uint64_t size, void *hva, char *err,
                 size_t errlen)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uint64_t)(uintptr_t)hva,
        .iova = iova,
        .size = size,
    };
    if (ioctl(c->fd, VFIO_IOMMU_MAP_DMA, &map) < 0) {
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
                 "or use a larger block-size)",
                 sz, (unsigned long long)iova);
        else
            errf(err, errlen, "VFIO_IOMMU_MAP_DMA of %s at %#llx: %s", sz, (unsigned long long)iova,
                 strerror(e));
        errno = e;
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    c->mappings++;
    c->mapped_bytes += size;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int vfio_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size, uint64_t nr, char *err,
                   size_t errlen)
{
    struct vfio_iommu_type1_dma_unmap unmap = {
        .argsz = sizeof(unmap),
        .iova = iova,
        .size = size,
    };
    if (ioctl(c->fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) {
        int e = errno;
        char sz[32];
        errf(err, errlen, "VFIO_IOMMU_UNMAP_DMA of %s at %#llx: %s",
             format_size(size, sz, sizeof(sz)), (unsigned long long)iova, strerror(e));
        errno = e;
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    /* type1 reports the bytes it unmapped: whole mappings only, all or nothing. */
    c->mapped_bytes -= unmap.size <= c->mapped_bytes ? unmap.size : c->mapped_bytes;
    /* Whole mappings of equal size (blocks): a short answer removed fewer of them. */
    uint64_t gone = unmap.size == size ? nr : (nr && size / nr ? unmap.size / (size / nr) : 0);
    c->mappings -= gone <= c->mappings ? gone : c->mappings;
    pthread_mutex_unlock(&c->lock);
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

static int backend_map(void *ctx, uint64_t iova, uint64_t size, void *hva, char *err, size_t errlen)
{
    return vfio_dma_map(ctx, iova, size, hva, err, errlen);
}

static int backend_unmap(void *ctx, uint64_t iova, uint64_t size, uint64_t nr, char *err,
                         size_t errlen)
{
    return vfio_dma_unmap(ctx, iova, size, nr, err, errlen);
}

struct vfio_dma_backend vfio_container_backend(struct vfio_container *c)
{
    return (struct vfio_dma_backend){.map = backend_map, .unmap = backend_unmap, .ctx = c};
}

bool vfio_container_read_dma_avail(struct vfio_container *c, uint32_t *avail)
{
    /* On a copy: what start-up read (ranges, page sizes) stays as it was. */
    struct vfio_container now = {.fd = c->fd};
    read_iommu_info(&now);
    *avail = now.dma_avail;
    return now.have_dma_avail;
}

int vfio_container_attach_kvm(struct vfio_container *c, int vm_fd, char *err, size_t errlen)
{
    struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};
    if (ioctl(vm_fd, KVM_CREATE_DEVICE, &cd) < 0)
        return errf(err, errlen,
                    "KVM_CREATE_DEVICE (VFIO): %s; the host's KVM needs CONFIG_KVM_VFIO",
                    strerror(errno));
    c->kvm_dev_fd = (int)cd.fd;
    for (unsigned i = 0; i < c->nr_groups; i++) {
        int32_t gfd = c->groups[i].fd;
        struct kvm_device_attr attr = {
            .group = KVM_DEV_VFIO_GROUP,
            .attr = KVM_DEV_VFIO_GROUP_ADD,
            .addr = (uint64_t)(uintptr_t)&gfd,
        };
        if (ioctl(c->kvm_dev_fd, KVM_SET_DEVICE_ATTR, &attr) < 0)
            return errf(err, errlen, "KVM VFIO device: adding group %d: %s", c->groups[i].number,
                        strerror(errno));
    }
    return 0;
}

void vfio_container_close(struct vfio_container *c)
{
    if (c->kvm_dev_fd >= 0)
        close(c->kvm_dev_fd);
    for (unsigned i = 0; i < c->nr_groups; i++)
        close(c->groups[i].fd);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->nr_groups = 0;
    pthread_mutex_destroy(&c->lock);
}
