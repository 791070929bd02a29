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
    evloop_fn fn;
    void *opaque;
};

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
    *h = (struct evloop_handler){.fd = fd, .fn = fn, .opaque = opaque};
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(h);
        return -1;
    }
    loop->by_fd[fd] = h;
    return 0;
}

int evloop_modify(struct evloop *loop, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
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
        int fd = evs[i].data.fd;
        /* A previous handler in this batch may have removed this one. */
        if (fd < loop->nr_fds && loop->by_fd[fd]) {
            struct evloop_handler *h = loop->by_fd[fd];
            h->fn(h->opaque, evs[i].events);
        }
    }
    return n;
}
