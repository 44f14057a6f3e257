/*
 * api_hosts.c - GET /v1/hosts, GET /v1/hosts/NAME, POST .../state and
 * POST .../weight.
 *
 * Pinned clients per host and application are counted by walking the store
 * on a worker thread at request time (job.c), not kept as counters: the
 * pins change in the data path (forward.c), which has no hook for it, and a
 * walk over ~100k pins costs a fraction of a second off the event loop. The
 * rest of a host's state is read live on the loop once the walk is done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"

#define PC_MAX_HOSTS 256 /* distinct host names counted; more share "other" */

static json_t *counts_json(const struct kr_relay *r, const struct kr_host *h, json_t *warnings)
{
    json_t *a = json_array();
    uint64_t now = kr_now_us();
    for (size_t i = 0; i < KR_HOST_APPS; i++) {
        const struct kr_app_count *c = &h->counts[i];
        if (!c->when_us)
            continue;
        const char *name = kr_kms_app_name(c->app_id);
        /* The last request's own policy is one sample (a server's 5 while
         * Windows clients need 25): not all_known. */
        uint32_t thr = kr_kms_activation_threshold(c->app_id, c->n_policy, 0);
        uint64_t age_ms = now > c->when_us ? (now - c->when_us) / 1000 : 0;
        bool below = c->count < thr;
        json_t *e = json_object();
        ctl_set(e, "application", name ? json_string(name) : ctl_json_guid(c->app_id));
        ctl_set(e, "app_id", ctl_json_guid(c->app_id));
        ctl_set(e, "count", json_integer(c->count));
        ctl_set(e, "n_policy", json_integer(c->n_policy));
        ctl_set(e, "threshold", json_integer(thr));
        ctl_set(e, "below_threshold", json_boolean(below));
        ctl_set(e, "age_seconds", json_integer((json_int_t)(age_ms / 1000)));
        ctl_set(e, "fresh", json_boolean(age_ms <= r->conf->count_fresh_ms));
        if (below) {
            char w[256];
            snprintf(w, sizeof(w),
                     "%s: count %u is below the activation threshold %u; clients with N policy "
                     "%u are not activated by this host until it rises",
                     name ? name : "application", c->count, thr, thr);
            json_array_append_new(warnings, json_string(w));
        }
        json_array_append_new(a, e);
    }
    return a;
}

json_t *ctl_host_json(const struct kr_relay *r, const struct kr_host *h, const uint64_t *pins)
{
    char a[KR_ADDRSTRLEN];
    json_t *o = json_object(), *chk = json_object(), *pool = json_object(),
           *warnings = json_array();
    uint64_t now = kr_now_us();

    kr_addr_format((const struct sockaddr *)&h->conf.addr.ss, a);
    ctl_set(o, "name", json_string(h->conf.name));
    ctl_set(o, "address", json_string(a));
    ctl_set(o, "weight", json_integer(kr_host_weight(h)));
    ctl_set(o, "config_weight", json_integer(kr_control_config_weight(r, h)));
    ctl_set(o, "priority", json_integer(h->conf.priority));
    ctl_set(o, "health", json_string(ctl_health_word(h->health)));
    ctl_set(o, "health_reason", json_string(h->health_reason));
    ctl_set(o, "admin", json_string(kr_admin_name(h->admin)));
    ctl_set(o, "discovered", json_boolean(h->dynamic));
    ctl_set(o, "removed", json_boolean(h->removed));

    ctl_set(chk, "result", json_string(h->last_check_result[0] ? h->last_check_result : ""));
    ctl_set(chk, "latency_ms",
            h->last_check_us ? json_real(h->last_check_latency_us / 1000.0) : json_null());
    ctl_set(chk, "age_seconds",
            h->last_check_us && now >= h->last_check_us
                ? json_integer((json_int_t)((now - h->last_check_us) / 1000000))
                : json_null());
    ctl_set(chk, "ok", json_integer((json_int_t)h->stats.checks_ok));
    ctl_set(chk, "failed", json_integer((json_int_t)h->stats.checks_failed));
    ctl_set(o, "check", chk);

    ctl_set(pool, "open", json_integer(h->n_conns));
    ctl_set(pool, "waiting", json_integer(h->n_waiting));
    ctl_set(o, "connections", pool);
    ctl_set(o, "requests", json_integer((json_int_t)h->stats.requests));
    ctl_set(o, "answered", json_integer((json_int_t)h->stats.ok));
    ctl_set(o, "errors", json_integer((json_int_t)h->stats.errors));
    ctl_set(o, "refusals", json_integer((json_int_t)h->stats.refusals));

    if (pins) {
        json_t *p = json_object();
        uint64_t total = 0;
        for (int i = 0; i < CTL_APPS; i++) {
            total += pins[i];
            ctl_set(p, kr_kms_app_label(i), json_integer((json_int_t)pins[i]));
        }
        ctl_set(p, "total", json_integer((json_int_t)total));
        ctl_set(o, "pins", p);
    }
    if (h->health == KR_HEALTH_DOWN) {
        char w[160];
        snprintf(w, sizeof(w), "down: %s",
                 h->health_reason[0]       ? h->health_reason
                 : h->last_check_result[0] ? h->last_check_result
                                           : "health check failing");
        json_array_append_new(warnings, json_string(w));
    }
    ctl_set(o, "counts", counts_json(r, h, warnings));
    ctl_set(o, "warnings", warnings);
    return o;
}

