/*
 * metrics.h - Prometheus metrics of kmsrelayd: counters kept in memory, the
 * text exposition format (version 0.0.4), and a small HTTP server (libevent
 * evhttp on the daemon's event base) answering GET /metrics on a
 * configurable TCP address (config `metrics { listen = "127.0.0.1:9688"; }`,
 * off when unset).
 *
 * Two kinds of numbers:
 *   - event counters that only this module sees, fed by the data path and
 *     the DNS module through the kr_metrics_* calls below (activations by
 *     host, application, protocol version and result; the latency
 *     histogram; DNS publish state, update results, audit findings);
 *   - everything else is read at scrape time from the relay (struct
 *     kr_relay: stats, hosts, the store), so nothing is counted twice.
 *
 * Every metric is named kmsrelay_*; counters end in _total, durations are
 * seconds, sizes bytes. The full list with HELP texts is in
 * src/metrics/render.c and in kmsrelayd(8).
 *
 * Threads: the kr_metrics_* event calls and the server run on the daemon's
 * one event-loop thread (no locks); the pins-per-host count is taken by a
 * short-lived background thread over the store (thread-safe), so a scrape
 * never walks a million pins on the loop.
 *
 * Ownership: the module keeps its counters in static storage (one daemon
 * per process); kr_metrics_reset() clears them (tests). The server object
 * is owned by the caller of kr_metrics_server_start().
 */
#ifndef KMSRELAY_METRICS_H
#define KMSRELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct kr_relay;
struct kr_conf;

/* ---- events (data path, DNS) --------------------------------------------- */

/*
 * One finished client activation (forward.c, once per request, where the
 * activation log line is written). host: the host whose answer was returned,
 * NULL or "" when none answered. hresult: the KMS answer's HRESULT (0 = ok);
 * fault: the RPC fault sent instead (0x6BA when no host could answer), 0
 * when an answer was relayed. Labels: result="ok" for HRESULT 0, the HRESULT
 * as "0xC004F042" otherwise, "unavailable" for fault 0x6BA, "fault" for
 * other faults.
 */
void kr_metrics_activation(const char *host, const uint8_t app_id[16], unsigned ver_major,
                           uint32_t hresult, uint32_t fault, uint64_t latency_us);

/* DNS publishing (src/dns): the state of our own record in one zone.
 * published: 1 when our SRV record is in the zone. state: a short word
 * ("published", "withdrawn", "pending", "failing", ...). At most 32 zones. */
void kr_metrics_dns_zone(const char *zone, int published, const char *state);
/* One RFC 2136 UPDATE finished with a kr_dns_status (dns.h). */
void kr_metrics_dns_update(int status);
/* The latest audit: findings per class (audit.h enum kr_audit_class, count
 * KR_AUDIT_NCLASS) and when it ran (unix seconds). */
void kr_metrics_dns_audit(const unsigned *per_class, size_t n_classes, int64_t when);

/* Clears every counter and the cached pin counts (tests). */
void kr_metrics_reset(void);

/* ---- exposition ------------------------------------------------------------ */

/* Appends the whole exposition for relay r (may be NULL: module counters
 * only) to out. Returns 0 or KR_ENOMEM. */
int kr_metrics_render(struct kr_relay *r, struct evbuffer *out);

/* ---- HTTP server ----------------------------------------------------------- */

struct kr_metrics_server;

/*
 * Starts serving GET /metrics (and GET / with a link) on conf->metrics_listen
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

/* The bound address, "127.0.0.1:9688" (for status and tests). */
const char *kr_metrics_server_addr(const struct kr_metrics_server *m);

/* Stops the server and joins a running pin count (before the relay and its
 * store are destroyed). NULL is fine. */
void kr_metrics_server_free(struct kr_metrics_server *m);

#endif
