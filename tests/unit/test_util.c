/* test_util.c - hex, GUID text and error strings (src/util). */
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/csv.h"
#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/log.h"
#include "kmsrelay/netaddr.h"
#include "testutil.h"

static void test_hex(void)
{
    uint8_t b[8];
    CU_ASSERT_EQUAL(kr_hex_decode("0a0B ff:10", b, sizeof(b)), 4);
    CU_ASSERT(b[0] == 0x0a && b[1] == 0x0b && b[2] == 0xff && b[3] == 0x10);
    char s[17];
    kr_hex_encode(b, 4, s);
    CU_ASSERT_STRING_EQUAL(s, "0a0bff10");
    CU_ASSERT_EQUAL(kr_hex_decode("abc", b, sizeof(b)), KR_EMALF);
    CU_ASSERT_EQUAL(kr_hex_decode("a b", b, sizeof(b)), KR_EMALF);
    CU_ASSERT_EQUAL(kr_hex_decode("zz", b, sizeof(b)), KR_EMALF);
    CU_ASSERT_EQUAL(kr_hex_decode("000102", b, 2), KR_ENOSPC);
}

static void test_guid(void)
{
    /* kms-protocol.md section 2: the documented wire example. */
    static const uint8_t wire[16] = {0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x43,
                                     0x84, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x54};
    uint8_t g[16];
    CU_ASSERT_EQUAL(kr_guid_parse("11111111-2222-4333-8444-555555555554", g), 0);
    CU_ASSERT_EQUAL(memcmp(g, wire, 16), 0);
    CU_ASSERT_EQUAL(kr_guid_parse("{11111111-2222-4333-8444-555555555554}", g), 0);
    char s[KR_GUID_STRLEN];
    kr_guid_format(wire, s);
    CU_ASSERT_STRING_EQUAL(s, "11111111-2222-4333-8444-555555555554");
    /* every field's byte order, and a round trip of random GUIDs */
    static const uint8_t mixed[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                      0x09, 0x0a, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54};
    kr_guid_format(mixed, s);
    CU_ASSERT_STRING_EQUAL(s, "04030201-0605-0807-090a-abcdef103254");
    uint32_t x = 2463534242u;
    for (int k = 0; k < 200; k++) {
        uint8_t r[16];
        for (int i = 0; i < 16; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            r[i] = (uint8_t)x;
        }
        kr_guid_format(r, s);
        CU_ASSERT_EQUAL(strlen(s), 36);
        CU_ASSERT(kr_guid_parse(s, g) == 0 && memcmp(g, r, 16) == 0);
    }
    CU_ASSERT_EQUAL(kr_guid_parse("11111111-2222-4333-8444-55555555555", g), KR_EMALF);
    CU_ASSERT_EQUAL(kr_guid_parse("11111111x2222-4333-8444-555555555554", g), KR_EMALF);
    CU_ASSERT_EQUAL(kr_guid_parse("1111111g-2222-4333-8444-555555555554", g), KR_EMALF);
    CU_ASSERT(!kr_guid_is_zero(wire));
    memset(g, 0, 16);
    CU_ASSERT(kr_guid_is_zero(g));
}

static void test_cursors(void)
{
    uint8_t buf[6] = {1, 2, 3, 4, 5, 6};
    struct kr_rd r = kr_rd_init(buf, sizeof(buf));
    CU_ASSERT_EQUAL(kr_rd_u32(&r), 0x04030201u);
    CU_ASSERT_EQUAL(kr_rd_u16(&r), 0x0605);
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_EQUAL(kr_rd_u8(&r), 0);
    CU_ASSERT_EQUAL(r.err, KR_EMORE);
    uint8_t out[3];
    struct kr_wr w = kr_wr_init(out, sizeof(out));
    kr_wr_u16(&w, 0x0201);
    kr_wr_u16(&w, 0x0403);
    CU_ASSERT_EQUAL(w.err, KR_ENOSPC);
    CU_ASSERT_STRING_EQUAL(kr_strerror(KR_EMORE), "need more bytes");
}

