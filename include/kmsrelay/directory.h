/*
 * directory.h - the _vlmcs records of an AD-integrated DNS zone, read from
 * the directory itself (issue 12). AD zones refuse zone transfers to
 * ordinary accounts, but every authenticated account may read their
 * dnsNode objects over LDAP: this module binds with SASL GSSAPI (OpenLDAP's
 * libldap, Cyrus SASL's GSSAPI module, the account's Kerberos ticket) and
 * returns every node named _vlmcs._tcp or _vlmcs._tcp.<child> of the zone,
 * with its dnsRecord values decoded (MS-DNSP DNS_RPC_RECORD, msdnsp.c).
 *
 * Where it looks: the zone object DC=<zone>,CN=MicrosoftDNS,<partition> in
 * every DNS application partition the rootDSE lists (DC=DomainDnsZones,...
 * and DC=ForestDnsZones,...) and in the legacy place CN=System,<domain>.
 * Tombstoned nodes (dNSTombstoned TRUE: deleted, kept for replication) are
 * skipped.
 *
 * BLOCKS (TCP, Kerberos, LDAP): call it from the command line or a worker
 * thread (the daemon's periodic audit runs it off the event loop). Every
 * read and write on the connection is bounded by timeout_ms.
 *
 * Ownership: options are borrowed for the call; the result is the
 * caller's (kr_dir_result_free).
 */
#ifndef KMSRELAY_DIRECTORY_H
#define KMSRELAY_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"
#include "kmsrelay/netaddr.h"

#define KR_DIR_DN_MAX 512
#define KR_DIR_LDAP_PORT 389

struct kr_dir_opts {
    const char *zone;        /* "corp.example" (final dot optional) */
    struct kr_addr server;   /* a domain controller's LDAP address, port included */
    const char *server_name; /* its host name: the SASL service is ldap/<server_name> */
    /* The account: a keytab and principal (a private ticket cache is made
     * for the call), or an existing credential cache (e.g. after kinit). */
    const char *keytab, *principal;
    const char *ccache;
    uint64_t timeout_ms; /* per network read or write; 0 = 5000 */
};

/* One _vlmcs node of the zone. */
struct kr_dir_node {
    char owner[KR_DNS_NAME_MAX]; /* absolute, lower case */
    char dn[KR_DIR_DN_MAX];
    size_t n_rr; /* its SRV and TXT records */
    struct kr_dns_rr *rr;
    unsigned n_bad;               /* dnsRecord values that did not decode */
    char bad_why[KR_DNS_MSG_MAX]; /* the first one's reason */
};

struct kr_dir_result {
    size_t n;
    struct kr_dir_node *nodes;
    unsigned n_tombstoned;                  /* _vlmcs nodes skipped as deleted */
    uint64_t ticket_us, bind_us, search_us; /* where the time went */
    char zone_dn[KR_DIR_DN_MAX];            /* where the zone was found */
    char server[KR_ADDRSTRLEN + KR_DNS_NAME_MAX +
                16]; /* "ldap://dc1.corp.example (127.0.0.1:389)" */
};

/* Reads the zone's _vlmcs nodes. 0 with *out filled (maybe no node), or a
 * KR_E* with err saying what failed and what to do (Kerberos, connection,
 * bind, the zone not found in any partition). */
int kr_dir_vlmcs(const struct kr_dir_opts *o, struct kr_dir_result *out, char *err, size_t errlen);
void kr_dir_result_free(struct kr_dir_result *r);

/* ---- names (pure; names.c, fuzzed by fuzz_dirname) ------------------------ */

/* The owner name of node `dc` (its DC= value, relative to the zone) when it
 * is a _vlmcs node: "_vlmcs._tcp" or "_vlmcs._tcp.<child labels>", or "@"
 * (the apex) when the zone itself is _vlmcs._tcp.<domain>. Writes the
 * absolute lower-case owner. 0; KR_ENOENT for another name; KR_EMALF (why)
 * for a name that cannot be a DNS name (empty or over-long label, a
 * character outside letters, digits, '-' and '_', over 253 bytes). */
int kr_dir_owner(const char *dc, const char *zone, char *out, size_t cap, const char **why);

/* "DC=<zone>,CN=MicrosoftDNS,<partition>" with the zone escaped for a DN
 * (RFC 4514) and without its final dot. KR_ENOSPC when it does not fit,
 * KR_EINVAL for an empty zone or one with a NUL-free but non-DNS byte. */
int kr_dir_zone_dn(const char *zone, const char *partition, char *out, size_t cap);

/* 1 when `nc` (a namingContexts value) is a DNS application partition:
 * its first RDN is DC=DomainDnsZones or DC=ForestDnsZones (any case). */
int kr_dir_dns_partition(const char *nc);

#endif
