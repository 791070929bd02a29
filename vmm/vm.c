/* vm.c - VM life cycle: create, boot, run, reboot, destroy; see vm.h. */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/cpuid.h"
#include "vmm/device_table.h"
#include "vmm/layout.h"
#include "devices/serial.h"
#include "vmm/seccomp.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm_ctl.h"

#define KVM_DEVICE_PATH   "/dev/kvm"
#define CPUID_MAX_ENTRIES 256

/* --- start-up ------------------------------------------------------------ */

static void open_kvm(struct vm *vm)
{
    vm->kvm_fd = open(KVM_DEVICE_PATH, O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        if (errno == ENOENT)
            die("%s does not exist: load kvm_intel or kvm_amd (and enable virtualization in the "
                "firmware), or run minivmm inside the testbed (scripts/testbed)",
                KVM_DEVICE_PATH);
        if (errno == EACCES || errno == EPERM)
            die("no permission to open %s: run as root or add your user to the kvm group",
                KVM_DEVICE_PATH);
        die("cannot open %s: %s", KVM_DEVICE_PATH, strerror(errno));
    }
    int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        die("%s speaks KVM API version %d; minivmm needs %d", KVM_DEVICE_PATH, api,
            KVM_API_VERSION);

    static const struct {
        int cap;
        const char *name;
    } required[] = {
        {KVM_CAP_IRQCHIP, "in-kernel irqchip"},
        {KVM_CAP_USER_MEMORY, "user memory slots"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_SET_TSS_ADDR"},
        {KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID"},
        {KVM_CAP_PIT2, "in-kernel PIT"},
        {KVM_CAP_IMMEDIATE_EXIT, "immediate_exit"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(required); i++)
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0)
            die("this host's KVM lacks %s (capability %d); minivmm needs a Linux 4.11+ host",
                required[i].name, required[i].cap);

    int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max_vcpus > 0 && vm->cfg->cpus > (unsigned)max_vcpus)
        die_usage("--cpus %u is more than the %d vCPUs this host's KVM allows; use --cpus %d or "
                  "fewer",
                  vm->cfg->cpus, max_vcpus, max_vcpus);
    vm->tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    int slots = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    vm->max_memslots = slots > 0 ? (unsigned)slots : 0;

    vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->run_size <= 0)
        die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));

    size_t bytes = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    vm->cpuid = xzalloc(bytes);
    vm->cpuid->nent = CPUID_MAX_ENTRIES;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) < 0)
        die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
}

/* Boot RAM must end inside the guest CPU's physical address space, or KVM refuses its slot. */
static void check_ram_fits(struct vm *vm)
{
    unsigned bits = cpuid_phys_bits(vm->cpuid);
    uint64_t mem = vm->cfg->memory;
    uint64_t end = layout_ram_end(mem);
    if (bits < 32 || bits >= 64 || end <= (1ULL << bits))
        return;
    char a[32], b[32];
    die_usage("--memory %s: RAM would end at %#llx, above the %u-bit physical address space of "
              "this host's CPUs; use --memory %s or less",
              format_size(mem, a, sizeof(a)), (unsigned long long)end, bits,
              format_size_option((1ULL << bits) - LAYOUT_PCI_HOLE_END + LAYOUT_PCI_HOLE_START, b,
                                 sizeof(b)));
}

/*
 * A file given on the command line cannot be used: one line that says why
 * and what to give instead, exit 2 (the option's value is wrong).
 */
__attribute__((noreturn)) static void bad_path(const char *what, const char *path, int e,
                                               const char *hint)
{
    switch (e) {
    case ENOENT:
        die_usage("%s %s: no such file; %s", what, path, hint);
    case ENOTDIR:
        die_usage("%s %s: a directory in the path is a file; %s", what, path, hint);
    case EACCES:
    case EPERM:
        die_usage("%s %s: permission denied; make it readable for this user or give another "
                  "file",
                  what, path);
    case ELOOP:
        die_usage("%s %s: too many symbolic links (a loop?); %s", what, path, hint);
    case EISDIR:
        die_usage("%s %s is a directory; %s", what, path, hint);
    default:
        die_usage("%s %s: cannot open: %s; %s", what, path, strerror(e), hint);
    }
}

/* Open a file named by an option: it must be a regular file.  Exits 2 otherwise. */
static int open_input(const char *what, const char *path, const char *hint, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bad_path(what, path, errno, hint);
    if (fstat(fd, st) < 0)
        die("%s %s: cannot stat: %s", what, path, strerror(errno));
    if (S_ISDIR(st->st_mode))
        bad_path(what, path, EISDIR, hint);
    if (!S_ISREG(st->st_mode))
        die_usage("%s %s is not a regular file (a device, pipe or socket); %s", what, path, hint);
    return fd;
}

