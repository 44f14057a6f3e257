/*
 * test_kms.c - the KMS message codec (src/kms) against the shared vectors,
 * whose expected fields were printed by the real client, so matching them is
 * an independent check of both ciphers (V6 tweak included). Also round
 * trips, every strict prefix, corruptions, text and time conversions.
 *
 * The KMS message is cut out of the RPC PDUs with tiny local helpers, so this
 * suite does not depend on the rpc module.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "kms/crypt.h"
#include "kmsrelay/aes.h"
#include "kmsrelay/bytes.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"
#include "testutil.h"

static struct kr_vec *vecs;
static size_t n_vecs;

static int suite_init(void)
{
    return kr_vec_load_all(&vecs, &n_vecs);
}

static int suite_clean(void)
{
    kr_vec_free_all(vecs, n_vecs);
    return 0;
}

/* Request PDU: NDR32 stub is u32 N, u32 N, message at 32; NDR64 is u64 N,
 * u64 N, message at 40 (kms-protocol.md 1.4). */
static int req_msg(const struct kr_vec_pdu *p, const uint8_t **msg, size_t *n)
{
    if (strcmp(p->type, "request") != 0 || p->len < 40)
        return -1;
    uint32_t n32 = kr_le32(p->bytes + 24);
    if (n32 == kr_le32(p->bytes + 28) && 32 + (size_t)n32 <= p->len) {
        *msg = p->bytes + 32, *n = n32;
        return 0;
    }
    uint64_t n64 = kr_le64(p->bytes + 24);
    if (n64 == kr_le64(p->bytes + 32) && n64 <= p->len - 40) {
        *msg = p->bytes + 40, *n = (size_t)n64;
        return 0;
    }
    return -1;
}

/* Successful response PDU (1.5): NDR32 u32 M, referent 0x20000, u32 M, message
 * at 36; NDR64 the same as u64 with the message at 48. Errors have no
 * referent and give -1. */
static int resp_msg(const struct kr_vec_pdu *p, const uint8_t **msg, size_t *n)
{
    if (strcmp(p->type, "response") != 0 || p->len < 48)
        return -1;
    if (kr_le32(p->bytes + 28) == 0x20000 && kr_le32(p->bytes + 24) == kr_le32(p->bytes + 32) &&
        36 + (size_t)kr_le32(p->bytes + 24) <= p->len) {
        *msg = p->bytes + 36, *n = kr_le32(p->bytes + 24);
        return 0;
    }
    if (p->len >= 56 && kr_le64(p->bytes + 32) == 0x20000 &&
        kr_le64(p->bytes + 24) == kr_le64(p->bytes + 40) && kr_le64(p->bytes + 24) <= p->len - 48) {
        *msg = p->bytes + 48, *n = (size_t)kr_le64(p->bytes + 24);
        return 0;
    }
    return -1;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(missing)";
}

static long long jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static int guid_is(const uint8_t g[16], const char *text)
{
    char s[KR_GUID_STRLEN];
    kr_guid_format(g, s);
    return strcmp(s, text) == 0;
}

static int version_is(uint16_t major, uint16_t minor, const char *text)
{
    char s[16];
    snprintf(s, sizeof(s), "%u.%u", major, minor);
    return strcmp(s, text) == 0;
}

static void check_request(const struct kr_kms_request *r, json_t *e, const char *name)
{
    char t[32];
    time_t secs = (time_t)kr_filetime_to_unix(r->request_time);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", &tm);
    int ok =
        version_is(r->ver_major, r->ver_minor, jstr(e, "kms_version")) &&
        (r->vm_info != 0) == json_is_true(json_object_get(e, "is_vm")) &&
        r->license_status == jint(e, "license_status") &&
        r->grace_minutes == jint(e, "grace_minutes") && guid_is(r->app_id, jstr(e, "app_id")) &&
        guid_is(r->sku_id, jstr(e, "sku_id")) && guid_is(r->kms_id, jstr(e, "kms_id")) &&
        guid_is(r->cmid, jstr(e, "cmid")) && guid_is(r->prev_cmid, jstr(e, "previous_cmid")) &&
        strcmp(t, jstr(e, "request_time_utc")) == 0 &&
        strcmp(r->workstation, jstr(e, "workstation")) == 0 && r->n_policy == jint(e, "n_policy");
    if (!ok)
        fprintf(stderr, "\n%s: request fields differ (ws '%s', time %s)\n", name, r->workstation,
                t);
    CU_ASSERT(ok);
}

