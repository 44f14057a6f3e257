/*
 * answer.c - the server side of presentation-context negotiation: what a
 * Windows 8+ KMS host (and vlmcsd emulating one) puts in the bind_ack or
 * alter_context_resp for each offered context item (kms-protocol.md 1.3).
 *
 * Per item the best transfer syntax wins: NDR64 (when offered by policy),
 * then NDR32, then BTFN; the abstract syntax must be KMS v1.0 for the NDR
 * syntaxes. A second pass then rejects the NDR32 items when NDR64 was
 * accepted in the same PDU, because that is what Windows 8+ hosts do: the
 * client then moves its first request to NDR32 through an alter_context.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"

static int is_kms_iface(const struct kr_rpc_syntax *abstract)
{
    /* version 1.0: major 1 in the low half, minor 0 in the high half */
    return memcmp(abstract->uuid, kr_rpc_kms_iface, 16) == 0 && abstract->version == 1;
}

/* Picks an item's answer from its transfer syntaxes; returns the chosen
 * kind (KR_TS_OTHER when nothing is acceptable) and fills `res`. */
static enum kr_rpc_tskind answer_item(const struct kr_rpc_ctx_item *c,
                                      const struct kr_rpc_bind_policy *pol,
                                      struct kr_rpc_result *res)
{
    int kms = is_kms_iface(&c->abstract);
    int best = -1, best_rank = 0;
    unsigned n = c->n_ts <= KR_RPC_MAX_TS ? c->n_ts : KR_RPC_MAX_TS;
    for (unsigned j = 0; j < n; j++) {
        int rank = 0;
        switch (kr_rpc_syntax_kind(&c->ts[j])) {
        case KR_TS_NDR64:
            rank = kms && pol->ndr64 ? 3 : 0;
            break;
        case KR_TS_NDR32:
            rank = kms ? 2 : 0;
            break;
        case KR_TS_BTFN:
            /* Feature negotiation is about the connection, not the
             * interface, so it is answered whatever the abstract syntax. */
            rank = pol->btfn ? 1 : 0;
            break;
        default:
            break;
        }
        if (rank > best_rank) {
            best_rank = rank;
            best = (int)j;
        }
    }
    memset(res, 0, sizeof(*res));
    if (best < 0) {
        res->result = KR_BIND_PROVIDER_REJECT;
        res->reason = kms ? KR_REASON_TRANSFER_NOT_SUPPORTED : KR_REASON_ABSTRACT_NOT_SUPPORTED;
        return KR_TS_OTHER;
    }
    const struct kr_rpc_syntax *ts = &c->ts[best];
    if (best_rank == 1) {
        /* negotiate_ack: reason is the subset of the requested features we
         * support; the transfer syntax stays zero (MS-RPCE 3.3.1.5.3). */
        uint64_t requested = kr_le64(ts->uuid + 8);
        res->result = KR_BIND_NEGOTIATE_ACK;
        res->reason = (uint16_t)(requested & (KR_BTFN_SEC_CTX_MULTIPLEX | KR_BTFN_KEEP_ON_ORPHAN));
        return KR_TS_BTFN;
    }
    res->result = KR_BIND_ACCEPT;
    res->reason = KR_REASON_NONE;
    res->ts = *ts;
    return best_rank == 3 ? KR_TS_NDR64 : KR_TS_NDR32;
}

int kr_rpc_bind_answer(const struct kr_rpc_bind *req, const struct kr_rpc_bind_policy *pol,
                       uint16_t port, uint32_t assoc_group, struct kr_rpc_bind_ack *ack)
{
    if (!req || !pol || !ack || req->n_ctx > KR_RPC_MAX_CTX)
        return KR_EINVAL;
    int alter;
    if (req->hdr.ptype == KR_PT_BIND)
        alter = 0;
    else if (req->hdr.ptype == KR_PT_ALTER)
        alter = 1;
    else
        return KR_EINVAL;

    memset(ack, 0, sizeof(*ack));
    ack->hdr.vers = 5;
    ack->hdr.vers_minor = 0;
    ack->hdr.ptype = alter ? KR_PT_ALTER_RESP : KR_PT_BIND_ACK;
    /* vlmcsd copies the bind header (CONC_MPX included, the client checks
     * it) but forces alter_context_resp to FIRST|LAST. */
    ack->hdr.flags = alter ? (KR_PFC_FIRST | KR_PFC_LAST) : req->hdr.flags;
    ack->hdr.drep[0] = 0x10;
    ack->hdr.call_id = req->hdr.call_id;
    ack->max_xmit = req->max_xmit;
    ack->max_recv = req->max_recv;
    ack->assoc_group = req->assoc_group ? req->assoc_group : assoc_group;
    if (!alter) {
        int n = snprintf(ack->sec_addr, sizeof(ack->sec_addr), "%u", (unsigned)port);
        ack->sec_addr_len = (uint16_t)(n + 1);
    }

    enum kr_rpc_tskind kind[KR_RPC_MAX_CTX];
    int ndr64_accepted = 0;
    ack->n_results = req->n_ctx;
    for (unsigned i = 0; i < req->n_ctx; i++) {
        kind[i] = answer_item(&req->ctx[i], pol, &ack->results[i]);
        ndr64_accepted |= kind[i] == KR_TS_NDR64;
    }
    if (ndr64_accepted && !pol->ndr32_with_ndr64) {
        for (unsigned i = 0; i < req->n_ctx; i++) {
            if (kind[i] != KR_TS_NDR32)
                continue;
            memset(&ack->results[i], 0, sizeof(ack->results[i]));
            ack->results[i].result = KR_BIND_PROVIDER_REJECT;
            ack->results[i].reason = KR_REASON_TRANSFER_NOT_SUPPORTED;
        }
    }

    /* frag_length as the encoder will compute it, for callers that log it. */
    size_t l = ack->sec_addr_len;
    size_t a = (26 + l + 3) & ~(size_t)3;
    ack->hdr.frag_len = (uint16_t)(a + 4 + 24 * (size_t)ack->n_results);
    return 0;
}
