/*
 * main.c - kr_daemon_main: everything kmsrelayd does after option parsing.
 * Loads the configuration; -n checks it, --report prints the report;
 * otherwise creates the daemon on one libevent loop and handles signals:
 * SIGHUP reloads (a bad config keeps the running one), SIGTERM/SIGINT (and
 * SIGXCPU) stop gracefully (stop accepting, let requests in flight finish
 * within shutdown_grace, flush the pins, free everything); SIGUSR1,
 * SIGUSR2, SIGALRM, SIGVTALRM and SIGPROF are ignored.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "kmsrelay/offload.h"
#include "kmsrelay/report.h"
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

/* The checks and the first log line of every reload. 0 to go on. */
static int reload_begin(struct kr_daemon *d, char *err, size_t errlen)
{
    if (d->stopping) {
        snprintf(err, errlen, "kmsrelayd is shutting down");
        return KR_EINVAL;
    }
    if (!d->opts.config) {
        snprintf(err, errlen, "no configuration file (-c)");
        kr_log(KR_LOG_WARN, "event=reload result=ignored reason=\"no configuration file (-c)\"");
        return KR_EUNSUP;
    }
    if (d->reload) {
        snprintf(err, errlen, "a reload is in progress already; retry in a moment");
        kr_log(KR_LOG_WARN, "event=reload result=ignored reason=\"a reload is in progress\"");
        return KR_EINVAL;
    }
    kr_log(KR_LOG_INFO, "event=reload config=%s", d->opts.config);
    sd_notify(0, "RELOADING=1");
    return 0;
}

/* On the loop, with the loaded configuration (load_rc 0) or its errors. */
static int reload_finish(struct kr_daemon *d, int load_rc, struct kr_conf *nc, char *err,
                         size_t errlen)
{
    int rc;
    if (load_rc != 0) {
        rc = KR_ECONFIG;
        daemon_log_lines(KR_LOG_ERR, "config_error", err);
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=\"configuration has errors; "
                           "the running configuration is kept\"");
    } else if ((rc = kr_daemon_apply(d, nc, err, errlen)) != 0) {
        char q[300];
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=%s",
               kr_logfmt_value(err, q, sizeof(q)));
        free(nc);
    }
    sd_notify(0, "READY=1");
    return rc;
}

/* The one reload path (SIGHUP, POST /v1/reload): the file is read and
 * parsed off the loop (a big or slow file must not stall clients), then
 * applied on the loop. */
struct reload_job {
    struct kr_daemon *d;
    int rc;
    struct kr_conf *nc;
    kr_control_reload_done_fn done; /* may be NULL (SIGHUP) */
    void *done_arg;
    char err[ERRBUF];
};

static void reload_work(struct kr_offload *o, void *arg)
{
    struct reload_job *j = arg;
    j->rc = j->d->opts.load(j->d->opts.load_arg, &j->nc, j->err, sizeof(j->err));
}

static void reload_done(void *arg)
{
    struct reload_job *j = arg;
    j->d->reload = NULL;
    j->d->reload_job = NULL;
    int rc = reload_finish(j->d, j->rc, j->nc, j->err, sizeof(j->err));
    if (j->done)
        j->done(j->done_arg, rc, j->err);
    free(j);
}

void daemon_reload_cancel(struct kr_daemon *d)
{
    kr_offload_cancel(d->reload); /* waits for the parse to end */
    d->reload = NULL;
    if (d->reload_job) {
        free(d->reload_job->nc);
        free(d->reload_job);
        d->reload_job = NULL;
    }
}

int kr_daemon_reload_start(struct kr_daemon *d, kr_control_reload_done_fn done, void *done_arg,
                           char *err, size_t errlen)
{
    struct reload_job *j = calloc(1, sizeof(*j));
    int rc;

    if (!j) {
        snprintf(err, errlen, "out of memory");
        kr_log(KR_LOG_ERR, "event=reload result=failed reason=\"out of memory\"");
        return KR_ENOMEM;
    }
    if ((rc = reload_begin(d, err, errlen)) != 0) {
        free(j);
        return rc;
    }
    j->d = d;
    j->done = done;
    j->done_arg = done_arg;
    if (!(d->reload = kr_offload_start(d->base, reload_work, reload_done, j))) {
        /* No thread: parse here, as before. */
        j->rc = d->opts.load(d->opts.load_arg, &j->nc, j->err, sizeof(j->err));
        reload_done(j);
        return 0;
    }
    d->reload_job = j;
    return 0;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct kr_daemon *d = arg;
    char err[256];
    if (!d->stopping)
        kr_daemon_reload_start(d, NULL, NULL, err, sizeof(err)); /* refusals are logged */
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct kr_daemon *d = arg;
    if (!d->stopping)
        sd_notify(0, "STOPPING=1");
    kr_daemon_stop(d, sig == SIGINT ? "INT" : sig == SIGXCPU ? "XCPU" : "TERM");
}

