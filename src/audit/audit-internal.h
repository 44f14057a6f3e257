/*
 * audit-internal.h - helpers shared by the files of src/audit that talk to
 * the DNS (collect.c, resolve.c, fix.c). Not for other modules.
 */
#ifndef KR_AUDIT_INTERNAL_H
#define KR_AUDIT_INTERNAL_H

#include <stddef.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/dns.h"

/* Appends one line to r->errors (dropped when out of memory). */
void kr_audit_error(struct kr_audit_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A new entry for owner name `owner` of `zone` (names normalised), or NULL
 * when out of memory. Pointers into r->e are invalidated by the call. */
struct kr_audit_entry *kr_audit_new_entry(struct kr_audit_result *r, const char *zone,
                                          const char *owner);

/* Fills a kr_dns_servers for n borrowed addresses with the run's timeout. */
void kr_audit_servers(const struct kr_audit_opts *o, const struct kr_addr *a, size_t n,
                      struct kr_dns_servers *s);

/* resolve.c: resolves and probes record i of e again (its own port only;
 * the other-port results are cleared). */
void kr_audit_probe_one(const struct kr_audit_opts *o, const struct kr_audit_entry *e, unsigned i);

/* Adds server `server`'s records of e's owner (SRV as a view, TXT markers;
 * `first`: keep the TXT rdata for --fix). server NULL: markers only. */
void kr_audit_add_records(struct kr_audit_entry *e, const char *server, const struct kr_dns_rr *rrs,
                          size_t n, int first);
/* Asks each of e's servers for its owner's SRV and TXT: one view each. */
void kr_audit_query_owner(const struct kr_audit_opts *o, struct kr_audit_entry *e,
                          struct kr_audit_result *r);

/* ldap.c: the directory scan of entry idx's (GSS) zone: each _vlmcs node
 * becomes an entry (asked from every server like the main name) and the
 * directory one more view of each. Errors go to r->errors. */
int kr_audit_ldap(const struct kr_audit_opts *o, struct kr_audit_result *r, ptrdiff_t idx);

/* The AXFR scan of entry idx's zone: adds an entry per other _vlmcs name. */
int kr_audit_axfr(const struct kr_audit_opts *o, struct kr_audit_result *r, ptrdiff_t idx);

/* history.c: sets each failing record's failing_since from the store's
 * memory (now for a new failure) and saves the new memory. store may be
 * NULL (then failing_since = now: nothing is confirmed dead). */
struct kr_store;
void kr_audit_history(struct kr_store *store, struct kr_audit_result *r, int64_t now);
/* Logs each problem (warn) and unconfirmed failure (info), then a summary. */
void kr_audit_log(const json_t *doc, uint64_t took_ms);

#endif
