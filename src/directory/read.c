/*
 * read.c - the zone's _vlmcs nodes (directory.h): the rootDSE's DNS
 * partitions, a one-level search of the zone object in each, the dnsRecord
 * values decoded with dnsclient's MS-DNSP decoder. The account's private
 * ticket cache (dnsclient/gss_ccache.h keeps Kerberos in dnsclient) is the
 * thread's default credential while session.c binds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/directory-internal.h"
#include "dnsclient/gss_ccache.h"
#include "dnsclient/msdnsp.h"
#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"

#define MAX_NC 16

/* The rootDSE's DNS partitions and the domain (legacy CN=System place). */
static size_t partitions(LDAP *ld, char (*out)[KR_DIR_DN_MAX], size_t max, uint64_t ms)
{
    char *attrs[] = {"namingContexts", "defaultNamingContext", NULL};
    struct timeval tv = {(time_t)(ms / 1000), 0};
    LDAPMessage *res = NULL;
    size_t n = 0;
    if (ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 0,
                          &res) == LDAP_SUCCESS) {
        LDAPMessage *e = ldap_first_entry(ld, res);
        struct berval **v = e ? ldap_get_values_len(ld, e, "namingContexts") : NULL;
        for (size_t i = 0; v && v[i] && n < max; i++) {
            snprintf(out[n], KR_DIR_DN_MAX, "%.*s", (int)v[i]->bv_len, v[i]->bv_val);
            n += (size_t)kr_dir_dns_partition(out[n]);
        }
        ldap_value_free_len(v);
        v = e ? ldap_get_values_len(ld, e, "defaultNamingContext") : NULL;
        if (v && v[0] && n < max)
            snprintf(out[n++], KR_DIR_DN_MAX, "CN=System,%.*s", (int)v[0]->bv_len, v[0]->bv_val);
        ldap_value_free_len(v);
    }
    ldap_msgfree(res);
    return n;
}

/* Decodes one node's dnsRecord values into node->rr (SRV and TXT). */
static int decode_node(LDAP *ld, LDAPMessage *e, struct kr_dir_node *node)
{
    struct berval **v = ldap_get_values_len(ld, e, "dnsRecord");
    size_t n = ldap_count_values_len(v);
    node->rr = calloc(n ? n : 1, sizeof(*node->rr));
    if (!node->rr) {
        ldap_value_free_len(v);
        return KR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct kr_msdnsp_meta m;
        const char *why = "";
        struct kr_dns_rr *rr = &node->rr[node->n_rr];
        int rc = kr_msdnsp_decode((const uint8_t *)v[i]->bv_val, v[i]->bv_len, node->owner, rr, &m,
                                  &why);
        if (rc == 0 && (rr->type == KR_DNS_SRV || rr->type == KR_DNS_TXT))
            node->n_rr++;
        else if (rc == KR_EMALF && node->n_bad++ == 0)
            snprintf(node->bad_why, sizeof(node->bad_why), "%s", why);
    }
    ldap_value_free_len(v);
    return 0;
}

static int tombstoned(LDAP *ld, LDAPMessage *e)
{
    struct berval **v = ldap_get_values_len(ld, e, "dNSTombstoned");
    int t = v && v[0] && v[0]->bv_len == 4 && strncasecmp(v[0]->bv_val, "TRUE", 4) == 0;
    ldap_value_free_len(v);
    return t;
}

