/*
 * vmem-attack - a hostile virtio-mem driver, from guest userspace.
 *
 * The testbed's L2 initramfs carries it as /bin/vmem-attack.  With the
 * kernel's virtio-mmio driver unbound from the device (the scenario does
 * that), it maps the device's virtio-mmio window through /dev/mem, builds
 * its own queue in locked pages of guest RAM (their guest-physical
 * addresses from /proc/self/pagemap) and attacks the device:
 *   loop        a descriptor chain that loops
 *   outside     a buffer beyond guest RAM
 *   unplugged   a buffer inside an unplugged virtio-mem block
 *   direction   the request in a device-writable buffer, the response readable
 *   short       a 10-byte request
 *   indirect    an INDIRECT descriptor (not offered)
 *   avail-jump  an available index that moves by more than the queue size
 *   qnum        QueueNum above QueueNumMax
 *   beyond      PLUG/UNPLUG/STATE beyond the region and across its end
 *   alternate   ROUNDS rounds of plugging every other block up to the
 *               requested size (NACK) or a host limit (BUSY), then
 *               unplugging them one by one
 *   unplug-all  ROUNDS UNPLUG_ALL requests
 *   games       DRIVER_OK before FEATURES_OK, features changed after
 *               FEATURES_OK, writes to read-only registers and the config
 *               space, accesses of odd widths
 * Each protocol violation must make the device set DEVICE_NEEDS_RESET and
 * answer nothing; each valid request must be answered with the response the
 * spec gives.  After each attack the device is reset and must work again (a
 * STATE request answered).  One line per attack: "ATTACK NAME: ok ..." or
 * "ATTACK NAME: FAIL why"; then "ATTACK-DONE failures N".  Every wait is
 * bounded (2 s per request).
 *
 * usage: vmem-attack WINDOW_GPA [ROUNDS]   (root; e.g. 0xf0000000 200)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

/* virtio-mmio registers (VIRTIO 1.2 section 4.2.2). */
#define R_MAGIC         0x000
#define R_DEVICE_ID     0x008
#define R_DEV_FEAT      0x010
#define R_DEV_FEAT_SEL  0x014
#define R_DRV_FEAT      0x020
#define R_DRV_FEAT_SEL  0x024
#define R_QUEUE_SEL     0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM     0x038
#define R_QUEUE_READY   0x044
#define R_QUEUE_NOTIFY  0x050
#define R_INT_STATUS    0x060
#define R_INT_ACK       0x064
#define R_STATUS        0x070
#define R_DESC_LO       0x080
#define R_DESC_HI       0x084
#define R_AVAIL_LO      0x090
#define R_AVAIL_HI      0x094
#define R_USED_LO       0x0a0
#define R_USED_HI       0x0a4
#define R_CONFIG        0x100

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64

/* virtio-mem config (section 5.15.4) offsets. */
#define C_BLOCK_SIZE 0
#define C_ADDR       16
#define C_REGION     24
#define C_USABLE     32
#define C_PLUGGED    40
#define C_REQUESTED  48

#define F_UNPLUGGED_INACCESSIBLE 1 /* bit number */

#define D_NEXT     1
#define D_WRITE    2
#define D_INDIRECT 4

enum { PLUG = 0, UNPLUG = 1, UNPLUG_ALL = 2, STATE = 3 };
enum { ACK = 0, NACK = 1, BUSY = 2, ERROR = 3 };

#define QSIZE 8

static volatile uint8_t *win;
static uint8_t *mem;   /* locked pages: 0 desc, 1 avail, 2 used, 3 request, 4 response */
static uint64_t pa[5]; /* their guest-physical addresses */
static uint16_t avail_idx, used_seen;
static int failures;
static uint64_t blk, region, region_size;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vmem-attack: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint32_t rd(unsigned off)
{
    return *(volatile uint32_t *)(win + off);
}

static void wr(unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(win + off) = v;
}

static uint64_t cfg64(unsigned off)
{
    return (uint64_t)rd(R_CONFIG + off) | (uint64_t)rd(R_CONFIG + off + 4) << 32;
}

static uint64_t phys_of(const void *va)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t e = 0;
    if (fd < 0 || pread(fd, &e, sizeof(e), (off_t)((uintptr_t)va / PAGE * 8)) != sizeof(e))
        die("read /proc/self/pagemap: %s", strerror(errno));
    close(fd);
    if (!(e >> 63) || !(e & ((1ULL << 55) - 1)))
        die("no physical address for %p (run as root)", va);
    return (e & ((1ULL << 55) - 1)) * PAGE;
}

/* --- the queue ----------------------------------------------------------- */

