/*
 * api_misc.c - GET /v1 (the endpoint list), GET /v1/status, GET /v1/report,
 * GET /v1/dns and POST /v1/reload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control-internal.h"
#include "dnsservice/dnsservice.h"
#include "kmsrelay/audit.h"
#include "kmsrelay/err.h"
#include "kmsrelay/report.h"

int ctl_api_index(struct ctl_call *c)
{
    json_t *list = json_array();
    for (size_t i = 0; i < ctl_n_routes; i++) {
        json_t *e = json_object();
        ctl_set(e, "method", json_string(ctl_method_name(ctl_routes[i].method)));
        ctl_set(e, "path", json_string(ctl_routes[i].pattern));
        ctl_set(e, "help", json_string(ctl_routes[i].help));
        json_array_append_new(list, e);
    }
    c->out = json_object();
    ctl_set(c->out, "version", json_string(KR_VERSION));
    ctl_set(c->out, "endpoints", list);
    return 200;
}

/* ---- status: one helper per part of the answer, in the answer's order ---- */

static json_t *status_listeners(struct kr_relay *r)
{
    struct kr_addr la[KR_CONF_MAX_LISTEN];
    char a[KR_ADDRSTRLEN];
    json_t *l = json_array();
    size_t nl = kr_relay_listen_addrs(r, la, KR_CONF_MAX_LISTEN);
    for (size_t i = 0; i < nl; i++) {
        kr_addr_format((const struct sockaddr *)&la[i].ss, a);
        json_array_append_new(l, json_string(a));
    }
    return l;
}

/* Hosts by health and by admin state (removed ones not counted). */
static json_t *status_hosts(const struct kr_relay *r)
{
    size_t health[3] = {0}, admin[4] = {0}, n = 0;
    json_t *hosts = json_object(), *hs = json_object(), *as = json_object();
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        if (h->removed)
            continue;
        n++;
        health[h->health <= 2 ? h->health : 0]++;
        admin[h->admin <= 3 ? h->admin : 0]++;
    }
    ctl_set(hosts, "total", json_integer((json_int_t)n));
    for (int i = 0; i < 3; i++)
        ctl_set(hs, ctl_health_word(i), json_integer((json_int_t)health[i]));
    for (int i = 0; i < 4; i++)
        ctl_set(as, kr_admin_name(i), json_integer((json_int_t)admin[i]));
    ctl_set(hosts, "health", hs);
    ctl_set(hosts, "admin", as);
    return hosts;
}

static json_t *status_activations(struct kr_relay *r)
{
    const struct kr_relay_stats *s = &r->stats;
    json_t *act = json_object();
    ctl_set(act, "requests", json_integer((json_int_t)s->requests));
    ctl_set(act, "ok", json_integer((json_int_t)s->activations_ok));
    ctl_set(act, "failed", json_integer((json_int_t)s->activations_failed));
    ctl_set(act, "in_flight", json_integer((json_int_t)kr_relay_inflight(r)));
    ctl_set(act, "retries", json_integer((json_int_t)s->retries));
    ctl_set(act, "failovers", json_integer((json_int_t)s->failovers));
    ctl_set(act, "threshold_assists", json_integer((json_int_t)s->assists));
    ctl_set(act, "reroutes_refused", json_integer((json_int_t)s->reroutes_refused));
    ctl_set(act, "pins_new", json_integer((json_int_t)s->pins_new));
    ctl_set(act, "pins_moved", json_integer((json_int_t)s->pins_moved));
    return act;
}

static json_t *status_connections(const struct kr_relay *r)
{
    const struct kr_relay_stats *s = &r->stats;
    json_t *conns = json_object();
    ctl_set(conns, "open", json_integer((json_int_t)s->conns_open));
    ctl_set(conns, "accepted", json_integer((json_int_t)s->conns_accepted));
    ctl_set(conns, "denied", json_integer((json_int_t)s->conns_denied));
    ctl_set(conns, "limited", json_integer((json_int_t)s->conns_limited));
    ctl_set(conns, "rate_limited", json_integer((json_int_t)s->rate_limited));
    ctl_set(conns, "bad_pdus", json_integer((json_int_t)s->bad_pdus));
    return conns;
}

