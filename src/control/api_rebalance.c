/*
 * api_rebalance.c - POST /v1/rebalance {"max": N, "dry_run": true}
 *
 * Snapshots the hosts on the loop (name, weight in force, role for the
 * planner), then on a worker thread: walks the pins, plans (rebalance.c),
 * and unless dry_run rewrites each moved pin (re-read first: a pin whose
 * host changed meanwhile is skipped) and commits them with one flush.
 *
 * The unit moved is a machine on a host: every pair (CMID, application) of
 * one CMID pinned to the same host moves together, so the applications of
 * a machine stay on one host (the walk visits a CMID's pairs one after the
 * other). Counts and "before"/"after" are such units. The
 * answer lists every move, and per host the pins before and after and its
 * share by weight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"

#define RB_MAX_HOSTS 512 /* table hosts plus names only the pins know */

struct rb_ctx {
    struct kr_store *store;
    struct ctl_job *job;
    uint64_t max;
    bool dry_run;
    size_t n_hosts;
    char names[RB_MAX_HOSTS][KR_PIN_HOST_MAX];
    struct ctl_rb_host hosts[RB_MAX_HOSTS];
    uint64_t before[RB_MAX_HOSTS];
    struct ctl_rb_pin *pins;
    size_t n_pins, cap;
    uint64_t walked;
    uint8_t last_cmid[16]; /* the unit the previous pair belonged to */
    int last_host;
};

static const char *role_word(int role)
{
    return role == CTL_RB_POOL ? "pool" : role == CTL_RB_EVICT ? "evict" : "fixed";
}

static int host_index(struct rb_ctx *x, const char *name)
{
    for (size_t i = 0; i < x->n_hosts; i++)
        if (strcmp(x->names[i], name) == 0)
            return (int)i;
    if (x->n_hosts == RB_MAX_HOSTS)
        return -1;
    /* A host only the pins know (removed and freed): its pins should go. */
    snprintf(x->names[x->n_hosts], KR_PIN_HOST_MAX, "%s", name);
    x->hosts[x->n_hosts].role = CTL_RB_EVICT;
    return (int)x->n_hosts++;
}

static int collect(const struct kr_pin *p, void *arg)
{
    struct rb_ctx *x = arg;
    if ((++x->walked & 4095) == 0 && ctl_job_cancelled(x->job))
        return KR_ETIMEDOUT;
    int h = host_index(x, p->host);
    if (h < 0)
        return 0;
    if (h == x->last_host && memcmp(p->cmid, x->last_cmid, 16) == 0)
        return 0; /* another application of the same machine on the same host */
    x->last_host = h;
    memcpy(x->last_cmid, p->cmid, 16);
    x->hosts[h].count++;
    if (x->hosts[h].role == CTL_RB_FIXED)
        return 0;
    if (x->n_pins == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        struct ctl_rb_pin *np = realloc(x->pins, cap * sizeof(*np));
        if (!np)
            return KR_ENOMEM;
        x->pins = np;
        x->cap = cap;
    }
    struct ctl_rb_pin *rp = &x->pins[x->n_pins++];
    memcpy(rp->cmid, p->cmid, 16);
    rp->last_seen = p->last_seen;
    rp->host = (uint32_t)h;
    return 0;
}

/* The pairs of one machine still on the host a move takes them from. */
struct unit {
    const char *from;
    struct kr_pin p[8];
    size_t n;
};

static int unit_cb(const struct kr_pin *p, void *arg)
{
    struct unit *u = arg;
    if (u->n < sizeof(u->p) / sizeof(u->p[0]) && strcmp(p->host, u->from) == 0)
        u->p[u->n++] = *p;
    return 0;
}

/* One planned move: the client's pins (every application) go to the new
 * host unless this is a dry run; the pin may have changed since the walk.
 * Counts it as applied or skipped; returns its JSON entry. */
static json_t *rb_move(struct rb_ctx *x, const struct ctl_rb_move *m, size_t *applied,
                       size_t *skipped)
{
    const struct ctl_rb_pin *rp = &x->pins[m->pin];
    struct unit u = {.from = x->names[m->from], .n = 0};
    bool ok = kr_store_pin_iter_cmid(x->store, rp->cmid, unit_cb, &u) == 0 && u.n > 0;
    json_t *e = json_object();
    ctl_set(e, "cmid", ctl_json_guid(rp->cmid));
    ctl_set(e, "workstation", ok ? json_string(u.p[0].workstation) : json_null());
    ctl_set(e, "applications", ok ? json_integer((json_int_t)u.n) : json_null());
    ctl_set(e, "last_seen", ctl_json_time(rp->last_seen));
    ctl_set(e, "from", json_string(x->names[m->from]));
    ctl_set(e, "to", json_string(x->names[m->to]));
    if (!ok) {
        (*skipped)++;
        ctl_set(e, "skipped", json_string("the pin changed meanwhile"));
    } else if (!x->dry_run) {
        bool all = true;
        for (size_t k = 0; k < u.n; k++) {
            snprintf(u.p[k].host, sizeof(u.p[k].host), "%s", x->names[m->to]);
            all &= kr_store_pin_put(x->store, &u.p[k]) == 0;
        }
        if (all)
            (*applied)++;
        else
            (*skipped)++;
    }
    return e;
}

