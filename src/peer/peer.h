/*
 * peer.h - relays as peers (issue 15): the daemon's replication service.
 *
 * Every relay keeps the full table (pins, host admin states and operator
 * weights) in its own store and streams its OWN changes to every peer over
 * one TLS 1.3 link per pair (mutual authentication with a private CA; the
 * relay whose name sorts first connects). Changes are learned from the
 * store's observer (kr_store_set_observer), so the relay's request path only
 * pays for one queued copy per pin write and never waits for a peer.
 *
 * Consistency: each change carries a hybrid logical clock time and its
 * origin; a peer applies it only when it is newer than what it has for that
 * key (last writer wins, ties to the greater origin name), so concurrent
 * changes resolve the same way everywhere. Each origin numbers its changes;
 * on (re)connect each side says how far it got (HELLO) and the other sends
 * what is missing from its in-memory log, or a full copy of its table when
 * the log no longer reaches back (RESYNC). Idle expiry is not replicated:
 * every relay expires the same pins from the same replicated last_seen.
 *
 * Threads: everything runs on the daemon's event loop, except the observer,
 * which may run in any thread that writes the store (control jobs): it takes
 * the service's mutex and wakes the loop.
 *
 * Ownership: the service borrows base, relay and store (all must outlive
 * it); kr_peers_free() removes the observer first.
 */
#ifndef KR_PEER_H
#define KR_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/conf.h"

struct event_base;
struct kr_relay;
struct kr_store;
struct kr_peers;

/* Starts the service when conf->peer_name is set (else *out = NULL, 0):
 * loads the TLS material, listens, connects. KR_ECONFIG / KR_EIO with err. */
int kr_peers_start(struct event_base *base, const struct kr_conf *conf, struct kr_relay *relay,
                   struct kr_store *store, struct kr_peers **out, char *err, size_t errlen);
void kr_peers_free(struct kr_peers *p);

/* For `kmsrelayd -n` and the start's preflight: loads the TLS material of
 * the peers group (CA, certificate, key, and that they match) without
 * starting anything. 0 when peers are off or all is well, else KR_ECONFIG
 * with err naming the file and what is wrong. */
int kr_peers_check(const struct kr_conf *conf, char *err, size_t errlen);

/* One link's view (GET /v1/peers, kmsrelayctl peers, /metrics). */
struct kr_peer_status {
    char name[KR_CONF_NAME_MAX];
    char address[KR_ADDRSTRLEN];
    bool up;
    bool resyncing;          /* receiving a full copy right now */
    uint64_t lag_changes;    /* our changes the peer has not acknowledged */
    double lag_seconds;      /* age of the oldest of them, 0 when none */
    int64_t up_since;        /* unix seconds, 0 when down */
    int64_t down_since;      /* unix seconds, 0 when up or never up */
    uint64_t sent, received; /* CHANGE frames on this link's life, total */
    uint64_t applied;        /* received changes that won and were applied */
    uint64_t bytes_out, bytes_in;
    uint64_t resyncs_sent, resyncs_received;
    uint64_t refused; /* handshakes refused (certificate, name) */
    char last_error[160];
};

struct kr_peers_summary {
    char self[KR_CONF_NAME_MAX];
    uint64_t incarnation;
    uint64_t seq;         /* own changes so far (this incarnation) */
    uint64_t log_first;   /* oldest change still in the log */
    size_t n_peers, n_up; /* alone: n_peers > 0 && n_up == 0 */
    uint64_t refused;     /* inbound links refused before naming a peer */
};

/* Fills up to max entries (config order); returns the number of peers. */
size_t kr_peers_status(const struct kr_peers *p, struct kr_peer_status *out, size_t max);
void kr_peers_summary(const struct kr_peers *p, struct kr_peers_summary *out);

#endif
