/*
 * text.c - the two text conversions KMS needs: UTF-16LE names (workstation,
 * ePID) to and from UTF-8, and FILETIME to and from Unix seconds.
 *
 * Invalid input never fails: it becomes U+FFFD, because these strings are
 * for logs and monitoring, and a hostile client must not be able to make a
 * request undecodable through its workstation name.
 */
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/kms.h"

#define REPLACEMENT 0xFFFDu
/* Seconds from 1601-01-01 to 1970-01-01, and FILETIME ticks per second. */
#define EPOCH_DIFF 11644473600LL
#define TICKS 10000000LL

int64_t kr_filetime_to_unix(uint64_t ft)
{
    return (int64_t)(ft / (uint64_t)TICKS) - EPOCH_DIFF;
}

uint64_t kr_unix_to_filetime(int64_t unix_seconds)
{
    if (unix_seconds < -EPOCH_DIFF)
        return 0;
    /* Unsigned, so that INT64_MAX + EPOCH_DIFF cannot overflow. */
    uint64_t s = (uint64_t)unix_seconds + (uint64_t)EPOCH_DIFF;
    if (s > UINT64_MAX / (uint64_t)TICKS)
        return UINT64_MAX;
    return s * (uint64_t)TICKS;
}

/* Bytes UTF-8 needs for code point cp. */
static size_t utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void put_utf8(char *o, uint32_t cp, size_t n)
{
    if (n == 1) {
        o[0] = (char)cp;
        return;
    }
    static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n - 1; i > 0; i--) {
        o[i] = (char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    o[0] = (char)(lead[n] | cp);
}

size_t kr_utf16_to_utf8(const uint16_t *in, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n && in[i] != 0; i++) {
        uint32_t cp = in[i];
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && in[i + 1] >= 0xDC00 &&
            in[i + 1] <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (in[i + 1] - 0xDC00u);
            i++;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = REPLACEMENT; /* lone surrogate */
        }
        size_t l = utf8_len(cp);
        if (l > cap - 1 - o)
            break; /* never a truncated sequence */
        put_utf8(out + o, cp, l);
        o += l;
    }
    out[o] = '\0';
    return o;
}

/* Decodes one UTF-8 sequence at s (NUL-terminated). Sets *cp (U+FFFD when
 * invalid: overlong, surrogate, above U+10FFFF, truncated or stray
 * continuation) and returns the bytes consumed (at least 1). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = REPLACEMENT;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* also stops at the NUL */
            *cp = REPLACEMENT;
            return i;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        v = REPLACEMENT;
    *cp = v;
    return n;
}

size_t kr_utf8_to_utf16(const char *in, uint16_t *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    while (*s) {
        uint32_t cp;
        size_t used = utf8_next(s, &cp);
        if (cp >= 0x10000) {
            if (cap - o < 2)
                break; /* never half a surrogate pair */
            cp -= 0x10000;
            out[o++] = (uint16_t)(0xD800 | (cp >> 10));
            out[o++] = (uint16_t)(0xDC00 | (cp & 0x3FF));
        } else {
            if (cap - o < 1)
                break;
            out[o++] = (uint16_t)cp;
        }
        s += used;
    }
    return o;
}
