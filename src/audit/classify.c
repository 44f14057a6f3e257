/*
 * classify.c - the audit's verdicts: one class per _vlmcs record, plus
 * marker-only and RRset-level findings. A pure function of the collected
 * RRset, its probe results and the policy (audit.h has the class table and
 * the "wrong port" definition); the order of the checks below is the
 * precedence: structural problems first, then ownership, then liveness.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/dns.h"

int kr_audit_liveness(const struct kr_audit_probe *p)
{
    for (unsigned i = 0; i < p->n_tries; i++)
        if (p->tries[i].stage == KR_PROBE_OK)
            return KR_AUDIT_LIVE;
    /* A failed lookup is no evidence, even when some address failed: the
     * target may have others we could not learn. */
    if (!p->done || p->dot || p->lookup_failed)
        return KR_AUDIT_UNDECIDED;
    return KR_AUDIT_DEAD;
}

static const struct kr_audit_try *alt_answer(const struct kr_audit_probe *p)
{
    for (unsigned i = 0; i < p->n_alt; i++)
        if (p->alt[i].stage == KR_PROBE_OK)
            return &p->alt[i];
    return NULL;
}

/* Why a target does not answer, in one phrase (the first failure). */
static void failure_text(const struct kr_audit_probe *p, char *out, size_t cap)
{
    if (p->resolve_error[0] || p->n_addrs == 0) {
        snprintf(out, cap, "no address (%s)", p->resolve_error[0] ? p->resolve_error : "none");
        return;
    }
    const struct kr_audit_try *t = p->n_tries ? &p->tries[0] : NULL;
    if (!t) {
        snprintf(out, cap, "not probed");
        return;
    }
    char where[KR_AUDIT_ADDR_MAX + 10];
    snprintf(where, sizeof(where), strchr(t->addr, ':') ? "[%s]:%u" : "%s:%u", t->addr,
             (unsigned)t->port);
    snprintf(out, cap, "%s on %s: %s",
             t->stage == KR_PROBE_CONNECT ? "connect failed" : "RPC bind failed", where,
             t->error[0] ? t->error : "no answer");
}

