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
 * busy) and arrives whole and in order once the guest reads; input typed in
 * pieces at awkward moments (FIFO full, input paused, between an LSR and an
 * RBR read, across IER/FCR/MCR changes, even between the host's read of
 * stdin and the UART's receive) arrives whole and in order, also when a vCPU
 * thread, a typist thread and the main loop race; a readiness
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
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
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

/* stderr goes to a pipe from stderr_capture_begin() to stderr_capture_end(). */
struct stderr_capture {
    int saved, pipe_r;
};

static void stderr_capture_begin(struct stderr_capture *c)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    c->pipe_r = p[0];
}

/* Put stderr back; msg gets what was written meanwhile (at most len - 1 bytes). */
static void stderr_capture_end(struct stderr_capture *c, char *msg, size_t len)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    ssize_t m = read(c->pipe_r, msg, len - 1);
    close(c->pipe_r);
    msg[m > 0 ? m : 0] = '\0';
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
    struct stderr_capture cap;
    stderr_capture_begin(&cap);

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
    char msg[1024];
    stderr_capture_end(&cap, msg, sizeof(msg));

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

/* Threads named "console" in this process. */
static unsigned console_threads(void)
{
    DIR *dir = opendir("/proc/self/task");
    assert_non_null(dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        char path[300], line[64];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(line, sizeof(line), f) && strcmp(line, "console\n") == 0)
            n++;
        fclose(f);
    }
    closedir(dir);
    return n;
}

/*
 * A reader that takes nothing at all (a stopped `| less`) must not hold up
 * minivmm's exit: destroy gives up on the writer after the reader stalled,
 * says how much output was lost, and returns (alarm(60) in setup bounds a
 * regression, which used to block here forever).
 */
static void test_stalled_reader_does_not_hold_up_exit(void **state)
{
    struct fixture *fx = *state;
    struct device *dev = create(fx);
    const size_t total = 256 * 1024; /* more than the pipe holds */
    for (size_t i = 0; i < total; i++)
        guest_write(fx, UART16550_THR, pattern(i));

    struct stderr_capture cap;
    stderr_capture_begin(&cap);
    forget(fx, dev);
    dev->ops->destroy(dev); /* nobody reads fx->out_r */
    char msg[1024];
    stderr_capture_end(&cap, msg, sizeof(msg));
    const char *w = strstr(msg, "minivmm: warning: console output stalled");
    if (!w)
        fail_msg("no warning about the stalled console; stderr was: '%s'", msg);
    const char *num = strstr(w, "the last ");
    assert_non_null(num);
    unsigned long long left = strtoull(num + 9, NULL, 10);
    /*
     * What the pipe took plus what was left is everything the guest sent,
     * but for the one write() (at most 4 KiB) that was under way.
     */
    int in_pipe = 0;
    assert_int_equal(ioctl(fx->out_r, FIONREAD, &in_pipe), 0);
    assert_true(in_pipe > 0);
    assert_true(left > 0 && left < total);
    assert_true((size_t)in_pipe + left >= total);
    assert_true((size_t)in_pipe + left - total <= 4096);
    /*
     * The abandoned writer ends on EPIPE when the reader goes; wait for it,
     * or its next write() would go to the stdout the teardown puts back.
     */
    close(fx->out_r);
    fx->out_r = -1;
    for (int i = 0; i < 1000 && console_threads() > 0; i++)
        usleep(10 * 1000);
    if (console_threads() > 0)
        fail_msg("waited 10 s for the abandoned console writer to end after its reader closed");
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

/* ---- input fed in pieces at awkward moments ---- */

/*
 * The console input must reach the guest whole and in order whatever the
 * guest's driver does meanwhile: input arrives in pieces of any size while
 * the RX FIFO is full, while the receiver is off (IER.RDI or MCR.OUT2 clear,
 * i.e. input paused in the host), between an interrupt handler's LSR and RBR
 * reads, across IER and FCR changes.  Both tests below compare every byte the
 * guest reads with the next byte written to stdin, so a byte lost, repeated
 * or reordered anywhere on the path (pipe, pending buffer, FIFO) fails them,
 * and so does input that stays paused for good (a missed rx_ready).
 */

/* splitmix64: the tests' choices, reproducible from the seed a failure names. */
static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd_next(s) % n);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* MINIVMM_FUZZ_SEED=N replaces the default seed, as in test_virtqueue_fuzz. */
static uint64_t test_seed(uint64_t dflt)
{
    const char *e = getenv("MINIVMM_FUZZ_SEED");
    return e && *e ? strtoull(e, NULL, 0) : dflt;
}

