/*
 * sysfs.h - what the host says about a device to be passed through, checked
 * before anything is opened: the PCI address, the driver, the IOMMU group
 * and whether that group can be used.
 *
 * Pure apart from reading the tree under `sysfs` ("/sys" in minivmm, a fake
 * tree in the unit tests).  Called by the VM at start-up, on the main
 * thread, before KVM is set up.  Every failure is one line that names the
 * device and the exact commands that fix it.
 */
#ifndef MINIVMM_VFIO_SYSFS_H
#define MINIVMM_VFIO_SYSFS_H

#include <stddef.h>

/* "0000:01:00.0" plus NUL. */
#define VFIO_BDF_LEN 13

/*
 * Parse a PCI address "DDDD:BB:DD.F" or "BB:DD.F" (hex; domain 0 when
 * omitted) into its canonical form "dddd:bb:dd.f" (lower case).  Returns 0,
 * or -1 with a one-line reason in err.
 */
int vfio_parse_bdf(const char *s, char out[VFIO_BDF_LEN], char *err, size_t errlen);

/*
 * Check the device bdf (canonical) under sysfs: it exists, is bound to
 * vfio-pci, has an IOMMU group, and every device of the group is bound to
 * vfio-pci (or pci-stub) or to no driver.  Stores the group number.
 * Returns 0, or -1 with a one-line reason and fix in err.
 */
int vfio_sysfs_check(const char *sysfs, const char *bdf, int *group, char *err, size_t errlen);

/*
 * The name of the device's VFIO cdev ("vfio0": /dev/vfio/devices/vfio0),
 * from sysfs/bus/pci/devices/BDF/vfio-dev/ (a kernel with
 * CONFIG_VFIO_DEVICE_CDEV and the device bound to vfio-pci).  0, or -1 if
 * there is none.
 */
int vfio_sysfs_cdev(const char *sysfs, const char *bdf, char *name, size_t len);

#endif
