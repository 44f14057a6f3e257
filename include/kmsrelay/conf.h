/*
 * conf.h - kmsrelayd's configuration: a flat value object, loaded from a
 * libconfig file (groups, lists, @include) or built from embedded defaults
 * plus command-line hosts, validated as a whole, and swapped in on reload.
 *
 * The object owns no pointers: every string is a fixed array, so a config can
 * be copied, compared and freed with one free() (relayd's flat *_config).
 * Durations are milliseconds, sizes bytes, both written with units in the
 * file ("10s", "45d", "256M") and parsed by units.h.
 *
 * Errors: kr_conf_load() collects every problem, each as "file:line: message",
 * and returns KR_ECONFIG when there was at least one.
 */
#ifndef KMSRELAY_CONF_H
#define KMSRELAY_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/netaddr.h"

#define KR_CONF_MAX_LISTEN 16
#define KR_CONF_MAX_HOSTS 64
#define KR_CONF_MAX_ACL 64
#define KR_CONF_NAME_MAX 64
#define KR_CONF_PATH_MAX 256
#define KR_CONF_FQDN_MAX 256      /* a domain name, final dot and NUL included */
#define KR_CONF_MAX_DNS_ZONES 8   /* dns.zones */
#define KR_CONF_MAX_DNS_SERVERS 4 /* per zone, and dns.resolvers */
#define KR_CONF_MAX_DISCOVER 8    /* backend.discover, dns.self */
#define KR_CONF_MAX_PEERS 8       /* peers.relays */

enum kr_admin {
    KR_ADMIN_READY = 0,   /* takes new and pinned clients */
    KR_ADMIN_DRAIN = 1,   /* pinned clients only */
    KR_ADMIN_MAINT = 2,   /* no traffic; pinned clients served elsewhere, pins kept */
    KR_ADMIN_RETIRED = 3, /* no traffic; pins move on next contact */
};
#define KR_ADMIN_UNSET 255 /* in kr_conf_host.admin: the file does not set it */

/* "ready", "drain", "maint", "retired"; parse returns -1 for anything else. */
const char *kr_admin_name(int admin);
int kr_admin_parse(const char *text);

enum kr_failback {
    KR_FAILBACK_NEVER = 0, /* a moved pin stays where it moved (default) */
    KR_FAILBACK_ALWAYS = 1 /* a moved pin goes back when its ranked host is up again */
};

struct kr_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint8_t prefix;
};

/* Parses "10.0.0.0/8", "fc00::/7", or a bare address (full-length prefix). */
int kr_cidr_parse(const char *text, struct kr_cidr *out, const char **why);
/* 1 when sa (AF_INET/AF_INET6, v4-mapped v6 treated as v4) is inside. */
int kr_cidr_match(const struct kr_cidr *c, const struct sockaddr *sa);

struct kr_conf_host {
    char name[KR_CONF_NAME_MAX]; /* unique; the HRW key and the pin value */
    struct kr_addr addr;         /* numeric ip:port; for a named address the
                                  * one DNS gave (the relay fills it), empty
                                  * (family AF_UNSPEC, len 0) until then */
    /* `address` written as a DNS name ("kms1.corp.example:1688"): the name
     * as written (no final dot), "" for a numeric address, and its port.
     * kmsrelayd resolves it (A and AAAA, off the loop, through dns.resolvers
     * or /etc/resolv.conf) at start, at reload and when its TTL runs out
     * (src/daemon/names.c); /etc/hosts is not read. */
    char addr_name[KR_CONF_FQDN_MAX];
    uint16_t addr_port;
    char addr_at[KR_CONF_PATH_MAX + 16]; /* "file:line" of `address`, "-H" from the
                                          * command line (for messages) */
    uint32_t weight;                     /* HRW weight, >= 1 (default 1) */
    uint32_t priority;                   /* tier, lower first (default 0) */
    uint8_t admin;                       /* enum kr_admin or KR_ADMIN_UNSET */
};

/* One zone kmsrelayd publishes its _vlmcs._tcp SRV record in (dns.zones;
 * src/dns/dnsd.h). Names are absolute (final dot added by the loader). */
struct kr_conf_dns_zone {
    char name[KR_CONF_FQDN_MAX]; /* zone apex: "example.test." */
    size_t n_servers;            /* empty: the zone's SOA MNAME, found via dns.resolvers */
    struct kr_addr servers[KR_CONF_MAX_DNS_SERVERS];
    char key_file[KR_CONF_PATH_MAX]; /* tsig-keygen file, mode 0600 */
    char key_name[KR_CONF_FQDN_MAX]; /* "" = the file's only key */
    char target[KR_CONF_FQDN_MAX];   /* this instance's FQDN (the SRV target) */
    uint32_t port;                   /* 0 = the first listener's port */
    uint32_t priority, weight;       /* SRV priority and weight */
    uint32_t ttl_s;                  /* TTL when no other record shares the RRset (300) */
    /* gss = { keytab; principal; }: GSS-TSIG (Kerberos, AD zones) instead
     * of key; principal "" = HMAC key. Keytab mode 0600 like key files. */
    char gss_keytab[KR_CONF_PATH_MAX];
    char gss_principal[KR_CONF_FQDN_MAX];
};