#define KERNEL_HINT "give a bzImage such as /boot/vmlinuz-$(uname -r)"

static uint8_t *read_kernel(const char *path, size_t *len)
{
    struct stat st;
    int fd = open_input("--kernel", path, KERNEL_HINT, &st);
    uint8_t *buf = xzalloc((size_t)st.st_size);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("--kernel %s: read failed: %s", path, strerror(errno));
        if (n == 0)
            break; /* the file shrank: parse what there is */
        done += (size_t)n;
    }
    close(fd);
    *len = done;
    return buf;
}

/*
 * The console file is opened by the serial device much later; open it here
 * once, before anything is allocated, so that a path that cannot be written
 * is reported at once as a command-line error.
 */
static void check_console_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        return;
    }
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
        die_usage("--console file=%s: the directory does not exist; create it or choose another "
                  "file",
                  path);
    if (e == EISDIR)
        die_usage("--console file=%s is a directory; give a file name, e.g. file=%s/console.log",
                  path, path);
    if (e == EACCES || e == EPERM || e == EROFS)
        die_usage("--console file=%s: cannot write it (%s); choose a file you can write", path,
                  strerror(e));
    die_usage("--console file=%s: cannot open it for writing: %s", path, strerror(e));
}

static void load_boot_files(struct vm *vm)
{
    char err[256];
    struct bzimage_info info;
    vm->kernel = read_kernel(vm->cfg->kernel_path, &vm->kernel_size);
    if (boot_parse_bzimage(vm->kernel, vm->kernel_size, &info, err, sizeof(err)) < 0)
        die_usage("--kernel %s %s", vm->cfg->kernel_path, err);

    vm->initrd_fd = -1;
    if (vm->cfg->initrd_path) {
        struct stat st;
        vm->initrd_fd = open_input("--initrd", vm->cfg->initrd_path,
                                   "give an initramfs file, or leave --initrd out", &st);
        vm->initrd_size = (uint64_t)st.st_size;
    }
    if (vm->cfg->serial.console == CONSOLE_FILE)
        check_console_file(vm->cfg->serial.console_path);
}

static void on_stop_event(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    uint64_t v;
    (void)events;
    if (read(vm->stop_fd, &v, sizeof(v)) < 0) {
        /* The counter is only a wake-up; stop_reason carries the state. */
    }
}

