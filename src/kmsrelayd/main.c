/*
 * main.c - kmsrelayd: reads the configuration, starts the relay on one
 * libevent loop, and handles signals: SIGHUP reloads (a bad config keeps the
 * running one), SIGTERM/SIGINT stop gracefully (stop accepting, let requests
 * in flight finish within shutdown_grace, flush the pins, free everything).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "kmsrelay/metrics.h"
#include "kmsrelay/report.h"
#include "dns/dnsd.h"
#include "control/control.h"
#include "kmsrelayd/kmsrelayd.h"
#include "relay/relay.h"

#define ERRBUF 16384

/* systemd readiness (Type=notify): READY, RELOADING, STOPPING. Without
 * libsystemd, or when not started by systemd, these do nothing. */
#ifdef KR_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
static int sd_notify(int unset_environment, const char *state)
{
    return 0;
}
#endif
#define STOP_POLL_MS 20

struct daemon {
    struct kd_opts opts;
    struct event_base *base;
    struct kr_relay *relay;
    struct kr_metrics_server *metrics; /* NULL when metrics are off */
    struct kr_control *control;        /* NULL when the control socket failed */
    struct event *sig_hup, *sig_term, *sig_int, *stop_timer;
    uint64_t stop_deadline_us;
    bool stopping;
};

/* Logs a multi-line error text, one log line per message. */
static void log_lines(int level, const char *event, const char *text)
{
    char q[600];
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1),
                 text);
        if (n)
            kr_log(level, "event=%s msg=%s", event, kr_logfmt_value(line, q, sizeof(q)));
        text += n + (nl ? 1 : 0);
    }
}

static void init_log(const struct kr_conf *c, bool debug)
{
    kr_log_init("kmsrelayd", debug ? 0 : c->log_syslog, debug ? KR_LOG_DEBUG : c->log_level);
}

/* Loopback, private and link-local networks: a listener there is not public. */
static bool addr_is_private(const struct sockaddr *sa)
{
    static const char *const nets[] = {"127.0.0.0/8",    "10.0.0.0/8",     "172.16.0.0/12",
                                       "192.168.0.0/16", "169.254.0.0/16", "::1/128",
                                       "fc00::/7",       "fe80::/10"};
    struct kr_cidr c;
    for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
        if (kr_cidr_parse(nets[i], &c, NULL) == 0 && kr_cidr_match(&c, sa))
            return true;
    return false;
}

static void warn_public(const struct kr_conf *c)
{
    bool allow_all = c->n_allow == 0;
    for (size_t i = 0; i < c->n_allow; i++)
        allow_all |= c->allow[i].prefix == 0;
    if (!allow_all)
        return;
    for (size_t i = 0; i < c->n_listen; i++) {
        if (addr_is_private((const struct sockaddr *)&c->listen[i].ss))
            continue;
        char a[KR_ADDRSTRLEN];
        kr_addr_format((const struct sockaddr *)&c->listen[i].ss, a);
        kr_log(KR_LOG_WARN,
               "event=warning listen=%s msg=\"listener is public and the allow-list allows every "
               "client: anyone who can reach it can use your KMS hosts; set clients.allow\"",
               a);
    }
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The one reload path, for SIGHUP and the control API's POST /v1/reload:
 * parse, validate, apply. Returns 0, KR_EUNSUP (no file to read),
 * KR_ECONFIG (every error in err, one per line) or the apply error. */
static int reload_now(struct daemon *d, char *err, size_t errlen)
{
    struct kr_conf *nc = NULL;
    int rc;

    if (!d->opts.config) {
        snprintf(err, errlen, "no configuration file (-c)");
        kr_log(KR_LOG_WARN, "event=reload result=ignored reason=\"no configuration file (-c)\"");
        return KR_EUNSUP;
    }
    kr_log(KR_LOG_INFO, "event=reload config=%s", d->opts.config);
    sd_notify(0, "RELOADING=1");
    if (kd_build_conf(&d->opts, &nc, err, errlen) != 0) {
        rc = KR_ECONFIG;
        log_lines(KR_LOG_ERR, "config_error", err);
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=\"configuration has errors; "
                           "the running configuration is kept\"");
    } else if ((rc = kr_relay_apply(d->relay, nc, err, errlen)) != 0) {
        char q[300];
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=%s",
               kr_logfmt_value(err, q, sizeof(q)));
        free(nc);
    } else {
        struct kr_addr first;
        init_log(nc, d->opts.debug);
        warn_public(nc);
        /* The first listener may have changed (and port 0 means a new port). */
        if (d->opts.port_file && kr_relay_listen_addrs(d->relay, &first, 1) == 1)
            write_port_file(d->opts.port_file, kr_addr_port((const struct sockaddr *)&first.ss));
        kr_log(KR_LOG_INFO, "event=reload result=ok hosts=%zu listeners=%zu", nc->n_hosts,
               nc->n_listen);
        kr_control_apply(d->control); /* operator weights, socket mode and group */
        if (kr_metrics_server_apply(&d->metrics, d->base, d->relay, nc, err, errlen) != 0) {
            char q[600];
            kr_log(KR_LOG_ERR, "event=reload metrics=failed reason=%s",
                   kr_logfmt_value(err, q, sizeof(q)));
        }
    }
    sd_notify(0, "READY=1");
    return rc;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    char *err;

    if (d->stopping)
        return;
    if (!(err = calloc(1, ERRBUF))) {
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=\"out of memory\"");
        return;
    }
    reload_now(d, err, ERRBUF);
    free(err);
}

