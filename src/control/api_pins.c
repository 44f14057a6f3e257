/*
 * api_pins.c - GET /v1/pins/CMID, POST /v1/pins/CMID/move, DELETE
 * /v1/pins/CMID, and the pin's JSON form shared with /v1/clients.
 *
 * A client is the pair (CMID, application id): one machine may have a pin
 * per application. Each call takes the CMID and optionally ?app=A (a name
 * such as windows, office2013, or an application GUID): without it, show
 * lists every application of the machine and move / forget act on all of
 * them; with it, only that pair.
 *
 * A move or a forget is durable when the answer says so: the change is
 * queued like any pin write and then committed with kr_store_flush() (one
 * fsync), on a worker thread so the loop never waits for the disk. A client
 * activating at the same moment may still write its own (older) view of
 * the pin back; the operator sees the result with `pin show`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"

json_t *ctl_pin_json(const struct kr_pin *p, bool full)
{
    json_t *o = json_object();
    const char *app = kr_kms_app_name(p->app_id), *hrn = kr_kms_hresult_name(p->last_hresult);
    char hr[12];

    ctl_set(o, "cmid", ctl_json_guid(p->cmid));
    ctl_set(o, "workstation", json_string(p->workstation));
    ctl_set(o, "host", json_string(p->host));
    ctl_set(o, "application", app ? json_string(app) : ctl_json_guid(p->app_id));
    ctl_set(o, "app_id", ctl_json_guid(p->app_id));
    ctl_set(o, "sku_id", ctl_json_guid(p->sku_id));
    ctl_set(o, "first_seen", ctl_json_time(p->first_seen));
    ctl_set(o, "last_seen", ctl_json_time(p->last_seen));
    ctl_set(o, "vm", json_boolean(p->is_vm));
    ctl_set(o, "licence", json_string(ctl_licence_word(p->license_status)));
    ctl_set(o, "protocol", json_integer(p->ver_major));
    ctl_hresult_text(p->last_hresult, hr);
    ctl_set(o, "last_result", json_string(hr));
    ctl_set(o, "last_result_name", hrn ? json_string(hrn) : json_null());
    ctl_set(o, "count", json_integer(p->last_count));
    ctl_set(o, "n_policy", json_integer(p->n_policy));
    ctl_set(o, "skew_seconds", json_integer(p->skew_s));
    ctl_set(o, "activations", json_integer(p->activations));
    ctl_set(o, "previous_cmid",
            kr_guid_is_zero(p->prev_cmid) ? json_null() : ctl_json_guid(p->prev_cmid));
    if (full) {
        json_t *names = json_array();
        for (unsigned i = 0; i < p->n_names && i < KR_PIN_NAMES; i++) {
            json_t *n = json_object();
            ctl_set(n, "name", json_string(p->names[i].name));
            ctl_set(n, "last_seen", ctl_json_time(p->names[i].last_seen));
            json_array_append_new(names, n);
        }
        ctl_set(o, "kms_id", ctl_json_guid(p->kms_id));
        ctl_set(o, "workstations", names);
    }
    return o;
}

static int parse_cmid(struct ctl_call *c, uint8_t cmid[16])
{
    if (kr_guid_parse(c->param[0], cmid) != 0)
        return ctl_fail(c->err, sizeof(c->err), 400,
                        "\"%.64s\" is not a client machine id (a GUID such as "
                        "11111111-2222-4333-8444-555555555555)",
                        c->param[0]);
    return 0;
}

/* ?app=: one exact application id. *one false when absent (all of them). */
static int parse_app(struct ctl_call *c, uint8_t app_id[16], bool *one)
{
    const char *v = c->query ? evhttp_find_header(c->query, "app") : NULL;
    int idx;
    bool by_id;
    *one = false;
    if (!v || !*v)
        return 0;
    if (ctl_app_filter_parse(v, app_id, &idx, &by_id) != 0 || (!by_id && (idx < 0 || idx > 2)))
        return ctl_fail(c->err, sizeof(c->err), 400,
                        "app=%.64s: not one application (Windows, Office2010, Office2013, or an "
                        "application GUID)",
                        v);
    if (!by_id)
        memcpy(app_id, kr_kms_app_id(idx), 16);
    *one = true;
    return 0;
}

