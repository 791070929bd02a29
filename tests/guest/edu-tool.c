/*
 * edu-tool - drive QEMU's edu PCI device from guest userspace, through sysfs.
 *
 * The testbed's L2 initramfs carries it as /bin/edu-tool: a guest of minivmm
 * that was given an edu with VFIO passthrough checks with it that BAR0, INTx
 * and DMA work (and that DMA outside plugged memory does not).  It also runs
 * in the test host itself on an edu that no driver holds.
 *
 * usage: edu-tool id BDF             read the ID register (BAR0 offset 0)
 *        edu-tool irq BDF [COUNT]    raise and acknowledge COUNT (5) INTx
 *                                    interrupts through uio_pci_generic
 *        edu-tool dma BDF [BYTES]    DMA round trip RAM -> edu -> RAM (4000)
 *        edu-tool dma-to BDF GPA [BYTES]
 *                                    DMA BYTES (64) of 0xa5 from edu to GPA
 *        edu-tool dma-in BDF START END [BYTES]
 *                                    DMA round trip as dma (4000), between
 *                                    two pages in [START, END)
 *
 * dma-in checks DMA into a given range of guest-physical memory, such as
 * hot-plugged virtio-mem memory (which the guest onlines into ZONE_MOVABLE,
 * where user pages go first): it allocates locked anonymous memory in 16 MiB
 * batches, at most 512 MiB and never into the last 64 MiB of MemAvailable,
 * until /proc/self/pagemap shows two pages wholly inside the range.  Page A
 * gets a pattern that depends on its address, goes RAM A -> edu -> RAM B, and
 * B is compared with the pattern: "EDU-DMA-IN: ok BYTES bytes 0xA -> 0xB".
 *
 * Each subcommand prints one line on stdout, e.g. "EDU-ID: 0x010000ed",
 * "EDU-IRQ: 5 of 5", "EDU-DMA: ok 4000 bytes ...", "EDU-DMA-TO: done ...",
 * "EDU-DMA-IN: ok 4000 bytes 0x140002000 -> 0x140003000", and exits 0; on
 * failure it prints one line "edu-tool: SUBCOMMAND: reason" on stderr and
 * exits 1 (2 for a wrong command line).  Every wait is bounded.
 *
 * edu (QEMU hw/misc/edu.c, testbed.md section 6): BAR0 registers 0x00 ID,
 * 0x04 liveness (reads back the inverse), 0x24 interrupt status, 0x60 raise,
 * 0x64 acknowledge, 0x80 DMA source, 0x88 DMA destination, 0x90 DMA count,
 * 0x98 DMA command (bit 0 start/busy, bit 1 direction: 1 = edu to RAM); the
 * DMA buffer is at edu address 0x40000.  A DMA completes on a 100 ms timer; a
 * 4096-byte transfer aborts QEMU, so at most 4095 bytes are allowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8

#define REG_ID        0x00
#define REG_LIVENESS  0x04
#define REG_IRQ_STAT  0x24
#define REG_IRQ_RAISE 0x60
#define REG_IRQ_ACK   0x64
#define REG_DMA_SRC   0x80
#define REG_DMA_DST   0x88
#define REG_DMA_CNT   0x90
#define REG_DMA_CMD   0x98

#define DMA_START   0x1
#define DMA_TO_RAM  0x2
#define EDU_BUF     0x40000
#define EDU_BUF_MAX 4095 /* 4096 hits hw_error() in QEMU 7.2's edu */

#define PCI_COMMAND          0x04
#define PCI_CMD_MEMORY       0x0002
#define PCI_CMD_MASTER       0x0004
#define PCI_CMD_INTX_DISABLE 0x0400

#define PAGE 4096

/* Bounds of every wait, in milliseconds. */
#define DMA_TIMEOUT_MS      5000  /* one transfer; edu takes about 100 ms */
#define IRQ_TIMEOUT_MS      5000  /* one interrupt to reach /dev/uioN */
#define UIO_NODE_TIMEOUT_MS 5000  /* /dev/uioN to appear after binding */
#define MODPROBE_TIMEOUT_MS 30000 /* modprobe uio_pci_generic */

#define DMA_TO_PATTERN 0xa5

