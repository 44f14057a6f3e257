/*
 * discover.c - backends from DNS: each backend.discover name is an SRV
 * RRset (e.g. _vlmcs._tcp.pool.example.test) whose targets become hosts
 * (priority -> tier, weight -> HRW weight, 0 -> 1), resolved through the
 * resolvers (dns.resolvers, else /etc/resolv.conf). Re-resolved within the
 * records' TTL (at most discover_interval apart).
 *
 * Safety: our own addresses (listeners; for a wildcard listener every
 * local address on its port) and our own names (dns.self, the zones'
 * targets) are never added. A lookup that fails changes nothing (a DNS
 * outage must not drain the pool); only an answer that no longer lists a
 * host drains it, and it is removed after discover_linger. New hosts start
 * UNKNOWN and take traffic once their health checks pass (relay side:
 * src/relay/discover.c).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsservice/service-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

#define DISC_MAX 32

struct disc_host {
    char host[KR_CONF_NAME_MAX]; /* the relay's host name */
    char target[KR_DNS_NAME_MAX];
    uint16_t port, prio, weight;
    struct kr_addr addr;
    int state;          /* round: 0 pending, 1 resolved, 2 no address, 3 lookup failed, 4 skip */
    int64_t gone_since; /* known: unix s it stopped being listed, 0 = listed */
};

struct dns_disc {
    struct kr_dns *d;
    char name[KR_DNS_NAME_MAX];
    struct event *timer;
    struct kr_dns_req *req;
    struct disc_host cur[DISC_MAX]; /* this round */
    size_t n_cur, i;
    uint16_t rtype;
    uint32_t min_ttl;
    struct disc_host known[DISC_MAX * 2]; /* hosts we added */
    size_t n_known;
    int status;
    char message[KR_DNS_MSG_MAX];
    int64_t when;
    uint64_t next_us;
    uint32_t failures;
};

static void round_start(evutil_socket_t fd, short what, void *arg);

const char *dns_disc_name(const struct dns_disc *x)
{
    return x->name;
}

static void servers(const struct dns_disc *x, struct kr_dns_servers *s, struct kr_addr *buf)
{
    memset(s, 0, sizeof(*s));
    s->n = dns_resolvers(x->d, buf, KR_CONF_MAX_DNS_SERVERS);
    s->addrs = buf;
    s->recursion = true;
    s->timeout_ms = dns_conf(x->d)->dns_timeout_ms;
}

static void schedule(struct dns_disc *x, uint64_t ms)
{
    x->next_us = kr_now_us() + ms * 1000;
    dns_arm(x->timer, ms);
}

static bool is_local(const struct kr_addr *a)
{
    struct ifaddrs *ifs = NULL;
    bool found = false;
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;

    if (sa->sa_family == AF_INET &&
        (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127)
        return true;
    if (sa->sa_family == AF_INET6 &&
        IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr))
        return true;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != sa->sa_family)
            continue;
        if (sa->sa_family == AF_INET)
            found = memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr,
                           &((const struct sockaddr_in *)sa)->sin_addr, 4) == 0;
        else
            found = memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
                           &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0;
    }
    freeifaddrs(ifs);
    return found;
}

static bool is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return sa->sa_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* One of our own listeners? */
static bool is_own(const struct kr_dns *d, const struct kr_addr *a)
{
    struct kr_addr l[KR_CONF_MAX_LISTEN];
    size_t n = d->env.listen_addrs(d->env.ctx, l, KR_CONF_MAX_LISTEN);
    uint16_t port = kr_addr_port((const struct sockaddr *)&a->ss);
    for (size_t i = 0; i < n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&l[i].ss;
        if (kr_addr_port(sa) != port)
            continue;
        if (is_wildcard(sa) ? is_local(a)
                            : l[i].len == a->len && memcmp(&l[i].ss, &a->ss, a->len) == 0)
            return true;
    }
    return false;
}

static bool self_name(const struct kr_conf *c, const char *target)
{
    for (size_t i = 0; i < c->n_dns_self; i++)
        if (kr_dns_name_equal(c->dns_self[i], target))
            return true;
    for (size_t i = 0; i < c->n_dns_zones; i++)
        if (kr_dns_name_equal(c->dns_zones[i].target, target))
            return true;
    return false;
}