/* Up to 16 pins of one machine (a machine has a handful of applications). */
#define MACHINE_PINS 16

struct machine {
    struct kr_pin p[MACHINE_PINS];
    size_t n;
};

static int machine_cb(const struct kr_pin *p, void *ctx)
{
    struct machine *m = ctx;
    if (m->n < MACHINE_PINS)
        m->p[m->n++] = *p;
    return 0;
}

/* The pins the call is about: one pair, or every pair of the CMID. */
static int machine_get(struct kr_store *s, const uint8_t cmid[16], const uint8_t app[16], bool one,
                       struct machine *m)
{
    m->n = 0;
    if (!one)
        return kr_store_pin_iter_cmid(s, cmid, machine_cb, m);
    int rc = kr_store_pin_get(s, cmid, app, &m->p[0]);
    if (rc == 0)
        m->n = 1;
    return rc == KR_ENOENT ? 0 : rc;
}

static void not_found(char *err, size_t len, int *status, const char *cmid, bool one,
                      const uint8_t app[16])
{
    char id[KR_GUID_STRLEN];
    const char *an = kr_kms_app_name(app);
    if (one && !an)
        kr_guid_format(app, id);
    if (one)
        *status = ctl_fail(err, len, 404, "no pin for %s and application %s", cmid, an ? an : id);
    else
        *status = ctl_fail(err, len, 404, "no pin for %s", cmid);
}

int ctl_api_pin_show(struct ctl_call *c)
{
    struct kr_relay *r = c->r;
    struct machine *m;
    uint8_t cmid[16], app[16];
    bool one;
    int rc, status = 200;

    if ((rc = parse_cmid(c, cmid)) != 0 || (rc = parse_app(c, app, &one)) != 0)
        return rc;
    if (!(m = malloc(sizeof(*m))))
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    rc = machine_get(r->store, cmid, app, one, m);
    if (rc != 0) {
        free(m);
        return ctl_fail(c->err, sizeof(c->err), 500, "cannot read the pin: %s", kr_strerror(rc));
    }
    if (m->n == 0) {
        not_found(c->err, sizeof(c->err), &status, c->param[0], one, app);
        free(m);
        return status;
    }
    json_t *pins = json_array();
    for (size_t i = 0; i < m->n; i++) {
        json_t *o = ctl_pin_json(&m->p[i], true);
        const struct kr_host *h = kr_relay_host_by_name(r, m->p[i].host);
        ctl_set(o, "host_admin", h ? json_string(kr_admin_name(h->admin)) : json_null());
        ctl_set(o, "host_health", h ? json_string(ctl_health_word(h->health)) : json_null());
        json_array_append_new(pins, o);
    }
    free(m);
    c->out = json_object();
    ctl_set(c->out, "cmid", ctl_json_guid(cmid));
    ctl_set(c->out, "pins", pins);

    /* Where the machine would go without its pins: the HRW ranking now
     * (on the CMID, the same for each of its applications). */
    struct kr_hrw_node nodes[KR_RELAY_MAX_HOSTS];
    uint16_t order[KR_RELAY_MAX_HOSTS], idx[KR_RELAY_MAX_HOSTS];
    size_t n = 0;
    json_t *rank = json_array();
    for (size_t i = 0; i < r->n_hosts && n < KR_RELAY_MAX_HOSTS; i++) {
        if (r->hosts[i]->removed)
            continue;
        nodes[n] = r->hosts[i]->hrw;
        idx[n++] = (uint16_t)i;
    }
    size_t k = kr_hrw_rank(nodes, n, cmid, order, KR_RELAY_MAX_HOSTS);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(rank, json_string(r->hosts[idx[order[i]]]->conf.name));
    ctl_set(c->out, "ranking", rank);
    return 200;
}

/* ---- move and forget (worker thread) --------------------------------------- */

struct pin_ctx {
    struct kr_store *store;
    uint8_t cmid[16], app[16];
    bool one;                 /* only the pair (cmid, app) */
    char to[KR_PIN_HOST_MAX]; /* "" = forget */
};