/* dma-in's search for pages in a range: batches of locked memory. */
#define HUNT_BATCH_MB    16
#define HUNT_MAX_BATCHES 32 /* 512 MiB */
#define HUNT_RESERVE_MB  64 /* of MemAvailable, left alone */

static const char *subcmd = "edu-tool";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edu-tool: %s: ", subcmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edu-tool: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (run edu-tool without arguments for the usage)\n");
    exit(2);
}

static const char usage_text[] =
    "usage: edu-tool id BDF             read edu's ID register through BAR0\n"
    "       edu-tool irq BDF [COUNT]    raise and acknowledge COUNT (5) interrupts (INTx,\n"
    "                                   through uio_pci_generic, which it binds)\n"
    "       edu-tool dma BDF [BYTES]    DMA round trip RAM -> edu -> RAM (4000 bytes)\n"
    "       edu-tool dma-to BDF GPA [BYTES]\n"
    "                                   DMA BYTES (64) of 0xa5 from edu to address GPA\n"
    "       edu-tool dma-in BDF START END [BYTES]\n"
    "                                   DMA round trip as dma (4000 bytes) between two\n"
    "                                   pages wholly in guest-physical [START, END)\n"
    "BDF is a PCI address such as 0000:00:03.0; BYTES at most 4095.  Run as root.\n";

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------ */
/* sysfs */

struct edu {
    char bdf[32];
    char dir[96];          /* /sys/bus/pci/devices/BDF */
    int cfg;               /* its config file, O_RDWR */
    volatile uint8_t *bar; /* BAR0, first page */
};

static int read_sysfs_hex(const char *path, unsigned long *val)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fscanf(f, "%lx", val) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

static int write_sysfs(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    int err = errno;
    close(fd);
    errno = err;
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* The driver DEV is bound to ("" if none). */
static void current_driver(const struct edu *e, char *name, size_t size)
{
    char path[128], target[PATH_MAX];
    snprintf(path, sizeof(path), "%s/driver", e->dir);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        name[0] = '\0';
        return;
    }
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t len = strnlen(base, size - 1);
    memcpy(name, base, len);
    name[len] = '\0';
}

static uint16_t cfg_read16(const struct edu *e, off_t off)
{
    uint16_t v;
    if (pread(e->cfg, &v, sizeof(v), off) != (ssize_t)sizeof(v))
        fail("reading config offset 0x%jx of %s: %s", (intmax_t)off, e->bdf, strerror(errno));
    return v;
}

static void cfg_write16(const struct edu *e, off_t off, uint16_t v)
{
    if (pwrite(e->cfg, &v, sizeof(v), off) != (ssize_t)sizeof(v))
        fail("writing config offset 0x%jx of %s: %s", (intmax_t)off, e->bdf, strerror(errno));
}

/* Set and clear bits of the command register; returns the new value. */
static uint16_t cfg_command(const struct edu *e, uint16_t set, uint16_t clear)
{
    uint16_t cmd = (uint16_t)((cfg_read16(e, PCI_COMMAND) | set) & ~clear);
    cfg_write16(e, PCI_COMMAND, cmd);
    return cfg_read16(e, PCI_COMMAND);
}

