/*
 * virtio_mmio.c - the virtio-mmio transport, version 2; see virtio_mmio.h.
 *
 * Register accesses arrive on vCPU threads through the MMIO bus and run
 * under t->lock.  Queue notifications take the eventfd path in both cases:
 * KVM's ioeventfd signals notify_fd[q] without leaving the kernel, and the
 * MMIO handler signals the same fd when a write reaches user space (no KVM,
 * or a value KVM did not match).  The main thread's handler drains the fds
 * and calls ops->queue_notify.  Interrupts are eventfd writes that KVM turns
 * into pulses on the GSI (KVM_IRQFD).
 */
#include "devices/virtio_mmio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/host.h"
#include "vmm/aml.h"
#include "vmm/evloop.h"
#include "vmm/layout.h"
#include "vmm/json.h"
#include "vmm/util.h"

#define VIRTIO_MMIO_VERSION_2        2
#define VIRTIO_MMIO_REG_WIDTH        4 /* control registers are 32-bit */
#define VIRTIO_MMIO_CONFIG_MAXW      8 /* widest config-space access */
#define VIRTIO_MMIO_ALL_ONES         0xffffffffu
#define VIRTIO_MMIO_FEATURE_SEL_LOW  0
#define VIRTIO_MMIO_FEATURE_SEL_HIGH 1

#define VIRTIO_MMIO_ACPI_HID "LNRO0005" /* Linux's virtio_mmio_acpi_match */
#define VIRTIO_MMIO_ACPI_CCA 1          /* cache-coherent DMA */

static const unsigned virtio_mmio_gsis[] = LAYOUT_VIRTIO_MMIO_GSIS;
_Static_assert(ARRAY_SIZE(virtio_mmio_gsis) == LAYOUT_VIRTIO_MMIO_MAX,
               "one GSI per virtio-mmio window");
_Static_assert(VIRTIO_MMIO_CONFIG + VIRTIO_MMIO_CONFIG_MAX <= VIRTIO_MMIO_WINDOW,
               "config space fits in the described window");
_Static_assert(VIRTIO_MMIO_WINDOW <= LAYOUT_VIRTIO_MMIO_SIZE, "window fits in its page");

/* --- small helpers -------------------------------------------------------- */

static uint64_t virtio_mmio_device_features(const struct virtio_mmio *t)
{
    return t->ops->features | (1ULL << VIRTIO_F_VERSION_1);
}

static bool virtio_mmio_queue_valid(const struct virtio_mmio *t, uint32_t q)
{
    return q < t->ops->num_queues;
}

static struct virtq *virtio_mmio_selected_queue(struct virtio_mmio *t)
{
    return virtio_mmio_queue_valid(t, t->queue_sel) ? &t->queues[t->queue_sel] : NULL;
}

static void virtio_mmio_put_le(void *data, uint64_t value, unsigned len)
{
    uint8_t *p = data;
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(value >> (8 * i));
}

static uint32_t virtio_mmio_get_le32(const void *data)
{
    const uint8_t *p = data;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void virtio_mmio_signal(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, so a signal is pending anyway. */
    }
}

/* Read an eventfd's counter; 0 if nothing was pending. */
static uint64_t virtio_mmio_drain(int fd)
{
    uint64_t count = 0;
    if (fd < 0 || read(fd, &count, sizeof(count)) != sizeof(count))
        return 0;
    return count;
}

static void virtio_mmio_raise(struct virtio_mmio *t, uint32_t bits)
{
    t->interrupt_status |= bits;
    virtio_mmio_signal(t->irq_fd);
}

/* Replace the low or high 32 bits of a 64-bit register. */
static void virtio_mmio_set_half(uint64_t *reg, uint32_t value, bool high)
{
    if (high)
        *reg = (*reg & 0xffffffffULL) | (uint64_t)value << 32;
    else
        *reg = (*reg & ~0xffffffffULL) | value;
}

