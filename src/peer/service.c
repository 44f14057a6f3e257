/*
 * service.c - the replication service's lifecycle, the store observer that
 * turns every own pin and host write into a numbered change, and status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "peer/peer-internal.h"

__thread bool peer_applying;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Any thread: a write this relay decided. */
static void observe(void *ctx, int kind, const uint8_t *key, size_t klen, const uint8_t *val,
                    size_t vlen)
{
    struct kr_peers *P = ctx;
    if (peer_applying)
        return; /* a peer's change being applied, not ours */
    uint8_t hv[5], k;
    struct kr_host_rec rec;
    switch (kind) {
    case KR_STORE_CH_PIN_PUT:
        k = KR_PEER_PIN_PUT;
        break;
    case KR_STORE_CH_PIN_DEL:
        k = KR_PEER_PIN_DEL;
        break;
    case KR_STORE_CH_HOST:
        if (kr_store_host_rec_decode(key, klen, val, vlen, &rec) != 0 || rec.weight < 1 ||
            rec.weight > 10000)
            return;
        kr_peer_host_encode(rec.admin, rec.weight, hv);
        k = KR_PEER_HOST;
        val = hv;
        vlen = sizeof(hv);
        break;
    default:
        return;
    }
    peer_own_change(P, k, key, klen, val, vlen);
}

void peer_own_change(struct kr_peers *P, uint8_t k, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen)
{
    pthread_mutex_lock(&P->mu);
    P->hlc = kr_peer_hlc_next(P->hlc, wall_ms());
    uint8_t mk = k == KR_PEER_PIN_DEL ? KR_PEER_PIN_PUT : k;
    int rc = meta_set(P, mk, key, klen, P->hlc, 0, k == KR_PEER_PIN_DEL);
    if (rc == 0)
        rc = log_append(P, k, key, klen, val, vlen, P->hlc);
    pthread_mutex_unlock(&P->mu);
    if (rc != 0)
        kr_log(KR_LOG_ERR, "event=peer_error msg=\"out of memory recording a change\"");
    if (pthread_equal(pthread_self(), P->loop_thread)) {
        event_active(P->wake, EV_READ, 0);
    } else {
        /* A control job's thread: libevent is not thread-safe here, an
         * eventfd write is. */
        uint64_t one = 1;
        if (write(P->wake_fd, &one, sizeof(one)) < 0) {
            /* EAGAIN: the counter is full, a wake-up is pending anyway */
        }
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct kr_peers *P = arg;
    for (size_t i = 0; i < P->n_peers; i++)
        if (P->peers[i].link && P->peers[i].link->hello_got)
            sync_pump(P->peers[i].link);
}

static void on_wake_fd(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0) {
        /* EAGAIN: another wake-up drained it */
    }
    on_wake(fd, what, arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    if (!p->link)
        link_dial(p);
}

static int setup(struct kr_peers *P, const struct kr_conf *conf, char *err, size_t errlen)
{
    snprintf(P->self, sizeof(P->self), "%s", conf->peer_name);
    P->inc = (uint64_t)kr_wall_s() * 1000000u + (kr_now_us() % 1000000u);
    P->retry_ms = conf->peer_retry_ms;
    pthread_mutex_init(&P->mu, NULL);
    if (meta_init(P, conf->peer_log_size ? conf->peer_log_size : 100000) != 0) {
        snprintf(err, errlen, "peers: out of memory");
        return KR_ENOMEM;
    }
    meta_origin(P, P->self);
    P->wake = event_new(P->base, -1, 0, on_wake, P);
    P->loop_thread = pthread_self();
    P->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (P->wake_fd >= 0)
        P->wake_ev = event_new(P->base, P->wake_fd, EV_READ | EV_PERSIST, on_wake_fd, P);
    if (!P->wake_ev || event_add(P->wake_ev, NULL) != 0) {
        snprintf(err, errlen, "peers: cannot create the wake-up eventfd");
        return KR_EIO;
    }
    for (size_t i = 0; i < conf->n_peers; i++) {
        struct peer *p = &P->peers[P->n_peers++];
        p->P = P;
        snprintf(p->name, sizeof(p->name), "%s", conf->peers[i].name);
        p->addr = conf->peers[i].addr;
        p->we_connect = strcmp(P->self, p->name) < 0;
        p->retry = evtimer_new(P->base, on_retry, p);
        memcpy(p->st.name, p->name, sizeof(p->st.name));
        kr_addr_format((const struct sockaddr *)&p->addr.ss, p->st.address);
        meta_origin(P, p->name);
    }
    if (!P->wake) {
        snprintf(err, errlen, "peers: out of memory");
        return KR_ENOMEM;
    }
    int rc = link_tls_init(P, conf, err, errlen);
    if (rc == 0 && counts_start(P) != 0) {
        snprintf(err, errlen, "peers: out of memory");
        rc = KR_ENOMEM;
    }
    if (rc == 0)
        rc = link_listen(P, conf, err, errlen);
    return rc;
}

int kr_peers_start(struct event_base *base, const struct kr_conf *conf, struct kr_relay *relay,
                   struct kr_store *store, struct kr_peers **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!conf->peer_name[0])
        return 0;
    struct kr_peers *P = calloc(1, sizeof(*P));
    if (!P) {
        snprintf(err, errlen, "peers: out of memory");
        return KR_ENOMEM;
    }
    P->wake_fd = -1;
    P->base = base;
    P->relay = relay;
    P->store = store;
    int rc = setup(P, conf, err, errlen);
    if (rc != 0) {
        kr_peers_free(P);
        return rc;
    }
    kr_store_set_observer(store, observe, P);
    for (size_t i = 0; i < P->n_peers; i++)
        if (P->peers[i].we_connect)
            link_dial(&P->peers[i]);
    kr_log(KR_LOG_INFO, "event=peers_start name=%s peers=%zu log_size=%zu", P->self, P->n_peers,
           P->log_cap);
    *out = P;
    return 0;
}

