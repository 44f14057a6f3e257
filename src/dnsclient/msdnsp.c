/*
 * msdnsp.c - MS-DNSP dnsRecord (DNS_RPC_RECORD) decoder (see msdnsp.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsclient/msdnsp.h"
#include "kmsrelay/err.h"

#define HDR 24

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* DNS_COUNT_NAME: cchNameLength u8 (bytes of RawName), LabelCount u8,
 * RawName (length-prefixed labels ending with a 0 byte). */
static int count_name(const uint8_t *p, size_t n, char out[KR_DNS_NAME_MAX], const char **why)
{
    if (n < 2)
        return *why = "SRV target name truncated", KR_EMALF;
    size_t raw = p[0], labels = p[1], off = 2, o = 0;
    if (raw > n - 2)
        return *why = "SRV target name longer than the record", KR_EMALF;
    for (size_t l = 0; l < labels; l++) {
        if (off >= 2 + raw)
            return *why = "SRV target has fewer labels than it says", KR_EMALF;
        size_t ll = p[off++];
        if (ll == 0 || ll > 63 || off + ll > 2 + raw || o + ll + 2 >= KR_DNS_NAME_MAX)
            return *why = "SRV target label out of bounds", KR_EMALF;
        for (size_t k = 0; k < ll; k++) {
            char c = (char)p[off + k];
            if (c == '.' || c == '\\' || (unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f)
                return *why = "SRV target label has a character we do not accept", KR_EMALF;
            out[o++] = c;
        }
        out[o++] = '.';
        off += ll;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = 0;
    return 0;
}

static int txt(const uint8_t *d, size_t n, const char *owner, uint32_t ttl, struct kr_dns_rr *rr,
               const char **why)
{
    char text[KR_DNS_TXT_MAX];
    size_t off = 0, o = 0;
    /* kmsrelay's markers are one string; several are joined as TXT does. */
    while (off < n) {
        size_t l = d[off++];
        if (off + l > n)
            return *why = "TXT string longer than the record", KR_EMALF;
        for (size_t k = 0; k < l; k++) {
            if (o + 1 >= sizeof(text))
                return *why = "TXT text too long", KR_EMALF;
            char c = (char)d[off + k];
            text[o++] = (c == '"' || c == '\\' || (unsigned char)c < 0x20) ? '?' : c;
        }
        off += l;
    }
    text[o] = 0;
    if (o > 255)
        return *why = "TXT text too long", KR_EMALF;
    if (kr_dns_rr_txt(rr, owner, ttl, text) != 0)
        return *why = "TXT record rejected", KR_EMALF;
    return 0;
}

int kr_msdnsp_decode(const uint8_t *buf, size_t len, const char *owner, struct kr_dns_rr *rr,
                     struct kr_msdnsp_meta *meta, const char **why)
{
    memset(meta, 0, sizeof(*meta));
    if (!buf || len < HDR)
        return *why = "shorter than the 24-byte DNS_RPC_RECORD header", KR_EMALF;
    size_t dl = le16(buf);
    meta->type = le16(buf + 2);
    meta->version = buf[4];
    meta->rank = buf[5];
    meta->flags = le16(buf + 6);
    meta->serial = le32(buf + 8);
    meta->ttl = be32(buf + 12);
    meta->timestamp = le32(buf + 20);
    if (meta->version != 5)
        return *why = "unknown DNS_RPC_RECORD version (expected 5)", KR_EMALF;
    if (len - HDR != dl)
        return *why = "DataLength does not match the value's size", KR_EMALF;
    const uint8_t *d = buf + HDR;
    char target[KR_DNS_NAME_MAX];
    switch (meta->type) {
    case 0:
        meta->tombstone = true;
        return dl == 8 ? KR_ENOENT : (*why = "tombstone of the wrong size", KR_EMALF);
    case KR_DNS_A:
    case KR_DNS_AAAA:
        if (dl != (meta->type == KR_DNS_A ? 4u : 16u))
            return *why = "address record of the wrong size", KR_EMALF;
        if (kr_dns_rr_addr(rr, owner, meta->ttl, meta->type == KR_DNS_A ? AF_INET : AF_INET6, d))
            return *why = "bad owner name", KR_EMALF;
        return 0;
    case KR_DNS_SRV:
        if (dl < 6)
            return *why = "SRV data truncated", KR_EMALF;
        if (count_name(d + 6, dl - 6, target, why) != 0)
            return KR_EMALF;
        if (kr_dns_rr_srv(rr, owner, meta->ttl, (uint16_t)(d[0] << 8 | d[1]),
                          (uint16_t)(d[2] << 8 | d[3]), (uint16_t)(d[4] << 8 | d[5]), target))
            return *why = "SRV record rejected (bad owner or target)", KR_EMALF;
        return 0;
    case KR_DNS_TXT:
        return txt(d, dl, owner, meta->ttl, rr, why);
    default:
        return *why = "record type not decoded", KR_EUNSUP;
    }
}
