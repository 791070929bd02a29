/* seccomp.c - the allow-lists of each thread role and their filters; see seccomp.h. */
#include "vmm/seccomp.h"

#include <errno.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <ucontext.h>
#include <unistd.h>

#include "vfio/iommufd_uapi.h"
#include "vmm/util.h"

/*
 * What every thread may do: glibc's own needs (memory for malloc, futexes
 * for locks and condition variables, clocks, signals to kick vCPUs and
 * their return), writing messages and exiting, and - for the last words of
 * a report - the terminal ioctls that put the user's terminal back.
 */
static const int common_syscalls[] = {
    SCMP_SYS(read),           SCMP_SYS(write),
    SCMP_SYS(writev),         SCMP_SYS(close),
    SCMP_SYS(futex),          SCMP_SYS(exit),
    SCMP_SYS(exit_group),     SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(restart_syscall),
    SCMP_SYS(mmap),           SCMP_SYS(munmap),
    SCMP_SYS(mprotect),       SCMP_SYS(madvise),
    SCMP_SYS(mremap),         SCMP_SYS(brk),
    SCMP_SYS(clock_gettime),  SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),      SCMP_SYS(sched_yield),
    SCMP_SYS(getpid),         SCMP_SYS(gettid),
    SCMP_SYS(tgkill),         SCMP_SYS(poll),
    SCMP_SYS(ppoll),          SCMP_SYS(getrandom),
    SCMP_SYS(fstat),          SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),
};

/*
 * The main thread: its event loop (epoll, eventfds, signalfd), the control
 * socket (accept, send, receive; unlink at exit), the pinned-memory status
 * (/proc/self/status: openat), virtio-mem (fallocate punches holes in memfd
 * and hugetlbfs memory), VFIO regions (pread/pwrite on the device), the
 * initrd read again at every boot (pread), and the vCPU threads of every
 * boot (clone3, the new thread's set_robust_list and rseq, its name, and
 * the vCPU's own filter on top: seccomp and prctl(PR_SET_NO_NEW_PRIVS) - a
 * filter can only take rights away; glibc's first pthread_create installs
 * its internal signal handlers: rt_sigaction).
 */
static const int main_syscalls[] = {
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait),  SCMP_SYS(epoll_ctl), SCMP_SYS(eventfd2),
    SCMP_SYS(accept4),    SCMP_SYS(sendto),       SCMP_SYS(recvfrom),  SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),    SCMP_SYS(shutdown),     SCMP_SYS(unlink),    SCMP_SYS(unlinkat),
    SCMP_SYS(openat),     SCMP_SYS(fcntl),        SCMP_SYS(fallocate), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),   SCMP_SYS(clone),        SCMP_SYS(clone3),    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),       SCMP_SYS(prctl),        SCMP_SYS(dup),       SCMP_SYS(ioctl),
    SCMP_SYS(seccomp),    SCMP_SYS(rt_sigaction),
};

/*
 * A vCPU thread: KVM_RUN and the device emulation of its exits - VFIO
 * regions (pread/pwrite), MSI set-up of a passed-through device (eventfds,
 * VFIO_DEVICE_SET_IRQS, routes), memslots when the driver renegotiates
 * virtio-mem features, and the interrupt lines of emulated devices.
 */
static const int vcpu_syscalls[] = {
    SCMP_SYS(ioctl),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(eventfd2),
};

/* The console writer writes, waits and warns: the common set is all it needs. */

/* The terminal, for every role (raw mode is undone in a report's last words). */
static const unsigned long tty_ioctls[] = {TCGETS, TCSETS};

/*
 * The main thread: a boot (VM, vCPUs, devices), memslots, routes, DMA maps;
 * and what a vCPU does (KVM_RUN, its registers): the vCPU threads start
 * under this filter, and a call passes only if every filter allows it.
 */
static const unsigned long main_ioctls[] = {
    KVM_RUN,
    KVM_GET_MP_STATE,
    KVM_CREATE_VM,
    KVM_SET_TSS_ADDR,
    KVM_SET_IDENTITY_MAP_ADDR,
    KVM_CREATE_IRQCHIP,
    KVM_CREATE_PIT2,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_GSI_ROUTING,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_IRQ_LINE,
    KVM_CREATE_DEVICE,
    KVM_SET_DEVICE_ATTR,
    KVM_CREATE_VCPU,
    KVM_SET_CPUID2,
    KVM_SET_MSRS,
    KVM_SET_REGS,
    KVM_GET_REGS,
    KVM_SET_SREGS,
    KVM_GET_SREGS,
    KVM_SET_FPU,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    VFIO_IOMMU_MAP_DMA,
    VFIO_IOMMU_UNMAP_DMA,
    VFIO_IOMMU_GET_INFO, /* status: type1's dma_avail */
    VFIO_DEVICE_SET_IRQS,
    VFIO_DEVICE_RESET,
    IOMMU_IOAS_MAP,
    IOMMU_IOAS_UNMAP,
};

/*
 * A vCPU: its run loop, interrupt lines and MSI routes, memslots, a
 * device's MSI eventfds, and its own registers (a failure's report, ctl dump).
 */
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN,          KVM_IRQ_LINE,         KVM_SET_GSI_ROUTING, KVM_SET_USER_MEMORY_REGION,
    KVM_IRQFD,        VFIO_DEVICE_SET_IRQS, KVM_GET_REGS,        KVM_GET_SREGS,
    KVM_GET_MP_STATE,
};