static bool add_signals(struct kr_daemon *d)
{
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_reload, d);
    d->sig_term = evsignal_new(d->base, SIGTERM, on_stop, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_stop, d);
    /* Past the soft CPU limit (RLIMIT_CPU, systemd LimitCPU=) the kernel
     * sends SIGXCPU, then SIGKILL at the hard limit: stop gracefully while
     * the pins can still be flushed. */
    d->sig_xcpu = evsignal_new(d->base, SIGXCPU, on_stop, d);
    return d->sig_hup && d->sig_term && d->sig_int && d->sig_xcpu &&
           !evsignal_add(d->sig_hup, NULL) && !evsignal_add(d->sig_term, NULL) &&
           !evsignal_add(d->sig_int, NULL) && !evsignal_add(d->sig_xcpu, NULL);
}

static void free_signals(struct kr_daemon *d)
{
    if (d->sig_hup)
        event_free(d->sig_hup);
    if (d->sig_term)
        event_free(d->sig_term);
    if (d->sig_int)
        event_free(d->sig_int);
    if (d->sig_xcpu)
        event_free(d->sig_xcpu);
    d->sig_hup = d->sig_term = d->sig_int = d->sig_xcpu = NULL;
}

static void log_start(const struct kr_conf *conf)
{
    char a[KR_ADDRSTRLEN], listeners[1024] = "";
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
    daemon_warn_public(conf);
}

static int run(struct event_base *base, const struct kr_daemon_opts *o, struct kr_conf *conf)
{
    char err[1024], listeners[1024];
    struct kr_daemon *d = NULL;

    log_start(conf);
    if (kr_daemon_create(base, o, conf, &d, err, sizeof(err)) != 0) {
        char q[1100];
        kr_log(KR_LOG_ERR, "event=fatal msg=%s", kr_logfmt_value(err, q, sizeof(q)));
        free(conf);
        return 1;
    }
    if (!add_signals(d)) {
        kr_log(KR_LOG_ERR, "event=fatal msg=\"cannot install signal handlers\"");
        free_signals(d);
        kr_daemon_destroy(d);
        return 1;
    }
    kr_relay_listen_describe(d->relay, listeners, sizeof(listeners));
    kr_log(KR_LOG_INFO, "event=ready listen=%s hosts=%zu pid=%ld", listeners, conf->n_hosts,
           (long)getpid());
    sd_notify(0, "READY=1");

    event_base_dispatch(base);

    free_signals(d);
    kr_daemon_destroy(d);
    /* Freed bufferevents with deferred callbacks still queued are released
     * by those callbacks: let the loop run them before the base goes. */
    for (int i = 0; i < 8; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    kr_log(KR_LOG_INFO, "event=stop");
    return 0;
}

/* -n and --report: no daemon, no side effects beyond reading. */
static int one_shot(const struct kr_daemon_opts *o, struct kr_conf *conf)
{
    int rc = 0;
    if (o->check) {
        char err[1024];
        if ((rc = daemon_preflight(conf, err, sizeof(err))) != 0)
            fprintf(stderr, "kmsrelayd: %s\n", err);
        else
            printf("configuration OK\n");
    } else {
        char rerr[512];
        rc = kr_report_offline(conf, o->report, stdout, rerr, sizeof(rerr));
        if (rc != 0)
            fprintf(stderr, "kmsrelayd: %s\n", rerr);
    }
    free(conf);
    return rc != 0;
}

int kr_daemon_main(const struct kr_daemon_opts *o)
{
    struct kr_conf *conf = NULL;
    char *err = calloc(1, ERRBUF);

    if (!err)
        return 1;
    if (o->load(o->load_arg, &conf, err, ERRBUF) != 0) {
        fputs(err, stderr);
        if (!o->check)
            fprintf(stderr, "kmsrelayd: not started: the configuration has errors\n");
        free(err);
        return 1;
    }
    free(err);
    if (o->check || o->report)
        return one_shot(o, conf);

    /* A client that goes away mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* Nor a file-size limit (systemd LimitFSIZE=, ulimit -f) on the store:
     * the write fails with EFBIG instead, the store keeps the pins in
     * memory and raises its alarm, and clients are still served. */
    signal(SIGXFSZ, SIG_IGN);
    /* Signals whose default action ends the process without flushing the
     * pins, and which mean nothing to kmsrelayd (a stray kill -USR1, a
     * profiler's timer, an alarm): ignored. */
    static const int ignored[] = {SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        signal(ignored[i], SIG_IGN);
    daemon_init_log(conf, o->debug);
    struct event_base *base = event_base_new();
    if (!base) {
        kr_log(KR_LOG_ERR, "event=fatal msg=\"cannot create the event loop\"");
        free(conf);
        return 1;
    }
    int rc = run(base, o, conf);
    event_base_free(base);
    return rc;
}
