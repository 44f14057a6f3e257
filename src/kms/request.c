/*
 * request.c - KMS request messages V4/V5/V6 (kms-protocol.md 2, 3.1, 4.1):
 * full decode, the one-block CMID hot path, and the test-program encoder.
 *
 * A request always arrives complete inside its RPC PDU, so a short message
 * is KR_EMALF, never KR_EMORE. Longer messages are accepted (vlmcsd allows
 * them for wine's RPC) but only the expected bytes are read.
 */
#include <string.h>

#include "kms/crypt.h"
#include "kmsrelay/bytes.h"
#include "kmsrelay/kms.h"

#define PAD_LEN 4 /* the fixed PKCS#7 pad 04 04 04 04 after the 236-byte base */
#define ENC_LEN (KR_KMS_BASE_LEN + PAD_LEN)

/* Checks the plaintext version and the size for that version. */
static int check_outer(const uint8_t *msg, size_t len, uint16_t *major, const char **why)
{
    if (len < 4)
        return kr_fail(why, KR_EMALF, "KMS request shorter than its version field");
    *major = kr_le16(msg + 2);
    if (*major < 4)
        return kr_fail(why, KR_EUNSUP, "KMS request protocol major version below 4");
    if (*major == 4 && len < KR_KMS_V4_REQ_LEN)
        return kr_fail(why, KR_EMALF, "V4 request shorter than 252 bytes");
    if (*major > 4 && len < KR_KMS_V5_REQ_LEN)
        return kr_fail(why, KR_EMALF, "V5/V6 request shorter than 260 bytes");
    return 0;
}

static void parse_base(const uint8_t *b, struct kr_kms_request *r)
{
    struct kr_rd rd = kr_rd_init(b, KR_KMS_BASE_LEN);
    r->ver_minor = kr_rd_u16(&rd);
    r->ver_major = kr_rd_u16(&rd);
    r->vm_info = kr_rd_u32(&rd);
    r->license_status = kr_rd_u32(&rd);
    r->grace_minutes = kr_rd_u32(&rd);
    kr_rd_copy(&rd, r->app_id, 16);
    kr_rd_copy(&rd, r->sku_id, 16);
    kr_rd_copy(&rd, r->kms_id, 16);
    kr_rd_copy(&rd, r->cmid, 16);
    r->n_policy = kr_rd_u32(&rd);
    r->request_time = kr_rd_u64(&rd);
    kr_rd_copy(&rd, r->prev_cmid, 16);
    for (size_t i = 0; i < KR_KMS_WS_CHARS; i++)
        r->workstation16[i] = kr_rd_u16(&rd);
    kr_utf16_to_utf8(r->workstation16, KR_KMS_WS_CHARS, r->workstation, sizeof(r->workstation));
}

int kr_kms_request_decode(const uint8_t *msg, size_t len, struct kr_kms_request *out,
                          const char **why)
{
    uint16_t major;
    int rc = check_outer(msg, len, &major, why);
    if (rc)
        return rc;
    uint8_t plain[ENC_LEN];
    if (major == 4) {
        memcpy(plain, msg, KR_KMS_BASE_LEN);
    } else {
        if (kr_kms_cbc_decrypt(kr_kms_is_v6(major), msg + 4, msg + 20, plain, ENC_LEN))
            return kr_fail(why, KR_ECRYPTO, "request decryption failed");
        static const uint8_t pad[PAD_LEN] = {4, 4, 4, 4};
        if (memcmp(plain + KR_KMS_BASE_LEN, pad, PAD_LEN) != 0)
            return kr_fail(why, KR_EMALF,
                           "request padding is not 04 04 04 04 (corrupt, or not this key)");
        if (memcmp(plain, msg, 4) != 0)
            return kr_fail(why, KR_EMALF, "inner request version differs from the outer one");
    }
    struct kr_kms_request r;
    memset(&r, 0, sizeof(r));
    parse_base(plain, &r);
    *out = r;
    return 0;
}

int kr_kms_request_cmid(const uint8_t *msg, size_t len, uint16_t *ver_major, uint8_t cmid[16],
                        const char **why)
{
    uint16_t major;
    int rc = check_outer(msg, len, &major, why);
    if (rc)
        return rc;
    if (major == 4) {
        memcpy(cmid, msg + 64, 16);
    } else {
        /* CBC: plaintext block 4 (base 64..79) = D(C4) XOR C3, with C4 at
         * msg 84..99 and C3 at msg 68..83. */
        uint8_t x[16];
        if (kr_kms_block_decrypt(kr_kms_is_v6(major), msg + 84, x))
            return kr_fail(why, KR_ECRYPTO, "CMID block decryption failed");
        for (int i = 0; i < 16; i++)
            cmid[i] = (uint8_t)(x[i] ^ msg[68 + i]);
    }
    if (ver_major)
        *ver_major = major;
    return 0;
}

static void build_base(const struct kr_kms_request *in, uint8_t b[ENC_LEN])
{
    struct kr_wr w = kr_wr_init(b, ENC_LEN);
    kr_wr_u16(&w, in->ver_minor);
    kr_wr_u16(&w, in->ver_major);
    kr_wr_u32(&w, in->vm_info);
    kr_wr_u32(&w, in->license_status);
    kr_wr_u32(&w, in->grace_minutes);
    kr_wr_bytes(&w, in->app_id, 16);
    kr_wr_bytes(&w, in->sku_id, 16);
    kr_wr_bytes(&w, in->kms_id, 16);
    kr_wr_bytes(&w, in->cmid, 16);
    kr_wr_u32(&w, in->n_policy);
    kr_wr_u64(&w, in->request_time);
    kr_wr_bytes(&w, in->prev_cmid, 16);
    /* 63 units at most, so the name stays NUL-terminated on the wire. */
    uint16_t ws[KR_KMS_WS_CHARS] = {0};
    kr_utf8_to_utf16(in->workstation, ws, KR_KMS_WS_CHARS - 1);
    for (size_t i = 0; i < KR_KMS_WS_CHARS; i++)
        kr_wr_u16(&w, ws[i]);
    for (int i = 0; i < PAD_LEN; i++)
        kr_wr_u8(&w, PAD_LEN);
}

int kr_kms_request_encode(const struct kr_kms_request *in, const uint8_t iv[16], uint8_t *out,
                          size_t cap, size_t *outlen)
{
    if (!in || !out || in->ver_major < 4 || (in->ver_major > 4 && !iv))
        return KR_EINVAL;
    size_t need = in->ver_major == 4 ? KR_KMS_V4_REQ_LEN : KR_KMS_V5_REQ_LEN;
    if (cap < need)
        return KR_ENOSPC;
    uint8_t plain[ENC_LEN];
    build_base(in, plain);
    if (in->ver_major == 4) {
        memcpy(out, plain, KR_KMS_BASE_LEN);
        memset(out + KR_KMS_BASE_LEN, 0, 16); /* MAC: never computed (boundary rule) */
    } else {
        memcpy(out, plain, 4); /* the outer version equals the inner one */
        memcpy(out + 4, iv, 16);
        int rc = kr_kms_cbc_encrypt(kr_kms_is_v6(in->ver_major), iv, plain, out + 20, ENC_LEN);
        if (rc)
            return rc;
    }
    if (outlen)
        *outlen = need;
    return 0;
}
