/*
 * transport.c - the non-blocking transport: one TCP connection per server try
 * (RFC 1035 4.2.2 length framing) on the caller's libevent base, servers
 * in order, per-try timeout and an optional whole-request budget. Replies
 * are judged by kr_dns_msg_judge(); this file only moves bytes and decides
 * which server comes next.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "dnsclient/transport.h"
#include "kmsrelay/err.h"

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

int64_t kr_dns_transport_wall(const struct kr_dns_client *c)
{
    return c->opts.wall ? c->opts.wall(c->opts.wall_ctx) : kr_wall_s();
}

uint64_t kr_dns_transport_left_ms(const struct kr_dns_req *r)
{
    if (!r->deadline_us)
        return UINT64_MAX;
    uint64_t now = kr_now_us();
    return now >= r->deadline_us ? 0 : (r->deadline_us - now + 999) / 1000;
}

static void server_text(const struct kr_dns_req *r, char out[KR_ADDRSTRLEN])
{
    kr_addr_format((const struct sockaddr *)&r->addrs[r->cur].ss, out);
}

static void close_conn(struct kr_dns_req *r)
{
    if (r->bev) {
        bufferevent_free(r->bev);
        r->bev = NULL;
    }
    evtimer_del(r->timer);
}

static void unlink_req(struct kr_dns_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->c->reqs == r)
        r->c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void free_req(struct kr_dns_req *r)
{
    if (r->child)
        kr_dns_cancel(r->child);
    close_conn(r);
    kr_dnsg_release(r);
    if (r->timer)
        event_free(r->timer);
    kr_dns_msg_reset(&r->rq);
    kr_dns_result_free(r->res);
    free(r);
}

void kr_dns_transport_finish(struct kr_dns_req *r)
{
    struct kr_dns_result *res = r->res;
    kr_dns_cb cb = r->cb;
    void *arg = r->arg;

    if (res->status != KR_DNS_OK && r->n_failed > 1) {
        char m[KR_DNS_MSG_MAX + 48];
        snprintf(m, sizeof(m), "all %u servers failed; last: %s", r->n_failed, res->message);
        size_t l = strlen(m) < sizeof(res->message) ? strlen(m) : sizeof(res->message) - 1;
        memcpy(res->message, m, l);
        res->message[l] = '\0';
    }
    r->res = NULL;
    unlink_req(r);
    free_req(r);
    cb(res, arg); /* last: the callback may free the client */
}

/* The current server failed (res says why): on to the next one. */
static void next_server(struct kr_dns_req *r)
{
    if (r->cur < r->n_addrs)
        server_text(r, r->res->server);
    close_conn(r);
    r->n_failed++;
    r->cur++;
    kr_dns_msg_restart(&r->rq);
    kr_dns_result_clear_rrs(r->res);
    kr_dns_transport_try(r);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct kr_dns_req *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char srv[KR_ADDRSTRLEN];
    uint8_t hdr[2];

    server_text(r, srv);
    while (evbuffer_get_length(in) >= 2) {
        evbuffer_copyout(in, hdr, 2);
        size_t n = (size_t)hdr[0] << 8 | hdr[1];
        if (evbuffer_get_length(in) < 2 + n)
            return;
        uint8_t *msg = malloc(n ? n : 1);
        if (!msg) {
            kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "out of memory");
            kr_dns_transport_finish(r);
            return;
        }
        evbuffer_drain(in, 2);
        evbuffer_remove(in, msg, n);
        enum kr_dns_verdict v =
            kr_dns_msg_judge(&r->rq, msg, n, kr_dns_transport_wall(r->c), srv, r->res);
        free(msg);
        if (v == KR_DNS_REPLY_DONE) {
            kr_dns_transport_finish(r);
            return;
        }
        if (v == KR_DNS_REPLY_NEXT) {
            next_server(r);
            return;
        }
        /* AXFR goes on: the timeout counts from the last message. */
        uint64_t left = kr_dns_transport_left_ms(r);
        arm(r->timer, left < r->timeout_ms ? left : r->timeout_ms);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct kr_dns_req *r = arg;
    char srv[KR_ADDRSTRLEN];

    if (what & BEV_EVENT_CONNECTED)
        return;
    server_text(r, srv);
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        kr_dns_result_set(r->res, KR_DNS_E_NET, "cannot talk to %s: %s (retry on the next server)",
                          srv, e ? evutil_socket_error_to_string(e) : "connection error");
    } else {
        kr_dns_result_set(
            r->res, KR_DNS_E_NET,
            "%s closed the connection before a complete reply (retry on the next server)", srv);
    }
    r->res->rcode = -1;
    next_server(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct kr_dns_req *r = arg;
    char srv[KR_ADDRSTRLEN];

    if (!r->started) {
        r->started = true;
        if (r->res->status == KR_DNS_E_LOCAL) /* the build failed */
            kr_dns_transport_finish(r);
        else if (r->gss) /* GSS-TSIG: blocking Kerberos on a worker (gss_async.c) */
            kr_dnsg_start(r);
        else
            kr_dns_transport_try(r);
        return;
    }
    server_text(r, srv);
    kr_dns_result_set(r->res, KR_DNS_E_NET, "timeout: no complete answer from %s within %llu ms",
                      srv, (unsigned long long)r->timeout_ms);
    r->res->rcode = -1;
    next_server(r);
}

