/*
 * offload.c - a work function on a worker thread, its completion on the
 * event loop (offload.h). The worker writes one byte to a private pipe when
 * work returns; the loop's read event joins the thread and calls done. A
 * pipe per offload keeps it independent of libevent's threading support
 * (the bases are not made thread-safe) and costs two descriptors while the
 * work runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "kmsrelay/offload.h"

struct kr_offload {
    pthread_t th;
    int pipe[2];
    struct event *ev;
    int cancel; /* __atomic: set by the loop, read by the work */
    kr_offload_work_fn work;
    kr_offload_done_fn done;
    void *arg;
};

static void *run(void *p)
{
    struct kr_offload *o = p;
    o->work(o, o->arg);
    /* Non-blocking, and the pipe is empty: this write cannot fail short. */
    ssize_t w = write(o->pipe[1], "d", 1);
    (void)w;
    return NULL;
}

static void release(struct kr_offload *o)
{
    if (o->ev)
        event_free(o->ev);
    for (int i = 0; i < 2; i++)
        if (o->pipe[i] >= 0)
            close(o->pipe[i]);
    free(o);
}

static void on_done(evutil_socket_t fd, short what, void *p)
{
    struct kr_offload *o = p;
    kr_offload_done_fn done = o->done;
    void *arg = o->arg;
    pthread_join(o->th, NULL);
    release(o);
    done(arg);
}

struct kr_offload *kr_offload_start(struct event_base *base, kr_offload_work_fn work,
                                    kr_offload_done_fn done, void *arg)
{
    struct kr_offload *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->pipe[0] = o->pipe[1] = -1;
    o->work = work;
    o->done = done;
    o->arg = arg;
    if (pipe2(o->pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        !(o->ev = event_new(base, o->pipe[0], EV_READ, on_done, o)) || event_add(o->ev, NULL)) {
        int e = errno;
        release(o);
        errno = e;
        return NULL;
    }
    int rc = pthread_create(&o->th, NULL, run, o);
    if (rc != 0) {
        release(o);
        errno = rc;
        return NULL;
    }
    return o;
}

bool kr_offload_cancelled(const struct kr_offload *o)
{
    return __atomic_load_n(&o->cancel, __ATOMIC_ACQUIRE) != 0;
}

const int *kr_offload_cancel_flag(const struct kr_offload *o)
{
    return &o->cancel;
}

void kr_offload_cancel(struct kr_offload *o)
{
    if (!o)
        return;
    __atomic_store_n(&o->cancel, 1, __ATOMIC_RELEASE);
    pthread_join(o->th, NULL);
    release(o);
}