static uint8_t *page(int i)
{
    return mem + (size_t)i * PAGE;
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *d = page(0) + 16 * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void reset(void)
{
    wr(R_STATUS, 0);
    memset(mem, 0, 3 * PAGE);
    avail_idx = used_seen = 0;
}

/* Linux's init sequence; returns the status read back at the end. */
static uint32_t init(bool features_ok_first)
{
    reset();
    wr(R_STATUS, S_ACK);
    wr(R_STATUS, S_ACK | S_DRIVER);
    wr(R_DRV_FEAT_SEL, 1);
    wr(R_DRV_FEAT, 1); /* VIRTIO_F_VERSION_1 */
    wr(R_DRV_FEAT_SEL, 0);
    wr(R_DRV_FEAT, 1u << F_UNPLUGGED_INACCESSIBLE);
    if (features_ok_first)
        wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(R_QUEUE_SEL, 0);
    wr(R_QUEUE_NUM, QSIZE);
    wr(R_DESC_LO, (uint32_t)pa[0]);
    wr(R_DESC_HI, (uint32_t)(pa[0] >> 32));
    wr(R_AVAIL_LO, (uint32_t)pa[1]);
    wr(R_AVAIL_HI, (uint32_t)(pa[1] >> 32));
    wr(R_USED_LO, (uint32_t)pa[2]);
    wr(R_USED_HI, (uint32_t)(pa[2] >> 32));
    wr(R_QUEUE_READY, 1);
    wr(R_STATUS, rd(R_STATUS) | S_DRIVER_OK);
    return rd(R_STATUS);
}

static void publish(uint16_t head)
{
    volatile uint16_t *ring = (volatile uint16_t *)(page(1) + 4);
    ring[avail_idx % QSIZE] = head;
    __sync_synchronize();
    avail_idx++;
    *(volatile uint16_t *)(page(1) + 2) = avail_idx;
    __sync_synchronize();
    wr(R_QUEUE_NOTIFY, 0);
}

static uint16_t used_idx(void)
{
    return *(volatile uint16_t *)(page(2) + 2);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Wait (2 s at most) for a used entry or DEVICE_NEEDS_RESET: 1 answered, 0 reset, -1 neither. */
static int wait_answer(void)
{
    double end = now_s() + 2.0;
    while (now_s() < end) {
        if (used_idx() != used_seen) {
            used_seen++;
            wr(R_INT_ACK, rd(R_INT_STATUS));
            return 1;
        }
        if (rd(R_STATUS) & S_NEEDS_RESET)
            return 0;
        usleep(100);
    }
    return -1;
}

static void write_req(uint16_t type, uint64_t addr, uint16_t nb)
{
    uint8_t *r = page(3);
    memset(r, 0, 24);
    memcpy(r, &type, 2);
    memcpy(r + 8, &addr, 8);
    memcpy(r + 16, &nb, 2);
    memset(page(4), 0xee, 16);
}

/* A well-formed request; returns the response type, or -1 (reset) / -2 (no answer). */
static int request(uint16_t type, uint64_t addr, uint16_t nb)
{
    write_req(type, addr, nb);
    set_desc(0, pa[3], 24, D_NEXT, 1);
    set_desc(1, pa[4], 10, D_WRITE, 0);
    publish(0);
    int r = wait_answer();
    if (r <= 0)
        return r == 0 ? -1 : -2;
    uint16_t resp;
    memcpy(&resp, page(4), 2);
    return resp;
}

/* --- checks -------------------------------------------------------------- */

static void result(const char *name, bool ok, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("ATTACK %s: %s %s\n", name, ok ? "ok" : "FAIL", why);
    fflush(stdout);
    if (!ok)
        failures++;
}

/* After an attack: a reset and a fresh init must give a working device. */
static bool recovers(void)
{
    if (init(true) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK))
        return false;
    return request(STATE, region, 1) == ACK;
}

/* Build the chain first (init clears the rings), then attack. */
static void attack_chain(const char *name, void (*build)(void))
{
    if (init(true) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)) {
        result(name, false, "the device did not initialise");
        return;
    }
    build();
    publish(0);
    int r = wait_answer();
    bool ok = r == 0 && used_idx() == 0;
    bool back = recovers();
    result(name, ok && back, "(DEVICE_NEEDS_RESET %s, %s, works after a reset: %s)",
           r == 0 ? "set" : "NOT set", r == 1 ? "answered" : "not answered", back ? "yes" : "NO");
}

static void build_loop(void)
{
    write_req(STATE, region, 1);
    set_desc(0, pa[3], 24, D_NEXT, 1);
    set_desc(1, pa[3], 24, D_NEXT, 0);
}

