/*
 * test_serial.c - unit tests of the serial console (devices/serial.c),
 * without KVM.
 *
 * A test VM without KVM (test_vm.h: port-I/O bus, event loop; interrupts
 * are only recorded) hosts the device with --console stdio.  Each test
 * puts pipes on the process's stdin and stdout (the test's own are saved and
 * put back in the teardown), drives the UART through bus_access() as a vCPU
 * would, and runs the event loop as the main thread does.  Checked: guest
 * output arrives in order and a vCPU never waits for the reader (a stalled
 * reader costs dropped bytes and one warning, not a blocked caller); paused
 * input is not in the event loop (a closed pipe's EPOLLHUP does not keep it
 * busy) and arrives whole and in order once the guest reads; a readiness
 * made stale by another reader does not block; a terminal gets raw mode with
 * Ctrl-C kept and Ctrl-\ / Ctrl-Z disabled; --console none has no writer
 * thread, --console file gets everything; the writer blocks the signals the
 * main loop handles.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "devices/serial.h"
#include "devices/uart16550.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#include "tests/unit/test_vm.h"

#define RING_SIZE (1u << 20) /* serial.c's output ring */

struct fixture {
    struct test_vm vm;
    struct serial_options cfg;
    int saved_stdin, saved_stdout;
    int in_w;  /* write end of the pipe on stdin (-1: closed) */
    int out_r; /* read end of the pipe on stdout (-1: closed) */
};

/* ---- set-up ---- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    fx->saved_stdin = dup(STDIN_FILENO);
    fx->saved_stdout = dup(STDOUT_FILENO);
    assert_true(fx->saved_stdin >= 0 && fx->saved_stdout >= 0);
    assert_int_equal(dup2(in[0], STDIN_FILENO), STDIN_FILENO);
    assert_int_equal(dup2(out[1], STDOUT_FILENO), STDOUT_FILENO);
    close(in[0]);
    close(out[1]);
    fx->in_w = in[1];
    fx->out_r = out[0];

    test_vm_init(&fx->vm, 0);
    fx->cfg.console = CONSOLE_STDIO;
    *state = fx;
    alarm(60); /* a regression here would block forever */
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    /* A reader that is gone ends any flush (EPIPE) instead of blocking it. */
    if (fx->out_r >= 0)
        close(fx->out_r);
    if (fx->in_w >= 0)
        close(fx->in_w);
    test_vm_destroy(&fx->vm);
    dup2(fx->saved_stdin, STDIN_FILENO);
    dup2(fx->saved_stdout, STDOUT_FILENO);
    close(fx->saved_stdin);
    close(fx->saved_stdout);
    free(fx);
    alarm(0);
    return 0;
}

static struct device *create(struct fixture *fx)
{
    char err[256];
    if (serial_create(&fx->vm.host, &fx->cfg, err, sizeof(err)) < 0)
        fail_msg("serial_create: %s", err);
    assert_non_null(fx->vm.devices);
    return fx->vm.devices;
}

/* Take the device out of the VM's list (the test destroys it itself). */
static void forget(struct fixture *fx, struct device *dev)
{
    assert_ptr_equal(fx->vm.devices, dev);
    fx->vm.devices = dev->next;
    if (!fx->vm.devices)
        fx->vm.devices_tail = &fx->vm.devices;
}

/* ---- the guest side: what a vCPU's port-I/O exit does ---- */

static void guest_write(struct fixture *fx, unsigned reg, uint8_t v)
{
    assert_true(bus_access(&fx->vm.pio, LAYOUT_COM1_PORT + reg, &v, 1, true));
}

static uint8_t guest_read(struct fixture *fx, unsigned reg)
{
    uint8_t v = 0;
    assert_true(bus_access(&fx->vm.pio, LAYOUT_COM1_PORT + reg, &v, 1, false));
    return v;
}

/* What Linux's 8250 driver does when the tty is opened: receive by interrupt. */
static void guest_open_tty(struct fixture *fx, bool fifo)
{
    guest_write(fx, UART16550_FCR, fifo ? UART16550_FCR_ENABLE : 0);
    guest_write(fx, UART16550_MCR, UART16550_MCR_OUT2 | UART16550_MCR_DTR | UART16550_MCR_RTS);
    guest_write(fx, UART16550_IER, UART16550_IER_RDI);
}

