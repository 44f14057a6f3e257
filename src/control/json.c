/*
 * json.c - the small vocabulary shared by the control API's answers: times
 * as ISO 8601 UTC (as the report writes them), GUIDs as lower-case text,
 * applications by name, health words, HRESULTs in hex.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "control/control-internal.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"

void ctl_iso_time(int64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    out[0] = '\0';
    if (t <= 0 || !gmtime_r(&tt, &tm))
        return;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *ctl_json_time(int64_t t)
{
    char buf[32];
    ctl_iso_time(t, buf);
    return buf[0] ? json_string(buf) : json_null();
}

json_t *ctl_json_guid(const uint8_t g[16])
{
    char buf[KR_GUID_STRLEN];
    kr_guid_format(g, buf);
    return json_string(buf);
}

/* Lower case without spaces, '-' or '_': "Office 2013+" -> "office2013+". */
static void squash(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 1 < cap; in++)
        if (*in != ' ' && *in != '-' && *in != '_')
            out[o++] = (char)tolower((unsigned char)*in);
    out[o] = '\0';
}

int ctl_app_filter_parse(const char *text, uint8_t app_id[16], int *idx, bool *by_id)
{
    static const struct {
        const char *name;
        int idx;
    } names[] = {
        {"windows", 0},    {"office2010", 1}, {"office14", 1}, {"office2013+", 2},
        {"office2013", 2}, {"office", 2},     {"office15", 2}, {"other", 3},
    };
    char s[64];

    *by_id = false;
    if (kr_guid_parse(text, app_id) == 0) {
        *by_id = true;
        *idx = kr_kms_app_index(app_id);
        return 0;
    }
    squash(text, s, sizeof(s));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *idx = names[i].idx;
            return 0;
        }
    return -1;
}

const char *ctl_health_word(int health)
{
    switch (health) {
    case KR_HEALTH_UP:
        return "up";
    case KR_HEALTH_DOWN:
        return "down";
    default:
        return "unknown";
    }
}

const char *ctl_licence_word(unsigned status)
{
    /* The words the report uses for the request's LicenseStatus. */
    static const char *const w[] = {"unlicensed",    "licensed",          "oob_grace",
                                    "oot_grace",     "non_genuine_grace", "notification",
                                    "extended_grace"};
    return status < sizeof(w) / sizeof(w[0]) ? w[status] : "other";
}

void ctl_hresult_text(uint32_t hr, char out[12])
{
    snprintf(out, 12, "0x%08X", hr);
}

void ctl_set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v ? v : json_null());
}
