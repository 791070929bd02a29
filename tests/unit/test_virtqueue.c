/*
 * Unit tests for split virtqueues (devices/virtqueue.c).
 *
 * The tests play the driver: they lay out the descriptor table and the
 * available ring by hand in guest memory (mm_write, little endian, with the
 * VIRTIO 1.2 §2.7 offsets written out here independently of virtqueue.c)
 * and read the used ring back the same way.  No KVM is needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtqueue.h"
#include "mm/memmap.h"
#include "vmm/util.h"

#include "tests/unit/virtio_spec.h"

/* Guest memory and queue layout used by most tests. */
#define T_RAM   (64 * MiB)
#define T_QSIZE 256
#define T_DESC  0x10000ULL
#define T_AVAIL 0x20000ULL
#define T_USED  0x30000ULL
#define T_BUF   0x100000ULL /* buffers from 1 MiB on */

/* A device region whose accessibility a test can switch, like unplugged virtio-mem memory. */
#define T_GATED      (8 * GiB)
#define T_GATED_SIZE (2 * MiB)

struct fx {
    struct mm_map mem;
    struct virtq vq;
    uint16_t avail_idx; /* the driver's copy of avail->idx */
    struct virtq_chain chain;
    char err[256];
    /* Optional gated region. */
    bool gate_open;
    void *gated_hva;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    mm_map_init(&f->mem);
    if (mm_map_setup_ram(&f->mem, T_RAM, f->err, sizeof(f->err)) < 0) {
        free(f);
        return -1;
    }
    f->vq = (struct virtq){
        .size = T_QSIZE, .desc_gpa = T_DESC, .avail_gpa = T_AVAIL, .used_gpa = T_USED};
    f->vq.ready = true;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    mm_map_destroy(&f->mem);
    if (f->gated_hva)
        munmap(f->gated_hva, T_GATED_SIZE);
    free(f);
    return 0;
}

static bool gate_accessible(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)gpa;
    (void)len;
    return ((struct fx *)opaque)->gate_open;
}

/* Add [T_GATED, +T_GATED_SIZE), accessible while f->gate_open. */
static void add_gated_region(struct fx *f)
{
    f->gated_hva =
        mmap(NULL, T_GATED_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->gated_hva != MAP_FAILED);
    struct mm_region r = {.gpa = T_GATED,
                          .size = T_GATED_SIZE,
                          .type = MM_REGION_DEVICE,
                          .hva = f->gated_hva,
                          .name = "gated",
                          .accessible = gate_accessible,
                          .opaque = f};
    assert_int_equal(mm_map_add(&f->mem, &r, f->err, sizeof(f->err)), 0);
    f->gate_open = true;
}

static void put16(struct fx *f, uint64_t gpa, uint16_t v)
{
    uint16_t le = htole16(v);
    assert_int_equal(mm_write(&f->mem, gpa, &le, sizeof(le)), 0);
}

static void put32(struct fx *f, uint64_t gpa, uint32_t v)
{
    uint32_t le = htole32(v);
    assert_int_equal(mm_write(&f->mem, gpa, &le, sizeof(le)), 0);
}

static void put64(struct fx *f, uint64_t gpa, uint64_t v)
{
    uint64_t le = htole64(v);
    assert_int_equal(mm_write(&f->mem, gpa, &le, sizeof(le)), 0);
}

static uint16_t get16(struct fx *f, uint64_t gpa)
{
    uint16_t le;
    assert_int_equal(mm_read(&f->mem, gpa, &le, sizeof(le)), 0);
    return le16toh(le);
}

static uint32_t get32(struct fx *f, uint64_t gpa)
{
    uint32_t le;
    assert_int_equal(mm_read(&f->mem, gpa, &le, sizeof(le)), 0);
    return le32toh(le);
}

static void put_desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint64_t d = f->vq.desc_gpa + (uint64_t)i * D_SIZE;
    put64(f, d + D_ADDR, addr);
    put32(f, d + D_LEN, len);
    put16(f, d + D_FLAGS, flags);
    put16(f, d + D_NEXT, next);
}

static void set_avail_idx(struct fx *f, uint16_t idx)
{
    f->avail_idx = idx;
    put16(f, f->vq.avail_gpa + A_IDX, idx);
}

/* Write head into the next available slot without publishing it. */
static void stage(struct fx *f, uint16_t head, uint16_t *next)
{
    put16(f, f->vq.avail_gpa + A_RING + 2ULL * (*next % f->vq.size), head);
    (*next)++;
}

/* Make one chain available: ring entry, then the index. */
static void offer(struct fx *f, uint16_t head)
{
    uint16_t next = f->avail_idx;
    stage(f, head, &next);
    set_avail_idx(f, next);
}

static void used_elem(struct fx *f, uint16_t slot, uint32_t *id, uint32_t *len)
{
    uint64_t e = f->vq.used_gpa + U_RING + (uint64_t)slot * U_ELEM_SIZE;
    *id = get32(f, e);
    *len = get32(f, e + 4);
}

static uint16_t used_idx(struct fx *f)
{
    return get16(f, f->vq.used_gpa + U_IDX);
}

static enum virtq_pop_result pop(struct fx *f)
{
    f->err[0] = '\0';
    return virtq_pop(&f->vq, &f->mem, &f->chain, f->err, sizeof(f->err));
}

