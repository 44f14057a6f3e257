/*
 * job.c - requests that walk the pins run on a worker thread.
 *
 * A walk over ~100k pins decodes every record and takes on the order of a
 * hundred milliseconds (a million: about a second); the event loop that
 * serves activations must not wait for that. A handler snapshots what it
 * needs from the relay on the loop, starts a job, and returns CTL_ASYNC;
 * the job's work function runs on its own thread with only the store
 * (thread-safe) and that snapshot; when it is done it queues itself on
 * ctl->done and writes one byte to a pipe, and the loop answers the request
 * (after an optional `done` step that may look at the relay again).
 *
 * At most CTL_MAX_JOBS run at once (more get 503: an operator tool, not a
 * query engine). On shutdown every job is told to stop (ctl->stopping, which
 * walk callbacks check) and joined before the store can go away; their
 * requests are not answered (evhttp_free drops the connections).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "control/control-internal.h"
#include "kmsrelay/log.h"

bool ctl_job_cancelled(const struct ctl_job *j)
{
    return atomic_load(&j->ctl->stopping);
}

static void job_free(struct ctl_job *j)
{
    if (j->ctx_free)
        j->ctx_free(j->ctx);
    json_decref(j->out);
    if (j->raw)
        evbuffer_free(j->raw);
    free(j);
}

static void unlink_job(struct kr_control *ctl, struct ctl_job *j)
{
    for (struct ctl_job **p = &ctl->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            ctl->n_jobs--;
            return;
        }
}

static void *job_main(void *arg)
{
    struct ctl_job *j = arg;
    j->work(j);
    pthread_mutex_lock(&j->ctl->mu);
    j->next_done = j->ctl->done;
    j->ctl->done = j;
    pthread_mutex_unlock(&j->ctl->mu);
    /* The pipe is non-blocking: a full pipe already wakes the loop. */
    ssize_t w = write(j->ctl->notify[1], "j", 1);
    (void)w;
    return NULL;
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct kr_control *ctl = arg;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&ctl->mu);
    struct ctl_job *list = ctl->done;
    ctl->done = NULL;
    pthread_mutex_unlock(&ctl->mu);

    while (list) {
        struct ctl_job *j = list;
        list = j->next_done;
        pthread_join(j->th, NULL);
        unlink_job(ctl, j);
        if (j->done && j->status >= 200 && j->status < 300)
            j->done(j);
        if (j->raw && j->status >= 200 && j->status < 300) {
            ctl_reply_raw(ctl, j->req, j->status, j->raw, j->raw_type);
            j->raw = NULL;
        } else {
            json_t *out = j->out;
            j->out = NULL;
            ctl_reply(ctl, j->req, j->status, out, j->err);
        }
        job_free(j);
    }
}

int ctl_jobs_init(struct kr_control *ctl)
{
    if (pthread_mutex_init(&ctl->mu, NULL) != 0)
        return -1;
    if (pipe2(ctl->notify, O_CLOEXEC | O_NONBLOCK) != 0) {
        ctl->notify[0] = ctl->notify[1] = -1;
        return -1;
    }
    ctl->notify_ev = event_new(ctl->base, ctl->notify[0], EV_READ | EV_PERSIST, on_notify, ctl);
    if (!ctl->notify_ev || event_add(ctl->notify_ev, NULL) != 0)
        return -1;
    return 0;
}

void ctl_jobs_stop(struct kr_control *ctl)
{
    atomic_store(&ctl->stopping, true);
    while (ctl->jobs) {
        struct ctl_job *j = ctl->jobs;
        ctl->jobs = j->next;
        pthread_join(j->th, NULL);
        job_free(j);
    }
    ctl->n_jobs = 0;
    ctl->done = NULL; /* every job on it was in ctl->jobs too */
    if (ctl->notify_ev)
        event_free(ctl->notify_ev);
    ctl->notify_ev = NULL;
    for (int i = 0; i < 2; i++)
        if (ctl->notify[i] >= 0)
            close(ctl->notify[i]);
    ctl->notify[0] = ctl->notify[1] = -1;
    pthread_mutex_destroy(&ctl->mu);
}

int ctl_job_start(struct ctl_call *c, void (*work)(struct ctl_job *),
                  void (*done)(struct ctl_job *), void *ctx, void (*ctx_free)(void *))
{
    struct kr_control *ctl = c->ctl;
    struct ctl_job *j;

    if (ctl->n_jobs >= CTL_MAX_JOBS) {
        if (ctx_free)
            ctx_free(ctx);
        return ctl_fail(c->err, sizeof(c->err), 503,
                        "%d requests that walk the pins are running already; retry shortly",
                        CTL_MAX_JOBS);
    }
    if (!(j = calloc(1, sizeof(*j)))) {
        if (ctx_free)
            ctx_free(ctx);
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    }
    j->ctl = ctl;
    j->req = c->req;
    j->work = work;
    j->done = done;
    j->ctx = ctx;
    j->ctx_free = ctx_free;
    j->status = 500;
    int rc = pthread_create(&j->th, NULL, job_main, j);
    if (rc != 0) {
        job_free(j);
        return ctl_fail(c->err, sizeof(c->err), 503, "cannot start a worker thread: %s",
                        strerror(rc));
    }
    j->next = ctl->jobs;
    ctl->jobs = j;
    ctl->n_jobs++;
    return CTL_ASYNC;
}
