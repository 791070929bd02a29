/*
 * virtqueue.h - split virtqueues (VIRTIO 1.x §2.7), device side.
 *
 * The transport (virtio_mmio.c) owns one struct virtq per queue and fills in
 * size and ring addresses from the driver's register writes; when the driver
 * sets QueueReady it calls virtq_check_layout().  The device model (e.g.
 * virtio_mem.c) then consumes requests on the main thread:
 *
 *     struct virtq_chain c;
 *     while ((r = virtq_pop(vq, mem, &c, err, sizeof(err))) == VIRTQ_CHAIN) {
 *         virtq_chain_read(mem, &c, 0, &req, sizeof(req));   // device-readable part
 *         ...
 *         virtq_chain_write(mem, &c, 0, &resp, sizeof(resp)); // device-writable part
 *         virtq_push(vq, mem, c.head, sizeof(resp));
 *     }
 *     if (r == VIRTQ_BROKEN) -> set DEVICE_NEEDS_RESET (err says why)
 *
 * The guest is hostile: every index, address, length and flag read from guest
 * memory is validated here, through the bounds-checked accessor (mm_gpa), and
 * a bad chain is reported as VIRTQ_BROKEN, never a crash.  All functions are
 * called by one thread at a time per queue (the caller serialises).
 */
#ifndef MINIVMM_DEVICES_VIRTQUEUE_H
#define MINIVMM_DEVICES_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/memmap.h"

#define VIRTQ_MAX_SIZE  32768 /* largest queue size the spec allows (power of two) */
#define VIRTQ_CHAIN_MAX 64    /* longest descriptor chain minivmm's devices accept */

/* Descriptor flags (struct virtq_desc.flags). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
/* Available ring flags. */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq {
    uint16_t size;       /* QueueNum: entries in each ring, a power of two <= VIRTQ_MAX_SIZE */
    uint64_t desc_gpa;   /* descriptor table, 16-byte aligned */
    uint64_t avail_gpa;  /* driver ("available") ring, 2-byte aligned */
    uint64_t used_gpa;   /* device ("used") ring, 4-byte aligned */
    bool ready;          /* QueueReady: the device may use the queue */
    uint16_t last_avail; /* free-running index of the next available entry to consume */
    uint16_t used_idx;   /* free-running index of the next used entry to fill */
};

/* One guest buffer of a chain. */
struct virtq_buf {
    uint64_t gpa;
    uint32_t len;
};

/* A descriptor chain: its device-readable buffers, then its device-writable ones. */
struct virtq_chain {
    uint16_t head; /* descriptor index to hand back with virtq_push() */
    unsigned nr_out, nr_in;
    struct virtq_buf out[VIRTQ_CHAIN_MAX]; /* device-readable ("driver to device") */
    struct virtq_buf in[VIRTQ_CHAIN_MAX];  /* device-writable ("device to driver") */
    uint64_t out_len, in_len;              /* total bytes of each part */
};

enum virtq_pop_result {
    VIRTQ_EMPTY,  /* no new chain */
    VIRTQ_CHAIN,  /* *chain holds the next chain; it was consumed from the available ring */
    VIRTQ_BROKEN, /* the driver violated the spec; err says how; the queue is unusable */
};

/* Reset to the state after device reset: not ready, size 0, addresses 0, indexes 0. */
void virtq_reset(struct virtq *vq);

/*
 * Check, when the driver sets QueueReady, that size is a power of two in
 * 1..VIRTQ_MAX_SIZE, the three areas are aligned and lie entirely inside
 * accessible guest memory.  Returns 0, or -1 with the reason in err.
 * Area sizes are those of VIRTIO 1.2 §2.7, which include the EVENT_IDX
 * fields even though minivmm never uses them (Linux always allocates them):
 * descriptor table 16 * size (16-byte aligned), available ring 6 + 2 * size
 * (2-byte aligned), used ring 6 + 8 * size (4-byte aligned).
 */
int virtq_check_layout(const struct virtq *vq, const struct mm_map *mem, char *err, size_t errlen);

/*
 * Take the next available chain.  Validates: the available index moved by at
 * most size; the head and every next index < size; no loops (a chain visits
 * at most size descriptors, and at most VIRTQ_CHAIN_MAX); no INDIRECT
 * descriptors (minivmm offers no VIRTIO_F_INDIRECT_DESC); no device-readable
 * descriptor after a device-writable one; every buffer non-wrapping and inside
 * accessible guest memory; total lengths fit in 32 bits.
 *
 * Zero-length descriptors are accepted and skipped: their flags are checked
 * like any other's (INDIRECT, readable-after-writable) and they count
 * towards VIRTQ_CHAIN_MAX, but they add no entry to out[]/in[] and their
 * address is not checked, since no byte of them is ever accessed.
 *
 * A queue that is not ready returns VIRTQ_EMPTY.  last_avail advances only
 * on VIRTQ_CHAIN; *chain is meaningful only then.  Each ring field is read
 * once (the available index with acquire semantics, before the ring entry
 * and the descriptors), so a driver changing the ring concurrently cannot
 * make a validated value change afterwards.
 */
enum virtq_pop_result virtq_pop(struct virtq *vq, const struct mm_map *mem,
                                struct virtq_chain *chain, char *err, size_t errlen);

/*
 * Copy up to len bytes from the chain's device-readable part, starting
 * offset bytes into it, into buf.  Returns the bytes copied (less than len
 * if the part is shorter, or if a buffer has become inaccessible since
 * virtq_pop(): every piece is re-checked through mm_gpa()).
 */
size_t virtq_chain_read(const struct mm_map *mem, const struct virtq_chain *chain, uint64_t offset,
                        void *buf, size_t len);
/* Copy up to len bytes of buf into the device-writable part at offset.  Returns bytes copied. */
size_t virtq_chain_write(const struct mm_map *mem, const struct virtq_chain *chain, uint64_t offset,
                         const void *buf, size_t len);

/*
 * Return a chain to the driver: write {head, written} to the used ring at
 * used_idx % size, then publish the new used index (with a release barrier)
 * and advance used_idx.  Returns 0, or -1 (nothing published, used_idx
 * unchanged) if the used ring is no longer accessible, or if the queue's size
 * or addresses are invalid or head >= size (a queue reset since the pop);
 * the caller treats the queue as broken.
 */
int virtq_push(struct virtq *vq, const struct mm_map *mem, uint16_t head, uint32_t written);

/*
 * True unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT (no EVENT_IDX
 * support).  Issues a full memory barrier first, so call it after
 * virtq_push().  True as well if the flags cannot be read (a spurious
 * interrupt is harmless, a lost one is not).
 */
bool virtq_should_interrupt(const struct virtq *vq, const struct mm_map *mem);

#endif