static int push(struct fx *f, uint16_t head, uint32_t written)
{
    return virtq_push(&f->vq, &f->mem, head, written);
}

static void assert_contains(const char *s, const char *want)
{
    if (!strstr(s, want))
        fail_msg("expected \"%s\" in \"%s\"", want, s);
}

/* The next pop must report a broken queue with want in the reason, and consume nothing. */
static void expect_broken(struct fx *f, const char *want)
{
    uint16_t before = f->vq.last_avail;
    assert_int_equal(pop(f), VIRTQ_BROKEN);
    assert_contains(f->err, want);
    assert_null(strchr(f->err, '\n'));
    assert_int_equal(f->vq.last_avail, before);
}

static void expect_chain(struct fx *f, uint16_t head)
{
    enum virtq_pop_result r = pop(f);
    if (r != VIRTQ_CHAIN)
        fail_msg("expected a chain, got %d (%s)", r, f->err);
    assert_int_equal(f->chain.head, head);
}

static void test_request_response(void **state)
{
    struct fx *f = *state;
    const uint64_t req_gpa = T_BUF, resp_gpa = T_BUF + 0x1000;
    uint8_t req[REQ_LEN], got[32], fill[16];
    for (unsigned i = 0; i < sizeof(req); i++)
        req[i] = (uint8_t)(i * 7 + 1);
    memset(fill, 0xee, sizeof(fill));
    assert_int_equal(mm_write(&f->mem, req_gpa, req, sizeof(req)), 0);
    assert_int_equal(mm_write(&f->mem, resp_gpa, fill, sizeof(fill)), 0);
    put_desc(f, 0, req_gpa, REQ_LEN, F_NEXT, 1);
    put_desc(f, 1, resp_gpa, RESP_LEN, F_WRITE, 0);
    offer(f, 0);

    expect_chain(f, 0);
    assert_int_equal(f->vq.last_avail, 1);
    assert_int_equal(f->chain.nr_out, 1);
    assert_int_equal(f->chain.nr_in, 1);
    assert_int_equal(f->chain.out_len, REQ_LEN);
    assert_int_equal(f->chain.in_len, RESP_LEN);
    assert_int_equal(f->chain.out[0].gpa, req_gpa);
    assert_int_equal(f->chain.out[0].len, REQ_LEN);
    assert_int_equal(f->chain.in[0].gpa, resp_gpa);
    assert_int_equal(f->chain.in[0].len, RESP_LEN);

    /* Read: the whole request, a tail, and nothing past the end. */
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, sizeof(got)), REQ_LEN);
    assert_memory_equal(got, req, REQ_LEN);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 20, got, 10), 4);
    assert_memory_equal(got, req + 20, 4);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, REQ_LEN, got, 1), 0);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, UINT64_MAX, got, 1), 0);

    /* Write: at most the 10 writable bytes; the guest byte after them is untouched. */
    uint8_t resp[16], back[16];
    for (unsigned i = 0; i < sizeof(resp); i++)
        resp[i] = (uint8_t)(0x40 + i);
    assert_int_equal(virtq_chain_write(&f->mem, &f->chain, 0, resp, sizeof(resp)), RESP_LEN);
    assert_int_equal(mm_read(&f->mem, resp_gpa, back, sizeof(back)), 0);
    assert_memory_equal(back, resp, RESP_LEN);
    assert_int_equal(back[RESP_LEN], 0xee);
    /* The device never writes into the readable part. */
    assert_int_equal(mm_read(&f->mem, req_gpa, got, REQ_LEN), 0);
    assert_memory_equal(got, req, REQ_LEN);

    assert_int_equal(push(f, 0, RESP_LEN), 0);
    assert_int_equal(used_idx(f), 1);
    assert_int_equal(f->vq.used_idx, 1);
    uint32_t id, len;
    used_elem(f, 0, &id, &len);
    assert_int_equal(id, 0);
    assert_int_equal(len, RESP_LEN);
    assert_int_equal(pop(f), VIRTQ_EMPTY);

    /* The driver reuses the descriptors: the second completion lands in slot 1. */
    offer(f, 0);
    expect_chain(f, 0);
    assert_int_equal(f->vq.last_avail, 2);
    assert_int_equal(push(f, 0, 3), 0);
    assert_int_equal(used_idx(f), 2);
    used_elem(f, 1, &id, &len);
    assert_int_equal(id, 0);
    assert_int_equal(len, 3);
}

static void test_empty_and_not_ready(void **state)
{
    struct fx *f = *state;
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, 0);

    put_desc(f, 0, T_BUF, 4, 0, 0);
    offer(f, 0);
    f->vq.ready = false; /* the device must not use the queue */
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, 0);
    f->vq.ready = true;
    expect_chain(f, 0);
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, 1);
}

