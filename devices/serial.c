/*
 * serial.c - the guest's serial console: a 16550A UART (uart16550.c) on COM1
 * (port 0x3f8, IRQ 4), connected to the host as --console says.
 *
 * Rule: no I/O on the console ever happens under the UART lock, and the main
 * thread never waits for the console's reader.
 *
 * Output (stdout or a file; nothing with --console none).  The UART calls
 * serial_transmit on a vCPU thread with its lock held; it only appends the
 * byte to a 1 MiB ring (struct serial_out: its own mutex, held for a few
 * instructions, never across I/O) and wakes the console writer thread if it
 * sleeps.  That thread, created at start-up with every signal blocked
 * (SIGINT, SIGTERM and SIGHUP belong to the main loop's signalfd), lets
 * output gather for 2 ms after a wake-up, then does the blocking write()s
 * with no lock held, one per batch rather than per byte.  A slow or stalled
 * reader (a pipe to a busy process, `| less`, a terminal in copy mode) thus
 * only fills the ring.  When the ring is full the newest bytes are dropped
 * and counted, and the writer prints one warning per stall when its output
 * reaches the point where bytes are missing (with 2>&1 the line marks the
 * gap).  Byte order is kept exactly.  A broken output (EPIPE, EIO...) ends
 * the writing: everything after it is discarded.  The writer runs across
 * guest reboots; destroy restores the terminal, then lets the writer write
 * out what is buffered while the reader takes something at least every
 * SERIAL_FLUSH_STALL_NS: a reader that stopped (a stopped `| less`, a
 * terminal held by XOFF) costs the rest of the output and one warning, never
 * an exit that hangs with its signals blocked.  The stuck writer and its
 * buffer are then left to the process's exit.
 *
 * Input (--console stdio only).  The main thread's event loop reads stdin
 * only while the UART has room (uart16550_rx_room), so input waits in the
 * host until the guest's tty is open instead of being lost.  While there is
 * no room stdin is taken out of the event loop altogether (epoll reports
 * EPOLLHUP of a closed pipe even with no events requested); when the UART
 * makes room on a vCPU thread it calls rx_ready, which wakes the event loop
 * through an eventfd, and stdin is added back.  A pipe or terminal on stdin
 * is read through a non-blocking description of its own (/proc/self/fd/0
 * reopened O_NONBLOCK; the shared description of the user's shell keeps its
 * flags), so a readiness made stale by another process reading the same
 * pipe or terminal costs an EAGAIN instead of blocking the main thread; if it
 * cannot be reopened, poll(0) checks for input right before each read.  End
 * of input (read returns 0) closes the input once; the guest gets no more.
 * A stdin that epoll cannot watch (a regular file, /dev/null) is read on
 * demand whenever the UART has room.  A terminal on stdin is switched to raw
 * mode (no echo, no line editing, Ctrl-\ and Ctrl-Z are plain keys; Ctrl-C
 * still stops minivmm) and restored at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/host.h"
#include "devices/serial.h"
#include "devices/uart16550.h"
#include "vmm/aml.h"
#include "vmm/evloop.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#define SERIAL_INPUT_BUF 64
#define SERIAL_RING_SIZE (1u << 20) /* console output buffered for a slow reader */
/*
 * After a wake-up the writer lets bytes gather this long before it writes:
 * one wake-up and one write() per batch instead of per byte (the guest sends
 * one byte per port write).  Invisible to a human at the console.
 */
#define SERIAL_OUT_BATCH_NS (2 * 1000 * 1000)
/*
 * One write() at most this much, so that the writer's progress is seen while
 * a slow reader drains it, and at most this much is counted as missing
 * though it is already in the pipe when the writer is given up on.
 */
#define SERIAL_WRITE_MAX 4096
/* At exit, the writer is given up on when its reader took nothing for this long. */
#define SERIAL_FLUSH_STALL_NS (2ULL * 1000 * 1000 * 1000)

/* Console output: a ring filled by vCPUs (serial_transmit), emptied by the writer thread. */
struct serial_out {
    const struct dev_host *host; /* to confine the writer thread */
    int fd;                      /* -1: discard */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /* the fields below; never held across I/O */
    pthread_cond_t cond;  /* the writer waits here for bytes or stop */
    uint8_t *ring;        /* SERIAL_RING_SIZE bytes: [seq_out, seq_in) modulo the size */
    uint64_t seq_in;      /* bytes accepted so far */
    uint64_t seq_out;     /* bytes written so far */
    uint64_t dropped;     /* dropped and not reported yet (0: no stall) */
    uint64_t gap_seq;     /* dropped != 0: where the first byte was lost */
    bool writer_idle;     /* the writer waits on cond */
    bool stop;            /* destroy: flush, then end */
    bool finished;        /* the writer has ended (it broadcasts cond) */
    bool broken;          /* writing failed: discard everything */
};