/* Find the device, check it is an edu, open its config space. */
static void edu_open(struct edu *e, const char *arg)
{
    unsigned dom = 0, bus, dev, fn;
    char end;
    if (sscanf(arg, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &end) != 4 &&
        (dom = 0, sscanf(arg, "%x:%x.%x%c", &bus, &dev, &fn, &end) != 3))
        usage_error("'%s' is not a PCI address: give it as 0000:00:03.0 or 00:03.0", arg);
    if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
        usage_error("'%s' is not a PCI address: give it as 0000:00:03.0 or 00:03.0", arg);
    snprintf(e->bdf, sizeof(e->bdf), "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    snprintf(e->dir, sizeof(e->dir), "/sys/bus/pci/devices/%s", e->bdf);

    char path[160];
    unsigned long vendor, device;
    snprintf(path, sizeof(path), "%s/vendor", e->dir);
    if (read_sysfs_hex(path, &vendor) != 0)
        fail("no PCI device %s (see lspci or /sys/bus/pci/devices)", e->bdf);
    snprintf(path, sizeof(path), "%s/device", e->dir);
    if (read_sysfs_hex(path, &device) != 0)
        fail("cannot read %s", path);
    if (vendor != EDU_VENDOR || device != EDU_DEVICE)
        fail("%s is %04lx:%04lx, not an edu (%04x:%04x): give an edu's address", e->bdf, vendor,
             device, EDU_VENDOR, EDU_DEVICE);

    snprintf(path, sizeof(path), "%s/config", e->dir);
    e->cfg = open(path, O_RDWR | O_CLOEXEC);
    if (e->cfg < 0)
        fail("open %s: %s%s", path, strerror(errno), errno == EACCES ? " (run as root)" : "");
    e->bar = NULL;
}

/* mmap the first page of BAR0 (the register file). */
static void edu_map_bar(struct edu *e)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/resource0", e->dir);
    int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        fail("open %s: %s%s", path, strerror(errno), errno == EACCES ? " (run as root)" : "");
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        char drv[64];
        current_driver(e, drv, sizeof(drv));
        if (drv[0])
            fail("mmap %s: %s (driver %s claims the BAR: unbind it with echo %s > "
                 "/sys/bus/pci/devices/%s/driver/unbind)",
                 path, strerror(err), drv, e->bdf, e->bdf);
        fail("mmap %s: %s", path, strerror(err));
    }
    e->bar = p;
}

static uint32_t rd32(const struct edu *e, unsigned off)
{
    return *(volatile uint32_t *)(e->bar + off);
}
static void wr32(const struct edu *e, unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(e->bar + off) = v;
}
static uint64_t rd64(const struct edu *e, unsigned off)
{
    return *(volatile uint64_t *)(e->bar + off);
}
static void wr64(const struct edu *e, unsigned off, uint64_t v)
{
    *(volatile uint64_t *)(e->bar + off) = v;
}

/* The BAR answers as an edu does: ID and liveness register. */
static uint32_t edu_check_alive(const struct edu *e)
{
    uint32_t id = rd32(e, REG_ID);
    if (id == 0xffffffff)
        fail("BAR0 of %s reads all ones (command register 0x%04x): the access did not reach "
             "the device",
             e->bdf, cfg_read16(e, PCI_COMMAND));
    wr32(e, REG_LIVENESS, 0x12345678);
    uint32_t live = rd32(e, REG_LIVENESS);
    if (live != ~0x12345678u)
        fail("liveness register of %s read 0x%08x after writing 0x12345678, expected 0x%08x: "
             "writes to BAR0 do not reach the device",
             e->bdf, live, ~0x12345678u);
    return id;
}

/* ------------------------------------------------------------------------ */
/* id */

static int cmd_id(struct edu *e)
{
    cfg_command(e, PCI_CMD_MEMORY | PCI_CMD_MASTER, 0);
    edu_map_bar(e);
    uint32_t id = edu_check_alive(e);
    printf("EDU-ID: 0x%08x\n", id);
    if ((id & 0xffff) != 0x00ed)
        fail("ID register of %s is 0x%08x, expected 0xMMmm00ed", e->bdf, id);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* irq */

/* Run modprobe MODULE, waiting at most MODPROBE_TIMEOUT_MS. */
static void modprobe(const char *module)
{
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        execlp("modprobe", "modprobe", module, (char *)NULL);
        fprintf(stderr, "edu-tool: exec modprobe: %s\n", strerror(errno));
        _exit(127);
    }
    uint64_t deadline = now_ms() + MODPROBE_TIMEOUT_MS;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            fail("waitpid: %s", strerror(errno));
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail("modprobe %s did not finish within %d s", module, MODPROBE_TIMEOUT_MS / 1000);
        }
        sleep_ms(10);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("modprobe %s failed (status 0x%x): the kernel needs it for INTx from userspace",
             module, status);
}