/* --- reset ---------------------------------------------------------------- */

/* Transport state after a reset; ConfigGeneration keeps counting. */
static void virtio_mmio_reset_transport(struct virtio_mmio *t)
{
    t->status = 0;
    t->device_features_sel = 0;
    t->driver_features_sel = 0;
    t->driver_features = 0;
    t->queue_sel = 0;
    for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
        virtq_reset(&t->queues[q]);
    t->interrupt_status = 0;
    t->resets++;
}

/* --- status and feature negotiation --------------------------------------- */

static bool virtio_mmio_features_acceptable(struct virtio_mmio *t)
{
    uint64_t f = t->driver_features;
    if (f & ~virtio_mmio_device_features(t)) {
        debug("%s: driver accepted features %#llx the device does not offer", t->name,
              (unsigned long long)(f & ~virtio_mmio_device_features(t)));
        return false;
    }
    if (!(f & (1ULL << VIRTIO_F_VERSION_1))) {
        debug("%s: driver did not accept VIRTIO_F_VERSION_1", t->name);
        return false;
    }
    return !t->ops->features_ok || t->ops->features_ok(t->opaque, f);
}

static void virtio_mmio_write_status(struct virtio_mmio *t, uint32_t value)
{
    if (value == 0) {
        virtio_mmio_reset_transport(t);
        if (t->ops->device_reset)
            t->ops->device_reset(t->opaque);
        return;
    }
    uint32_t old = t->status;
    /* DEVICE_NEEDS_RESET belongs to the device: only a reset clears it. */
    uint32_t status = (value & ~(uint32_t)VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
                      (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    uint32_t added = status & ~old;

    if (added & VIRTIO_STATUS_FEATURES_OK) {
        uint64_t resets = t->resets;
        bool acceptable = virtio_mmio_features_acceptable(t);
        /* features_ok may have waited with the lock released: take the state as it is now. */
        if (t->resets != resets)
            return; /* another vCPU reset the device meanwhile: this write is moot */
        old = t->status;
        status = (status & ~(uint32_t)VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
                 (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
        if (!acceptable)
            status &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back */
    }
    if ((added & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK)) {
        debug("%s: DRIVER_OK without FEATURES_OK refused", t->name);
        status &= ~(uint32_t)VIRTIO_STATUS_DRIVER_OK;
    }
    t->status = status;
    if (status & ~old & VIRTIO_STATUS_DRIVER_OK) {
        if (t->ops->driver_ok)
            t->ops->driver_ok(t->opaque);
        /* Buffers the driver queued (and notified) before DRIVER_OK were not served. */
        for (unsigned q = 0; q < t->ops->num_queues; q++)
            if (t->queues[q].ready)
                virtio_mmio_signal(t->notify_fd[q]);
    }
}

static void virtio_mmio_write_driver_features(struct virtio_mmio *t, uint32_t value)
{
    if (t->status & VIRTIO_STATUS_FEATURES_OK)
        return;
    if (t->driver_features_sel == VIRTIO_MMIO_FEATURE_SEL_LOW)
        virtio_mmio_set_half(&t->driver_features, value, false);
    else if (t->driver_features_sel == VIRTIO_MMIO_FEATURE_SEL_HIGH)
        virtio_mmio_set_half(&t->driver_features, value, true);
}

static uint32_t virtio_mmio_read_device_features(const struct virtio_mmio *t)
{
    uint64_t f = virtio_mmio_device_features(t);
    if (t->device_features_sel == VIRTIO_MMIO_FEATURE_SEL_LOW)
        return (uint32_t)f;
    if (t->device_features_sel == VIRTIO_MMIO_FEATURE_SEL_HIGH)
        return (uint32_t)(f >> 32);
    return 0;
}

/* --- queues --------------------------------------------------------------- */

static void virtio_mmio_queue_enable(struct virtio_mmio *t, struct virtq *vq)
{
    char err[256];
    if (vq->ready)
        return;
    if (virtq_check_layout(vq, t->host->mem, err, sizeof(err)) < 0) {
        char reason[320];
        snprintf(reason, sizeof(reason), "queue %u: %s", t->queue_sel, err);
        virtio_mmio_set_needs_reset(t, reason);
        return;
    }
    vq->ready = true;
}

static void virtio_mmio_write_queue_num(struct virtio_mmio *t, struct virtq *vq, uint32_t value)
{
    if (value <= t->ops->queue_max_size) {
        vq->size = (uint16_t)value;
        return;
    }
    char reason[96];
    snprintf(reason, sizeof(reason), "queue %u: QueueNum %u exceeds QueueNumMax %u", t->queue_sel,
             value, t->ops->queue_max_size);
    vq->size = 0; /* so that QueueReady = 1 fails too */
    virtio_mmio_set_needs_reset(t, reason);
}

/* QueueNum, QueueReady and the ring addresses of the selected queue. */
static void virtio_mmio_write_queue_reg(struct virtio_mmio *t, uint64_t off, uint32_t value)
{
    struct virtq *vq = virtio_mmio_selected_queue(t);
    if (!vq)
        return;
    if (off == VIRTIO_MMIO_QUEUE_READY) {
        if (value)
            virtio_mmio_queue_enable(t, vq);
        else
            vq->ready = false;
        return;
    }
    if (vq->ready)
        return; /* the layout of a live queue cannot change */
    switch (off) {
    case VIRTIO_MMIO_QUEUE_NUM:
        virtio_mmio_write_queue_num(t, vq, value);
        break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        virtio_mmio_set_half(&vq->desc_gpa, value, off == VIRTIO_MMIO_QUEUE_DESC_HIGH);
        break;
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        virtio_mmio_set_half(&vq->avail_gpa, value, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH);
        break;
    case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
    case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        virtio_mmio_set_half(&vq->used_gpa, value, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH);
        break;
    }
}

static void virtio_mmio_write_notify(struct virtio_mmio *t, uint32_t q)
{
    if (virtio_mmio_queue_valid(t, q))
        virtio_mmio_signal(t->notify_fd[q]);
    else
        debug("%s: notify of queue %u, which does not exist", t->name, q);
}

/* Main thread: the driver (or KVM on its behalf) signalled notify fds. */
static void virtio_mmio_on_notify(void *opaque, uint32_t events)
{
    struct virtio_mmio *t = opaque;
    (void)events;
    for (unsigned q = 0; q < t->ops->num_queues; q++) {
        if (!virtio_mmio_drain(t->notify_fd[q]))
            continue;
        virtio_mmio_lock(t);
        bool live = (t->status & VIRTIO_STATUS_DRIVER_OK) &&
                    !(t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) && t->queues[q].ready;
        if (live)
            t->ops->queue_notify(t->opaque, q);
        virtio_mmio_unlock(t);
    }
}

void virtio_mmio_notify_later(struct virtio_mmio *t, unsigned q)
{
    if (virtio_mmio_queue_valid(t, q))
        virtio_mmio_signal(t->notify_fd[q]);
}

/* --- register dispatch (t->lock held) ------------------------------------- */

static uint32_t virtio_mmio_read_queue_reg(struct virtio_mmio *t, uint64_t off)
{
    struct virtq *vq = virtio_mmio_selected_queue(t);
    if (off == VIRTIO_MMIO_QUEUE_NUM_MAX)
        return vq ? t->ops->queue_max_size : 0;
    return vq && vq->ready; /* VIRTIO_MMIO_QUEUE_READY */
}

static uint32_t virtio_mmio_read_reg(struct virtio_mmio *t, uint64_t off)
{
    switch (off) {
    case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
    case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
    case VIRTIO_MMIO_DEVICE_ID:
        return t->ops->device_id;
    case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        return virtio_mmio_read_device_features(t);
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
    case VIRTIO_MMIO_QUEUE_READY:
        return virtio_mmio_read_queue_reg(t, off);
    case VIRTIO_MMIO_INTERRUPT_STATUS:
        return t->interrupt_status;
    case VIRTIO_MMIO_STATUS:
        return t->status;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
    case VIRTIO_MMIO_SHM_BASE_LOW:
    case VIRTIO_MMIO_SHM_BASE_HIGH:
        return VIRTIO_MMIO_ALL_ONES; /* no shared memory regions */
    case VIRTIO_MMIO_CONFIG_GENERATION:
        return t->config_generation;
    default:
        return 0; /* write-only, QueueReset (no VIRTIO_F_RING_RESET), or unused */
    }
}

static void virtio_mmio_write_reg(struct virtio_mmio *t, uint64_t off, uint32_t value)
{
    switch (off) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        t->device_features_sel = value;
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        virtio_mmio_write_driver_features(t, value);
        break;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        t->driver_features_sel = value;
        break;
    case VIRTIO_MMIO_QUEUE_SEL:
        t->queue_sel = value;
        break;
    case VIRTIO_MMIO_QUEUE_NUM:
    case VIRTIO_MMIO_QUEUE_READY:
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
    case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
    case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        virtio_mmio_write_queue_reg(t, off, value);
        break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        virtio_mmio_write_notify(t, value);
        break;
    case VIRTIO_MMIO_INTERRUPT_ACK:
        t->interrupt_status &= ~value;
        break;
    case VIRTIO_MMIO_STATUS:
        virtio_mmio_write_status(t, value);
        break;
    default:
        break; /* read-only, SHMSel, QueueReset, or unused */
    }
}

static bool virtio_mmio_is_config(uint64_t off)
{
    return off >= VIRTIO_MMIO_CONFIG;
}

static bool virtio_mmio_reg_access_ok(uint64_t off, unsigned len)
{
    return len == VIRTIO_MMIO_REG_WIDTH && off % VIRTIO_MMIO_REG_WIDTH == 0;
}

static void virtio_mmio_read_config(struct virtio_mmio *t, uint64_t off, void *data, unsigned len)
{
    uint64_t cfg = off - VIRTIO_MMIO_CONFIG;
    memset(data, 0, len);
    if (len > VIRTIO_MMIO_CONFIG_MAXW || cfg >= t->ops->config_size ||
        len > t->ops->config_size - cfg)
        return;
    t->ops->config_read(t->opaque, (uint32_t)cfg, data, len);
}

static void virtio_mmio_bus_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct virtio_mmio *t = opaque;
    virtio_mmio_lock(t);
    if (virtio_mmio_is_config(off))
        virtio_mmio_read_config(t, off, data, len);
    else if (virtio_mmio_reg_access_ok(off, len))
        virtio_mmio_put_le(data, virtio_mmio_read_reg(t, off), len);
    else
        memset(data, 0, len);
    virtio_mmio_unlock(t);
}

static void virtio_mmio_bus_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct virtio_mmio *t = opaque;
    if (virtio_mmio_is_config(off)) {
        debug("%s: config write at %#llx ignored", t->name, (unsigned long long)off);
        return;
    }
    if (!virtio_mmio_reg_access_ok(off, len)) {
        debug("%s: %u-byte write at %#llx ignored", t->name, len, (unsigned long long)off);
        return;
    }
    virtio_mmio_lock(t);
    virtio_mmio_write_reg(t, off, virtio_mmio_get_le32(data));
    virtio_mmio_unlock(t);
}

static const struct bus_ops virtio_mmio_bus_ops = {
    .read = virtio_mmio_bus_read,
    .write = virtio_mmio_bus_write,
};

/* --- device ops ----------------------------------------------------------- */

static struct virtio_mmio *virtio_mmio_of(struct device *dev)
{
    return container_of(dev, struct virtio_mmio, dev);
}

static int virtio_mmio_attach(struct device *dev, int vm_fd, char *err, size_t errlen)
{
    struct virtio_mmio *t = virtio_mmio_of(dev);
    /* A pulse left over from the previous boot would be a spurious interrupt. */
    virtio_mmio_drain(t->irq_fd);
    struct kvm_irqfd irqfd = {.fd = (uint32_t)t->irq_fd, .gsi = t->gsi};
    if (ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0)
        return errf(err, errlen, "KVM_IRQFD for GSI %u: %s", t->gsi, strerror(errno));
    for (unsigned q = 0; q < t->ops->num_queues; q++) {
        struct kvm_ioeventfd io = {
            .datamatch = q,
            .addr = t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
            .len = VIRTIO_MMIO_REG_WIDTH,
            .fd = t->notify_fd[q],
            .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
        };
        if (ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0)
            return errf(err, errlen, "KVM_IOEVENTFD for queue %u at %#llx: %s", q,
                        (unsigned long long)io.addr, strerror(errno));
    }
    return 0;
}

static void virtio_mmio_describe_acpi(struct device *dev, struct aml *aml)
{
    struct virtio_mmio *t = virtio_mmio_of(dev);
    char name[5];
    snprintf(name, sizeof(name), "VR%02X", t->index & 0xffu);
    size_t blk = aml_device_begin(aml, name);
    aml_name_string(aml, "_HID", VIRTIO_MMIO_ACPI_HID);
    aml_name_integer(aml, "_UID", t->index);
    aml_name_integer(aml, "_CCA", VIRTIO_MMIO_ACPI_CCA);
    struct aml_res res;
    aml_res_init(&res);
    aml_res_memory32_fixed(&res, AML_MEM_READ_WRITE, (uint32_t)t->base, VIRTIO_MMIO_WINDOW);
    /* Edge: KVM's irqfd pulses the line once per event. */
    aml_res_interrupt(&res, AML_IRQ_EDGE, AML_IRQ_ACTIVE_HIGH, AML_IRQ_EXCLUSIVE, t->gsi);
    aml_name_resource(aml, "_CRS", &res);
    aml_end(aml, blk);
}

static int virtio_mmio_kernel_cmdline(struct device *dev, char *buf, size_t len)
{
    return virtio_mmio_cmdline(virtio_mmio_of(dev), buf, len);
}

static void virtio_mmio_system_reset(struct device *dev)
{
    struct virtio_mmio *t = virtio_mmio_of(dev);
    virtio_mmio_lock(t);
    virtio_mmio_reset_transport(t);
    /* Nothing from the previous boot may reach the next one. */
    virtio_mmio_drain(t->irq_fd);
    for (unsigned q = 0; q < t->ops->num_queues; q++)
        virtio_mmio_drain(t->notify_fd[q]);
    if (t->ops->system_reset)
        t->ops->system_reset(t->opaque);
    virtio_mmio_unlock(t);
}

/* Release fds and registrations; safe on a partly initialised transport. */
static void virtio_mmio_release(struct virtio_mmio *t)
{
    for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
        if (t->notify_fd[q] < 0)
            continue;
        evloop_remove(t->host->loop, t->notify_fd[q]);
        close(t->notify_fd[q]);
        t->notify_fd[q] = -1;
    }
    if (t->irq_fd >= 0)
        close(t->irq_fd);
    t->irq_fd = -1;
    pthread_mutex_destroy(&t->lock);
}

