/*
 * relay.c - kmsrelayd's runtime lifecycle: create from a validated config
 * (store, host table, listeners, timers), apply a new config on reload,
 * and tear everything down on exit.
 *
 * Store: opened in conf.state_dir (created 0750 when missing) with the
 * store's background flusher (flush_interval = commit_interval, early
 * flush at commit_batch queued pins), so the event loop never waits for an
 * fsync. commit_timer watches those background commits and raises one
 * alarm per failing episode. A store that cannot open stops the start: the
 * pins are the product, running without them would silently break
 * affinity.
 *
 * Housekeeping (expire_timer, every 10 s): one bounded step of idle pin
 * expiry (pin_idle), freeing removed hosts once idle, dropping idle
 * per-source limit entries.
 *
 * Ownership: kr_relay_create takes `conf` on success (the caller keeps it on
 * failure); kr_relay_apply likewise takes `newconf` on success and frees
 * the old config.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "dnsservice/dnsservice.h"
#include "kmsrelay/audit.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

#define HOUSEKEEPING_MS 10000
#define EXPIRE_BATCH 2000

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* mkdir -p, new components 0750: the pins are not for every local user. */
static int make_dirs(const char *dir)
{
    char path[KR_CONF_PATH_MAX];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int open_store(struct kr_relay *r, char *err, size_t errlen)
{
    const struct kr_conf *c = r->conf;
    struct kr_store_opts opts;
    const char *why = NULL;

    if (make_dirs(c->state_dir) != 0) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", c->state_dir,
                 strerror(errno));
        return KR_EIO;
    }
    memset(&opts, 0, sizeof(opts));
    opts.map_size = c->map_size;
    opts.flush_interval_ms =
        c->commit_interval_ms > 60000 ? 60000 : (unsigned)c->commit_interval_ms;
    opts.flush_batch = c->commit_batch;
    errno = 0;
    int rc = kr_store_open(c->state_dir, &opts, &r->store, &why);
    if (rc != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open the state store in %s: %s%s%s", c->state_dir,
                 why ? why : kr_strerror(rc), e ? ": " : "", e ? strerror(e) : "");
        r->store = NULL;
        return rc;
    }
    return 0;
}

/* The background flusher reports through the store's counters. */
static void on_commit_watch(evutil_socket_t fd, short what, void *arg)
{
    struct kr_relay *r = arg;
    struct kr_store_stats st;

    kr_store_stats(r->store, &st);
    if (st.commit_failures > r->commit_failures_seen && !r->commit_alarm) {
        r->commit_alarm = true;
        kr_log(KR_LOG_ERR,
               "event=store_alarm state=commit_failing error=\"%s\" pending=%zu drops=%llu "
               "action=\"pins are kept in memory and retried\"",
               st.last_why && *st.last_why ? st.last_why : kr_strerror(st.last_error), st.pending,
               (unsigned long long)st.drops);
    } else if (r->commit_alarm && !st.degraded) {
        r->commit_alarm = false;
        kr_log(KR_LOG_WARN, "event=store_alarm state=commits_ok pending=%zu", st.pending);
    }
    r->commit_failures_seen = st.commit_failures;
    arm_ms(r->commit_timer, r->conf->commit_interval_ms < 200 ? 200 : r->conf->commit_interval_ms);
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

int kr_relay_create(struct event_base *base, struct kr_conf *conf, struct kr_relay **out, char *err,
                    size_t errlen)
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
    r->started_us = kr_now_us();
    r->started_wall = kr_wall_s();
    if ((rc = kr_limits_init(r)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((rc = open_store(r, err, errlen)) != 0)
        goto fail;
    if ((rc = relay_hosts_apply(r, conf, settle, &n_settle, err, errlen)) != 0)
        goto fail;
    r->commit_timer = evtimer_new(base, on_commit_watch, r);
    r->expire_timer = evtimer_new(base, on_housekeeping, r);
    if (!r->commit_timer || !r->expire_timer) {
        snprintf(err, errlen, "out of memory");
        rc = KR_ENOMEM;
        goto fail;
    }
    /* Listeners last: nothing is accepted before the rest is ready. */
    if ((rc = relay_listen_apply(r, conf, err, errlen)) != 0)
        goto fail;
    /* DNS after the listeners: our SRV names their port. */
    if ((rc = kr_dns_create(r, &r->dns, err, errlen)) != 0)
        goto fail;
    if (!(r->audit = kr_audit_periodic_create(base, conf, r->store))) {
        snprintf(err, errlen, "out of memory");
        rc = KR_ENOMEM;
        goto fail;
    }
    arm_ms(r->commit_timer, 1000);
    arm_ms(r->expire_timer, HOUSEKEEPING_MS);
    *out = r;
    return 0;

fail:
    r->conf = NULL; /* still the caller's */
    kr_relay_destroy(r);
    return rc;
}

static void note_restart_only(const struct kr_conf *o, const struct kr_conf *n)
{
    static const char msg[] = "takes effect at the next start";
    if (strcmp(o->state_dir, n->state_dir) != 0)
        kr_log(KR_LOG_WARN, "event=reload_note setting=state_dir msg=\"%s\"", msg);
    if (o->map_size != n->map_size)
        kr_log(KR_LOG_WARN, "event=reload_note setting=store.map_size msg=\"%s\"", msg);
    if (o->commit_interval_ms != n->commit_interval_ms || o->commit_batch != n->commit_batch)
        kr_log(KR_LOG_WARN, "event=reload_note setting=store.commit msg=\"%s\"", msg);
}

int kr_relay_apply(struct kr_relay *r, struct kr_conf *newconf, char *err, size_t errlen)
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
    if ((rc = kr_dns_check(newconf, err, errlen)) != 0) /* DNS key files */
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
    free(r->conf);
    r->conf = newconf;
    relay_hosts_settle(r, settle, n_settle);
    kr_dns_apply(r->dns);
    kr_audit_periodic_apply(r->audit, r->conf);
    return 0;
}

void kr_relay_destroy(struct kr_relay *r)
{
    if (!r)
        return;
    r->stopping = true;
    kr_dns_destroy(r->dns); /* before the hosts it looks at */
    r->dns = NULL;
    kr_audit_periodic_destroy(r->audit); /* before the store it records into */
    r->audit = NULL;
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
    if (r->commit_timer)
        event_free(r->commit_timer);
    if (r->expire_timer)
        event_free(r->expire_timer);
    if (r->store) {
        size_t pending = kr_store_pending(r->store);
        int rc = kr_store_close(r->store);
        if (rc != 0)
            kr_log(KR_LOG_ERR, "event=store_error what=\"final flush\" error=\"%s\" lost=%zu",
                   kr_strerror(rc), pending);
        else
            kr_log(KR_LOG_INFO, "event=store_closed flushed=%zu", pending);
    }
    kr_limits_free(r);
    free(r->conf);
    free(r);
}

size_t kr_relay_inflight(const struct kr_relay *r)
{
    return r->reqs_inflight;
}
