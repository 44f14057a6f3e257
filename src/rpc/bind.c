/*
 * bind.c - bind (11) / alter_context (14) and bind_ack (12) /
 * alter_context_resp (15) bodies (kms-protocol.md 1.2, 1.3).
 *
 * bind body, offsets from the PDU start:
 *   16 max_xmit u16 | 18 max_recv u16 | 20 assoc_group u32
 *   24 n_ctx u8 + 3 reserved | 28 items: ctx_id u16, n_ts u8, reserved u8,
 *   abstract syntax (16 + u32), n_ts transfer syntaxes (16 + u32 each)
 *   e.g. 1 item: d0 16 d0 16 00 00 00 00 01 00 00 00  00 00 01 00 7521c851...
 *
 * bind_ack body:
 *   16 max_xmit | 18 max_recv | 20 assoc_group | 24 sec_addr_len L u16
 *   26 sec_addr (L bytes, "1688\0") | pad to a 4-byte boundary from the PDU
 *   start | n_results u8 + 3 reserved | results: result u16, reason u16,
 *   transfer syntax (16 + u32)
 *   e.g. 06 00 "41323\0" 01 00 00 00  00 00 00 00 045d888a...
 *
 * Every reserved and pad byte is kept in the struct so that a decoded PDU
 * encodes back to the same bytes: the pad after sec_addr holds whatever the
 * sender's buffer held (Windows and vlmcsd leave garbage there).
 */
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"
#include "rpc-internal.h"

/* Bytes of alignment after sec_addr: sec_addr starts at 26. */
static size_t secaddr_pad(size_t l)
{
    return (4 - ((26 + l) & 3)) & 3;
}

int kr_rpc_bind_decode(const uint8_t *pdu, size_t len, struct kr_rpc_bind *out, const char **why)
{
    struct kr_rd r;
    int rc = rpc_pdu_open(pdu, len, KR_PT_BIND, KR_PT_ALTER, &out->hdr, &r, why);
    if (rc < 0)
        return rc;
    out->max_xmit = kr_rd_u16(&r);
    out->max_recv = kr_rd_u16(&r);
    out->assoc_group = kr_rd_u32(&r);
    out->n_ctx = kr_rd_u8(&r);
    kr_rd_copy(&r, out->reserved, sizeof(out->reserved));
    if (r.err) /* cannot happen after framing (28 is the minimum), kept for safety */
        return kr_fail(why, KR_EMALF, "bind shorter than its fixed body");
    if (out->n_ctx > KR_RPC_MAX_CTX)
        return kr_fail(why, KR_ETOOBIG, "bind offers more than KR_RPC_MAX_CTX context items");
    memset(out->ctx, 0, sizeof(out->ctx));
    for (unsigned i = 0; i < out->n_ctx; i++) {
        struct kr_rpc_ctx_item *c = &out->ctx[i];
        c->ctx_id = kr_rd_u16(&r);
        c->n_ts = kr_rd_u8(&r);
        c->reserved = kr_rd_u8(&r);
        rpc_syntax_read(&r, &c->abstract);
        if (r.err)
            return kr_fail(why, KR_EMALF, "context items run past frag_length");
        if (c->n_ts > KR_RPC_MAX_TS)
            return kr_fail(why, KR_ETOOBIG,
                           "context item offers more than KR_RPC_MAX_TS transfer syntaxes");
        for (unsigned j = 0; j < c->n_ts; j++)
            rpc_syntax_read(&r, &c->ts[j]);
        if (r.err)
            return kr_fail(why, KR_EMALF, "transfer syntaxes run past frag_length");
    }
    return rpc_body_end(&r, 1, "bind body runs past frag_length", why);
}

int kr_rpc_bind_encode(const struct kr_rpc_bind *in, uint8_t *out, size_t cap, size_t *outlen)
{
    if (in->hdr.ptype != KR_PT_BIND && in->hdr.ptype != KR_PT_ALTER)
        return KR_EINVAL;
    if (in->n_ctx > KR_RPC_MAX_CTX)
        return KR_EINVAL;
    for (unsigned i = 0; i < in->n_ctx; i++)
        if (in->ctx[i].n_ts > KR_RPC_MAX_TS)
            return KR_EINVAL;
    struct kr_wr w = rpc_pdu_begin(out, cap, in->hdr.ptype, in->hdr.flags, in->hdr.call_id);
    kr_wr_u16(&w, in->max_xmit);
    kr_wr_u16(&w, in->max_recv);
    kr_wr_u32(&w, in->assoc_group);
    kr_wr_u8(&w, in->n_ctx);
    kr_wr_bytes(&w, in->reserved, sizeof(in->reserved));
    for (unsigned i = 0; i < in->n_ctx; i++) {
        const struct kr_rpc_ctx_item *c = &in->ctx[i];
        kr_wr_u16(&w, c->ctx_id);
        kr_wr_u8(&w, c->n_ts);
        kr_wr_u8(&w, c->reserved);
        rpc_syntax_write(&w, &c->abstract);
        for (unsigned j = 0; j < c->n_ts; j++)
            rpc_syntax_write(&w, &c->ts[j]);
    }
    return rpc_pdu_end(&w, outlen);
}

