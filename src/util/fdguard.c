/*
 * fdguard.c - the descriptor budget and the listeners' accept guard (see
 * fdguard.h for the model).
 *
 * Process-wide state (limit, reserve, log bucket) is plain statics: the
 * daemon runs one event loop in one thread and has one budget.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "kmsrelay/fdguard.h"
#include "kmsrelay/log.h"
#include "kmsrelay/netaddr.h"

static uint64_t fd_limit, fd_reserve = KR_FD_RESERVE_BASE;

uint64_t kr_fd_raise_limit(void)
{
    static bool done;
    struct rlimit rl;
    if (done)
        return kr_fd_limit();
    done = true;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return kr_fd_limit();
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            kr_log(KR_LOG_INFO, "event=fd_limit soft=%llu was=%llu hard=%llu",
                   (unsigned long long)rl.rlim_cur, (unsigned long long)old,
                   (unsigned long long)rl.rlim_max);
    }
    fd_limit = 0; /* read again */
    return kr_fd_limit();
}

uint64_t kr_fd_limit(void)
{
    struct rlimit rl;
    if (!fd_limit) {
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
            fd_limit = 1u << 20;
        else
            fd_limit = (uint64_t)rl.rlim_cur;
    }
    return fd_limit;
}

void kr_fd_set_reserve(uint64_t n)
{
    fd_reserve = n;
}

uint64_t kr_fd_reserve(void)
{
    return fd_reserve;
}

bool kr_fd_within_budget(int fd)
{
    uint64_t lim = kr_fd_limit();
    return fd >= 0 && (uint64_t)fd + fd_reserve < lim;
}

uint64_t kr_fd_client_room(void)
{
    uint64_t used = fd_reserve + KR_METRICS_MAX_CONNS + KR_CONTROL_MAX_CONNS;
    uint64_t lim = kr_fd_limit();
    return lim > used ? lim - used : 0;
}

bool kr_fd_log_allowed(uint64_t *suppressed)
{
    static struct kr_log_bucket bucket;
    return kr_log_allowed(&bucket, suppressed);
}

/* ---- guards ---------------------------------------------------------------- */

struct kr_fd_guard {
    struct evconnlistener *lev;
    struct event_base *base;
    struct event *resume;
    char name[32];
    uint32_t cap, open;
    uint64_t header_ms;
    struct bufferevent *(*inner)(struct event_base *, void *);
    void *inner_arg;
    bool starved;    /* paused for descriptors, episode not over */
    bool at_cap;     /* disabled because of the cap */
    uint32_t pauses; /* in this episode */
};

/* One connection of an evhttp guard, from evhttp's bevcb until its
 * connection close callback. */
struct gconn {
    struct kr_fd_guard *g;
    struct bufferevent *bev; /* evhttp's, borrowed */
    struct evbuffer_cb_entry *scan;
    struct event *ev; /* first: hook the close; then: the header deadline */
    uint8_t nl;       /* end-of-headers scanner: 1 after "\n", ignoring "\r" */
    bool hooked, headers_done;
};

static void update_listening(struct kr_fd_guard *g)
{
    if (!g->lev)
        return; /* stopped: the listener is gone */
    bool want = !g->starved && !(g->cap && g->open >= g->cap);
    if (g->cap && g->open >= g->cap && !g->at_cap) {
        uint64_t dropped = 0;
        if (kr_fd_log_allowed(&dropped))
            kr_log(KR_LOG_WARN,
                   "event=accept_capped listener=%s open=%u cap=%u action=\"new connections "
                   "wait\" suppressed=%llu",
                   g->name, g->open, g->cap, (unsigned long long)dropped);
    }
    g->at_cap = g->cap && g->open >= g->cap;
    if (want)
        evconnlistener_enable(g->lev);
    else
        evconnlistener_disable(g->lev);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct kr_fd_guard *g = arg;
    g->starved = false; /* try again; a new EMFILE starts another pause */
    update_listening(g);
}

static void on_error(struct evconnlistener *lev, void *arg)
{
    struct kr_fd_guard *g = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        struct timeval tv = {0, KR_FD_PAUSE_MS * 1000};
        if (!g->pauses) /* one line per episode, not one per pause */
            kr_log(KR_LOG_WARN, "event=accept_paused listener=%s error=\"%s\" pause_ms=%d", g->name,
                   strerror(err), KR_FD_PAUSE_MS);
        g->pauses++;
        g->starved = true;
        evconnlistener_disable(lev);
        evtimer_add(g->resume, &tv);
        return;
    }
    uint64_t dropped = 0;
    if (kr_fd_log_allowed(&dropped))
        kr_log(KR_LOG_WARN, "event=accept_error listener=%s error=\"%s\" suppressed=%llu", g->name,
               strerror(err), (unsigned long long)dropped);
}

static struct kr_fd_guard *guard_new(struct evconnlistener *lev, struct event_base *base,
                                     const char *name)
{
    struct kr_fd_guard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->lev = lev;
    g->base = base;
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->resume = evtimer_new(base, on_resume, g);
    if (!g->resume) {
        free(g);
        return NULL;
    }
    evconnlistener_set_error_cb(lev, on_error);
    return g;
}