struct serial {
    struct device dev;
    struct uart16550 uart;
    const struct dev_host *host;
    struct serial_out out;
    int in_fd;       /* -1: no (more) input */
    bool in_own;     /* in_fd is our non-blocking description of stdin (close it) */
    bool in_is_file; /* stdin epoll cannot watch (regular file): read on demand */
    bool in_watched; /* in_fd is in the event loop */
    int wake_fd;     /* eventfd written by rx_ready */
    uint8_t pending[SERIAL_INPUT_BUF]; /* read from stdin, not yet accepted */
    size_t npending;
};

/* Terminal state to restore at exit (only one console exists). */
static struct termios saved_termios;
static bool termios_saved;

void serial_restore_terminal(void)
{
    if (termios_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
    termios_saved = false; /* once: destroy, or atexit after die() */
}

static void set_raw_terminal(int fd)
{
    struct termios t;
    if (!isatty(fd) || tcgetattr(fd, &saved_termios) < 0)
        return;
    static bool registered;
    termios_saved = true;
    if (!registered)
        atexit(serial_restore_terminal);
    registered = true;
    t = saved_termios;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN);
    /*
     * ISIG stays for Ctrl-C (VINTR): the main loop gets SIGINT through its
     * signalfd and exits cleanly, restoring the terminal.  Ctrl-\ (SIGQUIT
     * would dump core) and Ctrl-Z (SIGTSTP would stop minivmm in raw mode)
     * become ordinary keys for the guest.
     */
    t.c_cc[VQUIT] = _POSIX_VDISABLE;
    t.c_cc[VSUSP] = _POSIX_VDISABLE;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(fd, TCSANOW, &t);
}

/* --- output: the console writer thread ------------------------------------ */

/* One write() of up to len bytes, retried on EINTR and EAGAIN.  Returns > 0, or -1 (errno). */
static ssize_t serial_write_some(int fd, const uint8_t *buf, size_t len)
{
    for (;;) {
        ssize_t n = write(fd, buf, len);
        if (n > 0)
            return n;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        /* Someone made the shared description non-blocking: wait for room. */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, -1);
    }
}

static void *serial_writer(void *arg)
{
    struct serial_out *o = arg;
    char why[256];

    if (dev_host_confine_thread(o->host, DEV_THREAD_CONSOLE, why, sizeof(why)) < 0) {
        warn("console writer: %s", why);
        dev_host_request_stop(o->host, DEV_STOP_ERROR);
    }

    pthread_mutex_lock(&o->lock);
    for (;;) {
        if (o->dropped && o->seq_out == o->gap_seq) {
            /* Everything before the gap is out: say here that bytes are missing. */
            unsigned long long n = o->dropped;
            o->dropped = 0;
            pthread_mutex_unlock(&o->lock);
            warn("console output is not being read fast enough; %llu bytes dropped", n);
            pthread_mutex_lock(&o->lock);
            continue;
        }
        if (o->seq_in == o->seq_out) {
            if (o->stop)
                break;
            o->writer_idle = true;
            pthread_cond_wait(&o->cond, &o->lock);
            o->writer_idle = false;
            if (!o->stop) {
                /* Let the rest of the line arrive (only stop signals meanwhile). */
                struct timespec t;
                clock_gettime(CLOCK_MONOTONIC, &t);
                t.tv_nsec += SERIAL_OUT_BATCH_NS;
                if (t.tv_nsec >= 1000000000L) {
                    t.tv_sec++;
                    t.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&o->cond, &o->lock, &t);
            }
            continue;
        }
        /* The oldest contiguous run, not past an unreported gap. */
        size_t off = (size_t)(o->seq_out % SERIAL_RING_SIZE);
        uint64_t len = o->seq_in - o->seq_out;
        if (len > SERIAL_RING_SIZE - off)
            len = SERIAL_RING_SIZE - off;
        if (o->dropped && len > o->gap_seq - o->seq_out)
            len = o->gap_seq - o->seq_out;
        if (len > SERIAL_WRITE_MAX)
            len = SERIAL_WRITE_MAX;
        pthread_mutex_unlock(&o->lock);
        /* The producer only writes outside [seq_out, seq_in): this run is ours. */
        ssize_t n = serial_write_some(o->fd, o->ring + off, (size_t)len);
        int err = errno;
        pthread_mutex_lock(&o->lock);
        if (n < 0) {
            o->broken = true;
            o->seq_out = o->seq_in;
            o->dropped = 0;
            o->finished = true;
            pthread_cond_broadcast(&o->cond);
            pthread_mutex_unlock(&o->lock);
            if (err == EPIPE)
                debug("console output closed (reader gone); discarding the guest's output");
            else
                warn("console output: write failed: %s; discarding the guest's further output",
                     strerror(err));
            return NULL;
        }
        o->seq_out += (uint64_t)n;
    }
    o->finished = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Start the writer for fd.  Returns 0, or -1 (errno). */
static int serial_out_start(struct serial_out *o, const struct dev_host *h, int fd)
{
    o->host = h;
    o->fd = fd;
    o->ring = xzalloc(SERIAL_RING_SIZE);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, &ca);
    pthread_condattr_destroy(&ca);

    /*
     * Every signal blocked in the writer: SIGINT/SIGTERM/SIGHUP go to the
     * main loop's signalfd (the VM blocks them before devices are created; this
     * does not rely on it), the vCPU kick signal only to vCPU threads.
     */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int r = pthread_create(&o->thread, NULL, serial_writer, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r) {
        errno = r;
        return -1;
    }
    pthread_setname_np(o->thread, "console");
    o->thread_started = true;
    return 0;
}

