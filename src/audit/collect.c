/*
 * collect.c - the audit's first stage: what the DNS says. For each zone,
 * the _vlmcs._tcp SRV and TXT RRsets from every authoritative server (the
 * --server list, or the zone's NS found through the system resolver),
 * each server asked on its own so that disagreements show; optionally a
 * TSIG-signed AXFR to find _vlmcs names elsewhere in the zone, or for an AD
 * zone (gss) the directory (audit/ldap.c). Every query goes through the
 * blocking client of kmsrelay/dns.h.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit-internal.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"

void kr_audit_error(struct kr_audit_result *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char **e = realloc(r->errors, (r->n_errors + 1) * sizeof(*e));
    if (!e)
        return;
    r->errors = e;
    if ((e[r->n_errors] = strdup(line)) != NULL)
        r->n_errors++;
}

struct kr_audit_entry *kr_audit_new_entry(struct kr_audit_result *r, const char *zone,
                                          const char *owner)
{
    struct kr_audit_entry *e = realloc(r->e, (r->n + 1) * sizeof(*e));
    if (!e)
        return NULL;
    r->e = e;
    e = &r->e[r->n];
    memset(e, 0, sizeof(*e));
    if (!(e->set = calloc(1, sizeof(*e->set))))
        return NULL;
    kr_audit_norm_name(zone, e->set->zone, sizeof(e->set->zone));
    kr_audit_norm_name(owner, e->set->owner, sizeof(e->set->owner));
    r->n++;
    return e;
}

void kr_audit_servers(const struct kr_audit_opts *o, const struct kr_addr *a, size_t n,
                      struct kr_dns_servers *s)
{
    memset(s, 0, sizeof(*s));
    s->addrs = a;
    s->n = n;
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : 3000;
}

/* The zone's NS addresses through the resolvers (else the system's, port 53). */
static size_t find_ns(const struct kr_audit_opts *o, const char *zone, struct kr_addr *out,
                      size_t max, struct kr_audit_result *r)
{
    struct kr_addr sys[4];
    const struct kr_addr *res = o->resolvers;
    size_t nres = o->n_resolvers, n = 0;
    struct kr_dns_servers s;
    struct kr_dns_result *q = NULL;
    if (!nres)
        res = sys, nres = kr_dns_system_resolvers(sys, 4);
    kr_audit_servers(o, res, nres, &s);
    s.recursion = true;
    if (nres == 0 || kr_dns_query_sync(&s, NULL, zone, KR_DNS_NS, &q) != 0 ||
        q->status != KR_DNS_OK) {
        kr_audit_error(r, "zone %s: cannot find its name servers (%s); give --server", zone,
                       nres == 0 ? "no resolver in /etc/resolv.conf"
                       : q       ? q->message
                                 : "out of memory");
        kr_dns_result_free(q);
        return 0;
    }
    for (size_t i = 0; i < q->n_rrs && n < max; i++) {
        if (q->rrs[i].type != KR_DNS_NS)
            continue;
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(q->rrs[i].target, "53", &hints, &ai) != 0) {
            kr_audit_error(r, "zone %s: name server %s has no address", zone, q->rrs[i].target);
            continue;
        }
        for (struct addrinfo *p = ai; p && n < max; p = p->ai_next) {
            memcpy(&out[n].ss, p->ai_addr, p->ai_addrlen);
            out[n].len = p->ai_addrlen;
            n++;
        }
        freeaddrinfo(ai);
    }
    kr_dns_result_free(q);
    if (n == 0)
        kr_audit_error(r, "zone %s: no name server address found; give --server", zone);
    return n;
}

