/*
 * pins.c - pins per host for kmsrelay_host_pins, and per host and
 * application for kmsrelay_host_app_pins (a client is the pair CMID,
 * application: the second is what each host's own per-application count
 * should match).
 *
 * Counting needs a walk over every pin (the store keeps no per-host index),
 * which on a million pins takes on the order of a second: far too long for
 * the event loop that is serving clients. So a scrape only *asks* for a
 * count: the walk runs off the loop (kr_offload_start, offload.h; the
 * store's API is thread-safe) and its result is installed on the loop when
 * it ends; scrapes show the last finished count and its time
 * (kmsrelay_host_pins_timestamp_seconds). At most one walk runs, and not
 * more often than every PINS_REFRESH_S.
 *
 * Ownership: the walk borrows the store; mx_pins_join() (which cancels a
 * walk in progress) must run before the store is closed
 * (kr_metrics_server_free and kr_metrics_reset do).
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/kms.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/offload.h"
#include "kmsrelay/store.h"
#include "exposition/exposition-internal.h"

#define PINS_REFRESH_S 30
#define PINS_HOSTS_MAX 256 /* more distinct host names share one "other" row */

#define PINS_APPS (KR_KMS_APPS_KNOWN + 1) /* kr_kms_app_index, with "other" */

struct pin_count {
    char host[KR_PIN_HOST_MAX];
    uint64_t n;
    uint64_t app[PINS_APPS];
};

struct pin_table {
    struct pin_count v[PINS_HOSTS_MAX];
    size_t n;
    uint64_t other;
    /* Clients seen within the report's 30-day window whose clock is off by
     * more than its 4 h (hosts refuse them), or whose CMID came with 2+
     * workstation names (an image without sysprep): kmsrelayctl report's
     * clock_skew and cloned_images, with its default limits. */
    int64_t window_start;
    uint64_t skewed, cloned;
};

/* Loop thread only: completions come back on the loop (offload.h). */
static struct pin_table *last;
static int64_t last_at; /* unix s, 0 = never */
static uint64_t last_start_us;
static struct kr_offload *scan_run; /* the count in progress, NULL when idle */

/* The running count's own state: the worker fills `t`. */
static struct scan {
    const struct kr_offload *self;
    struct kr_store *store;
    struct pin_table *t;
} scan_state;

static int count_one(const struct kr_pin *p, void *ctx)
{
    struct pin_table *t = ctx;
    if (scan_state.self && kr_offload_cancelled(scan_state.self))
        return 1; /* stop the walk */
    if (p->last_seen >= t->window_start) {
        t->skewed += p->skew_s > 4 * 3600 || p->skew_s < -4 * 3600;
        t->cloned += kr_pin_names_since(p, t->window_start) >= 2;
    }
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].host, p->host) == 0) {
            t->v[i].n++;
            t->v[i].app[kr_kms_app_index(p->app_id)]++;
            return 0;
        }
    if (t->n == PINS_HOSTS_MAX) {
        t->other++;
        return 0;
    }
    memcpy(t->v[t->n].host, p->host, sizeof(t->v[t->n].host));
    t->v[t->n].app[kr_kms_app_index(p->app_id)] = 1;
    t->v[t->n++].n = 1;
    return 0;
}

static void scan(struct kr_offload *o, void *arg)
{
    struct scan *x = arg;
    x->self = o;
    struct pin_table *t = calloc(1, sizeof(*t));
    if (t)
        t->window_start = kr_wall_s() - 30 * 86400;
    if (t && (kr_store_pin_iter(x->store, count_one, t) != 0 || kr_offload_cancelled(o))) {
        free(t);
        t = NULL; /* keep the previous count */
    }
    x->t = t;
}

static void scan_done(void *arg)
{
    struct scan *x = arg;
    scan_run = NULL;
    if (x->t) {
        free(last);
        last = x->t;
        last_at = kr_wall_s();
    }
    x->t = NULL;
}

void mx_pins_join(void)
{
    kr_offload_cancel(scan_run); /* a count in progress is abandoned */
    scan_run = NULL;
    free(scan_state.t);
    scan_state.t = NULL;
}

void mx_pins_refresh(struct event_base *base, struct kr_store *s)
{
    uint64_t now = kr_now_us();
    if (!s || !base || scan_run ||
        (last_start_us && now - last_start_us < PINS_REFRESH_S * 1000000ull))
        return;
    memset(&scan_state, 0, sizeof(scan_state));
    scan_state.store = s;
    if (!(scan_run = kr_offload_start(base, scan, scan_done, &scan_state)))
        return;
    last_start_us = now;
}

void mx_pins_render(struct evbuffer *b)
{
    mx_head(b, "kmsrelay_host_pins", "gauge",
            "Clients (pairs of CMID and application) pinned to the host, from the last "
            "background count of the store.");
    if (last) {
        for (size_t i = 0; i < last->n; i++)
            mx_sample_u(b, "kmsrelay_host_pins", last->v[i].n, "host", last->v[i].host, NULL);
        if (last->other)
            mx_sample_u(b, "kmsrelay_host_pins", last->other, "host", "other", NULL);
    }
    mx_head(b, "kmsrelay_host_app_pins", "gauge",
            "Clients pinned to the host per application: what the host's own count for that "
            "application should match.");
    for (size_t i = 0; last && i < last->n; i++)
        for (unsigned a = 0; a < PINS_APPS; a++)
            if (last->v[i].app[a])
                mx_sample_u(b, "kmsrelay_host_app_pins", last->v[i].app[a], "host", last->v[i].host,
                            "app", kr_kms_app_label((int)a), NULL);
    uint64_t skewed = last ? last->skewed : 0, cloned = last ? last->cloned : 0;
    mx_head(b, "kmsrelay_client_findings", "gauge",
            "Clients seen within 30 days with a clock more than 4 h off (clock_skew) or a CMID "
            "used by 2+ workstation names (cloned_image), from the last count of the store.");
    mx_sample_u(b, "kmsrelay_client_findings", skewed, "kind", "clock_skew", NULL);
    mx_sample_u(b, "kmsrelay_client_findings", cloned, "kind", "cloned_image", NULL);
    mx_head(b, "kmsrelay_host_pins_timestamp_seconds", "gauge",
            "When the pins per host were last counted (unix time, 0 = not yet).");
    mx_sample_u(b, "kmsrelay_host_pins_timestamp_seconds", (uint64_t)(last_at > 0 ? last_at : 0),
                NULL);
}

bool mx_pins_of(const char *host, uint64_t *n)
{
    for (size_t i = 0; last && i < last->n; i++)
        if (strcmp(last->v[i].host, host) == 0) {
            *n = last->v[i].n;
            return true;
        }
    return false;
}

int64_t mx_pins_when(void)
{
    return last_at > 0 ? last_at : 0;
}

void mx_pins_reset(void)
{
    mx_pins_join();
    free(last);
    last = NULL;
    last_at = 0;
    last_start_us = 0;
}
