/*
 * uart16550.h - register model of a National Semiconductor 16550A UART.
 *
 * A pure model: no KVM, no file descriptors, no timers.  The owner (the
 * serial-console device) forwards the guest's port I/O to
 * uart16550_read() / uart16550_write(), feeds host input in with
 * uart16550_receive(), and learns about everything else through three
 * callbacks: the interrupt line, transmitted bytes, and "room for input".
 *
 * Linux's 8250 driver detects the model as a 16550A: IER keeps bits 0-3 and
 * reads 0 in bits 4-7, loopback maps MCR to MSR, FCR bit 0 sets IIR bits 6-7,
 * IIR bits 4-5 always read 0 and reg 2 is never an EFR (so no 16650/16750/
 * NS16550A/XScale match), and the loopback FIFO holds 16 bytes.
 *
 * Model decisions (see uart16550.c for the details):
 *   - Transmission is instantaneous: every THR write goes straight to
 *     ops->transmit (or, in loopback, into the RX FIFO), so LSR.THRE and
 *     LSR.TEMT are always set and the THRE interrupt re-arms at once.
 *   - The interrupt line is asserted while IIR reports a pending, enabled
 *     interrupt AND MCR.OUT2 is set AND MCR.LOOP is clear.  This is the PC
 *     wiring: the OUT2 pin enables the IRQ driver on the board, and loopback
 *     forces the modem outputs (so OUT2) inactive.  Linux's 8250 driver sets
 *     OUT2 (TIOCM_OUT2) whenever the port has an IRQ, so it gets interrupts.
 *   - Host input is accepted only while reception is interrupt-driven:
 *     IER.RDI and MCR.OUT2 set, MCR.LOOP clear, and room in the FIFO.  Linux
 *     sets OUT2 and IER.RDI only while the tty is open, so input typed before
 *     that waits in the host (pipe) instead of being thrown away by the FIFO
 *     clears of autoconfig and port start-up (autoconfig briefly writes
 *     IER = 0x0f, but with OUT2 clear).  A guest that polls LSR.DR without
 *     enabling interrupts (kgdb, an IRQ-less port) gets no input.
 *   - The received-data interrupt is pending whenever the RX FIFO holds a
 *     byte: the FIFO trigger level and the character-timeout interrupt are
 *     not modelled, IIR reports "received data available" (0x4), never the
 *     timeout code (0xc).  The guest sees every byte at the first interrupt.
 *   - FIFOs are emptied only by FCR bits 1/2 (whatever bit 0 says) and by
 *     reset; toggling FCR bit 0 keeps the data (a real chip clears it).
 *     Linux enables the FIFO in set_termios() right after it enabled
 *     IER.RDI, so clearing there would lose input that arrived in between.  With FCR bit 0 clear
 * the RX "FIFO" accepts one byte (16450 mode).
 *   - No parity/framing errors or breaks.  LSR.OE is set only by a loopback
 *     byte that finds the RX FIFO full (host input is flow-controlled).
 *   - Outside loopback MSR reports CTS, DSR and DCD present, RI absent.
 *
 * Threads and locking:
 *   - uart16550_read()/_write() are called from vCPU threads, possibly two
 *     at once; uart16550_receive()/_rx_room() from the main thread's event
 *     loop; uart16550_reset() from whichever thread resets the machine;
 *     uart16550_irq_level() from any thread.  All are serialised by
 *     u->lock.
 *   - Every callback is invoked with u->lock held, on the thread that made
 *     the call that caused it.  A callback must not call back into this
 *     UART (it would deadlock) and should be quick: set_irq typically does
 *     KVM_IRQ_LINE, transmit buffers or writes the byte, rx_ready wakes the
 *     event loop (e.g. writes an eventfd) which then calls
 *     uart16550_receive() from its own thread.
 *   - uart16550_init() and _destroy() must not race with any other call.
 *
 * Ownership: the owner allocates struct uart16550 (usually embedded in its
 * device state) and keeps it alive from uart16550_init() to
 * uart16550_destroy().  The ops table is copied at init; ctx is passed to
 * every callback untouched and is never dereferenced here.
 */
#ifndef MINIVMM_DEVICES_UART16550_H
#define MINIVMM_DEVICES_UART16550_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART16550_NR_REGS  8  /* port offsets 0..7 from the base */
#define UART16550_FIFO_LEN 16 /* RX FIFO depth with FCR.ENABLE set */

