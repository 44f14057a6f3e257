/*
 * items.c - one JSON object per finding, the CMID chains (clients whose
 * request names a previous CMID: re-imaged or rearmed machines), and the
 * final ordering of every list.
 *
 * Lists keep the first max_items items met in the walk (CMID order) and
 * count the rest, so a report on a huge store stays small but its totals
 * stay exact.
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "report/report-internal.h"

bool rp_list_room(struct rp *x, int kind)
{
    struct rp_list *l = &x->lists[kind];
    l->total++;
    return json_array_size(l->items) < x->o.max_items;
}

void rp_list_add(struct rp *x, int kind, json_t *item)
{
    if (!item || json_array_append_new(x->lists[kind].items, item) != 0)
        x->err = KR_ENOMEM;
}

/* The fields every client item starts with. */
static json_t *client_base(const struct kr_pin *p)
{
    char buf[40];
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "cmid", rp_guid_json(p->cmid));
    json_object_set_new(o, "workstation", json_string(p->workstation));
    json_object_set_new(o, "host", json_string(p->host));
    json_object_set_new(o, "application", json_string(rp_app_text(p->app_id, buf)));
    return o;
}

/* The applications of a machine, by name, in report order. */
static json_t *apps_json(const struct rp *x, uint8_t mask)
{
    char buf[40];
    json_t *a = json_array();
    for (size_t i = 0; a && i < x->n_apps; i++)
        if (mask & (1u << i))
            json_array_append_new(a, json_string(rp_app_text(x->apps[i].id, buf)));
    return a;
}

/* A machine's item: client_base of the pair shown, plus its applications. */
static json_t *machine_base(const struct rp *x, const struct rp_mach *m, const struct kr_pin *p)
{
    json_t *o = client_base(p);
    if (o)
        json_object_set_new(o, "applications", apps_json(x, m->app_mask));
    return o;
}

json_t *rp_item_skew(const struct rp *x, const struct rp_mach *m)
{
    const struct kr_pin *p = &m->skew;
    json_t *o = machine_base(x, m, p);
    if (o) {
        json_object_set_new(o, "skew_seconds", json_integer(p->skew_s));
        json_object_set_new(o, "last_seen", rp_iso_json(p->last_seen));
    }
    return o;
}

json_t *rp_item_cloned(const struct rp *x, const struct rp_mach *m)
{
    json_t *o = machine_base(x, m, &m->latest), *names = json_array();
    if (!o || !names) {
        json_decref(o);
        json_decref(names);
        return NULL;
    }
    /* Distinct names (DNS comparison) inside the window, most recent first. */
    bool used[RP_MACH_NAMES] = {false};
    for (unsigned k = 0; k < m->n_names; k++) {
        unsigned best = RP_MACH_NAMES;
        for (unsigned i = 0; i < m->n_names; i++)
            if (!used[i] &&
                (best == RP_MACH_NAMES || m->names[i].last_seen > m->names[best].last_seen))
                best = i;
        used[best] = true;
        json_t *n = json_object();
        json_object_set_new(n, "name", json_string(m->names[best].name));
        json_object_set_new(n, "last_seen", rp_iso_json(m->names[best].last_seen));
        json_array_append_new(names, n);
    }
    json_object_set_new(o, "workstations", names);
    return o;
}

json_t *rp_item_stale(const struct rp *x, const struct rp_mach *m)
{
    json_t *o = machine_base(x, m, &m->latest);
    if (o) {
        json_object_set_new(o, "last_seen", rp_iso_json(m->last_seen));
        json_object_set_new(o, "days_idle", json_integer((x->now - m->last_seen) / 86400));
    }
    return o;
}

json_t *rp_item_affected(const struct kr_pin *p)
{
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "cmid", rp_guid_json(p->cmid));
        json_object_set_new(o, "workstation", json_string(p->workstation));
        json_object_set_new(o, "n_policy", json_integer(p->n_policy));
    }
    return o;
}

