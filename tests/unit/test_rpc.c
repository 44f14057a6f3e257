/*
 * test_rpc.c - DCE/RPC codec (src/rpc): framing, every PDU decoder and
 * encoder against the captured conversations in shared/vectors, truncation
 * and named malformed inputs, NDR stub framing and the bind policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"
#include "testutil.h"

static struct kr_vec *vecs;
static size_t n_vecs;

static int load(void)
{
    if (!vecs && kr_vec_load_all(&vecs, &n_vecs) != 0)
        return -1;
    return n_vecs ? 0 : -1;
}

static int ptype_of(const char *type)
{
    for (unsigned p = 0; p < 16; p++)
        if (strcmp(kr_rpc_ptype_name(p), type) == 0)
            return (int)p;
    return -1;
}

/* Decodes `pdu` with the decoder for its PTYPE and re-encodes it into `re`.
 * Returns the decoder's code; *relen is 0 when encoding failed. */
static int decode_encode(const uint8_t *pdu, size_t len, uint8_t *re, size_t *relen)
{
    const char *why = NULL;
    int rc = KR_EMALF;
    *relen = 0;
    switch (len > 2 ? pdu[2] : 255) {
    case KR_PT_BIND:
    case KR_PT_ALTER: {
        struct kr_rpc_bind b;
        if ((rc = kr_rpc_bind_decode(pdu, len, &b, &why)) == 0)
            CU_ASSERT_EQUAL(kr_rpc_bind_encode(&b, re, KR_RPC_FRAG_MAX, relen), 0);
        break;
    }
    case KR_PT_BIND_ACK:
    case KR_PT_ALTER_RESP: {
        struct kr_rpc_bind_ack a;
        if ((rc = kr_rpc_bind_ack_decode(pdu, len, &a, &why)) == 0)
            CU_ASSERT_EQUAL(kr_rpc_bind_ack_encode(&a, re, KR_RPC_FRAG_MAX, relen), 0);
        break;
    }
    case KR_PT_REQUEST: {
        struct kr_rpc_request q;
        if ((rc = kr_rpc_request_decode(pdu, len, &q, &why)) == 0)
            CU_ASSERT_EQUAL(kr_rpc_request_encode(&q, re, KR_RPC_FRAG_MAX, relen), 0);
        break;
    }
    case KR_PT_RESPONSE: {
        struct kr_rpc_response p;
        if ((rc = kr_rpc_response_decode(pdu, len, &p, &why)) == 0)
            CU_ASSERT_EQUAL(kr_rpc_response_encode(&p, re, KR_RPC_FRAG_MAX, relen), 0);
        break;
    }
    case KR_PT_FAULT: {
        struct kr_rpc_fault f;
        if ((rc = kr_rpc_fault_decode(pdu, len, &f, &why)) == 0)
            CU_ASSERT_EQUAL(kr_rpc_fault_encode(&f, re, KR_RPC_FRAG_MAX, relen), 0);
        break;
    }
    }
    if (rc != 0 && !why)
        CU_FAIL("decoder failed without a reason");
    return rc;
}

/* The NDR syntax each context id was offered with, from a bind's items. */
static void note_ctx(const struct kr_rpc_bind *b, int ndr_of_ctx[8])
{
    for (unsigned i = 0; i < b->n_ctx; i++) {
        enum kr_rpc_tskind k = kr_rpc_syntax_kind(&b->ctx[i].ts[0]);
        if (b->ctx[i].ctx_id < 8 && (k == KR_TS_NDR32 || k == KR_TS_NDR64))
            ndr_of_ctx[b->ctx[i].ctx_id] = k == KR_TS_NDR32 ? KR_NDR32 : KR_NDR64;
    }
}

static void check_bind(const struct kr_vec_pdu *p, int ndr_of_ctx[8])
{
    struct kr_rpc_bind b;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_decode(p->bytes, p->len, &b, NULL), 0);
    CU_ASSERT(b.n_ctx == 3 || b.n_ctx == 1);
    CU_ASSERT_EQUAL(b.max_xmit, 5840);
    CU_ASSERT_EQUAL(b.max_recv, 5840);
    static const enum kr_rpc_tskind want[3] = {KR_TS_NDR32, KR_TS_NDR64, KR_TS_BTFN};
    for (unsigned i = 0; i < b.n_ctx; i++) {
        CU_ASSERT_EQUAL(b.ctx[i].ctx_id, i);
        CU_ASSERT_EQUAL(b.ctx[i].n_ts, 1);
        CU_ASSERT_EQUAL(memcmp(b.ctx[i].abstract.uuid, kr_rpc_kms_iface, 16), 0);
        CU_ASSERT_EQUAL(b.ctx[i].abstract.version, 1);
        CU_ASSERT_EQUAL(kr_rpc_syntax_kind(&b.ctx[i].ts[0]), want[i]);
    }
    note_ctx(&b, ndr_of_ctx);
}

