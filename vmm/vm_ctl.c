/*
 * vm_ctl.c - what the control socket's commands do to this VM (the handlers
 * behind ctl.h).  Runs on the main thread.
 */
#include "vmm/vm_ctl.h"

#include <stdio.h>
#include <string.h>

#include "devices/virtio_mem.h"
#include "vfio/vfio.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct virtio_mem *vm_ctl_find_virtio_mem(struct virtio_mem *const *devices, unsigned n,
                                          const char *id)
{
    if (id[0] == '\0')
        return n == 1 ? devices[0] : NULL;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(devices[i]->opts.id, id) == 0)
            return devices[i];
    return NULL;
}

static int vm_ctl_status(void *opaque, struct json *out, char *err, size_t errlen)
{
    struct vm *vm = opaque;
    (void)err;
    (void)errlen;
    json_object_begin(out);
    json_kv_u64(out, "boots", vm->boots);
    json_key(out, "devices");
    json_array_begin(out);
    for (unsigned i = 0; i < vm->nr_virtio_mem; i++)
        virtio_mem_status(vm->virtio_mem[i], out);
    json_array_end(out);
    vfio_status(&vm->vfio, out);
    json_object_end(out);
    return 0;
}

/* Say which device ids exist, for error messages. */
static void list_ids(struct vm *vm, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < vm->nr_virtio_mem && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 vm->virtio_mem[i]->opts.id);
}

static int vm_ctl_resize(void *opaque, const char *id, uint64_t size, struct json *out, char *err,
                         size_t errlen)
{
    struct vm *vm = opaque;
    char ids[256];
    struct virtio_mem *m = vm_ctl_find_virtio_mem(vm->virtio_mem, vm->nr_virtio_mem, id);
    if (!m) {
        list_ids(vm, ids, sizeof(ids));
        if (vm->nr_virtio_mem == 0)
            return errf(err, errlen,
                        "there is no virtio-mem device (start minivmm with "
                        "--virtio-mem size=SIZE)");
        if (id[0] == '\0')
            return errf(err, errlen,
                        "there are %u virtio-mem devices (%s): say which, e.g. "
                        "resize %s 4G",
                        vm->nr_virtio_mem, ids, vm->virtio_mem[0]->opts.id);
        return errf(err, errlen, "there is no virtio-mem device '%s' (devices: %s)", id, ids);
    }
    if (virtio_mem_resize(m, size, err, errlen) < 0)
        return -1;
    virtio_mem_status(m, out);
    return 0;
}

static int vm_ctl_shutdown(void *opaque, struct json *out, char *err, size_t errlen)
{
    struct vm *vm = opaque;
    (void)err;
    (void)errlen;
    vm_request_stop(vm, VM_STOP_SHUTDOWN);
    json_object_begin(out);
    json_kv_bool(out, "ok", true);
    json_object_end(out);
    return 0;
}

static void hex_member(struct json *out, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%#llx", (unsigned long long)v);
    json_kv_string(out, key, buf);
}

/* How long a vCPU thread has to answer the dump before it counts as unresponsive. */
#define DUMP_VCPU_TIMEOUT_MS 500

static void dump_vcpu(struct vcpu *v, struct json *out)
{
    struct vcpu_snapshot s;
    vcpu_snapshot(v, &s, DUMP_VCPU_TIMEOUT_MS);
    json_object_begin(out);
    json_kv_u64(out, "id", v->id);
    json_kv_bool(out, "answered", s.answered);
    if (s.answered) {
        hex_member(out, "rip", s.rip);
        hex_member(out, "rsp", s.rsp);
        hex_member(out, "rflags", s.rflags);
        hex_member(out, "cs", s.cs);
        hex_member(out, "cr0", s.cr0);
        hex_member(out, "cr3", s.cr3);
        hex_member(out, "cr4", s.cr4);
        hex_member(out, "efer", s.efer);
        json_kv_string(out, "mode", s.mode);
        json_kv_string(out, "mp_state", s.mp_state);
    }
    json_kv_u64(out, "exits", s.exits);
    json_kv_string(out, "last_exit", vcpu_exit_name(s.last_exit));
    hex_member(out, "last_exit_addr", s.last_io_addr);
    json_object_end(out);
}

/*
 * Where a hung guest hangs: each vCPU (kicked out of the guest to read its
 * registers; one stuck in device emulation says answered false) and each
 * device's state.
 */
static int vm_ctl_dump(void *opaque, struct json *out, char *err, size_t errlen)
{
    struct vm *vm = opaque;
    (void)err;
    (void)errlen;
    json_object_begin(out);
    json_kv_u64(out, "boots", vm->boots);
    json_key(out, "vcpus");
    json_array_begin(out);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vm->vcpus[i].started)
            dump_vcpu(&vm->vcpus[i], out);
    json_array_end(out);
    json_key(out, "devices");
    json_array_begin(out);
    for (struct device *d = vm->devices; d; d = d->next) {
        json_object_begin(out);
        json_kv_string(out, "name", d->name);
        if (d->ops->dump)
            d->ops->dump(d, out);
        json_object_end(out);
    }
    json_array_end(out);
    vfio_status(&vm->vfio, out);
    json_object_end(out);
    return 0;
}

const struct ctl_handlers vm_ctl_handlers = {
    .status = vm_ctl_status,
    .resize = vm_ctl_resize,
    .shutdown = vm_ctl_shutdown,
    .dump = vm_ctl_dump,
};
