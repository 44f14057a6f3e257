/*
 * emit.c - assembles the report document (schema in kmsrelay/report.h)
 * from the tallies, and writes one warning sentence per finding group so
 * that a person reading only "warnings" knows what to do.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kmsrelay/kms.h"
#include "report/report-internal.h"

#define NAMES_IN_WARNING 5

static json_t *licence_obj(const struct rp_app *a)
{
    json_t *o = json_object();
    for (unsigned i = 0; o && i < RP_LICENCE; i++)
        json_object_set_new(o, rp_licence_name(i), json_integer((json_int_t)a->licence[i]));
    return o;
}

static json_t *cell_obj(const struct rp_host *h, const struct rp_ha *c)
{
    static const char *const src[] = {"none", "pin", "host"};
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "host", json_string(h->name));
    json_object_set_new(o, "clients", json_integer((json_int_t)c->clients));
    json_object_set_new(o, "reported_count",
                        c->src == RP_SRC_NONE ? json_null() : json_integer(c->count));
    json_object_set_new(o, "count_source", json_string(src[c->src]));
    json_object_set_new(o, "count_age_seconds",
                        c->src == RP_SRC_HOST && c->count_age >= 0 ? json_integer(c->count_age)
                                                                   : json_null());
    json_object_set_new(o, "threshold", json_integer(c->threshold));
    json_object_set_new(o, "below_threshold", json_boolean(c->below));
    return o;
}

static json_t *app_obj(struct rp *x, size_t a)
{
    char buf[40];
    const struct rp_app *ap = &x->apps[a];
    json_t *o = json_object(), *hosts = json_array();
    if (!o || !hosts) {
        json_decref(o);
        json_decref(hosts);
        return NULL;
    }
    json_object_set_new(o, "application", json_string(rp_app_text(ap->id, buf)));
    json_object_set_new(o, "app_id", rp_guid_json(ap->id));
    json_object_set_new(o, "clients", json_integer((json_int_t)ap->clients));
    json_object_set_new(o, "vm", json_integer((json_int_t)ap->vm));
    json_object_set_new(o, "physical", json_integer((json_int_t)ap->physical));
    json_object_set_new(o, "licence", licence_obj(ap));
    for (size_t i = 0; i < x->n_hosts; i++) {
        const struct rp_ha *c = &x->hosts[i].ha[a];
        if (c->clients || c->src == RP_SRC_HOST)
            json_array_append_new(hosts, cell_obj(&x->hosts[i], c));
    }
    json_object_set_new(o, "hosts", hosts);
    return o;
}

/* The below-threshold findings, one per cell. */
static void below_items(struct rp *x)
{
    char buf[40];
    for (size_t i = 0; i < x->n_hosts; i++) {
        for (size_t a = 0; a < x->n_apps; a++) {
            struct rp_ha *c = &x->hosts[i].ha[a];
            if (!c->below)
                continue;
            if (!rp_list_room(x, RP_BELOW))
                continue;
            json_t *o = json_object();
            if (o) {
                json_object_set_new(o, "host", json_string(x->hosts[i].name));
                json_object_set_new(o, "application", json_string(rp_app_text(x->apps[a].id, buf)));
                json_object_set_new(o, "app_id", rp_guid_json(x->apps[a].id));
                json_object_set_new(o, "count", json_integer(c->count));
                json_object_set_new(o, "threshold", json_integer(c->threshold));
                json_object_set_new(o, "clients", json_incref(c->affected));
                json_object_set_new(o, "clients_total",
                                    json_integer((json_int_t)c->affected_total));
            }
            rp_list_add(x, RP_BELOW, o);
        }
    }
}

/* "a, b, c and 4 more" from the key of the first items of arr. */
static void name_list(const json_t *arr, const char *key, size_t total, char *out, size_t cap)
{
    size_t n = json_array_size(arr), shown = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && shown < NAMES_IN_WARNING; i++) {
        const char *s = rp_str(json_array_get(arr, i), key);
        if (!*s)
            s = rp_str(json_array_get(arr, i), "cmid");
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", shown ? ", " : "", s);
        shown++;
    }
    if (total > shown)
        snprintf(out + strlen(out), cap - strlen(out), "%sand %zu more", shown ? " " : "",
                 total - shown);
}

/* "PC-1 (+5h00m), PC-2 (-6h30m) and 3 more": who is skewed, and by how much. */
static void skew_list(const json_t *arr, size_t total, char *out, size_t cap)
{
    size_t n = json_array_size(arr), shown = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && shown < NAMES_IN_WARNING; i++) {
        const json_t *it = json_array_get(arr, i);
        const char *s = rp_str(it, "workstation");
        long long sk = rp_int(it, "skew_seconds", 0), a = sk < 0 ? -sk : sk;
        snprintf(out + strlen(out), cap - strlen(out), "%s%s (%c%lldh%02lldm)", shown ? ", " : "",
                 *s ? s : rp_str(it, "cmid"), sk < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
        shown++;
    }
    if (total > shown)
        snprintf(out + strlen(out), cap - strlen(out), "%sand %zu more", shown ? " " : "",
                 total - shown);
}