/* One other relay this one replicates with (peers.relays, issue 15). */
struct kr_conf_peer {
    char name[KR_CONF_NAME_MAX]; /* its peers.name; its certificate must carry it */
    struct kr_addr addr;         /* its peers.listen */
};

struct kr_conf {
    char source[KR_CONF_PATH_MAX]; /* file it came from, "" for embedded defaults */
    char instance_id[KR_CONF_NAME_MAX];
    char state_dir[KR_CONF_PATH_MAX];

    /* front side */
    size_t n_listen;
    struct kr_addr listen[KR_CONF_MAX_LISTEN];
    size_t n_allow;
    struct kr_cidr allow[KR_CONF_MAX_ACL]; /* empty list: allow everything */
    uint32_t max_connections;              /* global */
    uint32_t max_conn_per_source;
    uint32_t rate_per_source;  /* requests per second, token bucket refill */
    uint32_t burst_per_source; /* token bucket size */
    uint32_t ipv6_prefix;      /* per-source limits key IPv6 clients on this prefix */
    uint64_t client_idle_ms;   /* no bytes at all for this long: close */
    uint64_t client_header_ms; /* a started PDU must complete within this */

    /* backends */
    size_t n_hosts;
    struct kr_conf_host hosts[KR_CONF_MAX_HOSTS];
    uint32_t pool_size; /* persistent connections per host */
    uint64_t connect_timeout_ms;
    uint64_t attempt_timeout_ms; /* one try on one host */
    uint64_t request_budget_ms;  /* all tries of one client request */
    uint64_t backend_idle_ms;    /* close idle pooled connections */

    /* routing */
    uint64_t pin_idle_ms;    /* pins expire after this idle time (45d) */
    int failback;            /* enum kr_failback */
    uint64_t refusal_ttl_ms; /* remember a 0xC004F042 (host, KMS id) this long */
    int threshold_assist;    /* on by default */
    uint64_t count_fresh_ms; /* a host's reported count is "recent" this long */

    /* store */
    uint64_t map_size; /* LMDB map size in bytes */
    uint64_t commit_interval_ms;
    uint32_t commit_batch;

    /* health checks */
    uint64_t check_interval_ms;
    uint64_t check_fast_interval_ms; /* while a state is in question */
    uint64_t check_timeout_ms;
    uint32_t rise;
    uint32_t fall;

    /* logging */
    int log_syslog;      /* 0 stderr, 1 syslog */
    int log_debug;       /* 1 when log_level is KR_LOG_DEBUG */
    int log_level;       /* enum kr_log_level (log.h), "info" by default */
    int log_activations; /* one logfmt line per activation (default on) */

    /* shutdown */
    uint64_t shutdown_grace_ms;

    /* DNS (src/dns): publishing our _vlmcs SRV, backend discovery */
    size_t n_dns_zones;
    struct kr_conf_dns_zone dns_zones[KR_CONF_MAX_DNS_ZONES];
    size_t n_dns_resolvers; /* discovery and MNAME lookups; empty: /etc/resolv.conf */
    struct kr_addr dns_resolvers[KR_CONF_MAX_DNS_SERVERS];
    size_t n_dns_self; /* our own names: never taken as discovered backends */
    char dns_self[KR_CONF_MAX_DISCOVER][KR_CONF_FQDN_MAX];
    uint64_t dns_timeout_ms;       /* one server try (3s) */
    uint64_t dns_hold_down_ms;     /* no eligible backend this long: withdraw (30s) */
    uint64_t dns_rise_ms;          /* eligible backends this long: publish (10s) */
    uint64_t dns_min_state_ms;     /* least time between publish and withdraw (30s) */
    uint64_t dns_reconcile_ms;     /* re-read and repair our record (5m) */
    uint32_t dns_rate;             /* UPDATEs per minute per zone (6) */
    uint64_t dns_backoff_min_ms;   /* first retry after a failure (2s), doubling, */
    uint64_t dns_backoff_max_ms;   /* up to this (5m), with jitter */
    uint64_t dns_withdraw_wait_ms; /* bounded withdraw on shutdown (2s) */
    int dns_withdraw_on_stop;      /* withdraw on SIGTERM (on) */
    int dns_fail_static;           /* never empty the name of healthy records (on) */
    uint32_t dns_flap_limit;       /* transitions per flap_window before damping (4) */
    uint64_t dns_flap_window_ms;   /* (1h) */
    size_t n_discover;             /* backend.discover: SRV names to take hosts from */
    char discover[KR_CONF_MAX_DISCOVER][KR_CONF_FQDN_MAX];
    uint64_t discover_interval_ms; /* re-resolve at least this often (60s; TTL sooner) */
    uint64_t discover_linger_ms;   /* a vanished host stays drained this long (1h) */
    uint64_t resolve_min_ms;       /* host names: re-resolve no sooner than this (5s), */
    uint64_t resolve_max_ms;       /* and no later than this (5m), whatever the TTL */

