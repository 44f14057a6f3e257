/*
 * gss_tsig.c - RFC 3645 GSS-TSIG records and digests over wire bytes (see
 * gss_tsig.h). Pure code: the MIC is a callback.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss_tsig.h"
#include "kmsrelay/err.h"

#define TYPE_TSIG 250
#define CLASS_ANY 255

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put48(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 6; i++)
        p[i] = (uint8_t)(v >> (8 * (5 - i)));
}

int kr_gsst_name_wire(const char *name, uint8_t *out, size_t cap)
{
    size_t n = 0, i = 0, nl = name ? strlen(name) : 0;
    if (!name || cap < 255 || nl == 0)
        return KR_EINVAL;
    if (strcmp(name, ".") == 0) {
        out[0] = 0;
        return 1;
    }
    while (i < nl) {
        size_t j = i;
        while (j < nl && name[j] != '.')
            j++;
        size_t ll = j - i;
        if (ll == 0 || ll > 63 || n + ll + 2 > 255)
            return KR_EINVAL;
        out[n++] = (uint8_t)ll;
        for (size_t k = i; k < j; k++)
            out[n++] = (uint8_t)tolower((unsigned char)name[k]);
        i = j + 1;
    }
    out[n++] = 0;
    return (int)n;
}

int kr_gsst_name_read(const uint8_t *wire, size_t len, size_t *off, char out[KR_DNS_NAME_MAX])
{
    size_t p = *off, o = 0, end = 0;
    int hops = 0;
    bool jumped = false;
    for (;;) {
        if (p >= len)
            return KR_EMALF;
        uint8_t l = wire[p];
        if ((l & 0xC0) == 0xC0) {
            if (p + 1 >= len || ++hops > 64)
                return KR_EMALF;
            if (!jumped)
                end = p + 2;
            jumped = true;
            p = (size_t)(l & 0x3F) << 8 | wire[p + 1];
            continue;
        }
        if (l & 0xC0)
            return KR_EMALF;
        if (l == 0) {
            if (!jumped)
                end = p + 1;
            break;
        }
        if (p + 1 + l > len || o + l + 2 > KR_DNS_NAME_MAX - 1)
            return KR_EMALF;
        for (size_t k = 0; k < l; k++) {
            char c = (char)tolower(wire[p + 1 + k]);
            out[o++] = (c == '.' || c == '\\' || !isprint((unsigned char)c)) ? '?' : c;
        }
        out[o++] = '.';
        p += 1 + (size_t)l;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = 0;
    *off = end;
    return 0;
}

int kr_gsst_skip_rr(const uint8_t *wire, size_t len, size_t off, size_t *next)
{
    char tmp[KR_DNS_NAME_MAX];
    if (kr_gsst_name_read(wire, len, &off, tmp) != 0 || off + 10 > len)
        return KR_EMALF;
    size_t rdlen = get16(wire + off + 8);
    if (off + 10 + rdlen > len)
        return KR_EMALF;
    *next = off + 10 + rdlen;
    return 0;
}

/* The TSIG variables (RFC 8945 4.3.3) after the given prefix. */
static uint8_t *variables(const uint8_t *kw, size_t kwl, const uint8_t *aw, size_t awl,
                          int64_t time, uint16_t fudge, uint16_t error, const uint8_t *other,
                          size_t other_len, const uint8_t *pre1, size_t l1, const uint8_t *pre2,
                          size_t l2, const uint8_t *pre3, size_t l3, size_t *out_len)
{
    size_t n = l1 + l2 + l3 + kwl + 2 + 4 + awl + 6 + 2 + 2 + 2 + other_len;
    uint8_t *d = malloc(n ? n : 1), *p = d;
    if (!d)
        return NULL;
    if (l1)
        memcpy(p, pre1, l1), p += l1;
    if (l2)
        memcpy(p, pre2, l2), p += l2;
    if (l3)
        memcpy(p, pre3, l3), p += l3;
    memcpy(p, kw, kwl), p += kwl;
    put16(p, CLASS_ANY), p += 2;
    memset(p, 0, 4), p += 4;
    memcpy(p, aw, awl), p += awl;
    put48(p, (uint64_t)time), p += 6;
    put16(p, fudge), p += 2;
    put16(p, error), p += 2;
    put16(p, (uint16_t)other_len), p += 2;
    if (other_len)
        memcpy(p, other, other_len);
    *out_len = n;
    return d;
}

