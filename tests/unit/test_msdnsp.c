/*
 * test_msdnsp.c - the MS-DNSP dnsRecord decoder (src/dnsclient/msdnsp.c): golden
 * vectors built byte by byte from the MS-DNSP specification (2.3.2.2
 * DNS_RPC_RECORD, 2.2.2.2.2 DNS_COUNT_NAME) and values captured from a
 * Samba AD DC over LDAP, every truncation of each is a clean KR_EMALF, and
 * a few broken values say why.
 */
#include <CUnit/CUnit.h>

#include <stdlib.h>
#include <string.h>

#include "dnsclient/msdnsp.h"
#include "kmsrelay/err.h"
#include "testutil.h"

#define OWNER "_vlmcs._tcp.corp.test."

/* SRV 0 100 1688 kms1.corp.test., TTL 600, serial 7, timestamp 0 (static). */
static const uint8_t srv[] = {
    24, 0, 33, 0,   5,   240, 0,   0, 7,   0,   0,   0,   0, 0,   2,   88,  0,   0,
    0,  0, 0,  0,   0,   0,   0,   0, 0,   100, 6,   152, /* prio 0, weight 100, port 1688 */
    16, 3, 4,  'k', 'm', 's', '1', 4, 'c', 'o', 'r', 'p', 4, 't', 'e', 's', 't', 0};
/* A 127.0.0.1, TTL 3600, dynamic (timestamp 3700000 hours). */
static const uint8_t a[] = {4,  0,  1, 0, 5, 240, 0,    0,    1,    0, 0,   0, 0, 0,
                            14, 16, 0, 0, 0, 0,   0x20, 0x75, 0x38, 0, 127, 0, 0, 1};
/* TXT "kmsrelay=1 owner=it", TTL 300. */
static const uint8_t txt[] = {20,  0,   16,  0,   5,   240, 0,   0,   1,   0,   0,
                              0,   0,   0,   1,   44,  0,   0,   0,   0,   0,   0,
                              0,   0,   19,  'k', 'm', 's', 'r', 'e', 'l', 'a', 'y',
                              '=', '1', ' ', 'o', 'w', 'n', 'e', 'r', '=', 'i', 't'};
/* A tombstone: type 0, 8-byte FILETIME. */
static const uint8_t tomb[] = {8, 0, 0, 0, 5, 240, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,
                               0, 0, 0, 0, 0, 0,   0, 0, 1, 2, 3, 4, 5, 6, 7, 8};

static void t_golden(void)
{
    struct kr_dns_rr rr;
    struct kr_msdnsp_meta m;
    const char *why = NULL;
    CU_ASSERT_EQUAL_FATAL(kr_msdnsp_decode(srv, sizeof(srv), OWNER, &rr, &m, &why), 0);
    CU_ASSERT_EQUAL(rr.type, KR_DNS_SRV);
    CU_ASSERT_EQUAL(rr.ttl, 600);
    CU_ASSERT_EQUAL(rr.priority, 0);
    CU_ASSERT_EQUAL(rr.weight, 100);
    CU_ASSERT_EQUAL(rr.port, 1688);
    CU_ASSERT_STRING_EQUAL(rr.target, "kms1.corp.test.");
    CU_ASSERT_STRING_EQUAL(rr.owner, OWNER);
    CU_ASSERT_EQUAL(m.serial, 7);
    CU_ASSERT_EQUAL(m.rank, 240);
    CU_ASSERT_EQUAL(m.timestamp, 0);

    CU_ASSERT_EQUAL_FATAL(kr_msdnsp_decode(a, sizeof(a), "kms1.corp.test.", &rr, &m, &why), 0);
    CU_ASSERT_EQUAL(rr.type, KR_DNS_A);
    CU_ASSERT_EQUAL(rr.ttl, 3600);
    CU_ASSERT(memcmp(rr.addr, "\x7f\0\0\x01", 4) == 0);
    CU_ASSERT_EQUAL(m.timestamp, 0x387520);

    CU_ASSERT_EQUAL_FATAL(kr_msdnsp_decode(txt, sizeof(txt), OWNER, &rr, &m, &why), 0);
    CU_ASSERT_EQUAL(rr.type, KR_DNS_TXT);
    CU_ASSERT_STRING_EQUAL(rr.txt, "kmsrelay=1 owner=it");
    CU_ASSERT_EQUAL(rr.ttl, 300);

    CU_ASSERT_EQUAL(kr_msdnsp_decode(tomb, sizeof(tomb), OWNER, &rr, &m, &why), KR_ENOENT);
    CU_ASSERT_TRUE(m.tombstone);
}

/* Captured over LDAP from a Samba 4.17 AD DC (tests/integration/adlib.py)
 * after `nsupdate -g` added them: a dynamic SRV, a TXT marker, and the
 * tombstone of a deleted node (dNSTombstoned TRUE). */
