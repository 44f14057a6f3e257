/*
 * dns.c - the configuration of src/dns: the dns group's lists (zones,
 * resolvers, self) and backend.discover, all empty by default. The dns
 * group's scalars (timers, rate), defaults included, are rows of settings.c.
 *
 *   dns: {
 *     resolvers = [ "127.0.0.1:53" ];   # discovery; default /etc/resolv.conf
 *     self = [ "kms-relay.example.test" ];
 *     hold_down = "30s"; rise = "10s"; min_state = "30s"; reconcile = "5m"; ...
 *     zones = ( { name = "example.test"; servers = [ "10.0.0.53" ];
 *                 key = "/etc/kmsrelay/dns.key"; target = "kms-relay.example.test";
 *                 priority = 0; weight = 100; ttl = 300; port = 1688; } );
 *   };
 *   backend: { discover = [ "_vlmcs._tcp.pool.example.test" ]; };
 *
 * Names must be plain host names (letters, digits, '-', '_', '.'); they
 * are stored absolute (with the final dot). Server addresses are numeric
 * with an optional port (53).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf-internal.h"

static const char *const zone_keys[] = {"name", "servers",  "key",    "key_name", "target",
                                        "port", "priority", "weight", "ttl",      "gss"};
#define N_ZONE_KEYS (sizeof(zone_keys) / sizeof(zone_keys[0]))

const char *const *conf_dns_lists(const char *group)
{
    static const char *const dns[] = {"zones", "resolvers", "self", NULL};
    static const char *const backend[] = {"discover", NULL};
    static const char *const none[] = {NULL};
    if (group && strcmp(group, "dns") == 0)
        return dns;
    if (group && strcmp(group, "backend") == 0)
        return backend;
    return none;
}

/* A host name, made absolute into out. */
static bool fqdn(const char *in, char out[KR_CONF_FQDN_MAX])
{
    size_t n = strlen(in), label = 0;
    if (n == 0 || n > 253 || in[0] == '.' || strstr(in, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (ch == '.')
            label = 0;
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') ||
                 ++label > 63)
            return false;
    }
    snprintf(out, KR_CONF_FQDN_MAX, "%s%s", in, in[n - 1] == '.' ? "" : ".");
    return true;
}

/* "ip", "ip:port", "[v6]", "[v6]:port"; port 53 when missing. */
static int server_addr(const char *text, struct kr_addr *out, const char **why)
{
    char buf[128];
    bool has_port = false;
    if (text[0] == '[')
        has_port = strstr(text, "]:") != NULL;
    else
        has_port = strchr(text, ':') && strchr(text, ':') == strrchr(text, ':');
    if (!has_port && strchr(text, ':') && text[0] != '[')
        snprintf(buf, sizeof(buf), "[%s]:53", text); /* bare IPv6 */
    else
        snprintf(buf, sizeof(buf), "%s%s", text, has_port ? "" : ":53");
    if (kr_addr_parse(buf, AF_INET, out, why) != 0)
        return -1;
    if (kr_addr_port((const struct sockaddr *)&out->ss) == 0) {
        *why = "port 0";
        return -1;
    }
    return 0;
}

static void addr_list(struct conf_ctx *x, config_setting_t *s, const char *path,
                      struct kr_addr *out, size_t *n)
{
    const char *why = "";
    *n = 0;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        if (server_addr(config_setting_get_string(s), &out[0], &why) != 0)
            CONF_ERR_AT(x, s, "%s: \"%s\": %s", path, config_setting_get_string(s), why);
        else
            *n = 1;
        return;
    }
    if (!config_setting_is_aggregate(s) || config_setting_type(s) == CONFIG_TYPE_GROUP) {
        CONF_ERR_AT(x, s, "%s: expected a list of addresses [ \"ip[:port]\", ... ]", path);
        return;
    }
    if (config_setting_length(s) > KR_CONF_MAX_DNS_SERVERS) {
        CONF_ERR_AT(x, s, "%s: at most %d servers", path, KR_CONF_MAX_DNS_SERVERS);
        return;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
        const char *t =
            config_setting_type(el) == CONFIG_TYPE_STRING ? config_setting_get_string(el) : NULL;
        if (!t || server_addr(t, &out[*n], &why) != 0)
            CONF_ERR_AT(x, el, "%s[%d]: \"%s\": %s", path, i, t ? t : "?",
                        t ? why : "expected a string");
        else
            (*n)++;
    }
}

