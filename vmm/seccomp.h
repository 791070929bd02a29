/*
 * seccomp.h - system-call filters per thread role (--seccomp on|log|off).
 *
 * Once set-up is done, minivmm only needs a known, small set of system
 * calls - and of ioctl requests - per kind of thread.  Each thread confines
 * itself to its role's set with a seccomp filter (libseccomp):
 *   SECCOMP_MAIN     the main thread (event loop, control socket, virtio-mem
 *                    requests, DMA mapping, boots and reboots); installed by
 *                    vm_run() before the first boot, so every vCPU thread,
 *                    created later, starts under it as well;
 *   SECCOMP_VCPU     a vCPU thread (KVM_RUN and device emulation); installed
 *                    by the thread itself before its first KVM_RUN, on top
 *                    of the main filter it inherited (both apply);
 *   SECCOMP_CONSOLE  the console writer (writes and waits); installed by the
 *                    thread itself when it starts (it is created during
 *                    set-up, before the main filter).
 * A system call outside the set, or an ioctl request outside the list,
 * ends minivmm at once with one line on stderr naming the thread, the call
 * and, for ioctl, the request (SIGSYS handler); with --seccomp log it is
 * allowed and logged by the kernel (the audit log, dmesg: "type=1326"), to
 * find what a filter lacks; --seccomp off installs nothing.
 *
 * seccomp_init_process() runs once on the main thread before any filter
 * (it installs the SIGSYS handler and names every system call while that is
 * still allowed); seccomp_confine() is called by each thread for itself.
 * The sets are in seccomp.c, each call with the reason it is needed.
 */
#ifndef MINIVMM_SECCOMP_H
#define MINIVMM_SECCOMP_H

#include <stddef.h>

enum seccomp_mode {
    SECCOMP_ON, /* default: a forbidden call kills minivmm with a report */
    SECCOMP_LOG,
    SECCOMP_OFF,
};

enum seccomp_role {
    SECCOMP_MAIN,
    SECCOMP_VCPU,
    SECCOMP_CONSOLE,
    SECCOMP_ROLES,
};

/* Called before a forbidden call's report ends the process (async-signal-safe work only). */
typedef void (*seccomp_last_words_fn)(void);

/*
 * Main thread, once, before any seccomp_confine().  last_words (may be NULL)
 * runs in the SIGSYS handler before the exit, e.g. to restore the terminal.
 */
void seccomp_init_process(enum seccomp_mode mode, seccomp_last_words_fn last_words);

/*
 * Confine the calling thread to role's set (nothing with SECCOMP_OFF).
 * Returns 0, or -1 with a one-line reason in err.
 */
int seccomp_confine(enum seccomp_role role, char *err, size_t errlen);

/* Entries in role's allow-list: system calls, and ioctl requests (for the README figures). */
void seccomp_role_size(enum seccomp_role role, unsigned *syscalls, unsigned *ioctls);

/* "main", "vcpu", "console". */
const char *seccomp_role_name(enum seccomp_role role);

#endif
