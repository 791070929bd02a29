/* iommufd.c - an iommufd IOAS and VFIO device cdevs as an IOMMU backend; see iommufd.h. */
#include "vfio/iommufd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio/iommufd_uapi.h"
#include "vfio/sysfs.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define IOMMUFD_PATH    "/dev/iommu"
#define VFIO_CDEV_DIR   "/dev/vfio/devices"
#define IOMMUFD_DEVICES 16

struct vfio_iommufd {
    struct vfio_iommu iommu;
    int fd; /* /dev/iommu */
    uint32_t ioas_id;
    const char *sysfs;
    struct {
        int fd;
        uint32_t devid;
    } devices[IOMMUFD_DEVICES];
    unsigned nr_devices;
};

static struct vfio_iommufd *iommufd_of(struct vfio_iommu *io)
{
    return container_of(io, struct vfio_iommufd, iommu);
}

/* IOMMU_IOAS_IOVA_RANGES into the limits: the ranges every attached device allows. */
static int read_ranges(struct vfio_iommufd *f, char *err, size_t errlen)
{
    struct iommu_iova_range r[VFIO_MAX_IOVA_RANGES];
    struct iommu_ioas_iova_ranges q = {
        .size = sizeof(q),
        .ioas_id = f->ioas_id,
        .num_iovas = VFIO_MAX_IOVA_RANGES,
        .allowed_iovas = (uint64_t)(uintptr_t)r,
    };
    if (f->iommu.ioctl(f->fd, IOMMU_IOAS_IOVA_RANGES, &q) < 0 && errno != EMSGSIZE)
        return errf(err, errlen, "IOMMU_IOAS_IOVA_RANGES: %s", strerror(errno));
    /* EMSGSIZE: more than we keep; the first VFIO_MAX_IOVA_RANGES are filled in. */
    if (q.num_iovas > VFIO_MAX_IOVA_RANGES)
        warn("iommufd reports %u IOVA ranges; minivmm uses the first %d", q.num_iovas,
             VFIO_MAX_IOVA_RANGES);
    struct vfio_iommu_limits *l = &f->iommu.limits;
    l->nr_ranges = 0;
    for (uint32_t i = 0; i < q.num_iovas && i < VFIO_MAX_IOVA_RANGES; i++)
        l->ranges[l->nr_ranges++] = (struct vfio_iova_span){r[i].start, r[i].last};
    if (q.out_iova_alignment)
        l->min_page = q.out_iova_alignment;
    return 0;
}

static int iommufd_add_device(struct vfio_iommu *io, const char *bdf, int group, char *err,
                              size_t errlen)
{
    (void)group; /* iommufd works on devices; vfio-pci checked the group's viability */
    struct vfio_iommufd *f = iommufd_of(io);
    char name[32], path[64];
    if (f->nr_devices == IOMMUFD_DEVICES)
        return errf(err, errlen, "--vfio %s: more than %d devices", bdf, IOMMUFD_DEVICES);
    if (vfio_sysfs_cdev(f->sysfs, bdf, name, sizeof(name)) < 0)
        return errf(err, errlen,
                    "--vfio %s,iommu=iommufd: vfio-pci gives the device no cdev (%s/bus/pci/"
                    "devices/%s/vfio-dev/ is missing): the host kernel lacks "
                    "CONFIG_VFIO_DEVICE_CDEV; use iommu=type1",
                    bdf, f->sysfs, bdf);
    snprintf(path, sizeof(path), "%s/%s", VFIO_CDEV_DIR, name);
    int fd = vfio_open_node(path, bdf, err, errlen);
    if (fd < 0)
        return -1;
    struct vfio_device_bind_iommufd bind = {.argsz = sizeof(bind), .iommufd = f->fd};
    if (io->ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
        int e = errno;
        close(fd);
        const char *hint = "";
        if (e == EBUSY)
            hint = " (its group is in use through /dev/vfio, by another VMM?)";
        else if (e == EINVAL)
            hint = " (the device is open already, by another VMM?)";
        else if (e == EPERM)
            hint = " (this IOMMU cannot isolate the device's MSIs; iommufd then refuses unless "
                   "loaded with allow_unsafe_interrupts=1; or use iommu=type1)";
        return errf(err, errlen, "--vfio %s: VFIO_DEVICE_BIND_IOMMUFD on %s: %s%s", bdf, path,
                    strerror(e), hint);
    }
    struct vfio_device_attach_iommufd_pt attach = {.argsz = sizeof(attach), .pt_id = f->ioas_id};
    if (io->ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, "--vfio %s: VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u: %s", bdf,
                    f->ioas_id, strerror(e));
    }
    f->devices[f->nr_devices].fd = fd;
    f->devices[f->nr_devices++].devid = bind.out_devid;
    f->iommu.kvm_files[f->iommu.nr_kvm_files++] = fd;
    char why[128];
    if (read_ranges(f, why, sizeof(why)) < 0)
        return errf(err, errlen, "--vfio %s: %s", bdf, why);
    return fd;
}

