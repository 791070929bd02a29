/*
 * virtio_mmio.h - the virtio-mmio transport, version 2 (VIRTIO 1.x §4.2).
 *
 * A device model (virtio-mem) embeds a struct virtio_mmio and describes
 * itself with a struct virtio_device_ops.  virtio_mmio_init() takes the next
 * free 4 KiB window and interrupt line from the VM's struct
 * virtio_mmio_windows, registers the MMIO range on the host's MMIO bus and
 * hands the embedded struct device to the host's device list
 * (devices/host.h); the window appears in the DSDT as an
 * LNRO0005 device with its memory range and an edge-triggered interrupt, so
 * stock distribution kernels find it through ACPI.
 *
 * Notifications: a write to QueueNotify is turned into an eventfd signal,
 * either by KVM (KVM_IOEVENTFD, registered at every attach) or by the MMIO
 * handler; the main thread's event loop then calls ops->queue_notify().
 * Interrupts: InterruptStatus bits are set by virtio_mmio_queue_interrupt()
 * and virtio_mmio_config_changed(), and the line is pulsed through an
 * eventfd bound to the GSI with KVM_IRQFD (edge semantics: one pulse per
 * event; the driver acknowledges with InterruptACK).
 *
 * Locking: one mutex per transport (t->lock) protects the transport
 * registers AND the device model's configuration.  Every ops callback is
 * invoked with it held; the functions marked "locked" below must be called
 * with it held (from inside a callback, or after virtio_mmio_lock() on any
 * other path, e.g. a resize from the control socket).  MMIO accesses come
 * from vCPU threads, queue_notify runs on the main thread.  queue_notify may
 * release the lock for long work (virtio_mmio_unlock, then lock again) if
 * it then checks virtio_mmio_resets(): vCPUs keep reading and writing
 * registers meanwhile, and the queue may have been reset - or disabled and
 * laid out anew by the driver without a reset (QueueReady 0, new addresses):
 * every later ring access is checked against the layout as it is then, so
 * such a driver only confuses itself.
 */
#ifndef MINIVMM_DEVICES_VIRTIO_MMIO_H
#define MINIVMM_DEVICES_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/virtqueue.h"

struct dev_host;
struct json;

#define VIRTIO_MMIO_MAX_QUEUES 4
#define VIRTIO_MMIO_CONFIG_MAX 256 /* device config space bytes at 0x100 */

/* Registers (offsets in the window). */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_SHM_SEL             0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_QUEUE_RESET         0x0c0
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC  0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x4d56494d /* "MIVM" */
#define VIRTIO_MMIO_WINDOW 0x200      /* bytes of registers + config (the DSDT size) */

#define VIRTIO_MMIO_INT_VRING  (1u << 0)
#define VIRTIO_MMIO_INT_CONFIG (1u << 1)

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE        1
#define VIRTIO_STATUS_DRIVER             2
#define VIRTIO_STATUS_DRIVER_OK          4
#define VIRTIO_STATUS_FEATURES_OK        8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED             128

#define VIRTIO_F_VERSION_1 32 /* feature bit number */

/*
 * What a device model tells the transport.  Callbacks run with t->lock held
 * (except destroy), on the thread noted: features_ok, driver_ok and
 * device_reset on the vCPU thread whose MMIO access caused them.
 */
struct virtio_device_ops {
    uint32_t device_id;      /* e.g. 24 for virtio-mem */
    unsigned num_queues;     /* 1..VIRTIO_MMIO_MAX_QUEUES */
    uint16_t queue_max_size; /* QueueNumMax, a power of two */
    uint64_t features;       /* device feature bits; the transport adds VIRTIO_F_VERSION_1 */
    uint32_t config_size;    /* bytes of config space, <= VIRTIO_MMIO_CONFIG_MAX */
    /* Fill data with config bytes [offset, offset + len) (in range, len <= 8). */
    void (*config_read)(void *opaque, uint32_t offset, void *data, unsigned len);
    /*
     * Optional: the driver set FEATURES_OK with these features; false refuses
     * them.  May wait on a condition with the lock released (virtio_mmio_wait):
     * the transport takes the status as it is afterwards, and drops the write
     * if the device was reset meanwhile.
     */
    bool (*features_ok)(void *opaque, uint64_t features);
    /* Optional: the driver set DRIVER_OK. */
    void (*driver_ok)(void *opaque);
    /* The driver notified queue q (main thread). */
    void (*queue_notify)(void *opaque, unsigned q);
    /* Optional: `ctl dump` - add the device model's state as members of out's object. */
    void (*dump)(void *opaque, struct json *out);
    /* Optional: device reset by the driver (Status written 0); transport state is reset already. */
    void (*device_reset)(void *opaque);
    /*
     * Optional: system reset (guest reboot), main thread, no vCPU running.
     * The transport is reset already (as for Status 0); device_reset is NOT
     * called as well, so this does everything a device reset does and more.
     */
    void (*system_reset)(void *opaque);
    /*
     * Optional: the VM is being destroyed (main thread, at exit, no vCPU
     * running).  Called last, WITHOUT the lock: the transport has closed its
     * fds, left the event loop and the MMIO bus and destroyed its lock.  The
     * device model releases its own resources and frees the memory that
     * embeds the struct virtio_mmio; the transport does not touch it again.
     */
    void (*destroy)(void *opaque);
};

