/* vcpu.c - vCPU creation, boot state, run loop and register dump; see vcpu.h. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/boot.h"
#include "vmm/cpuid.h"
#include "vmm/seccomp.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define VCPU_KICK_SIGNAL SIGUSR1

/* MSRs and bits Linux expects to find initialised. */
#define MSR_IA32_TSC            0x00000010
#define MSR_IA32_SYSENTER_CS    0x00000174
#define MSR_IA32_SYSENTER_ESP   0x00000175
#define MSR_IA32_SYSENTER_EIP   0x00000176
#define MSR_IA32_MISC_ENABLE    0x000001a0
#define MSR_MTRR_DEF_TYPE       0x000002ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MISC_ENABLE_FAST_STRING (1ULL << 0)
#define MTRR_ENABLE             (1ULL << 11)
#define MTRR_TYPE_WRBACK        6ULL

#define CR0_PE      (1ULL << 0)
#define CR0_MP      (1ULL << 1)
#define CR0_ET      (1ULL << 4)
#define CR0_NE      (1ULL << 5)
#define CR0_WP      (1ULL << 16)
#define CR0_AM      (1ULL << 18)
#define CR0_PG      (1ULL << 31)
#define CR4_PAE     (1ULL << 5)
#define EFER_LME    (1ULL << 8)
#define EFER_LMA    (1ULL << 10)
#define RFLAGS_RSVD (1ULL << 1)

/* Local APIC LVT registers and delivery modes (for virtual-wire mode). */
#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_MASK   0x700
#define APIC_MODE_NMI    0x400
#define APIC_MODE_EXTINT 0x700

#define SEG_TYPE_CODE_XRA 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA_RWA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS_BUSY 0xb

static void kick_handler(int sig)
{
    (void)sig;
}

void vcpu_init_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

static int set_cpuid(struct vcpu *vcpu, char *err, size_t errlen)
{
    struct vm *vm = vcpu->vm;
    size_t bytes = sizeof(struct kvm_cpuid2) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = xzalloc(bytes);
    memcpy(c, vm->cpuid, bytes);
    struct cpuid_options opt = {
        .apic_id = vcpu->id, .nr_cpus = vm->nr_vcpus, .tsc_deadline = vm->tsc_deadline};
    cpuid_patch(c, &opt);
    int r = ioctl(vcpu->fd, KVM_SET_CPUID2, c);
    int e = errno;
    free(c);
    if (r < 0)
        return errf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", vcpu->id, strerror(e));
    return 0;
}

static int set_msrs(struct vcpu *vcpu, char *err, size_t errlen)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } init[] = {
        {MSR_IA32_SYSENTER_CS, 0},
        {MSR_IA32_SYSENTER_ESP, 0},
        {MSR_IA32_SYSENTER_EIP, 0},
        {MSR_STAR, 0},
        {MSR_CSTAR, 0},
        {MSR_KERNEL_GS_BASE, 0},
        {MSR_SYSCALL_MASK, 0},
        {MSR_LSTAR, 0},
        {MSR_IA32_TSC, 0},
        {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
        {MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK},
    };
    struct kvm_msrs *msrs =
        xzalloc(sizeof(*msrs) + ARRAY_SIZE(init) * sizeof(struct kvm_msr_entry));
    msrs->nmsrs = ARRAY_SIZE(init);
    for (unsigned i = 0; i < ARRAY_SIZE(init); i++) {
        msrs->entries[i].index = init[i].index;
        msrs->entries[i].data = init[i].value;
    }
    int n = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);
    int e = errno;
    free(msrs);
    if (n < 0)
        return errf(err, errlen, "KVM_SET_MSRS on vCPU %u: %s", vcpu->id, strerror(e));
    if ((unsigned)n != ARRAY_SIZE(init))
        return errf(err, errlen, "KVM refused MSR %#x on vCPU %u", init[n].index, vcpu->id);
    return 0;
}

