/*
 * acpi_pm.h - the ACPI hardware-reduced power-management registers: sleep
 * control, sleep status and reset (the FADT's SLEEP_CONTROL_REG,
 * SLEEP_STATUS_REG and RESET_REG; ports in vmm/layout.h).
 *
 * acpi_pm_create() (the VM's device table, start-up, main thread) claims
 * the ports on h->pio and joins h's device list.  From then on, on the vCPU
 * thread whose port write caused it:
 *   - sleep type S5 with SLP_EN (guest power-off) requests DEV_STOP_POWEROFF;
 *   - the FADT reset value on the reset register (guest reboot, panic with
 *     panic=-1) requests DEV_STOP_RESET;
 *   - any other sleep type is refused with a rate-limited warning.
 * The device has no state: nothing to attach, reset or describe.
 */
#ifndef MINIVMM_DEVICES_ACPI_PM_H
#define MINIVMM_DEVICES_ACPI_PM_H

#include <stddef.h>

struct dev_host;

/* Returns 0, or -1 with a one-line reason in err (the ports are taken). */
int acpi_pm_create(const struct dev_host *h, char *err, size_t errlen);

#endif
