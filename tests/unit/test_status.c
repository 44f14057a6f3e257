/* test_status.c - the status page's HTML (src/exposition/status*.c,
 * html.c): the escaping helper on markup, quotes, ampersands, control
 * characters, bidi overrides and invalid UTF-8, and a page rendered from a
 * report whose client-supplied strings (workstation names, CMIDs) carry
 * markup: none of it may reach the page unescaped. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "exposition/html.h"
#include "exposition/status.h"
#include "testutil.h"

/* The escaped text of n bytes at s, as a malloc'ed string. */
static char *esc_n(const char *s, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    mx_html_n(b, s, n);
    return kr_test_buffer_text(b);
}

static void expect(const char *in, size_t n, const char *want)
{
    char *got = esc_n(in, n);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "\nescape: got \"%s\", want \"%s\"\n", got, want);
    CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
}
#define EXPECT(lit, want) expect(lit, sizeof(lit) - 1, want)

static void test_escape_markup(void)
{
    EXPECT("pc-1.corp", "pc-1.corp");
    EXPECT("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;");
    EXPECT("a&b", "a&amp;b");
    EXPECT("&amp;", "&amp;amp;"); /* escaped again: shows as typed */
    EXPECT("\"q\" 'a'", "&quot;q&quot; &#39;a&#39;");
    EXPECT("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
    EXPECT("\" onmouseover=\"x", "&quot; onmouseover=&quot;x");
    EXPECT("", "");
    struct evbuffer *b = evbuffer_new();
    mx_html(b, NULL); /* nothing, no crash */
    CU_ASSERT_EQUAL(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}

static void test_escape_controls(void)
{
    /* C0 controls and DEL become their control pictures (U+2400 + c). */
    EXPECT("a\tb", "a\xE2\x90\x89"
                   "b");
    EXPECT("l1\nl2\r", "l1\xE2\x90\x8Al2\xE2\x90\x8D");
    EXPECT("\x1B[31mred", "\xE2\x90\x9B[31mred");
    EXPECT("x\x7Fy", "x\xE2\x90\xA1y");
    EXPECT("a\0b", "a\xE2\x90\x80"
                   "b"); /* an embedded NUL too */
    /* C1 controls, bidi overrides and isolates, LRM/RLM: U+FFFD. */
    EXPECT("a\xC2\x85"
           "b",
           "a\xEF\xBF\xBD"
           "b");
    EXPECT("evil\xE2\x80\xAEgpj.exe", "evil\xEF\xBF\xBDgpj.exe");
    EXPECT("\xE2\x81\xA6x\xE2\x81\xA9", "\xEF\xBF\xBDx\xEF\xBF\xBD");
    EXPECT("\xE2\x80\x8F", "\xEF\xBF\xBD");
}

static void test_escape_utf8(void)
{
    /* Valid UTF-8 stays as it is. */
    EXPECT("Ars\xC3\xA8ne-PC", "Ars\xC3\xA8ne-PC");
    EXPECT("\xE6\x97\xA5\xE6\x9C\xAC", "\xE6\x97\xA5\xE6\x9C\xAC");
    EXPECT("\xF0\x9F\x92\xBB", "\xF0\x9F\x92\xBB");
    /* Invalid: one U+FFFD per byte that starts no valid sequence. */
    EXPECT("a\xFF"
           "b",
           "a\xEF\xBF\xBD"
           "b");
    EXPECT("\xC0\xBC", "\xEF\xBF\xBD\xEF\xBF\xBD");                 /* overlong '<' */
    EXPECT("\xE0\x80\xBC", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* overlong '<' */
    EXPECT("\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* a surrogate */
    EXPECT("\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT("x\xE2\x82", "x\xEF\xBF\xBD\xEF\xBF\xBD"); /* truncated at the end */
    EXPECT("\xC3<", "\xEF\xBF\xBD&lt;");              /* lead byte, then markup */
}

static const char REPORT[] =
    "{\"schema\":\"kmsrelay.report/1\",\"now\":1764700000,\"window_days\":30,"
    "\"stale_days\":7,\"pins\":3,\"clients\":3,"
    "\"applications\":[{\"application\":\"Windows\",\"hosts\":[{\"host\":\"kms-b\","
    "\"reported_count\":3,\"threshold\":25,\"below_threshold\":true}]}],"
    "\"findings\":{\"below_threshold\":[{\"host\":\"kms-b\",\"application\":\"Windows\","
    "\"count\":3,\"threshold\":25,\"clients\":[{\"cmid\":\"c1\",\"workstation\":"
    "\"<img src=x onerror=alert(1)>\",\"n_policy\":25}],\"clients_total\":4}],"
    "\"clock_skew\":[{\"cmid\":\"c2\",\"workstation\":\"<script>s</script>\",\"host\":\"kms-b\","
    "\"application\":\"Windows\",\"skew_seconds\":18000,\"last_seen\":\"2026-12-02T00:00:00Z\"}],"
    "\"cloned_images\":[{\"cmid\":\"<i>cmid</i>\",\"host\":\"kms-b\",\"workstation\":\"a\","
    "\"workstations\":[{\"name\":\"a&b\",\"last_seen\":\"x\"},{\"name\":\"\\\"q'\",\"last_seen\":"
    "\"x\"}]}],\"cmid_changed\":[],\"stale\":[]},"
    "\"totals\":{\"below_threshold\":1,\"clock_skew\":1,\"cloned_images\":3,\"cmid_changed\":0,"
    "\"stale\":2}}";

static const char DNS[] =
    "{\"zones\":[{\"zone\":\"ex.test.\",\"owner\":\"_vlmcs._tcp.ex.test.\",\"target\":\"<t>\","
    "\"port\":1688,\"service\":\"up\",\"desired\":\"published\",\"published\":false,"
    "\"records\":[],\"damped\":false,\"fail_static\":false,\"failures\":2,"
    "\"last\":{\"op\":\"publish\",\"when\":1764700000,\"status\":\"refused\","
    "\"message\":\"REFUSED <by> policy\",\"server\":\"127.0.0.1:53\"}}],\"discovery\":[]}";

static char *page(const char *report, const char *dns)
{
    json_error_t e;
    json_t *r = report ? json_loads(report, 0, &e) : NULL, *d = dns ? json_loads(dns, 0, &e) : NULL;
    CU_ASSERT_FATAL(!report || r);
    CU_ASSERT_FATAL(!dns || d);
    struct mx_page p = {.report = r, .report_at = 1764700000, .dns = d, .now = 1764700010};
    struct evbuffer *b = evbuffer_new();
    CU_ASSERT_EQUAL(mx_status_page(b, &p), 0);
    char *out = kr_test_buffer_text(b);
    json_decref(r);
    json_decref(d);
    return out;
}

static void test_page_escapes_clients(void)
{
    char *h = page(REPORT, DNS);
    /* Every client-supplied string arrives escaped, none raw. */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "&lt;img src=x onerror=alert(1)&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "&lt;script&gt;s&lt;/script&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "&lt;i&gt;cmid&lt;/i&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "a&amp;b, &quot;q&#39;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "REFUSED &lt;by&gt; policy"));
    CU_ASSERT_PTR_NULL(strstr(h, "<img"));
    CU_ASSERT_PTR_NULL(strstr(h, "<script"));
    CU_ASSERT_PTR_NULL(strstr(h, "<i>"));
    CU_ASSERT_PTR_NULL(strstr(h, "<t>"));
    /* The page's own promises: refresh, viewport, findings and DNS shown. */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "<meta http-equiv=\"refresh\" content=\"10\">"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "name=\"viewport\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "Hosts below their activation threshold (1)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, " and 3 more")); /* clients_total 4, one listed */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "+5.0 h"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "showing 1 of 3")); /* capped list */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "were not seen for 7 days"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "not published"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "<span class=\"badge bad\">refused</span>"));
    free(h);
}

static void test_page_without_data(void)
{
    char *h = page(NULL, NULL); /* no relay, no report yet, no DNS service */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "No report yet."));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "No backend hosts."));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "no dns.zones or dns.discover configured"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "</html>"));
    free(h);
}

KR_SUITE(status)
{
    CU_pSuite s = CU_add_suite("status", 0, 0);
    CU_add_test(s, "escape markup and quotes", test_escape_markup);
    CU_add_test(s, "escape control characters", test_escape_controls);
    CU_add_test(s, "escape invalid UTF-8", test_escape_utf8);
    CU_add_test(s, "page escapes client strings", test_page_escapes_clients);
    CU_add_test(s, "page without data", test_page_without_data);
}
