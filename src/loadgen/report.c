/*
 * report.c - the text summary and the --json document. Both show the same
 * numbers; the JSON adds one object per client (see --help of the issue:
 * cmid, app, product, version, workstation, counts, the ePIDs that answered,
 * the last count and the HRESULT tally).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/guid.h"
#include "loadgen/loadgen.h"

static const char *const ndr_names[] = {"ndr32", "win8", "ndr64", "mixed"};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void sort_latencies(struct lg_stats *st)
{
    if (!st->lat_sorted && st->n_lat > 1)
        qsort(st->lat_us, st->n_lat, sizeof(uint32_t), cmp_u32);
    st->lat_sorted = 1;
}

/* Nearest-rank percentile in milliseconds. */
static double pct_ms(const struct lg_stats *st, double p)
{
    if (st->n_lat == 0)
        return 0.0;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)st->n_lat + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > st->n_lat)
        rank = st->n_lat;
    return st->lat_us[rank - 1] / 1000.0;
}

static double wall_s(const struct lg_stats *st)
{
    return (double)(st->t_end_us - st->t_start_us) / 1e6;
}

static uint64_t total(const struct lg_stats *st)
{
    return st->answered_ok + st->refused + st->errors;
}

static void hr_lines(FILE *f, const char *label, const struct lg_hr_count *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = strcmp(label, "fault") ? kr_kms_hresult_name(a[i].hr) : NULL;
        fprintf(f, "  %s 0x%08x%s%s: %llu\n", label, a[i].hr, name ? " " : "", name ? name : "",
                (unsigned long long)a[i].n);
    }
}

void lg_report_text(FILE *f, const struct lg_config *cfg, struct lg_stats *st)
{
    sort_latencies(st);
    double w = wall_s(st);
    fprintf(f, "targets:       ");
    for (unsigned t = 0; t < cfg->n_targets; t++)
        fprintf(f, "%s%s", t ? " " : "", cfg->target_text[t]);
    fprintf(f, "\nactivations:   %llu (clients %u, concurrency %u, per-conn %u, ndr %s, seed %llu",
            (unsigned long long)total(st), cfg->clients, cfg->concurrency, cfg->per_conn,
            ndr_names[cfg->ndr], (unsigned long long)cfg->seed);
    if (cfg->rate > 0)
        fprintf(f, ", rate %.1f/s, late starts %llu", cfg->rate,
                (unsigned long long)st->late_starts);
    fprintf(f, ")\nconnections:   %llu\n", (unsigned long long)st->connections);
    fprintf(f, "ok:            %llu (activated %llu, refused with an allowed HRESULT %llu)\n",
            (unsigned long long)(st->answered_ok + st->refused),
            (unsigned long long)st->answered_ok, (unsigned long long)st->refused);
    hr_lines(f, "refused", st->hr_refused, st->n_hr_refused);
    fprintf(f, "errors:        %llu\n", (unsigned long long)st->errors);
    for (int k = 0; k < LG_K_COUNT; k++) {
        if (st->kind[k] && k != LG_K_HRESULT && k != LG_K_FAULT)
            fprintf(f, "  %s: %llu\n", lg_kind_name((enum lg_kind)k),
                    (unsigned long long)st->kind[k]);
    }
    hr_lines(f, "hresult", st->hr_err, st->n_hr_err);
    hr_lines(f, "fault", st->faults, st->n_faults);
    fprintf(f, "wall time:     %.6f s\n", w);
    fprintf(f, "activations/s: %.1f\n", w > 0 ? (double)total(st) / w : 0.0);
    if (st->n_lat)
        fprintf(f, "latency ms:    p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%llu answered)\n",
                pct_ms(st, 50), pct_ms(st, 90), pct_ms(st, 99), pct_ms(st, 100),
                (unsigned long long)st->n_lat);
    else
        fprintf(f, "latency ms:    none (no activation was answered)\n");
    fprintf(f, "ok=%llu errors=%llu\n", (unsigned long long)(st->answered_ok + st->refused),
            (unsigned long long)st->errors);
}

int lg_report_latencies(FILE *f, const struct lg_stats *st)
{
    for (uint64_t i = 0; i < st->n_lat; i++)
        if (fprintf(f, "%u\n", st->lat_us[i]) < 0)
            return -1;
    return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

static json_t *hr_object(const struct lg_hr_count *a, size_t n)
{
    json_t *o = json_object();
    char key[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "0x%08x", a[i].hr);
        json_object_set_new(o, key, json_integer((json_int_t)a[i].n));
    }
    return o;
}