static void check_ack(const struct kr_vec_pdu *p)
{
    struct kr_rpc_bind_ack a;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_ack_decode(p->bytes, p->len, &a, NULL), 0);
    if (a.hdr.ptype == KR_PT_BIND_ACK) {
        CU_ASSERT_EQUAL(a.sec_addr_len, strlen(a.sec_addr) + 1);
        CU_ASSERT(a.sec_addr_len >= 2 && strspn(a.sec_addr, "0123456789") == strlen(a.sec_addr));
        CU_ASSERT(a.n_results == 3 || a.n_results == 1);
        CU_ASSERT_EQUAL(a.hdr.flags, 0x13);
    } else {
        CU_ASSERT_EQUAL(a.sec_addr_len, 0);
        CU_ASSERT_EQUAL(a.n_results, 1);
        CU_ASSERT_EQUAL(a.hdr.flags, 0x03);
    }
}

static void check_call(const struct kr_vec *v, const struct kr_vec_pdu *p, const int ndr_of_ctx[8])
{
    const char *ver = json_string_value(
        json_object_get(json_array_get(json_object_get(v->expect, "requests"), 0), "kms_version"));
    const char *hr = json_string_value(json_object_get(v->expect, "hresult"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(hr);
    if (p->bytes[2] == KR_PT_REQUEST) {
        struct kr_rpc_request q;
        CU_ASSERT_EQUAL_FATAL(kr_rpc_request_decode(p->bytes, p->len, &q, NULL), 0);
        CU_ASSERT(q.ctx_id < 2 && q.opnum == 0 && q.alloc_hint == q.stub_len);
        CU_ASSERT_EQUAL(q.stub, p->bytes + 24);
        int ndr = ndr_of_ctx[q.ctx_id];
        CU_ASSERT_EQUAL(kr_ndr_guess(q.stub, q.stub_len, 0), ndr);
        const uint8_t *msg = NULL;
        size_t ml = 0;
        CU_ASSERT_EQUAL(kr_ndr_req_decode(ndr, q.stub, q.stub_len, &msg, &ml, NULL), 0);
        CU_ASSERT_EQUAL(ml, ver && strcmp(ver, "4.0") == 0 ? 252 : 260);
        CU_ASSERT_EQUAL(msg, q.stub + (ndr == KR_NDR32 ? 8 : 16));
        return;
    }
    struct kr_rpc_response r;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_response_decode(p->bytes, p->len, &r, NULL), 0);
    CU_ASSERT(r.ctx_id < 2 && r.cancel_count == 0 && r.alloc_hint == r.stub_len);
    int ndr = ndr_of_ctx[r.ctx_id];
    CU_ASSERT_EQUAL(kr_ndr_guess(r.stub, r.stub_len, 1), ndr);
    struct kr_ndr_resp nr;
    CU_ASSERT_EQUAL_FATAL(kr_ndr_resp_decode(ndr, r.stub, r.stub_len, &nr, NULL), 0);
    CU_ASSERT_EQUAL(nr.hresult, (uint32_t)strtoul(hr, NULL, 16));
    if (nr.hresult == 0) {
        CU_ASSERT_PTR_NOT_NULL(nr.msg);
        size_t hdr = ndr == KR_NDR32 ? 12 : 24;
        /* message, pad to 4, HRESULT: exactly the stub */
        CU_ASSERT_EQUAL(((hdr + nr.msg_len + 3) & ~(size_t)3) + 4, r.stub_len);
        CU_ASSERT(nr.msg_len == 158 || nr.msg_len == 160 || nr.msg_len == 212 ||
                  nr.msg_len == 228 || nr.msg_len == 260);
    } else {
        CU_ASSERT_PTR_NULL(nr.msg);
        CU_ASSERT_EQUAL(r.stub_len, ndr == KR_NDR32 ? 12u : 20u);
    }
}

static void test_golden(void)
{
    CU_ASSERT_EQUAL_FATAL(load(), 0);
    unsigned pdus = 0;
    for (size_t i = 0; i < n_vecs; i++) {
        const struct kr_vec *v = &vecs[i];
        int ndr_of_ctx[8] = {0};
        for (int dir = 0; dir < 2; dir++) {
            const struct kr_vec_pdu *list = dir ? v->s2c : v->c2s;
            size_t n = dir ? v->n_s2c : v->n_c2s;
            for (size_t j = 0; j < n; j++) {
                const struct kr_vec_pdu *p = &list[j];
                struct kr_rpc_hdr h;
                CU_ASSERT_EQUAL(kr_rpc_frame(p->bytes, p->len, 0, &h, NULL), (int)p->len);
                CU_ASSERT_EQUAL(h.ptype, ptype_of(p->type));
                CU_ASSERT_EQUAL(h.call_id, p->call_id);
                CU_ASSERT_EQUAL(h.frag_len, p->len);
                uint8_t re[KR_RPC_FRAG_MAX];
                size_t relen;
                CU_ASSERT_EQUAL(decode_encode(p->bytes, p->len, re, &relen), 0);
                CU_ASSERT(relen == p->len && memcmp(re, p->bytes, p->len) == 0);
                if (h.ptype == KR_PT_BIND || h.ptype == KR_PT_ALTER)
                    check_bind(p, ndr_of_ctx);
                else if (h.ptype == KR_PT_BIND_ACK || h.ptype == KR_PT_ALTER_RESP)
                    check_ack(p);
                else
                    check_call(v, p, ndr_of_ctx);
                pdus++;
            }
        }
    }
    CU_ASSERT(pdus >= 30);
}

/* Every strict prefix, in an exact-size heap copy so ASan sees overreads. */
static void test_prefixes(void)
{
    CU_ASSERT_EQUAL_FATAL(load(), 0);
    for (size_t i = 0; i < n_vecs; i++) {
        for (int dir = 0; dir < 2; dir++) {
            const struct kr_vec_pdu *list = dir ? vecs[i].s2c : vecs[i].c2s;
            size_t n = dir ? vecs[i].n_s2c : vecs[i].n_c2s;
            for (size_t j = 0; j < n; j++) {
                for (size_t l = 0; l < list[j].len; l++) {
                    uint8_t *b = malloc(l ? l : 1);
                    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
                    memcpy(b, list[j].bytes, l);
                    CU_ASSERT_EQUAL(kr_rpc_frame(b, l, 0, NULL, NULL), KR_EMORE);
                    struct kr_rpc_bind bi;
                    struct kr_rpc_bind_ack ba;
                    struct kr_rpc_request rq;
                    struct kr_rpc_response rs;
                    struct kr_rpc_fault fa;
                    int rc[5] = {kr_rpc_bind_decode(b, l, &bi, NULL),
                                 kr_rpc_bind_ack_decode(b, l, &ba, NULL),
                                 kr_rpc_request_decode(b, l, &rq, NULL),
                                 kr_rpc_response_decode(b, l, &rs, NULL),
                                 kr_rpc_fault_decode(b, l, &fa, NULL)};
                    for (int k = 0; k < 5; k++)
                        CU_ASSERT(rc[k] == KR_EMORE || rc[k] == KR_EMALF);
                    free(b);
                }
            }
        }
    }
}

/* A copy of a vector PDU to damage. */
static size_t vec_pdu(const char *vec, const char *type, uint8_t *out)
{
    const struct kr_vec *v = kr_vec_find(vecs, n_vecs, vec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (int dir = 0; dir < 2; dir++) {
        const struct kr_vec_pdu *list = dir ? v->s2c : v->c2s;
        size_t n = dir ? v->n_s2c : v->n_c2s;
        for (size_t j = 0; j < n; j++)
            if (strcmp(list[j].type, type) == 0) {
                memcpy(out, list[j].bytes, list[j].len);
                return list[j].len;
            }
    }
    CU_FAIL_FATAL("vector PDU missing");
    return 0;
}

#define EXPECT(call, code)                                                                         \
    do {                                                                                           \
        const char *why_ = NULL;                                                                   \
        const char **why = &why_;                                                                  \
        CU_ASSERT_EQUAL((call), (code));                                                           \
        CU_ASSERT_PTR_NOT_NULL(why_);                                                              \
    } while (0)

static void test_malformed_header(void)
{
    CU_ASSERT_EQUAL_FATAL(load(), 0);
    uint8_t base[512], b[512];
    size_t n = vec_pdu("v6_ndr64_two_requests", "bind", base);
    struct kr_rpc_hdr h;
    struct kr_rpc_bind bi;
#define RESET() memcpy(b, base, n)
    RESET();
    kr_put_le16(b + 8, 12);
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EMALF);
    RESET();
    kr_put_le16(b + 8, 24); /* a bind needs at least 28 */
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EMALF);
    RESET();
    EXPECT(kr_rpc_frame(b, n, 100, &h, why), KR_ETOOBIG);
    kr_put_le16(b + 8, 0xFFFF);
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_ETOOBIG);
    EXPECT(kr_rpc_frame(b, n, 0x10000, &h, why), KR_ETOOBIG); /* cap clamps to FRAG_MAX */
    RESET();
    b[0] = 4;
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EMALF);
    RESET();
    b[1] = 1;
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EMALF);
    RESET();
    b[2] = 7;
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EMALF);
    RESET();
    b[4] = 0x00; /* big-endian integers */
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EUNSUP);
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_EUNSUP);
    RESET();
    b[5] = 1; /* VAX floats */
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EUNSUP);
    RESET();
    kr_put_le16(b + 10, 8);
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EUNSUP);
    RESET();
    b[3] = 0x11; /* FIRST without LAST */
    EXPECT(kr_rpc_frame(b, n, 0, &h, why), KR_EUNSUP);
    RESET();
    EXPECT(kr_rpc_frame(b, n - 1, 0, &h, why), KR_EMORE);
    CU_ASSERT_EQUAL(h.frag_len, n); /* header known while the body is missing */
    /* Every decoder refuses a PTYPE it does not read. */
    struct kr_rpc_request rq;
    struct kr_rpc_response rs;
    struct kr_rpc_fault fa;
    struct kr_rpc_bind_ack ba;
    EXPECT(kr_rpc_request_decode(b, n, &rq, why), KR_EMALF);
    EXPECT(kr_rpc_response_decode(b, n, &rs, why), KR_EMALF);
    EXPECT(kr_rpc_fault_decode(b, n, &fa, why), KR_EMALF);
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
#undef RESET
}

