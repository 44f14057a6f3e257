/* hex.c - hex text <-> bytes, for captures, logs and test vectors. */
#include "kmsrelay/bytes.h"

void kr_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int kr_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long kr_hex_decode(const char *in, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == ':' || *p == '\r' || *p == '\n') {
            if (hi >= 0)
                return KR_EMALF; /* a separator inside a byte */
            continue;
        }
        int v = kr_hex_digit(*p);
        if (v < 0)
            return KR_EMALF;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n >= cap)
            return KR_ENOSPC;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi >= 0 ? KR_EMALF : (long)n;
}
