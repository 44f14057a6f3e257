/*
 * response.c - KMS response messages V4/V5/V6 (kms-protocol.md 3.3, 4.4,
 * 4.5): decode to the fields a proxy monitors, and the test-program encoder
 * that leaves every integrity field zero (boundary rule, kms.h).
 *
 * Plaintext layout, P = ePID size in bytes:
 *   0 base (44+P): version, P, ePID, CMID, time, count, intervals
 *   V4: 44+P MAC(16)                                        total 60+P
 *   V5: 44+P RandomXoredIVs(16), 60+P Hash(32)              total 92+P
 *   V6: as V5, then 92+P HwId(8), 100+P XoredIVs(16), 116+P HMAC(16), total 132+P
 * V5/V6 add PKCS#7 (1..16 bytes) and travel as version, IV, AES-CBC(IV).
 */
#include <string.h>

#include "kms/crypt.h"
#include "kmsrelay/bytes.h"
#include "kmsrelay/kms.h"

#define BASE_FIXED 44 /* base response size without the ePID */
#define V4_TAIL 16
#define V5_TAIL 48
#define V6_TAIL 88

static size_t tail_len(uint16_t major)
{
    return major == 4 ? V4_TAIL : major == 5 ? V5_TAIL : V6_TAIL;
}

/* Reads the base response and the V6 HwId from plaintext `p` of `len`
 * bytes; `exact` demands that len is exactly base + tail (V5/V6, where the
 * padding fixes the length) instead of at least that (V4). */
static int parse_plain(const uint8_t *p, size_t len, int exact, struct kr_kms_response *r,
                       const char **why)
{
    if (len < 8)
        return kr_fail(why, KR_EMALF, "KMS response shorter than its ePID size field");
    uint32_t psize = kr_le32(p + 4);
    if (psize < 2 || psize > KR_KMS_EPID_MAX || psize % 2)
        return kr_fail(why, KR_EMALF, "response ePID size not even or outside 2..128");
    uint16_t major = kr_le16(p + 2);
    size_t need = BASE_FIXED + psize + tail_len(major);
    if (len < need)
        return kr_fail(why, KR_EMALF, "KMS response shorter than its ePID size implies");
    if (exact && len != need)
        return kr_fail(why, KR_EMALF, "decrypted response length does not match its ePID size");
    uint16_t epid16[KR_KMS_EPID_MAX / 2];
    size_t units = psize / 2;
    for (size_t i = 0; i < units; i++)
        epid16[i] = kr_le16(p + 8 + 2 * i);
    /* vlmcs checkPidLength: NUL-terminated, and no NUL before the end. */
    if (epid16[units - 1] != 0)
        return kr_fail(why, KR_EMALF, "response ePID is not NUL-terminated");
    for (size_t i = 0; i + 1 < units; i++)
        if (epid16[i] == 0)
            return kr_fail(why, KR_EMALF, "response ePID has a NUL before its end");

    struct kr_rd rd = kr_rd_init(p, len);
    r->ver_minor = kr_rd_u16(&rd);
    r->ver_major = kr_rd_u16(&rd);
    r->epid_size = kr_rd_u32(&rd);
    kr_rd_take(&rd, psize);
    kr_utf16_to_utf8(epid16, units, r->epid, sizeof(r->epid));
    kr_rd_copy(&rd, r->cmid, 16);
    r->request_time = kr_rd_u64(&rd);
    r->count = kr_rd_u32(&rd);
    r->activation_interval = kr_rd_u32(&rd);
    r->renewal_interval = kr_rd_u32(&rd);
    if (major >= 6) {
        r->has_hwid = 1;
        memcpy(r->hwid, p + BASE_FIXED + psize + V5_TAIL, 8);
    }
    return rd.err ? kr_fail(why, KR_EMALF, "KMS response truncated") : 0;
}