static void test_malformed_bind(void)
{
    CU_ASSERT_EQUAL_FATAL(load(), 0);
    uint8_t base[512], b[512];
    size_t n = vec_pdu("v6_ndr64_two_requests", "bind", base);
    struct kr_rpc_bind bi;
#define RESET() memcpy(b, base, n)
    RESET();
    b[24] = 4; /* one item more than the 160 bytes hold */
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_EMALF);
    b[24] = 255;
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_ETOOBIG);
    b[24] = KR_RPC_MAX_CTX + 1;
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_ETOOBIG);
    RESET();
    b[28 + 2] = KR_RPC_MAX_TS + 1;
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_ETOOBIG);
    RESET();
    b[28 + 88 + 2] = 2; /* the last item claims one transfer syntax more */
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_EMALF);
    RESET();
    b[24] = 2; /* leaves the third item as trailing garbage */
    EXPECT(kr_rpc_bind_decode(b, n, &bi, why), KR_EMALF);
    RESET();
    memset(b + n, 0, 4);
    kr_put_le16(b + 8, (uint16_t)(n + 4));
    EXPECT(kr_rpc_bind_decode(b, n + 4, &bi, why), KR_EMALF);
    /* Zero items is well formed (the policy answers with zero results). */
    RESET();
    b[24] = 0;
    kr_put_le16(b + 8, 28);
    CU_ASSERT_EQUAL(kr_rpc_bind_decode(b, 28, &bi, NULL), 0);
    CU_ASSERT_EQUAL(bi.n_ctx, 0);

    n = vec_pdu("v6_ndr64_two_requests", "bind_ack", base);
    struct kr_rpc_bind_ack ba;
    RESET();
    kr_put_le16(b + 24, 200);
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
    kr_put_le16(b + 24, 0xFFFF);
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
    kr_put_le16(b + 24, 40); /* fits in 108 bytes but over the cap */
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_ETOOBIG);
    RESET();
    b[31] = '7'; /* sec_addr without its NUL */
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
    RESET();
    b[32] = 4;
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
    b[32] = KR_RPC_MAX_CTX + 1;
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_ETOOBIG);
    RESET();
    b[32] = 2;
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
    RESET();
    kr_put_le16(b + 24, 7); /* sec_addr eats the n_results field */
    b[32] = 0;
    EXPECT(kr_rpc_bind_ack_decode(b, n, &ba, why), KR_EMALF);
