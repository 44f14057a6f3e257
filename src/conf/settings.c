/*
 * settings.c - the declarative table of every scalar setting of the file,
 * the one place a setting is declared: where it lives, its type, its
 * bounds, its default (as written in the file), whether a reload applies it
 * or it waits for the next start, and one line of documentation.
 * kr_conf_defaults() takes the defaults from here, the loader the names,
 * types and bounds, kr_conf_restart_changes() the restart flags; the unit
 * suite "settings" checks deploy/kmsrelay.conf and kmsrelay.conf(5)
 * against it. Lists (listen, clients.allow, hosts, the DNS lists) are
 * handled in load.c and dns.c.
 *
 * Bounds are generous but catch units mistakes ("idle_timeout = 30" is
 * thirty seconds, "30ms" would be refused).
 */
#include "conf/conf-internal.h"

#include <stddef.h>

#define OFF(f) offsetof(struct kr_conf, f)
#define MS(x) ((uint64_t)(x))
#define SEC(x) (MS(x) * 1000)
#define MINUTE(x) (SEC(x) * 60)
#define HOUR(x) (MINUTE(x) * 60)
#define DAY(x) (HOUR(x) * 24)

/* Applied by a reload (R) or only at the next start (S). */
#define R false
#define S true

/* clang-format off */
const struct conf_opt conf_opts[] = {
    {NULL, "instance_id", CT_NAME, OFF(instance_id), 0, 0, "kmsrelay", R,
     "name of this relay: logs, metrics, owner id of its DNS records"},
    {NULL, "state_dir", CT_PATH, OFF(state_dir), 0, 0, "/var/lib/kmsrelay", S,
     "directory of the LMDB database (pins, admin states)"},
    {NULL, "shutdown_grace", CT_DUR, OFF(shutdown_grace_ms), 0, MINUTE(10), "5s", R,
     "on SIGTERM, how long requests in flight may take to finish"},

    {"clients", "max_connections", CT_U32, OFF(max_connections), 1, 1000000, "10000", R,
     "client connections open at once, in total"},
    {"clients", "max_per_source", CT_U32, OFF(max_conn_per_source), 1, 1000000, "64", R,
     "client connections open at once from one address"},
    {"clients", "rate", CT_U32, OFF(rate_per_source), 0, 1000000, "20", R,
     "requests per second per source address (0 = no limit)"},
    {"clients", "burst", CT_U32, OFF(burst_per_source), 1, 1000000, "40", R,
     "token bucket size of the per-source rate"},
    {"clients", "ipv6_prefix", CT_U32, OFF(ipv6_prefix), 16, 128, "64", R,
     "IPv6 sources are counted per prefix of this length (one site or host is a /64)"},
    {"clients", "idle_timeout", CT_DUR, OFF(client_idle_ms), MS(100), DAY(1), "30s", R,
     "close a client connection silent this long"},
    {"clients", "header_timeout", CT_DUR, OFF(client_header_ms), MS(100), HOUR(1), "10s", R,
     "a started PDU must be complete within this"},

    {"backend", "pool_size", CT_U32, OFF(pool_size), 1, 256, "4", R,
     "persistent connections per host"},
    {"backend", "connect_timeout", CT_DUR, OFF(connect_timeout_ms), MS(10), MINUTE(1), "1s", R,
     "connecting to a host"},
    {"backend", "attempt_timeout", CT_DUR, OFF(attempt_timeout_ms), MS(10), MINUTE(5), "3s", R,
     "one try of a request on one host"},
    /* well under the client's RPC timeout */
    {"backend", "budget", CT_DUR, OFF(request_budget_ms), MS(10), MINUTE(10), "8s", R,
     "all tries of one client request"},
    {"backend", "idle_timeout", CT_DUR, OFF(backend_idle_ms), MS(100), DAY(1), "25s", R,
     "close idle pooled connections"},

    /* longer than the KMS 30-day window */
    {"routing", "pin_idle", CT_DUR, OFF(pin_idle_ms), SEC(1), DAY(3650), "45d", R,
     "forget clients not seen this long"},
    {"routing", "failback", CT_FAILBACK, OFF(failback), 0, 0, "never", R,
     "whether a pin moved by a failover goes back"},
    {"routing", "refusal_ttl", CT_DUR, OFF(refusal_ttl_ms), SEC(1), DAY(30), "1h", R,
     "remember a host's 0xC004F042 (no key for the product) this long"},
    {"routing", "threshold_assist", CT_BOOL, OFF(threshold_assist), 0, 1, "true", R,
     "answer from an established host while the client's host is below its threshold"},
    {"routing", "count_fresh", CT_DUR, OFF(count_fresh_ms), SEC(1), DAY(30), "1h", R,
     "a host's reported count is recent this long"},

    {"store", "map_size", CT_SIZE, OFF(map_size), 1ull << 20, 1ull << 40, "1G", S,
     "hard size cap of the pin database"},
    {"store", "commit_interval", CT_DUR, OFF(commit_interval_ms), MS(10), MINUTE(1), "1s", S,
     "write queued pins at least this often"},
    {"store", "commit_batch", CT_U32, OFF(commit_batch), 1, 1000000, "1000", S,
     "... or as soon as this many are queued"},

    {"health", "interval", CT_DUR, OFF(check_interval_ms), MS(100), HOUR(1), "5s", R,
     "time between checks of a host"},
    {"health", "fast_interval", CT_DUR, OFF(check_fast_interval_ms), MS(100), HOUR(1), "1s", R,
     "time between checks while a host's state is in question"},
    {"health", "timeout", CT_DUR, OFF(check_timeout_ms), MS(10), MINUTE(5), "2s", R,
     "one check: connect and bind"},
    {"health", "rise", CT_U32, OFF(rise), 1, 100, "2", R,
     "consecutive successes that make a host up"},
    {"health", "fall", CT_U32, OFF(fall), 1, 100, "3", R,
     "consecutive failures that make a host down"},

    {"log", "target", CT_TARGET, OFF(log_syslog), 0, 0, "stderr", R,
     "stderr (the journal under systemd) or syslog"},
    {"log", "level", CT_LEVEL, OFF(log_level), 0, 0, "info", R,
     "error, warn, info or debug"},
    {"log", "activations", CT_BOOL, OFF(log_activations), 0, 1, "true", R,
     "one logfmt line per activation"},

    /* DNS publishing and discovery (src/dns; lists in src/conf/dns.c) */
    {"dns", "timeout", CT_DUR, OFF(dns_timeout_ms), MS(100), MINUTE(1), "3s", R,
     "one try on one DNS server"},
    {"dns", "hold_down", CT_DUR, OFF(dns_hold_down_ms), 0, DAY(1), "30s", R,
     "withdraw after no eligible backend this long"},
    {"dns", "rise", CT_DUR, OFF(dns_rise_ms), 0, DAY(1), "10s", R,
     "publish again after being healthy this long"},
    {"dns", "min_state", CT_DUR, OFF(dns_min_state_ms), 0, DAY(1), "30s", R,
     "least time between a publish and a withdraw"},
    {"dns", "reconcile", CT_DUR, OFF(dns_reconcile_ms), SEC(1), DAY(1), "5m", R,
     "re-read our record and repair it this often"},
    {"dns", "rate", CT_U32, OFF(dns_rate), 1, 600, "6", R,
     "updates per minute per zone"},
    {"dns", "backoff_min", CT_DUR, OFF(dns_backoff_min_ms), MS(100), HOUR(1), "2s", R,
     "first retry after a failed update"},
    {"dns", "backoff_max", CT_DUR, OFF(dns_backoff_max_ms), MS(100), DAY(1), "5m", R,
     "longest retry interval"},
    {"dns", "withdraw_wait", CT_DUR, OFF(dns_withdraw_wait_ms), MS(100), MINUTE(1), "2s", R,
     "how long a withdraw on SIGTERM may take"},
    {"dns", "withdraw_on_stop", CT_BOOL, OFF(dns_withdraw_on_stop), 0, 1, "true", R,
     "withdraw our record on SIGTERM"},
    {"dns", "fail_static", CT_BOOL, OFF(dns_fail_static), 0, 1, "true", R,
     "never leave the name without a record of a healthy host"},
    {"dns", "flap_limit", CT_U32, OFF(dns_flap_limit), 1, 1000, "4", R,
     "state changes per flap_window before publishing is damped"},
    {"dns", "flap_window", CT_DUR, OFF(dns_flap_window_ms), SEC(1), DAY(7), "1h", R,
     "the window of flap_limit"},
    /* src/audit */
    {"dns", "audit_interval", CT_DUR, OFF(dns_audit_interval_ms), 0, DAY(7), "0s", R,
     "audit every zone this often (0 = off)"},
    {"dns", "dead_after", CT_DUR, OFF(dns_dead_after_ms), SEC(1), DAY(365), "24h", R,
     "a record's target failing this long is dead"},
    {"dns", "sanctioned_file", CT_PATH, OFF(dns_sanctioned_file), 0, 0, "", R,
     "sanctioned KMS hosts for the audit, one per line (none by default)"},
    {"backend", "discover_interval", CT_DUR, OFF(discover_interval_ms), SEC(1), DAY(1), "60s", R,
     "re-resolve backend.discover at least this often"},
    {"backend", "discover_linger", CT_DUR, OFF(discover_linger_ms), 0, DAY(30), "1h", R,
     "a host gone from DNS stays drained this long"},
    /* host addresses written as DNS names (src/daemon/names.c) */
    {"backend", "resolve_min", CT_DUR, OFF(resolve_min_ms), SEC(1), HOUR(1), "5s", R,
     "a host name is re-resolved when its TTL runs out, but no sooner than this"},
    {"backend", "resolve_max", CT_DUR, OFF(resolve_max_ms), SEC(1), DAY(1), "5m", R,
     "a host name is re-resolved at least this often, whatever its TTL"},

    /* address checked in validate.c */
    {"metrics", "listen", CT_NAME, OFF(metrics_listen), 0, 0, "", R,
     "address of the Prometheus /metrics listener (off by default)"},

    /* replication between relays (src/peer; the list in src/conf/peers.c) */
    {"peers", "name", CT_NAME, OFF(peer_name), 0, 0, "", S,
     "this relay's name among its peers (replication off by default)"},
    {"peers", "listen", CT_NAME, OFF(peer_listen), 0, 0, "", S,
     "address of the listener for peer links"},
    {"peers", "ca", CT_PATH, OFF(peer_ca), 0, 0, "", S,
     "private CA that signed every peer's certificate (PEM)"},
    {"peers", "cert", CT_PATH, OFF(peer_cert), 0, 0, "", S,
     "this relay's certificate (PEM); its CN or SAN is peers.name"},
    {"peers", "key", CT_PATH, OFF(peer_key), 0, 0, "", S,
     "the certificate's private key (PEM)"},
    {"peers", "psk_file", CT_PATH, OFF(peer_psk_file), 0, 0, "", S,
     "a pre-shared key (hex, 32+ bytes) instead of certificates"},
    {"peers", "retry", CT_DUR, OFF(peer_retry_ms), MS(100), MINUTE(10), "1s", S,
     "reconnect a lost peer link after this"},
    {"peers", "stale_after", CT_DUR, OFF(peer_stale_ms), SEC(1), DAY(30), "5m", S,
     "a peer unreachable this long is stale"},
    {"peers", "log_size", CT_U32, OFF(peer_log_size), 1000, 10000000, "100000", S,
     "changes kept in memory for a peer's catch-up (more: full resync)"},

    {"control", "socket", CT_PATH, OFF(control_socket), 0, 0, "/run/kmsrelay/control.sock", S,
     "path of the control API socket"},
    {"control", "mode", CT_MODE, OFF(control_mode), 0, 0777, "0660", R,
     "permission bits of the socket (octal string)"},
    {"control", "group", CT_GROUP, OFF(control_group), 0, 0, "", R,
     "group owner of the socket (\"\" = the daemon's own)"},
};
/* clang-format on */

const size_t conf_n_opts = sizeof(conf_opts) / sizeof(conf_opts[0]);
