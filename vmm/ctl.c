/*
 * ctl.c - the control socket's command parser and server; contract and
 * protocol in ctl.h.  The client is in ctl_client.c.
 *
 * Everything runs on the main thread from the event loop.  Each connection
 * has an input buffer holding at most one partial line and an output buffer
 * of replies the socket did not take yet.  Reading pauses while more than
 * CTL_OUT_HIGH bytes of replies are queued (a client that does not read its
 * replies stops being served instead of growing our memory); past
 * CTL_MAX_PENDING the client is dropped.  Epoll is level-triggered, so a
 * handler reads a bounded amount per call and leaves the rest for the next
 * round, which keeps one busy client from starving the loop.
 */
#include "vmm/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/util.h"

#define CTL_COMMANDS    "status, resize [ID] SIZE, dump, shutdown"
#define CTL_MAX_WORDS   4   /* more than any command takes; counted beyond */
#define CTL_QUOTE_MAX   40  /* longest word quoted back in an error */
#define CTL_ERR_MAX     512 /* error messages of the parser and handlers */
#define CTL_READ_CHUNK  4096
#define CTL_READS_EVENT 8           /* reads per event before yielding to the loop */
#define CTL_OUT_HIGH    (64 * 1024) /* queued reply bytes that pause reading */
#define CTL_BACKLOG     16
#define CTL_ACCEPTS     16 /* accepts per event */

/* ---- command parser ----------------------------------------------------- */

struct ctl_word {
    const char *p;
    size_t len;
};

static bool ctl_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Split line into words; stores at most max of them, returns how many there are. */
static int ctl_split(const char *line, struct ctl_word *words, int max)
{
    int n = 0;
    const char *p = line;

    for (;;) {
        while (ctl_is_blank(*p))
            p++;
        if (!*p)
            return n;
        const char *start = p;
        while (*p && !ctl_is_blank(*p))
            p++;
        if (n < max)
            words[n] = (struct ctl_word){.p = start, .len = (size_t)(p - start)};
        n++;
    }
}

