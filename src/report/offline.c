/*
 * offline.c - the report without a running daemon's memory: straight from
 * the pin store named by a configuration (kmsrelayd --report), and the
 * format switch shared with kmsrelayctl.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/report.h"
#include "relay/relay.h"

int kr_report_write(const json_t *report, const char *format, FILE *out, unsigned width)
{
    if (!format || strcmp(format, "table") == 0)
        return kr_report_write_table(report, out, width);
    if (strcmp(format, "csv") == 0)
        return kr_report_write_csv(report, out);
    if (strcmp(format, "json") == 0) {
        if (json_dumpf(report, out, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
            return KR_EIO;
        fputc('\n', out);
        return fflush(out) == 0 ? 0 : KR_EIO;
    }
    return KR_EINVAL;
}

/* The admin state and weight the daemon would put in force for a host on
 * start, by the relay's own rules over the store (src/relay/hosts.c and
 * weights.c), so that the offline report shows an operator's drain, maint
 * or weight like the live one. */
static void resolve_host(struct kr_store *s, const struct kr_conf_host *ch,
                         struct kr_report_host *o)
{
    uint32_t op = kr_relay_stored_weight(s, ch->name, ch, NULL);
    snprintf(o->admin, sizeof(o->admin), "%s",
             kr_admin_name(kr_relay_stored_admin(s, ch->name, ch->admin)));
    o->weight = op ? op : ch->weight;
}

int kr_report_offline(const struct kr_conf *c, const char *format, FILE *out, char *err,
                      size_t errlen)
{
    static struct kr_report_host hosts[KR_CONF_MAX_HOSTS];
    struct kr_store *s = NULL;
    struct stat st;
    const char *why = "";
    json_t *rep = NULL;
    int rc;

    if (format && strcmp(format, "table") && strcmp(format, "json") && strcmp(format, "csv")) {
        snprintf(err, errlen, "unknown report format \"%s\" (table, json or csv)", format);
        return KR_EINVAL;
    }
    /* Opening would create an empty store: say what is wrong instead. */
    errno = 0;
    if (stat(c->state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "no state directory %s: %s", c->state_dir,
                 errno ? strerror(errno) : "not a directory");
        return KR_ENOENT;
    }
    struct kr_store_opts so = {.map_size = c->map_size}; /* as the daemon maps it */
    if ((rc = kr_store_open(c->state_dir, &so, &s, &why)) != 0) {
        snprintf(err, errlen, "cannot open the store in %s: %s", c->state_dir, why);
        return rc;
    }
    memset(hosts, 0, sizeof(hosts));
    for (size_t i = 0; i < c->n_hosts && i < KR_CONF_MAX_HOSTS; i++) {
        snprintf(hosts[i].name, sizeof(hosts[i].name), "%s", c->hosts[i].name);
        resolve_host(s, &c->hosts[i], &hosts[i]);
    }
    rc = kr_report_build(s, hosts, c->n_hosts, kr_wall_s(), NULL, &rep, &why);
    kr_store_close(s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot build the report: %s", why);
        return rc;
    }
    rc = kr_report_write(rep, format, out, 0);
    json_decref(rep);
    if (rc != 0)
        snprintf(err, errlen, "cannot write the report");
    return rc;
}
