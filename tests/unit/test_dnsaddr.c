/*
 * test_dnsaddr.c - a host name's addresses (src/dnsclient/addr.c, issue
 * 14): how the A and AAAA answers join (order, TTL, absent versus a passing
 * failure), and a lookup against a dead resolver.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "dnsclient/addr.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"
#include "testutil.h"

static struct kr_dns_result answer(int rcode, struct kr_dns_rr *rrs, size_t n)
{
    struct kr_dns_result r;
    memset(&r, 0, sizeof(r));
    r.status = KR_DNS_OK;
    r.rcode = rcode;
    r.rrs = rrs;
    r.n_rrs = n;
    snprintf(r.server, sizeof(r.server), "127.0.0.1:53");
    return r;
}

static void rr_addr(struct kr_dns_rr *rr, uint32_t ttl, int family, const char *text)
{
    uint8_t a[16];
    CU_ASSERT_FATAL(inet_pton(family, text, a) == 1);
    CU_ASSERT_EQUAL_FATAL(kr_dns_rr_addr(rr, "kms1.example.test", ttl, family, a), 0);
}

static void text_of(const struct kr_dns_addrs *x, size_t i, char out[KR_ADDRSTRLEN])
{
    kr_addr_format((const struct sockaddr *)&x->addrs[i].ss, out);
}

static void t_join_order_ttl(void)
{
    struct kr_dns_rr a[3], aaaa[1];
    struct kr_dns_addrs x;
    char t[KR_ADDRSTRLEN];

    /* a CNAME then A records in rotated order; its TTL bounds the chain */
    CU_ASSERT_EQUAL_FATAL(
        kr_dns_rr_from_text(&a[0], "kms1.example.test. 30 IN CNAME kms-b.example.test.", NULL), 0);
    rr_addr(&a[1], 60, AF_INET, "10.0.0.9");
    rr_addr(&a[2], 60, AF_INET, "10.0.0.5");
    rr_addr(&aaaa[0], 7, AF_INET6, "fd00::5");
    struct kr_dns_result ra = answer(0, a, 3), r6 = answer(0, aaaa, 1);
    kr_dns_addrs_join(&ra, &r6, 1700, &x);
    CU_ASSERT_EQUAL_FATAL(x.n, 3);
    text_of(&x, 0, t);
    CU_ASSERT_STRING_EQUAL(t, "10.0.0.5:1700");
    text_of(&x, 1, t);
    CU_ASSERT_STRING_EQUAL(t, "10.0.0.9:1700");
    text_of(&x, 2, t);
    CU_ASSERT_STRING_EQUAL(t, "[fd00::5]:1700");
    CU_ASSERT_EQUAL(x.ttl, 7);
    CU_ASSERT_FALSE(x.absent);

    /* a TTL of 0 stays 0 (the caller's floor deals with it) */
    struct kr_dns_rr z[1], l6[1];
    rr_addr(&z[0], 0, AF_INET, "10.0.0.7");
    rr_addr(&l6[0], 60, AF_INET6, "fd00::7");
    struct kr_dns_result rz = answer(0, z, 1), rl6 = answer(0, l6, 1);
    kr_dns_addrs_join(&rz, &rl6, 1700, &x);
    CU_ASSERT_EQUAL(x.n, 2);
    CU_ASSERT_EQUAL(x.ttl, 0);
    kr_dns_addrs_join(&rl6, &rz, 1700, &x);
    CU_ASSERT_EQUAL(x.ttl, 0);

    /* the same answer in the other order joins the same way */
    struct kr_dns_rr b[2] = {a[2], a[1]};
    struct kr_dns_result rb = answer(0, b, 2);
    kr_dns_addrs_join(&rb, &r6, 1700, &x);
    text_of(&x, 0, t);
    CU_ASSERT_STRING_EQUAL(t, "10.0.0.5:1700");
    CU_ASSERT_EQUAL(x.ttl, 7);
}

static void t_join_failures(void)
{
    struct kr_dns_rr a[1], soa;
    struct kr_dns_addrs x;

    rr_addr(&a[0], 2, AF_INET, "127.0.0.2");
    CU_ASSERT_EQUAL_FATAL(kr_dns_rr_from_text(&soa,
                                              "example.test. 3600 IN SOA ns1.example.test. "
                                              "h.example.test. 7 1 2 3 300",
                                              NULL),
                          0);
    /* NXDOMAIN on both: absent, negative TTL min(SOA TTL, MINIMUM) */
    struct kr_dns_result nx = answer(3, NULL, 0);
    nx.auth = &soa;
    nx.n_auth = 1;
    kr_dns_addrs_join(&nx, &nx, 1688, &x);
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT(x.absent);
    CU_ASSERT_EQUAL(x.ttl, 300);
    CU_ASSERT_PTR_NOT_NULL(strstr(x.message, "NXDOMAIN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(x.message, "127.0.0.1:53"));

    /* NODATA on both: absent too */
    struct kr_dns_result nodata = answer(0, NULL, 0);
    kr_dns_addrs_join(&nodata, &nodata, 1688, &x);
    CU_ASSERT(x.absent);
    CU_ASSERT_PTR_NOT_NULL(strstr(x.message, "no A or AAAA record"));

    /* one timed out, the other NODATA: a passing failure, not absent */
    struct kr_dns_result dead = answer(-1, NULL, 0);
    dead.status = KR_DNS_E_NET;
    snprintf(dead.message, sizeof(dead.message), "no answer from 127.0.0.1:53 within 1s");
    kr_dns_addrs_join(&nodata, &dead, 1688, &x);
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT_FALSE(x.absent);
    CU_ASSERT_EQUAL(x.ttl, 0);
    CU_ASSERT_STRING_EQUAL(x.message, "no answer from 127.0.0.1:53 within 1s");

    /* an A answer stands when the AAAA query failed */
    struct kr_dns_result ra = answer(0, a, 1);
    kr_dns_addrs_join(&ra, &dead, 1688, &x);
    CU_ASSERT_EQUAL(x.n, 1);
    CU_ASSERT_EQUAL(x.ttl, 2);
    CU_ASSERT_FALSE(x.absent);
}

/* Against a loopback port nobody listens on: one callback, a clear
 * message, nothing absent (a dead resolver says nothing about the name). */
static void t_lookup_dead_resolver(void)
{
    struct kr_addr srv;
    struct kr_dns_addrs x;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    close(fd); /* nothing listens there now */
    memset(&srv, 0, sizeof(srv));
    memcpy(&srv.ss, &sin, sizeof(sin));
    srv.len = sizeof(sin);
    struct kr_dns_servers s = {.addrs = &srv, .n = 1, .timeout_ms = 500, .recursion = true};
    CU_ASSERT_EQUAL_FATAL(kr_dns_lookup_addrs_sync(&s, "kms1.example.test", 1688, &x), 0);
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT_FALSE(x.absent);
    CU_ASSERT(x.message[0] != '\0');
    CU_ASSERT_EQUAL(kr_dns_lookup_addrs_sync(&s, NULL, 1688, &x), KR_EINVAL);
}

KR_SUITE(dnsaddr)
{
    CU_pSuite s = CU_add_suite("dnsaddr", NULL, NULL);
    CU_add_test(s, "join: order and TTL", t_join_order_ttl);
    CU_add_test(s, "join: absent and passing failures", t_join_failures);
    CU_add_test(s, "lookup: dead resolver", t_lookup_dead_resolver);
}
