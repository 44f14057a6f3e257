/*
 * defaults.c - the embedded configuration (what kmsrelayd runs with when no
 * file is given): the scalars' defaults come from the table of settings.c,
 * the lists' are here. Also the admin-state names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf-internal.h"
#include "kmsrelay/log.h"
#include "kmsrelay/units.h"

/* Loopback and the private ranges: a fresh install serves the LAN it sits
 * in and nobody else (issue 3, access control). */
static const char *const default_allow[] = {
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
};

int conf_default_value(struct kr_conf *c, const struct conf_opt *o)
{
    char *field = (char *)c + o->off;
    const char *why = NULL;
    char *end = NULL;
    uint64_t v = 0;
    size_t n = 0;
    const char *const *words = conf_keywords(o->type, &n);

    switch (o->type) {
    case CT_U32:
        v = strtoull(o->def, &end, 10);
        if (!o->def[0] || *end || v > UINT32_MAX)
            return -1;
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    case CT_DUR:
    case CT_SIZE:
        if ((o->type == CT_DUR ? kr_parse_duration_ms(o->def, &v, &why)
                               : kr_parse_size(o->def, &v, &why)) != 0)
            return -1;
        *(uint64_t *)(void *)field = v;
        return 0;
    case CT_BOOL:
        if (strcmp(o->def, "true") != 0 && strcmp(o->def, "false") != 0)
            return -1;
        *(int *)(void *)field = strcmp(o->def, "true") == 0;
        return 0;
    case CT_NAME:
    case CT_GROUP:
    case CT_PATH: {
        size_t cap = o->type == CT_PATH ? KR_CONF_PATH_MAX : KR_CONF_NAME_MAX;
        if (strlen(o->def) >= cap)
            return -1;
        snprintf(field, cap, "%s", o->def);
        return 0;
    }
    case CT_FAILBACK:
    case CT_TARGET:
    case CT_LEVEL:
        for (size_t i = 0; i < n; i++)
            if (strcmp(o->def, words[i]) == 0) {
                *(int *)(void *)field = (int)i;
                return 0;
            }
        return -1;
    case CT_MODE:
        if (conf_parse_mode(o->def, &v) != 0)
            return -1;
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    }
    return -1;
}

void kr_conf_defaults(struct kr_conf *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < conf_n_opts; i++)
        if (conf_default_value(c, &conf_opts[i]) != 0)
            kr_log(KR_LOG_ERR, "event=bug what=\"default of %s does not parse\"",
                   conf_opts[i].name);
    c->log_debug = c->log_level == KR_LOG_DEBUG;

    /* The lists. Two sockets: the IPv6 one is V6ONLY, so both can own port 1688. */
    kr_addr_parse("[::]:1688", AF_INET6, &c->listen[0], NULL);
    kr_addr_parse("0.0.0.0:1688", AF_INET, &c->listen[1], NULL);
    c->n_listen = 2;
    for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
        kr_cidr_parse(default_allow[i], &c->allow[c->n_allow++], NULL);
}

static const char *const admin_names[] = {"ready", "drain", "maint", "retired"};

const char *kr_admin_name(int admin)
{
    if (admin >= 0 && admin < 4)
        return admin_names[admin];
    return admin == KR_ADMIN_UNSET ? "unset" : "?";
}

int kr_admin_parse(const char *text)
{
    for (int i = 0; i < 4; i++)
        if (text && strcmp(text, admin_names[i]) == 0)
            return i;
    return -1;
}
