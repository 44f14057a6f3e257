/*
 * marker.c - kmsrelay's TXT ownership marker:
 *   "kmsrelay=1 owner=<id> target=<fqdn.> port=<p> prio=<n> weight=<n>"
 * Space-separated key=value pairs; the first must be kmsrelay=1. Unknown
 * keys are skipped so that a later version can add some.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 63)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

int kr_dns_marker_format(const struct kr_dns_marker *m, char *out, size_t cap)
{
    char t[KR_DNS_NAME_MAX];
    if (!id_ok(m->owner_id) || kr_dns_name_absolute(m->target, t) != 0)
        return KR_EINVAL;
    int n = snprintf(out, cap, "kmsrelay=1 owner=%s target=%s port=%u prio=%u weight=%u",
                     m->owner_id, t, m->port, m->priority, m->weight);
    if (n < 0 || (size_t)n >= cap || n > 255)
        return KR_EINVAL;
    return 0;
}

static int num16(const char *v, uint16_t *out)
{
    char *end;
    if (!*v || *v < '0' || *v > '9')
        return -1;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || n > 65535)
        return -1;
    *out = (uint16_t)n;
    return 0;
}

int kr_dns_marker_parse(const char *text, struct kr_dns_marker *out, const char **why)
{
    char buf[KR_DNS_TXT_MAX], *save = NULL;
    unsigned have = 0;

    memset(out, 0, sizeof(*out));
    if (!text || strlen(text) >= sizeof(buf))
        return kr_fail(why, KR_ENOENT, "not a kmsrelay marker");
    snprintf(buf, sizeof(buf), "%s", text);
    char *tok = strtok_r(buf, " ", &save);
    if (!tok || strcmp(tok, "kmsrelay=1") != 0)
        return kr_fail(why, KR_ENOENT, "not a kmsrelay marker");
    while ((tok = strtok_r(NULL, " ", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return kr_fail(why, KR_EMALF, "marker field without '='");
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        if (strcmp(k, "owner") == 0) {
            if (!id_ok(v))
                return kr_fail(why, KR_EMALF, "marker owner id is empty or has bad characters");
            snprintf(out->owner_id, sizeof(out->owner_id), "%s", v);
            have |= 1;
        } else if (strcmp(k, "target") == 0) {
            if (kr_dns_name_absolute(v, out->target) != 0)
                return kr_fail(why, KR_EMALF, "marker target is not a domain name");
            have |= 2;
        } else if (strcmp(k, "port") == 0) {
            if (num16(v, &out->port) != 0)
                return kr_fail(why, KR_EMALF, "marker port is not a number 0..65535");
            have |= 4;
        } else if (strcmp(k, "prio") == 0) {
            if (num16(v, &out->priority) != 0)
                return kr_fail(why, KR_EMALF, "marker prio is not a number 0..65535");
            have |= 8;
        } else if (strcmp(k, "weight") == 0) {
            if (num16(v, &out->weight) != 0)
                return kr_fail(why, KR_EMALF, "marker weight is not a number 0..65535");
            have |= 16;
        }
    }
    if ((have & 7) != 7)
        return kr_fail(why, KR_EMALF, "marker lacks owner, target or port");
    return 0;
}
