/*
 * test_virtio_mmio.c - unit tests of the virtio-mmio transport
 * (devices/virtio_mmio.c), without KVM.
 *
 * A test VM without KVM (test_vm.h: guest RAM, MMIO bus, event loop) hosts a fake
 * device model whose callbacks record what they are told.  The tests drive
 * the registers through bus_access() as a vCPU would, following what Linux's
 * drivers/virtio/virtio_mmio.c does, and run the event loop to deliver queue
 * notifications.  Register offsets and values are written out from VIRTIO 1.2
 * §4.2.2 on purpose, independently of the header, so that a wrong constant
 * there shows up here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio_mmio.h"
#include "vmm/acpi.h"
#include "vmm/aml.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#include "tests/unit/test_vm.h"
#include "tests/unit/virtio_spec.h"

/* ---- the fake device model ---- */
#define FAKE_DEVICE_ID   24
#define FAKE_FEAT_A      (1ULL << 0)
#define FAKE_FEAT_B      (1ULL << 1)
#define FAKE_FEAT_ABSENT (1ULL << 5)
#define FAKE_FEATURES    (FAKE_FEAT_A | FAKE_FEAT_B)
#define FAKE_QUEUES      2
#define FAKE_QUEUE_MAX   128
#define FAKE_CONFIG_SIZE 56
#define CONFIG_BYTE(i)   ((uint8_t)(0x40 + (i))) /* the fake config space: 0x40, 0x41, ... */

/* ---- a queue laid out in guest RAM ---- */
#define RAM_SIZE     (64 * MiB)
#define QUEUE_SIZE   16
#define DESC_GPA     0x200000ULL
#define AVAIL_GPA    0x201000ULL
#define USED_GPA     0x202000ULL
#define UNBACKED_GPA 0xe0000000ULL /* inside the 32-bit hole: no memory */

#define FIRST_BASE LAYOUT_VIRTIO_MMIO_START
#define FIRST_GSI  5 /* the first entry of LAYOUT_VIRTIO_MMIO_GSIS */

struct fake {
    struct virtio_mmio t;
    bool refuse_features;
    int features_ok_calls;
    uint64_t features_seen;
    int driver_ok_calls;
    int device_reset_calls;
    int system_reset_calls;
    int notify_calls[FAKE_QUEUES];
    int config_read_calls;
    uint32_t config_off;
    unsigned config_len;
    bool unlocked_callback; /* a callback ran without t->lock held */
};

static int fakes_destroyed;

/* The contract: every callback runs with the transport's lock held. */
static void fake_check_locked(struct fake *f)
{
    if (pthread_mutex_trylock(&f->t.lock) == 0) {
        f->unlocked_callback = true;
        pthread_mutex_unlock(&f->t.lock);
    }
}

static void fake_config_read(void *opaque, uint32_t offset, void *data, unsigned len)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    f->config_read_calls++;
    f->config_off = offset;
    f->config_len = len;
    for (unsigned i = 0; i < len; i++)
        ((uint8_t *)data)[i] = CONFIG_BYTE(offset + i);
}

static bool fake_features_ok(void *opaque, uint64_t features)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    f->features_ok_calls++;
    f->features_seen = features;
    return !f->refuse_features;
}

static void fake_driver_ok(void *opaque)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    f->driver_ok_calls++;
}

static void fake_queue_notify(void *opaque, unsigned q)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    assert_true(q < FAKE_QUEUES);
    f->notify_calls[q]++;
}

static void fake_device_reset(void *opaque)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    f->device_reset_calls++;
}

static void fake_system_reset(void *opaque)
{
    struct fake *f = opaque;
    fake_check_locked(f);
    f->system_reset_calls++;
}

static void fake_destroy(void *opaque)
{
    fakes_destroyed++;
    free(opaque);
}

static const struct virtio_device_ops fake_ops = {
    .device_id = FAKE_DEVICE_ID,
    .num_queues = FAKE_QUEUES,
    .queue_max_size = FAKE_QUEUE_MAX,
    .features = FAKE_FEATURES,
    .config_size = FAKE_CONFIG_SIZE,
    .config_read = fake_config_read,
    .features_ok = fake_features_ok,
    .driver_ok = fake_driver_ok,
    .queue_notify = fake_queue_notify,
    .device_reset = fake_device_reset,
    .system_reset = fake_system_reset,
    .destroy = fake_destroy,
};

struct fixture {
    struct test_vm vm;
    struct fake *dev;
};

