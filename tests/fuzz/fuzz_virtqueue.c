/*
 * fuzz_virtqueue.c - libFuzzer target for the split-virtqueue walker
 * (devices/virtqueue.c): virtq_pop, virtq_chain_read/write, virtq_push,
 * virtq_should_interrupt and virtq_check_layout, over a guest memory whose
 * contents, queue geometry and ring indexes all come from the input.
 *
 * Guest memory (built once, refilled per input) has three regions: RAM at 0
 * (32 KiB), a "gated" region at 1 MiB of four 4 KiB blocks that open and
 * close like virtio-mem blocks (a closed block is PROT_NONE on the host, so
 * any access that bypasses the accessor crashes), and a region just below
 * 2^64 to catch address arithmetic that wraps.
 *
 * Input: [geometry][ops][memory image]
 *   u8 size: queue size 1 << (size % 9); if bit 7 is set a raw u16 follows
 *   3 x address (descriptor table, available ring, used ring): u8 selector
 *     (0 RAM, 1 gated, 2 top region, 3 a raw u64 follows) and a u16 offset
 *   u16 last_avail, u16 used_idx, u8 open-block mask, u8 number of ops
 *   ops: two bytes each (kind, argument), see run_op()
 *   the rest: RAM, then the gated blocks, then the top region.
 *
 * Checks the contract of virtqueue.h: a chain has at most VIRTQ_CHAIN_MAX
 * buffers, all non-empty and inside accessible memory, whose lengths add up
 * to out_len/in_len; its head is the available ring's entry; last_avail
 * moves by one per chain and never otherwise; copies never exceed the
 * chain; a push that succeeds publishes {head, written} at the right slot.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtqueue.h"
#include "mm/memmap.h"
#include "tests/fuzz/common/input.h"

#define RAM_GPA     0x0ULL
#define RAM_SIZE    0x8000ULL
#define GATED_GPA   0x100000ULL
#define GATE_BLOCK  0x1000ULL
#define GATE_BLOCKS 4
#define TOP_GPA     0xffffffffffff0000ULL
#define TOP_SIZE    0x4000ULL
#define MAX_OPS     64
#define COPY_MAX    4096

static struct mm_map mem;
static uint8_t *ram, *gated, *top;
static bool open_block[GATE_BLOCKS];
static uint8_t copy_buf[COPY_MAX];

static bool gated_accessible(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)opaque;
    for (uint64_t b = (gpa - GATED_GPA) / GATE_BLOCK; b <= (gpa - GATED_GPA + len - 1) / GATE_BLOCK;
         b++)
        if (b >= GATE_BLOCKS || !open_block[b])
            return false;
    return true;
}

static uint8_t *map_anon(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FUZZ_CHECK(p != MAP_FAILED, "mmap of %llu bytes", (unsigned long long)size);
    return p;
}

static void add_region(uint64_t gpa, uint64_t size, uint8_t *hva, const char *name,
                       bool (*accessible)(void *, uint64_t, uint64_t))
{
    char err[256];
    struct mm_region r = {.gpa = gpa,
                          .size = size,
                          .type = MM_REGION_DEVICE,
                          .hva = hva,
                          .name = name,
                          .accessible = accessible};
    FUZZ_CHECK(mm_map_add(&mem, &r, err, sizeof(err)) == 0, "mm_map_add: %s", err);
}

/* Once per process: the map never changes, only the contents and the gates do. */
static void setup_memory(void)
{
    if (ram)
        return;
    mm_map_init(&mem);
    ram = map_anon(RAM_SIZE);
    gated = map_anon(GATE_BLOCK * GATE_BLOCKS);
    top = map_anon(TOP_SIZE);
    add_region(RAM_GPA, RAM_SIZE, ram, "ram", NULL);
    add_region(GATED_GPA, GATE_BLOCK * GATE_BLOCKS, gated, "gated", gated_accessible);
    add_region(TOP_GPA, TOP_SIZE, top, "top", NULL);
}

static void gate(unsigned b, bool open)
{
    FUZZ_CHECK(mprotect(gated + b * GATE_BLOCK, GATE_BLOCK,
                        open ? PROT_READ | PROT_WRITE : PROT_NONE) == 0,
               "mprotect");
    open_block[b] = open;
}

static uint64_t read_addr(struct fuzz_in *in)
{
    static const uint64_t bases[] = {RAM_GPA, GATED_GPA, TOP_GPA};
    uint8_t sel = in_u8(in) & 3;
    uint16_t off = in_u16(in);
    if (sel == 3)
        return in_u64(in);
    return bases[sel] + off;
}

