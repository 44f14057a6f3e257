/* netaddr.c - numeric "addr:port" parsing and formatting, and clocks. */
#include "kmsrelay/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmsrelay/err.h"

static int parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int kr_addr_parse(const char *text, int family_hint, struct kr_addr *out, const char **why)
{
    char host[KR_ADDRSTRLEN];
    const char *portstr;
    uint16_t port;

    if (!text || strlen(text) >= sizeof(host))
        return kr_fail(why, KR_EMALF, "address too long");
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return kr_fail(why, KR_EMALF, "IPv6 address must be written [addr]:port");
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        portstr = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            host[0] = '\0';
            portstr = text;
        } else {
            if (strchr(text, ':') != colon)
                return kr_fail(why, KR_EMALF, "IPv6 address must be written [addr]:port");
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            portstr = colon + 1;
        }
    }
    if (parse_port(portstr, &port) != 0)
        return kr_fail(why, KR_EMALF, "port must be a number from 0 to 65535");

    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    if (host[0] == '\0') {
        if (family_hint == AF_INET6) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = in6addr_any;
            sin6->sin6_port = htons(port);
            out->len = sizeof(*sin6);
        } else {
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
            sin->sin_port = htons(port);
            out->len = sizeof(*sin);
        }
        return 0;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        out->len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out->len = sizeof(*sin6);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return kr_fail(why, KR_EMALF, "not a numeric IPv4 or IPv6 address");
}

void kr_addr_format(const struct sockaddr *sa, char out[KR_ADDRSTRLEN])
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(out, KR_ADDRSTRLEN, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(out, KR_ADDRSTRLEN, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, KR_ADDRSTRLEN, "unix");
    } else {
        snprintf(out, KR_ADDRSTRLEN, "?");
    }
}

uint16_t kr_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

uint64_t kr_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t kr_wall_s(void)
{
    return (int64_t)time(NULL);
}
