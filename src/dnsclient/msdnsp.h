/*
 * msdnsp.h - the dnsRecord attribute of an AD dnsNode object (MS-DNSP
 * 2.3.2.2 DNS_RPC_RECORD, names as DNS_COUNT_NAME 2.2.2.2.2), decoded into
 * a kmsrelay record, for the audit's LDAP enumeration (issue 12). Pure
 * codec: bytes in, record out, never reads past len.
 *
 * Layout (little-endian unless noted):
 *   DataLength u16, Type u16, Version u8 (5), Rank u8, Flags u16,
 *   Serial u32, TtlSeconds u32 BIG-endian, Reserved u32, TimeStamp u32
 *   (hours since 1601-01-01; 0 = static), then DataLength bytes of data:
 *   SRV: priority, weight, port (big-endian u16 each), target COUNT_NAME;
 *   A: 4 bytes; AAAA: 16 bytes; TXT: strings, each u8 length + bytes;
 *   Type 0 (a tombstone): 8-byte FILETIME of the deletion.
 *
 * Ownership: everything is copied into the caller's structures.
 */
#ifndef KR_DNS_MSDNSP_H
#define KR_DNS_MSDNSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"

struct kr_msdnsp_meta {
    uint16_t type;
    uint8_t version, rank;
    uint16_t flags;
    uint32_t serial, ttl, timestamp; /* timestamp 0: a static record */
    bool tombstone;                  /* type 0: the node was deleted */
};

/*
 * Decodes one dnsRecord value of the node `owner` (absolute name) into
 * *rr (SRV, A, AAAA, TXT) and *meta. 0; KR_ENOENT for a tombstone (meta
 * filled, rr untouched); KR_EUNSUP for another type (meta filled);
 * KR_EMALF with why for anything malformed or truncated.
 */
int kr_msdnsp_decode(const uint8_t *buf, size_t len, const char *owner, struct kr_dns_rr *rr,
                     struct kr_msdnsp_meta *meta, const char **why);

#endif