/* Fill the whole memory: the image from the input, zeroes after it. */
static void load_memory(struct fuzz_in *in)
{
    for (unsigned b = 0; b < GATE_BLOCKS; b++)
        gate(b, true);
    memset(ram, 0, RAM_SIZE);
    memset(gated, 0, GATE_BLOCK * GATE_BLOCKS);
    memset(top, 0, TOP_SIZE);
    in_bytes(in, ram, RAM_SIZE);
    in_bytes(in, gated, GATE_BLOCK * GATE_BLOCKS);
    in_bytes(in, top, TOP_SIZE);
}

static bool load16(uint64_t gpa, uint16_t *v)
{
    return mm_read(&mem, gpa, v, 2) == 0;
}

/* The contract of a chain virtq_pop() returned. */
static void check_chain(const struct virtq *vq, const struct virtq_chain *c, uint16_t expect_head)
{
    FUZZ_CHECK(c->head < vq->size, "head %u, size %u", c->head, vq->size);
    FUZZ_CHECK(c->head == expect_head, "head %u, ring says %u", c->head, expect_head);
    FUZZ_CHECK(c->nr_out <= VIRTQ_CHAIN_MAX && c->nr_in <= VIRTQ_CHAIN_MAX &&
                   c->nr_out + c->nr_in <= VIRTQ_CHAIN_MAX,
               "%u + %u buffers", c->nr_out, c->nr_in);
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < c->nr_out; i++) {
        FUZZ_CHECK(c->out[i].len > 0, "empty readable buffer %u", i);
        FUZZ_CHECK(mm_gpa(&mem, c->out[i].gpa, c->out[i].len) != NULL,
                   "readable buffer %u [%#llx, +%#x) not accessible", i,
                   (unsigned long long)c->out[i].gpa, c->out[i].len);
        out += c->out[i].len;
    }
    for (unsigned i = 0; i < c->nr_in; i++) {
        FUZZ_CHECK(c->in[i].len > 0, "empty writable buffer %u", i);
        FUZZ_CHECK(mm_gpa(&mem, c->in[i].gpa, c->in[i].len) != NULL,
                   "writable buffer %u [%#llx, +%#x) not accessible", i,
                   (unsigned long long)c->in[i].gpa, c->in[i].len);
        in += c->in[i].len;
    }
    FUZZ_CHECK(out == c->out_len && in == c->in_len,
               "lengths %llu/%llu, buffers add up to %llu/%llu", (unsigned long long)c->out_len,
               (unsigned long long)c->in_len, (unsigned long long)out, (unsigned long long)in);
    FUZZ_CHECK(out + in <= UINT32_MAX, "chain of %llu bytes", (unsigned long long)(out + in));
}

/* Copy through the chain at an offset chosen by arg; the result never exceeds the part. */
static void copy_chain(const struct virtq_chain *c, uint8_t arg, bool write)
{
    uint64_t part = write ? c->in_len : c->out_len;
    uint64_t offset = (arg & 0x0f) * (part / 16 + 1) / 2;
    size_t len = (size_t)(arg >> 4) * 300 + 1;
    if (len > COPY_MAX)
        len = COPY_MAX;
    size_t got;
    if (write) {
        memset(copy_buf, arg, len);
        got = virtq_chain_write(&mem, c, offset, copy_buf, len);
    } else {
        got = virtq_chain_read(&mem, c, offset, copy_buf, len);
    }
    uint64_t room = offset < part ? part - offset : 0;
    FUZZ_CHECK(got <= len && got <= room, "copied %zu of %zu at %llu in a part of %llu", got, len,
               (unsigned long long)offset, (unsigned long long)part);
    FUZZ_CHECK(got == (len < room ? len : room),
               "short copy (%zu of %zu) while every buffer is accessible", got, len);
}

/* Push and check what the used ring now says. */
static void push(struct virtq *vq, uint16_t head, uint32_t written)
{
    uint16_t before = vq->used_idx;
    if (virtq_push(vq, &mem, head, written) < 0) {
        FUZZ_CHECK(vq->used_idx == before, "a failed push moved used_idx");
        return;
    }
    FUZZ_CHECK(head < vq->size, "pushed head %u into a queue of %u", head, vq->size);
    FUZZ_CHECK(vq->used_idx == (uint16_t)(before + 1), "used_idx %u after %u", vq->used_idx,
               before);
    uint64_t elem = vq->used_gpa + 4 + 8ULL * (before & (vq->size - 1));
    uint32_t id = 0, len = 0;
    uint16_t idx = 0;
    FUZZ_CHECK(mm_read(&mem, elem, &id, 4) == 0 && mm_read(&mem, elem + 4, &len, 4) == 0 &&
                   load16(vq->used_gpa + 2, &idx),
               "the used ring written to is not accessible");
    FUZZ_CHECK(id == head && len == written, "used element {%u, %u}, pushed {%u, %u}", id, len,
               head, written);
    FUZZ_CHECK(idx == vq->used_idx, "used index %u published, %u expected", idx, vq->used_idx);
}

