/* devices.c - the device table; see devices.h. */
#include "devices/devices.h"

#include "devices/virtio_mem.h"

const struct device_kind device_kinds[] = {
    {"acpi-pm", acpi_pm_create},
    {"serial", serial_create},
    {"virtio-mem", virtio_mem_create},
    {NULL, NULL},
};
