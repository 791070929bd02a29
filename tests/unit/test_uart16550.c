/*
 * test_uart16550.c - unit tests of the 16550A register model: Linux 8250
 * autoconfig and start-up sequences, registers, interrupts, flow-controlled
 * input, reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/uart16550.h"

/* ---- fixture: a UART whose callbacks record what they were told -------- */

#define TX_MAX 4096

struct recorder {
    bool irq;      /* last level passed to set_irq */
    int irq_calls; /* set_irq calls */
    int irq_rises; /* set_irq(true) calls */
    uint8_t tx[TX_MAX];
    size_t ntx;
    int rx_ready_calls;
    pthread_mutex_t tx_lock; /* transmit may run on two threads (test_concurrent_writes) */
};

struct fixture {
    struct uart16550 u;
    struct recorder r;
};

static void fake_set_irq(void *ctx, bool level)
{
    struct recorder *r = ctx;

    /* The contract: set_irq is called only when the level changes. */
    assert_true(level != r->irq);
    r->irq = level;
    r->irq_calls++;
    if (level)
        r->irq_rises++;
}

static void fake_transmit(void *ctx, uint8_t byte)
{
    struct recorder *r = ctx;

    pthread_mutex_lock(&r->tx_lock);
    if (r->ntx < TX_MAX)
        r->tx[r->ntx] = byte;
    r->ntx++;
    pthread_mutex_unlock(&r->tx_lock);
}

static void fake_rx_ready(void *ctx)
{
    struct recorder *r = ctx;

    r->rx_ready_calls++;
}

static const struct uart16550_ops fake_ops = {
    .set_irq = fake_set_irq,
    .transmit = fake_transmit,
    .rx_ready = fake_rx_ready,
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f)
        return -1;
    pthread_mutex_init(&f->r.tx_lock, NULL);
    uart16550_init(&f->u, &fake_ops, &f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    uart16550_destroy(&f->u);
    pthread_mutex_destroy(&f->r.tx_lock);
    free(f);
    return 0;
}

static uint8_t rd(struct uart16550 *u, unsigned reg)
{
    return uart16550_read(u, reg);
}

static void wr(struct uart16550 *u, unsigned reg, uint8_t value)
{
    uart16550_write(u, reg, value);
}

/* Put the UART in the state Linux leaves it in with the tty open (FIFO on, RDI, OUT2). */
static void open_for_input(struct uart16550 *u)
{
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_MCR, UART16550_MCR_DTR | UART16550_MCR_RTS | UART16550_MCR_OUT2);
    wr(u, UART16550_IER, UART16550_IER_RDI | UART16550_IER_RLSI);
}

/* ---- the Linux 8250 probe, as drivers/tty/serial/8250 does it ----------- */

/* size_fifo(): count how many loopback bytes the RX FIFO keeps. */
static int linux_size_fifo(struct uart16550 *u)
{
    uint8_t old_lcr, old_fcr, old_mcr, old_dll, old_dlm;
    int count;

    old_lcr = rd(u, UART16550_LCR);
    wr(u, UART16550_LCR, 0);
    old_fcr = rd(u, UART16550_IIR); /* sic: reads IIR */
    old_mcr = rd(u, UART16550_MCR);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | UART16550_FCR_CLEAR_RX | UART16550_FCR_CLEAR_TX);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    old_dll = rd(u, UART16550_DLL);
    old_dlm = rd(u, UART16550_DLM);
    wr(u, UART16550_DLL, 1);
    wr(u, UART16550_DLM, 0);
    wr(u, UART16550_LCR, 0x03);
    for (count = 0; count < 256; count++)
        wr(u, UART16550_THR, (uint8_t)count);
    for (count = 0; (rd(u, UART16550_LSR) & UART16550_LSR_DR) && count < 256; count++)
        rd(u, UART16550_RBR);
    wr(u, UART16550_FCR, old_fcr);
    wr(u, UART16550_MCR, old_mcr);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    wr(u, UART16550_DLL, old_dll);
    wr(u, UART16550_DLM, old_dlm);
    wr(u, UART16550_LCR, old_lcr);
    return count;
}

