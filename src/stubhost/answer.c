/*
 * answer.c - what the stub host replies to one PDU: the bind policy, RPC
 * faults, and KMS answers (success with a real count, or an HRESULT), plus
 * the JSON log line of each request.
 *
 * Boundary: responses are built with kr_kms_response_encode, which writes
 * every integrity field as zeros; nothing here computes a MAC, hash or HMAC.
 */
#include "stubhost/stubhost.h"

#include <string.h>

#include <openssl/rand.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "stubhost/cmidset.h"
#include "stubhost/jlog.h"

/* What one request turned into, for the log line. */
struct req_info {
    enum kr_ndr ndr;
    int decoded; /* kreq is valid */
    struct kr_kms_request kreq;
    const uint8_t *msg;
    size_t msg_len;
    uint32_t hresult;
    long count; /* < 0: none */
};

static int ctx_find(const struct stub_conn *c, uint16_t id)
{
    for (size_t i = 0; i < c->n_ctx; i++)
        if (c->ctx[i].id == id)
            return c->ctx[i].ndr;
    return 0;
}

static void ctx_set(struct stub_conn *c, uint16_t id, int ndr)
{
    for (size_t i = 0; i < c->n_ctx; i++) {
        if (c->ctx[i].id != id)
            continue;
        if (ndr) {
            c->ctx[i].ndr = (uint8_t)ndr;
        } else {
            c->ctx[i] = c->ctx[c->n_ctx - 1];
            c->n_ctx--;
        }
        return;
    }
    if (ndr && c->n_ctx < KR_RPC_MAX_CTX) {
        c->ctx[c->n_ctx].id = id;
        c->ctx[c->n_ctx].ndr = (uint8_t)ndr;
        c->n_ctx++;
    }
}

/* bind and alter_context: the Windows 8+ policy of kr_rpc_bind_answer, with
 * the --ndr32-only, --no-btfn and --reject-bind switches. The contexts
 * accepted here are remembered with their syntax; a rejected item forgets
 * its context id. */
static int answer_bind(struct stub_conn *c, const uint8_t *pdu, size_t len, uint8_t *out,
                       size_t *out_len, const char **why)
{
    const struct stub_config *conf = &c->host->conf;
    struct kr_rpc_bind b;
    struct kr_rpc_bind_ack ack;
    int rc = kr_rpc_bind_decode(pdu, len, &b, why);
    if (rc < 0)
        return rc;
    struct kr_rpc_bind_policy pol = {
        .ndr64 = !conf->ndr32_only,
        .ndr32_with_ndr64 = 0,
        .btfn = !conf->no_btfn,
    };
    rc = kr_rpc_bind_answer(&b, &pol, c->lst->port, c->assoc_group, &ack);
    if (rc < 0)
        return kr_fail(why, rc, "bind cannot be answered");
    ack.hdr.ptype = b.hdr.ptype == KR_PT_ALTER ? KR_PT_ALTER_RESP : KR_PT_BIND_ACK;
    for (size_t i = 0; i < ack.n_results; i++) {
        struct kr_rpc_result *r = &ack.results[i];
        if (conf->reject_bind && r->result != KR_BIND_PROVIDER_REJECT &&
            r->result != KR_BIND_USER_REJECT) {
            r->result = KR_BIND_PROVIDER_REJECT;
            r->reason = KR_REASON_TRANSFER_NOT_SUPPORTED;
            memset(&r->ts, 0, sizeof(r->ts));
        }
        if (i >= b.n_ctx)
            continue;
        int ndr = 0;
        if (r->result == KR_BIND_ACCEPT) {
            enum kr_rpc_tskind k = kr_rpc_syntax_kind(&r->ts);
            ndr = k == KR_TS_NDR32 ? KR_NDR32 : k == KR_TS_NDR64 ? KR_NDR64 : 0;
        }
        ctx_set(c, b.ctx[i].ctx_id, ndr);
    }
    rc = kr_rpc_bind_ack_encode(&ack, out, STUB_REPLY_MAX, out_len);
    if (rc < 0)
        return kr_fail(why, rc, "bind_ack does not fit");
    return 0;
}

