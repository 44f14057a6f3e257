/*
 * resolve.c - the audit's second stage: for every record, what its target
 * is (A/AAAA asked from the zone's own servers; a CNAME or "." noticed) and
 * whether a KMS host answers there (probe.c, one try per address on the
 * record's port). Records whose port fails get a second pass on the other
 * ports we know for their addresses (the wrong-port check, audit.h).
 * Targets outside the zone, which its servers refuse or refer, go to the
 * resolvers, and the evidence says so. Only proof of absence says "no
 * address"; a lookup that fails sets lookup_failed (audit.h, "Lookups").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit-internal.h"
#include "kmsrelay/err.h"

static unsigned timeout(const struct kr_audit_opts *o)
{
    return o->timeout_ms ? o->timeout_ms : 3000;
}

/* Adds the A/AAAA records and notes a CNAME at the target. */
static void take_answer(struct kr_audit_probe *p, const char *target, const struct kr_dns_result *q)
{
    for (size_t i = 0; i < q->n_rrs; i++) {
        const struct kr_dns_rr *rr = &q->rrs[i];
        if (rr->type == KR_DNS_CNAME && kr_dns_name_equal(rr->owner, target)) {
            p->cname = 1;
            kr_audit_norm_name(rr->target, p->cname_target, sizeof(p->cname_target));
        } else if ((rr->type == KR_DNS_A || rr->type == KR_DNS_AAAA) &&
                   p->n_addrs < KR_AUDIT_MAX_ADDRS) {
            char a[KR_AUDIT_ADDR_MAX];
            if (!inet_ntop(rr->family, rr->addr, a, sizeof(a)))
                continue;
            unsigned k = 0;
            while (k < p->n_addrs && strcmp(p->addrs[k], a) != 0)
                k++;
            if (k == p->n_addrs)
                snprintf(p->addrs[p->n_addrs++], KR_AUDIT_ADDR_MAX, "%s", a);
        }
    }
}

/* What one A or AAAA question established. */
enum outcome {
    ADDRS,    /* addresses (or a CNAME) */
    ABSENT,   /* proof that there are none: NXDOMAIN or NODATA (see audit.h) */
    NOT_OURS, /* a zone server refused or referred: the name is not its data */
    FAILED,   /* no proof either way: SERVFAIL, timeout, REFUSED by a resolver... */
};

/* name is dom or below it (presentation names, final dot optional). */
static int in_domain(const char *name, const char *dom)
{
    char n[KR_AUDIT_NAME_MAX], d[KR_AUDIT_NAME_MAX];
    kr_audit_norm_name(name, n, sizeof(n));
    kr_audit_norm_name(dom, d, sizeof(d));
    size_t ln = strlen(n), ld = strlen(d);
    if (strcmp(d, ".") == 0)
        return 1;
    return ln >= ld && strcmp(n + ln - ld, d) == 0 && (ln == ld || n[ln - ld - 1] == '.');
}

/* A resolver's negative answer is proof only with the SOA of a zone that
 * holds the target: not the root (a resolver that cannot see a private zone
 * gets NXDOMAIN from the root), and inside the audited zone that zone or a
 * child of it. */
static int negative_proof(const struct kr_dns_result *q, const char *target, const char *zone)
{
    for (size_t i = 0; i < q->n_auth; i++) {
        const char *soa = q->auth[i].owner;
        if (q->auth[i].type != KR_DNS_SOA || strcmp(soa, ".") == 0 || !in_domain(target, soa))
            continue;
        if (!in_domain(target, zone) || in_domain(soa, zone))
            return 1;
    }
    return 0;
}

/* Judges one reply: from a zone server (auth) or a resolver. */
static enum outcome judge(const struct kr_dns_result *q, int auth, const char *target,
                          const char *zone, const struct kr_audit_probe *p, unsigned had)
{
    if (q->status == KR_DNS_OK && auth && !q->aa)
        return NOT_OURS; /* a referral: a delegated child zone */
    if (q->status != KR_DNS_OK)
        return auth && (q->status == KR_DNS_E_REFUSED || q->status == KR_DNS_E_ZONE) ? NOT_OURS
                                                                                     : FAILED;
    if (p->n_addrs > had || p->cname)
        return ADDRS;
    return auth || negative_proof(q, target, zone) ? ABSENT : FAILED;
}

struct lookup_state {
    enum outcome out[2]; /* A, AAAA */
    int nxdomain;
    char err[KR_DNS_MSG_MAX];
};

/* Asks A then AAAA from `s` (the zone's servers when auth, else resolvers). */
static void lookup(const struct kr_dns_servers *s, int auth, const char *target, const char *zone,
                   struct kr_audit_probe *p, struct lookup_state *st)
{
    static const uint16_t types[] = {KR_DNS_A, KR_DNS_AAAA};
    for (unsigned t = 0; t < 2; t++) {
        struct kr_dns_result *q = NULL;
        if (kr_dns_query_sync(s, NULL, target, types[t], &q) != 0) {
            st->out[t] = FAILED;
            snprintf(st->err, sizeof(st->err), "out of memory");
            continue;
        }
        unsigned had = p->n_addrs;
        if (q->status == KR_DNS_OK)
            take_answer(p, target, q);
        st->out[t] = judge(q, auth, target, zone, p, had);
        if (st->out[t] == FAILED && q->status != KR_DNS_OK)
            snprintf(st->err, sizeof(st->err), "%s", q->message);
        else if (st->out[t] == FAILED)
            snprintf(st->err, sizeof(st->err), "%s from %s without the SOA of the target's zone",
                     q->rcode == 3 ? "NXDOMAIN" : "an empty answer", q->server);
        st->nxdomain |= q->status == KR_DNS_OK && q->rcode == 3 && st->out[t] == ABSENT;
        if (st->out[t] == ADDRS || st->out[t] == ABSENT)
            snprintf(p->resolved_by, sizeof(p->resolved_by), "%s%.*s", auth ? "" : "resolver ",
                     (int)(sizeof(p->resolved_by) - 10), q->server);
        kr_dns_result_free(q);
    }
}

