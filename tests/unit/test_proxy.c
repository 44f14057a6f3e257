/* test_proxy.c - the data path of kmsrelayd (front.c, forward.c, backend.c,
 * route.c) over real sockets: clients are socketpairs handed to
 * kr_front_accept(), backends are fake KMS hosts on 127.0.0.1 random ports
 * served by the same event base, the relay is built by hand (no relay.c),
 * with the real limits, health and store modules.
 *
 * The fake hosts build their answers with the test-program encoder, whose
 * integrity fields are zeros; what matters here is that kmsrelayd passes
 * those bytes on untouched and frames them for each client. */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay.h"
#include "relayfix.h"
#include "testutil.h"

#define NHOST 3
#define LISTEN_PORT 41688

/* ---- fake KMS hosts --------------------------------------------------------- */

struct fhost {
    struct event_base *base;
    struct evconnlistener *lst;
    struct fconn *conns;
    uint16_t port;
    /* behaviour */
    bool refuse;          /* answer 0xC004F042 */
    bool drop;            /* close when a request arrives */
    bool hang;            /* never answer a request */
    unsigned close_after; /* close after this many answers per connection */
    unsigned delay_ms;    /* answer late */
    uint32_t count;       /* the Count it reports */
    /* what it saw */
    unsigned binds, requests, answers, accepted;
    uint8_t last_cmid[16];
    uint8_t last_resp[KR_KMS_RESP_MAX];
    size_t last_resp_len;
};

struct fconn {
    struct fhost *h;
    struct fconn *next;
    struct bufferevent *bev;
    struct event *timer;
    uint8_t out[KR_RPC_FRAG_MAX];
    size_t out_len;
    unsigned answered;
    bool dead;
};

static void fconn_close(struct fconn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    bufferevent_free(c->bev);
    event_free(c->timer);
}

static void fconn_sent(struct fconn *c)
{
    c->answered++;
    c->h->answers++;
    if (c->h->close_after && c->answered >= c->h->close_after)
        bufferevent_disable(c->bev, EV_READ); /* closed once the answer is out */
}

static void fconn_delayed(evutil_socket_t fd, short what, void *arg)
{
    struct fconn *c = arg;
    bufferevent_write(c->bev, c->out, c->out_len);
    fconn_sent(c);
}

/* Builds the answer to one KMS request into c->out. */
static void fake_answer(struct fconn *c, const struct kr_rpc_request *rq)
{
    struct fhost *h = c->h;
    const uint8_t *msg;
    size_t len, stub_len = 0, resp_len = 0;
    uint8_t stub[KR_NDR_MSG_MAX + 64], resp[KR_KMS_RESP_MAX];
    struct kr_kms_request kq;
    uint32_t hr = 0;
    CU_ASSERT_FATAL(kr_ndr_req_decode(KR_NDR32, rq->stub, rq->stub_len, &msg, &len, NULL) == 0);
    if (kr_kms_request_decode(msg, len, &kq, NULL) != 0) {
        hr = KR_HR_INVALID_DATA;
    } else {
        memcpy(h->last_cmid, kq.cmid, 16);
        if (h->refuse) {
            hr = KR_HR_KMS_ID_MISMATCH;
        } else {
            struct kr_kms_response r;
            uint8_t iv[16];
            memset(&r, 0, sizeof(r));
            r.ver_major = kq.ver_major;
            r.ver_minor = kq.ver_minor;
            snprintf(r.epid, sizeof(r.epid), "%s",
                     "06401-00206-551-123456-03-1033-9200.0000-3652013");
            memcpy(r.cmid, kq.cmid, 16);
            r.request_time = kq.request_time;
            r.count = h->count;
            r.activation_interval = 120;
            r.renewal_interval = 10080;
            r.has_hwid = kq.ver_major >= 6;
            memcpy(iv, msg + 4, 16);
            iv[0] ^= (uint8_t)(kq.ver_major >= 6); /* V6: a different IV */
            CU_ASSERT_FATAL(kr_kms_response_encode(&r, iv, resp, sizeof(resp), &resp_len) == 0);
            memcpy(h->last_resp, resp, resp_len);
            h->last_resp_len = resp_len;
        }
    }
    kr_ndr_resp_encode(KR_NDR32, hr ? NULL : resp, hr ? 0 : resp_len, hr, stub, sizeof(stub),
                       &stub_len);
    struct kr_rpc_response rs;
    memset(&rs, 0, sizeof(rs));
    rs.hdr.ptype = KR_PT_RESPONSE;
    rs.hdr.call_id = rq->hdr.call_id;
    rs.ctx_id = rq->ctx_id;
    rs.alloc_hint = (uint32_t)stub_len;
    rs.stub = stub;
    rs.stub_len = stub_len;
    CU_ASSERT_FATAL(kr_rpc_response_encode(&rs, c->out, sizeof(c->out), &c->out_len) == 0);
}

static void fconn_read(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    struct fhost *h = c->h;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n = evbuffer_get_length(in);
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        struct kr_rpc_hdr hdr;
        int flen = n ? kr_rpc_frame(p, n, 0, &hdr, NULL) : KR_EMORE;
        if (flen == KR_EMORE)
            return;
        CU_ASSERT_FATAL(flen > 0);
        if (hdr.ptype == KR_PT_BIND) {
            static const struct kr_rpc_bind_policy pol = {0, 0, 1};
            struct kr_rpc_bind b;
            struct kr_rpc_bind_ack ack;
            uint8_t out[256];
            size_t olen = 0;
            CU_ASSERT_FATAL(kr_rpc_bind_decode(p, (size_t)flen, &b, NULL) == 0);
            kr_rpc_bind_answer(&b, &pol, h->port, 0x1234, &ack);
            kr_rpc_bind_ack_encode(&ack, out, sizeof(out), &olen);
            bufferevent_write(bev, out, olen);
            h->binds++;
            evbuffer_drain(in, (size_t)flen);
            continue;
        }
        CU_ASSERT_FATAL(hdr.ptype == KR_PT_REQUEST);
        struct kr_rpc_request rq;
        CU_ASSERT_FATAL(kr_rpc_request_decode(p, (size_t)flen, &rq, NULL) == 0);
        h->requests++;
        if (h->drop) {
            fconn_close(c);
            return;
        }
        if (!h->hang) {
            fake_answer(c, &rq);
            if (h->delay_ms) {
                struct timeval tv = {0, (suseconds_t)h->delay_ms * 1000};
                evtimer_add(c->timer, &tv);
            } else {
                bufferevent_write(bev, c->out, c->out_len);
                fconn_sent(c);
            }
        }
        evbuffer_drain(in, (size_t)flen);
    }
}

static void fconn_write(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    if (c->h->close_after && c->answered >= c->h->close_after)
        fconn_close(c);
}

static void fconn_event(struct bufferevent *bev, short what, void *arg)
{
    fconn_close(arg);
}

static void fhost_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    struct fhost *h = arg;
    struct fconn *c = calloc(1, sizeof(*c));
    c->h = h;
    c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(h->base, fconn_delayed, c);
    bufferevent_setcb(c->bev, fconn_read, fconn_write, fconn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = h->conns;
    h->conns = c;
    h->accepted++;
}

static void fhost_start(struct fhost *h, struct event_base *base)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->base = base;
    h->count = 50;
    h->lst =
        evconnlistener_new_bind(base, fhost_accept, h, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&sin, sizeof(sin));
    CU_ASSERT_FATAL(h->lst != NULL);
    getsockname(evconnlistener_get_fd(h->lst), (struct sockaddr *)&sin, &sl);
    h->port = ntohs(sin.sin_port);
}

static void fhost_stop(struct fhost *h)
{
    if (h->lst)
        evconnlistener_free(h->lst);
    h->lst = NULL;
    while (h->conns) {
        struct fconn *c = h->conns;
        h->conns = c->next;
        fconn_close(c);
        free(c);
    }
}

/* ---- the relay under test --------------------------------------------------- */

struct tctx {
    struct event_base *base;
    struct kr_relay_fix fx; /* relayfix.h: the relay, its conf, hosts and store */
    struct fhost fh[NHOST];
};

static struct tctx *T;

/* The default 300 ms attempt timeout keeps the timeout tests fast; tests
 * that assert "no retry, no pin moved" use generous ones instead, so that a
 * loaded machine (ASan, parallel ctest) cannot turn a slow turn of the event
 * loop into a failover. */
