/* test_report.c - the activation report (src/report): a store in a temp dir
 * seeded with pins that hold exactly one instance of each problem, and a
 * check of every finding, the summary numbers, the item cap, and the CSV
 * and table renderings. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/report.h"
#include "kmsrelay/store.h"
#include "relay/relay.h"
#include "testutil.h"

#define NOW 1800000000LL
#define DAY 86400LL

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void cmid_n(uint32_t n, uint8_t out[16])
{
    memset(out, 0, 16);
    out[0] = 0xc0;
    out[12] = (uint8_t)(n >> 24);
    out[13] = (uint8_t)(n >> 16);
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
}

static const char *cmid_text(uint32_t n, char buf[KR_GUID_STRLEN])
{
    uint8_t c[16];
    cmid_n(n, c);
    kr_guid_format(c, buf);
    return buf;
}

/* A healthy client: seen a day ago, success, count as given. */
static void mk(struct kr_pin *p, uint32_t n, const char *host, const uint8_t app[16],
               uint32_t policy, uint32_t count, const char *ws)
{
    memset(p, 0, sizeof(*p));
    cmid_n(n, p->cmid);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->first_seen = NOW - 20 * DAY;
    p->last_seen = NOW - DAY;
    memcpy(p->app_id, app, 16);
    kr_pin_note_name(p, ws, p->last_seen);
    p->license_status = 2; /* OOB grace */
    p->ver_major = 6;
    p->last_count = count;
    p->n_policy = policy;
    p->activations = 1;
}

static void put(struct kr_store *s, const struct kr_pin *p)
{
    CU_ASSERT_EQUAL(kr_store_pin_put(s, p), 0);
}

/*
 * The seeded world:
 *   kms-a  Windows: 30 clients (policy 25), host table says count 45
 *          Office 2013+: 6 clients, count 6
 *   kms-b  Windows: 3 clients (policy 25) + 1 server (policy 5), count 10
 *          from its latest client -> below 25, the 3 clients affected
 *   kms-c  Office 2010: 2 clients, count 2 -> below 5
 *   kms-d  configured, no clients
 *   problems: 2 skewed clients (+5 h, -4 h 1 s) and one at exactly 4 h,
 *   one cloned CMID (2 names in the window) and one whose second name is
 *   older than the window, a chain P0 > P1 > X and one Q > Y, a two-pin loop,
 *   one client 8 days idle and one 40 days idle.
 */
static struct kr_store *seed(char *dir)
{
    struct kr_store *s = NULL;
    struct kr_pin p;
    char ws[64];