/* ---- chains -------------------------------------------------------------- */

int rp_link_add(struct rp *x, const struct kr_pin *p)
{
    if (x->n_links == x->cap_links) {
        size_t cap = x->cap_links ? x->cap_links * 2 : 64;
        struct rp_link *l = realloc(x->links, cap * sizeof(*l));
        if (!l)
            return x->err = KR_ENOMEM;
        x->links = l;
        x->cap_links = cap;
    }
    memcpy(x->links[x->n_links].cmid, p->cmid, 16);
    memcpy(x->links[x->n_links].prev, p->prev_cmid, 16);
    x->n_links++;
    return 0;
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

bool rp_links_index(struct rp *x)
{
    if (x->n_links == 0)
        return true;
    qsort(x->links, x->n_links, sizeof(*x->links), cmp16); /* cmid is the first member */
    x->prevs = malloc(x->n_links * sizeof(*x->prevs));
    if (!x->prevs) {
        x->err = KR_ENOMEM;
        return false;
    }
    for (size_t i = 0; i < x->n_links; i++)
        memcpy(x->prevs[i], x->links[i].prev, 16);
    qsort(x->prevs, x->n_links, 16, cmp16);
    x->second_walk = true;
    return true;
}

bool rp_link_is_head(const struct rp *x, const uint8_t cmid[16])
{
    return x->prevs && !bsearch(cmid, x->prevs, x->n_links, 16, cmp16);
}

bool rp_is_replaced(const struct rp *x, const uint8_t cmid[16])
{
    return x->prevs && bsearch(cmid, x->prevs, x->n_links, 16, cmp16);
}

json_t *rp_item_changed(const struct rp *x, const struct rp_mach *m)
{
    const struct kr_pin *p = &m->link;
    uint8_t chain[RP_CHAIN_MAX][16];
    size_t n = 0;
    const uint8_t *cur = p->cmid;

    /* Walk back through the pins that name a previous CMID; stop at one that
     * names none (or after RP_CHAIN_MAX, which also ends a loop). */
    memcpy(chain[n++], cur, 16);
    while (n < RP_CHAIN_MAX) {
        const struct rp_link *l = bsearch(cur, x->links, x->n_links, sizeof(*l), cmp16);
        if (!l || kr_guid_is_zero(l->prev))
            break;
        memcpy(chain[n++], l->prev, 16);
        cur = l->prev;
        bool loop = false;
        for (size_t i = 0; i + 1 < n; i++)
            loop |= memcmp(chain[i], cur, 16) == 0;
        if (loop)
            break;
    }
    json_t *o = machine_base(x, m, p), *arr = json_array();
    if (!o || !arr) {
        json_decref(o);
        json_decref(arr);
        return NULL;
    }
    json_object_set_new(o, "previous_cmid", rp_guid_json(p->prev_cmid));
    for (size_t i = n; i-- > 0;) /* oldest first */
        json_array_append_new(arr, rp_guid_json(chain[i]));
    json_object_set_new(o, "chain", arr);
    return o;
}

/* ---- ordering ------------------------------------------------------------ */

static int cmp_items(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    static const char *const keys[] = {"host", "application", "workstation", "cmid"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int c = strcmp(rp_str(x, keys[i]), rp_str(y, keys[i]));
        if (c)
            return c;
    }
    return 0;
}

static void sort_array(json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    json_t **v = malloc(n * sizeof(*v));
    if (!v)
        return; /* unsorted is still correct */
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof(*v), cmp_items);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

void rp_lists_sort(struct rp *x)
{
    for (int k = 0; k < RP_NLISTS; k++)
        sort_array(x->lists[k].items);
    for (size_t i = 0; i < x->n_hosts; i++)
        for (size_t a = 0; a < x->n_apps; a++)
            sort_array(x->hosts[i].ha[a].affected);
}
