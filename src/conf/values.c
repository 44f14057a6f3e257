/*
 * values.c - reading one setting's value: numbers, durations and sizes
 * (through units.h), strings and keywords, each checked for its type and
 * range, every problem reported at the setting's file:line.
 */
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"
#include "kmsrelay/log.h"
#include "kmsrelay/units.h"

void conf_where(const struct conf_ctx *x, const config_setting_t *s, const char **file, int *line)
{
    *file = x->source;
    *line = 0;
    /* Array elements may carry no line of their own: use their parent's. */
    for (; s; s = config_setting_parent(s)) {
        if (config_setting_source_line(s) > 0) {
            *line = (int)config_setting_source_line(s);
            if (config_setting_source_file(s))
                *file = config_setting_source_file(s);
            return;
        }
    }
}

const char *conf_type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "a number";
    case CONFIG_TYPE_FLOAT:
        return "a decimal number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "something else";
    }
}

int conf_get_number(struct conf_ctx *x, const config_setting_t *s, const char *path, uint64_t *v)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
        CONF_ERR_AT(x, s, "%s: expected a whole number, not %s", path, conf_type_name(s));
        return -1;
    }
    long long n = config_setting_get_int64(s);
    if (n < 0) {
        CONF_ERR_AT(x, s, "%s: %lld is negative", path, n);
        return -1;
    }
    *v = (uint64_t)n;
    return 0;
}

/* Durations and sizes: a string with units, or a bare number (seconds or
 * bytes, as units.h reads a bare number). */
int conf_get_units(struct conf_ctx *x, const config_setting_t *s, const char *path, int is_dur,
                   uint64_t *v)
{
    const char *why = "";
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        const char *text = config_setting_get_string(s);
        int rc = is_dur ? kr_parse_duration_ms(text, v, &why) : kr_parse_size(text, v, &why);
        if (rc != 0) {
            CONF_ERR_AT(x, s, "%s: \"%s\" is not a %s: %s", path, text,
                        is_dur ? "duration" : "size", why);
            return -1;
        }
        return 0;
    }
    if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64) {
        if (conf_get_number(x, s, path, v) != 0)
            return -1;
        if (is_dur && *v > UINT64_MAX / 1000) {
            CONF_ERR_AT(x, s, "%s: %llu seconds is too long", path, (unsigned long long)*v);
            return -1;
        }
        if (is_dur)
            *v *= 1000;
        return 0;
    }
    CONF_ERR_AT(x, s, "%s: expected a %s such as \"%s\", not %s", path,
                is_dur ? "duration" : "size", is_dur ? "10s" : "256M", conf_type_name(s));
    return -1;
}

const char *conf_get_string(struct conf_ctx *x, const config_setting_t *s, const char *path)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        CONF_ERR_AT(x, s, "%s: expected a string, not %s", path, conf_type_name(s));
        return NULL;
    }
    return config_setting_get_string(s);
}

static int pick(struct conf_ctx *x, const config_setting_t *s, const char *path, const char *text,
                const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(text, words[i]) == 0)
            return (int)i;
    char list[128] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", words[i]);
    CONF_ERR_AT(x, s, "%s: \"%s\" is not one of %s", path, text, list);
    return -1;
}

static void range_error(struct conf_ctx *x, const config_setting_t *s, const char *path,
                        const struct conf_opt *o, uint64_t v)
{
    char a[KR_DURATION_STRLEN], lo[KR_DURATION_STRLEN], hi[KR_DURATION_STRLEN];
    if (o->type == CT_DUR) {
        kr_format_duration(v, a, sizeof(a));
        kr_format_duration(o->min, lo, sizeof(lo));
        kr_format_duration(o->max, hi, sizeof(hi));
    } else if (o->type == CT_SIZE) {
        kr_format_size(v, a, sizeof(a));
        kr_format_size(o->min, lo, sizeof(lo));
        kr_format_size(o->max, hi, sizeof(hi));
    } else {
        snprintf(a, sizeof(a), "%llu", (unsigned long long)v);
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)o->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)o->max);
    }
    CONF_ERR_AT(x, s, "%s: %s is out of range (%s to %s)", path, a, lo, hi);
}

