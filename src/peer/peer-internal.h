/*
 * peer-internal.h - the replication service's state, shared by the files of
 * src/peer/ (and only by them).
 *
 *   codec.c    frames (kmsrelay/peerproto.h), LWW order, HLC
 *   meta.c     the version table (key -> hlc, origin) and the change log
 *   service.c  lifecycle, the store observer, status
 *   link.c     TLS 1.3 links: contexts, listener, connect, refuse
 *   sync.c     the protocol on an up link: HELLO, streaming, RESYNC, apply
 *
 * Locking: `mu` guards the clock, the version table and the log (the
 * observer runs in any thread); everything else belongs to the loop thread.
 */
#ifndef KR_PEER_INTERNAL_H
#define KR_PEER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "kmsrelay/peerproto.h"
#include "kmsrelay/store.h"
#include "peer/peer.h"

#define PEER_KEY_MAX 80 /* a pin key (32), a host name (<= 63), app id + name */
#define PEER_ORIGINS KR_PEER_MAX_ORIGINS
#define PEER_HEARTBEAT_S 5 /* an ACK at least this often on an up link */
#define PEER_DEAD_S 15     /* nothing received this long: the link is dead */

/* The version of one key: who decided last, and when. */
struct meta_ent {
    uint8_t key[PEER_KEY_MAX];
    uint8_t klen;   /* 0 = empty slot */
    uint8_t kind;   /* KR_PEER_PIN_PUT (pins, also deleted ones) or KR_PEER_HOST */
    uint8_t origin; /* index into origins[] */
    bool deleted;   /* a pin forgotten: a tombstone */
    uint64_t hlc;
};

/* One own change, kept for catch-up. */
struct log_ent {
    uint64_t hlc;
    uint64_t at_us; /* monotonic, for the lag in seconds */
    uint8_t kind;
    uint16_t klen, vlen;
    uint8_t *buf; /* key then value, owned */
};

struct peer_conn;

/* The last count of a (host, application) sent or received (counts.c). */
struct count_seen {
    uint64_t hkey; /* the host's HRW key (its name) */
    uint8_t app[16];
    uint32_t count, n_policy;
};
#define PEER_COUNTS (2 * KR_CONF_MAX_HOSTS * 4)

struct peer {
    struct kr_peers *P;
    char name[KR_CONF_NAME_MAX];
    struct kr_addr addr;
    bool we_connect;             /* our name sorts first: we dial */
    struct peer_conn *link;      /* the up (or connecting) link, NULL */
    struct event *retry;         /* dial again */
    uint64_t have_inc, have_seq; /* how far we got in its changes */
    uint64_t acked;              /* our last change it acknowledged (this link) */
    struct kr_peer_status st;    /* counters and texts; up/lag filled on demand */
};

struct kr_peers {
    struct event_base *base;
    struct kr_relay *relay;
    struct kr_store *store;
    char self[KR_CONF_NAME_MAX];
    uint64_t inc; /* incarnation: this process's start, µs since the epoch */
    uint64_t retry_ms;

    pthread_mutex_t mu;
    uint64_t hlc;        /* last timestamp given or seen */
    uint64_t seq;        /* last own change */
    struct log_ent *log; /* ring of log_cap; entry of seq s at (s - 1) % cap */
    size_t log_cap;
    uint64_t log_first; /* oldest seq kept (seq + 1 when empty) */
    struct meta_ent *meta;
    size_t meta_cap, meta_n; /* open addressing, cap a power of two */
    char origins[PEER_ORIGINS][KR_CONF_NAME_MAX];
    size_t n_origins; /* 0 is self */

    struct event *wake;    /* new own changes: stream them (loop thread) */
    pthread_t loop_thread; /* the thread of base */
    int wake_fd;           /* eventfd: the same from any other thread */
    struct event *wake_ev; /* reads wake_fd */
    SSL_CTX *ctx;
    uint8_t psk[128]; /* peers.psk_file, decoded; psk_len 0 = certificates */
    size_t psk_len;
    struct evconnlistener *lis;
    struct peer peers[KR_CONF_MAX_PEERS];
    size_t n_peers;
    struct peer_conn *conns; /* every open connection */
    uint64_t refused;        /* inbound refused before naming a peer */
    struct count_seen counts[PEER_COUNTS];
    size_t n_counts;
    struct event *count_timer; /* also sends the heartbeats */
    unsigned beat;
    bool alone_logged;
};

