/*
 * precheck.c - a structural walk over a DNS message before ldns parses it.
 *
 * ldns_wire2pkt accepts a TSIG anywhere in the additional section (and
 * then silently drops what follows it, and leaks a second TSIG), and does
 * not look at bytes after the last record. TSIG's MAC is computed over the
 * message minus its last record, so a TSIG that is not last must never
 * reach the verifier. This walk gives those cases a clear reason.
 */
#include <stddef.h>
#include <stdint.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

#define T_TSIG 250

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Skips one (possibly compressed) name; the target of a pointer is not
 * followed here (ldns checks it). */
static int skip_name(const uint8_t *w, size_t len, size_t *pos, const char **why)
{
    size_t wire = 0;
    for (;;) {
        if (*pos >= len)
            return kr_fail(why, KR_EMALF, "a name runs past the end of the message");
        uint8_t b = w[*pos];
        if ((b & 0xC0) == 0xC0) {
            if (*pos + 2 > len)
                return kr_fail(why, KR_EMALF, "a compression pointer is cut off");
            *pos += 2;
            return 0;
        }
        if (b & 0xC0)
            return kr_fail(why, KR_EMALF, "a name uses an unknown label type");
        *pos += 1;
        if (b == 0)
            return 0;
        wire += (size_t)b + 1;
        if (wire > 255)
            return kr_fail(why, KR_EMALF, "a name is longer than 255 octets");
        *pos += b;
    }
}

int kr_dns_msg_precheck(const uint8_t *w, size_t len, const char **why)
{
    if (!w || len < 12)
        return kr_fail(why, KR_EMALF, "shorter than a DNS header (12 bytes)");
    size_t qd = be16(w + 4), an = be16(w + 6), ns = be16(w + 8), ar = be16(w + 10);
    size_t total = qd + an + ns + ar, pos = 12;
    /* Each question is at least 5 bytes, each RR at least 11. */
    if (12 + qd * 5 + (an + ns + ar) * 11 > len)
        return kr_fail(why, KR_EMALF, "the section counts do not fit in the message");
    for (size_t i = 0; i < total; i++) {
        int rc = skip_name(w, len, &pos, why);
        if (rc)
            return rc;
        if (i < qd) {
            if (pos + 4 > len)
                return kr_fail(why, KR_EMALF, "a question is cut off");
            pos += 4;
            continue;
        }
        if (pos + 10 > len)
            return kr_fail(why, KR_EMALF, "a record header is cut off");
        uint16_t type = be16(w + pos), rdlen = be16(w + pos + 8);
        pos += 10;
        if (pos + rdlen > len)
            return kr_fail(why, KR_EMALF, "a record's data runs past the end of the message");
        if (type == T_TSIG && i != total - 1)
            return kr_fail(why, KR_EMALF, "a TSIG record that is not the last record");
        pos += rdlen;
    }
    if (pos != len)
        return kr_fail(why, KR_EMALF, "bytes after the last record");
    return 0;
}