/* Register offsets from the base port. */
#define UART16550_RBR 0 /* read, DLAB=0: receiver buffer */
#define UART16550_THR 0 /* write, DLAB=0: transmitter holding */
#define UART16550_DLL 0 /* DLAB=1: divisor latch, low byte */
#define UART16550_IER 1 /* DLAB=0: interrupt enable */
#define UART16550_DLM 1 /* DLAB=1: divisor latch, high byte */
#define UART16550_IIR 2 /* read: interrupt identification */
#define UART16550_FCR 2 /* write: FIFO control */
#define UART16550_LCR 3 /* line control */
#define UART16550_MCR 4 /* modem control */
#define UART16550_LSR 5 /* line status (writes ignored) */
#define UART16550_MSR 6 /* modem status (writes ignored) */
#define UART16550_SCR 7 /* scratch */

/* IER */
#define UART16550_IER_RDI  0x01 /* received data available */
#define UART16550_IER_THRI 0x02 /* transmitter holding register empty */
#define UART16550_IER_RLSI 0x04 /* receiver line status */
#define UART16550_IER_MSI  0x08 /* modem status */
#define UART16550_IER_MASK 0x0f /* bits 4-7 are reserved, read as 0 */

/* IIR */
#define UART16550_IIR_NO_INT  0x01 /* no interrupt pending */
#define UART16550_IIR_ID_MASK 0x0e
#define UART16550_IIR_MSI     0x00 /* modem status (lowest priority) */
#define UART16550_IIR_THRI    0x02 /* THR empty */
#define UART16550_IIR_RDI     0x04 /* received data available */
#define UART16550_IIR_RLSI    0x06 /* receiver line status (highest priority) */
#define UART16550_IIR_FIFO_ON 0xc0 /* FIFOs enabled (FCR bit 0) */

/* FCR (write-only) */
#define UART16550_FCR_ENABLE    0x01
#define UART16550_FCR_CLEAR_RX  0x02 /* self-clearing */
#define UART16550_FCR_CLEAR_TX  0x04 /* self-clearing */
#define UART16550_FCR_DMA_MODE  0x08
#define UART16550_FCR_TRIG_MASK 0xc0 /* RX trigger level: stored, not used */
#define UART16550_FCR_STORE_MASK                                                                   \
    (UART16550_FCR_ENABLE | UART16550_FCR_DMA_MODE | UART16550_FCR_TRIG_MASK)

/* LCR */
#define UART16550_LCR_WLEN_MASK 0x03
#define UART16550_LCR_STOP      0x04
#define UART16550_LCR_PARITY    0x08
#define UART16550_LCR_EPAR      0x10
#define UART16550_LCR_SPAR      0x20
#define UART16550_LCR_SBC       0x40 /* set break */
#define UART16550_LCR_DLAB      0x80 /* divisor latch access */

/* MCR */
#define UART16550_MCR_DTR  0x01
#define UART16550_MCR_RTS  0x02
#define UART16550_MCR_OUT1 0x04
#define UART16550_MCR_OUT2 0x08 /* PC: gates the interrupt line */
#define UART16550_MCR_LOOP 0x10
#define UART16550_MCR_MASK 0x1f /* bits 5-7 read as 0 on a 16550A */

/* LSR */
#define UART16550_LSR_DR     0x01 /* data ready */
#define UART16550_LSR_OE     0x02 /* overrun error */
#define UART16550_LSR_PE     0x04 /* parity error (never set) */
#define UART16550_LSR_FE     0x08 /* framing error (never set) */
#define UART16550_LSR_BI     0x10 /* break interrupt (never set) */
#define UART16550_LSR_THRE   0x20 /* THR empty (always set) */
#define UART16550_LSR_TEMT   0x40 /* transmitter empty (always set) */
#define UART16550_LSR_RXFERR 0x80 /* error in RX FIFO (never set) */
#define UART16550_LSR_ERRORS                                                                       \
    (UART16550_LSR_OE | UART16550_LSR_PE | UART16550_LSR_FE | UART16550_LSR_BI)