static struct fake *new_fake(struct test_vm *vm, const char *name, char *err, size_t errlen)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    if (virtio_mmio_init(&f->t, &vm->host, &vm->virtio_mmio, name, &fake_ops, f, err, errlen) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

static int setup(void **state)
{
    char err[256];
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    test_vm_init(&fx->vm, RAM_SIZE);
    fx->dev = new_fake(&fx->vm, "virtio-test0", err, sizeof(err));
    if (!fx->dev)
        fail_msg("virtio_mmio_init: %s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    test_vm_destroy(&fx->vm);
    free(fx);
    return 0;
}

static uint64_t le(const uint8_t *b, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static uint64_t mmio_read_at(struct fixture *fx, uint64_t base, uint64_t off, unsigned len)
{
    uint8_t b[8];
    memset(b, 0xcc, sizeof(b));
    assert_true(bus_access(&fx->vm.mmio, base + off, b, len, false));
    return le(b, len);
}

static uint64_t mmio_read(struct fixture *fx, uint64_t off, unsigned len)
{
    return mmio_read_at(fx, fx->dev->t.base, off, len);
}

static uint32_t rd32(struct fixture *fx, uint64_t off)
{
    return (uint32_t)mmio_read(fx, off, 4);
}

static void mmio_write(struct fixture *fx, uint64_t off, uint64_t value, unsigned len)
{
    uint8_t b[8];
    for (unsigned i = 0; i < len; i++)
        b[i] = (uint8_t)(value >> (8 * i));
    assert_true(bus_access(&fx->vm.mmio, fx->dev->t.base + off, b, len, true));
}

static void wr32(struct fixture *fx, uint64_t off, uint32_t value)
{
    mmio_write(fx, off, value, 4);
}

/* Read and reset an eventfd's counter; 0 if it was not signalled. */
static uint64_t eventfd_count(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
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

static void locked_config_changed(struct fake *f, bool notify)
{
    virtio_mmio_lock(&f->t);
    virtio_mmio_config_changed(&f->t, notify);
    virtio_mmio_unlock(&f->t);
}

static void locked_queue_interrupt(struct fake *f, unsigned q)
{
    virtio_mmio_lock(&f->t);
    virtio_mmio_queue_interrupt(&f->t, q);
    virtio_mmio_unlock(&f->t);
}

static void locked_needs_reset(struct fake *f, const char *reason)
{
    virtio_mmio_lock(&f->t);
    virtio_mmio_set_needs_reset(&f->t, reason);
    virtio_mmio_unlock(&f->t);
}

/* Steps 2-5: reset, ACKNOWLEDGE, DRIVER, features (sel 1 then 0), FEATURES_OK.  Returns Status. */
static uint32_t negotiate(struct fixture *fx, uint32_t feat_hi, uint32_t feat_lo)
{
    wr32(fx, REG_STATUS, 0);
    assert_int_equal(rd32(fx, REG_STATUS), 0); /* Linux waits for the reset to finish */
    wr32(fx, REG_STATUS, ST_ACK);
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER);
    wr32(fx, REG_DEVICE_FEAT_SEL, 1);
    (void)rd32(fx, REG_DEVICE_FEATURES);
    wr32(fx, REG_DEVICE_FEAT_SEL, 0);
    (void)rd32(fx, REG_DEVICE_FEATURES);
    wr32(fx, REG_DRIVER_FEAT_SEL, 1);
    wr32(fx, REG_DRIVER_FEATURES, feat_hi);
    wr32(fx, REG_DRIVER_FEAT_SEL, 0);
    wr32(fx, REG_DRIVER_FEATURES, feat_lo);
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    return rd32(fx, REG_STATUS);
}

/* Step 6 for queue q, without the final QueueReady write. */
static void program_queue(struct fixture *fx, uint32_t q, uint32_t num, uint64_t desc,
                          uint64_t avail, uint64_t used)
{
    wr32(fx, REG_QUEUE_SEL, q);
    assert_int_equal(rd32(fx, REG_QUEUE_READY), 0);
    wr32(fx, REG_QUEUE_NUM, num);
    wr32(fx, REG_QUEUE_DESC_LO, (uint32_t)desc);
    wr32(fx, REG_QUEUE_DESC_HI, (uint32_t)(desc >> 32));
    wr32(fx, REG_QUEUE_DRIVER_LO, (uint32_t)avail);
    wr32(fx, REG_QUEUE_DRIVER_HI, (uint32_t)(avail >> 32));
    wr32(fx, REG_QUEUE_DEVICE_LO, (uint32_t)used);
    wr32(fx, REG_QUEUE_DEVICE_HI, (uint32_t)(used >> 32));
}

static void setup_queue(struct fixture *fx, uint32_t q)
{
    wr32(fx, REG_QUEUE_SEL, q);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM_MAX), FAKE_QUEUE_MAX);
    program_queue(fx, q, QUEUE_SIZE, DESC_GPA + q * 0x10000, AVAIL_GPA + q * 0x10000,
                  USED_GPA + q * 0x10000);
    wr32(fx, REG_QUEUE_READY, 1);
    assert_int_equal(rd32(fx, REG_QUEUE_READY), 1);
}

/* The whole sequence: features accepted, queue 0 live, DRIVER_OK set. */
static void driver_init(struct fixture *fx)
{
    uint32_t st = negotiate(fx, F_VERSION_1_HIGH, (uint32_t)FAKE_FEATURES);
    assert_int_equal(st, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    setup_queue(fx, 0);
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    assert_int_equal(rd32(fx, REG_STATUS), ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    /* DRIVER_OK makes the transport look at every ready queue once. */
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 1);
    fx->dev->notify_calls[0] = 0;
}

/* Buffers notified before DRIVER_OK (notification dropped) are served when it comes. */
static void test_driver_ok_rescans_queues(void **state)
{
    struct fixture *fx = *state;
    uint32_t st = negotiate(fx, F_VERSION_1_HIGH, (uint32_t)FAKE_FEATURES);
    assert_int_equal(st, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    setup_queue(fx, 0);
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 0); /* not live yet */
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 1);
}

static void test_identity(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(rd32(fx, REG_MAGIC), MAGIC_VIRT);
    assert_int_equal(rd32(fx, REG_VERSION), 2);
    assert_int_equal(rd32(fx, REG_DEVICE_ID), FAKE_DEVICE_ID);
    assert_int_equal(rd32(fx, REG_VENDOR_ID), VIRTIO_MMIO_VENDOR);
    assert_int_equal(fx->dev->t.index, 0);
    assert_int_equal(fx->dev->t.base, FIRST_BASE);
    assert_int_equal(fx->dev->t.gsi, FIRST_GSI);
    assert_int_equal(fx->vm.virtio_mmio.used, 1);
    assert_ptr_equal(fx->vm.devices, &fx->dev->t.dev);
    assert_string_equal(fx->vm.devices->name, "virtio-test0");
    /* The whole 4 KiB page is claimed; beyond the config space reads are 0. */
    assert_int_equal(mmio_read(fx, LAYOUT_VIRTIO_MMIO_SIZE - 4, 4), 0);
    uint8_t b[4];
    assert_false(bus_access(&fx->vm.mmio, FIRST_BASE - 4, b, 4, false));
}

static void test_second_device_gets_next_window(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct fake *f2 = new_fake(&fx->vm, "virtio-test1", err, sizeof(err));
    assert_non_null(f2);
    assert_int_equal(f2->t.index, 1);
    assert_int_equal(f2->t.base, FIRST_BASE + LAYOUT_VIRTIO_MMIO_SIZE);
    assert_int_equal(f2->t.gsi, 6);
    assert_ptr_equal(fx->vm.devices->next, &f2->t.dev);
    assert_int_equal(mmio_read_at(fx, f2->t.base, REG_MAGIC, 4), MAGIC_VIRT);
}

static void test_too_many_devices(void **state)
{
    struct fixture *fx = *state;
    const unsigned gsis[] = LAYOUT_VIRTIO_MMIO_GSIS;
    char err[256];
    for (unsigned i = 1; i < LAYOUT_VIRTIO_MMIO_MAX; i++) {
        char name[32];
        snprintf(name, sizeof(name), "virtio-test%u", i);
        struct fake *f = new_fake(&fx->vm, name, err, sizeof(err));
        if (!f)
            fail_msg("device %u: %s", i, err);
        assert_int_equal(f->t.gsi, gsis[i]);
        assert_int_equal(f->t.base, FIRST_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE);
    }
    err[0] = '\0';
    assert_null(new_fake(&fx->vm, "one-too-many", err, sizeof(err)));
    assert_non_null(strstr(err, "too many virtio-mmio devices"));
    assert_non_null(strstr(err, "one-too-many"));
    assert_int_equal(fx->vm.virtio_mmio.used, LAYOUT_VIRTIO_MMIO_MAX);
}

static int init_bad(struct fixture *fx, struct virtio_mmio *t, const struct virtio_device_ops *ops,
                    char *err, size_t errlen)
{
    return virtio_mmio_init(t, &fx->vm.host, &fx->vm.virtio_mmio, "bad", ops, NULL, err, errlen);
}

static void test_invalid_ops_refused(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct virtio_mmio t;
    struct virtio_device_ops ops = fake_ops;
    ops.num_queues = 0;
    assert_int_equal(init_bad(fx, &t, &ops, err, sizeof(err)), -1);
    ops = fake_ops;
    ops.num_queues = VIRTIO_MMIO_MAX_QUEUES + 1;
    assert_int_equal(init_bad(fx, &t, &ops, err, sizeof(err)), -1);
    ops = fake_ops;
    ops.queue_max_size = 100;
    assert_int_equal(init_bad(fx, &t, &ops, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "power of two"));
    ops = fake_ops;
    ops.config_size = VIRTIO_MMIO_CONFIG_MAX + 1;
    assert_int_equal(init_bad(fx, &t, &ops, err, sizeof(err)), -1);
    ops = fake_ops;
    ops.queue_notify = NULL;
    assert_int_equal(init_bad(fx, &t, &ops, err, sizeof(err)), -1);
    /* Nothing was used up or registered. */
    assert_int_equal(fx->vm.virtio_mmio.used, 1);
    assert_null(fx->vm.devices->next);
}

static void test_linux_init_sequence(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;

    wr32(fx, REG_DEVICE_FEAT_SEL, 1);
    assert_int_equal(rd32(fx, REG_DEVICE_FEATURES), F_VERSION_1_HIGH);
    wr32(fx, REG_DEVICE_FEAT_SEL, 0);
    assert_int_equal(rd32(fx, REG_DEVICE_FEATURES), (uint32_t)FAKE_FEATURES);

    driver_init(fx);
    assert_int_equal(f->device_reset_calls, 1);
    assert_int_equal(f->features_ok_calls, 1);
    assert_int_equal(f->features_seen, FAKE_FEATURES | (1ULL << 32));
    assert_int_equal(f->driver_ok_calls, 1);
    assert_false(f->unlocked_callback);

    virtio_mmio_lock(&f->t);
    assert_int_equal(virtio_mmio_driver_features(&f->t), FAKE_FEATURES | (1ULL << 32));
    assert_true(virtio_mmio_driver_ok(&f->t));
    struct virtq *vq = virtio_mmio_queue(&f->t, 0);
    assert_non_null(vq);
    assert_true(vq->ready);
    assert_int_equal(vq->size, QUEUE_SIZE);
    assert_int_equal(vq->desc_gpa, DESC_GPA);
    assert_int_equal(vq->avail_gpa, AVAIL_GPA);
    assert_int_equal(vq->used_gpa, USED_GPA);
    assert_non_null(virtio_mmio_queue(&f->t, 1));
    assert_null(virtio_mmio_queue(&f->t, FAKE_QUEUES));
    virtio_mmio_unlock(&f->t);
}

static void test_high_queue_addresses(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, 0);
    program_queue(fx, 1, 8, 0x123456789a0ULL, 0xfedcba98762ULL, 0x1111222233334ULL);
    virtio_mmio_lock(&fx->dev->t);
    struct virtq *vq = virtio_mmio_queue(&fx->dev->t, 1);
    assert_int_equal(vq->size, 8);
    assert_int_equal(vq->desc_gpa, 0x123456789a0ULL);
    assert_int_equal(vq->avail_gpa, 0xfedcba98762ULL);
    assert_int_equal(vq->used_gpa, 0x1111222233334ULL);
    /* Queue 0 was not touched. */
    assert_int_equal(virtio_mmio_queue(&fx->dev->t, 0)->desc_gpa, 0);
    virtio_mmio_unlock(&fx->dev->t);
}

