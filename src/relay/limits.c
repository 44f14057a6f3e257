/*
 * limits.c - who may connect and how much: the allow-list of client
 * networks (empty = everyone), a global connection cap, a per-source
 * connection cap and a per-source token bucket for requests.
 *
 * Per-source state lives in a small chained hash table keyed by the client
 * address (IPv4 folded into its v4-mapped IPv6 form, IPv6 cut to
 * clients.ipv6_prefix bits, port ignored). The key is computed once, at
 * admission, and the session keeps it, so a reload that changes the prefix
 * cannot make a release miss the entry its admission counted. The hash
 * is seeded at random so that a client cannot aim many addresses at one
 * chain. An entry exists while its source has connections, and afterwards
 * only until its bucket has refilled (so a reconnecting client cannot reset
 * its rate); kr_limits_sweep() drops such idle entries. Memory is thus
 * bounded by max_connections plus the sources seen in the last burst/rate
 * seconds.
 *
 * Settings are read from relay->conf at every call, so a reload applies at
 * once; connections already open are never closed by a lower cap.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"
#include "relay/relay.h"

#define TOKEN 1000000ull /* one request, in micro-tokens */

struct lim_entry {
    struct lim_entry *next;
    uint8_t key[16];
    uint32_t conns;
    uint64_t tokens; /* micro-tokens */
    uint64_t last_us;
};

struct limits {
    struct lim_entry **tab;
    size_t cap; /* power of two */
    size_t n;
    uint32_t total; /* connections counted */
    uint64_t seed;
};

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The source an address counts as: an IPv4 address itself (as its
 * v4-mapped IPv6 form), an IPv6 address cut to its network prefix (one
 * host usually owns a whole /64 and can pick any address in it). */
static bool make_key(const struct sockaddr *sa, unsigned v6_prefix, uint8_t key[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(key, v4mapped, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(key, v4mapped, 12) == 0 || v6_prefix == 0 || v6_prefix >= 128)
            return true; /* an IPv4 client on a dual-stack socket: whole */
        unsigned keep = v6_prefix / 8;
        if (v6_prefix % 8)
            key[keep++] &= (uint8_t)(0xff00u >> (v6_prefix % 8));
        memset(key + keep, 0, 16 - keep);
        return true;
    }
    return false;
}

bool kr_limits_source_key(const struct kr_relay *r, const struct sockaddr *sa, uint8_t key[16])
{
    return make_key(sa, r->conf->ipv6_prefix, key);
}

static size_t slot(const struct limits *l, const uint8_t key[16])
{
    uint64_t h = 0xcbf29ce484222325ull ^ l->seed;
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    return (size_t)h & (l->cap - 1);
}

int kr_limits_init(struct kr_relay *r)
{
    struct limits *l = calloc(1, sizeof(*l));
    if (!l)
        return KR_ENOMEM;
    l->cap = 256;
    l->tab = calloc(l->cap, sizeof(*l->tab));
    if (!l->tab) {
        free(l);
        return KR_ENOMEM;
    }
    if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) != sizeof(l->seed))
        l->seed = kr_now_us() * 0x9e3779b97f4a7c15ull;
    r->limits = l;
    return 0;
}

