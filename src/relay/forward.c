/*
 * forward.c - drives one client request through its plan: one attempt per
 * host in plan order, each bounded by attempt_timeout and all of them by the
 * request budget; then answers the client, updates the pin and logs one
 * activation line.
 *
 *   connect failure, timeout                 -> passive health failure,
 *                                               next host
 *   close, garbage                           -> next host; a passive failure
 *                                               only once another host
 *                                               answered the same message
 *   close/garbage on 2+ hosts, no answer      -> the client's fault: error
 *                                               reply 0x8007000D, no health
 *                                               counted, no pin touched
 *   0xC004F042 (host cannot serve this KMS id) -> remember (host, KMS id),
 *                                               next host; if every host
 *                                               refuses, relay the refusal;
 *                                               the PAIR (CMID, app) is then
 *                                               pinned to the host that
 *                                               served it, the machine's
 *                                               other pairs keep their pins
 *   any other answer                           -> that host answered
 *   budget spent, plan exhausted               -> fault rpc_s_server_unavailable
 *                                               (the client fails over as if
 *                                               the host were dead)
 *
 * Threshold assist: when the answer's Count is below the request's
 * N_Policy (the client would fail with 0xC004F038) and another established
 * host recently reported enough for this application, the SAME client
 * message is sent there too and that answer is returned. The first host
 * keeps the pin (it has counted the real CMID and grows by itself); if the
 * assist fails the first answer is returned as it was.
 *
 * Boundary: the bytes of a host's KMS response are passed on untouched and
 * no KMS response is ever made up here; only error replies carrying a
 * host's HRESULT and RPC faults are built (by front.c).
 *
 * Ownership: the request is owned here from kr_forward_start() until
 * finish() frees it; the client may disappear meanwhile (q->client NULL),
 * the request still completes so that pins and counts stay right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/log.h"
#include "kmsrelay/metrics.h"
#include "relay/proxy-internal.h"

static void attempt_cb(struct kr_attempt *a, void *arg);

#define PEND_BAD_KMS 0x80 /* pending[]: an answer whose KMS message is garbage */

static const char *pend_reason(uint8_t st)
{
    return st == PEND_BAD_KMS ? "bad KMS response" : kr_attempt_status_name(st);
}

/* A failure of the current attempt that may be the request's doing rather
 * than the host's: remembered, judged when the request ends. */
static void pend(struct kr_req *q, uint8_t st)
{
    if (q->next_try == 0 || q->next_try > KR_PLAN_MAX)
        return;
    if (!q->pending[q->next_try - 1])
        q->n_pending++;
    q->pending[q->next_try - 1] = st;
}

/* Another host answered: the remembered failures were the hosts'. */
static void blame_pending(struct kr_req *q)
{
    struct kr_relay *r = q->relay;
    for (size_t i = 0; i < KR_PLAN_MAX && q->n_pending; i++) {
        if (!q->pending[i])
            continue;
        int idx = route_host_index(r, q->plan_keys[i], NULL);
        if (idx >= 0 && !r->hosts[idx]->removed)
            kr_health_passive_failure(r->hosts[idx], pend_reason(q->pending[i]), q->kreq.cmid);
        q->pending[i] = 0;
        q->n_pending--;
    }
}

static bool is_pinned(const struct kr_req *q, const struct kr_host *h)
{
    return q->plan.have_pin && strcmp(q->pin.host, h->conf.name) == 0;
}

/* Budget left for the next attempt, in ms (0 = none). */
static uint64_t next_timeout_ms(const struct kr_req *q)
{
    uint64_t now = kr_now_us();
    if (now + 1000 > q->deadline_us)
        return 0;
    uint64_t left = (q->deadline_us - now) / 1000;
    uint64_t t = q->relay->conf->attempt_timeout_ms;
    return t && t < left ? t : left;
}

/* Updates the pin of the pair (CMID, application id) after an answer from
 * q->chosen_name (or, with none, a total refusal). Only this pair's pin is
 * touched. Returns the log word for what happened to the pin. */
