/*
 * uart16550.c - register model of a 16550A UART.  Contract and model
 * decisions: uart16550.h.
 *
 * Every public entry point takes u->lock, does its work through the small
 * helpers below (which all expect the lock held), and ends with
 * uart16550_sync(): that recomputes the interrupt line and tells the owner
 * when room for input appeared, so no register handler has to remember to.
 */
#include "devices/uart16550.h"

#include <stdlib.h>

/* ---- receive FIFO ------------------------------------------------------ */

/* Bytes the RX FIFO holds in the current mode: 16, or 1 in 16450 mode. */
static unsigned uart16550_rx_capacity(const struct uart16550 *u)
{
    return (u->fcr & UART16550_FCR_ENABLE) ? UART16550_FIFO_LEN : 1;
}

static bool uart16550_rx_push(struct uart16550 *u, uint8_t byte)
{
    if (u->rx_count >= uart16550_rx_capacity(u))
        return false;
    u->rx_fifo[(u->rx_head + u->rx_count) % UART16550_FIFO_LEN] = byte;
    u->rx_count++;
    return true;
}

/* Pop the oldest byte; an empty FIFO reads as 0. */
static uint8_t uart16550_rx_pop(struct uart16550 *u)
{
    uint8_t byte;

    if (u->rx_count == 0)
        return 0;
    byte = u->rx_fifo[u->rx_head];
    u->rx_head = (u->rx_head + 1) % UART16550_FIFO_LEN;
    u->rx_count--;
    return byte;
}

static void uart16550_rx_clear(struct uart16550 *u)
{
    u->rx_head = 0;
    u->rx_count = 0;
}

/* Is the receiver connected to the host and driven by interrupts?  See the header. */
static bool uart16550_rx_enabled(const struct uart16550 *u)
{
    return (u->ier & UART16550_IER_RDI) && (u->mcr & UART16550_MCR_OUT2) &&
           !(u->mcr & UART16550_MCR_LOOP);
}

static size_t uart16550_rx_room_locked(const struct uart16550 *u)
{
    unsigned cap = uart16550_rx_capacity(u);

    if (!uart16550_rx_enabled(u) || u->rx_count >= cap)
        return 0;
    return cap - u->rx_count;
}

/* ---- modem status ------------------------------------------------------ */

/* MSR bits 4-7: the modem inputs, or in loopback the MCR outputs mapped onto them. */
static uint8_t uart16550_modem_lines(uint8_t mcr)
{
    uint8_t lines = 0;

    if (!(mcr & UART16550_MCR_LOOP))
        return UART16550_MSR_CTS | UART16550_MSR_DSR | UART16550_MSR_DCD;
    if (mcr & UART16550_MCR_DTR)
        lines |= UART16550_MSR_DSR;
    if (mcr & UART16550_MCR_RTS)
        lines |= UART16550_MSR_CTS;
    if (mcr & UART16550_MCR_OUT1)
        lines |= UART16550_MSR_RI;
    if (mcr & UART16550_MCR_OUT2)
        lines |= UART16550_MSR_DCD;
    return lines;
}

/* Latch the MSR delta bits for a change of the modem lines from before to after. */
static void uart16550_modem_delta(struct uart16550 *u, uint8_t before, uint8_t after)
{
    uint8_t changed = before ^ after;

    if (changed & UART16550_MSR_CTS)
        u->msr_delta |= UART16550_MSR_DCTS;
    if (changed & UART16550_MSR_DSR)
        u->msr_delta |= UART16550_MSR_DDSR;
    if ((before & UART16550_MSR_RI) && !(after & UART16550_MSR_RI))
        u->msr_delta |= UART16550_MSR_TERI;
    if (changed & UART16550_MSR_DCD)
        u->msr_delta |= UART16550_MSR_DDCD;
}

/* ---- interrupts -------------------------------------------------------- */

/* The highest-priority pending and enabled interrupt, as IIR bits 0-3. */
static uint8_t uart16550_pending_id(const struct uart16550 *u)
{
    if ((u->ier & UART16550_IER_RLSI) && u->lsr_err)
        return UART16550_IIR_RLSI;
    if ((u->ier & UART16550_IER_RDI) && u->rx_count > 0)
        return UART16550_IIR_RDI;
    if ((u->ier & UART16550_IER_THRI) && u->thre_pending)
        return UART16550_IIR_THRI;
    if ((u->ier & UART16550_IER_MSI) && u->msr_delta)
        return UART16550_IIR_MSI;
    return UART16550_IIR_NO_INT;
}

