/*
 * results.c - what happened to every activation: global counters and
 * latencies, and per-client tallies (HRESULTs, error kinds, fault statuses,
 * the set of ePIDs that answered).
 *
 * Per-client tallies are singly linked entries in one growable pool, so a
 * client costs nothing until something happens to it and the hot path never
 * allocates except when the pool doubles. ePIDs are interned: a handful of
 * hosts answer thousands of clients with the same string.
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/guid.h"
#include "loadgen/loadgen.h"

#define LG_ERRORS_SHOWN 10 /* errors printed to stderr without --verbose */

struct tally_ent {
    uint32_t key;
    uint32_t n;
    int32_t next;
    uint8_t tag; /* enum lg_tally_tag */
};

struct lg_results {
    const struct lg_config *cfg;
    struct lg_client *clients;
    struct lg_stats st;
    struct tally_ent *pool;
    size_t n_pool, cap_pool;
    char (*epids)[KR_KMS_EPID_UTF8];
    size_t n_epids, cap_epids;
    int32_t *hash; /* open addressing over epids: id + 1, 0 = empty */
    size_t hash_cap;
    uint64_t shown;
};

static const char *const kind_names[LG_K_COUNT] = {
    "connect", "timeout", "closed", "protocol", "mismatch", "bind_rejected", "hresult", "fault",
};

const char *lg_kind_name(enum lg_kind k)
{
    return (unsigned)k < LG_K_COUNT ? kind_names[k] : "?";
}

struct lg_results *lg_results_new(const struct lg_config *cfg, struct lg_client *clients)
{
    struct lg_results *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = cfg;
    r->clients = clients;
    r->st.lat_us = malloc((size_t)cfg->activations * sizeof(uint32_t));
    r->hash_cap = 64;
    r->hash = calloc(r->hash_cap, sizeof(int32_t));
    if (!r->st.lat_us || !r->hash) {
        lg_results_free(r);
        return NULL;
    }
    return r;
}

void lg_results_free(struct lg_results *r)
{
    if (!r)
        return;
    free(r->st.lat_us);
    free(r->st.hr_err);
    free(r->st.hr_refused);
    free(r->st.faults);
    free(r->pool);
    free(r->epids);
    free(r->hash);
    free(r);
}

struct lg_stats *lg_results_stats(struct lg_results *r)
{
    return &r->st;
}

const char *lg_results_epid(const struct lg_results *r, int32_t id)
{
    return (id >= 0 && (size_t)id < r->n_epids) ? r->epids[id] : "";
}

/* Growth failures abort: a load generator that silently drops results
 * would report numbers it did not measure. */
static void *grow(void *p, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 256;
    void *q = realloc(p, n * elem);
    if (!q) {
        fprintf(stderr, "kms-loadgen: out of memory\n");
        exit(1);
    }
    *cap = n;
    return q;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void hash_insert(struct lg_results *r, int32_t id)
{
    size_t i = (size_t)str_hash(r->epids[id]) & (r->hash_cap - 1);
    while (r->hash[i])
        i = (i + 1) & (r->hash_cap - 1);
    r->hash[i] = id + 1;
}

static int32_t intern_epid(struct lg_results *r, const char *epid)
{
    size_t i = (size_t)str_hash(epid) & (r->hash_cap - 1);
    for (; r->hash[i]; i = (i + 1) & (r->hash_cap - 1))
        if (strcmp(r->epids[r->hash[i] - 1], epid) == 0)
            return r->hash[i] - 1;
    if (r->n_epids == r->cap_epids)
        r->epids = grow(r->epids, &r->cap_epids, sizeof(*r->epids));
    int32_t id = (int32_t)r->n_epids++;
    snprintf(r->epids[id], KR_KMS_EPID_UTF8, "%s", epid);
    if (r->n_epids * 2 > r->hash_cap) {
        free(r->hash);
        r->hash_cap *= 2;
        r->hash = calloc(r->hash_cap, sizeof(int32_t));
        if (!r->hash) {
            fprintf(stderr, "kms-loadgen: out of memory\n");
            exit(1);
        }
        for (int32_t k = 0; k < (int32_t)r->n_epids; k++)
            hash_insert(r, k);
    } else {
        r->hash[i] = id + 1;
    }
    return id;
}

static void tally_add(struct lg_results *r, struct lg_client *c, int tag, uint32_t key)
{
    for (int32_t it = c->tally; it >= 0; it = r->pool[it].next) {
        if (r->pool[it].tag == tag && r->pool[it].key == key) {
            r->pool[it].n++;
            return;
        }
    }
    if (r->n_pool == r->cap_pool)
        r->pool = grow(r->pool, &r->cap_pool, sizeof(*r->pool));
    struct tally_ent *e = &r->pool[r->n_pool];
    e->key = key;
    e->n = 1;
    e->tag = (uint8_t)tag;
    e->next = c->tally;
    c->tally = (int32_t)r->n_pool++;
}

int lg_results_tally_next(const struct lg_results *r, int32_t *it, int *tag, uint32_t *key,
                          uint32_t *n)
{
    if (*it < 0)
        return 0;
    const struct tally_ent *e = &r->pool[*it];
    *tag = e->tag;
    *key = e->key;
    *n = e->n;
    *it = e->next;
    return 1;
}

static void hr_count(struct lg_hr_count **arr, size_t *n, uint32_t hr)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*arr)[i].hr == hr) {
            (*arr)[i].n++;
            return;
        }
    }
    struct lg_hr_count *q = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!q) {
        fprintf(stderr, "kms-loadgen: out of memory\n");
        exit(1);
    }
    q[*n].hr = hr;
    q[*n].n = 1;
    *arr = q;
    (*n)++;
}

