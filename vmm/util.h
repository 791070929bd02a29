/*
 * util.h - error reporting and small helpers shared by every subsystem.
 *
 * Error policy: a failure the user can cause (bad option, missing file,
 * host limit) ends in ONE line on stderr that says what was wrong and how to
 * fix it, then a non-zero exit: die() exits 1, die_usage() exits 2.  Internal
 * invariants that only a bug can break use bug(), which also exits 1.
 * Messages are prefixed with "minivmm: " here; callers never print the
 * prefix themselves and never end messages with a newline.
 */
#ifndef MINIVMM_UTIL_H
#define MINIVMM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINIVMM_VERSION "0.1.0"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Round up/down to a power-of-two alignment. */
#define ALIGN_UP(x, a)   (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))

/* Do [a, a + alen) and [b, b + blen) share a byte?  (Neither range may wrap.) */
static inline bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Print "minivmm: <message>" and exit(1).  Thread-safe (one write). */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
/* Print "minivmm: <message>" and exit(2): invalid command line. */
__attribute__((noreturn, format(printf, 1, 2))) void die_usage(const char *fmt, ...);
/* Print "minivmm: internal error: <message>" and exit(1).  Never for user input. */
__attribute__((noreturn, format(printf, 1, 2))) void bug(const char *fmt, ...);
/* Print "minivmm: warning: <message>". */
__attribute__((format(printf, 1, 2))) void warn(const char *fmt, ...);
/*
 * warn() for messages a guest can trigger at will: at most WARN_LIMIT per
 * call site, then one line saying the rest are suppressed, so a hostile
 * guest cannot flood stderr (or block on it).
 */
#define WARN_LIMIT 10
#define warn_limited(...)                                                                          \
    do {                                                                                           \
        static unsigned warn_count_;                                                               \
        unsigned n_ = __atomic_fetch_add(&warn_count_, 1, __ATOMIC_RELAXED);                       \
        if (n_ < WARN_LIMIT)                                                                       \
            warn(__VA_ARGS__);                                                                     \
        else if (n_ == WARN_LIMIT)                                                                 \
            warn("further messages like the last one are suppressed");                             \
    } while (0)

/* Print "minivmm: <message>" only when --verbose was given. */
__attribute__((format(printf, 1, 2))) void debug(const char *fmt, ...);
extern int log_verbose;

/*
 * Write a one-line error message into err (errlen bytes) and return -1: the
 * convention of functions that report failures to their caller instead of
 * exiting (so that unit tests can check them).
 */
__attribute__((format(printf, 3, 4))) int errf(char *err, size_t errlen, const char *fmt, ...);

/*
 * Format a byte count the way a user would write it ("512 MiB", "1.5 GiB",
 * "4 KiB", "123 bytes") into buf.  Returns buf.
 */
char *format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Format a byte count as a user would give it back in an option, so that a
 * suggested value can be pasted: the largest suffix that divides it exactly
 * ("1025M", "4K", "3G"), or bytes ("1000B"), "0".  Returns buf.
 */
char *format_size_option(uint64_t bytes, char *buf, size_t len);

/* Allocation that cannot return NULL (dies with a clear message instead). */
void *xzalloc(size_t size);
char *xstrdup(const char *s);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/*
 * The number on the "key:" line of /proc/self/status, read in base (16 for
 * CapEff, 10 for the "N kB" fields).  False if there is no such line.
 */
bool proc_status_value(const char *key, int base, unsigned long long *value);

#endif