    strcpy(dir, "/tmp/kr-report-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);

    for (uint32_t i = 0; i < 30; i++) {
        snprintf(ws, sizeof(ws), "a-win-%02u", i);
        mk(&p, 100 + i, "kms-a", kr_kms_app_windows, 25, 40, ws);
        p.is_vm = i < 10;
        if (i == 0)
            p.skew_s = 18000;
        if (i == 1)
            p.skew_s = -14401;
        if (i == 2)
            p.skew_s = 14400; /* exactly the limit: accepted by hosts */
        if (i == 3)           /* cloned: a second name seen within the window */
            kr_pin_note_name(&p, "a-clone-twin", NOW - 2 * DAY);
        if (i == 4) /* an old second name: renamed long ago, not a clone now */
            kr_pin_note_name(&p, "a-old-name", NOW - 60 * DAY), kr_pin_note_name(&p, ws, NOW - DAY);
        if (i == 5)
            p.license_status = 1;
        put(s, &p);
    }
    for (uint32_t i = 0; i < 6; i++) {
        snprintf(ws, sizeof(ws), "a-off-%u", i);
        mk(&p, 200 + i, "kms-a", kr_kms_app_office2013, 5, 6, ws);
        put(s, &p);
    }
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(ws, sizeof(ws), "b-win-%u", i);
        mk(&p, 300 + i, "kms-b", kr_kms_app_windows, 25, 8 + i, ws);
        p.last_seen = NOW - DAY - 100 + i; /* b-win-2 is the latest: count 10 */
        put(s, &p);
    }
    mk(&p, 310, "kms-b", kr_kms_app_windows, 5, 7, "b-server");
    p.last_seen = NOW - 2 * DAY;
    put(s, &p);
    for (uint32_t i = 0; i < 2; i++) {
        snprintf(ws, sizeof(ws), "c-o14-%u", i);
        mk(&p, 400 + i, "kms-c", kr_kms_app_office2010, 5, 1 + i, ws);
        p.last_seen = NOW - DAY + i;
        put(s, &p);
    }
    /* chains: P0 (600, not a pin) > P1 (601) > X (602); Q (700) > Y (701) */
    mk(&p, 601, "kms-a", kr_kms_app_windows, 25, 40, "chain-p1");
    cmid_n(600, p.prev_cmid);
    p.last_seen = NOW - 3 * DAY;
    put(s, &p);
    mk(&p, 602, "kms-a", kr_kms_app_windows, 25, 40, "chain-x");
    cmid_n(601, p.prev_cmid);
    put(s, &p);
    mk(&p, 701, "kms-a", kr_kms_app_windows, 25, 40, "chain-y");
    cmid_n(700, p.prev_cmid);
    put(s, &p);
    /* a loop (no head): must terminate and list nothing */
    mk(&p, 800, "kms-a", kr_kms_app_windows, 25, 40, "loop-1");
    cmid_n(801, p.prev_cmid);
    put(s, &p);
    mk(&p, 801, "kms-a", kr_kms_app_windows, 25, 40, "loop-2");
    cmid_n(800, p.prev_cmid);
    put(s, &p);
    /* stale */
    mk(&p, 900, "kms-a", kr_kms_app_windows, 25, 40, "gone-8d");
    p.last_seen = NOW - 8 * DAY;
    put(s, &p);
    mk(&p, 901, "kms-a", kr_kms_app_windows, 25, 40, "gone-40d");
    p.last_seen = NOW - 40 * DAY;
    put(s, &p);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    return s;
}

static void hosts_in(struct kr_report_host h[2])
{
    memset(h, 0, 2 * sizeof(*h));
    strcpy(h[0].name, "kms-a");
    strcpy(h[0].admin, "ready");
    strcpy(h[0].health, "up");
    h[0].n_counts = 1;
    memcpy(h[0].counts[0].app_id, kr_kms_app_windows, 16);
    h[0].counts[0].count = 45;
    h[0].counts[0].n_policy = 25;
    h[0].counts[0].age_s = 12;
    strcpy(h[1].name, "kms-d");
    strcpy(h[1].admin, "drain");
    strcpy(h[1].health, "down");
}

static const json_t *find(const json_t *arr, const char *k1, const char *v1, const char *k2,
                          const char *v2)
{
    size_t i;
    const json_t *it;
    json_array_foreach(arr, i, it)
    {
        const char *a = json_string_value(json_object_get(it, k1));
        const char *b = k2 ? json_string_value(json_object_get(it, k2)) : NULL;
        if (a && strcmp(a, v1) == 0 && (!k2 || (b && strcmp(b, v2) == 0)))
            return it;
    }
    return NULL;
}

