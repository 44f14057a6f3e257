/*
 * backend.c - per-host pools of persistent connections to KMS hosts, each
 * opened with our own bind (one context: ctx 0, KMS interface v1.0, NDR32)
 * and carrying one request at a time.
 *
 * Connection states: CONNECTING -> BINDING -> READY (idle list) <-> BUSY
 * (carrying an attempt). Any failure frees the connection: hosts that close
 * after every response are normal, the next attempt simply opens a new one.
 * One timer per connection holds whichever deadline applies (connect+bind,
 * the attempt's, or the idle timeout); attempts that wait for a connection
 * share one timer per host. So an attempt allocates nothing.
 *
 * A reused connection may have been closed by the host a moment before we
 * wrote to it; when such a connection dies before any byte of the answer
 * came back the attempt is re-sent once on a fresh connection instead of
 * being reported (and counted against the host's health). A host seen to
 * close right after answering (vlmcsd -d, py-kms) gets no pooling for a
 * while: each attempt then has a connection of its own.
 *
 * I/O (issue 13): plain non-blocking sockets, one persistent level-
 * triggered read event per connection (also while idle, so that a host's
 * close or an unsolicited byte is seen at once), a PDU-sized input buffer
 * inside the connection, requests written with one send() (a write event
 * only when the socket would block). Desynchronisation is caught without a
 * system call of its own: bytes read after an answer, bytes on an idle
 * connection, and an answer whose call id is not the request's (each
 * request gets a new call id) all close the connection.
 *
 * Blame: a failure counts against the host's health (kr_attempt.blame)
 * unless the attempt never left our own queue (a busy pool is not the
 * host's fault) or it was one of several waiters failed by one connect.
 *
 * Callbacks: exactly one per submit, never from inside kr_backend_submit(),
 * always as the last thing the backend does with the attempt and the
 * connection (a callback may submit again, even the same kr_attempt).
 * Ownership: the host's lists own the connections; an attempt is borrowed
 * from submit until its callback.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/proxy-internal.h"

enum { BC_CONNECTING, BC_BINDING, BC_READY, BC_BUSY };

#define BIND_CALL_ID 1u
#define BC_MAX_FRAG 5840
/* A host that closes a connection within this time of answering on it is
 * taken to close after every answer: its connections are not pooled for a
 * while (then we try again, the host may have been reconfigured). */
#define BC_CLOSE_AFTER_ANSWER_US 1000000u
#define BC_NO_REUSE_US 60000000u

struct kr_bconn {
    struct kr_host *host;
    int fd;
    short io_what;                /* events io is registered for */
    struct event io;              /* read (persistent); write while connecting or blocked */
    struct event timer;           /* connect+bind, the attempt's deadline, or idle */
    struct kr_bconn *next, *prev; /* in host->idle or host->busy */
    struct kr_attempt *att;       /* BUSY: the attempt on the wire */
    struct kr_addr addr;          /* where it was opened: a reload may move the host */
    uint32_t call_id;             /* of the request on the wire */
    uint32_t served;              /* answers received */
    uint64_t answered_us;         /* when the last one arrived */
    uint8_t state;
    bool idle;      /* on host->idle (else host->busy) */
    bool got_bytes; /* some of the current answer arrived */
    bool doomed;    /* connect failed at once: the timer reports it */
    bool broken;    /* a send failed inside submit: the timer reports it */
    uint16_t in_len, out_off, out_len;
    uint8_t in[KR_RPC_FRAG_MAX];
    uint8_t out[KR_RPC_FRAG_MAX]; /* the unsent rest of one request or bind */
};

const char *kr_attempt_status_name(int st)
{
    static const char *names[] = {"ok", "connect", "timeout", "closed", "garbage", "cancelled"};
    return st >= 0 && st <= KR_ATT_CANCELLED ? names[st] : "?";
}

static void arm_at(struct event *ev, uint64_t at_us)
{
    uint64_t now = kr_now_us();
    uint64_t d = at_us > now ? at_us - now : 0;
    struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
    evtimer_add(ev, &tv);
}

