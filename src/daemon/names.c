/*
 * names.c - backend hosts whose `address` is a DNS name: kmsrelayd looks
 * each one up (A and AAAA, src/dnsclient/addr.c) through dns.resolvers, or
 * the nameservers of /etc/resolv.conf when there are none, and hands the
 * address to the relay (kr_relay_host_set_addr). The lookups are the DNS
 * client's non-blocking requests on the daemon's loop: nothing waits for a
 * resolver, and stopping cancels them at once.
 *
 * When: at start, after every reload (all names again), and when a name's
 * TTL runs out, clamped to [backend.resolve_min, backend.resolve_max] (a
 * TTL of 0 or 1 s must not turn into a query storm; a day-long TTL must not
 * hide a move for a day). A failed lookup, and a name that does not
 * resolve, is retried after resolve_min.
 *
 * Which address: the one in use while the name still lists it (a server
 * rotating its answers moves nothing), else the first (IPv4 before IPv6,
 * in byte order).
 *
 * Failures: a name that does not exist or has no A/AAAA record any more
 * makes its host DOWN ("address does not resolve: NXDOMAIN ..."); a
 * passing failure (timeout, SERVFAIL, refused) keeps the address in use
 * (a resolver outage must not take every host down) and only a host that
 * never had an address is DOWN for it.
 *
 * Ownership: the daemon owns the names object; it borrows the daemon's
 * relay and configuration and owns its DNS client, timer and lookups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay.h"

struct name_slot {
    struct daemon_names *n;
    char host[KR_CONF_NAME_MAX];
    char name[KR_CONF_FQDN_MAX];
    uint16_t port;
    uint64_t due_us; /* next lookup; 0 = in flight */
    bool failing;    /* the last lookup failed (logged once per streak) */
    bool answered;   /* a lookup finished since the name was configured */
    struct kr_dns_lookup *lookup;
};

struct daemon_names {
    struct kr_daemon *d;
    struct kr_dns_client *client;
    struct event *timer;
    size_t n;
    struct name_slot slots[KR_CONF_MAX_HOSTS];
};

static void arm(struct daemon_names *n);

static uint64_t clamp_ms(const struct kr_conf *c, uint64_t ttl_s)
{
    uint64_t ms = ttl_s * 1000;
    if (ms < c->resolve_min_ms)
        ms = c->resolve_min_ms;
    if (ms > c->resolve_max_ms)
        ms = c->resolve_max_ms;
    return ms;
}

/* The address to use: the current one when still listed, else the first. */
static const struct kr_addr *pick(struct kr_daemon *d, const char *host,
                                  const struct kr_dns_addrs *res)
{
    struct kr_host *h = kr_relay_host_by_name(d->relay, host);
    for (size_t i = 0; h && i < res->n; i++)
        if (res->addrs[i].len == h->conf.addr.len &&
            memcmp(&res->addrs[i].ss, &h->conf.addr.ss, h->conf.addr.len) == 0)
            return &res->addrs[i];
    return &res->addrs[0];
}

static void on_lookup(const struct kr_dns_addrs *res, void *arg)
{
    struct name_slot *s = arg;
    struct kr_daemon *d = s->n->d;
    const struct kr_conf *c = d->conf;
    char q[KR_DNS_MSG_MAX + 8];

    s->lookup = NULL;
    s->answered = true;
    if (res->n) {
        const struct kr_addr *a = pick(d, s->host, res);
        char text[KR_ADDRSTRLEN];
        uint64_t next_ms = clamp_ms(c, res->ttl);
        kr_addr_format((const struct sockaddr *)&a->ss, text);
        kr_log(KR_LOG_DEBUG,
               "event=host_resolve host=%s name=%s result=ok addrs=%zu addr=%s ttl=%u next_ms=%llu",
               s->host, s->name, res->n, text, res->ttl, (unsigned long long)next_ms);
        if (s->failing)
            kr_log(KR_LOG_INFO, "event=host_resolve host=%s name=%s result=ok addr=%s again=1",
                   s->host, s->name, text);
        s->failing = false;
        kr_relay_host_set_addr(d->relay, s->host, a, NULL);
        s->due_us = kr_now_us() + next_ms * 1000;
    } else {
        struct kr_host *h = kr_relay_host_by_name(d->relay, s->host);
        bool keep = !res->absent && h && h->conf.addr.len;
        /* Once per streak: a resolver outage must not fill the log. */
        kr_log(s->failing ? KR_LOG_DEBUG
               : keep     ? KR_LOG_WARN
                          : KR_LOG_ERR,
               "event=host_resolve host=%s name=%s result=%s action=%s reason=%s", s->host, s->name,
               res->absent ? "absent" : "failed", keep ? "keep_address" : "down",
               kr_logfmt_value(res->message, q, sizeof(q)));
        s->failing = true;
        if (!keep)
            kr_relay_host_set_addr(d->relay, s->host, NULL, res->message);
        /* Not the negative TTL (often 5 min or more): a host is down
         * meanwhile, and should be back soon after DNS is fixed. */
        s->due_us = kr_now_us() + c->resolve_min_ms * 1000;
    }
    arm(s->n);
}