static long long geti(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void check_summary(const json_t *r)
{
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "schema")), KR_REPORT_SCHEMA);
    CU_ASSERT_EQUAL(geti(r, "pins"), 30 + 6 + 4 + 2 + 3 + 2 + 2);
    CU_ASSERT_EQUAL(geti(r, "clients"), 30 + 6 + 4 + 2 + 3 + 2 + 1); /* not the 40-day one */
    CU_ASSERT_EQUAL(geti(r, "vm"), 10);
    CU_ASSERT_EQUAL(geti(r, "vm") + geti(r, "physical"), geti(r, "clients"));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "generated_at")),
                           "2027-01-15T08:00:00Z");

    const json_t *apps = json_object_get(r, "applications");
    CU_ASSERT_EQUAL(json_array_size(apps), 3);
    const json_t *win = find(apps, "application", "Windows", NULL, NULL);
    const json_t *o13 = find(apps, "application", "Office 2013+", NULL, NULL);
    const json_t *o14 = find(apps, "application", "Office 2010", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(win);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o13);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o14);
    CU_ASSERT_EQUAL(geti(win, "clients"), 30 + 4 + 3 + 2 + 1);
    CU_ASSERT_EQUAL(geti(o13, "clients"), 6);
    CU_ASSERT_EQUAL(geti(o14, "clients"), 2);
    const json_t *lic = json_object_get(win, "licence");
    CU_ASSERT_EQUAL(geti(lic, "licensed"), 1);
    CU_ASSERT_EQUAL(geti(lic, "oob_grace"), geti(win, "clients") - 1);
    CU_ASSERT_EQUAL(geti(lic, "unlicensed"), 0);

    /* cells */
    const json_t *wa = find(json_object_get(win, "hosts"), "host", "kms-a", NULL, NULL);
    const json_t *wb = find(json_object_get(win, "hosts"), "host", "kms-b", NULL, NULL);
    const json_t *cc = find(json_object_get(o14, "hosts"), "host", "kms-c", NULL, NULL);
    const json_t *oa = find(json_object_get(o13, "hosts"), "host", "kms-a", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wa);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(oa);
    CU_ASSERT_EQUAL(geti(wa, "reported_count"), 45);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(wa, "count_source")), "host");
    CU_ASSERT_EQUAL(geti(wa, "count_age_seconds"), 12);
    CU_ASSERT_EQUAL(geti(wa, "threshold"), 25);
    CU_ASSERT(json_is_false(json_object_get(wa, "below_threshold")));
    CU_ASSERT_EQUAL(geti(wb, "clients"), 4);
    CU_ASSERT_EQUAL(geti(wb, "reported_count"), 10);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(wb, "count_source")), "pin");
    CU_ASSERT(json_is_null(json_object_get(wb, "count_age_seconds")));
    CU_ASSERT(json_is_true(json_object_get(wb, "below_threshold")));
    CU_ASSERT_EQUAL(geti(cc, "reported_count"), 2);
    CU_ASSERT_EQUAL(geti(cc, "threshold"), 5);
    CU_ASSERT(json_is_true(json_object_get(cc, "below_threshold")));
    CU_ASSERT_EQUAL(geti(oa, "reported_count"), 6);
    CU_ASSERT(json_is_false(json_object_get(oa, "below_threshold")));

    const json_t *hosts = json_object_get(r, "hosts");
    CU_ASSERT_EQUAL(json_array_size(hosts), 4);
    const json_t *hd = find(hosts, "host", "kms-d", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hd);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(hd, "admin")), "drain");
    CU_ASSERT_EQUAL(geti(hd, "clients"), 0);
    CU_ASSERT(json_is_null(json_object_get(find(hosts, "host", "kms-b", NULL, NULL), "admin")));
    /* sorted by name */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(hosts, 0), "host")),
                           "kms-a");
}