int kr_gsst_sign(const uint8_t *msg, size_t len, const char *key_name, int64_t now, uint16_t fudge,
                 kr_gsst_mic_fn mic, void *ctx, uint8_t **out, size_t *out_len, uint8_t *mac,
                 size_t *mac_len, char *err, size_t errlen)
{
    uint8_t kw[256], aw[256];
    int kwl = kr_gsst_name_wire(key_name, kw, sizeof(kw));
    int awl = kr_gsst_name_wire(KR_GSST_ALG, aw, sizeof(aw));
    *out = NULL;
    if (!msg || len < 12 || kwl < 0 || awl < 0) {
        snprintf(err, errlen, "GSS-TSIG: cannot sign (bad message or key name)");
        return KR_EINVAL;
    }
    size_t dl;
    uint8_t *d = variables(kw, (size_t)kwl, aw, (size_t)awl, now, fudge, 0, NULL, 0, msg, len, NULL,
                           0, NULL, 0, &dl);
    if (!d)
        return KR_ENOMEM;
    int rc = mic(ctx, d, dl, mac, mac_len);
    free(d);
    if (rc != 0) {
        snprintf(err, errlen,
                 "GSS-TSIG: gss_get_mic failed (the security context is no "
                 "longer valid; a new one will be negotiated)");
        return rc;
    }
    size_t rdlen = (size_t)awl + 6 + 2 + 2 + *mac_len + 2 + 2 + 2;
    size_t n = len + (size_t)kwl + 10 + rdlen;
    uint8_t *w = malloc(n), *p;
    if (!w)
        return KR_ENOMEM;
    memcpy(w, msg, len);
    put16(w + 10, (uint16_t)(get16(w + 10) + 1));
    p = w + len;
    memcpy(p, kw, (size_t)kwl), p += kwl;
    put16(p, TYPE_TSIG), put16(p + 2, CLASS_ANY), memset(p + 4, 0, 4), p += 8;
    put16(p, (uint16_t)rdlen), p += 2;
    memcpy(p, aw, (size_t)awl), p += awl;
    put48(p, (uint64_t)now), p += 6;
    put16(p, fudge), p += 2;
    put16(p, (uint16_t)*mac_len), p += 2;
    memcpy(p, mac, *mac_len), p += *mac_len;
    put16(p, get16(msg)), p += 2; /* original ID */
    put16(p, 0), put16(p + 2, 0);
    *out = w;
    *out_len = n;
    return 0;
}

/* Parses the TSIG RDATA at [off, end). */
static int parse_tsig(const uint8_t *w, size_t end, size_t off, struct kr_gsst_tsig *t)
{
    if (kr_gsst_name_read(w, end, &off, t->algorithm) != 0 || off + 10 > end)
        return KR_EMALF;
    const uint8_t *p = w + off;
    t->time = (int64_t)((uint64_t)get16(p) << 32 | (uint64_t)get16(p + 2) << 16 | get16(p + 4));
    t->fudge = get16(p + 6);
    t->mac_len = get16(p + 8);
    off += 10;
    if (off + t->mac_len + 6 > end)
        return KR_EMALF;
    t->mac = w + off;
    off += t->mac_len;
    t->orig_id = get16(w + off);
    t->error = get16(w + off + 2);
    t->other_len = get16(w + off + 4);
    off += 6;
    if (off + t->other_len != end)
        return KR_EMALF;
    t->other = w + off;
    return 0;
}

