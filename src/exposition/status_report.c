/*
 * status_report.c - the activation report the status page shows, built off
 * the event loop and cached.
 *
 * kr_report_build() walks every pin twice (about a second per walk on a
 * million pins), so a page view never waits for it: the view shows the last
 * finished report with its time and asks for a new one when that is older
 * than the refresh time; the build runs on a worker (kr_offload_start,
 * offload.h) with the store (thread-safe) and a copy of the hosts taken on
 * the loop (kr_report_relay_hosts), and its result replaces the cache on the
 * loop. At most one build runs. The refresh time is REFRESH_MIN_S, or ten
 * times the last build's duration when that is longer, so that an open page
 * (which reloads itself every 10 s) keeps a worker busy at most a tenth of
 * the time however large the store is.
 *
 * Ownership: the cache owns its report and its running build; the build
 * borrows the store, so mx_report_cache_free() (which cancels and waits for
 * a build in progress) must run before the store is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/offload.h"
#include "kmsrelay/report.h"
#include "exposition/status.h"
#include "relay/relay.h"

#define REFRESH_MIN_S 10
#define PAGE_ITEMS 20 /* items per finding list on the page; totals stay exact */

struct build {
    struct mx_report_cache *cache;
    struct kr_store *store;
    struct kr_report_host hosts[KR_RELAY_MAX_HOSTS];
    size_t n;
    int64_t now;
    uint64_t start_us, end_us;
    json_t *out;
    int rc;
    const char *why;
};

struct mx_report_cache {
    json_t *report; /* last finished one, NULL = none yet */
    int64_t at;     /* its "now" (unix s) */
    char err[160];  /* why the last build failed, "" when it did not */
    uint64_t last_start_us, interval_us;
    struct kr_offload *run; /* the build in progress, NULL when idle */
    struct build *job;
};

struct mx_report_cache *mx_report_cache_new(void)
{
    struct mx_report_cache *c = calloc(1, sizeof(*c));
    if (c)
        c->interval_us = REFRESH_MIN_S * 1000000ull;
    return c;
}

static void work(struct kr_offload *o, void *arg)
{
    struct build *x = arg;
    struct kr_report_opts opts = {.max_items = PAGE_ITEMS};
    (void)o; /* kr_report_build cannot stop midway; cancel waits for it */
    x->rc = kr_report_build(x->store, x->hosts, x->n, x->now, &opts, &x->out, &x->why);
    x->end_us = kr_now_us();
}

static void done(void *arg)
{
    struct build *x = arg;
    struct mx_report_cache *c = x->cache;
    uint64_t took = x->end_us > x->start_us ? x->end_us - x->start_us : 0;

    c->run = NULL;
    c->job = NULL;
    c->interval_us =
        10 * took > REFRESH_MIN_S * 1000000ull ? 10 * took : REFRESH_MIN_S * 1000000ull;
    if (x->rc == 0 && x->out) {
        json_decref(c->report);
        c->report = x->out;
        c->at = x->now;
        c->err[0] = '\0';
    } else {
        json_decref(x->out);
        snprintf(c->err, sizeof(c->err), "%s", x->why ? x->why : kr_strerror(x->rc));
    }
    free(x);
}

void mx_report_cache_refresh(struct mx_report_cache *c, struct kr_relay *r)
{
    uint64_t now = kr_now_us();
    if (!c || !r || !r->store || !r->base || c->run ||
        (c->last_start_us && now - c->last_start_us < c->interval_us))
        return;
    struct build *x = calloc(1, sizeof(*x));
    if (!x)
        return;
    x->cache = c;
    x->store = r->store;
    x->n = kr_report_relay_hosts(r, x->hosts, KR_RELAY_MAX_HOSTS);
    x->now = kr_wall_s();
    x->start_us = now;
    if (!(c->run = kr_offload_start(r->base, work, done, x))) {
        free(x);
        return;
    }
    c->job = x;
    c->last_start_us = now;
}

const json_t *mx_report_cache_get(const struct mx_report_cache *c, int64_t *at, const char **err)
{
    *at = c ? c->at : 0;
    *err = c && c->err[0] ? c->err : NULL;
    return c ? c->report : NULL;
}

bool mx_report_cache_busy(const struct mx_report_cache *c)
{
    return c && c->run;
}

void mx_report_cache_free(struct mx_report_cache *c)
{
    if (!c)
        return;
    if (c->run) {
        kr_offload_cancel(c->run); /* waits for the build; done is not called */
        json_decref(c->job->out);
        free(c->job);
    }
    json_decref(c->report);
    free(c);
}