/* One query to one server; NULL (and *err) when it gave no usable answer. */
static struct kr_dns_result *ask(const struct kr_audit_opts *o, const struct kr_addr *server,
                                 const char *name, uint16_t type, char *err, size_t errlen)
{
    struct kr_dns_servers s;
    struct kr_dns_result *q = NULL;
    kr_audit_servers(o, server, 1, &s);
    if (kr_dns_query_sync(&s, NULL, name, type, &q) != 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (q->status != KR_DNS_OK) {
        snprintf(err, errlen, "%s", q->message);
    } else if (!q->aa) {
        snprintf(err, errlen, "not authoritative for %s (no AA bit in the answer)", name);
    } else {
        return q;
    }
    kr_dns_result_free(q);
    return NULL;
}

/* Keeps a TXT record's rdata for the compare-and-swap of --fix. */
static void keep_txt(struct kr_audit_entry *e, const struct kr_dns_rr *rr)
{
    char(*t)[1024] = realloc(e->txt, (e->n_txt + 1) * sizeof(*t));
    if (!t)
        return;
    e->txt = t;
    snprintf(e->txt[e->n_txt++], sizeof(e->txt[0]), "%s", rr->rdata);
}

void kr_audit_add_records(struct kr_audit_entry *e, const char *server, const struct kr_dns_rr *rrs,
                          size_t n, int first)
{
    struct kr_audit_srv_in in[KR_AUDIT_MAX_RR * 2];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kr_dns_name_equal(rrs[i].owner, e->set->owner))
            continue;
        if (rrs[i].type == KR_DNS_SRV && k < sizeof(in) / sizeof(in[0])) {
            in[k].ttl = rrs[i].ttl;
            in[k].prio = rrs[i].priority;
            in[k].weight = rrs[i].weight;
            in[k].port = rrs[i].port;
            in[k].target = rrs[i].target;
            k++;
        } else if (rrs[i].type == KR_DNS_TXT) {
            kr_audit_add_marker(e->set, rrs[i].txt, rrs[i].ttl);
            if (first)
                keep_txt(e, &rrs[i]);
        }
    }
    if (server)
        kr_audit_add_view(e->set, server, 1, NULL, in, k);
}

/* Asks every server of e for its owner's SRV and TXT RRsets: one view each. */
void kr_audit_query_owner(const struct kr_audit_opts *o, struct kr_audit_entry *e,
                          struct kr_audit_result *r)
{
    int first = 1;
    for (size_t i = 0; i < e->n_servers; i++) {
        char name[KR_ADDRSTRLEN], err[KR_DNS_MSG_MAX];
        kr_addr_format((const struct sockaddr *)&e->servers[i].ss, name);
        struct kr_dns_result *srv =
            ask(o, &e->servers[i], e->set->owner, KR_DNS_SRV, err, sizeof(err));
        if (!srv) {
            kr_audit_add_view(e->set, name, 0, err, NULL, 0);
            kr_audit_error(r, "%s SRV from %s: %s", e->set->owner, name, err);
            continue;
        }
        kr_audit_add_records(e, name, srv->rrs, srv->n_rrs, first);
        kr_dns_result_free(srv);
        struct kr_dns_result *txt =
            ask(o, &e->servers[i], e->set->owner, KR_DNS_TXT, err, sizeof(err));
        if (txt) {
            kr_audit_add_records(e, NULL, txt->rrs, txt->n_rrs, first);
            kr_dns_result_free(txt);
        } else {
            kr_audit_error(r, "%s TXT from %s: %s", e->set->owner, name, err);
        }
        first = 0;
    }
}