/* autoconfig_16550a(): tell the 16550A from its EFR-bearing and 64-byte successors. */
static const char *linux_autoconfig_16550a(struct uart16550 *u)
{
    uint8_t status1, status2, iersave;

    wr(u, UART16550_LCR, 0x80); /* UART_LCR_CONF_MODE_A */
    if (rd(u, 2) == 0)          /* EFR */
        return "ST16650";
    wr(u, UART16550_LCR, 0xbf); /* UART_LCR_CONF_MODE_B */
    if (rd(u, 2) == 0)
        return "ST16650V2";

    wr(u, UART16550_LCR, 0);
    status1 = rd(u, UART16550_MCR);
    wr(u, UART16550_LCR, 0xe0);
    status2 = rd(u, 2); /* NatSemi EXCR1 */
    if (!((status2 ^ status1) & UART16550_MCR_LOOP)) {
        wr(u, UART16550_LCR, 0);
        wr(u, UART16550_MCR, status1 ^ UART16550_MCR_LOOP);
        wr(u, UART16550_LCR, 0xe0);
        status2 = rd(u, 2);
        wr(u, UART16550_LCR, 0);
        wr(u, UART16550_MCR, status1);
        if ((status2 ^ status1) & UART16550_MCR_LOOP)
            return "NS16550A";
    }

    wr(u, UART16550_LCR, 0);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | 0x20); /* UART_FCR7_64BYTE */
    status1 = rd(u, UART16550_IIR) >> 5;
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_LCR, 0x80);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | 0x20);
    status2 = rd(u, UART16550_IIR) >> 5;
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_LCR, 0);
    if (status1 == 6 && status2 == 7)
        return "TI16750";

    iersave = rd(u, UART16550_IER);
    wr(u, UART16550_IER, iersave & ~0x40); /* UART_IER_UUE */
    if (!(rd(u, UART16550_IER) & 0x40)) {
        wr(u, UART16550_IER, iersave | 0x40);
        if (rd(u, UART16550_IER) & 0x40)
            return "XScale";
    }
    wr(u, UART16550_IER, iersave);

    if (linux_size_fifo(u) == 64)
        return "U6_16550A";
    return "16550A";
}

static void linux_clear_fifos(struct uart16550 *u)
{
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | UART16550_FCR_CLEAR_RX | UART16550_FCR_CLEAR_TX);
    wr(u, UART16550_FCR, 0);
}

/* autoconfig(): returns the port type Linux would print ("is a 16550A"). */
static const char *linux_autoconfig(struct uart16550 *u)
{
    uint8_t scratch, scratch2, scratch3, save_mcr, save_lcr, status1;
    const char *type;

    scratch = rd(u, UART16550_IER);
    wr(u, UART16550_IER, 0);
    scratch2 = rd(u, UART16550_IER) & 0x0f;
    wr(u, UART16550_IER, 0x0f);
    scratch3 = rd(u, UART16550_IER) & 0x0f;
    wr(u, UART16550_IER, scratch);
    if (scratch2 != 0 || scratch3 != 0x0f)
        return "none: IER test failed";

    save_mcr = rd(u, UART16550_MCR);
    save_lcr = rd(u, UART16550_LCR);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | 0x0a);
    status1 = rd(u, UART16550_MSR) & 0xf0;
    wr(u, UART16550_MCR, save_mcr);
    if (status1 != 0x90)
        return "none: loopback test failed";

    wr(u, UART16550_LCR, 0xbf);
    wr(u, 2, 0); /* EFR */
    wr(u, UART16550_LCR, 0);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    switch (rd(u, UART16550_IIR) >> 6) {
    case 0:
        type = "8250/16450";
        break;
    case 1:
        type = "unknown";
        break;
    case 2:
        type = "16550";
        break;
    default:
        type = linux_autoconfig_16550a(u);
        break;
    }

    wr(u, UART16550_LCR, save_lcr);
    wr(u, UART16550_MCR, save_mcr);
    linux_clear_fifos(u);
    rd(u, UART16550_RBR);
    wr(u, UART16550_IER, 0);
    return type;
}

