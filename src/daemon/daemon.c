/*
 * daemon.c - the daemon object's lifecycle (see daemon.h): create, apply
 * (reload), stop and destroy over the store, the relay, the DNS service,
 * the periodic audit, the metrics server and the control API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "daemon/daemon-internal.h"
#include "exposition/exposition.h"
#include "kmsrelay/audit.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay.h"

#define STOP_POLL_MS 20

static int control_reload(void *arg, kr_control_reload_done_fn done, void *done_arg, char *err,
                          size_t errlen);

/* Without its control socket the daemon still serves activations: an
 * error line, not a failed start. */
static void start_control(struct kr_daemon *d)
{
    char err[1024];
    struct kr_control_deps deps = {d->relay, d->dns, d->audit, control_reload, d, d->peers};
    if (kr_control_start(d->base, &deps, &d->control, err, sizeof(err)) != 0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=control_error msg=%s action=\"running without the control API\"",
               kr_logfmt_value(err, q, sizeof(q)));
    }
}

static int start(struct kr_daemon *d, char *err, size_t errlen)
{
    int rc;
    if ((rc = daemon_store_open(d, err, errlen)) != 0)
        return rc;
    if ((rc = kr_relay_create(d->base, d->conf, d->store, &d->relay, err, errlen)) != 0)
        return rc;
    if ((rc = daemon_names_create(d, &d->names)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    /* Peers after the relay: received admin states go to its hosts. */
    if ((rc = kr_peers_start(d->base, d->conf, d->relay, d->store, &d->peers, err, errlen)) != 0)
        return rc;
    /* DNS after the listeners: our SRV names their port. */
    daemon_dns_env(d, &d->dns_env);
    if ((rc = kr_dns_create(&d->dns_env, &d->dns, err, errlen)) != 0)
        return rc;
    if (!(d->audit = kr_audit_periodic_create(d->base, d->conf, d->store))) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    kr_audit_periodic_set_peers(d->audit, d->peers);
    daemon_store_watch(d);
    return 0;
}

int kr_daemon_create(struct event_base *base, const struct kr_daemon_opts *o, struct kr_conf *conf,
                     struct kr_daemon **out, char *err, size_t errlen)
{
    struct kr_daemon *d = calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    d->opts = *o;
    d->base = base;
    d->conf = conf;
    if ((rc = start(d, err, errlen)) != 0) {
        d->conf = NULL; /* still the caller's */
        kr_daemon_destroy(d);
        return rc;
    }
    daemon_write_port_file(d);
    if ((rc = kr_metrics_server_start(base, d->relay, conf, &d->metrics, err, errlen)) != 0) {
        d->conf = NULL;
        kr_daemon_destroy(d);
        return rc;
    }
    kr_metrics_server_set_dns(d->metrics, d->dns); /* for the status page */
    kr_metrics_server_set_peers(d->metrics, d->peers);
    start_control(d);
    *out = d;
    return 0;
}

int kr_daemon_apply(struct kr_daemon *d, struct kr_conf *nc, char *err, size_t errlen)
{
    int rc;
    if (d->stopping) {
        snprintf(err, errlen, "kmsrelayd is shutting down");
        return KR_EINVAL;
    }
    if ((rc = kr_dns_check(nc, err, errlen)) != 0) /* DNS key files */
        return rc;
    if ((rc = kr_relay_apply(d->relay, nc, err, errlen)) != 0)
        return rc;
    struct kr_conf *old = d->conf;
    d->conf = nc;
    kr_dns_apply(d->dns);
    daemon_names_apply(d->names); /* every host name looked up again */
    kr_audit_periodic_apply(d->audit, nc);
    free(old);

    daemon_init_log(nc, d->opts.debug);
    daemon_warn_public(nc);
    /* The first listener may have changed (and port 0 means a new port). */
    daemon_write_port_file(d);
    kr_log(KR_LOG_INFO, "event=reload result=ok hosts=%zu listeners=%zu", nc->n_hosts,
           nc->n_listen);
    kr_control_apply(d->control); /* operator weights, socket mode and group */
    char merr[1024];
    if (kr_metrics_server_apply(&d->metrics, d->base, d->relay, nc, merr, sizeof(merr)) != 0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=reload metrics=failed reason=%s",
               kr_logfmt_value(merr, q, sizeof(q)));
    }
    kr_metrics_server_set_dns(d->metrics, d->dns);
    kr_metrics_server_set_peers(d->metrics, d->peers);
    return 0;
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
    struct kr_daemon *d = arg;
    size_t n = kr_relay_inflight(d->relay);

    /* Also wait for our DNS withdrawal (bounded by dns.withdraw_wait). */
    if (n == 0 && !kr_dns_busy(d->dns)) {
        event_base_loopbreak(d->base);
        return;
    }
    if (kr_now_us() >= d->stop_deadline_us) {
        kr_log(KR_LOG_WARN, "event=stop_grace_expired inflight=%zu", n);
        event_base_loopbreak(d->base);
        return;
    }
    struct timeval tv = {0, STOP_POLL_MS * 1000};
    evtimer_add(d->stop_timer, &tv);
}

void kr_daemon_stop(struct kr_daemon *d, const char *why)
{
    if (d->stopping) {
        kr_log(KR_LOG_WARN, "event=stopping signal=%s now=1", why);
        event_base_loopbreak(d->base);
        return;
    }
    d->stopping = true;
    kr_log(KR_LOG_INFO, "event=stopping signal=%s inflight=%zu grace_ms=%llu", why,
           kr_relay_inflight(d->relay), (unsigned long long)d->conf->shutdown_grace_ms);
    kr_relay_stop_accepting(d->relay);
    kr_dns_stop(d->dns); /* withdraw our SRV records */
    d->stop_deadline_us = kr_now_us() + d->conf->shutdown_grace_ms * 1000;
    if (!d->stop_timer && !(d->stop_timer = evtimer_new(d->base, on_stop_poll, d))) {
        event_base_loopbreak(d->base);
        return;
    }
    on_stop_poll(-1, 0, d);
}

void kr_daemon_destroy(struct kr_daemon *d)
{
    if (!d)
        return;
    daemon_reload_cancel(d);
    kr_control_free(d->control);        /* joins its workers: before the store closes */
    kr_metrics_server_free(d->metrics); /* before the relay: it reads the store */
    kr_audit_periodic_set_peers(d->audit, NULL);
    kr_peers_free(d->peers);             /* before the relay and store it writes */
    kr_dns_destroy(d->dns);              /* before the hosts it looks at */
    kr_audit_periodic_destroy(d->audit); /* before the store it records into */
    daemon_names_destroy(d->names);      /* before the relay it feeds */
    kr_relay_destroy(d->relay);
    daemon_store_close(d);
    if (d->stop_timer)
        event_free(d->stop_timer);
    free(d->conf);
    free(d);
}

static int control_reload(void *arg, kr_control_reload_done_fn done, void *done_arg, char *err,
                          size_t errlen)
{
    return kr_daemon_reload_start(arg, done, done_arg, err, errlen);
}