static int has(const struct lookup_state *st, enum outcome o)
{
    return st->out[0] == o || st->out[1] == o;
}

static void resolve(const struct kr_audit_opts *o, const struct kr_audit_entry *e,
                    const char *target, struct kr_audit_probe *p)
{
    struct kr_dns_servers s;
    struct lookup_state st = {{NOT_OURS, NOT_OURS}, 0, ""};
    kr_audit_servers(o, e->servers, e->n_servers, &s);
    if (e->n_servers)
        lookup(&s, 1, target, e->set->zone, p, &st);
    if (has(&st, NOT_OURS)) {
        /* Not the zone's to answer: ask the resolvers. */
        struct kr_addr sys[4];
        const struct kr_addr *res = o->resolvers;
        size_t nres = o->n_resolvers;
        if (!nres)
            res = sys, nres = kr_dns_system_resolvers(sys, 4);
        kr_audit_servers(o, res, nres, &s);
        s.recursion = true;
        memset(&st, 0, sizeof(st));
        p->n_addrs = 0;
        p->cname = 0;
        p->resolved_by[0] = '\0';
        if (nres)
            lookup(&s, 0, target, e->set->zone, p, &st);
        else
            st.out[0] = st.out[1] = FAILED, snprintf(st.err, sizeof(st.err), "no resolver");
    }
    if (has(&st, FAILED)) {
        /* No proof: whatever answered, the target is not known to be dead. */
        p->lookup_failed = 1;
        snprintf(p->resolve_error, sizeof(p->resolve_error), "lookup failed: %.*s", 140, st.err);
    } else if (p->n_addrs == 0 && !p->cname) {
        char by[sizeof(p->resolved_by)];
        memcpy(by, p->resolved_by, sizeof(by)); /* gcc cannot prove they do not overlap */
        snprintf(p->resolve_error, sizeof(p->resolve_error), "%s from %s",
                 st.nxdomain ? "NXDOMAIN" : "no A/AAAA record", by);
    }
}

void kr_audit_probe_one(const struct kr_audit_opts *o, const struct kr_audit_entry *e, unsigned i)
{
    const struct kr_audit_rec *r = &e->set->rr[i];
    struct kr_audit_probe *p = &e->set->probe[i];
    memset(p, 0, sizeof(*p));
    p->done = 1;
    if (strcmp(r->target, ".") == 0) {
        p->dot = 1;
        return;
    }
    resolve(o, e, r->target, p);
    for (unsigned a = 0; a < p->n_addrs; a++)
        kr_audit_probe_kms(p->addrs[a], r->port, timeout(o), &p->tries[p->n_tries++]);
}

static int answered(const struct kr_audit_probe *p)
{
    for (unsigned i = 0; i < p->n_tries; i++)
        if (p->tries[i].stage == KR_PROBE_OK)
            return 1;
    return 0;
}

/* Second pass: the other ports of a record whose own port failed. */
static void probe_alt(const struct kr_audit_opts *o, const struct kr_audit_rrset *const *sets,
                      size_t n_sets, struct kr_audit_rrset *set, unsigned i)
{
    struct kr_audit_probe *p = &set->probe[i];
    uint16_t ports[KR_AUDIT_MAX_ALT];
    if (p->dot || p->n_addrs == 0 || answered(p))
        return;
    unsigned n = kr_audit_alt_ports(sets, n_sets, set, i, o->probe_ports, o->n_probe_ports, ports);
    for (unsigned k = 0; k < n && p->n_alt < KR_AUDIT_MAX_ALT; k++)
        for (unsigned a = 0; a < p->n_addrs && p->n_alt < KR_AUDIT_MAX_ALT; a++) {
            /* Only a host that is up (it refused the port, or failed the
             * bind) can be listening elsewhere; a timeout or an unreachable
             * host would only cost more timeouts. */
            const struct kr_audit_try *own = a < p->n_tries ? &p->tries[a] : NULL;
            if (!own ||
                (own->stage == KR_PROBE_CONNECT && strcmp(own->error, strerror(ECONNREFUSED)) != 0))
                continue;
            struct kr_audit_try *t = &p->alt[p->n_alt++];
            kr_audit_probe_kms(p->addrs[a], ports[k], timeout(o), t);
            if (t->stage == KR_PROBE_OK)
                return;
        }
}

static int cancelled(const struct kr_audit_opts *o)
{
    return o->cancel && __atomic_load_n(o->cancel, __ATOMIC_ACQUIRE);
}

void kr_audit_probe_all(const struct kr_audit_opts *o, struct kr_audit_result *r)
{
    const struct kr_audit_rrset *sets[64];
    size_t n_sets = 0;
    for (size_t k = 0; k < r->n; k++) {
        for (unsigned i = 0; i < r->e[k].set->n_rr && !cancelled(o); i++)
            kr_audit_probe_one(o, &r->e[k], i);
        if (n_sets < sizeof(sets) / sizeof(sets[0]))
            sets[n_sets++] = r->e[k].set;
    }
    for (size_t k = 0; k < r->n; k++)
        for (unsigned i = 0; i < r->e[k].set->n_rr && !cancelled(o); i++)
            probe_alt(o, sets, n_sets, r->e[k].set, i);
}
