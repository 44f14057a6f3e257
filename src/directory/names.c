/*
 * names.c - dnsNode names and zone DNs (directory.h). Pure string work:
 * what the directory returns is checked as strictly as a DNS name from the
 * wire before it becomes an owner name that --fix may send in an UPDATE.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kmsrelay/directory.h"
#include "kmsrelay/err.h"

static const char VLMCS[] = "_vlmcs._tcp";

/* Checks a dotted relative name (no final dot) label by label. */
static int check_labels(const char *s, size_t n, const char **why)
{
    size_t label = 0;
    if (n == 0)
        return *why = "empty node name", KR_EMALF;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return *why = "empty label in the node name", KR_EMALF;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_')
            return *why = "node name has a character outside letters, digits, '-' and '_'",
                   KR_EMALF;
        if (++label > 63)
            return *why = "node name has a label over 63 bytes", KR_EMALF;
    }
    if (label == 0)
        return *why = "node name ends with a dot", KR_EMALF;
    return 0;
}

static size_t trim_dot(const char *s)
{
    size_t n = strlen(s);
    return n && s[n - 1] == '.' ? n - 1 : n;
}

int kr_dir_owner(const char *dc, const char *zone, char *out, size_t cap, const char **why)
{
    size_t zn = trim_dot(zone), dn = strlen(dc);
    *why = "";
    if (cap)
        out[0] = 0;
    if (zn == 0 || check_labels(zone, zn, why) != 0)
        return *why = "bad zone name", KR_EMALF;
    int apex = strcmp(dc, "@") == 0;
    if (apex) {
        if (zn < sizeof(VLMCS) || strncasecmp(zone, "_vlmcs._tcp.", sizeof(VLMCS)) != 0)
            return KR_ENOENT;
    } else {
        if (dn < sizeof(VLMCS) - 1 || strncasecmp(dc, VLMCS, sizeof(VLMCS) - 1) != 0 ||
            (dc[sizeof(VLMCS) - 1] != 0 && dc[sizeof(VLMCS) - 1] != '.'))
            return KR_ENOENT;
        int rc = check_labels(dc, dn, why);
        if (rc != 0)
            return rc;
    }
    size_t need = (apex ? 0 : dn + 1) + zn + 2;
    if (need > 254 || need > cap)
        return *why = "owner name longer than 253 bytes", KR_EMALF;
    size_t o = 0;
    if (!apex) {
        for (size_t i = 0; i < dn; i++)
            out[o++] = (char)tolower((unsigned char)dc[i]);
        out[o++] = '.';
    }
    for (size_t i = 0; i < zn; i++)
        out[o++] = (char)tolower((unsigned char)zone[i]);
    out[o++] = '.';
    out[o] = 0;
    return 0;
}

int kr_dir_zone_dn(const char *zone, const char *partition, char *out, size_t cap)
{
    size_t zn = trim_dot(zone), o = 0;
    if (zn == 0 || cap == 0)
        return KR_EINVAL;
    const char *pre = "DC=";
    for (const char *p = pre; *p; p++) {
        if (o + 1 >= cap)
            return KR_ENOSPC;
        out[o++] = *p;
    }
    for (size_t i = 0; i < zn; i++) {
        unsigned char c = (unsigned char)zone[i];
        if (c < 0x21 || c > 0x7e)
            return KR_EINVAL;
        /* RFC 4514 2.4: these are escaped anywhere; '#' only first. */
        int esc = strchr(",+\"\\<>;=", c) != NULL || (i == 0 && c == '#');
        if (o + 2 + (size_t)esc >= cap)
            return KR_ENOSPC;
        if (esc)
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    int n = snprintf(out + o, cap - o, ",CN=MicrosoftDNS,%s", partition);
    return n < 0 || (size_t)n >= cap - o ? KR_ENOSPC : 0;
}

int kr_dir_dns_partition(const char *nc)
{
    return strncasecmp(nc, "DC=DomainDnsZones,", 18) == 0 ||
           strncasecmp(nc, "DC=ForestDnsZones,", 18) == 0;
}
