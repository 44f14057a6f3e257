/*
 * fuzz_kms_response.c - response decode; whatever decodes must survive a
 * re-encode (same IV) and a second decode with every field unchanged, which
 * checks the encoder the test programs rely on against the decoder.
 *
 * Random bytes almost never decrypt to valid PKCS#7, so a second pass seals
 * the input as V5/V6 plaintext (its own first 4 bytes as the outer version,
 * a zero IV, correct padding) to reach the checks behind the decryption.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms/crypt.h"
#include "kmsrelay/bytes.h"
#include "kmsrelay/kms.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int same(const struct kr_kms_response *a, const struct kr_kms_response *b)
{
    return a->ver_minor == b->ver_minor && a->ver_major == b->ver_major &&
           a->epid_size == b->epid_size && strcmp(a->epid, b->epid) == 0 &&
           memcmp(a->cmid, b->cmid, 16) == 0 && a->request_time == b->request_time &&
           a->count == b->count && a->activation_interval == b->activation_interval &&
           a->renewal_interval == b->renewal_interval && a->has_hwid == b->has_hwid &&
           memcmp(a->hwid, b->hwid, 8) == 0 && memcmp(a->iv, b->iv, 16) == 0;
}

/* Decodes an exact-size copy; on success re-encodes and decodes again. */
static void check(const uint8_t *d, size_t n)
{
    uint8_t *b = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    if (!b)
        return;
    if (n)
        memcpy(b, d, n);
    struct kr_kms_response r, r2;
    const char *why = NULL;
    int rc = kr_kms_response_decode(b, n, &r, &why);
    free(b);
    if (rc != 0) {
        if (why == NULL)
            abort(); /* every failure must say why */
        return;
    }
    uint8_t out[KR_KMS_RESP_MAX];
    size_t len = 0;
    if (kr_kms_response_encode(&r, r.iv, out, sizeof(out), &len) != 0)
        abort();
    uint8_t *e = malloc(len);
    if (!e)
        return;
    memcpy(e, out, len);
    if (kr_kms_response_decode(e, len, &r2, NULL) != 0 || !same(&r, &r2))
        abort();
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    check(d, n);
    if (n < 4 || n > KR_KMS_RESP_MAX - 36 || kr_le16(d + 2) < 5)
        return 0;
    uint8_t plain[KR_KMS_RESP_MAX], msg[KR_KMS_RESP_MAX];
    size_t pad = 16 - n % 16;
    memcpy(plain, d, n);
    memset(plain + n, (int)pad, pad);
    memcpy(msg, d, 4);
    memset(msg + 4, 0, 16);
    if (kr_kms_cbc_encrypt(kr_kms_is_v6(kr_le16(d + 2)), msg + 4, plain, msg + 20, n + pad) != 0)
        abort();
    check(msg, 20 + n + pad);
    return 0;
}
