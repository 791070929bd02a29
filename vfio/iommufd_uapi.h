/*
 * iommufd_uapi.h - the kernel interfaces of iommufd and VFIO device cdevs
 * (Linux 6.6+) that older uapi headers lack: Debian 12's linux-libc-dev
 * (6.1) has no <linux/iommufd.h>, no VFIO_DEVICE_BIND_IOMMUFD and no
 * KVM_DEV_VFIO_FILE.  Where the build host's headers have them they are
 * used; otherwise the definitions below, copied by value from the kernel's
 * include/uapi/linux/{iommufd,vfio,kvm}.h (6.12), stand in.
 * tests/unit/test_iommufd_uapi.c checks every number, size and offset here
 * against the kernel's values (it defines MINIVMM_OWN_IOMMUFD_UAPI, so that
 * the iommufd part below is the one checked even where the build host has
 * <linux/iommufd.h>).  Only what minivmm uses is here.
 */
#ifndef MINIVMM_VFIO_IOMMUFD_UAPI_H
#define MINIVMM_VFIO_IOMMUFD_UAPI_H

#include <linux/kvm.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#if __has_include(<linux/iommufd.h>) && !defined(MINIVMM_OWN_IOMMUFD_UAPI)
#include <linux/iommufd.h>
#else
#define IOMMUFD_TYPE           (';')

struct iommu_destroy {
    __u32 size;
    __u32 id;
};
#define IOMMU_DESTROY          _IO(IOMMUFD_TYPE, 0x80)

struct iommu_ioas_alloc {
    __u32 size;
    __u32 flags;
    __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC       _IO(IOMMUFD_TYPE, 0x81)

struct iommu_iova_range {
    __aligned_u64 start;
    __aligned_u64 last; /* inclusive */
};

struct iommu_ioas_iova_ranges {
    __u32 size;
    __u32 ioas_id;
    __u32 num_iovas; /* in: entries at allowed_iovas; out: how many there are */
    __u32 __reserved;
    __aligned_u64 allowed_iovas; /* struct iommu_iova_range[num_iovas] */
    __aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)

enum iommufd_ioas_map_flags {
    IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
    IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
    IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_ioas_map {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __u32 __reserved;
    __aligned_u64 user_va;
    __aligned_u64 length;
    __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP         _IO(IOMMUFD_TYPE, 0x85)

struct iommu_ioas_unmap {
    __u32 size;
    __u32 ioas_id;
    __aligned_u64 iova;
    __aligned_u64 length; /* in: the range; out: bytes unmapped */
};
#define IOMMU_IOAS_UNMAP       _IO(IOMMUFD_TYPE, 0x86)

enum iommufd_option {
    IOMMU_OPTION_RLIMIT_MODE = 0,
    IOMMU_OPTION_HUGE_PAGES = 1,
};

enum iommufd_option_ops {
    IOMMU_OPTION_OP_SET = 0,
    IOMMU_OPTION_OP_GET = 1,
};

struct iommu_option {
    __u32 size;
    __u32 option_id;
    __u16 op;
    __u16 __reserved;
    __u32 object_id;
    __aligned_u64 val64;
};
#define IOMMU_OPTION           _IO(IOMMUFD_TYPE, 0x87)
#endif /* <linux/iommufd.h> */

#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
    __u32 argsz;
    __u32 flags;
    __s32 iommufd;
    __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfio_device_attach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
    __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#endif

/* KVM's VFIO device takes group fds and device cdev fds alike (6.6 renamed GROUP to FILE). */
#ifndef KVM_DEV_VFIO_FILE
#define KVM_DEV_VFIO_FILE     1
#define KVM_DEV_VFIO_FILE_ADD 1
#endif

#endif
