/*
 * fix.c - kmsrelayctl audit --fix: delete dead records, carefully.
 *
 * Only confirmed STALE_DEAD and PEER_STALE records, only when asked, one
 * record per UPDATE (a PEER_STALE record goes together with its owner
 * marker), and only with evidence over time: the target dead for
 * dead_after (the daemon's history, or kmsrelayctl's repeated probes), never
 * on one moment's probe, and never when a lookup failed (UNKNOWN). Each
 * UPDATE carries the SRV RRset exactly as the audit read it
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

static void failed(json_t *fix, const char *why)
{
    json_object_set_new(fix, "action", json_string("failed"));
    json_object_set_new(fix, "error", json_string(why));
}

/* One planned UPDATE: the record (and a peer's marker) to delete, and the
 * RRsets as read as its prerequisite. */
struct plan {
    struct kr_dns_rr del[2];
    size_t n_del;
    int txt; /* index of the marker's TXT in the snapshot, or -1 */
    struct kr_dns_rr *pre;
    size_t n_pre;
};

static int plan(const struct kr_audit_entry *e, const struct kr_audit_finding *f,
                const struct snap *s, struct plan *u)
{
    const struct kr_audit_rec *r = &e->set->rr[f->rr];
    memset(u, 0, sizeof(*u));
    u->txt = -1;
    if (kr_dns_rr_srv(&u->del[u->n_del++], e->set->owner, 0, r->prio, r->weight, r->port,
                      r->target) != 0)
        return KR_EINVAL;
    if (f->cls == KR_AUDIT_PEER_STALE && f->marker >= 0 &&
        (u->txt = marker_txt(s, &e->set->markers[f->marker])) >= 0)
        u->del[u->n_del++] = s->txt[u->txt];
    /* Prerequisites: the SRV RRset as read, and the TXT RRset when we touch it. */
    if (!(u->pre = calloc(KR_AUDIT_MAX_RR * 2, sizeof(*u->pre))))
        return KR_ENOMEM;
    for (size_t i = 0; i < s->n_srv; i++)
        u->pre[u->n_pre++] = s->srv[i];
    if (u->txt >= 0)
        for (size_t i = 0; i < s->n_txt; i++)
            u->pre[u->n_pre++] = s->txt[i];
    return 0;
}

/* Records the plan in the fix's JSON and prints it. */
static void announce(json_t *fix, const struct kr_audit_finding *f, const struct snap *s,
                     const struct plan *u, FILE *out)
{
    json_t *before = rrs_json(s->srv, s->n_srv, KR_DNS_SRV);
    json_object_set_new(fix, "before", before);
    json_object_set_new(fix, "delete", rrs_json(u->del, u->n_del, KR_DNS_SRV));
    if (u->txt >= 0)
        json_object_set_new(fix, "delete_marker", rrs_json(u->del, u->n_del, KR_DNS_TXT));
    if (out) {
        char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 32];
        fprintf(out, "fix: deleting %s (%s)\n", kr_dns_rr_format(&u->del[0], line, sizeof(line)),
                kr_audit_class_name(f->cls));
        print_rrset(out, "RRset before", before);
    }
}

/* The server's answer into the fix's JSON; on success the snapshot drops
 * what was deleted. Returns 0 when deleted. */
static int outcome(json_t *fix, const struct kr_dns_result *res, struct snap *s,
                   const struct plan *u)
{
    json_object_set_new(fix, "server", json_string(res->server));
    json_object_set_new(fix, "status", json_string(kr_dns_status_name(res->status)));
    json_object_set_new(fix, "rcode",
                        res->rcode >= 0 ? json_string(kr_dns_rcode_name(res->rcode)) : json_null());
    if (res->status == KR_DNS_OK) {
        json_object_set_new(fix, "action", json_string("deleted"));
        for (size_t i = 0; i < s->n_srv; i++)
            if (kr_dns_rr_same(&s->srv[i], &u->del[0])) {
                drop(s->srv, &s->n_srv, i);
                break;
            }
        if (u->txt >= 0)
            drop(s->txt, &s->n_txt, (size_t)u->txt);
        return 0;
    }
    if (res->status == KR_DNS_E_PREREQ) {
        char m[KR_DNS_MSG_MAX + 160];
        snprintf(m, sizeof(m),
                 "refused: the RRset changed since the audit read it (%s); nothing was deleted. "
                 "Run the audit again.",
                 kr_dns_rcode_name(res->rcode));
        json_object_set_new(fix, "action", json_string("refused"));
        json_object_set_new(fix, "error", json_string(m));
    } else {
        failed(fix, res->message);
    }
    return -1;
}

/* The RRset as it is now, read again from the same server. */
static void reread(json_t *fix, struct kr_dns_servers *sv, const char *owner, FILE *out)
{
    struct kr_dns_result *now = NULL;
    sv->key = NULL;
    sv->gss_keytab = sv->gss_principal = NULL; /* a plain read, as the audit's */
    if (kr_dns_query_sync(sv, NULL, owner, KR_DNS_SRV, &now) == 0 && now->status == KR_DNS_OK) {
        json_t *after = rrs_json(now->rrs, now->n_rrs, KR_DNS_SRV);
        print_rrset(out, "RRset after", after);
        json_object_set_new(fix, "after", after);
    }
    kr_dns_result_free(now);
}