/* The interrupt line: a pending interrupt, gated by OUT2 and loopback (PC wiring). */
static bool uart16550_irq_wanted(const struct uart16550 *u)
{
    if (!(u->mcr & UART16550_MCR_OUT2) || (u->mcr & UART16550_MCR_LOOP))
        return false;
    return uart16550_pending_id(u) != UART16550_IIR_NO_INT;
}

/*
 * End of every state change: drive the line if its level changed, and call
 * rx_ready if room for input appeared (room_before was 0 and is not now).
 */
static void uart16550_sync(struct uart16550 *u, size_t room_before)
{
    bool level = uart16550_irq_wanted(u);

    if (level != u->irq_level) {
        u->irq_level = level;
        if (u->ops.set_irq)
            u->ops.set_irq(u->ctx, level);
    }
    if (room_before == 0 && uart16550_rx_room_locked(u) > 0 && u->ops.rx_ready)
        u->ops.rx_ready(u->ctx);
}

/* ---- register reads ---------------------------------------------------- */

static uint8_t uart16550_read_iir(struct uart16550 *u)
{
    uint8_t id = uart16550_pending_id(u);
    uint8_t fifo = (u->fcr & UART16550_FCR_ENABLE) ? UART16550_IIR_FIFO_ON : 0;

    /* Reading IIR while it reports THRE acknowledges that interrupt. */
    if (id == UART16550_IIR_THRI)
        u->thre_pending = false;
    return fifo | id;
}

static uint8_t uart16550_read_lsr(struct uart16550 *u)
{
    uint8_t lsr = UART16550_LSR_THRE | UART16550_LSR_TEMT | u->lsr_err;

    if (u->rx_count > 0)
        lsr |= UART16550_LSR_DR;
    u->lsr_err = 0;
    return lsr;
}

static uint8_t uart16550_read_msr(struct uart16550 *u)
{
    uint8_t msr = uart16550_modem_lines(u->mcr) | u->msr_delta;

    u->msr_delta = 0;
    return msr;
}

static uint8_t uart16550_read_locked(struct uart16550 *u, unsigned reg)
{
    bool dlab = u->lcr & UART16550_LCR_DLAB;

    switch (reg) {
    case UART16550_RBR:
        return dlab ? u->dll : uart16550_rx_pop(u);
    case UART16550_IER:
        return dlab ? u->dlm : u->ier;
    case UART16550_IIR:
        return uart16550_read_iir(u);
    case UART16550_LCR:
        return u->lcr;
    case UART16550_MCR:
        return u->mcr;
    case UART16550_LSR:
        return uart16550_read_lsr(u);
    case UART16550_MSR:
        return uart16550_read_msr(u);
    case UART16550_SCR:
        return u->scr;
    default:
        return 0xff;
    }
}

/* ---- register writes --------------------------------------------------- */

/* Transmission is instantaneous: THR is empty again at once, which re-arms THRE. */
static void uart16550_write_thr(struct uart16550 *u, uint8_t byte)
{
    if (u->mcr & UART16550_MCR_LOOP) {
        if (!uart16550_rx_push(u, byte))
            u->lsr_err |= UART16550_LSR_OE;
    } else if (u->ops.transmit) {
        u->ops.transmit(u->ctx, byte);
    }
    u->thre_pending = true;
}

static void uart16550_write_ier(struct uart16550 *u, uint8_t value)
{
    uint8_t old = u->ier;

    u->ier = value & UART16550_IER_MASK;
    /* Enabling THRI while THR is empty (always) raises THRE, even if an IIR read acked it. */
    if ((u->ier & UART16550_IER_THRI) && !(old & UART16550_IER_THRI))
        u->thre_pending = true;
}

static void uart16550_write_fcr(struct uart16550 *u, uint8_t value)
{
    if (value & UART16550_FCR_CLEAR_RX)
        uart16550_rx_clear(u);
    /* CLEAR_TX: the TX FIFO is always empty; nothing to do. */
    u->fcr = value & UART16550_FCR_STORE_MASK;
}