/* MSR */
#define UART16550_MSR_DCTS       0x01 /* delta CTS */
#define UART16550_MSR_DDSR       0x02 /* delta DSR */
#define UART16550_MSR_TERI       0x04 /* trailing edge of RI */
#define UART16550_MSR_DDCD       0x08 /* delta DCD */
#define UART16550_MSR_DELTA_MASK 0x0f
#define UART16550_MSR_CTS        0x10
#define UART16550_MSR_DSR        0x20
#define UART16550_MSR_RI         0x40
#define UART16550_MSR_DCD        0x80

/* Divisor latch after reset: 12, i.e. 9600 baud from the 1.8432 MHz clock. */
#define UART16550_RESET_DIVISOR 12

/* Callbacks; any may be NULL.  All run with the UART's lock held (see above). */
struct uart16550_ops {
    /* Drive the interrupt line; called only when the level changes. */
    void (*set_irq)(void *ctx, bool level);
    /* The guest wrote a byte to THR (not in loopback mode). */
    void (*transmit)(void *ctx, uint8_t byte);
    /*
     * The receiver can take input again: uart16550_rx_room() went from 0 to
     * non-zero (the guest read RBR, enabled IER.RDI or MCR.OUT2, left
     * loopback, cleared or enabled the FIFO).  Treat it as a level-triggered
     * wake-up: the owner may call uart16550_receive() later, from its own
     * thread, and should re-check uart16550_rx_room() there.
     */
    void (*rx_ready)(void *ctx);
};

/* All fields are private to uart16550.c; they are here only so it can be embedded. */
struct uart16550 {
    pthread_mutex_t lock;
    struct uart16550_ops ops;
    void *ctx;

    uint8_t ier; /* IER_MASK bits only */
    uint8_t fcr; /* FCR_STORE_MASK bits only */
    uint8_t lcr;
    uint8_t mcr;       /* MCR_MASK bits only */
    uint8_t lsr_err;   /* latched LSR error bits (LSR_ERRORS), cleared by reading LSR */
    uint8_t msr_delta; /* MSR_DELTA_MASK bits, cleared by reading MSR */
    uint8_t scr;
    uint8_t dll, dlm;
    bool thre_pending; /* THRE interrupt armed (cleared by an IIR read reporting it) */

    uint8_t rx_fifo[UART16550_FIFO_LEN];
    unsigned rx_head;  /* index of the oldest byte */
    unsigned rx_count; /* bytes in the FIFO */

    bool irq_level; /* last level passed to ops.set_irq */
};

/*
 * Initialise u in power-on state (irq low, FIFO empty) with the given
 * callbacks (copied; ops may be NULL for none) and ctx.  Calls no callback.
 * Returns nothing: the only failure, pthread_mutex_init, cannot happen for a
 * default mutex on Linux and aborts if it does.
 */
void uart16550_init(struct uart16550 *u, const struct uart16550_ops *ops, void *ctx);

/*
 * Return to power-on state (system reset): registers to their reset values,
 * FIFO empty, divisor UART16550_RESET_DIVISOR.  Calls set_irq(false) if the
 * line was high.  After reset the UART accepts no input until the guest
 * enables it again (IER.RDI and MCR.OUT2 are clear).
 */
void uart16550_reset(struct uart16550 *u);

/*
 * A guest read of the register at offset reg (0..7) from the base port, with
 * its side effects (RBR pops the FIFO, IIR clears a reported THRE interrupt,
 * LSR clears the error bits, MSR clears the delta bits).  Returns 0xff for
 * reg > 7.  May call set_irq and rx_ready.
 */
uint8_t uart16550_read(struct uart16550 *u, unsigned reg);

/*
 * A guest write of value to offset reg (0..7).  Writes to LSR, MSR and
 * reg > 7 are ignored.  May call set_irq, transmit and rx_ready.
 */
void uart16550_write(struct uart16550 *u, unsigned reg, uint8_t value);

/*
 * Input from the host: append up to len bytes of buf to the RX FIFO.
 * Returns the number of bytes accepted, from 0 (receiver disabled or FIFO
 * full: keep the input and wait for rx_ready) to len.  May call set_irq.
 */
size_t uart16550_receive(struct uart16550 *u, const uint8_t *buf, size_t len);

/* The number of bytes uart16550_receive() would accept now. */
size_t uart16550_rx_room(struct uart16550 *u);

/* The current level of the interrupt line (what set_irq was last told). */
bool uart16550_irq_level(struct uart16550 *u);

/* Release the lock.  No other call may be in progress or follow. */
void uart16550_destroy(struct uart16550 *u);

#endif