static bool ctl_word_is(const struct ctl_word *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

/*
 * The word as it can be quoted in an error: cut to at most CTL_QUOTE_MAX
 * bytes plus "...", never inside a UTF-8 sequence.
 */
static const char *ctl_quote(const struct ctl_word *w, char *buf, size_t len)
{
    if (w->len <= CTL_QUOTE_MAX) {
        snprintf(buf, len, "%.*s", (int)w->len, w->p);
        return buf;
    }
    int cut = CTL_QUOTE_MAX;
    /* Back to the start of the character the cut falls in (at most 3 continuation bytes). */
    for (int i = 0; i < 3 && cut > 0 && ((unsigned char)w->p[cut] & 0xc0) == 0x80; i++)
        cut--;
    snprintf(buf, len, "%.*s...", cut, w->p);
    return buf;
}

static bool ctl_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static int ctl_parse_id(const struct ctl_word *w, char *id, char *err, size_t errlen)
{
    char q[CTL_QUOTE_MAX + 4];
    bool ok = w->len >= 1 && w->len < CTL_ID_MAX;

    for (size_t i = 0; ok && i < w->len; i++)
        ok = ctl_id_char(w->p[i]);
    if (!ok)
        return errf(err, errlen,
                    "'%s' is not a device id (1 to %d characters of A-Z, a-z, 0-9, '_', '.', "
                    "'-')",
                    ctl_quote(w, q, sizeof(q)), CTL_ID_MAX - 1);
    memcpy(id, w->p, w->len);
    id[w->len] = '\0';
    return 0;
}

/* Parse w as a size: 0, or -1 with errno EINVAL (not a size) or ERANGE (more than 16E). */
static int ctl_size_of(const struct ctl_word *w, uint64_t *size)
{
    char buf[64];

    if (w->len >= sizeof(buf)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(buf, w->p, w->len);
    buf[w->len] = '\0';
    return config_parse_size(buf, 1, size);
}

static int ctl_parse_size(const struct ctl_word *w, uint64_t *size, char *err, size_t errlen)
{
    char q[CTL_QUOTE_MAX + 4];

    if (ctl_size_of(w, size) == 0)
        return 0;
    if (errno == ERANGE)
        return errf(err, errlen, "'%s' is too large for a size (e.g. 4G, 1536M)",
                    ctl_quote(w, q, sizeof(q)));
    return errf(err, errlen, "'%s' is not a size (e.g. 4G, 1536M)", ctl_quote(w, q, sizeof(q)));
}

/* resize [ID] SIZE; args are the words after "resize". */
static int ctl_parse_resize(const struct ctl_word *args, int nargs, struct ctl_command *cmd,
                            char *err, size_t errlen)
{
    char q[CTL_QUOTE_MAX + 4], q2[CTL_QUOTE_MAX + 4];

    if (nargs == 0)
        return errf(err, errlen, "resize needs a size, e.g. resize 4G or resize ID 4G");
    if (nargs > 2)
        return errf(err, errlen, "too many words for resize ('%s'); use resize [ID] SIZE",
                    ctl_quote(&args[2], q, sizeof(q)));
    if (nargs == 2) {
        uint64_t ignored;
        /* "resize 4G mem0": the size came first (a word like "4X" is a bad size instead). */
        if (ctl_size_of(&args[0], &ignored) == 0 && !isdigit((unsigned char)args[1].p[0]))
            return errf(err, errlen, "the device id comes before the size: resize %s %s",
                        ctl_quote(&args[1], q, sizeof(q)), ctl_quote(&args[0], q2, sizeof(q2)));
        if (ctl_parse_id(&args[0], cmd->id, err, errlen) < 0)
            return -1;
    }
    return ctl_parse_size(&args[nargs - 1], &cmd->size, err, errlen);
}

/* status and shutdown take no arguments. */
static int ctl_no_args(const char *name, const struct ctl_word *args, int nargs, char *err,
                       size_t errlen)
{
    char q[CTL_QUOTE_MAX + 4];

    if (nargs == 0)
        return 0;
    return errf(err, errlen, "%s takes no arguments; remove '%s'", name,
                ctl_quote(&args[0], q, sizeof(q)));
}

static int ctl_unknown(const struct ctl_word *w, char *err, size_t errlen)
{
    static const char *const names[] = {"status", "resize", "dump", "shutdown"};
    char q[CTL_QUOTE_MAX + 4];

    for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
        if (w->len == strlen(names[i]) && strncasecmp(w->p, names[i], w->len) == 0)
            return errf(err, errlen, "unknown command '%s'; commands are lower case: %s",
                        ctl_quote(w, q, sizeof(q)), CTL_COMMANDS);
    return errf(err, errlen, "unknown command '%s'; commands: %s", ctl_quote(w, q, sizeof(q)),
                CTL_COMMANDS);
}

int ctl_parse(const char *line, struct ctl_command *cmd, char *err, size_t errlen)
{
    struct ctl_word w[CTL_MAX_WORDS];
    int n = ctl_split(line, w, CTL_MAX_WORDS);

    memset(cmd, 0, sizeof(*cmd));
    if (n == 0)
        return errf(err, errlen, "empty command; commands: %s", CTL_COMMANDS);
    if (ctl_word_is(&w[0], "status")) {
        cmd->op = CTL_STATUS;
        return ctl_no_args("status", &w[1], n - 1, err, errlen);
    }
    if (ctl_word_is(&w[0], "dump")) {
        cmd->op = CTL_DUMP;
        return ctl_no_args("dump", &w[1], n - 1, err, errlen);
    }
    if (ctl_word_is(&w[0], "shutdown")) {
        cmd->op = CTL_SHUTDOWN;
        return ctl_no_args("shutdown", &w[1], n - 1, err, errlen);
    }
    if (ctl_word_is(&w[0], "resize")) {
        cmd->op = CTL_RESIZE;
        return ctl_parse_resize(&w[1], n - 1, cmd, err, errlen);
    }
    return ctl_unknown(&w[0], err, errlen);
}

/* ---- connections -------------------------------------------------------- */

struct ctl_conn {
    struct ctl_server *server;
    struct ctl_conn *next;
    int fd;
    uint32_t events;           /* what the loop watches for fd now */
    bool discarding;           /* inside an overlong line, answered already */
    bool eof;                  /* the client will send nothing more */
    uint64_t active_ns;        /* when the client last sent or took something */
    size_t in_len;             /* bytes of the partial line in in[] */
    char in[CTL_MAX_LINE + 2]; /* a line, an optional \r, a NUL */
    char *out;                 /* queued replies: out[out_off..out_len) */
    size_t out_off, out_len, out_cap;
};

static size_t ctl_conn_pending(const struct ctl_conn *c)
{
    return c->out_len - c->out_off;
}

static void ctl_conn_free(struct ctl_conn *c)
{
    struct ctl_server *s = c->server;

    for (struct ctl_conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    s->nr_conns--;
    evloop_remove(s->loop, c->fd);
    close(c->fd);
    free(c->out);
    free(c);
}

/*
 * Send queued replies without blocking.  Returns false if the connection
 * failed (the caller then frees it).
 */
static bool ctl_conn_flush(struct ctl_conn *c)
{
    while (ctl_conn_pending(c) > 0) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, ctl_conn_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->active_ns = now_ns();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            return false;
        }
    }
    c->out_off = c->out_len = 0;
    return true;
}

/*
 * Queue text plus a newline.  Returns false if that would exceed
 * CTL_MAX_PENDING (or memory ran out): the client is not reading and is to
 * be dropped.
 */
static bool ctl_conn_queue(struct ctl_conn *c, const char *text)
{
    size_t n = strlen(text) + 1;

    if (ctl_conn_pending(c) + n > CTL_MAX_PENDING)
        return false;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, ctl_conn_pending(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out)
            return false;
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, text, n - 1);
    c->out[c->out_len + n - 1] = '\n';
    c->out_len += n;
    return true;
}

