/*
 * tkey.h - RFC 2930 TKEY messages for the GSS-API key exchange (mode 3,
 * RFC 3645 4.1): the query that carries our token and the reply that
 * carries the server's. Pure wire code, no GSSAPI.
 *
 * Query (as BIND's nsupdate -g sends it): question KEYNAME TKEY ANY, no
 * answer, the TKEY RR (owner KEYNAME, class ANY, TTL 0; algorithm
 * gss-tsig., inception now, expiration now + lifetime, mode 3, error 0,
 * the token as key data) in the additional section; names uncompressed.
 *
 * Ownership: *out is malloc'd; kr_tkey_reply points into the reply.
 */
#ifndef KR_DNS_TKEY_H
#define KR_DNS_TKEY_H

#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"

int kr_tkey_query(uint16_t id, const char *key_name, int64_t now, uint32_t lifetime,
                  const uint8_t *token, size_t token_len, uint8_t **out, size_t *out_len);

struct kr_tkey_reply {
    int rcode;
    uint16_t mode, error; /* TKEY error: 0, or a TSIG error (BADKEY 17, ...) */
    const uint8_t *token; /* the server's token (may be empty) */
    size_t token_len;
    uint32_t expiration;
};
/* Finds the TKEY RR of key_name in the answer section. 0, KR_ENOENT (no
 * TKEY: r->rcode says why), KR_EMALF with why. */
int kr_tkey_parse(const uint8_t *wire, size_t len, uint16_t id, const char *key_name,
                  struct kr_tkey_reply *r, const char **why);

#endif
