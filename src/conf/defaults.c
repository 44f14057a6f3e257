/*
 * defaults.c - the embedded configuration (what kmsrelayd runs with when no
 * file is given) and the admin-state names.
 */
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"
#include "kmsrelay/log.h"

/* Loopback and the private ranges: a fresh install serves the LAN it sits
 * in and nobody else (issue 3, access control). */
static const char *const default_allow[] = {
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
};

void kr_conf_defaults(struct kr_conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->instance_id, sizeof(c->instance_id), "kmsrelay");
    snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/kmsrelay");

    /* Two sockets: the IPv6 one is V6ONLY, so both can own port 1688. */
    kr_addr_parse("[::]:1688", AF_INET6, &c->listen[0], NULL);
    kr_addr_parse("0.0.0.0:1688", AF_INET, &c->listen[1], NULL);
    c->n_listen = 2;
    for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
        kr_cidr_parse(default_allow[i], &c->allow[c->n_allow++], NULL);
    c->max_connections = 10000;
    c->max_conn_per_source = 64;
    c->rate_per_source = 20;
    c->burst_per_source = 40;
    c->ipv6_prefix = 64; /* one site or host gets a /64: count it as one source */
    c->client_idle_ms = 30 * 1000;
    c->client_header_ms = 10 * 1000;

    c->pool_size = 4;
    c->connect_timeout_ms = 1000;
    c->attempt_timeout_ms = 3000;
    c->request_budget_ms = 8000; /* well under the client's RPC timeout */
    c->backend_idle_ms = 25 * 1000;

    c->pin_idle_ms = 45ull * 24 * 3600 * 1000; /* longer than the KMS 30-day window */
    c->failback = KR_FAILBACK_NEVER;
    c->refusal_ttl_ms = 3600 * 1000;
    c->threshold_assist = 1;
    c->count_fresh_ms = 3600 * 1000;

    c->map_size = 1ull << 30;
    c->commit_interval_ms = 1000;
    c->commit_batch = 1000;

    c->check_interval_ms = 5000;
    c->check_fast_interval_ms = 1000;
    c->check_timeout_ms = 2000;
    c->rise = 2;
    c->fall = 3;

    c->log_syslog = 0;
    c->log_level = KR_LOG_INFO;
    c->log_debug = 0;
    c->log_activations = 1;

    c->shutdown_grace_ms = 5000;

    snprintf(c->control_socket, sizeof(c->control_socket), "/run/kmsrelay/control.sock");
    c->control_mode = 0660; /* owner and group: the operators' group */
    conf_dns_defaults(c);
}

static const char *const admin_names[] = {"ready", "drain", "maint", "retired"};

const char *kr_admin_name(int admin)
{
    if (admin >= 0 && admin < 4)
        return admin_names[admin];
    return admin == KR_ADMIN_UNSET ? "unset" : "?";
}

int kr_admin_parse(const char *text)
{
    for (int i = 0; i < 4; i++)
        if (text && strcmp(text, admin_names[i]) == 0)
            return i;
    return -1;
}
