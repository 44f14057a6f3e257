/*
 * sync.c - the protocol on a link (kmsrelay/peerproto.h): both sides say
 * HELLO with how far they got in every origin's changes; each then streams
 * its own changes from the other's mark, or a full copy of its table
 * (RESYNC) when its log no longer reaches back or the other knew an older
 * incarnation. Received changes are merged by last writer wins.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "peer/peer-internal.h"
#include "relay/relay.h"

#define OUT_HIGH (1024 * 1024) /* stop streaming above this much unsent */

static void send_hello(struct peer_conn *c)
{
    struct kr_peers *P = c->P;
    struct kr_peer_mark m[KR_CONF_MAX_PEERS];
    size_t n = 0;
    for (size_t i = 0; i < P->n_peers; i++) {
        snprintf(m[n].origin, sizeof(m[n].origin), "%s", P->peers[i].name);
        m[n].inc = P->peers[i].have_inc;
        m[n].seq = P->peers[i].have_seq;
        n++;
    }
    uint8_t f[KR_PEER_FRAME_MAX];
    size_t len;
    if (kr_peer_enc_hello(P->self, P->inc, m, n, f, sizeof(f), &len) == 0)
        link_send(c, f, len);
    c->hello_sent = true;
}

void sync_on_tls_up(struct peer_conn *c)
{
    send_hello(c);
}

/* ---- sending ------------------------------------------------------------- */

static void send_change(struct peer_conn *c, const char *origin, uint64_t seq, uint64_t hlc,
                        uint8_t kind, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen)
{
    struct kr_peer_change ch;
    memset(&ch, 0, sizeof(ch));
    snprintf(ch.origin, sizeof(ch.origin), "%s", origin);
    ch.seq = seq;
    ch.hlc = hlc;
    ch.kind = kind;
    ch.key = key;
    ch.key_len = (uint16_t)klen;
    ch.val = val;
    ch.val_len = (uint16_t)vlen;
    uint8_t f[KR_PEER_FRAME_MAX];
    size_t len;
    if (kr_peer_enc_change(&ch, f, sizeof(f), &len) == 0) {
        link_send(c, f, len);
        c->peer->st.sent++;
    }
}

/* The version a key has here: recorded, or for a value without a record
 * (written before this process started) its own time, as if by us. */
static void version_of(struct kr_peers *P, uint8_t mk, const uint8_t *key, size_t klen, int64_t t_s,
                       uint64_t *hlc, const char **origin, bool *deleted)
{
    struct meta_ent *m = meta_get(P, mk, key, klen);
    if (m) {
        *hlc = m->hlc;
        *origin = P->origins[m->origin];
        *deleted = m->deleted;
    } else {
        *hlc = (uint64_t)(t_s > 0 ? t_s : 0) * 1000u << 16;
        *origin = P->self;
        *deleted = false;
    }
}

static int snap_pin(const struct kr_pin *pin, void *arg)
{
    struct peer_conn *c = arg;
    uint8_t rec[KR_PIN_REC_MAX], key[KR_PIN_KEY_LEN];
    size_t len;
    if (kr_pin_encode(pin, rec, sizeof(rec), &len) != 0)
        return 0;
    kr_pin_key(pin->cmid, pin->app_id, key);
    uint64_t hlc;
    const char *origin;
    bool del;
    char o[KR_CONF_NAME_MAX];
    pthread_mutex_lock(&c->P->mu);
    version_of(c->P, KR_PEER_PIN_PUT, key, sizeof(key), pin->last_seen, &hlc, &origin, &del);
    snprintf(o, sizeof(o), "%s", origin);
    pthread_mutex_unlock(&c->P->mu);
    if (!del)
        send_change(c, o, 0, hlc, KR_PEER_PIN_PUT, key, sizeof(key), rec, len);
    return 0;
}

static int snap_host(const struct kr_host_rec *h, void *arg)
{
    struct peer_conn *c = arg;
    uint8_t v[5];
    if (h->weight < 1 || h->weight > 10000)
        return 0;
    kr_peer_host_encode(h->admin, h->weight, v);
    uint64_t hlc;
    const char *origin;
    bool del;
    char o[KR_CONF_NAME_MAX];
    pthread_mutex_lock(&c->P->mu);
    version_of(c->P, KR_PEER_HOST, (const uint8_t *)h->name, strlen(h->name), h->changed, &hlc,
               &origin, &del);
    snprintf(o, sizeof(o), "%s", origin);
    pthread_mutex_unlock(&c->P->mu);
    send_change(c, o, 0, hlc, KR_PEER_HOST, (const uint8_t *)h->name, strlen(h->name), v, 5);
    return 0;
}