/* serial8250_do_startup() up to (not including) set_termios(). */
static void linux_startup(struct uart16550 *u)
{
    uint8_t iir1, iir, lsr;

    linux_clear_fifos(u);
    rd(u, UART16550_LSR);
    rd(u, UART16550_RBR);
    rd(u, UART16550_IIR);
    rd(u, UART16550_MSR);
    assert_int_not_equal(rd(u, UART16550_LSR), 0xff);

    /* THRE re-assertion test (UART_BUG_THRE). */
    wr(u, UART16550_IER, UART16550_IER_THRI);
    iir1 = rd(u, UART16550_IIR);
    wr(u, UART16550_IER, 0);
    wr(u, UART16550_IER, UART16550_IER_THRI);
    iir = rd(u, UART16550_IIR);
    wr(u, UART16550_IER, 0);
    assert_false(!(iir1 & UART16550_IIR_NO_INT) && (iir & UART16550_IIR_NO_INT));

    /* mctrl |= TIOCM_OUT2 (the port has an IRQ), plus DTR|RTS from the tty. */
    wr(u, UART16550_MCR, UART16550_MCR_DTR | UART16550_MCR_RTS | UART16550_MCR_OUT2);

    /* TX-enable test (UART_BUG_TXEN). */
    wr(u, UART16550_IER, UART16550_IER_THRI);
    lsr = rd(u, UART16550_LSR);
    iir = rd(u, UART16550_IIR);
    wr(u, UART16550_IER, 0);
    assert_false((lsr & UART16550_LSR_TEMT) && (iir & UART16550_IIR_NO_INT));

    rd(u, UART16550_LSR);
    rd(u, UART16550_RBR);
    rd(u, UART16550_IIR);
    rd(u, UART16550_MSR);
}

/* serial8250_interrupt()/handle_irq(): loop until IIR says nothing is pending. */
static size_t linux_isr(struct uart16550 *u, uint8_t *out, size_t max)
{
    size_t n = 0;
    int passes = 0;

    while (!(rd(u, UART16550_IIR) & UART16550_IIR_NO_INT)) {
        uint8_t lsr = rd(u, UART16550_LSR);

        assert_true(++passes < 512);
        while (lsr & UART16550_LSR_DR) {
            uint8_t byte = rd(u, UART16550_RBR);

            if (n < max)
                out[n] = byte;
            n++;
            lsr = rd(u, UART16550_LSR);
        }
        rd(u, UART16550_MSR);
        if (rd(u, UART16550_IER) & UART16550_IER_THRI) /* nothing to send: __stop_tx() */
            wr(u, UART16550_IER, rd(u, UART16550_IER) & ~UART16550_IER_THRI);
    }
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_power_on_state(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    assert_int_equal(rd(u, UART16550_IER), 0);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
    assert_int_equal(rd(u, UART16550_LCR), 0);
    assert_int_equal(rd(u, UART16550_MCR), 0);
    assert_int_equal(rd(u, UART16550_LSR), UART16550_LSR_THRE | UART16550_LSR_TEMT);
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_CTS | UART16550_MSR_DSR | UART16550_MSR_DCD);
    assert_int_equal(rd(u, UART16550_SCR), 0);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    assert_int_equal(rd(u, UART16550_DLL), UART16550_RESET_DIVISOR & 0xff);
    assert_int_equal(rd(u, UART16550_DLM), UART16550_RESET_DIVISOR >> 8);
    assert_false(uart16550_irq_level(u));
    assert_int_equal(uart16550_rx_room(u), 0);
    assert_int_equal(rd(u, 8), 0xff);
    assert_int_equal(f->r.irq_calls + f->r.rx_ready_calls + (int)f->r.ntx, 0);
}

static void test_linux_autoconfig_detects_16550a(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    assert_string_equal(linux_autoconfig(u), "16550A");
    /* The loopback bytes of size_fifo() never reach the host, no irq fired, no input let in. */
    assert_int_equal(f->r.ntx, 0);
    assert_int_equal(f->r.irq_calls, 0);
    assert_int_equal(f->r.rx_ready_calls, 0);
    /* autoconfig leaves MCR, LCR, IER as it found them, FIFOs off and empty. */
    assert_int_equal(rd(u, UART16550_MCR), 0);
    assert_int_equal(rd(u, UART16550_LCR), 0);
    assert_int_equal(rd(u, UART16550_IER), 0);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
    assert_int_equal(rd(u, UART16550_LSR) & UART16550_LSR_DR, 0);
}

static void test_linux_size_fifo_is_16(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    assert_int_equal(linux_size_fifo(u), UART16550_FIFO_LEN);
    /* Divisor restored, loopback left, nothing transmitted. */
    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    assert_int_equal(rd(u, UART16550_DLL), UART16550_RESET_DIVISOR);
    wr(u, UART16550_LCR, 0);
    assert_int_equal(rd(u, UART16550_MCR), 0);
    assert_int_equal(f->r.ntx, 0);
}

