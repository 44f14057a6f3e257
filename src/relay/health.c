/*
 * health.c - is a backend host able to serve? An active check connects and
 * sends the same bind as the connection pool (ctx 0, KMS interface v1.0,
 * NDR32) and expects a bind_ack that accepts it, within check_timeout. A
 * check never sends a request, so it never inflates a host's count.
 *
 * State: UNKNOWN at start; `rise` consecutive successful checks make a host
 * UP, `fall` consecutive failed checks make it DOWN. A real answer resets
 * the checks' failure streak except when the checks' connects fail: a
 * host whose listener died while its pooled connections still answer goes
 * DOWN by its failing connects.
 *
 * Passive failures (real requests that failed on the host for a reason of
 * the host's: timeout, close, garbage, connect; reported by forward.c) are
 * counted per distinct client (CMID) since the host's last real answer,
 * within PFAIL_WINDOW_US. max(fall, 3) distinct clients make the host DOWN
 * whatever its bind checks say: a host that binds but never answers is
 * down. One client alone never does, so a client cannot take hosts down
 * with requests they choke on (forward.c does not even report a failure
 * that follows one request across two hosts). After a passive DOWN by
 * timeouts the checks alone do not make the host UP for the passive hold
 * (they pass on a hung host); a real answer, a failing check (then the
 * checks see the fault and are trusted with the recovery) or the end of
 * the hold do.
 * While a state is in question (UNKNOWN, a streak toward the other state
 * has begun, or passive failures are pending) checks run every
 * fast_interval instead of interval.
 *
 * Each state change is logged once, with the reason, which the control
 * API shows (h->health_reason):
 *   event=host_state host=kms-a from=UP to=DOWN admin=ready reason="..."
 *
 * Ownership: a check (struct hcheck) belongs to its host (h->check) and is
 * freed when it completes or by kr_health_stop(). Callbacks are deferred
 * (BEV_OPT_DEFER_CALLBACKS), so no callback runs inside a libevent call made
 * here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "kmsrelay/units.h"
#include "relay/relay.h"

#define CHECK_CALL_ID 1
#define CHECK_MAX_FRAG 5840
#define PFAIL_WINDOW_US (300ull * 1000000) /* older passive failures are forgotten */
#define PFAIL_MIN 3                        /* distinct clients, at least */
#define PASSIVE_HOLD_MIN_US (30ull * 1000000)

struct hcheck {
    struct kr_host *h;
    struct bufferevent *bev;
    struct event *timeout;
    uint64_t start_us;
    bool connected;
};

static const char *const health_names[] = {"UNKNOWN", "UP", "DOWN"};

const char *kr_health_name(int h)
{
    return h >= 0 && h <= 2 ? health_names[h] : "?";
}

static void schedule(struct kr_host *h);

/* The streak toward the other state has begun, or no state yet. */
static bool in_question(const struct kr_host *h)
{
    return h->health == KR_HEALTH_UNKNOWN || (h->health == KR_HEALTH_UP && h->fall_cnt > 0) ||
           (h->health == KR_HEALTH_UP && h->n_pfail > 0) ||
           (h->health == KR_HEALTH_DOWN && h->rise_cnt > 0);
}

void kr_health_set(struct kr_host *h, int health, const char *why)
{
    char reason[160];
    if (h->health == health)
        return;
    kr_log(health == KR_HEALTH_DOWN ? KR_LOG_WARN : KR_LOG_INFO,
           "event=host_state host=%s from=%s to=%s admin=%s reason=%s", h->conf.name,
           kr_health_name(h->health), kr_health_name(health), kr_admin_name(h->admin),
           kr_logfmt_value(why ? why : "", reason, sizeof(reason)));
    snprintf(h->health_reason, sizeof(h->health_reason), "%s", why ? why : "");
    h->health = (uint8_t)health;
}

static uint64_t passive_hold_us(const struct kr_conf *c)
{
    uint64_t hold = 3 * (uint64_t)c->check_interval_ms * 1000;
    return hold > PASSIVE_HOLD_MIN_US ? hold : PASSIVE_HOLD_MIN_US;
}

/* One active check's outcome through the rise/fall counters. */
static void outcome(struct kr_host *h, bool ok, const char *why)
{
    const struct kr_conf *c = h->relay->conf;
    if (ok) {
        h->rise_cnt++;
        h->fall_cnt = 0;
        if (h->passive_hold_us && kr_now_us() < h->passive_hold_us)
            return; /* binds work, requests did not: not UP on binds alone */
        h->passive_hold_us = 0;
        if (h->health != KR_HEALTH_UP && h->rise_cnt >= c->rise)
            kr_health_set(h, KR_HEALTH_UP, why);
    } else {
        h->fall_cnt++;
        h->rise_cnt = 0;
        h->passive_hold_us = 0; /* the checks see the fault: trust their recovery */
        if (h->health != KR_HEALTH_DOWN && h->fall_cnt >= c->fall)
            kr_health_set(h, KR_HEALTH_DOWN, why);
    }
}

