/*
 * report.c - the audit's output: one JSON document (kmsrelayctl audit
 * --json, the daemon's log and status) and a readable table built from it,
 * so both always say the same. Every finding carries its evidence: which
 * servers returned the record with which TTL, what the target resolved to,
 * and each connect / RPC bind tried with its error and latency.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/audit.h"

static json_t *try_json(const struct kr_audit_try *t)
{
    static const char *const stage[] = {"not_tried", "connect_failed", "bind_failed", "ok"};
    json_t *o = json_object();
    json_object_set_new(o, "addr", json_string(t->addr));
    json_object_set_new(o, "port", json_integer(t->port));
    json_object_set_new(o, "result", json_string(stage[t->stage & 3]));
    json_object_set_new(o, "detail", json_string(t->stage == KR_PROBE_OK ? t->result : t->error));
    json_object_set_new(o, "connect_ms", json_real(t->connect_us / 1000.0));
    if (t->stage >= KR_PROBE_BIND)
        json_object_set_new(o, "bind_ms", json_real(t->bind_us / 1000.0));
    return o;
}

static const char *found_by(const struct kr_audit_rrset *set)
{
    return set->from_axfr ? "axfr" : set->from_ldap ? "ldap" : "query";
}

static json_t *record_json(const struct kr_audit_rrset *set, const struct kr_audit_rec *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "prio", json_integer(r->prio));
    json_object_set_new(o, "weight", json_integer(r->weight));
    json_object_set_new(o, "port", json_integer(r->port));
    json_object_set_new(o, "target", json_string(r->target));
    for (unsigned v = 0; v < set->n_views; v++)
        if (r->seen & (1u << v)) {
            json_object_set_new(o, "ttl", json_integer(r->ttl[v]));
            break;
        }
    return o;
}

static json_t *marker_json(const struct kr_audit_marker *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "owner", json_string(m->id));
    json_object_set_new(o, "target", json_string(m->target));
    json_object_set_new(o, "port", json_integer(m->port));
    json_object_set_new(o, "prio", json_integer(m->prio));
    json_object_set_new(o, "weight", json_integer(m->weight));
    json_object_set_new(o, "ttl", json_integer(m->ttl));
    json_object_set_new(o, "text", json_string(m->text));
    return o;
}

static json_t *views_json(const struct kr_audit_rrset *set, const struct kr_audit_rec *r)
{
    json_t *a = json_array();
    for (unsigned v = 0; v < set->n_views; v++) {
        const struct kr_audit_view *w = &set->views[v];
        if (r && !(r->seen & (1u << v)))
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "server", json_string(w->server));
        if (r) {
            json_object_set_new(o, "ttl", json_integer(r->ttl[v]));
        } else {
            json_object_set_new(o, "ok", json_boolean(w->ok));
            json_object_set_new(o, "records", json_integer(w->n_srv));
            if (!w->ok)
                json_object_set_new(o, "error", json_string(w->error));
            json_t *ttls = json_array();
            for (unsigned i = 0; i < set->n_rr; i++)
                if (set->rr[i].seen & (1u << v))
                    json_array_append_new(ttls, json_integer(set->rr[i].ttl[v]));
            json_object_set_new(o, "ttls", ttls);
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *probe_json(const struct kr_audit_probe *p)
{
    json_t *t = json_object();
    json_object_set_new(t, "dot", json_boolean(p->dot));
    json_object_set_new(t, "cname", p->cname ? json_string(p->cname_target) : json_null());
    json_t *addrs = json_array();
    for (unsigned i = 0; i < p->n_addrs; i++)
        json_array_append_new(addrs, json_string(p->addrs[i]));
    json_object_set_new(t, "addresses", addrs);
    if (p->resolved_by[0])
        json_object_set_new(t, "resolved_by", json_string(p->resolved_by));
    json_object_set_new(t, "error",
                        p->resolve_error[0] ? json_string(p->resolve_error) : json_null());
    json_object_set_new(t, "lookup_failed", json_boolean(p->lookup_failed));
    return t;
}

static json_t *finding_json(const struct kr_audit_entry *e, size_t k,
                            const struct kr_audit_policy *pol)
{
    const struct kr_audit_rrset *set = e->set;
    const struct kr_audit_finding *f = &e->f[k];
    const struct kr_audit_rec *r = f->rr >= 0 ? &set->rr[f->rr] : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "zone", json_string(set->zone));
    json_object_set_new(o, "owner", json_string(set->owner));
    json_object_set_new(o, "class", json_string(kr_audit_class_name(f->cls)));
    json_object_set_new(o, "problem", json_boolean(kr_audit_is_problem(f)));
    json_object_set_new(o, "confirmed", json_boolean(f->confirmed));
    json_object_set_new(o, "reason", json_string(f->reason));
    json_object_set_new(o, "record", r ? record_json(set, r) : json_null());
    json_object_set_new(o, "marker",
                        f->marker >= 0 ? marker_json(&set->markers[f->marker]) : json_null());
    json_t *ev = json_object();
    json_object_set_new(ev, "found_by", json_string(found_by(set)));
    json_object_set_new(ev, "servers", views_json(set, r));
    if (r) {
        const struct kr_audit_probe *p = &set->probe[f->rr];
        json_object_set_new(ev, "target", probe_json(p));
        json_t *a = json_array();
        for (unsigned i = 0; i < p->n_tries; i++)
            json_array_append_new(a, try_json(&p->tries[i]));
        json_object_set_new(ev, "probes", a);
        a = json_array();
        for (unsigned i = 0; i < p->n_alt; i++)
            json_array_append_new(a, try_json(&p->alt[i]));
        json_object_set_new(ev, "other_ports", a);
        if (f->cls == KR_AUDIT_STALE_DEAD || f->cls == KR_AUDIT_PEER_STALE) {
            json_object_set_new(ev, "failing_since",
                                p->failing_since ? json_integer(p->failing_since) : json_null());
            json_object_set_new(ev, "dead_after_s", json_integer((json_int_t)pol->dead_after_s));
        }
        if (p->over_time[0])
            json_object_set_new(ev, "over_time", json_string(p->over_time));
    }
    json_object_set_new(o, "evidence", ev);
    if (e->fix && e->fix[k])
        json_object_set(o, "fix", e->fix[k]);
    return o;
}

json_t *kr_audit_json(const struct kr_audit_result *r, const struct kr_audit_policy *p)
{
    json_t *doc = json_object(), *zones = json_array(), *fs = json_array();
    size_t counts[KR_AUDIT_NCLASS] = {0}, records = 0, problems = 0;
    if (!doc || !zones || !fs) {
        json_decref(doc);
        json_decref(zones);
        json_decref(fs);
        return NULL;
    }
    json_object_set_new(doc, "version", json_integer(1));
    json_object_set_new(doc, "time", json_integer(p->now));
    json_object_set_new(doc, "instance_id",
                        p->instance_id && p->instance_id[0] ? json_string(p->instance_id)
                                                            : json_null());
    json_t *sanc = json_array();
    for (size_t i = 0; i < p->n_sanctioned; i++)
        json_array_append_new(sanc, json_string(p->sanctioned[i]));
    json_object_set_new(doc, "sanctioned", sanc);
    json_object_set_new(doc, "point_in_time", json_boolean(p->dead_after_s == 0));
    json_object_set_new(doc, "dead_after_s", json_integer((json_int_t)p->dead_after_s));
    for (size_t i = 0; i < r->n; i++) {
        const struct kr_audit_entry *e = &r->e[i];
        json_t *z = json_object();
        json_object_set_new(z, "zone", json_string(e->set->zone));
        json_object_set_new(z, "owner", json_string(e->set->owner));
        json_object_set_new(z, "found_by", json_string(found_by(e->set)));
        json_object_set_new(z, "records", json_integer(e->set->n_rr));
        json_object_set_new(z, "truncated", json_boolean(e->set->truncated));
        json_object_set_new(z, "servers", views_json(e->set, NULL));
        json_array_append_new(zones, z);
        records += e->set->n_rr;
        for (size_t k = 0; k < e->n_f; k++) {
            json_array_append_new(fs, finding_json(e, k, p));
            counts[e->f[k].cls]++;
            problems += (size_t)kr_audit_is_problem(&e->f[k]);
        }
    }
    json_object_set_new(doc, "zones", zones);
    json_object_set_new(doc, "findings", fs);
    json_t *sum = json_object(), *cls = json_object();
    for (int c = 0; c < KR_AUDIT_NCLASS; c++)
        if (counts[c])
            json_object_set_new(cls, kr_audit_class_name(c), json_integer((json_int_t)counts[c]));
    json_object_set_new(sum, "records", json_integer((json_int_t)records));
    json_object_set_new(sum, "findings", json_integer((json_int_t)json_array_size(fs)));
    json_object_set_new(sum, "problems", json_integer((json_int_t)problems));
    json_object_set_new(sum, "classes", cls);
    json_object_set_new(doc, "summary", sum);
    json_t *errs = json_array();
    for (size_t i = 0; i < r->n_errors; i++)
        json_array_append_new(errs, json_string(r->errors[i]));
    json_object_set_new(doc, "errors", errs);
    return doc;
}