#undef RESET
}

static void test_call_pdus(void)
{
    uint8_t b[128], re[128];
    size_t relen;
    /* A request with an object UUID: the UUID is kept, the stub follows. */
    memset(b, 0, sizeof(b));
    kr_rpc_hdr_write(b, KR_PT_REQUEST, 0x83, 48, 9);
    kr_put_le32(b + 16, 8);
    for (int i = 0; i < 16; i++)
        b[24 + i] = (uint8_t)(0xa0 + i);
    memset(b + 40, 0x5a, 8);
    struct kr_rpc_request q;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_request_decode(b, 48, &q, NULL), 0);
    CU_ASSERT(q.object[0] == 0xa0 && q.object[15] == 0xaf);
    CU_ASSERT(q.stub == b + 40 && q.stub_len == 8);
    CU_ASSERT_EQUAL(kr_rpc_request_encode(&q, re, sizeof(re), &relen), 0);
    CU_ASSERT(relen == 48 && memcmp(re, b, 48) == 0);
    CU_ASSERT_EQUAL(kr_rpc_request_encode(&q, re, 47, &relen), KR_ENOSPC);
    kr_put_le16(b + 8, 30); /* shorter than the object UUID */
    EXPECT(kr_rpc_request_decode(b, 48, &q, why), KR_EMALF);
    EXPECT(kr_rpc_frame(b, 48, 0, NULL, why), KR_EMALF);

    /* vlmcsd's fault (kms-protocol.md 1.6): garbage cancel_count kept. */
    static const uint8_t fault[32] = {5,  0, 3, 0x23, 0x10, 0, 0,    0, 32, 0, 0, 0,    2, 0, 0, 0,
                                      32, 0, 0, 0,    0,    0, 0x7f, 0, 3,  0, 1, 0x1c, 0, 0, 0, 0};
    struct kr_rpc_fault f;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_fault_decode(fault, 32, &f, NULL), 0);
    CU_ASSERT(f.status == KR_NCA_S_UNK_IF && f.cancel_count == 0x7f && f.stub == NULL);
    CU_ASSERT_EQUAL(kr_rpc_fault_encode(&f, re, sizeof(re), &relen), 0);
    CU_ASSERT(relen == 32 && memcmp(re, fault, 32) == 0);
    memcpy(b, fault, 32);
    kr_put_le16(b + 8, 28);
    EXPECT(kr_rpc_fault_decode(b, 32, &f, why), KR_EMALF);

    /* Encoders refuse what no decoder would accept. */
    struct kr_rpc_bind bi;
    memset(&bi, 0, sizeof(bi));
    bi.hdr.ptype = KR_PT_REQUEST;
    CU_ASSERT_EQUAL(kr_rpc_bind_encode(&bi, re, sizeof(re), &relen), KR_EINVAL);
    bi.hdr.ptype = KR_PT_BIND;
    bi.n_ctx = KR_RPC_MAX_CTX + 1;
    CU_ASSERT_EQUAL(kr_rpc_bind_encode(&bi, re, sizeof(re), &relen), KR_EINVAL);
    static uint8_t big[KR_RPC_FRAG_MAX + 64], stub[KR_RPC_FRAG_MAX];
    struct kr_rpc_response rs = {.stub = stub, .stub_len = KR_RPC_FRAG_MAX};
    CU_ASSERT_EQUAL(kr_rpc_response_encode(&rs, big, sizeof(big), &relen), KR_EINVAL);
    rs.stub_len = KR_RPC_FRAG_MAX - 24;
    CU_ASSERT_EQUAL(kr_rpc_response_encode(&rs, big, sizeof(big), &relen), 0);
    CU_ASSERT_EQUAL(kr_rpc_frame(big, relen, 0, NULL, NULL), KR_RPC_FRAG_MAX);
}

