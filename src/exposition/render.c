/*
 * render.c - kr_metrics_render(): every kmsrelay_* metric family, in a
 * fixed order, each with its HELP and TYPE lines. Families are always
 * present (with zero values or no samples) so dashboards and alerts never
 * see a metric vanish because nothing happened yet.
 *
 * The registry's counters come from a snapshot taken when the scrape
 * begins; the relay part is read at scrape time from struct kr_relay
 * (relay.h): global stats, the host table, the store's statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/metrics.h"
#include "exposition/exposition-internal.h"
#include "relay/relay.h"

/* The registry's counters as they were when this scrape began. */
static const struct mx_state *mx;

static void counter(struct evbuffer *b, const char *name, const char *help, uint64_t v)
{
    mx_head(b, name, "counter", help);
    mx_sample_u(b, name, v, NULL);
}

static void gauge(struct evbuffer *b, const char *name, const char *help, double v)
{
    mx_head(b, name, "gauge", help);
    mx_sample(b, name, v, NULL);
}

static void activations(struct evbuffer *b)
{
    char ver[8];
    mx_head(b, "kmsrelay_activations_total", "counter",
            "Client activation requests answered, by backend host (\"none\" when no host "
            "answered), application, KMS protocol major version and result (\"ok\", the "
            "HRESULT a host returned, \"unavailable\" when no host could answer).");
    for (size_t i = 0; i < MX_ACT_SLOTS; i++) {
        const struct mx_act *a = &mx->act[i];
        if (!a->n)
            continue;
        snprintf(ver, sizeof(ver), a->ver ? "%u" : "other", a->ver);
        mx_sample_u(b, "kmsrelay_activations_total", a->n, "host", a->host, "application",
                    mx_app_label(a->app), "version", ver, "result", a->result, NULL);
    }
    counter(b, "kmsrelay_activations_unlabelled_total",
            "Activations not in kmsrelay_activations_total because its label table was full.",
            mx->act_overflow);

    const char *h = "kmsrelay_activation_duration_seconds";
    char le[32], name[64];
    uint64_t cum = 0;
    mx_head(b, h, "histogram",
            "Time from a client's request to its answer, backend retries and assists included.");
    snprintf(name, sizeof(name), "%s_bucket", h);
    for (size_t i = 0; i < MX_BUCKETS; i++) {
        cum += mx->bucket[i];
        if (i + 1 == MX_BUCKETS)
            snprintf(le, sizeof(le), "+Inf");
        else
            snprintf(le, sizeof(le), "%g", mx_bucket_le[i]);
        mx_sample_u(b, name, cum, "le", le, NULL);
    }
    snprintf(name, sizeof(name), "%s_sum", h);
    mx_sample(b, name, (double)mx->lat_sum_us / 1e6, NULL);
    snprintf(name, sizeof(name), "%s_count", h);
    mx_sample_u(b, name, mx->lat_count, NULL);
}

static void relay_stats(struct evbuffer *b, const struct kr_relay *r)
{
    const struct kr_relay_stats *s = &r->stats;
    counter(b, "kmsrelay_requests_total", "KMS activation requests routed to the backends.",
            s->requests);
    counter(b, "kmsrelay_retries_total",
            "Attempts that failed on one host (connect, timeout, close, garbage) and moved on.",
            s->retries);
    counter(b, "kmsrelay_failovers_total",
            "Requests answered by a host other than the one the client is pinned to.",
            s->failovers);
    counter(b, "kmsrelay_threshold_assists_total",
            "Answers taken from an established host because the pinned host's count was below "
            "the client's activation threshold.",
            s->assists);
    counter(b, "kmsrelay_product_reroutes_total",
            "Requests moved to another host because a host refused the product (0xC004F042).",
            s->reroutes_refused);
    counter(b, "kmsrelay_pins_created_total", "Clients pinned to a host for the first time.",
            s->pins_new);
    counter(b, "kmsrelay_pins_moved_total", "Pins moved to another host (failover, retirement).",
            s->pins_moved);

    gauge(b, "kmsrelay_connections_open", "Client connections open now.", (double)s->conns_open);
    counter(b, "kmsrelay_connections_accepted_total", "Client connections accepted.",
            s->conns_accepted);
    mx_head(b, "kmsrelay_connections_denied_total", "counter",
            "Client connections refused: source not in clients.allow, or a connection limit.");
    mx_sample_u(b, "kmsrelay_connections_denied_total", s->conns_denied, "reason", "allow_list",
                NULL);
    mx_sample_u(b, "kmsrelay_connections_denied_total", s->conns_limited, "reason", "limit", NULL);
    mx_head(b, "kmsrelay_limits_hit_total", "counter",
            "Client limits reached: connections (global or per source) and request rate "
            "(answered with rpc_s_server_too_busy).");
    mx_sample_u(b, "kmsrelay_limits_hit_total", s->conns_limited, "limit", "connections", NULL);
    mx_sample_u(b, "kmsrelay_limits_hit_total", s->rate_limited, "limit", "rate", NULL);
    counter(b, "kmsrelay_bad_pdus_total",
            "Malformed client PDUs or KMS messages (answered with a fault or 0x8007000D).",
            s->bad_pdus);
}

