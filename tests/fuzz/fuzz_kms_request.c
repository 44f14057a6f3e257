/*
 * fuzz_kms_request.c - full request decode and the one-block CMID path on
 * the same bytes. Whenever the full decode accepts a message, the hot path
 * must give the same version and CMID (the proxy routes on the hot path and
 * logs from the full decode, so a disagreement would be a silent misroute).
 *
 * Random bytes almost never decrypt to the 04 04 04 04 pad, so a second pass
 * seals the first 236 input bytes as a V5/V6 base (outer version = inner,
 * zero IV): that message must decode, and both paths must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms/crypt.h"
#include "kmsrelay/bytes.h"
#include "kmsrelay/kms.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

/* Returns the full decode's result after checking it against the hot path. */
static int check(const uint8_t *d, size_t n)
{
    uint8_t *b = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    if (!b)
        return 0;
    if (n)
        memcpy(b, d, n);
    struct kr_kms_request r;
    const char *why = NULL;
    int rc = kr_kms_request_decode(b, n, &r, &why);
    uint8_t cmid[16];
    uint16_t major = 0;
    int fast = kr_kms_request_cmid(b, n, &major, cmid, NULL);
    if (rc != 0 && why == NULL)
        abort(); /* every failure must say why */
    if (rc == 0 && (fast != 0 || major != r.ver_major || memcmp(cmid, r.cmid, 16) != 0))
        abort();
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    check(d, n);
    if (n < KR_KMS_BASE_LEN || kr_le16(d + 2) < 5)
        return 0;
    uint8_t plain[KR_KMS_BASE_LEN + 4], msg[KR_KMS_V5_REQ_LEN];
    memcpy(plain, d, KR_KMS_BASE_LEN);
    memset(plain + KR_KMS_BASE_LEN, 4, 4);
    memcpy(msg, d, 4);
    memset(msg + 4, 0, 16);
    if (kr_kms_cbc_encrypt(kr_kms_is_v6(kr_le16(d + 2)), msg + 4, plain, msg + 20, sizeof(plain)) !=
            0 ||
        check(msg, sizeof(msg)) != 0)
        abort();
    return 0;
}
