/*
 * addr.c - a host name's addresses: the A and the AAAA query of one name,
 * sent at once through the request machinery of this library, joined into
 * one kr_dns_addrs with the TTL to look again by (see dns.h). kmsrelayd
 * resolves the backend hosts written as names with it (src/daemon/names.c),
 * `kmsrelayd -n` with the blocking form.
 *
 * One answer with addresses is enough: an A answer stands even when the
 * AAAA query timed out. No address is `absent` only when both answers say
 * the name has none (NXDOMAIN or NODATA); a timeout or a SERVFAIL is a
 * passing failure the caller may ride out on the address it knows.
 *
 * Ownership: a lookup owns its two child requests and frees itself after
 * its callback (or on cancel).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dnsclient/addr.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"

#define RCODE_NXDOMAIN 3

struct kr_dns_lookup {
    struct kr_dns_req *req[2]; /* A, AAAA; NULL once answered */
    struct kr_dns_result *res[2];
    uint16_t port;
    kr_dns_addrs_cb cb;
    void *arg;
};

static void lookup_free(struct kr_dns_lookup *l)
{
    for (int i = 0; i < 2; i++) {
        kr_dns_cancel(l->req[i]);
        kr_dns_result_free(l->res[i]);
    }
    free(l);
}

static void add_addr(struct kr_dns_addrs *out, const struct kr_dns_rr *rr, uint16_t port)
{
    struct kr_addr a;
    memset(&a, 0, sizeof(a));
    if (rr->type == KR_DNS_A && rr->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, rr->addr, 4);
        a.len = sizeof(*sin);
    } else if (rr->type == KR_DNS_AAAA && rr->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        memcpy(&sin6->sin6_addr, rr->addr, 16);
        a.len = sizeof(*sin6);
    } else {
        return;
    }
    for (size_t i = 0; i < out->n; i++)
        if (out->addrs[i].len == a.len && memcmp(&out->addrs[i].ss, &a.ss, a.len) == 0)
            return;
    if (out->n < KR_DNS_ADDRS_MAX)
        out->addrs[out->n++] = a;
}

/* IPv4 before IPv6, then byte order. */
static int addr_cmp(const void *pa, const void *pb)
{
    const struct kr_addr *a = pa, *b = pb;
    if (a->ss.ss_family != b->ss.ss_family)
        return a->ss.ss_family == AF_INET ? -1 : 1;
    if (a->ss.ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)&a->ss)->sin_addr,
                      &((const struct sockaddr_in *)&b->ss)->sin_addr, 4);
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->ss)->sin6_addr, 16);
}

/* TTLs start at TTL_UNSET, so that a real TTL of 0 stays 0. */
#define TTL_UNSET UINT32_MAX
static uint32_t min_ttl(uint32_t have, uint32_t ttl)
{
    return ttl < have ? ttl : have;
}

/* The negative TTL of a NODATA/NXDOMAIN answer (RFC 2308: the SOA's TTL,
 * at most its MINIMUM), 0 when there is no SOA. */
static uint32_t negative_ttl(const struct kr_dns_result *r)
{
    for (size_t i = 0; i < r->n_auth; i++)
        if (r->auth[i].type == KR_DNS_SOA)
            return r->auth[i].ttl < r->auth[i].soa_minimum ? r->auth[i].ttl
                                                           : r->auth[i].soa_minimum;
    return 0;
}

/* One answer into out. Returns true when it says the name has no address
 * of this type (NXDOMAIN, or NOERROR without one). */
static bool take(struct kr_dns_addrs *out, const struct kr_dns_result *r, uint16_t port,
                 uint32_t *neg_ttl)
{
    if (r->status != KR_DNS_OK)
        return false;
    size_t before = out->n;
    uint32_t ttl = TTL_UNSET;
    for (size_t i = 0; i < r->n_rrs; i++) {
        ttl = min_ttl(ttl, r->rrs[i].ttl); /* a CNAME's TTL bounds the chain */
        add_addr(out, &r->rrs[i], port);
    }
    if (out->n > before) {
        out->ttl = min_ttl(out->ttl, ttl);
        return false;
    }
    *neg_ttl = min_ttl(*neg_ttl, negative_ttl(r));
    return true;
}