static void snap_count(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    struct peer_conn *c = arg;
    uint64_t hlc;
    const char *origin;
    bool del;
    char o[KR_CONF_NAME_MAX];
    pthread_mutex_lock(&c->P->mu);
    version_of(c->P, KR_PEER_COUNT, key, klen, kr_wall_s(), &hlc, &origin, &del);
    snprintf(o, sizeof(o), "%s", origin);
    pthread_mutex_unlock(&c->P->mu);
    send_change(c, o, 0, hlc, KR_PEER_COUNT, key, klen, val, vlen);
}

/* Forgotten pins: a peer that still has one must learn it is gone. */
static void snap_tombstones(struct peer_conn *c)
{
    struct kr_peers *P = c->P;
    pthread_mutex_lock(&P->mu);
    for (size_t i = 0; i < P->meta_cap; i++) {
        const struct meta_ent *m = &P->meta[i];
        if (m->klen && m->deleted)
            send_change(c, P->origins[m->origin], 0, m->hlc, KR_PEER_PIN_DEL, m->key, m->klen, NULL,
                        0);
    }
    pthread_mutex_unlock(&P->mu);
}

static void send_resync(struct peer_conn *c)
{
    struct kr_peers *P = c->P;
    uint8_t f[64];
    size_t len;
    pthread_mutex_lock(&P->mu);
    uint64_t upto = P->seq;
    pthread_mutex_unlock(&P->mu);
    uint64_t t0 = kr_now_us(), sent0 = c->peer->st.sent;
    if (kr_peer_enc_resync(P->inc, upto, 0, f, sizeof(f), &len) == 0)
        link_send(c, f, len);
    kr_store_pin_iter(P->store, snap_pin, c);
    kr_store_host_iter(P->store, snap_host, c);
    snap_tombstones(c);
    counts_snapshot(P, snap_count, c);
    if (kr_peer_enc_resync(P->inc, upto, 1, f, sizeof(f), &len) == 0)
        link_send(c, f, len);
    c->next_seq = upto + 1;
    c->peer->st.resyncs_sent++;
    kr_log(KR_LOG_INFO, "event=peer_resync_sent peer=%s changes=%llu upto=%llu ms=%llu",
           c->peer->name, (unsigned long long)(c->peer->st.sent - sent0), (unsigned long long)upto,
           (unsigned long long)((kr_now_us() - t0) / 1000));
}

void sync_pump(struct peer_conn *c)
{
    struct kr_peers *P = c->P;
    if (!c->peer || !c->hello_got || c->closing)
        return;
    while (link_out_pending(c) < OUT_HIGH) {
        uint8_t buf[KR_PEER_FRAME_MAX];
        uint64_t hlc;
        uint8_t kind;
        size_t klen, vlen;
        pthread_mutex_lock(&P->mu);
        if (c->next_seq > P->seq) {
            pthread_mutex_unlock(&P->mu);
            return;
        }
        const struct log_ent *e = log_get(P, c->next_seq);
        if (!e) { /* fell out of the log while the link was slow */
            pthread_mutex_unlock(&P->mu);
            send_resync(c);
            continue;
        }
        hlc = e->hlc;
        kind = e->kind;
        klen = e->klen;
        vlen = e->vlen;
        memcpy(buf, e->buf, klen + vlen);
        pthread_mutex_unlock(&P->mu);
        send_change(c, P->self, c->next_seq, hlc, kind, buf, klen, buf + klen, vlen);
        c->next_seq++;
    }
}

/* ---- receiving ----------------------------------------------------------- */

static void refuse(struct peer_conn *c, const char *name, const char *why)
{
    kr_log(KR_LOG_WARN, "event=peer_refused peer=%s remote=%s reason=\"%s\"", name, c->remote, why);
    if (c->peer)
        c->peer->st.refused++;
    else
        c->P->refused++;
    c->closing = true;
}

static struct peer *find_peer(struct kr_peers *P, const char *name)
{
    for (size_t i = 0; i < P->n_peers; i++)
        if (strcmp(P->peers[i].name, name) == 0)
            return &P->peers[i];
    return NULL;
}

