/*
 * test_virtio_mem.c - unit tests of the virtio-mem device (devices/virtio_mem.c),
 * without KVM.
 *
 * A test VM without KVM (test_vm.h: 64 MiB of boot RAM, MMIO bus, event
 * loop, no VM fd) hosts one virtio-mem device, by default a 1 GiB region of 2 MiB blocks
 * at 4 GiB with nothing requested.  Most tests call
 * virtio_mem_handle_request() directly with the transport lock held; the
 * config space, ConfigGeneration and InterruptStatus are read through
 * bus_access() as a vCPU would (64-bit fields as two 32-bit reads, like
 * Linux); one group of tests drives the whole path through the virtqueue:
 * Linux's init sequence over MMIO, a request chain in guest RAM, QueueNotify,
 * the event loop, the used ring.
 *
 * The rules come from shared/docs/virtio-mem-and-vfio.md (§1, §2, §3.4,
 * §7.3-7.5), VIRTIO 1.2 §5.15 and §4.2.  Wire values, register offsets and
 * config offsets come from virtio_spec.h, written out from the spec on
 * purpose, not taken from the device's headers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio_mem.h"
#include "devices/virtio_mmio.h"
#include "mm/memmap.h"
#include "mm/tracker.h"
#include "vmm/json.h"
#include "vmm/util.h"
#include "vmm/vm_ctl.h"

#include "tests/unit/test_vm.h"
#include "tests/unit/virtio_spec.h"

#define ST_LIVE (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)

/* ---- the test VM ---- */
#define RAM_SIZE    (64 * MiB)
#define REGION_ADDR (4 * GiB)
#define REGION_SIZE (1 * GiB)
#define BLOCK       (2 * MiB)
#define CHUNK       (128 * MiB) /* memslot granularity of a 1 GiB region */
#define B(i)        (REGION_ADDR + (uint64_t)(i)*BLOCK)

#define QUEUE_SIZE 16
#define DESC_GPA   0x200000ULL
#define AVAIL_GPA  0x201000ULL
#define USED_GPA   0x202000ULL
#define RINGS_END  0x203000ULL
#define REQ_GPA    0x210000ULL
#define RESP_GPA   0x211000ULL

#define PHYS_BITS 36
#define MEMSLOTS  (MM_MAX_SLOTS / VIRTIO_MEM_MAX_DEVICES) /* each region's memslot budget */
#define MAPPINGS  8192                                    /* each guard's mapping budget */

struct counting_listener {
    struct mm_listener l;
    bool refuse;
    int populates, discards;
    uint64_t populated; /* bytes populated minus bytes discarded */
};

struct fixture {
    struct test_vm vm;
    struct virtio_mem_options opts[VIRTIO_MEM_MAX_DEVICES]; /* for virtio_mem_create() */
    unsigned nr_opts;
    struct virtio_mem *created[VIRTIO_MEM_MAX_DEVICES]; /* what virtio_mem_create() made */
    unsigned nr_created;
    struct virtio_mem *m;
    struct virtio_mem_budget budget; /* what new_mem() and create_devices() give each region */
    unsigned base_slots;             /* memslots of boot RAM */
    uint16_t avail_idx;              /* the driver's copy of avail->idx */
};

static struct virtio_mem_options mem_opts(const char *id, uint64_t size, uint64_t block,
                                          uint64_t requested)
{
    struct virtio_mem_options o;
    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    o.size = size;
    o.block_size = block;
    o.requested = requested;
    o.backend = MM_BACKING_ANON;
    return o;
}

/* Build a device on the fixture's VM; fails the test if that is refused. */
static struct virtio_mem *new_mem(struct fixture *fx, const struct virtio_mem_options *o,
                                  uint64_t addr)
{
    char err[512];
    struct virtio_mem *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    if (virtio_mem_init(m, &fx->vm.host, &fx->vm.virtio_mmio, o, addr, &fx->budget, err,
                        sizeof(err)) < 0)
        fail_msg("virtio_mem_init: %s", err);
    fx->m = m;
    return m;
}

/* A VM without KVM and without a virtio-mem device. */
static int setup_bare(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    test_vm_init(&fx->vm, RAM_SIZE);
    fx->budget = (struct virtio_mem_budget){.memslots = MEMSLOTS, .mappings = MAPPINGS};
    fx->base_slots = mm_slot_count(&fx->vm.mem);
    *state = fx;
    return 0;
}

/* The default device: 1 GiB of 2 MiB blocks at 4 GiB, nothing requested, anonymous memory. */
static int setup(void **state)
{
    setup_bare(state);
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 0);
    new_mem(fx, &o, REGION_ADDR);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    test_vm_destroy(&fx->vm); /* the devices free the virtio_mem */
    free(fx);
    return 0;
}

static int send_req(struct fixture *fx, const struct virtio_mem_req *req, uint16_t *state)
{
    uint16_t st = 0xbeef;
    virtio_mmio_lock(&fx->m->transport);
    int r = virtio_mem_handle_request(fx->m, req, &st);
    virtio_mmio_unlock(&fx->m->transport);
    if (state)
        *state = st;
    return r;
}

static int request(struct fixture *fx, uint16_t type, uint64_t addr, uint16_t nb_blocks,
                   uint16_t *state)
{
    struct virtio_mem_req req;
    memset(&req, 0, sizeof(req));
    req.type = htole16(type);
    req.addr = htole64(addr);
    req.nb_blocks = htole16(nb_blocks);
    return send_req(fx, &req, state);
}

static int plug(struct fixture *fx, uint64_t addr, uint16_t nb_blocks)
{
    return request(fx, REQ_PLUG, addr, nb_blocks, NULL);
}

static int unplug(struct fixture *fx, uint64_t addr, uint16_t nb_blocks)
{
    return request(fx, REQ_UNPLUG, addr, nb_blocks, NULL);
}

static int unplug_all(struct fixture *fx)
{
    return request(fx, REQ_UNPLUG_ALL, 0, 0, NULL);
}

/* The response to STATE. */
static int state_resp(struct fixture *fx, uint64_t addr, uint16_t nb_blocks)
{
    return request(fx, REQ_STATE, addr, nb_blocks, NULL);
}

/* The state of a valid range (the STATE request must be ACKed). */
static uint16_t blocks_state(struct fixture *fx, uint64_t addr, uint16_t nb_blocks)
{
    uint16_t st;
    assert_int_equal(request(fx, REQ_STATE, addr, nb_blocks, &st), RESP_ACK);
    return st;
}

