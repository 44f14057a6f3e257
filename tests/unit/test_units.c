/* test_units.c - duration and size parsing and formatting (src/util/units.c). */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/err.h"
#include "kmsrelay/units.h"
#include "testutil.h"

#define S 1000ull
#define MIN (60 * S)
#define H (60 * MIN)
#define D (24 * H)
#define W (7 * D)

struct ok_case {
    const char *text;
    uint64_t value;
};

struct bad_case {
    const char *text;
    int err;
};

static const struct ok_case dur_ok[] = {
    {"10s", 10 * S},
    {"5m", 5 * MIN},
    {"45d", 45 * D},
    {"250ms", 250},
    {"2h", 2 * H},
    {"3w", 3 * W},
    {"10", 10 * S}, /* a bare number is seconds */
    {"0", 0},
    {"0s", 0},
    {"0ms", 0},
    {"1h30m", H + 30 * MIN},
    {"2d12h", 2 * D + 12 * H},
    {"1s500ms", 1500},
    {"1w2d3h4m5s6ms", W + 2 * D + 3 * H + 4 * MIN + 5 * S + 6},
    {"90m", 90 * MIN}, /* parts need not be normalised */
    {"0007s", 7 * S},
    {"  10s", 10 * S},
    {"10s \t\n", 10 * S},
    {"\t 1h30m \r\n", H + 30 * MIN},
    {"18446744073709551615ms", UINT64_MAX},
    {"18446744073709551s615ms", UINT64_MAX},
    {"213503982334d14h25m51s615ms", UINT64_MAX},
    {"18446744073709551", 18446744073709551000ull}, /* bare seconds, largest that fits */
};

static const struct bad_case dur_bad[] = {
    {"", KR_EMALF},
    {"   ", KR_EMALF},
    {"-5s", KR_EMALF},
    {"+5s", KR_EMALF},
    {"s", KR_EMALF},
    {"10x", KR_EMALF},
    {"10S", KR_EMALF}, /* units are lower case */
    {"10M", KR_EMALF}, /* months? no */
    {"10sec", KR_EMALF},
    {"10 s", KR_EMALF}, /* whitespace inside */
    {"1h 30m", KR_EMALF},
    {"1.5h", KR_EMALF},
    {"1,5h", KR_EMALF},
    {"1h30", KR_EMALF}, /* the forgotten unit */
    {"30m1h", KR_EMALF},
    {"1m30m", KR_EMALF},
    {"1s1s", KR_EMALF},
    {"1h-", KR_EMALF},
    {"1e3s", KR_EMALF},
    {"0x10s", KR_EMALF},
    {"18446744073709551616ms", KR_ETOOBIG},
    {"99999999999999999999999ms", KR_ETOOBIG},
    {"18446744073709552", KR_ETOOBIG}, /* bare seconds * 1000 overflows */
    {"40000000000w", KR_ETOOBIG},
    {"213503982334d14h25m51s615ms1", KR_EMALF},
    {"213503982334d14h25m51s616ms", KR_ETOOBIG}, /* the sum overflows */
};

static const struct ok_case size_ok[] = {
    {"0", 0},
    {"512", 512},
    {"512B", 512},
    {"512b", 512},
    {"1K", 1024},
    {"1KB", 1024},
    {"1KiB", 1024},
    {"1kib", 1024},
    {"4k", 4096},
    {"256M", 256ull << 20},
    {"256MB", 256ull << 20},
    {"256MiB", 256ull << 20},
    {"256m", 256ull << 20},
    {"2G", 2ull << 30},
    {"2GB", 2ull << 30},
    {"2GiB", 2ull << 30},
    {"3T", 3ull << 40},
    {"3TB", 3ull << 40},
    {"3TiB", 3ull << 40},
    {" 64M\t", 64ull << 20},
    {"18446744073709551615", UINT64_MAX},
    {"18446744073709551615B", UINT64_MAX},
    {"16777215T", 16777215ull << 40},
};

static const struct bad_case size_bad[] = {
    {"", KR_EMALF},
    {" \t ", KR_EMALF},
    {"-1M", KR_EMALF},
    {"+1M", KR_EMALF},
    {"M", KR_EMALF},
    {"1X", KR_EMALF},
    {"1P", KR_EMALF},
    {"1MM", KR_EMALF},
    {"1Mi", KR_EMALF},
    {"1BK", KR_EMALF},
    {"1 M", KR_EMALF},
    {"1.5G", KR_EMALF},
    {"1M1K", KR_EMALF}, /* sizes are not compound */
    {"18446744073709551616", KR_ETOOBIG},
    {"16777216T", KR_ETOOBIG},
    {"17179869184G", KR_ETOOBIG},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check_ok(const struct ok_case *c, size_t n,
                     int (*parse)(const char *, uint64_t *, const char **))
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 12345;
        const char *why = NULL;
        int rc = parse(c[i].text, &v, &why);
        if (rc != 0 || v != c[i].value)
            fprintf(stderr, "\n  \"%s\": rc %d (%s), value %llu\n", c[i].text, rc, why ? why : "-",
                    (unsigned long long)v);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(v, c[i].value);
    }
}

static void check_bad(const struct bad_case *c, size_t n,
                      int (*parse)(const char *, uint64_t *, const char **))
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 12345;
        const char *why = NULL;
        int rc = parse(c[i].text, &v, &why);
        if (rc != c[i].err)
            fprintf(stderr, "\n  \"%s\": rc %d, want %d\n", c[i].text, rc, c[i].err);
        CU_ASSERT_EQUAL(rc, c[i].err);
        CU_ASSERT_EQUAL(v, 12345); /* untouched on failure */
        CU_ASSERT_PTR_NOT_NULL(why);
        CU_ASSERT(why && why[0] != '\0');
        /* why is optional */
        CU_ASSERT_EQUAL(parse(c[i].text, &v, NULL), c[i].err);
    }
}

