/*
 * build.c - kr_report_build(): two walks over the pins.
 *
 *   walk 1  adds up clients (pairs: CMID, application) per application and
 *           host, VM/physical and licence states, the per-machine findings
 *           (clock skew, cloned images; machine.c) and the CMID links;
 *   then    every (host, application) cell gets its count and threshold
 *           (tally.c), which needs all of walk 1;
 *   walk 2  (only when a cell is below its threshold, some client changed
 *           its CMID or some machine is idle) lists the clients that cannot
 *           activate on such a host, one item per CMID chain, and the idle
 *           machines that no newer CMID replaced.
 *
 * A second walk is cheaper than keeping every pin in memory: a report on a
 * million pins needs a few kilobytes, not a gigabyte.
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "report/report-internal.h"

static int walk1(const struct kr_pin *p, void *ctx)
{
    struct rp *x = ctx;
    int a = rp_app(x, p->app_id);
    int h = rp_host(x, p->host);

    x->pins++;
    if (h < 0)
        return x->err;
    if (p->last_seen >= x->window_start) {
        struct rp_app *ap = &x->apps[a];
        struct rp_ha *c = &x->hosts[h].ha[a];
        x->clients++;
        ap->clients++;
        if (p->is_vm) {
            x->vm++;
            ap->vm++;
        } else {
            x->physical++;
            ap->physical++;
        }
        ap->licence[p->license_status < RP_LICENCE ? p->license_status : RP_LICENCE - 1]++;
        x->hosts[h].clients++;
        c->clients++;
        if (p->n_policy > c->max_policy)
            c->max_policy = p->n_policy;
        /* Fallback count: the latest successful answer this host gave.
         * Times are whole seconds, so a burst ties; a host's count only
         * grows within a burst, so the highest of a tie is the latest. */
        if (p->last_hresult == 0 &&
            (p->last_seen > c->latest_seen ||
             (p->last_seen == c->latest_seen && p->last_count > c->latest_count))) {
            c->latest_seen = p->last_seen;
            c->latest_count = p->last_count;
        }
    }
    rp_mach_add(x, p, rp_mach_end1);
    if (!kr_guid_is_zero(p->prev_cmid))
        rp_link_add(x, p);
    return x->err;
}

static int walk2(const struct kr_pin *p, void *ctx)
{
    struct rp *x = ctx;
    int h = rp_host(x, p->host);
    if (h < 0)
        return x->err;
    struct rp_ha *c = &x->hosts[h].ha[rp_app(x, p->app_id)];
    if (c->below && p->last_seen >= x->window_start && p->n_policy > c->count) {
        c->affected_total++;
        if (json_array_size(c->affected) < x->o.max_items) {
            json_t *it = rp_item_affected(p);
            if (!it || json_array_append_new(c->affected, it) != 0)
                x->err = KR_ENOMEM;
        }
    }
    rp_mach_add(x, p, rp_mach_end2);
    return x->err;
}

int kr_report_build(struct kr_store *s, const struct kr_report_host *hosts, size_t n_hosts,
                    int64_t now, const struct kr_report_opts *o, json_t **out, const char **why)
{
    struct rp x;
    int rc;

    if (!s || !out)
        return kr_fail(why, KR_EINVAL, "no store or no output");
    *out = NULL;
    rc = rp_init(&x, hosts, n_hosts, now, o);
    if (rc == 0)
        rc = kr_store_pin_iter(s, walk1, &x);
    if (rc == 0)
        rp_mach_end1(&x); /* the last machine */
    if (rc == 0 && x.err == 0) {
        rp_resolve(&x);
        rp_links_index(&x);
    }
    if (rc == 0 && x.err == 0 && x.second_walk) {
        x.m.have = false;
        rc = kr_store_pin_iter(s, walk2, &x);
        if (rc == 0)
            rp_mach_end2(&x);
    }
    if (rc == 0)
        rc = x.err;
    if (rc == 0) {
        rp_lists_sort(&x);
        rp_hosts_sort(&x);
        if (!(*out = rp_emit(&x)))
            rc = KR_ENOMEM;
    }
    rp_free(&x);
    if (rc != 0)
        return kr_fail(why, rc, rc == KR_ENOMEM ? "out of memory" : "cannot read the pins");
    return 0;
}

size_t kr_report_findings(const json_t *report)
{
    const json_t *t = json_object_get(report, "totals");
    const char *k;
    const json_t *v;
    size_t n = 0;
    json_object_foreach((json_t *)t, k, v)
    {
        if (json_is_integer(v) && json_integer_value(v) > 0)
            n += (size_t)json_integer_value(v);
    }
    return n;
}
