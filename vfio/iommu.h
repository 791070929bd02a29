/*
 * iommu.h - the one interface minivmm's VFIO code has to the kernel's IOMMU
 * side: the legacy type1 container (vfio/type1.h: /dev/vfio/vfio and the
 * groups) or an iommufd IOAS (vfio/iommufd.h: /dev/iommu and the devices'
 * cdevs).  Everything above it - the start-up checks, boot RAM's mappings,
 * the DMA listeners that follow virtio-mem, the KVM VFIO device and status -
 * is the same code for both (virtio-mem-and-vfio.md §5).
 *
 * A backend embeds struct vfio_iommu and fills in its ops, its limits (read
 * from the kernel as devices are attached) and the files KVM's VFIO device
 * must be given.  The functions below are the only way in: they count the
 * mappings minivmm made (under the lock, so callable from any thread).
 *
 * Order of calls, main thread unless said otherwise:
 *   1. vfio_type1_open() or vfio_iommufd_open(), at start-up before KVM.
 *   2. vfio_iommu_add_device() for each device: it joins the VM's one
 *      address space (type1: its group joins the container; iommufd: its
 *      cdev is bound and attached to the IOAS) and its VFIO device fd comes
 *      back.  The backend owns that fd and closes it in vfio_iommu_close();
 *      limits may change after each call (the IOVA ranges are those every
 *      attached device allows).
 *   3. vfio_iommu_map() / vfio_iommu_unmap(): boot RAM once at start-up;
 *      virtio-mem blocks while plugged, from the DMA listeners (the thread
 *      that plugs, holding the tracker's lock).  IOVA == guest-physical.
 *   4. vfio_iommu_attach_kvm() on every new KVM VM fd (every boot).  The
 *      devices were bound before any KVM VM existed, so a VFIO driver sees
 *      no KVM at bind time; vfio-pci needs none (only s390's zPCI does).
 *   5. vfio_iommu_status() from the control socket.
 *   6. vfio_iommu_close() at exit: the kernel drops every mapping and pin.
 */
#ifndef MINIVMM_VFIO_IOMMU_H
#define MINIVMM_VFIO_IOMMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json;

#define VFIO_MAX_IOVA_RANGES 16
#define VFIO_MAX_KVM_FILES   16

struct vfio_iova_span {
    uint64_t start, end; /* inclusive */
};

/* What the IOMMU allows. */
struct vfio_iommu_limits {
    uint64_t min_page; /* smallest IOMMU page: sizes and addresses are multiples of it */
    struct vfio_iova_span ranges[VFIO_MAX_IOVA_RANGES];
    unsigned nr_ranges;    /* 0: the kernel reported none (no limit known) */
    uint64_t max_mappings; /* mappings the backend allows (type1: DMA_AVAIL); 0: no limit */
    /*
     * How the kernel charges pinned memory to RLIMIT_MEMLOCK: per process
     * (type1; iommufd in "mm" mode) or per user, summed over every process
     * of the user that pins (iommufd's default).  With CAP_IPC_LOCK the
     * limit is not checked either way (type1 still counts VmLck, iommufd
     * VmPin).
     */
    bool memlock_per_user;
};

struct vfio_iommu;

/* vfio_iommu_unmap() flags. */
#define VFIO_UNMAP_RETRY 1u /* a failed unmap over this range came first */

/* How a backend reaches the kernel: ioctl(2), or a fake kernel in the unit tests. */
typedef int (*vfio_ioctl_fn)(int fd, unsigned long request, void *arg);

struct vfio_iommu_ops {
    const char *name;         /* "type1", "iommufd": for status and messages */
    const char *pinned_field; /* the /proc/PID/status field the kernel counts pins in */
    /* Make bdf (in IOMMU group `group`) part of the address space.  Its device fd, or -1 with err.
     */
    int (*add_device)(struct vfio_iommu *io, const char *bdf, int group, char *err, size_t errlen);
    /* Map [iova, iova + size) to hva, read and write, as one mapping.  0, or -1 with err and errno.
     */
    int (*map)(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *hva, char *err,
               size_t errlen);
    /*
     * Unmap [iova, iova + size), which the caller mapped as exactly nr whole
     * mappings.  0: nothing of the range is mapped any more.  -1 with err and
     * errno: some of it may still be.  A failed unmap may have removed part
     * of the range (iommufd stops at the first problem; type1 refuses
     * atomically, but fails here too when it unmapped fewer bytes than
     * asked).  flags VFIO_UNMAP_RETRY: such a failed unmap over this range
     * came first; then, for one whole mapping (nr == 1), finding nothing is
     * success - it went in that call - and only then.
     */
    int (*unmap)(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t nr, unsigned flags,
                 char *err, size_t errlen);
    /* Status fields of this backend only (optional). */
    void (*status)(struct vfio_iommu *io, struct json *j);
    void (*close)(struct vfio_iommu *io);
};

struct vfio_iommu {
    const struct vfio_iommu_ops *ops;
    vfio_ioctl_fn ioctl;
    struct vfio_iommu_limits limits;
    int kvm_files[VFIO_MAX_KVM_FILES]; /* groups (type1) or device fds (iommufd), owned by the
                                          backend */
    unsigned nr_kvm_files;
    int kvm_dev_fd; /* the KVM VFIO device of the current boot, or -1 */

    pthread_mutex_t lock;  /* the counters */
    uint64_t mappings;     /* mappings minivmm holds */
    uint64_t mapped_bytes; /* bytes they cover */
};

/* For backends: set up the common part (no mappings, no KVM device); kernel NULL: ioctl(2). */
void vfio_iommu_init(struct vfio_iommu *io, const struct vfio_iommu_ops *ops, vfio_ioctl_fn kernel);

int vfio_iommu_add_device(struct vfio_iommu *io, const char *bdf, int group, char *err,
                          size_t errlen);

/* Is [iova, iova + size) inside one of the IOVA ranges (or are none known)? */
bool vfio_iova_ok(const struct vfio_iommu_limits *l, uint64_t iova, uint64_t size);

/* The backend's map and unmap (see struct vfio_iommu_ops), counted. */
int vfio_iommu_map(struct vfio_iommu *io, uint64_t iova, uint64_t size, void *hva, char *err,
                   size_t errlen);
int vfio_iommu_unmap(struct vfio_iommu *io, uint64_t iova, uint64_t size, uint64_t nr,
                     unsigned flags, char *err, size_t errlen);

/* Create the KVM VFIO device on vm_fd (closing the previous boot's) and add every file. */
int vfio_iommu_attach_kvm(struct vfio_iommu *io, int vm_fd, char *err, size_t errlen);

/*
 * Bytes this process has pinned as the kernel counts them (the backend's
 * pinned_field of /proc/self/status); false if it cannot be read.
 */
bool vfio_iommu_pinned_bytes(const struct vfio_iommu *io, uint64_t *bytes);

/*
 * The status fields: "iommu", "dma_mappings", "dma_mapped_bytes",
 * "pinned_bytes" with "pinned_counter", then the backend's own.
 */
void vfio_iommu_status(struct vfio_iommu *io, struct json *j);

void vfio_iommu_close(struct vfio_iommu *io);

/*
 * For backends: open the device node path (a group or a cdev) of bdf read
 * and write.  The fd, or -1 with a one-line reason and fix in err.
 */
int vfio_open_node(const char *path, const char *bdf, char *err, size_t errlen);

/* "0x0-0xfedfffff, 0xfef00000-0x7fffffffff" */
const char *vfio_iova_ranges_text(const struct vfio_iommu_limits *l, char *buf, size_t len);

#endif