/*
 * This binary's read() stands in for libc's, so serial.c's reads of stdin come
 * here.  After a read of the stdin pipe it runs the armed hook, once: a vCPU
 * acting at the moment the main thread holds input it has read but not yet
 * handed to the UART (say the guest clears IER.RDI then), which no ordering of
 * whole calls can produce.  Other reads are left alone.
 */
static void (*in_read_hook)(void *);
static void *in_read_hook_arg;

static bool is_stdin_pipe(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstat(STDIN_FILENO, &b) == 0 && S_ISFIFO(a.st_mode) &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

ssize_t read(int fd, void *buf, size_t len)
{
    ssize_t n = syscall(SYS_read, fd, buf, len);
    if (n > 0 && in_read_hook && is_stdin_pipe(fd)) {
        int saved = errno;
        void (*hook)(void *) = in_read_hook;
        in_read_hook = NULL;
        hook(in_read_hook_arg);
        errno = saved;
    }
    return n;
}

/* The guest side: what it enabled, and what it has received so far. */
struct rx_guest {
    struct fixture *fx;
    uint8_t ier, fcr, mcr; /* last values written */
    const uint8_t *expect; /* what the host sends */
    size_t total;          /* bytes the host sends */
    size_t ngot;           /* bytes received, all equal to expect[0..ngot) */
    unsigned long long seed;
    unsigned step;
};

static void rx_set(struct rx_guest *g, unsigned reg, uint8_t *shadow, uint8_t value)
{
    *shadow = value;
    guest_write(g->fx, reg, value);
}

/* Read RBR while LSR says a byte is there, at most max bytes; each must be the next one sent. */
static size_t rx_take(struct rx_guest *g, size_t max)
{
    size_t n = 0;
    while (n < max && (guest_read(g->fx, UART16550_LSR) & UART16550_LSR_DR)) {
        uint8_t c = guest_read(g->fx, UART16550_RBR);
        if (g->ngot == g->total)
            fail_msg("seed %#llx, step %u: the guest received a byte (%#x) after all %zu sent",
                     g->seed, g->step, c, g->total);
        if (c != g->expect[g->ngot])
            fail_msg("seed %#llx, step %u: received byte %zu is %#x, expected %#x (input lost, "
                     "repeated or reordered)",
                     g->seed, g->step, g->ngot, c, g->expect[g->ngot]);
        g->ngot++;
        n++;
    }
    return n;
}

static bool rx_receiving(const struct rx_guest *g)
{
    return (g->ier & UART16550_IER_RDI) && (g->mcr & UART16550_MCR_OUT2);
}

/* With the receiver off and the FIFO drained, more input must wait in the host. */
static void rx_check_paused(struct rx_guest *g)
{
    rx_take(g, SIZE_MAX);
    for (int i = 0; i < 3; i++)
        evloop_run_once(&g->fx->vm.loop, 0);
    if (guest_read(g->fx, UART16550_LSR) & UART16550_LSR_DR)
        fail_msg("seed %#llx, step %u: input reached the FIFO while the receiver was off "
                 "(IER %#x, MCR %#x)",
                 g->seed, g->step, g->ier, g->mcr);
}

/* What the guest does inside the host's read of stdin (in_read_hook): one of a few. */
static uint64_t rx_hook_rnd;

static void rx_hook_action(void *arg)
{
    struct rx_guest *g = arg;
    switch (rnd_below(&rx_hook_rnd, 5)) {
    case 0:
        rx_set(g, UART16550_IER, &g->ier, g->ier ^ UART16550_IER_RDI);
        break;
    case 1:
        rx_set(g, UART16550_FCR, &g->fcr, g->fcr ^ UART16550_FCR_ENABLE);
        break;
    case 2:
        rx_set(g, UART16550_MCR, &g->mcr, g->mcr ^ UART16550_MCR_OUT2);
        break;
    case 3: /* the interrupt handler runs: room grows */
        guest_read(g->fx, UART16550_IIR);
        rx_take(g, rnd_below(&rx_hook_rnd, UART16550_FIFO_LEN + 1));
        break;
    case 4: /* the guest leaves 16450 mode while one byte waits, or enters it */
        rx_set(g, UART16550_FCR, &g->fcr, g->fcr ^ UART16550_FCR_ENABLE);
        rx_take(g, 1);
        break;
    }
}

/* Write up to len bytes to the (non-blocking) stdin pipe; returns how many went in. */
static size_t host_type(struct fixture *fx, const uint8_t *buf, size_t len)
{
    ssize_t n = len ? write(fx->in_w, buf, len) : 0;
    if (n < 0 && errno != EAGAIN)
        fail_msg("write to the stdin pipe: %s", strerror(errno));
    return n > 0 ? (size_t)n : 0;
}

static void input_in_pieces_one_seed(struct fixture *fx, uint64_t seed)
{
    enum { TOTAL = 12000, STEPS = 30000, DRAIN_ROUNDS = 20000 };
    static uint8_t in[TOTAL];
    uint64_t s = seed;
    for (size_t i = 0; i < TOTAL; i++)
        in[i] = pattern(i + seed);
    struct rx_guest g = {.fx = fx, .expect = in, .total = TOTAL, .seed = (unsigned long long)seed};
    size_t written = 0;

    rx_set(&g, UART16550_FCR, &g.fcr, UART16550_FCR_ENABLE);
    rx_set(&g, UART16550_MCR, &g.mcr, UART16550_MCR_OUT2 | UART16550_MCR_DTR | UART16550_MCR_RTS);
    rx_set(&g, UART16550_IER, &g.ier, UART16550_IER_RDI);
    for (g.step = 0; g.step < STEPS && g.ngot < TOTAL; g.step++) {
        switch (rnd_below(&s, 14)) {
        case 0:
        case 1: /* the host types a piece: a byte, a line, several FIFOs' worth */
            written +=
                host_type(fx, in + written,
                          min_size(TOTAL - written, 1 + rnd_below(&s, 3 * UART16550_FIFO_LEN)));
            break;
        case 2:
        case 3: /* a turn of the main loop */
            evloop_run_once(&fx->vm.loop, 0);
            break;
        case 4: /* several turns while the guest reads nothing: the FIFO fills up */
            for (int i = 0; i < 3; i++)
                evloop_run_once(&fx->vm.loop, 0);
            break;
        case 5:
        case 6: /* an interrupt handler that takes some of the FIFO, then a turn */
            guest_read(fx, UART16550_IIR);
            rx_take(&g, rnd_below(&s, UART16550_FIFO_LEN + 1));
            evloop_run_once(&fx->vm.loop, 0);
            break;
        case 7: /* LSR alone, or LSR then RBR, with a turn of the loop in between */
            if (guest_read(fx, UART16550_LSR) & UART16550_LSR_DR) {
                evloop_run_once(&fx->vm.loop, 0);
                rx_take(&g, 1);
            }
            break;
        case 8: /* the tty throttles or unthrottles: IER.RDI off or on */
            rx_set(&g, UART16550_IER, &g.ier, g.ier ^ UART16550_IER_RDI);
            if (!rx_receiving(&g) && rnd_below(&s, 2))
                rx_check_paused(&g);
            break;
        case 9: /* FIFO off (16450 mode, one byte) or on, never cleared */
            rx_set(&g, UART16550_FCR, &g.fcr, g.fcr ^ UART16550_FCR_ENABLE);
            break;
        case 10: /* OUT2 off or on: the interrupt line, and so input, gated */
            rx_set(&g, UART16550_MCR, &g.mcr, g.mcr ^ UART16550_MCR_OUT2);
            if (!rx_receiving(&g) && rnd_below(&s, 2))
                rx_check_paused(&g);
            break;
        case 11: /* the host types while the receiver is off */
            if (!rx_receiving(&g))
                written += host_type(fx, in + written, min_size(TOTAL - written, 40));
            break;
        case 12:
        case 13: /* the guest acts between the host's read of stdin and the UART's receive */
            written +=
                host_type(fx, in + written, min_size(TOTAL - written, 1 + rnd_below(&s, 40)));
            rx_hook_rnd = rnd_next(&s);
            in_read_hook = rx_hook_action;
            in_read_hook_arg = &g;
            evloop_run_once(&fx->vm.loop, 0);
            in_read_hook = NULL;
            break;
        }
    }

    /* The guest receives again: everything typed must arrive, and nothing else. */
    rx_set(&g, UART16550_IER, &g.ier, UART16550_IER_RDI);
    rx_set(&g, UART16550_MCR, &g.mcr, UART16550_MCR_OUT2 | UART16550_MCR_DTR | UART16550_MCR_RTS);
    int rounds;
    for (rounds = 0; rounds < DRAIN_ROUNDS && g.ngot < TOTAL; rounds++) {
        written += host_type(fx, in + written, TOTAL - written);
        evloop_run_once(&fx->vm.loop, 0);
        rx_take(&g, SIZE_MAX);
    }
    if (g.ngot != TOTAL)
        fail_msg("seed %#llx: waited %d loop turns for the rest of the input: the guest received "
                 "%zu of %zu bytes (%zu written to stdin)",
                 g.seed, rounds, g.ngot, (size_t)TOTAL, written);
    settle(fx);
    assert_false(guest_read(fx, UART16550_LSR) & UART16550_LSR_DR);
}

static void test_input_in_pieces_at_awkward_moments(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(fcntl(fx->in_w, F_SETFL, O_NONBLOCK), 0);
    create(fx);
    uint64_t seed = test_seed(0x73657269616cull);
    /* Each seed goes on from where the last left the device. */
    for (uint64_t i = 0; i < 8; i++)
        input_in_pieces_one_seed(fx, seed + i);
}

/* The same with real threads: a vCPU reading the UART, a host typing, the main loop. */
struct rx_race {
    struct fixture *fx;
    const uint8_t *in;
    size_t total;
    uint64_t seed;
    size_t ngot;     /* vCPU thread; read by main with atomics */
    size_t written;  /* typist thread */
    bool stop;       /* set by main */
    bool failed;     /* set by the vCPU thread once error is written */
    char error[256]; /* why the vCPU thread failed */
};

static uint8_t port_in(struct fixture *fx, unsigned reg)
{
    uint8_t v = 0;
    bus_access(&fx->vm.pio, LAYOUT_COM1_PORT + reg, &v, 1, false);
    return v;
}

static void port_out(struct fixture *fx, unsigned reg, uint8_t v)
{
    bus_access(&fx->vm.pio, LAYOUT_COM1_PORT + reg, &v, 1, true);
}

static void pause_us(uint64_t *s, unsigned max_us)
{
    struct timespec t = {.tv_nsec = (long)rnd_below(s, max_us) * 1000};
    nanosleep(&t, NULL);
}

static void *race_vcpu(void *arg)
{
    struct rx_race *r = arg;
    uint64_t s = r->seed;
    while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST) && r->ngot < r->total) {
        unsigned what = rnd_below(&s, 16);
        if (what == 0) { /* throttle, then unthrottle */
            port_out(r->fx, UART16550_IER, 0);
            pause_us(&s, 200);
            port_out(r->fx, UART16550_IER, UART16550_IER_RDI);
        } else if (what == 1) { /* 16450 mode for a while */
            port_out(r->fx, UART16550_FCR, 0);
            pause_us(&s, 200);
            port_out(r->fx, UART16550_FCR, UART16550_FCR_ENABLE);
        } else { /* the interrupt handler: IIR, then LSR/RBR pairs, maybe stopping early */
            port_in(r->fx, UART16550_IIR);
            unsigned max = 1 + rnd_below(&s, 2 * UART16550_FIFO_LEN);
            for (unsigned n = 0; n < max && (port_in(r->fx, UART16550_LSR) & UART16550_LSR_DR);
                 n++) {
                uint8_t c = port_in(r->fx, UART16550_RBR);
                if (r->ngot == r->total || c != r->in[r->ngot]) {
                    snprintf(r->error, sizeof(r->error),
                             "seed %#llx: received byte %zu is %#x, expected %s%#x (input lost, "
                             "repeated or reordered)",
                             (unsigned long long)r->seed, r->ngot, c,
                             r->ngot == r->total ? "nothing after the last, " : "",
                             r->ngot == r->total ? 0 : r->in[r->ngot]);
                    __atomic_store_n(&r->failed, true, __ATOMIC_SEQ_CST);
                    return NULL;
                }
                __atomic_store_n(&r->ngot, r->ngot + 1, __ATOMIC_SEQ_CST);
            }
        }
        if (rnd_below(&s, 4) == 0)
            pause_us(&s, 100);
    }
    return NULL;
}

