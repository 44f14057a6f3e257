/*
 * pdu.c - the PDUs a simulated client sends, and the checks on what comes
 * back. Pure: no I/O and no allocation, so the connection code stays a thin
 * state machine.
 *
 * Binds mimic the real clients (kms-protocol.md 1.2/1.3): flags 0x13,
 * max_xmit/max_recv 5840, assoc_group 0; NDR32 on context 0, NDR64 on 1, BTFN
 * (mask 3) on 2. The alter_context offers NDR32 on context 0 only.
 */
#include <string.h>

#include "kmsrelay/bytes.h"
#include "loadgen/loadgen.h"

#define LG_FRAG 5840
#define LG_GRACE_MINUTES 43200
#define LG_LICENSE_OOB_GRACE 2

static void set_syntax(struct kr_rpc_syntax *s, const uint8_t uuid[16], uint32_t version)
{
    memcpy(s->uuid, uuid, 16);
    s->version = version;
}

static void hdr_init(struct kr_rpc_hdr *h, uint8_t ptype, uint8_t flags, uint32_t call_id)
{
    memset(h, 0, sizeof(*h));
    h->vers = 5;
    h->vers_minor = 0;
    h->ptype = ptype;
    h->flags = flags;
    h->drep[0] = 0x10;
    h->call_id = call_id;
}

unsigned lg_pdu_bind_items(enum lg_ndr_mode mode, int alter)
{
    return (alter || mode == LG_NDR32) ? 1 : 3;
}

int lg_pdu_bind(enum lg_ndr_mode mode, int alter, uint32_t call_id, uint8_t *out, size_t cap,
                size_t *len)
{
    struct kr_rpc_bind b;
    memset(&b, 0, sizeof(b));
    hdr_init(&b.hdr, alter ? KR_PT_ALTER : KR_PT_BIND, KR_PFC_FIRST | KR_PFC_LAST | KR_PFC_CONC_MPX,
             call_id);
    b.max_xmit = LG_FRAG;
    b.max_recv = LG_FRAG;
    b.n_ctx = (uint8_t)lg_pdu_bind_items(mode, alter);
    for (unsigned i = 0; i < b.n_ctx; i++) {
        struct kr_rpc_ctx_item *it = &b.ctx[i];
        it->ctx_id = (uint16_t)i;
        it->n_ts = 1;
        set_syntax(&it->abstract, kr_rpc_kms_iface, 1); /* v1.0: major 1, minor 0 */
    }
    set_syntax(&b.ctx[0].ts[0], kr_rpc_ndr32_uuid, 2);
    if (b.n_ctx == 3) {
        uint8_t btfn[16] = {0};
        memcpy(btfn, kr_rpc_btfn_prefix, 8);
        btfn[8] = KR_BTFN_SEC_CTX_MULTIPLEX | KR_BTFN_KEEP_ON_ORPHAN;
        set_syntax(&b.ctx[1].ts[0], kr_rpc_ndr64_uuid, 1);
        set_syntax(&b.ctx[2].ts[0], btfn, 1);
    }
    return kr_rpc_bind_encode(&b, out, cap, len);
}

int lg_pdu_bind_ack(const uint8_t *pdu, size_t len, int alter, unsigned n_offered, uint32_t call_id,
                    struct lg_ctx_state *st, const char **why)
{
    struct kr_rpc_bind_ack ack;
    uint8_t want = alter ? KR_PT_ALTER_RESP : KR_PT_BIND_ACK;

    if (pdu[2] == KR_PT_BIND_NAK)
        return kr_fail(why, LG_K_BIND_REJECTED, "bind_nak");
    if (pdu[2] == KR_PT_FAULT)
        return kr_fail(why, LG_K_BIND_REJECTED, "fault in answer to the bind");
    if (pdu[2] != want)
        return kr_fail(why, LG_K_PROTOCOL,
                       alter ? "expected alter_context_resp" : "expected bind_ack");
    if (kr_rpc_bind_ack_decode(pdu, len, &ack, why) != 0)
        return LG_K_PROTOCOL;
    if (ack.hdr.call_id != call_id)
        return kr_fail(why, LG_K_PROTOCOL, "bind_ack call_id differs from the bind's");
    if (ack.n_results != n_offered)
        return kr_fail(why, LG_K_PROTOCOL, "bind_ack result count differs from the items");
    /* Result i answers item i; a context counts only when accepted with the
     * transfer syntax we offered on it. */
    if (ack.results[0].result == KR_BIND_ACCEPT &&
        kr_rpc_syntax_kind(&ack.results[0].ts) == KR_TS_NDR32)
        st->ndr32_ok = 1;
    if (!alter && n_offered == 3 && ack.results[1].result == KR_BIND_ACCEPT &&
        kr_rpc_syntax_kind(&ack.results[1].ts) == KR_TS_NDR64)
        st->ndr64_ok = 1;
    return -1;
}

/* Workstation name: prefix + index + ".example.test" (options.c bounds the
 * prefix so the name fits 63 UTF-16 units and the NUL). */
static void set_workstation(struct kr_kms_request *rq, const char *prefix, uint32_t index)
{
    char *w = rq->workstation;
    size_t cap = sizeof(rq->workstation);
    size_t n = strlen(prefix);
    if (n > cap - 24)
        n = cap - 24;
    memcpy(w, prefix, n);
    /* Digits by hand: snprintf per activation shows up in profiles. */
    char digits[10];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + index % 10);
        index /= 10;
    } while (index);
    while (nd)
        w[n++] = digits[--nd];
    memcpy(w + n, LG_WS_SUFFIX, sizeof(LG_WS_SUFFIX));
    kr_utf8_to_utf16(w, rq->workstation16, KR_KMS_WS_CHARS - 1);
}