static void on_hello(struct peer_conn *c, const struct kr_peer_frame *f)
{
    struct kr_peers *P = c->P;
    struct peer *p = find_peer(P, f->name);
    if (!p)
        return refuse(c, f->name, "not a configured peer");
    if (c->outbound && p != c->peer)
        return refuse(c, f->name, "answered with another peer's name");
    if (!link_cert_names(c, f->name))
        return refuse(c, f->name, "its certificate does not carry that name");
    if (!c->outbound) {
        if (p->link && p->link != c)
            link_close(p->link, "replaced by a new link");
        c->peer = p;
        p->link = c;
    }
    c->hello_got = true;
    uint64_t inc = 0, seq = 0;
    for (unsigned i = 0; i < f->n_marks; i++)
        if (strcmp(f->marks[i].origin, P->self) == 0) {
            inc = f->marks[i].inc;
            seq = f->marks[i].seq;
        }
    peer_link_up(p);
    pthread_mutex_lock(&P->mu);
    bool from_log = inc == P->inc && seq <= P->seq && seq + 1 >= P->log_first;
    pthread_mutex_unlock(&P->mu);
    p->acked = inc == P->inc ? seq : 0;
    if (from_log) {
        c->next_seq = seq + 1;
        kr_log(KR_LOG_INFO, "event=peer_catchup peer=%s from=%llu", p->name,
               (unsigned long long)(seq + 1));
    } else {
        send_resync(c);
    }
    sync_pump(c);
}

/* The version here of a key without a recorded one (see version_of). */
static bool local_default(struct kr_peers *P, const struct kr_peer_change *ch, uint64_t *hlc)
{
    if (ch->kind == KR_PEER_COUNT)
        return false; /* counts: the newest received or scanned wins */
    if (ch->kind == KR_PEER_HOST) {
        char name[KR_PEER_NAME_MAX];
        struct kr_host_rec h;
        memcpy(name, ch->key, ch->key_len);
        name[ch->key_len] = '\0';
        if (kr_store_host_get(P->store, name, &h) != 0)
            return false;
        *hlc = (uint64_t)(h.changed > 0 ? h.changed : 0) * 1000u << 16;
        return true;
    }
    struct kr_pin pin;
    if (kr_store_pin_get(P->store, ch->key, ch->key + 16, &pin) != 0)
        return false;
    *hlc = (uint64_t)(pin.last_seen > 0 ? pin.last_seen : 0) * 1000u << 16;
    return true;
}

/* Last writer wins: true when the change is newer than what is here (and
 * then recorded as the key's version). */
bool peer_wins(struct kr_peers *P, const struct kr_peer_change *ch)
{
    uint8_t mk = ch->kind == KR_PEER_PIN_DEL ? KR_PEER_PIN_PUT : ch->kind;
    uint64_t dh = 0;
    bool have_default = false;
    pthread_mutex_lock(&P->mu);
    bool known = meta_get(P, mk, ch->key, ch->key_len) != NULL;
    pthread_mutex_unlock(&P->mu);
    if (!known) /* store reads outside the lock */
        have_default = local_default(P, ch, &dh);
    pthread_mutex_lock(&P->mu);
    if (ch->hlc > P->hlc)
        P->hlc = ch->hlc; /* HLC receive rule: our next change sorts after */
    struct meta_ent *m = meta_get(P, mk, ch->key, ch->key_len);
    bool win = true;
    if (m)
        win = kr_peer_lww_cmp(ch->hlc, ch->origin, m->hlc, P->origins[m->origin]) > 0;
    else if (have_default)
        win = kr_peer_lww_cmp(ch->hlc, ch->origin, dh, P->self) > 0;
    int o = win ? meta_origin(P, ch->origin) : -1;
    if (win && o >= 0)
        meta_set(P, mk, ch->key, ch->key_len, ch->hlc, (uint8_t)o, ch->kind == KR_PEER_PIN_DEL);
    pthread_mutex_unlock(&P->mu);
    return win && o >= 0;
}

static void apply_host(struct kr_peers *P, const struct kr_peer_change *ch, const char *from)
{
    char name[KR_PEER_NAME_MAX];
    uint8_t admin;
    uint32_t weight;
    memcpy(name, ch->key, ch->key_len);
    name[ch->key_len] = '\0';
    if (kr_peer_host_decode(ch->val, ch->val_len, &admin, &weight) != 0)
        return;
    struct kr_host *h = kr_relay_host_by_name(P->relay, name);
    if (!h)
        return; /* not one of our hosts (yet): the version is kept */
    char why[96];
    snprintf(why, sizeof(why), "peer %s", from);
    if (h->admin != admin)
        kr_relay_set_admin(P->relay, h, admin, why);
    if (kr_host_weight(h) != weight)
        kr_relay_set_weight(P->relay, h, weight);
}

