/*
 * registry.c - the counters only the metrics registry keeps: activations by
 * (host, application, protocol version, result) in a fixed-size table, the
 * activation latency histogram, and what the DNS module reports.
 *
 * The label table is bounded (MX_ACT_SLOTS): label values come from the
 * configuration (host names), from four application classes, three
 * protocol versions and the HRESULTs hosts answer, so the set is small; a
 * label set that would not fit is counted in an overflow counter instead of
 * growing without bound.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/kms.h"
#include "metrics/counters.h"

static struct mx_state mx;

/* Seconds; a KMS answer takes a few ms on a LAN, a slow host seconds. */
const double mx_bucket_le[MX_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10,   1e300};

/* MX_APP_* follow kms.h's application index (Windows, Office 2010,
 * Office 2013+, other). */
_Static_assert(MX_APP_OTHER == KR_KMS_APPS_KNOWN, "MX_APP_* is kr_kms_app_index");
const char *mx_app_label(unsigned app)
{
    return kr_kms_app_label(app < MX_APPS ? (int)app : MX_APP_OTHER);
}

static unsigned app_index(const uint8_t id[16])
{
    return id ? (unsigned)kr_kms_app_index(id) : MX_APP_OTHER;
}

static void result_label(uint32_t hresult, uint32_t fault, char out[MX_RESULT_MAX])
{
    if (fault == 0x000006BAu)
        snprintf(out, MX_RESULT_MAX, "unavailable");
    else if (fault)
        snprintf(out, MX_RESULT_MAX, "fault");
    else if (hresult == 0)
        snprintf(out, MX_RESULT_MAX, "ok");
    else
        snprintf(out, MX_RESULT_MAX, "0x%08X", hresult);
}

static uint32_t slot_hash(const char *host, unsigned app, unsigned ver, const char *res)
{
    uint32_t h = 2166136261u;
    for (const char *p = host; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ app) * 16777619u;
    h = (h ^ ver) * 16777619u;
    for (const char *p = res; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

void kr_metrics_activation(const char *host, const uint8_t app_id[16], unsigned ver_major,
                           uint32_t hresult, uint32_t fault, uint64_t latency_us)
{
    char res[MX_RESULT_MAX], hn[MX_HOST_MAX];
    unsigned app = app_index(app_id);
    unsigned ver = ver_major >= 4 && ver_major <= 6 ? ver_major : 0;

    snprintf(hn, sizeof(hn), "%s", host && *host ? host : "none");
    result_label(hresult, fault, res);

    /* Open addressing over a table that never deletes (until reset). */
    size_t i = slot_hash(hn, app, ver, res) % MX_ACT_SLOTS;
    for (size_t probes = 0;; probes++, i = (i + 1) % MX_ACT_SLOTS) {
        struct mx_act *a = &mx.act[i];
        if (a->n == 0) {
            if (mx.n_act >= MX_ACT_SLOTS * 3 / 4 || probes >= MX_ACT_SLOTS) {
                mx.act_overflow++;
                break;
            }
            snprintf(a->host, sizeof(a->host), "%s", hn);
            a->app = (uint8_t)app;
            a->ver = (uint8_t)ver;
            snprintf(a->result, sizeof(a->result), "%s", res);
            a->n = 1;
            mx.n_act++;
            break;
        }
        if (a->app == app && a->ver == ver && strcmp(a->host, hn) == 0 &&
            strcmp(a->result, res) == 0) {
            a->n++;
            break;
        }
    }

    size_t b = 0;
    while (b + 1 < MX_BUCKETS && (double)latency_us / 1e6 > mx_bucket_le[b])
        b++;
    mx.bucket[b]++;
    mx.lat_count++;
    mx.lat_sum_us += latency_us;
}

void kr_metrics_dns_zone(const char *zone, int published, const char *state)
{
    size_t i;
    if (!zone)
        return;
    for (i = 0; i < mx.n_zones; i++)
        if (strcmp(mx.zones[i].zone, zone) == 0)
            break;
    if (i == mx.n_zones) {
        if (mx.n_zones == MX_ZONES)
            return;
        snprintf(mx.zones[i].zone, MX_ZONE_MAX, "%s", zone);
        mx.n_zones++;
    }
    mx.zones[i].published = published ? 1 : 0;
    snprintf(mx.zones[i].state, MX_STATE_MAX, "%s", state ? state : "");
}

void kr_metrics_dns_update(int status)
{
    if (status >= 0 && status < MX_DNS_RESULTS)
        mx.dns_updates[status]++;
}

void kr_metrics_dns_audit(const unsigned *per_class, size_t n_classes, int64_t when)
{
    for (size_t i = 0; i < MX_AUDIT_CLASSES; i++)
        mx.audit[i] = per_class && i < n_classes ? per_class[i] : 0;
    mx.audit_when = when;
}

void kr_metrics_counters_reset(void)
{
    memset(&mx, 0, sizeof(mx));
}

void kr_metrics_snapshot(struct mx_state *out)
{
    *out = mx;
}