static void relax_timeouts(void)
{
    T->fx.conf.attempt_timeout_ms = 3000;
    T->fx.conf.connect_timeout_ms = 3000;
    T->fx.conf.request_budget_ms = 8000;
}

static void setup(void)
{
    struct tctx *t = T = calloc(1, sizeof(*t));
    signal(SIGPIPE, SIG_IGN);               /* as the daemon does: a peer gone is an error event */
    kr_fix_init(&t->fx, NHOST, KR_LOG_ERR); /* activation lines would drown the report */
    t->base = event_base_new();
    t->fx.conf.rate_per_source = 0;
    t->fx.conf.attempt_timeout_ms = 300;
    t->fx.conf.connect_timeout_ms = 300;
    t->fx.conf.request_budget_ms = 2000;
    t->fx.conf.backend_idle_ms = 5000;
    t->fx.conf.client_idle_ms = 10000;
    t->fx.conf.client_header_ms = 300;
    t->fx.conf.refusal_ttl_ms = 3600 * 1000;
    t->fx.conf.count_fresh_ms = 3600 * 1000;
    t->fx.conf.pool_size = 2;
    t->fx.r.base = t->base;
    t->fx.r.conf = &t->fx.conf;
    CU_ASSERT_FATAL(kr_limits_init(&t->fx.r) == 0);
    kr_fix_store_open(&t->fx, "proxy");
    for (int i = 0; i < NHOST; i++) {
        char addr[64];
        fhost_start(&t->fh[i], t->base);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", t->fh[i].port);
        CU_ASSERT_FATAL(kr_addr_parse(addr, AF_INET, &t->fx.hosts[i].conf.addr, NULL) == 0);
    }
}

static void pump(int ms)
{
    uint64_t end = kr_now_us() + (uint64_t)ms * 1000;
    while (kr_now_us() < end) {
        event_base_loop(T->base, EVLOOP_NONBLOCK);
        usleep(500);
    }
}

static void teardown(void)
{
    struct tctx *t = T;
    t->fx.r.stopping = true;
    kr_front_close_all(&t->fx.r);
    for (int i = 0; i < NHOST; i++) {
        kr_backend_abort_host(&t->fx.hosts[i]);
        fhost_stop(&t->fh[i]);
    }
    CU_ASSERT_EQUAL(t->fx.r.reqs_inflight, 0);
    pump(5);
    kr_fix_fini(&t->fx); /* the store, its directory, the log level */
    kr_limits_free(&t->fx.r);
    kr_front_pools_free(&t->fx.r); /* what kr_relay_destroy frees last */
    event_base_free(t->base);
    free(t);
    T = NULL;
}

/* ---- a client --------------------------------------------------------------- */

static int cli_open(void)
{
    int sv[2];
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(50000);
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    kr_front_accept(&T->fx.r, sv[0], (struct sockaddr *)&sin, sizeof(sin), LISTEN_PORT);
    return sv[1];
}

static void cli_send(int fd, const uint8_t *p, size_t n)
{
    CU_ASSERT_FATAL(write(fd, p, n) == (ssize_t)n);
}

/* One PDU from the relay (read exactly, so the next stays in the socket):
 * its length, 0 on EOF, -1 on timeout. */
static int cli_recv(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    size_t have = 0, need = KR_RPC_HDR_LEN;
    uint64_t end = kr_now_us() + (uint64_t)timeout_ms * 1000;
    while (kr_now_us() < end) {
        event_base_loop(T->base, EVLOOP_NONBLOCK);
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 1) <= 0)
            continue;
        ssize_t n = read(fd, buf + have, need - have);
        if (n == 0)
            return 0;
        if (n < 0)
            continue;
        have += (size_t)n;
        if (have == KR_RPC_HDR_LEN) {
            need = kr_le16(buf + 8);
            CU_ASSERT_FATAL(need >= KR_RPC_HDR_LEN && need <= cap);
        }
        if (have == need)
            return kr_rpc_frame(buf, have, 0, NULL, NULL);
    }
    return -1;
}

static struct kr_vec *vecs;
static size_t n_vecs;

static const struct kr_vec *vec(const char *name)
{
    if (!vecs)
        CU_ASSERT_FATAL(kr_vec_load_all(&vecs, &n_vecs) == 0);
    const struct kr_vec *v = kr_vec_find(vecs, n_vecs, name);
    CU_ASSERT_FATAL(v != NULL);
    return v;
}

/* An NDR32-only bind (1 item, ctx 0), as vlmcs -N0 -B0 sends. */
static void cli_bind32(int fd)
{
    uint8_t buf[KR_RPC_FRAG_MAX];
    struct kr_rpc_bind_ack ack;
    const struct kr_vec *v = vec("bind_ndr32_only");
    cli_send(fd, v->c2s[0].bytes, v->c2s[0].len);
    int n = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)n, &ack, NULL) == 0);
    CU_ASSERT_EQUAL(ack.results[0].result, KR_BIND_ACCEPT);
}

static size_t mk_kms(uint32_t i, uint8_t *out, struct kr_kms_request *q)
{
    size_t len = 0;
    memset(q, 0, sizeof(*q));
    q->ver_major = 4;
    for (int k = 0; k < 16; k++)
        q->cmid[k] = (uint8_t)(i * 7919u >> (k % 4 * 8)) ^ (uint8_t)(k * 37 + i);
    q->cmid[15] = (uint8_t)i;
    memcpy(q->app_id, kr_kms_app_windows, 16);
    memset(q->kms_id, 0x42, 16);
    memset(q->sku_id, 0x24, 16);
    q->n_policy = 25;
    q->license_status = 2;
    q->request_time = kr_unix_to_filetime(time(NULL));
    snprintf(q->workstation, sizeof(q->workstation), "pc-%u.example", i);
    CU_ASSERT_FATAL(kr_kms_request_encode(q, NULL, out, KR_NDR_MSG_MAX, &len) == 0);
    return len;
}

static size_t mk_request(int ndr, uint32_t call_id, uint16_t ctx, uint16_t opnum,
                         const uint8_t *msg, size_t len, uint8_t *pdu)
{
    uint8_t stub[KR_NDR_MSG_MAX + 32];
    size_t stub_len = 0, pdu_len = 0;
    struct kr_rpc_request rq;
    CU_ASSERT_FATAL(kr_ndr_req_encode(ndr, msg, len, stub, sizeof(stub), &stub_len) == 0);
    memset(&rq, 0, sizeof(rq));
    rq.hdr.ptype = KR_PT_REQUEST;
    rq.hdr.call_id = call_id;
    rq.ctx_id = ctx;
    rq.opnum = opnum;
    rq.alloc_hint = (uint32_t)stub_len;
    rq.stub = stub;
    rq.stub_len = stub_len;
    CU_ASSERT_FATAL(kr_rpc_request_encode(&rq, pdu, KR_RPC_FRAG_MAX, &pdu_len) == 0);
    return pdu_len;
}

/* Sends one V4 activation for CMID #i over NDR32 ctx 0 and decodes the
 * answer. Returns the HRESULT (0x6BA-style faults as 0xFFFF0000|status). */