static void test_device_features_other_sel(void **state)
{
    struct fixture *fx = *state;
    wr32(fx, REG_DEVICE_FEAT_SEL, 2);
    assert_int_equal(rd32(fx, REG_DEVICE_FEATURES), 0);
    wr32(fx, REG_DEVICE_FEAT_SEL, 0xffffffff);
    assert_int_equal(rd32(fx, REG_DEVICE_FEATURES), 0);
}

static void test_features_refused_without_version_1(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(negotiate(fx, 0, (uint32_t)FAKE_FEATURES), ST_ACK | ST_DRIVER);
    /* DRIVER_OK without accepted features is refused too. */
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_DRIVER_OK, 0);
    assert_int_equal(fx->dev->driver_ok_calls, 0);
}

static void test_features_refused_not_offered(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(negotiate(fx, F_VERSION_1_HIGH, (uint32_t)(FAKE_FEAT_A | FAKE_FEAT_ABSENT)),
                     ST_ACK | ST_DRIVER);
    assert_int_equal(negotiate(fx, F_VERSION_1_HIGH | 2u, 0), ST_ACK | ST_DRIVER);
    assert_int_equal(fx->dev->features_ok_calls, 0); /* refused before asking the device */
    /* A subset is fine. */
    assert_int_equal(negotiate(fx, F_VERSION_1_HIGH, (uint32_t)FAKE_FEAT_B),
                     ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    assert_int_equal(fx->dev->features_seen, FAKE_FEAT_B | (1ULL << 32));
}

static void test_features_refused_by_device(void **state)
{
    struct fixture *fx = *state;
    fx->dev->refuse_features = true;
    assert_int_equal(negotiate(fx, F_VERSION_1_HIGH, (uint32_t)FAKE_FEATURES), ST_ACK | ST_DRIVER);
    assert_int_equal(fx->dev->features_ok_calls, 1);
}

static void test_driver_features_frozen_after_features_ok(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, (uint32_t)FAKE_FEAT_A);
    wr32(fx, REG_DRIVER_FEAT_SEL, 0);
    wr32(fx, REG_DRIVER_FEATURES, (uint32_t)FAKE_FEATURES);
    wr32(fx, REG_DRIVER_FEAT_SEL, 1);
    wr32(fx, REG_DRIVER_FEATURES, 0);
    virtio_mmio_lock(&fx->dev->t);
    assert_int_equal(virtio_mmio_driver_features(&fx->dev->t), FAKE_FEAT_A | (1ULL << 32));
    virtio_mmio_unlock(&fx->dev->t);
}

