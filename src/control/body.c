/*
 * body.c - the JSON bodies of the control API's POST endpoints.
 *
 * Strict on purpose: a body must be one JSON object (no duplicate keys,
 * valid UTF-8), every key must be known to the endpoint and of the right
 * type, and numbers must be whole and in range. A typo in a script ("weigth")
 * is a 400 naming the key, never a silently ignored field. The daemon's
 * state is only touched after the body passed.
 */
#include <stdio.h>
#include <string.h>

#include "control/control-internal.h"

static const char *type_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "a whole number";
    case JSON_REAL:
        return "a decimal number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Keys each kind accepts, NULL-terminated. */
static const char *const *known_keys(int kind)
{
    static const char *const none[] = {NULL};
    static const char *const state[] = {"state", NULL};
    static const char *const weight[] = {"weight", NULL};
    static const char *const move[] = {"host", NULL};
    static const char *const rebalance[] = {"max", "dry_run", NULL};
    switch (kind) {
    case CTL_BODY_STATE:
        return state;
    case CTL_BODY_WEIGHT:
        return weight;
    case CTL_BODY_MOVE:
        return move;
    case CTL_BODY_REBALANCE:
        return rebalance;
    default:
        return none;
    }
}

static bool only_space(const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r' && d[i] != '\n')
            return false;
    return true;
}

static int get_uint(const json_t *o, const char *key, uint64_t lo, uint64_t hi, uint64_t *v,
                    char *err, size_t errlen)
{
    const json_t *x = json_object_get(o, key);
    if (!json_is_integer(x))
        return ctl_fail(err, errlen, 400, "\"%s\" must be a whole number, not %s", key,
                        type_word(x));
    json_int_t n = json_integer_value(x);
    if (n < 0 || (uint64_t)n < lo || (uint64_t)n > hi)
        return ctl_fail(err, errlen, 400, "\"%s\" must be between %llu and %llu", key,
                        (unsigned long long)lo, (unsigned long long)hi);
    *v = (uint64_t)n;
    return 0;
}

static int get_string(const json_t *o, const char *key, const char **s, char *err, size_t errlen)
{
    const json_t *x = json_object_get(o, key);
    if (!json_is_string(x))
        return ctl_fail(err, errlen, 400, "\"%s\" must be a string, not %s", key, type_word(x));
    *s = json_string_value(x);
    if (strlen(*s) != json_string_length(x))
        return ctl_fail(err, errlen, 400, "\"%s\" contains a NUL character", key);
    return 0;
}

/* Host names as the config accepts them: 1..63 printable ASCII bytes. */
static bool host_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= KR_CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int fields(int kind, const json_t *o, struct ctl_body *out, char *err, size_t errlen)
{
    const char *s;
    uint64_t v;
    int rc;

    switch (kind) {
    case CTL_BODY_STATE:
        if (!json_object_get(o, "state"))
            return ctl_fail(err, errlen, 400, "missing \"state\" (ready, drain, maint, retired)");
        if ((rc = get_string(o, "state", &s, err, errlen)) != 0)
            return rc;
        if ((out->state = kr_admin_parse(s)) < 0)
            return ctl_fail(err, errlen, 400,
                            "\"state\" must be one of ready, drain, maint, retired, not \"%.32s\"",
                            s);
        return 0;
    case CTL_BODY_WEIGHT:
        if (!json_object_get(o, "weight"))
            return ctl_fail(err, errlen, 400, "missing \"weight\" (1 to %d)", CTL_WEIGHT_MAX);
        if ((rc = get_uint(o, "weight", 1, CTL_WEIGHT_MAX, &v, err, errlen)) != 0)
            return rc;
        out->weight = (uint32_t)v;
        return 0;
    case CTL_BODY_MOVE:
        if (!json_object_get(o, "host"))
            return ctl_fail(err, errlen, 400, "missing \"host\" (the host to pin to)");
        if ((rc = get_string(o, "host", &s, err, errlen)) != 0)
            return rc;
        if (!host_name_ok(s))
            return ctl_fail(err, errlen, 400, "\"host\" is not a valid host name");
        snprintf(out->host, sizeof(out->host), "%s", s);
        return 0;
    case CTL_BODY_REBALANCE:
        if (json_object_get(o, "max")) {
            if ((rc = get_uint(o, "max", 0, CTL_REBALANCE_MAX, &out->max, err, errlen)) != 0)
                return rc;
        }
        if (json_object_get(o, "dry_run")) {
            const json_t *d = json_object_get(o, "dry_run");
            if (!json_is_boolean(d))
                return ctl_fail(err, errlen, 400, "\"dry_run\" must be true or false, not %s",
                                type_word(d));
            out->dry_run = json_is_true(d);
        }
        return 0;
    default:
        return 0;
    }
}

int ctl_body_parse(int kind, const char *data, size_t len, struct ctl_body *out, char *err,
                   size_t errlen)
{
    json_error_t je;
    const char *key;
    json_t *o, *v;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->max = CTL_REBALANCE_DEFAULT;
    if (kind < 0 || kind >= CTL_BODY_KINDS)
        return ctl_fail(err, errlen, 400, "bad body kind");
    if (len > CTL_BODY_MAX)
        return ctl_fail(err, errlen, 413, "request body over %d bytes", CTL_BODY_MAX);
    /* No body at all is the same as {} (then required keys are missing). */
    if (!data || only_space(data, len)) {
        if (!(o = json_object()))
            return ctl_fail(err, errlen, 500, "out of memory");
        rc = fields(kind, o, out, err, errlen);
        json_decref(o);
        return rc;
    }

    o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return ctl_fail(err, errlen, 400, "request body is not valid JSON: %s (line %d, column %d)",
                        je.text, je.line, je.column);
    if (!json_is_object(o)) {
        rc = ctl_fail(err, errlen, 400, "request body must be a JSON object, not %s", type_word(o));
        goto out;
    }
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (const char *const *k = known_keys(kind); *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (!ok) {
            rc = ctl_fail(err, errlen, 400, "unknown field \"%.64s\" in the request body", key);
            goto out;
        }
    }
    rc = fields(kind, o, out, err, errlen);
out:
    json_decref(o);
    return rc;
}