static void warn(json_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(json_t *w, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    json_array_append_new(w, json_string(line));
}

static json_t *warnings(const struct rp *x)
{
    json_t *w = json_array();
    char names[1024];
    size_t i;
    json_t *it;
    if (!w)
        return NULL;
    json_array_foreach(x->lists[RP_BELOW].items, i, it)
    {
        size_t n = (size_t)rp_int(it, "clients_total", 0);
        name_list(json_object_get(it, "clients"), "workstation", n, names, sizeof(names));
        warn(w,
             "host %s reports a count of %lld for %s, below the activation threshold of %lld: "
             "%zu client%s cannot activate there%s%s%s",
             rp_str(it, "host"), rp_int(it, "count", 0), rp_str(it, "application"),
             rp_int(it, "threshold", 0), n, n == 1 ? "" : "s", n ? " (" : "", names, n ? ")" : "");
    }
    const struct rp_list *l = &x->lists[RP_SKEW];
    if (l->total) {
        skew_list(l->items, l->total, names, sizeof(names));
        warn(w,
             "%zu machine%s with a clock more than %lld h off the proxy's (hosts refuse them "
             "with 0xC004F06C): %s",
             l->total, l->total == 1 ? "" : "s", (long long)(x->o.skew_s / 3600), names);
    }
    l = &x->lists[RP_CLONED];
    json_array_foreach(l->items, i, it)
    {
        const json_t *ws = json_object_get(it, "workstations");
        name_list(ws, "name", json_array_size(ws), names, sizeof(names));
        warn(w,
             "CMID %s is used by %zu workstations (an image deployed without sysprep or rearm; "
             "the host counts them once): %s",
             rp_str(it, "cmid"), json_array_size(ws), names);
    }
    if (l->total > json_array_size(l->items))
        warn(w, "%zu more cloned CMIDs are not listed", l->total - json_array_size(l->items));
    l = &x->lists[RP_CHANGED];
    if (l->total) {
        name_list(l->items, "workstation", l->total, names, sizeof(names));
        warn(w, "%zu machine%s changed CMID (previous CMID set): %s", l->total,
             l->total == 1 ? "" : "s", names);
    }
    l = &x->lists[RP_STALE];
    if (l->total) {
        name_list(l->items, "workstation", l->total, names, sizeof(names));
        warn(w, "%zu machine%s not seen for more than %lld days (gone, or failing to renew): %s",
             l->total, l->total == 1 ? "" : "s", (long long)(x->o.stale_s / 86400), names);
    }
    return w;
}

json_t *rp_emit(struct rp *x)
{
    static const char *const list_names[RP_NLISTS] = {"below_threshold", "clock_skew",
                                                      "cloned_images", "cmid_changed", "stale"};
    char iso[RP_ISO_LEN];
    json_t *r = json_object(), *apps = json_array(), *hosts = json_array();
    json_t *findings = json_object(), *totals = json_object();
    if (!r || !apps || !hosts || !findings || !totals)
        goto fail;

    below_items(x);
    rp_iso(x->now, iso);
    json_object_set_new(r, "schema", json_string(KR_REPORT_SCHEMA));
    json_object_set_new(r, "schema_changes", json_string(KR_REPORT_SCHEMA_CHANGES));
    json_object_set_new(r, "generated_at", json_string(iso));
    json_object_set_new(r, "now", json_integer(x->now));
    json_object_set_new(r, "window_days", json_integer(x->o.window_s / 86400));
    json_object_set_new(r, "stale_days", json_integer(x->o.stale_s / 86400));
    json_object_set_new(r, "skew_limit_seconds", json_integer(x->o.skew_s));
    json_object_set_new(r, "pins", json_integer((json_int_t)x->pins));
    json_object_set_new(r, "clients", json_integer((json_int_t)x->clients));
    json_object_set_new(r, "machines", json_integer((json_int_t)x->machines));
    json_object_set_new(r, "vm", json_integer((json_int_t)x->vm));
    json_object_set_new(r, "physical", json_integer((json_int_t)x->physical));

    for (size_t a = 0; a < x->n_apps; a++) {
        bool used = x->apps[a].clients > 0;
        for (size_t i = 0; i < x->n_hosts && !used; i++)
            used = x->hosts[i].ha[a].src == RP_SRC_HOST || x->hosts[i].ha[a].clients;
        if (used || a < 3) /* the three known applications are always listed */
            json_array_append_new(apps, app_obj(x, a));
    }
    for (size_t i = 0; i < x->n_hosts; i++) {
        const struct kr_report_host *in = x->hosts[i].in;
        json_t *o = json_object();
        json_object_set_new(o, "host", json_string(x->hosts[i].name));
        json_object_set_new(o, "admin", in && in->admin[0] ? json_string(in->admin) : json_null());
        json_object_set_new(o, "weight", in && in->weight ? json_integer(in->weight) : json_null());
        json_object_set_new(o, "health",
                            in && in->health[0] ? json_string(in->health) : json_null());
        json_object_set_new(o, "clients", json_integer((json_int_t)x->hosts[i].clients));
        json_array_append_new(hosts, o);
    }
    for (int k = 0; k < RP_NLISTS; k++) {
        json_object_set(findings, list_names[k], x->lists[k].items);
        json_object_set_new(totals, list_names[k], json_integer((json_int_t)x->lists[k].total));
    }
    json_object_set_new(r, "applications", apps);
    json_object_set_new(r, "hosts", hosts);
    json_object_set_new(r, "findings", findings);
    json_object_set_new(r, "totals", totals);
    json_object_set_new(r, "warnings", warnings(x));
    return x->err ? (json_decref(r), NULL) : r;
fail:
    json_decref(r);
    json_decref(apps);
    json_decref(hosts);
    json_decref(findings);
    json_decref(totals);
    return NULL;
}