/*
 * The virtio-mmio windows of one machine: LAYOUT_VIRTIO_MMIO_MAX 4 KiB
 * windows from LAYOUT_VIRTIO_MMIO_START, each with its own GSI, handed out in
 * order.  The VM owns one (zeroed before the first device is created) and
 * passes it to every virtio_mmio_init(); only the transport changes it.
 */
struct virtio_mmio_windows {
    unsigned used; /* windows handed out so far; the next one has this index */
};

struct virtio_mmio {
    struct device dev; /* owned by the VM's device list once initialised */
    const struct dev_host *host;
    const struct virtio_device_ops *ops;
    void *opaque;
    char name[32];
    unsigned index; /* n-th virtio-mmio device: _UID, window and GSI */
    uint64_t base;  /* guest-physical address of the window */
    unsigned gsi;

    pthread_mutex_t lock;
    uint32_t status;
    uint32_t device_features_sel;
    uint32_t driver_features_sel;
    uint64_t driver_features;
    uint32_t queue_sel;
    struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
    uint32_t interrupt_status;
    uint32_t config_generation;
    uint64_t resets; /* device and system resets so far */

    int irq_fd;                            /* pulsed to raise the interrupt */
    int notify_fd[VIRTIO_MMIO_MAX_QUEUES]; /* one per queue, watched by the event loop */
};

/*
 * Set up the transport for a device model and register it with the host
 * (the next window and its interrupt from windows, the MMIO range,
 * event-loop handlers, device list).  Start-up only, main thread.  t is
 * cleared first; h, windows, ops and opaque must outlive it.  Returns 0, or
 * -1 with a one-line reason in err (out of windows, eventfd failure, an
 * invalid ops table); on failure nothing is left registered and no window
 * is used up.
 *
 * Guest-visible behaviour beyond the register map:
 *   - control registers (0x000-0x0ff) take aligned 32-bit accesses only;
 *     others read 0 and writes are dropped.  Write-only registers read 0.
 *   - config space (0x100 + offset) takes 1/2/4/8-byte reads that lie
 *     entirely inside config_size; other reads return 0.  Writes are dropped.
 *   - QueueNum above QueueNumMax sets DEVICE_NEEDS_RESET and is stored as 0
 *     (so QueueReady = 1 fails the layout check as well).
 *   - DEVICE_NEEDS_RESET can only be cleared by a reset; DRIVER_OK is refused
 *     (stays clear) unless FEATURES_OK was accepted.
 *   - DriverFeatures written with DriverFeaturesSel > 1 are ignored.
 */
int virtio_mmio_init(struct virtio_mmio *t, const struct dev_host *h,
                     struct virtio_mmio_windows *windows, const char *name,
                     const struct virtio_device_ops *ops, void *opaque, char *err, size_t errlen);

void virtio_mmio_lock(struct virtio_mmio *t);
void virtio_mmio_unlock(struct virtio_mmio *t);
/*
 * Locked.  Wait on cond, giving the lock up meanwhile (pthread_cond_wait
 * with the transport's lock).  For a device model that works on a request
 * with the lock released (so that vCPUs reading registers do not wait for
 * it) and must hold back a callback that would change what that work uses.
 */
void virtio_mmio_wait(struct virtio_mmio *t, pthread_cond_t *cond);
/*
 * Locked.  Resets (device or system) so far: a device model that released
 * the lock while it served a request compares the count from before to
 * know whether the driver reset the device meanwhile (then the request's
 * chain is void: it must not be answered).
 */
uint64_t virtio_mmio_resets(const struct virtio_mmio *t);

/* Locked.  The queue, for the device model to pop and push. */
struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned q);
/* Locked.  Features the driver accepted (valid once FEATURES_OK is set). */
uint64_t virtio_mmio_driver_features(const struct virtio_mmio *t);
/* Locked.  True once the driver set DRIVER_OK (and no reset since). */
bool virtio_mmio_driver_ok(const struct virtio_mmio *t);
/* Locked.  Used buffers were added to queue q: set INT_VRING and pulse the line. */
void virtio_mmio_queue_interrupt(struct virtio_mmio *t, unsigned q);
/*
 * Locked.  The device changed its configuration: bump ConfigGeneration;
 * with notify, also set INT_CONFIG and pulse the line (only once DRIVER_OK
 * is set; before that only the generation moves).
 */
void virtio_mmio_config_changed(struct virtio_mmio *t, bool notify);
/*
 * Locked.  The driver broke the protocol (bad chain, bad request size):
 * set DEVICE_NEEDS_RESET and notify a config change, as QEMU's virtio_error
 * does.  reason goes to stderr once per reset, and at most WARN_LIMIT
 * times in all (warn_limited: a guest can break the device at will).
 * Queues are not used until a reset.
 */
void virtio_mmio_set_needs_reset(struct virtio_mmio *t, const char *reason);

/*
 * Locked.  Call ops->queue_notify(q) again from the event loop, as if the
 * driver had notified: a device that stops after a bounded batch of
 * requests uses it so one queue cannot keep the main thread to itself.
 */
void virtio_mmio_notify_later(struct virtio_mmio *t, unsigned q);

/* The "virtio_mmio.device=4K@0x...:IRQ" kernel parameter for this device. */
int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t len);

#endif
