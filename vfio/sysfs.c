/* sysfs.c - checks of a passthrough device in sysfs before it is opened; see sysfs.h. */
#include "vfio/sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/util.h"

static int hex_field(const char **p, unsigned digits_max, unsigned *out)
{
    unsigned v = 0, n = 0;
    while (isxdigit((unsigned char)**p) && n < digits_max) {
        char c = (char)tolower((unsigned char)**p);
        v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
        (*p)++;
        n++;
    }
    if (n == 0 || isxdigit((unsigned char)**p))
        return -1;
    *out = v;
    return 0;
}

int vfio_parse_bdf(const char *s, char out[VFIO_BDF_LEN], char *err, size_t errlen)
{
    unsigned f[4], n = 0;
    const char *p = s;
    /* Up to three ':'-separated hex fields, then '.', then the function. */
    for (;;) {
        if (n == 3 || hex_field(&p, n == 0 ? 4 : 2, &f[n]) < 0)
            goto bad;
        n++;
        if (*p == ':') {
            p++;
            continue;
        }
        break;
    }
    if (*p != '.' || (n != 2 && n != 3))
        goto bad;
    p++;
    if (!isdigit((unsigned char)*p) || p[1] != '\0' || *p > '7')
        goto bad;
    unsigned domain = n == 3 ? f[0] : 0, bus = f[n - 2], dev = f[n - 1], fn = (unsigned)(*p - '0');
    if (bus > 0xff || dev > 0x1f || (n == 2 && f[0] > 0xff))
        goto bad;
    snprintf(out, VFIO_BDF_LEN, "%04x:%02x:%02x.%u", domain, bus, dev, fn);
    return 0;
bad:
    return errf(err, errlen,
                "--vfio %s: not a PCI address; give it as lspci -D prints it, e.g. 0000:01:00.0 "
                "(or 01:00.0)",
                s);
}

/* Basename of the target of a symbolic link dir/name into buf; 0, or -1 if there is no link. */
static int link_name(const char *path, char *buf, size_t len)
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t blen = strlen(base);
    if (blen >= len)
        return -1;
    memcpy(buf, base, blen + 1);
    return 0;
}

static int driver_of(const char *sysfs, const char *bdf, char *buf, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sysfs, bdf);
    return link_name(path, buf, len);
}

#define REBIND_HINT                                                                                \
    "echo %s > /sys/bus/pci/devices/%s/driver/unbind; echo vfio-pci > "                            \
    "/sys/bus/pci/devices/%s/driver_override; echo %s > /sys/bus/pci/drivers_probe"
#define BIND_HINT                                                                                  \
    "modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/%s/driver_override; echo %s > "       \
    "/sys/bus/pci/drivers_probe"

static bool driver_allowed_in_group(const char *drv)
{
    return strcmp(drv, "vfio-pci") == 0 || strcmp(drv, "pci-stub") == 0;
}

int vfio_sysfs_check(const char *sysfs, const char *bdf, int *group, char *err, size_t errlen)
{
    char path[PATH_MAX], drv[NAME_MAX + 1], grp[NAME_MAX + 1];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", sysfs, bdf);
    if (access(path, F_OK) < 0)
        return errf(err, errlen,
                    "--vfio %s: this host has no PCI device %s; list the devices with lspci -D",
                    bdf, bdf);
    if (driver_of(sysfs, bdf, drv, sizeof(drv)) < 0)
        return errf(err, errlen,
                    "--vfio %s: the device is bound to no driver; bind it to vfio-pci: " BIND_HINT,
                    bdf, bdf, bdf);
    if (strcmp(drv, "vfio-pci") != 0)
        return errf(err, errlen,
                    "--vfio %s: the device is bound to %s, not vfio-pci; rebind it: " REBIND_HINT,
                    bdf, drv, bdf, bdf, bdf, bdf);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", sysfs, bdf);
    if (link_name(path, grp, sizeof(grp)) < 0)
        return errf(err, errlen,
                    "--vfio %s: the device has no IOMMU group: enable the IOMMU (intel_iommu=on "
                    "or amd_iommu=on on the host kernel command line, VT-d/AMD-Vi in the firmware)",
                    bdf);
    char *end;
    long g = strtol(grp, &end, 10);
    if (*end || g < 0 || g > INT_MAX)
        return errf(err, errlen, "--vfio %s: unexpected IOMMU group name '%s' in sysfs", bdf, grp);

    snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%ld/devices", sysfs, g);
    DIR *d = opendir(path);
    if (!d)
        return errf(err, errlen, "--vfio %s: cannot list IOMMU group %ld (%s): %s", bdf, g, path,
                    strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char other[NAME_MAX + 1];
        if (driver_of(sysfs, e->d_name, other, sizeof(other)) < 0 || driver_allowed_in_group(other))
            continue;
        rc = errf(err, errlen,
                  "--vfio %s: IOMMU group %ld is not viable: it also holds %s, bound to %s; "
                  "rebind that device too (or pass it through as well): " REBIND_HINT,
                  bdf, g, e->d_name, other, e->d_name, e->d_name, e->d_name, e->d_name);
        break;
    }
    closedir(d);
    if (rc == 0)
        *group = (int)g;
    return rc;
}

int vfio_sysfs_cdev(const char *sysfs, const char *bdf, char *name, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/vfio-dev", sysfs, bdf);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = -1;
    while (rc < 0 && (e = readdir(d)))
        if (strncmp(e->d_name, "vfio", 4) == 0 && strlen(e->d_name) < len) {
            memcpy(name, e->d_name, strlen(e->d_name) + 1);
            rc = 0;
        }
    closedir(d);
    return rc;
}
