/*
 * cmd_audit.c - `kmsrelayctl audit`: account for every _vlmcs SRV record
 * of some zones, without a running daemon (src/audit does the work).
 *
 * Alone, this is a point-in-time view: a target that fails now is reported
 * dead now, and --fix deletes nothing, because one moment is no evidence (a
 * sanctioned host may be rebooting). Evidence over time comes from
 * kmsrelayd's periodic audit through the control socket (--history: the
 * daemon's dns.dead_after of continuous failure) or from repeated probes
 * here (--dead-for DURATION).
 *
 * Exit: 0 clean, 1 problems found (and not fixed, skipped ones included),
 * 2 usage or DNS errors (a server that did not answer, a --fix that was
 * refused or failed, --history without a usable report), 3 --history could
 * not reach the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/cmd_audit.h"
#include "ctl/ctl.h"
#include "kmsrelay/audit.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/units.h"

#define MAX_ZONES 32
#define MAX_SANCTIONED 256
#define MAX_PORTS 4

static const char usage_text[] =
    "usage: kmsrelayctl audit [options] ZONE...\n"
    "\n"
    "Finds every _vlmcs._tcp SRV record of each ZONE on each authoritative server,\n"
    "probes its target (address, TCP connect, one DCE/RPC bind; never an activation)\n"
    "and classifies it: OURS_OK, OURS_ORPHAN, PEER_STALE, AUTHORIZED_OK, STALE_DEAD,\n"
    "ROGUE, MISCONFIGURED or UNKNOWN (the target's lookup failed: SERVFAIL, timeout,\n"
    "REFUSED; never deleted), each with its evidence. Alone this is a point-in-time\n"
    "view: a target failing now is reported dead now, and --fix deletes nothing.\n"
    "--dead-for or --history give the evidence over time that --fix needs.\n"
    "\n"
    "Options:\n"
    "  --server ADDR[:PORT]     ask this server (repeatable; default: the zone's NS)\n"
    "  --resolver ADDR[:PORT]   resolver for targets outside the zone and for finding\n"
    "                           the NS (repeatable; default: --config's dns.resolvers,\n"
    "                           else /etc/resolv.conf)\n"
    "  --key FILE               TSIG key file (tsig-keygen format, mode 0600) for\n"
    "                           --axfr and --fix\n"
    "  --key-name NAME          the key to use when FILE holds several\n"
    "  --keytab FILE            an AD zone (GSS-TSIG): the account's keytab (mode 0600);\n"
    "                           --fix signs with Kerberos, and the zone's _vlmcs names\n"
    "                           (children too) are read from the directory: LDAP with\n"
    "                           a SASL GSSAPI bind to the first server, port 389\n"
    "  --principal P            the account in the keytab, e.g. kmsrelay$@CORP.EXAMPLE\n"
    "  --axfr                   also transfer the zone (TSIG) to find _vlmcs records\n"
    "                           at other names\n"
    "  --sanctioned HOST[,HOST] sanctioned KMS hosts, names or addresses (repeatable)\n"
    "  --sanctioned-file FILE   one sanctioned host per line, '#' starts a comment\n"
    "  --instance ID            our kmsrelay instance id: records marked with it are ours\n"
    "  --config FILE            kmsrelayd's config: instance id, dns.sanctioned_file,\n"
    "                           and (without ZONE) the zones with their servers and key\n"
    "  --probe-port PORT        another port to try when a record's port fails (the\n"
    "                           wrong-port check also tries 1688; repeatable)\n"
    "  --timeout DURATION       per DNS try and per probe step (default 3s)\n"
    "  --dead-for DURATION      evidence over time: probe the failing targets again\n"
    "                           (every --probe-every) until DURATION (at least 1s)\n"
    "                           has passed; dead = failing in every probe\n"
    "  --probe-every DURATION   pause between those probes (default DURATION/4,\n"
    "                           within 1s..10m)\n"
    "  --history                evidence over time from kmsrelayd's periodic audit\n"
    "                           (GET /v1/dns on the control socket, -s): dead = failing\n"
    "                           in every daemon run for its dns.dead_after, and now\n"
    "  --history-max-age DURATION  the daemon's last audit may be this old (default 1h)\n"
    "  --fix                    delete STALE_DEAD and PEER_STALE records dead for long\n"
    "                           enough (--dead-for or --history; without them nothing\n"
    "                           is deleted and the output says why), one UPDATE each,\n"
    "                           with the RRset as read as prerequisite; a concurrent\n"
    "                           change makes the server refuse (NXRRSET)\n"
    "  --json                   JSON output\n"
    "\n"
    "Exit: 0 clean, 1 problems found (or left by --fix), 2 usage or DNS error (or a\n"
    "refused --fix, or --history without a usable report), 3 daemon unreachable.\n";

struct audit_args {
    const char *zones[MAX_ZONES];
    size_t n_zones;
    struct kr_addr servers[KR_AUDIT_MAX_SERVERS];
    size_t n_servers;
    struct kr_addr resolvers[KR_AUDIT_MAX_SERVERS];
    size_t n_resolvers;
    uint64_t dead_for_ms, every_ms, history_max_age_ms;
    int history;
    const char *key_file, *key_name, *instance, *config, *keytab, *principal;
    char *sanctioned[MAX_SANCTIONED];
    size_t n_sanctioned;
    uint16_t ports[MAX_PORTS];
    size_t n_ports;
    uint64_t timeout_ms;
    int axfr, fix, json;
};

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "kmsrelayctl audit: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see kmsrelayctl audit --help)\n");
    return CTL_EXIT_USAGE;
}

/* "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:5353": port 53 when none. */
static int parse_server(const char *text, struct kr_addr *out)
{
    char buf[KR_ADDRSTRLEN + 8];
    if (kr_addr_parse(text, 0, out, NULL) == 0 && kr_addr_port((struct sockaddr *)&out->ss))
        return 0;
    snprintf(buf, sizeof(buf), strchr(text, ':') && text[0] != '[' ? "[%s]:53" : "%s:53", text);
    return kr_addr_parse(buf, 0, out, NULL) == 0 ? 0 : -1;
}

