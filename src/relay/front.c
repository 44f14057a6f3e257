/*
 * front.c - client sessions: kmsrelayd is the RPC server the KMS client
 * talks to. It answers bind and alter_context itself (as a Windows 8+ host:
 * NDR64 preferred, NDR32 refused next to it, BTFN acknowledged, sec_addr =
 * the listening port), turns each request into a kr_req routed on its own
 * CMID, and writes each answer in the client's syntax, call id and ctx id.
 *
 * Requests on one connection are handled one at a time, in order, so the
 * answers come back in request order; input waits in the socket meanwhile
 * (the session's input buffer bounds what is read ahead).
 *
 * I/O (issue 13: the system-call floor): a plain non-blocking socket with
 * one persistent, level-triggered read event and a fixed input buffer
 * sized for a KMS PDU inside the session (a PDU larger than that, legal
 * but never sent by Windows, borrows a KR_RPC_FRAG_MAX buffer until it is
 * consumed). One read() per readiness, no FIONREAD; an answer is written
 * at once with send(), and only when the socket would block is the rest
 * kept (an output buffer allocated then) and a write event armed. Level-
 * rather than edge-triggered: edge-triggered would need a read until
 * EAGAIN on every readiness, one more system call per PDU, while the
 * interest set never changes on the normal path (read on, write off), so
 * level-triggering costs no epoll_ctl (measured with EV_ET and one read per
 * edge: the same calls and CPU per activation, and level-triggering needs
 * no special case when the buffer fills). TCP_NODELAY comes from the listener
 * (Linux copies it to accepted sockets). Sessions and requests come from
 * per-relay free lists: nothing is allocated per request.
 *
 * Two system calls are saved per activation on top of that. The first read
 * happens right after accept(): a client sends its bind as soon as it is
 * connected, so it is nearly always there and the loop need not come back
 * for it (when it is not, the read finds EAGAIN and the event waits as
 * usual). And the read event also asks for EV_CLOSED (EPOLLRDHUP): once a
 * request has been answered and nothing is pending either way, the client's
 * FIN ends the session without the read() that would only return 0 (Windows
 * closes right after reading its answer). The price: a client that sends
 * one more PDU and its FIN together after an answer is closed without that
 * PDU being read; a half-closed client that is still owed an answer, or has
 * input buffered, is served as before.
 *
 * Bad input: a PDU that does not frame or decode closes the session (after
 * flushing earlier answers); a request on an unknown context, with another
 * opnum, an undecodable stub, or over the rate limit gets a fault and the
 * session stays; a KMS message that does not decode gets the error reply
 * 0x8007000D a real host would send. Nothing malformed is ever forwarded.
 *
 * Teardown is deferred: session_close() frees the socket at once but the
 * struct only from its own event, so no caller up the stack ever touches
 * freed memory. A request in flight is detached (q->client = NULL) and
 * finishes on its own.
 */
#include <errno.h>
#include <netinet/in.h>
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

#define FRONT_OUT_MAX 8192 /* stop reading while this much output waits */
#define FRONT_OUT_CAP (FRONT_OUT_MAX + 2 * KR_RPC_FRAG_MAX) /* room of the output buffer */
#define FRONT_FLUSH_MS 5000 /* closing sessions wait this long for a flush */
/* Input buffer inside the session: a Windows bind is 164 bytes, a V6
 * request 300; anything larger (up to KR_RPC_FRAG_MAX) borrows a buffer. */
#define FRONT_IN 768
#define FRONT_POOL_MAX 1024 /* free sessions / requests kept for reuse */

struct front_ctx {
    uint16_t id;
    uint8_t ndr; /* KR_NDR32 / KR_NDR64 */
};

