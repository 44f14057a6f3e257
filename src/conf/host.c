/*
 * host.c - backend host entries: "-H name=ip:port[,weight=N]" from the
 * command line, and the address and name rules shared with the file.
 * An address is numeric ("10.0.0.5:1688", "[fd00::5]:1688", either
 * without a port for 1688) or a DNS name ("kms1.corp.example:1688",
 * "kms1.corp.example"); a name is only recorded here, the daemon resolves
 * it (src/daemon/names.c). Numeric addresses never cause a lookup.
 */
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"
#include "kmsrelay/err.h"

#define KMS_PORT "1688"

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

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

/* A DNS host name: dot-separated labels of letters, digits, '-' and '_'
 * (AD names have them), 1 to 63 bytes each, no '-' at either end, 253 in
 * all, one optional final dot. A last label of digits only is a mistyped
 * IPv4 address ("10.0.0.300"), not a name. */
static bool host_name_ok(const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    size_t start = 0;
    bool digits = true;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
                return false;
            if (i == n && digits)
                return false;
            start = i + 1;
            digits = true;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return false;
        if (!isdigit(c))
            digits = false;
    }
    return true;
}

int conf_host_target_parse(const char *text, struct kr_conf_host *h, const char **why)
{
    const char *nwhy = "not a numeric address";
    const char *colon = strrchr(text, ':');
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    uint32_t port = 1688;

    memset(&h->addr, 0, sizeof(h->addr));
    h->addr_name[0] = '\0';
    h->addr_port = 0;
    if (conf_host_addr_parse(text, &h->addr, &nwhy) == 0)
        return 0;
    memset(&h->addr, 0, sizeof(h->addr));
    /* '[' or two colons: an IPv6 address, so the numeric parser's reason. */
    if (text[0] == '[' || (colon && memchr(text, ':', n)))
        return kr_fail(why, KR_EMALF, nwhy);
    if (colon && (parse_u32(colon + 1, 0, 65535, &port) != 0))
        return kr_fail(why, KR_EMALF, "the port must be a number from 1 to 65535");
    if (port == 0)
        return kr_fail(why, KR_EMALF, "a backend port cannot be 0");
    if (!host_name_ok(text, n)) {
        bool numeric = true;
        for (size_t i = 0; i < n; i++)
            numeric &= isdigit((unsigned char)text[i]) || text[i] == '.';
        return kr_fail(why, KR_EMALF,
                       numeric ? nwhy
                               : "neither a numeric IPv4 or IPv6 address nor a DNS host name "
                                 "(letters, digits, '-', '_' and dots)");
    }
    if (text[n - 1] == '.')
        n--; /* kept without the final dot: names are absolute anyway */
    memcpy(h->addr_name, text, n);
    h->addr_name[n] = '\0';
    h->addr_port = (uint16_t)port;
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
    if (conf_host_target_parse(addr, &h, why) != 0)
        return KR_EMALF;
    snprintf(h.addr_at, sizeof(h.addr_at), "-H");

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
