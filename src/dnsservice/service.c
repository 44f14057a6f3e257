/*
 * service.c - the DNS service's lifecycle on the relay's event base: zones and
 * discovery names from the config (diffed on reload), a 250 ms tick that
 * drives the publishers, the bounded withdraw on shutdown, and the status
 * for the control API. See dnsservice.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss.h"
#include "dnsservice/service-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

void dns_arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

size_t dns_resolvers(const struct kr_dns *d, struct kr_addr *out, size_t max)
{
    const struct kr_conf *c = dns_conf(d);
    if (c->n_dns_resolvers) {
        size_t n = c->n_dns_resolvers < max ? c->n_dns_resolvers : max;
        memcpy(out, c->dns_resolvers, n * sizeof(*out));
        return n;
    }
    return kr_dns_system_resolvers(out, max);
}

void dns_zone_servers(const struct dns_zone *z, struct kr_dns_servers *s, uint64_t budget_ms)
{
    const struct kr_conf *c = dns_conf(z->d);
    memset(s, 0, sizeof(*s));
    s->addrs = z->conf.servers;
    s->n = z->conf.n_servers;
    s->key = &z->key;
    if (z->conf.gss_principal[0]) { /* GSS-TSIG instead of the key (issue 12) */
        s->gss_keytab = z->conf.gss_keytab;
        s->gss_principal = z->conf.gss_principal;
    }
    s->timeout_ms = c->dns_timeout_ms;
    s->budget_ms = budget_ms;
    s->resolvers = c->dns_resolvers;
    s->n_resolvers = c->n_dns_resolvers;
    if (!s->n) { /* no servers: ask the resolvers (reads), MNAME for updates */
        s->addrs = c->dns_resolvers;
        s->n = c->n_dns_resolvers;
        s->recursion = true;
    }
}

bool dns_service_up(const struct kr_dns *d)
{
    return d->env.service_up(d->env.ctx);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct kr_dns *d = arg;
    size_t n = 0;
    for (size_t i = 0; i < d->n_zones; i++) {
        struct dns_zone *z = d->zones[i];
        dns_zone_tick(z);
        /* A zone dropped from the config goes once its withdrawal is done. */
        if (z->removing && z->op == OP_NONE && (!z->published || z->stop_sent)) {
            kr_log(KR_LOG_INFO, "event=dns_zone_removed zone=%s", z->conf.name);
            dns_zone_free(z);
            continue;
        }
        d->zones[n++] = z;
    }
    d->n_zones = n;
    if (!d->stopping)
        dns_arm(d->tick, DNS_TICK_MS);
}

int kr_dns_check(const struct kr_conf *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_dns_zones; i++) {
        struct kr_dns_key k;
        const struct kr_conf_dns_zone *z = &c->dns_zones[i];
        int rc = z->gss_principal[0]
                     ? kr_gss_keytab_check(z->gss_keytab, z->gss_principal, err, errlen)
                     : kr_dns_key_load(z->key_file, z->key_name[0] ? z->key_name : NULL, &k, err,
                                       errlen);
        kr_dns_key_clear(&k);
        if (rc)
            return rc;
    }
    return 0;
}

static struct dns_zone *zone_by_name(struct kr_dns *d, const char *name)
{
    for (size_t i = 0; i < d->n_zones; i++)
        if (kr_dns_name_equal(d->zones[i]->conf.name, name) && !d->zones[i]->removing)
            return d->zones[i];
    return NULL;
}