static void servers(const struct kr_conf *c, struct kr_addr sys[KR_CONF_MAX_DNS_SERVERS],
                    struct kr_dns_servers *sv)
{
    memset(sv, 0, sizeof(*sv));
    if (c->n_dns_resolvers) {
        sv->addrs = c->dns_resolvers;
        sv->n = c->n_dns_resolvers;
    } else {
        sv->n = kr_dns_system_resolvers(sys, KR_CONF_MAX_DNS_SERVERS);
        sv->addrs = sys;
    }
    sv->recursion = true;
    sv->timeout_ms = c->dns_timeout_ms;
}

static void start_lookup(struct name_slot *s)
{
    struct kr_addr sys[KR_CONF_MAX_DNS_SERVERS];
    struct kr_dns_servers sv;
    const struct kr_conf *c = s->n->d->conf;

    servers(c, sys, &sv);
    s->due_us = 0;
    if (sv.n == 0 ||
        kr_dns_lookup_addrs(s->n->client, &sv, s->name, s->port, on_lookup, s, &s->lookup) != 0) {
        struct kr_dns_addrs none;
        memset(&none, 0, sizeof(none));
        snprintf(none.message, sizeof(none.message), "%s",
                 sv.n ? "out of memory" : "no resolver: set dns.resolvers or /etc/resolv.conf");
        on_lookup(&none, s);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_names *n = arg;
    uint64_t now = kr_now_us();
    for (size_t i = 0; i < n->n; i++)
        if (!n->slots[i].lookup && n->slots[i].due_us && n->slots[i].due_us <= now)
            start_lookup(&n->slots[i]);
    arm(n);
}

static void arm(struct daemon_names *n)
{
    uint64_t next = 0, now = kr_now_us();
    for (size_t i = 0; i < n->n; i++)
        if (!n->slots[i].lookup && n->slots[i].due_us && (!next || n->slots[i].due_us < next))
            next = n->slots[i].due_us;
    if (!next) {
        evtimer_del(n->timer);
        return;
    }
    uint64_t us = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(n->timer, &tv);
}

static void cancel_all(struct daemon_names *n)
{
    for (size_t i = 0; i < n->n; i++) {
        kr_dns_lookup_cancel(n->slots[i].lookup);
        n->slots[i].lookup = NULL;
    }
    n->n = 0;
}

void daemon_names_apply(struct daemon_names *n)
{
    const struct kr_conf *c = n->d->conf;
    uint64_t now = kr_now_us();
    cancel_all(n);
    for (size_t i = 0; i < c->n_hosts; i++) {
        const struct kr_conf_host *hc = &c->hosts[i];
        if (!hc->addr_name[0])
            continue; /* numeric: never a lookup */
        struct name_slot *s = &n->slots[n->n++];
        memset(s, 0, sizeof(*s));
        s->n = n;
        snprintf(s->host, sizeof(s->host), "%s", hc->name);
        snprintf(s->name, sizeof(s->name), "%s", hc->addr_name);
        s->port = hc->addr_port;
        s->due_us = now;
    }
    if (n->n)
        kr_log(KR_LOG_INFO, "event=host_resolve names=%zu", n->n);
    arm(n);
}

int daemon_names_create(struct kr_daemon *d, struct daemon_names **out)
{
    struct daemon_names *n = calloc(1, sizeof(*n));
    *out = NULL;
    if (!n)
        return KR_ENOMEM;
    n->d = d;
    n->client = kr_dns_client_new(d->base, NULL);
    n->timer = evtimer_new(d->base, on_timer, n);
    if (!n->client || !n->timer) {
        daemon_names_destroy(n);
        return KR_ENOMEM;
    }
    *out = n;
    daemon_names_apply(n);
    return 0;
}

bool daemon_names_settling(const struct daemon_names *n)
{
    for (size_t i = 0; n && i < n->n; i++)
        if (!n->slots[i].answered)
            return true;
    return false;
}

void daemon_names_destroy(struct daemon_names *n)
{
    if (!n)
        return;
    cancel_all(n);
    if (n->timer)
        event_free(n->timer);
    kr_dns_client_free(n->client);
    free(n);
}

/* kmsrelayd -n: every name must resolve now; each one that does not is a
 * line "file:line: host NAME: address \"x:p\" does not resolve: why". */
int daemon_names_check(const struct kr_conf *c, char *err, size_t errlen)
{
    struct kr_addr sys[KR_CONF_MAX_DNS_SERVERS];
    struct kr_dns_servers sv;
    size_t len = 0;
    int rc = 0;

    servers(c, sys, &sv);
    err[0] = '\0';
    for (size_t i = 0; i < c->n_hosts; i++) {
        const struct kr_conf_host *hc = &c->hosts[i];
        struct kr_dns_addrs res;
        if (!hc->addr_name[0])
            continue;
        memset(&res, 0, sizeof(res));
        if (sv.n == 0)
            snprintf(res.message, sizeof(res.message),
                     "no resolver: set dns.resolvers or /etc/resolv.conf");
        else if (kr_dns_lookup_addrs_sync(&sv, hc->addr_name, hc->addr_port, &res) != 0)
            snprintf(res.message, sizeof(res.message), "out of memory");
        if (res.n)
            continue;
        rc = KR_ECONFIG;
        if (len < errlen)
            len += (size_t)snprintf(
                err + len, errlen - len, "%s%s: host %s: address \"%s:%u\" does not resolve: %s",
                len ? "\n" : "", hc->addr_at, hc->name, hc->addr_name, hc->addr_port, res.message);
    }
    return rc;
}