static uint32_t activate(int fd, uint32_t i, uint32_t call_id, struct kr_kms_response *out)
{
    uint8_t msg[KR_NDR_MSG_MAX], pdu[KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    size_t len = mk_kms(i, msg, &q);
    size_t n = mk_request(KR_NDR32, call_id, 0, 0, msg, len, pdu);
    cli_send(fd, pdu, n);
    int got = cli_recv(fd, buf, sizeof(buf), 4000);
    CU_ASSERT_FATAL(got > 0);
    if (buf[2] == KR_PT_FAULT) {
        struct kr_rpc_fault f;
        CU_ASSERT_FATAL(kr_rpc_fault_decode(buf, (size_t)got, &f, NULL) == 0);
        CU_ASSERT_EQUAL(f.hdr.call_id, call_id);
        return 0xFFFF0000u | f.status;
    }
    struct kr_rpc_response rs;
    struct kr_ndr_resp nr;
    CU_ASSERT_FATAL(kr_rpc_response_decode(buf, (size_t)got, &rs, NULL) == 0);
    CU_ASSERT_EQUAL(rs.hdr.call_id, call_id);
    CU_ASSERT_EQUAL(rs.ctx_id, 0);
    CU_ASSERT_FATAL(kr_ndr_resp_decode(KR_NDR32, rs.stub, rs.stub_len, &nr, NULL) == 0);
    if (nr.hresult == 0 && out) {
        CU_ASSERT_FATAL(kr_kms_response_decode(nr.msg, nr.msg_len, out, NULL) == 0);
        CU_ASSERT(memcmp(out->cmid, q.cmid, 16) == 0);
    }
    return nr.hresult;
}

/* The host index HRW ranks at `rank` for CMID #i. */
static int ranked(uint32_t i, size_t rank)
{
    uint8_t msg[KR_NDR_MSG_MAX];
    struct kr_kms_request q;
    struct kr_hrw_node nodes[NHOST];
    uint16_t order[NHOST];
    mk_kms(i, msg, &q);
    for (int k = 0; k < NHOST; k++)
        nodes[k] = T->fx.hosts[k].hrw;
    kr_hrw_rank(nodes, NHOST, q.cmid, order, NHOST);
    return order[rank];
}

static bool pinned_to(uint32_t i, int host)
{
    uint8_t msg[KR_NDR_MSG_MAX];
    struct kr_kms_request q;
    struct kr_pin pin;
    mk_kms(i, msg, &q);
    return kr_store_pin_get(T->fx.r.store, q.cmid, q.app_id, &pin) == 0 &&
           strcmp(pin.host, T->fx.hosts[host].conf.name) == 0;
}

/* ---- tests ------------------------------------------------------------------- */

/* The Windows 8 sequence of v6_ndr64_two_requests: bind (NDR32 refused next
 * to NDR64), alter_context to NDR32, one NDR32 then NDR64 requests; each
 * answer in the client's syntax, call id and ctx id, the host's KMS bytes
 * untouched. */
static void test_windows8_sequence(void)
{
    setup();
    const struct kr_vec *v = vec("v6_ndr64_two_requests");
    uint8_t buf[KR_RPC_FRAG_MAX];
    int fd = cli_open();
    for (size_t i = 0; i < v->n_c2s; i++) {
        const struct kr_vec_pdu *p = &v->c2s[i];
        cli_send(fd, p->bytes, p->len);
        int n = cli_recv(fd, buf, sizeof(buf), 4000);
        CU_ASSERT_FATAL(n > 0);
        if (strcmp(p->type, "bind") == 0) {
            struct kr_rpc_bind_ack ack;
            CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)n, &ack, NULL) == 0);
            CU_ASSERT_EQUAL(ack.hdr.ptype, KR_PT_BIND_ACK);
            CU_ASSERT_EQUAL(ack.hdr.call_id, p->call_id);
            CU_ASSERT_EQUAL(ack.hdr.flags, p->bytes[3]); /* CONC_MPX echoed */
            CU_ASSERT_STRING_EQUAL(ack.sec_addr, "41688");
            CU_ASSERT_EQUAL(ack.n_results, 3);
            CU_ASSERT_EQUAL(ack.results[0].result, KR_BIND_PROVIDER_REJECT);
            CU_ASSERT_EQUAL(ack.results[0].reason, KR_REASON_TRANSFER_NOT_SUPPORTED);
            CU_ASSERT_EQUAL(ack.results[1].result, KR_BIND_ACCEPT);
            CU_ASSERT_EQUAL(kr_rpc_syntax_kind(&ack.results[1].ts), KR_TS_NDR64);
            CU_ASSERT_EQUAL(ack.results[2].result, KR_BIND_NEGOTIATE_ACK);
            CU_ASSERT_EQUAL(ack.results[2].reason, 3);
            CU_ASSERT(ack.assoc_group != 0);
        } else if (strcmp(p->type, "alter_context") == 0) {
            struct kr_rpc_bind_ack ack;
            CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)n, &ack, NULL) == 0);
            CU_ASSERT_EQUAL(ack.hdr.ptype, KR_PT_ALTER_RESP);
            CU_ASSERT_EQUAL(ack.sec_addr_len, 0);
            CU_ASSERT_EQUAL(ack.results[0].result, KR_BIND_ACCEPT);
            CU_ASSERT_EQUAL(kr_rpc_syntax_kind(&ack.results[0].ts), KR_TS_NDR32);
        } else {
            struct kr_rpc_request rq;
            struct kr_rpc_response rs;
            struct kr_ndr_resp nr;
            struct kr_kms_request kq;
            struct kr_kms_response kr;
            const uint8_t *m;
            size_t ml;
            int ndr = i == 2 ? KR_NDR32 : KR_NDR64;
            CU_ASSERT_FATAL(kr_rpc_request_decode(p->bytes, p->len, &rq, NULL) == 0);
            CU_ASSERT_FATAL(kr_ndr_req_decode(ndr, rq.stub, rq.stub_len, &m, &ml, NULL) == 0);
            CU_ASSERT_FATAL(kr_kms_request_decode(m, ml, &kq, NULL) == 0);
            CU_ASSERT_FATAL(kr_rpc_response_decode(buf, (size_t)n, &rs, NULL) == 0);
            CU_ASSERT_EQUAL(rs.hdr.call_id, p->call_id);
            CU_ASSERT_EQUAL(rs.ctx_id, rq.ctx_id);
            CU_ASSERT_FATAL(kr_ndr_resp_decode(ndr, rs.stub, rs.stub_len, &nr, NULL) == 0);
            CU_ASSERT_EQUAL(nr.hresult, 0);
            CU_ASSERT_FATAL(kr_kms_response_decode(nr.msg, nr.msg_len, &kr, NULL) == 0);
            CU_ASSERT(memcmp(kr.cmid, kq.cmid, 16) == 0);
            bool same = false; /* whichever host answered sent exactly these bytes */
            for (int h = 0; h < NHOST; h++)
                same |= T->fh[h].last_resp_len == nr.msg_len &&
                        memcmp(T->fh[h].last_resp, nr.msg, nr.msg_len) == 0;
            CU_ASSERT(same);
        }
    }
    CU_ASSERT_EQUAL(T->fx.r.stats.requests, 2);
    CU_ASSERT_EQUAL(T->fx.r.stats.activations_ok, 2);
    close(fd);
    teardown();
}

/* Every captured conversation, answered the way its client would go on. */
static void test_all_vectors(void)
{
    setup();
    const struct kr_vec *alter = vec("v6_ndr64_two_requests");
    for (size_t k = 0; k < n_vecs; k++) {
        const struct kr_vec *v = &vecs[k];
        uint8_t buf[KR_RPC_FRAG_MAX];
        int fd = cli_open();
        for (size_t i = 0; i < v->n_c2s; i++) {
            const struct kr_vec_pdu *p = &v->c2s[i];
            if (strcmp(p->type, "alter_context") == 0)
                continue; /* sent below when our bind_ack asks for it */
            cli_send(fd, p->bytes, p->len);
            int n = cli_recv(fd, buf, sizeof(buf), 4000);
            CU_ASSERT_FATAL(n > 0);
            if (strcmp(p->type, "bind") == 0) {
                struct kr_rpc_bind_ack ack;
                CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)n, &ack, NULL) == 0);
                if (ack.results[0].result != KR_BIND_ACCEPT) { /* as vlmcs does */
                    cli_send(fd, alter->c2s[1].bytes, alter->c2s[1].len);
                    CU_ASSERT_FATAL(cli_recv(fd, buf, sizeof(buf), 4000) > 0);
                }
                continue;
            }
            struct kr_rpc_request rq;
            struct kr_rpc_response rs;
            struct kr_ndr_resp nr;
            CU_ASSERT_FATAL(kr_rpc_request_decode(p->bytes, p->len, &rq, NULL) == 0);
            CU_ASSERT_FATAL(kr_rpc_response_decode(buf, (size_t)n, &rs, NULL) == 0);
            CU_ASSERT_EQUAL(rs.hdr.call_id, p->call_id);
            CU_ASSERT_EQUAL(rs.ctx_id, rq.ctx_id);
            int ndr = rq.ctx_id == 0 ? KR_NDR32 : KR_NDR64;
            CU_ASSERT_FATAL(kr_ndr_resp_decode(ndr, rs.stub, rs.stub_len, &nr, NULL) == 0);
            if (strcmp(v->name, "err_bad_version") == 0) {
                CU_ASSERT_EQUAL(nr.hresult, KR_HR_INVALID_DATA); /* never forwarded */
                continue;
            }
            CU_ASSERT_EQUAL(nr.hresult, 0);
            const uint8_t *m;
            size_t ml;
            struct kr_kms_request kq;
            struct kr_kms_response kr;
            CU_ASSERT_FATAL(kr_ndr_req_decode(ndr, rq.stub, rq.stub_len, &m, &ml, NULL) == 0);
            CU_ASSERT_FATAL(kr_kms_request_decode(m, ml, &kq, NULL) == 0);
            CU_ASSERT_FATAL(kr_kms_response_decode(nr.msg, nr.msg_len, &kr, NULL) == 0);
            CU_ASSERT(memcmp(kr.cmid, kq.cmid, 16) == 0);
        }
        close(fd);
    }
    unsigned forwarded = T->fh[0].requests + T->fh[1].requests + T->fh[2].requests;
    CU_ASSERT_EQUAL(forwarded, T->fx.r.stats.requests);
    teardown();
}

