/*
 * conn.c - one simulated client connection, as a libevent state machine:
 *
 *   connect + bind -> bind_ack [-> alter_context -> alter_context_resp]
 *   -> request -> response [-> request -> response ...] -> close
 *
 * The bind is queued right after connect() so it leaves with the handshake's
 * first write. call_ids follow Windows: 2 for the bind, the alter_context and
 * the first request, then +1 per request. Every outcome ends in exactly one
 * finish() call, which records it and hands the slot back to the scheduler.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "loadgen/run.h"

#define LG_FIRST_CALL_ID 2
#define FT_UNIX_EPOCH 116444736000000000ull /* FILETIME of 1970-01-01 */

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

int lg_slot_init(struct lg_run *run, struct lg_slot *s)
{
    memset(s, 0, sizeof(*s));
    s->run = run;
    s->timer = evtimer_new(run->base, timer_cb, s);
    return s->timer ? 0 : -1;
}

void lg_slot_deinit(struct lg_slot *s)
{
    lg_slot_close(s);
    if (s->timer)
        event_free(s->timer);
    s->timer = NULL;
}

void lg_slot_close(struct lg_slot *s)
{
    if (s->bev)
        bufferevent_free(s->bev);
    s->bev = NULL;
    s->state = LG_S_FREE;
    s->connected = 0;
    if (s->timer)
        evtimer_del(s->timer);
}