/* LINT0 = ExtINT, LINT1 = NMI: the virtual-wire mode a BIOS leaves behind. */
static int set_lint(struct vcpu *vcpu, char *err, size_t errlen)
{
    struct kvm_lapic_state lapic;
    if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
        return errf(err, errlen, "KVM_GET_LAPIC on vCPU %u: %s", vcpu->id, strerror(errno));
    uint32_t lvt0, lvt1;
    memcpy(&lvt0, &lapic.regs[APIC_LVT0], 4);
    memcpy(&lvt1, &lapic.regs[APIC_LVT1], 4);
    lvt0 = (lvt0 & ~(uint32_t)APIC_MODE_MASK) | APIC_MODE_EXTINT;
    lvt1 = (lvt1 & ~(uint32_t)APIC_MODE_MASK) | APIC_MODE_NMI;
    memcpy(&lapic.regs[APIC_LVT0], &lvt0, 4);
    memcpy(&lapic.regs[APIC_LVT1], &lvt1, 4);
    if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
        return errf(err, errlen, "KVM_SET_LAPIC on vCPU %u: %s", vcpu->id, strerror(errno));
    return 0;
}

int vcpu_create(struct vcpu *vcpu, struct vm *vm, unsigned id, char *err, size_t errlen)
{
    memset(vcpu, 0, sizeof(*vcpu));
    vcpu->vm = vm;
    vcpu->id = id;
    pthread_mutex_init(&vcpu->snap_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vcpu->snap_done, &ca);
    pthread_condattr_destroy(&ca);
    vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
    if (vcpu->fd < 0)
        return errf(err, errlen, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
    vcpu->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (vcpu->run == MAP_FAILED) {
        vcpu->run = NULL;
        return errf(err, errlen, "mapping kvm_run of vCPU %u: %s", id, strerror(errno));
    }
    if (set_cpuid(vcpu, err, errlen) < 0 || set_msrs(vcpu, err, errlen) < 0 ||
        set_lint(vcpu, err, errlen) < 0)
        return -1;
    return 0;
}

static void set_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code64)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = selector;
    s->type = type;
    s->present = 1;
    s->dpl = 0;
    s->s = 1;
    s->g = 1;
    s->l = code64;
    s->db = !code64;
}

int vcpu_set_boot_state(struct vcpu *vcpu, const struct boot_entry *entry, char *err, size_t errlen)
{
    struct kvm_sregs sregs;
    if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
        return errf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));

    set_segment(&sregs.cs, BOOT_CS, SEG_TYPE_CODE_XRA, true);
    set_segment(&sregs.ds, BOOT_DS, SEG_TYPE_DATA_RWA, false);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    memset(&sregs.tr, 0, sizeof(sregs.tr));
    sregs.tr.type = SEG_TYPE_TSS_BUSY;
    sregs.tr.present = 1;
    sregs.tr.limit = 0xffff;
    sregs.gdt.base = entry->gdt_base;
    sregs.gdt.limit = entry->gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    sregs.cr3 = entry->cr3;
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
        return errf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rflags = RFLAGS_RSVD;
    regs.rip = entry->rip;
    regs.rsi = entry->rsi;
    if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
        return errf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));

    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;    /* x87 power-on control word */
    fpu.mxcsr = 0x1f80; /* SSE power-on state: all exceptions masked */
    if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
        return errf(err, errlen, "KVM_SET_FPU: %s", strerror(errno));
    return 0;
}

/* --- diagnostics -------------------------------------------------------- */

static void dump_segment(FILE *f, const char *name, const struct kvm_segment *s)
{
    fprintf(f, "  %-3s sel=%04x base=%016llx limit=%08x type=%x p=%u dpl=%u db=%u l=%u g=%u\n",
            name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->present, s->dpl,
            s->db, s->l, s->g);
}

static void vcpu_dump(struct vcpu *vcpu)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    FILE *f = stderr;
    if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(f, "minivmm: vCPU %u: cannot read registers: %s\n", vcpu->id, strerror(errno));
        return;
    }
    fprintf(f, "minivmm: vCPU %u registers:\n", vcpu->id);
    fprintf(f, "  rip=%016llx rsp=%016llx rflags=%016llx\n", r.rip, r.rsp, r.rflags);
    fprintf(f, "  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n", r.rax, r.rbx, r.rcx, r.rdx);
    fprintf(f, "  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx\n", r.rsi, r.rdi, r.rbp, r.r8);
    fprintf(f, "  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx\n", r.r9, r.r10, r.r11, r.r12);
    fprintf(f, "  r13=%016llx r14=%016llx r15=%016llx\n", r.r13, r.r14, r.r15);
    fprintf(f, "  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%016llx\n", s.cr0, s.cr2,
            s.cr3, s.cr4, s.efer);
    dump_segment(f, "cs", &s.cs);
    dump_segment(f, "ss", &s.ss);
    dump_segment(f, "ds", &s.ds);
    dump_segment(f, "tr", &s.tr);
    fprintf(f, "  gdt=%016llx/%04x idt=%016llx/%04x\n", s.gdt.base, s.gdt.limit, s.idt.base,
            s.idt.limit);
}

