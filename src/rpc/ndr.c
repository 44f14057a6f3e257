/*
 * ndr.c - NDR32 / NDR64 framing of the stubs of RequestActivation
 * (opnum 0; kms-protocol.md 1.4, 1.5):
 *
 *   int RequestActivation([in] int requestSize,
 *                         [in, size_is(requestSize)] unsigned char *request,
 *                         [out] int *responseSize,
 *                         [out, size_is(, *responseSize)] unsigned char **response);
 *
 *   request NDR32:  N u32 | N u32 (conformance) | N bytes
 *                   e.g. fc 00 00 00 fc 00 00 00 00 00 04 00 ...  (V4, N = 252)
 *   request NDR64:  N u64 | N u64 | N bytes
 *   response NDR32: M u32 | referent u32 | M u32 | M bytes | pad4 | HRESULT u32
 *                   e.g. 9e 00 00 00 00 00 02 00 9e 00 00 00 ... 00 00 | 00 00 00 00
 *   response NDR64: M u64 | referent u64 | M u64 | M bytes | pad4 | HRESULT u32
 *   error reply:    0 | 0 (NULL referent) | HRESULT, in u32 (NDR32) or u64
 *                   (NDR64) length/pointer fields; e.g. 00000000 00000000 42f004c0
 *
 * Lengths are checked before use: the size must equal the conformance
 * count, stay within KR_NDR_MSG_MAX, and fit in the stub. 64-bit lengths are
 * compared as 64-bit values, never truncated to size_t or u32 first.
 */
#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"

/* Checks a (size, conformance) pair and that `size` bytes fit in `room`. */
static int check_len(uint64_t size, uint64_t conf, size_t room, const char **why)
{
    if (size != conf)
        return kr_fail(why, KR_EMALF, "NDR size differs from the conformance count");
    if (size > KR_NDR_MSG_MAX)
        return kr_fail(why, KR_ETOOBIG, "NDR message longer than KR_NDR_MSG_MAX");
    if (size > room)
        return kr_fail(why, KR_EMALF, "NDR message runs past the end of the stub");
    return 0;
}

/* Parses a request stub; *used is the number of stub bytes it occupies. */
/* Width of one length or pointer field: 4 in NDR32, 8 in NDR64, 0 otherwise. */
static size_t ndr_width(enum kr_ndr ndr)
{
    return ndr == KR_NDR32 ? 4 : ndr == KR_NDR64 ? 8 : 0;
}

static int req_parse(enum kr_ndr ndr, const uint8_t *stub, size_t len, const uint8_t **msg,
                     size_t *msg_len, size_t *used, const char **why)
{
    size_t w = ndr_width(ndr);
    if (!w)
        return kr_fail(why, KR_EINVAL, "unknown NDR syntax");
    if (len < 2 * w)
        return kr_fail(why, KR_EMALF, "request stub shorter than its NDR length fields");
    uint64_t n = w == 4 ? kr_le32(stub) : kr_le64(stub);
    uint64_t conf = w == 4 ? kr_le32(stub + 4) : kr_le64(stub + 8);
    int rc = check_len(n, conf, len - 2 * w, why);
    if (rc < 0)
        return rc;
    *msg = stub + 2 * w;
    *msg_len = (size_t)n;
    *used = 2 * w + (size_t)n;
    return 0;
}

static int resp_parse(enum kr_ndr ndr, const uint8_t *stub, size_t len, struct kr_ndr_resp *out,
                      size_t *used, const char **why)
{
    size_t w = ndr_width(ndr);
    if (!w)
        return kr_fail(why, KR_EINVAL, "unknown NDR syntax");
    if (len < 2 * w)
        return kr_fail(why, KR_EMALF, "response stub shorter than its size and pointer");
    uint64_t m = w == 4 ? kr_le32(stub) : kr_le64(stub);
    uint64_t ref = w == 4 ? kr_le32(stub + 4) : kr_le64(stub + 8);
    if (ref == 0) {
        /* Error reply: the NULL pointer is followed directly by the HRESULT
         * (a u32 needs no alignment after 4- or 8-byte fields). */
        if (m != 0)
            return kr_fail(why, KR_EMALF, "NULL response pointer with a non-zero size");
        if (len < 2 * w + 4)
            return kr_fail(why, KR_EMALF, "error reply stub too short for its HRESULT");
        out->msg = NULL;
        out->msg_len = 0;
        out->hresult = kr_le32(stub + 2 * w);
        *used = 2 * w + 4;
        return 0;
    }
    if (len < 3 * w)
        return kr_fail(why, KR_EMALF, "response stub shorter than its conformance count");
    uint64_t conf = w == 4 ? kr_le32(stub + 8) : kr_le64(stub + 16);
    int rc = check_len(m, conf, len - 3 * w, why);
    if (rc < 0)
        return rc;
    size_t off = 3 * w + (size_t)m;
    off += (4 - (off & 3)) & 3; /* the u32 HRESULT is 4-aligned */
    if (off > len || len - off < 4)
        return kr_fail(why, KR_EMALF, "response stub ends before its HRESULT");
    out->msg = stub + 3 * w;
    out->msg_len = (size_t)m;
    out->hresult = kr_le32(stub + off);
    *used = off + 4;
    return 0;
}