static void virtio_mmio_destroy(struct device *dev)
{
    struct virtio_mmio *t = virtio_mmio_of(dev);
    const struct virtio_device_ops *ops = t->ops;
    void *opaque = t->opaque;
    bus_unregister(t->host->mmio, t->base);
    virtio_mmio_release(t);
    if (ops->destroy)
        ops->destroy(opaque); /* may free t */
}

/* ctl dump: the transport's registers and queues, then the device model's state. */
static void virtio_mmio_dump(struct device *dev, struct json *out)
{
    struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
    virtio_mmio_lock(t);
    json_kv_string(out, "kind", "virtio-mmio");
    json_kv_u64(out, "base", t->base);
    json_kv_u64(out, "gsi", t->gsi);
    json_kv_u64(out, "device_id", t->ops->device_id);
    json_kv_u64(out, "status", t->status);
    json_kv_u64(out, "driver_features", t->driver_features);
    json_kv_u64(out, "interrupt_status", t->interrupt_status);
    json_kv_u64(out, "config_generation", t->config_generation);
    json_kv_u64(out, "resets", t->resets);
    json_key(out, "queues");
    json_array_begin(out);
    for (unsigned q = 0; q < t->ops->num_queues; q++) {
        const struct virtq *vq = &t->queues[q];
        json_object_begin(out);
        json_kv_bool(out, "ready", vq->ready);
        json_kv_u64(out, "size", vq->size);
        json_kv_u64(out, "desc", vq->desc_gpa);
        json_kv_u64(out, "avail", vq->avail_gpa);
        json_kv_u64(out, "used", vq->used_gpa);
        json_kv_u64(out, "last_avail", vq->last_avail);
        json_kv_u64(out, "used_idx", vq->used_idx);
        json_object_end(out);
    }
    json_array_end(out);
    if (t->ops->dump) {
        json_key(out, "device");
        json_object_begin(out);
        t->ops->dump(t->opaque, out);
        json_object_end(out);
    }
    virtio_mmio_unlock(t);
}