static int answer_fault(struct stub_conn *c, const struct kr_rpc_request *r, uint32_t status,
                        uint8_t *out, size_t *out_len, const char **why)
{
    struct kr_rpc_fault f;
    memset(&f, 0, sizeof(f));
    f.hdr.vers = 5;
    f.hdr.ptype = KR_PT_FAULT;
    f.hdr.flags = KR_PFC_FIRST | KR_PFC_LAST | KR_PFC_DID_NOT_EXECUTE;
    f.hdr.drep[0] = 0x10;
    f.hdr.call_id = r->hdr.call_id;
    f.alloc_hint = 32; /* what Windows and vlmcsd send */
    f.ctx_id = r->ctx_id;
    f.status = status;
    int rc = kr_rpc_fault_encode(&f, out, STUB_REPLY_MAX, out_len);
    if (rc < 0)
        return kr_fail(why, rc, "fault does not fit");

    char ts[32], st[16];
    jlog_timestamp(ts);
    snprintf(st, sizeof(st), "0x%08x", status);
    json_t *o = json_object();
    jlog_set_str(o, "event", "fault");
    jlog_set_str(o, "ts", ts);
    jlog_set_str(o, "peer", c->peer);
    jlog_set_str(o, "host", c->host->conf.name);
    json_object_set_new(o, "call_id", json_integer(r->hdr.call_id));
    json_object_set_new(o, "ctx_id", json_integer(r->ctx_id));
    json_object_set_new(o, "opnum", json_integer(r->opnum));
    jlog_set_str(o, "status", st);
    jlog_write(c->host->log, o);
    return 0;
}

static int is_refused(const struct stub_config *conf, const uint8_t kms_id[16])
{
    for (size_t i = 0; i < conf->n_refuse; i++)
        if (memcmp(conf->refuse[i], kms_id, 16) == 0)
            return 1;
    return 0;
}

/* The KMS answer to a decoded request: the response message in `msg`. */
static int build_kms_response(struct stub_conn *c, struct req_info *ri, uint8_t *msg,
                              size_t *msg_len)
{
    const struct stub_config *conf = &c->host->conf;
    const struct kr_kms_request *q = &ri->kreq;
    struct kr_kms_response resp;
    uint8_t iv[16] = {0};

    long count = cmid_db_seen(c->host->db, q->app_id, q->cmid, kr_now_us());
    ri->count = count < 0 ? 0 : count; /* out of room: answer, but count nobody */

    memset(&resp, 0, sizeof(resp));
    resp.ver_minor = q->ver_minor;
    resp.ver_major = q->ver_major;
    snprintf(resp.epid, sizeof(resp.epid), "%s", conf->epid);
    memcpy(resp.cmid, q->cmid, 16);
    resp.request_time = q->request_time;
    resp.count = (uint32_t)ri->count;
    resp.activation_interval = conf->activation_interval;
    resp.renewal_interval = conf->renewal_interval;
    if (q->ver_major >= 6) {
        resp.has_hwid = 1;
        memcpy(resp.hwid, conf->hwid, 8);
        /* V6 clients flag a response IV equal to the request's as an emulator. */
        if (RAND_bytes(iv, sizeof(iv)) != 1)
            return KR_ECRYPTO;
    } else if (q->ver_major == 5) {
        memcpy(iv, ri->msg + 4, 16); /* V5 clients require the request's IV */
    }
    memcpy(resp.iv, iv, 16);
    return kr_kms_response_encode(&resp, iv, msg, KR_KMS_RESP_MAX, msg_len);
}

static void log_request(struct stub_conn *c, const struct req_info *ri)
{
    const struct stub_config *conf = &c->host->conf;
    char ts[32], hr[16], ver[16], g[KR_GUID_STRLEN];
    jlog_timestamp(ts);
    snprintf(hr, sizeof(hr), "0x%08x", ri->hresult);

    json_t *o = json_object();
    jlog_set_str(o, "event", "request");
    jlog_set_str(o, "ts", ts);
    jlog_set_str(o, "peer", c->peer);
    jlog_set_str(o, "host", conf->name);
    jlog_set_str(o, "epid", conf->epid);
    if (ri->decoded) {
        const struct kr_kms_request *q = &ri->kreq;
        kr_guid_format(q->cmid, g);
        jlog_set_str(o, "cmid", g);
        kr_guid_format(q->app_id, g);
        jlog_set_str(o, "app_id", g);
        jlog_set_str(o, "app", kr_kms_app_name(q->app_id));
        kr_guid_format(q->kms_id, g);
        jlog_set_str(o, "kms_id", g);
    } else {
        jlog_set_str(o, "cmid", NULL);
        jlog_set_str(o, "app_id", NULL);
        jlog_set_str(o, "app", NULL);
        jlog_set_str(o, "kms_id", NULL);
    }
    if (ri->msg && ri->msg_len >= 4) {
        snprintf(ver, sizeof(ver), "%u.%u", kr_le16(ri->msg + 2), kr_le16(ri->msg));
        jlog_set_str(o, "version", ver);
    } else {
        jlog_set_str(o, "version", NULL);
    }
    jlog_set_str(o, "ndr", ri->ndr == KR_NDR64 ? "ndr64" : "ndr32");
    jlog_set_str(o, "workstation", ri->decoded ? ri->kreq.workstation : NULL);
    jlog_set_str(o, "hresult", hr);
    json_object_set_new(o, "count", ri->count >= 0 ? json_integer(ri->count) : json_null());
    jlog_write(c->host->log, o);
}

