/*
 * notes.c - what the daemon tells the operator at start and on reload
 * besides errors: a public listener open to every client, the port file
 * for scripts and tests, and multi-line config errors as log lines.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/log.h"
#include "relay/relay.h"

void daemon_init_log(const struct kr_conf *c, bool debug)
{
    kr_log_init("kmsrelayd", debug ? 0 : c->log_syslog, debug ? KR_LOG_DEBUG : c->log_level);
}

void daemon_log_lines(int level, const char *event, const char *text)
{
    char q[600];
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1),
                 text);
        if (n)
            kr_log(level, "event=%s msg=%s", event, kr_logfmt_value(line, q, sizeof(q)));
        text += n + (nl ? 1 : 0);
    }
}

/* Loopback, private and link-local networks: a listener there is not public. */
static bool addr_is_private(const struct sockaddr *sa)
{
    static const char *const nets[] = {"127.0.0.0/8",    "10.0.0.0/8",     "172.16.0.0/12",
                                       "192.168.0.0/16", "169.254.0.0/16", "::1/128",
                                       "fc00::/7",       "fe80::/10"};
    struct kr_cidr c;
    for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
        if (kr_cidr_parse(nets[i], &c, NULL) == 0 && kr_cidr_match(&c, sa))
            return true;
    return false;
}

void daemon_warn_public(const struct kr_conf *c)
{
    bool allow_all = c->n_allow == 0;
    for (size_t i = 0; i < c->n_allow; i++)
        allow_all |= c->allow[i].prefix == 0;
    if (!allow_all)
        return;
    for (size_t i = 0; i < c->n_listen; i++) {
        if (addr_is_private((const struct sockaddr *)&c->listen[i].ss))
            continue;
        char a[KR_ADDRSTRLEN];
        kr_addr_format((const struct sockaddr *)&c->listen[i].ss, a);
        kr_log(KR_LOG_WARN,
               "event=warning listen=%s msg=\"listener is public and the allow-list allows every "
               "client: anyone who can reach it can use your KMS hosts; set clients.allow\"",
               a);
    }
}

/* The first listener's actual port (port 0 picks one), written atomically. */
void daemon_write_port_file(struct kr_daemon *d)
{
    struct kr_addr first;
    const char *path = d->opts.port_file;
    if (!path || kr_relay_listen_addrs(d->relay, &first, 1) != 1)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    if (f) {
        fprintf(f, "%u\n", kr_addr_port((const struct sockaddr *)&first.ss));
        ok = fclose(f) == 0 && rename(tmp, path) == 0;
        if (!ok)
            unlink(tmp);
    }
    if (!ok)
        kr_log(KR_LOG_WARN, "event=warning msg=\"cannot write the port file %s\"", path);
}