static void resize(struct fixture *fx, uint64_t requested)
{
    char err[256];
    if (virtio_mem_resize(fx->m, requested, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_resize: %s", err);
}

static void system_reset(struct fixture *fx)
{
    fx->m->transport.dev.ops->reset(&fx->m->transport.dev);
}

static uint32_t mmio_read32(struct fixture *fx, uint64_t off)
{
    uint8_t b[4];
    memset(b, 0xcc, sizeof(b));
    assert_true(bus_access(&fx->vm.mmio, fx->m->transport.base + off, b, 4, false));
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void mmio_write32(struct fixture *fx, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    assert_true(bus_access(&fx->vm.mmio, fx->m->transport.base + off, b, 4, true));
}

/* A 64-bit config field, read as Linux's vm_get() does: two 32-bit reads, low then high. */
static uint64_t cfg_read64(struct fixture *fx, unsigned off)
{
    uint64_t lo = mmio_read32(fx, REG_CONFIG + off);
    uint64_t hi = mmio_read32(fx, REG_CONFIG + off + 4);
    return lo | hi << 32;
}

static uint32_t generation(struct fixture *fx)
{
    return mmio_read32(fx, REG_CONFIG_GEN);
}

/* Pulses of the interrupt line since the last call (the eventfd's counter, reset). */
static uint64_t irq_count(struct fixture *fx)
{
    uint64_t v;
    if (read(fx->m->transport.irq_fd, &v, sizeof(v)) != sizeof(v)) {
        assert_int_equal(errno, EAGAIN);
        return 0;
    }
    return v;
}

static void run_loop(struct fixture *fx)
{
    while (evloop_run_once(&fx->vm.loop, 0) > 0) {
    }
}

static const char *status_field(struct json *j, struct fixture *fx, const char *key)
{
    char pat[64];
    json_init(j);
    virtio_mem_status(fx->m, j);
    assert_true(json_complete(j));
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = strstr(json_str(j), pat);
    if (!p)
        fail_msg("no %s in %s", key, json_str(j));
    return p + strlen(pat);
}

static uint64_t status_u64(struct fixture *fx, const char *key)
{
    struct json j;
    const char *p = status_field(&j, fx, key);
    char *end;
    uint64_t v = strtoull(p, &end, 10);
    assert_true(end != p);
    json_free(&j);
    return v;
}

static bool status_bool(struct fixture *fx, const char *key)
{
    struct json j;
    const char *p = status_field(&j, fx, key);
    bool v = strncmp(p, "true", 4) == 0;
    assert_true(v || strncmp(p, "false", 5) == 0);
    json_free(&j);
    return v;
}

/* The three run-time sizes, as the driver reads them (config space) and as the operator does. */
static void check_sizes(struct fixture *fx, uint64_t usable, uint64_t plugged, uint64_t requested)
{
    assert_int_equal(cfg_read64(fx, CFG_USABLE), usable);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), plugged);
    assert_int_equal(cfg_read64(fx, CFG_REQUESTED), requested);
    assert_int_equal(status_u64(fx, "usable_region_size"), usable);
    assert_int_equal(status_u64(fx, "plugged_size"), plugged);
    assert_int_equal(status_u64(fx, "requested_size"), requested);
    /* plugged_size is the total size of the plugged blocks (§2.2). */
    assert_int_equal(mm_tracker_plugged_bytes(&fx->m->tracker), plugged);
}

/* Memslots of the virtio-mem region (all slots minus boot RAM's). */
static unsigned region_slots(struct fixture *fx)
{
    unsigned n = mm_slot_count(&fx->vm.mem) - fx->base_slots;
    assert_int_equal(status_u64(fx, "memslots"), n);
    return n;
}

/* Host pages in len bytes. */
static size_t pages(uint64_t len)
{
    return len / (size_t)sysconf(_SC_PAGESIZE);
}

/* Host pages of [gpa, gpa + len) of the region that are resident (mincore). */
static size_t resident_pages(struct fixture *fx, uint64_t gpa, uint64_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = len / page, count = 0;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(fx->m->backing.hva + (gpa - fx->m->addr), len, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    free(vec);
    return count;
}

/* Fill a plugged block through the guest-memory accessor, as the guest would. */
static void fill_block(struct fixture *fx, uint64_t gpa, uint8_t pattern)
{
    uint8_t *p = mm_gpa(&fx->vm.mem, gpa, fx->m->block_size);
    assert_non_null(p);
    memset(p, pattern, fx->m->block_size);
}

static bool block_is_zero(struct fixture *fx, uint64_t gpa)
{
    const uint8_t *p = mm_gpa(&fx->vm.mem, gpa, fx->m->block_size);
    assert_non_null(p);
    for (uint64_t i = 0; i < fx->m->block_size; i++)
        if (p[i])
            return false;
    return true;
}

static void put16(struct fixture *fx, uint64_t gpa, uint16_t v)
{
    uint16_t le = htole16(v);
    assert_int_equal(mm_write(&fx->vm.mem, gpa, &le, sizeof(le)), 0);
}

static void put32(struct fixture *fx, uint64_t gpa, uint32_t v)
{
    uint32_t le = htole32(v);
    assert_int_equal(mm_write(&fx->vm.mem, gpa, &le, sizeof(le)), 0);
}

static void put64(struct fixture *fx, uint64_t gpa, uint64_t v)
{
    uint64_t le = htole64(v);
    assert_int_equal(mm_write(&fx->vm.mem, gpa, &le, sizeof(le)), 0);
}

static uint16_t get16(struct fixture *fx, uint64_t gpa)
{
    uint16_t le;
    assert_int_equal(mm_read(&fx->vm.mem, gpa, &le, sizeof(le)), 0);
    return le16toh(le);
}

static uint32_t get32(struct fixture *fx, uint64_t gpa)
{
    uint32_t le;
    assert_int_equal(mm_read(&fx->vm.mem, gpa, &le, sizeof(le)), 0);
    return le32toh(le);
}

/* Steps 1-5: identity, reset, ACKNOWLEDGE, DRIVER, features (sel 1 then 0), FEATURES_OK. */
static uint32_t negotiate(struct fixture *fx, uint32_t feat_lo)
{
    assert_int_equal(mmio_read32(fx, REG_MAGIC), 0x74726976);
    assert_int_equal(mmio_read32(fx, REG_DEVICE_ID), DEVICE_ID_MEM);
    mmio_write32(fx, REG_STATUS, 0);
    assert_int_equal(mmio_read32(fx, REG_STATUS), 0);
    mmio_write32(fx, REG_STATUS, ST_ACK);
    mmio_write32(fx, REG_STATUS, ST_ACK | ST_DRIVER);
    mmio_write32(fx, REG_DEVICE_FEAT_SEL, 1);
    assert_int_equal(mmio_read32(fx, REG_DEVICE_FEATURES) & F_VERSION_1_HIGH, F_VERSION_1_HIGH);
    mmio_write32(fx, REG_DEVICE_FEAT_SEL, 0);
    uint32_t offered = mmio_read32(fx, REG_DEVICE_FEATURES);
    /* The device offers UNPLUGGED_INACCESSIBLE (and nothing the driver would have to refuse). */
    assert_int_equal(offered, F_UNPLUGGED_INACCESSIBLE);
    mmio_write32(fx, REG_DRIVER_FEAT_SEL, 1);
    mmio_write32(fx, REG_DRIVER_FEATURES, F_VERSION_1_HIGH);
    mmio_write32(fx, REG_DRIVER_FEAT_SEL, 0);
    mmio_write32(fx, REG_DRIVER_FEATURES, feat_lo & offered);
    mmio_write32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    return mmio_read32(fx, REG_STATUS);
}

/* Step 6 for queue 0 with fresh (zeroed) rings, as a newly probed driver has. */
static void setup_queue(struct fixture *fx)
{
    static const uint8_t zero[RINGS_END - DESC_GPA];
    assert_int_equal(mm_write(&fx->vm.mem, DESC_GPA, zero, sizeof(zero)), 0);
    fx->avail_idx = 0;
    mmio_write32(fx, REG_QUEUE_SEL, 0);
    assert_int_equal(mmio_read32(fx, REG_QUEUE_READY), 0);
    assert_true(mmio_read32(fx, REG_QUEUE_NUM_MAX) >= QUEUE_SIZE);
    mmio_write32(fx, REG_QUEUE_NUM, QUEUE_SIZE);
    mmio_write32(fx, REG_QUEUE_DESC_LO, (uint32_t)DESC_GPA);
    mmio_write32(fx, REG_QUEUE_DESC_HI, 0);
    mmio_write32(fx, REG_QUEUE_DRIVER_LO, (uint32_t)AVAIL_GPA);
    mmio_write32(fx, REG_QUEUE_DRIVER_HI, 0);
    mmio_write32(fx, REG_QUEUE_DEVICE_LO, (uint32_t)USED_GPA);
    mmio_write32(fx, REG_QUEUE_DEVICE_HI, 0);
    mmio_write32(fx, REG_QUEUE_READY, 1);
    assert_int_equal(mmio_read32(fx, REG_QUEUE_READY), 1);
}

/* The whole sequence; feat_lo is what the driver accepts of the device's features. */
static void driver_init(struct fixture *fx, uint32_t feat_lo)
{
    assert_int_equal(negotiate(fx, feat_lo), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    setup_queue(fx);
    mmio_write32(fx, REG_STATUS, ST_LIVE);
    assert_int_equal(mmio_read32(fx, REG_STATUS), ST_LIVE);
}

/* A request in wire format (doc §2.5), padding filled with pad. */
static void make_req(uint8_t out[REQ_LEN], uint16_t type, uint64_t addr, uint16_t nb_blocks,
                     uint8_t pad)
{
    memset(out, pad, REQ_LEN);
    for (int i = 0; i < 2; i++)
        out[0 + i] = (uint8_t)(type >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(addr >> (8 * i));
    for (int i = 0; i < 2; i++)
        out[16 + i] = (uint8_t)(nb_blocks >> (8 * i));
}

/*
 * Linux's chain (virtqueue_add_sgs(vq, sgs, 1, 1)): one device-readable
 * buffer with the request, then one device-writable buffer for the response.
 * Publish it, notify through QueueNotify, and let the main loop run.
 */
static void post_request(struct fixture *fx, const uint8_t *req, uint32_t req_len,
                         uint32_t resp_len);

static void queue_request(struct fixture *fx, const uint8_t *req, uint32_t req_len,
                          uint32_t resp_len)
{
    post_request(fx, req, req_len, resp_len);
    run_loop(fx);
}

/* queue_request() without running the main loop. */
static void post_request(struct fixture *fx, const uint8_t *req, uint32_t req_len,
                         uint32_t resp_len)
{
    uint8_t fill[16];
    memset(fill, 0xaa, sizeof(fill));
    assert_int_equal(mm_write(&fx->vm.mem, REQ_GPA, req, req_len), 0);
    assert_int_equal(mm_write(&fx->vm.mem, RESP_GPA, fill, sizeof(fill)), 0);
    put64(fx, DESC_GPA + 0 * D_SIZE, REQ_GPA);
    put32(fx, DESC_GPA + 0 * D_SIZE + 8, req_len);
    put16(fx, DESC_GPA + 0 * D_SIZE + 12, F_NEXT);
    put16(fx, DESC_GPA + 0 * D_SIZE + 14, 1);
    put64(fx, DESC_GPA + 1 * D_SIZE, RESP_GPA);
    put32(fx, DESC_GPA + 1 * D_SIZE + 8, resp_len);
    put16(fx, DESC_GPA + 1 * D_SIZE + 12, F_WRITE);
    put16(fx, DESC_GPA + 1 * D_SIZE + 14, 0);
    put16(fx, AVAIL_GPA + A_RING + 2 * (fx->avail_idx % QUEUE_SIZE), 0);
    fx->avail_idx++;
    put16(fx, AVAIL_GPA + A_IDX, fx->avail_idx);
    mmio_write32(fx, REG_QUEUE_NOTIFY, 0);
}

static uint16_t used_idx(struct fixture *fx)
{
    return get16(fx, USED_GPA + U_IDX);
}

/* ======================================================================== */
/* 1. Response codes (doc §2.6), in QEMU's check order                      */
/* ======================================================================== */

/* Row 1: misaligned, empty, overflowing, or not inside U = [addr, addr + usable) -> ERROR. */
static void test_invalid_range_is_error(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB); /* usable 768 MiB */
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    uint64_t usable_end = REGION_ADDR + 768 * MiB;
    const struct {
        uint64_t addr;
        uint16_t nb;
        const char *what;
    } bad[] = {
        {B(0) + 4 * KiB, 1, "misaligned inside plugged blocks"},
        {B(4) + BLOCK / 2, 1, "misaligned"},
        {B(4), 0, "nb_blocks 0"},
        {0 - BLOCK, 2, "addr + size overflows"},
        {0 - BLOCK, 0xffff, "addr + size overflows (max nb_blocks)"},
        {usable_end - BLOCK, 2, "partly outside the usable region"},
        {usable_end, 1, "entirely outside the usable region, inside the region"},
        {REGION_ADDR + REGION_SIZE, 1, "after the region"},
        {B(0), 0xffff, "far beyond the usable region"},
        {REGION_ADDR - BLOCK, 1, "below the region"},
        {REGION_ADDR - BLOCK, 2, "starts below the region"},
        {0, 1, "guest address 0"},
    };
    const uint16_t types[] = {REQ_PLUG, REQ_UNPLUG, REQ_STATE};
    uint32_t gen = generation(fx);
    for (size_t t = 0; t < ARRAY_SIZE(types); t++) {
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
            int r = request(fx, types[t], bad[i].addr, bad[i].nb, NULL);
            if (r != RESP_ERROR)
                fail_msg("request type %u, %s: response %d, expected ERROR", types[t], bad[i].what,
                         r);
        }
    }
    /* Nothing changed. */
    check_sizes(fx, 768 * MiB, 4 * MiB, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(0), 2), S_PLUGGED);
    assert_int_equal(generation(fx), gen);
    /* The last block of U is fine. */
    assert_int_equal(plug(fx, usable_end - BLOCK, 1), RESP_ACK);
}

/* Row 2: PLUG with plugged_size + size > requested_size -> NACK (doc §1.1), not ERROR. */
static void test_plug_beyond_requested_is_nack(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 8 * MiB); /* 4 blocks; usable 264 MiB */
    assert_int_equal(plug(fx, B(0), 3), RESP_ACK);
    assert_int_equal(plug(fx, B(3), 2), RESP_NACK);
    assert_int_equal(plug(fx, B(3), 1), RESP_ACK);
    assert_int_equal(plug(fx, B(4), 1), RESP_NACK);
    check_sizes(fx, 264 * MiB, 8 * MiB, 8 * MiB);
    assert_int_equal(blocks_state(fx, B(4), 1), S_UNPLUGGED);
    /* The limit is an amount, not an address: a block far above 8 MiB is fine. */
    assert_int_equal(unplug(fx, B(0), 1), RESP_ACK);
    assert_int_equal(plug(fx, B(100), 1), RESP_ACK);
    check_sizes(fx, 264 * MiB, 8 * MiB, 8 * MiB);
}

