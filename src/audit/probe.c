/*
 * probe.c - does a KMS host answer at addr:port? One blocking TCP connect
 * and one DCE/RPC bind offering the KMS interface with NDR32 (context 0)
 * and NDR64 (context 1), the way a Windows client binds; a bind_ack that
 * accepts either is a KMS host. Nothing else is ever sent: no activation
 * request, so probing is invisible to the host's client count.
 *
 * Blocking by design: kmsrelayctl runs it directly and the daemon from its
 * audit worker thread, never on the event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/err.h"
#include "kmsrelay/rpc.h"

#define PROBE_CALL_ID 0x41554454u /* "AUDT": easy to spot in a capture */
#define PROBE_MAX_FRAG 5840

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t t = now_us();
    return t >= deadline ? 0 : (int)((deadline - t + 999) / 1000);
}

static int make_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof(*a6);
        return 0;
    }
    return KR_EINVAL;
}

/* Non-blocking connect bounded by timeout_ms; 0 or an errno value. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, unsigned timeout_ms)
{
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    struct pollfd p = {fd, POLLOUT, 0};
    int r;
    do
        r = poll(&p, 1, (int)timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return ETIMEDOUT;
    if (r < 0)
        return errno;
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        return errno;
    return err;
}

static size_t bind_pdu(uint8_t *out, size_t cap)
{
    size_t len = 0;
    return kr_rpc_kms_bind_encode(PROBE_CALL_ID, PROBE_MAX_FRAG, true, out, cap, &len) == 0 ? len
                                                                                            : 0;
}

/* Judges one whole answer PDU; fills t->stage and error/result. */
static void judge(const uint8_t *pdu, size_t len, const struct kr_rpc_hdr *hdr,
                  struct kr_audit_try *t)
{
    struct kr_rpc_bind_ack ack;
    const char *why = NULL;
    if (hdr->ptype == KR_PT_BIND_NAK) {
        snprintf(t->error, sizeof(t->error), "bind_nak");
        return;
    }
    if (hdr->ptype != KR_PT_BIND_ACK) {
        snprintf(t->error, sizeof(t->error), "%s instead of bind_ack",
                 kr_rpc_ptype_name(hdr->ptype));
        return;
    }
    if (kr_rpc_bind_ack_decode(pdu, len, &ack, &why) != 0) {
        snprintf(t->error, sizeof(t->error), "bad bind_ack: %s", why ? why : "malformed");
        return;
    }
    int kind = kr_rpc_kms_bind_accepted(&ack);
    if (kind) {
        t->stage = KR_PROBE_OK;
        snprintf(t->result, sizeof(t->result), "bind_ack: KMS interface accepted with %s",
                 kind == KR_TS_NDR64 ? "NDR64" : "NDR32");
        return;
    }
    snprintf(t->error, sizeof(t->error), "bind_ack rejects the KMS interface (result %u reason %u)",
             ack.n_results ? ack.results[0].result : 0, ack.n_results ? ack.results[0].reason : 0);
}

/* Reads one PDU within the deadline and judges it. */
static void read_answer(int fd, uint64_t deadline, struct kr_audit_try *t)
{
    uint8_t buf[KR_RPC_FRAG_MAX];
    size_t have = 0;
    for (;;) {
        struct kr_rpc_hdr hdr;
        const char *why = NULL;
        int flen = have ? kr_rpc_frame(buf, have, sizeof(buf), &hdr, &why) : KR_EMORE;
        if (flen > 0) {
            judge(buf, (size_t)flen, &hdr, t);
            return;
        }
        if (flen != KR_EMORE) {
            snprintf(t->error, sizeof(t->error), "not DCE/RPC: %s", why ? why : "malformed");
            return;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int ms = remaining_ms(deadline);
        int r = ms > 0 ? poll(&p, 1, ms) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(t->error, sizeof(t->error),
                     r == 0 ? "no bind_ack within the timeout" : "poll failed");
            return;
        }
        ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (n == 0) {
            snprintf(t->error, sizeof(t->error), "connection closed before bind_ack");
            return;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            snprintf(t->error, sizeof(t->error), "recv: %s", strerror(errno));
            return;
        }
        have += (size_t)n;
    }
}

int kr_audit_probe_kms(const char *addr, uint16_t port, unsigned timeout_ms,
                       struct kr_audit_try *out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(out, 0, sizeof(*out));
    snprintf(out->addr, sizeof(out->addr), "%s", addr);
    out->port = port;
    if (make_addr(addr, port, &ss, &sl) != 0) {
        out->stage = KR_PROBE_CONNECT;
        snprintf(out->error, sizeof(out->error), "not a numeric address");
        return KR_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        out->stage = KR_PROBE_CONNECT;
        snprintf(out->error, sizeof(out->error), "socket: %s", strerror(errno));
        return 0;
    }
    uint64_t t0 = now_us();
    int err = connect_timeout(fd, (struct sockaddr *)&ss, sl, timeout_ms);
    uint64_t t1 = now_us();
    out->connect_us = (uint32_t)(t1 - t0);
    if (err) {
        out->stage = KR_PROBE_CONNECT;
        snprintf(out->error, sizeof(out->error), "%s",
                 err == ETIMEDOUT ? "connect timed out" : strerror(err));
        close(fd);
        return 0;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    out->stage = KR_PROBE_BIND;
    uint8_t pdu[256];
    size_t len = bind_pdu(pdu, sizeof(pdu));
    if (len == 0 || send(fd, pdu, len, MSG_NOSIGNAL) != (ssize_t)len) {
        snprintf(out->error, sizeof(out->error), "cannot send the bind: %s",
                 len ? strerror(errno) : "encode failed");
    } else {
        read_answer(fd, t1 + (uint64_t)timeout_ms * 1000u, out);
    }
    out->bind_us = (uint32_t)(now_us() - t1);
    close(fd);
    return 0;
}
