/*
 * fuzz_virtio_mmio.c - libFuzzer target for the virtio-mmio register file
 * (devices/virtio_mmio.c) with a virtio-mem device behind it
 * (devices/virtio_mem.c), so that queue notifications reach real request
 * handling through devices/virtqueue.c.
 *
 * The machine (tests/fuzz/common/fake_vm.h) has 4 MiB of boot RAM and one
 * virtio-mem device (16 MiB region at 4 GiB); the guest's rings and requests
 * live wherever its register writes put them, usually in the window at
 * 1 MiB that the input can write.
 *
 * Input: u8 geometry (block size, guard mapping budget, initial requested
 * size), then 8-byte steps {u8 op, u8 flags, u16 offset, u32 value}:
 *   op % 8 < 4  MMIO access at window offset `offset` (mod 0x1000, or a
 *               register index when flags bit 3 is clear), width
 *               1 << (flags & 3), a write when flags bit 2 is set
 *   4           guest RAM write of value (width 1 << (flags & 3), up to 4)
 *               at 1 MiB + offset
 *   5           run the main loop (queue notifications)
 *   6           resize to offset % (blocks + 1) blocks
 *   7           device reset (Status 0) or, with flags bit 0, a system reset
 *
 * Checks after every step: DEVICE_NEEDS_RESET is only cleared by a reset;
 * DRIVER_OK is not accepted without FEATURES_OK; a queue made ready has a
 * valid layout right then; the virtio-mem invariants of vmem_check.h.
 */
#include <stdint.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/virtio_mem.h"
#include "devices/virtio_mmio.h"
#include "devices/virtqueue.h"
#include "tests/fuzz/common/fake_vm.h"
#include "tests/fuzz/common/input.h"
#include "tests/fuzz/common/vmem_check.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#define RAM        (4 * MiB)
#define REGION     (16 * MiB)
#define WINDOW     0x100000ULL
#define MAX_STEPS  512
#define LOOP_TURNS 8

static void mmio(struct fake_vm *vm, struct virtio_mem *m, uint64_t off, void *data, unsigned len,
                 bool write)
{
    bool claimed = bus_access(&vm->mmio, m->transport.base + off, data, len, write);
    FUZZ_CHECK(claimed, "the window did not answer at +%#llx", (unsigned long long)off);
}

static void wr32(struct fake_vm *vm, struct virtio_mem *m, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    mmio(vm, m, off, b, 4, true);
}

static void step(struct fake_vm *vm, struct virtio_mem *m, uint8_t op, uint8_t flags, uint16_t off,
                 uint32_t value)
{
    struct virtio_mmio *t = &m->transport;
    char err[256];
    switch (op % 8) {
    case 4: {
        unsigned len = 1u << (flags & 3);
        if (len > 4)
            len = 4;
        mm_write(&vm->mem, WINDOW + off, &value, len);
        break;
    }
    case 5:
        fake_vm_run_loop(vm, LOOP_TURNS);
        break;
    case 6:
        FUZZ_CHECK(virtio_mem_resize(m, off % (REGION / m->block_size + 1) * m->block_size, err,
                                     sizeof(err)) == 0,
                   "resize: %s", err);
        break;
    case 7:
        if (flags & 1)
            t->dev.ops->reset(&t->dev);
        else
            wr32(vm, m, VIRTIO_MMIO_STATUS, 0);
        break;
    default: {
        unsigned len = 1u << (flags & 3);
        bool write = flags & 4;
        uint64_t at = flags & 8 ? off % (LAYOUT_VIRTIO_MMIO_SIZE - len + 1) : (off % 0x80) * 4;
        uint8_t data[8];
        for (unsigned i = 0; i < 8; i++)
            data[i] = (uint8_t)(value >> (8 * (i % 4)));
        bool was_ready = t->queues[0].ready;
        mmio(vm, m, at, data, len, write);
        if (write && at == VIRTIO_MMIO_QUEUE_READY && !was_ready && t->queues[0].ready) {
            FUZZ_CHECK(virtq_check_layout(&t->queues[0], &vm->mem, err, sizeof(err)) == 0,
                       "queue made ready with a bad layout: %s", err);
        }
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in_make(data, size);
    struct fake_vm *vm = fake_vm_create(RAM);
    struct virtio_mem *m = fake_vm_add_virtio_mem_geo(vm, REGION, in_u8(&in));
    struct virtio_mmio *t = &m->transport;
    for (unsigned i = 0; i < MAX_STEPS && !in_done(&in); i++) {
        uint8_t op = in_u8(&in), flags = in_u8(&in);
        uint16_t off = in_u16(&in);
        uint32_t value = in_u32(&in);
        uint32_t before = t->status;
        bool reset = op % 8 == 7 || (op % 8 < 4 && (flags & 4) && value == 0);
        step(vm, m, op, flags, off, value);
        if ((before & VIRTIO_STATUS_DEVICE_NEEDS_RESET) && t->status != 0 && !reset)
            FUZZ_CHECK(t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET,
                       "DEVICE_NEEDS_RESET cleared without a reset (status %#x)", t->status);
        FUZZ_CHECK(!(t->status & VIRTIO_STATUS_DRIVER_OK) ||
                       (t->status & VIRTIO_STATUS_FEATURES_OK) ||
                       (before & VIRTIO_STATUS_DRIVER_OK),
                   "DRIVER_OK accepted without FEATURES_OK (status %#x)", t->status);
        vmem_check(m, &vm->mem, i % 32 == 31);
    }
    vmem_check(m, &vm->mem, true);
    fake_vm_free(vm);
    return 0;
}