struct kr_client {
    struct kr_relay *relay;
    struct kr_client *next, *prev; /* relay->clients, dead ones included; free list */
    int fd;                        /* -1 once closed */
    short io_what;                 /* events io is registered for, 0 = none */
    struct event io;               /* read (persistent), write only while blocked */
    struct event tmo;              /* timeouts and deferred work */
    struct kr_req *cur;            /* the request in flight */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    uint64_t last_rx_us;   /* idle timeout base */
    uint64_t pdu_start_us; /* first byte of an incomplete PDU, 0 if none */
    uint64_t armed_at_us;  /* when tmo fires, 0 = not armed */
    uint64_t close_at_us;  /* closing: give up flushing at */
    uint8_t *big;          /* NULL, or a KR_RPC_FRAG_MAX input buffer */
    uint8_t *out;          /* NULL, or FRONT_OUT_CAP bytes of unsent output */
    uint16_t in_len;       /* bytes in the input buffer */
    uint16_t out_off, out_len;
    uint8_t src_key[16]; /* limits.c's source key, from admission */
    uint32_t assoc_group;
    uint16_t listen_port;
    uint8_t n_ctx;
    bool eof, closing, dead, resume;
    bool answered; /* a request of this session has been answered */
    struct front_ctx ctx[KR_RPC_MAX_CTX];
    uint8_t in[FRONT_IN];
};

static uint32_t next_assoc_group;

bool front_log_allowed(uint64_t *suppressed)
{
    static struct kr_log_bucket bucket;
    return kr_log_allowed(&bucket, suppressed);
}

static void peer_text(const struct kr_client *c, char out[KR_ADDRSTRLEN])
{
    kr_addr_format(&c->peer.sa, out);
}

/* ---- lifetime ------------------------------------------------------------ */

static void io_cb(evutil_socket_t fd, short what, void *arg);

/* Changes happen only off the normal path (output blocked, input full, EOF). */
static void io_want(struct kr_client *c, short what)
{
    if ((what & EV_READ) && c->relay->early_close)
        what |= EV_CLOSED;
    relay_io_want(c->relay->base, &c->io, &c->io_what, c->fd, what, io_cb, c);
}

static void arm_at(struct kr_client *c, uint64_t at)
{
    if (c->armed_at_us && c->armed_at_us <= at)
        return; /* fires earlier; the callback re-checks and re-arms */
    uint64_t now = kr_now_us(), d = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
    c->armed_at_us = at;
    evtimer_add(&c->tmo, &tv);
}

static void arm_timer(struct kr_client *c)
{
    const struct kr_conf *cf = c->relay->conf;
    if (c->dead)
        return;
    if (c->closing)
        arm_at(c, c->close_at_us);
    else if (c->cur)
        return; /* the request budget bounds this wait */
    else if (c->pdu_start_us && cf->client_header_ms)
        arm_at(c, c->pdu_start_us + cf->client_header_ms * 1000);
    else if (cf->client_idle_ms)
        arm_at(c, c->last_rx_us + cf->client_idle_ms * 1000);
}

/* Closes the socket and drops the buffers; the struct stays. */
static void session_release_io(struct kr_client *c)
{
    if (c->fd >= 0) {
        if (c->io_what)
            event_del(&c->io);
        c->io_what = 0;
        close(c->fd);
        c->fd = -1;
    }
    free(c->big);
    free(c->out);
    c->big = c->out = NULL;
    c->in_len = c->out_len = c->out_off = 0;
}

static void session_free(struct kr_client *c)
{
    struct kr_relay *r = c->relay;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    session_release_io(c);
    event_del(&c->tmo);
    if (r->n_free_clients < FRONT_POOL_MAX && !r->stopping) {
        c->next = r->free_clients; /* reused by the next accept */
        r->free_clients = c;
        r->n_free_clients++;
    } else {
        free(c);
    }
}

/* Ends the session now; the struct goes from its own event. */
static void session_close(struct kr_client *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->cur) {
        c->cur->client = NULL; /* it finishes without us */
        c->cur = NULL;
    }
    session_release_io(c); /* safe inside its own callbacks */
    kr_limits_release(c->relay, c->src_key);
    c->relay->stats.conns_open--;
    event_active(&c->tmo, EV_TIMEOUT, 1);
}

/* Ends the session once what was written has gone out. */
static void session_finish(struct kr_client *c)
{
    if (c->dead || c->closing)
        return;
    c->closing = true;
    if (c->out_len == 0) {
        session_close(c);
        return;
    }
    io_want(c, EV_WRITE);
    c->close_at_us = kr_now_us() + FRONT_FLUSH_MS * 1000;
    arm_timer(c);
}

/* ---- buffers --------------------------------------------------------------- */

static uint8_t *in_buf(struct kr_client *c)
{
    return c->big ? c->big : c->in;
}

static size_t in_cap(const struct kr_client *c)
{
    return c->big ? KR_RPC_FRAG_MAX : FRONT_IN;
}