static json_t *status_store(const struct kr_relay *r, const struct kr_store_stats *st)
{
    json_t *store = json_object();
    ctl_set(store, "state", json_string(st->degraded ? "degraded" : "ok"));
    ctl_set(store, "pins_committed", json_integer((json_int_t)st->pins));
    ctl_set(store, "pending", json_integer((json_int_t)st->pending));
    ctl_set(store, "commits", json_integer((json_int_t)st->commits));
    ctl_set(store, "commit_failures", json_integer((json_int_t)st->commit_failures));
    ctl_set(store, "drops", json_integer((json_int_t)st->drops));
    ctl_set(store, "map_size", json_integer((json_int_t)st->map_size));
    ctl_set(store, "map_used", json_integer((json_int_t)st->map_used));
    ctl_set(store, "last_error",
            st->last_error
                ? json_string(st->last_why && *st->last_why ? st->last_why
                                                            : kr_strerror(st->last_error))
                : json_null());
    ctl_set(store, "state_dir", json_string(r->conf->state_dir));
    return store;
}

int ctl_api_status(struct ctl_call *c)
{
    struct kr_relay *r = c->r;
    struct kr_store_stats st;
    json_t *o = json_object();

    ctl_set(o, "version", json_string(KR_VERSION));
    ctl_set(o, "instance", json_string(r->conf->instance_id));
    ctl_set(o, "pid", json_integer((json_int_t)getpid()));
    ctl_set(o, "config", json_string(r->conf->source[0] ? r->conf->source : "(defaults)"));
    ctl_set(o, "started_at", ctl_json_time(r->started_wall));
    ctl_set(o, "uptime_seconds",
            json_integer((json_int_t)((kr_now_us() - r->started_us) / 1000000)));
    ctl_set(o, "stopping", json_boolean(r->stopping));
    ctl_set(o, "listeners", status_listeners(r));
    ctl_set(o, "hosts", status_hosts(r));
    kr_store_stats(r->store, &st);
    ctl_set(o, "pins", json_integer((json_int_t)(st.pins + st.pending)));
    ctl_set(o, "activations", status_activations(r));
    ctl_set(o, "connections", status_connections(r));
    ctl_set(o, "store", status_store(r, &st));
    ctl_set(o, "peers", ctl_peers_summary(c->ctl->peers));

    json_t *ctl = json_object();
    ctl_set(ctl, "socket", json_string(c->ctl->path));
    ctl_set(ctl, "requests", json_integer((json_int_t)c->ctl->requests));
    ctl_set(ctl, "errors", json_integer((json_int_t)c->ctl->errors));
    ctl_set(o, "control", ctl);
    c->out = o;
    return 200;
}

/* ---- report --------------------------------------------------------------- */

struct report_ctx {
    struct kr_store *store;
    struct kr_report_host hosts[KR_RELAY_MAX_HOSTS];
    size_t n;
    int64_t now;
};

static void report_work(struct ctl_job *j)
{
    struct report_ctx *x = j->ctx;
    const char *why = NULL;
    int rc = kr_report_build(x->store, x->hosts, x->n, x->now, NULL, &j->out, &why);
    if (rc != 0) {
        j->out = NULL;
        j->status = ctl_fail(j->err, sizeof(j->err), 500, "cannot build the report: %s",
                             why ? why : kr_strerror(rc));
        return;
    }
    j->status = 200;
}

int ctl_api_report(struct ctl_call *c)
{
    struct report_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = c->r->store;
    x->n = kr_report_relay_hosts(c->r, x->hosts, KR_RELAY_MAX_HOSTS);
    x->now = kr_wall_s();
    return ctl_job_start(c, report_work, NULL, x, free);
}

/* ---- dns ------------------------------------------------------------------ */

/* The periodic audit's last report, when the daemon runs one. */
static void add_audit(struct ctl_call *c)
{
    json_t *a = c->ctl->audit ? kr_audit_periodic_json(c->ctl->audit) : NULL;
    if (json_is_object(c->out))
        ctl_set(c->out, "audit", a ? a : json_null());
    else
        json_decref(a);
}