static int control_reload(void *arg, char *err, size_t errlen)
{
    struct daemon *d = arg;
    if (d->stopping) {
        snprintf(err, errlen, "kmsrelayd is shutting down");
        return KR_EINVAL;
    }
    return reload_now(d, err, errlen);
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    size_t n = kr_relay_inflight(d->relay);

    /* Also wait for our DNS withdrawal (bounded by dns.withdraw_wait). */
    if (n == 0 && !kr_dns_busy(d->relay->dns)) {
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

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping) {
        kr_log(KR_LOG_WARN, "event=stopping signal=%s now=1", sig == SIGINT ? "INT" : "TERM");
        event_base_loopbreak(d->base);
        return;
    }
    d->stopping = true;
    sd_notify(0, "STOPPING=1");
    kr_log(KR_LOG_INFO, "event=stopping signal=%s inflight=%zu grace_ms=%llu",
           sig == SIGINT ? "INT" : "TERM", kr_relay_inflight(d->relay),
           (unsigned long long)d->relay->conf->shutdown_grace_ms);
    kr_relay_stop_accepting(d->relay);
    kr_dns_stop(d->relay->dns); /* withdraw our SRV records */
    d->stop_deadline_us = kr_now_us() + d->relay->conf->shutdown_grace_ms * 1000;
    on_stop_poll(-1, 0, d);
}

