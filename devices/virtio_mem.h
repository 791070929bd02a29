/*
 * virtio_mem.h - the virtio-mem device (VIRTIO 1.2 §5.15) on virtio-mmio.
 *
 * One instance per --virtio-mem option.  Its region of guest-physical
 * memory (above RAM, 128 MiB aligned, absent from e820) is backed by host
 * memory that is only populated, exposed through KVM memslots and - through
 * the tracker's listeners - DMA-mapped while the guest has it plugged.
 *
 * Who calls what:
 *   - virtio_mem_create() (the VM's device table, start-up) builds every
 *     instance on the struct dev_host it is given (devices/host.h) and hands
 *     them back; the VM keeps them for the control socket.
 *   - The guest's requests arrive through the transport (queue_notify, main
 *     thread) and are answered by virtio_mem_handle_request(); config reads
 *     come from vCPU threads.
 *   - The control socket (vmm/vm_ctl.c) calls virtio_mem_resize() and
 *     virtio_mem_status() on the main thread.
 *   - A guest reboot (system reset) unplugs everything; a device reset by the
 *     driver keeps the plugged blocks (spec §5.15.5.2).
 * Locking: the transport's lock protects the device state; functions taking
 * a struct virtio_mem * lock it themselves unless marked "locked".  Long
 * work (the listeners of a plug: memslots, DMA mapping and pinning;
 * preallocation; discards) runs with that lock released, in pieces of at
 * most VIRTIO_MEM_PIECE bytes, so vCPUs reading the device's registers never
 * wait for it; the state the guest sees (plugged_size, the answer) changes
 * only when a request is done.  One notification carries out at most
 * VIRTIO_MEM_WORK_PER_NOTIFY bytes of requests (a single request may exceed
 * it: it is bounded by the requested size), then yields to the main loop.
 */
#ifndef MINIVMM_DEVICES_VIRTIO_MEM_H
#define MINIVMM_DEVICES_VIRTIO_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio_mmio.h"
#include "mm/guard.h"
#include "mm/memmap.h"
#include "mm/sparse_slots.h"
#include "mm/tracker.h"
#include "devices/virtio_mem_options.h"
#include "vmm/json.h"

#define VIRTIO_ID_MEM 24

#define VIRTIO_MEM_PIECE           (128ULL << 20)
#define VIRTIO_MEM_WORK_PER_NOTIFY (1ULL << 30)

/* Feature bits. */
#define VIRTIO_MEM_F_ACPI_PXM               0
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE 1

/* Request types, response types, STATE results. */
#define VIRTIO_MEM_REQ_PLUG        0
#define VIRTIO_MEM_REQ_UNPLUG      1
#define VIRTIO_MEM_REQ_UNPLUG_ALL  2
#define VIRTIO_MEM_REQ_STATE       3
#define VIRTIO_MEM_RESP_ACK        0
#define VIRTIO_MEM_RESP_NACK       1
#define VIRTIO_MEM_RESP_BUSY       2
#define VIRTIO_MEM_RESP_ERROR      3
#define VIRTIO_MEM_STATE_PLUGGED   0
#define VIRTIO_MEM_STATE_UNPLUGGED 1
#define VIRTIO_MEM_STATE_MIXED     2

/* usable_region_size = requested_size + this slack (QEMU's VIRTIO_MEM_USABLE_EXTENT on x86). */
#define VIRTIO_MEM_USABLE_EXTENT (256ULL << 20)
#define VIRTIO_MEM_QUEUE_SIZE    128

/* Wire formats (little endian). */
struct virtio_mem_req {
    uint16_t type;
    uint16_t padding[3];
    uint64_t addr;
    uint16_t nb_blocks;
    uint16_t padding2[3];
} __attribute__((packed));

struct virtio_mem_resp {
    uint16_t type;
    uint16_t padding[3];
    uint16_t state;
} __attribute__((packed));

struct virtio_mem_config {
    uint64_t block_size;
    uint16_t node_id;
    uint8_t padding[6];
    uint64_t addr;
    uint64_t region_size;
    uint64_t usable_region_size;
    uint64_t plugged_size;
    uint64_t requested_size;
} __attribute__((packed));

struct dev_host;