static void build_outside(void)
{
    set_desc(0, 1ULL << 45, 24, D_NEXT, 1);
    set_desc(1, pa[4], 10, D_WRITE, 0);
}

static void build_unplugged(void)
{
    set_desc(0, region + region_size - blk, 24, D_NEXT, 1);
    set_desc(1, pa[4], 10, D_WRITE, 0);
}

static void build_direction(void)
{
    write_req(STATE, region, 1);
    set_desc(0, pa[4], 10, D_NEXT, 1);
    set_desc(1, pa[3], 24, D_WRITE, 0);
}

static void build_short(void)
{
    write_req(STATE, region, 1);
    set_desc(0, pa[3], 10, D_NEXT, 1);
    set_desc(1, pa[4], 10, D_WRITE, 0);
}

static void build_indirect(void)
{
    write_req(STATE, region, 1);
    set_desc(0, pa[3], 32, D_INDIRECT, 0);
}

static void attack_avail_jump(void)
{
    init(true);
    *(volatile uint16_t *)(page(1) + 2) = QSIZE + 3; /* more than the queue holds */
    __sync_synchronize();
    wr(R_QUEUE_NOTIFY, 0);
    int r = wait_answer();
    bool back = recovers();
    result("avail-jump", r == 0 && back, "(DEVICE_NEEDS_RESET %s, works after a reset: %s)",
           r == 0 ? "set" : "NOT set", back ? "yes" : "NO");
}

static void attack_qnum(void)
{
    reset();
    wr(R_STATUS, S_ACK | S_DRIVER);
    wr(R_DRV_FEAT_SEL, 1);
    wr(R_DRV_FEAT, 1);
    wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(R_QUEUE_SEL, 0);
    uint32_t max = rd(R_QUEUE_NUM_MAX);
    wr(R_QUEUE_NUM, max * 2);
    bool set = rd(R_STATUS) & S_NEEDS_RESET;
    bool back = recovers();
    result("qnum", set && back, "(QueueNum %u > max %u: DEVICE_NEEDS_RESET %s, works after: %s)",
           max * 2, max, set ? "set" : "NOT set", back ? "yes" : "NO");
}

static void attack_beyond(void)
{
    init(true);
    int a = request(PLUG, region + region_size, 1);
    int b = request(PLUG, region + region_size - blk, 2); /* across the end */
    int c = request(STATE, region + region_size, 1);
    int d = request(UNPLUG, region - blk, 1);
    int e = request(PLUG, region + 1, 1); /* misaligned */
    bool ok = a == ERROR && b == ERROR && c == ERROR && d == ERROR && e == ERROR;
    result("beyond", ok && recovers(), "(responses %d %d %d %d %d, want 3 = ERROR)", a, b, c, d, e);
}

static void attack_alternate(int rounds)
{
    init(true);
    uint64_t requested = cfg64(C_REQUESTED);
    unsigned n = (unsigned)(requested / blk);
    unsigned acks = 0, nacks = 0, busy = 0, other = 0;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < 2 * n + 2; i += 2) {
            int x = request(PLUG, region + (uint64_t)i * blk, 1);
            acks += x == ACK, nacks += x == NACK, busy += x == BUSY;
            other += x != ACK && x != NACK && x != BUSY;
        }
        for (unsigned i = 0; i < 2 * n + 2; i += 2) {
            int x = request(UNPLUG, region + (uint64_t)i * blk, 1);
            acks += x == ACK, busy += x == BUSY;
            other += x != ACK && x != BUSY && x != ERROR; /* ERROR: was not plugged */
        }
    }
    uint64_t plugged = cfg64(C_PLUGGED);
    /* Each round ends in NACK (the requested size is reached) or BUSY (a host limit is). */
    bool ok = other == 0 && acks > 0 && nacks + busy >= (unsigned)rounds;
    result(
        "alternate", ok && recovers(),
        "(%d rounds over %u blocks: %u ACK, %u NACK, %u BUSY, %u unexpected; plugged_size %" PRIu64
        " after; %.1f s)",
        rounds, n, acks, nacks, busy, other, plugged, now_s() - t0);
}

static void attack_unplug_all(int rounds)
{
    init(true);
    unsigned acks = 0, other = 0;
    for (int r = 0; r < rounds; r++) {
        if (r % 10 == 0)
            request(PLUG, region, 1);
        int x = request(UNPLUG_ALL, 0, 0);
        acks += x == ACK, other += x != ACK && x != BUSY;
    }
    bool ok = other == 0 && cfg64(C_PLUGGED) == 0;
    result("unplug-all", ok && recovers(),
           "(%d UNPLUG_ALL: %u ACK, %u unexpected; plugged_size %" PRIu64 ")", rounds, acks, other,
           cfg64(C_PLUGGED));
}

