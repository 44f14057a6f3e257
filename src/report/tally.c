/*
 * tally.c - the tables a report adds up into: hosts (hashed by name, since
 * a million pins each look one up), applications (a handful), and the
 * (host, application) cells whose count and threshold decide the
 * "below threshold" finding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"
#include "report/report-internal.h"

#define DAY_S (24 * 3600)

int rp_init(struct rp *x, const struct kr_report_host *hosts, size_t n, int64_t now,
            const struct kr_report_opts *o)
{
    memset(x, 0, sizeof(*x));
    if (o)
        x->o = *o;
    if (x->o.window_s <= 0)
        x->o.window_s = 30 * DAY_S;
    if (x->o.stale_s <= 0)
        x->o.stale_s = 7 * DAY_S;
    if (x->o.skew_s <= 0)
        x->o.skew_s = 4 * 3600;
    if (x->o.max_items == 0)
        x->o.max_items = 1000;
    x->now = now;
    x->window_start = now - x->o.window_s;
    x->stale_before = now - x->o.stale_s;
    x->in_hosts = hosts;
    x->n_in_hosts = hosts ? n : 0;

    /* The three known applications always come first, in this order. */
    for (int i = 0; i < KR_KMS_APPS_KNOWN; i++)
        memcpy(x->apps[i].id, kr_kms_app_id(i), 16);
    x->n_apps = KR_KMS_APPS_KNOWN;

    for (int k = 0; k < RP_NLISTS; k++)
        if (!(x->lists[k].items = json_array()))
            return KR_ENOMEM;
    for (size_t i = 0; i < x->n_in_hosts; i++) {
        int h = rp_host(x, hosts[i].name);
        if (h < 0)
            return KR_ENOMEM;
        x->hosts[h].in = &hosts[i];
    }
    return 0;
}

void rp_free(struct rp *x)
{
    for (int k = 0; k < RP_NLISTS; k++)
        json_decref(x->lists[k].items);
    for (size_t i = 0; i < x->n_hosts; i++)
        for (int a = 0; a < RP_APPS; a++)
            json_decref(x->hosts[i].ha[a].affected);
    free(x->hosts);
    free(x->hash);
    free(x->links);
    free(x->prevs);
    memset(x, 0, sizeof(*x));
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static bool rehash(struct rp *x, size_t cap)
{
    uint32_t *t = calloc(cap, sizeof(*t));
    if (!t)
        return false;
    for (size_t i = 0; i < x->n_hosts; i++) {
        size_t j = name_hash(x->hosts[i].name) & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = (uint32_t)(i + 1);
    }
    free(x->hash);
    x->hash = t;
    x->hash_cap = cap;
    return true;
}

int rp_host(struct rp *x, const char *name)
{
    if (x->hash_cap) {
        size_t j = name_hash(name) & (x->hash_cap - 1);
        while (x->hash[j]) {
            if (strcmp(x->hosts[x->hash[j] - 1].name, name) == 0)
                return (int)(x->hash[j] - 1);
            j = (j + 1) & (x->hash_cap - 1);
        }
    }
    if (x->n_hosts == x->cap_hosts) {
        size_t cap = x->cap_hosts ? x->cap_hosts * 2 : 16;
        struct rp_host *h = realloc(x->hosts, cap * sizeof(*h));
        if (!h) {
            x->err = KR_ENOMEM;
            return -1;
        }
        x->hosts = h;
        x->cap_hosts = cap;
    }
    struct rp_host *h = &x->hosts[x->n_hosts];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    x->n_hosts++;
    /* Keep the table at most half full; rehash() places every host. */
    if (x->n_hosts * 2 > x->hash_cap) {
        if (!rehash(x, x->hash_cap ? x->hash_cap * 2 : 64)) {
            x->n_hosts--;
            x->err = KR_ENOMEM;
            return -1;
        }
    } else {
        size_t j = name_hash(name) & (x->hash_cap - 1);
        while (x->hash[j])
            j = (j + 1) & (x->hash_cap - 1);
        x->hash[j] = (uint32_t)x->n_hosts;
    }
    return (int)(x->n_hosts - 1);
}

int rp_app(struct rp *x, const uint8_t id[16])
{
    for (size_t i = 0; i < x->n_apps; i++)
        if (memcmp(x->apps[i].id, id, 16) == 0)
            return (int)i;
    if (x->n_apps == RP_APPS)
        return RP_APPS - 1; /* a ninth unknown id: counted with the eighth */
    memcpy(x->apps[x->n_apps].id, id, 16);
    return (int)x->n_apps++;
}

/* The caller's latest count of host h for application a, or NULL. */
static const struct kr_report_count *host_count(const struct rp *x, const struct rp_host *h,
                                                const uint8_t app_id[16])
{
    if (!h->in)
        return NULL;
    for (size_t i = 0; i < h->in->n_counts && i < KR_REPORT_HOST_APPS; i++) {
        const struct kr_report_count *c = &h->in->counts[i];
        if (memcmp(c->app_id, app_id, 16) != 0)
            continue;
        if (x->o.count_max_age_s > 0 && (c->age_s < 0 || c->age_s > x->o.count_max_age_s))
            return NULL;
        return c;
    }
    return NULL;
}

void rp_resolve(struct rp *x)
{
    for (size_t i = 0; i < x->n_hosts; i++) {
        struct rp_host *h = &x->hosts[i];
        for (size_t a = 0; a < x->n_apps; a++) {
            struct rp_ha *c = &h->ha[a];
            const struct kr_report_count *hc = host_count(x, h, x->apps[a].id);
            uint32_t thr = c->max_policy;
            c->count_age = -1;
            if (hc) {
                c->src = RP_SRC_HOST;
                c->count = hc->count;
                c->count_age = hc->age_s;
                if (hc->n_policy > thr)
                    thr = hc->n_policy;
            } else if (c->latest_seen) {
                c->src = RP_SRC_PIN;
                c->count = c->latest_count;
            }
            /* The pins hold every client's N_Policy: all known. */
            c->threshold = kr_kms_activation_threshold(x->apps[a].id, thr, 1);
            c->below = c->src != RP_SRC_NONE && c->count < c->threshold;
            if (c->below) {
                x->second_walk = true;
                if (!(c->affected = json_array()))
                    x->err = KR_ENOMEM;
            }
        }
    }
}

static int cmp_host(const void *a, const void *b)
{
    return strcmp(((const struct rp_host *)a)->name, ((const struct rp_host *)b)->name);
}

void rp_hosts_sort(struct rp *x)
{
    if (x->n_hosts > 1)
        qsort(x->hosts, x->n_hosts, sizeof(*x->hosts), cmp_host);
    /* Indices moved: the hash is of no use any more. */
    free(x->hash);
    x->hash = NULL;
    x->hash_cap = 0;
}