static void test_ier_keeps_low_nibble_only(void **state)
{
    struct fixture *f = *state;

    wr(&f->u, UART16550_IER, 0xff);
    assert_int_equal(rd(&f->u, UART16550_IER), 0x0f);
    wr(&f->u, UART16550_IER, 0x05);
    assert_int_equal(rd(&f->u, UART16550_IER), 0x05);
}

static void test_scratch_register(void **state)
{
    struct fixture *f = *state;

    wr(&f->u, UART16550_SCR, 0xa5);
    assert_int_equal(rd(&f->u, UART16550_SCR), 0xa5);
    wr(&f->u, UART16550_SCR, 0x5a);
    assert_int_equal(rd(&f->u, UART16550_SCR), 0x5a);
}

static void test_dlab_divisor(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_IER, UART16550_IER_RLSI);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB | 0x03);
    wr(u, UART16550_DLL, 0x01);
    wr(u, UART16550_DLM, 0x02);
    assert_int_equal(rd(u, UART16550_DLL), 0x01);
    assert_int_equal(rd(u, UART16550_DLM), 0x02);
    assert_int_equal(rd(u, UART16550_LCR), UART16550_LCR_DLAB | 0x03);
    assert_int_equal(f->r.ntx, 0); /* a DLL write is not a THR write */

    wr(u, UART16550_LCR, 0x03);
    assert_int_equal(rd(u, UART16550_IER), UART16550_IER_RLSI); /* DLM write left IER alone */
    wr(u, UART16550_THR, 'x');
    assert_int_equal(f->r.ntx, 1);
    assert_int_equal(f->r.tx[0], 'x');

    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    assert_int_equal(rd(u, UART16550_DLL), 0x01); /* THR write left DLL alone */
    assert_int_equal(rd(u, UART16550_DLM), 0x02);
}

static void test_transmit_bytes_in_order(void **state)
{
    struct fixture *f = *state;
    const char *msg = "Linux version";

    for (size_t i = 0; i < strlen(msg); i++) {
        assert_true(rd(&f->u, UART16550_LSR) & UART16550_LSR_THRE);
        wr(&f->u, UART16550_THR, (uint8_t)msg[i]);
    }
    assert_int_equal(f->r.ntx, strlen(msg));
    assert_memory_equal(f->r.tx, msg, strlen(msg));
}

static void test_thre_interrupt(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    assert_false(f->r.irq);

    /* Enabling THRI with THR empty asserts the interrupt. */
    wr(u, UART16550_IER, UART16550_IER_THRI);
    assert_true(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_THRI);

    /* That IIR read acknowledged it. */
    assert_false(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);

    /* A THR write re-arms it (transmission is instantaneous). */
    wr(u, UART16550_THR, 'a');
    assert_true(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_THRI);
    assert_false(f->r.irq);

    /* So does re-enabling THRI after disabling it. */
    wr(u, UART16550_IER, 0);
    wr(u, UART16550_IER, UART16550_IER_THRI);
    assert_true(f->r.irq);

    /* Disabling THRI drops the line; re-writing THRI while enabled does not re-arm. */
    wr(u, UART16550_IER, 0);
    assert_false(f->r.irq);
    wr(u, UART16550_IER, UART16550_IER_THRI);
    rd(u, UART16550_IIR);
    wr(u, UART16550_IER, UART16550_IER_THRI | UART16550_IER_MSI);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
    assert_int_equal(f->r.irq_rises, 4);
}

static void test_iir_fifo_bits_follow_fcr(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    assert_int_equal(rd(u, UART16550_IIR) & UART16550_IIR_FIFO_ON, 0);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | 0x80);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_NO_INT);
    wr(u, UART16550_FCR, 0);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
}

static void test_iir_priorities(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    uint8_t lsr;

    /* Loopback: overrun the FIFO (OE), leave data (DR), toggle DTR (MSR delta). */
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP);
    for (int i = 0; i < UART16550_FIFO_LEN + 1; i++)
        wr(u, UART16550_THR, (uint8_t)i);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | UART16550_MCR_DTR);
    wr(u, UART16550_IER, UART16550_IER_MASK);

    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_RLSI);
    lsr = rd(u, UART16550_LSR); /* clears OE */
    assert_true(lsr & UART16550_LSR_OE);
    assert_true(lsr & UART16550_LSR_DR);
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_OE);

    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_RDI);
    /* RDA does not ack THRE: still there after the data is gone. */
    for (int i = 0; i < UART16550_FIFO_LEN; i++)
        assert_int_equal(rd(u, UART16550_RBR), i); /* byte 16 was the overrun one */
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);

    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_THRI);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_MSI);
    assert_true(rd(u, UART16550_MSR) & UART16550_MSR_DDSR); /* clears the delta */
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_NO_INT);
    /* All this in loopback: the line stayed low. */
    assert_int_equal(f->r.irq_calls, 0);
}