static void check_response(const struct kr_kms_response *r, json_t *e, const char *name)
{
    int ok = version_is(r->ver_major, r->ver_minor, jstr(e, "kms_version")) &&
             strcmp(r->epid, jstr(e, "epid")) == 0 && guid_is(r->cmid, jstr(e, "cmid_echo")) &&
             r->count == jint(e, "count") && r->renewal_interval == jint(e, "renewal_interval") &&
             r->activation_interval == jint(e, "activation_interval") &&
             r->has_hwid == (json_object_get(e, "hwid") != NULL);
    if (r->has_hwid) {
        char h[17];
        kr_hex_encode(r->hwid, 8, h);
        for (char *c = h; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        ok = ok && strcmp(h, jstr(e, "hwid")) == 0;
    }
    if (!ok)
        fprintf(stderr, "\n%s: response fields differ (epid '%s')\n", name, r->epid);
    CU_ASSERT(ok);
}

/* Every request of every vector decodes to the fields the client printed,
 * and the one-block CMID path agrees with the full decode. */
static void test_vector_requests(void)
{
    size_t checked = 0;
    for (size_t v = 0; v < n_vecs; v++) {
        json_t *exp = json_object_get(vecs[v].expect, "requests");
        size_t i = 0;
        for (size_t p = 0; p < vecs[v].n_c2s; p++) {
            const uint8_t *m;
            size_t n;
            if (req_msg(&vecs[v].c2s[p], &m, &n))
                continue;
            struct kr_kms_request r;
            const char *why = NULL;
            int rc = kr_kms_request_decode(m, n, &r, &why);
            CU_ASSERT_EQUAL(rc, 0);
            if (rc) {
                fprintf(stderr, "\n%s: %s\n", vecs[v].name, why);
                continue;
            }
            CU_ASSERT_FATAL(i < json_array_size(exp));
            check_request(&r, json_array_get(exp, i++), vecs[v].name);
            uint8_t cmid[16];
            uint16_t major = 0;
            CU_ASSERT_EQUAL(kr_kms_request_cmid(m, n, &major, cmid, NULL), 0);
            CU_ASSERT(major == r.ver_major && memcmp(cmid, r.cmid, 16) == 0);
            checked++;
        }
        CU_ASSERT_EQUAL(i, json_array_size(exp));
    }
    CU_ASSERT(checked >= 10);
}

static void test_vector_responses(void)
{
    size_t checked = 0;
    for (size_t v = 0; v < n_vecs; v++) {
        json_t *exp = json_object_get(vecs[v].expect, "responses");
        size_t i = 0;
        for (size_t p = 0; p < vecs[v].n_s2c; p++) {
            const uint8_t *m;
            size_t n;
            if (resp_msg(&vecs[v].s2c[p], &m, &n))
                continue;
            struct kr_kms_response r;
            const char *why = NULL;
            int rc = kr_kms_response_decode(m, n, &r, &why);
            CU_ASSERT_EQUAL(rc, 0);
            if (rc) {
                fprintf(stderr, "\n%s: %s\n", vecs[v].name, why);
                continue;
            }
            CU_ASSERT_FATAL(i < json_array_size(exp));
            check_response(&r, json_array_get(exp, i++), vecs[v].name);
            checked++;
        }
        CU_ASSERT_EQUAL(i, json_array_size(exp));
    }
    CU_ASSERT(checked >= 8);
}

/* V5 responses reuse the request IV, V6 ones must not (kms-protocol.md 4.4). */
static void test_response_iv(void)
{
    const char *names[] = {"v5_win8pro_ndr32", "v6_win10pro_ndr32"};
    for (int k = 0; k < 2; k++) {
        const struct kr_vec *v = kr_vec_find(vecs, n_vecs, names[k]);
        CU_ASSERT_FATAL(v != NULL);
        const uint8_t *q, *s;
        size_t qn, sn;
        CU_ASSERT_FATAL(req_msg(&v->c2s[1], &q, &qn) == 0 && resp_msg(&v->s2c[1], &s, &sn) == 0);
        struct kr_kms_response r;
        CU_ASSERT_FATAL(kr_kms_response_decode(s, sn, &r, NULL) == 0);
        CU_ASSERT_EQUAL(memcmp(r.iv, q + 4, 16) == 0, k == 0);
    }
}

/* The V6 tweak matters: standard AES with the V6 key, or the V5 key, does
 * not give the 04040404 pad or the client's CMID; the 7.0 request decodes
 * with the V6 rule. */
static void test_v6_needs_tweak(void)
{
    struct kr_aes plain_aes;
    kr_aes_init(&plain_aes, kr_kms_key_v6, 0);
    size_t checked = 0;
    for (size_t v = 0; v < n_vecs; v++) {
        for (size_t p = 0; p < vecs[v].n_c2s; p++) {
            const uint8_t *m;
            size_t n;
            if (req_msg(&vecs[v].c2s[p], &m, &n) || kr_le16(m + 2) < 6)
                continue;
            struct kr_kms_request r;
            CU_ASSERT_FATAL(kr_kms_request_decode(m, n, &r, NULL) == 0);
            uint8_t out[240];
            kr_aes_cbc_decrypt(&plain_aes, m + 4, m + 20, out, 240);
            CU_ASSERT(kr_le32(out + 236) != 0x04040404u);
            CU_ASSERT(memcmp(out + 64, r.cmid, 16) != 0);
            kr_kms_cbc_decrypt(0, m + 4, m + 20, out, 240); /* the V5 key */
            CU_ASSERT(kr_le32(out + 236) != 0x04040404u);
            checked++;
        }
    }
    CU_ASSERT(checked >= 6);
    const struct kr_vec *bad = kr_vec_find(vecs, n_vecs, "err_bad_version");
    CU_ASSERT_FATAL(bad != NULL);
    const uint8_t *m;
    size_t n;
    struct kr_kms_request r;
    CU_ASSERT_FATAL(req_msg(&bad->c2s[1], &m, &n) == 0);
    CU_ASSERT_EQUAL(kr_kms_request_decode(m, n, &r, NULL), 0);
    CU_ASSERT(r.ver_major == 7 && r.ver_minor == 0);
}

static void fill_request(struct kr_kms_request *r, uint16_t major, uint8_t seed)
{
    memset(r, 0, sizeof(*r));
    r->ver_major = major;
    r->vm_info = 1;
    r->license_status = 5;
    r->grace_minutes = 12345;
    for (int i = 0; i < 16; i++) {
        r->app_id[i] = (uint8_t)(seed + i);
        r->sku_id[i] = (uint8_t)(seed * 3 + i);
        r->kms_id[i] = (uint8_t)(seed * 5 + i);
        r->cmid[i] = (uint8_t)(seed * 7 + i);
        r->prev_cmid[i] = (uint8_t)(seed * 11 + i);
    }
    r->n_policy = 25;
    r->request_time = 0x01DB5C0FFEE12345ull;
    snprintf(r->workstation, sizeof(r->workstation), "h\xc3\xb6st-\xf0\x9f\x98\x80.example");
}

static int req_equal(const struct kr_kms_request *a, const struct kr_kms_request *b)
{
    return a->ver_major == b->ver_major && a->ver_minor == b->ver_minor &&
           a->vm_info == b->vm_info && a->license_status == b->license_status &&
           a->grace_minutes == b->grace_minutes && !memcmp(a->app_id, b->app_id, 16) &&
           !memcmp(a->sku_id, b->sku_id, 16) && !memcmp(a->kms_id, b->kms_id, 16) &&
           !memcmp(a->cmid, b->cmid, 16) && !memcmp(a->prev_cmid, b->prev_cmid, 16) &&
           a->n_policy == b->n_policy && a->request_time == b->request_time &&
           strcmp(a->workstation, b->workstation) == 0;
}

static void test_request_roundtrip(void)
{
    static const uint8_t iv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t zero[16];
    for (uint16_t major = 4; major <= 7; major++) {
        struct kr_kms_request in, back;
        fill_request(&in, major, (uint8_t)major);
        uint8_t buf[300];
        size_t len = 0;
        CU_ASSERT_EQUAL_FATAL(kr_kms_request_encode(&in, iv, buf, sizeof(buf), &len), 0);
        CU_ASSERT_EQUAL(len, major == 4 ? 252u : 260u);
        if (major == 4) {
            CU_ASSERT(memcmp(buf + 236, zero, 16) == 0); /* MAC stays zero */
        } else {
            CU_ASSERT(memcmp(buf + 4, iv, 16) == 0);
        }
        CU_ASSERT_EQUAL(kr_kms_request_decode(buf, len, &back, NULL), 0);
        CU_ASSERT(req_equal(&in, &back));
        CU_ASSERT_EQUAL(kr_kms_request_encode(&in, iv, buf, len - 1, &len), KR_ENOSPC);
    }
    struct kr_kms_request in;
    uint8_t buf[300];
    fill_request(&in, 6, 1);
    CU_ASSERT_EQUAL(kr_kms_request_encode(&in, NULL, buf, sizeof(buf), NULL), KR_EINVAL);
    in.ver_major = 3;
    CU_ASSERT_EQUAL(kr_kms_request_encode(&in, NULL, buf, sizeof(buf), NULL), KR_EINVAL);
    /* Re-encoding a vector request with its own IV reproduces its bytes
     * (V4: all but the MAC, which we write as zeros). */
    for (size_t v = 0; v < n_vecs; v++) {
        for (size_t p = 0; p < vecs[v].n_c2s; p++) {
            const uint8_t *m;
            size_t n, len = 0;
            struct kr_kms_request r;
            if (req_msg(&vecs[v].c2s[p], &m, &n) || kr_kms_request_decode(m, n, &r, NULL))
                continue;
            CU_ASSERT_EQUAL(kr_kms_request_encode(&r, m + 4, buf, sizeof(buf), &len), 0);
            CU_ASSERT(memcmp(buf, m, r.ver_major == 4 ? 236 : 260) == 0);
        }
    }
}

static size_t pad16(size_t n)
{
    return n + (16 - n % 16);
}

static void fill_response(struct kr_kms_response *r, uint16_t major)
{
    memset(r, 0, sizeof(*r));
    r->ver_major = major;
    snprintf(r->epid, sizeof(r->epid), "55041-00206-570-778967-03-1033-7601.0000-0292022");
    for (int i = 0; i < 16; i++)
        r->cmid[i] = (uint8_t)(0xA0 + i);
    r->request_time = 0x01DB5C0FFEE12345ull;
    r->count = 50;
    r->activation_interval = 120;
    r->renewal_interval = 10080;
    if (major >= 6) {
        r->has_hwid = 1;
        memcpy(r->hwid, "\x3a\x1c\x04\x96\x00\xb6\x00\x76", 8);
    }
}

static int resp_equal(const struct kr_kms_response *a, const struct kr_kms_response *b)
{
    return a->ver_major == b->ver_major && a->ver_minor == b->ver_minor &&
           a->epid_size == b->epid_size && strcmp(a->epid, b->epid) == 0 &&
           !memcmp(a->cmid, b->cmid, 16) && a->request_time == b->request_time &&
           a->count == b->count && a->activation_interval == b->activation_interval &&
           a->renewal_interval == b->renewal_interval && a->has_hwid == b->has_hwid &&
           (!a->has_hwid || !memcmp(a->hwid, b->hwid, 8));
}

static void test_response_roundtrip(void)
{
    static const uint8_t iv[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
    for (uint16_t major = 4; major <= 7; major++) {
        for (size_t l = 0; l <= 70; l += 7) { /* ePID lengths 0..70 (cut to 63) */
            struct kr_kms_response in, back;
            fill_response(&in, major);
            memset(in.epid, 'x', l);
            in.epid[l] = '\0';
            uint8_t buf[KR_KMS_RESP_MAX], plain[KR_KMS_RESP_MAX];
            size_t len = 0, units = l > 63 ? 63 : l, P = 2 * (units + 1);
            CU_ASSERT_EQUAL_FATAL(kr_kms_response_encode(&in, iv, buf, sizeof(buf), &len), 0);
            size_t want = major == 4 ? 60 + P : 20 + pad16((major == 5 ? 92 : 132) + P);
            CU_ASSERT_EQUAL(len, want);
            CU_ASSERT_EQUAL_FATAL(kr_kms_response_decode(buf, len, &back, NULL), 0);
            in.epid_size = (uint32_t)P;
            in.epid[units] = '\0';
            CU_ASSERT(resp_equal(&in, &back));
            /* Integrity fields are zero: V4 MAC; V5/V6 all after the base
             * except the HwId. */
            const uint8_t *pt = buf;
            if (major > 4) {
                kr_kms_cbc_decrypt(major >= 6, iv, buf + 20, plain, len - 20);
                pt = plain;
                CU_ASSERT(memcmp(back.iv, iv, 16) == 0);
            }
            size_t tail = major == 4 ? 16 : major == 5 ? 48 : 88, nz = 0;
            for (size_t i = 44 + P; i < 44 + P + tail; i++)
                nz += pt[i] != 0 && !(major >= 6 && i >= 92 + P && i < 100 + P);
            CU_ASSERT_EQUAL(nz, 0);
            CU_ASSERT_EQUAL(kr_kms_response_encode(&in, iv, buf, len - 1, &len), KR_ENOSPC);
        }
    }
}

/* Every strict prefix of every vector message is KR_EMALF (the exact-size
 * heap copy lets ASan catch any read past the end). */
static void test_prefixes(void)
{
    size_t bad = 0, tried = 0;
    for (size_t v = 0; v < n_vecs; v++) {
        for (int dir = 0; dir < 2; dir++) {
            size_t np = dir ? vecs[v].n_s2c : vecs[v].n_c2s;
            for (size_t p = 0; p < np; p++) {
                const uint8_t *m;
                size_t n;
                if (dir ? resp_msg(&vecs[v].s2c[p], &m, &n) : req_msg(&vecs[v].c2s[p], &m, &n))
                    continue;
                for (size_t k = 0; k < n; k++) {
                    uint8_t *c = malloc(k ? k : 1);
                    CU_ASSERT_FATAL(c != NULL);
                    memcpy(c, m, k);
                    struct kr_kms_request q;
                    struct kr_kms_response s;
                    uint8_t cmid[16];
                    const char *why = NULL;
                    if (dir) {
                        bad += kr_kms_response_decode(c, k, &s, &why) != KR_EMALF || !why;
                    } else {
                        bad += kr_kms_request_decode(c, k, &q, &why) != KR_EMALF || !why;
                        bad += kr_kms_request_cmid(c, k, NULL, cmid, NULL) != KR_EMALF;
                    }
                    tried++;
                    free(c);
                }
            }
        }
    }
    CU_ASSERT(tried > 2000);
    CU_ASSERT_EQUAL(bad, 0);
}

/* Encrypts `plain` (whole blocks, padding already in it) as a V5/V6 message. */
static size_t seal(uint16_t major, const uint8_t *plain, size_t plen, uint8_t *out)
{
    static const uint8_t iv[16] = {0x42};
    kr_put_le16(out, 0);
    kr_put_le16(out + 2, major);
    memcpy(out + 4, iv, 16);
    kr_kms_cbc_encrypt(major >= 6, iv, plain, out + 20, plen);
    return 20 + plen;
}

/* `why` by address: it is read after the decoder call has set it. */
static void expect_malf(int rc, const char *const *whyp, const char *word)
{
    const char *why = *whyp;
    CU_ASSERT_EQUAL(rc, KR_EMALF);
    CU_ASSERT(why != NULL && strstr(why, word) != NULL);
    if (why && !strstr(why, word))
        fprintf(stderr, "\nwhy '%s' lacks '%s'\n", why, word);
}

static void test_corruptions(void)
{
    static const uint8_t iv[16] = {7};
    struct kr_kms_request q, rq;
    struct kr_kms_response s, rs;
    uint8_t buf[KR_KMS_RESP_MAX], plain[KR_KMS_RESP_MAX];
    size_t len;
    const char *why;

    /* Requests: bad padding, inner version != outer, major below 4. */
    fill_request(&rq, 6, 3);
    CU_ASSERT_FATAL(kr_kms_request_encode(&rq, iv, buf, sizeof(buf), &len) == 0);
    buf[259] ^= 0x01;
    expect_malf(kr_kms_request_decode(buf, len, &q, &why), &why, "padding");
    buf[259] ^= 0x01;
    kr_put_le16(buf + 2, 7); /* same V6 key, so only the version check fails */
    expect_malf(kr_kms_request_decode(buf, len, &q, &why), &why, "inner");
    kr_put_le16(buf + 2, 6);
    buf[0] = 1; /* minor */
    expect_malf(kr_kms_request_decode(buf, len, &q, &why), &why, "inner");
    kr_put_le16(buf + 2, 3);
    CU_ASSERT_EQUAL(kr_kms_request_decode(buf, len, &q, &why), KR_EUNSUP);
    CU_ASSERT_EQUAL(kr_kms_request_cmid(buf, len, NULL, rq.cmid, NULL), KR_EUNSUP);
    /* Longer messages are fine (wine). */
    fill_request(&rq, 5, 4);
    CU_ASSERT_FATAL(kr_kms_request_encode(&rq, iv, buf, sizeof(buf), &len) == 0);
    CU_ASSERT_EQUAL(kr_kms_request_decode(buf, len + 40, &q, NULL), 0);
    CU_ASSERT(req_equal(&q, &rq));

    /* Responses: ePID size odd, 0, above 128, not NUL-terminated, early NUL. */
    fill_response(&rs, 4);
    CU_ASSERT_FATAL(kr_kms_response_encode(&rs, iv, buf, sizeof(buf), &len) == 0);
    static const uint32_t bad_p[] = {97, 0, 130, 0xFFFFFFFFu};
    for (size_t i = 0; i < 4; i++) {
        kr_put_le32(buf + 4, bad_p[i]);
        expect_malf(kr_kms_response_decode(buf, len, &s, &why), &why, "ePID size");
    }
    kr_put_le32(buf + 4, 98); /* the real P, so the last unit is no longer the NUL */
    buf[8 + 96] = 'x';
    expect_malf(kr_kms_response_decode(buf, len, &s, &why), &why, "NUL");
    buf[8 + 96] = 0;
    buf[8 + 10] = 0; /* a NUL inside */
    expect_malf(kr_kms_response_decode(buf, len, &s, &why), &why, "NUL");
    kr_put_le16(buf + 2, 2);
    CU_ASSERT_EQUAL(kr_kms_response_decode(buf, len, &s, &why), KR_EUNSUP);

    /* Encrypted responses: PKCS#7 of 0, of 17, inconsistent, wrong length. */
    for (uint16_t major = 5; major <= 6; major++) {
        fill_response(&rs, major);
        CU_ASSERT_FATAL(kr_kms_response_encode(&rs, iv, buf, sizeof(buf), &len) == 0);
        size_t plen = len - 20;
        kr_kms_cbc_decrypt(major >= 6, iv, buf + 20, plain, plen);
        uint8_t pad = plain[plen - 1], m[KR_KMS_RESP_MAX];
        plain[plen - 1] = 0;
        expect_malf(kr_kms_response_decode(m, seal(major, plain, plen, m), &s, &why), &why,
                    "1..16");
        plain[plen - 1] = 17;
        expect_malf(kr_kms_response_decode(m, seal(major, plain, plen, m), &s, &why), &why,
                    "1..16");
        plain[plen - 1] = pad;
        plain[plen - pad] ^= 1;
        expect_malf(kr_kms_response_decode(m, seal(major, plain, plen, m), &s, &why), &why,
                    "padding bytes");
        plain[plen - pad] ^= 1;
        /* One more block of padding-looking bytes: length no longer matches P. */
        memset(plain + plen, 16, 16);
        expect_malf(kr_kms_response_decode(m, seal(major, plain, plen + 16, m), &s, &why), &why,
                    "length");
        kr_put_le16(plain, 1); /* inner minor 1 vs outer 0 */
        expect_malf(kr_kms_response_decode(m, seal(major, plain, plen, m), &s, &why), &why,
                    "inner");
        expect_malf(kr_kms_response_decode(buf, len - 3, &s, &why), &why, "blocks");
    }
}

static void test_utf16(void)
{
    char out[32];
    /* A pair becomes one 4-byte sequence; lone surrogates become U+FFFD. */
    uint16_t pair[] = {'a', 0xD83D, 0xDE00, 'b', 0};
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(pair, 5, out, sizeof(out)), 6u);
    CU_ASSERT_STRING_EQUAL(out, "a\xf0\x9f\x98\x80"
                                "b");
    uint16_t lone[] = {0xD800, 'a', 0xDC00, 0xDBFF};
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(lone, 4, out, sizeof(out)), 10u);
    CU_ASSERT_STRING_EQUAL(out, "\xef\xbf\xbd"
                                "a\xef\xbf\xbd\xef\xbf\xbd");
    /* Stops at NUL and at n; never writes a cut sequence. */
    uint16_t nul[] = {'x', 0, 'y'};
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(nul, 3, out, sizeof(out)), 1u);
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(pair, 2, out, sizeof(out)), 4u); /* 'a' + lone high */
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(pair, 5, out, 4), 1u);
    CU_ASSERT_STRING_EQUAL(out, "a");
    CU_ASSERT_EQUAL(kr_utf16_to_utf8(pair, 5, out, 1), 0u);
    CU_ASSERT_EQUAL(out[0], '\0');

    uint16_t u[8];
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("\xe2\x82\xac\xf0\x9f\x98\x80", u, 8), 3u);
    CU_ASSERT(u[0] == 0x20AC && u[1] == 0xD83D && u[2] == 0xDE00);
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("a\xf0\x9f\x98\x80", u, 2), 1u); /* no half pair */
    /* Overlong, encoded surrogate, above U+10FFFF, stray and cut sequences. */
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("\xc0\x80", u, 8), 2u);
    CU_ASSERT(u[0] == 0xFFFD && u[1] == 0xFFFD);
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("\xed\xa0\x80", u, 8), 1u);
    CU_ASSERT_EQUAL(u[0], 0xFFFD);
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("\xf4\x90\x80\x80", u, 8), 1u);
    CU_ASSERT_EQUAL(u[0], 0xFFFD);
    CU_ASSERT_EQUAL(kr_utf8_to_utf16("\x80z\xe2\x82", u, 8), 3u);
    CU_ASSERT(u[0] == 0xFFFD && u[1] == 'z' && u[2] == 0xFFFD);
}

