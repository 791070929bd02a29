/*
 * disk-check: write pseudo-random data to a block device and read it back,
 * for the passthrough tests (a guest driver doing real DMA through minivmm).
 *
 *   disk-check DEV MIB [SEED]
 *
 * Writes MIB MiB of xorshift64 data (each 1 MiB chunk seeded from SEED and
 * its index, so a chunk that lands at the wrong place or comes back from an
 * older run is caught) with O_DIRECT, so every byte goes through the device's
 * DMA, fsyncs, reads it all back with O_DIRECT and compares.  The data is
 * generated, not hashed, because hashing 256 MiB twice takes minutes under
 * the testbed's nested emulation.  Prints one line:
 *   DISK-CHECK: ok 256 MiB checksum 0x... written 0x... read, write 12.3 s, read 4.5 s
 * or "DISK-CHECK: FAIL ..." naming the first chunk and offset that differ;
 * exit 0 only on ok.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fill one chunk; returns its checksum (sum of words, rotated by position). */
static uint64_t fill(uint64_t *p, uint64_t seed, uint64_t index)
{
    uint64_t x = seed ^ (index * 0x9e3779b97f4a7c15ull) ^ 0xd1b54a32d192ed03ull, sum = 0;
    if (!x)
        x = 1;
    for (size_t i = 0; i < CHUNK / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = x;
        sum += x ^ i;
    }
    return sum;
}

static uint64_t checksum(const uint64_t *p)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < CHUNK / 8; i++)
        sum += p[i] ^ i;
    return sum;
}

static int full_io(int fd, void *buf, off_t off, int write_it)
{
    size_t done = 0;
    while (done < CHUNK) {
        ssize_t n = write_it ? pwrite(fd, (char *)buf + done, CHUNK - done, off + (off_t)done)
                             : pread(fd, (char *)buf + done, CHUNK - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: disk-check DEV MIB [SEED]\n");
        return 2;
    }
    const char *dev = argv[1];
    char *end;
    unsigned long mib = strtoul(argv[2], &end, 10);
    if (*end || mib == 0 || mib > 1u << 20) {
        fprintf(stderr, "disk-check: MIB must be a number of MiB from 1, got '%s'\n", argv[2]);
        return 2;
    }
    uint64_t seed = argc == 4 ? strtoull(argv[3], NULL, 0) : (uint64_t)time(NULL);
    int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        printf("DISK-CHECK: FAIL cannot open %s: %s\n", dev, strerror(errno));
        return 1;
    }
    uint64_t *want, *got;
    if (posix_memalign((void **)&want, 4096, CHUNK) || posix_memalign((void **)&got, 4096, CHUNK)) {
        printf("DISK-CHECK: FAIL out of memory\n");
        return 1;
    }
    uint64_t wsum = 0, rsum = 0;
    double t0 = now();
    for (unsigned long c = 0; c < mib; c++) {
        wsum += fill(want, seed, c);
        if (full_io(fd, want, (off_t)c * CHUNK, 1) < 0) {
            printf("DISK-CHECK: FAIL write of chunk %lu: %s\n", c, strerror(errno));
            return 1;
        }
    }
    if (fsync(fd) < 0) {
        printf("DISK-CHECK: FAIL fsync: %s\n", strerror(errno));
        return 1;
    }
    double t1 = now();
    for (unsigned long c = 0; c < mib; c++) {
        if (full_io(fd, got, (off_t)c * CHUNK, 0) < 0) {
            printf("DISK-CHECK: FAIL read of chunk %lu: %s\n", c, strerror(errno));
            return 1;
        }
        rsum += checksum(got);
        fill(want, seed, c);
        if (memcmp(want, got, CHUNK) != 0) {
            size_t i = 0;
            while (want[i] == got[i])
                i++;
            printf("DISK-CHECK: FAIL chunk %lu differs at byte %zu: wrote %#" PRIx64
                   ", read %#" PRIx64 "\n",
                   c, i * 8, want[i], got[i]);
            return 1;
        }
    }
    double t2 = now();
    printf("DISK-CHECK: %s %lu MiB checksum %#" PRIx64 " written %#" PRIx64 " read, seed %#" PRIx64
           ", write %.1f s, read %.1f s\n",
           wsum == rsum ? "ok" : "FAIL", mib, wsum, rsum, seed, t1 - t0, t2 - t1);
    close(fd);
    return wsum == rsum ? 0 : 1;
}