/* One gauge/counter sample per live host, from a field of struct kr_host. */
#define PER_HOST(metric, expr)                                                                     \
    for (size_t i = 0; i < n; i++) {                                                               \
        const struct kr_host *h = hv[i];                                                           \
        mx_sample_u(b, metric, (uint64_t)(expr), "host", h->conf.name, NULL);                      \
    }

/* One sample per host and application the host has answered for: the count
 * it reported or, with `threshold`, what that count must reach, as the
 * control API (kmsrelayctl hosts) judges it (kr_kms_activation_threshold,
 * with the N_Policy of the request that got the count as one sample). The
 * same label sets for both, so alerts compare the two directly. */
static void per_app(struct evbuffer *b, const struct kr_host *const *hv, size_t n,
                    const char *metric, bool threshold)
{
    for (size_t i = 0; i < n; i++)
        for (int a = 0; a < KR_HOST_APPS; a++) {
            const struct kr_app_count *c = &hv[i]->counts[a];
            char g[KR_GUID_STRLEN];
            const char *an = kr_kms_app_name(c->app_id);
            if (!c->when_us)
                continue;
            if (!an) /* an unknown application id: its GUID keeps label sets distinct */
                kr_guid_format(c->app_id, g);
            mx_sample_u(b, metric,
                        threshold ? kr_kms_activation_threshold(c->app_id, c->n_policy, 0)
                                  : c->count,
                        "host", hv[i]->conf.name, "application", an ? an : g, NULL);
        }
}

static void hosts(struct evbuffer *b, const struct kr_relay *r)
{
    static const char *const health[] = {"unknown", "up", "down"};
    static const char *const admin[] = {"ready", "drain", "maint", "retired"};
    const struct kr_host *hv[KR_RELAY_MAX_HOSTS];
    size_t n = 0;

    for (size_t i = 0; i < r->n_hosts && n < KR_RELAY_MAX_HOSTS; i++)
        if (r->hosts[i] && !r->hosts[i]->removed)
            hv[n++] = r->hosts[i];

    mx_head(b, "kmsrelay_host_up", "gauge", "1 when the host's health is UP.");
    PER_HOST("kmsrelay_host_up", h->health == KR_HEALTH_UP);
    mx_head(b, "kmsrelay_host_health", "gauge",
            "Health state of the host: 1 for the current state (unknown, up, down).");
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < 3; s++)
            mx_sample_u(b, "kmsrelay_host_health", hv[i]->health == s, "host", hv[i]->conf.name,
                        "state", health[s], NULL);
    mx_head(b, "kmsrelay_host_admin", "gauge",
            "Admin state of the host: 1 for the current state (ready, drain, maint, retired).");
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < 4; s++)
            mx_sample_u(b, "kmsrelay_host_admin", hv[i]->admin == s, "host", hv[i]->conf.name,
                        "state", admin[s], NULL);
    mx_head(b, "kmsrelay_host_weight", "gauge", "Rendezvous-hash weight of the host.");
    PER_HOST("kmsrelay_host_weight", kr_host_weight(h));
    mx_head(b, "kmsrelay_host_check_duration_seconds", "gauge",
            "Duration of the host's last health check (connect and RPC bind).");
    for (size_t i = 0; i < n; i++)
        mx_sample(b, "kmsrelay_host_check_duration_seconds", hv[i]->last_check_latency_us / 1e6,
                  "host", hv[i]->conf.name, NULL);
    mx_head(b, "kmsrelay_host_checks_total", "counter", "Health checks of the host by result.");
    for (size_t i = 0; i < n; i++) {
        mx_sample_u(b, "kmsrelay_host_checks_total", hv[i]->stats.checks_ok, "host",
                    hv[i]->conf.name, "result", "ok", NULL);
        mx_sample_u(b, "kmsrelay_host_checks_total", hv[i]->stats.checks_failed, "host",
                    hv[i]->conf.name, "result", "failed", NULL);
    }
    mx_head(b, "kmsrelay_host_requests_total", "counter", "Attempts sent to the host.");
    PER_HOST("kmsrelay_host_requests_total", h->stats.requests);
    mx_head(b, "kmsrelay_host_errors_total", "counter",
            "Attempts on the host that failed: connect, timeout, close or garbage.");
    PER_HOST("kmsrelay_host_errors_total", h->stats.errors);
    mx_head(b, "kmsrelay_host_refusals_total", "counter",
            "Product refusals (0xC004F042) from the host.");
    PER_HOST("kmsrelay_host_refusals_total", h->stats.refusals);
    mx_head(b, "kmsrelay_host_connections", "gauge", "Backend connections open to the host.");
    PER_HOST("kmsrelay_host_connections", h->n_conns);
    mx_head(b, "kmsrelay_host_reported_clients", "gauge",
            "The count the host reported in its last answer for the application (its KMS "
            "activation count).");
    per_app(b, hv, n, "kmsrelay_host_reported_clients", false);
    mx_head(b, "kmsrelay_host_activation_threshold", "gauge",
            "The count the host needs for the application to activate its clients (25 for "
            "Windows, 5 for Office, or the clients' higher N_Policy).");
    per_app(b, hv, n, "kmsrelay_host_activation_threshold", true);
}
#undef PER_HOST

