/* evloop.c - epoll-based main loop; see evloop.h. */
#include "vmm/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/util.h"

struct evloop_handler {
    int fd;
    uint32_t generation; /* tells a handler apart from an earlier one on the same fd */
    evloop_fn fn;
    void *opaque;
};

/* epoll data: the fd in the low half, the handler's generation in the high half. */
static uint64_t pack(int fd, uint32_t generation)
{
    return (uint64_t)generation << 32 | (uint32_t)fd;
}

int evloop_init(struct evloop *loop)
{
    memset(loop, 0, sizeof(*loop));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    return loop->epfd < 0 ? -1 : 0;
}

void evloop_destroy(struct evloop *loop)
{
    for (int i = 0; i < loop->nr_fds; i++)
        free(loop->by_fd[i]);
    free(loop->by_fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->epfd = -1;
    loop->by_fd = NULL;
    loop->nr_fds = 0;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (fd >= loop->nr_fds) {
        int n = fd + 16;
        struct evloop_handler **t = realloc(loop->by_fd, (size_t)n * sizeof(*t));
        if (!t)
            die("out of memory in the event loop");
        memset(t + loop->nr_fds, 0, (size_t)(n - loop->nr_fds) * sizeof(*t));
        loop->by_fd = t;
        loop->nr_fds = n;
    }
    if (loop->by_fd[fd]) {
        errno = EEXIST;
        return -1;
    }
    struct evloop_handler *h = xzalloc(sizeof(*h));
    *h = (struct evloop_handler){
        .fd = fd, .generation = ++loop->generation, .fn = fn, .opaque = opaque};
    struct epoll_event ev = {.events = events, .data.u64 = pack(fd, h->generation)};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(h);
        return -1;
    }
    loop->by_fd[fd] = h;
    return 0;
}

int evloop_modify(struct evloop *loop, int fd, uint32_t events)
{
    if (fd < 0 || fd >= loop->nr_fds || !loop->by_fd[fd]) {
        errno = ENOENT;
        return -1;
    }
    struct epoll_event ev = {.events = events, .data.u64 = pack(fd, loop->by_fd[fd]->generation)};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int evloop_remove(struct evloop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nr_fds || !loop->by_fd[fd]) {
        errno = ENOENT;
        return -1;
    }
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    free(loop->by_fd[fd]);
    loop->by_fd[fd] = NULL;
    return 0;
}

int evloop_run_once(struct evloop *loop, int timeout_ms)
{
    struct epoll_event evs[16];
    int n = epoll_wait(loop->epfd, evs, (int)ARRAY_SIZE(evs), timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint32_t generation = (uint32_t)(evs[i].data.u64 >> 32);
        /*
         * A previous handler in this batch may have removed this one, and
         * even added another on the same fd number: then the event is stale.
         */
        struct evloop_handler *h = fd < loop->nr_fds ? loop->by_fd[fd] : NULL;
        if (h && h->generation == generation)
            h->fn(h->opaque, evs[i].events);
    }
    return n;
}
