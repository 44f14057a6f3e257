/*
 * tkey.c - RFC 2930 TKEY query and reply for GSS-API (see tkey.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss_tsig.h"
#include "dnsclient/tkey.h"
#include "kmsrelay/err.h"

#define TYPE_TKEY 249
#define CLASS_ANY 255

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int kr_tkey_query(uint16_t id, const char *key_name, int64_t now, uint32_t lifetime,
                  const uint8_t *token, size_t token_len, uint8_t **out, size_t *out_len)
{
    uint8_t kw[256], aw[256];
    int kwl = kr_gsst_name_wire(key_name, kw, sizeof(kw));
    int awl = kr_gsst_name_wire(KR_GSST_ALG, aw, sizeof(aw));
    if (kwl < 0 || awl < 0 || token_len > 60000)
        return KR_EINVAL;
    size_t rdlen = (size_t)awl + 4 + 4 + 2 + 2 + 2 + token_len + 2;
    size_t n = 12 + (size_t)kwl + 4 + (size_t)kwl + 10 + rdlen;
    uint8_t *w = calloc(1, n), *p;
    if (!w)
        return KR_ENOMEM;
    put16(w, id);
    put16(w + 4, 1);  /* QDCOUNT */
    put16(w + 10, 1); /* ARCOUNT */
    p = w + 12;
    memcpy(p, kw, (size_t)kwl), p += kwl;
    put16(p, TYPE_TKEY), put16(p + 2, CLASS_ANY), p += 4;
    memcpy(p, kw, (size_t)kwl), p += kwl;
    put16(p, TYPE_TKEY), put16(p + 2, CLASS_ANY), put32(p + 4, 0), p += 8;
    put16(p, (uint16_t)rdlen), p += 2;
    memcpy(p, aw, (size_t)awl), p += awl;
    put32(p, (uint32_t)now), put32(p + 4, (uint32_t)(now + lifetime)), p += 8;
    put16(p, 3), put16(p + 2, 0), put16(p + 4, (uint16_t)token_len), p += 6;
    if (token_len)
        memcpy(p, token, token_len);
    p += token_len;
    put16(p, 0);
    *out = w;
    *out_len = n;
    return 0;
}

/* The TKEY RDATA at [off, end). */
static int parse_rdata(const uint8_t *w, size_t end, size_t off, struct kr_tkey_reply *r)
{
    char alg[KR_DNS_NAME_MAX];
    if (kr_gsst_name_read(w, end, &off, alg) != 0 || off + 16 > end)
        return KR_EMALF;
    r->expiration = (uint32_t)get16(w + off + 4) << 16 | get16(w + off + 6);
    r->mode = get16(w + off + 8);
    r->error = get16(w + off + 10);
    r->token_len = get16(w + off + 12);
    off += 14;
    if (off + r->token_len + 2 > end)
        return KR_EMALF;
    r->token = w + off;
    off += r->token_len;
    if (off + 2 + get16(w + off) != end)
        return KR_EMALF;
    return 0;
}

int kr_tkey_parse(const uint8_t *wire, size_t len, uint16_t id, const char *key_name,
                  struct kr_tkey_reply *r, const char **why)
{
    memset(r, 0, sizeof(*r));
    if (!wire || len < 12)
        return *why = "shorter than a DNS header", KR_EMALF;
    if (get16(wire) != id || !(wire[2] & 0x80))
        return *why = "not a reply to our TKEY query (ID or QR)", KR_EMALF;
    r->rcode = wire[3] & 0x0F;
    size_t off = 12, next;
    char name[KR_DNS_NAME_MAX], want[KR_DNS_NAME_MAX];
    uint8_t kw[256];
    int kwl = kr_gsst_name_wire(key_name, kw, sizeof(kw));
    size_t z = 0;
    if (kwl < 0 || kr_gsst_name_read(kw, (size_t)kwl, &z, want) != 0)
        return *why = "bad key name", KR_EINVAL;
    for (size_t i = 0; i < get16(wire + 4); i++) {
        if (kr_gsst_name_read(wire, len, &off, name) != 0 || off + 4 > len)
            return *why = "truncated question", KR_EMALF;
        off += 4;
    }
    for (size_t i = 0; i < get16(wire + 6); i++) {
        size_t at = off;
        if (kr_gsst_skip_rr(wire, len, off, &next) != 0)
            return *why = "truncated answer", KR_EMALF;
        if (kr_gsst_name_read(wire, len, &at, name) != 0)
            return *why = "bad owner name", KR_EMALF;
        if (get16(wire + at) == TYPE_TKEY && strcmp(name, want) == 0) {
            if (parse_rdata(wire, next, at + 10, r) != 0)
                return *why = "malformed TKEY record", KR_EMALF;
            return 0;
        }
        off = next;
    }
    return *why = "no TKEY record in the answer", KR_ENOENT;
}
