/*
 * devices.h - the create functions of the devices that have no header of
 * their own.  The table that calls them is vmm/device_table.c.
 */
#ifndef MINIVMM_DEVICES_DEVICES_H
#define MINIVMM_DEVICES_DEVICES_H

#include <stddef.h>

#include "devices/device.h"

struct vm;

int serial_create(struct vm *vm, char *err, size_t errlen);

#endif
