/*
 * fuzz_rpc_pdu.c - every DCE/RPC decoder of src/rpc on arbitrary bytes.
 *
 * Beyond "no crash": whenever a decoder accepts the input, encoding the
 * decoded struct must give back exactly the PDU's frag_length bytes (the
 * byte-exact property the proxy relies on when it forwards and logs), the
 * framing must agree with the decoder, and for binds the policy answer must
 * encode into a PDU that decodes again. Violations abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t re[KR_RPC_FRAG_MAX];

/* The encoder succeeded and gave the first `n` bytes of the input, or abort. */
static void same(int rc, const size_t *relen, const uint8_t *d, int n)
{
    if (rc != 0 || n <= 0 || *relen != (size_t)n || memcmp(re, d, (size_t)n) != 0)
        abort();
}

static void stubs(const uint8_t *stub, size_t len, int is_response)
{
    const char *why;
    for (int ndr = KR_NDR32; ndr <= KR_NDR64; ndr++) {
        if (is_response) {
            struct kr_ndr_resp r;
            if (kr_ndr_resp_decode(ndr, stub, len, &r, &why) == 0) {
                if (r.msg && (r.msg < stub || r.msg + r.msg_len > stub + len))
                    abort();
                size_t ol;
                if (kr_ndr_resp_encode(ndr, r.msg, r.msg_len, r.hresult, re, sizeof(re), &ol) != 0)
                    abort();
            }
        } else {
            const uint8_t *m;
            size_t ml;
            if (kr_ndr_req_decode(ndr, stub, len, &m, &ml, &why) == 0) {
                if (m < stub || m + ml > stub + len || ml > KR_NDR_MSG_MAX)
                    abort();
                /* A request stub has no free fields: it re-encodes exactly. */
                size_t ol;
                if (kr_ndr_req_encode(ndr, m, ml, re, sizeof(re), &ol) != 0 ||
                    ol != (size_t)(m - stub) + ml || memcmp(re, stub, ol) != 0)
                    abort();
            }
        }
    }
    int g = kr_ndr_guess(stub, len, is_response);
    if (g != KR_NDR32 && g != KR_NDR64 && g != KR_EMALF)
        abort();
}

static void answer(const struct kr_rpc_bind *b)
{
    for (int p = 0; p < 8; p++) {
        struct kr_rpc_bind_policy pol = {p & 1, (p >> 1) & 1, (p >> 2) & 1};
        struct kr_rpc_bind_ack a, back;
        size_t ol;
        if (kr_rpc_bind_answer(b, &pol, 1688, 7, &a) != 0)
            abort();
        if (kr_rpc_bind_ack_encode(&a, re, sizeof(re), &ol) != 0 || ol != a.hdr.frag_len)
            abort();
        if (kr_rpc_bind_ack_decode(re, ol, &back, NULL) != 0 || back.n_results != b->n_ctx)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *d = malloc(size ? size : 1);
    if (!d)
        return 0;
    if (size)
        memcpy(d, data, size);

    const char *why = NULL;
    struct kr_rpc_hdr h;
    int n = kr_rpc_frame(d, size, 0, &h, &why);
    size_t relen = 0;
    int ok = 0;

    struct kr_rpc_bind b;
    if (kr_rpc_bind_decode(d, size, &b, &why) == 0) {
        ok++;
        same(kr_rpc_bind_encode(&b, re, sizeof(re), &relen), &relen, d, n);
        answer(&b);
    }
    struct kr_rpc_bind_ack a;
    if (kr_rpc_bind_ack_decode(d, size, &a, &why) == 0) {
        ok++;
        same(kr_rpc_bind_ack_encode(&a, re, sizeof(re), &relen), &relen, d, n);
    }
    struct kr_rpc_request q;
    if (kr_rpc_request_decode(d, size, &q, &why) == 0) {
        ok++;
        same(kr_rpc_request_encode(&q, re, sizeof(re), &relen), &relen, d, n);
        stubs(q.stub, q.stub_len, 0);
    }
    struct kr_rpc_response r;
    if (kr_rpc_response_decode(d, size, &r, &why) == 0) {
        ok++;
        same(kr_rpc_response_encode(&r, re, sizeof(re), &relen), &relen, d, n);
        stubs(r.stub, r.stub_len, 1);
    }
    struct kr_rpc_fault f;
    if (kr_rpc_fault_decode(d, size, &f, &why) == 0) {
        ok++;
        same(kr_rpc_fault_encode(&f, re, sizeof(re), &relen), &relen, d, n);
    }
    /* At most one decoder accepts, and only a framed PDU. */
    if (ok > 1 || (ok == 1 && n <= 0))
        abort();

    /* The stub decoders also get the raw input, to reach their edges. */
    stubs(d, size, 0);
    stubs(d, size, 1);
    free(d);
    return 0;
}