static void check_findings(const json_t *r)
{
    char g[KR_GUID_STRLEN];
    const json_t *f = json_object_get(r, "findings"), *t = json_object_get(r, "totals");

    const json_t *below = json_object_get(f, "below_threshold");
    CU_ASSERT_EQUAL(json_array_size(below), 2);
    const json_t *bb = find(below, "host", "kms-b", "application", "Windows");
    const json_t *bc = find(below, "host", "kms-c", "application", "Office 2010");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bc);
    CU_ASSERT_EQUAL(geti(bb, "count"), 10);
    CU_ASSERT_EQUAL(geti(bb, "threshold"), 25);
    CU_ASSERT_EQUAL(geti(bb, "clients_total"), 3); /* the server (policy 5) can activate */
    CU_ASSERT_PTR_NOT_NULL(
        find(json_object_get(bb, "clients"), "workstation", "b-win-0", NULL, NULL));
    CU_ASSERT_PTR_NULL(find(json_object_get(bb, "clients"), "workstation", "b-server", NULL, NULL));
    CU_ASSERT_EQUAL(geti(bc, "clients_total"), 2);

    const json_t *skew = json_object_get(f, "clock_skew");
    CU_ASSERT_EQUAL(json_array_size(skew), 2);
    const json_t *s0 = find(skew, "workstation", "a-win-00", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s0);
    CU_ASSERT_EQUAL(geti(s0, "skew_seconds"), 18000);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s0, "cmid")), cmid_text(100, g));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s0, "host")), "kms-a");
    CU_ASSERT_PTR_NOT_NULL(find(skew, "workstation", "a-win-01", NULL, NULL));

    const json_t *cl = json_object_get(f, "cloned_images");
    CU_ASSERT_EQUAL_FATAL(json_array_size(cl), 1);
    const json_t *c0 = json_array_get(cl, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c0, "cmid")), cmid_text(103, g));
    const json_t *names = json_object_get(c0, "workstations");
    CU_ASSERT_EQUAL(json_array_size(names), 2);
    CU_ASSERT_PTR_NOT_NULL(find(names, "name", "a-win-03", NULL, NULL));
    CU_ASSERT_PTR_NOT_NULL(find(names, "name", "a-clone-twin", NULL, NULL));

    const json_t *ch = json_object_get(f, "cmid_changed");
    CU_ASSERT_EQUAL_FATAL(json_array_size(ch), 2);
    const json_t *x = find(ch, "workstation", "chain-x", NULL, NULL);
    const json_t *y = find(ch, "workstation", "chain-y", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    const json_t *xc = json_object_get(x, "chain");
    CU_ASSERT_EQUAL_FATAL(json_array_size(xc), 3);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(xc, 0)), cmid_text(600, g));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(xc, 1)), cmid_text(601, g));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(xc, 2)), cmid_text(602, g));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(x, "previous_cmid")),
                           cmid_text(601, g));
    CU_ASSERT_EQUAL(json_array_size(json_object_get(y, "chain")), 2);

    const json_t *st = json_object_get(f, "stale");
    CU_ASSERT_EQUAL(json_array_size(st), 2);
    const json_t *s8 = find(st, "workstation", "gone-8d", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s8);
    CU_ASSERT_EQUAL(geti(s8, "days_idle"), 8);
    CU_ASSERT_PTR_NOT_NULL(find(st, "workstation", "gone-40d", NULL, NULL));

    CU_ASSERT_EQUAL(geti(t, "below_threshold"), 2);
    CU_ASSERT_EQUAL(geti(t, "clock_skew"), 2);
    CU_ASSERT_EQUAL(geti(t, "cloned_images"), 1);
    CU_ASSERT_EQUAL(geti(t, "cmid_changed"), 2);
    CU_ASSERT_EQUAL(geti(t, "stale"), 2);
    CU_ASSERT_EQUAL(kr_report_findings(r), 9);

    /* one warning per below cell, skew, clone, change and stale group */
    const json_t *w = json_object_get(r, "warnings");
    CU_ASSERT_EQUAL(json_array_size(w), 6);
    const char *w0 = json_string_value(json_array_get(w, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w0);
    CU_ASSERT_PTR_NOT_NULL(strstr(w0, "kms-b"));
    CU_ASSERT_PTR_NOT_NULL(strstr(w0, "b-win-0, b-win-1, b-win-2"));
}

static void test_findings(void)
{
    char dir[64];
    struct kr_report_host h[2];
    json_t *r = NULL;
    const char *why = NULL;
    struct kr_store *s = seed(dir);

    hosts_in(h);
    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, h, 2, NOW, NULL, &r, &why), 0);
    check_summary(r);
    check_findings(r);
    json_decref(r);
    kr_store_close(s);
    rm_rf(dir);
}

