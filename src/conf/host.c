/*
 * host.c - backend host entries: "-H name=ip:port[,weight=N]" from the
 * command line, and the address and name rules shared with the file.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"
#include "kmsrelay/err.h"

#define KMS_PORT "1688"

bool conf_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= KR_CONF_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '=' || *p == ',' || *p == '\\')
            return false;
    return true;
}

static bool addr_is_wildcard(const struct kr_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss.ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr, &in6addr_any, 16) == 0;
    return true;
}

int conf_host_addr_parse(const char *text, struct kr_addr *out, const char **why)
{
    char buf[KR_ADDRSTRLEN + 8];
    const char *colon = strchr(text, ':');
    struct kr_addr a;

    if (strlen(text) >= KR_ADDRSTRLEN)
        return kr_fail(why, KR_EMALF, "address too long");
    /* Without a port the KMS port is meant: "10.0.0.5", "fd00::5". */
    if (text[0] == '[' || (colon && colon == strrchr(text, ':')))
        snprintf(buf, sizeof(buf), "%s", text);
    else if (!colon)
        snprintf(buf, sizeof(buf), "%s:" KMS_PORT, text);
    else
        snprintf(buf, sizeof(buf), "[%s]:" KMS_PORT, text);
    if (kr_addr_parse(buf, AF_INET, &a, why) != 0)
        return KR_EMALF;
    if (addr_is_wildcard(&a))
        return kr_fail(why, KR_EMALF, "a backend address cannot be a wildcard address");
    if (kr_addr_port((const struct sockaddr *)&a.ss) == 0)
        return kr_fail(why, KR_EMALF, "a backend port cannot be 0");
    *out = a;
    return 0;
}

bool conf_addr_equal(const struct kr_addr *a, const struct kr_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    if (*s == '\0' || strlen(s) > 10)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int kr_conf_host_parse(const char *text, struct kr_conf_host *out, const char **why)
{
    char buf[256];
    struct kr_conf_host h;

    if (!text || strlen(text) >= sizeof(buf))
        return kr_fail(why, KR_EMALF, "host must be name=ip:port[,weight=N]");
    memset(&h, 0, sizeof(h));
    h.weight = 1;
    h.admin = KR_ADMIN_UNSET;
    snprintf(buf, sizeof(buf), "%s", text);

    char *opts = strchr(buf, ',');
    if (opts)
        *opts++ = '\0';
    char *addr = buf, *eq = strchr(buf, '=');
    if (eq) {
        *eq = '\0';
        addr = eq + 1;
        if (!conf_name_ok(buf))
            return kr_fail(why, KR_EMALF,
                           "host name must be 1 to 63 printable characters "
                           "without spaces, quotes, '=', ',' or '\\'");
        memcpy(h.name, buf, strlen(buf) + 1); /* conf_name_ok: shorter than h.name */
    } else {
        if (strlen(addr) >= sizeof(h.name))
            return kr_fail(why, KR_EMALF, "host address too long");
        memcpy(h.name, addr, strlen(addr) + 1);
    }
    if (conf_host_addr_parse(addr, &h.addr, why) != 0)
        return KR_EMALF;

    while (opts && *opts) {
        char *next = strchr(opts, ',');
        if (next)
            *next++ = '\0';
        char *val = strchr(opts, '=');
        if (!val)
            return kr_fail(why, KR_EMALF, "host options are key=value (weight, priority, state)");
        *val++ = '\0';
        if (strcmp(opts, "weight") == 0) {
            if (parse_u32(val, 1, 10000, &h.weight) != 0)
                return kr_fail(why, KR_EMALF, "weight must be a whole number from 1 to 10000");
        } else if (strcmp(opts, "priority") == 0) {
            if (parse_u32(val, 0, 1000, &h.priority) != 0)
                return kr_fail(why, KR_EMALF, "priority must be a whole number from 0 to 1000");
        } else if (strcmp(opts, "state") == 0) {
            int a = kr_admin_parse(val);
            if (a < 0)
                return kr_fail(why, KR_EMALF, "state must be ready, drain, maint or retired");
            h.admin = (uint8_t)a;
        } else {
            return kr_fail(why, KR_EMALF, "unknown host option (weight, priority, state)");
        }
        opts = next;
    }
    *out = h;
    return 0;
}
