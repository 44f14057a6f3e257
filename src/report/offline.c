/*
 * offline.c - the report without a running daemon's memory: straight from
 * the pin store named by a configuration (kmsrelayd --report), and the
 * format switch shared with kmsrelayctl.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/report.h"

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

/*
 * The admin state and weight the daemon would put in force for a host on
 * start, from the store (src/relay/hosts.c and src/control/weights.c hold
 * the rules; this is their read-only twin, so that the offline report shows
 * an operator's drain, maint or weight like the live one):
 *   admin: the persisted host record wins while the config still says
 *   what it said last time ("cfg_admin:<name>", or nothing recorded and no
 *   state configured); otherwise the config's state (unset = ready).
 *   weight: the operator's "weight:<name>" (u32 weight, u32 configured
 *   weight it replaced) wins while the configured weight is unchanged.
 */
static void resolve_host(struct kr_store *s, const struct kr_conf_host *ch,
                         struct kr_report_host *o)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t last = 0xFE, val[8];
    size_t len = 0;
    struct kr_host_rec rec;
    uint8_t cv = ch->admin == KR_ADMIN_UNSET ? KR_ADMIN_READY : ch->admin, admin = cv;

    snprintf(key, sizeof(key), "cfg_admin:%s", ch->name);
    if (kr_store_kv_get(s, key, &last, 1, &len) != 0 || len != 1 || last > 3)
        last = 0xFE;
    if (kr_store_host_get(s, ch->name, &rec) == 0 && rec.admin <= 3 &&
        (last == cv || (last == 0xFE && ch->admin == KR_ADMIN_UNSET)))
        admin = rec.admin;
    snprintf(o->admin, sizeof(o->admin), "%s", kr_admin_name(admin));

    o->weight = ch->weight;
    snprintf(key, sizeof(key), "weight:%s", ch->name);
    if (kr_store_kv_get(s, key, val, sizeof(val), &len) == 0 && len == sizeof(val)) {
        uint32_t w = kr_le32(val), was = kr_le32(val + 4);
        if (w >= 1 && was == ch->weight)
            o->weight = w;
    }
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