/* Bind E to uio_pci_generic (loading it if need be); returns the uio index. */
static int bind_uio(struct edu *e)
{
    const char *drvdir = "/sys/bus/pci/drivers/uio_pci_generic";
    struct stat st;
    if (stat(drvdir, &st) != 0)
        modprobe("uio_pci_generic");
    if (stat(drvdir, &st) != 0)
        fail("modprobe uio_pci_generic succeeded but %s does not exist", drvdir);

    char drv[64], path[192];
    current_driver(e, drv, sizeof(drv));
    if (drv[0] && strcmp(drv, "uio_pci_generic") != 0)
        fail("%s is bound to %s; unbind it first (echo %s > %s/driver/unbind)", e->bdf, drv, e->bdf,
             e->dir);
    if (!drv[0]) {
        /* driver_override binds this one device only (a new_id entry would
         * hand every unbound edu to uio_pci_generic) and also replaces an
         * earlier override such as the test host's "vfio-pci". */
        snprintf(path, sizeof(path), "%s/driver_override", e->dir);
        if (write_sysfs(path, "uio_pci_generic") != 0)
            fail("writing %s: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/bind", drvdir);
        if (write_sysfs(path, e->bdf) != 0)
            fail("binding %s to uio_pci_generic: %s (see dmesg)", e->bdf, strerror(errno));
    }

    /* /sys/bus/pci/devices/BDF/uio/uioN names the uio device. */
    char uiodir[160];
    snprintf(uiodir, sizeof(uiodir), "%s/uio", e->dir);
    int index = -1;
    for (int n = 0; n < 256 && index < 0; n++) {
        snprintf(path, sizeof(path), "%s/uio%d", uiodir, n);
        if (stat(path, &st) == 0)
            index = n;
    }
    if (index < 0)
        fail("%s is bound to uio_pci_generic but has no %s/uioN", e->bdf, uiodir);
    return index;
}

static int cmd_irq(struct edu *e, int count)
{
    int index = bind_uio(e);
    char node[32];
    snprintf(node, sizeof(node), "/dev/uio%d", index);
    int fd = -1;
    uint64_t deadline = now_ms() + UIO_NODE_TIMEOUT_MS;
    while ((fd = open(node, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT)
            fail("open %s: %s", node, strerror(errno));
        if (now_ms() > deadline)
            fail("%s did not appear within %d s (is devtmpfs mounted on /dev?)", node,
                 UIO_NODE_TIMEOUT_MS / 1000);
        sleep_ms(10);
    }

    /* Interrupts enabled: memory decoding on, DisINTx off. */
    cfg_command(e, PCI_CMD_MEMORY | PCI_CMD_MASTER, PCI_CMD_INTX_DISABLE);
    edu_map_bar(e);
    edu_check_alive(e);
    uint32_t stale = rd32(e, REG_IRQ_STAT);
    if (stale)
        wr32(e, REG_IRQ_ACK, stale);

    int got = 0;
    for (int i = 0; i < count; i++) {
        uint32_t value = 1u << (i % 32);
        wr32(e, REG_IRQ_RAISE, value);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r;
        uint64_t until = now_ms() + IRQ_TIMEOUT_MS;
        do {
            uint64_t now = now_ms();
            r = poll(&p, 1, now >= until ? 0 : (int)(until - now));
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            fail("poll %s: %s", node, strerror(errno));
        if (r == 0) {
            printf("EDU-IRQ: %d of %d\n", got, count);
            fail("interrupt %d of %d did not arrive on %s within %d s (edu interrupt status "
                 "0x%x, command register 0x%04x)",
                 i + 1, count, node, IRQ_TIMEOUT_MS / 1000, rd32(e, REG_IRQ_STAT),
                 cfg_read16(e, PCI_COMMAND));
        }
        uint32_t total;
        if (read(fd, &total, sizeof(total)) != (ssize_t)sizeof(total))
            fail("read %s: %s", node, strerror(errno));
        uint32_t status = rd32(e, REG_IRQ_STAT);
        if (!(status & value))
            fail("interrupt %d arrived but the edu interrupt status is 0x%x, expected bit 0x%x",
                 i + 1, status, value);
        /* Lower the line, then re-arm: uio_pci_generic masked it with DisINTx. */
        wr32(e, REG_IRQ_ACK, status);
        cfg_command(e, 0, PCI_CMD_INTX_DISABLE);
        got++;
    }
    close(fd);
    printf("EDU-IRQ: %d of %d\n", got, count);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* dma, dma-to */

/* The guest-physical address of the page at VA (locked in memory). */
static uint64_t phys_addr(const void *va)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail("open /proc/self/pagemap: %s", strerror(errno));
    uint64_t entry;
    off_t off = (off_t)((uintptr_t)va / PAGE * sizeof(entry));
    if (pread(fd, &entry, sizeof(entry), off) != (ssize_t)sizeof(entry))
        fail("read /proc/self/pagemap: %s", strerror(errno));
    close(fd);
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry >> 63))
        fail("page at %p is not present in /proc/self/pagemap", va);
    if (pfn == 0)
        fail("/proc/self/pagemap shows no physical addresses (run as root)");
    return pfn * PAGE + (uintptr_t)va % PAGE;
}