static void set_reason(struct kr_audit_finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(struct kr_audit_finding *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
}

int kr_audit_sanctioned(const struct kr_audit_policy *pol, const char *target,
                        const char (*addrs)[KR_AUDIT_ADDR_MAX], unsigned n_addrs)
{
    for (size_t i = 0; i < pol->n_sanctioned; i++) {
        if (kr_dns_name_equal(pol->sanctioned[i], target))
            return 1;
        for (unsigned a = 0; a < n_addrs; a++)
            if (strcasecmp(pol->sanctioned[i], addrs[a]) == 0)
                return 1;
    }
    return 0;
}

/* The marker describing record r: ours first, then any other owner's. */
static int find_marker(const struct kr_audit_rrset *set, const struct kr_audit_rec *r,
                       const char *ours)
{
    int found = -1;
    for (unsigned m = 0; m < set->n_markers; m++) {
        const struct kr_audit_marker *k = &set->markers[m];
        if (k->port != r->port || strcmp(k->target, r->target) != 0)
            continue;
        if (ours && strcmp(k->id, ours) == 0)
            return (int)m;
        if (found < 0)
            found = (int)m;
    }
    return found;
}

/* Dead for long enough? Point in time (dead_after 0): yes. */
static int confirmed(const struct kr_audit_policy *pol, const struct kr_audit_probe *p)
{
    if (pol->dead_after_s == 0)
        return 1;
    return p->failing_since > 0 && pol->now - p->failing_since >= (int64_t)pol->dead_after_s;
}

/* Clients cannot use the record as it is: ".", a CNAME, a duplicate, or a
 * wrong port. Returns 1 when one of these decided the finding. */
static int structural(const struct kr_audit_rrset *set, unsigned i, struct kr_audit_finding *f)
{
    const struct kr_audit_rec *r = &set->rr[i];
    const struct kr_audit_probe *p = &set->probe[i];
    char why[KR_AUDIT_ERR_MAX + 80];
    unsigned dup = 0;
    for (unsigned j = 0; j < set->n_rr; j++)
        dup += strcmp(set->rr[j].target, r->target) == 0;
    f->cls = KR_AUDIT_MISCONFIGURED;
    if (strcmp(r->target, ".") == 0 || p->dot) {
        set_reason(f, "target is \".\": \"service decidedly not available\" (RFC 2782), "
                      "not a KMS host");
        return 1;
    }
    if (p->cname) {
        set_reason(f, "target %s is a CNAME (to %s); RFC 2782 forbids aliases as SRV targets",
                   r->target, p->cname_target[0] ? p->cname_target : "?");
        return 1;
    }
    if (dup > 1) {
        set_reason(f, "duplicate: target %s appears in %u records of this RRset", r->target, dup);
        return 1;
    }
    const struct kr_audit_try *alt = kr_audit_liveness(p) == KR_AUDIT_LIVE ? NULL : alt_answer(p);
    if (alt) {
        failure_text(p, why, sizeof(why));
        set_reason(f, "wrong port: %s, but KMS answers on %s port %u", why, alt->addr,
                   (unsigned)alt->port);
        return 1;
    }
    return 0;
}

/* No verdict on a target whose lookup failed: never evidence of death. */
static void unknown(const struct kr_audit_rec *r, const struct kr_audit_probe *p, const char *whose,
                    struct kr_audit_finding *f)
{
    f->cls = KR_AUDIT_UNKNOWN;
    set_reason(f,
               "%scannot tell whether %s is alive: %s; not evidence of a dead target (a record "
               "is never deleted for it)",
               whose, r->target, p->resolve_error[0] ? p->resolve_error : "lookup failed");
}

/* Records with a marker (ours or a peer's), or our target without one.
 * Returns 1 when ownership decided the finding. */

/* A peer relay's record (its marker's owner is a configured peer): the
 * replication link decides, not a probe (issue 15). 0 when not a peer. */
static int peer_record(const struct kr_audit_policy *pol, const char *id,
                       struct kr_audit_finding *f)
{
    for (size_t i = 0; i < pol->n_peers; i++) {
        const struct kr_audit_peer *pe = &pol->peers[i];
        if (strcmp(pe->id, id) != 0)
            continue;
        int64_t down = pe->link_up ? 0 : pol->now - pe->down_since;
        if (pe->link_up || down < (int64_t)pol->peer_stale_s) {
            f->cls = KR_AUDIT_AUTHORIZED_OK;
            if (pe->link_up)
                set_reason(f, "peer relay %s (replication link up)", id);
            else
                set_reason(f, "peer relay %s (link down for %llds, stale after %llus)", id,
                           (long long)down, (unsigned long long)pol->peer_stale_s);
        } else {
            f->cls = KR_AUDIT_PEER_STALE;
            f->confirmed = 1;
            set_reason(f, "peer relay %s, unreachable for %llds (peers.stale_after %llus)", id,
                       (long long)down, (unsigned long long)pol->peer_stale_s);
        }
        return 1;
    }
    return 0;
}

static int owned(const struct kr_audit_rrset *set, unsigned i, const struct kr_audit_policy *pol,
                 const char *ours, struct kr_audit_finding *f)
{
    const struct kr_audit_rec *r = &set->rr[i];
    const struct kr_audit_probe *p = &set->probe[i];
    const struct kr_audit_marker *mk = f->marker >= 0 ? &set->markers[f->marker] : NULL;
    int live = kr_audit_liveness(p);
    char why[KR_AUDIT_ERR_MAX + 80];
    if (mk && ours && strcmp(mk->id, ours) == 0) {
        f->cls = KR_AUDIT_OURS_ORPHAN;
        if (mk->prio != r->prio || mk->weight != r->weight)
            set_reason(f,
                       "our record differs from its marker: prio/weight %u/%u, marker says %u/%u",
                       r->prio, r->weight, mk->prio, mk->weight);
        else if (live == KR_AUDIT_UNDECIDED)
            unknown(r, p, "our record, but ", f);
        else if (live == KR_AUDIT_DEAD) {
            failure_text(p, why, sizeof(why));
            set_reason(f, "our record, but its target does not answer (%s)", why);
        } else {
            f->cls = KR_AUDIT_OURS_OK;
            set_reason(f, "our record (owner %s); marker matches; answers KMS", mk->id);
        }
        return 1;
    }
    if (!mk && pol->self_target && kr_dns_name_equal(pol->self_target, r->target) &&
        pol->self_port == r->port) {
        f->cls = KR_AUDIT_OURS_ORPHAN;
        set_reason(f, "our target %s port %u without an owner marker", r->target, r->port);
        return 1;
    }
    if (!mk)
        return 0;
    if (peer_record(pol, mk->id, f))
        return 1;
    if (live == KR_AUDIT_LIVE) {
        f->cls = KR_AUDIT_AUTHORIZED_OK;
        set_reason(f, "kmsrelay instance %s (marker); answers KMS", mk->id);
    } else if (live == KR_AUDIT_UNDECIDED) {
        unknown(r, p, "record of a kmsrelay instance (marker); ", f);
    } else {
        f->cls = KR_AUDIT_PEER_STALE;
        f->confirmed = confirmed(pol, p);
        failure_text(p, why, sizeof(why));
        set_reason(f, "record of kmsrelay instance %s, which does not answer: %s", mk->id, why);
    }
    return 1;
}

static void classify_rec(const struct kr_audit_rrset *set, unsigned i,
                         const struct kr_audit_policy *pol, struct kr_audit_finding *f)
{
    const struct kr_audit_rec *r = &set->rr[i];
    const struct kr_audit_probe *p = &set->probe[i];
    const char *ours = pol->instance_id && pol->instance_id[0] ? pol->instance_id : NULL;
    char why[KR_AUDIT_ERR_MAX + 80];

    f->rr = (int)i;
    f->marker = find_marker(set, r, ours);
    f->confirmed = 1;
    if (structural(set, i, f) || owned(set, i, pol, ours, f))
        return;
    /* Foreign records: liveness, then the sanctioned list. */
    int sanctioned =
        kr_audit_sanctioned(pol, r->target, (const char(*)[KR_AUDIT_ADDR_MAX])p->addrs, p->n_addrs);
    switch (kr_audit_liveness(p)) {
    case KR_AUDIT_UNDECIDED:
        unknown(r, p, sanctioned ? "sanctioned host; " : "", f);
        return;
    case KR_AUDIT_DEAD:
        f->cls = KR_AUDIT_STALE_DEAD;
        f->confirmed = confirmed(pol, p);
        failure_text(p, why, sizeof(why));
        set_reason(f, "%s", why);
        return;
    }
    if (sanctioned) {
        f->cls = KR_AUDIT_AUTHORIZED_OK;
        set_reason(f, "sanctioned host; answers KMS");
        return;
    }
    f->cls = KR_AUDIT_ROGUE;
    set_reason(f, "answers KMS but %s is not on the sanctioned list", r->target);
}

/* TTLs inside the RRset, per server; then records some servers lack. */
static int rrset_ttl(const struct kr_audit_rrset *set, struct kr_audit_finding *f)
{
    for (unsigned v = 0; v < set->n_views; v++) {
        uint32_t lo = UINT32_MAX, hi = 0;
        for (unsigned i = 0; i < set->n_rr; i++) {
            if (!(set->rr[i].seen & (1u << v)))
                continue;
            uint32_t t = set->rr[i].ttl[v];
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        }
        if (hi > lo && lo != UINT32_MAX) {
            set_reason(f, "TTLs differ inside the RRset on %s: %u to %u s (RFC 2181 5.2)",
                       set->views[v].server, lo, hi);
            return 1;
        }
    }
    return 0;
}

static int rrset_servers(const struct kr_audit_rrset *set, struct kr_audit_finding *f)
{
    uint32_t ok = 0;
    for (unsigned v = 0; v < set->n_views; v++)
        ok |= set->views[v].ok ? 1u << v : 0;
    for (unsigned i = 0; i < set->n_rr; i++) {
        uint32_t missing = ok & ~set->rr[i].seen;
        if (!missing)
            continue;
        unsigned v = 0;
        while (!(missing & (1u << v)))
            v++;
        set_reason(f, "servers disagree: %s lacks %u %u %u %s (replication?)", set->views[v].server,
                   set->rr[i].prio, set->rr[i].weight, set->rr[i].port, set->rr[i].target);
        return 1;
    }
    return 0;
}

size_t kr_audit_classify(const struct kr_audit_rrset *set, const struct kr_audit_policy *pol,
                         struct kr_audit_finding *out, size_t cap)
{
    size_t n = 0;
    struct kr_audit_finding f;
    const char *ours = pol->instance_id && pol->instance_id[0] ? pol->instance_id : NULL;
    /* Clients query only _vlmcs._tcp.<domain>: other _vlmcs names are noise. */
    int odd_name = strncmp(set->owner, "_vlmcs._tcp.", 12) != 0;

    for (unsigned i = 0; i < set->n_rr; i++, n++) {
        memset(&f, 0, sizeof(f));
        classify_rec(set, i, pol, &f);
        if (odd_name && f.cls != KR_AUDIT_MISCONFIGURED) {
            char was[sizeof(f.reason)];
            snprintf(was, sizeof(was), "%s", f.reason);
            f.cls = KR_AUDIT_MISCONFIGURED;
            f.confirmed = 1;
            set_reason(&f, "KMS clients never query %s (only _vlmcs._tcp.<domain>); %s", set->owner,
                       was);
        }
        if (n < cap)
            out[n] = f;
    }
    for (unsigned m = 0; m < set->n_markers; m++) {
        const struct kr_audit_marker *k = &set->markers[m];
        unsigned i = 0;
        while (i < set->n_rr &&
               !(set->rr[i].port == k->port && strcmp(set->rr[i].target, k->target) == 0))
            i++;
        if (i < set->n_rr)
            continue;
        memset(&f, 0, sizeof(f));
        f.rr = -1;
        f.marker = (int)m;
        f.confirmed = 1;
        if (ours && strcmp(k->id, ours) == 0) {
            f.cls = KR_AUDIT_OURS_ORPHAN;
            set_reason(&f, "our marker without its SRV record (%s port %u)", k->target, k->port);
        } else {
            f.cls = KR_AUDIT_MISCONFIGURED;
            set_reason(&f, "marker of kmsrelay instance %s without its SRV record (%s port %u)",
                       k->id, k->target, k->port);
        }
        if (n < cap)
            out[n] = f;
        n++;
    }
    memset(&f, 0, sizeof(f));
    f.rr = f.marker = -1;
    f.confirmed = 1;
    f.cls = KR_AUDIT_MISCONFIGURED;
    if (rrset_ttl(set, &f)) {
        if (n < cap)
            out[n] = f;
        n++;
    }
    if (rrset_servers(set, &f)) {
        if (n < cap)
            out[n] = f;
        n++;
    }
    return n;
}

int kr_audit_is_problem(const struct kr_audit_finding *f)
{
    return f->cls != KR_AUDIT_OURS_OK && f->cls != KR_AUDIT_AUTHORIZED_OK && f->confirmed;
}

static int shares_addr(const struct kr_audit_probe *a, const struct kr_audit_probe *b)
{
    for (unsigned i = 0; i < a->n_addrs; i++)
        for (unsigned j = 0; j < b->n_addrs; j++)
            if (strcmp(a->addrs[i], b->addrs[j]) == 0)
                return 1;
    return 0;
}

static unsigned add_port(uint16_t *out, unsigned n, uint16_t port, uint16_t own)
{
    if (n >= KR_AUDIT_MAX_ALT || port == 0 || port == own)
        return n;
    for (unsigned i = 0; i < n; i++)
        if (out[i] == port)
            return n;
    out[n] = port;
    return n + 1;
}

unsigned kr_audit_alt_ports(const struct kr_audit_rrset *const *sets, size_t n_sets,
                            const struct kr_audit_rrset *set, unsigned i, const uint16_t *extra,
                            size_t n_extra, uint16_t out[KR_AUDIT_MAX_ALT])
{
    uint16_t own = set->rr[i].port;
    unsigned n = add_port(out, 0, KR_AUDIT_KMS_PORT, own);
    for (size_t s = 0; s < n_sets; s++)
        for (unsigned j = 0; j < sets[s]->n_rr; j++)
            if (shares_addr(&set->probe[i], &sets[s]->probe[j]))
                n = add_port(out, n, sets[s]->rr[j].port, own);
    for (size_t e = 0; e < n_extra; e++)
        n = add_port(out, n, extra[e], own);
    return n;
}