static bool ctl_conn_reply_error(struct ctl_conn *c, const char *msg)
{
    struct json j;

    json_init(&j);
    json_object_begin(&j);
    json_kv_string(&j, "error", msg[0] ? msg : "the command failed");
    json_object_end(&j);
    bool ok = ctl_conn_queue(c, json_str(&j));
    json_free(&j);
    return ok;
}

/* Run a parsed command's handler; on success out holds its reply. */
static int ctl_dispatch(struct ctl_server *s, const struct ctl_command *cmd, struct json *out,
                        char *err, size_t errlen)
{
    const struct ctl_handlers *h = s->handlers;

    switch (cmd->op) {
    case CTL_STATUS:
        if (h->status)
            return h->status(s->opaque, out, err, errlen);
        break;
    case CTL_RESIZE:
        if (h->resize)
            return h->resize(s->opaque, cmd->id, cmd->size, out, err, errlen);
        break;
    case CTL_DUMP:
        if (h->dump)
            return h->dump(s->opaque, out, err, errlen);
        break;
    case CTL_SHUTDOWN:
        if (h->shutdown)
            return h->shutdown(s->opaque, out, err, errlen);
        break;
    }
    return errf(err, errlen, "this command is not supported by this minivmm");
}

/* Queue the reply a handler built (see struct ctl_handlers for the rules). */
static bool ctl_conn_reply_json(struct ctl_conn *c, const struct json *out)
{
    if (!json_ok(out))
        return ctl_conn_queue(c, json_str(out)); /* the writer's fixed error object */
    if (out->depth == 0 && !out->after_key && out->first[0])
        return ctl_conn_queue(c, "{}");
    if (!json_complete(out))
        return ctl_conn_reply_error(c, "internal error: the reply is not a complete JSON value");
    return ctl_conn_queue(c, json_str(out));
}

static bool ctl_conn_reply_too_long(struct ctl_conn *c)
{
    char msg[128];

    snprintf(msg, sizeof(msg),
             "command line too long (more than %d bytes); send one command per line", CTL_MAX_LINE);
    return ctl_conn_reply_error(c, msg);
}

/* One complete line (no \n).  Returns false if the client is to be dropped. */
static bool ctl_conn_line(struct ctl_conn *c, char *line, size_t len)
{
    struct ctl_command cmd;
    char err[CTL_ERR_MAX] = "";
    struct json out;

    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len > CTL_MAX_LINE)
        return ctl_conn_reply_too_long(c);
    if (memchr(line, '\0', len))
        return ctl_conn_reply_error(c, "the command contains a NUL byte; send text");
    if (strspn(line, " \t") == len)
        return true; /* blank lines get no reply */

    json_init(&out);
    int rc = ctl_parse(line, &cmd, err, sizeof(err));
    if (rc == 0)
        rc = ctl_dispatch(c->server, &cmd, &out, err, sizeof(err));
    bool ok = rc == 0 ? ctl_conn_reply_json(c, &out) : ctl_conn_reply_error(c, err);
    json_free(&out);
    return ok;
}