static void test_needs_reset_bit_is_the_devices(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, 0);
    /* The driver cannot set it ... */
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_NEEDS_RESET);
    assert_int_equal(rd32(fx, REG_STATUS), ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    /* ... nor clear it, except by a reset. */
    locked_needs_reset(fx->dev, "test");
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_FAILED);
    assert_int_equal(rd32(fx, REG_STATUS),
                     ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_FAILED | ST_NEEDS_RESET);
    wr32(fx, REG_STATUS, 0);
    assert_int_equal(rd32(fx, REG_STATUS), 0);
}

static void test_queue_num_max(void **state)
{
    struct fixture *fx = *state;
    wr32(fx, REG_QUEUE_SEL, 0);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM_MAX), FAKE_QUEUE_MAX);
    wr32(fx, REG_QUEUE_SEL, FAKE_QUEUES - 1);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM_MAX), FAKE_QUEUE_MAX);
    wr32(fx, REG_QUEUE_SEL, FAKE_QUEUES);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM_MAX), 0);
    wr32(fx, REG_QUEUE_SEL, 0xffffffff);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM_MAX), 0);
}

static void test_missing_queue_ignores_writes(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, 0);
    program_queue(fx, FAKE_QUEUES, 0, DESC_GPA, AVAIL_GPA, USED_GPA);
    wr32(fx, REG_QUEUE_READY, 1);
    assert_int_equal(rd32(fx, REG_QUEUE_READY), 0);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_NEEDS_RESET, 0);
    virtio_mmio_lock(&fx->dev->t);
    for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
        assert_int_equal(fx->dev->t.queues[q].desc_gpa, 0);
        assert_false(fx->dev->t.queues[q].ready);
    }
    virtio_mmio_unlock(&fx->dev->t);
}

static void test_queue_writes_ignored_while_ready(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx);
    wr32(fx, REG_QUEUE_SEL, 0);
    wr32(fx, REG_QUEUE_NUM, 4);
    wr32(fx, REG_QUEUE_DESC_LO, 0x300000);
    wr32(fx, REG_QUEUE_DESC_HI, 1);
    wr32(fx, REG_QUEUE_DRIVER_LO, 0x301000);
    wr32(fx, REG_QUEUE_DEVICE_LO, 0x302000);
    virtio_mmio_lock(&fx->dev->t);
    struct virtq *vq = virtio_mmio_queue(&fx->dev->t, 0);
    assert_int_equal(vq->size, QUEUE_SIZE);
    assert_int_equal(vq->desc_gpa, DESC_GPA);
    assert_int_equal(vq->avail_gpa, AVAIL_GPA);
    assert_int_equal(vq->used_gpa, USED_GPA);
    virtio_mmio_unlock(&fx->dev->t);

    /* QueueReady = 0 stops the queue; then the layout may change again (Linux's del_vq). */
    wr32(fx, REG_QUEUE_READY, 0);
    assert_int_equal(rd32(fx, REG_QUEUE_READY), 0);
    wr32(fx, REG_QUEUE_NUM, 4);
    virtio_mmio_lock(&fx->dev->t);
    assert_int_equal(vq->size, 4);
    virtio_mmio_unlock(&fx->dev->t);
}

static void expect_bad_layout(struct fixture *fx, uint32_t num, uint64_t desc, uint64_t avail,
                              uint64_t used)
{
    negotiate(fx, F_VERSION_1_HIGH, 0);
    program_queue(fx, 0, num, desc, avail, used);
    wr32(fx, REG_QUEUE_READY, 1);
    assert_int_equal(rd32(fx, REG_QUEUE_READY), 0);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_NEEDS_RESET, ST_NEEDS_RESET);
    /* Before DRIVER_OK there is no config interrupt. */
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(eventfd_count(fx->dev->t.irq_fd), 0);
}

static void test_queue_ready_bad_layout(void **state)
{
    struct fixture *fx = *state;
    expect_bad_layout(fx, QUEUE_SIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA);     /* misaligned */
    expect_bad_layout(fx, QUEUE_SIZE, UNBACKED_GPA, AVAIL_GPA, USED_GPA);     /* no memory */
    expect_bad_layout(fx, QUEUE_SIZE, DESC_GPA, AVAIL_GPA, RAM_SIZE * 4);     /* beyond RAM */
    expect_bad_layout(fx, 0, DESC_GPA, AVAIL_GPA, USED_GPA);                  /* no size */
    expect_bad_layout(fx, 12, DESC_GPA, AVAIL_GPA, USED_GPA);                 /* not 2^n */
    expect_bad_layout(fx, FAKE_QUEUE_MAX * 2, DESC_GPA, AVAIL_GPA, USED_GPA); /* > max */
    expect_bad_layout(fx, 0x10000 | 16, DESC_GPA, AVAIL_GPA, USED_GPA);       /* > 16 bits */
    /* After a reset the same queue can be set up properly. */
    driver_init(fx);
}