static void vcpu_fail(struct vcpu *vcpu, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vcpu_fail(struct vcpu *vcpu, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "minivmm: vCPU %u: %s\n", vcpu->id, msg);
    vcpu_dump(vcpu);
    vm_request_stop(vcpu->vm, VM_STOP_ERROR);
}

/* --- the run loop -------------------------------------------------------- */

static void handle_io(struct vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    /* String I/O (rep ins/outs) arrives as count back-to-back elements. */
    for (uint32_t i = 0; i < run->io.count; i++)
        bus_access(&vcpu->vm->pio, run->io.port, data + (size_t)i * run->io.size, run->io.size,
                   is_write);
}

static void handle_system_event(struct vcpu *vcpu)
{
    switch (vcpu->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_request_stop(vcpu->vm, VM_STOP_POWEROFF);
        break;
    case KVM_SYSTEM_EVENT_RESET:
        vm_request_stop(vcpu->vm, VM_STOP_RESET);
        break;
    default:
        vcpu_fail(vcpu, "guest crashed (KVM system event %u)", vcpu->run->system_event.type);
        break;
    }
}

/* Handle one exit.  Returns false when the thread must stop. */
static bool handle_exit(struct vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    uint64_t addr = run->exit_reason == KVM_EXIT_IO     ? run->io.port
                    : run->exit_reason == KVM_EXIT_MMIO ? run->mmio.phys_addr
                                                        : 0;
    __atomic_store_n(&vcpu->last_exit, run->exit_reason, __ATOMIC_RELAXED);
    __atomic_store_n(&vcpu->last_io_addr, addr, __ATOMIC_RELAXED);
    __atomic_add_fetch(&vcpu->exits, 1, __ATOMIC_RELAXED);
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(vcpu);
        return true;
    case KVM_EXIT_MMIO:
        bus_access(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
                   run->mmio.is_write);
        return true;
    case KVM_EXIT_INTR:
        return true;
    case KVM_EXIT_SYSTEM_EVENT:
        handle_system_event(vcpu);
        return false;
    case KVM_EXIT_SHUTDOWN:
        /* SVM reinitialises the VMCB on a shutdown intercept: the state is gone. */
        vcpu_fail(vcpu, "the guest triple-faulted (KVM_EXIT_SHUTDOWN; on AMD hosts KVM has "
                        "already reset this vCPU, so the registers below are its reset state)");
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        vcpu_fail(vcpu, "KVM internal error, suberror %u (1 = instruction emulation failed)",
                  run->internal.suberror);
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        vcpu_fail(vcpu, "KVM could not enter the guest, hardware reason %#llx",
                  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return false;
    default:
        vcpu_fail(vcpu, "unexpected KVM exit reason %u", run->exit_reason);
        return false;
    }
}

static const char *mode_of(const struct kvm_sregs *s)
{
    if (!(s->cr0 & CR0_PE))
        return "real";
    if (s->efer & EFER_LMA)
        return s->cs.l ? "long" : "compatibility";
    return "protected";
}

static const char *mp_state_name(uint32_t state)
{
    switch (state) {
    case KVM_MP_STATE_RUNNABLE:
        return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
        return "uninitialized";
    case KVM_MP_STATE_INIT_RECEIVED:
        return "init-received";
    case KVM_MP_STATE_HALTED:
        return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
        return "sipi-received";
    default:
        return "other";
    }
}

const char *vcpu_exit_name(uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_IO:
        return "io";
    case KVM_EXIT_MMIO:
        return "mmio";
    case KVM_EXIT_HLT:
        return "hlt";
    case KVM_EXIT_INTR:
        return "intr";
    case KVM_EXIT_SHUTDOWN:
        return "shutdown";
    case KVM_EXIT_SYSTEM_EVENT:
        return "system-event";
    case KVM_EXIT_INTERNAL_ERROR:
        return "internal-error";
    case KVM_EXIT_FAIL_ENTRY:
        return "fail-entry";
    case KVM_EXIT_UNKNOWN:
        return "none";
    default:
        return "other";
    }
}

