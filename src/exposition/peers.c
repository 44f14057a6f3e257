/*
 * peers.c - the replication links in /metrics (issue 15): the same numbers
 * as GET /v1/peers, per peer, and whether this relay is serving alone.
 */
#include <stddef.h>

#include "exposition/exposition-internal.h"
#include "peer/peer.h"

static void per_peer(struct evbuffer *b, const struct kr_peer_status *st, size_t n,
                     const char *name, const char *type, const char *help, size_t off, bool dbl)
{
    mx_head(b, name, type, help);
    for (size_t i = 0; i < n; i++) {
        const char *f = (const char *)&st[i] + off;
        if (dbl)
            mx_sample(b, name, *(const double *)(const void *)f, "peer", st[i].name, NULL);
        else
            mx_sample_u(b, name, *(const uint64_t *)(const void *)f, "peer", st[i].name, NULL);
    }
}

#define U(field) offsetof(struct kr_peer_status, field), false

void mx_render_peers(const struct kr_peers *p, struct evbuffer *b)
{
    if (!p)
        return;
    struct kr_peers_summary sum;
    struct kr_peer_status st[KR_CONF_MAX_PEERS];
    kr_peers_summary(p, &sum);
    size_t n = kr_peers_status(p, st, KR_CONF_MAX_PEERS);
    if (n > KR_CONF_MAX_PEERS)
        n = KR_CONF_MAX_PEERS;
    mx_head(b, "kmsrelay_peers_alone", "gauge",
            "1 when peers are configured and none is reachable (serving alone).");
    mx_sample_u(b, "kmsrelay_peers_alone", sum.n_peers && !sum.n_up, NULL);
    mx_head(b, "kmsrelay_peers_refused_total", "counter",
            "Inbound peer links refused before they named a peer (certificate, CA, TLS version).");
    mx_sample_u(b, "kmsrelay_peers_refused_total", sum.refused, NULL);
    mx_head(b, "kmsrelay_peer_up", "gauge", "1 while the link to the peer is up.");
    for (size_t i = 0; i < n; i++)
        mx_sample_u(b, "kmsrelay_peer_up", st[i].up, "peer", st[i].name, NULL);
    per_peer(b, st, n, "kmsrelay_peer_lag_changes", "gauge",
             "Our changes the peer has not acknowledged.", U(lag_changes));
    per_peer(b, st, n, "kmsrelay_peer_lag_seconds", "gauge",
             "Age of the oldest change the peer has not acknowledged.",
             offsetof(struct kr_peer_status, lag_seconds), true);
    per_peer(b, st, n, "kmsrelay_peer_changes_sent_total", "counter", "Changes sent to the peer.",
             U(sent));
    per_peer(b, st, n, "kmsrelay_peer_changes_received_total", "counter",
             "Changes received from the peer.", U(received));
    per_peer(b, st, n, "kmsrelay_peer_changes_applied_total", "counter",
             "Received changes newer than ours, applied.", U(applied));
    per_peer(b, st, n, "kmsrelay_peer_bytes_sent_total", "counter", "Protocol bytes sent.",
             U(bytes_out));
    per_peer(b, st, n, "kmsrelay_peer_resyncs_total", "counter",
             "Full copies of our table sent to the peer.", U(resyncs_sent));
    per_peer(b, st, n, "kmsrelay_peer_refused_total", "counter",
             "Links claiming the peer refused (certificate, name, TLS version).", U(refused));
}