static const uint8_t live_srv[] = {24, 0, 33, 0,   5,   240, 0,  0,   110, 0,   0,   0,
                                   0,  0, 2,  88,  0,   0,   0,  0,   28,  248, 56,  0,
                                   0,  0, 0,  100, 6,   152, 16, 3,   4,   107, 109, 115,
                                   49, 4, 99, 111, 114, 112, 4,  116, 101, 115, 116, 0};
static const uint8_t live_txt[] = {22,  0,   16,  0,   5,   240, 0,   0,   110, 0,   0,  0,
                                   0,   0,   2,   88,  0,   0,   0,   0,   28,  248, 56, 0,
                                   21,  107, 109, 115, 114, 101, 108, 97,  121, 61,  49, 32,
                                   111, 119, 110, 101, 114, 61,  103, 111, 108, 100};
static const uint8_t live_tomb[] = {8, 0, 0, 0, 5, 0, 0, 0, 110, 0,   0,   0,   0,   0,   0,   0,
                                    0, 0, 0, 0, 0, 0, 0, 0, 202, 150, 184, 219, 153, 130, 221, 1};

static void t_live(void)
{
    struct kr_dns_rr rr;
    struct kr_msdnsp_meta m;
    const char *why = NULL;
    CU_ASSERT_EQUAL_FATAL(kr_msdnsp_decode(live_srv, sizeof(live_srv), OWNER, &rr, &m, &why), 0);
    CU_ASSERT_EQUAL(rr.type, KR_DNS_SRV);
    CU_ASSERT_EQUAL(rr.ttl, 600);
    CU_ASSERT_EQUAL(rr.weight, 100);
    CU_ASSERT_EQUAL(rr.port, 1688);
    CU_ASSERT_STRING_EQUAL(rr.target, "kms1.corp.test.");
    CU_ASSERT_EQUAL(m.serial, 110);
    CU_ASSERT_EQUAL(m.timestamp, 0x38f81c); /* dynamic: hours since 1601 */
    CU_ASSERT_EQUAL_FATAL(kr_msdnsp_decode(live_txt, sizeof(live_txt), OWNER, &rr, &m, &why), 0);
    CU_ASSERT_STRING_EQUAL(rr.txt, "kmsrelay=1 owner=gold");
    CU_ASSERT_EQUAL(kr_msdnsp_decode(live_tomb, sizeof(live_tomb), OWNER, &rr, &m, &why),
                    KR_ENOENT);
    CU_ASSERT_TRUE(m.tombstone);
    CU_ASSERT_EQUAL(m.rank, 0);
}

static void truncations(const uint8_t *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exact size: ASan sees any overread */
        struct kr_dns_rr rr;
        struct kr_msdnsp_meta m;
        const char *why = NULL;
        memcpy(cut, v, k);
        CU_ASSERT_EQUAL(kr_msdnsp_decode(cut, k, OWNER, &rr, &m, &why), KR_EMALF);
        CU_ASSERT_PTR_NOT_NULL(why);
        free(cut);
    }
}

static void t_truncated(void)
{
    truncations(srv, sizeof(srv));
    truncations(a, sizeof(a));
    truncations(txt, sizeof(txt));
    truncations(tomb, sizeof(tomb));
}

static void t_broken(void)
{
    uint8_t b[sizeof(srv)];
    struct kr_dns_rr rr;
    struct kr_msdnsp_meta m;
    const char *why = NULL;
    memcpy(b, srv, sizeof(b));
    b[4] = 4; /* version */
    CU_ASSERT_EQUAL(kr_msdnsp_decode(b, sizeof(b), OWNER, &rr, &m, &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "version"));
    memcpy(b, srv, sizeof(b));
    b[31] = 4; /* label count larger than the name */
    CU_ASSERT_EQUAL(kr_msdnsp_decode(b, sizeof(b), OWNER, &rr, &m, &why), KR_EMALF);
    memcpy(b, srv, sizeof(b));
    b[32] = 60; /* label longer than the raw name */
    CU_ASSERT_EQUAL(kr_msdnsp_decode(b, sizeof(b), OWNER, &rr, &m, &why), KR_EMALF);
    memcpy(b, srv, sizeof(b));
    b[2] = 15; /* MX: not decoded */
    CU_ASSERT_EQUAL(kr_msdnsp_decode(b, sizeof(b), OWNER, &rr, &m, &why), KR_EUNSUP);
}

KR_SUITE(msdnsp)
{
    CU_pSuite s = CU_add_suite("msdnsp", NULL, NULL);
    CU_add_test(s, "golden dnsRecord values", t_golden);
    CU_add_test(s, "values captured from Samba", t_live);
    CU_add_test(s, "every truncation", t_truncated);
    CU_add_test(s, "broken values", t_broken);
}
