/*
 * relay-internal.h - shared by the relay's lifecycle files (relay.c,
 * listen.c, hosts.c, discover.c, weights.c) and nothing else.
 *
 * Ownership: listeners and hosts belong to the relay; the functions here
 * create, link and free them.
 */
#ifndef KR_RELAY_INTERNAL_H
#define KR_RELAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/relay.h"

/* listen.c */

/* Opens the listeners of `c` that the relay does not have yet, then closes
 * the ones `c` no longer lists; the ones in both stay open (no connection
 * is affected). When a new one cannot be opened, the ones opened by this
 * call are closed again, nothing else changes, and err says why. */
int relay_listen_apply(struct kr_relay *r, const struct kr_conf *c, char *err, size_t errlen);
void relay_listen_close_all(struct kr_relay *r);
/* Text of the bound addresses, comma separated ("127.0.0.1:1688,[::1]:1688"). */
void relay_listen_describe(const struct kr_relay *r, char *out, size_t cap);

/* hosts.c */

/* A new runtime host for a config entry, or for a discovered host when
 * `dynamic` (admin state and operator weight resolved against the store,
 * health UNKNOWN, checks not started). NULL when out of memory. */
struct kr_host *relay_host_new(struct kr_relay *r, const struct kr_conf_host *hc, bool dynamic);
/* Writes the host's record (admin state, weight in force) to the store. */
int relay_host_persist(struct kr_relay *r, const struct kr_host *h);
/* Stops checks, aborts its connections and frees it (teardown or an idle
 * removed host; never from a callback of that host). */
void relay_host_free(struct kr_host *h);
/* The host table for a new config (reload; see the top of hosts.c). Hosts
 * whose pool must be closed (removed, or address changed) are returned in
 * settle (room for r->n_hosts + c->n_hosts entries) for relay_hosts_settle,
 * which the caller runs once r->conf is the new config as well. Fails (and
 * changes nothing) only when out of memory or the table would overflow. */
int relay_hosts_apply(struct kr_relay *r, const struct kr_conf *c, struct kr_host **settle,
                      size_t *n_settle, char *err, size_t errlen);
void relay_hosts_settle(struct kr_relay *r, struct kr_host **settle, size_t n);
/* The capacity check of relay_hosts_apply alone (0 or KR_EINVAL with err). */
int relay_hosts_check(const struct kr_relay *r, const struct kr_conf *c, char *err, size_t errlen);
/* Frees removed hosts that have no connection and no waiting attempt. */
void relay_hosts_reap(struct kr_relay *r);

/* hostaddr.c: the address for logs: "10.0.0.5:1688", or for a named one
 * "kms1.corp:1688" while unresolved. */
void relay_host_addr_text(const struct kr_conf_host *hc, char *out, size_t cap);

/* weights.c: the host's operator weight from the store; `hc` is its config
 * entry (NULL for a discovered host), checked against the weight the
 * override replaced. */
void relay_weight_resolve(struct kr_relay *r, struct kr_host *h, const struct kr_conf_host *hc);

#endif
