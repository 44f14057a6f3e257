/*
 * termsafe.c - text from the network made safe for a terminal (see
 * kmsrelay/termsafe.h).
 */
#include <stdbool.h>
#include <string.h>

#include "kmsrelay/termsafe.h"

/* Length of a well-formed UTF-8 sequence at s (2..4), 0 if there is none. */
static size_t utf8_seq(const unsigned char *s)
{
    size_t n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (n == 0 || s[0] > 0xF4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

const char *kr_term_safe(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t o = 0;
    if (cap == 0)
        return "";
    while (*p) {
        char e[4 * 4 + 1];
        size_t n = 0, adv = 1, seq = *p >= 0x80 ? utf8_seq(p) : 0;
        /* C1 controls (U+0080..U+009F, e.g. CSI) act like ESC sequences too */
        bool c1 = seq == 2 && p[0] == 0xC2 && p[1] < 0xA0;
        if (*p == '\\') {
            e[n++] = '\\';
            e[n++] = '\\';
        } else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !seq) || c1) {
            for (size_t i = 0; i < (c1 ? 2u : 1u); i++) {
                e[n++] = '\\';
                e[n++] = 'x';
                e[n++] = hex[p[i] >> 4];
                e[n++] = hex[p[i] & 15];
            }
            adv = c1 ? 2 : 1;
        } else {
            adv = seq ? seq : 1;
            memcpy(e, p, adv);
            n = adv;
        }
        if (o + n >= cap)
            break; /* never a cut escape or character */
        memcpy(out + o, e, n);
        o += n;
        p += adv;
    }
    out[o] = '\0';
    return out;
}
