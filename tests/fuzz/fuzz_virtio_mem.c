/*
 * fuzz_virtio_mem.c - libFuzzer target for virtio-mem request handling
 * (devices/virtio_mem.c: virtio_mem_handle_request, virtio_mem_resize, the
 * resets, feature negotiation) over the sparse-memory tracker (mm/tracker.c)
 * and its listeners: the device's own guard and memslots, plus a fake
 * listener registered last that refuses populate and discard at moments the
 * input chooses (answering -1, or MM_POPULATE_KEPT as tracker.h allows).
 *
 * Input: u8 geometry (block size, guard mapping budget, initial requested
 * size), then 8-byte steps {u8 op, u8 a, u16 b, u32 c}:
 *   op % 8 < 3  a request: type a & 3 (any 16-bit type when a bit 7 is set:
 *               b), at block b % (blocks + 2) of the region, nb_blocks
 *               (a >> 2) & 15 (an address anywhere when a bit 6 is set: c)
 *   3           resize to b % (blocks + 1) blocks (plus one byte, which must
 *               be refused, when a bit 0 is set)
 *   4           the fake listener's plan: refuse the a-th next populate
 *               (0: none), the (b & 0xff)-th next discard, populate refusals
 *               answer MM_POPULATE_KEPT when c bit 0 is set
 *   5           system reset (a bit 0) or device reset (Status 0)
 *   6           feature negotiation over MMIO, with or without
 *               VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE (a bit 0)
 *   7           a STATE request over the whole usable region
 *
 * Checks after every step: the invariants of vmem_check.h (plugged_size
 * equals the tracker's plugged bytes, stays inside the region and the usable
 * region, the accessor follows the tracker); listeners only ever see whole
 * blocks of the region, populate only unplugged ones and discard only
 * blocks they were given; every plugged block is held by the fake listener;
 * memory the fake listener still holds is never given back (an unplugged
 * block it holds is "kept" by the tracker); a refused request or resize
 * changes nothing; an ACKed plug/unplug changed exactly its blocks.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/virtio_mem.h"
#include "devices/virtio_mmio.h"
#include "mm/bitmap.h"
#include "mm/tracker.h"
#include "tests/fuzz/common/fake_vm.h"
#include "tests/fuzz/common/input.h"
#include "tests/fuzz/common/vmem_check.h"
#include "vmm/util.h"

#define RAM        (4 * MiB)
#define REGION     (16 * MiB)
#define MAX_BLOCKS 64
#define MAX_STEPS  256

struct fake_listener {
    struct mm_listener l;
    struct mm_tracker *t;
    bool held[MAX_BLOCKS];
    unsigned populate_countdown, discard_countdown; /* refuse when it reaches 0 from 1 */
    bool answer_kept;
};

static struct fake_listener *fake_of(struct mm_listener *l)
{
    return container_of(l, struct fake_listener, l);
}

/* A listener's range: whole blocks of the region (tracker.h's promise). */
static void check_range(struct mm_tracker *t, uint64_t gpa, uint64_t len, uint64_t *first,
                        uint64_t *n)
{
    FUZZ_CHECK(mm_tracker_valid_range(t, gpa, len), "listener called with [%#llx, +%#llx)",
               (unsigned long long)gpa, (unsigned long long)len);
    *first = (gpa - t->base) / t->block_size;
    *n = len / t->block_size;
    FUZZ_CHECK(*first + *n <= MAX_BLOCKS, "range beyond the fake's blocks");
}

static bool countdown(unsigned *c)
{
    return *c && --*c == 0;
}

static int fake_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                         size_t errlen)
{
    struct fake_listener *f = fake_of(l);
    uint64_t first, n;
    check_range(f->t, gpa, len, &first, &n);
    bool holds_some = false;
    for (uint64_t b = first; b < first + n; b++) {
        FUZZ_CHECK(!bitmap_test(f->t->bitmap, b), "populate of plugged block %llu",
                   (unsigned long long)b);
        holds_some |= f->held[b];
    }
    if (countdown(&f->populate_countdown)) {
        snprintf(err, errlen, "the fuzzer says no");
        if (f->answer_kept)
            f->held[first] = true; /* it touched the first block and cannot let go */
        return f->answer_kept || holds_some ? MM_POPULATE_KEPT : -1;
    }
    for (uint64_t b = first; b < first + n; b++)
        f->held[b] = true;
    return 0;
}