static void test_filetime(void)
{
    CU_ASSERT_EQUAL(kr_filetime_to_unix(116444736000000000ull), 0);
    CU_ASSERT_EQUAL(kr_unix_to_filetime(0), 116444736000000000ull);
    struct tm tm = {
        .tm_year = 126, .tm_mon = 10, .tm_mday = 21, .tm_hour = 7, .tm_min = 7, .tm_sec = 38};
    int64_t t = (int64_t)timegm(&tm);
    uint64_t ft = kr_unix_to_filetime(t);
    CU_ASSERT_EQUAL(kr_filetime_to_unix(ft), t);
    CU_ASSERT_EQUAL(kr_filetime_to_unix(ft + 9999999), t); /* rounds down */
    CU_ASSERT_EQUAL(kr_filetime_to_unix(0), -11644473600LL);
    CU_ASSERT_EQUAL(kr_unix_to_filetime(-11644473601LL), 0u);
    CU_ASSERT_EQUAL(kr_unix_to_filetime(INT64_MAX), UINT64_MAX);
}

static void test_names(void)
{
    CU_ASSERT_STRING_EQUAL(kr_kms_app_name(kr_kms_app_windows), "Windows");
    CU_ASSERT_STRING_EQUAL(kr_kms_app_name(kr_kms_app_office2010), "Office 2010");
    CU_ASSERT_STRING_EQUAL(kr_kms_app_name(kr_kms_app_office2013), "Office 2013+");
    uint8_t g[16];
    CU_ASSERT_FATAL(kr_guid_parse("0ff1ce15-a989-479d-af46-f275c6370663", g) == 0);
    CU_ASSERT(memcmp(g, kr_kms_app_office2013, 16) == 0);
    g[15] ^= 1;
    CU_ASSERT_PTR_NULL(kr_kms_app_name(g));
    /* The index every table by application uses. */
    CU_ASSERT_EQUAL(kr_kms_app_index(kr_kms_app_windows), 0);
    CU_ASSERT_EQUAL(kr_kms_app_index(kr_kms_app_office2010), 1);
    CU_ASSERT_EQUAL(kr_kms_app_index(kr_kms_app_office2013), 2);
    CU_ASSERT_EQUAL(kr_kms_app_index(g), KR_KMS_APPS_KNOWN);
    for (int i = 0; i < KR_KMS_APPS_KNOWN; i++) {
        CU_ASSERT_EQUAL(kr_kms_app_index(kr_kms_app_id(i)), i);
        CU_ASSERT_STRING_EQUAL(kr_kms_app_label(i), kr_kms_app_name(kr_kms_app_id(i)));
    }
    CU_ASSERT_PTR_NULL(kr_kms_app_id(KR_KMS_APPS_KNOWN));
    CU_ASSERT_PTR_NULL(kr_kms_app_id(-1));
    CU_ASSERT_STRING_EQUAL(kr_kms_app_label(KR_KMS_APPS_KNOWN), "other");
    CU_ASSERT_STRING_EQUAL(kr_kms_app_label(-1), "other");
    CU_ASSERT_STRING_EQUAL(kr_kms_hresult_name(0xC004F042u),
                           "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH");
    static const uint32_t known[] = {0xC004F06Cu,
                                     0xC004F038u,
                                     0x8007000Du,
                                     0xC004D104u,
                                     0xC004C008u,
                                     0xC004F074u,
                                     0xC004F039u,
                                     0xC004F041u,
                                     0x1C010003u,
                                     0x1C01000Bu,
                                     0};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        CU_ASSERT_PTR_NOT_NULL(kr_kms_hresult_name(known[i]));
    CU_ASSERT_PTR_NULL(kr_kms_hresult_name(0x12345678u));
}

