/*
 * test_gss.c - RFC 3645 GSS-TSIG over wire bytes (src/dnsclient/gss_tsig.c)
 * without a KDC: the MIC is an HMAC-SHA256 stand-in, so what is tested is
 * exactly which bytes are covered. A reply with one altered byte in its
 * MAC, its time or its body is rejected; Samba's MAC form (no 2-byte length
 * before the request MAC) is accepted and flagged; a reply outside the
 * fudge is clock skew; every truncation of a signed reply is a clean error.
 */
#include <CUnit/CUnit.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss.h"
#include "dnsclient/gss_tsig.h"
#include "kmsrelay/err.h"
#include "testutil.h"

#define KEYNAME "12345.sig-dc1.corp.test."
#define NOW 1780000000

/* The stand-in MIC: HMAC-SHA256(prefix || data). A reply is "signed" by
 * kr_gsst_sign with the request MAC as prefix, which yields exactly the
 * reply digest the verifier builds. */
struct fake {
    uint8_t prefix[80];
    size_t prefix_len;
};

static int fake_mic(void *ctx, const uint8_t *d, size_t n, uint8_t *mic, size_t *len)
{
    struct fake *f = ctx;
    uint8_t *buf = malloc(f->prefix_len + n);
    unsigned int l = 0;
    memcpy(buf, f->prefix, f->prefix_len);
    memcpy(buf + f->prefix_len, d, n);
    HMAC(EVP_sha256(), "k3y", 3, buf, f->prefix_len + n, mic, &l);
    free(buf);
    *len = l;
    return 0;
}

static int fake_verify(void *ctx, const uint8_t *d, size_t n, const uint8_t *mic, size_t len)
{
    uint8_t m[64];
    size_t l = sizeof(m);
    fake_mic(ctx, d, n, m, &l);
    return l == len && memcmp(m, mic, l) == 0 ? 0 : KR_ECRYPTO;
}

/* A small UPDATE-like message: header + question corp.test SOA IN. */
static size_t message(uint8_t *w, uint16_t id, bool reply)
{
    static const uint8_t q[] = {4, 'c', 'o', 'r', 'p', 4, 't', 'e', 's', 't', 0, 0, 6, 0, 1};
    memset(w, 0, 12);
    w[0] = (uint8_t)(id >> 8), w[1] = (uint8_t)id;
    w[2] = (uint8_t)(0x28 | (reply ? 0x80 : 0)); /* opcode UPDATE */
    w[5] = 1;
    memcpy(w + 12, q, sizeof(q));
    return 12 + sizeof(q);
}

/* Signs a request, then a reply to it: rfc or Samba form, at time t. */
static void pair(bool samba, int64_t t, uint8_t **reply, size_t *reply_len, uint8_t *rmac,
                 size_t *rmac_len)
{
    uint8_t msg[64], *req = NULL;
    size_t n = message(msg, 0x4242, false), req_len;
    struct fake none = {{0}, 0};
    char err[256];
    *rmac_len = KR_GSST_MAC_MAX;
    CU_ASSERT_EQUAL_FATAL(kr_gsst_sign(msg, n, KEYNAME, NOW, 300, fake_mic, &none, &req, &req_len,
                                       rmac, rmac_len, err, sizeof(err)),
                          0);
    free(req);
    struct fake pre = {{0}, 0};
    if (!samba) {
        pre.prefix[0] = (uint8_t)(*rmac_len >> 8), pre.prefix[1] = (uint8_t)*rmac_len;
        pre.prefix_len = 2;
    }
    memcpy(pre.prefix + pre.prefix_len, rmac, *rmac_len);
    pre.prefix_len += *rmac_len;
    uint8_t mac[KR_GSST_MAC_MAX];
    size_t mac_len = sizeof(mac);
    n = message(msg, 0x4242, true);
    CU_ASSERT_EQUAL_FATAL(kr_gsst_sign(msg, n, KEYNAME, t, 300, fake_mic, &pre, reply, reply_len,
                                       mac, &mac_len, err, sizeof(err)),
                          0);
}

