/*
 * api_peers.c - GET /v1/peers: this relay's replication links (issue 15):
 * for each peer its link state, lag in changes and seconds, counters and
 * last error; "alone" when peers are configured and none is reachable.
 */
#include <string.h>

#include "control/control-internal.h"
#include "peer/peer.h"

static json_t *one(const struct kr_peer_status *s)
{
    json_t *o = json_object();
    ctl_set(o, "name", json_string(s->name));
    ctl_set(o, "address", json_string(s->address));
    ctl_set(o, "state", json_string(s->up ? (s->resyncing ? "resync" : "up") : "down"));
    ctl_set(o, "lag_changes", json_integer((json_int_t)s->lag_changes));
    ctl_set(o, "lag_seconds", json_real(s->lag_seconds));
    ctl_set(o, "up_since", json_integer((json_int_t)s->up_since));
    ctl_set(o, "down_since", json_integer((json_int_t)s->down_since));
    ctl_set(o, "sent", json_integer((json_int_t)s->sent));
    ctl_set(o, "received", json_integer((json_int_t)s->received));
    ctl_set(o, "applied", json_integer((json_int_t)s->applied));
    ctl_set(o, "bytes_out", json_integer((json_int_t)s->bytes_out));
    ctl_set(o, "bytes_in", json_integer((json_int_t)s->bytes_in));
    ctl_set(o, "resyncs_sent", json_integer((json_int_t)s->resyncs_sent));
    ctl_set(o, "resyncs_received", json_integer((json_int_t)s->resyncs_received));
    ctl_set(o, "refused", json_integer((json_int_t)s->refused));
    ctl_set(o, "last_error", json_string(s->last_error));
    return o;
}

json_t *ctl_peers_summary(const struct kr_peers *p)
{
    json_t *o = json_object();
    struct kr_peers_summary sum;
    memset(&sum, 0, sizeof(sum));
    if (p)
        kr_peers_summary(p, &sum);
    ctl_set(o, "configured", json_boolean(p != NULL));
    ctl_set(o, "total", json_integer((json_int_t)sum.n_peers));
    ctl_set(o, "up", json_integer((json_int_t)sum.n_up));
    ctl_set(o, "alone", json_boolean(sum.n_peers > 0 && sum.n_up == 0));
    return o;
}

int ctl_api_peers(struct ctl_call *c)
{
    c->out = json_object();
    if (!c->ctl->peers) {
        ctl_set(c->out, "configured", json_false());
        ctl_set(c->out, "peers", json_array());
        return 200;
    }
    struct kr_peers_summary sum;
    kr_peers_summary(c->ctl->peers, &sum);
    struct kr_peer_status st[KR_CONF_MAX_PEERS];
    size_t n = kr_peers_status(c->ctl->peers, st, KR_CONF_MAX_PEERS);
    json_t *a = json_array();
    for (size_t i = 0; i < n && i < KR_CONF_MAX_PEERS; i++)
        json_array_append_new(a, one(&st[i]));
    ctl_set(c->out, "configured", json_true());
    ctl_set(c->out, "name", json_string(sum.self));
    ctl_set(c->out, "incarnation", json_integer((json_int_t)sum.incarnation));
    ctl_set(c->out, "changes", json_integer((json_int_t)sum.seq));
    ctl_set(c->out, "log_first", json_integer((json_int_t)sum.log_first));
    ctl_set(c->out, "alone", json_boolean(sum.n_peers > 0 && sum.n_up == 0));
    ctl_set(c->out, "refused", json_integer((json_int_t)sum.refused));
    ctl_set(c->out, "peers", a);
    return 200;
}
