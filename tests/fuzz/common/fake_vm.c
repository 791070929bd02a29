/*
 * fake_vm.c - the machine without KVM the fuzz targets run devices on (see
 * fake_vm.h), and the failure report shared by every target (input.h).
 */
#include "tests/fuzz/common/fake_vm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/common/input.h"
#include "vmm/util.h"

int fuzz_report_fd = 2;

/* Before main(): libFuzzer may close stderr later (-close_fd_mask=2); keep a copy for reports. */
__attribute__((constructor)) static void fuzz_report_init(void)
{
    int fd = dup(2);
    if (fd >= 0)
        fuzz_report_fd = fd;
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "FUZZ INVARIANT %s:%d: '%s' broken: ", file, line, cond);
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof(msg) - 2)
        len = sizeof(msg) - 2;
    msg[len++] = '\n';
    if (write(fuzz_report_fd, msg, len) < 0) {
        /* Nothing left to report to; the abort still counts. */
    }
    abort();
}

static void fake_irq_line(void *opaque, unsigned gsi, bool level)
{
    struct fake_vm *vm = opaque;
    FUZZ_CHECK(gsi < FAKE_VM_GSIS, "a device drove GSI %u, which does not exist", gsi);
    if (level && !vm->irq_level[gsi])
        vm->irq_raised[gsi]++;
    vm->irq_level[gsi] = level;
}

static void fake_request_stop(void *opaque, enum dev_stop_reason reason)
{
    struct fake_vm *vm = opaque;
    (void)reason;
    vm->stop_requests++;
}

static void fake_add_device(void *opaque, struct device *dev)
{
    struct fake_vm *vm = opaque;
    dev->next = NULL;
    *vm->tail = dev;
    vm->tail = &dev->next;
}

static int fake_vm_fd(void *opaque)
{
    (void)opaque;
    return -1;
}

static const struct dev_host_ops fake_host_ops = {
    .irq_line = fake_irq_line,
    .request_stop = fake_request_stop,
    .add_device = fake_add_device,
    .vm_fd = fake_vm_fd,
};

struct fake_vm *fake_vm_create(uint64_t ram)
{
    char err[256];
    struct fake_vm *vm = calloc(1, sizeof(*vm));
    FUZZ_CHECK(vm != NULL, "out of memory");
    mm_map_init(&vm->mem);
    FUZZ_CHECK(mm_map_setup_ram(&vm->mem, ram, err, sizeof(err)) == 0, "boot RAM: %s", err);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    FUZZ_CHECK(evloop_init(&vm->loop) == 0, "evloop_init failed");
    vm->tail = &vm->devices;
    vm->host = (struct dev_host){
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .mem = &vm->mem,
        .loop = &vm->loop,
        .phys_bits = 40,
        .ops = &fake_host_ops,
        .opaque = vm,
    };
    return vm;
}

void fake_vm_free(struct fake_vm *vm)
{
    for (struct device *d = vm->devices, *next; d; d = next) {
        next = d->next;
        if (d->ops->destroy)
            d->ops->destroy(d);
    }
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    mm_map_destroy(&vm->mem);
    evloop_destroy(&vm->loop);
    free(vm);
}

unsigned fake_vm_run_loop(struct fake_vm *vm, unsigned max_turns)
{
    unsigned turns = 0;
    while (turns < max_turns && evloop_run_once(&vm->loop, 0) > 0)
        turns++;
    return turns;
}

struct virtio_mem *fake_vm_add_virtio_mem(struct fake_vm *vm, uint64_t addr, uint64_t size,
                                          uint64_t block_size, uint64_t requested,
                                          uint64_t mappings)
{
    char err[512];
    struct virtio_mem_options o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "mem%u", vm->windows.used);
    o.size = size;
    o.block_size = block_size;
    o.requested = requested;
    o.addr = addr;
    o.backend = MM_BACKING_ANON;
    struct virtio_mem_budget budget = {.memslots = 4, .mappings = mappings};
    struct virtio_mem *m = NULL;
    FUZZ_CHECK(virtio_mem_create(&vm->host, &vm->windows, &o, 1, &budget, &m, err, sizeof(err)) ==
                   0,
               "virtio_mem_create: %s", err);
    return m;
}

struct virtio_mem *fake_vm_add_virtio_mem_geo(struct fake_vm *vm, uint64_t region, uint8_t geo)
{
    static const uint64_t block_sizes[] = {256 * KiB, 1 * MiB, 2 * MiB, 4 * MiB};
    static const uint64_t budgets[] = {5, 6, 16, 1024}; /* 5: 3 + MM_GUARD_PIECE_SLACK, the least */
    uint64_t bs = block_sizes[geo & 3];
    uint64_t requested = ((geo >> 4) * MiB) / bs * bs;
    return fake_vm_add_virtio_mem(vm, 0, region, bs, requested, budgets[(geo >> 2) & 3]);
}