/* Faults keep the session: unknown context, bad opnum, bad stub; a KMS
 * message that does not decode gets 0x8007000D; nothing is forwarded. */
static void test_faults_keep_session(void)
{
    setup();
    uint8_t msg[KR_NDR_MSG_MAX], pdu[KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    struct kr_rpc_fault f;
    int fd = cli_open();
    size_t len = mk_kms(1, msg, &q);

    size_t n = mk_request(KR_NDR32, 5, 0, 0, msg, len, pdu); /* no bind yet */
    cli_send(fd, pdu, n);
    int got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_FATAL(kr_rpc_fault_decode(buf, (size_t)got, &f, NULL) == 0);
    CU_ASSERT_EQUAL(f.status, KR_NCA_S_UNK_IF);
    CU_ASSERT_EQUAL(f.hdr.call_id, 5);

    cli_bind32(fd);
    n = mk_request(KR_NDR32, 6, 0, 1, msg, len, pdu); /* opnum 1 */
    cli_send(fd, pdu, n);
    got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0 && kr_rpc_fault_decode(buf, (size_t)got, &f, NULL) == 0);
    CU_ASSERT_EQUAL(f.status, KR_NCA_S_OP_RNG_ERROR);

    n = mk_request(KR_NDR32, 7, 0, 0, msg, len, pdu);
    pdu[28] ^= 1; /* conformance count differs from the size */
    cli_send(fd, pdu, n);
    got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0 && kr_rpc_fault_decode(buf, (size_t)got, &f, NULL) == 0);
    CU_ASSERT_EQUAL(f.status, 0x6F7u);

    memset(msg, 0, 64); /* protocol version 0.0 */
    n = mk_request(KR_NDR32, 8, 0, 0, msg, len, pdu);
    cli_send(fd, pdu, n);
    got = cli_recv(fd, buf, sizeof(buf), 2000);
    struct kr_rpc_response rs;
    struct kr_ndr_resp nr;
    CU_ASSERT_FATAL(got > 0 && kr_rpc_response_decode(buf, (size_t)got, &rs, NULL) == 0);
    CU_ASSERT_FATAL(kr_ndr_resp_decode(KR_NDR32, rs.stub, rs.stub_len, &nr, NULL) == 0);
    CU_ASSERT_EQUAL(nr.hresult, KR_HR_INVALID_DATA);
    CU_ASSERT_PTR_NULL(nr.msg);

    CU_ASSERT_EQUAL(T->fh[0].requests + T->fh[1].requests + T->fh[2].requests, 0);
    CU_ASSERT_EQUAL(activate(fd, 2, 9, NULL), 0); /* still served */
    CU_ASSERT_EQUAL(T->fx.r.stats.bad_pdus, 4);
    close(fd);
    teardown();
}

/* Garbage, an oversized frag_length and a stalled header close their own
 * session only; a valid client next to them is served. */
static void test_malformed_isolated(void)
{
    setup();
    uint8_t buf[KR_RPC_FRAG_MAX];
    int good = cli_open();
    cli_bind32(good);

    int bad = cli_open();
    const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_send(bad, garbage, sizeof(garbage) - 1);
    CU_ASSERT_EQUAL(cli_recv(bad, buf, sizeof(buf), 2000), 0); /* closed */
    close(bad);

    bad = cli_open();
    uint8_t big[KR_RPC_HDR_LEN];
    kr_rpc_hdr_write(big, KR_PT_REQUEST, KR_PFC_FIRST | KR_PFC_LAST, 60000, 2);
    cli_send(bad, big, sizeof(big));
    CU_ASSERT_EQUAL(cli_recv(bad, buf, sizeof(buf), 2000), 0);
    close(bad);

    bad = cli_open(); /* half a bind, then silence: the header timeout */
    const struct kr_vec *v = vec("bind_ndr32_only");
    cli_send(bad, v->c2s[0].bytes, 30);
    CU_ASSERT_EQUAL(cli_recv(bad, buf, sizeof(buf), 2000), 0);
    close(bad);

    bad = cli_open(); /* a PDU only servers send */
    const struct kr_vec *w = vec("v4_win7pro_ndr32");
    cli_send(bad, w->s2c[0].bytes, w->s2c[0].len);
    CU_ASSERT_EQUAL(cli_recv(bad, buf, sizeof(buf), 2000), 0);
    close(bad);

    CU_ASSERT_EQUAL(T->fx.r.stats.bad_pdus, 3); /* the stalled one is a timeout */
    CU_ASSERT_EQUAL(activate(good, 3, 2, NULL), 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 1);
    close(good);
    teardown();
}

/* Several CMIDs on one connection are routed one by one, and pinned. */
static void test_per_request_routing(void)
{
    setup();
    relax_timeouts(); /* nothing here may fail over, however loaded the machine */
    int fd = cli_open();
    cli_bind32(fd);
    unsigned expect[NHOST] = {0};
    for (uint32_t i = 0; i < 30; i++) {
        struct kr_kms_response kr;
        int h = ranked(i, 0);
        expect[h]++;
        CU_ASSERT_EQUAL(activate(fd, i, 2 + i, &kr), 0);
        CU_ASSERT_EQUAL(kr.count, 50);
        CU_ASSERT(pinned_to(i, h));
    }
    for (int h = 0; h < NHOST; h++) {
        CU_ASSERT_EQUAL(T->fh[h].requests, expect[h]);
        CU_ASSERT(T->fh[h].accepted <= 1); /* one pooled connection did it all */
    }
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_new, 30);
    /* renewals on new connections go to the same hosts */
    close(fd);
    fd = cli_open();
    cli_bind32(fd);
    for (uint32_t i = 0; i < 30; i++)
        CU_ASSERT_EQUAL(activate(fd, i, 2 + i, NULL), 0);
    for (int h = 0; h < NHOST; h++)
        CU_ASSERT_EQUAL(T->fh[h].requests, 2 * expect[h]);
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_new, 30);
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_moved, 0);
    close(fd);
    teardown();
}

/* A host that closes after every answer is normal: no failure is counted. */
static void test_host_closes_each_time(void)
{
    setup();
    relax_timeouts();
    int fd = cli_open();
    cli_bind32(fd);
    for (int h = 0; h < NHOST; h++)
        T->fh[h].close_after = 1;
    for (uint32_t i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL(activate(fd, i, 2 + i, NULL), 0);
        if (i % 3 == 0)
            pump(5); /* sometimes the close is seen before the next request */
    }
    for (int h = 0; h < NHOST; h++) {
        CU_ASSERT_EQUAL(T->fx.hosts[h].stats.errors, 0);
        CU_ASSERT_EQUAL(T->fx.hosts[h].health, KR_HEALTH_UP);
        CU_ASSERT_EQUAL(T->fh[h].accepted, T->fh[h].answers);
    }
    CU_ASSERT_EQUAL(T->fx.r.stats.retries, 0);
    close(fd);
    teardown();
}

/* Drop mid-request, hang, refused connect: each goes on to the next ranked
 * host within the budget, counts a passive failure, and pins the answer. */