/* Without the host table every count comes from the pins. */
static void test_no_hosts_and_cap(void)
{
    char dir[64];
    json_t *r = NULL;
    struct kr_store *s = seed(dir);
    struct kr_report_opts o = {.max_items = 1};

    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, NULL, 0, NOW, &o, &r, NULL), 0);
    const json_t *win = json_array_get(json_object_get(r, "applications"), 0);
    const json_t *wa = find(json_object_get(win, "hosts"), "host", "kms-a", NULL, NULL);
    CU_ASSERT_EQUAL(geti(wa, "reported_count"), 40);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(wa, "count_source")), "pin");
    const json_t *f = json_object_get(r, "findings"), *t = json_object_get(r, "totals");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(f, "stale")), 1);
    CU_ASSERT_EQUAL(geti(t, "stale"), 2);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(f, "clock_skew")), 1);
    CU_ASSERT_EQUAL(geti(t, "clock_skew"), 2);
    const json_t *bb = find(json_object_get(f, "below_threshold"), "host", "kms-b", NULL, NULL);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(bb, "clients")), 1);
    CU_ASSERT_EQUAL(geti(bb, "clients_total"), 3);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "hosts")), 3); /* no kms-d */

    /* a stricter window and skew limit */
    json_decref(r);
    struct kr_report_opts o2 = {.skew_s = 20000, .stale_s = 30 * DAY, .window_s = 2 * DAY};
    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, NULL, 0, NOW, &o2, &r, NULL), 0);
    t = json_object_get(r, "totals");
    CU_ASSERT_EQUAL(geti(t, "clock_skew"), 0);
    CU_ASSERT_EQUAL(geti(t, "stale"), 1);
    CU_ASSERT_EQUAL(geti(r, "window_days"), 2);
    json_decref(r);
    kr_store_close(s);
    rm_rf(dir);
}

static void test_empty(void)
{
    char dir[64] = "/tmp/kr-report-XXXXXX";
    struct kr_store *s = NULL;
    json_t *r = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, NULL, 0, NOW, NULL, &r, NULL), 0);
    CU_ASSERT_EQUAL(geti(r, "pins"), 0);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "applications")), 3);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "warnings")), 0);
    CU_ASSERT_EQUAL(kr_report_findings(r), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(kr_report_write_table(r, f, 80), 0);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "No findings."));
    free(buf);
    CU_ASSERT_EQUAL(kr_report_build(NULL, NULL, 0, NOW, NULL, &r, NULL), KR_EINVAL);
    json_decref(r);
    kr_store_close(s);
    rm_rf(dir);
}

/* Counts the UTF-8 characters of one line. */
static size_t cols(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void test_render(void)
{
    char dir[64];
    json_t *r = NULL;
    struct kr_pin p;
    struct kr_report_host h[2];
    struct kr_store *s = seed(dir);

    /* hostile and non-ASCII workstation names */
    mk(&p, 5000, "kms-a", kr_kms_app_windows, 25, 40, "evil,\"pc\"\nx");
    p.skew_s = 99999;
    put(s, &p);
    mk(&p, 5001, "kms-a", kr_kms_app_windows, 25, 40, "=HYPERLINK(\"x\")");
    p.skew_s = -99999;
    put(s, &p);
    mk(&p, 5002, "kms-a", kr_kms_app_windows, 25, 40,
       "\xc3\xa9\xc3\xa9\xc3\xa9-very-long-workstation-name-that-goes-on-and-on.corp.example.test");
    p.skew_s = 99999;
    put(s, &p);
    /* terminal controls from the wire: ESC (C0) and CSI as a C1 character */
    mk(&p, 5003, "kms-a", kr_kms_app_windows, 25, 40,
       "t\x1b]0;x\x07-\xc2\x9b"
       "6n.corp");
    p.skew_s = -99999;
    put(s, &p);
    kr_store_flush(s, NULL);
    hosts_in(h);
    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, h, 2, NOW, NULL, &r, NULL), 0);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(kr_report_write_csv(r, f), 0);
    fclose(f);
    CU_ASSERT(strncmp(buf, "kind,application,host,cmid,workstations,value,threshold,detail\r\n",
                      64) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"evil,\"\"pc\"\"\nx\","));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"'=HYPERLINK(\"\"x\"\")\","));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "clock_skew,Windows,kms-a,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "cloned_image,Windows,kms-a,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "a-clone-twin"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "below_threshold,Windows,kms-b,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "stale,Windows,kms-a,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "cmid_changed,Windows,kms-a,"));
    /* every record has 8 fields: count separators outside quotes per line */
    size_t fields = 1, records = 0;
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '"')
            q = !q;
        else if (!q && buf[i] == ',')
            fields++;
        else if (!q && buf[i] == '\n') {
            CU_ASSERT_EQUAL(fields, 8);
            CU_ASSERT_EQUAL(buf[i - 1], '\r');
            fields = 1;
            records++;
        }
    }
    CU_ASSERT(records > 20);
    free(buf);

    for (unsigned width = 60; width <= 120; width += 60) {
        buf = NULL;
        f = open_memstream(&buf, &len);
        CU_ASSERT_EQUAL(kr_report_write_table(r, f, width), 0);
        fclose(f);
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "BELOW THRESHOLD"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Clock skew"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "+5h00m"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Cloned images"));
        CU_ASSERT_PTR_NULL(strchr(buf, '\t'));
        CU_ASSERT_PTR_NULL(strchr(buf, '\x1b')); /* issue 11 #13: no raw controls */
        CU_ASSERT_PTR_NULL(strchr(buf, '\x07'));
        CU_ASSERT_PTR_NULL(strstr(buf, "\xc2\x9b"));
        for (char *line = buf; *line;) {
            size_t n = strcspn(line, "\n");
            /* the CMID column (36) is never cut; width 60 may overflow only there */
            if (cols(line, n) > width && width >= 80)
                fprintf(stderr, "too wide (%zu > %u): %.*s\n", cols(line, n), width, (int)n, line);
            if (width >= 80)
                CU_ASSERT(cols(line, n) <= width);
            line += n + (line[n] ? 1 : 0);
        }
        free(buf);
    }
    if (getenv("KR_REPORT_DUMP")) { /* to look at the renderings by eye */
        kr_report_write_table(r, stderr, 80);
        kr_report_write_csv(r, stderr);
    }
    CU_ASSERT_EQUAL(kr_report_write_csv(json_object_get(r, "hosts"), stdout), KR_EINVAL);
    json_decref(r);
    kr_store_close(s);
    rm_rf(dir);
}