/* Row 3: PLUG of a range with any block already plugged -> ERROR. */
static void test_plug_already_plugged_is_error(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(1), 1), RESP_ACK);
    uint32_t gen = generation(fx);
    assert_int_equal(plug(fx, B(1), 1), RESP_ERROR);
    assert_int_equal(plug(fx, B(0), 2), RESP_ERROR); /* partly plugged */
    assert_int_equal(plug(fx, B(1), 2), RESP_ERROR);
    assert_int_equal(plug(fx, B(0), 3), RESP_ERROR);
    check_sizes(fx, 768 * MiB, 2 * MiB, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(0), 1), S_UNPLUGGED);
    assert_int_equal(blocks_state(fx, B(2), 1), S_UNPLUGGED);
    assert_int_equal(generation(fx), gen);
}

/*
 * QEMU's order: range validity, then NACK, then block state.  A PLUG that is
 * both already plugged and beyond requested_size gets NACK; an invalid range
 * gets ERROR even when it is also beyond requested_size.
 */
static void test_check_order(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 4 * MiB); /* usable 260 MiB */
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(plug(fx, B(0), 1), RESP_NACK); /* plugged and beyond requested */
    assert_int_equal(plug(fx, B(1), 2), RESP_NACK);
    assert_int_equal(plug(fx, B(0) + 4 * KiB, 1), RESP_ERROR);          /* invalid + beyond */
    assert_int_equal(plug(fx, REGION_ADDR + 260 * MiB, 1), RESP_ERROR); /* outside U + beyond */
    assert_int_equal(plug(fx, B(2), 0), RESP_ERROR);
    check_sizes(fx, 260 * MiB, 4 * MiB, 4 * MiB);
}

/* Row 4: UNPLUG of a range with any block already unplugged -> ERROR. */
static void test_unplug_unplugged_is_error(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(unplug(fx, B(0), 1), RESP_ERROR); /* nothing plugged at all */
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(unplug(fx, B(2), 1), RESP_ERROR);
    assert_int_equal(unplug(fx, B(1), 2), RESP_ERROR); /* mixed */
    assert_int_equal(unplug(fx, B(0), 3), RESP_ERROR);
    check_sizes(fx, 768 * MiB, 4 * MiB, 512 * MiB);
    assert_int_equal(unplug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(unplug(fx, B(0), 1), RESP_ERROR); /* again */
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
}

/* UNPLUG is not limited by requested_size (§2.6, note under the table). */
static void test_unplug_not_limited_by_requested(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 4), RESP_ACK);
    resize(fx, 0); /* usable stays 768 MiB: it only shrinks on UNPLUG_ALL / reset */
    assert_int_equal(unplug(fx, B(0), 2), RESP_ACK);
    check_sizes(fx, 768 * MiB, 4 * MiB, 0);
    assert_int_equal(unplug(fx, B(3), 1), RESP_ACK);
    assert_int_equal(plug(fx, B(0), 1), RESP_NACK); /* but plugging is */
    check_sizes(fx, 768 * MiB, 2 * MiB, 0);
}

/* A tracker listener (a stand-in for a VFIO container) that counts and may refuse. */
static int cl_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct counting_listener *c = container_of(l, struct counting_listener, l);
    (void)gpa;
    c->populates++;
    if (c->refuse)
        return errf(err, errlen, "test listener refuses [%#llx, +%#llx)", (unsigned long long)gpa,
                    (unsigned long long)len);
    c->populated += len;
    return 0;
}

static int cl_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    struct counting_listener *c = container_of(l, struct counting_listener, l);
    (void)gpa;
    (void)err;
    (void)errlen;
    c->discards++;
    c->populated -= len;
    return 0;
}

static const struct mm_listener_ops cl_ops = {.populate = cl_populate, .discard = cl_discard};

/*
 * Row 5 / doc §1.2, §7.3: a listener refusing the populate (a failed DMA map)
 * -> BUSY, never ERROR; everything is rolled back: plugged_size, the block
 * states, the memslots, the listeners told before the refusing one.
 */
static void test_listener_refusal_is_busy(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct counting_listener first = {.l = {.ops = &cl_ops, .name = "first"}};
    struct counting_listener refuser = {.l = {.ops = &cl_ops, .name = "refuser"}};
    assert_int_equal(mm_tracker_register(&fx->m->tracker, &first.l, err, sizeof(err)), 0);
    assert_int_equal(mm_tracker_register(&fx->m->tracker, &refuser.l, err, sizeof(err)), 0);

    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
    assert_int_equal(first.populated, BLOCK);
    assert_int_equal(refuser.populated, BLOCK);
    unsigned slots = region_slots(fx);
    assert_int_equal(slots, 1);

    /* A run in the next, slot-less chunk: the memslot listener adds one, then must drop it. */
    uint64_t run = REGION_ADDR + CHUNK;
    refuser.refuse = true;
    assert_int_equal(plug(fx, run, 3), RESP_BUSY);
    check_sizes(fx, 768 * MiB, BLOCK, 512 * MiB);
    assert_int_equal(blocks_state(fx, run, 3), S_UNPLUGGED);
    assert_int_equal(region_slots(fx), slots);
    assert_int_equal(first.populates, 2);
    assert_int_equal(first.discards, 1); /* told to drop what it just populated */
    assert_int_equal(first.populated, BLOCK);
    assert_null(mm_gpa(&fx->vm.mem, run, BLOCK)); /* still not accessible */
    /* Counted, with the reason, in the status. */
    assert_int_equal(fx->m->refused_plugs, 1);
    assert_non_null(strstr(fx->m->last_refusal, "refuser refused"));
    assert_non_null(strstr(fx->m->last_refusal, "test listener refuses"));

    /* Later the guest retries and it works. */
    refuser.refuse = false;
    assert_int_equal(plug(fx, run, 3), RESP_ACK);
    check_sizes(fx, 768 * MiB, 4 * BLOCK, 512 * MiB);
    assert_int_equal(region_slots(fx), 2);
    assert_int_equal(first.populated, 4 * BLOCK);

    mm_tracker_unregister(&fx->m->tracker, &refuser.l);
    mm_tracker_unregister(&fx->m->tracker, &first.l);
}

/*
 * Every run of plugged or unplugged blocks costs the guard one host mapping:
 * a guest plugging alternate blocks gets BUSY before the region's budget is
 * used up (never a mapping the kernel refuses: an unplugged block left open),
 * and so does an unplug that would split a run past it.
 */
static void test_alternate_blocks_meet_mapping_budget(void **state)
{
    struct fixture *fx = *state;
    fx->budget.mappings = 8 + MM_GUARD_PIECE_SLACK;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 0);
    new_mem(fx, &o, REGION_ADDR);
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(1), 1), RESP_ACK);
    assert_int_equal(plug(fx, B(3), 1), RESP_ACK);
    assert_int_equal(plug(fx, B(5), 1), RESP_ACK); /* 7 runs */
    assert_int_equal(plug(fx, B(7), 1), RESP_BUSY);
    assert_int_equal(blocks_state(fx, B(7), 1), S_UNPLUGGED);
    assert_int_equal(fx->m->refused_plugs, 1);
    assert_non_null(strstr(fx->m->last_refusal, "vm.max_map_count"));
    /* Growing a run is fine. */
    assert_int_equal(plug(fx, B(6), 4), RESP_ACK);
    assert_int_equal(mm_tracker_runs(&fx->m->tracker), 7);
    /* Splitting [5, 10) would make 9 runs: BUSY, still plugged; its end may go. */
    assert_int_equal(unplug(fx, B(7), 1), RESP_BUSY);
    assert_int_equal(fx->m->refused_unplugs, 1);
    assert_int_equal(blocks_state(fx, B(5), 5), S_PLUGGED);
    assert_int_equal(unplug(fx, B(9), 1), RESP_ACK);
    /* UNPLUG_ALL always works: one run again. */
    assert_int_equal(unplug_all(fx), RESP_ACK);
    assert_int_equal(mm_tracker_runs(&fx->m->tracker), 1);
}

/* Row 6: ACK with plugged_size already updated when the response is produced. */
static void test_ack_updates_plugged_size(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(10), 3), RESP_ACK);
    assert_int_equal(fx->m->plugged_size, 3 * BLOCK);
    check_sizes(fx, 768 * MiB, 3 * BLOCK, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(10), 3), S_PLUGGED);
    assert_int_equal(unplug(fx, B(11), 1), RESP_ACK);
    assert_int_equal(fx->m->plugged_size, 2 * BLOCK);
    check_sizes(fx, 768 * MiB, 2 * BLOCK, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(10), 3), S_MIXED);
}

/* Rows 7: UNPLUG_ALL -> ACK, plugged_size 0, usable_region_size shrinks per policy (§2.4). */
static void test_unplug_all(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 4), RESP_ACK);
    assert_int_equal(plug(fx, B(100), 2), RESP_ACK); /* a second run, in another chunk */
    resize(fx, 128 * MiB);
    check_sizes(fx, 768 * MiB, 6 * BLOCK, 128 * MiB);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 384 * MiB, 0, 128 * MiB);
    assert_int_equal(blocks_state(fx, B(0), 128), S_UNPLUGGED);
    assert_int_equal(region_slots(fx), 0);
    /* With nothing plugged it is still an ACK. */
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 384 * MiB, 0, 128 * MiB);
    /* And the guest can plug again afterwards. */
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
}

/* Row 9: STATE on a valid range -> ACK + PLUGGED / UNPLUGGED / MIXED. */
static void test_state(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(0), 1), S_UNPLUGGED);
    assert_int_equal(blocks_state(fx, B(0), 384), S_UNPLUGGED); /* all of U */
    assert_int_equal(plug(fx, B(1), 2), RESP_ACK);
    assert_int_equal(blocks_state(fx, B(1), 1), S_PLUGGED);
    assert_int_equal(blocks_state(fx, B(1), 2), S_PLUGGED);
    assert_int_equal(blocks_state(fx, B(0), 1), S_UNPLUGGED);
    assert_int_equal(blocks_state(fx, B(3), 1), S_UNPLUGGED);
    assert_int_equal(blocks_state(fx, B(0), 2), S_MIXED);
    assert_int_equal(blocks_state(fx, B(2), 2), S_MIXED);
    assert_int_equal(blocks_state(fx, B(0), 4), S_MIXED);
    assert_int_equal(blocks_state(fx, B(0), 384), S_MIXED);
    /* STATE does not change anything. */
    check_sizes(fx, 768 * MiB, 2 * BLOCK, 512 * MiB);
}