/* The one activation threshold rule (threshold.c) that the control API,
 * the report and the metrics share. */
static void test_threshold(void)
{
    static const uint8_t other[16] = {0x77, 0x77, 0x77, 0x77};
    const uint8_t *win = kr_kms_app_windows, *o10 = kr_kms_app_office2010,
                  *o13 = kr_kms_app_office2013;

    /* Nothing known: the application's usual minimum. */
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 0, 0), 25);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 0, 1), 25);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(o10, 0, 0), 5);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(o13, 0, 1), 5);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(other, 0, 0), 5);
    /* One sample (a host's last answer): a Windows Server's 5 does not
     * lower the 25 its Windows clients need; a higher N_Policy raises it. */
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 5, 0), 25);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 25, 0), 25);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 40, 0), 40);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(o13, 1, 0), 5);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(o13, 7, 0), 7);
    /* Every client's N_Policy known (the report): the highest of them, even
     * below the usual minimum (servers only need 5). */
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 5, 1), 5);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(win, 40, 1), 40);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(o10, 1, 1), 1);
    CU_ASSERT_EQUAL(kr_kms_activation_threshold(other, 1000, 1), 1000);
}

/* The vectors again with the portable AES tables forced (the tests above
 * ran the default, AES-NI where the CPU has it): V6 decryption through both. */
