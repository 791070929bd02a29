/*
 * input.h - helpers shared by the fuzz targets: reading typed values from the
 * fuzzer's input, and reporting a broken invariant.
 *
 * Reads past the end of the input yield zeroes, so a target never needs to
 * check the length before decoding a field; in_done() says when to stop.
 * FUZZ_CHECK(cond, ...) prints one line naming the target's invariant and
 * aborts, which libFuzzer records as a crash.  The line goes to a copy of
 * stderr taken before main() (fuzz_report_fd), so it is still seen when the
 * runner closes stderr to silence the project's own warnings
 * (-close_fd_mask=2).
 */
#ifndef MINIVMM_TESTS_FUZZ_INPUT_H
#define MINIVMM_TESTS_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fuzz_in {
    const uint8_t *p;
    size_t n; /* bytes left */
};

static inline struct fuzz_in fuzz_in_make(const uint8_t *data, size_t size)
{
    return (struct fuzz_in){.p = data, .n = size};
}

static inline bool in_done(const struct fuzz_in *in)
{
    return in->n == 0;
}

static inline uint8_t in_u8(struct fuzz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* Little-endian values of 2, 4 and 8 bytes. */
static inline uint64_t in_le(struct fuzz_in *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)in_u8(in) << (8 * i);
    return v;
}

static inline uint16_t in_u16(struct fuzz_in *in)
{
    return (uint16_t)in_le(in, 2);
}

static inline uint32_t in_u32(struct fuzz_in *in)
{
    return (uint32_t)in_le(in, 4);
}

static inline uint64_t in_u64(struct fuzz_in *in)
{
    return in_le(in, 8);
}

/* Copy up to len bytes into dst (the rest of dst is left alone); returns the bytes copied. */
static inline size_t in_bytes(struct fuzz_in *in, void *dst, size_t len)
{
    if (len > in->n)
        len = in->n;
    memcpy(dst, in->p, len);
    in->p += len;
    in->n -= len;
    return len;
}

/* Where FUZZ_CHECK reports (a duplicate of stderr, see fake_vm.c). */
extern int fuzz_report_fd;

__attribute__((noreturn, format(printf, 4, 5))) void
fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                     \
    } while (0)

#endif
