/*
 * cidr.c - client networks for the allow-list: "10.0.0.0/8", "fc00::/7" or
 * a bare address. Matching treats a v4-mapped IPv6 peer (::ffff:a.b.c.d, what
 * a dual-stack socket reports) as the IPv4 address it is, so an IPv4 rule
 * covers it; an IPv4 peer also matches an IPv6 rule through its mapped form
 * (so "::/0" means every client).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int kr_cidr_parse(const char *text, struct kr_cidr *out, const char **why)
{
    char addr[INET6_ADDRSTRLEN + 1];
    struct kr_cidr c;
    const char *slash;
    size_t alen;

    if (!text || !out)
        return kr_fail(why, KR_EINVAL, "no network given");
    memset(&c, 0, sizeof(c));
    slash = strchr(text, '/');
    alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(addr))
        return kr_fail(why, KR_EMALF, "not a network: want ADDRESS or ADDRESS/PREFIX");
    memcpy(addr, text, alen);
    addr[alen] = '\0';

    unsigned maxbits;
    if (inet_pton(AF_INET, addr, c.addr) == 1) {
        c.family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
        c.family = AF_INET6;
        maxbits = 128;
    } else {
        return kr_fail(why, KR_EMALF, "not a numeric IPv4 or IPv6 address");
    }

    unsigned prefix = maxbits;
    if (slash) {
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return kr_fail(why, KR_EMALF, "prefix length must be a number after '/'");
        prefix = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return kr_fail(why, KR_EMALF, "prefix length must be a number after '/'");
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > maxbits)
            return kr_fail(why, KR_EMALF, "prefix length is longer than the address");
    }
    /* Host bits set ("10.0.0.1/8") are most likely a typo: refuse rather than
     * guess which network was meant. */
    for (unsigned bit = prefix; bit < maxbits; bit++)
        if (c.addr[bit / 8] & (0x80 >> (bit % 8)))
            return kr_fail(why, KR_EMALF, "address has bits set past the prefix length");
    c.prefix = (uint8_t)prefix;
    *out = c;
    return 0;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int kr_cidr_match(const struct kr_cidr *c, const struct sockaddr *sa)
{
    uint8_t v4[4], v6[16];
    int have4 = 0;

    if (!c || !sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        memcpy(v6, v4mapped_prefix, 12);
        memcpy(v6 + 12, v4, 4);
        have4 = 1;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(v6, v4mapped_prefix, 12) == 0) {
            memcpy(v4, v6 + 12, 4);
            have4 = 1;
        }
    } else {
        return 0;
    }
    if (c->family == AF_INET)
        return have4 && prefix_equal(v4, c->addr, c->prefix);
    if (c->family == AF_INET6)
        return prefix_equal(v6, c->addr, c->prefix);
    return 0;
}
