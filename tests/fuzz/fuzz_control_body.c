/* fuzz_control_body.c - the control API's request checks on arbitrary
 * input: the JSON body validator of every POST endpoint (the first byte
 * picks the kind, the rest is the body) and the body gate's header rewrite
 * (the whole input as a header block). What passes must satisfy the
 * documented ranges; nothing may crash, leak or read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_body(int kind, const struct ctl_body *b)
{
    switch (kind) {
    case CTL_BODY_STATE:
        if (b->state < KR_ADMIN_READY || b->state > KR_ADMIN_RETIRED)
            abort();
        break;
    case CTL_BODY_WEIGHT:
        if (b->weight < 1 || b->weight > CTL_WEIGHT_MAX)
            abort();
        break;
    case CTL_BODY_MOVE: {
        size_t l = strnlen(b->host, sizeof(b->host));
        if (l == 0 || l >= sizeof(b->host))
            abort();
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)b->host[i] <= ' ' || (unsigned char)b->host[i] >= 0x7f)
                abort();
        break;
    }
    case CTL_BODY_REBALANCE:
        if (b->max > CTL_REBALANCE_MAX)
            abort();
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    struct ctl_body b;
    char err[CTL_ERR_MAX];

    if (n == 0)
        return 0;
    /* Exact-size copies, no NUL: the parsers take (pointer, length). */
    char *body = malloc(n - 1 ? n - 1 : 1);
    char *all = malloc(n);
    if (!body || !all) {
        free(body);
        free(all);
        return 0;
    }
    memcpy(body, d + 1, n - 1);
    memcpy(all, d, n);

    int kind = d[0] % CTL_BODY_KINDS;
    err[0] = '\0';
    int rc = ctl_body_parse(kind, body, n - 1, &b, err, sizeof(err));
    if (rc == 0)
        check_body(kind, &b);
    else if ((rc != 400 && rc != 413) || !err[0])
        abort(); /* every refusal is a 4xx with a reason */

    size_t cap = 2 * n + 128; /* bare LFs become CRLF */
    char *out = malloc(cap);
    if (out) {
        long g = ctl_gate_rewrite(all, n, 64, out, cap);
        if (g < 0 || (size_t)g > cap)
            abort(); /* 2n + 128 is always enough */
        if (g > 0 && !memmem(out, (size_t)g, CTL_GATE_HEADER ": ", sizeof(CTL_GATE_HEADER) + 1))
            abort();
        free(out);
    }
    free(body);
    free(all);
    return 0;
}