static void test_several_chains_in_order(void **state)
{
    struct fx *f = *state;
    put_desc(f, 5, T_BUF, 8, F_NEXT, 7); /* readable 8 + writable 4 */
    put_desc(f, 7, T_BUF + 0x100, 4, F_WRITE, 0);
    put_desc(f, 2, T_BUF + 0x200, 16, F_WRITE, 0); /* writable only */
    put_desc(f, 9, T_BUF + 0x300, 3, 0, 0);        /* readable only */
    uint16_t next = f->avail_idx;
    stage(f, 5, &next);
    stage(f, 2, &next);
    stage(f, 9, &next);
    set_avail_idx(f, next); /* one batch, one index update */

    expect_chain(f, 5);
    assert_int_equal(f->chain.nr_out, 1);
    assert_int_equal(f->chain.nr_in, 1);
    expect_chain(f, 2);
    assert_int_equal(f->chain.nr_out, 0);
    assert_int_equal(f->chain.nr_in, 1);
    assert_int_equal(f->chain.in_len, 16);
    expect_chain(f, 9);
    assert_int_equal(f->chain.nr_out, 1);
    assert_int_equal(f->chain.nr_in, 0);
    assert_int_equal(f->chain.out_len, 3);
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, 3);

    /* Completion order is the device's choice. */
    assert_int_equal(push(f, 2, 16), 0);
    assert_int_equal(push(f, 5, 4), 0);
    assert_int_equal(push(f, 9, 0), 0);
    assert_int_equal(used_idx(f), 3);
    const uint32_t want[3][2] = {{2, 16}, {5, 4}, {9, 0}};
    for (uint16_t i = 0; i < 3; i++) {
        uint32_t id, len;
        used_elem(f, i, &id, &len);
        assert_int_equal(id, want[i][0]);
        assert_int_equal(len, want[i][1]);
    }
}

static void test_index_wraparound(void **state)
{
    struct fx *f = *state;
    f->vq.last_avail = 65534;
    f->vq.used_idx = 65534;
    put16(f, f->vq.used_gpa + U_IDX, 65534);
    set_avail_idx(f, 65534);
    for (uint16_t i = 0; i < 4; i++) {
        put_desc(f, i, T_BUF + 0x100ULL * i, 8, F_WRITE, 0);
        offer(f, i); /* ring slots 254, 255, 0, 1 */
    }
    assert_int_equal(f->avail_idx, 2);

    for (uint16_t i = 0; i < 4; i++) {
        expect_chain(f, i);
        assert_int_equal(f->chain.in[0].gpa, T_BUF + 0x100ULL * i);
        assert_int_equal(push(f, i, i + 1u), 0);
    }
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, 2);
    assert_int_equal(f->vq.used_idx, 2);
    assert_int_equal(used_idx(f), 2);
    const uint16_t slots[4] = {254, 255, 0, 1};
    for (uint16_t i = 0; i < 4; i++) {
        uint32_t id, len;
        used_elem(f, slots[i], &id, &len);
        assert_int_equal(id, i);
        assert_int_equal(len, i + 1u);
    }
}

static void test_copy_across_buffers(void **state)
{
    struct fx *f = *state;
    const uint64_t b0 = T_BUF, b1 = T_BUF + 0x1000, w0 = T_BUF + 0x2000, w1 = T_BUF + 0x3000;
    assert_int_equal(mm_write(&f->mem, b0, "ABCDE", 5), 0);
    assert_int_equal(mm_write(&f->mem, b1, "FGHIJKL", 7), 0);
    /* Zero-length descriptors with addresses outside memory: accepted and skipped. */
    put_desc(f, 0, b0, 5, F_NEXT, 1);
    put_desc(f, 1, 0xdead00000000ULL, 0, F_NEXT, 2);
    put_desc(f, 2, b1, 7, F_NEXT, 3);
    put_desc(f, 3, w0, 3, F_WRITE | F_NEXT, 4);
    put_desc(f, 4, UINT64_MAX, 0, F_WRITE | F_NEXT, 5);
    put_desc(f, 5, w1, 4, F_WRITE, 0);
    offer(f, 0);
    expect_chain(f, 0);
    assert_int_equal(f->chain.nr_out, 2);
    assert_int_equal(f->chain.nr_in, 2);
    assert_int_equal(f->chain.out_len, 12);
    assert_int_equal(f->chain.in_len, 7);

    char got[16] = {0};
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, sizeof(got)), 12);
    assert_memory_equal(got, "ABCDEFGHIJKL", 12);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 3, got, 4), 4);
    assert_memory_equal(got, "DEFG", 4);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 5, got, sizeof(got)), 7);
    assert_memory_equal(got, "FGHIJKL", 7);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 11, got, 5), 1);
    assert_int_equal(got[0], 'L');
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 12, got, 1), 0);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, 0), 0);

    /* A write at offset 2 spans the end of the first writable buffer. */
    assert_int_equal(virtq_chain_write(&f->mem, &f->chain, 2, "xyz", 3), 3);
    char w[4];
    assert_int_equal(mm_read(&f->mem, w0, w, 3), 0);
    assert_memory_equal(w, "\0\0x", 3);
    assert_int_equal(mm_read(&f->mem, w1, w, 4), 0);
    assert_memory_equal(w, "yz\0\0", 4);
    assert_int_equal(virtq_chain_write(&f->mem, &f->chain, 0, "01234567", 8), 7);
    assert_int_equal(mm_read(&f->mem, w1, w, 4), 0);
    assert_memory_equal(w, "3456", 4);
    assert_int_equal(virtq_chain_write(&f->mem, &f->chain, 7, "!", 1), 0);
}

static void test_zero_length_only(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, 0, 0, F_NEXT, 1);
    put_desc(f, 1, UINT64_MAX - 1, 0, F_WRITE, 0);
    offer(f, 0);
    expect_chain(f, 0);
    assert_int_equal(f->chain.nr_out, 0);
    assert_int_equal(f->chain.nr_in, 0);
    char c;
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, &c, 1), 0);
    assert_int_equal(virtq_chain_write(&f->mem, &f->chain, 0, &c, 1), 0);
}