static void list_del(struct kr_bconn *c)
{
    struct kr_bconn **head = c->idle ? &c->host->idle : &c->host->busy;
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void list_add(struct kr_bconn *c, bool idle)
{
    struct kr_bconn **head = idle ? &c->host->idle : &c->host->busy;
    c->idle = idle;
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void conn_free(struct kr_bconn *c)
{
    list_del(c);
    c->host->n_conns--;
    if (c->att)
        c->att->conn = NULL;
    if (c->io_what)
        event_del(&c->io);
    event_del(&c->timer);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void io_cb(evutil_socket_t fd, short what, void *arg);

static void io_want(struct kr_bconn *c, short what)
{
    relay_io_want(c->host->relay->base, &c->io, &c->io_what, c->fd, what, io_cb, c);
}

/* Writes a PDU now; what would block waits in c->out for the write event.
 * Returns false when the connection is broken (nothing called back). */
static bool conn_write(struct kr_bconn *c, const uint8_t *p, size_t n)
{
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n)
        return true;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    size_t done = w > 0 ? (size_t)w : 0;
    memcpy(c->out, p + done, n - done); /* n <= KR_RPC_FRAG_MAX, one PDU at a time */
    c->out_off = 0;
    c->out_len = (uint16_t)(n - done);
    io_want(c, EV_READ | EV_WRITE);
    return true;
}

/* Drops the first n input bytes (the PDU just handled). */
static void consume(struct kr_bconn *c, size_t n)
{
    if (n > c->in_len)
        n = c->in_len;
    c->in_len = (uint16_t)(c->in_len - n);
    if (c->in_len)
        memmove(c->in, c->in + n, c->in_len);
}

/* Whom a failure is held against (see kr_attempt.blame). */
enum { BLAME_HOST, BLAME_FIRST, BLAME_NONE };

/* Reports an attempt's outcome; the backend is done with it afterwards. */
static void complete_blame(struct kr_attempt *a, int status, uint32_t hresult, const uint8_t *msg,
                           size_t len, bool blame)
{
    a->status = status;
    a->hresult = hresult;
    a->msg = msg;
    a->msg_len = len;
    a->conn = NULL;
    a->waiting = 0;
    a->latency_us = kr_now_us() - a->start_us;
    /* a wait for one of our own busy connections says nothing of the host */
    a->blame = blame && status != KR_ATT_OK && status != KR_ATT_CANCELLED &&
               (a->sent || status != KR_ATT_TIMEOUT);
    if (status == KR_ATT_OK)
        a->host->stats.ok++;
    else if (status != KR_ATT_CANCELLED)
        a->host->stats.errors++;
    a->cb(a, a->arg);
}

static void complete(struct kr_attempt *a, int status, uint32_t hresult, const uint8_t *msg,
                     size_t len)
{
    complete_blame(a, status, hresult, msg, len, true);
}

/* ---- the wait queue ------------------------------------------------------ */

static void wait_timer_cb(evutil_socket_t fd, short what, void *arg);

static void wait_arm(struct kr_host *h, uint64_t at)
{
    if (h->wait_timer_us && h->wait_timer_us <= at)
        return;
    if (!h->wait_timer) {
        h->wait_timer = evtimer_new(h->relay->base, wait_timer_cb, h);
        if (!h->wait_timer)
            return; /* the connections' own deadlines still bound the wait */
    }
    h->wait_timer_us = at;
    arm_at(h->wait_timer, at);
}

static void wait_push(struct kr_host *h, struct kr_attempt *a, bool front)
{
    a->waiting = 1;
    a->next = NULL;
    if (front) {
        a->next = h->wait_head;
        h->wait_head = a;
        if (!h->wait_tail)
            h->wait_tail = a;
    } else {
        if (h->wait_tail)
            h->wait_tail->next = a;
        else
            h->wait_head = a;
        h->wait_tail = a;
    }
    h->n_waiting++;
    wait_arm(h, a->deadline_us);
}

static void wait_remove(struct kr_host *h, struct kr_attempt *a)
{
    struct kr_attempt **pp = &h->wait_head, *prev = NULL;
    while (*pp && *pp != a) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = a->next;
    if (h->wait_tail == a)
        h->wait_tail = prev;
    a->next = NULL;
    a->waiting = 0;
    h->n_waiting--;
}

/* Takes every waiting attempt (or only the expired ones) out of the queue
 * into a private list, so callbacks can run while the queue changes. */
static struct kr_attempt *wait_take(struct kr_host *h, bool only_expired, uint64_t now)
{
    struct kr_attempt *out = NULL, **tail = &out;
    uint64_t next_at = 0;
    for (struct kr_attempt *a = h->wait_head, *n; a; a = n) {
        n = a->next;
        if (only_expired && a->deadline_us > now) {
            if (!next_at || a->deadline_us < next_at)
                next_at = a->deadline_us;
            continue;
        }
        wait_remove(h, a);
        *tail = a;
        tail = &a->next;
    }
    h->wait_timer_us = 0;
    if (h->wait_timer)
        evtimer_del(h->wait_timer);
    if (next_at)
        wait_arm(h, next_at);
    return out;
}

/* Fails a private list of attempts. BLAME_FIRST: they all failed for one
 * reason (a connect), which counts once against the host. */
static void fail_list(struct kr_attempt *a, int status, int blame)
{
    for (bool first = true; a; first = false) {
        struct kr_attempt *n = a->next;
        a->next = NULL;
        complete_blame(a, status, 0, NULL, 0,
                       blame == BLAME_HOST || (blame == BLAME_FIRST && first));
        a = n;
    }
}

static void wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kr_host *h = arg;
    fail_list(wait_take(h, true, kr_now_us()), KR_ATT_TIMEOUT, BLAME_HOST);
}

/* ---- connections ---------------------------------------------------------- */

static bool conn_unclean(struct kr_bconn *c, const char *why)
{
    uint64_t dropped = 0;
    if (front_log_allowed(&dropped))
        kr_log(KR_LOG_WARN,
               "event=backend_desync host=%s reason=\"%s\" action=closed suppressed=%llu",
               c->host->conf.name, why, (unsigned long long)dropped);
    return false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_fail_open(struct kr_bconn *c, const char *why);

static int conn_open(struct kr_host *h)
{
    struct kr_relay *r = h->relay;
    struct kr_bconn *c = malloc(sizeof(*c));
    if (!c)
        return KR_ENOMEM;
    memset(c, 0, offsetof(struct kr_bconn, in));
    c->host = h;
    c->addr = h->conf.addr;
    c->fd = socket(c->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || evtimer_assign(&c->timer, r->base, timer_cb, c) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return KR_ENOMEM;
    }
    int one = 1; /* one small PDU each way: latency is all that matters */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = BC_CONNECTING;
    list_add(c, false);
    h->n_conns++;
    if (connect(c->fd, (struct sockaddr *)&c->addr.ss, c->addr.len) == 0 || errno == EINPROGRESS)
        io_want(c, EV_WRITE); /* writable = connected (or failed: SO_ERROR says) */
    else
        c->doomed = true; /* reported from the timer: never call back from submit */
    arm_at(&c->timer, kr_now_us() + (c->doomed ? 0 : r->conf->connect_timeout_ms * 1000));
    return 0;
}

/* Opens connections for waiting attempts, up to the pool size. */
static void pool_fill(struct kr_host *h)
{
    struct kr_relay *r = h->relay;
    uint32_t pool = r->conf->pool_size ? r->conf->pool_size : 1;
    if (h->removed || r->stopping)
        return;
    uint32_t opening = 0;
    for (struct kr_bconn *c = h->busy; c; c = c->next)
        opening += c->state == BC_CONNECTING || c->state == BC_BINDING;
    while (h->n_conns < pool && h->n_waiting > opening && conn_open(h) == 0)
        opening++;
}

/* A connection may carry the next request only when nothing is pending
 * in our buffer: a byte we did not ask for (an extra reply, a late one)
 * would otherwise be read as the next client's answer. Bytes that arrive
 * on an idle connection, and its close, are seen by its read event. */
static bool conn_clean(struct kr_bconn *c)
{
    if (c->in_len != 0)
        return conn_unclean(c, "unexpected bytes after an answer");
    return !c->broken;
}

static void conn_send(struct kr_bconn *c, struct kr_attempt *a)
{
    uint8_t stub[KR_NDR_MSG_MAX + 16], pdu[KR_RPC_FRAG_MAX];
    size_t stub_len = 0, pdu_len = 0;
    struct kr_rpc_request rq;
    memset(&rq, 0, sizeof(rq));
    c->call_id = c->call_id < 2 ? 2 : c->call_id + 1;
    rq.hdr.ptype = KR_PT_REQUEST;
    rq.hdr.call_id = c->call_id;
    rq.stub = stub;
    kr_ndr_req_encode(KR_NDR32, a->req_msg, a->req_len, stub, sizeof(stub), &stub_len);
    rq.stub_len = stub_len;
    rq.alloc_hint = (uint32_t)stub_len;
    kr_rpc_request_encode(&rq, pdu, sizeof(pdu), &pdu_len); /* sizes checked in submit */

    if (c->idle) {
        list_del(c);
        list_add(c, false);
    }
    c->state = BC_BUSY;
    c->att = a;
    c->got_bytes = false;
    a->conn = c;
    a->waiting = 0;
    a->sent = 1;
    if (!conn_write(c, pdu, pdu_len)) {
        c->broken = true; /* reported from the timer: never call back from submit */
        arm_at(&c->timer, 0);
        return;
    }
    arm_at(&c->timer, a->deadline_us);
}

/* The connection is free for the next attempt: the oldest waiter that is
 * still in time, or the idle list. */
static void conn_ready(struct kr_bconn *c)
{
    struct kr_host *h = c->host;
    uint64_t now = kr_now_us();
    if (h->removed || h->relay->stopping || memcmp(&c->addr, &h->conf.addr, sizeof(c->addr)) ||
        (c->served && now < h->reuse_after_us)) {
        conn_free(c);
        pool_fill(h);
        return;
    }
    for (struct kr_attempt *a = h->wait_head; a; a = a->next) {
        /* an attempt re-sent after a stale connection waits for a new one */
        if (a->deadline_us > now && !(a->fresh_retry && c->served)) {
            wait_remove(h, a);
            conn_send(c, a);
            return;
        }
    }
    c->state = BC_READY;
    c->att = NULL;
    list_del(c);
    list_add(c, true);
    arm_at(&c->timer, now + h->relay->conf->backend_idle_ms * 1000);
}

static void send_bind(struct kr_bconn *c)
{
    uint8_t pdu[128];
    size_t len = 0;
    kr_rpc_kms_bind_encode(BIND_CALL_ID, BC_MAX_FRAG, false, pdu, sizeof(pdu), &len);
    c->state = BC_BINDING;
    io_want(c, EV_READ);
    if (!conn_write(c, pdu, len))
        conn_fail_open(c, "closed during bind");
}

/* A connection without an attempt failed (connect, bind): it fails one
 * waiter, or all of them when no other connection could serve them. */
static void conn_fail_open(struct kr_bconn *c, const char *why)
{
    struct kr_host *h = c->host;
    kr_log(KR_LOG_DEBUG, "event=backend_connect host=%s result=failed reason=\"%s\"", h->conf.name,
           why);
    conn_free(c);
    if (!h->wait_head)
        return;
    if (h->n_conns == 0) {
        fail_list(wait_take(h, false, 0), KR_ATT_CONNECT, BLAME_FIRST);
    } else {
        struct kr_attempt *a = h->wait_head;
        wait_remove(h, a);
        complete(a, KR_ATT_CONNECT, 0, NULL, 0);
    }
}

/* The connection carrying an attempt failed. */
static void conn_fail_busy(struct kr_bconn *c, int status)
{
    struct kr_host *h = c->host;
    struct kr_attempt *a = c->att;
    bool reused = c->served > 0 && !c->got_bytes;
    c->att = NULL;
    conn_free(c);
    if (status == KR_ATT_CLOSED && reused && !a->fresh_retry && a->deadline_us > kr_now_us() &&
        !h->removed && !h->relay->stopping) {
        /* most likely the host closed this idle connection just before we
         * used it: try once more on a new connection */
        h->reuse_after_us = kr_now_us() + BC_NO_REUSE_US;
        a->fresh_retry = 1;
        wait_push(h, a, true);
        if (conn_open(h) == 0) {
            pool_fill(h);
            return;
        }
        wait_remove(h, a);
    }
    complete(a, status, 0, NULL, 0);
    pool_fill(h); /* the waiters behind it need a connection */
}

static void on_bind_ack(struct kr_bconn *c, const uint8_t *p, size_t len)
{
    struct kr_rpc_bind_ack ack;
    if (kr_rpc_bind_ack_decode(p, len, &ack, NULL) < 0 ||
        kr_rpc_kms_bind_accepted(&ack) != KR_TS_NDR32) {
        conn_fail_open(c, "bind rejected");
        return;
    }
    consume(c, len);
    if (!conn_clean(c)) {
        conn_fail_open(c, "unexpected bytes after the bind_ack");
        return;
    }
    conn_ready(c);
}

static void on_response(struct kr_bconn *c, const uint8_t *p, size_t len)
{
    struct kr_rpc_response rs;
    struct kr_ndr_resp nr;
    uint8_t copy[KR_NDR_MSG_MAX];
    struct kr_attempt *a = c->att;
    if (kr_rpc_response_decode(p, len, &rs, NULL) < 0 || rs.hdr.call_id != c->call_id ||
        kr_ndr_resp_decode(KR_NDR32, rs.stub, rs.stub_len, &nr, NULL) < 0) {
        conn_fail_busy(c, KR_ATT_GARBAGE);
        return;
    }
    /* copy out, so that the callback may reuse or free the connection */
    size_t mlen = nr.msg ? nr.msg_len : 0;
    if (mlen)
        memcpy(copy, nr.msg, mlen);
    uint32_t hr = nr.hresult;
    consume(c, len);
    c->served++;
    c->answered_us = kr_now_us();
    c->att = NULL;
    a->conn = NULL;
    if (conn_clean(c)) {
        conn_ready(c);
    } else {
        struct kr_host *h = c->host;
        conn_free(c);
        pool_fill(h);
    }
    complete(a, KR_ATT_OK, hr, mlen ? copy : NULL, mlen);
}

/* Handles what the input holds (at most one PDU is ever expected). */
static void on_input(struct kr_bconn *c)
{
    size_t len = c->in_len;
    if (len == 0)
        return;
    if (c->state == BC_BUSY)
        c->got_bytes = true;
    const uint8_t *p = c->in;
    struct kr_rpc_hdr hdr;
    int flen = kr_rpc_frame(p, len, 0, &hdr, NULL);
    if (flen == KR_EMORE && len < sizeof(c->in))
        return;
    if (c->state == BC_BINDING) {
        if (flen > 0 && hdr.ptype == KR_PT_BIND_ACK)
            on_bind_ack(c, p, (size_t)flen);
        else
            conn_fail_open(c, flen > 0 ? "bind not acknowledged" : "garbage instead of bind_ack");
    } else if (c->state == BC_BUSY) {
        if (flen > 0 && hdr.ptype == KR_PT_RESPONSE)
            on_response(c, p, (size_t)flen);
        else
            conn_fail_busy(c, KR_ATT_GARBAGE); /* a fault, or bytes that never frame */
    } else {
        conn_unclean(c, "unexpected bytes on an idle connection");
        conn_free(c); /* bytes nobody asked for */
    }
}

/* An idle connection the host closed: normal. Right after an answer it
 * means the host closes after every answer: stop pooling its connections. */
static void idle_closed(struct kr_bconn *c)
{
    uint64_t now = kr_now_us();
    if (c->served && now - c->answered_us < BC_CLOSE_AFTER_ANSWER_US)
        c->host->reuse_after_us = now + BC_NO_REUSE_US;
    conn_free(c);
}

/* The host closed the connection, or it failed. */
static void conn_gone(struct kr_bconn *c)
{
    if (c->state == BC_CONNECTING || c->state == BC_BINDING)
        conn_fail_open(c, c->state == BC_CONNECTING ? "connect failed" : "closed during bind");
    else if (c->state == BC_BUSY)
        conn_fail_busy(c, KR_ATT_CLOSED);
    else
        idle_closed(c);
}

/* Connecting: writable means connected, or failed (SO_ERROR says). */
static void on_connected(struct kr_bconn *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
        conn_gone(c);
        return;
    }
    send_bind(c);
}

static void on_writable(struct kr_bconn *c)
{
    if (relay_send_pending(c->fd, c->out, &c->out_off, &c->out_len) != 0) {
        conn_gone(c);
        return;
    }
    if (!c->out_len)
        io_want(c, EV_READ);
}

/* One read per readiness (level-triggered: the loop comes back for more). */
static void on_readable(struct kr_bconn *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
    if (n > 0) {
        c->in_len = (uint16_t)(c->in_len + n);
        on_input(c);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_gone(c);
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kr_bconn *c = arg;
    if (c->state == BC_CONNECTING) {
        on_connected(c);
        return;
    }
    if (what & EV_WRITE) {
        if (c->out_len) {
            on_writable(c);
            return; /* c may be gone; a pending read fires again */
        }
        io_want(c, EV_READ);
    }
    if (what & EV_READ)
        on_readable(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kr_bconn *c = arg;
    if (c->broken && c->state == BC_BUSY)
        conn_fail_busy(c, KR_ATT_CLOSED); /* the send in submit failed */
    else if (c->state == BC_CONNECTING || c->state == BC_BINDING)
        conn_fail_open(c, c->doomed ? "connect refused" : "connect timeout");
    else if (c->state == BC_BUSY)
        conn_fail_busy(c, KR_ATT_TIMEOUT);
    else
        conn_free(c); /* idle timeout */
}

/* ---- the API ------------------------------------------------------------- */

int kr_backend_submit(struct kr_host *h, struct kr_attempt *a, const uint8_t *msg, size_t len,
                      uint64_t timeout_ms, kr_attempt_cb cb, void *arg)
{
    if (len == 0 || len > KR_NDR_MSG_MAX)
        return KR_EINVAL;
    uint64_t now = kr_now_us();
    a->host = h;
    a->cb = cb;
    a->arg = arg;
    a->req_msg = msg;
    a->req_len = len;
    a->start_us = now;
    a->deadline_us = now + timeout_ms * 1000;
    a->conn = NULL;
    a->next = NULL;
    a->fresh_retry = 0;
    a->waiting = 0;
    a->sent = 0;
    a->status = KR_ATT_OK;
    a->hresult = 0;
    a->msg = NULL;
    a->msg_len = 0;
    a->latency_us = 0;
    h->stats.requests++;
    while (h->idle) {
        struct kr_bconn *c = h->idle;
        if (conn_clean(c)) {
            conn_send(c, a);
            return 0;
        }
        conn_free(c);
    }
    wait_push(h, a, false);
    pool_fill(h);
    if (h->n_conns == 0 && !h->removed && !h->relay->stopping) {
        wait_remove(h, a); /* no connection could be opened: out of memory */
        h->stats.requests--;
        return KR_ENOMEM;
    }
    return 0;
}

void kr_backend_cancel(struct kr_attempt *a)
{
    if (a->waiting) {
        wait_remove(a->host, a);
    } else if (a->conn) {
        struct kr_bconn *c = a->conn;
        c->att = NULL;
        conn_free(c); /* its answer would come back to nobody */
    } else {
        return; /* not submitted, or already reported */
    }
    complete(a, KR_ATT_CANCELLED, 0, NULL, 0);
}

void kr_backend_close_host(struct kr_host *h)
{
    while (h->idle)
        conn_free(h->idle);
    fail_list(wait_take(h, false, 0), h->relay->stopping ? KR_ATT_CANCELLED : KR_ATT_CONNECT,
              BLAME_NONE); /* removed or moved: not the host's fault */
}

void kr_backend_abort_host(struct kr_host *h)
{
    /* bounded: callbacks should not submit again while stopping, but a
     * misbehaving one must not make this loop forever */
    for (int round = 0; round < 64 && (h->idle || h->busy || h->wait_head); round++) {
        fail_list(wait_take(h, false, 0), KR_ATT_CANCELLED, BLAME_NONE);
        while (h->idle)
            conn_free(h->idle);
        while (h->busy) {
            struct kr_bconn *c = h->busy;
            struct kr_attempt *a = c->att;
            c->att = NULL;
            conn_free(c);
            if (a)
                complete(a, KR_ATT_CANCELLED, 0, NULL, 0);
        }
    }
    if (h->wait_timer)
        event_free(h->wait_timer);
    h->wait_timer = NULL;
    h->wait_timer_us = 0;
}