static json_t *summary_json(const struct lg_config *cfg, struct lg_stats *st)
{
    sort_latencies(st);
    double w = wall_s(st);
    json_t *targets = json_array();
    for (unsigned t = 0; t < cfg->n_targets; t++)
        json_array_append_new(targets, json_string(cfg->target_text[t]));
    json_t *kinds = json_object();
    for (int k = 0; k < LG_K_COUNT; k++)
        json_object_set_new(kinds, lg_kind_name((enum lg_kind)k),
                            json_integer((json_int_t)st->kind[k]));
    return json_pack(
        "{s:o, s:I, s:I, s:I, s:I, s:s, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o,"
        " s:f, s:f, s:{s:f, s:f, s:f, s:f, s:I}, s:I}",
        "targets", targets, "activations", (json_int_t)total(st), "clients",
        (json_int_t)cfg->clients, "concurrency", (json_int_t)cfg->concurrency, "per_conn",
        (json_int_t)cfg->per_conn, "ndr", ndr_names[cfg->ndr], "seed", (json_int_t)cfg->seed,
        "rate", cfg->rate, "connections", (json_int_t)st->connections, "ok",
        (json_int_t)(st->answered_ok + st->refused), "activated", (json_int_t)st->answered_ok,
        "refused", (json_int_t)st->refused, "errors", (json_int_t)st->errors, "errors_by_kind",
        kinds, "errors_by_hresult", hr_object(st->hr_err, st->n_hr_err), "refused_by_hresult",
        hr_object(st->hr_refused, st->n_hr_refused), "faults", hr_object(st->faults, st->n_faults),
        "wall_s", w, "activations_per_s", w > 0 ? (double)total(st) / w : 0.0, "latency_ms", "p50",
        pct_ms(st, 50), "p90", pct_ms(st, 90), "p99", pct_ms(st, 99), "max", pct_ms(st, 100),
        "answered", (json_int_t)st->n_lat, "late_starts", (json_int_t)st->late_starts);
}

static json_t *client_json(const struct lg_config *cfg, const struct lg_results *r,
                           const struct lg_client *c)
{
    const struct lg_product *p = &lg_products[c->product];
    char cmid[KR_GUID_STRLEN], ws[KR_KMS_WS_UTF8], ver[8], key[16];
    const char *app = kr_kms_app_name(p->app_id);
    json_t *epids = json_array(), *hrs = json_object(), *kinds = json_object();
    json_t *faults = json_object();
    int32_t it = c->tally;
    int tag;
    uint32_t k, n;

    kr_guid_format(c->cmid, cmid);
    snprintf(ws, sizeof(ws), "%s%u%s", cfg->ws_prefix, c->ws_index, LG_WS_SUFFIX);
    snprintf(ver, sizeof(ver), "%u.0", p->ver_major);
    /* The tally is newest-first; ePIDs are listed in the order first seen. */
    while (lg_results_tally_next(r, &it, &tag, &k, &n)) {
        switch (tag) {
        case LG_T_EPID:
            json_array_insert_new(epids, 0, json_string(lg_results_epid(r, (int32_t)k)));
            break;
        case LG_T_HRESULT:
            snprintf(key, sizeof(key), "0x%08x", k);
            json_object_set_new(hrs, key, json_integer(n));
            break;
        case LG_T_KIND:
            json_object_set_new(kinds, lg_kind_name((enum lg_kind)k), json_integer(n));
            break;
        default:
            snprintf(key, sizeof(key), "0x%08x", k);
            json_object_set_new(faults, key, json_integer(n));
            break;
        }
    }
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:o, s:o,"
        " s:o, s:o, s:o, s:o}",
        "cmid", cmid, "app_id", p->app_text, "app", app ? app : "?", "product", p->name, "version",
        ver, "workstation", ws, "vm", c->vm, "target", cfg->target_text[c->target], "activations",
        (json_int_t)c->activations, "ok", (json_int_t)c->ok, "refused", (json_int_t)c->refused,
        "errors", (json_int_t)c->errors, "epids", epids, "last_epid",
        c->last_epid >= 0 ? json_string(lg_results_epid(r, c->last_epid)) : json_null(),
        "last_count", c->last_epid >= 0 ? json_integer(c->last_count) : json_null(), "hresults",
        hrs, "error_kinds", kinds, "faults", faults);
}

int lg_report_json(FILE *f, const struct lg_config *cfg, struct lg_stats *st,
                   const struct lg_results *r, const struct lg_client *clients)
{
    json_t *sum = summary_json(cfg, st);
    if (!sum)
        return -1;
    /* Streamed one client at a time: a tree of 100k clients would cost
     * hundreds of megabytes in jansson objects. */
    fputs("{\"summary\":", f);
    int rc = json_dumpf(sum, f, JSON_COMPACT);
    json_decref(sum);
    fputs(",\n\"clients\":[", f);
    for (uint32_t i = 0; rc == 0 && i < cfg->clients; i++) {
        json_t *c = client_json(cfg, r, &clients[i]);
        if (!c)
            return -1;
        fputs(i ? ",\n" : "\n", f);
        rc = json_dumpf(c, f, JSON_COMPACT);
        json_decref(c);
    }
    fputs("\n]}\n", f);
    return (rc == 0 && fflush(f) == 0 && !ferror(f)) ? 0 : -1;
}