/* Every host's pins before and after, with its role and target share. */
static json_t *rb_hosts_json(const struct rb_ctx *x)
{
    json_t *hosts = json_array();
    for (size_t i = 0; i < x->n_hosts; i++) {
        json_t *h = json_object();
        ctl_set(h, "host", json_string(x->names[i]));
        ctl_set(h, "weight", json_integer(x->hosts[i].weight));
        ctl_set(h, "role", json_string(role_word(x->hosts[i].role)));
        ctl_set(h, "before", json_integer((json_int_t)x->before[i]));
        ctl_set(h, "after", json_integer((json_int_t)x->hosts[i].count));
        ctl_set(h, "share",
                x->hosts[i].role == CTL_RB_POOL ? json_real(x->hosts[i].target) : json_null());
        json_array_append_new(hosts, h);
    }
    return hosts;
}

static void rb_work(struct ctl_job *j)
{
    struct rb_ctx *x = j->ctx;
    struct ctl_rb_move *moves = NULL;
    const char *why = NULL;
    size_t n = 0, applied = 0, skipped = 0;
    int rc;

    x->job = j;
    x->last_host = -1;
    if ((rc = kr_store_pin_iter(x->store, collect, x)) != 0) {
        j->status =
            ctl_fail(j->err, sizeof(j->err), 500, "cannot walk the pins: %s", kr_strerror(rc));
        return;
    }
    for (size_t i = 0; i < x->n_hosts; i++)
        x->before[i] = x->hosts[i].count;
    if (x->max && !(moves = calloc(x->max, sizeof(*moves)))) {
        j->status = ctl_fail(j->err, sizeof(j->err), 500, "out of memory");
        return;
    }
    n = x->max ? ctl_rebalance_plan(x->hosts, x->n_hosts, x->pins, x->n_pins, x->max, moves) : 0;

    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, rb_move(x, &moves[i], &applied, &skipped));
    free(moves);
    if (!x->dry_run && applied && (rc = kr_store_flush(x->store, &why)) != 0) {
        json_decref(list);
        j->status = ctl_fail(j->err, sizeof(j->err), 500,
                             "the moves are queued but could not be written to disk: %s",
                             why ? why : kr_strerror(rc));
        return;
    }

    j->out = json_object();
    ctl_set(j->out, "dry_run", json_boolean(x->dry_run));
    ctl_set(j->out, "max", json_integer((json_int_t)x->max));
    ctl_set(j->out, "planned", json_integer((json_int_t)n));
    ctl_set(j->out, "moved", json_integer((json_int_t)(x->dry_run ? 0 : applied)));
    ctl_set(j->out, "skipped", json_integer((json_int_t)skipped));
    ctl_set(j->out, "moves", list);
    ctl_set(j->out, "hosts", rb_hosts_json(x));
    j->status = 200;
}

static void rb_free(void *arg)
{
    struct rb_ctx *x = arg;
    if (x)
        free(x->pins);
    free(x);
}

int ctl_api_rebalance(struct ctl_call *c)
{
    struct kr_relay *r = c->r;
    struct ctl_body b;
    struct rb_ctx *x;
    int rc;

    if ((rc = ctl_body_parse(CTL_BODY_REBALANCE, c->body, c->body_len, &b, c->err, sizeof(c->err))))
        return rc;
    if (!(x = calloc(1, sizeof(*x))))
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = r->store;
    x->max = b.max;
    x->dry_run = b.dry_run;
    for (size_t i = 0; i < r->n_hosts && x->n_hosts < RB_MAX_HOSTS; i++) {
        const struct kr_host *h = r->hosts[i];
        struct ctl_rb_host *rh = &x->hosts[x->n_hosts];
        snprintf(x->names[x->n_hosts], KR_PIN_HOST_MAX, "%s", h->conf.name);
        rh->weight = kr_host_weight(h);
        if (h->removed || h->admin == KR_ADMIN_RETIRED)
            rh->role = CTL_RB_EVICT;
        else if (h->admin == KR_ADMIN_READY && h->health != KR_HEALTH_DOWN)
            rh->role = CTL_RB_POOL;
        else
            rh->role = CTL_RB_FIXED;
        x->n_hosts++;
    }
    return ctl_job_start(c, rb_work, NULL, x, rb_free);
}