/* A configured host at this address: the config's numeric addresses, and
 * what the relay resolved its named hosts to (they have no address in the
 * configuration itself). */
static bool static_addr(const struct kr_dns *d, const struct kr_conf *c, const struct kr_addr *a)
{
    for (size_t i = 0; i < c->n_hosts; i++)
        if (c->hosts[i].addr.len == a->len && memcmp(&c->hosts[i].addr.ss, &a->ss, a->len) == 0)
            return true;
    return d->env.configured_at && d->env.configured_at(d->env.ctx, a);
}

static struct disc_host *known(struct dns_disc *x, const char *host)
{
    for (size_t i = 0; i < x->n_known; i++)
        if (strcmp(x->known[i].host, host) == 0)
            return &x->known[i];
    return NULL;
}

static void host_name(const struct disc_host *h, char out[KR_CONF_NAME_MAX])
{
    size_t n = strlen(h->target);
    if (n && h->target[n - 1] == '.')
        n--;
    char port[8] = "";
    if (h->port != 1688)
        snprintf(port, sizeof(port), ":%u", h->port);
    if (n + strlen(port) >= KR_CONF_NAME_MAX)
        n = KR_CONF_NAME_MAX - 1 - strlen(port);
    snprintf(out, KR_CONF_NAME_MAX, "%.*s%s", (int)n, h->target, port);
}

/* The round's answer is complete: add, keep, drain, remove. */
static void apply(struct dns_disc *x)
{
    const struct kr_dns_env *env = &x->d->env;
    const struct kr_conf *c = dns_conf(x->d);
    int64_t now = kr_wall_s();
    size_t added = 0;

    for (size_t i = 0; i < x->n_cur; i++) {
        struct disc_host *h = &x->cur[i];
        host_name(h, h->host);
        if (h->state != 1)
            continue;
        if (is_own(x->d, &h->addr) || static_addr(x->d, c, &h->addr)) {
            kr_log(KR_LOG_DEBUG, "event=discover_skip name=%s target=%s reason=\"%s\"", x->name,
                   h->target,
                   is_own(x->d, &h->addr) ? "our own address" : "already a configured host");
            h->state = 4;
            continue;
        }
        struct kr_conf_host hc;
        memset(&hc, 0, sizeof(hc));
        snprintf(hc.name, sizeof(hc.name), "%s", h->host);
        hc.addr = h->addr;
        hc.weight = h->weight ? h->weight : 1;
        hc.priority = h->prio > 1000 ? 1000 : h->prio;
        hc.admin = KR_ADMIN_UNSET;
        int rc = env->host_add(env->ctx, &hc);
        if (rc != 0) {
            kr_log(KR_LOG_WARN, "event=discover_skip name=%s host=%s reason=\"%s\"", x->name,
                   h->host, rc == KR_EEXIST ? "a configured host has this name" : kr_strerror(rc));
            h->state = 4;
            continue;
        }
        struct disc_host *k = known(x, h->host);
        if (!k && x->n_known < DISC_MAX * 2)
            k = &x->known[x->n_known++];
        if (k) {
            *k = *h;
            k->gone_since = 0;
        }
        added++;
    }
    /* Known hosts this answer does not list (a failed lookup of one
     * target keeps that host as it was). */
    size_t n = 0;
    for (size_t i = 0; i < x->n_known; i++) {
        struct disc_host *k = &x->known[i];
        bool listed = false, unsure = false;
        for (size_t j = 0; j < x->n_cur; j++)
            if (strcmp(x->cur[j].host, k->host) == 0) {
                listed |= x->cur[j].state == 1;
                unsure |= x->cur[j].state == 3;
            }
        if (!listed && !unsure) {
            if (!k->gone_since) {
                k->gone_since = now;
                kr_log(KR_LOG_INFO, "event=discover_gone name=%s host=%s action=drain", x->name,
                       k->host);
                env->host_drain(env->ctx, k->host);
            } else if ((uint64_t)(now - k->gone_since) * 1000 >= c->discover_linger_ms) {
                kr_log(KR_LOG_INFO, "event=discover_gone name=%s host=%s action=remove", x->name,
                       k->host);
                env->host_remove(env->ctx, k->host);
                continue;
            }
        }
        x->known[n++] = *k;
    }
    x->n_known = n;
    x->status = KR_DNS_OK;
    snprintf(x->message, sizeof(x->message), "%zu records, %zu hosts in service from DNS", x->n_cur,
             added);
}

