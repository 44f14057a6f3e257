/*
 * fmt.c - small text conversions the report and its renderers share.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"
#include "report/report-internal.h"

void rp_iso(int64_t t, char out[RP_ISO_LEN])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(out, RP_ISO_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, RP_ISO_LEN, "%lld", (long long)t);
}

const char *rp_app_text(const uint8_t id[16], char buf[40])
{
    const char *n = kr_kms_app_name(id);
    if (n)
        return n;
    kr_guid_format(id, buf);
    return buf;
}

json_t *rp_guid_json(const uint8_t id[16])
{
    char s[KR_GUID_STRLEN];
    kr_guid_format(id, s);
    return json_string(s);
}

json_t *rp_iso_json(int64_t t)
{
    char s[RP_ISO_LEN];
    rp_iso(t, s);
    return json_string(s);
}

/* SL_LICENSING_STATUS values as a KMS request carries them. */
static const char *const licence_names[RP_LICENCE] = {
    "unlicensed",        "licensed",     "oob_grace",      "oot_grace",
    "non_genuine_grace", "notification", "extended_grace", "other",
};

const char *rp_licence_name(unsigned i)
{
    return licence_names[i < RP_LICENCE ? i : RP_LICENCE - 1];
}

const char *rp_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

long long rp_int(const json_t *obj, const char *key, long long dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}
