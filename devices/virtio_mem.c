/*
 * virtio_mem.c - the virtio-mem device model and its transport glue; see
 * virtio_mem.h and ../shared/docs/virtio-mem-and-vfio.md §2 and §7.
 */
#include "devices/virtio_mem.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/host.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define REQ_SIZE  sizeof(struct virtio_mem_req)
#define RESP_SIZE sizeof(struct virtio_mem_resp)

_Static_assert(sizeof(struct virtio_mem_req) == 24, "virtio_mem_req is 24 bytes");
_Static_assert(sizeof(struct virtio_mem_resp) == 10, "virtio_mem_resp is 10 bytes");
_Static_assert(sizeof(struct virtio_mem_config) == 56, "virtio_mem_config is 56 bytes");

/* --- memory -------------------------------------------------------------------- */

/* prealloc=on: allocate the host pages now, so a plug that cannot be backed is refused. */
static int prealloc_memory(struct virtio_mem *m, uint64_t gpa, uint64_t len)
{
    uint8_t *p = m->backing.hva + (gpa - m->addr);
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
        return 0;
    /*
     * Kernels before 5.14 lack MADV_POPULATE_WRITE.  Touching anonymous
     * memory by hand is safe (at worst the OOM killer decides); touching a
     * file that cannot be backed would be SIGBUS, so it is refused instead.
     */
    if (errno != EINVAL || m->backing.fd >= 0)
        return -1;
    for (uint64_t off = 0; off < len; off += m->backing.page_size)
        __atomic_store_n(&p[off], 0, __ATOMIC_RELAXED);
    return 0;
}

static bool region_accessible(void *opaque, uint64_t gpa, uint64_t len)
{
    struct virtio_mem *m = opaque;
    return mm_tracker_accessible(&m->tracker, gpa, len);
}

/* --- guest-visible state (locked) ------------------------------------------------ */

/*
 * QEMU's policy: requested + 256 MiB of slack, capped at the region and
 * rounded to the block size; 0 when nothing is requested.  It only shrinks
 * when can_shrink (UNPLUG_ALL, system reset).
 */
static void update_usable_region(struct virtio_mem *m, bool can_shrink)
{
    uint64_t size = m->requested_size + VIRTIO_MEM_USABLE_EXTENT;
    if (size > m->region_size || size < m->requested_size)
        size = m->region_size;
    size = ALIGN_UP(size, m->block_size);
    if (m->requested_size == 0)
        size = 0;
    if (size < m->usable_region_size && !can_shrink)
        return;
    m->usable_region_size = size;
}

/* The spec's range check: block aligned, non-empty, no overflow, inside the usable region. */
static bool request_range_valid(const struct virtio_mem *m, uint64_t addr, uint16_t nb_blocks)
{
    if (nb_blocks == 0 || addr % m->block_size || addr < m->addr)
        return false;
    uint64_t size = (uint64_t)nb_blocks * m->block_size;
    if (size / m->block_size != nb_blocks || addr + size < addr)
        return false;
    return addr + size <= m->addr + m->usable_region_size;
}

/* Locked: a plug answered BUSY, counted with its reason for the status. */
static void refuse_plug(struct virtio_mem *m, const char *why)
{
    m->refused_plugs++;
    snprintf(m->last_refusal, sizeof(m->last_refusal), "%s", why);
    warn_limited("%s: plug refused: %s; answered BUSY (the guest retries later)", m->name, why);
}

/*
 * Locked on entry and on return; the lock is released in between.  Plug
 * (plug true) or unplug [addr, addr + size), which the caller checked, in
 * pieces of at most VIRTIO_MEM_PIECE bytes (or one block, if larger) with
 * the transport lock released.  Nothing else changes the tracker meanwhile:
 * requests, resizes and system resets all come from the main thread, this
 * one, and the only vCPU-thread callback that touches the region
 * (features_ok) waits for work_done.  Returns 0 when done; -1 with err when
 * a plug failed (a listener refused, or prealloc: every piece is undone); or
 * 1 when the driver reset the device meanwhile, whether the work succeeded
 * or not (a plug is undone, an unplug finished): the request is void.
 */