static void test_queue_num_above_max(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, 0);
    wr32(fx, REG_QUEUE_SEL, 0);
    wr32(fx, REG_QUEUE_NUM, FAKE_QUEUE_MAX);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_NEEDS_RESET, 0);
    wr32(fx, REG_QUEUE_NUM, FAKE_QUEUE_MAX + 1);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_NEEDS_RESET, ST_NEEDS_RESET);
    virtio_mmio_lock(&fx->dev->t);
    assert_int_equal(virtio_mmio_queue(&fx->dev->t, 0)->size, 0);
    virtio_mmio_unlock(&fx->dev->t);
}

static void test_queue_notify(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;

    /* Before DRIVER_OK: swallowed. */
    negotiate(fx, F_VERSION_1_HIGH, 0);
    setup_queue(fx, 0);
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 0);

    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    /* Nothing is delivered until the event loop runs. */
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    assert_int_equal(f->notify_calls[0], 0);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 1);

    /* Several notifications before the loop runs collapse into one call. */
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 2);

    /* KVM's ioeventfd signals the same fd. */
    uint64_t one = 1;
    assert_int_equal(write(f->t.notify_fd[0], &one, sizeof(one)), sizeof(one));
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 3);

    /* Queue 1 exists but is not ready; queue 2 does not exist. */
    wr32(fx, REG_QUEUE_NOTIFY, 1);
    wr32(fx, REG_QUEUE_NOTIFY, FAKE_QUEUES);
    wr32(fx, REG_QUEUE_NOTIFY, 0xffffffff);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 3);
    assert_int_equal(f->notify_calls[1], 0);

    /* Once queue 1 is ready it is notified separately. */
    setup_queue(fx, 1);
    wr32(fx, REG_QUEUE_NOTIFY, 1);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 3);
    assert_int_equal(f->notify_calls[1], 1);

    /* A stopped queue is not notified. */
    wr32(fx, REG_QUEUE_SEL, 0);
    wr32(fx, REG_QUEUE_READY, 0);
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 3);
    assert_false(f->unlocked_callback);
}

static void test_notify_suppressed_while_needs_reset(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx);
    locked_needs_reset(fx->dev, "test");
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 0);
    /* A reset and a new initialisation bring the queue back. */
    driver_init(fx);
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 1);
}

static void test_notify_needs_four_bytes(void **state)
{
    struct fixture *fx = *state;
    driver_init(fx);
    mmio_write(fx, REG_QUEUE_NOTIFY, 0, 2);
    mmio_write(fx, REG_QUEUE_NOTIFY, 0, 8);
    run_loop(fx);
    assert_int_equal(fx->dev->notify_calls[0], 0);
}

static void test_interrupts(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    driver_init(fx);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);

    locked_queue_interrupt(f, 0);
    assert_int_equal(rd32(fx, REG_INT_STATUS), INT_USED);
    assert_int_equal(eventfd_count(f->t.irq_fd), 1);

    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    locked_config_changed(f, true);
    assert_int_equal(rd32(fx, REG_INT_STATUS), INT_USED | INT_CONFIG);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 1);
    assert_int_equal(eventfd_count(f->t.irq_fd), 1);

    /* Each event pulses the line again, acknowledged or not. */
    locked_queue_interrupt(f, 1);
    locked_queue_interrupt(f, 0);
    assert_int_equal(eventfd_count(f->t.irq_fd), 2);

    /* What Linux's vm_interrupt does: read the status, acknowledge exactly that. */
    wr32(fx, REG_INT_ACK, INT_USED);
    assert_int_equal(rd32(fx, REG_INT_STATUS), INT_CONFIG);
    wr32(fx, REG_INT_ACK, INT_CONFIG);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);
}

static void test_config_change_before_driver_ok(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    locked_config_changed(f, true);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 1);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);

    negotiate(fx, F_VERSION_1_HIGH, 0);
    locked_config_changed(f, true);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 2);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);

    /* After DRIVER_OK, notify=false still only moves the generation. */
    driver_init(fx);
    locked_config_changed(f, false);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 3);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);
}

static void test_generation_counts(void **state)
{
    struct fixture *fx = *state;
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    for (unsigned i = 1; i <= 5; i++) {
        locked_config_changed(fx->dev, false);
        assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + i);
    }
    /* Reading does not change it. */
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 5);
}

static uint64_t expected_config(unsigned off, unsigned len)
{
    uint8_t b[8];
    for (unsigned i = 0; i < len; i++)
        b[i] = CONFIG_BYTE(off + i);
    return le(b, len);
}

static void test_config_reads(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    static const struct {
        unsigned off, len;
    } cases[] = {{0, 1},
                 {1, 1},
                 {8, 2},
                 {0x0a, 2},
                 {0, 4},
                 {0x20, 4},
                 {0x34, 4},
                 {0, 8},
                 {0x30, 8},
                 {FAKE_CONFIG_SIZE - 1, 1},
                 {FAKE_CONFIG_SIZE - 2, 2},
                 {FAKE_CONFIG_SIZE - 8, 8}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int calls = f->config_read_calls;
        uint64_t v = mmio_read(fx, REG_CONFIG + cases[i].off, cases[i].len);
        assert_int_equal(v, expected_config(cases[i].off, cases[i].len));
        assert_int_equal(f->config_read_calls, calls + 1);
        assert_int_equal(f->config_off, cases[i].off);
        assert_int_equal(f->config_len, cases[i].len);
    }
    /* Linux reads a 64-bit field as two 32-bit reads, low then high. */
    uint64_t lo = mmio_read(fx, REG_CONFIG + 0x30, 4), hi = mmio_read(fx, REG_CONFIG + 0x34, 4);
    assert_int_equal(lo | hi << 32, expected_config(0x30, 8));
    assert_false(f->unlocked_callback);
}

