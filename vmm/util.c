/* util.c - error reporting and small helpers; see util.h. */
#include "vmm/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_verbose;

static void vreport(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "minivmm: %s", prefix);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    size_t len = (m < 0) ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write() so that lines from concurrent threads do not interleave. */
    if (write(STDERR_FILENO, line, len) < 0) {
        /* Nothing left to report to. */
    }
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
    exit(1);
}

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
    exit(2);
}

void bug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("internal error: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}

void debug(const char *fmt, ...)
{
    if (!log_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
}

int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

char *format_size_option(uint64_t v, char *buf, size_t len)
{
    static const char suffixes[] = "KMGTPE";
    int best = -1;
    for (int i = 0; v && i < (int)sizeof(suffixes) - 1; i++)
        if (v % (1ULL << (10 * (i + 1))) == 0)
            best = i;
    if (v == 0)
        snprintf(buf, len, "0");
    else if (best < 0)
        snprintf(buf, len, "%lluB", (unsigned long long)v);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)(v >> (10 * (best + 1))), suffixes[best]);
    return buf;
}

char *format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < KiB) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
        return buf;
    }
    unsigned u = 0;
    uint64_t scale = KiB;
    while (u + 1 < ARRAY_SIZE(units) && bytes >= scale * 1024)
        scale *= 1024, u++;
    if (bytes % scale == 0)
        snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / scale), units[u]);
    else
        snprintf(buf, len, "%.1f %s", (double)bytes / (double)scale, units[u]);
    return buf;
}

void *xzalloc(size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (!p)
        die("out of memory allocating %zu bytes", size);
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        die("out of memory");
    return p;
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool proc_status_value(const char *key, int base, unsigned long long *value)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return false;
    char line[256];
    size_t klen = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ':')
            continue;
        char *end;
        *value = strtoull(line + klen + 1, &end, base);
        found = end != line + klen + 1;
    }
    fclose(f);
    return found;
}