static void store(struct evbuffer *b, struct kr_relay *r)
{
    struct kr_store_stats st;
    memset(&st, 0, sizeof(st));
    if (r && r->store) {
        kr_store_stats(r->store, &st);
        mx_pins_refresh(r->base, r->store);
    }
    gauge(b, "kmsrelay_pins", "Pins (clients) in the store, committed.", (double)st.pins);
    mx_pins_render(b);
    gauge(b, "kmsrelay_store_pending", "Pin writes queued for the next commit.",
          (double)st.pending);
    counter(b, "kmsrelay_store_commits_total", "Store batch commits.", st.commits);
    counter(b, "kmsrelay_store_commit_failures_total",
            "Store batch commits that failed (map or disk full, I/O).", st.commit_failures);
    gauge(b, "kmsrelay_store_degraded",
          "1 while the last store commit failed: routing falls back to pure rendezvous hashing.",
          st.degraded);
    counter(b, "kmsrelay_store_pins_expired_total", "Idle pins removed by expiry.",
            st.pins_expired);
    counter(b, "kmsrelay_store_drops_total", "Queued pin writes discarded at the queue cap.",
            st.drops);
    gauge(b, "kmsrelay_store_map_size_bytes", "LMDB map size.", (double)st.map_size);
    gauge(b, "kmsrelay_store_map_used_bytes", "LMDB map used.", (double)st.map_used);
}

static void dns(struct evbuffer *b)
{
    gauge(b, "kmsrelay_dns_zones", "Zones where kmsrelayd publishes its SRV record.",
          (double)mx->n_zones);
    mx_head(b, "kmsrelay_dns_published", "gauge",
            "1 when our _vlmcs._tcp SRV record is published in the zone.");
    for (size_t i = 0; i < mx->n_zones; i++)
        mx_sample_u(b, "kmsrelay_dns_published", (uint64_t)mx->zones[i].published, "zone",
                    mx->zones[i].zone, "state", mx->zones[i].state, NULL);
    mx_head(b, "kmsrelay_dns_updates_total", "counter", "DNS UPDATE messages sent, by result.");
    for (int i = 0; i <= KR_DNS_E_LOCAL && i < MX_DNS_RESULTS; i++)
        mx_sample_u(b, "kmsrelay_dns_updates_total", mx->dns_updates[i], "result",
                    kr_dns_status_name(i), NULL);
    mx_head(b, "kmsrelay_dns_audit_findings", "gauge",
            "_vlmcs SRV records by class in the latest audit.");
    for (int i = 0; i < KR_AUDIT_NCLASS && i < MX_AUDIT_CLASSES; i++)
        mx_sample_u(b, "kmsrelay_dns_audit_findings", mx->audit[i], "class", kr_audit_class_name(i),
                    NULL);
    gauge(b, "kmsrelay_dns_audit_timestamp_seconds",
          "When the latest DNS audit ran (unix time, 0 = never).", (double)mx->audit_when);
}

void kr_metrics_reset(void)
{
    mx_pins_join();
    mx_pins_reset();
    kr_metrics_counters_reset();
}

int kr_metrics_render(struct kr_relay *r, struct evbuffer *out)
{
    size_t before = evbuffer_get_length(out);
    struct mx_state *snap = malloc(sizeof(*snap));
    if (!snap)
        return KR_ENOMEM;
    kr_metrics_snapshot(snap);
    mx = snap;
    mx_head(out, "kmsrelay_build_info", "gauge",
            "Version and instance of this kmsrelayd; always 1.");
    mx_sample_u(out, "kmsrelay_build_info", 1, "version", KR_VERSION, "instance",
                r && r->conf ? r->conf->instance_id : "", NULL);
    gauge(out, "kmsrelay_start_time_seconds", "When kmsrelayd started (unix time).",
          r ? (double)r->started_wall : 0);
    activations(out);
    if (r) {
        relay_stats(out, r);
        hosts(out, r);
    }
    store(out, r);
    dns(out);
    mx = NULL;
    free(snap);
    return evbuffer_get_length(out) > before ? 0 : KR_ENOMEM;
}
