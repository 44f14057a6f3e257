/*
 * listen.c - the client-facing listening sockets.
 *
 * Each configured address gets its own socket: SO_REUSEADDR (restart while
 * old connections linger in TIME_WAIT), IPV6_V6ONLY on IPv6 sockets so that
 * "[::]:1688" and "0.0.0.0:1688" coexist, backlog 1024, port 0 allowed (the
 * kernel picks; kr_relay_listen_addrs() tells which). Accepted sockets are
 * non-blocking and handed to front.c with the listener's real port, which
 * the bind_ack's secondary address must carry. TCP_NODELAY is set on the
 * listening socket once: Linux gives it to every accepted socket. One
 * accept4() per readiness of the level-triggered listening socket (a loop
 * until EAGAIN would spend one more call per wake-up finding it empty).
 *
 * Out of descriptors (EMFILE/ENFILE): the pending connection cannot be
 * accepted, so the socket stays readable and a naive loop would spin. The
 * listener is paused for a moment instead, then resumed.
 *
 * Descriptor budget (fdguard.h): the first apply raises the soft
 * RLIMIT_NOFILE to the hard one; every apply sets the reserve kept for
 * backend pools and health checks and checks that clients.max_connections
 * fits next to it and the metrics and control caps. When it does not, the
 * client cap in force is what fits (warned at start and reload); a limit
 * that leaves room for fewer than LISTEN_MIN_ROOM clients gets a warning
 * and no reserve at all (EMFILE then pauses accepting, as before). An
 * accepted client whose descriptor reaches into the reserve, or beyond the
 * cap in force, is closed at once (rate-limited log), so backends and
 * checks keep working when clients exhaust descriptors.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/fdguard.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

#define LISTEN_BACKLOG 1024
#define PAUSE_MS 250
#define LISTEN_MIN_ROOM 16

/* Client connections allowed in force (clients.max_connections, or less
 * when the descriptor budget has no room for it). One relay per process. */
static uint64_t client_cap = UINT64_MAX;
static bool budget_warned;

struct kr_listener {
    struct kr_listener *next;
    struct kr_relay *relay;
    int fd;
    struct event *ev; /* persistent read: one accept4() per readiness */
    struct event *resume;
    struct kr_addr want;  /* as configured */
    struct kr_addr bound; /* as bound (real port) */
    char text[KR_ADDRSTRLEN];
    bool starved;    /* out of descriptors since the last accepted client */
    uint32_t pauses; /* in this episode */
};

static bool same_addr(const struct kr_addr *a, const struct kr_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void on_accept(struct kr_listener *l, evutil_socket_t fd, struct sockaddr *sa, int salen)
{
    struct kr_relay *r = l->relay;
    if (l->starved) {
        kr_log(KR_LOG_INFO, "event=accept_resumed listen=%s pauses=%u", l->text, l->pauses);
        l->starved = false;
        l->pauses = 0;
    }
    bool fd_ok = kr_fd_within_budget(fd);
    /* a cap that is just clients.max_connections is limits.c's to refuse,
     * with its own reason */
    bool over = client_cap < r->conf->max_connections && r->stats.conns_open >= client_cap;
    if (!fd_ok || over) {
        uint64_t dropped = 0;
        r->stats.conns_limited++;
        if (kr_fd_log_allowed(&dropped)) {
            char peer[KR_ADDRSTRLEN];
            kr_addr_format(sa, peer);
            kr_log(KR_LOG_WARN,
                   "event=client_denied client=%s reason=\"%s\" open=%llu cap=%llu fd=%d "
                   "suppressed=%llu",
                   peer,
                   fd_ok ? "client connection cap of the descriptor budget"
                         : "descriptor reserve reached",
                   (unsigned long long)r->stats.conns_open, (unsigned long long)client_cap, (int)fd,
                   (unsigned long long)dropped);
        }
        close(fd);
        return;
    }
    kr_front_accept(l->relay, fd, sa, salen, kr_addr_port((struct sockaddr *)&l->bound.ss));
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct kr_listener *l = arg;
    event_add(l->ev, NULL);
}

static void on_error(struct kr_listener *l, int err)
{
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        struct timeval tv = {0, PAUSE_MS * 1000};
        /* One line per episode, not one per pause. */
        if (!l->starved)
            kr_log(KR_LOG_WARN, "event=accept_paused listen=%s error=\"%s\" pause_ms=%d", l->text,
                   strerror(err), PAUSE_MS);
        l->starved = true;
        l->pauses++;
        event_del(l->ev);
        evtimer_add(l->resume, &tv);
        return;
    }
    kr_log(KR_LOG_WARN, "event=accept_error listen=%s error=\"%s\"", l->text, strerror(err));
}