static int carry_out(struct virtio_mem *m, uint64_t addr, uint64_t size, bool plug, char *err,
                     size_t errlen)
{
    uint64_t resets = virtio_mmio_resets(&m->transport);
    uint64_t done = 0;
    int ret = 0;

    /* Whole blocks (both are powers of two). */
    const uint64_t step = VIRTIO_MEM_PIECE > m->block_size ? VIRTIO_MEM_PIECE : m->block_size;

    m->working = true;
    virtio_mmio_unlock(&m->transport);
    while (done < size) {
        uint64_t piece = size - done < step ? size - done : step;
        uint64_t gpa = addr + done;
        if (!plug) {
            /* Listeners (DMA mappings, memslots, guard) let go first, then the tracker discards. */
            if (mm_tracker_unplug(&m->tracker, gpa, piece) < 0)
                bug("%s: tracker refused to unplug a plugged range", m->name);
        } else if (mm_tracker_plug(&m->tracker, gpa, piece, err, errlen) < 0) {
            /* A listener refused (no memslot, DMA map failed): rolled back. */
            ret = -1;
            break;
        } else if (m->opts.prealloc && prealloc_memory(m, gpa, piece) < 0) {
            /* After the plug: the guard has opened the memory for writing. */
            snprintf(err, errlen, "cannot allocate memory for [%#llx, +%#llx): %s",
                     (unsigned long long)gpa, (unsigned long long)piece, strerror(errno));
            if (mm_tracker_unplug(&m->tracker, gpa, piece) < 0)
                bug("%s: cannot roll back a plug", m->name);
            ret = -1;
            break;
        }
        done += piece;
    }
    if (ret < 0 && done > 0 && mm_tracker_unplug(&m->tracker, addr, done) < 0)
        bug("%s: cannot roll back a plug", m->name);
    virtio_mmio_lock(&m->transport);
    m->working = false;
    pthread_cond_broadcast(&m->work_done);
    m->work_bytes += done;
    if (virtio_mmio_resets(&m->transport) != resets) {
        /*
         * Rare (a driver reset during the work): the request is void, done or
         * failed.  A plug that succeeded is undone with the lock held.
         */
        if (plug && ret == 0 && mm_tracker_unplug(&m->tracker, addr, size) < 0)
            bug("%s: cannot roll back a plug", m->name);
        return 1;
    }
    return ret;
}

static int handle_plug(struct virtio_mem *m, uint64_t addr, uint16_t nb_blocks)
{
    uint64_t size = (uint64_t)nb_blocks * m->block_size;
    char err[512];

    if (!request_range_valid(m, addr, nb_blocks))
        return VIRTIO_MEM_RESP_ERROR;
    if (m->plugged_size + size > m->requested_size)
        return VIRTIO_MEM_RESP_NACK;
    if (mm_tracker_state(&m->tracker, addr, size) != MM_BLOCKS_UNPLUGGED)
        return VIRTIO_MEM_RESP_ERROR;
    if (mm_guard_check(&m->guard, addr, size, true, err, sizeof(err)) < 0) {
        refuse_plug(m, err);
        return VIRTIO_MEM_RESP_BUSY;
    }
    int r = carry_out(m, addr, size, true, err, sizeof(err));
    if (r > 0)
        return VIRTIO_MEM_RESP_VOID;
    if (r < 0) {
        /* Rolled back: the guest retries later. */
        refuse_plug(m, err);
        return VIRTIO_MEM_RESP_BUSY;
    }
    m->plugged_size += size;
    virtio_mmio_config_changed(&m->transport, false);
    return VIRTIO_MEM_RESP_ACK;
}