static int add_zone(struct kr_dns *d, const struct kr_conf_dns_zone *zc, char *err, size_t errlen)
{
    struct dns_zone **t = realloc(d->zones, (d->n_zones + 1) * sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    d->zones = t;
    struct dns_zone *z = dns_zone_new(d, zc, err, errlen);
    if (!z)
        return KR_EINVAL;
    d->zones[d->n_zones++] = z;
    kr_log(KR_LOG_INFO,
           "event=dns_zone zone=%s target=%s port=%u priority=%u weight=%u servers=%zu key=%s "
           "published=%d",
           z->conf.name, z->conf.target, z->port, z->conf.priority, z->conf.weight,
           z->conf.n_servers, z->key.name, z->published);
    return 0;
}

static int add_disc(struct kr_dns *d, const char *name)
{
    struct dns_disc **t = realloc(d->disc, (d->n_disc + 1) * sizeof(*t));
    if (!t)
        return KR_ENOMEM;
    d->disc = t;
    struct dns_disc *x = dns_disc_new(d, name);
    if (!x)
        return KR_ENOMEM;
    d->disc[d->n_disc++] = x;
    kr_log(KR_LOG_INFO, "event=discover name=%s", name);
    return 0;
}

int kr_dns_create(const struct kr_dns_env *env, struct kr_dns **out, char *err, size_t errlen)
{
    const struct kr_conf *c = env->conf(env->ctx);
    struct kr_dns *d = calloc(1, sizeof(*d));
    int rc = KR_ENOMEM;

    *out = NULL;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    d->env = *env;
    struct kr_dns_client_opts o = {0};
    if (!(d->client = kr_dns_client_new(env->base, &o)) ||
        !(d->tick = evtimer_new(env->base, on_tick, d))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->n_dns_zones; i++)
        if ((rc = add_zone(d, &c->dns_zones[i], err, errlen)) != 0)
            goto fail;
    for (size_t i = 0; i < c->n_discover; i++)
        if ((rc = add_disc(d, c->discover[i])) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    dns_arm(d->tick, 0);
    *out = d;
    return 0;
fail:
    kr_dns_destroy(d);
    return rc;
}

void kr_dns_apply(struct kr_dns *d)
{
    char err[512];

    if (!d || d->stopping)
        return;
    const struct kr_conf *c = dns_conf(d);
    for (size_t i = 0; i < d->n_zones; i++) {
        struct dns_zone *z = d->zones[i];
        bool keep = false;
        for (size_t j = 0; j < c->n_dns_zones && !keep; j++)
            keep = kr_dns_name_equal(c->dns_zones[j].name, z->conf.name);
        if (!keep && !z->removing) {
            kr_log(KR_LOG_INFO, "event=dns_zone zone=%s action=remove published=%d", z->conf.name,
                   z->published);
            z->removing = true;
        }
    }
    for (size_t j = 0; j < c->n_dns_zones; j++) {
        struct dns_zone *z = zone_by_name(d, c->dns_zones[j].name);
        int rc = z ? dns_zone_reconf(z, &c->dns_zones[j], err, sizeof(err))
                   : add_zone(d, &c->dns_zones[j], err, sizeof(err));
        if (rc)
            kr_log(KR_LOG_ERR, "event=dns_zone zone=%s error=\"%s\"", c->dns_zones[j].name, err);
    }
    size_t n = 0;
    for (size_t i = 0; i < d->n_disc; i++) {
        bool keep = false;
        for (size_t j = 0; j < c->n_discover && !keep; j++)
            keep = kr_dns_name_equal(c->discover[j], dns_disc_name(d->disc[i]));
        if (!keep) {
            kr_log(KR_LOG_INFO, "event=discover name=%s action=remove", dns_disc_name(d->disc[i]));
            dns_disc_forget(d->disc[i]);
            dns_disc_free(d->disc[i]);
            continue;
        }
        d->disc[n++] = d->disc[i];
    }
    d->n_disc = n;
    for (size_t j = 0; j < c->n_discover; j++) {
        bool have = false;
        for (size_t i = 0; i < d->n_disc && !have; i++)
            have = kr_dns_name_equal(c->discover[j], dns_disc_name(d->disc[i]));
        if (!have && add_disc(d, c->discover[j]) != 0)
            kr_log(KR_LOG_ERR, "event=discover name=%s error=\"out of memory\"", c->discover[j]);
    }
}

void kr_dns_stop(struct kr_dns *d)
{
    if (!d || d->stopping)
        return;
    d->stopping = true;
    d->stop_deadline_us = kr_now_us() + dns_conf(d)->dns_withdraw_wait_ms * 1000;
    evtimer_del(d->tick);
    for (size_t i = 0; i < d->n_disc; i++)
        dns_disc_free(d->disc[i]);
    d->n_disc = 0;
    for (size_t i = 0; i < d->n_zones; i++) {
        struct dns_zone *z = d->zones[i];
        /* Whatever runs now (a read, a guard probe) is dropped: only the
         * withdrawal matters. An UPDATE in flight is left to finish. */
        if (z->op == OP_READ || z->op == OP_GUARD) {
            dns_guard_cancel(z);
            if (z->req)
                kr_dns_cancel(z->req);
            z->req = NULL;
            z->op = OP_NONE;
        }
        dns_zone_step(z);
    }
}

bool kr_dns_busy(const struct kr_dns *d)
{
    if (!d || !d->stopping || kr_now_us() >= d->stop_deadline_us)
        return false;
    for (size_t i = 0; i < d->n_zones; i++)
        if (d->zones[i]->op != OP_NONE)
            return true;
    return false;
}

void kr_dns_destroy(struct kr_dns *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_disc; i++)
        dns_disc_free(d->disc[i]);
    for (size_t i = 0; i < d->n_zones; i++)
        dns_zone_free(d->zones[i]);
    free(d->disc);
    free(d->zones);
    if (d->tick)
        event_free(d->tick);
    kr_dns_client_free(d->client);
    kr_gss_pool_clear(); /* the kept security contexts (and their tickets) */
    free(d);
}

json_t *kr_dns_status_json(struct kr_dns *d)
{
    json_t *o = json_object(), *zones = json_array(), *disc = json_array();
    if (d) {
        for (size_t i = 0; i < d->n_zones; i++)
            json_array_append_new(zones, dns_zone_json(d->zones[i]));
        for (size_t i = 0; i < d->n_disc; i++)
            json_array_append_new(disc, dns_disc_json(d->disc[i]));
        json_object_set_new(o, "instance", json_string(dns_conf(d)->instance_id));
        json_object_set_new(o, "stopping", json_boolean(d->stopping));
    }
    json_object_set_new(o, "zones", zones);
    json_object_set_new(o, "discovery", disc);
    return o;
}