/* ---- the pin count walk --------------------------------------------------- */

struct pc_entry {
    char host[KR_PIN_HOST_MAX];
    uint64_t n[CTL_APPS];
};

struct hosts_ctx {
    struct kr_store *store;
    struct ctl_job *job;
    char only[KR_CONF_NAME_MAX]; /* GET /v1/hosts/NAME */
    struct pc_entry v[PC_MAX_HOSTS];
    size_t n;
    uint64_t other, walked, walk_us;
};

static int count_pin(const struct kr_pin *p, void *arg)
{
    struct hosts_ctx *x = arg;
    if ((++x->walked & 4095) == 0 && ctl_job_cancelled(x->job))
        return KR_ETIMEDOUT;
    if (x->only[0] && strcmp(p->host, x->only) != 0)
        return 0;
    int app = kr_kms_app_index(p->app_id);
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->v[i].host, p->host) == 0) {
            x->v[i].n[app]++;
            return 0;
        }
    if (x->n == PC_MAX_HOSTS) {
        x->other++;
        return 0;
    }
    snprintf(x->v[x->n].host, sizeof(x->v[x->n].host), "%s", p->host);
    x->v[x->n++].n[app] = 1;
    return 0;
}

static void hosts_work(struct ctl_job *j)
{
    struct hosts_ctx *x = j->ctx;
    uint64_t t0 = kr_now_us();
    x->job = j;
    int rc = kr_store_pin_iter(x->store, count_pin, x);
    x->walk_us = kr_now_us() - t0;
    if (rc != 0) {
        j->status =
            ctl_fail(j->err, sizeof(j->err), 500, "cannot walk the pins: %s", kr_strerror(rc));
        return;
    }
    j->status = 200;
}

static const uint64_t *pins_of(const struct hosts_ctx *x, const char *name)
{
    static const uint64_t zero[CTL_APPS];
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->v[i].host, name) == 0)
            return x->v[i].n;
    return zero;
}

