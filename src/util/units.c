/* units.c - "10s", "1h30m", "256M": the one parser and formatter for
 * durations and sizes (syntax and contracts in kmsrelay/units.h). */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/units.h"

struct unit {
    const char *name;
    uint64_t mult;
};

/* Largest first: a compound duration must walk this table downwards. */
static const struct unit duration_units[] = {
    {"w", 7ull * 24 * 3600 * 1000},
    {"d", 24ull * 3600 * 1000},
    {"h", 3600ull * 1000},
    {"m", 60ull * 1000},
    {"s", 1000},
    {"ms", 1},
};
#define N_DURATION_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))
#define UNIT_SECONDS 4 /* index of "s": what a bare number means */

/* Matched case-insensitively; all multiples are binary (see units.h). */
static const struct unit size_units[] = {
    {"b", 1},
    {"k", 1ull << 10},
    {"kb", 1ull << 10},
    {"kib", 1ull << 10},
    {"m", 1ull << 20},
    {"mb", 1ull << 20},
    {"mib", 1ull << 20},
    {"g", 1ull << 30},
    {"gb", 1ull << 30},
    {"gib", 1ull << 30},
    {"t", 1ull << 40},
    {"tb", 1ull << 40},
    {"tib", 1ull << 40},
};
#define N_SIZE_UNITS (sizeof(size_units) / sizeof(size_units[0]))

/* Our own classes instead of <ctype.h>: no locale, no signed-char UB. */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Trims surrounding whitespace: [*begin, *end) is what is left. */
static void trim(const char *text, const char **begin, const char **end)
{
    const char *b = text, *e = text + strlen(text);
    while (b < e && is_space(*b))
        b++;
    while (e > b && is_space(e[-1]))
        e--;
    *begin = b;
    *end = e;
}

/* Reads the digits at *p into *out. Returns 0, KR_EMALF with no digit, or
 * KR_ETOOBIG on overflow. */