static void test_failover_kinds(void)
{
    setup();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t call = 2;
    for (int kind = 0; kind < 3; kind++) {
        uint32_t i = 100 + (uint32_t)kind;
        int first = ranked(i, 0), second = ranked(i, 1);
        uint64_t retries = T->fx.r.stats.retries;
        if (kind == 0)
            T->fh[first].drop = true;
        else if (kind == 1)
            T->fh[first].hang = true;
        else
            fhost_stop(&T->fh[first]); /* nothing listens any more */
        CU_ASSERT_EQUAL(activate(fd, i, call++, NULL), 0);
        CU_ASSERT_EQUAL(T->fx.r.stats.retries, retries + 1);
        CU_ASSERT(pinned_to(i, second));
        CU_ASSERT(T->fx.hosts[first].n_pfail >= 1); /* the passive failure was counted */
        T->fh[first].drop = T->fh[first].hang = false;
        if (kind == 2)
            fhost_start(&T->fh[first], T->base); /* on another port: never reached */
    }
    close(fd);
    teardown();
}

/* A pinned host that fails moves the pin; it does not move back (failback
 * never). Maintenance serves elsewhere and keeps the pin. */
static void test_pin_moves(void)
{
    setup();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 200, j = 201;
    int a = ranked(i, 0), b = ranked(i, 1);
    CU_ASSERT_EQUAL(activate(fd, i, 2, NULL), 0);
    CU_ASSERT(pinned_to(i, a));
    T->fx.hosts[a].health = KR_HEALTH_DOWN; /* health knows it */
    CU_ASSERT_EQUAL(activate(fd, i, 3, NULL), 0);
    CU_ASSERT(pinned_to(i, b));
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_moved, 1);
    T->fx.hosts[a].health = KR_HEALTH_UP; /* back: stays where it moved */
    unsigned before = T->fh[a].requests;
    CU_ASSERT_EQUAL(activate(fd, i, 4, NULL), 0);
    CU_ASSERT(pinned_to(i, b));
    CU_ASSERT_EQUAL(T->fh[a].requests, before);

    int c = ranked(j, 0);
    CU_ASSERT_EQUAL(activate(fd, j, 5, NULL), 0);
    T->fx.hosts[c].admin = KR_ADMIN_MAINT;
    before = T->fh[c].requests;
    CU_ASSERT_EQUAL(activate(fd, j, 6, NULL), 0);
    CU_ASSERT_EQUAL(T->fh[c].requests, before); /* no traffic at all */
    CU_ASSERT(pinned_to(j, c));
    T->fx.hosts[c].admin = KR_ADMIN_RETIRED; /* retire: the pin moves */
    CU_ASSERT_EQUAL(activate(fd, j, 7, NULL), 0);
    CU_ASSERT(!pinned_to(j, c));
    close(fd);
    teardown();
}

/* 0xC004F042: the next host answers and the refusal is remembered; when
 * every host refuses the client gets the refusal. */
static void test_refusal_reroute(void)
{
    setup();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 300;
    int a = ranked(i, 0), b = ranked(i, 1);
    T->fh[a].refuse = true;
    CU_ASSERT_EQUAL(activate(fd, i, 2, NULL), 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.reroutes_refused, 1);
    CU_ASSERT(pinned_to(i, b));
    CU_ASSERT_EQUAL(T->fh[a].requests, 1);
    CU_ASSERT_EQUAL(activate(fd, 301, 3, NULL), 0); /* same KMS id: a is skipped now */
    CU_ASSERT_EQUAL(T->fh[a].requests, 1);
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_UP); /* a refusal is not a failure */

    for (int h = 0; h < NHOST; h++)
        T->fh[h].refuse = true;
    CU_ASSERT_EQUAL(activate(fd, 302, 4, NULL), KR_HR_KMS_ID_MISMATCH);
    close(fd);
    teardown();
}

/* Count below N_Policy: the established host answers too; the pin stays
 * on the fresh host, which saw the real CMID. */
static void test_threshold_assist(void)
{
    setup();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 400;
    int fresh = ranked(i, 0);
    int est = ranked(i, 1);
    T->fh[fresh].count = 3;
    T->fh[est].count = 50;
    kr_route_note_count(&T->fx.r, &T->fx.hosts[est], kr_kms_app_windows, 50, 25);
    struct kr_kms_response kr;
    CU_ASSERT_EQUAL(activate(fd, i, 2, &kr), 0);
    CU_ASSERT_EQUAL(kr.count, 50);
    CU_ASSERT_EQUAL(T->fx.r.stats.assists, 1);
    CU_ASSERT(pinned_to(i, fresh));
    CU_ASSERT_EQUAL(T->fh[fresh].requests, 1);
    CU_ASSERT_EQUAL(T->fh[est].requests, 1);
    CU_ASSERT(memcmp(T->fh[fresh].last_cmid, T->fh[est].last_cmid, 16) == 0);

    T->fx.conf.threshold_assist = 0; /* switched off: the fresh host's own answer */
    CU_ASSERT_EQUAL(activate(fd, i, 3, &kr), 0);
    CU_ASSERT_EQUAL(kr.count, 3);
    T->fx.conf.threshold_assist = 1;
    T->fh[est].hang = true; /* the assist fails: the first answer stands */
    CU_ASSERT_EQUAL(activate(fd, i, 4, &kr), 0);
    CU_ASSERT_EQUAL(kr.count, 3);
    CU_ASSERT(pinned_to(i, fresh));
    close(fd);
    teardown();
}

/* No host answers within the budget: a fault the client fails over on. */
static void test_no_host(void)
{
    setup();
    T->fx.conf.request_budget_ms = 500;
    for (int h = 0; h < NHOST; h++)
        T->fh[h].hang = true;
    int fd = cli_open();
    cli_bind32(fd);
    CU_ASSERT_EQUAL(activate(fd, 500, 2, NULL), 0xFFFF0000u | 0x6BAu);
    CU_ASSERT_EQUAL(T->fx.r.stats.activations_failed, 1);
    close(fd);
    teardown();
}

/* The client leaves while its request is at a slow host: the request still
 * completes, pins the CMID and frees itself; other clients go on. */