static void resolve_next(struct dns_disc *x);

static void on_addr(struct kr_dns_result *res, void *arg)
{
    struct dns_disc *x = arg;
    struct disc_host *h = &x->cur[x->i];

    x->req = NULL;
    if (res->status != KR_DNS_OK) {
        h->state = 3;
    } else {
        for (size_t i = 0; i < res->n_rrs && h->state != 1; i++) {
            const struct kr_dns_rr *a = &res->rrs[i];
            if (a->family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr.ss;
                memset(&h->addr, 0, sizeof(h->addr));
                sin->sin_family = AF_INET;
                sin->sin_port = htons(h->port);
                memcpy(&sin->sin_addr, a->addr, 4);
                h->addr.len = sizeof(*sin);
                h->state = 1;
            } else if (a->family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr.ss;
                memset(&h->addr, 0, sizeof(h->addr));
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(h->port);
                memcpy(&sin6->sin6_addr, a->addr, 16);
                h->addr.len = sizeof(*sin6);
                h->state = 1;
            }
            if (h->state == 1 && a->ttl < x->min_ttl)
                x->min_ttl = a->ttl;
        }
        if (h->state != 1 && x->rtype == KR_DNS_A) {
            kr_dns_result_free(res);
            x->rtype = KR_DNS_AAAA;
            struct kr_dns_servers s;
            struct kr_addr buf[KR_CONF_MAX_DNS_SERVERS];
            servers(x, &s, buf);
            if (kr_dns_query(x->d->client, &s, h->target, KR_DNS_AAAA, on_addr, x, &x->req) != 0) {
                h->state = 3;
                x->i++;
                resolve_next(x);
            }
            return;
        }
        if (h->state != 1)
            h->state = 2;
    }
    kr_dns_result_free(res);
    x->i++;
    resolve_next(x);
}

static void resolve_next(struct dns_disc *x)
{
    struct kr_dns_servers s;
    struct kr_addr buf[KR_CONF_MAX_DNS_SERVERS];

    for (; x->i < x->n_cur; x->i++) {
        if (x->cur[x->i].state != 0)
            continue;
        x->rtype = KR_DNS_A;
        servers(x, &s, buf);
        if (kr_dns_query(x->d->client, &s, x->cur[x->i].target, KR_DNS_A, on_addr, x, &x->req) == 0)
            return;
        x->cur[x->i].state = 3;
    }
    const struct kr_dns_env *env = &x->d->env;
    if (env->names_settling && env->names_settling(env->ctx)) {
        /* A configured host named by DNS name has no address yet: a target
         * at that address would look like a new host. Ask again soon. */
        kr_log(KR_LOG_DEBUG,
               "event=discover_wait name=%s reason=\"configured host names not "
               "resolved yet\"",
               x->name);
        schedule(x, 1000);
        return;
    }
    apply(x);
    x->failures = 0;
    x->when = kr_wall_s();
    uint64_t ms = dns_conf(x->d)->discover_interval_ms;
    if (x->n_cur && (uint64_t)x->min_ttl * 1000 < ms)
        ms = x->min_ttl < 1 ? 1000 : (uint64_t)x->min_ttl * 1000;
    schedule(x, ms);
}