/* An absolute CLOCK_MONOTONIC time ns from now, for the condition variable. */
static struct timespec deadline_in(uint64_t ns)
{
    uint64_t t = now_ns() + ns;
    return (struct timespec){.tv_sec = (time_t)(t / 1000000000ULL),
                             .tv_nsec = (long)(t % 1000000000ULL)};
}

/*
 * Destroy: let the writer write out what is buffered and end.  Returns true
 * if it did; false if its reader took nothing for SERIAL_FLUSH_STALL_NS:
 * then the writer is left blocked and o must stay allocated until exit.
 */
static bool serial_out_stop(struct serial_out *o)
{
    if (!o->thread_started)
        return true;
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_cond_broadcast(&o->cond);
    uint64_t progress = o->seq_out;
    struct timespec deadline = deadline_in(SERIAL_FLUSH_STALL_NS);
    while (!o->finished) {
        int r = pthread_cond_timedwait(&o->cond, &o->lock, &deadline);
        if (o->finished || r != ETIMEDOUT)
            continue;
        if (o->seq_out == progress)
            break;
        progress = o->seq_out;
        deadline = deadline_in(SERIAL_FLUSH_STALL_NS);
    }
    bool finished = o->finished;
    unsigned long long left = o->seq_in - o->seq_out;
    pthread_mutex_unlock(&o->lock);
    if (!finished) {
        warn("console output stalled: its reader took nothing for %llu s; exiting without the "
             "last %llu bytes of the guest's output (up to 4 KiB of them may have been written)",
             SERIAL_FLUSH_STALL_NS / 1000000000ULL, left);
        pthread_detach(o->thread);
        return false;
    }
    pthread_join(o->thread, NULL);
    o->thread_started = false;
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
    free(o->ring);
    o->ring = NULL;
    return true;
}

/* --- UART callbacks (UART lock held; any thread) ------------------------- */

static void serial_set_irq(void *ctx, bool level)
{
    struct serial *s = ctx;
    dev_host_irq_line(s->host, LAYOUT_COM1_IRQ, level);
}

/* Never blocks on the console: append to the ring or count the byte as dropped. */
static void serial_transmit(void *ctx, uint8_t byte)
{
    struct serial_out *o = &((struct serial *)ctx)->out;
    if (!o->thread_started)
        return; /* --console none */
    pthread_mutex_lock(&o->lock);
    if (o->broken) {
        /* The output is gone: discard. */
    } else if (o->seq_in - o->seq_out == SERIAL_RING_SIZE) {
        if (!o->dropped)
            o->gap_seq = o->seq_in;
        o->dropped++;
    } else {
        o->ring[o->seq_in % SERIAL_RING_SIZE] = byte;
        o->seq_in++;
        if (o->writer_idle) {
            o->writer_idle = false;
            pthread_cond_signal(&o->cond);
        }
    }
    pthread_mutex_unlock(&o->lock);
}

static void serial_rx_ready(void *ctx)
{
    struct serial *s = ctx;
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: a wake-up is already pending, which is all we need. */
    }
}

static const struct uart16550_ops serial_uart_ops = {
    .set_irq = serial_set_irq,
    .transmit = serial_transmit,
    .rx_ready = serial_rx_ready,
};

/* --- input, on the main thread ------------------------------------------- */

static void serial_on_input(void *opaque, uint32_t events);