/* Two locked, zeroed pages. */
static uint8_t *locked_pages(int n)
{
    void *p = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap: %s", strerror(errno));
    if (mlock(p, (size_t)n * PAGE) != 0)
        fail("mlock: %s (run as root or raise RLIMIT_MEMLOCK)", strerror(errno));
    memset(p, 0, (size_t)n * PAGE);
    return p;
}

/* One edu DMA; waits (bounded) until the command register's start bit clears.
 * Returns the time it took in milliseconds. */
static uint64_t edu_dma(const struct edu *e, uint64_t src, uint64_t dst, uint64_t len, uint64_t cmd)
{
    if (rd64(e, REG_DMA_CMD) & DMA_START)
        fail("the DMA engine of %s is still busy from an earlier transfer", e->bdf);
    __sync_synchronize();
    wr64(e, REG_DMA_SRC, src);
    wr64(e, REG_DMA_DST, dst);
    wr64(e, REG_DMA_CNT, len);
    uint64_t t0 = now_ms();
    wr64(e, REG_DMA_CMD, cmd | DMA_START);
    while (rd64(e, REG_DMA_CMD) & DMA_START) {
        if (now_ms() - t0 > DMA_TIMEOUT_MS)
            fail("DMA of %" PRIu64 " bytes 0x%" PRIx64 " -> 0x%" PRIx64 " did not complete "
                 "within %d s (DMA command register still 0x%" PRIx64 ")",
                 len, src, dst, DMA_TIMEOUT_MS / 1000, rd64(e, REG_DMA_CMD));
        sleep_ms(1);
    }
    __sync_synchronize();
    return now_ms() - t0;
}

static void dma_prepare(struct edu *e)
{
    cfg_command(e, PCI_CMD_MEMORY | PCI_CMD_MASTER, 0);
    edu_map_bar(e);
    edu_check_alive(e);
}

static int cmd_dma(struct edu *e, uint64_t len)
{
    dma_prepare(e);
    uint8_t *pages = locked_pages(2);
    uint8_t *src = pages, *dst = pages + PAGE;
    unsigned seed = (unsigned)now_ms() | 1;
    for (uint64_t i = 0; i < len; i++)
        src[i] = (uint8_t)(seed + i * 131 + (i >> 8));
    memset(dst, 0, PAGE);
    uint64_t src_pa = phys_addr(src), dst_pa = phys_addr(dst);

    uint64_t ms = edu_dma(e, src_pa, EDU_BUF, len, 0);
    ms += edu_dma(e, EDU_BUF, dst_pa, len, DMA_TO_RAM);
    for (uint64_t i = 0; i < len; i++) {
        if (dst[i] != src[i])
            fail("data differs from byte %" PRIu64 " on (sent 0x%02x, got back 0x%02x; RAM "
                 "0x%" PRIx64 " -> edu -> RAM 0x%" PRIx64 "): the DMA did not land, see the "
                 "host's kernel log for an IOMMU fault",
                 i, src[i], dst[i], src_pa, dst_pa);
    }
    for (uint64_t i = len; i < PAGE; i++) {
        if (dst[i] != 0)
            fail("byte %" PRIu64 " beyond the %" PRIu64 "-byte transfer was written", i, len);
    }
    printf("EDU-DMA: ok %" PRIu64 " bytes 0x%" PRIx64 " -> 0x%" PRIx64 " in %" PRIu64 " ms\n", len,
           src_pa, dst_pa, ms);
    return 0;
}

