/*
 * fix.c - kmsrelayctl audit --fix: delete dead records, carefully.
 *
 * Only confirmed STALE_DEAD and PEER_STALE records, only when asked, one
 * record per UPDATE (a PEER_STALE record goes together with its owner
 * marker). Each UPDATE carries the SRV RRset exactly as the audit read it
 * (and the TXT RRset when a marker goes too) as a value-dependent
 * prerequisite: if anyone changed the RRset since, the server answers
 * NXRRSET, nothing is deleted, and we say so (compare-and-swap, dns.md
 * 2.3). After a delete our snapshot drops that record, so the next UPDATE
 * of the same RRset still compares against everything else as read. The
 * RRset is printed before and (re-read) after each UPDATE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit-internal.h"
#include "kmsrelay/err.h"

struct snap {
    struct kr_dns_rr srv[KR_AUDIT_MAX_RR];
    size_t n_srv;
    struct kr_dns_rr txt[KR_AUDIT_MAX_RR];
    size_t n_txt;
};

static void pause_for_tests(unsigned ms, FILE *out)
{
    if (!ms)
        return;
    /* Announced on stderr so that a test knows when to change the RRset. */
    fprintf(stderr, "kmsrelayctl audit: test pause %u ms before the UPDATE\n", ms);
    fflush(stderr);
    if (out)
        fflush(out);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The snapshot of the RRsets as read from server view v. */
static int take_snap(const struct kr_audit_entry *e, unsigned v, struct snap *s)
{
    const struct kr_audit_rrset *set = e->set;
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < set->n_rr; i++) {
        const struct kr_audit_rec *r = &set->rr[i];
        if (!(r->seen & (1u << v)))
            continue;
        if (kr_dns_rr_srv(&s->srv[s->n_srv++], set->owner, r->ttl[v], r->prio, r->weight, r->port,
                          r->target) != 0)
            return KR_EINVAL;
    }
    for (size_t i = 0; i < e->n_txt && s->n_txt < KR_AUDIT_MAX_RR; i++) {
        struct kr_dns_rr *t = &s->txt[s->n_txt++];
        memset(t, 0, sizeof(*t));
        snprintf(t->owner, sizeof(t->owner), "%s", set->owner);
        t->type = KR_DNS_TXT;
        t->rclass = 1;
        snprintf(t->rdata, sizeof(t->rdata), "%s", e->txt[i]);
    }
    return 0;
}

static json_t *rrs_json(const struct kr_dns_rr *rr, size_t n, uint16_t type)
{
    json_t *a = json_array();
    char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 32];
    for (size_t i = 0; i < n; i++)
        if (rr[i].type == type)
            json_array_append_new(a, json_string(kr_dns_rr_format(&rr[i], line, sizeof(line))));
    return a;
}

static void print_rrset(FILE *out, const char *label, const json_t *a)
{
    size_t i;
    const json_t *v;
    if (!out)
        return;
    fprintf(out, "  %s:%s\n", label, json_array_size(a) ? "" : " (empty)");
    json_array_foreach(a, i, v) fprintf(out, "    %s\n", json_string_value(v));
}

/* The marker's TXT record in the snapshot, or -1. */
static int marker_txt(const struct snap *s, const struct kr_audit_marker *m)
{
    for (size_t i = 0; i < s->n_txt; i++) {
        struct kr_dns_rr t;
        const char *why;
        char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 16];
        snprintf(line, sizeof(line), "%s 0 IN TXT %s", s->txt[i].owner, s->txt[i].rdata);
        if (kr_dns_rr_from_text(&t, line, &why) == 0 && strcmp(t.txt, m->text) == 0)
            return (int)i;
    }
    return -1;
}

static void drop(struct kr_dns_rr *a, size_t *n, size_t i)
{
    memmove(&a[i], &a[i + 1], (*n - i - 1) * sizeof(a[0]));
    (*n)--;
}

