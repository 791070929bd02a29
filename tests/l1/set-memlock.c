/*
 * set-memlock: change another process's RLIMIT_MEMLOCK, for the testbed's
 * run-time pinning test (the test host has no prlimit(1)).
 *
 *   set-memlock PID BYTES
 *
 * Sets the soft and hard limit of PID to BYTES and prints one line,
 * "MEMLOCK: PID OLD -> NEW" (bytes); on failure one line on stderr and exit 1.
 * Root (CAP_SYS_RESOURCE) may raise it again later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: set-memlock PID BYTES\n");
        return 2;
    }
    char *end;
    errno = 0;
    long pid = strtol(argv[1], &end, 10);
    if (errno || *end || pid <= 0) {
        fprintf(stderr, "set-memlock: '%s' is not a process id\n", argv[1]);
        return 2;
    }
    unsigned long long bytes = strtoull(argv[2], &end, 0);
    if (errno || *end) {
        fprintf(stderr, "set-memlock: '%s' is not a number of bytes\n", argv[2]);
        return 2;
    }
    struct rlimit now = {.rlim_cur = bytes, .rlim_max = bytes}, old;
    if (prlimit((pid_t)pid, RLIMIT_MEMLOCK, &now, &old) < 0) {
        fprintf(stderr, "set-memlock: prlimit(%ld, RLIMIT_MEMLOCK): %s\n", pid, strerror(errno));
        return 1;
    }
    printf("MEMLOCK: %ld %llu -> %llu\n", pid, (unsigned long long)old.rlim_cur, bytes);
    return 0;
}