static void *race_typist(void *arg)
{
    struct rx_race *r = arg;
    uint64_t s = r->seed ^ 0x7479706973747ull;
    while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST) && r->written < r->total) {
        size_t len = min_size(r->total - r->written, 1 + rnd_below(&s, 100));
        ssize_t n = write(r->fx->in_w, r->in + r->written, len);
        if (n > 0) {
            __atomic_store_n(&r->written, r->written + (size_t)n, __ATOMIC_SEQ_CST);
        } else {
            struct pollfd p = {.fd = r->fx->in_w, .events = POLLOUT};
            poll(&p, 1, 10); /* the pipe is full: the guest is not reading (stop ends it) */
        }
        pause_us(&s, 300);
    }
    return NULL;
}

static void test_input_races_with_the_guest_driver(void **state)
{
    struct fixture *fx = *state;
    enum { TOTAL = 40000 };
    static uint8_t in[TOTAL];
    for (size_t i = 0; i < TOTAL; i++)
        in[i] = pattern(i * 7 + 3);
    assert_int_equal(fcntl(fx->in_w, F_SETFL, O_NONBLOCK), 0);
    create(fx);
    guest_open_tty(fx, true);
    struct rx_race r = {.fx = fx, .in = in, .total = TOTAL, .seed = test_seed(0x72616365ull)};
    pthread_t vcpu, typist;
    assert_int_equal(pthread_create(&vcpu, NULL, race_vcpu, &r), 0);
    assert_int_equal(pthread_create(&typist, NULL, race_typist, &r), 0);

    /* The main loop runs until the guest has everything, it failed, or 30 s passed. */
    double deadline = seconds() + 30;
    while (__atomic_load_n(&r.ngot, __ATOMIC_SEQ_CST) < TOTAL && seconds() < deadline &&
           !__atomic_load_n(&r.failed, __ATOMIC_SEQ_CST))
        evloop_run_once(&fx->vm.loop, 10);
    __atomic_store_n(&r.stop, true, __ATOMIC_SEQ_CST);
    pthread_join(vcpu, NULL);
    pthread_join(typist, NULL);
    if (r.failed)
        fail_msg("%s", r.error);
    if (r.ngot != TOTAL)
        fail_msg("seed %#llx: waited 30 s for the input: the guest received %zu of %d bytes "
                 "(%zu written to stdin)",
                 (unsigned long long)r.seed, r.ngot, TOTAL, r.written);
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
        T(test_stalled_reader_does_not_hold_up_exit),
        T(test_writer_thread_blocks_signals),
        T(test_console_none_has_no_thread),
        T(test_console_file_gets_everything),
        T(test_closed_pipe_does_not_keep_the_loop_busy),
        T(test_input_waits_and_arrives_in_order),
        T(test_stale_readiness_does_not_block),
        T(test_input_in_pieces_at_awkward_moments),
        T(test_input_races_with_the_guest_driver),
        T(test_terminal_raw_mode_keeps_only_ctrl_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