/* An unknown request type is a protocol violation: -1, the caller sets DEVICE_NEEDS_RESET. */
static void test_unknown_type(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
    uint32_t gen = generation(fx);
    const uint16_t types[] = {4, 5, 0x100, 0x8000, 0xffff};
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        assert_int_equal(request(fx, types[i], B(1), 1, NULL), -1);
        assert_int_equal(request(fx, types[i], B(0), 1, NULL), -1);
    }
    check_sizes(fx, 768 * MiB, BLOCK, 512 * MiB);
    assert_int_equal(generation(fx), gen);
}

/* The device MUST ignore padding (§2.5): garbage there changes no answer. */
static void test_padding_ignored(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 4 * MiB);
    struct virtio_mem_req req;
    uint16_t st;
    const struct {
        uint16_t type;
        uint64_t addr;
        uint16_t nb;
        int resp;
        int state; /* -1: not a STATE request */
    } seq[] = {
        {REQ_STATE, B(0), 1, RESP_ACK, S_UNPLUGGED}, {REQ_PLUG, B(0), 1, RESP_ACK, -1},
        {REQ_PLUG, B(0), 1, RESP_ERROR, -1},         {REQ_STATE, B(0), 2, RESP_ACK, S_MIXED},
        {REQ_PLUG, B(1), 1, RESP_ACK, -1},           {REQ_STATE, B(0), 2, RESP_ACK, S_PLUGGED},
        {REQ_PLUG, B(2), 1, RESP_NACK, -1},          {REQ_PLUG, B(2) + 4096, 1, RESP_ERROR, -1},
        {REQ_UNPLUG, B(2), 1, RESP_ERROR, -1},       {REQ_UNPLUG, B(1), 1, RESP_ACK, -1},
        {REQ_UNPLUG_ALL, 0, 0, RESP_ACK, -1},        {REQ_STATE, B(0), 2, RESP_ACK, S_UNPLUGGED},
    };
    for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
        memset(&req, 0xff, sizeof(req)); /* padding, and UNPLUG_ALL's unused fields, all ones */
        req.type = htole16(seq[i].type);
        if (seq[i].type != REQ_UNPLUG_ALL) {
            req.addr = htole64(seq[i].addr);
            req.nb_blocks = htole16(seq[i].nb);
        }
        int r = send_req(fx, &req, &st);
        if (r != seq[i].resp)
            fail_msg("step %zu: response %d, expected %d", i, r, seq[i].resp);
        if (seq[i].state >= 0)
            assert_int_equal(st, seq[i].state);
    }
    check_sizes(fx, 260 * MiB, 0, 4 * MiB);
}

/* ======================================================================== */
/* 2. usable_region_size policy (doc §2.4)                                  */
/* ======================================================================== */

/* requested 0 at start: usable 0, so every request's range lies outside U. */
static void test_usable_zero_when_nothing_requested(void **state)
{
    struct fixture *fx = *state;
    check_sizes(fx, 0, 0, 0);
    assert_int_equal(plug(fx, B(0), 1), RESP_ERROR);
    assert_int_equal(state_resp(fx, B(0), 1), RESP_ERROR);
}

/* requested 512 MiB on a 4 GiB region at start: 512 MiB + 256 MiB of slack = 768 MiB. */
static void test_usable_at_init(void **state)
{
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", 4 * GiB, BLOCK, 512 * MiB);
    new_mem(fx, &o, REGION_ADDR);
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
    assert_int_equal(cfg_read64(fx, CFG_REGION_SIZE), 4 * GiB);
    assert_int_equal(blocks_state(fx, REGION_ADDR + 768 * MiB - BLOCK, 1), S_UNPLUGGED);
    assert_int_equal(state_resp(fx, REGION_ADDR + 768 * MiB, 1), RESP_ERROR);
}

/* Capped at region_size; growing by resize. */
static void test_usable_capped_at_region(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
    resize(fx, 900 * MiB);
    check_sizes(fx, REGION_SIZE, 0, 900 * MiB);
    resize(fx, REGION_SIZE);
    check_sizes(fx, REGION_SIZE, 0, REGION_SIZE);
    assert_int_equal(plug(fx, REGION_ADDR + REGION_SIZE - BLOCK, 1), RESP_ACK);
}

/* A resize down at run time does not shrink it (may shrink only on UNPLUG_ALL / system reset). */
static void test_usable_not_shrunk_by_resize(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    resize(fx, 128 * MiB);
    check_sizes(fx, 768 * MiB, 0, 128 * MiB);
    resize(fx, 0);
    check_sizes(fx, 768 * MiB, 0, 0);
    resize(fx, 600 * MiB); /* grows again past the old value */
    check_sizes(fx, 856 * MiB, 0, 600 * MiB);
    resize(fx, 2 * MiB);
    check_sizes(fx, 856 * MiB, 0, 2 * MiB);
}

/* UNPLUG_ALL and system reset shrink it back to the policy's value for requested_size. */
static void test_usable_shrunk_by_unplug_all_and_reset(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    resize(fx, 128 * MiB);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 384 * MiB, 0, 128 * MiB);

    resize(fx, 512 * MiB);
    resize(fx, 128 * MiB);
    check_sizes(fx, 768 * MiB, 0, 128 * MiB);
    system_reset(fx);
    check_sizes(fx, 384 * MiB, 0, 128 * MiB);

    resize(fx, 0);
    check_sizes(fx, 384 * MiB, 0, 0);
    system_reset(fx);
    check_sizes(fx, 0, 0, 0);
}

/* Always a multiple of block_size: 512 MiB blocks round requested + 256 MiB up. */
static void test_usable_rounded_to_block(void **state)
{
    struct fixture *fx = *state;
    const uint64_t blk = 512 * MiB;
    struct virtio_mem_options o = mem_opts("mem0", 4 * GiB, blk, 512 * MiB);
    new_mem(fx, &o, REGION_ADDR);
    check_sizes(fx, 1 * GiB, 0, 512 * MiB); /* 768 MiB rounded up */
    assert_int_equal(cfg_read64(fx, CFG_BLOCK_SIZE), blk);
    resize(fx, 1 * GiB);
    check_sizes(fx, 1536 * MiB, 0, 1 * GiB); /* 1.25 GiB rounded up */
    resize(fx, 3 * GiB + 512 * MiB);
    check_sizes(fx, 4 * GiB, 0, 3 * GiB + 512 * MiB); /* 3.75 GiB rounded up to the region */
    resize(fx, blk);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 1 * GiB, 0, 512 * MiB);
    assert_int_equal(plug(fx, REGION_ADDR + blk, 1), RESP_ACK); /* the rounded-up block is usable */
}

/* A region that is not a multiple of 256 MiB: the cap is the region, a multiple of the block. */
static void test_usable_odd_region(void **state)
{
    struct fixture *fx = *state;
    const uint64_t blk = 4 * MiB, size = 1 * GiB + 4 * MiB;
    struct virtio_mem_options o = mem_opts("mem0", size, blk, 900 * MiB);
    new_mem(fx, &o, REGION_ADDR);
    check_sizes(fx, size, 0, 900 * MiB);
    resize(fx, 4 * MiB);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 260 * MiB, 0, 4 * MiB);
    assert_int_equal(cfg_read64(fx, CFG_USABLE) % blk, 0);
}

/* ======================================================================== */
/* 3. ConfigGeneration and config-change interrupts (doc §2.3)              */
/* ======================================================================== */

/* ConfigGeneration changes whenever plugged_size, usable_region_size or requested_size does. */
static void test_generation_changes(void **state)
{
    struct fixture *fx = *state;
    uint32_t g = generation(fx);
    resize(fx, 512 * MiB);
    assert_int_not_equal(generation(fx), g);
    g = generation(fx);
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_not_equal(generation(fx), g);
    g = generation(fx);
    assert_int_equal(unplug(fx, B(1), 1), RESP_ACK);
    assert_int_not_equal(generation(fx), g);
    g = generation(fx);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    assert_int_not_equal(generation(fx), g);
    g = generation(fx);
    resize(fx, 0); /* requested changes, usable does not */
    assert_int_not_equal(generation(fx), g);
}

/* PLUG, UNPLUG and UNPLUG_ALL send no config-change interrupt (SHOULD NOT / MUST NOT). */
static void test_no_interrupt_for_plugged_size(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 512 * MiB);
    assert_int_equal(irq_count(fx), 1);
    mmio_write32(fx, REG_INT_ACK, INT_CONFIG);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0);

    assert_int_equal(plug(fx, B(0), 4), RESP_ACK);
    assert_int_equal(unplug(fx, B(0), 1), RESP_ACK);
    resize(fx, 128 * MiB);
    assert_int_equal(irq_count(fx), 1); /* the resize */
    mmio_write32(fx, REG_INT_ACK, INT_CONFIG);
    uint32_t g = generation(fx);
    assert_int_equal(unplug_all(fx), RESP_ACK); /* shrinks usable: still no notification */
    assert_int_not_equal(generation(fx), g);
    assert_int_equal(cfg_read64(fx, CFG_USABLE), 384 * MiB);
    assert_int_equal(irq_count(fx), 0);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0);
}

/* A resize notifies (InterruptStatus bit 1 + a pulse) only once DRIVER_OK is set. */
static void test_resize_interrupt_needs_driver_ok(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB); /* no driver at all */
    assert_int_equal(irq_count(fx), 0);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0);

    assert_int_equal(negotiate(fx, F_UNPLUGGED_INACCESSIBLE), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    setup_queue(fx);
    uint32_t g = generation(fx);
    resize(fx, 256 * MiB); /* FEATURES_OK, not yet DRIVER_OK */
    assert_int_not_equal(generation(fx), g);
    assert_int_equal(irq_count(fx), 0);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0);

    mmio_write32(fx, REG_STATUS, ST_LIVE);
    g = generation(fx);
    resize(fx, 300 * MiB);
    assert_int_not_equal(generation(fx), g);
    assert_int_equal(irq_count(fx), 1);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), INT_CONFIG);
    assert_true(status_bool(fx, "driver_ready"));

    mmio_write32(fx, REG_STATUS, 0); /* device reset: no driver again */
    resize(fx, 100 * MiB);
    assert_int_equal(irq_count(fx), 0);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0);
    assert_false(status_bool(fx, "driver_ready"));
}