static int cmd_dma_to(struct edu *e, uint64_t gpa, uint64_t len)
{
    dma_prepare(e);
    /* Fill edu's buffer with the pattern from a page of our own first. */
    uint8_t *page = locked_pages(1);
    memset(page, DMA_TO_PATTERN, len);
    edu_dma(e, phys_addr(page), EDU_BUF, len, 0);
    uint64_t ms = edu_dma(e, EDU_BUF, gpa, len, DMA_TO_RAM);
    printf("EDU-DMA-TO: done 0x%" PRIx64 " %" PRIu64 " bytes of 0x%02x in %" PRIu64 " ms\n", gpa,
           len, DMA_TO_PATTERN, ms);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* dma-in */

/* MemAvailable in MiB, or -1 if /proc/meminfo does not say. */
static long mem_available_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[128];
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemAvailable: %ld kB", &kb) != 1)
            kb = -1;
    }
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

/* The byte at offset I of the pattern for the page at guest-physical PA. */
static uint8_t in_pattern(uint64_t pa, uint64_t i)
{
    uint64_t x = (pa / PAGE) * 0x9e3779b97f4a7c15ull;
    return (uint8_t)((x >> 56) + i * 131 + (i >> 8));
}

/* The locked page at VA is still at PA (nothing migrated it). */
static void check_not_moved(const void *va, uint64_t pa, const char *when)
{
    uint64_t now = phys_addr(va);
    if (now != pa)
        fail("the page at 0x%" PRIx64 " moved to 0x%" PRIx64 " %s (compaction or memory unplug?)",
             pa, now, when);
}

static int cmd_dma_in(struct edu *e, uint64_t start, uint64_t end, uint64_t len)
{
    dma_prepare(e);
    const size_t batch_size = (size_t)HUNT_BATCH_MB << 20;
    static uint64_t entries[((size_t)HUNT_BATCH_MB << 20) / PAGE];
    uint8_t *batch[HUNT_MAX_BATCHES];
    uint8_t *page[2];
    uint64_t page_pa[2];
    int page_batch[2];
    int nbatch = 0, npages = 0;
    char stopped[160] = "";

    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0)
        fail("open /proc/self/pagemap: %s", strerror(errno));
    while (npages < 2 && nbatch < HUNT_MAX_BATCHES) {
        long avail = mem_available_mb();
        if (avail >= 0 && avail < HUNT_BATCH_MB + HUNT_RESERVE_MB) {
            snprintf(stopped, sizeof(stopped), " (stopped with %ld MiB available)", avail);
            break;
        }
        void *p = mmap(NULL, batch_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            snprintf(stopped, sizeof(stopped), " (stopped: mmap: %s)", strerror(errno));
            break;
        }
        if (mlock(p, batch_size) != 0) {
            int err = errno;
            munmap(p, batch_size);
            if (err == EPERM)
                fail("mlock: %s (run as root or raise RLIMIT_MEMLOCK)", strerror(err));
            snprintf(stopped, sizeof(stopped), " (stopped: mlock: %s)", strerror(err));
            break;
        }
        int b = nbatch++;
        batch[b] = p;
        off_t off = (off_t)((uintptr_t)p / PAGE * sizeof(entries[0]));
        if (pread(pm, entries, sizeof(entries), off) != (ssize_t)sizeof(entries))
            fail("read /proc/self/pagemap: %s", strerror(errno));
        for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]) && npages < 2; i++) {
            if (!(entries[i] >> 63))
                continue; /* not present (cannot happen once locked) */
            uint64_t pfn = entries[i] & ((1ull << 55) - 1);
            if (pfn == 0)
                fail("/proc/self/pagemap shows no physical addresses (run as root)");
            uint64_t pa = pfn * PAGE;
            if (pa >= start && pa < end && end - pa >= PAGE) {
                page[npages] = (uint8_t *)p + i * PAGE;
                page_pa[npages] = pa;
                page_batch[npages] = b;
                npages++;
            }
        }
    }
    close(pm);
    if (npages == 0)
        fail("no page in [0x%" PRIx64 ", 0x%" PRIx64 ") among %d MiB allocated%s", start, end,
             nbatch * HUNT_BATCH_MB, stopped);
    if (npages == 1)
        fail("only one page (0x%" PRIx64 ") in [0x%" PRIx64 ", 0x%" PRIx64 ") among %d MiB "
             "allocated%s",
             page_pa[0], start, end, nbatch * HUNT_BATCH_MB, stopped);
    /* Give back the batches that hold neither page. */
    for (int b = 0; b < nbatch; b++) {
        if (b != page_batch[0] && b != page_batch[1])
            munmap(batch[b], batch_size);
    }

    uint8_t *src = page[0], *dst = page[1];
    uint64_t src_pa = page_pa[0], dst_pa = page_pa[1];
    for (uint64_t i = 0; i < PAGE; i++)
        src[i] = in_pattern(src_pa, i);
    memset(dst, 0, PAGE);
    check_not_moved(src, src_pa, "before the DMA");
    check_not_moved(dst, dst_pa, "before the DMA");

    edu_dma(e, src_pa, EDU_BUF, len, 0);
    edu_dma(e, EDU_BUF, dst_pa, len, DMA_TO_RAM);
    check_not_moved(src, src_pa, "during the DMA");
    check_not_moved(dst, dst_pa, "during the DMA");
    for (uint64_t i = 0; i < len; i++) {
        uint8_t want = in_pattern(src_pa, i);
        if (dst[i] != want)
            fail("mismatch at byte %" PRIu64 ": sent 0x%02x, got back 0x%02x (RAM 0x%" PRIx64
                 " -> edu -> RAM 0x%" PRIx64 "): the DMA did not land, see the host's kernel "
                 "log for an IOMMU fault",
                 i, want, dst[i], src_pa, dst_pa);
    }
    for (uint64_t i = len; i < PAGE; i++) {
        if (dst[i] != 0)
            fail("byte %" PRIu64 " beyond the %" PRIu64 "-byte transfer was written", i, len);
    }
    printf("EDU-DMA-IN: ok %" PRIu64 " bytes 0x%" PRIx64 " -> 0x%" PRIx64 "\n", len, src_pa,
           dst_pa);
    return 0;
}