/* Adds the _vlmcs nodes of one search result. */
static int add_nodes(LDAP *ld, LDAPMessage *res, const char *zone, struct kr_dir_result *out)
{
    for (LDAPMessage *e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {
        struct berval **dc = ldap_get_values_len(ld, e, "dc");
        char name[256], owner[KR_DNS_NAME_MAX];
        const char *why;
        /* a value with a NUL in it would be read as a shorter name */
        int ok =
            dc && dc[0] && dc[0]->bv_len < sizeof(name) && !memchr(dc[0]->bv_val, 0, dc[0]->bv_len);
        if (ok)
            snprintf(name, sizeof(name), "%.*s", (int)dc[0]->bv_len, dc[0]->bv_val);
        ldap_value_free_len(dc);
        if (!ok || kr_dir_owner(name, zone, owner, sizeof(owner), &why) != 0)
            continue;
        if (tombstoned(ld, e)) {
            out->n_tombstoned++;
            continue;
        }
        struct kr_dir_node *nn = realloc(out->nodes, (out->n + 1) * sizeof(*nn));
        if (!nn)
            return KR_ENOMEM;
        out->nodes = nn;
        struct kr_dir_node *node = &nn[out->n++];
        memset(node, 0, sizeof(*node));
        snprintf(node->owner, sizeof(node->owner), "%s", owner);
        char *dn = ldap_get_dn(ld, e);
        snprintf(node->dn, sizeof(node->dn), "%s", dn ? dn : "");
        ldap_memfree(dn);
        if (decode_node(ld, e, node) != 0)
            return KR_ENOMEM;
    }
    return 0;
}

/* Searches the zone object under each partition; the first that has it
 * counts (AD keeps a zone in one partition). */
static int search(LDAP *ld, const struct kr_dir_opts *o, uint64_t ms, struct kr_dir_result *out,
                  char *err, size_t errlen)
{
    char nc[MAX_NC][KR_DIR_DN_MAX], base[KR_DIR_DN_MAX];
    char *attrs[] = {"dc", "dnsRecord", "dNSTombstoned", NULL};
    const char *filter = "(&(objectClass=dnsNode)(|(dc=_vlmcs._tcp)(dc=_vlmcs._tcp.*)(dc=@)))";
    struct timeval tv = {(time_t)(ms / 1000) + 1, 0};
    size_t n = partitions(ld, nc, MAX_NC, ms);
    for (size_t i = 0; i < n; i++) {
        LDAPMessage *res = NULL;
        if (kr_dir_zone_dn(o->zone, nc[i], base, sizeof(base)) != 0)
            continue;
        int rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL, NULL, &tv,
                                   0, &res);
        if (rc == LDAP_NO_SUCH_OBJECT) {
            ldap_msgfree(res);
            continue;
        }
        if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
            kr_dir_error(ld, rc, "search", o, err, errlen);
            ldap_msgfree(res);
            return KR_EIO;
        }
        snprintf(out->zone_dn, sizeof(out->zone_dn), "%s", base);
        rc = add_nodes(ld, res, o->zone, out);
        ldap_msgfree(res);
        return rc;
    }
    snprintf(err, errlen,
             "LDAP: zone %s is not in the directory of ldap://%s (looked under "
             "CN=MicrosoftDNS of %zu partitions): not an AD-integrated zone, or another domain's",
             o->zone, o->server_name, n);
    return KR_ENOENT;
}

int kr_dir_vlmcs(const struct kr_dir_opts *o, struct kr_dir_result *out, char *err, size_t errlen)
{
    char cc[KR_GSS_CCACHE_NAME_MAX] = "";
    uint64_t ms = o->timeout_ms ? o->timeout_ms : 5000;
    memset(out, 0, sizeof(*out));
    char addr[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&o->server.ss, addr);
    snprintf(out->server, sizeof(out->server), "ldap://%s (%s)", o->server_name, addr);
    uint64_t t0 = kr_now_us();
    if (!o->ccache || !o->ccache[0]) {
        int rc = kr_gss_ccache_open(o->keytab, o->principal, cc, err, errlen);
        if (rc != 0)
            return rc;
    }
    uint64_t t1 = kr_now_us();
    sigset_t old;
    kr_dir_sigpipe_block(&old);
    kr_gss_ccache_use(cc[0] ? cc : o->ccache);
    LDAP *ld = kr_dir_open(o, ms, err, errlen);
    kr_gss_ccache_use(NULL);
    uint64_t t2 = kr_now_us();
    int rc = KR_EIO;
    if (ld) {
        rc = search(ld, o, ms, out, err, errlen);
        ldap_unbind_ext_s(ld, NULL, NULL);
    }
    kr_dir_sigpipe_restore(&old);
    out->ticket_us = t1 - t0;
    out->bind_us = t2 - t1;
    out->search_us = kr_now_us() - t2;
    kr_gss_ccache_close(cc);
    if (rc != 0)
        kr_dir_result_free(out);
    return rc;
}

void kr_dir_result_free(struct kr_dir_result *r)
{
    for (size_t i = 0; r && i < r->n; i++)
        free(r->nodes[i].rr);
    if (r) {
        free(r->nodes);
        r->nodes = NULL;
        r->n = 0;
    }
}