/* meta.c (call with mu held) */
int meta_init(struct kr_peers *P, size_t log_cap);
void meta_free(struct kr_peers *P);
/* The version of a key, NULL when none is known. */
struct meta_ent *meta_get(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen);
/* Sets it (adding the key). 0 or KR_ENOMEM. */
int meta_set(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen, uint64_t hlc,
             uint8_t origin, bool deleted);
/* Forgets every version older than `before` (an hlc): keys idle longer
 * than routing.pin_idle, whose pins every relay has expired or will expire
 * from the same last_seen, and old tombstones. Keeps the table bounded by
 * the pins changed within that window. Returns how many were dropped. */
size_t meta_prune(struct kr_peers *P, uint64_t before);
/* Index of an origin name, added when new; -1 when the table is full. */
int meta_origin(struct kr_peers *P, const char *name);
/* Appends an own change with the next seq. 0 or KR_ENOMEM. */
int log_append(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen, uint64_t hlc);
/* The own change of seq s, NULL when no longer (or not yet) kept. */
const struct log_ent *log_get(const struct kr_peers *P, uint64_t s);

/* service.c: records an own change (any thread) and wakes the loop. */
void peer_own_change(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen);

/* counts.c: hosts' reported counts (relay memory, not the store): scanned
 * every second for new values; applied from peers; sent in a resync. */
int counts_start(struct kr_peers *P);
void counts_apply(struct kr_peers *P, const struct kr_peer_change *ch);
void counts_snapshot(struct kr_peers *P,
                     void (*send)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                                  size_t vlen),
                     void *arg);

/* service.c */
void peer_link_up(struct peer *p);
void peer_link_down(struct peer *p, const char *why);
void peer_note_alone(struct kr_peers *P);

/* link.c */
int link_tls_init(struct kr_peers *P, const struct kr_conf *c, char *err, size_t errlen);
int link_listen(struct kr_peers *P, const struct kr_conf *c, char *err, size_t errlen);
void link_dial(struct peer *p);
void link_close(struct peer_conn *c, const char *why);
void link_free_all(struct kr_peers *P);
/* Queues one encoded frame on the connection. */
void link_send(struct peer_conn *c, const uint8_t *frame, size_t len);
size_t link_out_pending(const struct peer_conn *c);
/* True when the certificate of the connection carries `name` (CN/SAN). */
bool link_cert_names(const struct peer_conn *c, const char *name);

struct peer_conn {
    struct kr_peers *P;
    struct bufferevent *bev;
    struct peer *peer; /* NULL until an inbound link said HELLO */
    bool outbound;
    bool tls_up;
    bool hello_sent, hello_got;
    bool closing;
    uint64_t next_seq; /* our next change to send */
    bool in_resync;    /* receiving a full copy */
    uint64_t unacked;  /* changes applied since our last ACK */
    char remote[KR_ADDRSTRLEN];
    char psk_id[KR_PEER_NAME_MAX]; /* inbound with a PSK: the identity it used */
    struct peer_conn *next;
};

/* sync.c */
void sync_on_tls_up(struct peer_conn *c);
/* Consumes whole frames from the input; closes the link on a bad one. */
void sync_on_read(struct peer_conn *c);
/* Sends own changes while the output is not too full. */
void sync_pump(struct peer_conn *c);
/* An ACK of what we have: the reply to changes, and the heartbeat. */
void sync_ack(struct peer_conn *c);

/* Last writer wins: true when a peer's change is newer than what is here
 * (its recorded version, or for a key written before this process started
 * the stored value's own time, as if by us); then it is recorded as the
 * key's version. Reads the store for unrecorded keys. */
bool peer_wins(struct kr_peers *P, const struct kr_peer_change *ch);

/* Thread-local: true while sync.c applies a peer's change (the observer
 * must not take it for an own change). */
extern __thread bool peer_applying;

#endif
