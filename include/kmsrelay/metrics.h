/*
 * metrics.h - the counter registry of kmsrelayd's Prometheus metrics, at
 * the bottom of the module stack so that every module can feed it. The
 * exposition (the text format, GET /metrics on metrics.listen, the pin
 * gauges) is src/exposition/exposition.h, above the modules it reads.
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
 * Threads: the kr_metrics_* event calls run on the daemon's one
 * event-loop thread (no locks).
 *
 * Ownership: the registry keeps its counters in static storage (one daemon
 * per process); kr_metrics_counters_reset() clears them (tests).
 */
#ifndef KMSRELAY_METRICS_H
#define KMSRELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

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

/* Clears every counter (tests; kr_metrics_reset in the exposition also
 * forgets the cached pin counts). */
void kr_metrics_counters_reset(void);

#endif
