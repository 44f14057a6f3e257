/*
 * pubzone.c - one zone's publisher: service health with hysteresis, and
 * the decision what to do next.
 *
 * Service health ("raw") is: some backend can take a new client now
 * (admin ready and health UP). The zone's svc_up follows it with:
 *   - hold_down: raw must stay false this long before svc_up drops;
 *   - rise: raw must stay true this long before svc_up comes back;
 *   - min_state: at least this long between two transitions;
 *   - flap damping: after flap_limit transitions within flap_window a
 *     withdrawal is held back (we stay published) and an alert is logged,
 *     until old transitions age out of the window.
 * At start svc_up is what the store says we had published, so a restart
 * with healthy backends does not withdraw and republish.
 *
 * desired = svc_up. The step function starts at most one operation at a
 * time: publish (read the RRset, then delete-ours + add in one UPDATE),
 * withdraw (read, fail-static guard, then delete ours) or reconcile (read,
 * repair drift). Failures back off exponentially with jitter; UPDATEs are
 * rate-limited per zone (dns.rate per minute).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsclient/gss.h"
#include "dnsservice/service-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

static int build_want(struct dns_zone *z, char *err, size_t errlen)
{
    const struct kr_conf *c = dns_conf(z->d);
    struct kr_dns_marker m;
    char txt[256];

    memset(&m, 0, sizeof(m));
    snprintf(m.owner_id, sizeof(m.owner_id), "%s", c->instance_id);
    snprintf(m.target, sizeof(m.target), "%s", z->conf.target);
    m.port = z->port;
    m.priority = (uint16_t)z->conf.priority;
    m.weight = (uint16_t)z->conf.weight;
    if (kr_dns_marker_format(&m, txt, sizeof(txt)) != 0 ||
        kr_dns_rr_txt(&z->want_txt, z->owner, z->conf.ttl_s, txt) != 0 ||
        kr_dns_rr_srv(&z->want_srv, z->owner, z->conf.ttl_s, m.priority, m.weight, m.port,
                      m.target) != 0) {
        snprintf(err, errlen, "zone %s: cannot build our records (target %s, instance_id %s)",
                 z->conf.name, z->conf.target, c->instance_id);
        return KR_EINVAL;
    }
    return 0;
}

static uint16_t first_port(const struct kr_dns *d)
{
    struct kr_addr a;
    if (d->env.listen_addrs(d->env.ctx, &a, 1) == 1)
        return kr_addr_port((const struct sockaddr *)&a.ss);
    return 1688;
}

int dns_zone_reconf(struct dns_zone *z, const struct kr_conf_dns_zone *zc, char *err, size_t errlen)
{
    struct kr_dns_key k;
    memset(&k, 0, sizeof(k));
    int rc =
        zc->gss_principal[0]
            ? kr_gss_keytab_check(zc->gss_keytab, zc->gss_principal, err, errlen)
            : kr_dns_key_load(zc->key_file, zc->key_name[0] ? zc->key_name : NULL, &k, err, errlen);
    if (rc)
        return rc;
    kr_dns_key_clear(&z->key);
    z->key = k;
    kr_dns_key_clear(&k);
    if (strlen(zc->name) + 12 >= sizeof(z->owner)) {
        snprintf(err, errlen, "zone name %.80s... is too long", zc->name);
        return KR_EINVAL;
    }
    z->conf = *zc;
    /* A zone named _vlmcs._tcp.<domain> is the delegation that Windows DNS
     * zones accepting only GSS-TSIG need (deploy/dns/README.md): there the
     * RRset clients query is the zone's apex. */
    size_t pre = strncasecmp(zc->name, "_vlmcs._tcp.", 12) == 0 ? 0 : 12;
    memcpy(z->owner, "_vlmcs._tcp.", pre);
    memcpy(z->owner + pre, zc->name, strlen(zc->name) + 1); /* fits: checked above */
    z->port = zc->port ? (uint16_t)zc->port : first_port(z->d);
    return build_want(z, err, errlen);
}

struct dns_zone *dns_zone_new(struct kr_dns *d, const struct kr_conf_dns_zone *zc, char *err,
                              size_t errlen)
{
    struct dns_zone *z = calloc(1, sizeof(*z));
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    z->d = d;
    if (dns_zone_reconf(z, zc, err, errlen) != 0) {
        dns_zone_free(z);
        return NULL;
    }
    z->tokens = dns_conf(d)->dns_rate;
    z->tokens_us = kr_now_us();
    dns_op_load(z);
    z->svc_up = z->published;
    z->next_reconcile_us = kr_now_us(); /* look at the zone right away */
    return z;
}

