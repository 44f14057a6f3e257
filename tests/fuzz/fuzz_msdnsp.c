/*
 * fuzz_msdnsp.c - dnsRecord values (MS-DNSP DNS_RPC_RECORD) as the AD audit
 * reads them from LDAP: any bytes give a record or an error with a reason,
 * never a crash or an overread.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dnsclient/msdnsp.h"
#include "kmsrelay/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kr_dns_rr rr;
    struct kr_msdnsp_meta m;
    const char *why = NULL;
    int rc = kr_msdnsp_decode(data, size, "_vlmcs._tcp.corp.test.", &rr, &m, &why);
    if (rc != 0 && rc != KR_ENOENT && !why)
        abort(); /* an error always says why */
    return 0;
}