static void test_addr(void)
{
    struct kr_addr a;
    char s[KR_ADDRSTRLEN];
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_addr_parse("127.0.0.1:1688", 0, &a, &why), 0);
    kr_addr_format((struct sockaddr *)&a.ss, s);
    CU_ASSERT_STRING_EQUAL(s, "127.0.0.1:1688");
    CU_ASSERT_EQUAL(kr_addr_parse("[::1]:31688", 0, &a, &why), 0);
    kr_addr_format((struct sockaddr *)&a.ss, s);
    CU_ASSERT_STRING_EQUAL(s, "[::1]:31688");
    CU_ASSERT_EQUAL(kr_addr_port((struct sockaddr *)&a.ss), 31688);
    CU_ASSERT_EQUAL(kr_addr_parse("1688", AF_INET6, &a, &why), 0);
    kr_addr_format((struct sockaddr *)&a.ss, s);
    CU_ASSERT_STRING_EQUAL(s, "[::]:1688");
    CU_ASSERT_EQUAL(kr_addr_parse("::1:1688", 0, &a, &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(why);
    CU_ASSERT_EQUAL(kr_addr_parse("127.0.0.1:65536", 0, &a, &why), KR_EMALF);
    CU_ASSERT_EQUAL(kr_addr_parse("127.0.0.1:", 0, &a, &why), KR_EMALF);
    CU_ASSERT_EQUAL(kr_addr_parse("kms.example:1688", 0, &a, &why), KR_EMALF);
}

static void put_buf(void *ctx, const char *p, size_t n)
{
    strncat((char *)ctx, p, n);
}

static const char *csv(const char *in, bool guard)
{
    static char out[256];
    out[0] = '\0';
    kr_csv_field(in, guard, put_buf, out);
    return out;
}

static void test_csv(void)
{
    CU_ASSERT_STRING_EQUAL(csv("pc-1.example.test", false), "pc-1.example.test");
    CU_ASSERT_STRING_EQUAL(csv(NULL, false), "");
    CU_ASSERT_STRING_EQUAL(csv("a,b", false), "\"a,b\"");
    CU_ASSERT_STRING_EQUAL(csv("say \"hi\"", false), "\"say \"\"hi\"\"\"");
    CU_ASSERT_STRING_EQUAL(csv("two\r\nlines", false), "\"two\r\nlines\"");
    /* the CSV-injection guard, alone and with quoting */
    CU_ASSERT_STRING_EQUAL(csv("=cmd()", true), "'=cmd()");
    CU_ASSERT_STRING_EQUAL(csv("=cmd()", false), "=cmd()");
    CU_ASSERT_STRING_EQUAL(csv("@SUM(A1,A2)", true), "\"'@SUM(A1,A2)\"");
    CU_ASSERT_STRING_EQUAL(csv("-1", true), "'-1");
    CU_ASSERT_STRING_EQUAL(csv("pc=1", true), "pc=1");
}

/* Rate-limited warnings: a burst of 20, then nothing until tokens come
 * back (5 a second), and the next line written says how many were dropped. */
static void test_log_bucket(void)
{
    struct kr_log_bucket b = {0};
    uint64_t dropped = 99;
    for (int i = 0; i < 20; i++)
        CU_ASSERT(kr_log_allowed(&b, &dropped));
    CU_ASSERT_EQUAL(dropped, 0);
    CU_ASSERT(!kr_log_allowed(&b, &dropped));
    CU_ASSERT(!kr_log_allowed(&b, &dropped));
    b.at_us -= 1000 * 1000; /* a second later: 5 tokens back */
    CU_ASSERT(kr_log_allowed(&b, &dropped));
    CU_ASSERT_EQUAL(dropped, 2);
    struct kr_log_bucket other = {0}; /* buckets are independent */
    CU_ASSERT(kr_log_allowed(&other, &dropped));
    CU_ASSERT_EQUAL(dropped, 0);
}

KR_SUITE(util)
{
    CU_pSuite s = CU_add_suite("util", NULL, NULL);
    CU_add_test(s, "hex", test_hex);
    CU_add_test(s, "guid", test_guid);
    CU_add_test(s, "cursors", test_cursors);
    CU_add_test(s, "addr", test_addr);
    CU_add_test(s, "csv", test_csv);
    CU_add_test(s, "log_bucket", test_log_bucket);
}
