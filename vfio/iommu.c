/* iommu.c - what every IOMMU backend shares: counting, KVM's VFIO device, status; see iommu.h. */
#include "vfio/iommu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio/iommufd_uapi.h"
#include "vmm/json.h"
#include "vmm/util.h"

static int real_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

void vfio_iommu_init(struct vfio_iommu *io, const struct vfio_iommu_ops *ops, vfio_ioctl_fn kernel)
{
    memset(io, 0, sizeof(*io));
    io->ops = ops;
    io->ioctl = kernel ? kernel : real_ioctl;
    io->kvm_dev_fd = -1;
    io->limits.min_page = 4096;
    pthread_mutex_init(&io->lock, NULL);
}

int vfio_iommu_add_device(struct vfio_iommu *io, const char *bdf, int group, char *err,
                          size_t errlen)
{
    return io->ops->add_device(io, bdf, group, err, errlen);
}

bool vfio_iova_ok(const struct vfio_iommu_limits *l, uint64_t iova, uint64_t size)
{
    if (l->nr_ranges == 0)
        return true;
    uint64_t last = iova + size - 1;
    for (unsigned i = 0; i < l->nr_ranges; i++)
        if (iova >= l->ranges[i].start && last <= l->ranges[i].end && last >= iova)
            return true;
    return false;
}

int vfio_iommu_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *hva, char *err,
                   size_t errlen)
{
    if (io->ops->map(io, iova, size, hva, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&io->lock);
    io->mappings++;
    io->mapped_bytes += size;
    pthread_mutex_unlock(&io->lock);
    return 0;
}

int vfio_iommu_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t nr,
                     unsigned flags, char *err, size_t errlen)
{
    if (io->ops->unmap(io, iova, size, nr, flags, err, errlen) < 0)
        return -1; /* what may still be mapped stays counted, as the caller keeps it */
    pthread_mutex_lock(&io->lock);
    io->mappings -= nr <= io->mappings ? nr : io->mappings;
    io->mapped_bytes -= size <= io->mapped_bytes ? size : io->mapped_bytes;
    pthread_mutex_unlock(&io->lock);
    return 0;
}

int vfio_iommu_attach_kvm(struct vfio_iommu *io, int vm_fd, char *err, size_t errlen)
{
    if (io->kvm_dev_fd >= 0) {
        close(io->kvm_dev_fd); /* it belonged to the previous boot's VM */
        io->kvm_dev_fd = -1;
    }
    struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};
    if (ioctl(vm_fd, KVM_CREATE_DEVICE, &cd) < 0)
        return errf(err, errlen,
                    "KVM_CREATE_DEVICE (VFIO): %s; the host's KVM needs CONFIG_KVM_VFIO",
                    strerror(errno));
    io->kvm_dev_fd = (int)cd.fd;
    for (unsigned i = 0; i < io->nr_kvm_files; i++) {
        int32_t fd = io->kvm_files[i];
        struct kvm_device_attr attr = {
            .group = KVM_DEV_VFIO_FILE,
            .attr = KVM_DEV_VFIO_FILE_ADD,
            .addr = (uint64_t)(uintptr_t)&fd,
        };
        if (ioctl(io->kvm_dev_fd, KVM_SET_DEVICE_ATTR, &attr) < 0)
            return errf(err, errlen, "KVM VFIO device: adding %s file %u: %s", io->ops->name, i,
                        strerror(errno));
    }
    return 0;
}

bool vfio_iommu_pinned_bytes(const struct vfio_iommu *io, uint64_t *bytes)
{
    unsigned long long kb;
    if (!proc_status_value(io->ops->pinned_field, 10, &kb))
        return false;
    *bytes = (uint64_t)kb * 1024;
    return true;
}

void vfio_iommu_status(struct vfio_iommu *io, struct json *j)
{
    json_kv_string(j, "iommu", io->ops->name);
    pthread_mutex_lock(&io->lock);
    json_kv_u64(j, "dma_mappings", io->mappings);
    json_kv_u64(j, "dma_mapped_bytes", io->mapped_bytes);
    pthread_mutex_unlock(&io->lock);
    uint64_t pinned;
    if (vfio_iommu_pinned_bytes(io, &pinned)) { /* as the kernel counts it, now */
        json_kv_u64(j, "pinned_bytes", pinned);
        json_kv_string(j, "pinned_counter", io->ops->pinned_field);
    }
    if (io->ops->status)
        io->ops->status(io, j);
}

void vfio_iommu_close(struct vfio_iommu *io)
{
    if (io->kvm_dev_fd >= 0)
        close(io->kvm_dev_fd);
    io->kvm_dev_fd = -1;
    pthread_mutex_destroy(&io->lock);
    io->ops->close(io); /* frees io */
}

int vfio_open_node(const char *path, const char *bdf, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == EACCES || e == EPERM)
        return errf(err, errlen,
                    "--vfio %s: no permission to open %s: run as root or give this user the "
                    "device (chown USER %s)",
                    bdf, path, path);
    if (e == EBUSY)
        return errf(err, errlen,
                    "--vfio %s: %s is in use by another process (another VMM?); stop it first", bdf,
                    path);
    return errf(err, errlen, "--vfio %s: cannot open %s: %s", bdf, path, strerror(e));
}

const char *vfio_iova_ranges_text(const struct vfio_iommu_limits *l, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < l->nr_ranges && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%#llx-%#llx", i ? ", " : "",
                                (unsigned long long)l->ranges[i].start,
                                (unsigned long long)l->ranges[i].end);
    return buf;
}