static void arm_timer(struct lg_slot *s)
{
    uint32_t ms = s->run->cfg->timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* Records the outcome of the slot's activation and hands the slot back. */
static void finish(struct lg_slot *s, const struct lg_answer *ans, enum lg_kind kind,
                   const char *why)
{
    struct lg_run *run = s->run;
    uint64_t now = kr_now_us();
    int answered = ans && ans->kind < 0;

    evtimer_del(s->timer);
    lg_results_record(run->res, lg_client_of(run, s->act), s->act, ans, kind, why,
                      now > s->t_lat0 ? now - s->t_lat0 : 0);
    if (answered)
        s->done++;
    int reusable = answered && s->done < run->cfg->per_conn;
    if (!reusable)
        lg_slot_close(s);
    lg_sched_done(run, s, reusable);
}

static uint64_t request_filetime(const struct lg_config *cfg, const struct lg_client *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ft = (int64_t)FT_UNIX_EPOCH + (int64_t)ts.tv_sec * 10000000 + ts.tv_nsec / 100;
    if (c->skewed)
        ft += cfg->skew_seconds * 10000000;
    return (uint64_t)ft;
}

/* Sends the slot's current activation as a request PDU. */
static void send_request(struct lg_slot *s)
{
    struct lg_run *run = s->run;
    const struct lg_config *cfg = run->cfg;
    const struct lg_client *c = &run->clients[lg_client_of(run, s->act)];
    enum kr_ndr ndr = KR_NDR32;
    uint16_t ctx = 0;
    size_t len;

    /* Windows: the first request of a connection is NDR32, later ones NDR64
     * when the host accepted it. */
    if (s->ctx.ndr64_ok && (s->mode == LG_NDR64 || (s->mode == LG_NDR_WIN8 && s->done > 0))) {
        ndr = KR_NDR64;
        ctx = 1;
    }
    uint64_t ft = request_filetime(cfg, c);
    uint64_t iv_seed = lg_rand(cfg->seed, LG_RS_IV, s->act);
    int rc = lg_pdu_request(cfg, c, ft, iv_seed, ndr, ctx, LG_FIRST_CALL_ID + s->done, run->tx,
                            sizeof(run->tx), &len, &s->ex);
    if (rc != 0) {
        /* Our own encoder failed: a bug, not a host problem; say so loudly. */
        fprintf(stderr, "kms-loadgen: cannot build a request: %s\n", kr_strerror(rc));
        abort();
    }
    s->state = LG_S_WAITING;
    /* With several requests per connection latency excludes connect and bind
     * (see --help); --rate always measures from the scheduled start. */
    if (cfg->per_conn > 1 && run->us_per_act == 0)
        s->t_lat0 = kr_now_us();
    bufferevent_write(s->bev, run->tx, len);
}

static void send_bind(struct lg_slot *s, int alter)
{
    size_t len;
    int rc = lg_pdu_bind(s->mode, alter, LG_FIRST_CALL_ID, s->run->tx, sizeof(s->run->tx), &len);
    if (rc != 0) {
        fprintf(stderr, "kms-loadgen: cannot build a bind: %s\n", kr_strerror(rc));
        abort();
    }
    s->state = alter ? LG_S_ALTERING : LG_S_BINDING;
    bufferevent_write(s->bev, s->run->tx, len);
}

void lg_slot_start(struct lg_slot *s, uint32_t act, uint64_t t_lat0)
{
    struct lg_run *run = s->run;
    const struct lg_config *cfg = run->cfg;
    const struct lg_client *c = &run->clients[lg_client_of(run, act)];
    const struct kr_addr *to = &cfg->targets[c->target];

    s->act = act;
    s->t_lat0 = t_lat0;
    s->target = c->target;
    s->done = 0;
    s->connected = 0;
    memset(&s->ctx, 0, sizeof(s->ctx));
    s->mode = cfg->ndr != LG_NDR_MIXED ? cfg->ndr
                                       : (enum lg_ndr_mode)(lg_rand(cfg->seed, LG_RS_NDR, act) % 3);
    run->st->connections++;
    arm_timer(s);

    int fd = socket(to->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        finish(s, NULL, LG_K_CONNECT, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* --source: the port is chosen at connect time, so a long run is not
     * limited by ports in TIME_WAIT towards other destinations */
    if (cfg->have_source)
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (cfg->have_source &&
        bind(fd, (const struct sockaddr *)&cfg->source.ss, cfg->source.len) != 0) {
        int e = errno;
        close(fd);
        finish(s, NULL, LG_K_CONNECT, strerror(e));
        return;
    }
    s->bev = bufferevent_socket_new(run->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        close(fd);
        finish(s, NULL, LG_K_CONNECT, "bufferevent_socket_new failed");
        return;
    }
    bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&to->ss, (int)to->len) != 0) {
        finish(s, NULL, LG_K_CONNECT, strerror(errno));
        return;
    }
    send_bind(s, 0);
}

void lg_slot_send(struct lg_slot *s, uint32_t act, uint64_t t_lat0)
{
    s->act = act;
    s->t_lat0 = t_lat0;
    arm_timer(s);
    send_request(s);
}

/* After the bind (or alter) answer: ask for NDR32 if the first request needs
 * it, else send the request. Returns 0 when the needed context is refused. */
static int after_bind(struct lg_slot *s, int was_alter)
{
    int need32 =
        s->mode == LG_NDR32 || s->mode == LG_NDR_WIN8 || (s->mode == LG_NDR64 && !s->ctx.ndr64_ok);
    if (need32 && !s->ctx.ndr32_ok) {
        if (was_alter || s->mode == LG_NDR32)
            return 0;
        send_bind(s, 1);
        return 1;
    }
    send_request(s);
    return 1;
}

static void handle_pdu(struct lg_slot *s, const uint8_t *pdu, size_t len)
{
    const char *why = NULL;

    switch (s->state) {
    case LG_S_BINDING:
    case LG_S_ALTERING: {
        int alter = s->state == LG_S_ALTERING;
        int k = lg_pdu_bind_ack(pdu, len, alter, lg_pdu_bind_items(s->mode, alter),
                                LG_FIRST_CALL_ID, &s->ctx, &why);
        if (k >= 0)
            finish(s, NULL, (enum lg_kind)k, why);
        else if (!after_bind(s, alter))
            finish(s, NULL, LG_K_BIND_REJECTED,
                   alter ? "NDR32 not accepted after alter_context"
                         : "the bind's transfer syntax was not accepted");
        break;
    }
    case LG_S_WAITING: {
        struct lg_answer ans;
        lg_pdu_answer(pdu, len, &s->ex, &ans);
        finish(s, &ans, LG_K_PROTOCOL, NULL);
        break;
    }
    default: /* unsolicited data on an idle connection: drop the connection */
        lg_slot_close(s);
        lg_sched_idle_lost(s->run, s);
        break;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct lg_slot *s = arg;
    struct lg_run *run = s->run;
    struct evbuffer *in = bufferevent_get_input(bev);

    /* Handling a PDU may close this connection and even open a new one on
     * the same slot, so the PDU is copied out and drained first, and the
     * loop stops as soon as the slot no longer holds this bufferevent. */
    while (s->bev == bev) {
        size_t have = evbuffer_get_length(in);
        size_t n = have < sizeof(run->rx) ? have : sizeof(run->rx);
        struct kr_rpc_hdr hdr;
        const char *why = NULL;
        if (n < KR_RPC_HDR_LEN)
            return;
        evbuffer_copyout(in, run->rx, n);
        int flen = kr_rpc_frame(run->rx, n, 0, &hdr, &why);
        if (flen == KR_EMORE && n < sizeof(run->rx))
            return;
        if (flen <= 0) {
            if (s->state == LG_S_IDLE) {
                lg_slot_close(s);
                lg_sched_idle_lost(run, s);
            } else {
                finish(s, NULL, LG_K_PROTOCOL, why ? why : "bad PDU framing");
            }
            return;
        }
        evbuffer_drain(in, (size_t)flen);
        handle_pdu(s, run->rx, (size_t)flen);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct lg_slot *s = arg;
    (void)bev;

    if (what & BEV_EVENT_CONNECTED) {
        s->connected = 1;
        return;
    }
    if (s->state == LG_S_IDLE) {
        lg_slot_close(s);
        lg_sched_idle_lost(s->run, s);
        return;
    }
    const char *why = "connection closed by the host";
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        why = e ? strerror(e) : "socket error";
    }
    finish(s, NULL, s->connected ? LG_K_CLOSED : LG_K_CONNECT, why);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lg_slot *s = arg;
    (void)fd;
    (void)what;
    if (s->state == LG_S_FREE || s->state == LG_S_IDLE)
        return;
    finish(s, NULL, LG_K_TIMEOUT,
           !s->connected              ? "no connection within the deadline"
           : s->state == LG_S_WAITING ? "no response within the deadline"
                                      : "no bind answer within the deadline");
}