static void test_msr_loopback_mapping(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_MCR, UART16550_MCR_LOOP);
    /* Leaving the modem lines CTS|DSR|DCD for all-zero outputs: deltas for each. */
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_DCTS | UART16550_MSR_DDSR | UART16550_MSR_DDCD);
    assert_int_equal(rd(u, UART16550_MSR), 0);

    wr(u, UART16550_MCR, UART16550_MCR_LOOP | UART16550_MCR_DTR);
    assert_int_equal(rd(u, UART16550_MSR), UART16550_MSR_DSR | UART16550_MSR_DDSR);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | UART16550_MCR_RTS);
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_CTS | UART16550_MSR_DCTS | UART16550_MSR_DDSR);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | UART16550_MCR_OUT1);
    /* RI rising is not a TERI event. */
    assert_int_equal(rd(u, UART16550_MSR), UART16550_MSR_RI | UART16550_MSR_DCTS);
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | UART16550_MCR_OUT2);
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_DCD | UART16550_MSR_TERI | UART16550_MSR_DDCD);

    /* Linux's loopback test: MCR = LOOP|OUT2|RTS must read CTS|DCD. */
    wr(u, UART16550_MCR, UART16550_MCR_LOOP | 0x0a);
    assert_int_equal(rd(u, UART16550_MSR) & 0xf0, 0x90);
    assert_int_equal(rd(u, UART16550_MCR), UART16550_MCR_LOOP | 0x0a);
    wr(u, UART16550_MCR, 0xff);
    assert_int_equal(rd(u, UART16550_MCR), UART16550_MCR_MASK);
    assert_int_equal(rd(u, UART16550_MSR) & 0xf0, 0xf0);

    wr(u, UART16550_MCR, 0);
    assert_int_equal(rd(u, UART16550_MSR) & 0xf0,
                     UART16550_MSR_CTS | UART16550_MSR_DSR | UART16550_MSR_DCD);
}

static void test_modem_status_interrupt(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    wr(u, UART16550_IER, UART16550_IER_MSI);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
    /* Enter and leave loopback: the lines change, MSI is pending after we leave. */
    wr(u, UART16550_MCR, UART16550_MCR_OUT2 | UART16550_MCR_LOOP);
    assert_false(f->r.irq); /* gated while in loopback */
    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    assert_true(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_MSI);
    rd(u, UART16550_MSR);
    assert_false(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
}

static void test_loopback_does_not_transmit(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_MCR, UART16550_MCR_LOOP);
    wr(u, UART16550_THR, 0x42);
    assert_int_equal(f->r.ntx, 0);
    assert_true(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_int_equal(rd(u, UART16550_RBR), 0x42);
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    /* 16450 mode (FIFO off): a second byte overruns the one-byte buffer. */
    wr(u, UART16550_THR, 1);
    wr(u, UART16550_THR, 2);
    assert_int_equal(rd(u, UART16550_LSR),
                     UART16550_LSR_THRE | UART16550_LSR_TEMT | UART16550_LSR_DR | UART16550_LSR_OE);
    assert_int_equal(rd(u, UART16550_RBR), 1);
    wr(u, UART16550_MCR, 0);
    wr(u, UART16550_THR, 3);
    assert_int_equal(f->r.ntx, 1);
    assert_int_equal(f->r.tx[0], 3);
}

static void test_rx_refused_until_enabled(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    const uint8_t in[] = "ls\n";

    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    assert_int_equal(uart16550_rx_room(u), 0);
    assert_int_equal(uart16550_receive(u, in, 3), 0);
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_int_equal(f->r.rx_ready_calls, 0);

    wr(u, UART16550_IER, UART16550_IER_RDI);
    assert_int_equal(f->r.rx_ready_calls, 1);
    assert_int_equal(uart16550_rx_room(u), UART16550_FIFO_LEN);
    assert_int_equal(uart16550_receive(u, in, 3), 3);
    assert_true(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_RDI);
    assert_true(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_int_equal(rd(u, UART16550_RBR), 'l');
    assert_int_equal(rd(u, UART16550_RBR), 's');
    assert_true(f->r.irq);
    assert_int_equal(rd(u, UART16550_RBR), '\n');
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_false(f->r.irq);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_FIFO_ON | UART16550_IIR_NO_INT);
    /* Room never dropped to 0, so no further rx_ready. */
    assert_int_equal(f->r.rx_ready_calls, 1);

    /* Disabling RDI closes the receiver again. */
    wr(u, UART16550_IER, 0);
    assert_int_equal(uart16550_receive(u, in, 3), 0);
}

static void test_rx_refused_without_out2_or_in_loopback(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    const uint8_t in[] = "x";

    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_IER, UART16550_IER_MASK); /* what autoconfig's IER test writes */
    assert_int_equal(uart16550_rx_room(u), 0);
    assert_int_equal(uart16550_receive(u, in, 1), 0);
    assert_int_equal(f->r.rx_ready_calls, 0);

    wr(u, UART16550_MCR, UART16550_MCR_OUT2 | UART16550_MCR_LOOP);
    assert_int_equal(uart16550_receive(u, in, 1), 0);
    assert_int_equal(f->r.rx_ready_calls, 0);

    wr(u, UART16550_MCR, UART16550_MCR_OUT2); /* leaving loopback opens it */
    assert_int_equal(f->r.rx_ready_calls, 1);
    assert_int_equal(uart16550_receive(u, in, 1), 1);
}