static void test_ndr(void)
{
    uint8_t msg[KR_NDR_MSG_MAX + 8], out[KR_NDR_MSG_MAX + 64];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    static const size_t lens[] = {0, 1, 158, 160, 252, 260, KR_NDR_MSG_MAX};
    for (int ndr = KR_NDR32; ndr <= KR_NDR64; ndr++) {
        size_t w = ndr == KR_NDR32 ? 4 : 8, olen;
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            size_t ml = lens[k];
            const uint8_t *m;
            size_t got;
            CU_ASSERT_EQUAL_FATAL(kr_ndr_req_encode(ndr, msg, ml, out, sizeof(out), &olen), 0);
            CU_ASSERT_EQUAL(olen, 2 * w + ml);
            CU_ASSERT_EQUAL(kr_ndr_req_decode(ndr, out, olen, &m, &got, NULL), 0);
            CU_ASSERT(m == out + 2 * w && got == ml && memcmp(m, msg, ml) == 0);
            CU_ASSERT_EQUAL(kr_ndr_guess(out, olen, 0), ndr);

            struct kr_ndr_resp r;
            CU_ASSERT_EQUAL_FATAL(
                kr_ndr_resp_encode(ndr, msg, ml, 0x11223344, out, sizeof(out), &olen), 0);
            CU_ASSERT_EQUAL(olen, ((3 * w + ml + 3) & ~(size_t)3) + 4);
            CU_ASSERT_EQUAL(kr_le32(out + w), KR_NDR_REFERENT);
            CU_ASSERT_EQUAL(kr_ndr_resp_decode(ndr, out, olen, &r, NULL), 0);
            CU_ASSERT(r.msg == out + 3 * w && r.msg_len == ml && r.hresult == 0x11223344);
            CU_ASSERT_EQUAL(kr_ndr_guess(out, olen, 1), ndr);
            /* Truncated anywhere before the HRESULT's last byte. */
            EXPECT(kr_ndr_resp_decode(ndr, out, olen - 1, &r, why), KR_EMALF);
            EXPECT(kr_ndr_resp_decode(ndr, out, 3 * w + ml / 2, &r, why), KR_EMALF);
        }
        struct kr_ndr_resp r;
        CU_ASSERT_EQUAL(kr_ndr_resp_encode(ndr, NULL, 0, 0xC004F042u, out, sizeof(out), &olen), 0);
        CU_ASSERT_EQUAL(olen, 2 * w + 4);
        CU_ASSERT_EQUAL(kr_ndr_resp_decode(ndr, out, olen, &r, NULL), 0);
        CU_ASSERT(r.msg == NULL && r.msg_len == 0 && r.hresult == 0xC004F042u);
        CU_ASSERT_EQUAL(kr_ndr_guess(out, olen, 1), ndr);
        EXPECT(kr_ndr_resp_decode(ndr, out, 2 * w, &r, why), KR_EMALF); /* stub too short */
        EXPECT(kr_ndr_resp_decode(ndr, out, w, &r, why), KR_EMALF);
        out[0] = 5; /* NULL pointer with a size */
        EXPECT(kr_ndr_resp_decode(ndr, out, olen, &r, why), KR_EMALF);
        /* Encoder arguments. */
        CU_ASSERT_EQUAL(kr_ndr_req_encode(ndr, msg, KR_NDR_MSG_MAX + 1, out, sizeof(out), &olen),
                        KR_EINVAL);
        CU_ASSERT_EQUAL(kr_ndr_req_encode(ndr, msg, 260, out, 100, &olen), KR_ENOSPC);
        CU_ASSERT_EQUAL(kr_ndr_resp_encode(ndr, NULL, 4, 0, out, sizeof(out), &olen), KR_EINVAL);
    }
    const uint8_t *m;
    size_t ml;
    struct kr_ndr_resp r;
    uint8_t s[64] = {0};
    /* NDR32: N differs from the conformance count; N = 0xFFFFFFFF. */
    kr_put_le32(s, 8);
    kr_put_le32(s + 4, 9);
    EXPECT(kr_ndr_req_decode(KR_NDR32, s, 24, &m, &ml, why), KR_EMALF);
    kr_put_le32(s, 0xFFFFFFFFu);
    kr_put_le32(s + 4, 0xFFFFFFFFu);
    EXPECT(kr_ndr_req_decode(KR_NDR32, s, 24, &m, &ml, why), KR_ETOOBIG);
    kr_put_le32(s, 17);
    kr_put_le32(s + 4, 17);
    EXPECT(kr_ndr_req_decode(KR_NDR32, s, 24, &m, &ml, why), KR_EMALF);
    EXPECT(kr_ndr_req_decode(KR_NDR32, s, 7, &m, &ml, why), KR_EMALF);
    /* NDR64: 2^40 is over the cap, never truncated to its low 32 bits (0). */
    kr_put_le64(s, 1ull << 40);
    kr_put_le64(s + 8, 1ull << 40);
    EXPECT(kr_ndr_req_decode(KR_NDR64, s, 24, &m, &ml, why), KR_ETOOBIG);
    kr_put_le64(s + 8, 0);
    EXPECT(kr_ndr_req_decode(KR_NDR64, s, 24, &m, &ml, why), KR_EMALF);
    kr_put_le64(s, (1ull << 32) | 4); /* low half 4, high half set */
    kr_put_le64(s + 8, (1ull << 32) | 4);
    EXPECT(kr_ndr_req_decode(KR_NDR64, s, 24, &m, &ml, why), KR_ETOOBIG);
    /* NDR64 response: referent non-zero, message truncated; size 2^40. */
    memset(s, 0, sizeof(s));
    kr_put_le64(s, 100);
    kr_put_le64(s + 8, KR_NDR_REFERENT);
    kr_put_le64(s + 16, 100);
    EXPECT(kr_ndr_resp_decode(KR_NDR64, s, 64, &r, why), KR_EMALF);
    kr_put_le64(s, 1ull << 40);
    kr_put_le64(s + 16, 1ull << 40);
    EXPECT(kr_ndr_resp_decode(KR_NDR64, s, 64, &r, why), KR_ETOOBIG);
    kr_put_le64(s + 16, 7);
    EXPECT(kr_ndr_resp_decode(KR_NDR64, s, 64, &r, why), KR_EMALF);
    CU_ASSERT_EQUAL(kr_ndr_guess(s, 3, 0), KR_EMALF);
    CU_ASSERT_EQUAL(kr_ndr_req_decode(3, s, 64, &m, &ml, NULL), KR_EINVAL);
}

