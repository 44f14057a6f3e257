/*
 * peers.c - the peers.relays list (issue 15: relays that replicate pins and
 * admin states) and the checks of the peers group as a whole:
 *
 *   peers: {
 *     name = "relay-a"; listen = "10.0.0.1:7688";
 *     ca = "/etc/kmsrelay/peers-ca.pem"; cert = "..."; key = "...";
 *     relays = ( { name = "relay-b"; address = "10.0.1.1:7688"; } );
 *   };
 */
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"

static void load_one(struct conf_ctx *x, config_setting_t *g, int i)
{
    struct kr_conf_peer p;
    config_setting_t *s;
    const char *str, *why = "";
    memset(&p, 0, sizeof(p));
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        CONF_ERR_AT(x, g, "peers.relays[%d]: expected { name = ...; address = ...; }", i);
        return;
    }
    if (!(s = config_setting_get_member(g, "name")) || !(str = conf_get_string(x, s, "name"))) {
        CONF_ERR_AT(x, g, "peers.relays[%d]: missing name", i);
        return;
    }
    if (!conf_name_ok(str)) {
        CONF_ERR_AT(x, s, "peers.relays[%d]: name \"%s\" is not valid", i, str);
        return;
    }
    snprintf(p.name, sizeof(p.name), "%s", str);
    if (!(s = config_setting_get_member(g, "address")) ||
        !(str = conf_get_string(x, s, "address"))) {
        CONF_ERR_AT(x, g, "peer %s: missing address", p.name);
        return;
    }
    if (conf_host_addr_parse(str, &p.addr, &why) != 0) {
        CONF_ERR_AT(x, s, "peer %s: address \"%s\": %s", p.name, str, why);
        return;
    }
    for (int k = 0; k < config_setting_length(g); k++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)k);
        const char *n = config_setting_name(m);
        if (n && strcmp(n, "name") != 0 && strcmp(n, "address") != 0)
            CONF_ERR_AT(x, m, "peer %s: unknown setting \"%s\" (name, address)", p.name, n);
    }
    x->c->peers[x->c->n_peers++] = p;
}

void conf_load_peers(struct conf_ctx *x)
{
    config_setting_t *s = config_lookup(x->cfg, "peers.relays");
    if (!s)
        return;
    if (config_setting_type(s) != CONFIG_TYPE_LIST) {
        CONF_ERR_AT(x, s, "peers.relays: expected a list ( { name = ...; address = ...; }, ... )");
        return;
    }
    if (config_setting_length(s) > KR_CONF_MAX_PEERS) {
        CONF_ERR_AT(x, s, "peers.relays: at most %d peers", KR_CONF_MAX_PEERS);
        return;
    }
    x->c->n_peers = 0;
    for (int i = 0; i < config_setting_length(s); i++)
        load_one(x, config_setting_get_elem(s, (unsigned)i), i);
}

#define AT(path, ...)                                                                              \
    do {                                                                                           \
        const char *f_ = c->source[0] ? c->source : "command line";                                \
        int l_ = 0;                                                                                \
        if (loc)                                                                                   \
            loc(ctx, (path), -1, &f_, &l_);                                                        \
        conf_err(e, f_, l_, __VA_ARGS__);                                                          \
    } while (0)

void conf_check_peers(const struct kr_conf *c, struct conf_errs *e, conf_locate_fn loc, void *ctx)
{
    struct kr_addr a;
    const char *why = "";
    if (!c->peer_name[0]) {
        if (c->n_peers)
            AT("peers.name", "peers: relays are listed but peers.name is not set");
        return;
    }
    if (!c->peer_listen[0] || conf_host_addr_parse(c->peer_listen, &a, &why) != 0)
        AT("peers.listen", "peers.listen: \"%s\" is not an address ip:port%s%s", c->peer_listen,
           why[0] ? ": " : "", why);
    if (!c->peer_psk_file[0] && (!c->peer_ca[0] || !c->peer_cert[0] || !c->peer_key[0]))
        AT("peers", "peers: ca, cert and key are all needed, or psk_file (links are TLS 1.3 "
                    "with mutual authentication)");
    for (size_t i = 0; i < c->n_peers; i++) {
        if (strcmp(c->peers[i].name, c->peer_name) == 0)
            AT("peers.relays", "peers.relays: %s is this relay's own name", c->peer_name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->peers[i].name, c->peers[j].name) == 0)
                AT("peers.relays", "peers.relays: %s is listed twice", c->peers[i].name);
    }
}
