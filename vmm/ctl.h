/*
 * ctl.h - the control socket (--api-socket PATH) and its client
 * (`minivmm ctl --api-socket PATH COMMAND...`).
 *
 * Protocol: a unix stream socket; the client sends one command per line, the
 * server answers every non-empty line with exactly one JSON object on one
 * line.  Commands:
 *     status               state of every virtio-mem device
 *     resize [ID] SIZE     set a virtio-mem device's requested size
 *                          (ID may be left out when there is one device)
 *     dump                 every vCPU's state (RIP, mode, last exit) and every
 *                          device's, to tell where a hung guest hangs
 *     shutdown             stop the guest; minivmm exits 0
 * A bad command gets {"error": "..."} and the connection stays usable.
 * SIZE is parsed by config_parse_size() with bytes as the default unit.
 * Lines end in \n (a \r before it is ignored); blank lines get no reply;
 * a line longer than CTL_MAX_LINE gets one error reply and is skipped up to
 * its newline.  When the client closes its sending side, a last line without
 * \n still counts, and the pending replies are sent before the server closes.
 *
 * Server life cycle: vm_create() calls ctl_server_open() once the devices
 * exist; commands are dispatched on the main thread from the event loop to
 * the handlers the VM supplies; vm_destroy() calls ctl_server_close(), which
 * removes the socket file.
 */
#ifndef MINIVMM_CTL_H
#define MINIVMM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "vmm/evloop.h"
#include "vmm/json.h"

#define CTL_MAX_LINE  4096 /* longest command line accepted */
#define CTL_ID_MAX    64   /* device id: 1..CTL_ID_MAX-1 of [A-Za-z0-9_.-] */
#define CTL_MAX_CONNS 32   /* more clients at once: see CTL_IDLE_EVICT_MS */
/*
 * When every slot is taken, a new client takes the slot of the connection
 * idle longest (nothing received or sent), if that one has been idle this
 * long; it is told why and closed.  Otherwise the new client is told that
 * there are too many and closed.  So idle clients cannot hold every slot.
 */
#define CTL_IDLE_EVICT_MS 5000
/* Unsent replies a client may leave queued before it is disconnected. */
#define CTL_MAX_PENDING (1024 * 1024)
/* How long the client waits to connect and for the reply (see ctl_client_main). */
#define CTL_CLIENT_TIMEOUT_MS 10000

enum ctl_op {
    CTL_STATUS,
    CTL_RESIZE,
    CTL_SHUTDOWN,
    CTL_DUMP,
};

struct ctl_command {
    enum ctl_op op;
    char id[CTL_ID_MAX]; /* resize: device id, "" when not given */
    uint64_t size;       /* resize: requested size in bytes */
};

/*
 * Parse one command line (no trailing newline; surrounding and repeated
 * blanks are allowed).  Returns 0, or -1 with a one-line reason in err that
 * says what would be right (e.g. "resize needs a size, e.g. resize 4G").
 */
int ctl_parse(const char *line, struct ctl_command *cmd, char *err, size_t errlen);

/*
 * What the VM does for each command, on the main thread.  A handler either
 * writes the reply object into out and returns 0, or returns -1 with a
 * one-line message in err (the server then replies {"error": err}).
 * out is initialised and freed by the server.  Returning 0 with nothing
 * written replies {}; with an unfinished or failed document, an internal
 * error.  resize gets id "" when the command named no device.  A NULL
 * handler makes its command fail with "not supported".  Handlers may use
 * the event loop but must not call ctl_server_close().
 */
struct ctl_handlers {
    int (*status)(void *opaque, struct json *out, char *err, size_t errlen);
    int (*resize)(void *opaque, const char *id, uint64_t size, struct json *out, char *err,
                  size_t errlen);
    int (*shutdown)(void *opaque, struct json *out, char *err, size_t errlen);
    int (*dump)(void *opaque, struct json *out, char *err, size_t errlen);
};

struct ctl_conn;

struct ctl_server {
    int listen_fd; /* -1 when closed */
    char *path;
    struct evloop *loop;
    const struct ctl_handlers *handlers;
    void *opaque;
    struct ctl_conn *conns; /* open client connections */
    int nr_conns;
    unsigned idle_evict_ms; /* CTL_IDLE_EVICT_MS (ctl_server_open sets it; tests may lower it) */
    /* The socket file bind() created (0: none yet), so that close removes only that one. */
    uint64_t sock_dev, sock_ino;
};

/*
 * The unix socket address for --api-socket PATH.  Returns 0, or -1 with a
 * one-line reason in err if path is empty or too long for a unix socket.
 * The one check of such a path: the command line parser (so that a bad path
 * is a usage error), the server and the client call it.
 */
int ctl_socket_addr(const char *path, struct sockaddr_un *addr, char *err, size_t errlen);

/*
 * Create the socket at path with mode 0600 and watch it in loop.  An existing
 * socket file that nobody listens on is replaced; any other existing file,
 * or a socket another process is listening on, is refused.  Returns 0, or
 * -1 with a one-line reason in err (s is then closed: ctl_server_close() on
 * it is a no-op).  The socket and every connection are non-blocking and
 * close-on-exec; a slow client never blocks the loop (its replies are queued,
 * up to CTL_MAX_PENDING, then it is disconnected).
 */
int ctl_server_open(struct ctl_server *s, const char *path, struct evloop *loop,
                    const struct ctl_handlers *handlers, void *opaque, char *err, size_t errlen);
/*
 * Close every connection (after a last non-blocking attempt to send queued
 * replies) and the socket, and remove the socket file if it is still the one
 * ctl_server_open() created.  Call before evloop_destroy().  Safe to call
 * twice, and on a struct ctl_server that is all zeroes.
 */
void ctl_server_close(struct ctl_server *s);

/*
 * `minivmm ctl --api-socket PATH COMMAND [ARG...]`: argv[0] is "ctl".
 * Options (--api-socket PATH, --api-socket=PATH, --help) may appear anywhere
 * before "--"; every other word is part of the command, joined with spaces.
 * Sends the command, prints the JSON reply and a newline on stdout, returns
 * the exit status: 0 when the reply is not an error, 1 when it is.  --help
 * prints the usage on stdout and returns 0.  When the socket cannot be
 * reached or does not answer within CTL_CLIENT_TIMEOUT_MS it exits 1 through
 * die() (one line saying why); on a usage error it exits 2 through
 * die_usage().  Plain blocking I/O; no event loop.
 */
int ctl_client_main(int argc, char **argv);

/*
 * The client's request: connect to path, send line plus "\n", and wait up to
 * timeout_ms in all for one reply line.  Returns 0 with *reply (malloc'd,
 * without the newline; the caller frees it), or -1 with a one-line reason in
 * err.
 */
int ctl_client_request(const char *path, const char *line, int timeout_ms, char **reply, char *err,
                       size_t errlen);

/*
 * Does the reply say the command failed: is its top-level object's key
 * "error" present?  Text that is not a JSON object counts as a failure too.
 */
bool ctl_reply_is_error(const char *reply);

#endif