/* Pins answered in the same second: the highest count is the host's latest. */
static void test_pin_count_tie(void)
{
    char dir[64] = "/tmp/kr-report-XXXXXX";
    struct kr_store *s = NULL;
    struct kr_pin p;
    json_t *r = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    for (uint32_t i = 0; i < 9; i++) {
        mk(&p, 9 - i, "kms-x", kr_kms_app_office2013, 5, i + 1, "x"); /* CMID order: 9, 8 .. */
        put(s, &p);
    }
    mk(&p, 20, "kms-x", kr_kms_app_office2013, 5, 0, "failed");
    p.last_hresult = 0xC004F042u; /* a refused request carries no count */
    p.last_seen = NOW;
    put(s, &p);
    kr_store_flush(s, NULL);
    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, NULL, 0, NOW, NULL, &r, NULL), 0);
    const json_t *o13 =
        find(json_object_get(r, "applications"), "application", "Office 2013+", NULL, NULL);
    const json_t *c = find(json_object_get(o13, "hosts"), "host", "kms-x", NULL, NULL);
    CU_ASSERT_EQUAL(geti(c, "reported_count"), 9);
    CU_ASSERT(json_is_false(json_object_get(c, "below_threshold")));
    json_decref(r);
    kr_store_close(s);
    rm_rf(dir);
}

/* kmsrelayd --report: the admin state and weight each host would start
 * with, by the relay's own rules over the store (hosts.c, weights.c), and
 * without changing the store (the relay drops an outdated override). */