/* Bytes the guest has received: run the loop and read RBR until want bytes came. */
static size_t guest_receive(struct fixture *fx, uint8_t *buf, size_t want, int max_rounds)
{
    size_t n = 0;
    for (int i = 0; i < max_rounds && n < want; i++) {
        evloop_run_once(&fx->vm.loop, 20);
        while (n < want && (guest_read(fx, UART16550_LSR) & UART16550_LSR_DR))
            buf[n++] = guest_read(fx, UART16550_RBR);
    }
    return n;
}

/* Run the loop until it has nothing to do; a loop that never settles fails. */
static void settle(struct fixture *fx)
{
    int busy = 0;
    while (evloop_run_once(&fx->vm.loop, 50) > 0)
        if (++busy > 100)
            fail_msg("the event loop does not settle (an fd stays ready)");
}

/* A byte sequence whose every shift or reordering shows. */
static uint8_t pattern(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    return (uint8_t)((x >> 24) ^ (x >> 11));
}

static double seconds(void)
{
    return (double)now_ns() / 1e9;
}

/* ---- output ---- */

static void test_output_in_order(void **state)
{
    struct fixture *fx = *state;
    create(fx);
    /* Far more than a pipe holds: the sends return at once all the same. */
    const size_t total = 300 * 1000;
    double t0 = seconds();
    for (size_t i = 0; i < total; i++)
        guest_write(fx, UART16550_THR, pattern(i));
    double sent = seconds() - t0;

    uint8_t *got = malloc(total);
    assert_non_null(got);
    size_t n = 0;
    while (n < total) {
        ssize_t r = read(fx->out_r, got + n, total - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    for (size_t i = 0; i < total; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu is %#x, expected %#x", i, got[i], pattern(i));
    free(got);
    assert_true(sent < 5.0);
}

struct destroyer {
    struct device *dev;
    bool done;
};

static void *destroy_thread(void *arg)
{
    struct destroyer *d = arg;
    d->dev->ops->destroy(d->dev);
    __atomic_store_n(&d->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_stalled_reader_drops_instead_of_blocking(void **state)
{
    struct fixture *fx = *state;
    struct device *dev = create(fx);

    /* Nobody reads: the pipe fills, then the ring, then bytes are dropped. */
    const size_t total = RING_SIZE + 512 * 1024;
    double t0 = seconds();
    for (size_t i = 0; i < total; i++)
        guest_write(fx, UART16550_THR, pattern(i));
    double sent = seconds() - t0;

    /* Catch the warning, then let the reader go while the device is destroyed. */
    int errp[2];
    assert_int_equal(pipe2(errp, O_CLOEXEC | O_NONBLOCK), 0);
    int saved_stderr = dup(STDERR_FILENO);
    dup2(errp[1], STDERR_FILENO);
    close(errp[1]);

    forget(fx, dev);
    struct destroyer d = {.dev = dev};
    pthread_t t;
    pthread_create(&t, NULL, destroy_thread, &d);
    uint8_t *got = malloc(total);
    size_t n = 0;
    fcntl(fx->out_r, F_SETFL, O_NONBLOCK);
    for (;;) {
        bool done = __atomic_load_n(&d.done, __ATOMIC_SEQ_CST);
        ssize_t r = got ? read(fx->out_r, got + n, total - n) : -1;
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (done || n == total)
            break;
        struct pollfd p = {.fd = fx->out_r, .events = POLLIN};
        poll(&p, 1, 100);
    }
    pthread_join(t, NULL);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);

    char msg[1024];
    ssize_t m = read(errp[0], msg, sizeof(msg) - 1);
    close(errp[0]);
    msg[m > 0 ? m : 0] = '\0';

    assert_non_null(got);
    assert_true(sent < 10.0); /* the old code blocked here forever */
    const char *w = strstr(msg, "minivmm: warning: console output is not being read");
    if (!w)
        fail_msg("no warning about the dropped bytes; stderr was: '%s'", msg);
    assert_null(strstr(w + 1, "minivmm: warning:")); /* one line for the stall */
    const char *num = strstr(w, "; ");
    assert_non_null(num);
    unsigned long long dropped = strtoull(num + 2, NULL, 10);
    assert_true(dropped > 0);
    assert_int_equal(n + dropped, total);
    /* What arrived is the beginning, in order; the rest was dropped. */
    for (size_t i = 0; i < n; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu is %#x, expected %#x", i, got[i], pattern(i));
    assert_true(n >= RING_SIZE);
    free(got);
}

static bool console_thread_blocks(int sig, bool *found)
{
    DIR *dir = opendir("/proc/self/task");
    struct dirent *e;
    bool blocked = false;
    *found = false;
    while (dir && (e = readdir(dir))) {
        char path[300], line[256];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool console = fgets(line, sizeof(line), f) && strcmp(line, "console\n") == 0;
        fclose(f);
        if (!console)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long long mask;
            if (sscanf(line, "SigBlk: %llx", &mask) == 1) {
                *found = true;
                blocked = (mask >> (sig - 1)) & 1;
            }
        }
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
    return blocked;
}

static void test_writer_thread_blocks_signals(void **state)
{
    struct fixture *fx = *state;
    /* Here, unlike in minivmm, the creating thread blocks nothing. */
    create(fx);
    bool found;
    assert_true(console_thread_blocks(SIGINT, &found));
    assert_true(found);
    assert_true(console_thread_blocks(SIGTERM, &found));
    assert_true(console_thread_blocks(SIGHUP, &found));
}

static unsigned nr_threads(void)
{
    unsigned n = 0;
    DIR *dir = opendir("/proc/self/task");
    assert_non_null(dir);
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

static void test_console_none_has_no_thread(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.console = CONSOLE_NONE;
    unsigned before = nr_threads();
    create(fx);
    assert_int_equal(nr_threads(), before);
    for (int i = 0; i < 100; i++)
        guest_write(fx, UART16550_THR, 'x');
    /* Nothing reaches stdout. */
    fcntl(fx->out_r, F_SETFL, O_NONBLOCK);
    char c;
    assert_int_equal(read(fx->out_r, &c, 1), -1);
}

static void test_console_file_gets_everything(void **state)
{
    struct fixture *fx = *state;
    char path[] = "/tmp/minivmm-test-serial-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fx->cfg.console = CONSOLE_FILE;
    fx->cfg.console_path = path;
    struct device *dev = create(fx);
    const size_t total = 200 * 1000;
    for (size_t i = 0; i < total; i++)
        guest_write(fx, UART16550_THR, pattern(i));
    forget(fx, dev);
    dev->ops->destroy(dev); /* flushes */

    uint8_t *got = malloc(total + 1);
    assert_non_null(got);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, got + n, total + 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    unlink(path);
    assert_int_equal(n, total);
    for (size_t i = 0; i < total; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu is %#x, expected %#x", i, got[i], pattern(i));
    free(got);
}

/* ---- input ---- */

static void test_closed_pipe_does_not_keep_the_loop_busy(void **state)
{
    struct fixture *fx = *state;
    /* echo hello | minivmm: the line is there and the writer is gone (EPOLLHUP). */
    assert_int_equal(write(fx->in_w, "hello\n", 6), 6);
    close(fx->in_w);
    fx->in_w = -1;
    create(fx);

    /* The guest's tty is not open: input paused, nothing to wake the loop. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(&fx->vm.loop, 50), 0);

    guest_open_tty(fx, true);
    uint8_t got[16];
    assert_int_equal(guest_receive(fx, got, 6, 50), 6);
    assert_memory_equal(got, "hello\n", 6);

    /* End of input seen once: the loop settles and stays idle. */
    settle(fx);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(&fx->vm.loop, 50), 0);
    assert_false(guest_read(fx, UART16550_LSR) & UART16550_LSR_DR);
}

static void test_input_waits_and_arrives_in_order(void **state)
{
    struct fixture *fx = *state;
    const size_t total = 500;
    uint8_t in[500], got[500];
    for (size_t i = 0; i < total; i++)
        in[i] = pattern(i);
    create(fx);
    /* Written before the guest listens: it waits in the pipe. */
    assert_int_equal(write(fx->in_w, in, 200), 200);
    assert_int_equal(evloop_run_once(&fx->vm.loop, 50), 0);

    /* 16450 mode (one byte at a time): every byte is a pause and a resume. */
    guest_open_tty(fx, false);
    size_t n = guest_receive(fx, got, 100, 1000);
    assert_int_equal(n, 100);
    /* The guest stops reading (tty closed): the rest waits again. */
    guest_write(fx, UART16550_IER, 0);
    assert_int_equal(write(fx->in_w, in + 200, total - 200), (ssize_t)(total - 200));
    close(fx->in_w);
    fx->in_w = -1;
    settle(fx);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(&fx->vm.loop, 50), 0);

    guest_open_tty(fx, true);
    n += guest_receive(fx, got + n, total - n, 1000);
    assert_int_equal(n, total);
    assert_memory_equal(got, in, total);
    settle(fx);
    assert_int_equal(evloop_run_once(&fx->vm.loop, 50), 0);
}

/* Another process sharing stdin: it reads what epoll reported before we do. */
static size_t stolen;
static int thief_fd;

static void thief(void *opaque, uint32_t events)
{
    uint64_t v;
    char buf[64];
    (void)opaque;
    (void)events;
    assert_int_equal(read(thief_fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n > 0)
        stolen += (size_t)n;
}

static void test_stale_readiness_does_not_block(void **state)
{
    struct fixture *fx = *state;
    create(fx);
    guest_open_tty(fx, true);
    settle(fx);

    thief_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(thief_fd >= 0);
    assert_int_equal(evloop_add(&fx->vm.loop, thief_fd, EPOLLIN, thief, NULL), 0);
    stolen = 0;
    /* The thief becomes ready first, so it runs first in the same batch. */
    uint64_t one = 1;
    assert_int_equal(write(thief_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(write(fx->in_w, "abc", 3), 3);
    assert_int_equal(evloop_run_once(&fx->vm.loop, 1000), 2); /* the old code blocked here */
    assert_int_equal(stolen, 3);
    assert_false(guest_read(fx, UART16550_LSR) & UART16550_LSR_DR);
    evloop_remove(&fx->vm.loop, thief_fd);
    close(thief_fd);

    /* Later input still arrives. */
    assert_int_equal(write(fx->in_w, "d", 1), 1);
    uint8_t c;
    assert_int_equal(guest_receive(fx, &c, 1, 50), 1);
    assert_int_equal(c, 'd');
}

static void test_terminal_raw_mode_keeps_only_ctrl_c(void **state)
{
    struct fixture *fx = *state;
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        skip();
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(slave >= 0);
    struct termios before, raw, after;
    assert_int_equal(tcgetattr(slave, &before), 0);
    assert_int_equal(dup2(slave, STDIN_FILENO), STDIN_FILENO);

    struct device *dev = create(fx);
    assert_int_equal(tcgetattr(slave, &raw), 0);
    assert_true(raw.c_lflag & ISIG);
    assert_false(raw.c_lflag & (ICANON | ECHO));
    assert_int_equal(raw.c_cc[VINTR], before.c_cc[VINTR]);
    assert_int_equal(raw.c_cc[VQUIT], _POSIX_VDISABLE);
    assert_int_equal(raw.c_cc[VSUSP], _POSIX_VDISABLE);

    /* A key typed on the terminal reaches the guest. */
    guest_open_tty(fx, true);
    assert_int_equal(write(master, "\x1c", 1), 1); /* Ctrl-\: now an ordinary byte */
    uint8_t c = 0;
    assert_int_equal(guest_receive(fx, &c, 1, 50), 1);
    assert_int_equal(c, 0x1c);

    forget(fx, dev);
    dev->ops->destroy(dev);
    assert_int_equal(tcgetattr(slave, &after), 0);
    assert_int_equal(after.c_lflag, before.c_lflag);
    assert_int_equal(after.c_cc[VQUIT], before.c_cc[VQUIT]);
    assert_int_equal(after.c_cc[VSUSP], before.c_cc[VSUSP]);
    close(slave);
    close(master);
}

/* An argument runs only the tests whose names match it (e.g. 'test_stale*'). */
int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as vm.c does */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_output_in_order),
        T(test_stalled_reader_drops_instead_of_blocking),
        T(test_writer_thread_blocks_signals),
        T(test_console_none_has_no_thread),
        T(test_console_file_gets_everything),
        T(test_closed_pipe_does_not_keep_the_loop_busy),
        T(test_input_waits_and_arrives_in_order),
        T(test_stale_readiness_does_not_block),
        T(test_terminal_raw_mode_keeps_only_ctrl_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