static int allowed(const struct lg_config *cfg, uint32_t hr)
{
    for (unsigned i = 0; i < cfg->n_allow; i++)
        if (cfg->allow_hr[i] == hr)
            return 1;
    return 0;
}

static void show_error(struct lg_results *r, uint32_t client_idx, uint32_t act, int kind,
                       const char *why, uint32_t code)
{
    if (r->cfg->quiet && !r->cfg->verbose)
        return;
    if (!r->cfg->verbose && r->shown >= LG_ERRORS_SHOWN) {
        if (r->shown++ == LG_ERRORS_SHOWN)
            fprintf(stderr, "kms-loadgen: more errors follow; -v shows them all\n");
        return;
    }
    r->shown++;
    const struct lg_client *c = &r->clients[client_idx];
    char g[KR_GUID_STRLEN];
    kr_guid_format(c->cmid, g);
    fprintf(stderr, "kms-loadgen: activation %u, client %u (%s, %s) -> %s: %s", act, client_idx, g,
            lg_products[c->product].name, r->cfg->target_text[c->target],
            lg_kind_name((enum lg_kind)kind));
    if (kind == LG_K_HRESULT || kind == LG_K_FAULT) {
        const char *name = kind == LG_K_HRESULT ? kr_kms_hresult_name(code) : NULL;
        fprintf(stderr, " 0x%08x%s%s", code, name ? " " : "", name ? name : "");
    }
    fprintf(stderr, "%s%s\n", why ? ": " : "", why ? why : "");
}

void lg_results_record(struct lg_results *r, uint32_t client_idx, uint32_t act,
                       const struct lg_answer *ans, enum lg_kind kind, const char *why,
                       uint64_t latency_us)
{
    struct lg_client *c = &r->clients[client_idx];
    uint32_t code = 0;

    c->activations++;
    if (ans && ans->kind < 0) {
        r->st.lat_us[r->st.n_lat++] = latency_us > UINT32_MAX ? UINT32_MAX : (uint32_t)latency_us;
        tally_add(r, c, LG_T_HRESULT, ans->hresult);
        if (ans->hresult == 0) {
            r->st.answered_ok++;
            c->ok++;
            c->last_epid = intern_epid(r, ans->resp.epid);
            c->last_count = ans->resp.count;
            tally_add(r, c, LG_T_EPID, (uint32_t)c->last_epid);
            return;
        }
        if (allowed(r->cfg, ans->hresult)) {
            r->st.refused++;
            c->ok++;
            c->refused++;
            hr_count(&r->st.hr_refused, &r->st.n_hr_refused, ans->hresult);
            return;
        }
        kind = LG_K_HRESULT;
        why = NULL;
        code = ans->hresult;
        hr_count(&r->st.hr_err, &r->st.n_hr_err, code);
    } else if (ans) {
        kind = (enum lg_kind)ans->kind;
        why = ans->why;
        if (kind == LG_K_FAULT) {
            code = ans->status;
            hr_count(&r->st.faults, &r->st.n_faults, code);
            tally_add(r, c, LG_T_FAULT, code);
        }
    }
    r->st.errors++;
    r->st.kind[kind]++;
    c->errors++;
    tally_add(r, c, LG_T_KIND, (uint32_t)kind);
    show_error(r, client_idx, act, kind, why, code);
}
