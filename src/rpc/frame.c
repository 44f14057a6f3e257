/*
 * frame.c - the 16-byte common header (kms-protocol.md 1.1) and framing:
 * deciding from the bytes read so far whether a whole PDU is there, needs
 * more bytes, or can be rejected now.
 *
 *   off 0 rpc_vers 5 | 1 minor 0 | 2 PTYPE | 3 pfc_flags | 4 drep 10 00 00 00
 *   off 8 frag_length u16 | 10 auth_length u16 | 12 call_id u32
 *   e.g. bind: 05 00 0b 13 10 00 00 00 a0 00 00 00 02 00 00 00
 *
 * The checks are ordered so that the answer never depends on bytes that
 * have not arrived: with the 16 header bytes in hand every verdict except
 * "wait for the body" is final.
 */
#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"
#include "rpc-internal.h"

size_t rpc_min_frag(unsigned ptype, unsigned flags)
{
    switch (ptype) {
    case KR_PT_REQUEST: /* alloc_hint, p_cont_id, opnum [, object UUID] */
        return (flags & KR_PFC_OBJECT_UUID) ? 40 : 24;
    case KR_PT_RESPONSE: /* alloc_hint, p_cont_id, cancel_count, reserved */
        return 24;
    case KR_PT_FAULT: /* ... status, reserved2 */
        return 32;
    case KR_PT_BIND: /* max_xmit, max_recv, assoc_group, n_ctx + 3 reserved */
    case KR_PT_ALTER:
        return 28;
    case KR_PT_BIND_ACK: /* ..., sec_addr_len 0, pad to 28, n_results + 3 */
    case KR_PT_ALTER_RESP:
        return 32;
    case KR_PT_BIND_NAK: /* provider_reject_reason */
        return 18;
    default:
        return 0;
    }
}

int kr_rpc_frame(const uint8_t *buf, size_t len, size_t cap, struct kr_rpc_hdr *hdr,
                 const char **why)
{
    if (len < KR_RPC_HDR_LEN)
        return kr_fail(why, KR_EMORE, "fewer than 16 header bytes");
    if (cap == 0 || cap > KR_RPC_FRAG_MAX)
        cap = KR_RPC_FRAG_MAX;

    struct kr_rpc_hdr h;
    h.vers = buf[0];
    h.vers_minor = buf[1];
    h.ptype = buf[2];
    h.flags = buf[3];
    for (int i = 0; i < 4; i++)
        h.drep[i] = buf[4 + i];
    h.frag_len = kr_le16(buf + 8);
    h.auth_len = kr_le16(buf + 10);
    h.call_id = kr_le32(buf + 12);

    if (h.vers != 5)
        return kr_fail(why, KR_EMALF, "rpc_vers is not 5 (not connection-oriented DCE/RPC)");
    if (h.vers_minor != 0)
        return kr_fail(why, KR_EMALF, "rpc_vers_minor is not 0");
    if (h.drep[0] != 0x10)
        return kr_fail(why, KR_EUNSUP, "non little-endian data representation");
    if (h.drep[1] != 0 || h.drep[2] != 0 || h.drep[3] != 0)
        return kr_fail(why, KR_EUNSUP, "non-IEEE float or non-zero reserved drep bytes");
    size_t min = rpc_min_frag(h.ptype, h.flags);
    if (min == 0)
        return kr_fail(why, KR_EMALF, "unknown PTYPE");
    if ((h.flags & (KR_PFC_FIRST | KR_PFC_LAST)) != (KR_PFC_FIRST | KR_PFC_LAST))
        return kr_fail(why, KR_EUNSUP, "fragmented PDU (FIRST|LAST not both set)");
    if (h.auth_len != 0)
        return kr_fail(why, KR_EUNSUP, "authenticated PDU (auth_length is not 0)");
    if (h.frag_len < KR_RPC_HDR_LEN)
        return kr_fail(why, KR_EMALF, "frag_length is shorter than the 16-byte header");
    if (h.frag_len < min)
        return kr_fail(why, KR_EMALF, "frag_length is shorter than the PTYPE's fixed body");
    if (h.frag_len > cap)
        return kr_fail(why, KR_ETOOBIG, "frag_length is over the PDU size cap");
    if (hdr)
        *hdr = h;
    if (len < h.frag_len)
        return kr_fail(why, KR_EMORE, "PDU body incomplete");
    return h.frag_len;
}

void kr_rpc_hdr_write(uint8_t out[KR_RPC_HDR_LEN], uint8_t ptype, uint8_t flags, uint16_t frag_len,
                      uint32_t call_id)
{
    out[0] = 5;
    out[1] = 0;
    out[2] = ptype;
    out[3] = flags;
    out[4] = 0x10; /* little-endian integers, ASCII, IEEE floats */
    out[5] = out[6] = out[7] = 0;
    kr_put_le16(out + 8, frag_len);
    kr_put_le16(out + 10, 0); /* auth_length: KMS RPC is anonymous */
    kr_put_le32(out + 12, call_id);
}

int rpc_pdu_open(const uint8_t *pdu, size_t len, unsigned pt1, unsigned pt2, struct kr_rpc_hdr *hdr,
                 struct kr_rd *r, const char **why)
{
    int n = kr_rpc_frame(pdu, len, KR_RPC_FRAG_MAX, hdr, why);
    if (n < 0)
        return n;
    if (hdr->ptype != pt1 && hdr->ptype != pt2)
        return kr_fail(why, KR_EMALF, "PTYPE is not the one this decoder reads");
    *r = kr_rd_init(pdu, (size_t)n);
    r->off = KR_RPC_HDR_LEN;
    return 0;
}

int rpc_body_end(const struct kr_rd *r, int exact, const char *msg, const char **why)
{
    if (r->err)
        return kr_fail(why, KR_EMALF, msg);
    if (exact && r->off != r->len)
        return kr_fail(why, KR_EMALF, "bytes left over after the PDU body");
    return 0;
}

struct kr_wr rpc_pdu_begin(uint8_t *out, size_t cap, uint8_t ptype, uint8_t flags, uint32_t call_id)
{
    struct kr_wr w = kr_wr_init(out, cap);
    uint8_t *h = kr_wr_take(&w, KR_RPC_HDR_LEN);
    /* KMS never fragments; a PDU without FIRST|LAST would be refused by
     * kr_rpc_frame, so the flags are forced rather than trusted. */
    if (h)
        kr_rpc_hdr_write(h, ptype, flags | KR_PFC_FIRST | KR_PFC_LAST, 0, call_id);
    return w;
}

int rpc_pdu_end(struct kr_wr *w, size_t *outlen)
{
    if (w->err)
        return w->err;
    /* Never emit what kr_rpc_frame would refuse: encode then decode must
     * always work, on our side and on a peer with the same cap. */
    if (w->off > KR_RPC_FRAG_MAX)
        return KR_EINVAL;
    kr_put_le16(w->p + 8, (uint16_t)w->off);
    if (outlen)
        *outlen = w->off;
    return 0;
}
