/*
 * evloop.h - the main thread's event loop (epoll).
 *
 * Only the main thread calls these functions.  Other threads (vCPUs) that
 * need the main thread's attention write to an eventfd that a handler here
 * watches.  Handlers run on the main thread, one at a time, and may add or
 * remove handlers (including themselves).
 */
#ifndef MINIVMM_EVLOOP_H
#define MINIVMM_EVLOOP_H

#include <stdint.h>

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_handler;

struct evloop {
    int epfd;
    struct evloop_handler **by_fd; /* indexed by fd */
    int nr_fds;
    uint32_t generation; /* of the last handler added */
};

/* Returns 0 or -1 (errno set). */
int evloop_init(struct evloop *loop);
void evloop_destroy(struct evloop *loop);

/* Watch fd for events (EPOLLIN...); fn(opaque, events) runs when they occur. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn, void *opaque);
/* Change the events watched for fd (0 pauses it without forgetting it). */
int evloop_modify(struct evloop *loop, int fd, uint32_t events);
int evloop_remove(struct evloop *loop, int fd);

/* Wait up to timeout_ms (-1: forever) and run the handlers of ready fds. */
int evloop_run_once(struct evloop *loop, int timeout_ms);

#endif