static void check_free(struct hcheck *k)
{
    if (k->bev)
        bufferevent_free(k->bev);
    if (k->timeout)
        event_free(k->timeout);
    if (k->h->check == k)
        k->h->check = NULL;
    free(k);
}

static void finish(struct hcheck *k, bool ok, const char *why)
{
    struct kr_host *h = k->h;
    uint64_t now = kr_now_us();

    h->last_check_us = now;
    h->last_check_latency_us = (uint32_t)(now - k->start_us);
    snprintf(h->last_check_result, sizeof(h->last_check_result), "%s", why);
    if (ok)
        h->stats.checks_ok++;
    else
        h->stats.checks_failed++;
    kr_log(KR_LOG_DEBUG, "event=host_check host=%s ok=%d latency_us=%u result=\"%s\"", h->conf.name,
           ok, h->last_check_latency_us, h->last_check_result);
    check_free(k);
    outcome(h, ok, why);
    schedule(h);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct hcheck *k = arg;
    char d[KR_DURATION_STRLEN], why[64];
    kr_format_duration(k->h->relay->conf->check_timeout_ms, d, sizeof(d));
    snprintf(why, sizeof(why), "%s within %s", k->connected ? "no bind_ack" : "no connection", d);
    finish(k, false, why);
}

static void send_bind(struct hcheck *k)
{
    uint8_t pdu[128];
    size_t len = 0;
    if (kr_rpc_kms_bind_encode(CHECK_CALL_ID, CHECK_MAX_FRAG, false, pdu, sizeof(pdu), &len) != 0 ||
        bufferevent_write(k->bev, pdu, len) != 0)
        finish(k, false, "cannot send bind");
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct hcheck *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t avail = evbuffer_get_length(in);
    size_t n = avail < KR_RPC_FRAG_MAX ? avail : KR_RPC_FRAG_MAX;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
    struct kr_rpc_hdr hdr;
    struct kr_rpc_bind_ack ack;
    const char *why = NULL;
    char text[64];

    int flen = kr_rpc_frame(p, n, KR_RPC_FRAG_MAX, &hdr, &why);
    if (flen == KR_EMORE)
        return;
    if (flen < 0) {
        snprintf(text, sizeof(text), "bad answer to bind: %s", why ? why : "malformed");
        finish(k, false, text);
        return;
    }
    if (hdr.ptype == KR_PT_BIND_NAK) {
        finish(k, false, "bind_nak");
        return;
    }
    if (hdr.ptype != KR_PT_BIND_ACK || kr_rpc_bind_ack_decode(p, (size_t)flen, &ack, &why) != 0) {
        snprintf(text, sizeof(text), "%s instead of bind_ack", kr_rpc_ptype_name(hdr.ptype));
        finish(k, false, text);
        return;
    }
    if (kr_rpc_kms_bind_accepted(&ack) != KR_TS_NDR32) {
        snprintf(text, sizeof(text), "bind rejected (result %u reason %u)",
                 ack.n_results ? ack.results[0].result : 0,
                 ack.n_results ? ack.results[0].reason : 0);
        finish(k, false, text);
        return;
    }
    finish(k, true, "bind_ack ok");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hcheck *k = arg;
    char text[64];

    if (what & BEV_EVENT_CONNECTED) {
        k->connected = true;
        send_bind(k);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(text, sizeof(text), "%s: %s", k->connected ? "read" : "connect",
                 err ? strerror(err) : "failed");
        finish(k, false, text);
        return;
    }
    if (what & BEV_EVENT_EOF)
        finish(k, false, "closed before bind_ack");
}

