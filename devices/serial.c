/*
 * serial.c - the guest's serial console: a 16550A UART (uart16550.c) on COM1
 * (port 0x3f8, IRQ 4), connected to the host as --console says.
 *
 * Output goes to stdout, a file, or nowhere.  With --console stdio, stdin
 * feeds the receiver: the main thread's event loop reads stdin only while
 * the UART has room (uart16550_rx_room), so input waits in the host until
 * the guest's tty is open instead of being lost.  When the UART makes room
 * on a vCPU thread it calls rx_ready, which wakes the event loop through an
 * eventfd.  A stdin that epoll cannot watch (a regular file) is read on
 * demand whenever the UART has room.  A terminal on stdin is switched to raw mode (no echo, no line
 * editing; Ctrl-C still stops minivmm) and restored at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "devices/devices.h"
#include "devices/uart16550.h"
#include "vmm/aml.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define SERIAL_INPUT_BUF 64

struct serial {
    struct device dev;
    struct uart16550 uart;
    struct vm *vm;
    int out_fd;  /* -1: discard */
    int in_fd;   /* -1: no input */
    int wake_fd; /* eventfd written by rx_ready */
    bool in_watched;
    bool in_is_file;                   /* stdin epoll cannot watch (regular file): read on demand */
    uint8_t pending[SERIAL_INPUT_BUF]; /* read from stdin, not yet accepted */
    size_t npending;
};

/* Terminal state to restore at exit (only one console exists). */
static struct termios saved_termios;
static bool termios_saved;

static void restore_terminal(void)
{
    if (termios_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
}

static void set_raw_terminal(int fd)
{
    struct termios t;
    if (!isatty(fd) || tcgetattr(fd, &saved_termios) < 0)
        return;
    termios_saved = true;
    atexit(restore_terminal);
    t = saved_termios;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN); /* ISIG kept: Ctrl-C stops us */
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(fd, TCSANOW, &t);
}

/* --- UART callbacks (UART lock held; any thread) ------------------------- */

static void serial_set_irq(void *ctx, bool level)
{
    struct serial *s = ctx;
    vm_irq_line(s->vm, LAYOUT_COM1_IRQ, level);
}

static void serial_transmit(void *ctx, uint8_t byte)
{
    struct serial *s = ctx;
    if (s->out_fd < 0)
        return;
    for (;;) {
        ssize_t n = write(s->out_fd, &byte, 1);
        if (n == 1 || (n < 0 && errno != EINTR && errno != EAGAIN))
            return; /* a closed or broken output just loses the console */
    }
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

static void serial_watch_input(struct serial *s, bool on)
{
    if (s->in_fd < 0 || s->in_is_file || s->in_watched == on)
        return;
    evloop_modify(&s->vm->loop, s->in_fd, on ? EPOLLIN : 0);
    s->in_watched = on;
}

static void serial_close_input(struct serial *s)
{
    if (!s->in_is_file)
        evloop_remove(&s->vm->loop, s->in_fd);
    s->in_fd = -1;
    s->in_watched = false;
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

/* Read as much input as the UART has room for; false at end of input. */
static bool serial_read_input(struct serial *s)
{
    size_t room = uart16550_rx_room(&s->uart);
    if (room == 0 || s->npending)
        return true; /* wait for rx_ready */
    if (room > sizeof(s->pending))
        room = sizeof(s->pending);
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
 * the UART takes it.  A pollable stdin is watched only while there is room,
 * so a guest that does not read leaves the input waiting in the host.
 */
static void serial_pump_input(struct serial *s)
{
    if (s->in_fd < 0)
        return;
    if (!serial_flush_pending(s) || uart16550_rx_room(&s->uart) == 0) {
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
    (void)events;
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
    uart16550_reset(&s->uart);
}

static void serial_destroy(struct device *dev)
{
    struct serial *s = container_of(dev, struct serial, dev);
    uart16550_destroy(&s->uart);
    if (s->out_fd > STDERR_FILENO)
        close(s->out_fd);
    close(s->wake_fd);
    restore_terminal();
    free(s);
}

static const struct device_ops serial_ops = {
    .describe_acpi = serial_describe_acpi,
    .reset = serial_reset,
    .destroy = serial_destroy,
};

int serial_create(struct vm *vm, char *err, size_t errlen)
{
    const struct vm_config *cfg = vm->cfg;
    struct serial *s = xzalloc(sizeof(*s));
    s->vm = vm;
    s->dev.name = "serial0";
    s->dev.ops = &serial_ops;
    s->in_fd = -1;
    s->out_fd = -1;

    switch (cfg->console) {
    case CONSOLE_STDIO:
        s->out_fd = STDOUT_FILENO;
        s->in_fd = STDIN_FILENO;
        break;
    case CONSOLE_FILE:
        s->out_fd = open(cfg->console_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->out_fd < 0) {
            snprintf(err, errlen, "--console file=%s: %s", cfg->console_path, strerror(errno));
            free(s);
            return -1;
        }
        break;
    case CONSOLE_NONE:
        break;
    }

    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0 || evloop_add(&vm->loop, s->wake_fd, EPOLLIN, serial_on_wake, s) < 0) {
        snprintf(err, errlen, "serial console: eventfd: %s", strerror(errno));
        return -1;
    }
    if (s->in_fd >= 0) {
        if (evloop_add(&vm->loop, s->in_fd, EPOLLIN, serial_on_input, s) == 0) {
            s->in_watched = true;
            set_raw_terminal(s->in_fd);
        } else if (errno == EPERM) {
            /* A regular file or /dev/null: always readable, read on demand. */
            s->in_is_file = true;
        } else {
            snprintf(err, errlen, "serial console: cannot watch stdin: %s", strerror(errno));
            return -1;
        }
    }

    uart16550_init(&s->uart, &serial_uart_ops, s);
    if (bus_register(&vm->pio, LAYOUT_COM1_PORT, UART16550_NR_REGS, &serial_bus_ops, s, "com1") <
        0) {
        snprintf(err, errlen, "serial console: ports %#x-%#x are taken", LAYOUT_COM1_PORT,
                 LAYOUT_COM1_PORT + UART16550_NR_REGS - 1);
        return -1;
    }
    vm_add_device(vm, &s->dev);
    return 0;
}