static int fake_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct fake_listener *f = fake_of(l);
    uint64_t first, n;
    check_range(f->t, gpa, len, &first, &n);
    for (uint64_t b = first; b < first + n; b++)
        FUZZ_CHECK(f->held[b], "discard of block %llu, which the fake was never given",
                   (unsigned long long)b);
    if (countdown(&f->discard_countdown)) {
        snprintf(err, errlen, "the fuzzer holds on");
        return -1;
    }
    for (uint64_t b = first; b < first + n; b++)
        f->held[b] = false;
    return 0;
}

static const struct mm_listener_ops fake_ops = {
    .populate = fake_populate,
    .discard = fake_discard,
};

static void check_all(struct virtio_mem *m, struct fake_listener *f, const struct mm_map *mem,
                      bool blocks)
{
    vmem_check(m, mem, blocks);
    struct mm_tracker *t = &m->tracker;
    for (uint64_t b = 0; b < t->nr_blocks; b++) {
        bool plugged = bitmap_test(t->bitmap, b);
        FUZZ_CHECK(!plugged || f->held[b], "plugged block %llu not held by the fake listener",
                   (unsigned long long)b);
        FUZZ_CHECK(plugged || !f->held[b] || bitmap_test(t->kept, b),
                   "block %llu given back while the fake listener still holds it",
                   (unsigned long long)b);
    }
}

static void wr32(struct fake_vm *vm, struct virtio_mem *m, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    FUZZ_CHECK(bus_access(&vm->mmio, m->transport.base + off, b, 4, true), "MMIO write");
}