static void uart16550_write_mcr(struct uart16550 *u, uint8_t value)
{
    uint8_t old_lines = uart16550_modem_lines(u->mcr);

    u->mcr = value & UART16550_MCR_MASK;
    uart16550_modem_delta(u, old_lines, uart16550_modem_lines(u->mcr));
}

static void uart16550_write_locked(struct uart16550 *u, unsigned reg, uint8_t value)
{
    bool dlab = u->lcr & UART16550_LCR_DLAB;

    switch (reg) {
    case UART16550_THR:
        if (dlab)
            u->dll = value;
        else
            uart16550_write_thr(u, value);
        break;
    case UART16550_IER:
        if (dlab)
            u->dlm = value;
        else
            uart16550_write_ier(u, value);
        break;
    case UART16550_FCR:
        uart16550_write_fcr(u, value);
        break;
    case UART16550_LCR:
        u->lcr = value;
        break;
    case UART16550_MCR:
        uart16550_write_mcr(u, value);
        break;
    case UART16550_SCR:
        u->scr = value;
        break;
    default: /* LSR, MSR (factory test on real chips), out of range */
        break;
    }
}

/* ---- public API -------------------------------------------------------- */

/* Power-on register values; leaves irq_level, ops and ctx alone. */
static void uart16550_power_on(struct uart16550 *u)
{
    u->ier = 0;
    u->fcr = 0;
    u->lcr = 0;
    u->mcr = 0;
    u->lsr_err = 0;
    u->msr_delta = 0;
    u->scr = 0;
    u->dll = UART16550_RESET_DIVISOR & 0xff;
    u->dlm = UART16550_RESET_DIVISOR >> 8;
    u->thre_pending = false;
    uart16550_rx_clear(u);
}

void uart16550_init(struct uart16550 *u, const struct uart16550_ops *ops, void *ctx)
{
    if (pthread_mutex_init(&u->lock, NULL) != 0)
        abort();
    if (ops)
        u->ops = *ops;
    else
        u->ops = (struct uart16550_ops){0};
    u->ctx = ctx;
    u->irq_level = false;
    uart16550_power_on(u);
}

void uart16550_reset(struct uart16550 *u)
{
    pthread_mutex_lock(&u->lock);
    uart16550_power_on(u);
    uart16550_sync(u, 0); /* room is 0 after reset: rx_ready is never called here */
    pthread_mutex_unlock(&u->lock);
}

uint8_t uart16550_read(struct uart16550 *u, unsigned reg)
{
    uint8_t value;
    size_t room;

    pthread_mutex_lock(&u->lock);
    room = uart16550_rx_room_locked(u);
    value = uart16550_read_locked(u, reg);
    uart16550_sync(u, room);
    pthread_mutex_unlock(&u->lock);
    return value;
}

void uart16550_write(struct uart16550 *u, unsigned reg, uint8_t value)
{
    size_t room;

    pthread_mutex_lock(&u->lock);
    room = uart16550_rx_room_locked(u);
    uart16550_write_locked(u, reg, value);
    uart16550_sync(u, room);
    pthread_mutex_unlock(&u->lock);
}

size_t uart16550_receive(struct uart16550 *u, const uint8_t *buf, size_t len)
{
    size_t room, n;

    pthread_mutex_lock(&u->lock);
    room = uart16550_rx_room_locked(u);
    for (n = 0; n < len && n < room; n++)
        uart16550_rx_push(u, buf[n]);
    uart16550_sync(u, room);
    pthread_mutex_unlock(&u->lock);
    return n;
}

size_t uart16550_rx_room(struct uart16550 *u)
{
    size_t room;

    pthread_mutex_lock(&u->lock);
    room = uart16550_rx_room_locked(u);
    pthread_mutex_unlock(&u->lock);
    return room;
}

bool uart16550_irq_level(struct uart16550 *u)
{
    bool level;

    pthread_mutex_lock(&u->lock);
    level = u->irq_level;
    pthread_mutex_unlock(&u->lock);
    return level;
}

void uart16550_destroy(struct uart16550 *u)
{
    pthread_mutex_destroy(&u->lock);
}