/* One UPDATE for finding k of entry e. Returns 0 when deleted. */
static int fix_one(const struct kr_audit_opts *o, struct kr_audit_entry *e, size_t k, unsigned v,
                   struct snap *s, FILE *out)
{
    json_t *fix = e->fix[k] = json_object();
    struct plan u;
    int rc = plan(e, &e->f[k], s, &u);
    if (rc != 0) {
        failed(fix, rc == KR_ENOMEM ? "out of memory" : "cannot build the record");
        free(u.pre);
        return -1;
    }
    announce(fix, &e->f[k], s, &u, out);
    struct kr_dns_update up = {e->set->zone, u.pre, u.n_pre, u.del, u.n_del, NULL, 0};
    struct kr_dns_servers sv;
    struct kr_dns_result *res = NULL;
    kr_audit_servers(o, &e->servers[v], 1, &sv);
    sv.key = e->key ? e->key : o->key;
    if (!sv.key) { /* an AD zone: the UPDATE is signed with Kerberos (GSS-TSIG) */
        sv.gss_keytab = e->gss_keytab ? e->gss_keytab : o->gss_keytab;
        sv.gss_principal = e->gss_principal ? e->gss_principal : o->gss_principal;
    }
    pause_for_tests(o->test_pause_ms, out);
    int urc = kr_dns_update_sync(&sv, NULL, &up, &res);
    free(u.pre);
    if (urc != 0) {
        failed(fix, "out of memory");
        return -1;
    }
    rc = outcome(fix, res, s, &u);
    kr_dns_result_free(res);
    if (out) {
        const char *err = json_string_value(json_object_get(fix, "error"));
        fprintf(out, "  result: %s%s%s\n", json_string_value(json_object_get(fix, "action")),
                err ? ": " : "", err ? err : "");
    }
    reread(fix, &sv, e->set->owner, out);
    return rc;
}

/* Why a dead record is not deleted: no evidence over time. NULL when the
 * evidence is there. */
static const char *missing_evidence(const struct kr_audit_policy *pol,
                                    const struct kr_audit_finding *f,
                                    const struct kr_audit_probe *p, char *buf, size_t cap)
{
    if (kr_audit_liveness(p) != KR_AUDIT_DEAD) {
        snprintf(buf, cap, "not deleted: the target is not known to be dead");
        return buf;
    }
    if (pol->dead_after_s == 0 && p->over_time[0]) {
        snprintf(buf, cap, "not deleted: %s", p->over_time);
        return buf;
    }
    if (pol->dead_after_s == 0) {
        snprintf(buf, cap,
                 "not deleted: dead now, but one moment is no evidence (a host may be "
                 "rebooting). --fix needs the target dead for a while: --dead-for DURATION "
                 "(repeated probes, e.g. --dead-for 24h) or --history (kmsrelayd's periodic "
                 "audit: dns.audit_interval, dns.dead_after)");
        return buf;
    }
    if (!f->confirmed) {
        if (p->failing_since > 0)
            snprintf(
                buf, cap, "not deleted: failing for %lld s only, less than the %llu s required",
                (long long)(pol->now - p->failing_since), (unsigned long long)pol->dead_after_s);
        else
            snprintf(buf, cap, "not deleted: %s",
                     p->over_time[0] ? p->over_time : "no evidence over time");
        return buf;
    }
    return NULL;
}

static int candidate(const struct kr_audit_finding *f)
{
    return (f->cls == KR_AUDIT_STALE_DEAD || f->cls == KR_AUDIT_PEER_STALE) && f->rr >= 0;
}

/* The server view to update and compare against: the first that answered. */
static unsigned first_ok(const struct kr_audit_entry *e)
{
    unsigned v = 0;
    while (v < e->set->n_views && !e->set->views[v].ok)
        v++;
    return v;
}

int kr_audit_fix(const struct kr_audit_opts *o, const struct kr_audit_policy *pol,
                 struct kr_audit_result *r, FILE *out)
{
    int nfailed = 0;
    struct snap *s = malloc(sizeof(*s)); /* large: ~300 KB */
    if (!s)
        return KR_ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        struct kr_audit_entry *e = &r->e[i];
        unsigned v = first_ok(e);
        int snapped = 0;
        for (size_t k = 0; k < e->n_f; k++) {
            const struct kr_audit_finding *f = &e->f[k];
            char why[KR_AUDIT_ERR_MAX + 400];
            if (!candidate(f))
                continue;
            if (missing_evidence(pol, f, &e->set->probe[f->rr], why, sizeof(why))) {
                e->fix[k] = json_pack("{s:s, s:s}", "action", "skipped", "error", why);
                if (out)
                    fprintf(out, "fix: %s %u: %s\n", e->set->rr[f->rr].target,
                            e->set->rr[f->rr].port, why);
                continue;
            }
            if (v >= e->set->n_views || v >= e->n_servers || e->set->truncated) {
                e->fix[k] = json_pack("{s:s, s:s}", "action", "failed", "error",
                                      e->set->truncated ? "RRset too large to compare-and-swap"
                                                        : "no server answered");
                nfailed++;
                continue;
            }
            if (!snapped && take_snap(e, v, s) != 0) {
                nfailed++;
                continue;
            }
            snapped = 1;
            if (fix_one(o, e, k, v, s, out) != 0)
                nfailed++;
        }
    }
    free(s);
    return nfailed;
}

size_t kr_audit_skipped(const struct kr_audit_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; r->e[i].fix && k < r->e[i].n_f; k++) {
            const char *a = json_string_value(json_object_get(r->e[i].fix[k], "action"));
            n += a && strcmp(a, "skipped") == 0;
        }
    return n;
}