/* Drops the first n input bytes (the PDU just handled). */
static void consume(struct kr_client *c, size_t n)
{
    uint8_t *b = in_buf(c);
    if (n > c->in_len)
        n = c->in_len;
    c->in_len = (uint16_t)(c->in_len - n);
    if (c->in_len)
        memmove(b, b + n, c->in_len); /* pipelined input: rare */
    if (c->big && c->in_len <= FRONT_IN) {
        memcpy(c->in, c->big, c->in_len);
        free(c->big);
        c->big = NULL;
    }
}

/* Sends what can go now; keeps the rest (in order) for the write event. A
 * send error closes the session (the caller checks c->dead). */
static void out_write(struct kr_client *c, const uint8_t *p, size_t n)
{
    if (c->dead)
        return;
    if (c->out_len == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n)
            return;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            session_close(c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (!c->out && !(c->out = malloc(FRONT_OUT_CAP))) {
        session_close(c); /* out of memory: the client retries elsewhere */
        return;
    }
    if (c->out_off && (size_t)c->out_off + c->out_len + n > FRONT_OUT_CAP) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if ((size_t)c->out_off + c->out_len + n > FRONT_OUT_CAP) {
        session_close(c); /* process() stops well before: cannot happen */
        return;
    }
    memcpy(c->out + c->out_off + c->out_len, p, n);
    c->out_len = (uint16_t)(c->out_len + n);
    io_want(c, (short)(c->io_what | EV_WRITE));
}

/* The write event: the client reads again. */
static void out_flush(struct kr_client *c)
{
    if (relay_send_pending(c->fd, c->out, &c->out_off, &c->out_len) != 0) {
        session_close(c);
        return;
    }
    if (c->out_len)
        return;
    c->out_off = 0;
    free(c->out);
    c->out = NULL;
    if (c->closing)
        session_close(c);
    else
        io_want(c, (short)(c->io_what & ~EV_WRITE)); /* process() turns reading back on */
}

static void bad_input(struct kr_client *c, const char *what, const char *why)
{
    uint64_t dropped = 0;
    c->relay->stats.bad_pdus++;
    if (front_log_allowed(&dropped)) {
        char peer[KR_ADDRSTRLEN], reason[160];
        peer_text(c, peer);
        kr_logfmt_value(why ? why : "malformed", reason, sizeof(reason));
        kr_log(KR_LOG_WARN, "event=bad_pdu client=%s what=%s reason=%s suppressed=%llu", peer, what,
               reason, (unsigned long long)dropped);
    }
}

/* ---- replies --------------------------------------------------------------- */

static void send_fault(struct kr_client *c, uint32_t call_id, uint16_t ctx_id, uint32_t status)
{
    struct kr_rpc_fault f;
    uint8_t pdu[64];
    size_t len = 0;
    memset(&f, 0, sizeof(f));
    f.hdr.ptype = KR_PT_FAULT;
    f.hdr.flags = KR_PFC_DID_NOT_EXECUTE;
    f.hdr.call_id = call_id;
    f.alloc_hint = 32;
    f.ctx_id = ctx_id;
    f.status = status;
    if (kr_rpc_fault_encode(&f, pdu, sizeof(pdu), &len) == 0)
        out_write(c, pdu, len);
}

/* A response PDU: the host's KMS message untouched, or (msg NULL) an error
 * reply carrying hresult, framed in the client's syntax. */
static void send_response(struct kr_client *c, int ndr, uint32_t call_id, uint16_t ctx_id,
                          uint32_t hresult, const uint8_t *msg, size_t len)
{
    uint8_t stub[KR_NDR_MSG_MAX + 64], pdu[KR_RPC_FRAG_MAX];
    size_t stub_len = 0, pdu_len = 0;
    struct kr_rpc_response rs;
    if (kr_ndr_resp_encode((enum kr_ndr)ndr, msg, msg ? len : 0, hresult, stub, sizeof(stub),
                           &stub_len) < 0) {
        send_fault(c, call_id, ctx_id, KR_RPC_S_SERVER_UNAVAILABLE);
        return;
    }
    memset(&rs, 0, sizeof(rs));
    rs.hdr.ptype = KR_PT_RESPONSE;
    rs.hdr.call_id = call_id;
    rs.alloc_hint = (uint32_t)stub_len;
    rs.ctx_id = ctx_id;
    rs.stub = stub;
    rs.stub_len = stub_len;
    if (kr_rpc_response_encode(&rs, pdu, sizeof(pdu), &pdu_len) == 0)
        out_write(c, pdu, pdu_len);
    else
        send_fault(c, call_id, ctx_id, KR_RPC_S_SERVER_UNAVAILABLE);
}

void kr_front_reply(struct kr_req *q, uint32_t hresult, const uint8_t *msg, size_t msg_len,
                    uint32_t fault_status)
{
    struct kr_client *c = q->client;
    if (!c)
        return;
    q->client = NULL;
    c->cur = NULL;
    if (c->dead)
        return;
    c->answered = true;
    if (fault_status)
        send_fault(c, q->call_id, q->ctx_id, fault_status);
    else
        send_response(c, q->ndr, q->call_id, q->ctx_id, hresult, msg, msg_len);
    /* the next PDU (or the EOF seen meanwhile) is handled from the
     * session's own event, never from inside forward.c's call stack; with
     * nothing buffered the next read event does it */
    if (c->in_len || c->eof || c->out_len) {
        c->resume = true;
        event_active(&c->tmo, EV_TIMEOUT, 1);
    } else {
        arm_timer(c);
    }
}

/* ---- request objects ------------------------------------------------------- */

static struct kr_req *req_new(struct kr_relay *r)
{
    struct kr_req *q = r->free_reqs;
    if (!q)
        return calloc(1, sizeof(*q));
    r->free_reqs = q->next;
    r->n_free_reqs--;
    /* what forward.c and this file read before writing: the rest is set
     * before use (kr_forward_start, pin_update) */
    memset(q, 0, offsetof(struct kr_req, pin));
    memset(q->pending, 0, sizeof(q->pending));
    q->n_pending = 0;
    q->client_fault = false;
    q->peer[0] = q->chosen_name[0] = q->assist_name[0] = '\0';
    q->held_len = 0;
    q->count = q->host_count = 0;
    q->pin_failed = q->pin_refused = false;
    return q;
}

void kr_front_req_free(struct kr_req *q)
{
    struct kr_relay *r = q->relay;
    if (r->n_free_reqs >= FRONT_POOL_MAX || r->stopping) {
        free(q);
        return;
    }
    q->next = r->free_reqs;
    r->free_reqs = q;
    r->n_free_reqs++;
}

void kr_front_pools_free(struct kr_relay *r)
{
    while (r->free_reqs) {
        struct kr_req *q = r->free_reqs;
        r->free_reqs = q->next;
        free(q);
    }
    while (r->free_clients) {
        struct kr_client *c = r->free_clients;
        r->free_clients = c->next;
        free(c);
    }
    r->n_free_reqs = r->n_free_clients = 0;
}

/* ---- PDUs ------------------------------------------------------------------ */

/* Records the contexts a bind_ack accepts in the session's table. The
 * table holds KR_RPC_MAX_CTX contexts: one more is rejected in the ack
 * itself (provider rejection, local limit exceeded) rather than accepted
 * there and faulted on every request later. */
static void ctx_table_apply(struct kr_client *c, const struct kr_rpc_bind *b,
                            struct kr_rpc_bind_ack *ack)
{
    for (unsigned i = 0; i < ack->n_results; i++) {
        struct kr_rpc_result *res = &ack->results[i];
        int kind = kr_rpc_syntax_kind(&res->ts);
        if (kind == KR_TS_BTFN || res->result == KR_BIND_NEGOTIATE_ACK)
            continue; /* about the connection, not a context */
        bool ok = res->result == KR_BIND_ACCEPT && (kind == KR_TS_NDR32 || kind == KR_TS_NDR64);
        unsigned j = 0;
        while (j < c->n_ctx && c->ctx[j].id != b->ctx[i].ctx_id)
            j++;
        if (!ok) {
            if (j < c->n_ctx) /* renegotiated away */
                c->ctx[j] = c->ctx[--c->n_ctx];
            continue;
        }
        if (j == KR_RPC_MAX_CTX) {
            res->result = KR_BIND_PROVIDER_REJECT;
            res->reason = KR_REASON_LOCAL_LIMIT_EXCEEDED;
            memset(&res->ts, 0, sizeof(res->ts));
            continue;
        }
        c->ctx[j].id = b->ctx[i].ctx_id;
        c->ctx[j].ndr = kind == KR_TS_NDR64 ? KR_NDR64 : KR_NDR32;
        if (j == c->n_ctx)
            c->n_ctx++;
    }
}

static void on_bind(struct kr_client *c, const uint8_t *p, size_t len)
{
    static const struct kr_rpc_bind_policy pol = {1, 0, 1}; /* Windows 8+ host */
    struct kr_rpc_bind b;
    struct kr_rpc_bind_ack ack;
    uint8_t out[KR_RPC_FRAG_MAX];
    size_t out_len = 0;
    const char *why = NULL;
    int rc = kr_rpc_bind_decode(p, len, &b, &why);
    if (rc == 0)
        rc = kr_rpc_bind_answer(&b, &pol, c->listen_port, c->assoc_group, &ack);
    if (rc < 0) {
        consume(c, len);
        bad_input(c, "bind", why);
        session_finish(c);
        return;
    }
    ctx_table_apply(c, &b, &ack);
    rc = kr_rpc_bind_ack_encode(&ack, out, sizeof(out), &out_len);
    consume(c, len);
    if (rc < 0) {
        bad_input(c, "bind", "cannot encode the bind_ack");
        session_finish(c);
        return;
    }
    out_write(c, out, out_len);
}

/* The sizes a Windows client builds: a V4 message is 252 bytes, V5/V6 260,
 * and the stub is the message after its NDR length fields (8 bytes NDR32,
 * 16 NDR64), with nothing after it. */
static bool exact_size(int ndr, size_t stub_len, size_t msg_len, uint16_t ver_major)
{
    size_t want = ver_major == 4 ? KR_KMS_V4_REQ_LEN : KR_KMS_V5_REQ_LEN;
    size_t head = ndr == KR_NDR64 ? 16 : 8;
    return msg_len == want && stub_len == head + msg_len;
}

static void on_request(struct kr_client *c, const uint8_t *p, size_t len)
{
    struct kr_relay *r = c->relay;
    struct kr_rpc_request rq;
    struct kr_kms_request kreq;
    const uint8_t *msg = NULL;
    size_t msg_len = 0;
    const char *why = NULL;
    if (kr_rpc_request_decode(p, len, &rq, &why) < 0) {
        consume(c, len);
        bad_input(c, "request", why);
        session_finish(c);
        return;
    }
    int ndr = 0;
    for (unsigned i = 0; i < c->n_ctx; i++)
        if (c->ctx[i].id == rq.ctx_id)
            ndr = c->ctx[i].ndr;
    uint32_t fault = 0;
    if (!ndr)
        fault = KR_NCA_S_UNK_IF;
    else if (rq.opnum != 0)
        fault = KR_NCA_S_OP_RNG_ERROR;
    else if (kr_ndr_req_decode((enum kr_ndr)ndr, rq.stub, rq.stub_len, &msg, &msg_len, &why) < 0)
        fault = KR_RPC_X_BAD_STUB_DATA;
    else if (!kr_limits_request(r, c->src_key))
        fault = KR_RPC_S_SERVER_TOO_BUSY;
    if (fault) {
        consume(c, len);
        if (fault == KR_RPC_S_SERVER_TOO_BUSY)
            r->stats.rate_limited++;
        else
            bad_input(c, "request",
                      why                        ? why
                      : fault == KR_NCA_S_UNK_IF ? "unknown context id"
                                                 : "opnum is not 0");
        send_fault(c, rq.hdr.call_id, rq.ctx_id, fault);
        return;
    }
    int kr = kr_kms_request_decode(msg, msg_len, &kreq, &why);
    if (kr == 0 && (kreq.ver_minor != 0 || kreq.ver_major < 4 || kreq.ver_major > 6)) {
        /* what a genuine host answers for any other version; forwarding it
         * would only route on a CMID decrypted with a guessed key */
        kr = KR_EUNSUP;
        why = "KMS protocol version is not 4.0, 5.0 or 6.0";
    }
    if (kr == 0 && !exact_size(ndr, rq.stub_len, msg_len, kreq.ver_major)) {
        /* Windows sends exactly these sizes; anything else (a padded
         * message, bytes after it) is refused here instead of being passed
         * on to hosts that may choke on it */
        kr = KR_EMALF;
        why = "KMS request size is not the one of its protocol version";
    }
    if (kr < 0) {
        consume(c, len);
        bad_input(c, "kms_request", why);
        send_response(c, ndr, rq.hdr.call_id, rq.ctx_id, KR_HR_INVALID_DATA, NULL, 0);
        return;
    }
    struct kr_req *q = req_new(r);
    if (!q) {
        consume(c, len);
        send_fault(c, rq.hdr.call_id, rq.ctx_id, KR_RPC_S_SERVER_TOO_BUSY);
        return;
    }
    q->client = c;
    q->relay = r;
    q->call_id = rq.hdr.call_id;
    q->ctx_id = rq.ctx_id;
    q->ndr = ndr;
    memcpy(q->msg, msg, msg_len); /* msg points into the input: copy, then drain */
    q->msg_len = msg_len;
    q->kreq = kreq;
    q->start_us = kr_now_us();
    if (r->conf->log_activations)
        peer_text(c, q->peer);
    consume(c, len);
    c->cur = q;
    r->stats.requests++;
    r->reqs_inflight++;
    kr_forward_start(q); /* may answer (and free q) before it returns */
}

/* Handles every complete PDU in the input while no request is in flight,
 * then says whether to read on. */
static void process(struct kr_client *c)
{
    while (!c->dead && !c->closing && !c->cur) {
        if (c->out_len > FRONT_OUT_MAX)
            break; /* resumed from the write event once the client reads */
        size_t len = c->in_len;
        if (len == 0) {
            c->pdu_start_us = 0;
            break;
        }
        const uint8_t *p = in_buf(c);
        struct kr_rpc_hdr hdr;
        const char *why = NULL;
        int flen = kr_rpc_frame(p, len, 0, &hdr, &why);
        if (flen == KR_EMORE) {
            if (!c->pdu_start_us)
                c->pdu_start_us = kr_now_us();
            if (len == FRONT_IN && !c->big) {
                /* a PDU larger than the session's buffer (kr_rpc_frame
                 * bounds it to KR_RPC_FRAG_MAX): borrow a large one */
                if (!(c->big = malloc(KR_RPC_FRAG_MAX))) {
                    session_close(c);
                    break;
                }
                memcpy(c->big, c->in, len);
            }
            break;
        }
        c->pdu_start_us = 0;
        if (flen < 0) {
            bad_input(c, "frame", why);
            session_finish(c);
            break;
        }
        if (hdr.ptype == KR_PT_BIND || hdr.ptype == KR_PT_ALTER) {
            on_bind(c, p, (size_t)flen);
        } else if (hdr.ptype == KR_PT_REQUEST) {
            on_request(c, p, (size_t)flen);
        } else {
            bad_input(c, kr_rpc_ptype_name(hdr.ptype), "not a PDU a client sends");
            session_finish(c);
        }
    }
    /* the client is done sending: close once nothing more can be answered */
    if (!c->dead && !c->closing && c->eof && !c->cur)
        session_finish(c);
    if (c->dead)
        return;
    /* read while there is room, except once closing or after the EOF (a
     * level-triggered EOF would fire forever) */
    bool rd = !c->closing && !c->eof && c->in_len < in_cap(c);
    io_want(c, (short)((rd ? EV_READ : 0) | (c->out_len ? EV_WRITE : 0)));
    arm_timer(c);
}

/* ---- callbacks ------------------------------------------------------------- */

static void tmo_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kr_client *c = arg;
    c->armed_at_us = 0;
    if (c->dead) {
        session_free(c);
        return;
    }
    if (c->resume) {
        c->resume = false;
        process(c);
        if (c->dead)
            return; /* the event is active again: it frees */
    }
    uint64_t now = kr_now_us();
    const struct kr_conf *cf = c->relay->conf;
    const char *why = NULL;
    if (c->closing && now >= c->close_at_us)
        why = "flush timeout";
    else if (!c->closing && !c->cur && c->pdu_start_us && cf->client_header_ms &&
             now >= c->pdu_start_us + cf->client_header_ms * 1000)
        why = "header timeout";
    else if (!c->closing && !c->cur && !c->pdu_start_us && cf->client_idle_ms &&
             now >= c->last_rx_us + cf->client_idle_ms * 1000)
        why = "idle timeout";
    if (why) {
        char peer[KR_ADDRSTRLEN];
        peer_text(c, peer);
        kr_log(KR_LOG_DEBUG, "event=client_close client=%s reason=\"%s\"", peer, why);
        session_close(c);
        return;
    }
    arm_timer(c);
}