/* ======================================================================== */
/* 4. Config space through MMIO (doc §2.2, §3.3)                            */
/* ======================================================================== */

static void test_config_space(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(5), 3), RESP_ACK);
    assert_int_equal(cfg_read64(fx, CFG_BLOCK_SIZE), BLOCK);
    assert_int_equal(cfg_read64(fx, CFG_ADDR), REGION_ADDR); /* high half 1: both reads count */
    assert_int_equal(mmio_read32(fx, REG_CONFIG + CFG_ADDR + 4), 1);
    assert_int_equal(cfg_read64(fx, CFG_REGION_SIZE), REGION_SIZE);
    assert_int_equal(cfg_read64(fx, CFG_USABLE), 768 * MiB);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), 3 * BLOCK);
    assert_int_equal(cfg_read64(fx, CFG_REQUESTED), 512 * MiB);
    /* node_id and padding (ACPI_PXM not offered): zero. */
    assert_int_equal(mmio_read32(fx, REG_CONFIG + CFG_NODE_ID), 0);
    assert_int_equal(mmio_read32(fx, REG_CONFIG + CFG_NODE_ID + 4), 0);
    /* An 8-byte access sees the same value. */
    uint8_t b[8];
    assert_true(
        bus_access(&fx->vm.mmio, fx->m->transport.base + REG_CONFIG + CFG_REQUESTED, b, 8, false));
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    assert_int_equal(v, 512 * MiB);
    /* The operator sees the same. */
    assert_int_equal(status_u64(fx, "addr"), REGION_ADDR);
    assert_int_equal(status_u64(fx, "region_size"), REGION_SIZE);
    assert_int_equal(status_u64(fx, "block_size"), BLOCK);
    /* The driver must not write the config space: writes are dropped. */
    mmio_write32(fx, REG_CONFIG + CFG_PLUGGED, 0);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), 3 * BLOCK);
}

/* ======================================================================== */
/* 5. Device reset and system reset (doc §2.7, §7.4)                        */
/* ======================================================================== */

/* Device reset (Status = 0) changes no block state, plugged_size or memslot. */
static void test_device_reset_keeps_blocks(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(plug(fx, REGION_ADDR + CHUNK, 1), RESP_ACK);
    fill_block(fx, B(0), 0x5a);
    unsigned slots = region_slots(fx);
    assert_int_equal(slots, 2);

    mmio_write32(fx, REG_STATUS, 0);
    assert_int_equal(mmio_read32(fx, REG_STATUS), 0);
    check_sizes(fx, 768 * MiB, 3 * BLOCK, 512 * MiB);
    assert_int_equal(blocks_state(fx, B(0), 2), S_PLUGGED);
    assert_int_equal(blocks_state(fx, REGION_ADDR + CHUNK, 1), S_PLUGGED);
    assert_int_equal(region_slots(fx), slots);
    const uint8_t *p = mm_gpa(&fx->vm.mem, B(0), BLOCK);
    assert_non_null(p);
    assert_int_equal(p[0], 0x5a);
    assert_int_equal(p[BLOCK - 1], 0x5a);

    /* The next driver finds plugged_size > 0 and sends UNPLUG_ALL (doc §2.7). */
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), 3 * BLOCK);
    assert_int_equal(unplug_all(fx), RESP_ACK);
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
}

/* System reset unplugs everything and gives the memory back (doc §2.7, §7.4). */
static void test_system_reset_unplugs_everything(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(plug(fx, REGION_ADDR + 2 * CHUNK, 4), RESP_ACK);
    fill_block(fx, B(1), 0xa5);
    fill_block(fx, REGION_ADDR + 2 * CHUNK, 0x3c);
    assert_true(resident_pages(fx, B(1), BLOCK) > 0);
    resize(fx, 128 * MiB);
    assert_int_equal(region_slots(fx), 2);
    uint32_t g = generation(fx);

    system_reset(fx);
    assert_int_equal(mmio_read32(fx, REG_STATUS), 0);
    check_sizes(fx, 384 * MiB, 0, 128 * MiB); /* usable per requested again */
    assert_int_not_equal(generation(fx), g);
    assert_int_equal(blocks_state(fx, B(0), 192), S_UNPLUGGED);
    assert_int_equal(region_slots(fx), 0);
    assert_int_equal(resident_pages(fx, B(0), 2 * BLOCK), 0);
    assert_int_equal(resident_pages(fx, REGION_ADDR + 2 * CHUNK, 4 * BLOCK), 0);
    assert_null(mm_gpa(&fx->vm.mem, B(1), 1)); /* unplugged memory is not accessible */
    assert_int_equal(irq_count(fx), 0);        /* nothing left over for the next boot */

    /* The next boot plugs again and finds zeroes, not the old contents. */
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    assert_int_equal(plug(fx, B(1), 1), RESP_ACK);
    assert_true(block_is_zero(fx, B(1)));
    assert_int_equal(plug(fx, REGION_ADDR + 2 * CHUNK, 1), RESP_ACK);
    assert_true(block_is_zero(fx, REGION_ADDR + 2 * CHUNK));
}

/* System reset also leaves "full" memslot mode: the next boot starts sparse (doc §7.5). */
static void test_system_reset_drops_full_slots(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, 0); /* without UNPLUGGED_INACCESSIBLE */
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
    system_reset(fx);
    assert_int_equal(region_slots(fx), 0);
    assert_false(status_bool(fx, "unplugged_inaccessible"));
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
}

/* UNPLUG gives the memory back to the host and the guest sees zeroes after a re-plug (§7.3). */
static void test_unplug_discards_memory(void **state)
{
    struct fixture *fx = *state;
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 3), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(0), 3 * BLOCK), 0); /* nothing touched yet */
    fill_block(fx, B(0), 0x11);
    fill_block(fx, B(1), 0x22);
    fill_block(fx, B(2), 0x33);
    assert_int_equal(resident_pages(fx, B(0), 3 * BLOCK), 3 * pages(BLOCK));

    assert_int_equal(unplug(fx, B(1), 1), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(1), BLOCK), 0);
    assert_int_equal(resident_pages(fx, B(0), BLOCK), pages(BLOCK)); /* neighbours kept */
    assert_int_equal(resident_pages(fx, B(2), BLOCK), pages(BLOCK));
    assert_null(mm_gpa(&fx->vm.mem, B(1), 1));

    assert_int_equal(plug(fx, B(1), 1), RESP_ACK);
    assert_true(block_is_zero(fx, B(1)));
    assert_int_equal(((uint8_t *)mm_gpa(&fx->vm.mem, B(2), 1))[0], 0x33);

    assert_int_equal(unplug_all(fx), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(0), 3 * BLOCK), 0);
}

/* ======================================================================== */
/* 6. Memslots and UNPLUGGED_INACCESSIBLE (doc §7.5)                        */
/* ======================================================================== */

/* Negotiated: only 128 MiB chunks with plugged blocks have slots; they go away on unplug. */
static void test_memslots_sparse(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    assert_true(status_bool(fx, "unplugged_inaccessible"));
    resize(fx, 512 * MiB);
    assert_int_equal(region_slots(fx), 0);

    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(region_slots(fx), 1);
    assert_int_equal(plug(fx, B(10), 1), RESP_ACK); /* same chunk */
    assert_int_equal(region_slots(fx), 1);
    /* A run across the boundary of chunks 1 and 2. */
    uint64_t across = REGION_ADDR + 2 * CHUNK - BLOCK;
    assert_int_equal(plug(fx, across, 2), RESP_ACK);
    assert_int_equal(region_slots(fx), 3);

    assert_int_equal(unplug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(region_slots(fx), 3); /* B(10) keeps chunk 0 */
    assert_int_equal(unplug(fx, B(10), 1), RESP_ACK);
    assert_int_equal(region_slots(fx), 2);
    assert_int_equal(unplug(fx, across, 1), RESP_ACK);
    assert_int_equal(region_slots(fx), 1);
    assert_int_equal(unplug(fx, across + BLOCK, 1), RESP_ACK);
    assert_int_equal(region_slots(fx), 0);
}

/* Not negotiated: every chunk of the region has a slot, plugged or not (reads must work). */
static void test_memslots_full(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, 0);
    assert_false(status_bool(fx, "unplugged_inaccessible"));
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
    assert_int_equal(unplug(fx, B(0), 2), RESP_ACK);
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
    /* The slots cover the whole region. */
    for (uint64_t c = 0; c < REGION_SIZE / CHUNK; c++) {
        bool found = false;
        for (unsigned i = 0; i < MM_MAX_SLOTS; i++) {
            const struct mm_slot *s = &fx->vm.mem.slots[i];
            if (s->used && s->gpa == REGION_ADDR + c * CHUNK && s->size == CHUNK &&
                s->hva == fx->m->backing.hva + c * CHUNK)
                found = true;
        }
        if (!found)
            fail_msg("no memslot for chunk %llu", (unsigned long long)c);
    }
}

/* A new driver after a device reset renegotiates: the slot mode follows its features. */
static void test_memslots_follow_renegotiation(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, 0);
    resize(fx, 512 * MiB);
    assert_int_equal(plug(fx, REGION_ADDR + 5 * CHUNK, 1), RESP_ACK);
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE); /* resets the device first */
    assert_int_equal(region_slots(fx), 1);     /* the plugged chunk keeps its slot */
    assert_true(block_is_zero(fx, REGION_ADDR + 5 * CHUNK));
    driver_init(fx, 0);
    assert_int_equal(region_slots(fx), REGION_SIZE / CHUNK);
}

/* ======================================================================== */
/* 7. virtio_mem_resize() validation                                        */
/* ======================================================================== */

static void expect_resize_refused(struct fixture *fx, uint64_t requested, const char *a,
                                  const char *b)
{
    char err[256] = "";
    uint32_t g = generation(fx);
    uint64_t usable = cfg_read64(fx, CFG_USABLE), req = cfg_read64(fx, CFG_REQUESTED);
    assert_int_equal(virtio_mem_resize(fx->m, requested, err, sizeof(err)), -1);
    if (!strstr(err, a) || !strstr(err, b) || !strstr(err, "mem0"))
        fail_msg("resize to %llu: message '%s' should name mem0, %s and %s",
                 (unsigned long long)requested, err, a, b);
    assert_int_equal(generation(fx), g);
    assert_int_equal(cfg_read64(fx, CFG_USABLE), usable);
    assert_int_equal(cfg_read64(fx, CFG_REQUESTED), req);
    assert_int_equal(irq_count(fx), 0);
}