static int read_number(const char **p, const char *end, uint64_t *out, const char **why)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || !is_digit(*s))
        return kr_fail(why, KR_EMALF, "expected a number");
    for (; s < end && is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return kr_fail(why, KR_ETOOBIG, "number too large");
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

/* Explains what follows a number when it is not a unit letter. */
static int bad_after_number(char c, const char **why)
{
    if (c == '.' || c == ',')
        return kr_fail(why, KR_EMALF, "fractions are not supported: write \"1h30m\", not \"1.5h\"");
    if (is_space(c))
        return kr_fail(why, KR_EMALF, "whitespace inside a value: write \"10s\", not \"10 s\"");
    return kr_fail(why, KR_EMALF, "unexpected character after a number");
}

/* Checks the start of a value: the common reasons a value has no number. */
static int check_start(const char *b, const char *e, const char *empty_msg, const char **why)
{
    if (b == e)
        return kr_fail(why, KR_EMALF, empty_msg);
    if (*b == '-')
        return kr_fail(why, KR_EMALF, "negative values are not allowed");
    if (*b == '+')
        return kr_fail(why, KR_EMALF, "a value starts with a digit, not a sign");
    if (!is_digit(*b))
        return kr_fail(why, KR_EMALF, "a value starts with a digit");
    return 0;
}

int kr_parse_duration_ms(const char *text, uint64_t *out_ms, const char **why)
{
    if (!text || !out_ms)
        return kr_fail(why, KR_EINVAL, "no duration text");
    const char *p, *end;
    trim(text, &p, &end);
    int rc = check_start(p, end, "empty duration", why);
    if (rc)
        return rc;

    uint64_t total = 0;
    size_t next_unit = 0; /* the largest unit still allowed */
    int parts = 0;
    while (p < end) {
        uint64_t n;
        rc = read_number(&p, end, &n, why);
        if (rc)
            return rc == KR_ETOOBIG ? kr_fail(why, rc, "duration too large") : rc;
        size_t u;
        if (p == end) {
            /* A bare number is seconds, but only on its own: "1h30" is more
             * likely a forgotten "m" than thirty seconds. */
            if (parts > 0)
                return kr_fail(why, KR_EMALF, "every number in a compound duration needs a unit");
            u = UNIT_SECONDS;
        } else {
            if (!is_alpha(*p))
                return bad_after_number(*p, why);
            const char *w = p;
            while (p < end && is_alpha(*p))
                p++;
            size_t len = (size_t)(p - w);
            for (u = 0; u < N_DURATION_UNITS; u++)
                if (strlen(duration_units[u].name) == len &&
                    memcmp(duration_units[u].name, w, len) == 0)
                    break;
            if (u == N_DURATION_UNITS)
                return kr_fail(why, KR_EMALF, "unknown duration unit (use ms, s, m, h, d or w)");
            if (u < next_unit)
                return kr_fail(why, KR_EMALF,
                               "units must go from largest to smallest, each once (\"1h30m\")");
            if (p < end && !is_digit(*p))
                return bad_after_number(*p, why);
        }
        uint64_t mult = duration_units[u].mult;
        if (n > UINT64_MAX / mult || n * mult > UINT64_MAX - total)
            return kr_fail(why, KR_ETOOBIG, "duration too large");
        total += n * mult;
        next_unit = u + 1;
        parts++;
    }
    *out_ms = total;
    return 0;
}

int kr_parse_size(const char *text, uint64_t *out_bytes, const char **why)
{
    if (!text || !out_bytes)
        return kr_fail(why, KR_EINVAL, "no size text");
    const char *p, *end;
    trim(text, &p, &end);
    int rc = check_start(p, end, "empty size", why);
    if (rc)
        return rc;
    uint64_t n;
    rc = read_number(&p, end, &n, why);
    if (rc)
        return rc == KR_ETOOBIG ? kr_fail(why, rc, "size too large") : rc;
    uint64_t mult = 1;
    if (p < end) {
        if (!is_alpha(*p))
            return bad_after_number(*p, why);
        size_t len = (size_t)(end - p), u;
        for (u = 0; u < N_SIZE_UNITS; u++) {
            const char *name = size_units[u].name;
            if (strlen(name) != len)
                continue;
            size_t i = 0;
            while (i < len && lower(p[i]) == name[i])
                i++;
            if (i == len)
                break;
        }
        if (u == N_SIZE_UNITS)
            return kr_fail(why, KR_EMALF,
                           "unknown size unit (use B, K, M, G or T; KiB etc. also ok)");
        mult = size_units[u].mult;
    }
    if (n > UINT64_MAX / mult)
        return kr_fail(why, KR_ETOOBIG, "size too large");
    *out_bytes = n * mult;
    return 0;
}

/* Copies `s` into out[cap] like snprintf would: truncated, NUL-terminated. */
static void put(const char *s, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void kr_format_duration(uint64_t ms, char *out, size_t cap)
{
    char buf[KR_DURATION_STRLEN];
    const uint64_t week = duration_units[0].mult;
    if (ms == 0) {
        put("0s", out, cap);
        return;
    }
    if (ms % week == 0) {
        snprintf(buf, sizeof(buf), "%lluw", (unsigned long long)(ms / week));
        put(buf, out, cap);
        return;
    }
    size_t len = 0;
    for (size_t u = 1; u < N_DURATION_UNITS; u++) { /* days and smaller */
        uint64_t mult = duration_units[u].mult, n = ms / mult;
        ms %= mult;
        if (n == 0)
            continue;
        int w = snprintf(buf + len, sizeof(buf) - len, "%llu%s", (unsigned long long)n,
                         duration_units[u].name);
        if (w > 0)
            len += (size_t)w; /* KR_DURATION_STRLEN covers the worst case */
    }
    put(buf, out, cap);
}

void kr_format_size(uint64_t bytes, char *out, size_t cap)
{
    static const struct {
        char name;
        unsigned shift;
    } units[] = {{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}};
    char buf[KR_SIZE_STRLEN];
    snprintf(buf, sizeof(buf), "%lluB", (unsigned long long)bytes);
    for (size_t i = 0; bytes != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t mult = 1ull << units[i].shift;
        if (bytes % mult == 0) {
            snprintf(buf, sizeof(buf), "%llu%c", (unsigned long long)(bytes / mult), units[i].name);
            break;
        }
    }
    put(buf, out, cap);
}