/*
 * Feed received bytes: complete lines are executed, a partial line is kept
 * for the next read.  line[] in each call is NUL-terminated at its end.
 * Returns false if the client is to be dropped.
 */
static bool ctl_conn_input(struct ctl_conn *c, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;

        if (!c->discarding && c->in_len + seg > CTL_MAX_LINE + 1) {
            /* Too long even with a \r at its end: answer now, skip the rest. */
            c->discarding = true;
            c->in_len = 0;
            if (!ctl_conn_reply_too_long(c))
                return false;
        }
        if (!c->discarding) {
            memcpy(c->in + c->in_len, data, seg);
            c->in_len += seg;
        }
        if (!nl)
            return true;
        if (c->discarding) {
            c->discarding = false; /* this line was answered when it overflowed */
        } else {
            size_t len = c->in_len;
            c->in[len] = '\0';
            c->in_len = 0;
            if (!ctl_conn_line(c, c->in, len))
                return false;
        }
        data = nl + 1;
        n -= seg + 1;
    }
    return true;
}

/* The client closed its sending side: a last line without \n still counts. */
static bool ctl_conn_end_of_input(struct ctl_conn *c)
{
    c->eof = true;
    if (c->discarding || c->in_len == 0)
        return true;
    size_t len = c->in_len;
    c->in[len] = '\0';
    c->in_len = 0;
    return ctl_conn_line(c, c->in, len);
}

/* Read what the client sent, a bounded amount.  Returns false to drop it. */
static bool ctl_conn_read(struct ctl_conn *c)
{
    char buf[CTL_READ_CHUNK];

    for (int i = 0; i < CTL_READS_EVENT && ctl_conn_pending(c) < CTL_OUT_HIGH; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            c->active_ns = now_ns();
            if (!ctl_conn_input(c, buf, (size_t)n))
                return false;
        } else if (n == 0) {
            return ctl_conn_end_of_input(c);
        } else if (errno == EINTR) {
            continue;
        } else {
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
    }
    return true;
}

/*
 * After any activity: send what is queued, then watch for what the
 * connection waits for next, or free it once it has nothing left to do.
 */
static void ctl_conn_settle(struct ctl_conn *c)
{
    if (!ctl_conn_flush(c) || (c->eof && ctl_conn_pending(c) == 0)) {
        ctl_conn_free(c);
        return;
    }
    uint32_t events = 0;
    if (!c->eof && ctl_conn_pending(c) < CTL_OUT_HIGH)
        events |= EPOLLIN;
    if (ctl_conn_pending(c) > 0)
        events |= EPOLLOUT;
    if (events != c->events && evloop_modify(c->server->loop, c->fd, events) < 0) {
        warn("control socket %s: cannot watch a connection: %s", c->server->path, strerror(errno));
        ctl_conn_free(c);
        return;
    }
    c->events = events;
}

static void ctl_conn_on_event(void *opaque, uint32_t events)
{
    struct ctl_conn *c = opaque;

    if (events & EPOLLERR) {
        ctl_conn_free(c);
        return;
    }
    if ((c->events & EPOLLIN) && (events & (EPOLLIN | EPOLLHUP)) && !ctl_conn_read(c)) {
        ctl_conn_free(c);
        return;
    }
    /* Hang-up: both directions are closed, nobody can read further replies. */
    if ((events & EPOLLHUP) && !c->eof) {
        ctl_conn_free(c);
        return;
    }
    ctl_conn_settle(c);
}

/* ---- listening socket --------------------------------------------------- */