static void on_signal(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    struct signalfd_siginfo si;
    (void)events;
    if (read(vm->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (!vm->stop_signal)
            vm->stop_signal = (int)si.ssi_signo;
        vm_request_stop(vm, VM_STOP_SIGNAL);
    }
}

static void setup_main_loop(struct vm *vm)
{
    if (evloop_init(&vm->loop) < 0)
        die("epoll_create1: %s", strerror(errno));
    vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->stop_fd < 0 || evloop_add(&vm->loop, vm->stop_fd, EPOLLIN, on_stop_event, vm) < 0)
        die("eventfd: %s", strerror(errno));

    /* SIGINT/SIGTERM are handled by the main loop; every thread blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (vm->signal_fd < 0 || evloop_add(&vm->loop, vm->signal_fd, EPOLLIN, on_signal, vm) < 0)
        die("signalfd: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    vcpu_init_signals();
}

/* The kernel command line: --cmdline, then what devices add with --virtio-mmio-cmdline. */
static void build_cmdline(struct vm *vm)
{
    size_t cap = strlen(vm->cfg->cmdline) + 1 + 4096;
    vm->cmdline = xzalloc(cap);
    size_t len = (size_t)snprintf(vm->cmdline, cap, "%s", vm->cfg->cmdline);
    if (!vm->cfg->virtio_mmio_cmdline)
        return;
    for (struct device *d = vm->devices; d; d = d->next) {
        if (!d->ops->kernel_cmdline)
            continue;
        if (len + 1 >= cap || d->ops->kernel_cmdline(d, vm->cmdline + len + 1, cap - len - 1) < 0)
            die("--virtio-mmio-cmdline: the device parameters do not fit in 4 KiB");
        vm->cmdline[len] = ' ';
        len += strlen(vm->cmdline + len);
    }
}

/* --- the devices' view of the VM (devices/host.h) ------------------------- */

/* Set the level of a GSI of the in-kernel IOAPIC/PIC; dropped between two boots.  Any thread. */
static void host_irq_line(void *opaque, unsigned gsi, bool level)
{
    struct vm *vm = opaque;
    struct kvm_irq_level irq = {.irq = gsi, .level = level ? 1 : 0};
    int fd = __atomic_load_n(&vm->vm_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0 && ioctl(fd, KVM_IRQ_LINE, &irq) < 0)
        warn_limited("KVM_IRQ_LINE for GSI %u: %s", gsi, strerror(errno));
}

static void host_request_stop(void *opaque, enum dev_stop_reason reason)
{
    switch (reason) {
    case DEV_STOP_POWEROFF:
        vm_request_stop(opaque, VM_STOP_POWEROFF);
        return;
    case DEV_STOP_RESET:
        vm_request_stop(opaque, VM_STOP_RESET);
        return;
    case DEV_STOP_ERROR:
        vm_request_stop(opaque, VM_STOP_ERROR);
        return;
    }
    bug("stop request with unknown reason %d", (int)reason);
}

/* A created device joins the end of the list: the VM owns it from now on. */
static void host_add_device(void *opaque, struct device *dev)
{
    struct vm *vm = opaque;
    dev->next = NULL;
    *vm->devices_tail = dev;
    vm->devices_tail = &dev->next;
}

static int host_vm_fd(void *opaque)
{
    struct vm *vm = opaque;
    return __atomic_load_n(&vm->vm_fd, __ATOMIC_ACQUIRE);
}

static int host_confine_thread(void *opaque, enum dev_thread_kind kind, char *err, size_t errlen)
{
    (void)opaque;
    switch (kind) {
    case DEV_THREAD_CONSOLE:
        return seccomp_confine(SECCOMP_CONSOLE, err, errlen);
    }
    return errf(err, errlen, "unknown device thread kind %d", (int)kind);
}

static const struct dev_host_ops vm_host_ops = {
    .irq_line = host_irq_line,
    .request_stop = host_request_stop,
    .add_device = host_add_device,
    .vm_fd = host_vm_fd,
    .confine_thread = host_confine_thread,
};

/* Once the memory map, the buses and the main loop exist: what every device's create() gets. */
static void setup_dev_host(struct vm *vm)
{
    vm->host = (struct dev_host){
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .mem = &vm->mem,
        .loop = &vm->loop,
        .phys_bits = cpuid_phys_bits(vm->cpuid),
        .routes = &vm->routes,
        .ops = &vm_host_ops,
        .opaque = vm,
    };
}

void vm_create(struct vm *vm, const struct vm_config *cfg)
{
    char err[512];
    memset(vm, 0, sizeof(*vm));
    vm->start_ns = now_ns();
    vm->cfg = cfg;
    vm->vm_fd = -1;
    vm->kvm_fd = -1;
    vm->devices_tail = &vm->devices;
    vm->nr_vcpus = cfg->cpus;
    /* Before any thread starts: threads confine themselves when they do. */
    seccomp_init_process(cfg->seccomp, serial_restore_terminal);

    load_boot_files(vm);
    irq_routes_init(&vm->routes);
    /* Passthrough devices are checked and their groups opened before KVM is touched. */
    if (cfg->nr_vfio && vfio_open(&vm->vfio, cfg->vfio, cfg->nr_vfio, err, sizeof(err)) < 0)
        die_usage("%s", err);
    open_kvm(vm);
    check_ram_fits(vm);
    setup_main_loop(vm);

    mm_map_init(&vm->mem);
    if (mm_map_setup_ram(&vm->mem, cfg->memory, err, sizeof(err)) < 0)
        die("--memory: %s", err);
    if (cfg->nr_vfio) {
        /* DMA mappings pin memory: nothing may discard it behind VFIO's back. */
        if (mm_discard_forbid(&vm->mem.discard, MM_DISCARD_UNCOORDINATED, "--vfio", err,
                              sizeof(err)) < 0)
            die_usage("%s", err);
        vfio_limit_map(&vm->vfio, &vm->mem); /* device regions go where DMA reaches */
    }
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    setup_dev_host(vm);

    for (const struct device_kind *k = device_kinds; k->name; k++)
        if (k->create(vm, err, sizeof(err)) < 0)
            die("%s", err);
    build_cmdline(vm);

    if (cfg->api_socket) {
        if (ctl_server_open(&vm->ctl, cfg->api_socket, &vm->loop, &vm_ctl_handlers, vm, err,
                            sizeof(err)) < 0)
            die_usage("%s", err); /* the message names --api-socket and the fix */
        vm->ctl_open = true;
    }

    vm->vcpus = xzalloc(vm->nr_vcpus * sizeof(*vm->vcpus));
}

/* --- requests from other threads ---------------------------------------- */

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
    enum vm_stop_reason none = VM_STOP_NONE;
    bool first = __atomic_compare_exchange_n(&vm->stop_reason, &none, reason, false,
                                             __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    /*
     * A signal, a shutdown command or a failure must not be lost because a
     * guest reboot was requested first: remember it apart from the boot.
     */
    bool final = reason == VM_STOP_SIGNAL || reason == VM_STOP_SHUTDOWN || reason == VM_STOP_ERROR;
    none = VM_STOP_NONE;
    if (final)
        first |= __atomic_compare_exchange_n(&vm->final_stop, &none, reason, false,
                                             __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    if (first) {
        uint64_t one = 1;
        if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
            /* Counter saturation is impossible here; nothing to do. */
        }
    }
}

bool vm_stopping(struct vm *vm)
{
    return __atomic_load_n(&vm->stop_reason, __ATOMIC_SEQ_CST) != VM_STOP_NONE ||
           __atomic_load_n(&vm->final_stop, __ATOMIC_SEQ_CST) != VM_STOP_NONE;
}

/* --- one boot ------------------------------------------------------------ */

static void describe_devices(void *opaque, struct aml *aml)
{
    struct vm *vm = opaque;
    for (struct device *d = vm->devices; d; d = d->next)
        if (d->ops->describe_acpi)
            d->ops->describe_acpi(d, aml);
}

static uint64_t write_acpi_tables(struct vm *vm)
{
    static uint8_t buf[LAYOUT_ACPI_END - LAYOUT_ACPI_START];
    struct acpi_config acfg = {
        .ncpus = vm->nr_vcpus,
        .lapic_addr = (uint32_t)LAYOUT_LAPIC_ADDR,
        .ioapic_addr = (uint32_t)LAYOUT_IOAPIC_ADDR,
        .ioapic_id = 0,
        .sleep_control_port = LAYOUT_PM_SLEEP_CONTROL,
        .sleep_status_port = LAYOUT_PM_SLEEP_STATUS,
        .reset_port = LAYOUT_PM_RESET,
        .reset_value = LAYOUT_PM_RESET_VALUE,
        .s5_sleep_type = LAYOUT_PM_S5_SLEEP_TYPE,
        .mcfg_base = vm->pci.ecam_base,
        .mcfg_bus_end = 0,
        .describe_devices = describe_devices,
        .opaque = vm,
    };
    memset(buf, 0, sizeof(buf));
    size_t len = acpi_build_tables(&acfg, LAYOUT_ACPI_START, buf, sizeof(buf));
    if (len == 0)
        die("the ACPI tables do not fit in the %llu KiB reserved for them",
            (unsigned long long)(sizeof(buf) / KiB));
    if (mm_write(&vm->mem, LAYOUT_ACPI_START, buf, sizeof(buf)) < 0)
        bug("ACPI area %#llx is not backed", LAYOUT_ACPI_START);
    return LAYOUT_ACPI_START; /* the RSDP is first */
}

static void create_kvm_vm(struct vm *vm)
{
    char err[512];
    int fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (fd < 0)
        die("KVM_CREATE_VM: %s", strerror(errno));
    if (ioctl(fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0)
        die("KVM_SET_TSS_ADDR: %s", strerror(errno));
    uint64_t ident = LAYOUT_KVM_IDENTITY_MAP;
    if (ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
        die("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
    if (ioctl(fd, KVM_CREATE_IRQCHIP, 0) < 0)
        die("KVM_CREATE_IRQCHIP: %s", strerror(errno));
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(fd, KVM_CREATE_PIT2, &pit) < 0)
        die("KVM_CREATE_PIT2: %s", strerror(errno));
    if (mm_map_register_slots(&vm->mem, fd, err, sizeof(err)) < 0)
        die("%s", err);
    if (irq_routes_commit(&vm->routes, fd) < 0)
        die("KVM_SET_GSI_ROUTING: %s", strerror(errno));
    __atomic_store_n(&vm->vm_fd, fd, __ATOMIC_RELEASE);

    for (struct device *d = vm->devices; d; d = d->next)
        if (d->ops->attach && d->ops->attach(d, fd, err, sizeof(err)) < 0)
            die("%s: %s", d->name, err);
}

static void boot_guest(struct vm *vm)
{
    char err[512];
    struct boot_entry entry;

    __atomic_store_n(&vm->stop_reason, VM_STOP_NONE, __ATOMIC_SEQ_CST);
    create_kvm_vm(vm);

    /* The initrd is read again at every boot: take its size now, not at start-up. */
    struct stat st;
    if (vm->initrd_fd >= 0 && fstat(vm->initrd_fd, &st) == 0)
        vm->initrd_size = (uint64_t)st.st_size;

    struct boot_linux_args args = {
        .kernel = vm->kernel,
        .kernel_size = vm->kernel_size,
        .initrd_fd = vm->initrd_fd,
        .initrd_size = vm->initrd_size,
        .cmdline = vm->cmdline,
        .acpi_rsdp = write_acpi_tables(vm),
    };
    if (boot_load_linux(&vm->mem, &args, &entry, err, sizeof(err)) < 0)
        die("%s", err);

    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vcpu_create(&vm->vcpus[i], vm, i, err, sizeof(err)) < 0)
            die("%s", err);
    if (vcpu_set_boot_state(&vm->vcpus[0], &entry, err, sizeof(err)) < 0)
        die("vCPU 0: %s", err);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        if (vcpu_start(&vm->vcpus[i]) < 0)
            die("cannot start the thread of vCPU %u: %s", i, strerror(errno));
    vm->boots++;
    debug("boot %u: guest started %.1f ms after minivmm started", vm->boots,
          (double)(now_ns() - vm->start_ns) / 1e6);
}

static void stop_guest(struct vm *vm)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_join(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_destroy(&vm->vcpus[i]);
    int fd = vm->vm_fd;
    __atomic_store_n(&vm->vm_fd, -1, __ATOMIC_RELEASE);
    vm->mem.vm_fd = -1;
    close(fd);
}

int vm_run(struct vm *vm)
{
    char err[512];
    /* Set-up is done: from here on the main thread (and every vCPU) lives in its filter. */
    if (seccomp_confine(SECCOMP_MAIN, err, sizeof(err)) < 0)
        die("%s", err);
    for (;;) {
        boot_guest(vm);
        while (!vm_stopping(vm))
            if (evloop_run_once(&vm->loop, -1) < 0)
                die("epoll_wait: %s", strerror(errno));
        stop_guest(vm);

        enum vm_stop_reason why = vm->final_stop ? vm->final_stop : vm->stop_reason;
        switch (why) {
        case VM_STOP_POWEROFF:
            debug("guest powered off");
            return 0;
        case VM_STOP_RESET:
            if (vm->cfg->no_reboot) {
                debug("guest rebooted; exiting because of --no-reboot");
                return 0;
            }
            debug("guest rebooted; resetting the machine");
            /* First nothing may DMA any more (passthrough devices), then everything resets. */
            for (struct device *d = vm->devices; d; d = d->next)
                if (d->ops->quiesce)
                    d->ops->quiesce(d);
            irq_routes_reset(&vm->routes);
            for (struct device *d = vm->devices; d; d = d->next)
                if (d->ops->reset)
                    d->ops->reset(d);
            continue;
        case VM_STOP_SIGNAL:
            debug("stopped by signal %d", vm->stop_signal);
            return 128 + vm->stop_signal;
        case VM_STOP_SHUTDOWN:
            debug("shut down through the control socket");
            return 0;
        case VM_STOP_ERROR:
        case VM_STOP_NONE:
        default:
            return 1;
        }
    }
}

void vm_destroy(struct vm *vm)
{
    if (vm->ctl_open)
        ctl_server_close(&vm->ctl);
    /* Newest first: a device may use one created before it (VFIO listens to virtio-mem). */
    unsigned n = 0;
    for (struct device *d = vm->devices; d; d = d->next)
        n++;
    struct device **order = xzalloc((n ? n : 1) * sizeof(*order));
    n = 0;
    for (struct device *d = vm->devices; d; d = d->next)
        order[n++] = d;
    while (n--)
        if (order[n]->ops->destroy)
            order[n]->ops->destroy(order[n]);
    free(order);
    vm->devices = NULL;
    free(vm->vcpus);
    free(vm->cpuid);
    free(vm->kernel);
    free(vm->cmdline);
    if (vm->initrd_fd >= 0)
        close(vm->initrd_fd);
    vfio_close(&vm->vfio);
    pci_host_destroy(&vm->pci);
    irq_routes_destroy(&vm->routes);
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    mm_map_destroy(&vm->mem);
    evloop_destroy(&vm->loop);
    if (vm->stop_fd >= 0)
        close(vm->stop_fd);
    if (vm->signal_fd >= 0)
        close(vm->signal_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
}