/* What each region may use of the host's limited resources; the VM shares them out. */
struct virtio_mem_budget {
    unsigned memslots; /* KVM memslots, >= 1 */
    uint64_t mappings; /* host mappings (VMAs) for the guard's protection runs, >= 3 */
};

struct virtio_mem {
    struct virtio_mmio transport; /* first: the device the VM knows */
    const struct dev_host *host;
    struct virtio_mem_options opts;
    char name[48]; /* "virtio-mem mem0" */
    struct mm_backing backing;
    struct mm_tracker tracker;
    struct mm_guard guard;        /* first listener: host access follows plugged blocks */
    struct mm_sparse_slots slots; /* second listener: KVM memslots */
    /* Guest-visible state (transport lock). */
    uint64_t addr, region_size, block_size;
    uint64_t usable_region_size, plugged_size, requested_size;
    bool unplugged_inaccessible; /* the driver accepted VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE */
    uint64_t refused_plugs;      /* plugs answered BUSY: a listener refused, or prealloc failed */
    uint64_t refused_unplugs;    /* unplugs answered BUSY: over the guard's mapping budget */
    uint64_t void_requests;      /* requests the driver reset the device during (not answered) */
    /*
     * A PLUG, UNPLUG or UNPLUG_ALL is being carried out with the transport
     * lock released (see virtio_mem.c): work_done is broadcast when it ends.
     */
    bool working;
    pthread_cond_t work_done;
    uint64_t work_bytes;    /* bytes plugged or unplugged in the current notification */
    char last_refusal[320]; /* why the last plug or unplug was refused */
};

/*
 * Start-up, main thread: create one device per entry of opts[0..n-1] (the
 * --virtio-mem options, in order) on host h, each with the next virtio-mmio
 * window of windows.  A region without addr= is placed above everything in
 * h->mem, 128 MiB (and block) aligned, clear of later regions given with
 * addr=; every region must end inside h->phys_bits (36 if 0).  Each region
 * may use what per_device allows (the VM shares out what KVM and the kernel
 * offer).  Device i is stored in out[i] (out has n entries) as soon as
 * it exists and belongs to h's device list.  Returns 0, or -1 with a
 * one-line reason in err: then out[] holds the devices created before the
 * one that failed, and the entries from it on are untouched.
 */
int virtio_mem_create(const struct dev_host *h, struct virtio_mmio_windows *windows,
                      const struct virtio_mem_options *opts, unsigned n,
                      const struct virtio_mem_budget *per_device, struct virtio_mem **out,
                      char *err, size_t errlen);

/*
 * Set up one device: backing, region, tracker, guard and memslots (within
 * budget), transport (window from windows).  addr is the region's
 * guest-physical base (already placed).  Exposed for the unit tests.
 * Returns 0 or -1 with err.
 */
int virtio_mem_init(struct virtio_mem *m, const struct dev_host *h,
                    struct virtio_mmio_windows *windows, const struct virtio_mem_options *o,
                    uint64_t addr, const struct virtio_mem_budget *budget, char *err,
                    size_t errlen);
void virtio_mem_destroy(struct virtio_mem *m);

/* virtio_mem_handle_request(): the driver reset the device meanwhile; do not answer. */
#define VIRTIO_MEM_RESP_VOID (-2)

/*
 * Locked (the lock is released and taken again during long work, see
 * above).  Handle one guest request; returns the response type and sets
 * *state for STATE requests.  Returns -1 for an unknown request type (a
 * protocol violation: the caller sets DEVICE_NEEDS_RESET), or
 * VIRTIO_MEM_RESP_VOID.
 */
int virtio_mem_handle_request(struct virtio_mem *m, const struct virtio_mem_req *req,
                              uint16_t *state);

/*
 * Set the requested size (the resize knob): a multiple of the block size,
 * at most the region size.  Grows usable_region_size as needed and sends a
 * config-change interrupt.  Returns 0, or -1 with a one-line reason in err
 * (nothing changes).
 */
int virtio_mem_resize(struct virtio_mem *m, uint64_t requested, char *err, size_t errlen);

/* Append this device's state to out as one JSON object. */
void virtio_mem_status(struct virtio_mem *m, struct json *out);

#endif