static const char *pin_update(struct kr_req *q, uint32_t hresult)
{
    struct kr_relay *r = q->relay;
    struct kr_pin *p = &q->pin;
    int64_t now = kr_wall_s();
    const char *action = "kept";
    if (q->client_fault || (!q->chosen_name[0] && !q->plan.have_pin))
        return "none"; /* nobody answered for real: nothing to pin */
    if (q->plan.pin_unread)
        return "unknown"; /* the store is in trouble (alarm raised) */
    if (!q->plan.have_pin) {
        memset(p, 0, sizeof(*p));
        snprintf(p->host, sizeof(p->host), "%s", q->chosen_name);
        p->first_seen = now;
        action = "new";
        r->stats.pins_new++;
    } else if (q->chosen_name[0] && strcmp(p->host, q->chosen_name) != 0) {
        int pi = route_host_by_name(r, p->host);
        const struct kr_host *ph = pi >= 0 ? r->hosts[pi] : NULL;
        /* maint serves elsewhere without moving the pin; a pinned host that
         * refuses this pair's KMS id (it lacks the product key: the pair
         * belongs where it is served), is down, retired, gone or failed now
         * (or a failback) moves it. A failure of this request alone does not
         * move it while the checks say the pinned host is up (health.c marks
         * it DOWN when the requests of many clients fail there). */
        bool stay = ph && !ph->removed &&
                    ((q->pin_failed && ph->health == KR_HEALTH_UP &&
                      (ph->admin == KR_ADMIN_READY || ph->admin == KR_ADMIN_DRAIN)) ||
                     (!q->pin_failed && !q->pin_refused && ph->admin == KR_ADMIN_MAINT &&
                      !route_refuses(ph, q->kreq.kms_id, kr_now_us())));
        r->stats.failovers++;
        if (stay) {
            action = "elsewhere";
        } else {
            snprintf(p->host, sizeof(p->host), "%s", q->chosen_name);
            action = "moved";
            r->stats.pins_moved++;
        }
    }
    memcpy(p->cmid, q->kreq.cmid, 16);
    p->last_seen = now;
    memcpy(p->app_id, q->kreq.app_id, 16);
    memcpy(p->kms_id, q->kreq.kms_id, 16);
    memcpy(p->sku_id, q->kreq.sku_id, 16);
    memcpy(p->prev_cmid, q->kreq.prev_cmid, 16);
    kr_pin_note_name(p, q->kreq.workstation, now);
    p->is_vm = q->kreq.vm_info ? 1 : 0;
    p->license_status = (uint8_t)(q->kreq.license_status > 255 ? 255 : q->kreq.license_status);
    p->ver_major = q->kreq.ver_major;
    p->last_hresult = hresult;
    p->last_count = q->host_count;
    p->n_policy = q->kreq.n_policy;
    int64_t skew = kr_filetime_to_unix(q->kreq.request_time) - now;
    p->skew_s = (int32_t)(skew > INT32_MAX ? INT32_MAX : skew < INT32_MIN ? INT32_MIN : skew);
    p->activations++;
    if (r->store) {
        int rc = kr_store_pin_put(r->store, p);
        if (rc < 0)
            route_store_trouble(r, rc, "pin write");
    }
    return action;
}

static void log_activation(struct kr_req *q, uint32_t hresult, uint32_t fault, const char *pin)
{
    struct kr_relay *r = q->relay;
    if (!r->conf->log_activations)
        return;
    char cmid[KR_GUID_STRLEN], app[KR_GUID_STRLEN], ws[KR_PIN_WS_MAX * 2 + 8];
    char result[48], assist[KR_CONF_NAME_MAX + 8] = "";
    kr_guid_format(q->kreq.cmid, cmid);
    const char *an = kr_kms_app_name(q->kreq.app_id);
    if (an)
        kr_logfmt_value(an, app, sizeof(app));
    else
        kr_guid_format(q->kreq.app_id, app);
    kr_logfmt_value(q->kreq.workstation, ws, sizeof(ws));
    if (fault)
        snprintf(result, sizeof(result), "hresult=- fault=0x%08x", fault);
    else
        snprintf(result, sizeof(result), "hresult=0x%08x", hresult);
    if (q->assisted)
        snprintf(assist, sizeof(assist), " assist=%s", q->assist_name);
    kr_log_defer(KR_LOG_INFO, /* written with its batch: 32 lines or 10 ms */
                 "event=activation client=%s ws=%s cmid=%s app=%s ver=%u.%u host=%s retries=%u %s "
                 "count=%u latency_us=%llu%s pin=%s",
                 q->peer[0] ? q->peer : "-", ws, cmid, app, q->kreq.ver_major, q->kreq.ver_minor,
                 q->chosen_name[0] ? q->chosen_name : "-", q->retries, result, q->count,
                 (unsigned long long)(kr_now_us() - q->start_us), assist, pin);
}