static void test_offline_host_state(void)
{
    char dir[64] = "/tmp/kr-report-XXXXXX", err[256] = "", *buf = NULL;
    static struct kr_conf c;
    struct kr_store *s = NULL;
    struct kr_host_rec rec = {.admin = KR_ADMIN_DRAIN};
    const uint8_t wa[8] = {3, 0, 0, 0, 1, 0, 0, 0}; /* operator 3 over a configured 1 */
    const uint8_t wb[8] = {4, 0, 0, 0, 1, 0, 0, 0}; /* operator 4 over a configured 1 */
    uint8_t ready = KR_ADMIN_READY, val[8];
    size_t len = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    /* kms-a: drained through the control API, config unchanged since. */
    strcpy(rec.name, "kms-a");
    CU_ASSERT_EQUAL(kr_store_host_put(s, &rec), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "cfg_admin:kms-a", &ready, 1), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "weight:kms-a", wa, 8), 0);
    /* kms-b: maint through the API, but the config was edited since. */
    strcpy(rec.name, "kms-b");
    rec.admin = KR_ADMIN_MAINT;
    CU_ASSERT_EQUAL(kr_store_host_put(s, &rec), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "cfg_admin:kms-b", &ready, 1), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "weight:kms-b", wb, 8), 0);
    kr_store_close(s);

    kr_conf_defaults(&c);
    snprintf(c.state_dir, sizeof(c.state_dir), "%s", dir);
    c.n_hosts = 3;
    strcpy(c.hosts[0].name, "kms-a");
    c.hosts[0].weight = 1;
    c.hosts[0].admin = KR_ADMIN_UNSET;
    strcpy(c.hosts[1].name, "kms-b");
    c.hosts[1].weight = 2;
    c.hosts[1].admin = KR_ADMIN_DRAIN;
    strcpy(c.hosts[2].name, "kms-c"); /* never seen: the config's */
    c.hosts[2].weight = 5;
    c.hosts[2].admin = KR_ADMIN_UNSET;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_EQUAL(kr_report_offline(&c, "json", f, err, sizeof(err)), 0);
    fclose(f);
    json_t *r = json_loads(buf, 0, NULL);
    free(buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    const json_t *hosts = json_object_get(r, "hosts");
    const json_t *a = find(hosts, "host", "kms-a", NULL, NULL),
                 *b = find(hosts, "host", "kms-b", NULL, NULL),
                 *cc = find(hosts, "host", "kms-c", NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a, "admin")), "drain");
    CU_ASSERT_EQUAL(geti(a, "weight"), 3);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "admin")), "drain");
    CU_ASSERT_EQUAL(geti(b, "weight"), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(cc, "admin")), "ready");
    CU_ASSERT_EQUAL(geti(cc, "weight"), 5);
    json_decref(r);

    /* Read-only: kms-b's outdated override is still there. */
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "weight:kms-b", val, sizeof(val), &len), 0);
    kr_store_close(s);
    rm_rf(dir);
}

/* The daemon's host table as the control API hands it over. */
static void test_relay_hosts(void)
{
    struct kr_relay r;
    struct kr_host a, b, *hp[2] = {&a, &b};
    struct kr_report_host out[4];

    memset(&r, 0, sizeof(r));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    strcpy(a.conf.name, "kms-a");
    a.admin = KR_ADMIN_DRAIN;
    a.health = KR_HEALTH_UP;
    memcpy(a.counts[1].app_id, kr_kms_app_office2013, 16);
    a.counts[1].count = 7;
    a.counts[1].n_policy = 5;
    a.counts[1].when_us = kr_now_us() - 3000000;
    strcpy(b.conf.name, "kms-gone");
    b.removed = true;
    r.hosts = hp;
    r.n_hosts = 2;
    CU_ASSERT_EQUAL_FATAL(kr_report_relay_hosts(&r, out, 4), 1);
    CU_ASSERT_STRING_EQUAL(out[0].name, "kms-a");
    CU_ASSERT_STRING_EQUAL(out[0].admin, "drain");
    CU_ASSERT_STRING_EQUAL(out[0].health, "up");
    CU_ASSERT_EQUAL_FATAL(out[0].n_counts, 1);
    CU_ASSERT_EQUAL(out[0].counts[0].count, 7);
    CU_ASSERT(out[0].counts[0].age_s >= 2 && out[0].counts[0].age_s <= 4);
    CU_ASSERT_EQUAL(kr_report_relay_hosts(&r, out, 0), 0);
}

KR_SUITE(report)
{
    CU_pSuite s = CU_add_suite("report", NULL, NULL);
    CU_add_test(s, "every finding on a seeded store", test_findings);
    CU_add_test(s, "pin counts, item cap, options", test_no_hosts_and_cap);
    CU_add_test(s, "empty store", test_empty);
    CU_add_test(s, "csv and table rendering", test_render);
    CU_add_test(s, "pin count on a tie", test_pin_count_tie);
    CU_add_test(s, "relay host table", test_relay_hosts);
    CU_add_test(s, "offline report: host state by the relay's rules", test_offline_host_state);
}
