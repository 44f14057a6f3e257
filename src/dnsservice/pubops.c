/*
 * pubops.c - the publisher's operations on one zone: read the _vlmcs SRV
 * and TXT RRsets, then publish / repair / withdraw with one UPDATE that
 * deletes our exact records and adds the new ones (never an RRset delete,
 * never a record we cannot prove is ours), and what we published kept in
 * the store (KR_DNS_KV_PREFIX, see include/kmsrelay/dns.h).
 *
 * Ours means: the records we last published (store), our wanted records,
 * or a TXT marker with our instance id together with the SRV it describes.
 * TTL: a new record takes the TTL of the RRset it joins (adding at another
 * TTL would rewrite everybody's TTL); alone, the configured TTL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsservice/service-internal.h"
#include "kmsrelay/metrics.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

static void kv_key(const struct dns_zone *z, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s%s", KR_DNS_KV_PREFIX, z->conf.name);
    for (size_t i = 0; i < n && i < cap; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
}

void dns_op_load(struct dns_zone *z)
{
    char key[KR_KV_KEY_MAX + 1], buf[2 * (KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64)];
    size_t len = 0;

    kv_key(z, key, sizeof(key));
    if (kr_store_kv_get(z->d->env.store, key, buf, sizeof(buf) - 1, &len) != 0)
        return;
    buf[len] = '\0';
    char *nl = strchr(buf, '\n');
    if (!nl)
        return;
    *nl = '\0';
    char *second = nl + 1, *nl2 = strchr(second, '\n');
    if (nl2)
        *nl2 = '\0';
    if (kr_dns_rr_from_text(&z->pub_srv, buf, NULL) != 0 ||
        kr_dns_rr_from_text(&z->pub_txt, second, NULL) != 0 || z->pub_srv.type != KR_DNS_SRV ||
        z->pub_txt.type != KR_DNS_TXT) {
        kr_log(KR_LOG_WARN, "event=dns_store zone=%s msg=\"stored record does not parse; ignored\"",
               z->conf.name);
        return;
    }
    z->published = true;
    z->pub_since = kr_wall_s();
    kr_log(KR_LOG_INFO, "event=dns_store zone=%s published=1 srv=\"%s\"", z->conf.name,
           z->pub_srv.rdata);
}

static void save(struct dns_zone *z)
{
    char key[KR_KV_KEY_MAX + 1], a[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64], b[sizeof(a)];
    char buf[2 * sizeof(a) + 2];
    int rc;

    kv_key(z, key, sizeof(key));
    if (z->published) {
        int n = snprintf(buf, sizeof(buf), "%s\n%s\n", kr_dns_rr_format(&z->pub_srv, a, sizeof(a)),
                         kr_dns_rr_format(&z->pub_txt, b, sizeof(b)));
        rc = kr_store_kv_put(z->d->env.store, key, buf, (size_t)n);
    } else {
        rc = kr_store_kv_del(z->d->env.store, key);
        if (rc == KR_ENOENT)
            rc = 0;
    }
    if (rc)
        kr_log(KR_LOG_ERR, "event=store_error what=\"dns record of %s\" error=\"%s\"", z->conf.name,
               kr_strerror(rc));
}

/* A marker of ours in the TXT RRset that describes this SRV record. */
static bool marker_proves(const struct dns_zone *z, const struct kr_dns_rr *srv)
{
    struct kr_dns_marker m;
    for (size_t i = 0; i < z->n_txtset; i++)
        if (kr_dns_marker_parse(z->txtset[i].txt, &m, NULL) == 0 &&
            strcmp(m.owner_id, dns_conf(z->d)->instance_id) == 0 &&
            kr_dns_name_equal(m.target, srv->target) && m.port == srv->port &&
            m.priority == srv->priority && m.weight == srv->weight)
            return true;
    return false;
}

bool dns_rr_ours(const struct dns_zone *z, const struct kr_dns_rr *rr)
{
    struct kr_dns_marker m;
    if (kr_dns_rr_same(rr, rr->type == KR_DNS_SRV ? &z->want_srv : &z->want_txt))
        return true;
    if (z->published && kr_dns_rr_same(rr, rr->type == KR_DNS_SRV ? &z->pub_srv : &z->pub_txt))
        return true;
    if (rr->type == KR_DNS_SRV)
        return marker_proves(z, rr);
    /* A marker of ours whose SRV is in the RRset (or absent: an orphan of
     * ours, written by us in the same message as its SRV). */
    return rr->type == KR_DNS_TXT && kr_dns_marker_parse(rr->txt, &m, NULL) == 0 &&
           strcmp(m.owner_id, dns_conf(z->d)->instance_id) == 0;
}