static void test_config_out_of_range(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    int calls = f->config_read_calls;
    assert_int_equal(mmio_read(fx, REG_CONFIG + FAKE_CONFIG_SIZE, 1), 0);
    assert_int_equal(mmio_read(fx, REG_CONFIG + FAKE_CONFIG_SIZE - 2, 4), 0);
    assert_int_equal(mmio_read(fx, REG_CONFIG + FAKE_CONFIG_SIZE - 4, 8), 0);
    assert_int_equal(mmio_read(fx, REG_CONFIG + VIRTIO_MMIO_CONFIG_MAX - 1, 1), 0);
    assert_int_equal(mmio_read(fx, REG_CONFIG + VIRTIO_MMIO_CONFIG_MAX, 4), 0);
    assert_int_equal(f->config_read_calls, calls);
}

static void test_config_writes_ignored(void **state)
{
    struct fixture *fx = *state;
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    mmio_write(fx, REG_CONFIG, 0xdeadbeef, 4);
    mmio_write(fx, REG_CONFIG + 0x30, 0x1122334455667788ULL, 8);
    mmio_write(fx, REG_CONFIG + 1, 0xff, 1);
    assert_int_equal(mmio_read(fx, REG_CONFIG, 8), expected_config(0, 8));
    assert_int_equal(mmio_read(fx, REG_CONFIG + 0x30, 8), expected_config(0x30, 8));
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen);
}

static void test_control_registers_need_32_bits(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(mmio_read(fx, REG_MAGIC, 1), 0);
    assert_int_equal(mmio_read(fx, REG_MAGIC, 2), 0);
    assert_int_equal(mmio_read(fx, REG_MAGIC, 8), 0);
    assert_int_equal(mmio_read(fx, REG_MAGIC + 1, 4), 0);
    assert_int_equal(mmio_read(fx, REG_CONFIG_GEN, 8), 0); /* straddles into config space */
    mmio_write(fx, REG_STATUS, ST_ACK, 1);
    mmio_write(fx, REG_STATUS, ST_ACK, 2);
    mmio_write(fx, REG_STATUS, ST_ACK, 8);
    mmio_write(fx, REG_STATUS + 2, ST_ACK, 4);
    assert_int_equal(rd32(fx, REG_STATUS), 0);
    wr32(fx, REG_STATUS, ST_ACK);
    assert_int_equal(rd32(fx, REG_STATUS), ST_ACK);
}

static void test_shm_queue_reset_and_write_only(void **state)
{
    struct fixture *fx = *state;
    wr32(fx, REG_SHM_SEL, 0);
    assert_int_equal(rd32(fx, REG_SHM_LEN_LO), 0xffffffffu);
    assert_int_equal(rd32(fx, REG_SHM_LEN_HI), 0xffffffffu);
    assert_int_equal(rd32(fx, REG_SHM_BASE_LO), 0xffffffffu);
    assert_int_equal(rd32(fx, REG_SHM_BASE_HI), 0xffffffffu);
    assert_int_equal(rd32(fx, REG_QUEUE_RESET), 0);
    wr32(fx, REG_QUEUE_RESET, 1);
    assert_int_equal(rd32(fx, REG_QUEUE_RESET), 0);
    /* Write-only registers read 0; read-only ones ignore writes. */
    driver_init(fx);
    assert_int_equal(rd32(fx, REG_QUEUE_NUM), 0);
    assert_int_equal(rd32(fx, REG_QUEUE_DESC_LO), 0);
    assert_int_equal(rd32(fx, REG_DRIVER_FEATURES), 0);
    wr32(fx, REG_MAGIC, 0);
    wr32(fx, REG_DEVICE_ID, 0);
    wr32(fx, REG_INT_STATUS, 0xff);
    wr32(fx, REG_CONFIG_GEN, 0x55);
    assert_int_equal(rd32(fx, REG_MAGIC), MAGIC_VIRT);
    assert_int_equal(rd32(fx, REG_DEVICE_ID), FAKE_DEVICE_ID);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), 0);
}

static void assert_transport_reset(struct fixture *fx)
{
    struct fake *f = fx->dev;
    assert_int_equal(rd32(fx, REG_STATUS), 0);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(rd32(fx, REG_DEVICE_FEATURES), (uint32_t)FAKE_FEATURES); /* sel back to 0 */
    for (uint32_t q = 0; q < FAKE_QUEUES; q++) {
        wr32(fx, REG_QUEUE_SEL, q);
        assert_int_equal(rd32(fx, REG_QUEUE_READY), 0);
    }
    virtio_mmio_lock(&f->t);
    assert_int_equal(virtio_mmio_driver_features(&f->t), 0);
    assert_false(virtio_mmio_driver_ok(&f->t));
    for (unsigned q = 0; q < FAKE_QUEUES; q++) {
        struct virtq *vq = virtio_mmio_queue(&f->t, q);
        assert_false(vq->ready);
        assert_int_equal(vq->size, 0);
        assert_int_equal(vq->desc_gpa, 0);
        assert_int_equal(vq->avail_gpa, 0);
        assert_int_equal(vq->used_gpa, 0);
    }
    virtio_mmio_unlock(&f->t);
}

static void test_device_reset(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    driver_init(fx);
    setup_queue(fx, 1);
    wr32(fx, REG_DEVICE_FEAT_SEL, 1);
    locked_config_changed(f, true);
    locked_config_changed(f, true);
    locked_queue_interrupt(f, 0);
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    assert_int_equal(gen, 2);
    int resets = f->device_reset_calls;

    wr32(fx, REG_STATUS, 0);
    assert_int_equal(f->device_reset_calls, resets + 1);
    assert_int_equal(f->system_reset_calls, 0);
    assert_transport_reset(fx);
    /* ConfigGeneration is not reset: it keeps counting. */
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen);
    locked_config_changed(f, false);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 1);

    /* Features written before the reset are gone: FEATURES_OK without VERSION_1 fails. */
    wr32(fx, REG_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    assert_int_equal(rd32(fx, REG_STATUS), ST_ACK | ST_DRIVER);
}

