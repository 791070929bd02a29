/*
 * test_seccomp.c - the per-role filters (vmm/seccomp.c), each in a forked
 * child: what a role may do still works, a forbidden system call or ioctl
 * request ends the child with exit 1 and one line naming the thread's role,
 * the call and the request, the last words run, and --seccomp log lets the
 * call through.  Every wait is bounded (waitpid with an alarm in the child).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/seccomp.h"

static int last_words_fd = -1;

static void say_last_words(void)
{
    (void)!write(last_words_fd, "restored\n", 9);
}

struct child_result {
    int status; /* from waitpid */
    char out[1024];
};

/* Run fn(arg) in a child confined to role in mode; collect its exit status and stderr. */
static void run_confined(enum seccomp_mode mode, enum seccomp_role role, int (*fn)(void),
                         struct child_result *res)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a child that hangs ends the test */
        dup2(p[1], STDERR_FILENO);
        last_words_fd = p[1];
        seccomp_init_process(mode, say_last_words);
        char err[256];
        if (seccomp_confine(role, err, sizeof(err)) < 0) {
            fprintf(stderr, "confine: %s\n", err);
            _exit(3);
        }
        _exit(fn());
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], res->out + len, sizeof(res->out) - 1 - len)) > 0)
        len += (size_t)n;
    res->out[len] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, &res->status, 0), pid);
}

static int allowed_calls(void)
{
    /* Memory, locks, clocks, messages: what every role does. */
    void *p = malloc(1 << 20);
    if (!p)
        return 10;
    memset(p, 1, 1 << 20);
    free(p);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "still alive\n");
    return 0;
}

static int make_socket(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    return fd >= 0 ? 0 : 20;
}

static int create_vm_ioctl(void)
{
    /* Any fd: the filter looks at the request, not at what the fd is. */
    ioctl(STDERR_FILENO, KVM_CREATE_VM, 0);
    return 0;
}

static int run_ioctl(void)
{
    ioctl(STDERR_FILENO, KVM_RUN, 0); /* ENOTTY on a pipe, but allowed */
    return 0;
}

static void test_allowed_calls_work(void **state)
{
    (void)state;
    struct child_result r;
    for (int role = 0; role < SECCOMP_ROLES; role++) {
        run_confined(SECCOMP_ON, (enum seccomp_role)role, allowed_calls, &r);
        assert_true(WIFEXITED(r.status));
        if (WEXITSTATUS(r.status) != 0)
            fail_msg("role %s: exit %d: %s", seccomp_role_name((enum seccomp_role)role),
                     WEXITSTATUS(r.status), r.out);
        assert_non_null(strstr(r.out, "still alive"));
    }
}

static void test_forbidden_call_is_reported(void **state)
{
    (void)state;
    struct child_result r;
    run_confined(SECCOMP_ON, SECCOMP_CONSOLE, make_socket, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 1);
    const char *line = strstr(r.out, "minivmm: error: seccomp: the console thread made a system "
                                     "call its filter forbids: socket (41)");
    if (!line)
        fail_msg("report was: '%s'", r.out);
    assert_non_null(strstr(r.out, "restored\n")); /* the last words ran */
    /* The main thread may not open sockets either: the control socket exists already. */
    run_confined(SECCOMP_ON, SECCOMP_MAIN, make_socket, &r);
    assert_int_equal(WEXITSTATUS(r.status), 1);
}

static void test_forbidden_ioctl_names_the_request(void **state)
{
    (void)state;
    struct child_result r;
    run_confined(SECCOMP_ON, SECCOMP_VCPU, create_vm_ioctl, &r);
    assert_int_equal(WEXITSTATUS(r.status), 1);
    char want[128];
    snprintf(want, sizeof(want), "forbids: ioctl (16, request %#lx)", (unsigned long)KVM_CREATE_VM);
    if (!strstr(r.out, want))
        fail_msg("expected '%s' in '%s'", want, r.out);
    /* KVM_RUN is a vCPU's, not the console writer's. */
    run_confined(SECCOMP_ON, SECCOMP_VCPU, run_ioctl, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
    run_confined(SECCOMP_ON, SECCOMP_CONSOLE, run_ioctl, &r);
    assert_int_equal(WEXITSTATUS(r.status), 1);
}

/* The console writer blocks every signal; a forbidden call must still be reported. */
static int blocked_then_socket(void)
{
    return make_socket();
}

static void test_report_with_signals_blocked(void **state)
{
    (void)state;
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    struct child_result r;
    run_confined(SECCOMP_ON, SECCOMP_CONSOLE, blocked_then_socket, &r);
    sigprocmask(SIG_SETMASK, &old, NULL);
    assert_true(WIFEXITED(r.status)); /* not killed by SIGSYS */
    assert_int_equal(WEXITSTATUS(r.status), 1);
    assert_non_null(strstr(r.out, "forbids: socket"));
}

/* glibc may open a /proc file from a thread's arena: ENOENT, not a report. */
static int open_proc_file(void)
{
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY);
    return fd < 0 && errno == ENOENT ? 0 : 30;
}

static void test_open_is_enoent_off_the_main_thread(void **state)
{
    (void)state;
    struct child_result r;
    run_confined(SECCOMP_ON, SECCOMP_VCPU, open_proc_file, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
    run_confined(SECCOMP_ON, SECCOMP_CONSOLE, open_proc_file, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
}

static void test_log_and_off_let_it_through(void **state)
{
    (void)state;
    struct child_result r;
    run_confined(SECCOMP_LOG, SECCOMP_CONSOLE, make_socket, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
    run_confined(SECCOMP_OFF, SECCOMP_CONSOLE, make_socket, &r);
    assert_int_equal(WEXITSTATUS(r.status), 0);
}

/* The lists are small, and the console writer's the smallest. */
static void test_role_sizes(void **state)
{
    (void)state;
    unsigned sys[SECCOMP_ROLES], ioc[SECCOMP_ROLES];
    for (int role = 0; role < SECCOMP_ROLES; role++) {
        seccomp_role_size((enum seccomp_role)role, &sys[role], &ioc[role]);
        assert_true(sys[role] > 10 && sys[role] < 80);
    }
    assert_true(sys[SECCOMP_CONSOLE] < sys[SECCOMP_VCPU]);
    assert_true(sys[SECCOMP_VCPU] < sys[SECCOMP_MAIN]);
    assert_true(ioc[SECCOMP_CONSOLE] < ioc[SECCOMP_VCPU]);
    assert_true(ioc[SECCOMP_VCPU] < ioc[SECCOMP_MAIN]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_calls_work),
        cmocka_unit_test(test_forbidden_call_is_reported),
        cmocka_unit_test(test_forbidden_ioctl_names_the_request),
        cmocka_unit_test(test_report_with_signals_blocked),
        cmocka_unit_test(test_open_is_enoent_off_the_main_thread),
        cmocka_unit_test(test_log_and_off_let_it_through),
        cmocka_unit_test(test_role_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