/* One accept per readiness: level-triggered, the loop calls again while
 * connections wait, and no accept4() is spent finding the queue empty. */
static void on_readable(evutil_socket_t lfd, short what, void *arg)
{
    struct kr_listener *l = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        on_accept(l, fd, (struct sockaddr *)&ss, (int)len);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
        return; /* another process, or a client gone before we got to it */
    on_error(l, errno);
}

static void listener_free(struct kr_listener *l)
{
    if (l->ev)
        event_free(l->ev);
    if (l->fd >= 0)
        close(l->fd);
    if (l->resume)
        event_free(l->resume);
    free(l);
}

static int listener_open(struct kr_relay *r, const struct kr_addr *a, struct kr_listener **out,
                         char *err, size_t errlen)
{
    char text[KR_ADDRSTRLEN];
    int one = 1, fd = -1;
    struct kr_listener *l = NULL;

    kr_addr_format((const struct sockaddr *)&a->ss, text);
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    /* one small PDU each way: latency is all that matters. Set here once:
     * Linux copies TCP_NODELAY to every accepted socket (front.c relies on
     * it; test_proxy checks it) */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
        goto fail;
    if (listen(fd, LISTEN_BACKLOG) != 0)
        goto fail;

    l = calloc(1, sizeof(*l));
    if (!l) {
        errno = ENOMEM;
        goto fail;
    }
    l->fd = -1;
    l->relay = r;
    l->want = *a;
    l->bound.len = sizeof(l->bound.ss);
    if (getsockname(fd, (struct sockaddr *)&l->bound.ss, &l->bound.len) != 0)
        goto fail;
    kr_addr_format((const struct sockaddr *)&l->bound.ss, l->text);
    l->fd = fd; /* owned by the listener from here on */
    fd = -1;
    l->resume = evtimer_new(r->base, on_resume, l);
    l->ev = event_new(r->base, l->fd, EV_READ | EV_PERSIST, on_readable, l);
    if (!l->resume || !l->ev || event_add(l->ev, NULL) != 0) {
        errno = ENOMEM;
        goto fail;
    }
    *out = l;
    return 0;

fail:
    snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(errno));
    if (l)
        listener_free(l);
    if (fd >= 0)
        close(fd);
    return KR_EIO;
}

uint64_t kr_relay_fd_reserve(const struct kr_conf *c)
{
    uint32_t pool = c->pool_size ? c->pool_size : 1;
    /* each host: its pool and one health check; discovered hosts too */
    uint64_t hosts = c->n_hosts + (c->n_discover ? KR_CONF_MAX_HOSTS : 0);
    return KR_FD_RESERVE_BASE + hosts * (pool + 1);
}

