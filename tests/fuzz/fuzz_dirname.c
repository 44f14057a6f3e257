/*
 * fuzz_dirname.c - the directory module's name handling (src/directory/
 * names.c) on any bytes: a dnsNode's DC= value and a zone name become an
 * owner name or an error with a reason, a zone becomes an escaped DN or an
 * error; never a crash, an overread or an owner that is not a DNS name.
 * Input: "<dc>\n<zone>\n<partition>".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/directory.h"
#include "kmsrelay/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *zone = strchr(buf, '\n');
    zone = zone ? (*zone = 0, zone + 1) : buf + size;
    char *part = strchr(zone, '\n');
    part = part ? (*part = 0, part + 1) : zone + strlen(zone);
    char out[KR_DNS_NAME_MAX], dn[KR_DIR_DN_MAX];
    const char *why = NULL;
    int rc = kr_dir_owner(buf, zone, out, sizeof(out), &why);
    if (rc == KR_EMALF && (!why || !*why))
        abort(); /* an error says why */
    if (rc == 0 && (strlen(out) > 254 || out[strlen(out) - 1] != '.' || strstr(out, "..")))
        abort(); /* an owner is an absolute DNS name */
    rc = kr_dir_zone_dn(zone, part, dn, sizeof(dn));
    if (rc == 0 && strlen(dn) >= sizeof(dn))
        abort();
    kr_dir_dns_partition(part);
    free(buf);
    return 0;
}