static int handle_unplug(struct virtio_mem *m, uint64_t addr, uint16_t nb_blocks)
{
    uint64_t size = (uint64_t)nb_blocks * m->block_size;
    char err[320];

    if (!request_range_valid(m, addr, nb_blocks))
        return VIRTIO_MEM_RESP_ERROR;
    if (mm_tracker_state(&m->tracker, addr, size) != MM_BLOCKS_PLUGGED)
        return VIRTIO_MEM_RESP_ERROR;
    if (mm_guard_check(&m->guard, addr, size, false, err, sizeof(err)) < 0) {
        /* The memory stays plugged and backed: the host is no worse off. */
        m->refused_unplugs++;
        snprintf(m->last_refusal, sizeof(m->last_refusal), "%s", err);
        warn_limited("%s: unplug refused: %s; answered BUSY (the guest retries later)", m->name,
                     err);
        return VIRTIO_MEM_RESP_BUSY;
    }
    int r = carry_out(m, addr, size, false, err, sizeof(err));
    m->plugged_size -= size;
    virtio_mmio_config_changed(&m->transport, false);
    return r > 0 ? VIRTIO_MEM_RESP_VOID : VIRTIO_MEM_RESP_ACK;
}

/* Locked: unplug everything (system reset); no config notification. */
static void unplug_all(struct virtio_mem *m)
{
    mm_tracker_unplug_all(&m->tracker);
    m->plugged_size = 0;
    update_usable_region(m, true);
    virtio_mmio_config_changed(&m->transport, false);
}

/* Locked: UNPLUG_ALL, with the lock released for the work (as carry_out). */
static int handle_unplug_all(struct virtio_mem *m)
{
    uint64_t resets = virtio_mmio_resets(&m->transport);
    m->working = true;
    virtio_mmio_unlock(&m->transport);
    uint64_t bytes = mm_tracker_unplug_all(&m->tracker);
    virtio_mmio_lock(&m->transport);
    m->working = false;
    pthread_cond_broadcast(&m->work_done);
    m->work_bytes += bytes;
    m->plugged_size = 0;
    update_usable_region(m, true);
    virtio_mmio_config_changed(&m->transport, false);
    return virtio_mmio_resets(&m->transport) != resets ? VIRTIO_MEM_RESP_VOID : VIRTIO_MEM_RESP_ACK;
}

static int handle_state(struct virtio_mem *m, uint64_t addr, uint16_t nb_blocks, uint16_t *state)
{
    if (!request_range_valid(m, addr, nb_blocks))
        return VIRTIO_MEM_RESP_ERROR;
    switch (mm_tracker_state(&m->tracker, addr, (uint64_t)nb_blocks * m->block_size)) {
    case MM_BLOCKS_PLUGGED:
        *state = VIRTIO_MEM_STATE_PLUGGED;
        break;
    case MM_BLOCKS_UNPLUGGED:
        *state = VIRTIO_MEM_STATE_UNPLUGGED;
        break;
    default:
        *state = VIRTIO_MEM_STATE_MIXED;
        break;
    }
    return VIRTIO_MEM_RESP_ACK;
}

int virtio_mem_handle_request(struct virtio_mem *m, const struct virtio_mem_req *req,
                              uint16_t *state)
{
    uint64_t addr = le64toh(req->addr);
    uint16_t nb_blocks = le16toh(req->nb_blocks);
    *state = 0;
    switch (le16toh(req->type)) {
    case VIRTIO_MEM_REQ_PLUG:
        return handle_plug(m, addr, nb_blocks);
    case VIRTIO_MEM_REQ_UNPLUG:
        return handle_unplug(m, addr, nb_blocks);
    case VIRTIO_MEM_REQ_UNPLUG_ALL:
        return handle_unplug_all(m);
    case VIRTIO_MEM_REQ_STATE:
        return handle_state(m, addr, nb_blocks, state);
    default:
        return -1;
    }
}

/* --- transport callbacks (locked) ------------------------------------------------ */

static void vmem_config_read(void *opaque, uint32_t offset, void *data, unsigned len)
{
    struct virtio_mem *m = opaque;
    struct virtio_mem_config c = {
        .block_size = htole64(m->block_size),
        .node_id = 0,
        .addr = htole64(m->addr),
        .region_size = htole64(m->region_size),
        .usable_region_size = htole64(m->usable_region_size),
        .plugged_size = htole64(m->plugged_size),
        .requested_size = htole64(m->requested_size),
    };
    memcpy(data, (const uint8_t *)&c + offset, len);
}

