/*
 * counts.c - the hosts' last reported counts (per application), so that
 * every relay's report and threshold assist see what any relay learned.
 * They live in the relay's memory (kr_host.counts), not in the store, so
 * they are not seen by the store observer: a 1 s timer looks for values
 * that differ from the last ones sent or received and sends those.
 */
#include <string.h>

#include <event2/event.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/log.h"
#include "peer/peer-internal.h"
#include "relay/relay.h"

static struct count_seen *seen(struct kr_peers *P, uint64_t hkey, const uint8_t app[16], bool add)
{
    for (size_t i = 0; i < P->n_counts; i++)
        if (P->counts[i].hkey == hkey && memcmp(P->counts[i].app, app, 16) == 0)
            return &P->counts[i];
    if (!add || P->n_counts == PEER_COUNTS)
        return NULL;
    struct count_seen *c = &P->counts[P->n_counts++];
    memset(c, 0, sizeof(*c));
    c->hkey = hkey;
    memcpy(c->app, app, 16);
    c->count = UINT32_MAX; /* never a real value: the first one is new */
    return c;
}

static size_t key_of(const struct kr_host *h, const uint8_t app[16], uint8_t *key)
{
    size_t n = strlen(h->conf.name);
    memcpy(key, app, 16);
    memcpy(key + 16, h->conf.name, n);
    return 16 + n;
}

static void heartbeat(struct kr_peers *P)
{
    if (++P->beat % PEER_HEARTBEAT_S != 0)
        return;
    for (size_t i = 0; i < P->n_peers; i++)
        if (P->peers[i].link && P->peers[i].link->hello_got)
            sync_ack(P->peers[i].link);
}

/* Once a minute: versions older than pin_idle are of no use any more. */
static void prune(struct kr_peers *P)
{
    if (P->beat % 60 != 0 || !P->relay->conf)
        return;
    uint64_t idle_ms = P->relay->conf->pin_idle_ms, now_ms = (uint64_t)kr_wall_s() * 1000u;
    if (now_ms <= idle_ms)
        return;
    pthread_mutex_lock(&P->mu);
    size_t n = meta_prune(P, (now_ms - idle_ms) << 16);
    pthread_mutex_unlock(&P->mu);
    if (n)
        kr_log(KR_LOG_DEBUG, "event=peer_versions_pruned count=%zu", n);
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
    struct kr_peers *P = arg;
    struct kr_relay *r = P->relay;
    heartbeat(P);
    prune(P);
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        for (size_t k = 0; !h->removed && k < KR_HOST_APPS; k++) {
            const struct kr_app_count *ac = &h->counts[k];
            struct count_seen *c = ac->when_us ? seen(P, h->hrw.key, ac->app_id, true) : NULL;
            if (!c || (c->count == ac->count && c->n_policy == ac->n_policy))
                continue;
            c->count = ac->count;
            c->n_policy = ac->n_policy;
            uint8_t key[16 + KR_CONF_NAME_MAX], val[8];
            kr_put_le32(val, ac->count);
            kr_put_le32(val + 4, ac->n_policy);
            peer_own_change(P, KR_PEER_COUNT, key, key_of(h, ac->app_id, key), val, sizeof(val));
        }
    }
}

int counts_start(struct kr_peers *P)
{
    P->count_timer = event_new(P->base, -1, EV_PERSIST, on_scan, P);
    struct timeval tv = {1, 0};
    return P->count_timer && event_add(P->count_timer, &tv) == 0 ? 0 : -1;
}

void counts_apply(struct kr_peers *P, const struct kr_peer_change *ch)
{
    char name[KR_PEER_NAME_MAX];
    memcpy(name, ch->key + 16, ch->key_len - 16u);
    name[ch->key_len - 16u] = '\0';
    struct kr_host *h = kr_relay_host_by_name(P->relay, name);
    if (!h)
        return;
    uint32_t count = kr_le32(ch->val), n_policy = kr_le32(ch->val + 4);
    struct count_seen *c = seen(P, h->hrw.key, ch->key, true);
    if (c) { /* not ours to send again */
        c->count = count;
        c->n_policy = n_policy;
    }
    kr_route_note_count(P->relay, h, ch->key, count, n_policy);
}

void counts_snapshot(struct kr_peers *P,
                     void (*send)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                                  size_t vlen),
                     void *arg)
{
    struct kr_relay *r = P->relay;
    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct kr_host *h = r->hosts[i];
        for (size_t k = 0; !h->removed && k < KR_HOST_APPS; k++) {
            const struct kr_app_count *ac = &h->counts[k];
            if (!ac->when_us)
                continue;
            uint8_t key[16 + KR_CONF_NAME_MAX], val[8];
            kr_put_le32(val, ac->count);
            kr_put_le32(val + 4, ac->n_policy);
            send(arg, key, key_of(h, ac->app_id, key), val, sizeof(val));
        }
    }
}
