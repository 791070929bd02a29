/*
 * Unit test of vfio/iommufd_uapi.h: every ioctl number, constant, struct
 * size and field offset minivmm uses for iommufd and VFIO cdevs equals the
 * kernel's.  The expected values are the kernel's own, read off
 * include/uapi/linux/iommufd.h, vfio.h and kvm.h of Linux 6.12 (the test
 * host's iommufd kernel, scripts/testbed-host-kernel); they are ABI and do
 * not change between kernel versions.  The test is built with the header's
 * own iommufd definitions even where the build host has <linux/iommufd.h>
 * (MINIVMM_OWN_IOMMUFD_UAPI), so those are the ones checked; the VFIO and
 * KVM parts are checked in whatever form the build uses.
 */
#define MINIVMM_OWN_IOMMUFD_UAPI 1

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vfio/iommufd_uapi.h"

#define EXPECT_OFFSET(type, field, want) assert_int_equal(offsetof(type, field), want)

static void test_ioctl_numbers(void **state)
{
    (void)state;
    /* _IO(';', n): the type in bits 8-15, the number in bits 0-7, no size or direction. */
    assert_int_equal(IOMMUFD_TYPE, 0x3b);
    assert_int_equal(IOMMU_DESTROY, 0x3b80);
    assert_int_equal(IOMMU_IOAS_ALLOC, 0x3b81);
    assert_int_equal(IOMMU_IOAS_IOVA_RANGES, 0x3b84);
    assert_int_equal(IOMMU_IOAS_MAP, 0x3b85);
    assert_int_equal(IOMMU_IOAS_UNMAP, 0x3b86);
    assert_int_equal(IOMMU_OPTION, 0x3b87);
    /* VFIO_BASE (100) + 18 and + 19 */
    assert_int_equal(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
    assert_int_equal(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77);
    /* Their neighbours, from the build host's own <linux/vfio.h>, on the same scale. */
    assert_int_equal(VFIO_DEVICE_FEATURE, 0x3b75);
    assert_int_equal(VFIO_IOMMU_MAP_DMA, 0x3b71);
}

static void test_constants(void **state)
{
    (void)state;
    assert_int_equal(IOMMU_IOAS_MAP_FIXED_IOVA, 1);
    assert_int_equal(IOMMU_IOAS_MAP_WRITEABLE, 2);
    assert_int_equal(IOMMU_IOAS_MAP_READABLE, 4);
    assert_int_equal(IOMMU_OPTION_RLIMIT_MODE, 0);
    assert_int_equal(IOMMU_OPTION_HUGE_PAGES, 1);
    assert_int_equal(IOMMU_OPTION_OP_SET, 0);
    assert_int_equal(IOMMU_OPTION_OP_GET, 1);
    /* KVM's VFIO device: files (groups or cdevs) are added with the same attribute. */
    assert_int_equal(KVM_DEV_VFIO_FILE, 1);
    assert_int_equal(KVM_DEV_VFIO_FILE_ADD, 1);
    assert_int_equal(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_GROUP);
    assert_int_equal(KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_GROUP_ADD);
}

static void test_layouts(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct iommu_destroy), 8);
    EXPECT_OFFSET(struct iommu_destroy, id, 4);

    assert_int_equal(sizeof(struct iommu_ioas_alloc), 12);
    EXPECT_OFFSET(struct iommu_ioas_alloc, flags, 4);
    EXPECT_OFFSET(struct iommu_ioas_alloc, out_ioas_id, 8);

    assert_int_equal(sizeof(struct iommu_iova_range), 16);
    EXPECT_OFFSET(struct iommu_iova_range, last, 8);

    assert_int_equal(sizeof(struct iommu_ioas_iova_ranges), 32);
    EXPECT_OFFSET(struct iommu_ioas_iova_ranges, ioas_id, 4);
    EXPECT_OFFSET(struct iommu_ioas_iova_ranges, num_iovas, 8);
    EXPECT_OFFSET(struct iommu_ioas_iova_ranges, __reserved, 12);
    EXPECT_OFFSET(struct iommu_ioas_iova_ranges, allowed_iovas, 16);
    EXPECT_OFFSET(struct iommu_ioas_iova_ranges, out_iova_alignment, 24);

    assert_int_equal(sizeof(struct iommu_ioas_map), 40);
    EXPECT_OFFSET(struct iommu_ioas_map, flags, 4);
    EXPECT_OFFSET(struct iommu_ioas_map, ioas_id, 8);
    EXPECT_OFFSET(struct iommu_ioas_map, __reserved, 12);
    EXPECT_OFFSET(struct iommu_ioas_map, user_va, 16);
    EXPECT_OFFSET(struct iommu_ioas_map, length, 24);
    EXPECT_OFFSET(struct iommu_ioas_map, iova, 32);

    assert_int_equal(sizeof(struct iommu_ioas_unmap), 24);
    EXPECT_OFFSET(struct iommu_ioas_unmap, ioas_id, 4);
    EXPECT_OFFSET(struct iommu_ioas_unmap, iova, 8);
    EXPECT_OFFSET(struct iommu_ioas_unmap, length, 16);

    assert_int_equal(sizeof(struct iommu_option), 24);
    EXPECT_OFFSET(struct iommu_option, option_id, 4);
    EXPECT_OFFSET(struct iommu_option, op, 8);
    EXPECT_OFFSET(struct iommu_option, __reserved, 10);
    EXPECT_OFFSET(struct iommu_option, object_id, 12);
    EXPECT_OFFSET(struct iommu_option, val64, 16);

    /* The 6.6 layouts; later kernels append fields behind a flag, so argsz = 16 / 12 works. */
    assert_true(sizeof(struct vfio_device_bind_iommufd) >= 16);
    EXPECT_OFFSET(struct vfio_device_bind_iommufd, flags, 4);
    EXPECT_OFFSET(struct vfio_device_bind_iommufd, iommufd, 8);
    EXPECT_OFFSET(struct vfio_device_bind_iommufd, out_devid, 12);
    assert_true(sizeof(struct vfio_device_attach_iommufd_pt) >= 12);
    EXPECT_OFFSET(struct vfio_device_attach_iommufd_pt, flags, 4);
    EXPECT_OFFSET(struct vfio_device_attach_iommufd_pt, pt_id, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ioctl_numbers),
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