static void test_buffer_at_end_of_ram(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_RAM - 16, 16, 0, 0); /* the last 16 bytes: fine */
    offer(f, 0);
    expect_chain(f, 0);
    put_desc(f, 1, T_RAM - 8, 16, 0, 0); /* straddles the end */
    offer(f, 1);
    expect_broken(f, "descriptor 1: buffer [0x3fffff8, +0x10) is outside accessible guest memory");
}

static void test_chain_max_length(void **state)
{
    struct fx *f = *state;
    /* A straight chain of exactly VIRTQ_CHAIN_MAX descriptors is accepted... */
    for (uint16_t i = 0; i < VIRTQ_CHAIN_MAX; i++)
        put_desc(f, i, T_BUF + i, 1, i + 1 < VIRTQ_CHAIN_MAX ? F_NEXT : 0, i + 1);
    offer(f, 0);
    expect_chain(f, 0);
    assert_int_equal(f->chain.nr_out, VIRTQ_CHAIN_MAX);
    assert_int_equal(f->chain.out_len, VIRTQ_CHAIN_MAX);
    uint8_t got[VIRTQ_CHAIN_MAX + 1];
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, sizeof(got)), VIRTQ_CHAIN_MAX);

    /* ...one more is not. */
    put_desc(f, VIRTQ_CHAIN_MAX - 1, T_BUF, 1, F_NEXT, VIRTQ_CHAIN_MAX);
    put_desc(f, VIRTQ_CHAIN_MAX, T_BUF, 1, 0, 0);
    offer(f, 0);
    expect_broken(f, "longer than 64 descriptors");
}

static void test_avail_jump_by_size(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 8, 0, 0);
    /* A full ring (idx moved by exactly size) is legal: the same head may even repeat. */
    set_avail_idx(f, T_QSIZE);
    for (unsigned i = 0; i < T_QSIZE; i++)
        expect_chain(f, 0);
    assert_int_equal(pop(f), VIRTQ_EMPTY);
    assert_int_equal(f->vq.last_avail, T_QSIZE);
}

static void test_loop_two(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 8, F_NEXT, 1);
    put_desc(f, 1, T_BUF, 8, F_NEXT, 0);
    offer(f, 0);
    expect_broken(f, "descriptor chain loops (descriptor 1 links back to descriptor 0)");
}

static void test_self_loop(void **state)
{
    struct fx *f = *state;
    put_desc(f, 3, T_BUF, 8, F_NEXT, 3);
    offer(f, 3);
    expect_broken(f, "descriptor chain loops (descriptor 3 links back to descriptor 3)");
}

static void test_loop_with_tail(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 8, F_NEXT, 1);
    put_desc(f, 1, T_BUF, 8, F_NEXT, 2);
    put_desc(f, 2, T_BUF, 8, F_NEXT, 3);
    put_desc(f, 3, T_BUF, 8, F_NEXT, 1);
    offer(f, 0);
    expect_broken(f, "descriptor 3 links back to descriptor 1");
}

static void test_loop_small_queue(void **state)
{
    struct fx *f = *state;
    /* In a queue of 4, a zero-length loop is caught at once, not after VIRTQ_CHAIN_MAX. */
    f->vq.size = 4;
    put_desc(f, 0, 0, 0, F_NEXT, 1);
    put_desc(f, 1, 0, 0, F_NEXT, 2);
    put_desc(f, 2, 0, 0, F_NEXT, 3);
    put_desc(f, 3, 0, 0, F_NEXT, 0);
    offer(f, 0);
    expect_broken(f, "loops (descriptor 3 links back to descriptor 0)");
}

static void test_next_out_of_range(void **state)
{
    struct fx *f = *state;
    put_desc(f, 4, T_BUF, 8, F_NEXT, 5);
    put_desc(f, 5, T_BUF, 8, F_NEXT, 300);
    offer(f, 4);
    expect_broken(f, "descriptor 5: next index 300 is outside the queue of 256 entries");
    /* Without F_NEXT the next field is ignored. */
    put_desc(f, 5, T_BUF, 8, 0, 300);
    expect_chain(f, 4);
}

static void test_head_out_of_range(void **state)
{
    struct fx *f = *state;
    offer(f, T_QSIZE);
    expect_broken(f, "head index 256 is outside the queue of 256 entries");
    f->vq.last_avail = f->avail_idx;
    offer(f, 0xffff);
    expect_broken(f, "head index 65535");
}

static void test_readable_after_writable(void **state)
{
    struct fx *f = *state;
    put_desc(f, 2, T_BUF, 8, F_WRITE | F_NEXT, 3);
    put_desc(f, 3, T_BUF + 8, 8, 0, 0);
    offer(f, 2);
    expect_broken(f, "device-readable descriptor 3 after a device-writable one");
    /* The order rule holds for zero-length descriptors too. */
    put_desc(f, 2, T_BUF, 0, F_WRITE | F_NEXT, 3);
    expect_broken(f, "device-readable descriptor 3 after a device-writable one");
}

