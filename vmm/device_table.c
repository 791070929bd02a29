/* device_table.c - the device table; see device_table.h. */
#include "vmm/device_table.h"

#include <stdio.h>

#include "devices/acpi_pm.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/virtio_mem.h"
#include "vfio/vfio.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

static int create_acpi_pm(struct vm *vm, char *err, size_t errlen)
{
    return acpi_pm_create(&vm->host, err, errlen);
}

static int create_serial(struct vm *vm, char *err, size_t errlen)
{
    return serial_create(&vm->host, &vm->cfg->serial, err, errlen);
}

/*
 * The KVM memslots each virtio-mem region may use: what KVM offers (at most
 * MM_MAX_SLOTS), less those kept for boot RAM and other devices
 * (LAYOUT_RESERVED_MEMSLOTS), shared equally among the n regions.
 */
static int virtio_mem_memslot_budget(const struct vm *vm, unsigned n, unsigned *per_device,
                                     char *err, size_t errlen)
{
    unsigned limit =
        vm->max_memslots && vm->max_memslots < MM_MAX_SLOTS ? vm->max_memslots : MM_MAX_SLOTS;
    if (limit <= LAYOUT_RESERVED_MEMSLOTS + n)
        return errf(err, errlen,
                    "this host's KVM offers only %u memslots, too few for %u virtio-mem devices",
                    limit, n);
    *per_device = (limit - LAYOUT_RESERVED_MEMSLOTS) / n;
    return 0;
}

/* The kernel's default vm.max_map_count, if /proc does not say. */
#define DEFAULT_MAX_MAP_COUNT 65530
/* Host mappings kept for everything but the guards: thread stacks, malloc arenas, VFIO BARs. */
#define OWN_MAPPINGS 4096
/* Fewer guard mappings than this per region would make plugging a lottery. */
#define MIN_GUARD_MAPPINGS 64

/*
 * The host mappings each region's guard may use: vm.max_map_count less
 * OWN_MAPPINGS, shared equally among the n regions, so that no guest
 * pattern of plugs reaches the kernel's limit (guard.h).
 */
static int virtio_mem_mapping_budget(unsigned n, uint64_t *per_device, char *err, size_t errlen)
{
    unsigned long long max = DEFAULT_MAX_MAP_COUNT;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%llu", &max) != 1)
            max = DEFAULT_MAX_MAP_COUNT;
        fclose(f);
    }
    uint64_t left = max > OWN_MAPPINGS ? max - OWN_MAPPINGS : 0;
    *per_device = left / n;
    if (*per_device < MIN_GUARD_MAPPINGS)
        return errf(err, errlen,
                    "vm.max_map_count %llu leaves too few host mappings for %u virtio-mem "
                    "devices; raise it with sysctl -w vm.max_map_count=%llu",
                    max, n, (unsigned long long)OWN_MAPPINGS + (unsigned long long)n * 16384);
    return 0;
}

/* One device per --virtio-mem; the VM keeps them for the control socket. */
static int create_virtio_mem(struct vm *vm, char *err, size_t errlen)
{
    unsigned n = vm->cfg->nr_virtio_mem;
    struct virtio_mem_budget per_device = {0};
    if (n == 0)
        return 0;
    if (virtio_mem_memslot_budget(vm, n, &per_device.memslots, err, errlen) < 0 ||
        virtio_mem_mapping_budget(n, &per_device.mappings, err, errlen) < 0 ||
        virtio_mem_create(&vm->host, &vm->virtio_mmio_windows, vm->cfg->virtio_mem, n, &per_device,
                          vm->virtio_mem, err, errlen) < 0)
        return -1;
    vm->nr_virtio_mem = n;
    return 0;
}

/* After virtio-mem: the 64-bit BAR window goes above every region. */
static int create_pci_host(struct vm *vm, char *err, size_t errlen)
{
    return pci_host_init(&vm->pci, &vm->host, err, errlen);
}

/*
 * After virtio-mem: the start-up checks see every region, boot RAM is
 * pinned, the regions get DMA listeners; then the PCI functions.
 */
static int create_vfio(struct vm *vm, char *err, size_t errlen)
{
    if (!vm->cfg->nr_vfio)
        return 0;
    bool user_error;
    if (vfio_setup_dma(&vm->vfio, &vm->mem, &user_error, err, errlen) < 0) {
        if (user_error)
            die_usage("%s", err);
        return -1;
    }
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