void kr_dns_transport_try(struct kr_dns_req *r)
{
    char srv[KR_ADDRSTRLEN];
    uint64_t left = kr_dns_transport_left_ms(r);

    if (r->cur >= r->n_addrs || left == 0) {
        if (left == 0 && r->deadline_us) {
            size_t n = strlen(r->res->message);
            if (r->res->status == KR_DNS_OK || n == 0)
                kr_dns_result_set(r->res, KR_DNS_E_NET, "no answer within the time budget");
            else
                snprintf(r->res->message + n, sizeof(r->res->message) - n, " (time budget spent)");
        } else if (r->kind == KR_DNS_KIND_UPDATE && r->mname_fallback && !r->mname_tried &&
                   (kr_dns_status_transient(r->res->status) || r->res->status == KR_DNS_E_ZONE ||
                    r->n_addrs == 0)) {
            if (kr_dns_mname_start(r))
                return;
        } else if (r->n_addrs == 0) {
            kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "no DNS server configured");
        }
        kr_dns_transport_finish(r);
        return;
    }
    server_text(r, srv);
    r->bev = bufferevent_socket_new(r->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    uint8_t len[2] = {(uint8_t)(r->rq.len >> 8), (uint8_t)r->rq.len};
    if (!r->bev) {
        kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "out of memory");
        kr_dns_transport_finish(r);
        return;
    }
    bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
    if (bufferevent_write(r->bev, len, 2) != 0 ||
        bufferevent_write(r->bev, r->rq.wire, r->rq.len) != 0 ||
        bufferevent_socket_connect(r->bev, (struct sockaddr *)&r->addrs[r->cur].ss,
                                   (int)r->addrs[r->cur].len) != 0) {
        kr_dns_result_set(r->res, KR_DNS_E_NET, "cannot connect to %s: %s", srv, strerror(errno));
        next_server(r);
        return;
    }
    arm(r->timer, left < r->timeout_ms ? left : r->timeout_ms);
}

struct kr_dns_client *kr_dns_client_new(struct event_base *base,
                                        const struct kr_dns_client_opts *opts)
{
    struct kr_dns_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base = base;
    if (opts)
        c->opts = *opts;
    if (!c->opts.fudge)
        c->opts.fudge = 300;
    return c;
}

void kr_dns_client_free(struct kr_dns_client *c)
{
    if (!c)
        return;
    while (c->reqs)
        kr_dns_cancel(c->reqs);
    free(c);
}