static int add_sanctioned(struct audit_args *a, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return -1;
    for (char *t = strtok_r(copy, ", \t\r\n", &save); t; t = strtok_r(NULL, ", \t\r\n", &save)) {
        if (a->n_sanctioned >= MAX_SANCTIONED || !(a->sanctioned[a->n_sanctioned] = strdup(t))) {
            free(copy);
            return -1;
        }
        a->n_sanctioned++;
    }
    free(copy);
    return 0;
}

static int read_sanctioned_file(struct audit_args *a, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f) {
        fprintf(stderr, "kmsrelayctl audit: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        if (add_sanctioned(a, line) != 0) {
            fclose(f);
            fprintf(stderr, "kmsrelayctl audit: %s: too many sanctioned hosts\n", path);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int parse_args(struct audit_args *a, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(o, "--json") == 0) {
            a->json = 1;
            takes = 0;
        } else if (strcmp(o, "--axfr") == 0) {
            a->axfr = 1;
            takes = 0;
        } else if (strcmp(o, "--fix") == 0) {
            a->fix = 1;
            takes = 0;
        } else if (strcmp(o, "--history") == 0) {
            a->history = 1;
            takes = 0;
        } else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage_text, stdout);
            return 1;
        } else if (o[0] != '-') {
            if (a->n_zones >= MAX_ZONES)
                return usage_error("at most 32 zones (got %s too)", o);
            a->zones[a->n_zones++] = o;
            takes = 0;
        }
        if (!takes)
            continue;
        if (!v)
            return usage_error("%s needs a value", o);
        i++;
        if (strcmp(o, "--server") == 0) {
            if (a->n_servers >= KR_AUDIT_MAX_SERVERS || parse_server(v, &a->servers[a->n_servers]))
                return usage_error("bad or too many --server: %s", v);
            a->n_servers++;
        } else if (strcmp(o, "--resolver") == 0) {
            if (a->n_resolvers >= KR_AUDIT_MAX_SERVERS ||
                parse_server(v, &a->resolvers[a->n_resolvers]))
                return usage_error("bad or too many --resolver: %s", v);
            a->n_resolvers++;
        } else if (strcmp(o, "--dead-for") == 0) {
            if (kr_parse_duration_ms(v, &a->dead_for_ms, NULL) != 0 || a->dead_for_ms < 1000)
                return usage_error("bad --dead-for (at least 1s): %s", v);
        } else if (strcmp(o, "--probe-every") == 0) {
            if (kr_parse_duration_ms(v, &a->every_ms, NULL) != 0 || a->every_ms == 0)
                return usage_error("bad --probe-every: %s", v);
        } else if (strcmp(o, "--history-max-age") == 0) {
            if (kr_parse_duration_ms(v, &a->history_max_age_ms, NULL) != 0 ||
                a->history_max_age_ms < 1000)
                return usage_error("bad --history-max-age (at least 1s): %s", v);
        } else if (strcmp(o, "--key") == 0) {
            a->key_file = v;
        } else if (strcmp(o, "--keytab") == 0) {
            a->keytab = v;
        } else if (strcmp(o, "--principal") == 0) {
            a->principal = v;
        } else if (strcmp(o, "--key-name") == 0) {
            a->key_name = v;
        } else if (strcmp(o, "--instance") == 0) {
            a->instance = v;
        } else if (strcmp(o, "--config") == 0) {
            a->config = v;
        } else if (strcmp(o, "--sanctioned") == 0) {
            if (add_sanctioned(a, v) != 0)
                return usage_error("too many sanctioned hosts (%s)", v);
        } else if (strcmp(o, "--sanctioned-file") == 0) {
            if (read_sanctioned_file(a, v) != 0)
                return CTL_EXIT_USAGE;
        } else if (strcmp(o, "--probe-port") == 0) {
            char *end;
            unsigned long p = strtoul(v, &end, 10);
            if (*end || p == 0 || p > 65535 || a->n_ports >= MAX_PORTS)
                return usage_error("bad or too many --probe-port: %s", v);
            a->ports[a->n_ports++] = (uint16_t)p;
        } else if (strcmp(o, "--timeout") == 0) {
            if (kr_parse_duration_ms(v, &a->timeout_ms, NULL) != 0 || a->timeout_ms == 0)
                return usage_error("bad --timeout: %s", v);
        } else {
            return usage_error("unknown option %s", o);
        }
    }
    return 0;
}