int kr_ndr_req_decode(enum kr_ndr ndr, const uint8_t *stub, size_t len, const uint8_t **msg,
                      size_t *msg_len, const char **why)
{
    size_t used;
    return req_parse(ndr, stub, len, msg, msg_len, &used, why);
}

int kr_ndr_resp_decode(enum kr_ndr ndr, const uint8_t *stub, size_t len, struct kr_ndr_resp *out,
                       const char **why)
{
    size_t used;
    return resp_parse(ndr, stub, len, out, &used, why);
}

/* Writes a length field of the syntax's width. */
static void put_len(struct kr_wr *w, enum kr_ndr ndr, uint64_t v)
{
    if (ndr == KR_NDR32)
        kr_wr_u32(w, (uint32_t)v);
    else
        kr_wr_u64(w, v);
}

int kr_ndr_req_encode(enum kr_ndr ndr, const uint8_t *msg, size_t msg_len, uint8_t *out, size_t cap,
                      size_t *outlen)
{
    if ((ndr != KR_NDR32 && ndr != KR_NDR64) || msg_len > KR_NDR_MSG_MAX ||
        (msg == NULL && msg_len > 0))
        return KR_EINVAL;
    struct kr_wr w = kr_wr_init(out, cap);
    put_len(&w, ndr, msg_len);
    put_len(&w, ndr, msg_len);
    kr_wr_bytes(&w, msg, msg_len);
    if (w.err)
        return w.err;
    *outlen = w.off;
    return 0;
}

int kr_ndr_resp_encode(enum kr_ndr ndr, const uint8_t *msg, size_t msg_len, uint32_t hresult,
                       uint8_t *out, size_t cap, size_t *outlen)
{
    if ((ndr != KR_NDR32 && ndr != KR_NDR64) || msg_len > KR_NDR_MSG_MAX ||
        (msg == NULL && msg_len > 0))
        return KR_EINVAL;
    struct kr_wr w = kr_wr_init(out, cap);
    if (msg == NULL) {
        put_len(&w, ndr, 0);
        put_len(&w, ndr, 0); /* NULL pointer */
    } else {
        put_len(&w, ndr, msg_len);
        put_len(&w, ndr, KR_NDR_REFERENT);
        put_len(&w, ndr, msg_len);
        kr_wr_bytes(&w, msg, msg_len);
        kr_wr_zero(&w, (4 - (w.off & 3)) & 3);
    }
    kr_wr_u32(&w, hresult);
    if (w.err)
        return w.err;
    *outlen = w.off;
    return 0;
}

int kr_ndr_guess(const uint8_t *stub, size_t len, int is_response)
{
    int ok[2];
    size_t used[2] = {0, 0};
    const enum kr_ndr kinds[2] = {KR_NDR32, KR_NDR64};
    for (int i = 0; i < 2; i++) {
        if (is_response) {
            struct kr_ndr_resp r;
            ok[i] = resp_parse(kinds[i], stub, len, &r, &used[i], NULL) == 0;
        } else {
            const uint8_t *m;
            size_t ml;
            ok[i] = req_parse(kinds[i], stub, len, &m, &ml, &used[i], NULL) == 0;
        }
    }
    /* Both can parse (an NDR64 error reply also reads as an NDR32 one with
     * 8 bytes left over); the reading that uses the whole stub wins. */
    for (int i = 0; i < 2; i++)
        if (ok[i] && used[i] == len)
            return kinds[i];
    for (int i = 0; i < 2; i++)
        if (ok[i])
            return kinds[i];
    return KR_EMALF;
}