void dns_zone_free(struct dns_zone *z)
{
    if (!z)
        return;
    dns_guard_cancel(z);
    if (z->req)
        kr_dns_cancel(z->req);
    kr_dns_key_clear(&z->key);
    free(z);
}

static unsigned recent_flaps(struct dns_zone *z, uint64_t now)
{
    uint64_t win = dns_conf(z->d)->dns_flap_window_ms * 1000;
    unsigned n = 0;
    for (unsigned i = 0; i < z->n_flaps && i < DNS_FLAPS_KEPT; i++)
        n += now - z->flaps[i] < win;
    return n;
}

static void hysteresis(struct dns_zone *z, uint64_t now)
{
    const struct kr_conf *c = dns_conf(z->d);
    bool raw = dns_service_up(z->d);

    if (z->damped && recent_flaps(z, now) < c->dns_flap_limit) {
        z->damped = z->damp_alerted = false;
        kr_log(KR_LOG_INFO, "event=dns_flap_damping zone=%s state=released", z->conf.name);
    }
    if (raw == z->svc_up) {
        z->cond_since_us = 0;
        return;
    }
    if (!z->cond_since_us)
        z->cond_since_us = now;
    uint64_t need = (raw ? c->dns_rise_ms : c->dns_hold_down_ms) * 1000;
    if (now - z->cond_since_us < need)
        return;
    if (z->state_since_us && now - z->state_since_us < c->dns_min_state_ms * 1000)
        return;
    if (!raw && recent_flaps(z, now) >= c->dns_flap_limit) {
        z->damped = true;
        if (!z->damp_alerted)
            kr_log(KR_LOG_ERR,
                   "event=dns_alert zone=%s alert=flapping transitions=%u window_ms=%llu "
                   "msg=\"service health is flapping: withdrawal held back, record stays "
                   "published\"",
                   z->conf.name, recent_flaps(z, now), (unsigned long long)c->dns_flap_window_ms);
        z->damp_alerted = true;
        return;
    }
    z->svc_up = raw;
    z->state_since_us = now;
    z->cond_since_us = 0;
    z->flaps[z->n_flaps++ % DNS_FLAPS_KEPT] = now;
    kr_log(KR_LOG_INFO, "event=dns_service zone=%s state=%s reason=\"%s for %llu ms\"",
           z->conf.name, raw ? "up" : "down", raw ? "eligible backends" : "no eligible backend",
           (unsigned long long)(need / 1000));
}

void dns_zone_tick(struct dns_zone *z)
{
    if (!z->d->stopping && !z->removing)
        hysteresis(z, kr_now_us());
    dns_zone_step(z);
}

void dns_zone_step(struct dns_zone *z)
{
    struct kr_dns *d = z->d;
    const struct kr_conf *c = dns_conf(d);
    uint64_t now = kr_now_us();

    if (z->op != OP_NONE)
        return;
    if (d->stopping || z->removing) {
        if (!z->stop_sent && z->published && (z->removing || c->dns_withdraw_on_stop)) {
            z->stop_sent = true;
            z->intent = IN_STOP;
            dns_op_withdraw(z, c->dns_withdraw_wait_ms);
        }
        return;
    }
    if (z->retry_at_us && now < z->retry_at_us)
        return;
    bool same = z->published && kr_dns_rr_same(&z->pub_srv, &z->want_srv) &&
                kr_dns_rr_same(&z->pub_txt, &z->want_txt);
    if (z->svc_up && !same)
        z->intent = IN_PUBLISH;
    else if (!z->svc_up && z->published && (!z->fail_static || now >= z->guard_retry_us))
        z->intent = IN_WITHDRAW;
    else if (now >= z->next_reconcile_us)
        z->intent = IN_RECONCILE;
    else
        return;
    dns_op_read(z);
}