/* Back on the loop: live host state plus the counts. */
static void hosts_done(struct ctl_job *j)
{
    struct hosts_ctx *x = j->ctx;
    struct kr_relay *r = j->ctl->relay;

    if (x->only[0]) {
        struct kr_host *h = kr_relay_host_by_name(r, x->only);
        if (!h) {
            j->status = ctl_fail(j->err, sizeof(j->err), 404, "no host named \"%s\"", x->only);
            return;
        }
        j->out = ctl_host_json(r, h, pins_of(x, x->only));
        return;
    }
    json_t *list = json_array(), *orphans = json_array();
    for (size_t i = 0; i < r->n_hosts; i++)
        json_array_append_new(list,
                              ctl_host_json(r, r->hosts[i], pins_of(x, r->hosts[i]->conf.name)));
    /* Pins on hosts the relay no longer has: they move on next contact. */
    for (size_t i = 0; i < x->n; i++) {
        bool known = false;
        for (size_t k = 0; k < r->n_hosts && !known; k++)
            known = strcmp(r->hosts[k]->conf.name, x->v[i].host) == 0;
        if (known)
            continue;
        uint64_t t = 0;
        for (int a = 0; a < CTL_APPS; a++)
            t += x->v[i].n[a];
        json_t *e = json_object();
        ctl_set(e, "host", json_string(x->v[i].host));
        ctl_set(e, "pins", json_integer((json_int_t)t));
        json_array_append_new(orphans, e);
    }
    j->out = json_object();
    ctl_set(j->out, "hosts", list);
    ctl_set(j->out, "unknown_hosts", orphans);
    ctl_set(j->out, "pins_walked", json_integer((json_int_t)x->walked));
    ctl_set(j->out, "walk_ms", json_real(x->walk_us / 1000.0));
}

static int start_walk(struct ctl_call *c, const char *only)
{
    struct hosts_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = c->r->store;
    if (only)
        snprintf(x->only, sizeof(x->only), "%s", only);
    return ctl_job_start(c, hosts_work, hosts_done, x, free);
}

int ctl_api_hosts(struct ctl_call *c)
{
    return start_walk(c, NULL);
}

int ctl_api_host(struct ctl_call *c)
{
    if (!kr_relay_host_by_name(c->r, c->param[0]))
        return ctl_fail(c->err, sizeof(c->err), 404, "no host named \"%.64s\"", c->param[0]);
    return start_walk(c, c->param[0]);
}

/* ---- changes -------------------------------------------------------------- */

int ctl_api_host_state(struct ctl_call *c)
{
    struct ctl_body b;
    struct kr_host *h;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_STATE, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    if (!(h = kr_relay_host_by_name(c->r, c->param[0])))
        return ctl_fail(c->err, sizeof(c->err), 404, "no host named \"%.64s\"", c->param[0]);
    int from = h->admin;
    rc = kr_relay_set_admin(c->r, h, b.state, "control API");
    if (rc != 0)
        return ctl_fail(c->err, sizeof(c->err), 500,
                        "%s is %s now, but the state could not be saved (%s): it will not "
                        "survive a restart",
                        h->conf.name, kr_admin_name(h->admin), kr_strerror(rc));
    c->out = json_object();
    ctl_set(c->out, "host", json_string(h->conf.name));
    ctl_set(c->out, "admin", json_string(kr_admin_name(h->admin)));
    ctl_set(c->out, "previous", json_string(kr_admin_name(from)));
    ctl_set(c->out, "health", json_string(ctl_health_word(h->health)));
    return 200;
}

int ctl_api_host_weight(struct ctl_call *c)
{
    struct ctl_body b;
    struct kr_host *h;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_WEIGHT, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    if (!(h = kr_relay_host_by_name(c->r, c->param[0])))
        return ctl_fail(c->err, sizeof(c->err), 404, "no host named \"%.64s\"", c->param[0]);
    uint32_t from = kr_host_weight(h);
    rc = kr_control_set_weight(c->r, h, b.weight);
    if (rc != 0)
        return ctl_fail(c->err, sizeof(c->err), 500,
                        "%s has weight %u now, but it could not be saved (%s): it will not "
                        "survive a restart",
                        h->conf.name, kr_host_weight(h), kr_strerror(rc));
    c->out = json_object();
    ctl_set(c->out, "host", json_string(h->conf.name));
    ctl_set(c->out, "weight", json_integer(kr_host_weight(h)));
    ctl_set(c->out, "previous", json_integer(from));
    ctl_set(c->out, "config_weight", json_integer(kr_control_config_weight(c->r, h)));
    return 200;
}