static void test_indirect(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 32, F_INDIRECT, 0);
    offer(f, 0);
    expect_broken(f,
                  "descriptor 0: INDIRECT descriptor, but VIRTIO_F_INDIRECT_DESC was not offered");
    /* Also after normal descriptors, and with zero length. */
    put_desc(f, 0, T_BUF, 8, F_NEXT, 1);
    put_desc(f, 1, T_BUF, 0, F_INDIRECT | F_WRITE, 0);
    expect_broken(f, "descriptor 1: INDIRECT");
}

static void test_buffer_outside_memory(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_RAM, 16, 0, 0);
    offer(f, 0);
    expect_broken(f, "descriptor 0: buffer [0x4000000, +0x10) is outside accessible guest memory");
    put_desc(f, 0, 0xd0000000ULL, 1, 0, 0); /* in the 32-bit hole */
    expect_broken(f, "is outside accessible guest memory");
    put_desc(f, 0, T_BUF, UINT32_MAX, F_WRITE, 0); /* starts inside, far too long */
    expect_broken(f, "is outside accessible guest memory");
}

static void test_buffer_wraps(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 8, F_NEXT, 1);
    put_desc(f, 1, 0xffffffffffffff00ULL, 0x200, F_WRITE, 0);
    offer(f, 0);
    expect_broken(f, "descriptor 1: buffer [0xffffffffffffff00, +0x200) wraps around the 64-bit "
                     "address space");
}

static void test_avail_idx_jumps(void **state)
{
    struct fx *f = *state;
    put_desc(f, 0, T_BUF, 8, 0, 0);
    set_avail_idx(f, T_QSIZE + 44);
    expect_broken(f, "available index jumped by 300 (queue has 256 entries)");
    set_avail_idx(f, T_QSIZE + 1);
    expect_broken(f, "jumped by 257");
    /* Moving backwards looks like a jump by almost 65536. */
    f->vq.last_avail = 10;
    set_avail_idx(f, 9);
    expect_broken(f, "jumped by 65535");
}

static void test_chain_total_length(void **state)
{
    struct fx *f = *state;
    /* Descriptors of 960 MiB each need a bigger guest: 1 GiB, never touched. */
    mm_map_destroy(&f->mem);
    mm_map_init(&f->mem);
    assert_int_equal(mm_map_setup_ram(&f->mem, GiB, f->err, sizeof(f->err)), 0);
    const uint64_t big = 16 * MiB;
    const uint32_t big_len = 960 * MiB;

    /* 2 x 960 MiB readable + 2 x 960 MiB + (256 MiB - 1) writable = 0xffffffff: fits. */
    put_desc(f, 0, big, big_len, F_NEXT, 1);
    put_desc(f, 1, big, big_len, F_NEXT, 2);
    put_desc(f, 2, big, big_len, F_WRITE | F_NEXT, 3);
    put_desc(f, 3, big, big_len, F_WRITE | F_NEXT, 4);
    put_desc(f, 4, big, 256 * MiB - 1, F_WRITE, 5);
    offer(f, 0);
    expect_chain(f, 0);
    assert_int_equal(f->chain.out_len + f->chain.in_len, UINT32_MAX);

    /* One byte more does not. */
    put_desc(f, 4, big, 256 * MiB - 1, F_WRITE | F_NEXT, 5);
    put_desc(f, 5, big, 1, F_WRITE, 0);
    offer(f, 0);
    expect_broken(f, "descriptor 5: the chain is longer than 0xffffffff bytes in total");
}

static void test_rings_inaccessible_during_pop(void **state)
{
    struct fx *f = *state;
    /* Layout never checked (a buggy transport): every access is still checked. */
    f->vq.avail_gpa = T_RAM;
    expect_broken(f, "available index at 0x4000002 is outside accessible guest memory");

    /* Ring entry 2 lies past the end of RAM, the index before it does not. */
    f->vq.avail_gpa = T_RAM - 8;
    f->vq.last_avail = 2;
    set_avail_idx(f, 3);
    expect_broken(f, "available ring entry 2 at 0x4000000 is outside accessible guest memory");

    /* Descriptor 200 lies past the end of RAM, descriptor 0 does not. */
    f->vq.avail_gpa = T_AVAIL;
    f->vq.last_avail = 0;
    f->avail_idx = 0;
    f->vq.desc_gpa = T_RAM - 128 * D_SIZE;
    offer(f, 200);
    expect_broken(f, "descriptor 200 at 0x4000480 is outside accessible guest memory");

    /* Descriptor table address whose entries would wrap around 2^64. */
    f->vq.desc_gpa = 0xfffffffffffff000ULL;
    expect_broken(f, "descriptor table [0xfffffffffffff000, +0x1000) wraps around");

    /* A size the transport should have refused. */
    f->vq.desc_gpa = T_DESC;
    f->vq.size = 100;
    expect_broken(f, "queue size 100 is not a power of two");
    f->vq.size = 0;
    expect_broken(f, "queue size 0 is not a power of two");
}