/* ---- evhttp connections -------------------------------------------------
 *
 * evhttp (2.1) tells nobody when it frees a connection except through the
 * connection's close callback, and the bevcb sees the bufferevent before
 * the connection exists. So the bevcb makes the bufferevent and activates
 * the connection's event; that runs in the same loop iteration, after the
 * listener's callback and before any I/O on the new socket could make
 * evhttp free it, finds the connection (the bufferevent's callback
 * argument) and sets the close callback, which releases the slot. */

static void gconn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct gconn *gc = arg;
    struct kr_fd_guard *g = gc->g;
    if (gc->scan)
        evbuffer_remove_cb_entry(bufferevent_get_input(gc->bev), gc->scan);
    event_free(gc->ev);
    free(gc);
    g->open--;
    if (g->at_cap)
        update_listening(g);
}

static void gconn_ev(evutil_socket_t fd, short what, void *arg)
{
    struct gconn *gc = arg;
    if (!gc->hooked) {
        void *evcon = NULL;
        gc->hooked = true;
        bufferevent_getcb(gc->bev, NULL, NULL, NULL, &evcon);
        if (!evcon) { /* not evhttp's (cannot happen): stop counting it */
            gc->g->open--;
            evbuffer_remove_cb_entry(bufferevent_get_input(gc->bev), gc->scan);
            event_free(gc->ev);
            free(gc);
            return;
        }
        evhttp_connection_set_closecb(evcon, gconn_closed, gc);
        if (gc->g->header_ms && !gc->headers_done) {
            uint64_t ms = gc->g->header_ms;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            evtimer_add(gc->ev, &tv);
        }
        return;
    }
    if (gc->headers_done)
        return;
    uint64_t dropped = 0;
    if (kr_fd_log_allowed(&dropped))
        kr_log(KR_LOG_INFO,
               "event=header_timeout listener=%s deadline_ms=%llu action=closed suppressed=%llu",
               gc->g->name, (unsigned long long)gc->g->header_ms, (unsigned long long)dropped);
    /* evhttp owns the connection: end it from below, it sees an EOF */
    evutil_socket_t s = bufferevent_getfd(gc->bev);
    if (s >= 0)
        shutdown(s, SHUT_RDWR);
}

/* Watches the bytes evhttp is given for the empty line that ends the
 * header block (a header rewrite by another callback only repeats it). */
static void gconn_scan(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct gconn *gc = arg;
    if (gc->headers_done || !info->n_added)
        return;
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[8];
    size_t len = evbuffer_get_length(b);
    size_t from = len > info->n_added ? len - info->n_added : 0; /* appended at the end */
    if (evbuffer_ptr_set(b, &at, from, EVBUFFER_PTR_SET) != 0)
        return;
    int n = evbuffer_peek(b, (ev_ssize_t)info->n_added, &at, v, 8);
    for (int i = 0; i < n && i < 8 && !gc->headers_done; i++) {
        const unsigned char *p = v[i].iov_base;
        for (size_t k = 0; k < v[i].iov_len && !gc->headers_done; k++) {
            if (p[k] == '\n') {
                gc->headers_done = gc->nl;
                gc->nl = 1;
            } else if (p[k] != '\r') {
                gc->nl = 0;
            }
        }
    }
    if (gc->headers_done && gc->hooked)
        evtimer_del(gc->ev);
}

static struct bufferevent *guard_bevcb(struct event_base *base, void *arg)
{
    struct kr_fd_guard *g = arg;
    /* without CLOSE_ON_FREE, as evhttp makes its own: it closes the fd */
    struct bufferevent *bev =
        g->inner ? g->inner(base, g->inner_arg) : bufferevent_socket_new(base, -1, 0);
    struct gconn *gc = bev ? calloc(1, sizeof(*gc)) : NULL;
    if (!gc)
        return bev; /* served, not counted */
    gc->g = g;
    gc->bev = bev;
    gc->ev = event_new(base, -1, 0, gconn_ev, gc);
    gc->scan = gc->ev ? evbuffer_add_cb(bufferevent_get_input(bev), gconn_scan, gc) : NULL;
    if (!gc->scan) {
        if (gc->ev)
            event_free(gc->ev);
        free(gc);
        return bev;
    }
    g->open++;
    if (g->pauses) {
        kr_log(KR_LOG_INFO, "event=accept_resumed listener=%s pauses=%u", g->name, g->pauses);
        g->pauses = 0;
    }
    event_active(gc->ev, EV_TIMEOUT, 1);
    update_listening(g);
    return bev;
}

struct kr_fd_guard *kr_fd_guard_evhttp(struct evhttp *http, struct evhttp_bound_socket *bound,
                                       const char *name, uint32_t cap, uint64_t header_ms,
                                       struct bufferevent *(*inner)(struct event_base *, void *),
                                       void *inner_arg)
{
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(bound);
    if (!lev)
        return NULL;
    struct kr_fd_guard *g = guard_new(lev, evconnlistener_get_base(lev), name);
    if (!g)
        return NULL;
    g->cap = cap;
    g->header_ms = header_ms;
    g->inner = inner;
    g->inner_arg = inner_arg;
    evhttp_set_bevcb(http, guard_bevcb, g);
    return g;
}

uint32_t kr_fd_guard_open(const struct kr_fd_guard *g)
{
    return g ? g->open : 0;
}

void kr_fd_guard_stop(struct kr_fd_guard *g)
{
    if (!g)
        return;
    g->lev = NULL;
    evtimer_del(g->resume);
}

void kr_fd_guard_free(struct kr_fd_guard *g)
{
    if (!g)
        return;
    event_free(g->resume);
    free(g);
}