void kr_limits_free(struct kr_relay *r)
{
    struct limits *l = r->limits;
    if (!l)
        return;
    for (size_t i = 0; i < l->cap; i++)
        for (struct lim_entry *e = l->tab[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(l->tab);
    free(l);
    r->limits = NULL;
}

static void grow(struct limits *l)
{
    size_t ncap = l->cap * 2;
    struct lim_entry **nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return; /* keep the longer chains */
    struct lim_entry **old = l->tab;
    size_t ocap = l->cap;
    l->tab = nt;
    l->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        for (struct lim_entry *e = old[i], *next; e; e = next) {
            next = e->next;
            size_t s = slot(l, e->key);
            e->next = nt[s];
            nt[s] = e;
        }
    free(old);
}

static struct lim_entry *find(struct limits *l, const uint8_t key[16], bool create, uint32_t burst)
{
    size_t s = slot(l, key);
    for (struct lim_entry *e = l->tab[s]; e; e = e->next)
        if (memcmp(e->key, key, 16) == 0)
            return e;
    if (!create)
        return NULL;
    struct lim_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->key, key, 16);
    e->tokens = (uint64_t)burst * TOKEN; /* a new source starts with a full bucket */
    e->last_us = kr_now_us();
    e->next = l->tab[s];
    l->tab[s] = e;
    if (++l->n > l->cap * 2)
        grow(l);
    return e;
}

static void refill(struct lim_entry *e, uint32_t rate, uint32_t burst, uint64_t now)
{
    uint64_t cap = (uint64_t)burst * TOKEN;
    uint64_t dt = now > e->last_us ? now - e->last_us : 0;
    e->last_us = now;
    /* rate tokens per second = rate micro-tokens per microsecond. */
    if (dt > cap || e->tokens + dt * rate >= cap)
        e->tokens = cap;
    else
        e->tokens += dt * rate;
}

static bool idle(struct lim_entry *e, const struct kr_conf *c, uint64_t now)
{
    if (e->conns)
        return false;
    if (c->rate_per_source == 0)
        return true;
    refill(e, c->rate_per_source, c->burst_per_source, now);
    return e->tokens >= (uint64_t)c->burst_per_source * TOKEN;
}

static void drop(struct limits *l, struct lim_entry *e)
{
    for (struct lim_entry **pp = &l->tab[slot(l, e->key)]; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            free(e);
            l->n--;
            return;
        }
}

static bool allowed(const struct kr_conf *c, const struct sockaddr *sa)
{
    if (c->n_allow == 0)
        return true;
    for (size_t i = 0; i < c->n_allow; i++)
        if (kr_cidr_match(&c->allow[i], sa))
            return true;
    return false;
}

const char *kr_limits_admit(struct kr_relay *r, const struct sockaddr *sa, uint8_t key[16])
{
    struct limits *l = r->limits;
    const struct kr_conf *c = r->conf;

    memset(key, 0, 16);
    if (!make_key(sa, c->ipv6_prefix, key))
        return "not an IP client";
    if (!allowed(c, sa))
        return "not in allow-list";
    if (l->total >= c->max_connections)
        return "global connection limit reached";
    struct lim_entry *e = find(l, key, true, c->burst_per_source);
    if (!e)
        return "out of memory";
    if (e->conns >= c->max_conn_per_source)
        return "per-source connection limit reached";
    e->conns++;
    l->total++;
    return NULL;
}

void kr_limits_release(struct kr_relay *r, const uint8_t key[16])
{
    struct limits *l = r->limits;

    if (!l)
        return;
    struct lim_entry *e = find(l, key, false, 0);
    if (!e || e->conns == 0)
        return; /* not counted (admit refused it): nothing to release */
    e->conns--;
    l->total--;
    if (idle(e, r->conf, kr_now_us()))
        drop(l, e);
}

bool kr_limits_request(struct kr_relay *r, const uint8_t key[16])
{
    struct limits *l = r->limits;
    const struct kr_conf *c = r->conf;

    if (c->rate_per_source == 0)
        return true;
    struct lim_entry *e = find(l, key, true, c->burst_per_source);
    if (!e)
        return true; /* out of memory: never fail a client over our bookkeeping */
    refill(e, c->rate_per_source, c->burst_per_source, kr_now_us());
    if (e->tokens < TOKEN)
        return false;
    e->tokens -= TOKEN;
    return true;
}

void kr_limits_sweep(struct kr_relay *r)
{
    struct limits *l = r->limits;
    uint64_t now = kr_now_us();

    if (!l)
        return;
    for (size_t i = 0; i < l->cap; i++) {
        struct lim_entry **pp = &l->tab[i];
        while (*pp) {
            struct lim_entry *e = *pp;
            if (idle(e, r->conf, now)) {
                *pp = e->next;
                free(e);
                l->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

size_t kr_limits_sources(const struct kr_relay *r)
{
    const struct limits *l = r->limits;
    return l ? l->n : 0;
}