static int answer_request(struct stub_conn *c, const uint8_t *pdu, size_t len, uint8_t *out,
                          size_t *out_len, const char **why)
{
    struct kr_rpc_request r;
    int rc = kr_rpc_request_decode(pdu, len, &r, why);
    if (rc < 0)
        return rc;
    int ndr = ctx_find(c, r.ctx_id);
    if (!ndr)
        return answer_fault(c, &r, KR_NCA_S_UNK_IF, out, out_len, why);
    if (r.opnum != 0)
        return answer_fault(c, &r, KR_NCA_S_OP_RNG_ERROR, out, out_len, why);
    c->host->n_requests++;

    struct req_info ri;
    memset(&ri, 0, sizeof(ri));
    ri.ndr = (enum kr_ndr)ndr;
    ri.hresult = KR_HR_INVALID_DATA;
    ri.count = -1;
    uint8_t msg[KR_KMS_RESP_MAX];
    size_t msg_len = 0;
    const char *kwhy = NULL;
    if (kr_ndr_req_decode(ri.ndr, r.stub, r.stub_len, &ri.msg, &ri.msg_len, &kwhy) == 0 &&
        kr_kms_request_decode(ri.msg, ri.msg_len, &ri.kreq, &kwhy) == 0) {
        ri.decoded = 1;
        const struct kr_kms_request *q = &ri.kreq;
        if (q->ver_major < 4 || q->ver_major > 6 || q->ver_minor != 0)
            ri.hresult = KR_HR_INVALID_DATA; /* what genuine hosts answer */
        else if (is_refused(&c->host->conf, q->kms_id))
            ri.hresult = KR_HR_KMS_ID_MISMATCH;
        else if (build_kms_response(c, &ri, msg, &msg_len) == 0)
            ri.hresult = KR_HR_OK;
        else
            ri.count = -1;
    }

    uint8_t stub[STUB_REPLY_MAX];
    size_t stub_len;
    if (ri.hresult == KR_HR_OK)
        rc = kr_ndr_resp_encode(ri.ndr, msg, msg_len, 0, stub, sizeof(stub), &stub_len);
    else
        rc = kr_ndr_resp_encode(ri.ndr, NULL, 0, ri.hresult, stub, sizeof(stub), &stub_len);
    if (rc < 0)
        return kr_fail(why, rc, "response stub does not fit");

    struct kr_rpc_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.hdr.vers = 5;
    resp.hdr.ptype = KR_PT_RESPONSE;
    resp.hdr.flags = KR_PFC_FIRST | KR_PFC_LAST;
    resp.hdr.drep[0] = 0x10;
    resp.hdr.call_id = r.hdr.call_id;
    resp.alloc_hint = (uint32_t)stub_len;
    resp.ctx_id = r.ctx_id;
    resp.stub = stub;
    resp.stub_len = stub_len;
    rc = kr_rpc_response_encode(&resp, out, STUB_REPLY_MAX, out_len);
    if (rc < 0)
        return kr_fail(why, rc, "response does not fit");
    log_request(c, &ri);
    return 0;
}

int stub_answer_pdu(struct stub_conn *c, const uint8_t *pdu, size_t len,
                    const struct kr_rpc_hdr *hdr, uint8_t out[STUB_REPLY_MAX], size_t *out_len,
                    int *is_answer, const char **why)
{
    *out_len = 0;
    *is_answer = 0;
    switch (hdr->ptype) {
    case KR_PT_BIND:
    case KR_PT_ALTER:
        return answer_bind(c, pdu, len, out, out_len, why);
    case KR_PT_REQUEST:
        *is_answer = 1;
        return answer_request(c, pdu, len, out, out_len, why);
    default:
        /* vlmcsd and Windows hosts close on any other PTYPE. */
        return kr_fail(why, KR_EUNSUP, "PDU type a KMS host does not accept");
    }
}