static int apply(struct peer_conn *c, const struct kr_peer_change *ch)
{
    struct kr_peers *P = c->P;
    struct kr_pin pin;
    const char *why = NULL;
    if (ch->kind == KR_PEER_PIN_PUT && kr_pin_decode(ch->val, ch->val_len, &pin, &why) != 0) {
        kr_log(KR_LOG_WARN, "event=peer_bad_change peer=%s reason=\"pin record: %s\"",
               c->peer->name, why ? why : "");
        return 0; /* one bad record is not a reason to drop the link */
    }
    if (!peer_wins(P, ch))
        return 0;
    peer_applying = true;
    if (ch->kind == KR_PEER_PIN_PUT) {
        memcpy(pin.cmid, ch->key, 16);
        memcpy(pin.app_id, ch->key + 16, 16);
        kr_store_pin_put(P->store, &pin);
    } else if (ch->kind == KR_PEER_PIN_DEL) {
        kr_store_pin_del(P->store, ch->key, ch->key + 16);
    } else if (ch->kind == KR_PEER_HOST) {
        apply_host(P, ch, c->peer->name);
    } else {
        counts_apply(P, ch);
    }
    peer_applying = false;
    c->peer->st.applied++;
    return 1;
}

static void on_frame(struct peer_conn *c, const struct kr_peer_frame *f)
{
    struct peer *p = c->peer;
    if (f->type == KR_PEER_HELLO) {
        if (c->hello_got)
            return refuse(c, f->name, "HELLO twice");
        return on_hello(c, f);
    }
    if (!c->hello_got)
        return refuse(c, "?", "a frame before HELLO");
    switch (f->type) {
    case KR_PEER_CHANGE:
        p->st.received++;
        apply(c, &f->ch);
        if (f->ch.seq && !c->in_resync && strcmp(f->ch.origin, p->name) == 0 &&
            f->ch.seq > p->have_seq)
            p->have_seq = f->ch.seq;
        c->unacked++;
        break;
    case KR_PEER_ACK:
        if (f->inc == c->P->inc)
            p->acked = f->seq;
        break;
    case KR_PEER_RESYNC:
        if (f->phase == 0) {
            c->in_resync = true;
        } else {
            c->in_resync = false;
            p->have_inc = f->inc;
            p->have_seq = f->seq;
            p->st.resyncs_received++;
            kr_log(KR_LOG_INFO, "event=peer_resync_done peer=%s upto=%llu", p->name,
                   (unsigned long long)f->seq);
        }
        c->unacked++;
        break;
    default:
        break;
    }
}

void sync_on_read(struct peer_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->closing) {
        size_t have = evbuffer_get_length(in);
        if (have < 4)
            break;
        uint8_t hdr[4];
        evbuffer_copyout(in, hdr, 4);
        size_t need = 4 + (size_t)kr_le32(hdr);
        if (need > KR_PEER_FRAME_MAX)
            need = 4; /* let the decoder say why */
        if (have < need)
            break;
        const uint8_t *buf = evbuffer_pullup(in, (ssize_t)(need < have ? need : have));
        struct kr_peer_frame f;
        size_t used = 0;
        const char *why = "";
        int rc = kr_peer_decode(buf, need < have ? need : have, &f, &used, &why);
        if (rc == KR_EMORE)
            break;
        if (rc != 0) {
            refuse(c, c->peer ? c->peer->name : "?", why);
            break;
        }
        if (c->peer)
            c->peer->st.bytes_in += used;
        on_frame(c, &f);
        evbuffer_drain(in, used);
    }
    if (c->closing) {
        link_close(c, "protocol error or refused");
        return;
    }
    if (c->unacked && c->peer)
        sync_ack(c);
}

void sync_ack(struct peer_conn *c)
{
    uint8_t f[64];
    size_t len;
    if (kr_peer_enc_ack(c->peer->have_inc, c->peer->have_seq, f, sizeof(f), &len) == 0)
        link_send(c, f, len);
    c->unacked = 0;
}