const char *const *conf_keywords(enum conf_type t, size_t *n)
{
    static const char *const failbacks[] = {"never", "always"};
    static const char *const targets[] = {"stderr", "syslog"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    switch (t) {
    case CT_FAILBACK:
        *n = 2;
        return failbacks;
    case CT_TARGET:
        *n = 2;
        return targets;
    case CT_LEVEL:
        *n = 4;
        return levels;
    default:
        *n = 0;
        return NULL;
    }
}

/* CT_U32, CT_DUR, CT_SIZE: a number in [min, max]. */
static void load_number(struct conf_ctx *x, const config_setting_t *s, const char *path,
                        const struct conf_opt *o, char *field)
{
    uint64_t v = 0;
    if (o->type == CT_U32 ? conf_get_number(x, s, path, &v)
                          : conf_get_units(x, s, path, o->type == CT_DUR, &v))
        return;
    if (v < o->min || v > o->max) {
        range_error(x, s, path, o, v);
        return;
    }
    if (o->type == CT_U32)
        *(uint32_t *)(void *)field = (uint32_t)v;
    else
        *(uint64_t *)(void *)field = v;
}

/* CT_NAME, CT_PATH, CT_GROUP: a string copied into the fixed array. */
static void load_text(struct conf_ctx *x, const config_setting_t *s, const char *path,
                      const struct conf_opt *o, char *field)
{
    const char *str = conf_get_string(x, s, path);
    if (!str)
        return;
    if (o->type == CT_NAME && !conf_name_ok(str)) {
        CONF_ERR_AT(x, s,
                    "%s: \"%s\" must be 1 to 63 printable characters without spaces, "
                    "quotes, '=', ',' or '\\'",
                    path, str);
        return;
    }
    if (o->type == CT_PATH && (str[0] == '\0' || strlen(str) >= KR_CONF_PATH_MAX)) {
        CONF_ERR_AT(x, s, "%s: must be a non-empty path shorter than %d bytes", path,
                    KR_CONF_PATH_MAX);
        return;
    }
    if (o->type == CT_GROUP && str[0] && !conf_name_ok(str)) {
        CONF_ERR_AT(x, s, "%s: \"%s\" is not a group name", path, str);
        return;
    }
    snprintf(field, o->type == CT_PATH ? KR_CONF_PATH_MAX : KR_CONF_NAME_MAX, "%s", str);
}

/* CT_FAILBACK, CT_TARGET, CT_LEVEL: one of the type's words, stored as its
 * index; CT_MODE: an octal string. */
static void load_word(struct conf_ctx *x, const config_setting_t *s, const char *path,
                      const struct conf_opt *o, char *field)
{
    const char *str = conf_get_string(x, s, path);
    uint64_t v = 0;
    size_t n = 0;
    if (!str)
        return;
    if (o->type == CT_MODE) {
        if (conf_parse_mode(str, &v) != 0 || v > o->max) {
            CONF_ERR_AT(x, s, "%s: \"%s\" is not an octal mode such as \"0660\"", path, str);
            return;
        }
        *(uint32_t *)(void *)field = (uint32_t)v;
        return;
    }
    const char *const *words = conf_keywords(o->type, &n);
    int k = pick(x, s, path, str, words, n);
    if (k >= 0)
        *(int *)(void *)field = k;
}

/* Pass 2: every scalar of the table that the file sets. */
void conf_load_scalar(struct conf_ctx *x, const struct conf_opt *o)
{
    char path[96];
    char *field = (char *)x->c + o->off;

    snprintf(path, sizeof(path), "%s%s%s", o->group ? o->group : "", o->group ? "." : "", o->name);
    config_setting_t *s = config_lookup(x->cfg, path);
    if (!s)
        return;
    if (o->group && config_setting_type(config_setting_parent(s)) != CONFIG_TYPE_GROUP)
        return; /* shape error already reported */

    switch (o->type) {
    case CT_U32:
    case CT_DUR:
    case CT_SIZE:
        load_number(x, s, path, o, field);
        return;
    case CT_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            CONF_ERR_AT(x, s, "%s: expected true or false, not %s", path, conf_type_name(s));
            return;
        }
        *(int *)(void *)field = config_setting_get_bool(s) ? 1 : 0;
        return;
    case CT_NAME:
    case CT_PATH:
    case CT_GROUP:
        load_text(x, s, path, o, field);
        return;
    case CT_FAILBACK:
    case CT_TARGET:
    case CT_LEVEL:
    case CT_MODE:
        load_word(x, s, path, o, field);
        return;
    }
}

int conf_parse_mode(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(text);
    /* Octal digits only, as chmod(1) writes them: "0660", "660", "0600". */
    if (n == 0 || n > 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '7')
            return -1;
        v = v * 8 + (uint64_t)(text[i] - '0');
    }
    *out = v;
    return 0;
}