/* Whether each capture's host offered NDR64. Most recording hosts ran with
 * NDR64 off (their bind_ack rejects the NDR64 item with (2, 2)), so they are
 * compared with policy ndr64 = 0; a new vector must be classified here. */
static int capture_ndr64(const char *name)
{
    static const struct {
        const char *name;
        int ndr64;
    } t[] = {
        {"bind_ndr32_only", 1}, /* NDR32 only offered: either policy fits */
        {"err_bad_version", 0},  {"err_kmsid_mismatch", 0}, {"v4_office2010_vm", 0},
        {"v4_win7pro_ndr32", 0}, {"v5_win8pro_ndr32", 0},   {"v6_ndr64_two_requests", 1},
        {"v6_office2016", 0},    {"v6_win10pro_ndr32", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(t[i].name, name) == 0)
            return t[i].ndr64;
    return -1;
}

static void answer_vs_capture(const struct kr_vec *v, const struct kr_vec_pdu *req,
                              const struct kr_vec_pdu *cap, int ndr64)
{
    struct kr_rpc_bind b;
    struct kr_rpc_bind_ack want, got;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_decode(req->bytes, req->len, &b, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_ack_decode(cap->bytes, cap->len, &want, NULL), 0);
    struct kr_rpc_bind_policy pol = {.ndr64 = ndr64, .ndr32_with_ndr64 = 0, .btfn = 1};
    uint16_t port = (uint16_t)atoi(want.sec_addr);
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_answer(&b, &pol, port, want.assoc_group, &got), 0);
    CU_ASSERT_EQUAL(got.n_results, want.n_results);
    for (unsigned i = 0; i < want.n_results; i++) {
        const struct kr_rpc_result *g = &got.results[i], *w = &want.results[i];
        if (g->result != w->result || g->reason != w->reason ||
            memcmp(g->ts.uuid, w->ts.uuid, 16) != 0 || g->ts.version != w->ts.version) {
            fprintf(stderr, "\n%s %s item %u: got (%u,%u) want (%u,%u)\n", v->name, req->type, i,
                    g->result, g->reason, w->result, w->reason);
            CU_FAIL("bind answer differs from the capture");
        }
    }
    CU_ASSERT_EQUAL(got.hdr.ptype, want.hdr.ptype);
    CU_ASSERT_EQUAL(got.hdr.flags, want.hdr.flags);
    CU_ASSERT_EQUAL(got.hdr.call_id, want.hdr.call_id);
    CU_ASSERT_EQUAL(got.sec_addr_len, want.sec_addr_len);
    CU_ASSERT_STRING_EQUAL(got.sec_addr, want.sec_addr);
    /* With the capture's garbage pad copied over, the bytes are the capture. */
    memcpy(got.pad, want.pad, sizeof(got.pad));
    uint8_t out[512];
    size_t olen;
    CU_ASSERT_EQUAL(kr_rpc_bind_ack_encode(&got, out, sizeof(out), &olen), 0);
    CU_ASSERT(olen == cap->len && memcmp(out, cap->bytes, olen) == 0);
    CU_ASSERT_EQUAL(got.hdr.frag_len, olen);
}

