/*
 * job.c - requests that walk the pins run on a worker thread.
 *
 * A walk over ~100k pins decodes every record and takes on the order of a
 * hundred milliseconds (a million: about a second); the event loop that
 * serves activations must not wait for that. A handler snapshots what it
 * needs from the relay on the loop, starts a job, and returns CTL_ASYNC;
 * the job's work function runs off the loop (kr_offload_start, offload.h)
 * with only the store (thread-safe) and that snapshot; its completion comes
 * back on the loop, which answers the request (after an optional `done`
 * step that may look at the relay again).
 *
 * At most CTL_MAX_JOBS run at once (more get 503: an operator tool, not a
 * query engine). On shutdown every job is cancelled (walk callbacks check
 * ctl_job_cancelled) and waited for before the store can go away; their
 * requests are not answered (evhttp_free drops the connections).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "control/control-internal.h"
#include "kmsrelay/log.h"
#include "kmsrelay/offload.h"

bool ctl_job_cancelled(const struct ctl_job *j)
{
    return j->self && kr_offload_cancelled(j->self);
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

static void job_work(struct kr_offload *o, void *arg)
{
    struct ctl_job *j = arg;
    j->self = o;
    j->work(j);
}

/* On the loop, once the work returned: answer the request. */
static void job_done(void *arg)
{
    struct ctl_job *j = arg;
    struct kr_control *ctl = j->ctl;
    j->off = NULL; /* freed by the offload itself */
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

int ctl_jobs_init(struct kr_control *ctl)
{
    ctl->jobs = NULL;
    ctl->n_jobs = 0;
    return 0;
}

void ctl_jobs_stop(struct kr_control *ctl)
{
    while (ctl->jobs) {
        struct ctl_job *j = ctl->jobs;
        ctl->jobs = j->next;
        kr_offload_cancel(j->off);
        job_free(j);
    }
    ctl->n_jobs = 0;
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
    if (!(j->off = kr_offload_start(ctl->base, job_work, job_done, j))) {
        int e = errno;
        job_free(j);
        return ctl_fail(c->err, sizeof(c->err), 503, "cannot start a worker thread: %s",
                        strerror(e));
    }
    j->next = ctl->jobs;
    ctl->jobs = j;
    ctl->n_jobs++;
    return CTL_ASYNC;
}