/* Over CTL_MAX_CONNS: say why (best effort, the socket buffer is empty) and close. */
static void ctl_server_refuse(struct ctl_server *s, int fd)
{
    char msg[160];

    snprintf(msg, sizeof(msg),
             "{\"error\": \"too many control connections (at most %d); close one and retry\"}\n",
             CTL_MAX_CONNS);
    if (send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        debug("control socket %s: could not refuse a connection: %s", s->path, strerror(errno));
    close(fd);
}

/*
 * Every slot is taken: close the connection idle longest if it has been idle
 * for s->idle_evict_ms, telling it why (best effort).  Returns true if a
 * slot was freed.
 */
static bool ctl_server_evict_idle(struct ctl_server *s)
{
    struct ctl_conn *idlest = NULL;
    for (struct ctl_conn *c = s->conns; c; c = c->next)
        if (!idlest || c->active_ns < idlest->active_ns)
            idlest = c;
    if (!idlest || now_ns() - idlest->active_ns < (uint64_t)s->idle_evict_ms * 1000000ULL)
        return false;
    static const char msg[] = "{\"error\": \"closed: idle while every control connection was "
                              "taken\"}\n";
    if (ctl_conn_pending(idlest) == 0)
        (void)!send(idlest->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    debug("control socket %s: closed an idle connection for a new one", s->path);
    ctl_conn_free(idlest);
    return true;
}

static void ctl_server_add_conn(struct ctl_server *s, int fd)
{
    struct ctl_conn *c = xzalloc(sizeof(*c));

    c->server = s;
    c->fd = fd;
    c->events = EPOLLIN;
    c->active_ns = now_ns();
    if (evloop_add(s->loop, fd, EPOLLIN, ctl_conn_on_event, c) < 0) {
        warn("control socket %s: cannot watch a new connection: %s", s->path, strerror(errno));
        close(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    s->conns = c;
    s->nr_conns++;
}

static void ctl_server_on_accept(void *opaque, uint32_t events)
{
    struct ctl_server *s = opaque;
    (void)events;

    for (int i = 0; i < CTL_ACCEPTS; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                warn("control socket %s: accept failed: %s", s->path, strerror(errno));
            return;
        }
        if (s->nr_conns >= CTL_MAX_CONNS && !ctl_server_evict_idle(s))
            ctl_server_refuse(s, fd);
        else
            ctl_server_add_conn(s, fd);
    }
}

int ctl_socket_addr(const char *path, struct sockaddr_un *addr, char *err, size_t errlen)
{
    size_t len = strlen(path);

    if (len == 0)
        return errf(err, errlen, "--api-socket: the path is empty");
    if (len >= sizeof(addr->sun_path))
        return errf(err, errlen,
                    "--api-socket path %s is too long (%zu bytes; a unix socket path has at "
                    "most %zu): choose a shorter one",
                    path, len, sizeof(addr->sun_path) - 1);
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, len + 1);
    return 0;
}

/*
 * Is somebody listening on the socket file at addr?  Returns 1 (yes), 0 (no:
 * the file is stale), or -1 with err set when that cannot be told.
 */
static int ctl_socket_in_use(const struct sockaddr_un *addr, char *err, size_t errlen)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errf(err, errlen, "--api-socket %s: cannot create a unix socket: %s", addr->sun_path,
                    strerror(errno));
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) /* EAGAIN: listening, backlog full */
        return 1;
    if (e == ECONNREFUSED)
        return 0;
    return errf(err, errlen,
                "--api-socket %s: cannot tell whether another process uses this socket (%s); "
                "remove it or choose another path",
                addr->sun_path, strerror(e));
}