static void test_resize_validation(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 512 * MiB);
    assert_int_equal(irq_count(fx), 1);
    expect_resize_refused(fx, 2 * GiB, "2 GiB", "1 GiB");               /* above the region */
    expect_resize_refused(fx, REGION_SIZE + BLOCK, "1.0 GiB", "1 GiB"); /* just above */
    expect_resize_refused(fx, 3 * MiB, "3 MiB", "2 MiB");               /* not a block multiple */
    expect_resize_refused(fx, 512 * MiB + 4 * KiB, "512.0 MiB", "2 MiB");
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
    /* The edges are fine. */
    resize(fx, REGION_SIZE);
    resize(fx, 0);
}

/* ======================================================================== */
/* 8. The full path through the virtqueue (doc §2.5, §3.4)                  */
/* ======================================================================== */

/* Check the 10-byte response in guest RAM and the used-ring entry for head 0. */
static void expect_response(struct fixture *fx, uint16_t used, uint16_t type, uint16_t st)
{
    uint8_t resp[16];
    assert_int_equal(used_idx(fx), used);
    uint64_t elem = USED_GPA + U_RING + 8ULL * ((used - 1) % QUEUE_SIZE);
    assert_int_equal(get32(fx, elem), 0);            /* id: the head descriptor */
    assert_int_equal(get32(fx, elem + 4), RESP_LEN); /* len: bytes written */
    assert_int_equal(mm_read(&fx->vm.mem, RESP_GPA, resp, sizeof(resp)), 0);
    assert_int_equal(resp[0] | resp[1] << 8, type);
    for (int i = 2; i < 8; i++)
        assert_int_equal(resp[i], 0); /* padding */
    assert_int_equal(resp[8] | resp[9] << 8, st);
    assert_int_equal(resp[10], 0xaa); /* nothing written past the response */
}

static void send_and_expect(struct fixture *fx, uint16_t type, uint64_t addr, uint16_t nb,
                            uint16_t resp, uint16_t st)
{
    uint8_t req[REQ_LEN];
    uint16_t used = used_idx(fx);
    make_req(req, type, addr, nb, 0);
    queue_request(fx, req, REQ_LEN, RESP_LEN);
    expect_response(fx, (uint16_t)(used + 1), resp, st);
    /* A used buffer: InterruptStatus bit 0 and one pulse, and no config-change bit. */
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), INT_USED);
    assert_int_equal(irq_count(fx), 1);
    mmio_write32(fx, REG_INT_ACK, INT_USED);
}

static void test_queue_full_path(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 8 * MiB);
    assert_int_equal(irq_count(fx), 1);
    mmio_write32(fx, REG_INT_ACK, INT_CONFIG);

    send_and_expect(fx, REQ_PLUG, B(0), 2, RESP_ACK, 0);
    check_sizes(fx, 264 * MiB, 2 * BLOCK, 8 * MiB);
    send_and_expect(fx, REQ_STATE, B(0), 2, RESP_ACK, S_PLUGGED);
    send_and_expect(fx, REQ_STATE, B(1), 2, RESP_ACK, S_MIXED);
    send_and_expect(fx, REQ_STATE, B(2), 1, RESP_ACK, S_UNPLUGGED);
    send_and_expect(fx, REQ_PLUG, B(2), 3, RESP_NACK, 0);
    send_and_expect(fx, REQ_PLUG, B(1), 1, RESP_ERROR, 0);
    send_and_expect(fx, REQ_UNPLUG, B(1), 1, RESP_ACK, 0);
    send_and_expect(fx, REQ_UNPLUG_ALL, 0, 0, RESP_ACK, 0);
    check_sizes(fx, 264 * MiB, 0, 8 * MiB);
    assert_int_equal(mmio_read32(fx, REG_STATUS), ST_LIVE);

    /* Padding full of garbage goes unnoticed on the wire too. */
    uint8_t req[REQ_LEN];
    uint16_t used = used_idx(fx);
    assert_int_equal(used, 8);
    make_req(req, REQ_PLUG, B(0), 1, 0xee);
    queue_request(fx, req, REQ_LEN, RESP_LEN);
    expect_response(fx, (uint16_t)(used + 1), RESP_ACK, 0);
}

/*
 * A listener whose populate waits until the test opens its gate: a DMA map
 * that takes long.  The main loop then runs on a thread of its own while
 * the test thread plays a vCPU.
 */
struct gate_listener {
    struct mm_listener l;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
    bool refuse; /* after the gate opens: refuse the populate (a failed DMA map) */
};

static int gate_populate(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err,
                         size_t errlen)
{
    struct gate_listener *g = container_of(l, struct gate_listener, l);
    (void)gpa, (void)len;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    bool refuse = g->refuse;
    pthread_mutex_unlock(&g->mu);
    if (refuse) {
        snprintf(err, errlen, "the gate refuses");
        return -1;
    }
    return 0;
}

static int gate_discard(struct mm_listener *l, uint64_t gpa, uint64_t len, char *err, size_t errlen)
{
    (void)l, (void)gpa, (void)len, (void)err, (void)errlen;
    return 0;
}

static const struct mm_listener_ops gate_ops = {.populate = gate_populate, .discard = gate_discard};

static void *main_loop_thread(void *arg)
{
    run_loop(arg);
    return NULL;
}

/* Post a PLUG of one block at B(0) and let a main-loop thread stop in the gate. */
static void plug_into_gate(struct fixture *fx, struct gate_listener *g, pthread_t *loop)
{
    char err[256];
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->l = (struct mm_listener){.ops = &gate_ops, .name = "slow dma"};
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 8 * MiB);
    assert_int_equal(mm_tracker_register(&fx->m->tracker, &g->l, err, sizeof(err)), 0);
    uint8_t req[REQ_LEN];
    make_req(req, REQ_PLUG, B(0), 1, 0);
    post_request(fx, req, REQ_LEN, RESP_LEN);
    alarm(30); /* a vCPU access that waits for the plug would block below for ever */
    assert_int_equal(pthread_create(loop, NULL, main_loop_thread, fx), 0);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void open_gate(struct gate_listener *g, pthread_t loop)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(loop, NULL);
    alarm(0);
}

/*
 * While a plug's listeners work (pinning 1 GiB takes seconds), the guest's
 * vCPUs still get answers from the device's registers: the old
 * plugged_size until the plug is done, then the new one with the ACK.
 */
static void test_registers_answer_during_a_long_plug(void **state)
{
    struct fixture *fx = *state;
    struct gate_listener g = {0};
    pthread_t loop;
    plug_into_gate(fx, &g, &loop);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), 0);
    assert_int_equal(mmio_read32(fx, REG_STATUS), ST_LIVE);
    assert_int_equal(used_idx(fx), 0);
    open_gate(&g, loop);
    expect_response(fx, 1, RESP_ACK, 0);
    assert_int_equal(cfg_read64(fx, CFG_PLUGGED), BLOCK);
    mm_tracker_unregister(&fx->m->tracker, &g.l);
}

/*
 * The driver resets the device while a plug is under way: the request is
 * void - not answered (the queue is the new driver's), and undone (the
 * blocks of a request never acknowledged stay unplugged).
 */
static void test_reset_during_a_long_plug_voids_it(void **state)
{
    struct fixture *fx = *state;
    struct gate_listener g = {0};
    pthread_t loop;
    plug_into_gate(fx, &g, &loop);
    mmio_write32(fx, REG_STATUS, 0);
    open_gate(&g, loop);
    assert_int_equal(used_idx(fx), 0);
    assert_int_equal(fx->m->void_requests, 1);
    assert_int_equal(fx->m->plugged_size, 0);
    assert_int_equal(mm_tracker_state(&fx->m->tracker, B(0), BLOCK), MM_BLOCKS_UNPLUGGED);
    assert_null(mm_gpa(&fx->vm.mem, B(0), BLOCK));
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS), 0); /* no used-buffer interrupt */
    mm_tracker_unregister(&fx->m->tracker, &g.l);
    /* A new driver starts from scratch and plugs as usual. */
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    (void)irq_count(fx); /* the pulses before the reset */
    send_and_expect(fx, REQ_PLUG, B(0), 1, RESP_ACK, 0);
}

/* Request i of a batch: its own descriptors 2i and 2i + 1 and buffers; published, no notify. */
static void post_batch_request(struct fixture *fx, unsigned i, uint16_t type, uint64_t addr,
                               uint16_t nb)
{
    const uint64_t req_gpa = 0x212000ULL + 32 * i, resp_gpa = 0x213000ULL + 16 * i;
    uint8_t req[REQ_LEN];
    make_req(req, type, addr, nb, 0);
    assert_int_equal(mm_write(&fx->vm.mem, req_gpa, req, REQ_LEN), 0);
    put64(fx, DESC_GPA + (2 * i) * D_SIZE, req_gpa);
    put32(fx, DESC_GPA + (2 * i) * D_SIZE + 8, REQ_LEN);
    put16(fx, DESC_GPA + (2 * i) * D_SIZE + 12, F_NEXT);
    put16(fx, DESC_GPA + (2 * i) * D_SIZE + 14, (uint16_t)(2 * i + 1));
    put64(fx, DESC_GPA + (2 * i + 1) * D_SIZE, resp_gpa);
    put32(fx, DESC_GPA + (2 * i + 1) * D_SIZE + 8, RESP_LEN);
    put16(fx, DESC_GPA + (2 * i + 1) * D_SIZE + 12, F_WRITE);
    put16(fx, AVAIL_GPA + A_RING + 2 * (fx->avail_idx % QUEUE_SIZE), (uint16_t)(2 * i));
    fx->avail_idx++;
    put16(fx, AVAIL_GPA + A_IDX, fx->avail_idx);
}

/*
 * One notification carries out at most VIRTIO_MEM_WORK_PER_NOTIFY bytes of
 * plugs, then lets the main loop serve others (signals, the control
 * socket) before it goes on: three 512 MiB plugs take two loop turns.
 */
static void test_work_per_notification_is_bounded(void **state)
{
    struct fixture *fx = *state;
    const uint64_t blk = 512 * MiB;
    struct virtio_mem_options o = mem_opts("mem0", 4 * GiB, blk, 4 * GiB);
    new_mem(fx, &o, REGION_ADDR);
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    assert_true(2 * blk >= VIRTIO_MEM_WORK_PER_NOTIFY && blk < VIRTIO_MEM_WORK_PER_NOTIFY);
    for (unsigned i = 0; i < 3; i++)
        post_batch_request(fx, i, REQ_PLUG, REGION_ADDR + i * blk, 1);
    mmio_write32(fx, REG_QUEUE_NOTIFY, 0);
    assert_int_equal(evloop_run_once(&fx->vm.loop, 0), 1);
    assert_int_equal(used_idx(fx), 2);
    assert_int_equal(fx->m->plugged_size, 2 * blk);
    assert_int_equal(evloop_run_once(&fx->vm.loop, 0), 1); /* notified again by the device */
    assert_int_equal(used_idx(fx), 3);
    assert_int_equal(fx->m->plugged_size, 3 * blk);
}