/* ------------------------------------------------------------------------ */

static uint64_t parse_number(const char *what, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        usage_error("%s: expected a number from %" PRIu64 " to %" PRIu64 " (0x prefix for hex), "
                    "got '%s'",
                    what, min, max, s);
    return v;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (argc < 3)
        usage_error("expected a subcommand and a PCI address");
    subcmd = argv[1];
    struct edu e;
    int extra = argc - 3;

    if (strcmp(subcmd, "id") == 0) {
        if (extra != 0)
            usage_error("id takes only BDF");
        edu_open(&e, argv[2]);
        return cmd_id(&e);
    }
    if (strcmp(subcmd, "irq") == 0) {
        if (extra > 1)
            usage_error("irq takes BDF [COUNT]");
        int count = extra ? (int)parse_number("irq COUNT", argv[3], 1, 1000) : 5;
        edu_open(&e, argv[2]);
        return cmd_irq(&e, count);
    }
    if (strcmp(subcmd, "dma") == 0) {
        if (extra > 1)
            usage_error("dma takes BDF [BYTES]");
        uint64_t len = extra ? parse_number("dma BYTES", argv[3], 1, EDU_BUF_MAX) : 4000;
        edu_open(&e, argv[2]);
        return cmd_dma(&e, len);
    }
    if (strcmp(subcmd, "dma-to") == 0) {
        if (extra < 1 || extra > 2)
            usage_error("dma-to takes BDF GPA [BYTES]");
        uint64_t gpa = parse_number("dma-to GPA", argv[3], 0, UINT64_MAX - EDU_BUF_MAX);
        uint64_t len = extra > 1 ? parse_number("dma-to BYTES", argv[4], 1, EDU_BUF_MAX) : 64;
        edu_open(&e, argv[2]);
        return cmd_dma_to(&e, gpa, len);
    }
    if (strcmp(subcmd, "dma-in") == 0) {
        if (extra < 2 || extra > 3)
            usage_error("dma-in takes BDF START END [BYTES]");
        uint64_t start = parse_number("dma-in START", argv[3], 0, UINT64_MAX);
        uint64_t end = parse_number("dma-in END", argv[4], 0, UINT64_MAX);
        if (start > end || end - start < 2 * PAGE)
            usage_error("dma-in: [%s, %s) does not hold two pages", argv[3], argv[4]);
        uint64_t len = extra > 2 ? parse_number("dma-in BYTES", argv[5], 1, EDU_BUF_MAX) : 4000;
        edu_open(&e, argv[2]);
        return cmd_dma_in(&e, start, end, len);
    }
    usage_error("unknown subcommand '%s'", subcmd);
}