/* Answers the client (if still there), records, frees the request. */
static void finish(struct kr_req *q, uint32_t hresult, const uint8_t *msg, size_t len,
                   uint32_t fault)
{
    struct kr_relay *r = q->relay;
    if (q->client)
        kr_front_reply(q, hresult, msg, len, fault);
    const char *pin = fault ? "none" : pin_update(q, hresult);
    if (!fault && hresult == KR_HR_OK)
        r->stats.activations_ok++;
    else
        r->stats.activations_failed++;
    log_activation(q, hresult, fault, pin);
    /* by the host whose answer the client got (the assist host's, if any) */
    kr_metrics_activation(q->assisted ? q->assist_name : q->chosen_name, q->kreq.app_id,
                          q->kreq.ver_major, hresult, fault, kr_now_us() - q->start_us);
    r->reqs_inflight--;
    kr_front_req_free(q);
}

/* Nobody answered: relay the last refusal, or fail over the client. */
static void finish_none(struct kr_req *q)
{
    if (q->n_pending >= 2 && !q->relay->stopping) {
        /* the same message made 2+ hosts fail and none answered it: it is
         * the message, not the hosts */
        uint64_t dropped = 0;
        q->client_fault = true;
        memset(q->pending, 0, sizeof(q->pending));
        q->n_pending = 0;
        if (front_log_allowed(&dropped)) {
            char cmid[KR_GUID_STRLEN];
            kr_guid_format(q->kreq.cmid, cmid);
            kr_log(KR_LOG_WARN,
                   "event=request_poison cmid=%s client=%s reason=\"failed on every host tried, "
                   "answered by none\" action=\"error 0x8007000D to the client; no host "
                   "blamed\" suppressed=%llu",
                   cmid, q->peer[0] ? q->peer : "-", (unsigned long long)dropped);
        }
        finish(q, KR_HR_INVALID_DATA, NULL, 0, 0);
        return;
    }
    blame_pending(q);
    if (q->last_refusal)
        finish(q, q->last_refusal, NULL, 0, 0);
    else
        finish(q, 0, NULL, 0, KR_RPC_S_SERVER_UNAVAILABLE);
}

/* The assist did not work out: the first host's answer stands. */
static void finish_held(struct kr_req *q)
{
    q->assisted = false;
    q->assist_name[0] = '\0';
    finish(q, KR_HR_OK, q->held, q->held_len, 0); /* read before q is freed */
}

static void next_attempt(struct kr_req *q)
{
    struct kr_relay *r = q->relay;
    while (q->next_try < q->plan.n) {
        size_t i = q->next_try++;
        int idx = q->plan.hosts[i];
        if ((size_t)idx >= r->n_hosts || r->hosts[idx]->hrw.key != q->plan_keys[i])
            idx = route_host_index(r, q->plan_keys[i], NULL); /* reloaded meanwhile */
        if (idx < 0 || r->hosts[idx]->removed)
            continue;
        uint64_t t = next_timeout_ms(q);
        if (t == 0)
            break;
        if (kr_backend_submit(r->hosts[idx], &q->att, q->msg, q->msg_len, t, attempt_cb, q) == 0)
            return;
    }
    finish_none(q);
}

void kr_forward_start(struct kr_req *q)
{
    struct kr_relay *r = q->relay;
    q->chosen = -1;
    if (!q->start_us)
        q->start_us = kr_now_us();
    q->deadline_us = q->start_us + r->conf->request_budget_ms * 1000;
    kr_route_plan(r, &q->kreq, &q->plan, &q->pin);
    for (size_t i = 0; i < q->plan.n; i++)
        q->plan_keys[i] = r->hosts[q->plan.hosts[i]]->hrw.key;
    next_attempt(q);
}

/* A "success" whose KMS message does not decode, or does not echo the
 * request's CMID and version, is garbage: every client would reject it, so
 * it is never passed on (nor pinned); the request moves on like after any
 * other garbage answer. Returns true when the answer was refused. */
static bool garbage_answer(struct kr_req *q, struct kr_host *h, const struct kr_attempt *a,
                           struct kr_kms_response *resp, bool *decoded)
{
    const char *why = NULL;
    *decoded = false;
    if (a->hresult != KR_HR_OK)
        return false; /* an error reply: the host's word, relayed as it is */
    if (!a->msg)
        why = "success without a KMS response";
    else if (kr_kms_response_decode(a->msg, a->msg_len, resp, &why) < 0)
        why = why ? why : "undecodable KMS response";
    else if (memcmp(resp->cmid, q->kreq.cmid, 16) != 0 || resp->ver_major != q->kreq.ver_major)
        why = "KMS response does not echo the request's CMID and version";
    if (!why) {
        *decoded = true;
        return false;
    }
    kr_log(KR_LOG_DEBUG, "event=attempt_failed host=%s status=garbage reason=\"%s\"", h->conf.name,
           why);
    h->stats.ok--; /* backend.c counted a response; it was not one */
    h->stats.errors++;
    pend(q, PEND_BAD_KMS);
    q->relay->stats.retries++;
    q->retries++;
    if (is_pinned(q, h))
        q->pin_failed = true;
    return true;
}