int lg_pdu_request(const struct lg_config *cfg, const struct lg_client *c, uint64_t ft,
                   uint64_t iv_seed, enum kr_ndr ndr, uint16_t ctx_id, uint32_t call_id,
                   uint8_t *out, size_t cap, size_t *len, struct lg_expect *ex)
{
    const struct lg_product *p = &lg_products[c->product];
    struct kr_kms_request rq;
    uint8_t iv[16], msg[KR_NDR_MSG_MAX], stub[KR_NDR_MSG_MAX + 32];
    size_t mlen, slen;
    int rc;

    memset(&rq, 0, sizeof(rq));
    rq.ver_major = p->ver_major;
    rq.ver_minor = 0;
    rq.vm_info = c->vm;
    rq.license_status = LG_LICENSE_OOB_GRACE;
    rq.grace_minutes = LG_GRACE_MINUTES;
    memcpy(rq.app_id, p->app_id, 16);
    memcpy(rq.sku_id, p->sku_id, 16);
    memcpy(rq.kms_id, p->kms_id, 16);
    memcpy(rq.cmid, c->cmid, 16);
    memcpy(rq.prev_cmid, cfg->prev_cmid, 16);
    rq.n_policy = p->n_policy;
    rq.request_time = ft;
    set_workstation(&rq, cfg->ws_prefix, c->ws_index);
    kr_put_le64(iv, lg_mix64(iv_seed));
    kr_put_le64(iv + 8, lg_mix64(iv_seed ^ 0x5851F42D4C957F2Dull));

    if ((rc = kr_kms_request_encode(&rq, iv, msg, sizeof(msg), &mlen)) != 0)
        return rc;
    if ((rc = kr_ndr_req_encode(ndr, msg, mlen, stub, sizeof(stub), &slen)) != 0)
        return rc;

    struct kr_rpc_request r;
    memset(&r, 0, sizeof(r));
    hdr_init(&r.hdr, KR_PT_REQUEST, KR_PFC_FIRST | KR_PFC_LAST, call_id);
    r.alloc_hint = (uint32_t)slen;
    r.ctx_id = ctx_id;
    r.opnum = 0;
    r.stub = stub;
    r.stub_len = slen;
    if ((rc = kr_rpc_request_encode(&r, out, cap, len)) != 0)
        return rc;

    ex->call_id = call_id;
    ex->ctx_id = ctx_id;
    ex->ndr = ndr;
    ex->ver_major = p->ver_major;
    memcpy(ex->cmid, c->cmid, 16);
    ex->request_time = ft;
    return 0;
}

static int fail(struct lg_answer *ans, int kind, const char *why)
{
    ans->kind = kind;
    ans->why = why;
    return kind;
}

int lg_pdu_answer(const uint8_t *pdu, size_t len, const struct lg_expect *ex, struct lg_answer *ans)
{
    struct kr_rpc_response r;
    struct kr_ndr_resp nr;
    const char *why = NULL;

    ans->hresult = 0;
    ans->status = 0;
    ans->why = NULL;
    if (pdu[2] == KR_PT_FAULT) {
        struct kr_rpc_fault f;
        if (kr_rpc_fault_decode(pdu, len, &f, &why) != 0)
            return fail(ans, LG_K_PROTOCOL, why);
        ans->status = f.status;
        return fail(ans, LG_K_FAULT, "fault PDU");
    }
    if (pdu[2] != KR_PT_RESPONSE)
        return fail(ans, LG_K_PROTOCOL, "expected a response PDU");
    if (kr_rpc_response_decode(pdu, len, &r, &why) != 0)
        return fail(ans, LG_K_PROTOCOL, why);
    if (r.hdr.call_id != ex->call_id)
        return fail(ans, LG_K_PROTOCOL, "response call_id differs from the request's");
    if (r.ctx_id != ex->ctx_id)
        return fail(ans, LG_K_PROTOCOL, "response ctx_id differs from the request's");
    if (kr_ndr_resp_decode(ex->ndr, r.stub, r.stub_len, &nr, &why) != 0)
        return fail(ans, LG_K_PROTOCOL, why);
    if (nr.msg == NULL || nr.hresult != 0) {
        if (nr.hresult == 0)
            return fail(ans, LG_K_PROTOCOL, "NULL response with HRESULT 0");
        ans->hresult = nr.hresult;
        return ans->kind = -1;
    }
    if (kr_kms_response_decode(nr.msg, nr.msg_len, &ans->resp, &why) != 0)
        return fail(ans, LG_K_PROTOCOL, why);
    if (ans->resp.ver_major != ex->ver_major || ans->resp.ver_minor != 0)
        return fail(ans, LG_K_MISMATCH, "response version differs from the request's");
    if (memcmp(ans->resp.cmid, ex->cmid, 16) != 0)
        return fail(ans, LG_K_MISMATCH, "CMID echo differs from the request's");
    if (ans->resp.request_time != ex->request_time)
        return fail(ans, LG_K_MISMATCH, "request time echo differs from the request's");
    return ans->kind = -1;
}