static void attack_games(void)
{
    /* DRIVER_OK without FEATURES_OK is refused. */
    reset();
    wr(R_STATUS, S_ACK | S_DRIVER);
    wr(R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
    bool refused = !(rd(R_STATUS) & S_DRIVER_OK);
    /* Features changed after FEATURES_OK, a feature select far out, read-only registers. */
    init(true);
    wr(R_DRV_FEAT_SEL, 0);
    wr(R_DRV_FEAT, 0xffffffff);
    wr(R_DRV_FEAT_SEL, 0xffffffff);
    wr(R_DRV_FEAT, 0xffffffff);
    wr(R_DEV_FEAT_SEL, 0xffffffff);
    (void)rd(R_DEV_FEAT);
    wr(R_MAGIC, 0);
    wr(R_DEVICE_ID, 0);
    wr(R_QUEUE_NUM_MAX, 1);
    uint64_t plugged = cfg64(C_PLUGGED);
    for (unsigned off = 0; off < 64; off += 4)
        wr(R_CONFIG + off, 0xdeadbeef); /* config writes are dropped */
    bool config_kept = cfg64(C_PLUGGED) == plugged && cfg64(C_BLOCK_SIZE) == blk;
    /* Odd widths and offsets: 1, 2 and 8 bytes, unaligned. */
    (void)*(volatile uint8_t *)(win + R_STATUS);
    (void)*(volatile uint16_t *)(win + R_STATUS + 1);
    *(volatile uint8_t *)(win + R_STATUS) = 0;
    *(volatile uint16_t *)(win + R_QUEUE_NOTIFY + 2) = 0;
    (void)*(volatile uint64_t *)(win + R_CONFIG + C_ADDR);
    (void)*(volatile uint32_t *)(win + R_CONFIG + 3);
    (void)rd(0xffc);
    wr(0xffc, 1);
    bool magic = rd(R_MAGIC) == 0x74726976;
    bool back = recovers();
    result("games", refused && config_kept && magic && back,
           "(DRIVER_OK without FEATURES_OK refused: %s, config unchanged: %s, magic intact: %s, "
           "works after: %s)",
           refused ? "yes" : "NO", config_kept ? "yes" : "NO", magic ? "yes" : "NO",
           back ? "yes" : "NO");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: vmem-attack WINDOW_GPA [ROUNDS]");
    uint64_t base = strtoull(argv[1], NULL, 0);
    int rounds = argc > 2 ? atoi(argv[2]) : 100;
    int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0)
        die("open /dev/mem: %s", strerror(errno));
    win = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
    if (win == MAP_FAILED)
        die("mmap /dev/mem at %#" PRIx64 ": %s (is a driver still bound to it?)", base,
            strerror(errno));
    if (rd(R_MAGIC) != 0x74726976 || rd(R_DEVICE_ID) != 24)
        die("no virtio-mem device at %#" PRIx64 " (magic %#x, device %u)", base, rd(R_MAGIC),
            rd(R_DEVICE_ID));
    mem = mmap(NULL, 5 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
               -1, 0);
    if (mem == MAP_FAILED || mlock(mem, 5 * PAGE) != 0)
        die("locked pages: %s", strerror(errno));
    memset(mem, 0, 5 * PAGE);
    for (int i = 0; i < 5; i++)
        pa[i] = phys_of(page(i));
    blk = cfg64(C_BLOCK_SIZE);
    region = cfg64(C_ADDR);
    region_size = cfg64(C_REGION);
    printf("ATTACK-START region %#" PRIx64 " size %" PRIu64 " block %" PRIu64 " requested %" PRIu64
           "\n",
           region, region_size, blk, cfg64(C_REQUESTED));
    fflush(stdout);

    attack_chain("loop", build_loop);
    attack_chain("outside", build_outside);
    attack_chain("unplugged", build_unplugged);
    attack_chain("direction", build_direction);
    attack_chain("short", build_short);
    attack_chain("indirect", build_indirect);
    attack_avail_jump();
    attack_qnum();
    attack_beyond();
    attack_alternate(rounds);
    attack_unplug_all(rounds * 5);
    attack_games();

    /* Leave nothing plugged. */
    init(true);
    request(UNPLUG_ALL, 0, 0);
    printf("ATTACK-DONE failures %d plugged %" PRIu64 "\n", failures, cfg64(C_PLUGGED));
    return failures ? 1 : 0;
}