static bool vmem_features_ok(void *opaque, uint64_t features)
{
    struct virtio_mem *m = opaque;
    char err[256];
    bool inaccessible = features & (1ULL << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
    /* The modes below change the guard and the memslots: not under a plug's feet. */
    while (m->working)
        virtio_mmio_wait(&m->transport, &m->work_done);
    /*
     * A read of a hole in shared memory (memfd, hugetlbfs) allocates a page
     * that stays until the block is discarded: a driver free to read
     * unplugged blocks could grow minivmm to the whole region.  Anonymous
     * memory answers such reads with the shared zero page.  The spec lets
     * the device refuse a driver without the feature (§5.15.5.2).
     */
    if (!inaccessible && m->backing.fd >= 0) {
        warn("%s: the driver does not accept VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE (Linux < "
             "5.16?): with backend=%s its reads of unplugged memory would allocate host memory; "
             "refused (use backend=anon or a newer guest kernel)",
             m->name, m->opts.backend == MM_BACKING_HUGETLBFS ? "hugetlbfs" : "memfd");
        return false;
    }
    /*
     * Without the promise, reads of unplugged memory must work: slots for the
     * whole region, and unplugged blocks readable (never writable).
     */
    if (mm_guard_set_readable(&m->guard, !inaccessible, err, sizeof(err)) < 0 ||
        mm_sparse_slots_set_full(&m->slots, !inaccessible, err, sizeof(err)) < 0) {
        warn("%s: refusing the driver's features: %s", m->name, err);
        return false;
    }
    m->unplugged_inaccessible = inaccessible;
    return true;
}

/* One request chain: read it, answer it.  Returns false if the driver broke the protocol. */
static bool serve_chain(struct virtio_mem *m, struct virtq *vq, const struct virtq_chain *c)
{
    struct mm_map *mem = m->host->mem;
    char why[128];
    struct virtio_mem_req req;
    struct virtio_mem_resp resp;
    uint16_t state;

    if (c->out_len < REQ_SIZE || c->in_len < RESP_SIZE) {
        snprintf(why, sizeof(why),
                 "request chain has %llu readable and %llu writable bytes (needs %zu and %zu)",
                 (unsigned long long)c->out_len, (unsigned long long)c->in_len, REQ_SIZE,
                 RESP_SIZE);
        virtio_mmio_set_needs_reset(&m->transport, why);
        return false;
    }
    if (virtq_chain_read(mem, c, 0, &req, sizeof(req)) != sizeof(req)) {
        virtio_mmio_set_needs_reset(&m->transport, "the request buffer left guest memory");
        return false;
    }
    int type = virtio_mem_handle_request(m, &req, &state);
    if (type == VIRTIO_MEM_RESP_VOID) {
        /* The driver reset the device meanwhile: the chain is no longer ours. */
        m->void_requests++;
        return false;
    }
    if (type < 0) {
        snprintf(why, sizeof(why), "unknown request type %u", le16toh(req.type));
        virtio_mmio_set_needs_reset(&m->transport, why);
        return false;
    }
    memset(&resp, 0, sizeof(resp));
    resp.type = htole16((uint16_t)type);
    resp.state = htole16(state);
    if (virtq_chain_write(mem, c, 0, &resp, sizeof(resp)) != sizeof(resp)) {
        virtio_mmio_set_needs_reset(&m->transport, "the response buffer left guest memory");
        return false;
    }
    if (virtq_push(vq, mem, c->head, sizeof(resp)) < 0) {
        virtio_mmio_set_needs_reset(&m->transport, "the used ring is not in guest memory");
        return false;
    }
    return true;
}

static void vmem_queue_notify(void *opaque, unsigned q)
{
    struct virtio_mem *m = opaque;
    struct virtq *vq = virtio_mmio_queue(&m->transport, q);
    struct virtq_chain chain;
    char err[256];
    bool answered = false;

    /*
     * At most one queue's worth of requests per notification: a guest that
     * keeps adding requests must not keep the main thread (signals, the
     * control socket) to itself.  The rest is served on the next loop turn.
     */
    uint64_t resets = virtio_mmio_resets(&m->transport);
    m->work_bytes = 0;
    for (unsigned served = 0;; served++) {
        if (served == vq->size || m->work_bytes >= VIRTIO_MEM_WORK_PER_NOTIFY) {
            virtio_mmio_notify_later(&m->transport, q);
            break;
        }
        enum virtq_pop_result r = virtq_pop(vq, m->host->mem, &chain, err, sizeof(err));
        if (r == VIRTQ_EMPTY)
            break;
        if (r == VIRTQ_BROKEN) {
            virtio_mmio_set_needs_reset(&m->transport, err);
            break;
        }
        if (!serve_chain(m, vq, &chain))
            break;
        answered = true;
    }
    /* Not after a reset during the work: the queue is the new driver's, and empty. */
    if (answered && virtio_mmio_resets(&m->transport) == resets &&
        virtq_should_interrupt(vq, m->host->mem))
        virtio_mmio_queue_interrupt(&m->transport, q);
}

/* Guest reboot: everything is unplugged and the usable region shrinks back. */
static void vmem_system_reset(void *opaque)
{
    struct virtio_mem *m = opaque;
    char err[256];
    unplug_all(m);
    m->unplugged_inaccessible = false;
    if (mm_sparse_slots_set_full(&m->slots, false, err, sizeof(err)) < 0 ||
        mm_guard_set_readable(&m->guard, false, err, sizeof(err)) < 0)
        warn("%s: %s", m->name, err);
}

/* At exit, after the transport let go of everything: free the device. */
static void vmem_destroy(void *opaque)
{
    struct virtio_mem *m = opaque;
    virtio_mem_destroy(m);
    free(m);
}

static void vmem_dump(void *opaque, struct json *out);

static const struct virtio_device_ops vmem_device_ops = {
    .device_id = VIRTIO_ID_MEM,
    .num_queues = 1,
    .queue_max_size = VIRTIO_MEM_QUEUE_SIZE,
    .features = 1ULL << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE,
    .config_size = sizeof(struct virtio_mem_config),
    .config_read = vmem_config_read,
    .features_ok = vmem_features_ok,
    .queue_notify = vmem_queue_notify,
    .system_reset = vmem_system_reset,
    .destroy = vmem_destroy,
    .dump = vmem_dump,
};

/* --- control ----------------------------------------------------------------------- */

int virtio_mem_resize(struct virtio_mem *m, uint64_t requested, char *err, size_t errlen)
{
    char a[32], b[32];
    if (requested > m->region_size)
        return errf(err, errlen, "%s: %s is larger than the region (%s)", m->opts.id,
                    format_size(requested, a, sizeof(a)),
                    format_size(m->region_size, b, sizeof(b)));
    if (requested % m->block_size)
        return errf(err, errlen, "%s: %s is not a multiple of the block size (%s)", m->opts.id,
                    format_size(requested, a, sizeof(a)), format_size(m->block_size, b, sizeof(b)));
    virtio_mmio_lock(&m->transport);
    m->requested_size = requested;
    update_usable_region(m, false);
    virtio_mmio_config_changed(&m->transport, true);
    virtio_mmio_unlock(&m->transport);
    return 0;
}

static void status_listener(void *opaque, const char *key, uint64_t bytes)
{
    json_kv_u64(opaque, key, bytes);
}

/* Locked: the status members (virtio_mem_status, ctl dump). */
static void status_members(struct virtio_mem *m, struct json *out)
{
    json_kv_string(out, "id", m->opts.id);
    json_kv_u64(out, "addr", m->addr);
    json_kv_u64(out, "region_size", m->region_size);
    json_kv_u64(out, "block_size", m->block_size);
    json_kv_u64(out, "usable_region_size", m->usable_region_size);
    json_kv_u64(out, "plugged_size", m->plugged_size);
    json_kv_u64(out, "requested_size", m->requested_size);
    json_kv_u64(out, "memslots", mm_sparse_slots_count(&m->slots));
    json_kv_bool(out, "driver_ready", virtio_mmio_driver_ok(&m->transport));
    json_kv_bool(out, "unplugged_inaccessible", m->unplugged_inaccessible);
    json_kv_u64(out, "refused_plugs", m->refused_plugs);
    json_kv_u64(out, "refused_unplugs", m->refused_unplugs);
    json_kv_u64(out, "void_requests", m->void_requests);
    json_kv_u64(out, "guard_mappings", mm_tracker_runs(&m->tracker));
    json_kv_u64(out, "guard_mapping_limit", m->guard.max_runs);
    json_kv_string(out, "last_refusal", m->last_refusal);
    json_kv_u64(out, "kept_bytes", mm_tracker_kept_bytes(&m->tracker));
    mm_tracker_report(&m->tracker, status_listener, out); /* e.g. dma_mapped_bytes */
}

void virtio_mem_status(struct virtio_mem *m, struct json *out)
{
    virtio_mmio_lock(&m->transport);
    json_object_begin(out);
    status_members(m, out);
    json_object_end(out);
    virtio_mmio_unlock(&m->transport);
}

/* ctl dump (transport lock held): the status members. */
static void vmem_dump(void *opaque, struct json *out)
{
    status_members(opaque, out);
}

/* --- creation ---------------------------------------------------------------------- */

int virtio_mem_init(struct virtio_mem *m, const struct dev_host *h,
                    struct virtio_mmio_windows *windows, const struct virtio_mem_options *o,
                    uint64_t addr, const struct virtio_mem_budget *budget, char *err, size_t errlen)
{
    char why[256];
    memset(m, 0, sizeof(*m));
    m->host = h;
    m->opts = *o;
    snprintf(m->name, sizeof(m->name), "virtio-mem %s", o->id);
    m->addr = addr;
    m->region_size = o->size;
    m->block_size = o->block_size;
    m->requested_size = o->requested;
    pthread_cond_init(&m->work_done, NULL);

    if (mm_backing_alloc(&m->backing, o->backend, o->size, o->hugetlbfs_path, why, sizeof(why)) < 0)
        return errf(err, errlen, "%s: %s", m->name, why);
    if (o->block_size < m->backing.page_size)
        return errf(err, errlen,
                    "%s: block-size must be at least the backing's page size (%llu KiB); use "
                    "block-size=%lluK or larger",
                    m->name, (unsigned long long)(m->backing.page_size / KiB),
                    (unsigned long long)(m->backing.page_size / KiB));
    if (mm_discard_require(&h->mem->discard, MM_DISCARD_COORDINATED, m->name, why, sizeof(why)) < 0)
        return errf(err, errlen, "%s", why);

    struct mm_region region = {.gpa = addr,
                               .size = o->size,
                               .type = MM_REGION_DEVICE,
                               .hva = m->backing.hva,
                               .name = m->name,
                               .accessible = region_accessible,
                               .opaque = m,
                               .tracker = &m->tracker};
    if (mm_map_add(h->mem, &region, why, sizeof(why)) < 0)
        return errf(err, errlen, "%s: %s (choose another addr=)", m->name, why);
    if (mm_tracker_init(&m->tracker, addr, o->size, o->block_size, &m->backing) < 0)
        return errf(err, errlen, "%s: cannot track %llu blocks: %s", m->name,
                    (unsigned long long)(o->size / o->block_size), strerror(errno));
    /* The guard listens first: it opens memory before anyone else touches it. */
    if (mm_guard_init(&m->guard, &m->tracker, addr, o->size, m->backing.hva, budget->mappings, why,
                      sizeof(why)) < 0 ||
        mm_tracker_register(&m->tracker, &m->guard.listener, why, sizeof(why)) < 0)
        return errf(err, errlen, "%s: %s", m->name, why);
    uint64_t chunk = mm_sparse_chunk_size(o->size, o->block_size, budget->memslots);
    if (mm_sparse_slots_init(&m->slots, h->mem, addr, o->size, m->backing.hva, chunk,
                             "kvm memslots", why, sizeof(why)) < 0 ||
        mm_tracker_register(&m->tracker, &m->slots.listener, why, sizeof(why)) < 0)
        return errf(err, errlen, "%s: %s", m->name, why);
    update_usable_region(m, true);
    char sz[32];
    debug("%s: region [%#llx, +%s) at host address %p, block size %llu", m->name,
          (unsigned long long)addr, format_size(o->size, sz, sizeof(sz)), (void *)m->backing.hva,
          (unsigned long long)o->block_size);
    return virtio_mmio_init(&m->transport, h, windows, o->id, &vmem_device_ops, m, err, errlen);
}

void virtio_mem_destroy(struct virtio_mem *m)
{
    mm_tracker_unregister(&m->tracker, &m->slots.listener);
    mm_tracker_unregister(&m->tracker, &m->guard.listener);
    mm_sparse_slots_destroy(&m->slots);
    mm_tracker_destroy(&m->tracker);
    mm_backing_free(&m->backing);
    pthread_cond_destroy(&m->work_done);
}

/* Physical address bits of the guest CPU, or the architectural minimum if unknown. */
static unsigned guest_phys_bits(const struct dev_host *h)
{
    return h->phys_bits ? h->phys_bits : 36;
}

/*
 * Where device i's region goes when it has no addr=: the lowest address
 * above everything in the memory map (RAM and the regions of devices before
 * i, which virtio_mem_create adds first), 128 MiB (and block) aligned, inside
 * one of the map's DMA spans, that overlaps no region of a later device
 * given with addr=.  UINT64_MAX if there is none.
 */
static uint64_t place_region(const struct mm_map *mem, const struct virtio_mem_options *all,
                             unsigned n, unsigned i)
{
    const struct virtio_mem_options *o = &all[i];
    uint64_t align = virtio_mem_region_align(o);
    uint64_t addr = LAYOUT_PCI_HOLE_END;
    for (unsigned r = 0; r < mem->nr_regions; r++) {
        const struct mm_region *reg = &mem->regions[r];
        if (reg->gpa + reg->size > addr)
            addr = reg->gpa + reg->size;
    }
    addr = ALIGN_UP(addr, align);
    for (bool moved = true; moved && addr != UINT64_MAX;) {
        moved = false;
        /* Inside what DMA can reach (the IOMMU's IOVA ranges, with --vfio). */
        uint64_t fit = mm_map_dma_fit(mem, addr, o->size, align);
        moved = fit != addr;
        addr = fit;
        if (addr == UINT64_MAX)
            break;
        for (unsigned j = i + 1; j < n; j++) {
            if (!all[j].addr || !ranges_overlap(addr, o->size, all[j].addr, all[j].size))
                continue;
            addr = ALIGN_UP(all[j].addr + all[j].size, align);
            moved = true;
        }
    }
    return addr;
}

int virtio_mem_create(const struct dev_host *h, struct virtio_mmio_windows *windows,
                      const struct virtio_mem_options *opts, unsigned n,
                      const struct virtio_mem_budget *per_device, struct virtio_mem **out,
                      char *err, size_t errlen)
{
    for (unsigned i = 0; i < n; i++) {
        const struct virtio_mem_options *o = &opts[i];
        uint64_t addr = o->addr ? o->addr : place_region(h->mem, opts, n, i);
        unsigned bits = guest_phys_bits(h);
        char a[32];
        if (addr == UINT64_MAX)
            return errf(err, errlen,
                        "virtio-mem %s: no room for %s inside the address ranges the IOMMU can "
                        "map for DMA; lower size=",
                        o->id, format_size(o->size, a, sizeof(a)));
        if (bits < 64 && (addr >= (1ULL << bits) || o->size > (1ULL << bits) - addr))
            return errf(err, errlen,
                        "virtio-mem %s: the region [%#llx, +%s) ends above the %u-bit physical "
                        "address space of the CPU; lower size= or addr=",
                        o->id, (unsigned long long)addr, format_size(o->size, a, sizeof(a)), bits);
        if (o->block_size < VIRTIO_MEM_DEFAULT_BLOCK_SIZE)
            warn("virtio-mem %s: block-size %s is below 2 MiB, the unit Linux plugs in; the "
                 "guest will still work in 2 MiB steps",
                 o->id, format_size(o->block_size, a, sizeof(a)));
        /*
         * On failure m stays allocated: the memory map and the discard policy may
         * already point into it, and minivmm exits right after this error.
         */
        struct virtio_mem *m = xzalloc(sizeof(*m));
        if (virtio_mem_init(m, h, windows, o, addr, per_device, err, errlen) < 0)
            return -1;
        out[i] = m;
    }
    return 0;
}