static void test_answer_captures(void)
{
    CU_ASSERT_EQUAL_FATAL(load(), 0);
    unsigned compared = 0;
    for (size_t i = 0; i < n_vecs; i++) {
        const struct kr_vec *v = &vecs[i];
        int ndr64 = capture_ndr64(v->name);
        CU_ASSERT(ndr64 >= 0);
        if (ndr64 < 0)
            continue;
        size_t a = 0; /* replies are in the order of their requests */
        for (size_t j = 0; j < v->n_c2s; j++) {
            int pt = ptype_of(v->c2s[j].type);
            if (pt != KR_PT_BIND && pt != KR_PT_ALTER)
                continue;
            while (a < v->n_s2c && ptype_of(v->s2c[a].type) != pt + 1)
                a++;
            CU_ASSERT_FATAL(a < v->n_s2c);
            answer_vs_capture(v, &v->c2s[j], &v->s2c[a++], ndr64);
            compared++;
        }
    }
    CU_ASSERT(compared >= 10);
}

static void item(struct kr_rpc_ctx_item *c, uint16_t id, const uint8_t *iface, const uint8_t *ts,
                 uint32_t ver)
{
    memset(c, 0, sizeof(*c));
    c->ctx_id = id;
    c->n_ts = 1;
    memcpy(c->abstract.uuid, iface, 16);
    c->abstract.version = 1;
    memcpy(c->ts[0].uuid, ts, 16);
    c->ts[0].version = ver;
}

static void test_answer_policy(void)
{
    static const uint8_t other_if[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uint8_t btfn[16];
    memcpy(btfn, kr_rpc_btfn_prefix, 8);
    kr_put_le64(btfn + 8, 0xFF);
    struct kr_rpc_bind b;
    memset(&b, 0, sizeof(b));
    b.hdr.ptype = KR_PT_BIND;
    b.hdr.flags = 0x03;
    b.hdr.call_id = 77;
    b.max_xmit = 4280;
    b.max_recv = 1234;
    b.n_ctx = 5;
    item(&b.ctx[0], 0, kr_rpc_kms_iface, kr_rpc_ndr32_uuid, 2);
    item(&b.ctx[1], 1, kr_rpc_kms_iface, kr_rpc_ndr64_uuid, 1);
    item(&b.ctx[2], 2, kr_rpc_kms_iface, btfn, 1);
    item(&b.ctx[3], 3, other_if, kr_rpc_ndr32_uuid, 2);
    item(&b.ctx[4], 4, kr_rpc_kms_iface, other_if, 1);
    struct kr_rpc_bind_policy pol = {.ndr64 = 1, .ndr32_with_ndr64 = 0, .btfn = 1};
    struct kr_rpc_bind_ack a;
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_answer(&b, &pol, 1688, 0xabcd, &a), 0);
    CU_ASSERT(a.results[0].result == 2 && a.results[0].reason == 2);
    CU_ASSERT(a.results[1].result == 0 && a.results[1].reason == 0);
    CU_ASSERT_EQUAL(memcmp(a.results[1].ts.uuid, kr_rpc_ndr64_uuid, 16), 0);
    CU_ASSERT(a.results[2].result == 3 && a.results[2].reason == 3); /* 0xFF & 3 */
    CU_ASSERT(a.results[3].result == 2 && a.results[3].reason == 1);
    CU_ASSERT(a.results[4].result == 2 && a.results[4].reason == 2);
    CU_ASSERT(a.hdr.flags == 0x03 && a.hdr.call_id == 77 && a.max_xmit == 4280 &&
              a.max_recv == 1234 && a.assoc_group == 0xabcd);
    CU_ASSERT(a.sec_addr_len == 5 && strcmp(a.sec_addr, "1688") == 0);
    uint8_t out[512];
    size_t olen;
    CU_ASSERT_EQUAL(kr_rpc_bind_ack_encode(&a, out, sizeof(out), &olen), 0);
    CU_ASSERT(olen == 32 + 4 + 5 * 24 && a.hdr.frag_len == olen);
    /* BTFN mask 1 -> 1; BTFN off -> (2, 2). */
    kr_put_le64(b.ctx[2].ts[0].uuid + 8, 1);
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 1688, 0, &a), 0);
    CU_ASSERT(a.results[2].result == 3 && a.results[2].reason == 1);
    pol.btfn = 0;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 1688, 0, &a), 0);
    CU_ASSERT(a.results[2].result == 2 && a.results[2].reason == 2);
    /* ndr64 = 0: NDR32 accepted, NDR64 rejected with a zero syntax. */
    pol.ndr64 = 0;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 7, 0, &a), 0);
    CU_ASSERT(a.results[0].result == 0 && a.results[0].ts.version == 2);
    CU_ASSERT_EQUAL(memcmp(a.results[0].ts.uuid, kr_rpc_ndr32_uuid, 16), 0);
    CU_ASSERT(a.results[1].result == 2 && a.results[1].reason == 2);
    CU_ASSERT(a.results[1].ts.version == 0 && a.results[1].ts.uuid[0] == 0);
    CU_ASSERT(a.sec_addr_len == 2 && a.hdr.frag_len == 28 + 4 + 5 * 24); /* "7\0", pad 0 */
    /* ndr32_with_ndr64: both accepted. */
    pol.ndr64 = 1;
    pol.ndr32_with_ndr64 = 1;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 7, 0, &a), 0);
    CU_ASSERT(a.results[0].result == 0 && a.results[1].result == 0);
    /* assoc_group echoed when set; alter_context_resp: no sec_addr, flags 3. */
    b.assoc_group = 0x1234;
    b.hdr.ptype = KR_PT_ALTER;
    b.hdr.flags = 0x13;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 1688, 9, &a), 0);
    CU_ASSERT(a.assoc_group == 0x1234 && a.hdr.ptype == KR_PT_ALTER_RESP && a.hdr.flags == 3);
    CU_ASSERT(a.sec_addr_len == 0 && a.hdr.frag_len == 32 + 5 * 24);
    b.hdr.ptype = KR_PT_REQUEST;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &pol, 1688, 9, &a), KR_EINVAL);
    /* Misc: names and syntax kinds. */
    CU_ASSERT_STRING_EQUAL(kr_rpc_ptype_name(15), "alter_context_resp");
    CU_ASSERT_STRING_EQUAL(kr_rpc_ptype_name(7), "unknown");
    struct kr_rpc_syntax s = {.version = 1};
    memcpy(s.uuid, kr_rpc_ndr32_uuid, 16);
    CU_ASSERT_EQUAL(kr_rpc_syntax_kind(&s), KR_TS_OTHER); /* NDR v1 does not exist */
}

