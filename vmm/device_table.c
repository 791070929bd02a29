/* device_table.c - the device table; see device_table.h. */
#include "vmm/device_table.h"

#include "devices/devices.h"
#include "devices/virtio_mem.h"
#include "devices/pci.h"
#include "vfio/vfio.h"
#include "vmm/vm.h"

static int create_acpi_pm(struct vm *vm, char *err, size_t errlen)
{
    return acpi_pm_create(vm, err, errlen);
}

static int create_serial(struct vm *vm, char *err, size_t errlen)
{
    return serial_create(vm, err, errlen);
}

static int create_virtio_mem(struct vm *vm, char *err, size_t errlen)
{
    return virtio_mem_create(vm, err, errlen);
}

/* After virtio-mem: the 64-bit BAR window goes above every region. */
static int create_pci_host(struct vm *vm, char *err, size_t errlen)
{
    return pci_host_init(&vm->pci, &vm->host, err, errlen);
}

static int create_vfio(struct vm *vm, char *err, size_t errlen)
{
    if (!vm->cfg->nr_vfio)
        return 0;
    return vfio_create_devices(&vm->vfio, &vm->host, &vm->pci, err, errlen);
}

/* One kind per line, in creation order. */
// clang-format off
const struct device_kind device_kinds[] = {
    {"acpi-pm", create_acpi_pm},
    {"serial", create_serial},
    {"virtio-mem", create_virtio_mem},
    {"pci-host", create_pci_host},
    {"vfio", create_vfio},
    {NULL, NULL},
};
// clang-format on
