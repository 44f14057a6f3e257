/*
 * mname.c - the SOA MNAME fallback for UPDATE (RFC 2136 4.3): when every
 * configured server failed in a way another server might not (timeout,
 * SERVFAIL, NOTIMP, NOTAUTH), ask the given resolvers (else the same
 * servers, else the system's resolvers) for the zone's SOA, resolve its
 * MNAME, and send the update there once, on the port of the first
 * configured server (53 without one).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dnsclient/transport.h"
#include "kmsrelay/err.h"

static void on_step(struct kr_dns_result *res, void *arg);

static bool ask(struct kr_dns_req *r, const char *name, uint16_t type)
{
    struct kr_addr sys[4];
    struct kr_dns_servers s;
    memset(&s, 0, sizeof(s));
    if (r->n_resolvers) {
        s.addrs = r->resolvers;
        s.n = r->n_resolvers;
        s.recursion = true;
    } else if (r->n_addrs) {
        s.addrs = r->addrs;
        s.n = r->n_addrs;
    } else {
        s.n = kr_dns_system_resolvers(sys, 4);
        s.addrs = sys;
        s.recursion = true;
    }
    s.timeout_ms = r->timeout_ms;
    uint64_t left = kr_dns_transport_left_ms(r);
    s.budget_ms = left == UINT64_MAX ? 0 : left;
    if (s.n == 0 || left == 0)
        return false;
    return kr_dns_query(r->c, &s, name, type, on_step, r, &r->child) == 0;
}

static void give_up(struct kr_dns_req *r, const char *why)
{
    size_t n = strlen(r->res->message);
    snprintf(r->res->message + n, sizeof(r->res->message) - n, "%sSOA MNAME fallback: %s",
             n ? "; " : "", why);
    if (r->res->status == KR_DNS_OK)
        r->res->status = KR_DNS_E_NET;
    kr_dns_transport_finish(r);
}

static void on_step(struct kr_dns_result *res, void *arg)
{
    struct kr_dns_req *r = arg;
    char why[KR_DNS_MSG_MAX];

    r->child = NULL;
    if (res->status != KR_DNS_OK) {
        snprintf(why, sizeof(why), "%.400s", res->message);
        kr_dns_result_free(res);
        give_up(r, why);
        return;
    }
    if (r->phase == 1) {
        for (size_t i = 0; i < res->n_rrs && !r->mname[0]; i++)
            if (res->rrs[i].type == KR_DNS_SOA && res->rrs[i].target[0])
                snprintf(r->mname, sizeof(r->mname), "%s", res->rrs[i].target);
        kr_dns_result_free(res);
        if (!r->mname[0]) {
            give_up(r, "no SOA record for the zone");
            return;
        }
        r->phase = 2;
        if (!ask(r, r->mname, KR_DNS_A))
            give_up(r, "cannot query the MNAME's address");
        return;
    }
    struct kr_addr a;
    bool found = false;
    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < res->n_rrs && !found; i++) {
        const struct kr_dns_rr *rr = &res->rrs[i];
        if (rr->family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(r->mname_port);
            memcpy(&sin->sin_addr, rr->addr, 4);
            a.len = sizeof(*sin);
            found = true;
        } else if (rr->family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(r->mname_port);
            memcpy(&sin6->sin6_addr, rr->addr, 16);
            a.len = sizeof(*sin6);
            found = true;
        }
    }
    kr_dns_result_free(res);
    if (!found) {
        if (r->phase == 2) {
            r->phase = 3;
            if (ask(r, r->mname, KR_DNS_AAAA))
                return;
        }
        snprintf(why, sizeof(why), "MNAME %s has no address", r->mname);
        give_up(r, why);
        return;
    }
    /* Send the update to the primary, once. */
    r->mname_tried = true;
    r->addrs[0] = a;
    r->n_addrs = 1;
    r->cur = 0;
    r->n_failed = 0;
    kr_dns_transport_try(r);
}

bool kr_dns_mname_start(struct kr_dns_req *r)
{
    r->mname_tried = true;
    r->phase = 1;
    return ask(r, r->rq.qname, KR_DNS_SOA);
}