static const struct device_ops virtio_mmio_device_ops = {
    .attach = virtio_mmio_attach,
    .describe_acpi = virtio_mmio_describe_acpi,
    .kernel_cmdline = virtio_mmio_kernel_cmdline,
    .reset = virtio_mmio_system_reset,
    .destroy = virtio_mmio_destroy,
    .dump = virtio_mmio_dump,
};

/* --- set-up --------------------------------------------------------------- */

static bool virtio_mmio_power_of_two(unsigned v)
{
    return v && !(v & (v - 1));
}

static int virtio_mmio_check_ops(const struct virtio_device_ops *ops, const char *name, char *err,
                                 size_t errlen)
{
    if (ops->num_queues < 1 || ops->num_queues > VIRTIO_MMIO_MAX_QUEUES)
        return errf(err, errlen, "%s: %u virtqueues; a virtio-mmio device has 1 to %d", name,
                    ops->num_queues, VIRTIO_MMIO_MAX_QUEUES);
    if (!virtio_mmio_power_of_two(ops->queue_max_size) || ops->queue_max_size > VIRTQ_MAX_SIZE)
        return errf(err, errlen, "%s: queue size %u is not a power of two up to %d", name,
                    ops->queue_max_size, VIRTQ_MAX_SIZE);
    if (ops->config_size > VIRTIO_MMIO_CONFIG_MAX || (ops->config_size && !ops->config_read))
        return errf(err, errlen, "%s: config space of %u bytes (at most %d, with config_read)",
                    name, ops->config_size, VIRTIO_MMIO_CONFIG_MAX);
    if (!ops->queue_notify)
        return errf(err, errlen, "%s: no queue_notify callback", name);
    return 0;
}