static void test_client_gone(void)
{
    setup();
    uint8_t msg[KR_NDR_MSG_MAX], pdu[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    for (int h = 0; h < NHOST; h++)
        T->fh[h].delay_ms = 100;
    int fd = cli_open();
    cli_bind32(fd);
    size_t len = mk_kms(600, msg, &q);
    size_t n = mk_request(KR_NDR32, 2, 0, 0, msg, len, pdu);
    cli_send(fd, pdu, n);
    pump(20);
    CU_ASSERT_EQUAL(T->fx.r.reqs_inflight, 1);
    close(fd);
    pump(300);
    CU_ASSERT_EQUAL(T->fx.r.reqs_inflight, 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 0);
    CU_ASSERT(pinned_to(600, ranked(600, 0)));
    fd = cli_open();
    cli_bind32(fd);
    CU_ASSERT_EQUAL(activate(fd, 601, 2, NULL), 0);
    close(fd);
    teardown();
}

/* Requests sent back to back are answered in order; the rate limit answers
 * a fault, never an activation. */
static void test_pipeline_and_rate(void)
{
    setup();
    uint8_t msg[KR_NDR_MSG_MAX], pdu[4 * KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    T->fh[0].delay_ms = 50; /* answers finish out of order at the hosts */
    int fd = cli_open();
    cli_bind32(fd);
    size_t off = 0;
    for (uint32_t i = 0; i < 4; i++) {
        size_t len = mk_kms(700 + i, msg, &q);
        off += mk_request(KR_NDR32, 10 + i, 0, 0, msg, len, pdu + off);
    }
    cli_send(fd, pdu, off);
    for (uint32_t i = 0; i < 4; i++) {
        struct kr_rpc_response rs;
        int got = cli_recv(fd, buf, sizeof(buf), 4000);
        CU_ASSERT_FATAL(got > 0 && kr_rpc_response_decode(buf, (size_t)got, &rs, NULL) == 0);
        CU_ASSERT_EQUAL(rs.hdr.call_id, 10 + i);
    }
    T->fx.conf.rate_per_source = 1;
    T->fx.conf.burst_per_source = 1;
    CU_ASSERT_EQUAL(activate(fd, 710, 20, NULL), 0);
    CU_ASSERT_EQUAL(activate(fd, 711, 21, NULL), 0xFFFF0000u | 0x6BBu);
    CU_ASSERT_EQUAL(T->fx.r.stats.rate_limited, 1);
    close(fd);
    teardown();
}

/* Issue 13: the FIN after an answer ends the session at once (no read is
 * spent on it) and the client sees an orderly close; a client that half-
 * closes while it is still owed answers gets every one of them first, then
 * the close. */
static void test_half_close(void)
{
    setup();
    uint8_t msg[KR_NDR_MSG_MAX], pdu[4 * KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    int fd = cli_open();
    cli_bind32(fd);
    CU_ASSERT_EQUAL(activate(fd, 720, 2, NULL), 0);
    shutdown(fd, SHUT_WR);
    CU_ASSERT_EQUAL(cli_recv(fd, buf, sizeof(buf), 2000), 0);
    pump(20);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 0);
    close(fd);

    const struct kr_vec *v = vec("bind_ndr32_only");
    size_t off = v->c2s[0].len;
    memcpy(pdu, v->c2s[0].bytes, off);
    for (uint32_t i = 0; i < 2; i++) {
        size_t len = mk_kms(721 + i, msg, &q);
        off += mk_request(KR_NDR32, 30 + i, 0, 0, msg, len, pdu + off);
    }
    fd = cli_open();
    cli_send(fd, pdu, off);
    shutdown(fd, SHUT_WR);
    CU_ASSERT(cli_recv(fd, buf, sizeof(buf), 2000) > 0 && buf[2] == KR_PT_BIND_ACK);
    for (uint32_t i = 0; i < 2; i++) {
        struct kr_rpc_response rs;
        int got = cli_recv(fd, buf, sizeof(buf), 4000);
        CU_ASSERT_FATAL(got > 0 && kr_rpc_response_decode(buf, (size_t)got, &rs, NULL) == 0);
        CU_ASSERT_EQUAL(rs.hdr.call_id, 30 + i);
    }
    CU_ASSERT_EQUAL(cli_recv(fd, buf, sizeof(buf), 2000), 0);
    pump(20);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.activations_ok, 3);
    close(fd);
    teardown();
}

/* A slow host: queued attempts wait for the pool's one connection and are
 * answered on it; an answer slower than the attempt timeout moves on to the
 * next host. Connections are pooled: one per host for all of this. */
static void test_slow_host_and_pool(void)
{
    setup();
    T->fx.conf.pool_size = 1;
    uint32_t i = 800, j = 801;
    while (ranked(j, 0) != ranked(i, 0))
        j++;
    int h = ranked(i, 0);
    T->fh[h].delay_ms = 100;
    uint8_t msg[KR_NDR_MSG_MAX], pdu[KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    struct kr_kms_request q;
    int fd1 = cli_open(), fd2 = cli_open();
    cli_bind32(fd1);
    cli_bind32(fd2);
    size_t n = mk_request(KR_NDR32, 2, 0, 0, msg, mk_kms(i, msg, &q), pdu);
    cli_send(fd1, pdu, n);
    n = mk_request(KR_NDR32, 2, 0, 0, msg, mk_kms(j, msg, &q), pdu);
    cli_send(fd2, pdu, n);
    CU_ASSERT(cli_recv(fd1, buf, sizeof(buf), 2000) > 0 && buf[2] == KR_PT_RESPONSE);
    CU_ASSERT(cli_recv(fd2, buf, sizeof(buf), 2000) > 0 && buf[2] == KR_PT_RESPONSE);
    CU_ASSERT_EQUAL(T->fh[h].requests, 2);
    CU_ASSERT_EQUAL(T->fh[h].accepted, 1);
    CU_ASSERT_EQUAL(T->fx.r.stats.retries, 0);

    T->fh[h].delay_ms = 450;                       /* slower than attempt_timeout */
    CU_ASSERT_EQUAL(activate(fd1, i, 4, NULL), 0); /* pinned to h: fails over */
    CU_ASSERT(T->fx.r.stats.retries >= 1);
    /* issue 11 #4: one client's failure does not move its pin while h is
     * UP; it is served elsewhere and stays pinned to h */
    CU_ASSERT(pinned_to(i, h));
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_moved, 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.activations_failed, 0);
    close(fd1);
    close(fd2);
    teardown();
}

/* Mutated and truncated copies of real conversations, one session each:
 * never a crash (ASan watches), and a valid client is served afterwards. */
static void test_mutations(void)
{
    setup();
    const struct kr_vec *v = vec("v6_ndr64_two_requests");
    uint8_t buf[KR_RPC_FRAG_MAX], wire[4 * KR_RPC_FRAG_MAX];
    uint32_t seed = 12345;
    for (int it = 0; it < 400; it++) {
        size_t len = 0;
        for (size_t i = 0; i < v->n_c2s; i++) {
            memcpy(wire + len, v->c2s[i].bytes, v->c2s[i].len);
            len += v->c2s[i].len;
        }
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            wire[at] ^= (uint8_t)(1u << ((seed >> 4) & 7));
        }
        if (it % 5 == 0)
            len = (seed >> 3) % len; /* cut short */
        int fd = cli_open();
        if (len)
            cli_send(fd, wire, len);
        shutdown(fd, SHUT_WR);
        while (cli_recv(fd, buf, sizeof(buf), 300) > 0)
            ; /* whatever comes, until the relay closes */
        close(fd);
    }
    pump(50);
    CU_ASSERT(T->fx.r.stats.bad_pdus > 0);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 0);
    CU_ASSERT_EQUAL(T->fx.r.reqs_inflight, 0);
    int fd = cli_open();
    cli_bind32(fd);
    CU_ASSERT_EQUAL(activate(fd, 900, 2, NULL), 0);
    close(fd);
    teardown();
}

/* ---- issue 11: hardening of the data path -------------------------------- */

/* Sends one request carrying `msg` (any length) and returns the HRESULT
 * (faults as 0xFFFF0000|status). */
static uint32_t send_msg(int fd, uint32_t call_id, const uint8_t *msg, size_t len)
{
    uint8_t pdu[KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    size_t n = mk_request(KR_NDR32, call_id, 0, 0, msg, len, pdu);
    cli_send(fd, pdu, n);
    int got = cli_recv(fd, buf, sizeof(buf), 6000);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_EQUAL(kr_le32(buf + 12), call_id);
    if (buf[2] == KR_PT_FAULT)
        return 0xFFFF0000u | kr_le32(buf + 24);
    struct kr_rpc_response rs;
    struct kr_ndr_resp nr;
    CU_ASSERT_FATAL(kr_rpc_response_decode(buf, (size_t)got, &rs, NULL) == 0);
    CU_ASSERT_FATAL(kr_ndr_resp_decode(KR_NDR32, rs.stub, rs.stub_len, &nr, NULL) == 0);
    return nr.hresult;
}

static unsigned all_requests(void)
{
    unsigned n = 0;
    for (int k = 0; k < NHOST; k++)
        n += T->fh[k].requests;
    return n;
}

/* #4: a request padded beyond its version's size (vlmcsd closes on it) is
 * answered 0x8007000D by the relay itself and reaches no host; so is a
 * short one and one with bytes after the message. */
static void test_exact_request_size(void)
{
    setup();
    relax_timeouts();
    int fd = cli_open();
    cli_bind32(fd);
    uint8_t msg[KR_NDR_MSG_MAX];
    struct kr_kms_request q;
    size_t len = mk_kms(300, msg, &q);
    CU_ASSERT_EQUAL_FATAL(len, KR_KMS_V4_REQ_LEN);
    memset(msg + len, 0, sizeof(msg) - len);
    CU_ASSERT_EQUAL(send_msg(fd, 2, msg, len + 48), KR_HR_INVALID_DATA);  /* padded */
    CU_ASSERT_EQUAL(send_msg(fd, 3, msg, 1024 - 64), KR_HR_INVALID_DATA); /* much more */
    CU_ASSERT_EQUAL(all_requests(), 0);
    CU_ASSERT_EQUAL(send_msg(fd, 4, msg, len), 0); /* the exact size is served */
    CU_ASSERT_EQUAL(all_requests(), 1);
    close(fd);
    teardown();
}

/* #4: a message every host closes on is the client's fault: the client
 * gets 0x8007000D, no host is blamed (4 such requests of distinct CMIDs
 * used to take every host DOWN), no pin moves. */
static void test_poison_blames_client(void)
{
    setup();
    relax_timeouts();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 400;
    int a = ranked(i, 0);
    CU_ASSERT_EQUAL(activate(fd, i, 2, NULL), 0);
    CU_ASSERT(pinned_to(i, a));
    for (int k = 0; k < NHOST; k++)
        T->fh[k].drop = true;
    for (uint32_t n = 0; n < 4; n++)
        CU_ASSERT_EQUAL(activate(fd, 410 + n, 3 + n, NULL), KR_HR_INVALID_DATA);
    CU_ASSERT_EQUAL(activate(fd, i, 9, NULL), KR_HR_INVALID_DATA);
    for (int k = 0; k < NHOST; k++) {
        CU_ASSERT_EQUAL(T->fx.hosts[k].health, KR_HEALTH_UP);
        CU_ASSERT(T->fh[k].requests >= 5);
        T->fh[k].drop = false;
    }
    CU_ASSERT(pinned_to(i, a));
    CU_ASSERT_EQUAL(T->fx.r.stats.pins_moved, 0);
    CU_ASSERT_EQUAL(activate(fd, i, 10, NULL), 0);
    CU_ASSERT(pinned_to(i, a));
    close(fd);
    teardown();
}

/* #4: a host that closes on one client's request while its checks pass
 * keeps that client's pin (served elsewhere); a host that fails the
 * requests of several distinct clients goes DOWN, and only then pins move. */
static void test_passive_pins_distinct_clients(void)
{
    setup();
    relax_timeouts();
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 500;
    int a = ranked(i, 0);
    CU_ASSERT_EQUAL(activate(fd, i, 2, NULL), 0);
    T->fh[a].drop = true; /* only a closes: the others answer */
    CU_ASSERT_EQUAL(activate(fd, i, 3, NULL), 0);
    CU_ASSERT_EQUAL(activate(fd, i, 4, NULL), 0);
    CU_ASSERT_EQUAL(activate(fd, i, 5, NULL), 0);
    CU_ASSERT(pinned_to(i, a)); /* one client, however often: not a's fault */
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_UP);
    uint32_t call = 6;
    for (uint32_t j = 501, n = 0; n < 3 && j < 700; j++)
        if (ranked(j, 0) == a) {
            CU_ASSERT_EQUAL(activate(fd, j, call++, NULL), 0);
            n++;
        }
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_DOWN);
    CU_ASSERT(strstr(T->fx.hosts[a].health_reason, "distinct clients") != NULL);
    CU_ASSERT_EQUAL(activate(fd, i, call++, NULL), 0);
    CU_ASSERT(!pinned_to(i, a)); /* now it moves */
    close(fd);
    teardown();
}