static void test_rx_fifo_full_and_rx_ready(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    uint8_t in[40];

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)('a' + i);
    open_for_input(u);
    assert_int_equal(f->r.rx_ready_calls, 1);

    assert_int_equal(uart16550_receive(u, in, 10), 10);
    assert_int_equal(uart16550_rx_room(u), UART16550_FIFO_LEN - 10);
    assert_int_equal(uart16550_receive(u, in + 10, 30), UART16550_FIFO_LEN - 10);
    assert_int_equal(uart16550_rx_room(u), 0);
    assert_int_equal(uart16550_receive(u, in + 16, 24), 0);
    assert_int_equal(f->r.rx_ready_calls, 1);

    /* Reading one byte makes room: rx_ready, once. */
    assert_int_equal(rd(u, UART16550_RBR), 'a');
    assert_int_equal(f->r.rx_ready_calls, 2);
    assert_int_equal(uart16550_rx_room(u), 1);
    assert_int_equal(rd(u, UART16550_RBR), 'b');
    assert_int_equal(f->r.rx_ready_calls, 2);
    assert_int_equal(uart16550_receive(u, in + 16, 24), 2);

    /* Everything comes out in order, and no overrun was reported. */
    for (int i = 2; i < 18; i++)
        assert_int_equal(rd(u, UART16550_RBR), 'a' + i);
    assert_int_equal(rd(u, UART16550_LSR), UART16550_LSR_THRE | UART16550_LSR_TEMT);
    assert_int_equal(uart16550_rx_room(u), UART16550_FIFO_LEN);
}

static void test_rx_16450_mode_holds_one_byte(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    const uint8_t in[] = "abc";

    open_for_input(u);
    wr(u, UART16550_FCR, 0);
    assert_int_equal(uart16550_rx_room(u), 1);
    assert_int_equal(uart16550_receive(u, in, 3), 1);
    assert_int_equal(uart16550_rx_room(u), 0);
    /* Enabling the FIFO keeps the byte and makes room (rx_ready). */
    int before = f->r.rx_ready_calls;
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    assert_int_equal(f->r.rx_ready_calls, before + 1);
    assert_int_equal(uart16550_rx_room(u), UART16550_FIFO_LEN - 1);
    assert_int_equal(rd(u, UART16550_RBR), 'a');
}

static void test_fcr_clear(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    uint8_t in[UART16550_FIFO_LEN];

    memset(in, 'z', sizeof(in));
    open_for_input(u);
    assert_int_equal(uart16550_receive(u, in, sizeof(in)), UART16550_FIFO_LEN);
    assert_true(f->r.irq);
    int before = f->r.rx_ready_calls;

    /* CLEAR_TX alone leaves the RX FIFO alone. */
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | UART16550_FCR_CLEAR_TX);
    assert_true(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_int_equal(f->r.rx_ready_calls, before);

    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | UART16550_FCR_CLEAR_RX);
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);
    assert_false(f->r.irq);
    assert_int_equal(f->r.rx_ready_calls, before + 1);
    assert_int_equal(uart16550_rx_room(u), UART16550_FIFO_LEN);
    /* The clear bits are self-clearing: the next write does not clear again. */
    assert_int_equal(uart16550_receive(u, in, 1), 1);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    assert_true(rd(u, UART16550_LSR) & UART16550_LSR_DR);
}