static int virtio_mmio_open_fds(struct virtio_mmio *t, char *err, size_t errlen)
{
    t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->irq_fd < 0)
        return errf(err, errlen, "%s: interrupt eventfd: %s", t->name, strerror(errno));
    for (unsigned q = 0; q < t->ops->num_queues; q++) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            return errf(err, errlen, "%s: notify eventfd: %s", t->name, strerror(errno));
        if (evloop_add(t->host->loop, fd, EPOLLIN, virtio_mmio_on_notify, t) < 0) {
            int e = errno;
            close(fd);
            return errf(err, errlen, "%s: cannot watch the notify eventfd: %s", t->name,
                        strerror(e));
        }
        t->notify_fd[q] = fd;
    }
    return 0;
}

int virtio_mmio_init(struct virtio_mmio *t, const struct dev_host *h,
                     struct virtio_mmio_windows *windows, const char *name,
                     const struct virtio_device_ops *ops, void *opaque, char *err, size_t errlen)
{
    if (virtio_mmio_check_ops(ops, name, err, errlen) < 0)
        return -1;
    if (windows->used >= LAYOUT_VIRTIO_MMIO_MAX)
        return errf(err, errlen, "%s: too many virtio-mmio devices (at most %d)", name,
                    LAYOUT_VIRTIO_MMIO_MAX);

    memset(t, 0, sizeof(*t));
    t->host = h;
    t->ops = ops;
    t->opaque = opaque;
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->index = windows->used;
    t->base = LAYOUT_VIRTIO_MMIO_START + t->index * LAYOUT_VIRTIO_MMIO_SIZE;
    t->gsi = virtio_mmio_gsis[t->index];
    t->irq_fd = -1;
    for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
        t->notify_fd[q] = -1;
    pthread_mutex_init(&t->lock, NULL);
    virtio_mmio_reset_transport(t);
    t->dev.name = t->name;
    t->dev.ops = &virtio_mmio_device_ops;

    if (virtio_mmio_open_fds(t, err, errlen) < 0) {
        virtio_mmio_release(t);
        return -1;
    }
    if (bus_register(h->mmio, t->base, LAYOUT_VIRTIO_MMIO_SIZE, &virtio_mmio_bus_ops, t, t->name) <
        0) {
        virtio_mmio_release(t);
        return errf(err, errlen, "%s: MMIO range %#llx-%#llx is taken", name,
                    (unsigned long long)t->base,
                    (unsigned long long)(t->base + LAYOUT_VIRTIO_MMIO_SIZE - 1));
    }
    windows->used++;
    dev_host_add_device(h, &t->dev);
    return 0;
}

