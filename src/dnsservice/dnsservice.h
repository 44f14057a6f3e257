/*
 * dnsservice.h - kmsrelayd's DNS service: publishing and withdrawing this
 * instance's _vlmcs._tcp SRV record (with its TXT owner marker) in each
 * configured zone, driven by backend health with hysteresis, and backend
 * discovery from SRV names. Built on the client in include/kmsrelay/dns.h;
 * runs on the relay's event base and never blocks.
 *
 * The service sees the relay only through struct kr_dns_env below (is the
 * service up, which addresses we listen on, add/drain/remove a discovered
 * host, a host's health); the daemon (src/daemon) implements it over the
 * relay, the unit tests over a fake. It never includes relay/relay.h.
 *
 * Lifecycle (src/daemon): kr_dns_create() after the listeners are
 * open; kr_dns_check() before a reload is accepted, kr_dns_apply() after
 * it; kr_dns_stop() on SIGTERM (withdraw within dns.withdraw_wait; poll
 * kr_dns_busy()); kr_dns_destroy() before the hosts are freed.
 *
 * Status: kr_dns_status_json() for `kmsrelayctl dns` (the control API):
 *   { "instance": id,
 *     "zones": [ { "zone", "owner" (the _vlmcs name), "target", "port",
 *                  "service": "up"|"down", "desired": "published"|"withdrawn",
 *                  "published": bool, "records": [ rr text, ... ] (as published),
 *                  "ttl", "since" (unix s), "damped": bool, "fail_static": bool,
 *                  "in_flight": op or null, "failures": n,
 *                  "last": { "op", "when", "status", "message", "server" } or null,
 *                  "next_reconcile": unix s, "next_retry": unix s or null } ],
 *     "discovery": [ { "name", "status", "message", "when", "next",
 *                      "hosts": [ { "name", "target", "address", "priority",
 *                                   "weight", "listed": bool } ] } ] }
 *
 * Ownership: the daemon owns the kr_dns; the env (and what it points to)
 * is borrowed and must outlive it. kr_dns_status_json returns a new
 * reference.
 */
#ifndef KR_DNSD_H
#define KR_DNSD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/netaddr.h"

struct event_base;
struct kr_store;
struct kr_dns;

/* What the DNS service needs from the rest of the daemon. Every callback
 * gets `ctx` and runs on the event loop. */
struct kr_dns_env {
    struct event_base *base;
    struct kr_store *store; /* what we published (kv "dns/..." entries) */
    void *ctx;
    /* The configuration in force (changes on reload). */
    const struct kr_conf *(*conf)(void *ctx);
    /* Can some backend take a new client now (ready and UP)? */
    bool (*service_up)(void *ctx);
    /* The addresses our listeners are bound to, in config order. */
    size_t (*listen_addrs)(void *ctx, struct kr_addr *out, size_t max);
    /* Does a configured (not discovered) host use this address now? Asks
     * the relay, not the configuration: a host named by DNS name has its
     * address only once the name resolved. */
    bool (*configured_at)(void *ctx, const struct kr_addr *a);
    /* Are configured host names still waiting for their first answer? */
    bool (*names_settling)(void *ctx);
    /* Is the backend host at this address known to be DOWN? */
    bool (*host_down)(void *ctx, const struct kr_addr *a);
    /* Discovered hosts (semantics of kr_relay_dyn_add/drain/remove). */
    int (*host_add)(void *ctx, const struct kr_conf_host *hc);
    int (*host_drain)(void *ctx, const char *name);
    int (*host_remove)(void *ctx, const char *name);
};

/* Loads the zones' keys (a key file problem stops the start with err) and
 * starts publishers and discovery. With nothing configured *out is an idle
 * object. 0 or a negative KR_E*. `env` is copied. */
int kr_dns_create(const struct kr_dns_env *env, struct kr_dns **out, char *err, size_t errlen);
/* Can `c`'s DNS part be applied (key files readable, mode 0600, parse)? */
int kr_dns_check(const struct kr_conf *c, char *err, size_t errlen);
/* After r->conf changed: zones and discovery names are diffed by name. */
void kr_dns_apply(struct kr_dns *d);
/* Graceful stop: withdraws what is published (dns.withdraw_on_stop),
 * bounded by dns.withdraw_wait; discovery stops. */
void kr_dns_stop(struct kr_dns *d);
/* True while stop withdrawals are still in flight. */
bool kr_dns_busy(const struct kr_dns *d);
void kr_dns_destroy(struct kr_dns *d);

json_t *kr_dns_status_json(struct kr_dns *d);

#endif