static void negotiate(struct fake_vm *vm, struct virtio_mem *m, bool inaccessible)
{
    wr32(vm, m, VIRTIO_MMIO_STATUS, 0);
    wr32(vm, m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr32(vm, m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr32(vm, m, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VIRTIO_F_VERSION_1 */
    wr32(vm, m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr32(vm, m, VIRTIO_MMIO_DRIVER_FEATURES,
         inaccessible ? 1u << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE : 0);
    wr32(vm, m, VIRTIO_MMIO_STATUS,
         VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static int request(struct virtio_mem *m, uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
    struct virtio_mem_req req;
    memset(&req, 0, sizeof(req));
    req.type = htole16(type);
    req.addr = htole64(addr);
    req.nb_blocks = htole16(nb);
    virtio_mmio_lock(&m->transport);
    int r = virtio_mem_handle_request(m, &req, state);
    virtio_mmio_unlock(&m->transport);
    return r;
}

/* A request, and what its answer says about the blocks it named. */
static void do_request(struct virtio_mem *m, uint8_t a, uint16_t b, uint32_t c)
{
    uint64_t blocks = m->region_size / m->block_size;
    uint16_t type = a & 0x80 ? b : (uint16_t)(a & 3);
    uint64_t addr =
        a & 0x40 ? (uint64_t)c << 12 | (c >> 20) : m->addr + (b % (blocks + 2)) * m->block_size;
    uint16_t nb = (a >> 2) & 15;
    uint64_t before = m->plugged_size;
    uint16_t state;
    int r = request(m, type, addr, nb, &state);
    FUZZ_CHECK(r >= -1 && r <= VIRTIO_MEM_RESP_ERROR, "response %d", r);
    if (type > VIRTIO_MEM_REQ_STATE) {
        FUZZ_CHECK(r == -1, "unknown request type %u answered %d", type, r);
        return;
    }
    uint64_t len = (uint64_t)nb * m->block_size;
    if (r != VIRTIO_MEM_RESP_ACK) {
        FUZZ_CHECK(m->plugged_size == before, "a refused request changed plugged_size");
        return;
    }
    if (type == VIRTIO_MEM_REQ_PLUG || type == VIRTIO_MEM_REQ_UNPLUG) {
        bool plug = type == VIRTIO_MEM_REQ_PLUG;
        FUZZ_CHECK(m->plugged_size == (plug ? before + len : before - len),
                   "plugged_size %#llx after an ACKed %s of %#llx from %#llx",
                   (unsigned long long)m->plugged_size, plug ? "plug" : "unplug",
                   (unsigned long long)len, (unsigned long long)before);
        FUZZ_CHECK(mm_tracker_state(&m->tracker, addr, len) ==
                       (plug ? MM_BLOCKS_PLUGGED : MM_BLOCKS_UNPLUGGED),
                   "an ACKed request left its blocks in the wrong state");
    } else if (type == VIRTIO_MEM_REQ_UNPLUG_ALL) {
        FUZZ_CHECK(m->plugged_size == 0, "UNPLUG_ALL left %#llx plugged",
                   (unsigned long long)m->plugged_size);
    } else {
        FUZZ_CHECK(state <= VIRTIO_MEM_STATE_MIXED, "state %u", state);
    }
}

static void do_resize(struct virtio_mem *m, uint8_t a, uint16_t b)
{
    char err[256];
    uint64_t blocks = m->region_size / m->block_size;
    uint64_t size = (b % (blocks + 1)) * m->block_size;
    uint64_t req = m->requested_size, usable = m->usable_region_size;
    if (a & 1) {
        FUZZ_CHECK(virtio_mem_resize(m, size + 1, err, sizeof(err)) < 0, "resize to %#llx",
                   (unsigned long long)(size + 1));
        FUZZ_CHECK(m->requested_size == req && m->usable_region_size == usable,
                   "a refused resize changed the device");
        return;
    }
    FUZZ_CHECK(virtio_mem_resize(m, size, err, sizeof(err)) == 0, "resize: %s", err);
    FUZZ_CHECK(m->requested_size == size && m->usable_region_size >= usable,
               "resize to %#llx: requested %#llx, usable %#llx (was %#llx)",
               (unsigned long long)size, (unsigned long long)m->requested_size,
               (unsigned long long)m->usable_region_size, (unsigned long long)usable);
}

static void step(struct fake_vm *vm, struct virtio_mem *m, struct fake_listener *f, uint8_t op,
                 uint8_t a, uint16_t b, uint32_t c)
{
    uint16_t state;
    switch (op % 8) {
    case 3:
        do_resize(m, a, b);
        break;
    case 4:
        f->populate_countdown = a;
        f->discard_countdown = b & 0xff;
        f->answer_kept = c & 1;
        break;
    case 5:
        if (a & 1) {
            m->transport.dev.ops->reset(&m->transport.dev);
            FUZZ_CHECK(m->plugged_size == 0, "system reset left memory plugged");
        } else {
            wr32(vm, m, VIRTIO_MMIO_STATUS, 0);
        }
        break;
    case 6:
        negotiate(vm, m, a & 1);
        break;
    case 7:
        if (m->usable_region_size && m->usable_region_size / m->block_size <= 0xffff)
            request(m, VIRTIO_MEM_REQ_STATE, m->addr,
                    (uint16_t)(m->usable_region_size / m->block_size), &state);
        break;
    default:
        do_request(m, a, b, c);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in_make(data, size);
    char err[256];
    struct fake_vm *vm = fake_vm_create(RAM);
    struct virtio_mem *m = fake_vm_add_virtio_mem_geo(vm, REGION, in_u8(&in));
    struct fake_listener f;
    memset(&f, 0, sizeof(f));
    f.l = (struct mm_listener){.ops = &fake_ops, .name = "fuzz listener"};
    f.t = &m->tracker;
    FUZZ_CHECK(mm_tracker_register(&m->tracker, &f.l, err, sizeof(err)) == 0, "register: %s", err);
    for (unsigned i = 0; i < MAX_STEPS && !in_done(&in); i++) {
        uint8_t op = in_u8(&in), a = in_u8(&in);
        uint16_t b = in_u16(&in);
        uint32_t c = in_u32(&in);
        step(vm, m, &f, op, a, b, c);
        check_all(m, &f, &vm->mem, i % 8 == 7);
    }
    check_all(m, &f, &vm->mem, true);
    f.populate_countdown = f.discard_countdown = 0;
    mm_tracker_unregister(&m->tracker, &f.l);
    fake_vm_free(vm);
    return 0;
}
