/*
 * pins.c - pins per host for kmsrelay_host_pins.
 *
 * Counting needs a walk over every pin (the store keeps no per-host index),
 * which on a million pins takes on the order of a second: far too long for
 * the event loop that is serving clients. So a scrape only *asks* for a
 * count: a background thread walks the store (its API is thread-safe) and
 * publishes the result under a mutex; scrapes show the last finished count
 * and its time (kmsrelay_host_pins_timestamp_seconds). At most one walk runs,
 * and not more often than every PINS_REFRESH_S.
 *
 * Ownership: the thread borrows the store; mx_pins_join() must run before
 * the store is closed (kr_metrics_server_free and kr_metrics_reset do).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/netaddr.h"
#include "kmsrelay/store.h"
#include "exposition/exposition-internal.h"

#define PINS_REFRESH_S 30
#define PINS_HOSTS_MAX 256 /* more distinct host names share one "other" row */

struct pin_count {
    char host[KR_PIN_HOST_MAX];
    uint64_t n;
};

struct pin_table {
    struct pin_count v[PINS_HOSTS_MAX];
    size_t n;
    uint64_t other;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pin_table *last; /* guarded by mu */
static int64_t last_at;        /* guarded by mu; unix s, 0 = never */
static bool running;           /* guarded by mu */
static bool joinable;          /* loop thread only */
static pthread_t th;
static struct kr_store *scan_store;
static uint64_t last_start_us; /* loop thread only */

static int count_one(const struct kr_pin *p, void *ctx)
{
    struct pin_table *t = ctx;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].host, p->host) == 0) {
            t->v[i].n++;
            return 0;
        }
    if (t->n == PINS_HOSTS_MAX) {
        t->other++;
        return 0;
    }
    memcpy(t->v[t->n].host, p->host, sizeof(t->v[t->n].host));
    t->v[t->n++].n = 1;
    return 0;
}

static void *scan(void *arg)
{
    struct pin_table *t = calloc(1, sizeof(*t));
    if (t && kr_store_pin_iter(scan_store, count_one, t) != 0) {
        free(t);
        t = NULL; /* keep the previous count */
    }
    pthread_mutex_lock(&mu);
    if (t) {
        free(last);
        last = t;
        last_at = kr_wall_s();
    }
    running = false;
    pthread_mutex_unlock(&mu);
    return NULL;
}

void mx_pins_join(void)
{
    if (joinable) {
        pthread_join(th, NULL);
        joinable = false;
    }
}

void mx_pins_refresh(struct kr_store *s)
{
    uint64_t now = kr_now_us();
    if (!s)
        return;
    pthread_mutex_lock(&mu);
    bool busy = running;
    pthread_mutex_unlock(&mu);
    if (busy || (last_start_us && now - last_start_us < PINS_REFRESH_S * 1000000ull))
        return;
    mx_pins_join(); /* the previous walk is finished: reap it */
    scan_store = s;
    running = true;
    if (pthread_create(&th, NULL, scan, NULL) != 0) {
        running = false;
        return;
    }
    joinable = true;
    last_start_us = now;
}

void mx_pins_render(struct evbuffer *b)
{
    mx_head(b, "kmsrelay_host_pins", "gauge",
            "Clients (CMIDs) pinned to the host, from the last background count of the store.");
    pthread_mutex_lock(&mu);
    if (last) {
        for (size_t i = 0; i < last->n; i++)
            mx_sample_u(b, "kmsrelay_host_pins", last->v[i].n, "host", last->v[i].host, NULL);
        if (last->other)
            mx_sample_u(b, "kmsrelay_host_pins", last->other, "host", "other", NULL);
    }
    int64_t at = last_at;
    pthread_mutex_unlock(&mu);
    mx_head(b, "kmsrelay_host_pins_timestamp_seconds", "gauge",
            "When the pins per host were last counted (unix time, 0 = not yet).");
    mx_sample_u(b, "kmsrelay_host_pins_timestamp_seconds", (uint64_t)(at > 0 ? at : 0), NULL);
}

void mx_pins_reset(void)
{
    mx_pins_join();
    pthread_mutex_lock(&mu);
    free(last);
    last = NULL;
    last_at = 0;
    pthread_mutex_unlock(&mu);
    last_start_us = 0;
}
