/*
 * guard.c - the fail-static guard: before a health-driven withdrawal, make
 * sure the name keeps at least one record of a host believed healthy.
 * Each other SRV record (not ours) is probed in turn: its target must not
 * be "." , must resolve (A, then AAAA), must not be one of our own backends
 * that we know is DOWN, and must accept a TCP connection on its port. The
 * first healthy one ends the probe. Evidence for the log says what each
 * probe found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>

#include "dnsservice/service-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

#define PROBE_MS 1500
#define MAX_PROBES 8

struct dns_guard {
    struct dns_zone *z;
    size_t i;     /* index into z->srvset */
    size_t tried; /* probes started */
    uint16_t type;
    struct kr_addr addr;
    struct kr_dns_req *req;
    struct bufferevent *bev;
    struct event *timer;
    char evidence[512];
};

static void next(struct dns_guard *g);

static void note(struct dns_guard *g, const char *target, const char *what)
{
    size_t n = strlen(g->evidence);
    snprintf(g->evidence + n, sizeof(g->evidence) - n, "%s%s: %s", n ? "; " : "", target, what);
}

static void end(struct dns_guard *g, unsigned healthy)
{
    struct dns_zone *z = g->z;
    char ev[sizeof(g->evidence)];
    memcpy(ev, g->evidence, sizeof(ev));
    if (!ev[0])
        snprintf(ev, sizeof(ev), "no other record at the name");
    dns_guard_cancel(z);
    dns_guard_done(z, healthy, ev);
}

static void conn_done(struct dns_guard *g, bool ok, const char *what)
{
    const struct kr_dns_rr *rr = &g->z->srvset[g->i];
    if (g->bev) {
        bufferevent_free(g->bev);
        g->bev = NULL;
    }
    evtimer_del(g->timer);
    note(g, rr->target, what);
    if (ok) {
        end(g, 1);
        return;
    }
    g->i++;
    next(g);
}

static void on_conn(struct bufferevent *bev, short what, void *arg)
{
    struct dns_guard *g = arg;
    if (what & BEV_EVENT_CONNECTED)
        conn_done(g, true, "answers on its port");
    else
        conn_done(g, false, "port closed or unreachable");
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    conn_done(arg, false, "no TCP answer within 1.5 s");
}

static void on_addr(struct kr_dns_result *res, void *arg)
{
    struct dns_guard *g = arg;
    const struct kr_dns_rr *rr = &g->z->srvset[g->i];
    bool found = false;

    g->req = NULL;
    memset(&g->addr, 0, sizeof(g->addr));
    for (size_t i = 0; res->status == KR_DNS_OK && i < res->n_rrs && !found; i++) {
        const struct kr_dns_rr *a = &res->rrs[i];
        if (a->family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&g->addr.ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(rr->port);
            memcpy(&sin->sin_addr, a->addr, 4);
            g->addr.len = sizeof(*sin);
            found = true;
        } else if (a->family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&g->addr.ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(rr->port);
            memcpy(&sin6->sin6_addr, a->addr, 16);
            g->addr.len = sizeof(*sin6);
            found = true;
        }
    }
    int status = res->status;
    kr_dns_result_free(res);
    if (!found) {
        if (g->type == KR_DNS_A && status == KR_DNS_OK) {
            struct kr_dns_servers s;
            g->type = KR_DNS_AAAA;
            dns_zone_servers(g->z, &s, 0);
            if (kr_dns_query(g->z->d->client, &s, rr->target, KR_DNS_AAAA, on_addr, g, &g->req) ==
                0)
                return;
        }
        note(g, rr->target, status == KR_DNS_OK ? "no address" : "address lookup failed");
        g->i++;
        next(g);
        return;
    }
    if (g->z->d->env.host_down(g->z->d->env.ctx, &g->addr)) {
        note(g, rr->target, "one of our backends, health DOWN");
        g->i++;
        next(g);
        return;
    }
    g->bev = bufferevent_socket_new(g->z->d->env.base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!g->bev) {
        end(g, 0);
        return;
    }
    bufferevent_setcb(g->bev, NULL, NULL, on_conn, g);
    if (bufferevent_socket_connect(g->bev, (struct sockaddr *)&g->addr.ss, (int)g->addr.len) != 0) {
        conn_done(g, false, "cannot connect");
        return;
    }
    dns_arm(g->timer, PROBE_MS);
}

static void next(struct dns_guard *g)
{
    struct dns_zone *z = g->z;
    struct kr_dns_servers s;

    for (; g->i < z->n_srvset; g->i++) {
        const struct kr_dns_rr *rr = &z->srvset[g->i];
        if (dns_rr_ours(z, rr))
            continue;
        if (g->tried >= MAX_PROBES)
            break;
        if (strcmp(rr->target, ".") == 0) {
            note(g, ".", "target \".\" (service decidedly not available)");
            continue;
        }
        g->tried++;
        g->type = KR_DNS_A;
        dns_zone_servers(z, &s, 0);
        if (kr_dns_query(z->d->client, &s, rr->target, KR_DNS_A, on_addr, g, &g->req) == 0)
            return;
        note(g, rr->target, "cannot query");
    }
    end(g, 0);
}

void dns_guard_start(struct dns_zone *z)
{
    struct dns_guard *g = calloc(1, sizeof(*g));
    if (!g || !(g->timer = evtimer_new(z->d->env.base, on_timeout, g))) {
        free(g);
        dns_guard_done(z, 0, "out of memory");
        return;
    }
    g->z = z;
    z->guard = g;
    z->op = OP_GUARD;
    next(g);
}

void dns_guard_cancel(struct dns_zone *z)
{
    struct dns_guard *g = z->guard;
    if (!g)
        return;
    z->guard = NULL;
    if (g->req)
        kr_dns_cancel(g->req);
    if (g->bev)
        bufferevent_free(g->bev);
    if (g->timer)
        event_free(g->timer);
    free(g);
}