int kr_rpc_bind_ack_decode(const uint8_t *pdu, size_t len, struct kr_rpc_bind_ack *out,
                           const char **why)
{
    struct kr_rd r;
    int rc = rpc_pdu_open(pdu, len, KR_PT_BIND_ACK, KR_PT_ALTER_RESP, &out->hdr, &r, why);
    if (rc < 0)
        return rc;
    out->max_xmit = kr_rd_u16(&r);
    out->max_recv = kr_rd_u16(&r);
    out->assoc_group = kr_rd_u32(&r);
    out->sec_addr_len = kr_rd_u16(&r);
    if (out->sec_addr_len > kr_rd_left(&r))
        return kr_fail(why, KR_EMALF, "sec_addr length runs past frag_length");
    if (out->sec_addr_len > KR_RPC_SECADDR_MAX)
        return kr_fail(why, KR_ETOOBIG, "sec_addr longer than KR_RPC_SECADDR_MAX");
    memset(out->sec_addr, 0, sizeof(out->sec_addr));
    kr_rd_copy(&r, out->sec_addr, out->sec_addr_len);
    /* The struct promises a C string; an unterminated port_spec is not one
     * (MS-RPCE port_any_t is NUL-terminated). */
    if (out->sec_addr_len > 0 && out->sec_addr[out->sec_addr_len - 1] != '\0')
        return kr_fail(why, KR_EMALF, "sec_addr is not NUL-terminated");
    memset(out->pad, 0, sizeof(out->pad));
    kr_rd_copy(&r, out->pad, secaddr_pad(out->sec_addr_len));
    out->n_results = kr_rd_u8(&r);
    kr_rd_copy(&r, out->reserved, sizeof(out->reserved));
    if (r.err)
        return kr_fail(why, KR_EMALF, "sec_addr padding and n_results run past frag_length");
    if (out->n_results > KR_RPC_MAX_CTX)
        return kr_fail(why, KR_ETOOBIG, "bind_ack carries more than KR_RPC_MAX_CTX results");
    memset(out->results, 0, sizeof(out->results));
    if ((size_t)out->n_results * 24 > kr_rd_left(&r))
        return kr_fail(why, KR_EMALF, "bind_ack results run past frag_length");
    for (unsigned i = 0; i < out->n_results; i++) {
        struct kr_rpc_result *res = &out->results[i];
        res->result = kr_rd_u16(&r);
        res->reason = kr_rd_u16(&r);
        rpc_syntax_read(&r, &res->ts);
    }
    return rpc_body_end(&r, 1, "bind_ack body runs past frag_length", why);
}

int kr_rpc_bind_ack_encode(const struct kr_rpc_bind_ack *in, uint8_t *out, size_t cap,
                           size_t *outlen)
{
    if (in->hdr.ptype != KR_PT_BIND_ACK && in->hdr.ptype != KR_PT_ALTER_RESP)
        return KR_EINVAL;
    if (in->sec_addr_len > KR_RPC_SECADDR_MAX || in->n_results > KR_RPC_MAX_CTX)
        return KR_EINVAL;
    struct kr_wr w = rpc_pdu_begin(out, cap, in->hdr.ptype, in->hdr.flags, in->hdr.call_id);
    kr_wr_u16(&w, in->max_xmit);
    kr_wr_u16(&w, in->max_recv);
    kr_wr_u32(&w, in->assoc_group);
    kr_wr_u16(&w, in->sec_addr_len);
    kr_wr_bytes(&w, in->sec_addr, in->sec_addr_len);
    kr_wr_bytes(&w, in->pad, secaddr_pad(in->sec_addr_len));
    kr_wr_u8(&w, in->n_results);
    kr_wr_bytes(&w, in->reserved, sizeof(in->reserved));
    for (unsigned i = 0; i < in->n_results; i++) {
        kr_wr_u16(&w, in->results[i].result);
        kr_wr_u16(&w, in->results[i].reason);
        rpc_syntax_write(&w, &in->results[i].ts);
    }
    return rpc_pdu_end(&w, outlen);
}
