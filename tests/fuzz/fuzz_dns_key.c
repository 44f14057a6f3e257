/*
 * fuzz_dns_key.c - TSIG key files in BIND's tsig-keygen format, the one
 * secret kmsrelayd reads. Any text must give a key or a clear error with a
 * reason, and never a crash; the secret is wiped either way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    struct kr_dns_key k;
    int line = 0;
    const char *why = NULL;
    int rc = kr_dns_key_parse(text, size, NULL, &k, &line, &why);
    if (rc != 0 && !why)
        abort(); /* an error always says why */
    kr_dns_key_clear(&k);
    free(text);
    return 0;
}