/* A real answer from the first host: maybe ask an established host too. */
static void answered(struct kr_req *q, struct kr_host *h, const struct kr_attempt *a)
{
    struct kr_relay *r = q->relay;
    struct kr_kms_response resp;
    bool decoded;
    if (garbage_answer(q, h, a, &resp, &decoded)) {
        next_attempt(q);
        return;
    }
    if (a->hresult == KR_HR_OK)
        kr_health_passive_success(h);
    blame_pending(q);
    snprintf(q->chosen_name, sizeof(q->chosen_name), "%s", h->conf.name);
    q->chosen = route_host_by_name(r, h->conf.name);
    if (decoded) {
        q->count = q->host_count = resp.count;
        kr_route_note_count(r, h, q->kreq.app_id, resp.count, q->kreq.n_policy);
    }
    if (decoded && r->conf->threshold_assist && resp.count < q->kreq.n_policy &&
        a->msg_len <= sizeof(q->held)) {
        int ai =
            kr_route_assist_host(r, q->chosen, q->kreq.app_id, q->kreq.n_policy, q->kreq.kms_id);
        uint64_t t = next_timeout_ms(q);
        if (ai >= 0 && t > 0) {
            memcpy(q->held, a->msg, a->msg_len);
            q->held_len = a->msg_len;
            q->assisted = true;
            snprintf(q->assist_name, sizeof(q->assist_name), "%s", r->hosts[ai]->conf.name);
            if (kr_backend_submit(r->hosts[ai], &q->att, q->msg, q->msg_len, t, attempt_cb, q) == 0)
                return;
            finish_held(q); /* the submit reset a->msg: answer from the copy */
            return;
        }
    }
    finish(q, a->hresult, a->msg, a->msg_len, 0);
}

/* The assist host's answer. */
static void assist_answered(struct kr_req *q, struct kr_host *h, const struct kr_attempt *a)
{
    struct kr_kms_response resp;
    if (a->hresult != KR_HR_OK || !a->msg ||
        kr_kms_response_decode(a->msg, a->msg_len, &resp, NULL) < 0 ||
        memcmp(resp.cmid, q->kreq.cmid, 16) != 0 || resp.ver_major != q->kreq.ver_major) {
        finish_held(q);
        return;
    }
    kr_route_note_count(q->relay, h, q->kreq.app_id, resp.count, q->kreq.n_policy);
    q->count = resp.count;
    q->relay->stats.assists++;
    finish(q, KR_HR_OK, a->msg, a->msg_len, 0);
}

static void attempt_cb(struct kr_attempt *a, void *arg)
{
    struct kr_req *q = arg;
    struct kr_relay *r = q->relay;
    struct kr_host *h = a->host;
    bool assisting = q->assisted;

    if (a->status == KR_ATT_OK) {
        if (assisting || a->hresult != KR_HR_OK)
            kr_health_passive_success(h); /* else answered() checks the message first */
        if (a->hresult == KR_HR_KMS_ID_MISMATCH) {
            h->stats.refusals++;
            kr_route_note_refusal(r, h, q->kreq.kms_id);
            if (assisting) {
                finish_held(q);
                return;
            }
            r->stats.reroutes_refused++;
            q->rerouted = true;
            q->last_refusal = a->hresult;
            if (is_pinned(q, h))
                q->pin_refused = true;
            next_attempt(q);
            return;
        }
        if (assisting)
            assist_answered(q, h, a);
        else
            answered(q, h, a);
        return;
    }
    if (a->status == KR_ATT_CANCELLED) {
        if (assisting)
            finish_held(q);
        else if (r->stopping)
            finish_none(q);
        else
            next_attempt(q); /* the host was removed: not its fault */
        return;
    }
    kr_log(KR_LOG_DEBUG, "event=attempt_failed host=%s status=%s latency_us=%llu assist=%d",
           h->conf.name, kr_attempt_status_name(a->status), (unsigned long long)a->latency_us,
           assisting);
    if (!h->removed && a->blame) {
        if (!assisting && (a->status == KR_ATT_CLOSED || a->status == KR_ATT_GARBAGE))
            pend(q, (uint8_t)a->status); /* maybe the message's doing */
        else
            kr_health_passive_failure(h, kr_attempt_status_name(a->status), q->kreq.cmid);
    }
    r->stats.retries++;
    q->retries++;
    if (assisting) {
        finish_held(q);
        return;
    }
    if (is_pinned(q, h))
        q->pin_failed = true;
    next_attempt(q);
}