void kr_dns_cancel(struct kr_dns_req *r)
{
    if (!r)
        return;
    unlink_req(r);
    free_req(r);
}

/* Common part of every submit: copies the servers, schedules the start. */
static int submit(struct kr_dns_client *c, const struct kr_dns_servers *s, int kind, kr_dns_cb cb,
                  void *arg, struct kr_dns_req **out, struct kr_dns_req **rp)
{
    if (!c || !s || !cb)
        return KR_EINVAL;
    struct kr_dns_req *r = calloc(1, sizeof(*r));
    if (!r || !(r->res = kr_dns_result_new()) || !(r->timer = evtimer_new(c->base, on_timer, r))) {
        if (r) {
            kr_dns_result_free(r->res);
            free(r);
        }
        return KR_ENOMEM;
    }
    r->c = c;
    r->kind = kind;
    r->cb = cb;
    r->arg = arg;
    r->n_addrs = s->n < KR_DNS_MAX_SERVERS ? s->n : KR_DNS_MAX_SERVERS;
    if (r->n_addrs)
        memcpy(r->addrs, s->addrs, r->n_addrs * sizeof(r->addrs[0]));
    r->n_resolvers = s->n_resolvers < KR_DNS_MAX_SERVERS ? s->n_resolvers : KR_DNS_MAX_SERVERS;
    if (r->n_resolvers && s->resolvers)
        memcpy(r->resolvers, s->resolvers, r->n_resolvers * sizeof(r->resolvers[0]));
    else
        r->n_resolvers = 0;
    r->mname_port = r->n_addrs ? kr_addr_port((const struct sockaddr *)&r->addrs[0].ss) : 53;
    r->timeout_ms = s->timeout_ms ? s->timeout_ms : 3000;
    r->deadline_us = s->budget_ms ? kr_now_us() + s->budget_ms * 1000 : 0;
    r->recursion = s->recursion;
    r->mname_fallback = s->mname_fallback;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    arm(r->timer, 0);
    if (out)
        *out = r;
    *rp = r;
    return 0;
}

static void build_failed(struct kr_dns_req *r, int rc, const char *err)
{
    if (rc)
        kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "%s", err);
}

int kr_dns_query(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *name,
                 uint16_t type, kr_dns_cb cb, void *arg, struct kr_dns_req **out)
{
    struct kr_dns_req *r;
    char err[256];
    int rc =
        submit(c, s, type == KR_DNS_AXFR ? KR_DNS_KIND_AXFR : KR_DNS_KIND_QUERY, cb, arg, out, &r);
    if (rc)
        return rc;
    if (s->gss_principal && type != KR_DNS_AXFR) {
        build_failed(r, kr_dnsg_prepare(r, s, name, type, NULL, err, sizeof(err)), err);
        return 0;
    }
    build_failed(r,
                 kr_dns_msg_build_query(&r->rq, name, type, s->recursion, s->key, c->opts.fudge,
                                        err, sizeof(err)),
                 err);
    r->rq.max_rrs = c->opts.axfr_max_rrs;
    return 0;
}

int kr_dns_axfr(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *zone,
                kr_dns_cb cb, void *arg, struct kr_dns_req **out)
{
    return kr_dns_query(c, s, zone, KR_DNS_AXFR, cb, arg, out);
}

int kr_dns_update(struct kr_dns_client *c, const struct kr_dns_servers *s,
                  const struct kr_dns_update *u, kr_dns_cb cb, void *arg, struct kr_dns_req **out)
{
    struct kr_dns_req *r;
    char err[256];
    int rc = submit(c, s, KR_DNS_KIND_UPDATE, cb, arg, out, &r);
    if (rc)
        return rc;
    if (s->gss_principal) {
        build_failed(r, kr_dnsg_prepare(r, s, NULL, 0, u, err, sizeof(err)), err);
        return 0;
    }
    build_failed(r, kr_dns_msg_build_update(&r->rq, u, s->key, c->opts.fudge, err, sizeof(err)),
                 err);
    return 0;
}
