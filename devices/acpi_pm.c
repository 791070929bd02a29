/*
 * acpi_pm.c - the ACPI hardware-reduced power-management registers: sleep
 * control, sleep status and reset (FADT SLEEP_CONTROL_REG, SLEEP_STATUS_REG,
 * RESET_REG; ports in layout.h).
 *
 * Guest poweroff: ACPICA writes ((SLP_TYP << 2) & 0x1c) | SLP_EN to the sleep
 * control register, with SLP_TYP taken from the DSDT's \_S5 package.  Guest
 * reboot (and panic with panic=-1): Linux writes the FADT reset value to the
 * reset register.  Both end the current boot through the host's
 * request_stop op; see acpi_pm.h.
 */
#include "devices/acpi_pm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/host.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#define SLP_EN     0x20
#define SLP_TYP(v) (((v) >> 2) & 0x7)
#define WAK_STS    0x80

struct acpi_pm {
    struct device dev;
    const struct dev_host *host;
};

static void acpi_pm_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    (void)opaque;
    (void)offset;
    /* Sleep status: never "woken" - a sleep request ends the boot. */
    memset(data, 0, len);
}

static void acpi_pm_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct acpi_pm *pm = opaque;
    uint8_t v;
    (void)len;
    memcpy(&v, data, 1);

    switch (LAYOUT_PM_PORT_BASE + offset) {
    case LAYOUT_PM_SLEEP_CONTROL:
        if (!(v & SLP_EN))
            break;
        if (SLP_TYP(v) == LAYOUT_PM_S5_SLEEP_TYPE)
            dev_host_request_stop(pm->host, DEV_STOP_POWEROFF);
        else
            warn_limited("the guest asked for ACPI sleep type %u, which minivmm does not offer",
                         SLP_TYP(v));
        break;
    case LAYOUT_PM_RESET:
        if (v == LAYOUT_PM_RESET_VALUE)
            dev_host_request_stop(pm->host, DEV_STOP_RESET);
        break;
    default: /* sleep status: writing WAK_STS clears it, and it is never set */
        break;
    }
}

static const struct bus_ops acpi_pm_bus_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
};

static void acpi_pm_destroy(struct device *dev)
{
    free(container_of(dev, struct acpi_pm, dev));
}

static const struct device_ops acpi_pm_ops = {
    .destroy = acpi_pm_destroy,
};

int acpi_pm_create(const struct dev_host *h, char *err, size_t errlen)
{
    struct acpi_pm *pm = xzalloc(sizeof(*pm));
    pm->host = h;
    pm->dev.name = "acpi-pm";
    pm->dev.ops = &acpi_pm_ops;
    if (bus_register(h->pio, LAYOUT_PM_PORT_BASE, LAYOUT_PM_PORT_COUNT, &acpi_pm_bus_ops, pm,
                     "acpi-pm") < 0) {
        snprintf(err, errlen, "acpi-pm: ports %#x-%#x are taken", LAYOUT_PM_PORT_BASE,
                 LAYOUT_PM_PORT_BASE + LAYOUT_PM_PORT_COUNT - 1);
        free(pm);
        return -1;
    }
    dev_host_add_device(h, &pm->dev);
    return 0;
}