/* --- API for device models ------------------------------------------------ */

void virtio_mmio_lock(struct virtio_mmio *t)
{
    pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(struct virtio_mmio *t)
{
    pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_wait(struct virtio_mmio *t, pthread_cond_t *cond)
{
    pthread_cond_wait(cond, &t->lock);
}

uint64_t virtio_mmio_resets(const struct virtio_mmio *t)
{
    return t->resets;
}

struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned q)
{
    return virtio_mmio_queue_valid(t, q) ? &t->queues[q] : NULL;
}

uint64_t virtio_mmio_driver_features(const struct virtio_mmio *t)
{
    return t->driver_features;
}

bool virtio_mmio_driver_ok(const struct virtio_mmio *t)
{
    return t->status & VIRTIO_STATUS_DRIVER_OK;
}

void virtio_mmio_queue_interrupt(struct virtio_mmio *t, unsigned q)
{
    (void)q; /* one line and one status bit serve every queue */
    virtio_mmio_raise(t, VIRTIO_MMIO_INT_VRING);
}

void virtio_mmio_config_changed(struct virtio_mmio *t, bool notify)
{
    t->config_generation++;
    if (notify && (t->status & VIRTIO_STATUS_DRIVER_OK))
        virtio_mmio_raise(t, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *t, const char *reason)
{
    if (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return; /* reported already; the driver has not reset the device yet */
    t->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    /* Rate-limited: a guest can reset and break the device again at will. */
    warn_limited("%s: %s; the device needs a reset", t->name, reason);
    if (t->status & VIRTIO_STATUS_DRIVER_OK)
        virtio_mmio_config_changed(t, true);
}

int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t len)
{
    int n = snprintf(buf, len, "virtio_mmio.device=%lluK@0x%llx:%u",
                     (unsigned long long)(LAYOUT_VIRTIO_MMIO_SIZE / KiB),
                     (unsigned long long)t->base, t->gsi);
    return n < 0 || (size_t)n >= len ? -1 : n;
}