struct role_set {
    const char *name;
    const int *syscalls;
    unsigned nr_syscalls;
    const unsigned long *ioctls;
    unsigned nr_ioctls;
};

static const struct role_set roles[SECCOMP_ROLES] = {
    [SECCOMP_MAIN] = {"main", main_syscalls, ARRAY_SIZE(main_syscalls), main_ioctls,
                      ARRAY_SIZE(main_ioctls)},
    [SECCOMP_VCPU] = {"vcpu", vcpu_syscalls, ARRAY_SIZE(vcpu_syscalls), vcpu_ioctls,
                      ARRAY_SIZE(vcpu_ioctls)},
    [SECCOMP_CONSOLE] = {"console", NULL, 0, NULL, 0},
};

static enum seccomp_mode process_mode = SECCOMP_OFF;
static seccomp_last_words_fn last_words;
/* System call names, resolved while that may still allocate (not in the SIGSYS handler). */
#define NAMED_SYSCALLS 512
static char *syscall_names[NAMED_SYSCALLS];
/* The role a thread confined itself to; threads inherit their creator's filter, not this. */
static __thread const char *thread_role = "new";

const char *seccomp_role_name(enum seccomp_role role)
{
    return roles[role].name;
}

void seccomp_role_size(enum seccomp_role role, unsigned *syscalls, unsigned *ioctls)
{
    const struct role_set *r = &roles[role];
    *syscalls = ARRAY_SIZE(common_syscalls) + r->nr_syscalls;
    *ioctls = r->nr_ioctls ? ARRAY_SIZE(tty_ioctls) + r->nr_ioctls : ARRAY_SIZE(tty_ioctls);
}

/* Async-signal-safe output: append s to buf at *len. */
static void put_str(char *buf, size_t size, size_t *len, const char *s)
{
    while (*s && *len + 1 < size)
        buf[(*len)++] = *s++;
}

static void put_num(char *buf, size_t size, size_t *len, unsigned long long v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        put_str(buf, size, len, "0x");
    while (n > 0 && *len + 1 < size)
        buf[(*len)++] = tmp[--n];
}

/* A forbidden call: one line naming it, the terminal back, exit 1.  Only async-safe calls. */
static void on_sigsys(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    char line[256];
    size_t len = 0;
    int nr = info->si_syscall;
    put_str(line, sizeof(line), &len, "minivmm: error: seccomp: the ");
    put_str(line, sizeof(line), &len, thread_role);
    put_str(line, sizeof(line), &len, " thread made a system call its filter forbids: ");
    if (nr >= 0 && nr < NAMED_SYSCALLS && syscall_names[nr])
        put_str(line, sizeof(line), &len, syscall_names[nr]);
    else
        put_str(line, sizeof(line), &len, "#");
    put_str(line, sizeof(line), &len, " (");
    put_num(line, sizeof(line), &len, (unsigned)nr, 10);
    if (nr == SCMP_SYS(ioctl)) {
        const ucontext_t *ctx = uc;
        put_str(line, sizeof(line), &len, ", request ");
        put_num(line, sizeof(line), &len, (unsigned long long)ctx->uc_mcontext.gregs[REG_RSI], 16);
    }
    put_str(line, sizeof(line), &len,
            "); this is a minivmm bug - please report it; --seccomp log runs on and logs it\n");
    (void)!write(STDERR_FILENO, line, len);
    if (last_words)
        last_words();
    _exit(1);
}

void seccomp_init_process(enum seccomp_mode mode, seccomp_last_words_fn words)
{
    process_mode = mode;
    last_words = words;
    if (mode != SECCOMP_ON)
        return;
    for (int nr = 0; nr < NAMED_SYSCALLS; nr++)
        syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}

static int add_rules(scmp_filter_ctx ctx, const int *calls, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (calls[i] == SCMP_SYS(ioctl))
            continue; /* by request, below */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct scmp_arg_cmp request = {
            .arg = 1, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)reqs[i], .datum_b = 0};
        int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &request);
        if (r < 0)
            return r;
    }
    return 0;
}

int seccomp_confine(enum seccomp_role role, char *err, size_t errlen)
{
    if (process_mode == SECCOMP_OFF)
        return 0;
    const struct role_set *set = &roles[role];
    thread_role = set->name; /* also for a call the filters in force already refuse */
    scmp_filter_ctx ctx = seccomp_init(process_mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    if (!ctx)
        return errf(err, errlen, "seccomp: cannot create the %s filter", set->name);
    int r = add_rules(ctx, common_syscalls, ARRAY_SIZE(common_syscalls));
    if (r == 0)
        r = add_rules(ctx, set->syscalls, set->nr_syscalls);
    if (r == 0)
        r = add_ioctls(ctx, tty_ioctls, ARRAY_SIZE(tty_ioctls));
    if (r == 0)
        r = add_ioctls(ctx, set->ioctls, set->nr_ioctls);
    /*
     * glibc opens /proc/sys/vm/overcommit_memory the first time it shrinks a
     * thread's malloc arena, which happens on a vCPU or the console thread:
     * ENOENT there (glibc then assumes the default), never a report.
     */
    if (r == 0 && role != SECCOMP_MAIN)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(openat), 0);
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    if (r < 0)
        return errf(err, errlen,
                    "seccomp: cannot install the %s thread's filter: %s (a kernel without "
                    "CONFIG_SECCOMP_FILTER? run with --seccomp off)",
                    set->name, strerror(-r));
    /*
     * A thread that blocks SIGSYS (the console writer blocks every signal)
     * would be killed by the kernel instead of reporting: let it through.
     */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    return 0;
}