static void test_system_reset(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    driver_init(fx);
    locked_config_changed(f, true);
    locked_needs_reset(f, "test");
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    /* Left over from the old boot: a pending notification and interrupt. */
    wr32(fx, REG_QUEUE_NOTIFY, 0);
    int resets = f->device_reset_calls;

    f->t.dev.ops->reset(&f->t.dev);
    assert_int_equal(f->system_reset_calls, 1);
    assert_int_equal(f->device_reset_calls, resets);
    assert_false(f->unlocked_callback);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);
    assert_transport_reset(fx);
    assert_true(rd32(fx, REG_CONFIG_GEN) >= gen);

    /* The stale notification does not reach the freshly initialised device. */
    driver_init(fx);
    run_loop(fx);
    assert_int_equal(f->notify_calls[0], 0);
}

static void test_set_needs_reset(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    driver_init(fx);
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    locked_needs_reset(f, "test: bad request size");
    assert_int_equal(rd32(fx, REG_STATUS) & ST_NEEDS_RESET, ST_NEEDS_RESET);
    assert_int_equal(rd32(fx, REG_STATUS) & ST_DRIVER_OK, ST_DRIVER_OK);
    assert_int_equal(rd32(fx, REG_INT_STATUS), INT_CONFIG);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 1);
    assert_int_equal(eventfd_count(f->t.irq_fd), 1);
    /* Reported once: a second call changes nothing. */
    locked_needs_reset(f, "test: again");
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen + 1);
    assert_int_equal(eventfd_count(f->t.irq_fd), 0);
    /* Only a reset clears it. */
    wr32(fx, REG_STATUS, 0);
    assert_int_equal(rd32(fx, REG_STATUS), 0);
}

static void test_set_needs_reset_before_driver_ok(void **state)
{
    struct fixture *fx = *state;
    negotiate(fx, F_VERSION_1_HIGH, 0);
    uint32_t gen = rd32(fx, REG_CONFIG_GEN);
    locked_needs_reset(fx->dev, "test");
    assert_int_equal(rd32(fx, REG_STATUS), ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_NEEDS_RESET);
    assert_int_equal(rd32(fx, REG_INT_STATUS), 0);
    assert_int_equal(rd32(fx, REG_CONFIG_GEN), gen);
    assert_int_equal(eventfd_count(fx->dev->t.irq_fd), 0);
}

/* Offset of needle in hay, or -1. */
static long find_bytes(const uint8_t *hay, size_t len, const void *needle, size_t nlen)
{
    for (size_t i = 0; i + nlen <= len; i++)
        if (memcmp(hay + i, needle, nlen) == 0)
            return (long)i;
    return -1;
}

static void test_describe_acpi(void **state)
{
    struct fixture *fx = *state;
    struct aml aml;
    aml_init(&aml);
    fx->dev->t.dev.ops->describe_acpi(&fx->dev->t.dev, &aml);
    if (!aml_ok(&aml))
        fail_msg("aml: %s", aml_error(&aml));
    const uint8_t *p = aml_data(&aml);
    size_t n = aml_size(&aml);

    /* Device (VR00): ExtOpPrefix DeviceOp PkgLength "VR00" (ACPI 6.5 §20.2.5.2). */
    assert_int_equal(p[0], 0x5b);
    assert_int_equal(p[1], 0x82);
    assert_true(find_bytes(p, n, "VR00", 4) >= 0);
    /* _HID is a string (StringPrefix 0x0d), not an EISAID integer. */
    static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N',
                                  'R',  'O', '0', '0', '0', '5',  0};
    assert_true(find_bytes(p, n, hid, sizeof(hid)) >= 0);
    static const uint8_t cca[] = {0x08, '_', 'C', 'C', 'A', 0x01}; /* Name (_CCA, One) */
    assert_true(find_bytes(p, n, cca, sizeof(cca)) >= 0);
    static const uint8_t uid[] = {0x08, '_', 'U', 'I', 'D', 0x00}; /* Name (_UID, Zero) */
    assert_true(find_bytes(p, n, uid, sizeof(uid)) >= 0);
    /* Memory32Fixed (ReadWrite, 0xf0000000, 0x200) (ACPI 6.5 §6.4.3.4). */
    static const uint8_t mem[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
                                  0x00, 0xf0, 0x00, 0x02, 0x00, 0x00};
    assert_true(find_bytes(p, n, mem, sizeof(mem)) >= 0);
    /* Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5} (§6.4.3.6). */
    static const uint8_t irq[] = {0x89, 0x06, 0x00, 0x03, 0x01, FIRST_GSI, 0x00, 0x00, 0x00};
    assert_true(find_bytes(p, n, irq, sizeof(irq)) >= 0);
    aml_release(&aml);
}

static void describe_all(void *opaque, struct aml *aml)
{
    struct test_vm *vm = opaque;
    for (struct device *d = vm->devices; d; d = d->next)
        d->ops->describe_acpi(d, aml);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("%s was not produced", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

/* Drop // comments and collapse white space, so matches do not depend on iasl's layout. */
static void normalise(char *text)
{
    char *out = text;
    for (const char *p = text; *p;) {
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                p++;
        } else if (isspace((unsigned char)*p)) {
            while (isspace((unsigned char)*p))
                p++;
            if (out > text && out[-1] != ' ')
                *out++ = ' ';
        } else {
            *out++ = *p++;
        }
    }
    *out = '\0';
}

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("the disassembled DSDT lacks \"%s\":\n%s", needle, text);
}