static void test_gated_memory(void **state)
{
    struct fx *f = *state;
    add_gated_region(f);
    f->vq.used_gpa = T_GATED;
    assert_int_equal(virtq_check_layout(&f->vq, &f->mem, f->err, sizeof(f->err)), 0);

    /* Chain: 8 readable bytes in RAM, 8 in the gated region. */
    assert_int_equal(mm_write(&f->mem, T_BUF, "01234567", 8), 0);
    assert_int_equal(mm_write(&f->mem, T_GATED + 0x1000, "89abcdef", 8), 0);
    put_desc(f, 0, T_BUF, 8, F_NEXT, 1);
    put_desc(f, 1, T_GATED + 0x1000, 8, 0, 0);
    offer(f, 0);
    expect_chain(f, 0);
    char got[16];
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, sizeof(got)), 16);

    /* The region goes away between pop and use: reads stop short, push fails cleanly. */
    f->gate_open = false;
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 0, got, sizeof(got)), 8);
    assert_int_equal(virtq_chain_read(&f->mem, &f->chain, 8, got, sizeof(got)), 0);
    assert_int_equal(push(f, 0, 0), -1);
    assert_int_equal(f->vq.used_idx, 0);
    assert_int_equal(virtq_check_layout(&f->vq, &f->mem, f->err, sizeof(f->err)), -1);
    assert_contains(f->err, "used ring [0x200000000, +0x806) is outside accessible guest memory");

    /* Back again: the push goes through. */
    f->gate_open = true;
    assert_int_equal(push(f, 0, 0), 0);
    assert_int_equal(used_idx(f), 1);

    /* Descriptor table in the gated region, gone before the pop. */
    f->vq.desc_gpa = T_GATED + 0x10000;
    put_desc(f, 0, T_BUF, 8, 0, 0);
    offer(f, 0);
    f->gate_open = false;
    expect_broken(f, "descriptor 0 at 0x200010000 is outside accessible guest memory");
}

static void test_push_errors(void **state)
{
    struct fx *f = *state;
    assert_int_equal(push(f, T_QSIZE, 0), -1); /* head out of range */
    assert_int_equal(f->vq.used_idx, 0);
    f->vq.used_gpa = T_RAM - 4; /* flags and idx still inside, the elements are not */
    assert_int_equal(push(f, 0, 0), -1);
    assert_int_equal(f->vq.used_idx, 0);
    assert_int_equal(get16(f, T_RAM - 4 + U_IDX), 0); /* nothing published */
    f->vq.used_gpa = T_USED;
    virtq_reset(&f->vq); /* reset since the pop */
    assert_int_equal(push(f, 0, 0), -1);
    assert_int_equal(get16(f, T_USED + U_IDX), 0);
    /* A device's push succeeds again once the queue is set up again. */
    f->vq = (struct virtq){.size = T_QSIZE,
                           .desc_gpa = T_DESC,
                           .avail_gpa = T_AVAIL,
                           .used_gpa = T_USED,
                           .ready = true};
    assert_int_equal(push(f, 0, 0), 0);
    assert_int_equal(get16(f, T_USED + U_IDX), 1);
}

static int check(struct fx *f)
{
    f->err[0] = '\0';
    return virtq_check_layout(&f->vq, &f->mem, f->err, sizeof(f->err));
}

static void expect_layout_error(struct fx *f, const char *want)
{
    assert_int_equal(check(f), -1);
    assert_contains(f->err, want);
}

static void test_layout_size(void **state)
{
    struct fx *f = *state;
    assert_int_equal(check(f), 0);
    const uint16_t bad[] = {0, 3, 100, 255, 65535};
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        f->vq.size = bad[i];
        expect_layout_error(f, "is not a power of two between 1 and 32768");
    }
    f->vq.size = 1;
    assert_int_equal(check(f), 0);
    /* The largest queue: 512 KiB of descriptors, rings spaced out to fit. */
    f->vq.size = VIRTQ_MAX_SIZE;
    f->vq.desc_gpa = T_BUF;
    f->vq.avail_gpa = T_BUF + 0x100000;
    f->vq.used_gpa = T_BUF + 0x200000;
    assert_int_equal(check(f), 0);
}

static void test_layout_alignment(void **state)
{
    struct fx *f = *state;
    f->vq.desc_gpa = T_DESC + 8;
    expect_layout_error(f, "descriptor table at 0x10008 is not 16-byte aligned");
    f->vq.desc_gpa = T_DESC + 16;
    assert_int_equal(check(f), 0);
    f->vq.avail_gpa = T_AVAIL + 1;
    expect_layout_error(f, "available ring at 0x20001 is not 2-byte aligned");
    f->vq.avail_gpa = T_AVAIL + 2;
    assert_int_equal(check(f), 0);
    f->vq.used_gpa = T_USED + 2;
    expect_layout_error(f, "used ring at 0x30002 is not 4-byte aligned");
    f->vq.used_gpa = T_USED + 4;
    assert_int_equal(check(f), 0);
}

static void test_layout_bounds(void **state)
{
    struct fx *f = *state;
    /* Descriptor table: 16 * 256 bytes. */
    f->vq.desc_gpa = T_RAM - 16 * T_QSIZE;
    assert_int_equal(check(f), 0);
    f->vq.desc_gpa += 16;
    expect_layout_error(f, "descriptor table [0x3fff010, +0x1000) is outside accessible guest");
    f->vq.desc_gpa = T_DESC;

    /* Available ring: 6 + 2 * 256 bytes (used_event included), so 4 + 2 * 256 is not enough. */
    f->vq.avail_gpa = T_RAM - (6 + 2 * T_QSIZE);
    assert_int_equal(check(f), 0);
    f->vq.avail_gpa = T_RAM - (4 + 2 * T_QSIZE);
    expect_layout_error(f, "available ring [0x3fffdfc, +0x206) is outside accessible guest");
    f->vq.avail_gpa = T_AVAIL;

    /* Used ring: 6 + 8 * 256 bytes (avail_event included). */
    f->vq.used_gpa = T_RAM - (8 + 8 * T_QSIZE);
    assert_int_equal(check(f), 0);
    f->vq.used_gpa = T_RAM - (4 + 8 * T_QSIZE);
    expect_layout_error(f, "used ring [0x3fff7fc, +0x806) is outside accessible guest");
    f->vq.used_gpa = 0xd0000000ULL; /* 32-bit hole */
    expect_layout_error(f, "used ring [0xd0000000, +0x806) is outside accessible guest");
    f->vq.used_gpa = T_USED;

    /* Wrapping the address space. */
    f->vq.avail_gpa = 0xfffffffffffffffeULL;
    expect_layout_error(f, "available ring [0xfffffffffffffffe, +0x206) wraps around the 64-bit");
}

