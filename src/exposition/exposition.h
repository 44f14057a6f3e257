/*
 * exposition.h - kmsrelayd's Prometheus exposition: every kmsrelay_* metric
 * in the text format (version 0.0.4), rendered from a snapshot of the
 * counter registry (kmsrelay/metrics.h) and what the relay and the store
 * say at scrape time, and a small HTTP server (libevent evhttp on the
 * daemon's event base) answering GET /metrics on a configurable TCP
 * address (config `metrics { listen = "127.0.0.1:9688"; }`, off when
 * unset), and GET /status, a read-only HTML status page (status.h). It sits above the modules it
 * reads (relay, store, DNS, audit).
 *
 * The full list with HELP texts is in render.c and in kmsrelayd(8).
 *
 * Threads: rendering and the server run on the event loop; the pins per
 * host are counted off the loop (pins.c), so a scrape never walks a
 * million pins on the loop.
 *
 * Ownership: the server borrows the relay and is owned by the caller of
 * kr_metrics_server_start(); free it before the relay and its store.
 */
#ifndef KR_EXPOSITION_H
#define KR_EXPOSITION_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct kr_relay;
struct kr_conf;
struct kr_metrics_server;

/* Appends the whole exposition for relay r (may be NULL: module counters
 * only) to out. Returns 0 or KR_ENOMEM. */
int kr_metrics_render(struct kr_relay *r, struct evbuffer *out);

/*
 * Starts serving GET /metrics and /status (and GET / redirecting there) on conf->metrics_listen
 * when it is set; *out stays NULL when metrics are off. Logs
 * "event=metrics_listen addr=IP:PORT" with the bound port (port 0 picks
 * one). Errors (bind failure ...) return KR_EIO with a message in err.
 */
int kr_metrics_server_start(struct event_base *base, struct kr_relay *r, const struct kr_conf *conf,
                            struct kr_metrics_server **out, char *err, size_t errlen);

/* Reload: keeps the server when the address is unchanged, else stops it and
 * starts one on the new address (or none). On error the old one is kept. */
int kr_metrics_server_apply(struct kr_metrics_server **m, struct event_base *base,
                            struct kr_relay *r, const struct kr_conf *conf, char *err,
                            size_t errlen);

/* The DNS service whose state the status page shows (borrowed; may be
 * NULL). A server made by kr_metrics_server_apply() has none until it is
 * set again. NULL m is fine. */
struct kr_dns;
void kr_metrics_server_set_dns(struct kr_metrics_server *m, struct kr_dns *dns);
/* The replication service to export (NULL: none; issue 15). */
struct kr_peers;
void kr_metrics_server_set_peers(struct kr_metrics_server *m, struct kr_peers *peers);

/* The bound address, "127.0.0.1:9688" (for status and tests). */
const char *kr_metrics_server_addr(const struct kr_metrics_server *m);

/* Stops the server and waits for a running pin count (before the relay and
 * its store are destroyed). NULL is fine. */
void kr_metrics_server_free(struct kr_metrics_server *m);

/* Clears every counter and the cached pin counts (tests). */
void kr_metrics_reset(void);

#endif