/* One read per readiness: level-triggered, the loop comes back if more
 * is waiting. */
static void on_readable(struct kr_client *c)
{
    size_t room = in_cap(c) - c->in_len;
    if (room == 0) {
        process(c); /* stops reading until a PDU is consumed */
        return;
    }
    ssize_t n = read(c->fd, in_buf(c) + c->in_len, room);
    if (n > 0) {
        c->in_len = (uint16_t)(c->in_len + n);
        c->last_rx_us = kr_now_us();
    } else if (n == 0) {
        c->eof = true; /* answer what was sent before the half-close */
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    } else {
        session_close(c);
        return;
    }
    process(c);
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kr_client *c = arg;
    if (c->dead)
        return;
    if (what & EV_WRITE) {
        out_flush(c);
        if (c->dead)
            return;
        if (!c->out_len && !(what & EV_READ)) {
            process(c); /* input may have waited for the output to drain */
            return;
        }
    }
    if ((what & EV_CLOSED) && c->answered && !c->cur && !c->in_len && !c->out_len && !c->closing) {
        c->eof = true; /* the FIN after an answer: nothing is owed either way */
        session_close(c);
        return;
    }
    if (what & EV_READ)
        on_readable(c);
}

static struct kr_client *session_new(struct kr_relay *r)
{
    struct kr_client *c = r->free_clients;
    if (c) {
        r->free_clients = c->next;
        r->n_free_clients--;
    } else if (!(c = malloc(sizeof(*c)))) {
        return NULL;
    }
    memset(c, 0, offsetof(struct kr_client, in)); /* the input bytes need no zeroing */
    c->fd = -1;
    return c;
}