int kr_peers_check(const struct kr_conf *conf, char *err, size_t errlen)
{
    if (!conf->peer_name[0])
        return 0;
    struct kr_peers P;
    memset(&P, 0, sizeof(P));
    int rc = link_tls_init(&P, conf, err, errlen);
    if (P.ctx)
        SSL_CTX_free(P.ctx);
    return rc;
}

void kr_peers_free(struct kr_peers *P)
{
    if (!P)
        return;
    if (P->store)
        kr_store_set_observer(P->store, NULL, NULL);
    link_free_all(P);
    for (size_t i = 0; i < P->n_peers; i++)
        if (P->peers[i].retry)
            event_free(P->peers[i].retry);
    if (P->wake)
        event_free(P->wake);
    if (P->wake_ev)
        event_free(P->wake_ev);
    if (P->wake_fd >= 0)
        close(P->wake_fd);
    if (P->count_timer)
        event_free(P->count_timer);
    if (P->ctx)
        SSL_CTX_free(P->ctx);
    meta_free(P);
    pthread_mutex_destroy(&P->mu);
    free(P);
}

void peer_link_up(struct peer *p)
{
    p->st.up = true;
    p->st.up_since = kr_wall_s();
    p->st.down_since = 0;
    p->P->alone_logged = false;
    kr_log(KR_LOG_INFO, "event=peer_up peer=%s", p->name);
}

void peer_link_down(struct peer *p, const char *why)
{
    bool was = p->st.up;
    p->st.up = false;
    p->link = NULL;
    if (why && why[0])
        snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", why);
    if (was) {
        p->st.down_since = kr_wall_s();
        kr_log(KR_LOG_WARN, "event=peer_down peer=%s error=\"%s\"", p->name, why ? why : "");
    }
    if (p->we_connect && !evtimer_pending(p->retry, NULL)) {
        struct timeval tv = {(time_t)(p->P->retry_ms / 1000),
                             (suseconds_t)((p->P->retry_ms % 1000) * 1000)};
        evtimer_add(p->retry, &tv);
    }
    peer_note_alone(p->P);
}

void peer_note_alone(struct kr_peers *P)
{
    for (size_t i = 0; i < P->n_peers; i++)
        if (P->peers[i].st.up)
            return;
    if (P->n_peers && !P->alone_logged) {
        P->alone_logged = true;
        kr_log(KR_LOG_WARN, "event=peers_alone msg=\"no peer reachable: serving alone with the "
                            "local table\"");
    }
}

size_t kr_peers_status(const struct kr_peers *P, struct kr_peer_status *out, size_t max)
{
    struct kr_peers *M = (struct kr_peers *)(uintptr_t)P; /* the mutex only */
    uint64_t now = kr_now_us();
    for (size_t i = 0; i < P->n_peers && i < max; i++) {
        const struct peer *p = &P->peers[i];
        out[i] = p->st;
        pthread_mutex_lock(&M->mu);
        uint64_t upto = p->acked;
        out[i].lag_changes = P->seq > upto ? P->seq - upto : 0;
        const struct log_ent *e = NULL;
        if (out[i].lag_changes) /* the oldest unacknowledged, or the oldest kept */
            e = log_get(P, upto + 1 >= P->log_first ? upto + 1 : P->log_first);
        out[i].lag_seconds = e ? (double)(now - e->at_us) / 1e6 : 0;
        pthread_mutex_unlock(&M->mu);
        out[i].resyncing = p->link && p->link->in_resync;
    }
    return P->n_peers;
}

void kr_peers_summary(const struct kr_peers *P, struct kr_peers_summary *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->self, sizeof(out->self), "%s", P->self);
    out->incarnation = P->inc;
    out->seq = P->seq;
    out->log_first = P->log_first;
    out->n_peers = P->n_peers;
    for (size_t i = 0; i < P->n_peers; i++)
        out->n_up += P->peers[i].st.up;
    out->refused = P->refused;
}
