/*
 * api_pins.c - GET /v1/pins/CMID, POST /v1/pins/CMID/move, DELETE
 * /v1/pins/CMID, and the pin's JSON form shared with /v1/clients.
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

int ctl_api_pin_show(struct ctl_call *c)
{
    struct kr_relay *r = c->r;
    struct kr_pin p;
    uint8_t cmid[16];
    int rc;

    if ((rc = parse_cmid(c, cmid)) != 0)
        return rc;
    rc = kr_store_pin_get(r->store, cmid, &p);
    if (rc == KR_ENOENT)
        return ctl_fail(c->err, sizeof(c->err), 404, "no pin for %s", c->param[0]);
    if (rc != 0)
        return ctl_fail(c->err, sizeof(c->err), 500, "cannot read the pin: %s", kr_strerror(rc));
    memcpy(p.cmid, cmid, 16);
    c->out = ctl_pin_json(&p, true);

    /* Where the client would go without its pin: the HRW ranking now. */
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
    const struct kr_host *h = kr_relay_host_by_name(r, p.host);
    ctl_set(c->out, "host_admin", h ? json_string(kr_admin_name(h->admin)) : json_null());
    ctl_set(c->out, "host_health", h ? json_string(ctl_health_word(h->health)) : json_null());
    return 200;
}

/* ---- move and forget (worker thread) --------------------------------------- */

struct pin_ctx {
    struct kr_store *store;
    uint8_t cmid[16];
    char to[KR_PIN_HOST_MAX]; /* "" = forget */
};

static void pin_work(struct ctl_job *j)
{
    struct pin_ctx *x = j->ctx;
    struct kr_pin p;
    char id[KR_GUID_STRLEN];
    const char *why = NULL;
    int rc;

    kr_guid_format(x->cmid, id);
    rc = kr_store_pin_get(x->store, x->cmid, &p);
    if (rc == KR_ENOENT) {
        j->status = ctl_fail(j->err, sizeof(j->err), 404, "no pin for %s", id);
        return;
    }
    if (rc != 0) {
        j->status =
            ctl_fail(j->err, sizeof(j->err), 500, "cannot read the pin: %s", kr_strerror(rc));
        return;
    }
    memcpy(p.cmid, x->cmid, 16);
    j->out = json_object();
    ctl_set(j->out, "cmid", json_string(id));
    if (!x->to[0]) {
        rc = kr_store_pin_del(x->store, x->cmid);
        ctl_set(j->out, "host", json_string(p.host));
        ctl_set(j->out, "forgotten", json_true());
    } else {
        bool moved = strcmp(p.host, x->to) != 0;
        ctl_set(j->out, "from", json_string(p.host));
        ctl_set(j->out, "to", json_string(x->to));
        ctl_set(j->out, "moved", json_boolean(moved));
        snprintf(p.host, sizeof(p.host), "%s", x->to);
        rc = moved ? kr_store_pin_put(x->store, &p) : 0;
    }
    if (rc == 0)
        rc = kr_store_flush(x->store, &why);
    if (rc != 0) {
        json_decref(j->out);
        j->out = NULL;
        j->status = ctl_fail(j->err, sizeof(j->err), 500,
                             "the change is queued but could not be written to disk: %s",
                             why ? why : kr_strerror(rc));
        return;
    }
    j->status = 200;
}

int ctl_api_pin_move(struct ctl_call *c)
{
    struct ctl_body b;
    struct pin_ctx *x;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_MOVE, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    uint8_t cmid[16];
    if ((rc = parse_cmid(c, cmid)) != 0)
        return rc;
    const struct kr_host *h = kr_relay_host_by_name(c->r, b.host);
    if (!h)
        return ctl_fail(c->err, sizeof(c->err), 404, "no host named \"%s\"", b.host);
    if (h->admin == KR_ADMIN_RETIRED)
        return ctl_fail(c->err, sizeof(c->err), 409,
                        "%s is retired: its pins move away on the next contact", b.host);
    if (!(x = calloc(1, sizeof(*x))))
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = c->r->store;
    memcpy(x->cmid, cmid, 16);
    snprintf(x->to, sizeof(x->to), "%s", h->conf.name);
    return ctl_job_start(c, pin_work, NULL, x, free);
}

int ctl_api_pin_forget(struct ctl_call *c)
{
    struct pin_ctx *x;
    uint8_t cmid[16];
    int rc;

    if ((rc = parse_cmid(c, cmid)) != 0)
        return rc;
    if (!(x = calloc(1, sizeof(*x))))
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = c->r->store;
    memcpy(x->cmid, cmid, 16);
    return ctl_job_start(c, pin_work, NULL, x, free);
}
