/*
 * ctl_client.c - `minivmm ctl`: send one command to a running minivmm's
 * control socket and print the reply; contract in ctl.h.
 *
 * Plain blocking I/O bounded by CTL_CLIENT_TIMEOUT_MS: SO_SNDTIMEO bounds
 * connect() (a full backlog) and send(), poll() bounds the wait for the
 * reply.  The server answers as soon as it has accepted a request (a resize
 * only sets the requested size; the guest plugs memory afterwards), so the
 * timeout only ever fires when the VMM's main loop is stuck.
 */
#include "vmm/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/util.h"

#define CTL_CLIENT_USAGE                                                                           \
    "usage: minivmm ctl --api-socket PATH status | resize [ID] SIZE | dump | shutdown"

static const char ctl_client_help[] =
    "usage: minivmm ctl --api-socket PATH COMMAND\n"
    "\n"
    "Send COMMAND to the minivmm started with --api-socket PATH and print its\n"
    "reply, one JSON object on one line.\n"
    "\n"
    "Commands:\n"
    "  status              show every virtio-mem device\n"
    "  resize [ID] SIZE    set a virtio-mem device's requested size (e.g. 4G, 1536M;\n"
    "                      bytes without a suffix); ID may be left out when the VM\n"
    "                      has one virtio-mem device\n"
    "  dump                every vCPU's state (RIP, mode, last exit) and every\n"
    "                      device's: where a hung guest hangs\n"
    "  shutdown            stop the guest; minivmm exits 0\n"
    "\n"
    "Exit status: 0 on success, 1 when the reply is an error or the socket cannot\n"
    "be reached, 2 on a usage error.  The reply is awaited for at most 10 seconds.\n";

/* ---- reply check -------------------------------------------------------- */

static const char *ctl_json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Past a string that starts at p (a quote); NULL if unterminated. */
static const char *ctl_json_skip_string(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && !*++p)
            return NULL;
    return *p ? p + 1 : NULL;
}

/* Past one value (scalar, string or nested container); NULL if malformed. */
static const char *ctl_json_skip_value(const char *p)
{
    int depth = 0;

    do {
        p = ctl_json_ws(p);
        if (*p == '"') {
            p = ctl_json_skip_string(p);
            if (!p)
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0)
                return NULL;
        } else if (*p == '\0') {
            return NULL;
        } else if (depth == 0) {
            size_t n = strcspn(p, ",}] \t\r\n");
            return n ? p + n : NULL; /* a number, true, false or null */
        }
        p++;
    } while (depth > 0);
    return p;
}

bool ctl_reply_is_error(const char *reply)
{
    const char *p = ctl_json_ws(reply);

    if (*p++ != '{')
        return true;
    p = ctl_json_ws(p);
    if (*p == '}')
        return false;
    for (;;) {
        if (*p != '"')
            return true;
        const char *key = p + 1;
        p = ctl_json_skip_string(p);
        if (!p)
            return true;
        if (p - key - 1 == 5 && memcmp(key, "error", 5) == 0)
            return true;
        p = ctl_json_ws(p);
        if (*p++ != ':')
            return true;
        p = ctl_json_skip_value(p);
        if (!p)
            return true;
        p = ctl_json_ws(p);
        if (*p == '}')
            return false;
        if (*p++ != ',')
            return true;
        p = ctl_json_ws(p);
    }
}

/* ---- request ------------------------------------------------------------ */

/* "10 s", or "300 ms" for timeouts that are not whole seconds. */
static const char *ctl_client_duration(int ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%d s", ms / 1000);
    else
        snprintf(buf, len, "%d ms", ms);
    return buf;
}

static int ctl_client_connect(const char *path, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un addr;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    char tbuf[32];

    if (ctl_socket_addr(path, &addr, err, errlen) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errf(err, errlen, "cannot create a unix socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
        return fd;
    int e = errno;
    close(fd);
    struct stat st;
    if (e == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return errf(err, errlen,
                    "cannot connect to %s: it is a %s, not a socket (give the PATH minivmm was "
                    "started with: --api-socket PATH)",
                    path, S_ISDIR(st.st_mode) ? "directory" : "file");
    if (e == EACCES || e == EPERM)
        return errf(err, errlen,
                    "cannot connect to %s: %s (the socket belongs to the user who started "
                    "minivmm)",
                    path, strerror(e));
    if (e == EAGAIN || e == EINPROGRESS)
        return errf(err, errlen, "cannot connect to %s: minivmm did not accept within %s", path,
                    ctl_client_duration(timeout_ms, tbuf, sizeof(tbuf)));
    return errf(err, errlen, "cannot connect to %s: %s (is minivmm running with --api-socket %s?)",
                path, strerror(e), path);
}

static int ctl_client_send(int fd, const char *path, const char *line, char *err, size_t errlen)
{
    size_t len = strlen(line);
    char *msg = xzalloc(len + 2);

    memcpy(msg, line, len);
    msg[len] = '\n';
    for (size_t off = 0; off < len + 1;) {
        ssize_t n = send(fd, msg + off, len + 1 - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(msg);
            return errf(err, errlen, "cannot send the command to %s: %s", path,
                        e == EAGAIN ? "timed out" : strerror(e));
        }
        off += (size_t)n;
    }
    free(msg);
    return 0;
}

/* Wait until fd is readable or the deadline (now_ns() scale) passes. */
static int ctl_client_wait(int fd, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline - now + 999999) / 1000000);
        int rc = poll(&p, 1, ms);
        if (rc >= 0 || errno != EINTR)
            return rc;
    }
}