static int iommufd_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *hva, char *err,
                       size_t errlen)
{
    struct vfio_iommufd *f = iommufd_of(io);
    struct iommu_ioas_map map = {
        .size = sizeof(map),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
        .ioas_id = f->ioas_id,
        .user_va = (uint64_t)(uintptr_t)hva,
        .length = size,
        .iova = iova,
    };
    if (io->ioctl(f->fd, IOMMU_IOAS_MAP, &map) == 0)
        return 0;
    int e = errno;
    char sz[32];
    format_size(size, sz, sizeof(sz));
    if (e == ENOMEM)
        errf(err, errlen,
             "iommufd cannot pin %s at %#llx: the locked-memory limit is used up%s or memory is "
             "short; raise RLIMIT_MEMLOCK (ulimit -l, or prlimit --memlock on the running "
             "minivmm)",
             sz, (unsigned long long)iova,
             io->limits.memlock_per_user ? " (iommufd counts it per user, over all their processes)"
                                         : "");
    else
        errf(err, errlen, "IOMMU_IOAS_MAP of %s at %#llx: %s", sz, (unsigned long long)iova,
             strerror(e));
    errno = e;
    return -1;
}

static int iommufd_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t nr,
                         unsigned flags, char *err, size_t errlen)
{
    struct vfio_iommufd *f = iommufd_of(io);
    struct iommu_ioas_unmap unmap = {
        .size = sizeof(unmap),
        .ioas_id = f->ioas_id,
        .iova = iova,
        .length = size,
    };
    if (io->ioctl(f->fd, IOMMU_IOAS_UNMAP, &unmap) < 0) {
        int e = errno;
        if (e == ENOENT && nr == 1 && (flags & VFIO_UNMAP_RETRY)) {
            /*
             * The failed unmap before this one took it: one whole mapping of
             * ours cannot be split, so ENOENT means nothing is mapped there.
             */
            debug("iommufd: the mapping at %#llx was gone already", (unsigned long long)iova);
            return 0;
        }
        char sz[32];
        errf(err, errlen, "IOMMU_IOAS_UNMAP of %s at %#llx: %s", format_size(size, sz, sizeof(sz)),
             (unsigned long long)iova, strerror(e));
        errno = e;
        return -1;
    }
    if (unmap.length != size) {
        /* Someone else's idea of the mappings differs from ours: say so, trust nothing. */
        errno = EIO;
        return errf(
            err, errlen, "IOMMU_IOAS_UNMAP at %#llx unmapped %llu of the %llu bytes minivmm mapped",
            (unsigned long long)iova, (unsigned long long)unmap.length, (unsigned long long)size);
    }
    return 0;
}

static void iommufd_status(struct vfio_iommu *io, struct json *j)
{
    json_kv_string(j, "rlimit_mode", io->limits.memlock_per_user ? "user" : "mm");
    json_kv_u64(j, "ioas_id", iommufd_of(io)->ioas_id);
}

static void iommufd_close(struct vfio_iommu *io)
{
    struct vfio_iommufd *f = iommufd_of(io);
    for (unsigned i = 0; i < f->nr_devices; i++)
        close(f->devices[i].fd); /* unbinds the device */
    if (f->fd >= 0)
        close(f->fd); /* frees the IOAS: every mapping and pin goes */
    free(f);
}

static const struct vfio_iommu_ops iommufd_ops = {
    .name = "iommufd",
    .pinned_field = "VmPin", /* mm->pinned_vm */
    .add_device = iommufd_add_device,
    .map = iommufd_map,
    .unmap = iommufd_unmap,
    .status = iommufd_status,
    .close = iommufd_close,
};

struct vfio_iommu *vfio_iommufd_new(int fd, uint32_t ioas_id, const char *sysfs,
                                    vfio_ioctl_fn kernel)
{
    struct vfio_iommufd *f = xzalloc(sizeof(*f));
    vfio_iommu_init(&f->iommu, &iommufd_ops, kernel);
    f->fd = fd;
    f->ioas_id = ioas_id;
    f->sysfs = sysfs;
    /* RLIMIT mode 0 (the default for /dev/iommu): pins are charged to the user, not the process. */
    struct iommu_option opt = {
        .size = sizeof(opt),
        .option_id = IOMMU_OPTION_RLIMIT_MODE,
        .op = IOMMU_OPTION_OP_GET,
    };
    f->iommu.limits.memlock_per_user = f->iommu.ioctl(fd, IOMMU_OPTION, &opt) < 0 || opt.val64 == 0;
    f->iommu.limits.max_mappings = 0; /* iommufd has no entry limit */
    return &f->iommu;
}

int vfio_iommufd_open(struct vfio_iommu **out, const char *sysfs, char *err, size_t errlen)
{
    int fd = open(IOMMUFD_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return errf(err, errlen,
                        "--vfio: iommu=iommufd: this host has no %s: its kernel lacks "
                        "CONFIG_IOMMUFD (or the iommufd module is not loaded: modprobe "
                        "iommufd); use iommu=type1",
                        IOMMUFD_PATH);
        return errf(err, errlen, "--vfio: cannot open %s: %s%s", IOMMUFD_PATH, strerror(e),
                    e == EACCES ? "; run as root or give this user access to it" : "");
    }
    struct iommu_ioas_alloc alloc = {.size = sizeof(alloc)};
    if (ioctl(fd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
        int e = errno;
        close(fd);
        return errf(err, errlen, "--vfio: IOMMU_IOAS_ALLOC on %s: %s", IOMMUFD_PATH, strerror(e));
    }
    *out = vfio_iommufd_new(fd, alloc.out_ioas_id, sysfs, NULL);
    return 0;
}