/*
 * The same when the plug fails as well (its DMA map refused): void, not
 * answered BUSY into the reset queue - which would leave the new driver
 * with DEVICE_NEEDS_RESET from the start.
 */
static void test_reset_during_a_failing_plug_voids_it(void **state)
{
    struct fixture *fx = *state;
    struct gate_listener g = {0};
    pthread_t loop;
    plug_into_gate(fx, &g, &loop);
    mmio_write32(fx, REG_STATUS, 0);
    g.refuse = true;
    open_gate(&g, loop);
    assert_int_equal(mmio_read32(fx, REG_STATUS), 0); /* no DEVICE_NEEDS_RESET */
    assert_int_equal(used_idx(fx), 0);
    assert_int_equal(fx->m->void_requests, 1);
    assert_int_equal(fx->m->refused_plugs, 0);
    assert_int_equal(mm_tracker_state(&fx->m->tracker, B(0), BLOCK), MM_BLOCKS_UNPLUGGED);
    mm_tracker_unregister(&fx->m->tracker, &g.l);
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    (void)irq_count(fx);
    send_and_expect(fx, REQ_PLUG, B(0), 1, RESP_ACK, 0);
}

/* A protocol violation: DEVICE_NEEDS_RESET, no used entry; after reset + re-init it works. */
static void expect_needs_reset_then_recovery(struct fixture *fx, const uint8_t *req,
                                             uint32_t req_len, uint32_t resp_len)
{
    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    resize(fx, 8 * MiB);
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
    (void)irq_count(fx);
    mmio_write32(fx, REG_INT_ACK, INT_CONFIG | INT_USED);

    queue_request(fx, req, req_len, resp_len);
    uint32_t st = mmio_read32(fx, REG_STATUS);
    assert_int_equal(st, ST_LIVE | ST_NEEDS_RESET);
    assert_int_equal(used_idx(fx), 0);
    assert_int_equal(mmio_read32(fx, REG_INT_STATUS) & INT_USED, 0);
    check_sizes(fx, 264 * MiB, BLOCK, 8 * MiB); /* the request did nothing */

    /* Further requests are ignored until the reset. */
    uint8_t good[REQ_LEN];
    make_req(good, REQ_STATE, B(0), 1, 0);
    queue_request(fx, good, REQ_LEN, RESP_LEN);
    assert_int_equal(used_idx(fx), 0);

    driver_init(fx, F_UNPLUGGED_INACCESSIBLE);
    (void)irq_count(fx);
    send_and_expect(fx, REQ_STATE, B(0), 1, RESP_ACK, S_PLUGGED); /* blocks kept */
    send_and_expect(fx, REQ_PLUG, B(1), 1, RESP_ACK, 0);
    check_sizes(fx, 264 * MiB, 2 * BLOCK, 8 * MiB);
}

static void test_queue_short_request(void **state)
{
    uint8_t req[REQ_LEN];
    make_req(req, REQ_PLUG, B(1), 1, 0);
    expect_needs_reset_then_recovery(*state, req, REQ_LEN - 8, RESP_LEN); /* no nb_blocks */
}

static void test_queue_short_response(void **state)
{
    uint8_t req[REQ_LEN];
    make_req(req, REQ_PLUG, B(1), 1, 0);
    expect_needs_reset_then_recovery(*state, req, REQ_LEN, RESP_LEN - 2); /* no state field */
}

static void test_queue_unknown_type(void **state)
{
    uint8_t req[REQ_LEN];
    make_req(req, 4, B(1), 1, 0);
    expect_needs_reset_then_recovery(*state, req, REQ_LEN, RESP_LEN);
}

/* ======================================================================== */
/* 9. prealloc=on and the memfd backend                                     */
/* ======================================================================== */

/* prealloc: the block is resident right after the PLUG, before the guest touched it. */
static void test_prealloc_populates_on_plug(void **state)
{
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 512 * MiB);
    o.prealloc = true;
    new_mem(fx, &o, REGION_ADDR);
    assert_int_equal(plug(fx, B(3), 2), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(3), 2 * BLOCK), 2 * pages(BLOCK));
    /*
     * Only the plugged blocks.  Not B(5): if the host mapping is not 2 MiB
     * aligned (kernels before 6.7, valgrind), a transparent huge page around
     * the end of B(4) may reach into it.
     */
    assert_int_equal(resident_pages(fx, B(10), BLOCK), 0);
    assert_true(block_is_zero(fx, B(3)));
    assert_int_equal(unplug(fx, B(3), 2), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(3), 2 * BLOCK), 0);
}

/*
 * Faults injected into the host calls of the plug path (the test binary is
 * linked with --wrap=mprotect,--wrap=madvise): the nth call from now of the
 * kind fails with the given errno.  Each must end in BUSY with nothing
 * changed and nothing left behind, never in a crash.
 */
static int fail_mprotect_in, fail_mprotect_errno;
static int fail_populate_in, fail_populate_errno;

int __real_mprotect(void *addr, size_t len, int prot);
int __wrap_mprotect(void *addr, size_t len, int prot)
{
    if (fail_mprotect_in > 0 && --fail_mprotect_in == 0) {
        errno = fail_mprotect_errno;
        return -1;
    }
    return __real_mprotect(addr, len, prot);
}

int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_POPULATE_WRITE && fail_populate_in > 0 && --fail_populate_in == 0) {
        errno = fail_populate_errno;
        return -1;
    }
    return __real_madvise(addr, len, advice);
}

static void expect_plug_fault_is_busy(struct fixture *fx, const char *why)
{
    uint64_t refused = fx->m->refused_plugs;
    assert_int_equal(plug(fx, B(4), 2), RESP_BUSY);
    assert_int_equal(fx->m->refused_plugs, refused + 1);
    if (!strstr(fx->m->last_refusal, why))
        fail_msg("last_refusal '%s' does not say '%s'", fx->m->last_refusal, why);
    assert_int_equal(blocks_state(fx, B(4), 2), S_UNPLUGGED);
    check_sizes(fx, 768 * MiB, BLOCK, 512 * MiB);
    assert_null(mm_gpa(&fx->vm.mem, B(4), BLOCK)); /* closed again, no memslot */
    assert_int_equal(resident_pages(fx, B(4), 2 * BLOCK), 0);
    assert_int_equal(mm_tracker_kept_bytes(&fx->m->tracker), 0);
    /* The fault is gone: the guest's retry works. */
    assert_int_equal(plug(fx, B(4), 2), RESP_ACK);
    assert_int_equal(unplug(fx, B(4), 2), RESP_ACK);
}

static void test_faults_in_the_plug_path(void **state)
{
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 512 * MiB);
    o.prealloc = true;
    new_mem(fx, &o, REGION_ADDR);
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);

    /* The guard cannot open the memory (mprotect: ENOMEM, too many mappings). */
    fail_mprotect_in = 1;
    fail_mprotect_errno = ENOMEM;
    expect_plug_fault_is_busy(fx, "Cannot allocate memory");
    /* Preallocation finds no memory, or a hole it cannot fill. */
    fail_populate_in = 1;
    fail_populate_errno = ENOMEM;
    expect_plug_fault_is_busy(fx, "cannot allocate memory");
    fail_populate_in = 1;
    fail_populate_errno = EFAULT;
    expect_plug_fault_is_busy(fx, "Bad address");
    /* Closing fails while a refused plug is rolled back: still BUSY, nothing plugged. */
    fail_populate_in = 1;
    fail_populate_errno = ENOMEM;
    fail_mprotect_in = 2; /* the open succeeds, the close of the rollback fails */
    fail_mprotect_errno = ENOMEM;
    assert_int_equal(plug(fx, B(4), 2), RESP_BUSY);
    assert_int_equal(blocks_state(fx, B(4), 2), S_UNPLUGGED);
    check_sizes(fx, 768 * MiB, BLOCK, 512 * MiB);
    assert_int_equal(resident_pages(fx, B(4), 2 * BLOCK), 0);
    fail_mprotect_in = fail_populate_in = 0;
}

/* prealloc + a refusing listener: BUSY, and the preallocated memory is given back. */
static void test_prealloc_busy_gives_memory_back(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 512 * MiB);
    o.prealloc = true;
    new_mem(fx, &o, REGION_ADDR);
    struct counting_listener refuser = {.l = {.ops = &cl_ops, .name = "refuser"}, .refuse = true};
    assert_int_equal(mm_tracker_register(&fx->m->tracker, &refuser.l, err, sizeof(err)), 0);
    assert_int_equal(plug(fx, B(3), 2), RESP_BUSY);
    assert_int_equal(resident_pages(fx, B(3), 2 * BLOCK), 0);
    check_sizes(fx, 768 * MiB, 0, 512 * MiB);
    mm_tracker_unregister(&fx->m->tracker, &refuser.l);
}

/*
 * A driver without UNPLUGGED_INACCESSIBLE may read unplugged blocks: on a
 * memfd every such read would allocate a page for good, so the device
 * refuses that driver (FEATURES_OK stays clear) and keeps the region closed.
 * Anonymous memory reads as the zero page: accepted.
 */
static void test_memfd_needs_unplugged_inaccessible(void **state)
{
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 512 * MiB);
    o.backend = MM_BACKING_MEMFD;
    new_mem(fx, &o, REGION_ADDR);
    assert_int_equal(negotiate(fx, 0), ST_ACK | ST_DRIVER);
    assert_false(fx->m->unplugged_inaccessible);
    assert_null(mm_gpa(&fx->vm.mem, B(4), BLOCK)); /* nothing readable */
    /* The same driver with the feature is fine. */
    assert_int_equal(negotiate(fx, F_UNPLUGGED_INACCESSIBLE), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    assert_true(fx->m->unplugged_inaccessible);
}