static void pin_work(struct ctl_job *j)
{
    struct pin_ctx *x = j->ctx;
    struct machine *m = malloc(sizeof(*m));
    char id[KR_GUID_STRLEN], an[KR_GUID_STRLEN];
    const char *why = NULL;
    size_t changed = 0;
    int rc;

    kr_guid_format(x->cmid, id);
    if (!m) {
        j->status = ctl_fail(j->err, sizeof(j->err), 500, "out of memory");
        return;
    }
    if ((rc = machine_get(x->store, x->cmid, x->app, x->one, m)) != 0) {
        free(m);
        j->status =
            ctl_fail(j->err, sizeof(j->err), 500, "cannot read the pin: %s", kr_strerror(rc));
        return;
    }
    if (m->n == 0) {
        not_found(j->err, sizeof(j->err), &j->status, id, x->one, x->app);
        free(m);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        struct kr_pin *p = &m->p[i];
        const char *a = kr_kms_app_name(p->app_id);
        json_t *e = json_object();
        if (!a)
            kr_guid_format(p->app_id, an);
        ctl_set(e, "application", json_string(a ? a : an));
        ctl_set(e, "app_id", ctl_json_guid(p->app_id));
        if (!x->to[0]) {
            ctl_set(e, "host", json_string(p->host));
            rc = kr_store_pin_del(x->store, p->cmid, p->app_id);
            changed++;
        } else {
            bool moved = strcmp(p->host, x->to) != 0;
            ctl_set(e, "from", json_string(p->host));
            ctl_set(e, "moved", json_boolean(moved));
            snprintf(p->host, sizeof(p->host), "%s", x->to);
            rc = moved ? kr_store_pin_put(x->store, p) : 0;
            changed += moved;
        }
        json_array_append_new(list, e);
    }
    free(m);
    if (rc == 0 && changed)
        rc = kr_store_flush(x->store, &why);
    if (rc != 0) {
        json_decref(list);
        j->status = ctl_fail(j->err, sizeof(j->err), 500,
                             "the change is queued but could not be written to disk: %s",
                             why ? why : kr_strerror(rc));
        return;
    }
    j->out = json_object();
    ctl_set(j->out, "cmid", json_string(id));
    if (!x->to[0]) {
        ctl_set(j->out, "forgotten", json_true());
    } else {
        ctl_set(j->out, "to", json_string(x->to));
        ctl_set(j->out, "moved", json_integer((json_int_t)changed));
    }
    ctl_set(j->out, "pins", list);
    j->status = 200;
}

static struct pin_ctx *pin_ctx_new(struct ctl_call *c, int *status)
{
    uint8_t cmid[16], app[16];
    bool one;
    struct pin_ctx *x;
    if ((*status = parse_cmid(c, cmid)) != 0 || (*status = parse_app(c, app, &one)) != 0)
        return NULL;
    if (!(x = calloc(1, sizeof(*x)))) {
        *status = ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
        return NULL;
    }
    x->store = c->r->store;
    memcpy(x->cmid, cmid, 16);
    memcpy(x->app, app, 16);
    x->one = one;
    return x;
}

int ctl_api_pin_move(struct ctl_call *c)
{
    struct ctl_body b;
    struct pin_ctx *x;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_MOVE, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    const struct kr_host *h = kr_relay_host_by_name(c->r, b.host);
    if (!h)
        return ctl_fail(c->err, sizeof(c->err), 404, "no host named \"%s\"", b.host);
    if (h->admin == KR_ADMIN_RETIRED)
        return ctl_fail(c->err, sizeof(c->err), 409,
                        "%s is retired: its pins move away on the next contact", b.host);
    if (!(x = pin_ctx_new(c, &rc)))
        return rc;
    snprintf(x->to, sizeof(x->to), "%s", h->conf.name);
    return ctl_job_start(c, pin_work, NULL, x, free);
}

int ctl_api_pin_forget(struct ctl_call *c)
{
    struct pin_ctx *x;
    int rc;

    if (!(x = pin_ctx_new(c, &rc)))
        return rc;
    return ctl_job_start(c, pin_work, NULL, x, free);
}