static void test_out2_gates_irq(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_IER, UART16550_IER_THRI);
    assert_false(f->r.irq); /* pending but OUT2 clear */
    assert_false(uart16550_irq_level(u));

    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    assert_true(f->r.irq);
    assert_true(uart16550_irq_level(u));
    wr(u, UART16550_MCR, UART16550_MCR_OUT2 | UART16550_MCR_DTR); /* no change, no call */
    assert_int_equal(f->r.irq_calls, 1);
    wr(u, UART16550_MCR, UART16550_MCR_OUT2 | UART16550_MCR_LOOP);
    assert_false(f->r.irq);
    wr(u, UART16550_MCR, UART16550_MCR_OUT2);
    assert_true(f->r.irq);
    wr(u, UART16550_MCR, UART16550_MCR_DTR | UART16550_MCR_RTS);
    assert_false(f->r.irq);
    /* The interrupt itself is still pending: IIR reports it regardless of OUT2. */
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_THRI);
    assert_int_equal(f->r.irq_calls, 4);
}

static void test_lsr_msr_writes_ignored(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;

    wr(u, UART16550_LSR, 0x1f);
    wr(u, UART16550_MSR, 0x0f);
    wr(u, 9, 0xff);
    assert_int_equal(rd(u, UART16550_LSR), UART16550_LSR_THRE | UART16550_LSR_TEMT);
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_CTS | UART16550_MSR_DSR | UART16550_MSR_DCD);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    const uint8_t in[] = "hello";

    open_for_input(u);
    wr(u, UART16550_SCR, 0x77);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB | 0x03);
    wr(u, UART16550_DLL, 1);
    wr(u, UART16550_LCR, 0x03);
    assert_int_equal(uart16550_receive(u, in, 5), 5);
    assert_true(f->r.irq);
    int ready = f->r.rx_ready_calls;

    uart16550_reset(u);
    assert_false(f->r.irq);
    assert_false(uart16550_irq_level(u));
    assert_int_equal(f->r.rx_ready_calls, ready);
    assert_int_equal(rd(u, UART16550_IER), 0);
    assert_int_equal(rd(u, UART16550_IIR), UART16550_IIR_NO_INT);
    assert_int_equal(rd(u, UART16550_LCR), 0);
    assert_int_equal(rd(u, UART16550_MCR), 0);
    assert_int_equal(rd(u, UART16550_LSR), UART16550_LSR_THRE | UART16550_LSR_TEMT);
    assert_int_equal(rd(u, UART16550_MSR),
                     UART16550_MSR_CTS | UART16550_MSR_DSR | UART16550_MSR_DCD);
    assert_int_equal(rd(u, UART16550_SCR), 0);
    assert_int_equal(uart16550_rx_room(u), 0);
    wr(u, UART16550_LCR, UART16550_LCR_DLAB);
    assert_int_equal(rd(u, UART16550_DLL), UART16550_RESET_DIVISOR);
    wr(u, UART16550_LCR, 0);

    /* Reset with the line already low calls nothing. */
    int calls = f->r.irq_calls;
    uart16550_reset(u);
    assert_int_equal(f->r.irq_calls, calls);
    /* The old input is gone even after re-enabling. */
    open_for_input(u);
    assert_false(rd(u, UART16550_LSR) & UART16550_LSR_DR);
}

static void test_null_ops(void **state)
{
    struct uart16550 u;
    const uint8_t in[] = "q";

    (void)state;
    uart16550_init(&u, NULL, NULL);
    open_for_input(&u);
    wr(&u, UART16550_IER, UART16550_IER_MASK);
    wr(&u, UART16550_THR, 'a');
    assert_int_equal(uart16550_receive(&u, in, 1), 1);
    assert_true(uart16550_irq_level(&u));
    assert_int_equal(rd(&u, UART16550_RBR), 'q');
    uart16550_reset(&u);
    assert_false(uart16550_irq_level(&u));
    uart16550_destroy(&u);
}

/*
 * Boot to shell as Linux does it: autoconfig, then at open startup() and
 * set_termios(), with host input typed before the tty was open and a byte
 * that arrives between set_termios()'s IER write and its FIFO enable.  Every
 * byte must reach the guest, in order.
 */
static size_t pump_host(struct uart16550 *u, const uint8_t *buf, size_t len, size_t *pos)
{
    size_t n = uart16550_receive(u, buf + *pos, len - *pos);

    *pos += n;
    return n;
}

