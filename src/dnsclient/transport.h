/*
 * transport.h - the request object shared by transport.c (transport
 * and server iteration) and mname.c (the SOA MNAME fallback).
 *
 * Ownership: the client owns its requests (a linked list); a request owns
 * its bufferevent, timer, message, result (until handed to the callback)
 * and its fallback sub-request.
 */
#ifndef KR_DNS_CLIENT_INTERNAL_H
#define KR_DNS_CLIENT_INTERNAL_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dnsclient/message.h"

#define KR_DNS_MAX_SERVERS 16

enum { KR_DNS_KIND_QUERY, KR_DNS_KIND_AXFR, KR_DNS_KIND_UPDATE };

struct kr_dns_client {
    struct event_base *base;
    struct kr_dns_client_opts opts;
    struct kr_dns_req *reqs;
};

struct kr_dns_req {
    struct kr_dns_client *c;
    struct kr_dns_req *prev, *next;
    int kind;
    struct kr_dns_msg rq;
    struct kr_addr addrs[KR_DNS_MAX_SERVERS];
    size_t n_addrs, cur;
    struct kr_addr resolvers[KR_DNS_MAX_SERVERS]; /* for the MNAME fallback */
    size_t n_resolvers;
    uint64_t timeout_ms;
    uint64_t deadline_us; /* 0: no budget */
    bool recursion, mname_fallback, mname_tried;
    uint16_t mname_port;
    struct bufferevent *bev;
    struct event *timer; /* start, per-try timeout */
    bool started;
    struct kr_dns_result *res;
    kr_dns_cb cb;
    void *arg;
    unsigned n_failed;
    struct kr_dns_req *child; /* MNAME fallback step in flight */
    int phase;                /* mname.c: 0 none, 1 SOA, 2 A, 3 AAAA */
    char mname[KR_DNS_NAME_MAX];
    struct kr_dnsg_job *gss; /* GSS-TSIG request on a worker (gss_async.c) */
};

/* transport.c */
int64_t kr_dns_transport_wall(const struct kr_dns_client *c);
/* Tries the next server (or finishes). */
void kr_dns_transport_try(struct kr_dns_req *r);
/* Hands the result to the callback and frees the request. */
void kr_dns_transport_finish(struct kr_dns_req *r);
/* Remaining budget in ms (UINT64_MAX without a budget, 0 when spent). */
uint64_t kr_dns_transport_left_ms(const struct kr_dns_req *r);

/* mname.c: starts the fallback; returns false when it does not apply. */
bool kr_dns_mname_start(struct kr_dns_req *r);

/* gss_async.c: GSS-TSIG requests on a worker thread. prepare copies what
 * the worker needs (0 or KR_E* with err); start runs it (from the start
 * timer); release (from free_req) frees or abandons the job. */
int kr_dnsg_prepare(struct kr_dns_req *r, const struct kr_dns_servers *s, const char *name,
                    uint16_t type, const struct kr_dns_update *u, char *err, size_t errlen);
void kr_dnsg_start(struct kr_dns_req *r);
void kr_dnsg_release(struct kr_dns_req *r);

#endif