static void on_update(struct kr_dns_result *res, void *arg)
{
    struct dns_zone *z = arg;
    const char *op = z->intent == IN_STOP       ? "withdraw"
                     : z->intent == IN_WITHDRAW ? "withdraw"
                                                : "publish";
    char q[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 8];

    z->req = NULL;
    z->op = OP_NONE;
    if (res->status == KR_DNS_OK) {
        if (strcmp(op, "publish") == 0) {
            z->published = true;
            z->pub_srv = z->want_srv;
            z->pub_txt = z->want_txt;
            z->pub_since = kr_wall_s();
            kr_log(KR_LOG_INFO, "event=dns_published zone=%s srv=%s ttl=%u server=%s", z->conf.name,
                   kr_logfmt_value(z->pub_srv.rdata, q, sizeof(q)), z->pub_srv.ttl, res->server);
        } else {
            z->published = false;
            kr_log(KR_LOG_INFO, "event=dns_withdrawn zone=%s reason=%s server=%s", z->conf.name,
                   z->intent == IN_STOP ? (z->removing ? "zone_removed" : "shutdown")
                                        : "no_eligible_backend",
                   res->server);
        }
        z->fail_static = false;
        save(z);
        z->next_reconcile_us = kr_now_us() + dns_conf(z->d)->dns_reconcile_ms * 1000;
    }
    kr_metrics_dns_update(res->status);
    kr_metrics_dns_zone(z->conf.name, z->published,
                        res->status != KR_DNS_OK ? "failing"
                        : z->published           ? "published"
                                                 : "withdrawn");
    dns_zone_done(z, op, res);
    kr_dns_result_free(res);
    /* Also when stopping: a publish that was in flight at SIGTERM is
     * followed by the withdrawal now. */
    dns_zone_step(z);
}

/* Refills the token bucket; false (and a wait) when no UPDATE may go now. */
static bool take_token(struct dns_zone *z)
{
    const struct kr_conf *c = dns_conf(z->d);
    uint64_t now = kr_now_us();
    z->tokens += (double)(now - z->tokens_us) * c->dns_rate / 60e6;
    z->tokens_us = now;
    if (z->tokens > c->dns_rate)
        z->tokens = c->dns_rate;
    if (z->tokens >= 1) {
        z->tokens -= 1;
        return true;
    }
    z->retry_at_us = now + (uint64_t)((1 - z->tokens) * 60e6 / c->dns_rate);
    kr_log(KR_LOG_WARN, "event=dns_rate_limited zone=%s rate_per_min=%u", z->conf.name,
           c->dns_rate);
    return false;
}

static void send_update(struct dns_zone *z, const struct kr_dns_rr *del, size_t n_del,
                        const struct kr_dns_rr *add, size_t n_add, uint64_t budget_ms, bool limit)
{
    struct kr_dns_update u = {z->conf.name, NULL, 0, del, n_del, add, n_add};
    struct kr_dns_servers s;
    struct kr_dns_result res;

    if (limit && !take_token(z)) {
        z->op = OP_NONE;
        return;
    }
    dns_zone_servers(z, &s, budget_ms);
    s.mname_fallback = true;
    z->op = OP_UPDATE;
    if (kr_dns_update(z->d->client, &s, &u, on_update, z, &z->req) != 0) {
        z->op = OP_NONE;
        memset(&res, 0, sizeof(res));
        res.status = KR_DNS_E_LOCAL;
        snprintf(res.message, sizeof(res.message), "cannot start the update: out of memory");
        dns_zone_done(z, "update", &res);
    }
}

void dns_op_withdraw(struct dns_zone *z, uint64_t budget_ms)
{
    struct kr_dns_rr del[2] = {z->pub_srv, z->pub_txt};
    send_update(z, del, 2, NULL, 0, budget_ms, false);
}

/* Publish or repair: delete what of ours is stale or ours-as-wanted (an
 * exact delete of an absent record is a no-op), add what we want, at the
 * TTL of the RRsets we join. */