int ctl_api_dns(struct ctl_call *c)
{
    if (!c->ctl->dns) {
        c->out = json_object();
        ctl_set(c->out, "configured", json_false());
        ctl_set(c->out, "zones", json_array());
        ctl_set(c->out, "discovery", json_array());
        add_audit(c);
        return 200;
    }
    if (!(c->out = kr_dns_status_json(c->ctl->dns)))
        return ctl_fail(c->err, sizeof(c->err), 500, "cannot read the DNS status");
    if (json_is_object(c->out) && !json_object_get(c->out, "configured"))
        ctl_set(c->out, "configured", json_true());
    add_audit(c);
    return 200;
}

/* ---- reload --------------------------------------------------------------- */

/* The daemon reads and parses the file off the loop, as for SIGHUP, so the
 * request waits (ctl->reloading, one at a time) and reload_done answers it.
 * kr_control_free drops one still waiting (the daemon cancelled it). */
#define RELOAD_ERRBUF 16384

struct ctl_reload {
    struct kr_control *ctl;
    struct evhttp_request *req;
    bool in_call; /* inside ctl->reload: the handler answers itself */
    bool over;
    int rc;
    char err[RELOAD_ERRBUF];
};

/* The reply to a reload that ended with rc (errors in err, one per line). */
static int reload_reply(struct kr_control *ctl, int rc, char *err, json_t **out, char *msg,
                        size_t msglen)
{
    *out = json_object();
    if (rc == 0) {
        const struct kr_conf *conf = ctl->relay->conf; /* the new one */
        ctl_set(*out, "result", json_string("ok"));
        ctl_set(*out, "config", json_string(conf->source));
        ctl_set(*out, "hosts", json_integer((json_int_t)conf->n_hosts));
        ctl_set(*out, "listeners", json_integer((json_int_t)conf->n_listen));
        return 200;
    }
    json_t *lines = json_array();
    for (char *p = err, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (*p)
            json_array_append_new(lines, json_string(p));
        if (!nl)
            break;
    }
    ctl_set(*out, "result", json_string("failed"));
    ctl_set(*out, "errors", lines);
    if (rc == KR_EUNSUP)
        return ctl_fail(msg, msglen, 409,
                        "nothing to reload: kmsrelayd runs without a configuration file (-c)");
    if (rc == KR_ECONFIG)
        return ctl_fail(msg, msglen, 422,
                        "the configuration has errors; the running configuration is kept");
    return ctl_fail(msg, msglen, 500,
                    "the configuration could not be applied; the running configuration is kept");
}

static void reload_done(void *arg, int rc, const char *err)
{
    struct ctl_reload *p = arg;
    if (err != p->err)
        snprintf(p->err, sizeof(p->err), "%s", err ? err : "");
    p->rc = rc;
    p->over = true;
    if (p->in_call)
        return;
    struct kr_control *ctl = p->ctl;
    json_t *out = NULL;
    char msg[CTL_ERR_MAX] = "";
    int status = reload_reply(ctl, rc, p->err, &out, msg, sizeof(msg));
    ctl->reloading = NULL;
    ctl_reply(ctl, p->req, status, out, msg);
    free(p);
}

void ctl_reload_drop(struct kr_control *ctl)
{
    free(ctl->reloading);
    ctl->reloading = NULL;
}

int ctl_api_reload(struct ctl_call *c)
{
    struct kr_control *ctl = c->ctl;
    struct ctl_body b;
    struct ctl_reload *p;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_EMPTY, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    if (!ctl->reload)
        return ctl_fail(c->err, sizeof(c->err), 409, "this daemon cannot reload");
    if (ctl->reloading)
        return ctl_fail(c->err, sizeof(c->err), 409,
                        "a reload is in progress already; retry in a moment");
    if (!(p = calloc(1, sizeof(*p))))
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    p->ctl = ctl;
    p->req = c->req;
    p->in_call = true;
    rc = ctl->reload(ctl->reload_arg, reload_done, p, p->err, sizeof(p->err));
    p->in_call = false;
    if (rc == 0 && !p->over) {
        ctl->reloading = p;
        return CTL_ASYNC;
    }
    /* Refused at once, or over already (no worker thread). */
    int status = reload_reply(ctl, rc ? rc : p->rc, p->err, &c->out, c->err, sizeof(c->err));
    free(p);
    return status;
}