int kr_gsst_split(const uint8_t *wire, size_t len, struct kr_gsst_tsig *t, uint8_t **body,
                  size_t *body_len, const char **why)
{
    *body = NULL;
    memset(t, 0, sizeof(*t));
    if (!wire || len < 12)
        return *why = "shorter than a DNS header", KR_EMALF;
    size_t counts = (size_t)get16(wire + 4) + get16(wire + 6) + get16(wire + 8) + get16(wire + 10);
    size_t off = 12, last = 0, next;
    char tmp[KR_DNS_NAME_MAX];
    for (size_t i = 0; i < get16(wire + 4); i++) {
        if (kr_gsst_name_read(wire, len, &off, tmp) != 0 || off + 4 > len)
            return *why = "truncated question", KR_EMALF;
        off += 4;
    }
    for (size_t i = get16(wire + 4); i < counts; i++) {
        last = off;
        if (kr_gsst_skip_rr(wire, len, off, &next) != 0)
            return *why = "truncated resource record", KR_EMALF;
        off = next;
    }
    if (off != len)
        return *why = "bytes after the last record", KR_EMALF;
    if (get16(wire + 10) == 0)
        return 0;
    size_t p = last;
    if (kr_gsst_name_read(wire, len, &p, t->key_name) != 0)
        return *why = "bad TSIG owner", KR_EMALF;
    if (get16(wire + p) != TYPE_TSIG)
        return 0;
    if (parse_tsig(wire, len, p + 10, t) != 0)
        return *why = "malformed TSIG record", KR_EMALF;
    uint8_t *b = malloc(last ? last : 1);
    if (!b)
        return *why = "out of memory", KR_ENOMEM;
    memcpy(b, wire, last);
    put16(b, t->orig_id);
    put16(b + 10, (uint16_t)(get16(b + 10) - 1));
    *body = b;
    *body_len = last;
    return 1;
}

static int try_form(const struct kr_gsst_tsig *t, bool samba, const uint8_t *kw, size_t kwl,
                    const uint8_t *aw, size_t awl, const uint8_t *req_mac, size_t req_mac_len,
                    const uint8_t *body, size_t body_len, kr_gsst_verify_fn vf, void *ctx)
{
    uint8_t ml[2];
    put16(ml, (uint16_t)req_mac_len);
    size_t dl;
    uint8_t *d = variables(kw, kwl, aw, awl, t->time, t->fudge, t->error, t->other, t->other_len,
                           ml, samba ? 0 : 2, req_mac, req_mac_len, body, body_len, &dl);
    if (!d)
        return KR_ENOMEM;
    int rc = vf(ctx, d, dl, t->mac, t->mac_len);
    free(d);
    return rc;
}

int kr_gsst_verify(const uint8_t *wire, size_t len, const char *key_name, const uint8_t *req_mac,
                   size_t req_mac_len, int64_t now, kr_gsst_verify_fn vf, void *ctx,
                   struct kr_gsst_tsig *t, uint8_t **body, size_t *body_len, char *err,
                   size_t errlen)
{
    const char *why = "";
    uint8_t kw[256], aw[256];
    int kwl = kr_gsst_name_wire(key_name, kw, sizeof(kw));
    int awl = kr_gsst_name_wire(KR_GSST_ALG, aw, sizeof(aw));
    int rc = kr_gsst_split(wire, len, t, body, body_len, &why);
    if (rc < 0) {
        snprintf(err, errlen, "malformed reply (%s)", why);
        return rc;
    }
    if (rc == 0) {
        snprintf(err, errlen, "the reply is not signed");
        return KR_ENOENT;
    }
    char want[KR_DNS_NAME_MAX];
    size_t zero = 0;
    if (kwl < 0 || awl < 0 || kr_gsst_name_read(kw, (size_t)kwl, &zero, want) != 0 ||
        strcmp(t->key_name, want) != 0 || strcmp(t->algorithm, KR_GSST_ALG) != 0) {
        snprintf(err, errlen, "the reply is signed with another key or algorithm (%.80s %.40s)",
                 t->key_name, t->algorithm);
        rc = KR_EINVAL;
        goto fail;
    }
    t->samba_form = false;
    rc = try_form(t, false, kw, (size_t)kwl, aw, (size_t)awl, req_mac, req_mac_len, *body,
                  *body_len, vf, ctx);
    if (rc != 0) {
        rc = try_form(t, true, kw, (size_t)kwl, aw, (size_t)awl, req_mac, req_mac_len, *body,
                      *body_len, vf, ctx);
        t->samba_form = rc == 0;
    }
    if (rc != 0) {
        snprintf(err, errlen,
                 "the reply's GSS-TSIG MAC does not verify (a forged or altered "
                 "reply, or a broken security context)");
        rc = KR_ECRYPTO;
        goto fail;
    }
    int64_t d = t->time - now;
    if (d > (int64_t)t->fudge || -d > (int64_t)t->fudge) {
        snprintf(err, errlen,
                 "the reply's time differs from our clock by %lld s (more than its fudge of %u "
                 "s): clock skew, synchronise both clocks (NTP)",
                 (long long)d, t->fudge);
        rc = KR_ETIMEDOUT;
        goto fail;
    }
    return 0;
fail:
    free(*body);
    *body = NULL;
    return rc;
}