static void start_check(struct kr_host *h)
{
    struct event_base *base = h->relay->base;
    struct hcheck *k = calloc(1, sizeof(*k));
    struct timeval tv;

    if (!k) {
        outcome(h, false, "out of memory");
        schedule(h);
        return;
    }
    k->h = h;
    k->start_us = kr_now_us();
    h->check = k;
    k->timeout = evtimer_new(base, on_timeout, k);
    k->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!k->timeout || !k->bev) {
        finish(k, false, "out of memory");
        return;
    }
    bufferevent_setcb(k->bev, on_read, NULL, on_event, k);
    bufferevent_enable(k->bev, EV_READ);
    tv.tv_sec = (time_t)(h->relay->conf->check_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(h->relay->conf->check_timeout_ms % 1000) * 1000;
    evtimer_add(k->timeout, &tv);
    if (bufferevent_socket_connect(k->bev, (struct sockaddr *)&h->conf.addr.ss,
                                   (int)h->conf.addr.len) != 0) {
        char text[64];
        snprintf(text, sizeof(text), "connect: %s", strerror(errno));
        finish(k, false, text);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct kr_host *h = arg;
    if (kr_host_unresolved(h)) { /* nowhere to connect (hostaddr.c) */
        schedule(h);
        return;
    }
    if (!h->check && !h->removed && !h->relay->stopping)
        start_check(h);
}

static void arm(struct kr_host *h, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (h->check_timer)
        evtimer_add(h->check_timer, &tv);
}

static void schedule(struct kr_host *h)
{
    const struct kr_conf *c = h->relay->conf;
    if (h->removed || h->relay->stopping)
        return;
    arm(h, in_question(h) ? c->check_fast_interval_ms : c->check_interval_ms);
}

void kr_health_start(struct kr_host *h)
{
    if (!h->check_timer)
        h->check_timer = evtimer_new(h->relay->base, on_timer, h);
    if (!h->check_timer) {
        kr_log(KR_LOG_ERR, "event=error what=\"cannot start health checks\" host=%s", h->conf.name);
        return;
    }
    if (!h->check)
        arm(h, 0); /* a fresh host is checked at once */
}

void kr_health_stop(struct kr_host *h)
{
    if (h->check)
        check_free(h->check);
    if (h->check_timer) {
        event_free(h->check_timer);
        h->check_timer = NULL;
    }
}

/* Remembers a failing client; returns how many distinct ones are known. */
static uint32_t pfail_note(struct kr_host *h, uint64_t client, uint64_t now)
{
    uint32_t w = 0, oldest = 0;
    bool seen = false;
    for (uint32_t i = 0; i < h->n_pfail; i++) {
        if (now - h->pfail_us[i] > PFAIL_WINDOW_US)
            continue; /* forgotten */
        h->pfail_client[w] = h->pfail_client[i];
        h->pfail_us[w] = h->pfail_us[i];
        if (h->pfail_client[w] == client) {
            h->pfail_us[w] = now;
            seen = true;
        }
        if (h->pfail_us[w] < h->pfail_us[oldest])
            oldest = w;
        w++;
    }
    h->n_pfail = w;
    if (!seen) {
        uint32_t at = w < KR_HOST_PFAIL ? h->n_pfail++ : oldest;
        h->pfail_client[at] = client;
        h->pfail_us[at] = now;
    }
    return h->n_pfail;
}

void kr_health_passive_failure(struct kr_host *h, const char *why, const uint8_t client[16])
{
    char text[96];
    uint64_t t_us = kr_now_us(), key = 0;
    const struct kr_conf *c = h->relay->conf;
    if (h->removed)
        return;
    for (int i = 0; i < 16; i++)
        key = (key << 8 | key >> 56) ^ client[i];
    uint32_t n = pfail_note(h, key, t_us);
    uint32_t need = c->fall > PFAIL_MIN ? c->fall : PFAIL_MIN;
    if (need > KR_HOST_PFAIL)
        need = KR_HOST_PFAIL;
    if (n >= need && h->health != KR_HEALTH_DOWN) {
        snprintf(text, sizeof(text), "request failed: %s (%u distinct clients)",
                 why ? why : "error", n);
        h->rise_cnt = 0;
        /* a host that times out while it binds is hung: its passing bind
         * checks prove nothing for a while. One that closes or answers
         * garbage shows it at once: the checks may bring it back. */
        if (why && strcmp(why, "timeout") == 0)
            h->passive_hold_us = t_us + passive_hold_us(c);
        kr_health_set(h, KR_HEALTH_DOWN, text);
    }
    /* Look again soon rather than at the next slow interval. */
    if (!h->check && h->check_timer && in_question(h)) {
        struct timeval left;
        uint64_t fast_ms = h->relay->conf->check_fast_interval_ms;
        if (!evtimer_pending(h->check_timer, &left))
            arm(h, fast_ms);
        else {
            struct timeval now;
            event_base_gettimeofday_cached(h->relay->base, &now);
            uint64_t due_ms = 0;
            if (timercmp(&left, &now, >)) {
                struct timeval d;
                timersub(&left, &now, &d);
                due_ms = (uint64_t)d.tv_sec * 1000 + (uint64_t)d.tv_usec / 1000;
            }
            if (due_ms > fast_ms)
                arm(h, fast_ms);
        }
    }
}

void kr_health_passive_success(struct kr_host *h)
{
    /* A real answer clears the passive failures and the hold, and a check
     * failure streak that a loaded machine may explain (a check timing
     * out while requests are answered). It does not clear a streak of
     * refused connects: a dead listener whose pooled connections still
     * answer must go DOWN. Nor does it make a host UP (only checks do
     * that, after `rise`). */
    h->n_pfail = 0;
    h->passive_hold_us = 0;
    if (h->health == KR_HEALTH_UP && strncmp(h->last_check_result, "connect", 7) != 0)
        h->fall_cnt = 0;
}
