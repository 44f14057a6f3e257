/*
 * rows.c - one client (a pair: CMID and application, with its pin) as a
 * line of GET /v1/clients: a compact JSON
 * object or an RFC 4180 CSV row, written straight into a buffer.
 *
 * A list of 100k clients is rendered on a worker thread while walking the
 * store; building a jansson object per client costs tens of allocations
 * each, so the rows are formatted by hand here. The JSON row carries the
 * same fields and values as ctl_pin_json(p, false) (test_control.c checks
 * that they agree). Strings are escaped for JSON; bytes that are not valid
 * UTF-8 (the store does not validate workstation names) become U+FFFD so
 * the document always parses.
 *
 * CSV: the workstation name comes from the client (the wire), so a name
 * that starts like a spreadsheet formula (= + - @ TAB CR) gets a leading
 * apostrophe, the classic CSV-injection guard, as in the report's CSV.
 * Nothing else is changed.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "control/control-internal.h"
#include "kmsrelay/csv.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"

#define ROW_MAX 4096 /* a row is < 1.5 KiB even with 192-byte names escaped */

struct row {
    char buf[ROW_MAX];
    size_t n;
};

static void raw(struct row *r, const char *s, size_t n)
{
    if (r->n + n < sizeof(r->buf)) {
        memcpy(r->buf + r->n, s, n);
        r->n += n;
    }
}

static void str(struct row *r, const char *s)
{
    raw(r, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

static void json_str(struct row *r, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    raw(r, "\"", 1);
    while (*p) {
        size_t l = utf8_len(p);
        char esc[8];
        if (l == 0) {
            str(r, "\\ufffd");
            p++;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            raw(r, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            str(r, esc);
            p++;
        } else {
            raw(r, (const char *)p, l);
            p += l;
        }
    }
    raw(r, "\"", 1);
}

static void row_put(void *ctx, const char *p, size_t n)
{
    raw((struct row *)ctx, p, n);
}

/* A CSV field (RFC 4180, kmsrelay/csv.h); invalid UTF-8 is passed through.
 * guard: prefix a formula-looking value with an apostrophe. */
static void csv_str(struct row *r, const char *s, bool guard)
{
    kr_csv_field(s, guard, row_put, r);
}

/* The scalar values of a pin, as text, in CSV column order. */
struct pin_text {
    char cmid[KR_GUID_STRLEN], app_id[KR_GUID_STRLEN], prev[KR_GUID_STRLEN], sku[KR_GUID_STRLEN];
    char first[32], last[32], hr[12];
    char protocol[8], count[16], n_policy[16], skew[16], activations[16];
    const char *app, *licence, *hr_name;
};

static void pin_text(const struct kr_pin *p, struct pin_text *t)
{
    kr_guid_format(p->cmid, t->cmid);
    kr_guid_format(p->app_id, t->app_id);
    kr_guid_format(p->sku_id, t->sku);
    t->prev[0] = '\0';
    if (!kr_guid_is_zero(p->prev_cmid))
        kr_guid_format(p->prev_cmid, t->prev);
    ctl_iso_time(p->first_seen, t->first);
    ctl_iso_time(p->last_seen, t->last);
    ctl_hresult_text(p->last_hresult, t->hr);
    snprintf(t->protocol, sizeof(t->protocol), "%u", p->ver_major);
    snprintf(t->count, sizeof(t->count), "%u", p->last_count);
    snprintf(t->n_policy, sizeof(t->n_policy), "%u", p->n_policy);
    snprintf(t->skew, sizeof(t->skew), "%d", p->skew_s);
    snprintf(t->activations, sizeof(t->activations), "%u", p->activations);
    t->app = kr_kms_app_name(p->app_id);
    if (!t->app)
        t->app = t->app_id;
    t->licence = ctl_licence_word(p->license_status);
    t->hr_name = kr_kms_hresult_name(p->last_hresult);
}

static void key(struct row *r, const char *k, bool first)
{
    str(r, first ? "{\"" : ",\"");
    str(r, k);
    str(r, "\":");
}

void ctl_client_row_json(struct evbuffer *b, const struct kr_pin *p)
{
    struct pin_text t;
    struct row r;
    r.n = 0;
    pin_text(p, &t);

    key(&r, "cmid", true);
    json_str(&r, t.cmid);
    key(&r, "workstation", false);
    json_str(&r, p->workstation);
    key(&r, "host", false);
    json_str(&r, p->host);
    key(&r, "application", false);
    json_str(&r, t.app);
    key(&r, "app_id", false);
    json_str(&r, t.app_id);
    key(&r, "sku_id", false);
    json_str(&r, t.sku);
    key(&r, "first_seen", false);
    t.first[0] ? json_str(&r, t.first) : str(&r, "null");
    key(&r, "last_seen", false);
    t.last[0] ? json_str(&r, t.last) : str(&r, "null");
    key(&r, "vm", false);
    str(&r, p->is_vm ? "true" : "false");
    key(&r, "licence", false);
    json_str(&r, t.licence);
    key(&r, "protocol", false);
    str(&r, t.protocol);
    key(&r, "last_result", false);
    json_str(&r, t.hr);
    key(&r, "last_result_name", false);
    t.hr_name ? json_str(&r, t.hr_name) : str(&r, "null");
    key(&r, "count", false);
    str(&r, t.count);
    key(&r, "n_policy", false);
    str(&r, t.n_policy);
    key(&r, "skew_seconds", false);
    str(&r, t.skew);
    key(&r, "activations", false);
    str(&r, t.activations);
    key(&r, "previous_cmid", false);
    t.prev[0] ? json_str(&r, t.prev) : str(&r, "null");
    str(&r, "}");
    evbuffer_add(b, r.buf, r.n);
}

void ctl_client_row_csv(struct evbuffer *b, const struct kr_pin *p)
{
    struct pin_text t;
    struct row r;
    const char *f[] = {t.cmid,     p->workstation, p->host,       NULL,
                       t.app_id,   t.first,        t.last,        p->is_vm ? "true" : "false",
                       NULL,       t.protocol,     t.hr,          t.count,
                       t.n_policy, t.skew,         t.activations, t.prev,
                       t.sku};
    r.n = 0;
    pin_text(p, &t);
    f[3] = t.app;
    f[8] = t.licence;
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (i)
            raw(&r, ",", 1);
        csv_str(&r, f[i], i == 1); /* the workstation name */
    }
    raw(&r, "\r\n", 2);
    evbuffer_add(b, r.buf, r.n);
}
