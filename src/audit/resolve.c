/*
 * resolve.c - the audit's second stage: for every record, what its target
 * is (A/AAAA asked from the zone's own servers; a CNAME or "." noticed) and
 * whether a KMS host answers there (probe.c, one try per address on the
 * record's port). Records whose port fails get a second pass on the other
 * ports we know for their addresses (the wrong-port check, audit.h).
 * Targets outside the zone, which its servers refuse, go to the system
 * resolver, and the evidence says so.
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

/* Asks A then AAAA from `s`. Returns 1 when both were answered (maybe
 * empty), 0 when the servers would not answer (then *err says why). */
static int lookup(const struct kr_dns_servers *s, const char *target, struct kr_audit_probe *p,
                  int need_aa, char *err, size_t errlen, int *nxdomain)
{
    static const uint16_t types[] = {KR_DNS_A, KR_DNS_AAAA};
    for (unsigned t = 0; t < 2; t++) {
        struct kr_dns_result *q = NULL;
        if (kr_dns_query_sync(s, NULL, target, types[t], &q) != 0) {
            snprintf(err, errlen, "out of memory");
            return 0;
        }
        if (q->status != KR_DNS_OK || (need_aa && !q->aa)) {
            snprintf(err, errlen, "%s", q->status != KR_DNS_OK ? q->message : "not authoritative");
            kr_dns_result_free(q);
            return 0;
        }
        *nxdomain |= q->rcode == 3;
        take_answer(p, target, q);
        snprintf(p->resolved_by, sizeof(p->resolved_by), "%s%.*s", need_aa ? "" : "resolver ",
                 (int)(sizeof(p->resolved_by) - 10), q->server);
        kr_dns_result_free(q);
    }
    return 1;
}

static void resolve(const struct kr_audit_opts *o, const struct kr_audit_entry *e,
                    const char *target, struct kr_audit_probe *p)
{
    struct kr_dns_servers s;
    char err[KR_DNS_MSG_MAX] = "";
    int nx = 0;
    kr_audit_servers(o, e->servers, e->n_servers, &s);
    if (e->n_servers && lookup(&s, target, p, 1, err, sizeof(err), &nx))
        goto done;
    /* Not the zone's to answer: ask the system resolver. */
    struct kr_addr res[4];
    size_t nres = kr_dns_system_resolvers(res, 4);
    kr_audit_servers(o, res, nres, &s);
    s.recursion = true;
    nx = 0;
    p->n_addrs = 0;
    p->cname = 0;
    if (nres == 0 || !lookup(&s, target, p, 0, err, sizeof(err), &nx)) {
        snprintf(p->resolve_error, sizeof(p->resolve_error), "lookup failed: %.*s", 120,
                 nres ? err : "no resolver");
        return;
    }
done:
    if (p->n_addrs == 0) {
        char by[sizeof(p->resolved_by)];
        memcpy(by, p->resolved_by, sizeof(by)); /* gcc cannot prove they do not overlap */
        snprintf(p->resolve_error, sizeof(p->resolve_error), "%s from %s",
                 nx ? "NXDOMAIN" : "no A/AAAA record", by);
    }
}

static void probe_record(const struct kr_audit_opts *o, const struct kr_audit_entry *e, unsigned i)
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
            probe_record(o, &r->e[k], i);
        if (n_sets < sizeof(sets) / sizeof(sets[0]))
            sets[n_sets++] = r->e[k].set;
    }
    for (size_t k = 0; k < r->n; k++)
        for (unsigned i = 0; i < r->e[k].set->n_rr && !cancelled(o); i++)
            probe_alt(o, sets, n_sets, r->e[k].set, i);
}
