/*
 * control.h - kmsrelayd's control API: HTTP/1.1 with JSON bodies on an
 * AF_UNIX socket (config group `control`), served by libevent's evhttp on
 * the relay's event base. kmsrelayctl is a thin client of it and anything it
 * does can be scripted with `curl --unix-socket`. Endpoints live under /v1
 * (the one table is in dispatch.c; the README documents each).
 *
 * Nothing here blocks the event loop on a walk over the pins: requests that
 * need one (hosts, clients, rebalance, report) run it on a short-lived
 * worker thread over the thread-safe store and answer when it is done.
 *
 * Ownership: the control server borrows the relay, DNS service and audit
 * (it must be freed before them) and owns its socket file: it is created at start (a
 * stale file nothing answers on is replaced; a live one is left alone and
 * the start fails) and unlinked by kr_control_free when it is still ours.
 */
#ifndef KR_CONTROL_H
#define KR_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct kr_relay;
struct kr_host;
struct kr_dns;
struct kr_audit_periodic;
struct kr_control;
struct kr_peers;

/* How a reload ended, on the event loop: rc 0 when the new configuration
 * is in force, else a negative KR_E* with every problem in err, one per
 * line (nothing changed then). */
typedef void (*kr_control_reload_done_fn)(void *done_arg, int rc, const char *err);
/* The daemon's reload, the same path as SIGHUP: the file is read and parsed
 * off the event loop, then validated and applied on it. Returns 0 when it
 * started: done(done_arg, ...) runs once it is over (possibly before this
 * returns), unless the daemon is destroyed first (kr_control_free then drops
 * the request). Else a negative KR_E* with err (KR_EUNSUP: no file to
 * read); done does not run then. */
typedef int (*kr_control_reload_fn)(void *arg, kr_control_reload_done_fn done, void *done_arg,
                                    char *err, size_t errlen);

/* What the control API serves, borrowed from the daemon (all must outlive
 * the control server). dns and audit may be NULL. */
struct kr_control_deps {
    struct kr_relay *relay; /* hosts, pins (relay->store), config (relay->conf) */
    struct kr_dns *dns;
    struct kr_audit_periodic *audit;
    kr_control_reload_fn reload; /* may be NULL: POST /v1/reload answers 409 */
    void *reload_arg;
    struct kr_peers *peers; /* NULL when replication is off (GET /v1/peers) */
};

/*
 * Opens relay->conf->control_socket (mode control_mode, group
 * control_group) and starts serving. Returns 0, or KR_EIO / KR_EEXIST
 * (another server answers on the socket) / KR_ENOMEM with a message in
 * err; *out is NULL then.
 */
int kr_control_start(struct event_base *base, const struct kr_control_deps *deps,
                     struct kr_control **out, char *err, size_t errlen);

/* After a reload took effect: re-applies the socket's mode and group
 * (operator weights are the relay's: it resolves them itself). A changed socket path takes effect
 * at the next start (logged). NULL is fine. */
void kr_control_apply(struct kr_control *c);

/* Stops serving, waits for running worker threads, closes the socket and
 * removes its file. NULL is fine. */
void kr_control_free(struct kr_control *c);

/* The socket path in use. */
const char *kr_control_path(const struct kr_control *c);

/* ---- operator weights: the relay's (src/relay/weights.c) ----------------- */

/* kr_relay_set_weight: sets and persists a host's operator weight. */
int kr_control_set_weight(struct kr_relay *r, struct kr_host *h, uint32_t weight);
/* kr_relay_weights_apply: resolves the persisted weights again. */
void kr_control_weights_apply(struct kr_relay *r);
/* kr_relay_config_weight: the weight the configuration gives host h. */
uint32_t kr_control_config_weight(const struct kr_relay *r, const struct kr_host *h);

#endif