static void pop(struct virtq *vq, uint8_t arg)
{
    struct virtq_chain c;
    char err[256];
    uint16_t before = vq->last_avail;
    uint16_t expect_head = 0xffff;
    if (vq->size && (vq->size & (vq->size - 1)) == 0)
        load16(vq->avail_gpa + 4 + 2ULL * (before & (vq->size - 1)), &expect_head);
    enum virtq_pop_result r = virtq_pop(vq, &mem, &c, err, sizeof(err));
    if (r != VIRTQ_CHAIN) {
        FUZZ_CHECK(vq->last_avail == before, "last_avail moved without a chain");
        FUZZ_CHECK(r == VIRTQ_EMPTY || r == VIRTQ_BROKEN, "result %d", r);
        if (r == VIRTQ_BROKEN)
            FUZZ_CHECK(strlen(err) > 0, "broken without a reason");
        return;
    }
    FUZZ_CHECK(vq->ready, "a chain from a queue that is not ready");
    FUZZ_CHECK(vq->last_avail == (uint16_t)(before + 1), "last_avail %u after %u", vq->last_avail,
               before);
    check_chain(vq, &c, expect_head);
    copy_chain(&c, arg, false);
    copy_chain(&c, (uint8_t)(arg * 7 + 3), true);
    push(vq, c.head, (uint32_t)c.in_len);
}

static void run_op(struct virtq *vq, uint8_t kind, uint8_t arg)
{
    char err[256];
    switch (kind % 8) {
    case 0:
    case 1:
        pop(vq, arg);
        break;
    case 2:
        gate(arg % GATE_BLOCKS, !open_block[arg % GATE_BLOCKS]);
        break;
    case 3:
        push(vq, arg, arg * 16u);
        break;
    case 4:
        virtq_should_interrupt(vq, &mem);
        break;
    case 5:
        if (virtq_check_layout(vq, &mem, err, sizeof(err)) == 0) {
            FUZZ_CHECK(mm_gpa(&mem, vq->desc_gpa, 16ULL * vq->size) != NULL &&
                           mm_gpa(&mem, vq->avail_gpa, 6 + 2ULL * vq->size) != NULL &&
                           mm_gpa(&mem, vq->used_gpa, 6 + 8ULL * vq->size) != NULL,
                       "layout accepted with an area outside accessible memory");
        }
        break;
    case 6: {
        /* The driver makes arg more entries available. */
        uint16_t idx;
        if (load16(vq->avail_gpa + 2, &idx)) {
            idx = (uint16_t)(idx + arg);
            mm_write(&mem, vq->avail_gpa + 2, &idx, 2);
        }
        break;
    }
    default:
        for (unsigned i = 0; i < VIRTQ_CHAIN_MAX && vq->ready; i++) {
            uint16_t before = vq->last_avail;
            pop(vq, (uint8_t)(arg + i));
            if (vq->last_avail == before)
                break;
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in_make(data, size);
    struct virtq vq;
    uint8_t ops[2 * MAX_OPS];

    setup_memory();
    virtq_reset(&vq);
    uint8_t s = in_u8(&in);
    vq.size = (uint16_t)(1u << (s % 9));
    if (s & 0x80)
        vq.size = in_u16(&in);
    vq.desc_gpa = read_addr(&in);
    vq.avail_gpa = read_addr(&in);
    vq.used_gpa = read_addr(&in);
    vq.last_avail = in_u16(&in);
    vq.used_idx = in_u16(&in);
    uint8_t mask = in_u8(&in);
    unsigned nops = in_u8(&in) % (MAX_OPS + 1);
    memset(ops, 0, sizeof(ops));
    in_bytes(&in, ops, 2 * nops);
    load_memory(&in);
    for (unsigned b = 0; b < GATE_BLOCKS; b++)
        gate(b, mask & (1u << b));
    vq.ready = true;

    for (unsigned i = 0; i < nops; i++)
        run_op(&vq, ops[2 * i], ops[2 * i + 1]);
    return 0;
}