/* Read up to the first newline; *reply gets the line without it. */
static int ctl_client_recv(int fd, const char *path, int timeout_ms, char **reply, char *err,
                           size_t errlen)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000;
    size_t len = 0, cap = 4096;
    char *buf = xzalloc(cap);
    char tbuf[32];
    int rc = -1;

    for (;;) {
        int ready = ctl_client_wait(fd, deadline);
        if (ready < 0) {
            errf(err, errlen, "cannot wait for the reply from %s: %s", path, strerror(errno));
            break;
        }
        if (ready == 0) {
            errf(err, errlen, "no reply from %s within %s", path,
                 ctl_client_duration(timeout_ms, tbuf, sizeof(tbuf)));
            break;
        }
        if (len + 1 >= cap) {
            if (cap >= CTL_MAX_PENDING) {
                errf(err, errlen, "the reply from %s is longer than %d bytes", path,
                     CTL_MAX_PENDING);
                break;
            }
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                die("out of memory reading the reply");
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            errf(err, errlen, "%s closed the connection without replying", path);
            break;
        }
        if (n < 0) {
            errf(err, errlen, "cannot read the reply from %s: %s", path, strerror(errno));
            break;
        }
        char *nl = memchr(buf + len, '\n', (size_t)n);
        len += (size_t)n;
        if (nl) {
            *nl = '\0';
            *reply = buf;
            return 0;
        }
    }
    free(buf);
    return rc;
}

int ctl_client_request(const char *path, const char *line, int timeout_ms, char **reply, char *err,
                       size_t errlen)
{
    int fd = ctl_client_connect(path, timeout_ms, err, errlen);
    if (fd < 0)
        return -1;
    int rc = ctl_client_send(fd, path, line, err, errlen);
    if (rc == 0)
        rc = ctl_client_recv(fd, path, timeout_ms, reply, err, errlen);
    close(fd);
    return rc;
}

/* ---- command line ------------------------------------------------------- */

/* Append word to the command being built in line (len bytes), space-separated. */
static void ctl_client_add_word(char *line, size_t *len, const char *word)
{
    size_t n = strlen(word);

    if (*len + 1 + n > CTL_MAX_LINE)
        die_usage("ctl: the command is longer than %d bytes", CTL_MAX_LINE);
    if (strchr(word, '\n') || strchr(word, '\r'))
        die_usage("ctl: the command must be on one line (a word contains a line break)");
    if (*len > 0)
        line[(*len)++] = ' ';
    memcpy(line + *len, word, n + 1);
    *len += n;
}

/*
 * Parse argv into the socket path and the command line (CTL_MAX_LINE + 1
 * bytes).  Returns false for --help.  Usage errors exit through die_usage().
 */
static bool ctl_client_args(int argc, char **argv, const char **path, char *line)
{
    static const char opt[] = "--api-socket";
    size_t len = 0;
    bool options = true;

    *path = NULL;
    line[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
        } else if (options && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            return false;
        } else if (options && strcmp(a, opt) == 0) {
            if (i + 1 >= argc)
                die_usage("ctl: --api-socket needs a path; " CTL_CLIENT_USAGE);
            *path = argv[++i];
        } else if (options && strncmp(a, opt, sizeof(opt) - 1) == 0 && a[sizeof(opt) - 1] == '=') {
            *path = a + sizeof(opt);
        } else if (options && a[0] == '-' && !isdigit((unsigned char)a[1])) {
            /* "-1" is a (bad) size, for the server to refuse; anything else is an option. */
            die_usage("ctl: unknown option '%s'; " CTL_CLIENT_USAGE, a);
        } else if (a[0] != '\0') {
            ctl_client_add_word(line, &len, a);
        }
    }
    if (!*path)
        die_usage("ctl: --api-socket PATH is required; " CTL_CLIENT_USAGE);
    if (!**path)
        die_usage("ctl: --api-socket: the path is empty; " CTL_CLIENT_USAGE);
    if (strlen(*path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        die_usage("ctl: --api-socket path %s is too long (%zu bytes; a unix socket path has at "
                  "most %zu): give the path minivmm was started with",
                  *path, strlen(*path), sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
    if (len == 0)
        die_usage("ctl: no command given; " CTL_CLIENT_USAGE);
    return true;
}

int ctl_client_main(int argc, char **argv)
{
    char line[CTL_MAX_LINE + 1];
    char err[512];
    const char *path;
    char *reply = NULL;

    if (!ctl_client_args(argc, argv, &path, line)) {
        fputs(ctl_client_help, stdout);
        return 0;
    }
    if (ctl_client_request(path, line, CTL_CLIENT_TIMEOUT_MS, &reply, err, sizeof(err)) < 0)
        die("%s", err);
    printf("%s\n", reply);
    fflush(stdout);
    int status = ctl_reply_is_error(reply) ? 1 : 0;
    free(reply);
    return status;
}
