/*
 * devices.h - the table of device kinds.  Adding a device means writing its
 * file and adding one line to device_kinds[] in devices.c; nothing else in
 * the VMM changes.
 */
#ifndef MINIVMM_DEVICES_DEVICES_H
#define MINIVMM_DEVICES_DEVICES_H

#include <stddef.h>

#include "devices/device.h"

/* Terminated by an entry whose name is NULL.  Created in this order. */
extern const struct device_kind device_kinds[];

int acpi_pm_create(struct vm *vm, char *err, size_t errlen);
int serial_create(struct vm *vm, char *err, size_t errlen);

#endif