static void on_srv(struct kr_dns_result *res, void *arg)
{
    struct dns_disc *x = arg;
    const struct kr_conf *c = dns_conf(x->d);
    char q[KR_DNS_MSG_MAX + 8];

    x->req = NULL;
    x->when = kr_wall_s();
    if (res->status != KR_DNS_OK) {
        /* Keep every host as it is: a DNS outage must not drain the pool. */
        x->status = res->status;
        snprintf(x->message, sizeof(x->message), "%s", res->message);
        uint64_t ms = 2000;
        for (uint32_t i = 0; i < x->failures && ms < c->discover_interval_ms; i++)
            ms *= 2;
        if (ms > c->discover_interval_ms)
            ms = c->discover_interval_ms;
        x->failures++;
        kr_log(KR_LOG_WARN, "event=discover_error name=%s error=%s retry_in_ms=%llu", x->name,
               kr_logfmt_value(res->message, q, sizeof(q)), (unsigned long long)ms);
        kr_dns_result_free(res);
        schedule(x, ms);
        return;
    }
    x->n_cur = 0;
    x->i = 0;
    x->min_ttl = UINT32_MAX;
    for (size_t i = 0; i < res->n_rrs && x->n_cur < DISC_MAX; i++) {
        const struct kr_dns_rr *rr = &res->rrs[i];
        if (rr->type != KR_DNS_SRV || !kr_dns_name_equal(rr->owner, x->name))
            continue;
        if (rr->ttl < x->min_ttl)
            x->min_ttl = rr->ttl;
        struct disc_host *h = &x->cur[x->n_cur++];
        memset(h, 0, sizeof(*h));
        snprintf(h->target, sizeof(h->target), "%s", rr->target);
        h->port = rr->port;
        h->prio = rr->priority;
        h->weight = rr->weight;
        if (strcmp(rr->target, ".") == 0 || self_name(c, rr->target) || rr->port == 0)
            h->state = 4;
    }
    kr_dns_result_free(res);
    resolve_next(x);
}

static void round_start(evutil_socket_t fd, short what, void *arg)
{
    struct dns_disc *x = arg;
    struct kr_dns_servers s;
    struct kr_addr buf[KR_CONF_MAX_DNS_SERVERS];

    if (x->d->stopping || x->req)
        return;
    servers(x, &s, buf);
    if (s.n == 0) {
        x->status = KR_DNS_E_LOCAL;
        snprintf(x->message, sizeof(x->message), "no resolver: set dns.resolvers");
        schedule(x, dns_conf(x->d)->discover_interval_ms);
        return;
    }
    if (kr_dns_query(x->d->client, &s, x->name, KR_DNS_SRV, on_srv, x, &x->req) != 0)
        schedule(x, 1000);
}

struct dns_disc *dns_disc_new(struct kr_dns *d, const char *name)
{
    struct dns_disc *x = calloc(1, sizeof(*x));
    if (!x || !(x->timer = evtimer_new(d->env.base, round_start, x))) {
        free(x);
        return NULL;
    }
    x->d = d;
    snprintf(x->name, sizeof(x->name), "%s", name);
    x->status = -1;
    snprintf(x->message, sizeof(x->message), "not resolved yet");
    schedule(x, 0);
    return x;
}

void dns_disc_free(struct dns_disc *x)
{
    if (!x)
        return;
    if (x->req)
        kr_dns_cancel(x->req);
    if (x->timer)
        event_free(x->timer);
    free(x);
}

/* The hosts this name brought (removed from the relay when the name goes). */
void dns_disc_forget(struct dns_disc *x)
{
    for (size_t i = 0; i < x->n_known; i++)
        x->d->env.host_remove(x->d->env.ctx, x->known[i].host);
    x->n_known = 0;
}

json_t *dns_disc_json(const struct dns_disc *x)
{
    json_t *o = json_object(), *hosts = json_array();
    uint64_t now = kr_now_us();
    for (size_t i = 0; i < x->n_known; i++) {
        const struct disc_host *k = &x->known[i];
        char a[KR_ADDRSTRLEN];
        kr_addr_format((const struct sockaddr *)&k->addr.ss, a);
        json_array_append_new(hosts,
                              json_pack("{s:s, s:s, s:s, s:i, s:i, s:b}", "name", k->host, "target",
                                        k->target, "address", a, "priority", k->prio, "weight",
                                        k->weight, "listed", k->gone_since == 0));
    }
    json_object_set_new(o, "name", json_string(x->name));
    json_object_set_new(o, "status",
                        json_string(x->status < 0 ? "pending" : kr_dns_status_name(x->status)));
    json_object_set_new(o, "message", json_string(x->message));
    json_object_set_new(o, "when", x->when ? json_integer(x->when) : json_null());
    json_object_set_new(
        o, "next",
        json_integer(kr_wall_s() +
                     (x->next_us > now ? (int64_t)((x->next_us - now) / 1000000) : 0)));
    json_object_set_new(o, "hosts", hosts);
    return o;
}