static void test_should_interrupt(void **state)
{
    struct fx *f = *state;
    put16(f, T_AVAIL + A_FLAGS, 0);
    assert_true(virtq_should_interrupt(&f->vq, &f->mem));
    put16(f, T_AVAIL + A_FLAGS, 1); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
    assert_false(virtq_should_interrupt(&f->vq, &f->mem));
    put16(f, T_AVAIL + A_FLAGS, 0xffff);
    assert_false(virtq_should_interrupt(&f->vq, &f->mem));
    put16(f, T_AVAIL + A_FLAGS, 0xfffe); /* only bit 0 counts */
    assert_true(virtq_should_interrupt(&f->vq, &f->mem));
    put16(f, T_AVAIL + A_FLAGS, 1);
    f->vq.avail_gpa = T_RAM; /* unreadable: interrupt rather than risk a lost one */
    assert_true(virtq_should_interrupt(&f->vq, &f->mem));
}

static void test_reset(void **state)
{
    struct fx *f = *state;
    f->vq.last_avail = 7;
    f->vq.used_idx = 9;
    virtq_reset(&f->vq);
    assert_false(f->vq.ready);
    assert_int_equal(f->vq.size, 0);
    assert_int_equal(f->vq.desc_gpa, 0);
    assert_int_equal(f->vq.avail_gpa, 0);
    assert_int_equal(f->vq.used_gpa, 0);
    assert_int_equal(f->vq.last_avail, 0);
    assert_int_equal(f->vq.used_idx, 0);
    assert_int_equal(pop(f), VIRTQ_EMPTY); /* not ready */
    assert_int_equal(check(f), -1);        /* size 0 */
}

/* xorshift64: a fixed sequence on every libc. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Everything virtq_pop() promises about a chain it returned. */
static void check_chain_invariants(struct fx *f)
{
    const struct virtq_chain *c = &f->chain;
    assert_true(c->head < f->vq.size);
    assert_true(c->nr_out + c->nr_in <= VIRTQ_CHAIN_MAX);
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < c->nr_out; i++) {
        assert_true(c->out[i].len > 0);
        assert_non_null(mm_gpa(&f->mem, c->out[i].gpa, c->out[i].len));
        out += c->out[i].len;
    }
    for (unsigned i = 0; i < c->nr_in; i++) {
        assert_true(c->in[i].len > 0);
        assert_non_null(mm_gpa(&f->mem, c->in[i].gpa, c->in[i].len));
        in += c->in[i].len;
    }
    assert_int_equal(out, c->out_len);
    assert_int_equal(in, c->in_len);
    assert_true(out + in <= UINT32_MAX);
}

/* A random descriptor, biased towards values that almost make sense. */
static void random_desc(struct fx *f, uint64_t *s, uint16_t i)
{
    uint64_t r = rnd(s);
    uint64_t addr = (r & 3) == 0 ? rnd(s) : T_BUF + rnd(s) % MiB;
    uint32_t len = (r & 0x1c) == 0 ? (uint32_t)rnd(s) : (uint32_t)(rnd(s) % 64);
    uint16_t flags = (uint16_t)(rnd(s) & ((r & 0x60) == 0 ? 0xffff : F_NEXT | F_WRITE));
    uint16_t next = (uint16_t)(rnd(s) % (f->vq.size + 2u));
    put_desc(f, i, addr, len, flags, next);
}

static void test_random_garbage(void **state)
{
    struct fx *f = *state;
    uint64_t s = 0x5eed1234abcdULL;
    unsigned seen[3] = {0};
    uint8_t scratch[256];
    f->vq.size = 16;
    for (unsigned round = 0; round < 3000; round++) {
        for (uint16_t i = 0; i < f->vq.size; i++) {
            random_desc(f, &s, i);
            put16(f, T_AVAIL + A_RING + 2ULL * i, (uint16_t)(rnd(&s) % (f->vq.size + 1u)));
        }
        f->vq.last_avail = (uint16_t)rnd(&s);
        uint16_t ahead = (uint16_t)(rnd(&s) % 8 == 0 ? rnd(&s) : rnd(&s) % (f->vq.size + 1u));
        set_avail_idx(f, (uint16_t)(f->vq.last_avail + ahead));

        enum virtq_pop_result r;
        unsigned pops = 0;
        while ((r = pop(f)) == VIRTQ_CHAIN) {
            check_chain_invariants(f);
            uint64_t off = rnd(&s) % 80;
            size_t rd = virtq_chain_read(&f->mem, &f->chain, off, scratch, sizeof(scratch));
            assert_true(rd <= sizeof(scratch));
            assert_true(rd == 0 || off + rd <= f->chain.out_len);
            size_t wr = virtq_chain_write(&f->mem, &f->chain, off, scratch, 16);
            assert_true(wr <= 16 && (wr == 0 || off + wr <= f->chain.in_len));
            assert_int_equal(push(f, f->chain.head, (uint32_t)wr), 0);
            seen[VIRTQ_CHAIN]++;
            pops++;
            assert_true(pops <= f->vq.size); /* at most one ring's worth per index update */
        }
        seen[r]++;
        if (r == VIRTQ_BROKEN)
            assert_true(f->err[0] != '\0');
    }
    /* The generator reaches every outcome (otherwise it tests too little). */
    assert_true(seen[VIRTQ_CHAIN] > 100);
    assert_true(seen[VIRTQ_EMPTY] > 100);
    assert_true(seen[VIRTQ_BROKEN] > 100);
}