static void serial_close_input(struct serial *s)
{
    if (s->in_watched)
        evloop_remove(s->host->loop, s->in_fd);
    if (s->in_own)
        close(s->in_fd);
    s->in_fd = -1;
    s->in_own = false;
    s->in_watched = false;
}

/*
 * Watch stdin (there is room) or take it out of the event loop (there is
 * none): a paused fd must not stay registered, or a closed pipe's EPOLLHUP
 * would wake the loop forever.
 */
static void serial_watch_input(struct serial *s, bool on)
{
    if (s->in_fd < 0 || s->in_is_file || s->in_watched == on)
        return;
    if (!on) {
        evloop_remove(s->host->loop, s->in_fd);
        s->in_watched = false;
        return;
    }
    if (evloop_add(s->host->loop, s->in_fd, EPOLLIN, serial_on_input, s) < 0) {
        warn("serial console: cannot watch stdin: %s; the guest gets no more input",
             strerror(errno));
        serial_close_input(s);
        return;
    }
    s->in_watched = true;
}

/* Move pending bytes into the UART.  Returns true once none are left. */
static bool serial_flush_pending(struct serial *s)
{
    if (s->npending) {
        size_t n = uart16550_receive(&s->uart, s->pending, s->npending);
        memmove(s->pending, s->pending + n, s->npending - n);
        s->npending -= n;
    }
    return s->npending == 0;
}

/* Would a read of fd return at once (data, end of input or an error)? */
static bool serial_input_ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Read as much input as the UART has room for; false at end of input. */
static bool serial_read_input(struct serial *s)
{
    size_t room = uart16550_rx_room(&s->uart);
    if (room == 0 || s->npending)
        return true; /* wait for rx_ready */
    if (room > sizeof(s->pending))
        room = sizeof(s->pending);
    /* A blocking stdin: another reader may have taken what epoll saw. */
    if (!s->in_own && !s->in_is_file && !serial_input_ready(s->in_fd))
        return true;
    ssize_t n = read(s->in_fd, s->pending, room);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        return false; /* end of input: the guest just gets no more */
    if (n > 0) {
        s->npending = (size_t)n;
        serial_flush_pending(s);
    }
    return true;
}

/*
 * Input pump, on the main thread: move what is pending, then read more while
 * the UART takes it.  A pollable stdin is in the event loop only while there
 * is room, so a guest that does not read leaves the input waiting in the host.
 */
static void serial_pump_input(struct serial *s)
{
    bool drained = serial_flush_pending(s);
    if (s->in_fd < 0)
        return;
    if (!drained || uart16550_rx_room(&s->uart) == 0) {
        serial_watch_input(s, false); /* rx_ready will bring us back */
        return;
    }
    if (s->in_is_file) {
        while (s->in_fd >= 0 && s->npending == 0 && uart16550_rx_room(&s->uart) > 0)
            if (!serial_read_input(s))
                serial_close_input(s);
        return;
    }
    serial_watch_input(s, true);
}

static void serial_on_input(void *opaque, uint32_t events)
{
    struct serial *s = opaque;
    (void)events; /* EPOLLHUP/EPOLLERR: the read below returns 0 or fails */
    if (!serial_read_input(s)) {
        serial_close_input(s);
        return;
    }
    serial_pump_input(s);
}

static void serial_on_wake(void *opaque, uint32_t events)
{
    struct serial *s = opaque;
    uint64_t v;
    (void)events;
    if (read(s->wake_fd, &v, sizeof(v)) < 0) {
        /* Spurious wake-up: nothing to drain. */
    }
    serial_pump_input(s);
}

/*
 * The fd to read stdin through: for a pipe or a terminal, a non-blocking
 * description of our own (*own set), so that a read never blocks even when
 * another process sharing stdin took the input epoll reported; the shared
 * description's flags are left alone (O_NONBLOCK there would reach the
 * user's shell).  Anything else (regular file, /dev/null, socket), or if the
 * reopen fails: stdin itself, read after a poll(0) check.
 */
static int serial_open_input(bool *own)
{
    struct stat st0, st;
    *own = false;
    if (fstat(STDIN_FILENO, &st0) < 0 || !(S_ISFIFO(st0.st_mode) || isatty(STDIN_FILENO)))
        return STDIN_FILENO;
    int fd = open("/proc/self/fd/0", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != st0.st_dev || st.st_ino != st0.st_ino) {
        debug("serial console: cannot reopen stdin non-blocking (%s); using it as it is",
              fd < 0 ? strerror(errno) : "another file");
        if (fd >= 0)
            close(fd);
        return STDIN_FILENO;
    }
    *own = true;
    return fd;
}