static void test_vectors_portable_aes(void)
{
    kr_aes_set_impl(1);
    test_vector_requests();
    test_vector_responses();
    kr_aes_set_impl(0);
}

KR_SUITE(kms)
{
    CU_pSuite s = CU_add_suite("kms", suite_init, suite_clean);
    CU_add_test(s, "vector requests: all fields, fast CMID", test_vector_requests);
    CU_add_test(s, "vector responses: all fields", test_vector_responses);
    CU_add_test(s, "vectors with the portable AES", test_vectors_portable_aes);
    CU_add_test(s, "response IV: V5 reuses, V6 fresh", test_response_iv);
    CU_add_test(s, "V6 needs the tweak; 7.0 uses V6", test_v6_needs_tweak);
    CU_add_test(s, "request encode/decode round trip", test_request_roundtrip);
    CU_add_test(s, "response encode/decode round trip", test_response_roundtrip);
    CU_add_test(s, "every strict prefix is EMALF", test_prefixes);
    CU_add_test(s, "corruptions rejected with a why", test_corruptions);
    CU_add_test(s, "UTF-16 <-> UTF-8", test_utf16);
    CU_add_test(s, "FILETIME", test_filetime);
    CU_add_test(s, "application and HRESULT names", test_names);
    CU_add_test(s, "activation threshold", test_threshold);
}