static int run(struct daemon *d, struct kr_conf *conf)
{
    char err[1024], a[KR_ADDRSTRLEN], listeners[1024] = "";
    struct kr_addr bound[KR_CONF_MAX_LISTEN];

    for (size_t i = 0; i < conf->n_listen; i++) {
        kr_addr_format((const struct sockaddr *)&conf->listen[i].ss, a);
        snprintf(listeners + strlen(listeners), sizeof(listeners) - strlen(listeners), "%s%s",
                 i ? "," : "", a);
    }
    kr_log(KR_LOG_INFO,
           "event=start version=" KR_VERSION " config=%s listeners=%s hosts=%zu state_dir=%s "
           "instance=%s",
           conf->source[0] ? conf->source : "(defaults)", listeners, conf->n_hosts, conf->state_dir,
           conf->instance_id);
    warn_public(conf);

    if (kr_relay_create(d->base, conf, &d->relay, err, sizeof(err)) != 0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=fatal msg=%s", kr_logfmt_value(err, q, sizeof(q)));
        free(conf);
        return 1;
    }
    size_t nb = kr_relay_listen_addrs(d->relay, bound, KR_CONF_MAX_LISTEN);
    listeners[0] = '\0';
    for (size_t i = 0; i < nb; i++) {
        kr_addr_format((const struct sockaddr *)&bound[i].ss, a);
        snprintf(listeners + strlen(listeners), sizeof(listeners) - strlen(listeners), "%s%s",
                 i ? "," : "", a);
    }
    if (d->opts.port_file && nb > 0 &&
        write_port_file(d->opts.port_file, kr_addr_port((const struct sockaddr *)&bound[0].ss)) !=
            0)
        kr_log(KR_LOG_WARN, "event=warning msg=\"cannot write the port file %s: %s\"",
               d->opts.port_file, strerror(errno));

    d->sig_hup = evsignal_new(d->base, SIGHUP, on_reload, d);
    d->sig_term = evsignal_new(d->base, SIGTERM, on_stop, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_stop, d);
    d->stop_timer = evtimer_new(d->base, on_stop_poll, d);
    if (!d->sig_hup || !d->sig_term || !d->sig_int || !d->stop_timer ||
        evsignal_add(d->sig_hup, NULL) || evsignal_add(d->sig_term, NULL) ||
        evsignal_add(d->sig_int, NULL)) {
        kr_log(KR_LOG_ERR, "event=fatal msg=\"cannot install signal handlers\"");
        return 1;
    }
    if (kr_metrics_server_start(d->base, d->relay, conf, &d->metrics, err, sizeof(err)) != 0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=fatal msg=%s", kr_logfmt_value(err, q, sizeof(q)));
        return 1;
    }
    /* Without its control socket the daemon still serves activations: an
     * error line, not a failed start. */
    if (kr_control_start(d->base, d->relay, control_reload, d, &d->control, err, sizeof(err)) !=
        0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=control_error msg=%s action=\"running without the control API\"",
               kr_logfmt_value(err, q, sizeof(q)));
    }
    kr_log(KR_LOG_INFO, "event=ready listen=%s hosts=%zu pid=%ld", listeners, conf->n_hosts,
           (long)getpid());
    sd_notify(0, "READY=1");

    event_base_dispatch(d->base);

    kr_control_free(d->control); /* joins its workers: before the store closes */
    d->control = NULL;
    kr_metrics_server_free(d->metrics); /* before the relay: it reads the store */
    d->metrics = NULL;
    kr_relay_destroy(d->relay);
    d->relay = NULL;
    /* Freed bufferevents with deferred callbacks still queued are released
     * by those callbacks: let the loop run them before the base goes. */
    for (int i = 0; i < 8; i++)
        event_base_loop(d->base, EVLOOP_NONBLOCK);
    kr_log(KR_LOG_INFO, "event=stop");
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon d;
    struct kr_conf *conf = NULL;
    char *err;
    int rc;

    memset(&d, 0, sizeof(d));
    rc = kd_parse_args(argc, argv, &d.opts);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!(err = calloc(1, ERRBUF)))
        return 1;
    if (kd_build_conf(&d.opts, &conf, err, ERRBUF) != 0) {
        fputs(err, stderr);
        if (!d.opts.check)
            fprintf(stderr, "kmsrelayd: not started: the configuration has errors\n");
        free(err);
        return 1;
    }
    free(err);
    if (d.opts.check) {
        printf("configuration OK\n");
        free(conf);
        return 0;
    }
    if (d.opts.report) {
        char rerr[512];
        rc = kr_report_offline(conf, d.opts.report, stdout, rerr, sizeof(rerr));
        if (rc != 0)
            fprintf(stderr, "kmsrelayd: %s\n", rerr);
        free(conf);
        return rc != 0;
    }

    /* A client that goes away mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* Nor a file-size limit (systemd LimitFSIZE=, ulimit -f) on the store:
     * the write fails with EFBIG instead, the store keeps the pins in
     * memory and raises its alarm, and clients are still served. */
    signal(SIGXFSZ, SIG_IGN);
    init_log(conf, d.opts.debug);
    d.base = event_base_new();
    if (!d.base) {
        kr_log(KR_LOG_ERR, "event=fatal msg=\"cannot create the event loop\"");
        free(conf);
        return 1;
    }
    rc = run(&d, conf);
    kr_control_free(d.control);
    kr_metrics_server_free(d.metrics);
    if (d.relay)
        kr_relay_destroy(d.relay);
    if (d.sig_hup)
        event_free(d.sig_hup);
    if (d.sig_term)
        event_free(d.sig_term);
    if (d.sig_int)
        event_free(d.sig_int);
    if (d.stop_timer)
        event_free(d.stop_timer);
    event_base_free(d.base);
    return rc;
}