/* Two devices in a complete DSDT, disassembled by ACPICA's iasl. */
static void test_dsdt_disassembles(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    assert_non_null(new_fake(&fx->vm, "virtio-test1", err, sizeof(err)));
    if (system("command -v iasl >/dev/null 2>&1") != 0)
        fail_msg("iasl not found: install the Debian package acpica-tools");

    static uint8_t tables[16384];
    struct acpi_config cfg = {
        .ncpus = 1,
        .lapic_addr = (uint32_t)LAYOUT_LAPIC_ADDR,
        .ioapic_addr = (uint32_t)LAYOUT_IOAPIC_ADDR,
        .sleep_control_port = LAYOUT_PM_SLEEP_CONTROL,
        .sleep_status_port = LAYOUT_PM_SLEEP_STATUS,
        .reset_port = LAYOUT_PM_RESET,
        .reset_value = LAYOUT_PM_RESET_VALUE,
        .s5_sleep_type = LAYOUT_PM_S5_SLEEP_TYPE,
        .describe_devices = describe_all,
        .opaque = &fx->vm,
    };
    size_t len = acpi_build_tables(&cfg, LAYOUT_ACPI_START, tables, sizeof(tables));
    assert_true(len > 0);
    const uint8_t *dsdt = NULL;
    for (size_t off = 0; off + 4 <= len; off += ACPI_TABLE_ALIGN)
        if (memcmp(tables + off, "DSDT", 4) == 0)
            dsdt = tables + off;
    assert_non_null(dsdt);
    uint32_t dsdt_len = (uint32_t)le(dsdt + 4, 4);

    char dir[] = "/tmp/minivmm-test-virtio-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], cmd[512];
    snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(dsdt, 1, dsdt_len, fp), dsdt_len);
    fclose(fp);
    snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat > iasl.log 2>&1", dir);
    int status = system(cmd);
    snprintf(path, sizeof(path), "%s/iasl.log", dir);
    if (status != 0)
        fail_msg("iasl -d failed:\n%s", slurp(path));
    snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
    char *dsl = slurp(path);
    normalise(dsl);

    assert_contains(dsl, "Device (VR00)");
    assert_contains(dsl, "Device (VR01)");
    assert_contains(dsl, "Name (_HID, \"LNRO0005\")");
    assert_contains(dsl, "Name (_UID, One)");
    assert_contains(dsl, "Name (_CCA, One)");
    assert_contains(dsl, "Memory32Fixed (ReadWrite, 0xF0000000, 0x00000200, )");
    assert_contains(dsl, "Memory32Fixed (ReadWrite, 0xF0001000, 0x00000200, )");
    assert_contains(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) "
                         "{ 0x00000005, }");
    assert_contains(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) "
                         "{ 0x00000006, }");

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_kernel_cmdline(void **state)
{
    struct fixture *fx = *state;
    char buf[64];
    const char *want = "virtio_mmio.device=4K@0xf0000000:5";
    assert_int_equal(virtio_mmio_cmdline(&fx->dev->t, buf, sizeof(buf)), (int)strlen(want));
    assert_string_equal(buf, want);
    struct device *d = &fx->dev->t.dev;
    memset(buf, 0, sizeof(buf));
    assert_int_equal(d->ops->kernel_cmdline(d, buf, sizeof(buf)), (int)strlen(want));
    assert_string_equal(buf, want);
    /* Exactly fitting (with the NUL) works; one byte less does not. */
    assert_int_equal(virtio_mmio_cmdline(&fx->dev->t, buf, strlen(want) + 1), (int)strlen(want));
    assert_int_equal(virtio_mmio_cmdline(&fx->dev->t, buf, strlen(want)), -1);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_destroy(void **state)
{
    struct fixture *fx = *state;
    struct fake *f = fx->dev;
    int irq_fd = f->t.irq_fd;
    int notify_fd = f->t.notify_fd[0];
    assert_true(fd_open(irq_fd));
    assert_true(fd_open(notify_fd));
    assert_int_equal(f->t.notify_fd[FAKE_QUEUES], -1); /* only the device's queues get one */
    int destroyed = fakes_destroyed;

    fx->vm.devices = NULL; /* the teardown must not destroy it again */
    f->t.dev.ops->destroy(&f->t.dev);
    assert_int_equal(fakes_destroyed, destroyed + 1);
    assert_false(fd_open(irq_fd));
    assert_false(fd_open(notify_fd));
    uint8_t b[4];
    assert_false(bus_access(&fx->vm.mmio, FIRST_BASE, b, 4, false));
    assert_int_equal(evloop_remove(&fx->vm.loop, notify_fd), -1); /* no longer watched */
}

static void test_attach_without_kvm(void **state)
{
    struct fixture *fx = *state;
    char err[256] = "";
    struct device *d = &fx->dev->t.dev;
    assert_int_equal(d->ops->attach(d, -1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "KVM_IRQFD"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_identity),
        T(test_second_device_gets_next_window),
        T(test_too_many_devices),
        T(test_invalid_ops_refused),
        T(test_linux_init_sequence),
        T(test_high_queue_addresses),
        T(test_device_features_other_sel),
        T(test_features_refused_without_version_1),
        T(test_features_refused_not_offered),
        T(test_features_refused_by_device),
        T(test_driver_features_frozen_after_features_ok),
        T(test_needs_reset_bit_is_the_devices),
        T(test_queue_num_max),
        T(test_missing_queue_ignores_writes),
        T(test_queue_writes_ignored_while_ready),
        T(test_queue_ready_bad_layout),
        T(test_queue_num_above_max),
        T(test_queue_notify),
        T(test_notify_suppressed_while_needs_reset),
        T(test_notify_needs_four_bytes),
        T(test_driver_ok_rescans_queues),
        T(test_interrupts),
        T(test_config_change_before_driver_ok),
        T(test_generation_counts),
        T(test_config_reads),
        T(test_config_out_of_range),
        T(test_config_writes_ignored),
        T(test_control_registers_need_32_bits),
        T(test_shm_queue_reset_and_write_only),
        T(test_device_reset),
        T(test_system_reset),
        T(test_set_needs_reset),
        T(test_set_needs_reset_before_driver_ok),
        T(test_describe_acpi),
        T(test_dsdt_disassembles),
        T(test_kernel_cmdline),
        T(test_destroy),
        T(test_attach_without_kvm),
    };
#undef T
    return cmocka_run_group_tests_name("virtio-mmio transport", tests, NULL, NULL);
}
