/*
 * dnsenv.c - the DNS service's narrow view of the relay (struct kr_dns_env
 * in dnsservice.h): the daemon answers for the relay, so the DNS service
 * never sees the host table.
 */
#include <string.h>

#include "daemon/daemon-internal.h"
#include "relay/relay.h"

static const struct kr_conf *env_conf(void *ctx)
{
    const struct kr_daemon *d = ctx;
    return d->conf;
}

static bool env_service_up(void *ctx)
{
    const struct kr_relay *r = ((struct kr_daemon *)ctx)->relay;
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        if (!h->removed && h->admin == KR_ADMIN_READY && h->health == KR_HEALTH_UP)
            return true;
    }
    return false;
}

static size_t env_listen_addrs(void *ctx, struct kr_addr *out, size_t max)
{
    return kr_relay_listen_addrs(((struct kr_daemon *)ctx)->relay, out, max);
}

static bool env_host_down(void *ctx, const struct kr_addr *a)
{
    const struct kr_relay *r = ((struct kr_daemon *)ctx)->relay;
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        if (!h->removed && h->conf.addr.len == a->len &&
            memcmp(&h->conf.addr.ss, &a->ss, a->len) == 0)
            return h->health == KR_HEALTH_DOWN;
    }
    return false;
}

static bool env_configured_at(void *ctx, const struct kr_addr *a)
{
    const struct kr_relay *r = ((struct kr_daemon *)ctx)->relay;
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        if (!h->removed && !h->dynamic && h->conf.addr.len == a->len &&
            memcmp(&h->conf.addr.ss, &a->ss, a->len) == 0)
            return true;
    }
    return false;
}

static bool env_names_settling(void *ctx)
{
    return daemon_names_settling(((struct kr_daemon *)ctx)->names);
}

static int env_host_add(void *ctx, const struct kr_conf_host *hc)
{
    return kr_relay_dyn_add(((struct kr_daemon *)ctx)->relay, hc);
}

static int env_host_drain(void *ctx, const char *name)
{
    return kr_relay_dyn_drain(((struct kr_daemon *)ctx)->relay, name);
}

static int env_host_remove(void *ctx, const char *name)
{
    return kr_relay_dyn_remove(((struct kr_daemon *)ctx)->relay, name);
}

void daemon_dns_env(struct kr_daemon *d, struct kr_dns_env *env)
{
    memset(env, 0, sizeof(*env));
    env->base = d->base;
    env->store = d->store;
    env->ctx = d;
    env->conf = env_conf;
    env->service_up = env_service_up;
    env->listen_addrs = env_listen_addrs;
    env->configured_at = env_configured_at;
    env->names_settling = env_names_settling;
    env->host_down = env_host_down;
    env->host_add = env_host_add;
    env->host_drain = env_host_drain;
    env->host_remove = env_host_remove;
}
