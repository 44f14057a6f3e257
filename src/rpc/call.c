/*
 * call.c - request (0), response (2) and fault (3) PDUs (kms-protocol.md
 * 1.4 - 1.6). The stub after the fixed fields is not interpreted here (see
 * ndr.c): decoders lend a pointer into the PDU, encoders copy it.
 *
 *   request:  16 alloc_hint u32 | 20 p_cont_id u16 | 22 opnum u16
 *             [24 object UUID, only with PFC_OBJECT_UUID] | stub
 *             e.g. 0c 01 00 00 00 00 00 00 | 04 01 00 00 04 01 00 00 ...
 *   response: 16 alloc_hint | 20 p_cont_id | 22 cancel_count u8 |
 *             23 reserved u8 | 24 stub
 *   fault:    16 alloc_hint | 20 p_cont_id | 22 cancel_count | 23 reserved |
 *             24 status u32 | 28 reserved2 u32 | 32 optional stub
 *             e.g. 20 00 00 00 00 00 00 00 03 00 01 1c 00 00 00 00
 *
 * alloc_hint, cancel_count and the reserved fields are kept as received so
 * that a decoded PDU re-encodes byte for byte.
 */
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"
#include "rpc-internal.h"

/* The rest of the PDU, up to frag_length, as a borrowed stub. */
static void take_stub(struct kr_rd *r, const uint8_t **stub, size_t *stub_len)
{
    *stub_len = kr_rd_left(r);
    *stub = kr_rd_take(r, *stub_len);
}

int kr_rpc_request_decode(const uint8_t *pdu, size_t len, struct kr_rpc_request *out,
                          const char **why)
{
    struct kr_rd r;
    int rc = rpc_pdu_open(pdu, len, KR_PT_REQUEST, KR_PT_REQUEST, &out->hdr, &r, why);
    if (rc < 0)
        return rc;
    out->alloc_hint = kr_rd_u32(&r);
    out->ctx_id = kr_rd_u16(&r);
    out->opnum = kr_rd_u16(&r);
    if (out->hdr.flags & KR_PFC_OBJECT_UUID)
        kr_rd_copy(&r, out->object, sizeof(out->object));
    else
        memset(out->object, 0, sizeof(out->object));
    take_stub(&r, &out->stub, &out->stub_len);
    return rpc_body_end(&r, 1, "request shorter than its fixed body", why);
}

int kr_rpc_request_encode(const struct kr_rpc_request *in, uint8_t *out, size_t cap, size_t *outlen)
{
    if (in->stub_len > 0 && in->stub == NULL)
        return KR_EINVAL;
    struct kr_wr w = rpc_pdu_begin(out, cap, KR_PT_REQUEST, in->hdr.flags, in->hdr.call_id);
    kr_wr_u32(&w, in->alloc_hint);
    kr_wr_u16(&w, in->ctx_id);
    kr_wr_u16(&w, in->opnum);
    if (in->hdr.flags & KR_PFC_OBJECT_UUID)
        kr_wr_bytes(&w, in->object, sizeof(in->object));
    kr_wr_bytes(&w, in->stub, in->stub_len);
    return rpc_pdu_end(&w, outlen);
}

int kr_rpc_response_decode(const uint8_t *pdu, size_t len, struct kr_rpc_response *out,
                           const char **why)
{
    struct kr_rd r;
    int rc = rpc_pdu_open(pdu, len, KR_PT_RESPONSE, KR_PT_RESPONSE, &out->hdr, &r, why);
    if (rc < 0)
        return rc;
    out->alloc_hint = kr_rd_u32(&r);
    out->ctx_id = kr_rd_u16(&r);
    out->cancel_count = kr_rd_u8(&r);
    out->reserved = kr_rd_u8(&r);
    take_stub(&r, &out->stub, &out->stub_len);
    return rpc_body_end(&r, 1, "response shorter than its fixed body", why);
}

int kr_rpc_response_encode(const struct kr_rpc_response *in, uint8_t *out, size_t cap,
                           size_t *outlen)
{
    if (in->stub_len > 0 && in->stub == NULL)
        return KR_EINVAL;
    struct kr_wr w = rpc_pdu_begin(out, cap, KR_PT_RESPONSE, in->hdr.flags, in->hdr.call_id);
    kr_wr_u32(&w, in->alloc_hint);
    kr_wr_u16(&w, in->ctx_id);
    kr_wr_u8(&w, in->cancel_count);
    kr_wr_u8(&w, in->reserved);
    kr_wr_bytes(&w, in->stub, in->stub_len);
    return rpc_pdu_end(&w, outlen);
}

int kr_rpc_fault_decode(const uint8_t *pdu, size_t len, struct kr_rpc_fault *out, const char **why)
{
    struct kr_rd r;
    int rc = rpc_pdu_open(pdu, len, KR_PT_FAULT, KR_PT_FAULT, &out->hdr, &r, why);
    if (rc < 0)
        return rc;
    out->alloc_hint = kr_rd_u32(&r);
    out->ctx_id = kr_rd_u16(&r);
    out->cancel_count = kr_rd_u8(&r);
    out->reserved = kr_rd_u8(&r);
    out->status = kr_rd_u32(&r);
    out->reserved2 = kr_rd_u32(&r);
    take_stub(&r, &out->stub, &out->stub_len);
    if (out->stub_len == 0)
        out->stub = NULL;
    return rpc_body_end(&r, 1, "fault shorter than its fixed body", why);
}

int kr_rpc_fault_encode(const struct kr_rpc_fault *in, uint8_t *out, size_t cap, size_t *outlen)
{
    if (in->stub_len > 0 && in->stub == NULL)
        return KR_EINVAL;
    struct kr_wr w = rpc_pdu_begin(out, cap, KR_PT_FAULT, in->hdr.flags, in->hdr.call_id);
    kr_wr_u32(&w, in->alloc_hint);
    kr_wr_u16(&w, in->ctx_id);
    kr_wr_u8(&w, in->cancel_count);
    kr_wr_u8(&w, in->reserved);
    kr_wr_u32(&w, in->status);
    kr_wr_u32(&w, in->reserved2);
    kr_wr_bytes(&w, in->stub, in->stub_len);
    return rpc_pdu_end(&w, outlen);
}
