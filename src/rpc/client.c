/*
 * client.c - the client side of binding to the KMS interface: the bind that
 * kmsrelayd's backend pool, its health checks and the DNS audit's probe all
 * send, and the test of the answer they all need.
 */
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"

int kr_rpc_kms_bind_encode(uint32_t call_id, uint16_t max_frag, bool with_ndr64, uint8_t *out,
                           size_t cap, size_t *outlen)
{
    struct kr_rpc_bind b;
    memset(&b, 0, sizeof(b));
    b.hdr.ptype = KR_PT_BIND;
    b.hdr.call_id = call_id;
    b.max_xmit = b.max_recv = max_frag;
    b.n_ctx = with_ndr64 ? 2 : 1;
    for (unsigned i = 0; i < b.n_ctx; i++) {
        b.ctx[i].ctx_id = (uint16_t)i;
        b.ctx[i].n_ts = 1;
        memcpy(b.ctx[i].abstract.uuid, kr_rpc_kms_iface, 16);
        b.ctx[i].abstract.version = 1; /* v1.0 */
    }
    memcpy(b.ctx[0].ts[0].uuid, kr_rpc_ndr32_uuid, 16);
    b.ctx[0].ts[0].version = 2;
    if (with_ndr64) {
        memcpy(b.ctx[1].ts[0].uuid, kr_rpc_ndr64_uuid, 16);
        b.ctx[1].ts[0].version = 1;
    }
    return kr_rpc_bind_encode(&b, out, cap, outlen);
}

int kr_rpc_kms_bind_accepted(const struct kr_rpc_bind_ack *ack)
{
    for (unsigned i = 0; i < ack->n_results && i < KR_RPC_MAX_CTX; i++) {
        if (ack->results[i].result != KR_BIND_ACCEPT)
            continue;
        int kind = kr_rpc_syntax_kind(&ack->results[i].ts);
        if (kind == KR_TS_NDR32 || kind == KR_TS_NDR64)
            return kind;
    }
    return 0;
}