/* The descriptor budget for config c: reserve, client cap in force. */
static void budget_apply(const struct kr_conf *c)
{
    uint64_t limit = kr_fd_raise_limit();
    kr_fd_set_reserve(kr_relay_fd_reserve(c));
    uint64_t room = kr_fd_client_room();
    if (room < LISTEN_MIN_ROOM) {
        /* no budget worth the name: keep the old behaviour (EMFILE pauses
         * accepting) rather than refuse every client, and say so */
        if (!budget_warned)
            kr_log(KR_LOG_WARN,
                   "event=fd_budget limit=%llu reserve=%llu other_caps=%d msg=\"the descriptor "
                   "limit is too small for a reserve and the listeners' caps: running without "
                   "a reserve; raise it (LimitNOFILE=) or lower backend.pool_size\"",
                   (unsigned long long)limit, (unsigned long long)kr_fd_reserve(),
                   KR_METRICS_MAX_CONNS + KR_CONTROL_MAX_CONNS);
        budget_warned = true;
        kr_fd_set_reserve(0);
        client_cap = c->max_connections;
        return;
    }
    budget_warned = false;
    uint64_t want = c->max_connections;
    uint64_t cap = want < room ? want : room;
    if (cap < want && cap != client_cap)
        kr_log(KR_LOG_WARN,
               "event=fd_budget setting=clients.max_connections value=%llu limit=%llu "
               "reserve=%llu in_force=%llu msg=\"the descriptor limit has no room for this many "
               "clients; raise it (LimitNOFILE=) or lower clients.max_connections\"",
               (unsigned long long)want, (unsigned long long)limit,
               (unsigned long long)kr_fd_reserve(), (unsigned long long)cap);
    client_cap = cap;
}

int relay_listen_apply(struct kr_relay *r, const struct kr_conf *c, char *err, size_t errlen)
{
    struct kr_listener *fresh[KR_CONF_MAX_LISTEN] = {0}, *keep[KR_CONF_MAX_LISTEN] = {0};

    budget_apply(c);

    for (size_t i = 0; i < c->n_listen; i++) {
        for (struct kr_listener *l = r->listeners; l; l = l->next)
            if (same_addr(&l->want, &c->listen[i]))
                keep[i] = l;
        if (keep[i])
            continue;
        if (listener_open(r, &c->listen[i], &fresh[i], err, errlen) != 0) {
            for (size_t j = 0; j < i; j++)
                if (fresh[j])
                    listener_free(fresh[j]);
            return KR_EIO;
        }
        kr_log(KR_LOG_INFO, "event=listen addr=%s", fresh[i]->text);
    }
    /* Close what the new config drops, then relink in config order. */
    for (struct kr_listener *l = r->listeners, *next; l; l = next) {
        next = l->next;
        bool kept = false;
        for (size_t i = 0; i < c->n_listen; i++)
            kept |= keep[i] == l;
        if (!kept) {
            kr_log(KR_LOG_INFO, "event=unlisten addr=%s", l->text);
            listener_free(l);
        }
    }
    struct kr_listener **tail = &r->listeners;
    for (size_t i = 0; i < c->n_listen; i++) {
        struct kr_listener *l = keep[i] ? keep[i] : fresh[i];
        *tail = l;
        tail = &l->next;
    }
    *tail = NULL;
    return 0;
}

void relay_listen_close_all(struct kr_relay *r)
{
    for (struct kr_listener *l = r->listeners, *next; l; l = next) {
        next = l->next;
        listener_free(l);
    }
    r->listeners = NULL;
}

void relay_listen_describe(const struct kr_relay *r, char *out, size_t cap)
{
    size_t n = 0;
    if (cap)
        out[0] = '\0';
    for (const struct kr_listener *l = r->listeners; l && n + 1 < cap; l = l->next) {
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", l->text);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

size_t kr_relay_listen_addrs(const struct kr_relay *r, struct kr_addr *out, size_t max)
{
    size_t n = 0;
    for (const struct kr_listener *l = r->listeners; l && n < max; l = l->next)
        out[n++] = l->bound;
    return n;
}

void kr_relay_stop_accepting(struct kr_relay *r)
{
    if (r->listeners)
        kr_log(KR_LOG_INFO, "event=stop_accepting listeners=closed");
    relay_listen_close_all(r);
}