    /* Prometheus metrics (src/metrics): "ip:port" of the HTTP listener, ""
     * = off (the default); port 0 lets the kernel choose (tests) */
    char metrics_listen[KR_CONF_NAME_MAX];

    /* DNS audit (src/audit, kmsrelayd's periodic run) */
    uint64_t dns_audit_interval_ms; /* audit every zone this often; 0 = off (default) */
    uint64_t dns_dead_after_ms;     /* a target failing this long is dead; 0 = 24 h */
    /* sanctioned KMS hosts for the audit, one name or address per line */
    char dns_sanctioned_file[KR_CONF_PATH_MAX];

    /* Peers (src/peer, issue 15): relays that share pins and admin states.
     * Off while peer_name is "" (the default). */
    char peer_name[KR_CONF_NAME_MAX];     /* this relay's name among its peers */
    char peer_listen[KR_CONF_NAME_MAX];   /* "ip:port" for peer links */
    char peer_ca[KR_CONF_PATH_MAX];       /* private CA of the peer certificates */
    char peer_cert[KR_CONF_PATH_MAX];     /* this relay's certificate (PEM) */
    char peer_key[KR_CONF_PATH_MAX];      /* ... and its key */
    char peer_psk_file[KR_CONF_PATH_MAX]; /* or one key shared by all relays (hex) */
    uint64_t peer_retry_ms;               /* reconnect a lost link after (1s) */
    uint64_t peer_stale_ms;               /* unreachable this long: stale (5m) */
    uint32_t peer_log_size;               /* changes kept for catch-up (100000) */
    size_t n_peers;
    struct kr_conf_peer peers[KR_CONF_MAX_PEERS];

    /* Control API (src/control): HTTP/1.1 + JSON on an AF_UNIX socket */
    char control_socket[KR_CONF_PATH_MAX]; /* "/run/kmsrelay/control.sock" */
    uint32_t control_mode;                 /* permission bits of the socket (0660) */
    char control_group[KR_CONF_NAME_MAX];  /* group owner; "" = the daemon's own */
};

/* Fills embedded defaults (no hosts, listeners [::]:1688 and 0.0.0.0:1688,
 * private-range allow-list, state_dir /var/lib/kmsrelay, ...). */
void kr_conf_defaults(struct kr_conf *c);

/* Loads `path` over the defaults into a newly allocated config (caller
 * frees with free()). On errors returns KR_ECONFIG, *out untouched, and
 * writes all messages ("file:line: message\n" each) into errbuf. */
int kr_conf_load(const char *path, struct kr_conf **out, char *errbuf, size_t errlen);

/* Parses a command-line host "name=ip:port[,weight=N]" or "ip:port" (name =
 * the address text). The address may be a DNS name ("kms1.corp:1688",
 * "kms1.corp" for port 1688): addr_name is set, addr left empty. */
int kr_conf_host_parse(const char *text, struct kr_conf_host *out, const char **why);

/* Whole-config checks (unique names, at least one listener, ranges);
 * messages appended to errbuf. Returns 0 or KR_ECONFIG. */
int kr_conf_validate(const struct kr_conf *c, char *errbuf, size_t errlen);

/* Room for a dotted setting name ("store.commit_interval"). */
#define KR_CONF_SETTING_MAX 64

/* The settings that differ between old and nw and that a reload cannot
 * apply (they take effect at the next start), from the restart flags of
 * the settings table (src/conf/settings.c): writes the first `cap` dotted
 * names into `names` and returns how many there are (may exceed cap). */
size_t kr_conf_restart_changes(const struct kr_conf *old, const struct kr_conf *nw,
                               char names[][KR_CONF_SETTING_MAX], size_t cap);

/* 1 when the scalar setting "group.name" ("state_dir" at the top level)
 * takes effect only at the next start, 0 when a reload applies it, -1 when
 * no such scalar setting exists. */
int kr_conf_needs_restart(const char *setting);

#endif