static uint64_t backoff_ms(struct dns_zone *z, int status)
{
    const struct kr_conf *c = dns_conf(z->d);
    uint64_t ms = c->dns_backoff_min_ms;
    for (uint32_t i = 1; i < z->failures && ms < c->dns_backoff_max_ms; i++)
        ms *= 2;
    /* Errors that need an operator (key, policy, zone) do not get better
     * by themselves: no fast retries. */
    if (!kr_dns_status_transient(status) && ms < 30000)
        ms = 30000;
    if (ms > c->dns_backoff_max_ms)
        ms = c->dns_backoff_max_ms;
    /* Jitter: a random point in [ms/2, ms], so relays that failed
     * together do not retry together. */
    return ms / 2 + (uint64_t)random() % (ms / 2 + 1);
}

void dns_zone_done(struct dns_zone *z, const char *op, const struct kr_dns_result *res)
{
    char q[KR_DNS_MSG_MAX + 8];
    bool changed = !z->have_last || strcmp(z->last.message, res->message) != 0;

    snprintf(z->last.op, sizeof(z->last.op), "%s", op);
    z->last.when = kr_wall_s();
    z->last.status = res->status;
    snprintf(z->last.message, sizeof(z->last.message), "%s", res->message);
    snprintf(z->last.server, sizeof(z->last.server), "%s", res->server);
    z->have_last = true;
    if (res->status == KR_DNS_OK) {
        if (z->failures)
            kr_log(KR_LOG_INFO, "event=dns_recovered zone=%s op=%s after_failures=%u", z->conf.name,
                   op, z->failures);
        z->failures = 0;
        z->retry_at_us = 0;
        return;
    }
    z->failures++;
    uint64_t wait = backoff_ms(z, res->status);
    z->retry_at_us = kr_now_us() + wait * 1000;
    kr_log(changed ? KR_LOG_ERR : KR_LOG_WARN,
           "event=dns_error zone=%s op=%s status=%s error=%s failures=%u retry_in_ms=%llu",
           z->conf.name, op, kr_dns_status_name(res->status),
           kr_logfmt_value(res->message, q, sizeof(q)), z->failures, (unsigned long long)wait);
}

json_t *dns_zone_json(const struct dns_zone *z)
{
    static const char *const ops[] = {NULL, "read", "update", "guard"};
    char l1[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 32], l2[sizeof(l1)];
    uint64_t now = kr_now_us();
    int64_t wall = kr_wall_s();
    json_t *o = json_object(), *recs = json_array();

    if (z->published) {
        json_array_append_new(recs, json_string(kr_dns_rr_format(&z->pub_srv, l1, sizeof(l1))));
        json_array_append_new(recs, json_string(kr_dns_rr_format(&z->pub_txt, l2, sizeof(l2))));
    }
    json_object_set_new(o, "zone", json_string(z->conf.name));
    json_object_set_new(o, "owner", json_string(z->owner));
    json_object_set_new(o, "target", json_string(z->conf.target));
    json_object_set_new(o, "port", json_integer(z->port));
    json_object_set_new(o, "service", json_string(z->svc_up ? "up" : "down"));
    json_object_set_new(o, "desired", json_string(z->svc_up ? "published" : "withdrawn"));
    json_object_set_new(o, "published", json_boolean(z->published));
    json_object_set_new(o, "records", recs);
    json_object_set_new(o, "ttl", z->published ? json_integer(z->pub_srv.ttl) : json_null());
    json_object_set_new(o, "since", z->published ? json_integer(z->pub_since) : json_null());
    json_object_set_new(o, "damped", json_boolean(z->damped));
    json_object_set_new(o, "fail_static", json_boolean(z->fail_static));
    json_object_set_new(o, "in_flight",
                        z->op > 0 && z->op <= OP_GUARD ? json_string(ops[z->op]) : json_null());
    json_object_set_new(o, "failures", json_integer(z->failures));
    if (z->have_last)
        json_object_set_new(o, "last",
                            json_pack("{s:s, s:I, s:s, s:s, s:s}", "op", z->last.op, "when",
                                      (json_int_t)z->last.when, "status",
                                      kr_dns_status_name(z->last.status), "message",
                                      z->last.message, "server", z->last.server));
    else
        json_object_set_new(o, "last", json_null());
    int64_t nr = z->next_reconcile_us > now
                     ? wall + (int64_t)((z->next_reconcile_us - now) / 1000000)
                     : wall;
    json_object_set_new(o, "next_reconcile", json_integer(nr));
    json_object_set_new(o, "next_retry",
                        z->retry_at_us > now
                            ? json_integer(wall + (int64_t)((z->retry_at_us - now) / 1000000))
                            : json_null());
    return o;
}
