/*
 * restart.c - which changed settings a reload cannot apply: the answer
 * comes from the restart flags of the table in settings.c, so the reload
 * notes, the documentation check and the code never disagree.
 */
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"

bool conf_value_equal(const struct conf_opt *o, const struct kr_conf *a, const struct kr_conf *b)
{
    const char *fa = (const char *)a + o->off, *fb = (const char *)b + o->off;
    switch (o->type) {
    case CT_U32:
    case CT_MODE:
        return memcmp(fa, fb, sizeof(uint32_t)) == 0;
    case CT_DUR:
    case CT_SIZE:
        return memcmp(fa, fb, sizeof(uint64_t)) == 0;
    case CT_BOOL:
    case CT_FAILBACK:
    case CT_TARGET:
    case CT_LEVEL:
        return memcmp(fa, fb, sizeof(int)) == 0;
    case CT_NAME:
    case CT_PATH:
    case CT_GROUP:
        return strcmp(fa, fb) == 0;
    }
    return false;
}

static void dotted(const struct conf_opt *o, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", o->group ? o->group : "", o->group ? "." : "", o->name);
}

size_t kr_conf_restart_changes(const struct kr_conf *old, const struct kr_conf *nw,
                               char names[][KR_CONF_SETTING_MAX], size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < conf_n_opts; i++) {
        const struct conf_opt *o = &conf_opts[i];
        if (!o->restart || conf_value_equal(o, old, nw))
            continue;
        if (n < cap)
            dotted(o, names[n], KR_CONF_SETTING_MAX);
        n++;
    }
    return n;
}

int kr_conf_needs_restart(const char *setting)
{
    char path[KR_CONF_SETTING_MAX];
    for (size_t i = 0; i < conf_n_opts; i++) {
        dotted(&conf_opts[i], path, sizeof(path));
        if (strcmp(path, setting) == 0)
            return conf_opts[i].restart ? 1 : 0;
    }
    return -1;
}
