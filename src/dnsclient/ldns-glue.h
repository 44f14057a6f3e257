/*
 * ldns-glue.h - the only internal header that exposes ldns types: the
 * conversions between kr_dns_rr and ldns_rr used by the src/dnsclient files.
 * Nothing outside src/dnsclient may include it (see include/kmsrelay/dns.h).
 *
 * Ownership: kr_dns_rr_to_ldns returns a new ldns_rr the caller frees with
 * ldns_rr_free(); kr_dns_rr_from_ldns only reads its argument.
 */
#ifndef KR_DNS_LDNS_GLUE_H
#define KR_DNS_LDNS_GLUE_H

#include <ldns/ldns.h>

#include "dnsclient/message.h"

/* Builds the ldns record for rr (owner, TTL, class IN unless rclass is
 * set, rdata text). NULL with why when it does not parse. */
ldns_rr *kr_dns_rr_to_ldns(const struct kr_dns_rr *rr, const char **why);

/* Fills *out from an ldns record: owner, type, class, TTL, rdata text and
 * the parsed view. */
void kr_dns_rr_from_ldns(const ldns_rr *in, struct kr_dns_rr *out);

#endif