static int verify(const uint8_t *w, size_t n, const uint8_t *rmac, size_t rmac_len,
                  struct kr_gsst_tsig *t, char *err)
{
    struct fake none = {{0}, 0};
    uint8_t *body = NULL;
    size_t bl = 0;
    int rc = kr_gsst_verify(w, n, KEYNAME, rmac, rmac_len, NOW, fake_verify, &none, t, &body, &bl,
                            err, 256);
    if (rc == 0) {
        CU_ASSERT_PTR_NOT_NULL(body);
        CU_ASSERT_EQUAL(bl, 27);
        CU_ASSERT_EQUAL(body[11], 0); /* ARCOUNT back to 0 */
    } else {
        CU_ASSERT_PTR_NULL(body);
    }
    free(body);
    return rc;
}

static void t_sign_layout(void)
{
    uint8_t msg[64], *w = NULL, mac[KR_GSST_MAC_MAX], *body = NULL;
    size_t n = message(msg, 0x1234, false), wl, ml = sizeof(mac), bl;
    struct fake none = {{0}, 0};
    char err[256];
    CU_ASSERT_EQUAL_FATAL(kr_gsst_sign(msg, n, "12345.SIG-DC1.corp.test", NOW, 300, fake_mic, &none,
                                       &w, &wl, mac, &ml, err, sizeof(err)),
                          0);
    CU_ASSERT_EQUAL(w[11], 1); /* ARCOUNT counts the TSIG */
    struct kr_gsst_tsig t;
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_gsst_split(w, wl, &t, &body, &bl, &why), 1);
    CU_ASSERT_STRING_EQUAL(t.key_name, "12345.sig-dc1.corp.test."); /* lower case */
    CU_ASSERT_STRING_EQUAL(t.algorithm, "gss-tsig.");
    CU_ASSERT_EQUAL(t.time, NOW);
    CU_ASSERT_EQUAL(t.fudge, 300);
    CU_ASSERT_EQUAL(t.orig_id, 0x1234);
    CU_ASSERT_EQUAL(t.mac_len, ml);
    CU_ASSERT(bl == n && memcmp(body, msg, n) == 0);
    free(body);
    body = NULL;
    CU_ASSERT_EQUAL(kr_gsst_split(msg, n, &t, &body, &bl, &why), 0); /* unsigned */
    CU_ASSERT_PTR_NULL(body);
    free(w);
}

static void t_verify_forms(void)
{
    uint8_t *w, rmac[KR_GSST_MAC_MAX];
    size_t wl, rl;
    struct kr_gsst_tsig t;
    char err[256];

    pair(false, NOW, &w, &wl, rmac, &rl);
    CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), 0);
    CU_ASSERT_FALSE(t.samba_form);
    free(w);

    pair(true, NOW, &w, &wl, rmac, &rl);
    CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), 0);
    CU_ASSERT_TRUE(t.samba_form);
    free(w);
}

/* One altered byte anywhere that the MIC covers (body, time) or in the MAC
 * itself is rejected. Offsets: body = the first 27 bytes (flags at 2,
 * the question name at 20); the TSIG RR starts at 27 with the 25-byte
 * owner, then type/class/TTL/rdlength (10), algorithm (10), time (6),
 * fudge (2), MAC size (2), MAC (32). */
static void t_altered(void)
{
    const size_t body_at = 3, time_at = 27 + 25 + 10 + 10 + 5, mac_at = 27 + 25 + 10 + 10 + 10 + 3;
    const size_t at[] = {body_at, 20, time_at, mac_at};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        for (int samba = 0; samba < 2; samba++) {
            uint8_t *w, rmac[KR_GSST_MAC_MAX];
            size_t wl, rl;
            struct kr_gsst_tsig t;
            char err[256];
            pair(samba, NOW, &w, &wl, rmac, &rl);
            CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), 0);
            w[at[i]] ^= 0x01;
            CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), KR_ECRYPTO);
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not verify"));
            free(w);
        }
    }
    /* Another request MAC (a reply to another request) fails too. */
    uint8_t *w, rmac[KR_GSST_MAC_MAX];
    size_t wl, rl;
    struct kr_gsst_tsig t;
    char err[256];
    pair(false, NOW, &w, &wl, rmac, &rl);
    rmac[0] ^= 0x80;
    CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), KR_ECRYPTO);
    free(w);
}