static void cleanup(void)
{
    kr_vec_free_all(vecs, n_vecs);
    vecs = NULL;
    n_vecs = 0;
}

static int suite_clean(void)
{
    cleanup();
    return 0;
}

/* The client bind of the pool, the health check and the audit probe:
 * offered to a Windows 8+ host it is accepted with the right syntax, and a
 * rejection is recognised. */
static void test_kms_client_bind(void)
{
    static const struct kr_rpc_bind_policy win8 = {1, 0, 1}, old = {0, 0, 1};
    uint8_t pdu[256];
    size_t len = 0;
    struct kr_rpc_bind b;
    struct kr_rpc_bind_ack ack;

    CU_ASSERT_EQUAL_FATAL(kr_rpc_kms_bind_encode(7, 5840, false, pdu, sizeof(pdu), &len), 0);
    CU_ASSERT_EQUAL(len, 72); /* 28 + 44, like vlmcs -N0 -B0 */
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_decode(pdu, len, &b, NULL), 0);
    CU_ASSERT_EQUAL(b.hdr.call_id, 7);
    CU_ASSERT_EQUAL(b.n_ctx, 1);
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &win8, 1688, 1, &ack), 0);
    CU_ASSERT_EQUAL(kr_rpc_kms_bind_accepted(&ack), KR_TS_NDR32);

    CU_ASSERT_EQUAL_FATAL(kr_rpc_kms_bind_encode(8, 5840, true, pdu, sizeof(pdu), &len), 0);
    CU_ASSERT_EQUAL(len, 116);
    CU_ASSERT_EQUAL_FATAL(kr_rpc_bind_decode(pdu, len, &b, NULL), 0);
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &win8, 1688, 1, &ack), 0);
    CU_ASSERT_EQUAL(kr_rpc_kms_bind_accepted(&ack), KR_TS_NDR64); /* NDR32 rejected next to it */
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &old, 1688, 1, &ack), 0);
    CU_ASSERT_EQUAL(kr_rpc_kms_bind_accepted(&ack), KR_TS_NDR32);

    b.ctx[0].abstract.uuid[0] ^= 1; /* not the KMS interface */
    b.n_ctx = 1;
    CU_ASSERT_EQUAL(kr_rpc_bind_answer(&b, &win8, 1688, 1, &ack), 0);
    CU_ASSERT_EQUAL(kr_rpc_kms_bind_accepted(&ack), 0);
    CU_ASSERT_EQUAL(kr_rpc_kms_bind_encode(1, 5840, true, pdu, 100, &len), KR_ENOSPC);
}

KR_SUITE(rpc)
{
    CU_pSuite s = CU_add_suite("rpc", NULL, suite_clean);
    CU_add_test(s, "golden vectors: frame, decode, fields, re-encode", test_golden);
    CU_add_test(s, "every strict prefix is EMORE/EMALF", test_prefixes);
    CU_add_test(s, "malformed headers", test_malformed_header);
    CU_add_test(s, "malformed bind and bind_ack", test_malformed_bind);
    CU_add_test(s, "request object UUID, fault, encoder limits", test_call_pdus);
    CU_add_test(s, "NDR32/NDR64 stubs", test_ndr);
    CU_add_test(s, "bind answer equals the captures", test_answer_captures);
    CU_add_test(s, "bind answer policy", test_answer_policy);
    CU_add_test(s, "KMS client bind", test_kms_client_bind);
}
