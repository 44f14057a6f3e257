/*
 * conn.c - one client connection of the stub host.
 *
 * Read loop: frame PDUs with kr_rpc_frame on the bufferevent's input (at
 * most KR_RPC_FRAG_MAX bytes are ever buffered: the read high watermark),
 * answer each one in order with stub_answer_pdu, and write the reply. A
 * framing or decoding error logs a protocol_error line and closes at once.
 *
 * One timer per connection does two jobs: while a reply is `pending`
 * (--delay-ms) it fires to send that reply, and input processing waits for
 * it so that replies keep their order; otherwise it is the idle timeout,
 * re-armed whenever input arrives. Hang mode reads and discards input.
 *
 * Closing after N answers flushes the output first (`closing`), with the
 * idle timer still armed in case the peer never reads; so does the peer's
 * EOF (`peer_eof`), after the input already received has been answered.
 *
 * Ownership: the host's list owns every connection; stub_conn_free unlinks
 * and frees it together with its bufferevent (BEV_OPT_CLOSE_ON_FREE closes
 * the socket) and timer. After a function below returns -1 the connection
 * is gone and must not be touched.
 */
#include "stubhost/stubhost.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "kmsrelay/err.h"
#include "stubhost/jlog.h"

static void conn_log(struct stub_conn *c, const char *event, const char *why)
{
    char ts[32];
    jlog_timestamp(ts);
    json_t *o = json_object();
    jlog_set_str(o, "event", event);
    jlog_set_str(o, "ts", ts);
    jlog_set_str(o, "peer", c->peer);
    jlog_set_str(o, "host", c->host->conf.name);
    jlog_set_str(o, "why", why);
    jlog_write(c->host->log, o);
}

static void arm_idle(struct stub_conn *c)
{
    unsigned s = c->host->conf.idle_timeout_s;
    if (s == 0 && (c->closing || c->peer_eof))
        s = 10; /* a closing connection whose peer never reads must still go */
    if (s == 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {(time_t)s, 0};
    evtimer_add(c->timer, &tv);
}

/* Frees the connection once it is closing (after --close-after answers, or
 * after the peer's EOF) and has nothing left to send. Returns -1 when freed. */
static int finish_if_done(struct stub_conn *c)
{
    if ((c->closing || c->peer_eof) && !c->pending &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        stub_conn_free(c);
        return -1;
    }
    return 0;
}

/* Queues a reply; returns -1 when the connection was freed. */
static int send_reply(struct stub_conn *c, const uint8_t *buf, size_t len, int is_answer)
{
    if (len && bufferevent_write(c->bev, buf, len) != 0) {
        stub_conn_free(c);
        return -1;
    }
    if (!is_answer)
        return 0;
    c->answered++;
    unsigned limit = c->host->conf.close_after;
    if (limit && c->answered >= limit) {
        c->closing = 1;
        bufferevent_disable(c->bev, EV_READ);
        if (finish_if_done(c) < 0)
            return -1;
        arm_idle(c);
    }
    return 0;
}

/* Answers every complete PDU in the input, in order. Returns -1 when the
 * connection was freed. */
static int conn_process(struct stub_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    uint8_t reply[STUB_REPLY_MAX];

    if (c->host->hang) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return 0;
    }
    while (!c->closing && !c->pending) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= STUB_OUTPUT_MAX)
            break; /* resumed from write_cb once the peer reads */
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            break;
        size_t n = len < KR_RPC_FRAG_MAX ? len : KR_RPC_FRAG_MAX;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        if (!p)
            break;
        struct kr_rpc_hdr hdr;
        const char *why = NULL;
        size_t reply_len = 0;
        int is_answer = 0;
        int flen = kr_rpc_frame(p, n, 0, &hdr, &why);
        if (flen == KR_EMORE)
            break;
        int rc = flen == 0 ? KR_EMALF : flen; /* 0 would never drain: treat as malformed */
        if (flen > 0)
            rc = stub_answer_pdu(c, p, (size_t)flen, &hdr, reply, &reply_len, &is_answer, &why);
        if (rc < 0) {
            conn_log(c, "protocol_error", why ? why : kr_strerror(rc));
            stub_conn_free(c);
            return -1;
        }
        evbuffer_drain(in, (size_t)flen);
        if (is_answer && c->host->conf.delay_ms) {
            memcpy(c->out, reply, reply_len);
            c->out_len = reply_len;
            c->pending = 1;
            unsigned ms = c->host->conf.delay_ms;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            evtimer_add(c->timer, &tv);
            break;
        }
        if (send_reply(c, reply, reply_len, is_answer) < 0)
            return -1;
    }
    return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stub_conn *c = arg;
    if (!c->pending) {
        stub_conn_free(c); /* idle */
        return;
    }
    c->pending = 0;
    if (!c->host->hang && send_reply(c, c->out, c->out_len, 1) < 0)
        return;
    arm_idle(c);
    if (conn_process(c) == 0)
        finish_if_done(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct stub_conn *c = arg;
    if (!c->pending && !c->closing)
        arm_idle(c);
    conn_process(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct stub_conn *c = arg;
    /* Input may have waited for the output to drain. */
    if (conn_process(c) == 0)
        finish_if_done(c);
}

/* A peer that half-closes after its last request still gets every answer
 * (delayed ones included) before we close. */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct stub_conn *c = arg;
    if (what & BEV_EVENT_ERROR) {
        stub_conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->peer_eof = 1;
        bufferevent_disable(bev, EV_READ);
        if (conn_process(c) == 0)
            finish_if_done(c);
    }
}

void stub_conn_accept(struct stub_listener *lst, int fd, const struct sockaddr *sa, int salen)
{
    struct stub_host *h = lst->host;
    struct stub_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->host = h;
    c->lst = lst;
    c->assoc_group = h->next_assoc++;
    kr_addr_format(sa, c->peer);
    c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(h->base, timer_cb, c);
    if (!c->bev || !c->timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->timer)
            event_free(c->timer);
        free(c);
        return;
    }
    int one = 1; /* replies are small and latency is what benchmarks measure */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bufferevent_setwatermark(c->bev, EV_READ, 0, KR_RPC_FRAG_MAX);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    arm_idle(c);
}

void stub_conn_free(struct stub_conn *c)
{
    if (!c)
        return;
    struct stub_host *h = c->host;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

void stub_conns_free_all(struct stub_host *h)
{
    while (h->conns)
        stub_conn_free(h->conns);
}