static int collect_zone(const struct kr_audit_opts *o, const char *zone, struct kr_audit_result *r)
{
    char owner[KR_AUDIT_NAME_MAX + 16], z[KR_AUDIT_NAME_MAX];
    kr_audit_norm_name(zone, z, sizeof(z));
    /* A zone that is itself _vlmcs._tcp.<domain> (delegated out of a Windows
     * DNS zone, deploy/dns/README.md) holds the SRV RRset at its apex. */
    snprintf(owner, sizeof(owner), strncmp(z, "_vlmcs._tcp.", 12) == 0 ? "%s" : "_vlmcs._tcp.%s",
             z);
    struct kr_audit_entry *e = kr_audit_new_entry(r, z, owner);
    if (!e)
        return KR_ENOMEM;
    e->key = o->key;
    e->gss_keytab = o->gss_keytab;
    e->gss_principal = o->gss_principal;
    if (o->n_servers) {
        e->n_servers = o->n_servers < KR_AUDIT_MAX_SERVERS ? o->n_servers : KR_AUDIT_MAX_SERVERS;
        memcpy(e->servers, o->servers, e->n_servers * sizeof(e->servers[0]));
    } else {
        e->n_servers = find_ns(o, z, e->servers, KR_AUDIT_MAX_SERVERS, r);
    }
    kr_audit_query_owner(o, e, r);
    ptrdiff_t idx = e - r->e;
    int rc = o->axfr ? kr_audit_axfr(o, r, idx) : 0;
    if (rc == 0 && o->gss_keytab && o->gss_keytab[0])
        rc = kr_audit_ldap(o, r, idx);
    return rc;
}

/* A _vlmcs name other than the one we queried: first label "_vlmcs*". */
static int is_vlmcs(const char *owner)
{
    return strncasecmp(owner, "_vlmcs", 6) == 0;
}

int kr_audit_axfr(const struct kr_audit_opts *o, struct kr_audit_result *r, ptrdiff_t idx)
{
    char zone[KR_AUDIT_NAME_MAX], main_owner[KR_AUDIT_NAME_MAX];
    snprintf(zone, sizeof(zone), "%s", r->e[idx].set->zone);
    snprintf(main_owner, sizeof(main_owner), "%s", r->e[idx].set->owner);
    if (!o->key) {
        kr_audit_error(r, "zone %s: --axfr needs --key (transfers are TSIG-signed)", zone);
        return 0;
    }
    struct kr_addr servers[KR_AUDIT_MAX_SERVERS];
    size_t ns = r->e[idx].n_servers;
    memcpy(servers, r->e[idx].servers, ns * sizeof(servers[0]));
    struct kr_dns_servers s;
    struct kr_dns_result *x = NULL;
    kr_audit_servers(o, servers, ns, &s);
    s.key = o->key;
    if (ns == 0)
        return 0;
    if (kr_dns_axfr_sync(&s, NULL, zone, &x) != 0)
        return KR_ENOMEM;
    if (x->status != KR_DNS_OK) {
        kr_audit_error(r, "zone %s: AXFR failed: %s", zone, x->message);
        kr_dns_result_free(x);
        return 0;
    }
    for (size_t i = 0; i < x->n_rrs; i++) {
        const struct kr_dns_rr *rr = &x->rrs[i];
        if (!is_vlmcs(rr->owner) || kr_dns_name_equal(rr->owner, main_owner))
            continue;
        if (rr->type != KR_DNS_SRV && rr->type != KR_DNS_TXT)
            continue;
        char own[KR_AUDIT_NAME_MAX];
        kr_audit_norm_name(rr->owner, own, sizeof(own));
        size_t k = 0;
        while (k < r->n && strcmp(r->e[k].set->owner, own) != 0)
            k++;
        if (k == r->n) {
            struct kr_audit_entry *e = kr_audit_new_entry(r, zone, own);
            if (!e) {
                kr_dns_result_free(x);
                return KR_ENOMEM;
            }
            e->set->from_axfr = 1;
            e->key = o->key;
            e->n_servers = ns;
            memcpy(e->servers, servers, ns * sizeof(servers[0]));
            /* All of this name's records in one view: the AXFR server. */
            kr_audit_add_records(e, x->server, x->rrs, x->n_rrs, 1);
        }
    }
    kr_dns_result_free(x);
    return 0;
}

int kr_audit_collect(const struct kr_audit_opts *o, struct kr_audit_result *r)
{
    for (size_t i = 0; i < o->n_zones; i++) {
        if (o->cancel && __atomic_load_n(o->cancel, __ATOMIC_ACQUIRE))
            break;
        int rc = collect_zone(o, o->zones[i], r);
        if (rc != 0)
            return rc;
    }
    return 0;
}