int kr_kms_response_decode(const uint8_t *msg, size_t len, struct kr_kms_response *out,
                           const char **why)
{
    if (len < 4)
        return kr_fail(why, KR_EMALF, "KMS response shorter than its version field");
    uint16_t major = kr_le16(msg + 2);
    if (major < 4)
        return kr_fail(why, KR_EUNSUP, "KMS response protocol major version below 4");
    if (len > KR_KMS_RESP_MAX)
        return kr_fail(why, KR_EMALF, "KMS response longer than 512 bytes");
    struct kr_kms_response r;
    memset(&r, 0, sizeof(r));
    if (major == 4) {
        int rc = parse_plain(msg, len, 0, &r, why);
        if (rc)
            return rc;
        *out = r;
        return 0;
    }
    if (len < 20 + 16 || (len - 20) % 16)
        return kr_fail(why, KR_EMALF, "encrypted response is not IV plus whole AES blocks");
    uint8_t plain[KR_KMS_RESP_MAX];
    size_t plen = len - 20;
    if (kr_kms_cbc_decrypt(kr_kms_is_v6(major), msg + 4, msg + 20, plain, plen))
        return kr_fail(why, KR_ECRYPTO, "response decryption failed");
    uint8_t pad = plain[plen - 1];
    if (pad < 1 || pad > 16)
        return kr_fail(why, KR_EMALF, "response PKCS#7 padding length outside 1..16");
    for (size_t i = plen - pad; i < plen; i++)
        if (plain[i] != pad)
            return kr_fail(why, KR_EMALF, "response PKCS#7 padding bytes differ");
    plen -= pad;
    if (plen < 4 || memcmp(plain, msg, 4) != 0)
        return kr_fail(why, KR_EMALF, "inner response version differs from the outer one");
    int rc = parse_plain(plain, plen, 1, &r, why);
    if (rc)
        return rc;
    memcpy(r.iv, msg + 4, 16);
    *out = r;
    return 0;
}

int kr_kms_response_encode(const struct kr_kms_response *in, const uint8_t iv[16], uint8_t *out,
                           size_t cap, size_t *outlen)
{
    if (!in || !out || in->ver_major < 4 || (in->ver_major > 4 && !iv))
        return KR_EINVAL;
    uint16_t epid16[KR_KMS_EPID_MAX / 2] = {0};
    /* One unit stays for the NUL, so P <= 128 (KR_KMS_EPID_MAX). */
    size_t units = kr_utf8_to_utf16(in->epid, epid16, KR_KMS_EPID_MAX / 2 - 1) + 1;
    size_t psize = 2 * units;

    uint8_t plain[KR_KMS_RESP_MAX];
    struct kr_wr w = kr_wr_init(plain, sizeof(plain));
    kr_wr_u16(&w, in->ver_minor);
    kr_wr_u16(&w, in->ver_major);
    kr_wr_u32(&w, (uint32_t)psize);
    for (size_t i = 0; i < units; i++)
        kr_wr_u16(&w, epid16[i]);
    kr_wr_bytes(&w, in->cmid, 16);
    kr_wr_u64(&w, in->request_time);
    kr_wr_u32(&w, in->count);
    kr_wr_u32(&w, in->activation_interval);
    kr_wr_u32(&w, in->renewal_interval);
    if (in->ver_major == 4) {
        kr_wr_zero(&w, V4_TAIL); /* MAC */
    } else {
        kr_wr_zero(&w, V5_TAIL); /* RandomXoredIVs, Hash */
        if (in->ver_major >= 6) {
            kr_wr_bytes(&w, in->hwid, 8);
            kr_wr_zero(&w, 32); /* XoredIVs, HMAC */
        }
        uint8_t pad = (uint8_t)(16 - w.off % 16);
        for (int i = 0; i < pad; i++)
            kr_wr_u8(&w, pad);
    }
    if (w.err)
        return KR_EINVAL; /* cannot happen: the largest plaintext is 276 bytes */

    size_t need = in->ver_major == 4 ? w.off : 20 + w.off;
    if (cap < need)
        return KR_ENOSPC;
    if (in->ver_major == 4) {
        memcpy(out, plain, w.off);
    } else {
        memcpy(out, plain, 4);
        memcpy(out + 4, iv, 16);
        int rc = kr_kms_cbc_encrypt(kr_kms_is_v6(in->ver_major), iv, plain, out + 20, w.off);
        if (rc)
            return rc;
    }
    if (outlen)
        *outlen = need;
    return 0;
}