static void name_list(struct conf_ctx *x, config_setting_t *s, const char *path,
                      char (*out)[KR_CONF_FQDN_MAX], size_t *n)
{
    *n = 0;
    int len = config_setting_type(s) == CONFIG_TYPE_STRING ? 1 : config_setting_length(s);
    if ((config_setting_type(s) != CONFIG_TYPE_STRING && !config_setting_is_array(s) &&
         !config_setting_is_list(s)) ||
        len > KR_CONF_MAX_DISCOVER) {
        CONF_ERR_AT(x, s, "%s: expected a list of at most %d domain names", path,
                    KR_CONF_MAX_DISCOVER);
        return;
    }
    for (int i = 0; i < len; i++) {
        config_setting_t *el = config_setting_type(s) == CONFIG_TYPE_STRING
                                   ? s
                                   : config_setting_get_elem(s, (unsigned)i);
        const char *t =
            config_setting_type(el) == CONFIG_TYPE_STRING ? config_setting_get_string(el) : NULL;
        if (!t || !fqdn(t, out[*n]))
            CONF_ERR_AT(x, el, "%s[%d]: \"%s\" is not a domain name", path, i, t ? t : "?");
        else
            (*n)++;
    }
}

static bool u16_member(struct conf_ctx *x, config_setting_t *g, const char *name, uint32_t *out,
                       uint32_t max)
{
    config_setting_t *s = config_setting_get_member(g, name);
    uint64_t v;
    if (!s)
        return true;
    if (conf_get_number(x, s, name, &v) != 0)
        return false;
    if (v > max) {
        CONF_ERR_AT(x, s, "dns zone %s: %llu is out of range (0 to %u)", name,
                    (unsigned long long)v, max);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static const char *str_member(struct conf_ctx *x, config_setting_t *g, const char *name)
{
    config_setting_t *s = config_setting_get_member(g, name);
    return s ? conf_get_string(x, s, name) : NULL;
}

static void load_zone(struct conf_ctx *x, config_setting_t *g, int idx)
{
    struct kr_conf_dns_zone z;
    config_setting_t *s;
    const char *t;
    uint64_t ms;
    bool ok = true;

    memset(&z, 0, sizeof(z));
    z.ttl_s = 300;
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        CONF_ERR_AT(x, g, "dns.zones[%d]: expected a group { name = ...; ... }", idx);
        return;
    }
    for (int j = 0; j < config_setting_length(g); j++) {
        s = config_setting_get_elem(g, (unsigned)j);
        bool known = false;
        for (size_t k = 0; k < N_ZONE_KEYS; k++)
            known |= strcmp(config_setting_name(s), zone_keys[k]) == 0;
        if (!known) {
            CONF_ERR_AT(x, s,
                        "unknown setting \"%s\" in a dns zone (known: name, servers, key, "
                        "key_name, gss, target, port, priority, weight, ttl)",
                        config_setting_name(s));
            ok = false;
        }
    }
    if (!(t = str_member(x, g, "name")) || !fqdn(t, z.name)) {
        CONF_ERR_AT(x, g, "dns.zones[%d]: name: missing or not a domain name", idx);
        ok = false;
    }
    if (!(t = str_member(x, g, "target")) || !fqdn(t, z.target)) {
        CONF_ERR_AT(x, g, "dns.zones[%d]: target (this relay's FQDN): missing or not a domain name",
                    idx);
        ok = false;
    }
    config_setting_t *gss = config_setting_get_member(g, "gss");
    if (gss) { /* GSS-TSIG (issue 12): keytab and principal instead of key */
        const char *kt = str_member(x, gss, "keytab"), *pr = str_member(x, gss, "principal");
        if (!kt || !*kt || strlen(kt) >= sizeof(z.gss_keytab) || !pr || !strchr(pr, '@') ||
            strlen(pr) >= sizeof(z.gss_principal) || config_setting_get_member(g, "key")) {
            CONF_ERR_AT(x, gss,
                        "dns.zones[%d]: gss = { keytab = \"FILE\"; principal = "
                        "\"account@REALM\"; } (both needed, and no key next to it)",
                        idx);
            ok = false;
        } else {
            snprintf(z.gss_keytab, sizeof(z.gss_keytab), "%s", kt);
            snprintf(z.gss_principal, sizeof(z.gss_principal), "%s", pr);
        }
    } else if (!(t = str_member(x, g, "key")) || !*t || strlen(t) >= sizeof(z.key_file)) {
        CONF_ERR_AT(x, g, "dns.zones[%d]: key (a tsig-keygen file) or gss: missing", idx);
        ok = false;
    } else {
        snprintf(z.key_file, sizeof(z.key_file), "%s", t);
    }
    if ((t = str_member(x, g, "key_name")) && !fqdn(t, z.key_name)) {
        CONF_ERR_AT(x, g, "dns.zones[%d]: key_name is not a domain name", idx);
        ok = false;
    }
    if ((s = config_setting_get_member(g, "servers")))
        addr_list(x, s, "dns.zones.servers", z.servers, &z.n_servers);
    ok &= u16_member(x, g, "port", &z.port, 65535);
    ok &= u16_member(x, g, "priority", &z.priority, 65535);
    ok &= u16_member(x, g, "weight", &z.weight, 65535);
    if ((s = config_setting_get_member(g, "ttl"))) {
        if (conf_get_units(x, s, "dns zone ttl", 1, &ms) != 0)
            ok = false;
        else if (ms < 1000 || ms > 86400ull * 1000) {
            CONF_ERR_AT(x, s, "dns zone ttl: out of range (1s to 1d)");
            ok = false;
        } else
            z.ttl_s = (uint32_t)(ms / 1000);
    }
    for (size_t i = 0; ok && i < x->c->n_dns_zones; i++)
        if (strcasecmp(x->c->dns_zones[i].name, z.name) == 0) {
            CONF_ERR_AT(x, g, "dns.zones: zone %s is listed twice", z.name);
            ok = false;
        }
    if (ok)
        x->c->dns_zones[x->c->n_dns_zones++] = z;
}

static bool owner_id_ok(const char *id)
{
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return *id != '\0';
}

void conf_load_dns(struct conf_ctx *x)
{
    config_setting_t *g = config_lookup(x->cfg, "dns"), *s;

    if (g && config_setting_type(g) == CONFIG_TYPE_GROUP) {
        if ((s = config_setting_get_member(g, "resolvers")))
            addr_list(x, s, "dns.resolvers", x->c->dns_resolvers, &x->c->n_dns_resolvers);
        if ((s = config_setting_get_member(g, "self")))
            name_list(x, s, "dns.self", x->c->dns_self, &x->c->n_dns_self);
        if ((s = config_setting_get_member(g, "zones"))) {
            if (!config_setting_is_list(s) &&
                !(config_setting_is_array(s) && config_setting_length(s) == 0))
                CONF_ERR_AT(x, s, "dns.zones: expected a list ( { name = ...; ... }, ... )");
            else if (config_setting_length(s) > KR_CONF_MAX_DNS_ZONES)
                CONF_ERR_AT(x, s, "dns.zones: at most %d zones", KR_CONF_MAX_DNS_ZONES);
            else
                for (int i = 0; i < config_setting_length(s); i++)
                    load_zone(x, config_setting_get_elem(s, (unsigned)i), i);
        }
        if (x->c->n_dns_zones && !owner_id_ok(x->c->instance_id))
            CONF_ERR_AT(x, g,
                        "instance_id \"%s\" is the owner id of our DNS records: use only letters, "
                        "digits, '.', '_' and '-'",
                        x->c->instance_id);
        if (x->c->dns_backoff_max_ms < x->c->dns_backoff_min_ms)
            CONF_ERR_AT(x, g, "dns.backoff_max is shorter than dns.backoff_min");
    }
    g = config_lookup(x->cfg, "backend");
    if (g && config_setting_type(g) == CONFIG_TYPE_GROUP &&
        (s = config_setting_get_member(g, "discover")))
        name_list(x, s, "backend.discover", x->c->discover, &x->c->n_discover);
}