/* #5: a hung host (binds answered, requests never) goes DOWN from the
 * timeouts of distinct clients although its bind checks keep passing, and
 * passing checks alone do not bring it back UP. */
static void test_hung_host_down(void)
{
    setup();
    T->fx.conf.check_interval_ms = 100;
    T->fx.conf.check_fast_interval_ms = 100;
    T->fx.conf.check_timeout_ms = 1000;
    int fd = cli_open();
    cli_bind32(fd);
    int a = ranked(600, 0);
    for (int k = 0; k < NHOST; k++)
        kr_health_start(&T->fx.hosts[k]);
    pump(300);
    T->fh[a].hang = true;
    uint32_t call = 2, n = 0;
    for (uint32_t j = 600; n < 4 && j < 800; j++) {
        if (ranked(j, 0) != a)
            continue;
        CU_ASSERT_EQUAL(activate(fd, j, call++, NULL), 0); /* served by the next host */
        n++;
        pump(250); /* a bind check passes between two requests */
    }
    CU_ASSERT(T->fx.hosts[a].stats.checks_ok >= 4);
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_DOWN);
    CU_ASSERT(strstr(T->fx.hosts[a].health_reason, "timeout") != NULL);
    uint64_t ok = T->fx.hosts[a].stats.checks_ok;
    pump(400);
    CU_ASSERT(T->fx.hosts[a].stats.checks_ok > ok);
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_DOWN); /* binds alone: not UP */
    for (int k = 0; k < NHOST; k++)
        kr_health_stop(&T->fx.hosts[k]);
    close(fd);
    teardown();
}

/* #5: a host whose listener is dead but whose pooled connection still
 * answers goes DOWN by the connect failures of its checks. */
static void test_dead_listener_live_pool(void)
{
    setup();
    relax_timeouts();
    T->fx.conf.pool_size = 1;
    T->fx.conf.check_interval_ms = 100;
    T->fx.conf.check_fast_interval_ms = 100;
    int fd = cli_open();
    cli_bind32(fd);
    uint32_t i = 700;
    int a = ranked(i, 0);
    CU_ASSERT_EQUAL(activate(fd, i, 2, NULL), 0);
    evconnlistener_free(T->fh[a].lst); /* the listener dies, the connection lives */
    T->fh[a].lst = NULL;
    for (int k = 0; k < NHOST; k++)
        kr_health_start(&T->fx.hosts[k]);
    unsigned before = T->fh[a].answers;
    for (uint32_t n = 0; n < 16 && T->fx.hosts[a].health == KR_HEALTH_UP; n++) {
        CU_ASSERT_EQUAL(activate(fd, i, 3 + n, NULL), 0);
        pump(60);
    }
    CU_ASSERT(T->fh[a].answers > before); /* the pool did answer meanwhile */
    CU_ASSERT_EQUAL(T->fx.hosts[a].health, KR_HEALTH_DOWN);
    CU_ASSERT(strstr(T->fx.hosts[a].health_reason, "connect") != NULL);
    for (int k = 0; k < NHOST; k++)
        kr_health_stop(&T->fx.hosts[k]);
    close(fd);
    teardown();
}

/* #6: a host that sends an unsolicited extra reply right after its answer
 * (here an error reply carrying the next call id): the pooled connection is
 * closed instead of reused, and no client ever gets the extra reply. */
static struct fhost desync_host;

static void desync_read(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n = evbuffer_get_length(in);
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        struct kr_rpc_hdr hdr;
        int flen = n ? kr_rpc_frame(p, n, 0, &hdr, NULL) : KR_EMORE;
        if (flen == KR_EMORE)
            return;
        CU_ASSERT_FATAL(flen > 0);
        if (hdr.ptype == KR_PT_BIND) {
            static const struct kr_rpc_bind_policy pol = {0, 0, 1};
            struct kr_rpc_bind b;
            struct kr_rpc_bind_ack ack;
            uint8_t out[256];
            size_t olen = 0;
            CU_ASSERT_FATAL(kr_rpc_bind_decode(p, (size_t)flen, &b, NULL) == 0);
            kr_rpc_bind_answer(&b, &pol, 1688, 0x1234, &ack);
            kr_rpc_bind_ack_encode(&ack, out, sizeof(out), &olen);
            bufferevent_write(bev, out, olen);
            evbuffer_drain(in, (size_t)flen);
            continue;
        }
        struct kr_rpc_request rq;
        CU_ASSERT_FATAL(kr_rpc_request_decode(p, (size_t)flen, &rq, NULL) == 0);
        desync_host.requests++;
        fake_answer(c, &rq);
        /* the extra: an error reply for the call id the next request gets */
        uint8_t stub[32], extra[64];
        size_t stub_len = 0, elen = 0;
        struct kr_rpc_response rs;
        kr_ndr_resp_encode(KR_NDR32, NULL, 0, 0xC004F074u, stub, sizeof(stub), &stub_len);
        memset(&rs, 0, sizeof(rs));
        rs.hdr.ptype = KR_PT_RESPONSE;
        rs.hdr.call_id = rq.hdr.call_id + 1;
        rs.alloc_hint = (uint32_t)stub_len;
        rs.stub = stub;
        rs.stub_len = stub_len;
        CU_ASSERT_FATAL(kr_rpc_response_encode(&rs, extra, sizeof(extra), &elen) == 0);
        memcpy(c->out + c->out_len, extra, elen);
        bufferevent_write(bev, c->out, c->out_len + elen);
        evbuffer_drain(in, (size_t)flen);
    }
}

static void desync_event(struct bufferevent *bev, short what, void *arg)
{
    struct fconn *c = arg;
    bufferevent_free(c->bev);
    free(c);
}

static void desync_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct fconn *c = calloc(1, sizeof(*c));
    c->h = &desync_host;
    c->bev = bufferevent_socket_new(desync_host.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, desync_read, NULL, desync_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    desync_host.accepted++;
}