static void publish(struct dns_zone *z, bool repair)
{
    struct kr_dns_rr del[2 * DNS_MAX_OTHERS + 4], add[2];
    size_t n_del = 0;
    uint32_t srv_ttl = z->conf.ttl_s, txt_ttl;
    bool other_srv = false, other_txt = false;

    for (size_t i = 0; i < z->n_srvset; i++) {
        if (dns_rr_ours(z, &z->srvset[i])) {
            if (n_del < DNS_MAX_OTHERS)
                del[n_del++] = z->srvset[i];
        } else if (!other_srv) {
            other_srv = true;
            srv_ttl = z->srvset[i].ttl;
        }
    }
    txt_ttl = srv_ttl;
    for (size_t i = 0; i < z->n_txtset; i++) {
        if (dns_rr_ours(z, &z->txtset[i])) {
            if (n_del < 2 * DNS_MAX_OTHERS)
                del[n_del++] = z->txtset[i];
        } else if (!other_txt) {
            other_txt = true;
            txt_ttl = z->txtset[i].ttl;
        }
    }
    if (z->published) {
        del[n_del++] = z->pub_srv;
        del[n_del++] = z->pub_txt;
    }
    del[n_del++] = z->want_srv;
    del[n_del++] = z->want_txt;
    z->want_srv.ttl = srv_ttl;
    z->want_txt.ttl = txt_ttl;
    add[0] = z->want_srv;
    add[1] = z->want_txt;
    if (repair)
        kr_log(KR_LOG_INFO, "event=dns_repair zone=%s ttl=%u", z->conf.name, srv_ttl);
    send_update(z, del, n_del, add, 2, 0, true);
}

static bool present(const struct kr_dns_rr *set, size_t n, const struct kr_dns_rr *rr)
{
    for (size_t i = 0; i < n; i++)
        if (kr_dns_rr_same(&set[i], rr))
            return true;
    return false;
}

static void finish_reconcile(struct dns_zone *z, const char *result)
{
    struct kr_dns_result ok;
    memset(&ok, 0, sizeof(ok));
    snprintf(ok.message, sizeof(ok.message), "reconcile: %s", result);
    z->next_reconcile_us = kr_now_us() + dns_conf(z->d)->dns_reconcile_ms * 1000;
    dns_zone_done(z, "reconcile", &ok);
}

void dns_op_after_read(struct dns_zone *z)
{
    bool srv_here = present(z->srvset, z->n_srvset, &z->want_srv);
    bool txt_here = present(z->txtset, z->n_txtset, &z->want_txt);
    size_t ours = 0, stale = 0;

    for (size_t i = 0; i < z->n_srvset + z->n_txtset; i++) {
        const struct kr_dns_rr *rr = i < z->n_srvset ? &z->srvset[i] : &z->txtset[i - z->n_srvset];
        if (dns_rr_ours(z, rr)) {
            ours++;
            stale += !kr_dns_rr_same(rr, rr->type == KR_DNS_SRV ? &z->want_srv : &z->want_txt);
        }
    }
    switch (z->intent) {
    case IN_PUBLISH:
        publish(z, false);
        return;
    case IN_RECONCILE:
        if (z->svc_up) {
            if (srv_here && txt_here && !stale) {
                finish_reconcile(z, "our records are in place");
                return;
            }
            kr_log(KR_LOG_WARN,
                   "event=dns_drift zone=%s srv_present=%d marker_present=%d stale_of_ours=%zu "
                   "msg=\"our records were changed or deleted outside kmsrelay; repairing\"",
                   z->conf.name, srv_here, txt_here, stale);
            publish(z, true);
            return;
        }
        if (ours == 0) {
            finish_reconcile(z, "withdrawn, none of our records present");
            return;
        }
        /* Held back by fail-static: the alert said so once; this is no
         * drift, and the guard below looks again. */
        if (!z->fail_static)
            kr_log(KR_LOG_WARN,
                   "event=dns_drift zone=%s records_of_ours=%zu msg=\"records of ours are in the "
                   "zone while we are withdrawn; withdrawing them\"",
                   z->conf.name, ours);
        /* fall through: withdraw them (with the fail-static guard) */
        z->intent = IN_WITHDRAW;
        /* fallthrough */
    case IN_WITHDRAW:
        if (ours == 0) {
            z->published = false;
            save(z);
            finish_reconcile(z, "nothing of ours to withdraw");
            return;
        }
        if (dns_conf(z->d)->dns_fail_static) {
            dns_guard_start(z);
            return;
        }
        dns_guard_done(z, 1, "fail_static off");
        return;
    default:
        return;
    }
}