void kr_front_accept(struct kr_relay *r, int fd, const struct sockaddr *sa, int salen,
                     uint16_t listen_port)
{
    uint8_t key[16] = {0};
    const char *deny = r->stopping ? "stopping" : kr_limits_admit(r, sa, key);
    if (deny) {
        uint64_t dropped = 0;
        if (strcmp(deny, "not in allow-list") == 0)
            r->stats.conns_denied++;
        else
            r->stats.conns_limited++;
        if (front_log_allowed(&dropped)) {
            char peer[KR_ADDRSTRLEN], reason[96];
            kr_addr_format(sa, peer);
            kr_log(KR_LOG_WARN, "event=client_denied client=%s reason=%s suppressed=%llu", peer,
                   kr_logfmt_value(deny, reason, sizeof(reason)), (unsigned long long)dropped);
        }
        close(fd);
        return;
    }
    struct kr_client *c = session_new(r);
    if (!c || evtimer_assign(&c->tmo, r->base, tmo_cb, c) != 0) {
        close(fd);
        free(c);
        kr_limits_release(r, key);
        return;
    }
    c->relay = r;
    c->fd = fd;
    memcpy(c->src_key, key, 16);
    size_t plen = (size_t)salen < sizeof(c->peer) ? (size_t)salen : sizeof(c->peer);
    memcpy(&c->peer, sa, plen);
    c->listen_port = listen_port;
    if (!next_assoc_group)
        next_assoc_group = (uint32_t)(kr_now_us() * 2654435761u) | 1;
    c->assoc_group = next_assoc_group++;
    if (!c->assoc_group)
        c->assoc_group = next_assoc_group++;
    c->last_rx_us = kr_now_us();
    c->next = r->clients;
    if (r->clients)
        r->clients->prev = c;
    r->clients = c;
    r->stats.conns_accepted++;
    r->stats.conns_open++;
    /* TCP_NODELAY: inherited from the listening socket (listen.c) */
    io_want(c, EV_READ);
    arm_timer(c);
    on_readable(c); /* the bind is usually there already: no wake-up for it */
}

void kr_front_close_all(struct kr_relay *r)
{
    while (r->clients) {
        struct kr_client *c = r->clients;
        if (!c->dead) {
            if (c->cur)
                c->cur->client = NULL;
            c->cur = NULL;
            kr_limits_release(r, c->src_key);
            r->stats.conns_open--;
        }
        session_free(c);
    }
}
