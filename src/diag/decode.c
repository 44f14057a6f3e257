/*
 * decode.c - turning a recorded conversation into JSON, PDU by PDU.
 *
 * The only state carried between PDUs is the context table: which p_cont_id
 * the client offered with which transfer syntax. Responses echo the request's
 * context id, so the same table serves both directions. When a capture lacks
 * its bind, the stub's length prefixes tell NDR32 from NDR64 (kr_ndr_guess).
 */
#include "kmsrelay/diag.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/rpc.h"

#define CTX_TABLE 32

struct ctx_table {
    uint16_t id[CTX_TABLE];
    uint8_t kind[CTX_TABLE]; /* enum kr_rpc_tskind */
    size_t n;
};

struct state {
    struct ctx_table ctx;
    json_t *pdus, *requests, *responses;
    uint32_t first_error_hr;
    int saw_response;
};

static void ctx_learn(struct ctx_table *t, uint16_t id, uint8_t kind)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->id[i] == id) {
            t->kind[i] = kind;
            return;
        }
    if (t->n < CTX_TABLE) {
        t->id[t->n] = id;
        t->kind[t->n++] = kind;
    }
}

/* KR_NDR32 / KR_NDR64 for a context id, or 0 when unknown. */
static int ctx_ndr(const struct ctx_table *t, uint16_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->id[i] == id)
            return t->kind[i] == KR_TS_NDR32 ? KR_NDR32 : t->kind[i] == KR_TS_NDR64 ? KR_NDR64 : 0;
    return 0;
}

static json_t *guid_json(const uint8_t g[16])
{
    char s[KR_GUID_STRLEN];
    kr_guid_format(g, s);
    return json_string(s);
}

static json_t *hex32_json(uint32_t v)
{
    char s[11];
    snprintf(s, sizeof(s), "0x%08x", v);
    return json_string(s);
}

static const char *tskind_name(int kind)
{
    switch (kind) {
    case KR_TS_NDR32:
        return "NDR32";
    case KR_TS_NDR64:
        return "NDR64";
    case KR_TS_BTFN:
        return "BTFN";
    default:
        return "other";
    }
}

static json_t *syntax_json(const struct kr_rpc_syntax *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "uuid", guid_json(s->uuid));
    json_object_set_new(o, "version", json_integer(s->version));
    json_object_set_new(o, "kind", json_string(tskind_name(kr_rpc_syntax_kind(s))));
    return o;
}