static void describe(struct kr_dns_addrs *out, const struct kr_dns_result *ra,
                     const struct kr_dns_result *raaaa)
{
    const struct kr_dns_result *bad = ra->status != KR_DNS_OK ? ra : raaaa;
    if (bad->status != KR_DNS_OK)
        snprintf(out->message, sizeof(out->message), "%s", bad->message);
    else if (ra->rcode == RCODE_NXDOMAIN)
        snprintf(out->message, sizeof(out->message), "NXDOMAIN (no such name) from %s", ra->server);
    else
        snprintf(out->message, sizeof(out->message), "no A or AAAA record (answer from %s)",
                 ra->server);
}

void kr_dns_addrs_join(const struct kr_dns_result *a, const struct kr_dns_result *aaaa,
                       uint16_t port, struct kr_dns_addrs *out)
{
    uint32_t neg = TTL_UNSET;
    memset(out, 0, sizeof(*out));
    out->ttl = TTL_UNSET;
    bool none_a = take(out, a, port, &neg);
    bool none_aaaa = take(out, aaaa, port, &neg);
    qsort(out->addrs, out->n, sizeof(out->addrs[0]), addr_cmp);
    if (out->n == 0) {
        out->absent = none_a && none_aaaa;
        out->ttl = out->absent && neg != TTL_UNSET ? neg : 0;
        describe(out, a, aaaa);
    }
}

static void finish(struct kr_dns_lookup *l)
{
    struct kr_dns_addrs out;
    kr_dns_addrs_join(l->res[0], l->res[1], l->port, &out);
    l->cb(&out, l->arg);
    lookup_free(l);
}

static void on_a(struct kr_dns_result *res, void *arg)
{
    struct kr_dns_lookup *l = arg;
    l->req[0] = NULL;
    l->res[0] = res;
    if (l->res[1])
        finish(l);
}

static void on_aaaa(struct kr_dns_result *res, void *arg)
{
    struct kr_dns_lookup *l = arg;
    l->req[1] = NULL;
    l->res[1] = res;
    if (l->res[0])
        finish(l);
}

int kr_dns_lookup_addrs(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *name,
                        uint16_t port, kr_dns_addrs_cb cb, void *arg, struct kr_dns_lookup **out)
{
    if (out)
        *out = NULL;
    if (!c || !s || !name || !cb)
        return KR_EINVAL;
    struct kr_dns_lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return KR_ENOMEM;
    l->port = port;
    l->cb = cb;
    l->arg = arg;
    int rc = kr_dns_query(c, s, name, KR_DNS_A, on_a, l, &l->req[0]);
    if (rc == 0)
        rc = kr_dns_query(c, s, name, KR_DNS_AAAA, on_aaaa, l, &l->req[1]);
    if (rc != 0) {
        lookup_free(l);
        return rc;
    }
    if (out)
        *out = l;
    return 0;
}

void kr_dns_lookup_cancel(struct kr_dns_lookup *l)
{
    if (l)
        lookup_free(l);
}

struct waiter {
    struct event_base *base;
    struct kr_dns_addrs *out;
    bool done;
};

static void on_sync(const struct kr_dns_addrs *res, void *arg)
{
    struct waiter *w = arg;
    *w->out = *res;
    w->done = true;
    event_base_loopbreak(w->base);
}

int kr_dns_lookup_addrs_sync(const struct kr_dns_servers *s, const char *name, uint16_t port,
                             struct kr_dns_addrs *out)
{
    struct waiter w = {NULL, out, false};
    struct kr_dns_client *c;
    memset(out, 0, sizeof(*out));
    if (!(w.base = event_base_new()))
        return KR_ENOMEM;
    if (!(c = kr_dns_client_new(w.base, NULL))) {
        event_base_free(w.base);
        return KR_ENOMEM;
    }
    int rc = kr_dns_lookup_addrs(c, s, name, port, on_sync, &w, NULL);
    if (rc == 0)
        while (!w.done && event_base_dispatch(w.base) == 0)
            ;
    kr_dns_client_free(c);
    event_base_loop(w.base, EVLOOP_NONBLOCK); /* deferred bufferevent cleanup */
    event_base_free(w.base);
    if (rc == 0 && !w.done)
        return KR_EIO;
    return rc;
}