/* Make room for our socket at path: refuse anything but a stale socket, remove that. */
static int ctl_clear_path(const struct sockaddr_un *addr, char *err, size_t errlen)
{
    const char *path = addr->sun_path;
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0; /* bind() says what is wrong with the path */
        return errf(err, errlen, "--api-socket %s: cannot check the path: %s; choose another path",
                    path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return errf(err, errlen,
                    "--api-socket %s: %s exists there and is not a socket; remove it or "
                    "choose another path",
                    path, S_ISDIR(st.st_mode) ? "a directory" : "a file");
    int used = ctl_socket_in_use(addr, err, errlen);
    if (used < 0)
        return -1;
    if (used)
        return errf(err, errlen,
                    "--api-socket %s: another process is listening on it; stop that process or "
                    "choose another path",
                    path);
    if (unlink(path) < 0 && errno != ENOENT)
        return errf(err, errlen,
                    "--api-socket %s: cannot remove the stale socket there (%s); remove it or "
                    "choose another path",
                    path, strerror(errno));
    return 0;
}

/*
 * bind() with umask 0177 so the file is created 0600 (never more open), then
 * check the result, fix it with chmod() if a filesystem ignored the umask,
 * and remember which file it is.
 */
static int ctl_bind_private(struct ctl_server *s, const struct sockaddr_un *addr, char *err,
                            size_t errlen)
{
    struct stat st;

    mode_t old = umask(0177);
    int rc = bind(s->listen_fd, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    umask(old);
    if (rc < 0) {
        const char *path = addr->sun_path;
        if (e == EADDRINUSE)
            return errf(err, errlen,
                        "--api-socket %s: the file appeared while minivmm was starting; choose "
                        "another path",
                        path);
        if (e == ENOENT)
            return errf(err, errlen,
                        "--api-socket %s: the directory does not exist; create it or choose "
                        "another path",
                        path);
        if (e == ENOTDIR)
            return errf(err, errlen,
                        "--api-socket %s: a directory in the path is not a directory; choose "
                        "another path",
                        path);
        if (e == EACCES || e == EPERM || e == EROFS)
            return errf(err, errlen,
                        "--api-socket %s: cannot create the socket (%s); choose a path in a "
                        "directory you can write",
                        path, strerror(e));
        return errf(err, errlen, "--api-socket %s: cannot create the socket: %s", path,
                    strerror(e));
    }
    if (lstat(addr->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return errf(err, errlen,
                    "--api-socket %s: the socket vanished right after it was created (is another "
                    "program removing files there?)",
                    addr->sun_path);
    if ((st.st_mode & 07777) != 0600 && chmod(addr->sun_path, 0600) < 0)
        return errf(err, errlen,
                    "--api-socket %s: cannot make the socket private (mode 0600): %s; choose a "
                    "path on another filesystem",
                    addr->sun_path, strerror(errno));
    s->sock_dev = (uint64_t)st.st_dev;
    s->sock_ino = (uint64_t)st.st_ino;
    return 0;
}

/* Remove the socket file, but only if it is still the one we created. */
static void ctl_server_unlink(struct ctl_server *s)
{
    struct stat st;

    if (lstat(s->path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    if ((uint64_t)st.st_dev != s->sock_dev || (uint64_t)st.st_ino != s->sock_ino)
        return;
    if (unlink(s->path) < 0)
        warn("cannot remove the control socket %s: %s", s->path, strerror(errno));
}

static int ctl_server_listen(struct ctl_server *s, const struct sockaddr_un *addr, char *err,
                             size_t errlen)
{
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return errf(err, errlen, "--api-socket %s: cannot create a unix socket: %s", s->path,
                    strerror(errno));
    if (ctl_clear_path(addr, err, errlen) < 0 || ctl_bind_private(s, addr, err, errlen) < 0)
        return -1;
    if (listen(s->listen_fd, CTL_BACKLOG) < 0)
        return errf(err, errlen, "--api-socket %s: cannot listen on the socket: %s", s->path,
                    strerror(errno));
    if (evloop_add(s->loop, s->listen_fd, EPOLLIN, ctl_server_on_accept, s) < 0)
        return errf(err, errlen, "--api-socket %s: cannot watch the socket: %s", s->path,
                    strerror(errno));
    return 0;
}

int ctl_server_open(struct ctl_server *s, const char *path, struct evloop *loop,
                    const struct ctl_handlers *handlers, void *opaque, char *err, size_t errlen)
{
    struct sockaddr_un addr;

    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    if (ctl_socket_addr(path, &addr, err, errlen) < 0)
        return -1;
    s->loop = loop;
    s->handlers = handlers;
    s->opaque = opaque;
    s->idle_evict_ms = CTL_IDLE_EVICT_MS;
    s->path = xstrdup(path);
    if (ctl_server_listen(s, &addr, err, errlen) < 0) {
        ctl_server_close(s);
        return -1;
    }
    return 0;
}

void ctl_server_close(struct ctl_server *s)
{
    if (!s->loop)
        return; /* never opened, or closed already */
    while (s->conns) {
        ctl_conn_flush(s->conns); /* last chance for e.g. the reply to shutdown */
        ctl_conn_free(s->conns);
    }
    if (s->listen_fd >= 0) {
        evloop_remove(s->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->path && s->sock_ino != 0)
        ctl_server_unlink(s);
    free(s->path);
    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
}