static void test_linux_boot_receives_every_byte(void **state)
{
    struct fixture *f = *state;
    struct uart16550 *u = &f->u;
    const char *typed = "echo hello from the host; read line; echo $line "
                        "-- a second line long enough to fill the FIFO several times over\n";
    const size_t len = strlen(typed);
    const uint8_t *in = (const uint8_t *)typed;
    uint8_t got[256];
    size_t pos = 0, ngot = 0;

    assert_string_equal(linux_autoconfig(u), "16550A");
    assert_int_equal(pump_host(u, in, len, &pos), 0);
    linux_startup(u);
    assert_int_equal(pump_host(u, in, len, &pos), 0);
    assert_int_equal(f->r.rx_ready_calls, 0); /* nothing opened the receiver yet */

    /* set_termios(): IER first ... */
    wr(u, UART16550_IER, UART16550_IER_RLSI | UART16550_IER_RDI);
    assert_int_equal(f->r.rx_ready_calls, 1);
    assert_int_equal(pump_host(u, in, len, &pos), 1); /* 16450 mode: one byte */
    /* ... then divisor, LCR, FIFO enable (two steps), MCR. */
    wr(u, UART16550_LCR, UART16550_LCR_DLAB | 0x03);
    wr(u, UART16550_DLL, 1);
    wr(u, UART16550_DLM, 0);
    wr(u, UART16550_LCR, 0x03);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE);
    wr(u, UART16550_FCR, UART16550_FCR_ENABLE | 0x80); /* UART_FCR_R_TRIG_10 */
    wr(u, UART16550_MCR, UART16550_MCR_DTR | UART16550_MCR_RTS | UART16550_MCR_OUT2);
    assert_int_equal(f->r.rx_ready_calls, 2); /* the FIFO made room */

    /* Event loop: feed what fits, the guest takes interrupts, until all is in. */
    for (int rounds = 0; ngot < len; rounds++) {
        assert_true(rounds < 100);
        pump_host(u, in, len, &pos);
        assert_true(f->r.irq);
        ngot += linux_isr(u, got + ngot, sizeof(got) - ngot);
        assert_false(f->r.irq);
    }
    assert_int_equal(ngot, len);
    assert_memory_equal(got, typed, len);
    assert_int_equal(f->r.ntx, 0);
}

/* Two vCPU threads writing THR at once: nothing lost, no crash. */
struct writer_arg {
    struct uart16550 *u;
    uint8_t byte;
};

static void *writer_thread(void *p)
{
    struct writer_arg *a = p;

    for (int i = 0; i < 1000; i++) {
        wr(a->u, UART16550_THR, a->byte);
        rd(a->u, UART16550_LSR);
    }
    return NULL;
}

static void test_concurrent_writes(void **state)
{
    struct fixture *f = *state;
    struct writer_arg a = {&f->u, 'A'}, b = {&f->u, 'B'};
    pthread_t ta, tb;
    size_t na = 0, nb = 0;

    assert_int_equal(pthread_create(&ta, NULL, writer_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, writer_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(f->r.ntx, 2000);
    for (size_t i = 0; i < f->r.ntx; i++) {
        na += f->r.tx[i] == 'A';
        nb += f->r.tx[i] == 'B';
    }
    assert_int_equal(na, 1000);
    assert_int_equal(nb, 1000);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_power_on_state),
        T(test_linux_autoconfig_detects_16550a),
        T(test_linux_size_fifo_is_16),
        T(test_ier_keeps_low_nibble_only),
        T(test_scratch_register),
        T(test_dlab_divisor),
        T(test_transmit_bytes_in_order),
        T(test_thre_interrupt),
        T(test_iir_fifo_bits_follow_fcr),
        T(test_iir_priorities),
        T(test_msr_loopback_mapping),
        T(test_modem_status_interrupt),
        T(test_loopback_does_not_transmit),
        T(test_rx_refused_until_enabled),
        T(test_rx_refused_without_out2_or_in_loopback),
        T(test_rx_fifo_full_and_rx_ready),
        T(test_rx_16450_mode_holds_one_byte),
        T(test_fcr_clear),
        T(test_out2_gates_irq),
        T(test_lsr_msr_writes_ignored),
        T(test_reset),
        cmocka_unit_test(test_null_ops),
        T(test_linux_boot_receives_every_byte),
        T(test_concurrent_writes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
