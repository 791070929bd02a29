/*
 * serial.h - the guest's serial console: a 16550A UART (uart16550.h) on
 * COM1 (ports and IRQ in vmm/layout.h), connected to the host as its
 * options say.
 *
 * serial_create() (the VM's device table, start-up, main thread) opens the
 * console (a --console file is opened for appending), starts the console
 * writer thread, claims the COM1 ports on h->pio, watches stdin and a
 * wake-up eventfd on h->loop and joins h's device list.  Afterwards:
 *   - vCPU threads access the UART through the bus; its interrupt goes to
 *     dev_host_irq_line(h, COM1 IRQ, level);
 *   - guest output never waits for the console's reader: it is buffered
 *     and written by the writer thread (a stalled reader costs dropped
 *     bytes and one warning);
 *   - with CONSOLE_STDIO, input is read on h->loop's thread only while the
 *     UART has room, and a terminal on stdin is put in raw mode (restored
 *     at destroy, or at exit);
 *   - reset (guest reboot) resets the UART; buffered output carries on;
 *   - destroy writes out what is buffered, ends the writer and frees all.
 * There is one console: at most one serial device per process.
 */
#ifndef MINIVMM_DEVICES_SERIAL_H
#define MINIVMM_DEVICES_SERIAL_H

#include <stddef.h>

struct dev_host;

enum console_mode {
    CONSOLE_STDIO, /* guest serial output to stdout, stdin to the guest */
    CONSOLE_NONE,  /* output discarded, no input */
    CONSOLE_FILE,  /* output appended to console_path, no input */
};

/* What the serial device is configured with (--console). */
struct serial_options {
    enum console_mode console;
    const char *console_path; /* CONSOLE_FILE only */
};

/*
 * Create the console on h with options o (read only during the call).
 * Returns 0, or -1 with a one-line reason in err.
 */
int serial_create(const struct dev_host *h, const struct serial_options *o, char *err,
                  size_t errlen);

/*
 * Put a terminal on stdin back in the mode it had before raw mode (nothing
 * if it was not changed).  Async-signal-safe: for a fatal signal's handler.
 */
void serial_restore_terminal(void);

#endif
