/*
 * settings.c - the declarative table of every scalar setting of the file:
 * where it lives, its type and its bounds. Lists (listen, clients.allow,
 * hosts) are handled in load.c; defaults are in defaults.c.
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

const struct conf_opt conf_opts[] = {
    {NULL, "instance_id", CT_NAME, OFF(instance_id), 0, 0},
    {NULL, "state_dir", CT_PATH, OFF(state_dir), 0, 0},
    {NULL, "shutdown_grace", CT_DUR, OFF(shutdown_grace_ms), 0, MINUTE(10)},

    {"clients", "max_connections", CT_U32, OFF(max_connections), 1, 1000000},
    {"clients", "max_per_source", CT_U32, OFF(max_conn_per_source), 1, 1000000},
    {"clients", "rate", CT_U32, OFF(rate_per_source), 0, 1000000}, /* 0 = no limit */
    {"clients", "burst", CT_U32, OFF(burst_per_source), 1, 1000000},
    {"clients", "ipv6_prefix", CT_U32, OFF(ipv6_prefix), 16, 128},
    {"clients", "idle_timeout", CT_DUR, OFF(client_idle_ms), MS(100), DAY(1)},
    {"clients", "header_timeout", CT_DUR, OFF(client_header_ms), MS(100), HOUR(1)},

    {"backend", "pool_size", CT_U32, OFF(pool_size), 1, 256},
    {"backend", "connect_timeout", CT_DUR, OFF(connect_timeout_ms), MS(10), MINUTE(1)},
    {"backend", "attempt_timeout", CT_DUR, OFF(attempt_timeout_ms), MS(10), MINUTE(5)},
    {"backend", "budget", CT_DUR, OFF(request_budget_ms), MS(10), MINUTE(10)},
    {"backend", "idle_timeout", CT_DUR, OFF(backend_idle_ms), MS(100), DAY(1)},

    {"routing", "pin_idle", CT_DUR, OFF(pin_idle_ms), SEC(1), DAY(3650)},
    {"routing", "failback", CT_FAILBACK, OFF(failback), 0, 0},
    {"routing", "refusal_ttl", CT_DUR, OFF(refusal_ttl_ms), SEC(1), DAY(30)},
    {"routing", "threshold_assist", CT_BOOL, OFF(threshold_assist), 0, 1},
    {"routing", "count_fresh", CT_DUR, OFF(count_fresh_ms), SEC(1), DAY(30)},

    {"store", "map_size", CT_SIZE, OFF(map_size), 1ull << 20, 1ull << 40},
    {"store", "commit_interval", CT_DUR, OFF(commit_interval_ms), MS(10), MINUTE(1)},
    {"store", "commit_batch", CT_U32, OFF(commit_batch), 1, 1000000},

    {"health", "interval", CT_DUR, OFF(check_interval_ms), MS(100), HOUR(1)},
    {"health", "fast_interval", CT_DUR, OFF(check_fast_interval_ms), MS(100), HOUR(1)},
    {"health", "timeout", CT_DUR, OFF(check_timeout_ms), MS(10), MINUTE(5)},
    {"health", "rise", CT_U32, OFF(rise), 1, 100},
    {"health", "fall", CT_U32, OFF(fall), 1, 100},

    {"log", "target", CT_TARGET, OFF(log_syslog), 0, 0},
    {"log", "level", CT_LEVEL, OFF(log_level), 0, 0},
    {"log", "activations", CT_BOOL, OFF(log_activations), 0, 1},

    /* DNS publishing and discovery (src/dns; lists in src/conf/dns.c) */
    {"dns", "timeout", CT_DUR, OFF(dns_timeout_ms), MS(100), MINUTE(1)},
    {"dns", "hold_down", CT_DUR, OFF(dns_hold_down_ms), 0, DAY(1)},
    {"dns", "rise", CT_DUR, OFF(dns_rise_ms), 0, DAY(1)},
    {"dns", "min_state", CT_DUR, OFF(dns_min_state_ms), 0, DAY(1)},
    {"dns", "reconcile", CT_DUR, OFF(dns_reconcile_ms), SEC(1), DAY(1)},
    {"dns", "rate", CT_U32, OFF(dns_rate), 1, 600}, /* updates per minute per zone */
    {"dns", "backoff_min", CT_DUR, OFF(dns_backoff_min_ms), MS(100), HOUR(1)},
    {"dns", "backoff_max", CT_DUR, OFF(dns_backoff_max_ms), MS(100), DAY(1)},
    {"dns", "withdraw_wait", CT_DUR, OFF(dns_withdraw_wait_ms), MS(100), MINUTE(1)},
    {"dns", "withdraw_on_stop", CT_BOOL, OFF(dns_withdraw_on_stop), 0, 1},
    {"dns", "fail_static", CT_BOOL, OFF(dns_fail_static), 0, 1},
    {"dns", "flap_limit", CT_U32, OFF(dns_flap_limit), 1, 1000},
    {"dns", "flap_window", CT_DUR, OFF(dns_flap_window_ms), SEC(1), DAY(7)},
    {"dns", "audit_interval", CT_DUR, OFF(dns_audit_interval_ms), 0, DAY(7)}, /* src/audit */
    {"dns", "dead_after", CT_DUR, OFF(dns_dead_after_ms), SEC(1), DAY(365)},
    {"dns", "sanctioned_file", CT_PATH, OFF(dns_sanctioned_file), 0, 0},
    {"backend", "discover_interval", CT_DUR, OFF(discover_interval_ms), SEC(1), DAY(1)},
    {"backend", "discover_linger", CT_DUR, OFF(discover_linger_ms), 0, DAY(30)},

    {"metrics", "listen", CT_NAME, OFF(metrics_listen), 0, 0}, /* address checked in validate.c */

    {"control", "socket", CT_PATH, OFF(control_socket), 0, 0},
    {"control", "mode", CT_MODE, OFF(control_mode), 0, 0777},
    {"control", "group", CT_GROUP, OFF(control_group), 0, 0},
};

const size_t conf_n_opts = sizeof(conf_opts) / sizeof(conf_opts[0]);