static void test_duration_valid(void)
{
    check_ok(dur_ok, N(dur_ok), kr_parse_duration_ms);
}

static void test_duration_invalid(void)
{
    check_bad(dur_bad, N(dur_bad), kr_parse_duration_ms);
    uint64_t v;
    CU_ASSERT_EQUAL(kr_parse_duration_ms(NULL, &v, NULL), KR_EINVAL);
}

/* The reasons are what an operator reads: check a few say the right thing. */
static void test_why(void)
{
    uint64_t v;
    const char *why = NULL;
    kr_parse_duration_ms("-5s", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "negative"));
    kr_parse_duration_ms("", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty"));
    kr_parse_duration_ms("5y", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown duration unit"));
    kr_parse_duration_ms("99999999999999999999s", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "too large"));
    kr_parse_duration_ms("1.5h", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "fraction"));
    kr_parse_duration_ms("1h30", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "needs a unit"));
    kr_parse_duration_ms("10 s", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "whitespace"));
    kr_parse_size("1Q", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown size unit"));
    kr_parse_size("99999999999T", &v, &why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "too large"));
}

static void test_size_valid(void)
{
    check_ok(size_ok, N(size_ok), kr_parse_size);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(kr_parse_size("1M ", &v, NULL), 0);
    CU_ASSERT_EQUAL(v, 1ull << 20);
}

static void test_size_invalid(void)
{
    check_bad(size_bad, N(size_bad), kr_parse_size);
    uint64_t v;
    CU_ASSERT_EQUAL(kr_parse_size(NULL, &v, NULL), KR_EINVAL);
}

static void test_format(void)
{
    static const struct ok_case dur[] = {
        {"0s", 0},
        {"250ms", 250},
        {"10s", 10 * S},
        {"5m", 5 * MIN},
        {"1h30m", H + 30 * MIN},
        {"45d", 45 * D},
        {"2w", 14 * D},
        {"1s500ms", 1500},
        {"1d1ms", D + 1},
        {"213503982334d14h25m51s615ms", UINT64_MAX},
    };
    static const struct ok_case sz[] = {
        {"0B", 0},
        {"1000B", 1000},
        {"1K", 1024},
        {"1536K", 1536 * 1024},
        {"256M", 256 << 20},
        {"1G", 1ull << 30},
        {"3T", 3ull << 40},
        {"1025B", 1025},
        {"18446744073709551615B", UINT64_MAX},
        {"16777215T", 16777215ull << 40},
    };
    char buf[64];
    for (size_t i = 0; i < N(dur); i++) {
        kr_format_duration(dur[i].value, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, dur[i].text);
        CU_ASSERT(strlen(buf) < KR_DURATION_STRLEN);
    }
    for (size_t i = 0; i < N(sz); i++) {
        kr_format_size(sz[i].value, buf, sizeof(buf));
        CU_ASSERT_STRING_EQUAL(buf, sz[i].text);
        CU_ASSERT(strlen(buf) < KR_SIZE_STRLEN);
    }
    /* Truncation like snprintf, always terminated. */
    kr_format_duration(H + 30 * MIN, buf, 3);
    CU_ASSERT_STRING_EQUAL(buf, "1h");
    kr_format_size(256 << 20, buf, 1);
    CU_ASSERT_STRING_EQUAL(buf, "");
    kr_format_size(256 << 20, NULL, 0); /* no crash */
}

/* splitmix64: a fixed stream of test values, reproducible everywhere. */
static uint64_t next(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* format -> parse gives the value back, over edge values and random ones
 * with every magnitude (the shift makes small and unit-aligned values common). */
static void test_round_trip(void)
{
    uint64_t st = 42;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t r = next(&st), v;
        switch (i % 4) {
        case 0:
            v = r >> (r & 63);
            break;
        case 1:
            v = (r >> 40) * (i & 8 ? W : D);
            break;
        case 2:
            v = (r >> 44) << (10 * (1 + (r & 3)));
            break;
        default:
            v = (i < 8) ? UINT64_MAX - (uint64_t)i : r;
            break;
        }
        char d[KR_DURATION_STRLEN], s[KR_SIZE_STRLEN];
        uint64_t back_d = 0, back_s = 0;
        kr_format_duration(v, d, sizeof(d));
        kr_format_size(v, s, sizeof(s));
        if (kr_parse_duration_ms(d, &back_d, NULL) != 0 || back_d != v ||
            kr_parse_size(s, &back_s, NULL) != 0 || back_s != v) {
            if (bad++ < 5)
                fprintf(stderr, "\n  %llu -> \"%s\" / \"%s\"\n", (unsigned long long)v, d, s);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

KR_SUITE(units)
{
    CU_pSuite s = CU_add_suite("units", NULL, NULL);
    CU_add_test(s, "duration valid", test_duration_valid);
    CU_add_test(s, "duration invalid", test_duration_invalid);
    CU_add_test(s, "size valid", test_size_valid);
    CU_add_test(s, "size invalid", test_size_invalid);
    CU_add_test(s, "why texts", test_why);
    CU_add_test(s, "format", test_format);
    CU_add_test(s, "round trip", test_round_trip);
}