static void t_time_and_key(void)
{
    uint8_t *w, rmac[KR_GSST_MAC_MAX];
    size_t wl, rl;
    struct kr_gsst_tsig t;
    char err[256];
    pair(false, NOW - 3600, &w, &wl, rmac, &rl);
    CU_ASSERT_EQUAL(verify(w, wl, rmac, rl, &t, err), KR_ETIMEDOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "clock skew"));
    free(w);

    pair(false, NOW, &w, &wl, rmac, &rl);
    struct fake none = {{0}, 0};
    uint8_t *body = NULL;
    size_t bl;
    CU_ASSERT_EQUAL(kr_gsst_verify(w, wl, "other.sig-dc1.corp.test.", rmac, rl, NOW, fake_verify,
                                   &none, &t, &body, &bl, err, sizeof(err)),
                    KR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "another key"));
    CU_ASSERT_PTR_NULL(body);
    uint8_t msg[64];
    size_t n = message(msg, 1, true);
    CU_ASSERT_EQUAL(kr_gsst_verify(msg, n, KEYNAME, rmac, rl, NOW, fake_verify, &none, &t, &body,
                                   &bl, err, sizeof(err)),
                    KR_ENOENT);
    free(w);
}

static void t_truncated(void)
{
    uint8_t *w, rmac[KR_GSST_MAC_MAX];
    size_t wl, rl;
    struct kr_gsst_tsig t;
    char err[256];
    pair(false, NOW, &w, &wl, rmac, &rl);
    for (size_t n = 0; n < wl; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(cut, w, n);
        int rc = verify(cut, n, rmac, rl, &t, err);
        CU_ASSERT(rc == KR_EMALF || rc == KR_ENOENT);
        free(cut);
    }
    free(w);
}

/* A failed open backs off per server: the next take within the backoff
 * fails at once with the same error and says when it tries again; another
 * server is not affected; clearing the pool forgets the backoff. */
static void t_pool_backoff(void)
{
    struct kr_gss_opts o = {.keytab = "/nonexistent/kmsrelay.keytab",
                            .principal = "kmsrelay@CORP.TEST",
                            .zone = "corp.test."};
    struct kr_gss_sess *s = NULL;
    char err[600];
    const char *why = "";
    CU_ASSERT_FATAL(kr_addr_parse("127.0.0.1:53", AF_INET, &o.server, &why) == 0);
    kr_gss_pool_clear();
    int rc = kr_gss_pool_take(&o, &s, err, sizeof(err));
    CU_ASSERT(rc == KR_EIO && s == NULL);
    CU_ASSERT(strstr(err, "No such file") != NULL && strstr(err, "backing off") == NULL);
    rc = kr_gss_pool_take(&o, &s, err, sizeof(err));
    CU_ASSERT(rc == KR_EIO && s == NULL);
    CU_ASSERT(strstr(err, "No such file") != NULL);
    CU_ASSERT(strstr(err, "(negotiation backing off)") != NULL);
    struct kr_gss_opts o2 = o;
    CU_ASSERT_FATAL(kr_addr_parse("127.0.0.2:53", AF_INET, &o2.server, &why) == 0);
    rc = kr_gss_pool_take(&o2, &s, err, sizeof(err));
    CU_ASSERT(rc == KR_EIO && strstr(err, "backing off") == NULL);
    kr_gss_pool_clear();
    rc = kr_gss_pool_take(&o, &s, err, sizeof(err));
    CU_ASSERT(rc == KR_EIO && strstr(err, "backing off") == NULL);
    kr_gss_pool_clear();
}

KR_SUITE(gss)
{
    CU_pSuite s = CU_add_suite("gss", NULL, NULL);
    CU_add_test(s, "GSS-TSIG record layout", t_sign_layout);
    CU_add_test(s, "reply MAC in RFC and Samba form", t_verify_forms);
    CU_add_test(s, "one altered byte in MAC, time or body", t_altered);
    CU_add_test(s, "clock skew, other key, unsigned", t_time_and_key);
    CU_add_test(s, "truncated replies", t_truncated);
    CU_add_test(s, "session pool: backoff after a failed negotiation", t_pool_backoff);
}