void dns_guard_done(struct dns_zone *z, unsigned healthy, const char *evidence)
{
    struct kr_dns_rr del[2 * DNS_MAX_OTHERS + 2];
    size_t n_del = 0;
    char q[600];

    z->op = OP_NONE;
    if (healthy == 0) {
        z->guard_retry_us = kr_now_us() + 30 * 1000000ull;
        /* Look again at the next reconcile, not at the next tick. */
        z->next_reconcile_us = kr_now_us() + dns_conf(z->d)->dns_reconcile_ms * 1000;
        kr_log(KR_LOG_DEBUG, "event=dns_guard_check zone=%s healthy_others=0 evidence=%s",
               z->conf.name, kr_logfmt_value(evidence, q, sizeof(q)));
        if (!z->fail_static)
            kr_log(KR_LOG_ERR,
                   "event=dns_alert zone=%s alert=fail_static evidence=%s msg=\"no eligible "
                   "backend, but withdrawing our record would leave %s with no record of a host "
                   "believed healthy: keeping it\"",
                   z->conf.name, kr_logfmt_value(evidence, q, sizeof(q)), z->owner);
        z->fail_static = true;
        return;
    }
    for (size_t i = 0; i < z->n_srvset + z->n_txtset && n_del < 2 * DNS_MAX_OTHERS; i++) {
        const struct kr_dns_rr *rr = i < z->n_srvset ? &z->srvset[i] : &z->txtset[i - z->n_srvset];
        if (dns_rr_ours(z, rr))
            del[n_del++] = *rr;
    }
    if (z->published) {
        del[n_del++] = z->pub_srv;
        del[n_del++] = z->pub_txt;
    }
    kr_log(KR_LOG_INFO, "event=dns_withdrawing zone=%s healthy_others=%u", z->conf.name, healthy);
    send_update(z, del, n_del, NULL, 0, 0, true);
}

/* ---- the read: SRV, then TXT ------------------------------------------- */

static void keep(struct kr_dns_rr *set, size_t *n, size_t cap, const struct kr_dns_result *res,
                 const char *owner, uint16_t type)
{
    *n = 0;
    for (size_t i = 0; i < res->n_rrs && *n < cap; i++)
        if (res->rrs[i].type == type && kr_dns_name_equal(res->rrs[i].owner, owner))
            set[(*n)++] = res->rrs[i];
}

static void on_txt(struct kr_dns_result *res, void *arg)
{
    struct dns_zone *z = arg;
    z->req = NULL;
    z->op = OP_NONE;
    if (res->status != KR_DNS_OK) {
        dns_zone_done(z, "read", res);
    } else {
        keep(z->txtset, &z->n_txtset, DNS_MAX_OTHERS * 2, res, z->owner, KR_DNS_TXT);
        dns_op_after_read(z);
    }
    kr_dns_result_free(res);
}

static void on_srv(struct kr_dns_result *res, void *arg)
{
    struct dns_zone *z = arg;
    struct kr_dns_servers s;

    z->req = NULL;
    if (res->status != KR_DNS_OK) {
        z->op = OP_NONE;
        dns_zone_done(z, "read", res);
        kr_dns_result_free(res);
        return;
    }
    keep(z->srvset, &z->n_srvset, DNS_MAX_OTHERS * 2, res, z->owner, KR_DNS_SRV);
    kr_dns_result_free(res);
    dns_zone_servers(z, &s, 0);
    if (kr_dns_query(z->d->client, &s, z->owner, KR_DNS_TXT, on_txt, z, &z->req) != 0)
        z->op = OP_NONE;
}

void dns_op_read(struct dns_zone *z)
{
    struct kr_dns_servers s;
    dns_zone_servers(z, &s, 0);
    z->op = OP_READ;
    z->n_srvset = z->n_txtset = 0;
    if (kr_dns_query(z->d->client, &s, z->owner, KR_DNS_SRV, on_srv, z, &z->req) != 0)
        z->op = OP_NONE;
}