/* --- device ops ---------------------------------------------------------- */

static void serial_bus_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct serial *s = opaque;
    memset(data, 0, len);
    *(uint8_t *)data = uart16550_read(&s->uart, (unsigned)offset);
}

static void serial_bus_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct serial *s = opaque;
    (void)len;
    uart16550_write(&s->uart, (unsigned)offset, *(const uint8_t *)data);
}

static const struct bus_ops serial_bus_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

static void serial_describe_acpi(struct device *dev, struct aml *aml)
{
    (void)dev;
    size_t blk = aml_device_begin(aml, "COM1");
    aml_name_eisaid(aml, "_HID", "PNP0501");
    aml_name_integer(aml, "_UID", 1);
    struct aml_res res;
    aml_res_init(&res);
    aml_res_io(&res, LAYOUT_COM1_PORT, LAYOUT_COM1_PORT, 1, UART16550_NR_REGS);
    aml_res_irq_noflags(&res, LAYOUT_COM1_IRQ);
    aml_name_resource(aml, "_CRS", &res);
    aml_end(aml, blk);
}

static void serial_reset(struct device *dev)
{
    struct serial *s = container_of(dev, struct serial, dev);
    /* The output ring and its writer carry on: they hold what the guest already wrote. */
    uart16550_reset(&s->uart);
}

static void serial_destroy(struct device *dev)
{
    struct serial *s = container_of(dev, struct serial, dev);
    if (s->in_fd >= 0)
        serial_close_input(s);
    if (s->wake_fd >= 0) {
        evloop_remove(s->host->loop, s->wake_fd);
        close(s->wake_fd);
    }
    serial_restore_terminal(); /* first: the flush below may give up on a stalled reader */
    bool flushed = serial_out_stop(&s->out);
    uart16550_destroy(&s->uart);
    if (!flushed)
        return; /* the writer still uses s->out and its fd: both go with the process */
    if (s->out.fd > STDERR_FILENO)
        close(s->out.fd);
    free(s);
}

static const struct device_ops serial_ops = {
    .describe_acpi = serial_describe_acpi,
    .reset = serial_reset,
    .destroy = serial_destroy,
};

int serial_create(const struct dev_host *h, const struct serial_options *o, char *err,
                  size_t errlen)
{
    struct serial *s = xzalloc(sizeof(*s));
    s->host = h;
    s->dev.name = "serial0";
    s->dev.ops = &serial_ops;
    s->in_fd = -1;
    s->out.fd = -1;
    s->wake_fd = -1;
    bool want_input = false;

    int out_fd = -1;
    switch (o->console) {
    case CONSOLE_STDIO:
        out_fd = STDOUT_FILENO;
        want_input = true;
        break;
    case CONSOLE_FILE:
        out_fd = open(o->console_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            snprintf(err, errlen, "--console file=%s: %s", o->console_path, strerror(errno));
            free(s);
            return -1;
        }
        break;
    case CONSOLE_NONE:
        break;
    }
    if (out_fd >= 0 && serial_out_start(&s->out, h, out_fd) < 0) {
        snprintf(err, errlen, "serial console: cannot start the console writer thread: %s",
                 strerror(errno));
        return -1;
    }

    uart16550_init(&s->uart, &serial_uart_ops, s);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0 || evloop_add(h->loop, s->wake_fd, EPOLLIN, serial_on_wake, s) < 0) {
        snprintf(err, errlen, "serial console: eventfd: %s", strerror(errno));
        return -1;
    }
    if (want_input) {
        s->in_fd = serial_open_input(&s->in_own);
        if (evloop_add(h->loop, s->in_fd, EPOLLIN, serial_on_input, s) == 0) {
            s->in_watched = true;
            set_raw_terminal(STDIN_FILENO);
        } else if (errno == EPERM) {
            /* A regular file or /dev/null: always readable, read on demand. */
            s->in_is_file = true;
        } else {
            snprintf(err, errlen, "serial console: cannot watch stdin: %s", strerror(errno));
            return -1;
        }
        serial_pump_input(s); /* the UART has no room before the guest opens its tty: pause */
    }

    if (bus_register(h->pio, LAYOUT_COM1_PORT, UART16550_NR_REGS, &serial_bus_ops, s, "com1") < 0) {
        snprintf(err, errlen, "serial console: ports %#x-%#x are taken", LAYOUT_COM1_PORT,
                 LAYOUT_COM1_PORT + UART16550_NR_REGS - 1);
        return -1;
    }
    dev_host_add_device(h, &s->dev);
    return 0;
}
