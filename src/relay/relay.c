/*
 * relay.c - the proxy's lifecycle: create from a validated config (host
 * table, listeners, timers) over a store it borrows, apply a new config on
 * reload, and tear everything down on exit. The daemon (src/daemon) opens
 * and closes the store and runs the modules above the relay.
 *
 * Housekeeping (expire_timer, every 10 s): one bounded step of idle pin
 * expiry (pin_idle), freeing removed hosts once idle, dropping idle
 * per-source limit entries.
 *
 * Activation lines (kr_log_defer) are buffered and written in batches: of
 * 32 lines (log.c), or after LOG_FLUSH_MS by log_flush_ev, a timer armed by
 * the first line of a batch (log.h). A timer costs no system call of its
 * own: it only shortens the loop's epoll_wait timeout.
 *
 * Ownership: the relay borrows `conf` and `store`; kr_relay_apply switches
 * to `newconf` on success, and the caller frees the old config afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

#define HOUSEKEEPING_MS 10000
#define LOG_FLUSH_MS 10 /* the longest an activation line waits in the buffer */
#define EXPIRE_BATCH 2000

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct kr_relay *r = arg;
    size_t queued = 0;
    bool wrapped = false;
    int64_t idle_before = kr_wall_s() - (int64_t)(r->conf->pin_idle_ms / 1000);

    int rc = kr_store_expire(r->store, idle_before, EXPIRE_BATCH, &queued, &wrapped);
    if (rc != 0)
        kr_log(KR_LOG_WARN, "event=store_error what=\"pin expiry\" error=\"%s\"", kr_strerror(rc));
    else if (queued)
        kr_log(KR_LOG_INFO, "event=pins_expired queued=%zu", queued);
    relay_hosts_reap(r);
    kr_limits_sweep(r);
    arm_ms(r->expire_timer, HOUSEKEEPING_MS);
}

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    kr_log_flush();
}

/* The first line of a batch arms the flush: the batch goes out when it has
 * LOGBUF_BATCH_LINES lines (log.c) or after LOG_FLUSH_MS, whichever comes
 * first. Once per loop iteration cost one write() per activation under
 * load (an iteration rarely ends more than one); this costs one per ~30. */
static void log_kick(void *arg)
{
    struct kr_relay *r = arg;
    if (!evtimer_pending(r->log_flush_ev, NULL))
        arm_ms(r->log_flush_ev, LOG_FLUSH_MS);
}

int kr_relay_create(struct event_base *base, const struct kr_conf *conf, struct kr_store *store,
                    struct kr_relay **out, char *err, size_t errlen)
{
    struct kr_relay *r = calloc(1, sizeof(*r));
    struct kr_host *settle[KR_CONF_MAX_HOSTS];
    size_t n_settle = 0;
    int rc;

    if (!r) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    r->base = base;
    r->conf = conf;
    r->store = store;
    r->started_us = kr_now_us();
    r->started_wall = kr_wall_s();
    if ((rc = kr_limits_init(r)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((rc = relay_hosts_apply(r, conf, settle, &n_settle, err, errlen)) != 0)
        goto fail;
    r->expire_timer = evtimer_new(base, on_housekeeping, r);
    r->log_flush_ev = evtimer_new(base, on_log_flush, r);
    r->early_close = (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) != 0;
    if (!r->expire_timer || !r->log_flush_ev) {
        snprintf(err, errlen, "out of memory");
        rc = KR_ENOMEM;
        goto fail;
    }
    /* Listeners last: nothing is accepted before the rest is ready. */
    if ((rc = relay_listen_apply(r, conf, err, errlen)) != 0)
        goto fail;
    arm_ms(r->expire_timer, HOUSEKEEPING_MS);
    kr_log_buffer_start(log_kick, r);
    *out = r;
    return 0;

fail:
    kr_relay_destroy(r);
    return rc;
}

static void note_restart_only(const struct kr_conf *o, const struct kr_conf *n)
{
    char names[16][KR_CONF_SETTING_MAX];
    size_t k = kr_conf_restart_changes(o, n, names, 16);
    for (size_t i = 0; i < k && i < 16; i++)
        kr_log(KR_LOG_WARN, "event=reload_note setting=%s msg=\"takes effect at the next start\"",
               names[i]);
}

int kr_relay_apply(struct kr_relay *r, const struct kr_conf *newconf, char *err, size_t errlen)
{
    struct kr_host *settle[2 * KR_RELAY_MAX_HOSTS];
    size_t n_settle = 0;
    int rc;

    if (r->stopping) {
        snprintf(err, errlen, "shutting down");
        return KR_EINVAL;
    }
    if (r->n_hosts + newconf->n_hosts > 2 * KR_RELAY_MAX_HOSTS) {
        snprintf(err, errlen, "too many hosts");
        return KR_EINVAL;
    }
    if ((rc = relay_hosts_check(r, newconf, err, errlen)) != 0)
        return rc;
    /* Listeners first: the only step that can fail for outside reasons
     * (address in use); on failure nothing has changed. */
    if ((rc = relay_listen_apply(r, newconf, err, errlen)) != 0)
        return rc;
    if ((rc = relay_hosts_apply(r, newconf, settle, &n_settle, err, errlen)) != 0) {
        /* Out of memory only. Put the old listeners back (dropped ones are
         * reopened; a port-0 listener may get another port). */
        char e2[256];
        if (relay_listen_apply(r, r->conf, e2, sizeof(e2)) != 0)
            kr_log(KR_LOG_ERR, "event=reload_error what=\"restoring listeners\" error=\"%s\"", e2);
        return rc;
    }
    note_restart_only(r->conf, newconf);
    r->conf = newconf;
    relay_hosts_settle(r, settle, n_settle);
    return 0;
}

void kr_relay_destroy(struct kr_relay *r)
{
    if (!r)
        return;
    r->stopping = true;
    relay_listen_close_all(r);
    kr_front_close_all(r);
    /* Cancel everything first (request callbacks may still look at the
     * table), then free. */
    for (size_t i = 0; i < r->n_hosts; i++) {
        kr_health_stop(r->hosts[i]);
        kr_backend_abort_host(r->hosts[i]);
    }
    for (size_t i = 0; i < r->n_hosts; i++)
        relay_host_free(r->hosts[i]);
    free(r->hosts);
    r->hosts = NULL;
    r->n_hosts = 0;
    if (r->reqs_inflight)
        kr_log(KR_LOG_WARN, "event=stop requests_abandoned=%zu", r->reqs_inflight);
    if (r->expire_timer)
        event_free(r->expire_timer);
    if (r->log_flush_ev) {
        kr_log_buffer_stop(); /* writes what is buffered */
        event_free(r->log_flush_ev);
    }
    kr_limits_free(r);
    kr_front_pools_free(r);
    free(r);
}

size_t kr_relay_inflight(const struct kr_relay *r)
{
    return r->reqs_inflight;
}

void kr_relay_listen_describe(const struct kr_relay *r, char *out, size_t cap)
{
    relay_listen_describe(r, out, cap);
}