static void decode_bind(struct state *st, json_t *o, const uint8_t *p, size_t len)
{
    struct kr_rpc_bind b;
    const char *why = "malformed";
    if (kr_rpc_bind_decode(p, len, &b, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "max_xmit_frag", json_integer(b.max_xmit));
    json_object_set_new(o, "max_recv_frag", json_integer(b.max_recv));
    json_object_set_new(o, "assoc_group", hex32_json(b.assoc_group));
    json_t *items = json_array();
    for (unsigned i = 0; i < b.n_ctx; i++) {
        const struct kr_rpc_ctx_item *c = &b.ctx[i];
        json_t *it = json_object();
        json_object_set_new(it, "ctx_id", json_integer(c->ctx_id));
        json_object_set_new(it, "interface", guid_json(c->abstract.uuid));
        json_object_set_new(it, "kms_interface",
                            json_boolean(memcmp(c->abstract.uuid, kr_rpc_kms_iface, 16) == 0));
        json_object_set_new(it, "interface_version_major",
                            json_integer(c->abstract.version & 0xffff));
        json_object_set_new(it, "interface_version_minor", json_integer(c->abstract.version >> 16));
        json_t *ts = json_array();
        unsigned nts = c->n_ts < KR_RPC_MAX_TS ? c->n_ts : KR_RPC_MAX_TS;
        for (unsigned k = 0; k < nts; k++)
            json_array_append_new(ts, syntax_json(&c->ts[k]));
        json_object_set_new(it, "transfer_syntaxes", ts);
        if (nts > 0) {
            int kind = kr_rpc_syntax_kind(&c->ts[0]);
            ctx_learn(&st->ctx, c->ctx_id, (uint8_t)kind);
            if (kind == KR_TS_BTFN)
                json_object_set_new(it, "btfn_mask", json_integer(kr_le64(c->ts[0].uuid + 8)));
        }
        json_array_append_new(items, it);
    }
    json_object_set_new(o, "contexts", items);
}

static const char *result_name(unsigned r)
{
    switch (r) {
    case KR_BIND_ACCEPT:
        return "acceptance";
    case KR_BIND_USER_REJECT:
        return "user_rejection";
    case KR_BIND_PROVIDER_REJECT:
        return "provider_rejection";
    case KR_BIND_NEGOTIATE_ACK:
        return "negotiate_ack";
    default:
        return "unknown";
    }
}

static void decode_bind_ack(json_t *o, const uint8_t *p, size_t len)
{
    struct kr_rpc_bind_ack a;
    const char *why = "malformed";
    if (kr_rpc_bind_ack_decode(p, len, &a, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "max_xmit_frag", json_integer(a.max_xmit));
    json_object_set_new(o, "max_recv_frag", json_integer(a.max_recv));
    json_object_set_new(o, "assoc_group", hex32_json(a.assoc_group));
    json_object_set_new(o, "sec_addr", json_string(a.sec_addr_len ? a.sec_addr : ""));
    json_t *res = json_array();
    for (unsigned i = 0; i < a.n_results; i++) {
        const struct kr_rpc_result *r = &a.results[i];
        json_t *it = json_object();
        json_object_set_new(it, "result", json_string(result_name(r->result)));
        json_object_set_new(it, "reason", json_integer(r->reason));
        json_object_set_new(it, "transfer_syntax", syntax_json(&r->ts));
        json_array_append_new(res, it);
    }
    json_object_set_new(o, "results", res);
}

static void format_filetime(uint64_t ft, char out[32])
{
    time_t t = (time_t)kr_filetime_to_unix(ft);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, 32, "invalid");
}

static json_t *request_json(const struct kr_kms_request *r)
{
    char ver[16], when[32];
    json_t *o = json_object();
    snprintf(ver, sizeof(ver), "%u.%u", r->ver_major, r->ver_minor);
    format_filetime(r->request_time, when);
    json_object_set_new(o, "kms_version", json_string(ver));
    json_object_set_new(o, "is_vm", json_boolean(r->vm_info != 0));
    json_object_set_new(o, "license_status", json_integer(r->license_status));
    json_object_set_new(o, "grace_minutes", json_integer(r->grace_minutes));
    json_object_set_new(o, "app_id", guid_json(r->app_id));
    const char *app = kr_kms_app_name(r->app_id);
    json_object_set_new(o, "app", app ? json_string(app) : json_null());
    json_object_set_new(o, "sku_id", guid_json(r->sku_id));
    json_object_set_new(o, "kms_id", guid_json(r->kms_id));
    json_object_set_new(o, "cmid", guid_json(r->cmid));
    json_object_set_new(o, "previous_cmid", guid_json(r->prev_cmid));
    json_object_set_new(o, "request_time_utc", json_string(when));
    json_object_set_new(o, "workstation", json_string(r->workstation));
    json_object_set_new(o, "n_policy", json_integer(r->n_policy));
    return o;
}

static json_t *response_json(const struct kr_kms_response *r)
{
    char ver[16], when[32];
    json_t *o = json_object();
    snprintf(ver, sizeof(ver), "%u.%u", r->ver_major, r->ver_minor);
    format_filetime(r->request_time, when);
    json_object_set_new(o, "kms_version", json_string(ver));
    json_object_set_new(o, "epid", json_string(r->epid));
    json_object_set_new(o, "cmid_echo", guid_json(r->cmid));
    json_object_set_new(o, "request_time_utc", json_string(when));
    json_object_set_new(o, "count", json_integer(r->count));
    json_object_set_new(o, "renewal_interval", json_integer(r->renewal_interval));
    json_object_set_new(o, "activation_interval", json_integer(r->activation_interval));
    if (r->has_hwid) {
        char hex[17];
        kr_hex_encode(r->hwid, 8, hex);
        for (char *c = hex; *c; c++)
            if (*c >= 'a' && *c <= 'f')
                *c = (char)(*c - 'a' + 'A');
        json_object_set_new(o, "hwid", json_string(hex));
    }
    return o;
}

/* Which NDR a request/response stub uses: the bind's answer, else a guess. */
static int stub_ndr(const struct state *st, uint16_t ctx_id, const uint8_t *stub, size_t len,
                    int is_response, json_t *o)
{
    int ndr = ctx_ndr(&st->ctx, ctx_id);
    if (!ndr) {
        ndr = kr_ndr_guess(stub, len, is_response);
        if (ndr < 0)
            return 0;
        json_object_set_new(o, "ndr_guessed", json_true());
    }
    json_object_set_new(o, "ndr", json_string(ndr == KR_NDR64 ? "NDR64" : "NDR32"));
    return ndr;
}

static void decode_request(struct state *st, json_t *o, const uint8_t *p, size_t len)
{
    struct kr_rpc_request rq;
    const char *why = "malformed";
    if (kr_rpc_request_decode(p, len, &rq, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "ctx_id", json_integer(rq.ctx_id));
    json_object_set_new(o, "opnum", json_integer(rq.opnum));
    int ndr = stub_ndr(st, rq.ctx_id, rq.stub, rq.stub_len, 0, o);
    const uint8_t *msg;
    size_t msg_len;
    if (!ndr) {
        json_object_set_new(o, "error", json_string("stub is neither NDR32 nor NDR64"));
        return;
    }
    if (kr_ndr_req_decode(ndr, rq.stub, rq.stub_len, &msg, &msg_len, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "kms_length", json_integer((json_int_t)msg_len));
    struct kr_kms_request kr;
    if (kr_kms_request_decode(msg, msg_len, &kr, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_t *req = request_json(&kr);
    json_object_set_new(req, "call_id", json_integer(rq.hdr.call_id));
    json_object_set(o, "kms", req);
    json_array_append_new(st->requests, req);
}

static void decode_response(struct state *st, json_t *o, const uint8_t *p, size_t len)
{
    struct kr_rpc_response rs;
    const char *why = "malformed";
    if (kr_rpc_response_decode(p, len, &rs, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "ctx_id", json_integer(rs.ctx_id));
    int ndr = stub_ndr(st, rs.ctx_id, rs.stub, rs.stub_len, 1, o);
    if (!ndr) {
        json_object_set_new(o, "error", json_string("stub is neither NDR32 nor NDR64"));
        return;
    }
    struct kr_ndr_resp nr;
    if (kr_ndr_resp_decode(ndr, rs.stub, rs.stub_len, &nr, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    st->saw_response = 1;
    json_object_set_new(o, "hresult", hex32_json(nr.hresult));
    const char *hname = kr_kms_hresult_name(nr.hresult);
    if (hname)
        json_object_set_new(o, "hresult_name", json_string(hname));
    if (nr.hresult && !st->first_error_hr)
        st->first_error_hr = nr.hresult;
    if (!nr.msg)
        return;
    struct kr_kms_response kr;
    if (kr_kms_response_decode(nr.msg, nr.msg_len, &kr, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_t *resp = response_json(&kr);
    json_object_set_new(resp, "call_id", json_integer(rs.hdr.call_id));
    json_object_set(o, "kms", resp);
    if (nr.hresult == 0)
        json_array_append_new(st->responses, resp);
    else
        json_decref(resp);
}

static void decode_fault(json_t *o, const uint8_t *p, size_t len)
{
    struct kr_rpc_fault f;
    const char *why = "malformed";
    if (kr_rpc_fault_decode(p, len, &f, &why) != 0) {
        json_object_set_new(o, "error", json_string(why));
        return;
    }
    json_object_set_new(o, "ctx_id", json_integer(f.ctx_id));
    json_object_set_new(o, "status", hex32_json(f.status));
}

static json_t *decode_one(struct state *st, const struct kr_diag_pdu *pdu)
{
    json_t *o = json_object();
    struct kr_rpc_hdr h;
    const char *why = "malformed";
    int rc = kr_rpc_frame(pdu->bytes, pdu->len, 0, &h, &why);
    enum kr_dir dir = pdu->dir;
    if (rc >= (int)KR_RPC_HDR_LEN && dir == KR_DIR_UNKNOWN)
        dir = (h.ptype == KR_PT_REQUEST || h.ptype == KR_PT_BIND || h.ptype == KR_PT_ALTER)
                  ? KR_DIR_C2S
                  : KR_DIR_S2C;
    json_object_set_new(o, "dir",
                        json_string(dir == KR_DIR_C2S   ? "c2s"
                                    : dir == KR_DIR_S2C ? "s2c"
                                                        : "?"));
    json_object_set_new(o, "length", json_integer((json_int_t)pdu->len));
    if (rc < 0) {
        json_object_set_new(o, "type", json_string("invalid"));
        json_object_set_new(
            o, "error",
            json_string(rc == KR_EMORE ? "truncated: fewer bytes than frag_length" : why));
        return o;
    }
    json_object_set_new(o, "type", json_string(kr_rpc_ptype_name(h.ptype)));
    json_object_set_new(o, "call_id", json_integer(h.call_id));
    json_object_set_new(o, "flags", json_integer(h.flags));
    if ((size_t)rc != pdu->len)
        json_object_set_new(o, "trailing_bytes", json_integer((json_int_t)(pdu->len - (size_t)rc)));
    switch (h.ptype) {
    case KR_PT_BIND:
    case KR_PT_ALTER:
        decode_bind(st, o, pdu->bytes, (size_t)rc);
        break;
    case KR_PT_BIND_ACK:
    case KR_PT_ALTER_RESP:
        decode_bind_ack(o, pdu->bytes, (size_t)rc);
        break;
    case KR_PT_REQUEST:
        decode_request(st, o, pdu->bytes, (size_t)rc);
        break;
    case KR_PT_RESPONSE:
        decode_response(st, o, pdu->bytes, (size_t)rc);
        break;
    case KR_PT_FAULT:
        decode_fault(o, pdu->bytes, (size_t)rc);
        break;
    default:
        break;
    }
    return o;
}

json_t *kr_diag_decode(const struct kr_diag_pdu *pdus, size_t n)
{
    struct state st;
    memset(&st, 0, sizeof(st));
    st.pdus = json_array();
    st.requests = json_array();
    st.responses = json_array();
    json_t *out = json_object();
    if (!st.pdus || !st.requests || !st.responses || !out) {
        json_decref(st.pdus);
        json_decref(st.requests);
        json_decref(st.responses);
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(st.pdus, decode_one(&st, &pdus[i]));
    json_object_set_new(out, "pdus", st.pdus);
    json_object_set_new(out, "requests", st.requests);
    json_object_set_new(out, "responses", st.responses);
    if (st.saw_response)
        json_object_set_new(out, "hresult", hex32_json(st.first_error_hr));
    return out;
}