struct mutator {
    struct fx *f;
    uint64_t seed;
    bool stop;
    unsigned writes;
};

/* The "driver" rewrites descriptors while the device walks them. */
static void *mutate(void *arg)
{
    struct mutator *m = arg;
    uint8_t *table = mm_gpa(&m->f->mem, T_DESC, (uint64_t)D_SIZE * m->f->vq.size);
    while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
        uint64_t r = rnd(&m->seed);
        uint8_t *d = table + (r % m->f->vq.size) * D_SIZE;
        switch ((r >> 8) % 4) {
        case 0:
            __atomic_store_n((uint64_t *)(d + D_ADDR),
                             htole64((r >> 16) % 8 ? T_BUF : rnd(&m->seed)), __ATOMIC_RELAXED);
            break;
        case 1:
            __atomic_store_n((uint32_t *)(d + D_LEN), htole32((uint32_t)(r >> 16) % 0x3000000),
                             __ATOMIC_RELAXED);
            break;
        case 2:
            __atomic_store_n((uint16_t *)(d + D_FLAGS), htole16((uint16_t)(r >> 16) & 3),
                             __ATOMIC_RELAXED);
            break;
        default:
            __atomic_store_n((uint16_t *)(d + D_NEXT), htole16((uint16_t)((r >> 16) % 10)),
                             __ATOMIC_RELAXED);
            break;
        }
        __atomic_fetch_add(&m->writes, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_concurrent_mutation(void **state)
{
    struct fx *f = *state;
    f->vq.size = 8;
    for (uint16_t i = 0; i < f->vq.size; i++)
        put_desc(f, i, T_BUF, 64, i + 1 < f->vq.size ? F_NEXT : 0, (uint16_t)(i + 1));
    struct mutator m = {.f = f, .seed = 0x1234567887654321ULL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, mutate, &m), 0);
    /*
     * The writer may not be scheduled alongside us on its own: every 100
     * pops, wait (a bounded time) until it has made progress, so that the
     * pops see many different, changing tables.
     */
    const unsigned nr_pops = 20000, batch = 100;
    const uint64_t deadline = now_ns() + 10000000000ULL;
    unsigned chains = 0, start = __atomic_load_n(&m.writes, __ATOMIC_RELAXED);
    for (unsigned pops = 0; pops < nr_pops; pops++) {
        if (pops % batch == 0) {
            unsigned target = __atomic_load_n(&m.writes, __ATOMIC_RELAXED) + batch;
            while (__atomic_load_n(&m.writes, __ATOMIC_RELAXED) < target && now_ns() < deadline)
                sched_yield();
        }
        offer(f, (uint16_t)(pops % f->vq.size));
        enum virtq_pop_result r = pop(f);
        if (r == VIRTQ_CHAIN) {
            check_chain_invariants(f);
            chains++;
        } else {
            assert_int_equal(r, VIRTQ_BROKEN);
            f->vq.last_avail = f->avail_idx; /* skip it, as a reset would */
        }
    }
    unsigned writes = __atomic_load_n(&m.writes, __ATOMIC_RELAXED) - start;
    __atomic_store_n(&m.stop, true, __ATOMIC_RELAXED);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(writes >= nr_pops); /* the race really happened */
    /* Both outcomes happen (a generator that always breaks the chain tests too little). */
    assert_true(chains > nr_pops / 20);
    assert_true(chains < nr_pops - nr_pops / 20);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_request_response),
        T(test_empty_and_not_ready),
        T(test_several_chains_in_order),
        T(test_index_wraparound),
        T(test_copy_across_buffers),
        T(test_zero_length_only),
        T(test_buffer_at_end_of_ram),
        T(test_chain_max_length),
        T(test_avail_jump_by_size),
        T(test_loop_two),
        T(test_self_loop),
        T(test_loop_with_tail),
        T(test_loop_small_queue),
        T(test_next_out_of_range),
        T(test_head_out_of_range),
        T(test_readable_after_writable),
        T(test_indirect),
        T(test_buffer_outside_memory),
        T(test_buffer_wraps),
        T(test_avail_idx_jumps),
        T(test_chain_total_length),
        T(test_rings_inaccessible_during_pop),
        T(test_gated_memory),
        T(test_push_errors),
        T(test_layout_size),
        T(test_layout_alignment),
        T(test_layout_bounds),
        T(test_should_interrupt),
        T(test_reset),
        T(test_random_garbage),
        T(test_concurrent_mutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