static unsigned env_pause(void)
{
    const char *t = getenv("KMSRELAY_AUDIT_TEST_PAUSE_MS");
    return t && *t ? (unsigned)strtoul(t, NULL, 10) : 0;
}

static int load_key(const char *file, const char *name, struct kr_dns_key *key)
{
    char err[512];
    if (kr_dns_key_load(file, name && name[0] ? name : NULL, key, err, sizeof(err)) != 0) {
        fprintf(stderr, "kmsrelayctl audit: %s\n", err);
        return -1;
    }
    return 0;
}

/* Collects every zone: from the command line, or from the config's zones. */
static int collect(struct audit_args *a, const struct kr_conf *c, struct kr_audit_opts *o,
                   struct kr_dns_key *keys, struct kr_audit_result *r)
{
    if (a->n_zones || !c) {
        o->zones = a->zones;
        o->n_zones = a->n_zones;
        o->servers = a->servers;
        o->n_servers = a->n_servers;
        return kr_audit_collect(o, r);
    }
    for (size_t i = 0; i < c->n_dns_zones; i++) {
        const struct kr_conf_dns_zone *z = &c->dns_zones[i];
        const char *name = z->name;
        struct kr_audit_opts zo = *o;
        zo.zones = &name;
        zo.n_zones = 1;
        zo.servers = a->n_servers ? a->servers : z->servers;
        zo.n_servers = a->n_servers ? a->n_servers : z->n_servers;
        if (!a->key_file && !a->keytab && z->key_file[0]) {
            if (load_key(z->key_file, z->key_name, &keys[i]) != 0)
                return -1;
            zo.key = &keys[i];
        }
        if (!a->key_file && !a->keytab && z->gss_keytab[0]) {
            zo.gss_keytab = z->gss_keytab;
            zo.gss_principal = z->gss_principal;
        }
        int rc = kr_audit_collect(&zo, r);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* What run() holds, freed by finish(). */
struct run_state {
    struct kr_conf *c;
    struct kr_dns_key key, *keys;
    struct kr_audit_result r;
    struct kr_audit_opts o;
    struct kr_audit_policy p;
};

/* The config, the key and the checks of the arguments against each other. */
static int setup(struct audit_args *a, struct run_state *st)
{
    char err[4096];
    if (a->config) {
        if (kr_conf_load(a->config, &st->c, err, sizeof(err)) != 0) {
            fprintf(stderr, "kmsrelayctl audit: %s", err);
            return -1;
        }
        if (!a->instance && st->c->instance_id[0])
            a->instance = st->c->instance_id;
        if (st->c->dns_sanctioned_file[0] &&
            read_sanctioned_file(a, st->c->dns_sanctioned_file) != 0)
            return -1;
        if (!a->n_resolvers) {
            a->n_resolvers = st->c->n_dns_resolvers;
            memcpy(a->resolvers, st->c->dns_resolvers, a->n_resolvers * sizeof(a->resolvers[0]));
        }
    }
    if (a->n_zones == 0 && (!st->c || st->c->n_dns_zones == 0)) {
        fprintf(stderr, "kmsrelayctl audit: no zone given (see kmsrelayctl audit --help)\n");
        return -1;
    }
    if (a->history && a->dead_for_ms) {
        fprintf(stderr, "kmsrelayctl audit: --history and --dead-for exclude each other\n");
        return -1;
    }
    if (a->key_file && load_key(a->key_file, a->key_name, &st->key) != 0)
        return -1;
    if (!a->keytab != !a->principal || (a->keytab && a->key_file)) {
        fprintf(stderr, "kmsrelayctl audit: %s\n",
                a->key_file ? "--key (HMAC) and --keytab (Kerberos) exclude each other"
                            : "--keytab and --principal go together");
        return -1;
    }
    if (((a->fix && !a->keytab) || a->axfr) && !a->key_file && !(st->c && a->n_zones == 0)) {
        fprintf(stderr, "kmsrelayctl audit: %s needs --key FILE (TSIG)%s\n",
                a->fix ? "--fix" : "--axfr", a->fix ? " or --keytab and --principal" : "");
        return -1;
    }
    if (!(st->keys = calloc(KR_CONF_MAX_DNS_ZONES, sizeof(*st->keys))))
        return -1;
    struct kr_audit_opts *o = &st->o;
    o->key = a->key_file ? &st->key : NULL;
    o->gss_keytab = a->keytab;
    o->gss_principal = a->principal;
    o->axfr = a->axfr;
    o->timeout_ms = (unsigned)a->timeout_ms;
    o->probe_ports = a->ports;
    o->n_probe_ports = a->n_ports;
    o->resolvers = a->resolvers;
    o->n_resolvers = a->n_resolvers;
    o->test_pause_ms = env_pause();
    return 0;
}

static void policy(const struct audit_args *a, const struct kr_conf *c, struct kr_audit_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->instance_id = a->instance;
    if (c && c->n_dns_zones && c->dns_zones[0].target[0]) {
        p->self_target = c->dns_zones[0].target;
        p->self_port =
            (uint16_t)(c->dns_zones[0].port ? c->dns_zones[0].port
                                            : kr_addr_port((struct sockaddr *)&c->listen[0].ss));
    }
    p->sanctioned = (const char *const *)a->sanctioned;
    p->n_sanctioned = a->n_sanctioned;
    p->now = kr_wall_s();
}

/* Evidence over time: repeated probes (--dead-for) or the daemon's history
 * (--history). Sets p->dead_after_s (0: none asked for). Returns 0, or an
 * exit code when --history has nothing usable (the audit still reports). */
static int evidence(const struct ctl_opts *co, const struct audit_args *a, struct run_state *st)
{
    if (a->dead_for_ms) {
        uint64_t every = a->every_ms ? a->every_ms : a->dead_for_ms / 4;
        every = every < 1000 && !a->every_ms ? 1000 : every;
        every = every > 600000 && !a->every_ms ? 600000 : every;
        kr_audit_watch(&st->o, &st->r, a->dead_for_ms, every, stderr);
        st->p.now = kr_wall_s(); /* the last probe's time, not the first's */
        st->p.dead_after_s = a->dead_for_ms / 1000;
        return 0;
    }
    if (!a->history)
        return 0;
    json_t *dns = NULL;
    char why[400] = "";
    int rc = ctl_call(co, "GET", "/v1/dns", NULL, &dns);
    uint64_t max_age = a->history_max_age_ms ? a->history_max_age_ms / 1000 : 3600;
    st->p.now = kr_wall_s();
    if (rc != 0)
        snprintf(why, sizeof(why),
                 "the daemon could not be asked (GET /v1/dns): no evidence over time, nothing "
                 "deleted (start kmsrelayd with dns.audit_interval, give -s SOCKET, or use "
                 "--dead-for)");
    st->p.dead_after_s = kr_audit_from_daemon(&st->r, rc ? NULL : json_object_get(dns, "audit"),
                                              st->p.now, max_age, why, sizeof(why));
    json_decref(dns);
    if (st->p.dead_after_s)
        return 0;
    fprintf(stderr, "kmsrelayctl audit: --history: %s\n", why);
    return rc ? rc : CTL_EXIT_USAGE;
}

/* Prints the report; returns 0 or -1 (out of memory). */
static int output(const struct audit_args *a, struct run_state *st)
{
    json_t *doc = kr_audit_json(&st->r, &st->p);
    if (!doc) {
        fprintf(stderr, "kmsrelayctl audit: out of memory\n");
        return -1;
    }
    if (a->json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        if (a->fix)
            fputc('\n', stdout);
        kr_audit_print(stdout, doc);
    }
    json_decref(doc);
    size_t skipped = kr_audit_skipped(&st->r);
    if (skipped)
        fprintf(stderr,
                "kmsrelayctl audit: --fix left %zu dead record(s) for lack of evidence over "
                "time (see each \"fix\"); use --dead-for DURATION or --history\n",
                skipped);
    return 0;
}

/* Problems that --fix removed no longer count. */
static size_t problems_left(const struct kr_audit_result *r)
{
    size_t left = 0;
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->e[i].n_f; k++) {
            const json_t *fx = r->e[i].fix ? r->e[i].fix[k] : NULL;
            const char *act = json_string_value(json_object_get(fx, "action"));
            left += kr_audit_is_problem(&r->e[i].f[k]) && !(act && strcmp(act, "deleted") == 0);
        }
    return left;
}

static int run(const struct ctl_opts *co, struct audit_args *a)
{
    struct run_state st;
    int rc = CTL_EXIT_USAGE;
    memset(&st, 0, sizeof(st));
    if (setup(a, &st) != 0)
        goto out;
    if (collect(a, st.c, &st.o, st.keys, &st.r) != 0) {
        fprintf(stderr, "kmsrelayctl audit: out of memory or bad key\n");
        goto out;
    }
    kr_audit_probe_all(&st.o, &st.r);
    policy(a, st.c, &st.p);
    int ev = evidence(co, a, &st);
    if (kr_audit_classify_all(&st.r, &st.p) < 0) {
        fprintf(stderr, "kmsrelayctl audit: out of memory\n");
        goto out;
    }
    int fix_failed = a->fix ? kr_audit_fix(&st.o, &st.p, &st.r, a->json ? NULL : stdout) : 0;
    if (output(a, &st) != 0)
        goto out;
    if (ev)
        rc = ev;
    else if (st.r.n_errors || fix_failed)
        rc = CTL_EXIT_USAGE;
    else
        rc = problems_left(&st.r) ? CTL_EXIT_FINDINGS : CTL_EXIT_OK;
out:
    kr_audit_result_free(&st.r);
    if (st.keys)
        for (size_t i = 0; i < KR_CONF_MAX_DNS_ZONES; i++)
            kr_dns_key_clear(&st.keys[i]);
    free(st.keys);
    kr_dns_key_clear(&st.key);
    free(st.c);
    return rc;
}

int ctl_cmd_audit(const struct ctl_opts *opts, int argc, char **argv)
{
    struct audit_args a;
    memset(&a, 0, sizeof(a));
    a.json = opts->json;
    int rc = parse_args(&a, argc, argv);
    if (rc == 0)
        rc = run(opts, &a);
    else if (rc == 1)
        rc = CTL_EXIT_OK;
    for (size_t i = 0; i < a.n_sanctioned; i++)
        free(a.sanctioned[i]);
    return rc;
}
