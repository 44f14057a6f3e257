/*
 * counters.h - the read side of the counter registry (registry.c): the
 * event counters (activations table, latency histogram, DNS state) that
 * the kr_metrics_* calls of kmsrelay/metrics.h feed. The exposition
 * (src/exposition, above every module it reads) renders from a snapshot.
 *
 * Ownership: the registry keeps the counters in static storage (one daemon
 * per process); a snapshot is the caller's copy.
 */
#ifndef KR_METRICS_COUNTERS_H
#define KR_METRICS_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/metrics.h"

#define MX_ACT_SLOTS 1024 /* distinct (host, app, version, result) label sets */
#define MX_HOST_MAX 64    /* host label bytes, NUL included */
#define MX_RESULT_MAX 16  /* "0xC004F042", "unavailable" */
#define MX_ZONES 32
#define MX_ZONE_MAX 256
#define MX_STATE_MAX 24
#define MX_DNS_RESULTS 16 /* kr_dns_status values 0..11, with room */
#define MX_AUDIT_CLASSES 8
#define MX_BUCKETS 14 /* histogram buckets, +Inf included */

/* Application label index: Windows, Office 2010, Office 2013+, other. */
enum { MX_APP_WINDOWS, MX_APP_OFFICE2010, MX_APP_OFFICE2013, MX_APP_OTHER, MX_APPS };

struct mx_act {
    char host[MX_HOST_MAX];
    uint8_t app; /* MX_APP_* */
    uint8_t ver; /* protocol major 4..6, 0 = other */
    char result[MX_RESULT_MAX];
    uint64_t n; /* 0 = free slot */
};

struct mx_zone {
    char zone[MX_ZONE_MAX];
    int published;
    char state[MX_STATE_MAX];
};

struct mx_state {
    struct mx_act act[MX_ACT_SLOTS];
    size_t n_act;
    uint64_t act_overflow;       /* activations whose label set did not fit */
    uint64_t bucket[MX_BUCKETS]; /* cumulative at render, per-bucket here */
    uint64_t lat_count;
    uint64_t lat_sum_us;
    struct mx_zone zones[MX_ZONES];
    size_t n_zones;
    uint64_t dns_updates[MX_DNS_RESULTS];
    unsigned audit[MX_AUDIT_CLASSES];
    int64_t audit_when;
};

/* Upper bounds of the histogram buckets in seconds (the last is +Inf). */
extern const double mx_bucket_le[MX_BUCKETS];
const char *mx_app_label(unsigned app);

/* A copy of every counter (the exposition renders from it). */
void kr_metrics_snapshot(struct mx_state *out);

#endif