static void test_anon_accepts_readable_unplugged(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(negotiate(fx, 0), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    assert_false(fx->m->unplugged_inaccessible);
}

/* memfd: UNPLUG punches a hole, so the page cache pages go away. */
static void test_memfd_unplug_punches_hole(void **state)
{
    struct fixture *fx = *state;
    struct virtio_mem_options o = mem_opts("mem0", REGION_SIZE, BLOCK, 512 * MiB);
    o.backend = MM_BACKING_MEMFD;
    new_mem(fx, &o, REGION_ADDR);
    assert_true(fx->m->backing.fd >= 0);
    assert_int_equal(plug(fx, B(0), 2), RESP_ACK);
    fill_block(fx, B(0), 0x77);
    fill_block(fx, B(1), 0x88);
    assert_int_equal(resident_pages(fx, B(0), 2 * BLOCK), 2 * pages(BLOCK));
    assert_int_equal(unplug(fx, B(0), 1), RESP_ACK);
    assert_int_equal(resident_pages(fx, B(0), BLOCK), 0);
    assert_int_equal(resident_pages(fx, B(1), BLOCK), pages(BLOCK));
    assert_int_equal(plug(fx, B(0), 1), RESP_ACK);
    assert_true(block_is_zero(fx, B(0)));
    system_reset(fx);
    assert_int_equal(resident_pages(fx, B(0), 2 * BLOCK), 0);
}

/* ======================================================================== */
/* 10. Start-up checks through virtio_mem_create() (doc §4.1, §7.6)         */
/* ======================================================================== */

/* The guest CPU's physical address width, as the VM takes it from CPUID. */
static void set_phys_bits(struct fixture *fx, unsigned phys_bits)
{
    fx->vm.host.phys_bits = phys_bits;
}

static void add_cfg(struct fixture *fx, const char *id, uint64_t size, uint64_t addr)
{
    struct virtio_mem_options *o = &fx->opts[fx->nr_opts++];
    *o = mem_opts(id, size, BLOCK, 0);
    o->addr = addr;
}

/* virtio_mem_create() on the options added so far; what it creates joins fx->created. */
static int create_devices(struct fixture *fx, char *err, size_t errlen)
{
    struct virtio_mem *out[VIRTIO_MEM_MAX_DEVICES] = {NULL};
    int r = virtio_mem_create(&fx->vm.host, &fx->vm.virtio_mmio, fx->opts, fx->nr_opts, &fx->budget,
                              out, err, errlen);
    for (unsigned i = 0; i < fx->nr_opts && out[i]; i++)
        fx->created[fx->nr_created++] = out[i];
    return r;
}

static struct virtio_mem *find(struct fixture *fx, const char *id)
{
    return vm_ctl_find_virtio_mem(fx->created, fx->nr_created, id);
}

/* Two devices are placed one after the other above 4 GiB, 128 MiB aligned. */
static void test_create_places_devices(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    set_phys_bits(fx, PHYS_BITS);
    add_cfg(fx, "mem0", 130 * MiB, 0); /* not a multiple of 128 MiB */
    add_cfg(fx, "mem1", 256 * MiB, 0);
    if (create_devices(fx, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_create: %s", err);
    assert_int_equal(fx->nr_created, 2);
    struct virtio_mem *m0 = find(fx, "mem0");
    struct virtio_mem *m1 = find(fx, "mem1");
    assert_ptr_equal(m0, fx->created[0]); /* handed back in option order */
    assert_ptr_equal(m1, fx->created[1]);
    assert_null(find(fx, "mem2"));
    assert_null(find(fx, "")); /* ambiguous with two devices */
    /* Both joined the device list, in order. */
    assert_ptr_equal(fx->vm.devices, &m0->transport.dev);
    assert_ptr_equal(fx->vm.devices->next, &m1->transport.dev);
    assert_int_equal(m0->addr, 4 * GiB);
    assert_int_equal(m1->addr, 4 * GiB + 256 * MiB); /* after mem0's end, 128 MiB aligned */
    assert_int_equal(m1->addr % (128 * MiB), 0);
    assert_true(m1->addr >= m0->addr + m0->region_size);
    /* Each has its own transport window, and the config space says where the region is. */
    assert_int_not_equal(m0->transport.base, m1->transport.base);
    fx->m = m1;
    assert_int_equal(cfg_read64(fx, CFG_ADDR), m1->addr);
    assert_int_equal(cfg_read64(fx, CFG_REGION_SIZE), 256 * MiB);
}

/* With an IOMMU's IOVA ranges in the memory map, a region is placed inside one of them. */
static void test_create_places_inside_dma_spans(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    struct mm_map *map = fx->vm.host.mem;
    set_phys_bits(fx, 39);
    map->dma_spans[0] = (struct mm_span){0, 5 * GiB - 1};
    map->dma_spans[1] = (struct mm_span){6 * GiB, 16 * GiB - 1};
    map->nr_dma_spans = 2;
    add_cfg(fx, "mem0", 512 * MiB, 0); /* fits below the hole: 4 GiB */
    add_cfg(fx, "mem1", 1 * GiB, 0);   /* would cross the hole at 5 GiB: moved to 6 GiB */
    if (create_devices(fx, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_create: %s", err);
    assert_int_equal(find(fx, "mem0")->addr, 4 * GiB);
    assert_int_equal(find(fx, "mem1")->addr, 6 * GiB);
    /* No room left inside the spans: refused, saying so. */
    fx->nr_opts = 0;
    add_cfg(fx, "mem2", 16 * GiB, 0);
    assert_int_equal(create_devices(fx, err, sizeof(err)), -1);
    if (!strstr(err, "mem2") || !strstr(err, "IOMMU"))
        fail_msg("message should name mem2 and the IOMMU's ranges: %s", err);
    map->nr_dma_spans = 0;
}

/* A region ending above the guest's physical address width is refused, naming the width. */
static void test_create_refuses_beyond_phys_bits(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    set_phys_bits(fx, PHYS_BITS);
    add_cfg(fx, "mem0", 2 * GiB, (1ULL << PHYS_BITS) - 1 * GiB);
    assert_int_equal(create_devices(fx, err, sizeof(err)), -1);
    if (!strstr(err, "36-bit") || !strstr(err, "mem0"))
        fail_msg("message should name mem0 and the 36 address bits: %s", err);
    assert_int_equal(fx->nr_created, 0);
    assert_null(fx->vm.devices);
}

/* Ending exactly at 2^36 is fine; the limit follows the CPUID value. */
static void test_create_phys_bits_edges(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    set_phys_bits(fx, PHYS_BITS);
    add_cfg(fx, "mem0", 2 * GiB, (1ULL << PHYS_BITS) - 2 * GiB);
    if (create_devices(fx, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_create: %s", err);
    assert_int_equal(fx->nr_created, 1);
    assert_ptr_equal(find(fx, ""), fx->created[0]); /* "" names the only device */

    /* Starting at 2^36 is refused with 36 bits and fine with 39. */
    fx->nr_opts = 0;
    add_cfg(fx, "mem1", 2 * GiB, 1ULL << PHYS_BITS);
    assert_int_equal(create_devices(fx, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "36-bit"));
    assert_int_equal(fx->nr_created, 1);
    set_phys_bits(fx, 39);
    if (create_devices(fx, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_create with 39 bits: %s", err);
    assert_int_equal(fx->nr_created, 2);
}

/* addr= overlapping another region is refused, pointing at addr=. */
static void test_create_refuses_overlap(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    set_phys_bits(fx, PHYS_BITS);
    add_cfg(fx, "mem0", 1 * GiB, 4 * GiB);
    add_cfg(fx, "mem1", 256 * MiB, 4 * GiB + 512 * MiB);
    assert_int_equal(create_devices(fx, err, sizeof(err)), -1);
    if (!strstr(err, "mem1") || !strstr(err, "addr="))
        fail_msg("message should name mem1 and addr=: %s", err);
    assert_int_equal(fx->nr_created, 1); /* mem0 was handed back before mem1 failed */
    assert_int_equal(fx->created[0]->addr, 4 * GiB);
}

/* Automatic placement steps around a region given with addr=, even a later one. */
static void test_create_places_around_explicit(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    set_phys_bits(fx, PHYS_BITS);
    add_cfg(fx, "mem0", 1 * GiB, 0);
    add_cfg(fx, "mem1", 256 * MiB, 4 * GiB + 512 * MiB);
    add_cfg(fx, "mem2", 128 * MiB, 0);
    if (create_devices(fx, err, sizeof(err)) < 0)
        fail_msg("virtio_mem_create: %s", err);
    assert_int_equal(find(fx, "mem1")->addr, 4 * GiB + 512 * MiB);
    assert_int_equal(find(fx, "mem0")->addr, 4 * GiB + 768 * MiB);
    /* Later automatic regions go after everything placed so far (gaps are not filled). */
    assert_int_equal(find(fx, "mem2")->addr, 4 * GiB + 1792 * MiB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* 1. response codes */
        cmocka_unit_test_setup_teardown(test_invalid_range_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug_beyond_requested_is_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug_already_plugged_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_unplugged_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_not_limited_by_requested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_refusal_is_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_updates_plugged_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alternate_blocks_meet_mapping_budget, setup_bare,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registers_answer_during_a_long_plug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_during_a_long_plug_voids_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_during_a_failing_plug_voids_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_work_per_notification_is_bounded, setup_bare,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_memfd_needs_unplugged_inaccessible, setup_bare,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_anon_accepts_readable_unplugged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_padding_ignored, setup, teardown),
        /* 2. usable_region_size */
        cmocka_unit_test_setup_teardown(test_usable_zero_when_nothing_requested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usable_at_init, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_usable_capped_at_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usable_not_shrunk_by_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usable_shrunk_by_unplug_all_and_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_usable_rounded_to_block, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_usable_odd_region, setup_bare, teardown),
        /* 3. ConfigGeneration and interrupts */
        cmocka_unit_test_setup_teardown(test_generation_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_interrupt_for_plugged_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_interrupt_needs_driver_ok, setup, teardown),
        /* 4. config space */
        cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
        /* 5. resets and discard */
        cmocka_unit_test_setup_teardown(test_device_reset_keeps_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_reset_unplugs_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_reset_drops_full_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplug_discards_memory, setup, teardown),
        /* 6. memslots */
        cmocka_unit_test_setup_teardown(test_memslots_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memslots_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memslots_follow_renegotiation, setup, teardown),
        /* 7. resize validation */
        cmocka_unit_test_setup_teardown(test_resize_validation, setup, teardown),
        /* 8. the virtqueue path */
        cmocka_unit_test_setup_teardown(test_queue_full_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_short_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_short_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_unknown_type, setup, teardown),
        /* 9. prealloc and memfd */
        cmocka_unit_test_setup_teardown(test_prealloc_populates_on_plug, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_prealloc_busy_gives_memory_back, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_faults_in_the_plug_path, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_memfd_unplug_punches_hole, setup_bare, teardown),
        /* 10. start-up */
        cmocka_unit_test_setup_teardown(test_create_places_inside_dma_spans, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_create_places_devices, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_beyond_phys_bits, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_create_phys_bits_edges, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_overlap, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_create_places_around_explicit, setup_bare, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
