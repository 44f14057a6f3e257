/*
 * ldap.c - the audit's directory scan of an AD-integrated zone (issue 12).
 * AD refuses zone transfers to ordinary accounts, so the _vlmcs names of
 * the zone and of its children come from its dnsNode objects over LDAP
 * (kmsrelay/directory.h), read with the same Kerberos account that signs
 * --fix. Each name found is then asked from every DNS server like the main
 * name (those views give the compare-and-swap snapshot of --fix), and the
 * directory's own records are one more view, so DNS and directory
 * disagreeing shows as servers disagreeing.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit-internal.h"
#include "kmsrelay/directory.h"
#include "kmsrelay/err.h"

static void set_port(struct kr_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

/* The zone's SOA MNAME (the DC's name, as GSS-TSIG finds it), asked from
 * the first server. */
static int mname(const struct kr_audit_opts *o, const struct kr_audit_entry *e, char *out,
                 size_t cap, char *err, size_t errlen)
{
    struct kr_dns_servers s;
    struct kr_dns_result *q = NULL;
    kr_audit_servers(o, &e->servers[0], 1, &s);
    if (kr_dns_query_sync(&s, NULL, e->set->zone, KR_DNS_SOA, &q) != 0)
        return snprintf(err, errlen, "out of memory"), KR_ENOMEM;
    for (size_t i = 0; q->status == KR_DNS_OK && i < q->n_rrs; i++)
        if (q->rrs[i].type == KR_DNS_SOA) {
            snprintf(out, cap, "%s", q->rrs[i].target);
            size_t n = strlen(out);
            if (n > 1 && out[n - 1] == '.')
                out[n - 1] = 0;
            kr_dns_result_free(q);
            return 0;
        }
    snprintf(err, errlen, "no SOA for %s from %s: %s", e->set->zone, q->server,
             q->status == KR_DNS_OK ? "empty answer" : q->message);
    kr_dns_result_free(q);
    return KR_ENOENT;
}

/* The entry for `owner` in zone z (a new one, asked from every server,
 * when the DNS part of the audit did not have it). NULL when out of memory. */
static struct kr_audit_entry *entry_for(const struct kr_audit_opts *o, struct kr_audit_result *r,
                                        ptrdiff_t zi, const char *owner)
{
    char zone[KR_AUDIT_NAME_MAX], own[KR_AUDIT_NAME_MAX];
    kr_audit_norm_name(owner, own, sizeof(own));
    for (size_t k = 0; k < r->n; k++)
        if (strcmp(r->e[k].set->owner, own) == 0 &&
            strcmp(r->e[k].set->zone, r->e[zi].set->zone) == 0)
            return &r->e[k];
    snprintf(zone, sizeof(zone), "%s", r->e[zi].set->zone);
    struct kr_audit_entry *e = kr_audit_new_entry(r, zone, own);
    if (!e)
        return NULL;
    const struct kr_audit_entry *z = &r->e[zi];
    e->set->from_ldap = 1;
    e->key = z->key;
    e->gss_keytab = z->gss_keytab;
    e->gss_principal = z->gss_principal;
    e->n_servers = z->n_servers;
    memcpy(e->servers, z->servers, z->n_servers * sizeof(e->servers[0]));
    kr_audit_query_owner(o, e, r);
    return e;
}

int kr_audit_ldap(const struct kr_audit_opts *o, struct kr_audit_result *r, ptrdiff_t idx)
{
    char zone[KR_AUDIT_NAME_MAX], server[KR_DNS_NAME_MAX], err[1024];
    struct kr_dir_opts d = {0};
    struct kr_dir_result dr;
    snprintf(zone, sizeof(zone), "%s", r->e[idx].set->zone);
    if (r->e[idx].n_servers == 0) {
        kr_audit_error(r, "zone %s: no server to read the directory from", zone);
        return 0;
    }
    if (mname(o, &r->e[idx], server, sizeof(server), err, sizeof(err)) != 0) {
        kr_audit_error(r, "zone %s: directory not read: %s", zone, err);
        return 0;
    }
    d.zone = zone;
    d.server = r->e[idx].servers[0];
    set_port(&d.server, o->ldap_port ? o->ldap_port : KR_DIR_LDAP_PORT);
    d.server_name = server;
    d.keytab = o->gss_keytab;
    d.principal = o->gss_principal;
    d.timeout_ms = o->timeout_ms ? o->timeout_ms : 3000;
    int rc = kr_dir_vlmcs(&d, &dr, err, sizeof(err));
    if (rc != 0) {
        kr_audit_error(r, "zone %s: directory not read: %s", zone, err);
        return rc == KR_ENOMEM ? rc : 0;
    }
    char view[KR_AUDIT_SERVER_MAX];
    /* a view's name is short: the DC's name, cut if it must be */
    snprintf(view, sizeof(view), "ldap://%.*s", (int)sizeof(view) - 8, server);
    for (size_t i = 0; i < dr.n && rc == 0; i++) {
        const struct kr_dir_node *n = &dr.nodes[i];
        if (o->cancel && __atomic_load_n(o->cancel, __ATOMIC_ACQUIRE))
            break; /* the daemon is stopping: each name costs DNS queries */
        struct kr_audit_entry *e = entry_for(o, r, idx, n->owner);
        if (!e) {
            rc = KR_ENOMEM;
            break;
        }
        kr_audit_add_records(e, view, n->rr, n->n_rr, 0);
        if (n->n_bad)
            kr_audit_error(r, "%s: %u dnsRecord value(s) of %s did not decode: %s", n->owner,
                           n->n_bad, n->dn, n->bad_why);
    }
    kr_dir_result_free(&dr);
    return rc;
}