static void test_pooled_desync(void)
{
    setup();
    relax_timeouts();
    T->fx.conf.pool_size = 1;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(&desync_host, 0, sizeof(desync_host));
    desync_host.base = T->base;
    desync_host.count = 50;
    desync_host.lst = evconnlistener_new_bind(T->base, desync_accept, NULL,
                                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                              (struct sockaddr *)&sin, sizeof(sin));
    CU_ASSERT_FATAL(desync_host.lst != NULL);
    getsockname(evconnlistener_get_fd(desync_host.lst), (struct sockaddr *)&sin, &sl);
    /* one host only: every request goes to the desynchronising one */
    T->fx.r.n_hosts = 1;
    T->fx.hosts[0].conf.addr.len = sizeof(sin);
    memcpy(&T->fx.hosts[0].conf.addr.ss, &sin, sizeof(sin));
    int fd = cli_open();
    cli_bind32(fd);
    unsigned bad = 0;
    for (uint32_t n = 0; n < 20; n++) {
        struct kr_kms_response resp;
        uint32_t hr = activate(fd, 1000 + n, 2 + n, &resp);
        bad += hr != 0;
        if (n % 4 == 0)
            pump(5);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(desync_host.requests, 20);
    CU_ASSERT(desync_host.accepted >= 10); /* connections were closed, not reused */
    close(fd);
    T->fx.r.n_hosts = NHOST;
    teardown();
    evconnlistener_free(desync_host.lst);
}

/* #15: a 17th context on one connection is refused in the ack (provider
 * rejection, local limit exceeded), not accepted and then faulted. */
static void test_bind_context_limit(void)
{
    setup();
    int fd = cli_open();
    uint8_t pdu[KR_RPC_FRAG_MAX], buf[KR_RPC_FRAG_MAX];
    size_t n = 0;
    struct kr_rpc_bind b;
    struct kr_rpc_bind_ack ack;
    memset(&b, 0, sizeof(b));
    b.hdr.ptype = KR_PT_BIND;
    b.hdr.call_id = 1;
    b.max_xmit = b.max_recv = 5840;
    b.n_ctx = KR_RPC_MAX_CTX;
    for (unsigned k = 0; k < KR_RPC_MAX_CTX; k++) {
        b.ctx[k].ctx_id = (uint16_t)k;
        b.ctx[k].n_ts = 1;
        memcpy(b.ctx[k].abstract.uuid, kr_rpc_kms_iface, 16);
        b.ctx[k].abstract.version = 1;
        memcpy(b.ctx[k].ts[0].uuid, kr_rpc_ndr32_uuid, 16);
        b.ctx[k].ts[0].version = 2;
    }
    CU_ASSERT_FATAL(kr_rpc_bind_encode(&b, pdu, sizeof(pdu), &n) == 0);
    cli_send(fd, pdu, n);
    int got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)got, &ack, NULL) == 0);
    for (unsigned k = 0; k < KR_RPC_MAX_CTX; k++)
        CU_ASSERT_EQUAL(ack.results[k].result, KR_BIND_ACCEPT);
    /* one more context: alter_context with ctx id 16 */
    b.hdr.ptype = KR_PT_ALTER;
    b.hdr.call_id = 2;
    b.n_ctx = 1;
    b.ctx[0].ctx_id = KR_RPC_MAX_CTX;
    CU_ASSERT_FATAL(kr_rpc_bind_encode(&b, pdu, sizeof(pdu), &n) == 0);
    cli_send(fd, pdu, n);
    got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)got, &ack, NULL) == 0);
    CU_ASSERT_EQUAL(ack.n_results, 1);
    CU_ASSERT_EQUAL(ack.results[0].result, KR_BIND_PROVIDER_REJECT);
    CU_ASSERT_EQUAL(ack.results[0].reason, KR_REASON_LOCAL_LIMIT_EXCEEDED);
    /* an existing context is renegotiated fine */
    b.ctx[0].ctx_id = 3;
    b.hdr.call_id = 3;
    CU_ASSERT_FATAL(kr_rpc_bind_encode(&b, pdu, sizeof(pdu), &n) == 0);
    cli_send(fd, pdu, n);
    got = cli_recv(fd, buf, sizeof(buf), 2000);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_FATAL(kr_rpc_bind_ack_decode(buf, (size_t)got, &ack, NULL) == 0);
    CU_ASSERT_EQUAL(ack.results[0].result, KR_BIND_ACCEPT);
    close(fd);
    teardown();
}

/* #16: per-source limits count an IPv6 /64 (clients.ipv6_prefix) as one
 * source; another /64 is another source. */
static int cli_open6(const char *addr)
{
    int sv[2];
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    CU_ASSERT_FATAL(inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1);
    sin6.sin6_port = htons(50000);
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    kr_front_accept(&T->fx.r, sv[0], (struct sockaddr *)&sin6, sizeof(sin6), LISTEN_PORT);
    return sv[1];
}

static void test_ipv6_source_prefix(void)
{
    setup();
    T->fx.conf.max_conn_per_source = 2;
    T->fx.conf.n_allow = 0; /* the default allow-list has no global IPv6 */
    int fds[4];
    fds[0] = cli_open6("2001:db8:1:2::1");
    fds[1] = cli_open6("2001:db8:1:2:ffff::99");
    fds[2] = cli_open6("2001:db8:1:2:1234:5678:9abc:def0"); /* same /64: refused */
    fds[3] = cli_open6("2001:db8:1:3::1");                  /* another /64 */
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_limited, 1);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 3);
    for (int k = 0; k < 4; k++)
        close(fds[k]);
    pump(50);
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_open, 0);
    T->fx.conf.ipv6_prefix = 128; /* whole addresses again */
    fds[0] = cli_open6("2001:db8:1:2::1");
    fds[1] = cli_open6("2001:db8:1:2::2");
    fds[2] = cli_open6("2001:db8:1:2::3");
    CU_ASSERT_EQUAL(T->fx.r.stats.conns_limited, 1);
    for (int k = 0; k < 3; k++)
        close(fds[k]);
    pump(50);
    teardown();
}

/* front.c sets no socket option per client: listen.c sets TCP_NODELAY on
 * the listening socket, which Linux copies to every accepted one. This
 * checks that kernel behaviour (a kernel without it would add Nagle delays
 * to every answer). */
static void test_nodelay_inherited(void)
{
    int one = 1, v = 0;
    socklen_t vl = sizeof(v);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(l >= 0);
    CU_ASSERT(setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
    CU_ASSERT_FATAL(bind(l, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(l, 4) == 0);
    CU_ASSERT_FATAL(getsockname(l, (struct sockaddr *)&sin, &sl) == 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    CU_ASSERT_FATAL(a >= 0);
    CU_ASSERT(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0);
    CU_ASSERT(v != 0);
    close(a);
    close(c);
    close(l);
}

KR_SUITE(proxy)
{
    CU_pSuite s = CU_add_suite("proxy", NULL, NULL);
    CU_add_test(s, "windows8_sequence", test_windows8_sequence);
    CU_add_test(s, "half_close", test_half_close);
    CU_add_test(s, "all_vectors", test_all_vectors);
    CU_add_test(s, "faults_keep_session", test_faults_keep_session);
    CU_add_test(s, "malformed_isolated", test_malformed_isolated);
    CU_add_test(s, "per_request_routing", test_per_request_routing);
    CU_add_test(s, "host_closes_each_time", test_host_closes_each_time);
    CU_add_test(s, "failover_kinds", test_failover_kinds);
    CU_add_test(s, "pin_moves", test_pin_moves);
    CU_add_test(s, "refusal_reroute", test_refusal_reroute);
    CU_add_test(s, "threshold_assist", test_threshold_assist);
    CU_add_test(s, "no_host", test_no_host);
    CU_add_test(s, "client_gone", test_client_gone);
    CU_add_test(s, "pipeline_and_rate", test_pipeline_and_rate);
    CU_add_test(s, "slow_host_and_pool", test_slow_host_and_pool);
    CU_add_test(s, "mutations", test_mutations);
    CU_add_test(s, "exact_request_size", test_exact_request_size);
    CU_add_test(s, "poison_blames_client", test_poison_blames_client);
    CU_add_test(s, "passive_pins_distinct_clients", test_passive_pins_distinct_clients);
    CU_add_test(s, "hung_host_down", test_hung_host_down);
    CU_add_test(s, "dead_listener_live_pool", test_dead_listener_live_pool);
    CU_add_test(s, "pooled_desync", test_pooled_desync);
    CU_add_test(s, "bind_context_limit", test_bind_context_limit);
    CU_add_test(s, "ipv6_source_prefix", test_ipv6_source_prefix);
    CU_add_test(s, "nodelay_inherited", test_nodelay_inherited);
}