/* One UPDATE for finding k of entry e. Returns 0 when deleted. */
static int fix_one(const struct kr_audit_opts *o, struct kr_audit_entry *e, size_t k, unsigned v,
                   struct snap *s, FILE *out)
{
    const struct kr_audit_finding *f = &e->f[k];
    const struct kr_audit_rec *r = &e->set->rr[f->rr];
    json_t *fix = json_object();
    e->fix[k] = fix;
    struct kr_dns_rr del[2];
    size_t n_del = 0;
    if (kr_dns_rr_srv(&del[n_del++], e->set->owner, 0, r->prio, r->weight, r->port, r->target) !=
        0) {
        json_object_set_new(fix, "action", json_string("failed"));
        json_object_set_new(fix, "error", json_string("cannot build the record"));
        return -1;
    }
    int t = -1;
    if (f->cls == KR_AUDIT_PEER_STALE && f->marker >= 0 &&
        (t = marker_txt(s, &e->set->markers[f->marker])) >= 0)
        del[n_del++] = s->txt[t];
    /* Prerequisites: the SRV RRset as read, and the TXT RRset when we touch it. */
    struct kr_dns_rr *pre = calloc(KR_AUDIT_MAX_RR * 2, sizeof(*pre));
    size_t n_pre = 0;
    if (!pre) {
        json_object_set_new(fix, "action", json_string("failed"));
        json_object_set_new(fix, "error", json_string("out of memory"));
        return -1;
    }
    for (size_t i = 0; i < s->n_srv; i++)
        pre[n_pre++] = s->srv[i];
    if (t >= 0)
        for (size_t i = 0; i < s->n_txt; i++)
            pre[n_pre++] = s->txt[i];
    json_t *before = rrs_json(s->srv, s->n_srv, KR_DNS_SRV);
    json_object_set_new(fix, "before", before);
    json_object_set_new(fix, "delete", rrs_json(del, n_del, KR_DNS_SRV));
    if (t >= 0)
        json_object_set_new(fix, "delete_marker", rrs_json(del, n_del, KR_DNS_TXT));
    if (out) {
        char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 32];
        fprintf(out, "fix: deleting %s (%s)\n", kr_dns_rr_format(&del[0], line, sizeof(line)),
                kr_audit_class_name(f->cls));
        print_rrset(out, "RRset before", before);
    }

    struct kr_dns_update u = {e->set->zone, pre, n_pre, del, n_del, NULL, 0};
    struct kr_dns_servers sv;
    struct kr_dns_result *res = NULL;
    kr_audit_servers(o, &e->servers[v], 1, &sv);
    sv.key = e->key ? e->key : o->key;
    pause_for_tests(o->test_pause_ms, out);
    int rc = -1;
    int urc = kr_dns_update_sync(&sv, NULL, &u, &res);
    free(pre);
    if (urc != 0) {
        json_object_set_new(fix, "action", json_string("failed"));
        json_object_set_new(fix, "error", json_string("out of memory"));
        return -1;
    }
    json_object_set_new(fix, "server", json_string(res->server));
    json_object_set_new(fix, "status", json_string(kr_dns_status_name(res->status)));
    json_object_set_new(fix, "rcode",
                        res->rcode >= 0 ? json_string(kr_dns_rcode_name(res->rcode)) : json_null());
    if (res->status == KR_DNS_OK) {
        json_object_set_new(fix, "action", json_string("deleted"));
        for (size_t i = 0; i < s->n_srv; i++)
            if (kr_dns_rr_same(&s->srv[i], &del[0])) {
                drop(s->srv, &s->n_srv, i);
                break;
            }
        if (t >= 0)
            drop(s->txt, &s->n_txt, (size_t)t);
        rc = 0;
    } else if (res->status == KR_DNS_E_PREREQ) {
        char m[KR_DNS_MSG_MAX + 160];
        snprintf(m, sizeof(m),
                 "refused: the RRset changed since the audit read it (%s); nothing was deleted. "
                 "Run the audit again.",
                 kr_dns_rcode_name(res->rcode));
        json_object_set_new(fix, "action", json_string("refused"));
        json_object_set_new(fix, "error", json_string(m));
    } else {
        json_object_set_new(fix, "action", json_string("failed"));
        json_object_set_new(fix, "error", json_string(res->message));
    }
    kr_dns_result_free(res);
    if (out)
        fprintf(out, "  result: %s%s%s\n", json_string_value(json_object_get(fix, "action")),
                json_object_get(fix, "error") ? ": " : "",
                json_object_get(fix, "error") ? json_string_value(json_object_get(fix, "error"))
                                              : "");

    /* The RRset as it is now, read again from the same server. */
    struct kr_dns_result *now = NULL;
    sv.key = NULL;
    if (kr_dns_query_sync(&sv, NULL, e->set->owner, KR_DNS_SRV, &now) == 0 &&
        now->status == KR_DNS_OK) {
        json_t *after = rrs_json(now->rrs, now->n_rrs, KR_DNS_SRV);
        print_rrset(out, "RRset after", after);
        json_object_set_new(fix, "after", after);
    }
    kr_dns_result_free(now);
    return rc;
}

int kr_audit_fix(const struct kr_audit_opts *o, struct kr_audit_result *r, FILE *out)
{
    int failed = 0;
    struct snap *s = malloc(sizeof(*s)); /* large: ~300 KB */
    if (!s)
        return KR_ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        struct kr_audit_entry *e = &r->e[i];
        unsigned v = 0;
        while (v < e->set->n_views && !e->set->views[v].ok)
            v++;
        int snapped = 0;
        for (size_t k = 0; k < e->n_f; k++) {
            const struct kr_audit_finding *f = &e->f[k];
            if ((f->cls != KR_AUDIT_STALE_DEAD && f->cls != KR_AUDIT_PEER_STALE) || !f->confirmed ||
                f->rr < 0)
                continue;
            if (v >= e->set->n_views || v >= e->n_servers || e->set->truncated) {
                e->fix[k] = json_pack("{s:s, s:s}", "action", "failed", "error",
                                      e->set->truncated ? "RRset too large to compare-and-swap"
                                                        : "no server answered");
                failed++;
                continue;
            }
            if (!snapped && take_snap(e, v, s) != 0) {
                failed++;
                continue;
            }
            snapped = 1;
            if (fix_one(o, e, k, v, s, out) != 0)
                failed++;
        }
    }
    free(s);
    return failed;
}