/* vCPU thread: answer a snapshot request, if there is one, and undo its kick. */
static void answer_snapshot(struct vcpu *vcpu)
{
    if (!__atomic_load_n(&vcpu->snap_wanted, __ATOMIC_ACQUIRE))
        return; /* the common case, without the lock */
    pthread_mutex_lock(&vcpu->snap_lock);
    if (vcpu->snap_wanted) {
        struct kvm_regs r;
        struct kvm_sregs s;
        struct kvm_mp_state mp = {0};
        struct vcpu_snapshot *o = &vcpu->snap;
        o->answered = ioctl(vcpu->fd, KVM_GET_REGS, &r) == 0 &&
                      ioctl(vcpu->fd, KVM_GET_SREGS, &s) == 0 &&
                      ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) == 0;
        if (o->answered) {
            o->rip = r.rip;
            o->rsp = r.rsp;
            o->rflags = r.rflags;
            o->cr0 = s.cr0;
            o->cr3 = s.cr3;
            o->cr4 = s.cr4;
            o->efer = s.efer;
            o->cs = s.cs.selector;
            o->mode = mode_of(&s);
            o->mp_state = mp_state_name(mp.mp_state);
        }
        vcpu->snap_wanted = false;
        pthread_cond_broadcast(&vcpu->snap_done);
    }
    pthread_mutex_unlock(&vcpu->snap_lock);
}

void vcpu_snapshot(struct vcpu *vcpu, struct vcpu_snapshot *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    /* A thread that has left its loop (the guest stopped it) would never answer. */
    if (vcpu->started && !__atomic_load_n(&vcpu->exited, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&vcpu->snap_lock);
        memset(&vcpu->snap, 0, sizeof(vcpu->snap));
        __atomic_store_n(&vcpu->snap_wanted, true, __ATOMIC_RELEASE);
        __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
        uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
        struct timespec t = {.tv_sec = (time_t)(end / 1000000000ULL),
                             .tv_nsec = (long)(end % 1000000000ULL)};
        while (vcpu->snap_wanted)
            if (pthread_cond_timedwait(&vcpu->snap_done, &vcpu->snap_lock, &t) == ETIMEDOUT)
                break;
        if (!vcpu->snap_wanted)
            *out = vcpu->snap;
        vcpu->snap_wanted = false; /* a late answer is not waited for */
        pthread_mutex_unlock(&vcpu->snap_lock);
    }
    out->exits = __atomic_load_n(&vcpu->exits, __ATOMIC_RELAXED);
    out->last_exit = __atomic_load_n(&vcpu->last_exit, __ATOMIC_RELAXED);
    out->last_io_addr = __atomic_load_n(&vcpu->last_io_addr, __ATOMIC_RELAXED);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *vcpu = arg;
    char name[16];
    snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
    pthread_setname_np(pthread_self(), name);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    char err[256];
    if (seccomp_confine(SECCOMP_VCPU, err, sizeof(err)) < 0) {
        vcpu_fail(vcpu, "%s", err);
        return NULL;
    }
    while (!vm_stopping(vcpu->vm)) {
        if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                /*
                 * A kick: answer a snapshot request, and let the next KVM_RUN
                 * run - also when the request timed out and was withdrawn.
                 * A stop sets vm_stopping() before it kicks; the loop checks.
                 */
                answer_snapshot(vcpu);
                __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
                continue;
            }
            if (errno == EFAULT)
                vcpu_fail(vcpu, "the guest touched memory minivmm does not give it (KVM_RUN: "
                                "EFAULT), e.g. virtio-mem memory it has not plugged");
            else
                vcpu_fail(vcpu, "KVM_RUN failed: %s", strerror(errno));
            break;
        }
        if (!handle_exit(vcpu))
            break;
        answer_snapshot(vcpu);
    }
    __atomic_store_n(&vcpu->exited, true, __ATOMIC_RELEASE);
    return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
    int r = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
    if (r) {
        errno = r;
        return -1;
    }
    vcpu->started = true;
    return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
    if (!vcpu->started)
        return;
    /* immediate_exit closes the race with a thread that is just entering KVM_RUN. */
    __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *vcpu)
{
    if (vcpu->started)
        pthread_join(vcpu->thread, NULL);
    vcpu->started = false;
}

void vcpu_destroy(struct vcpu *vcpu)
{
    if (vcpu->run)
        munmap(vcpu->run, (size_t)vcpu->vm->run_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    vcpu->run = NULL;
    vcpu->fd = -1;
    pthread_mutex_destroy(&vcpu->snap_lock);
    pthread_cond_destroy(&vcpu->snap_done);
}
