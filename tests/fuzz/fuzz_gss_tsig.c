/*
 * fuzz_gss_tsig.c - replies as the GSS-TSIG verifier sees them (src/dnsclient/
 * gss_tsig.c): any bytes must give a verified body or a clear error with a
 * reason, never a crash or an overread. The MIC is a stand-in that accepts
 * a MAC equal to the first bytes of the digest, so the fuzzer can also
 * reach the time check and the Samba form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss_tsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int accept_prefix(void *ctx, const uint8_t *d, size_t n, const uint8_t *mic, size_t len)
{
    (void)ctx;
    return len <= n && len > 0 && memcmp(d, mic, len) == 0 ? 0 : -8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t req_mac[4] = {1, 2, 3, 4};
    struct kr_gsst_tsig t;
    uint8_t *body = NULL;
    size_t bl = 0;
    char err[256] = "";
    int rc = kr_gsst_verify(data, size, "1.sig-dc1.corp.test.", req_mac, sizeof(req_mac),
                            1780000000, accept_prefix, NULL, &t, &body, &bl, err, sizeof(err));
    if (rc != 0 && (body || !err[0]))
        abort(); /* an error always says why and leaves no body */
    if (rc == 0 && (!body || bl > size))
        abort();
    free(body);
    const char *why = NULL;
    rc = kr_gsst_split(data, size, &t, &body, &bl, &why);
    if (rc < 0 && !why)
        abort();
    free(body);
    return 0;
}
