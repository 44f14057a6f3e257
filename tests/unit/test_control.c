/* test_control.c - the control API's pieces that need no event loop
 * (src/control): route matching, query and body validation, the body gate's
 * header rewrite, the rebalance planner, operator weights in the store, and
 * the control socket's file handling. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/log.h"
#include "kmsrelay/store.h"
#include "testutil.h"

/* ---- routing ---------------------------------------------------------------- */

static int find(int method, const char *path, const struct ctl_route **r,
                char params[CTL_MAX_PARAMS][CTL_PARAM_MAX], char *allow)
{
    return ctl_route_find(method, path, r, params, allow, 64);
}

static void test_routes(void)
{
    const struct ctl_route *r;
    char p[CTL_MAX_PARAMS][CTL_PARAM_MAX], allow[64];

    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/status", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_status);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/status/", &r, p, allow), 200); /* one trailing slash */
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_index);

    CU_ASSERT_EQUAL(find(CTL_POST, "/v1/hosts/kms-a/state", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_host_state);
    CU_ASSERT_STRING_EQUAL(p[0], "kms-a");
    CU_ASSERT_EQUAL(find(CTL_POST, "/v1/hosts/kms-a/weight", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_host_weight);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/hosts/kms-a", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_host);

    /* Same path, method picks the handler. */
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/pins/abc", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_pin_show);
    CU_ASSERT_EQUAL(find(CTL_DELETE, "/v1/pins/abc", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_pin_forget);
    CU_ASSERT_EQUAL(find(CTL_POST, "/v1/pins/abc/move", &r, p, allow), 200);
    CU_ASSERT_PTR_EQUAL(r->fn, ctl_api_pin_move);

    /* Decoding happens per segment: %2F stays inside the name. */
    CU_ASSERT_EQUAL(find(CTL_POST, "/v1/hosts/a%2Fb%20c/state", &r, p, allow), 200);
    CU_ASSERT_STRING_EQUAL(p[0], "a/b c");
    CU_ASSERT_EQUAL(find(CTL_POST, "/v1/hosts/a/b/state", &r, p, allow), 404);

    /* Unknown paths and wrong methods. */
    CU_ASSERT_EQUAL(find(CTL_GET, "/v2/status", &r, p, allow), 404);
    CU_ASSERT_EQUAL(find(CTL_GET, "/", &r, p, allow), 404);
    CU_ASSERT_EQUAL(find(CTL_GET, "", &r, p, allow), 404);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/hosts//state", &r, p, allow), 404);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/statusx", &r, p, allow), 404);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(find(CTL_DELETE, "/v1/status", &r, p, allow), 405);
    CU_ASSERT_STRING_EQUAL(allow, "GET");
    CU_ASSERT_EQUAL(find(CTL_PUT, "/v1/pins/abc", &r, p, allow), 405);
    CU_ASSERT_STRING_EQUAL(allow, "GET, DELETE");
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/reload", &r, p, allow), 405);
    CU_ASSERT_STRING_EQUAL(allow, "POST");
    CU_ASSERT_EQUAL(find(CTL_OTHER, "/v1/hosts", &r, p, allow), 405);

    /* Bad escapes and NUL are refused, never truncated. */
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/pins/%zz", &r, p, allow), 400);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/pins/ab%2", &r, p, allow), 400);
    CU_ASSERT_EQUAL(find(CTL_GET, "/v1/pins/a%00b", &r, p, allow), 400);
    char longseg[400] = "/v1/pins/";
    memset(longseg + 9, 'x', 300);
    longseg[309] = '\0';
    CU_ASSERT_EQUAL(find(CTL_GET, longseg, &r, p, allow), 400);
}

/* Every pattern is reachable, with its own method, and literal segments of
 * two patterns never shadow each other. */
static void test_route_table(void)
{
    for (size_t i = 0; i < ctl_n_routes; i++) {
        char path[256] = "", p[CTL_MAX_PARAMS][CTL_PARAM_MAX], allow[64];
        const struct ctl_route *r;
        const char *s = ctl_routes[i].pattern;
        while (*s) {
            if (*s == '{') {
                strcat(path, "x");
                s = strchr(s, '}') + 1;
            } else {
                strncat(path, s++, 1);
            }
        }
        CU_ASSERT_EQUAL(find(ctl_routes[i].method, path, &r, p, allow), 200);
        CU_ASSERT_PTR_EQUAL(r, &ctl_routes[i]);
        CU_ASSERT_STRING_EQUAL(ctl_routes[i].pattern, ctl_routes[i].pattern); /* no NULL */
        CU_ASSERT(strncmp(ctl_routes[i].pattern, "/v1", 3) == 0);
        CU_ASSERT_PTR_NOT_NULL(ctl_routes[i].help);
    }
}

static void test_query(void)
{
    struct evkeyvalq q;
    char err[256];

    TAILQ_INIT(&q);
    CU_ASSERT_EQUAL(evhttp_parse_query_str("app=windows&since=7d", &q), 0);
    CU_ASSERT_EQUAL(ctl_query_check(&q, "app,host,since,limit", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(ctl_query_check(&q, "app,host", err, sizeof(err)), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "since"));
    CU_ASSERT_EQUAL(ctl_query_check(&q, "", err, sizeof(err)), 400);
    CU_ASSERT_EQUAL(ctl_query_check(&q, "ap,sinc", err, sizeof(err)), 400); /* no prefixes */
    evhttp_clear_headers(&q);
    CU_ASSERT_EQUAL(ctl_query_check(&q, "", err, sizeof(err)), 0);
}

/* ---- bodies ------------------------------------------------------------------- */

static int body(int kind, const char *text, struct ctl_body *b, char *err)
{
    return ctl_body_parse(kind, text, text ? strlen(text) : 0, b, err, 256);
}

static void test_bodies(void)
{
    struct ctl_body b;
    char err[256];

    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, "{\"state\":\"drain\"}", &b, err), 0);
    CU_ASSERT_EQUAL(b.state, KR_ADMIN_DRAIN);
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, " {\"state\" : \"retired\"}\n", &b, err), 0);
    CU_ASSERT_EQUAL(b.state, KR_ADMIN_RETIRED);
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, "{\"state\":\"retire\"}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, "{\"state\":1}", &b, err), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "string"));
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, "{}", &b, err), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing"));
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, "", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_STATE, NULL, &b, err), 400);

    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":3}", &b, err), 0);
    CU_ASSERT_EQUAL(b.weight, 3);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":10000}", &b, err), 0);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":0}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":10001}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":-1}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":2.5}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":\"3\"}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weight\":99999999999999999999}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_WEIGHT, "{\"weigth\":3}", &b, err), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "weigth")); /* the typo is named */

    CU_ASSERT_EQUAL(body(CTL_BODY_MOVE, "{\"host\":\"kms-b\"}", &b, err), 0);
    CU_ASSERT_STRING_EQUAL(b.host, "kms-b");
    CU_ASSERT_EQUAL(body(CTL_BODY_MOVE, "{\"host\":\"\"}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_MOVE, "{\"host\":\"a b\"}", &b, err), 400);
    char longname[200];
    snprintf(longname, sizeof(longname), "{\"host\":\"%070d\"}", 1);
    CU_ASSERT_EQUAL(body(CTL_BODY_MOVE, longname, &b, err), 400);
    CU_ASSERT_EQUAL(ctl_body_parse(CTL_BODY_MOVE, "{\"host\":\"a\\u0000b\"}", 19, &b, err, 256),
                    400);

    /* Rebalance: everything optional. */
    CU_ASSERT_EQUAL(body(CTL_BODY_REBALANCE, "", &b, err), 0);
    CU_ASSERT_EQUAL(b.max, CTL_REBALANCE_DEFAULT);
    CU_ASSERT_FALSE(b.dry_run);
    CU_ASSERT_EQUAL(body(CTL_BODY_REBALANCE, "{\"max\":7,\"dry_run\":true}", &b, err), 0);
    CU_ASSERT_EQUAL(b.max, 7);
    CU_ASSERT_TRUE(b.dry_run);
    CU_ASSERT_EQUAL(body(CTL_BODY_REBALANCE, "{\"max\":0}", &b, err), 0);
    CU_ASSERT_EQUAL(body(CTL_BODY_REBALANCE, "{\"dry_run\":\"yes\"}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_REBALANCE, "{\"max\":100001}", &b, err), 400);

    /* Shapes every kind refuses. */
    for (int k = 0; k < CTL_BODY_KINDS; k++) {
        CU_ASSERT_EQUAL(body(k, "{bad", &b, err), 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not valid JSON"));
        CU_ASSERT_EQUAL(body(k, "[1,2]", &b, err), 400);
        CU_ASSERT_EQUAL(body(k, "\"drain\"", &b, err), 400);
        CU_ASSERT_EQUAL(body(k, "null", &b, err), 400);
        CU_ASSERT_EQUAL(body(k, "{\"a\":1,\"a\":2}", &b, err), 400); /* duplicate keys */
        CU_ASSERT_EQUAL(body(k, "{} {}", &b, err), 400);             /* trailing data */
        CU_ASSERT_EQUAL(body(k, "{\"x\":1}", &b, err), 400);
        CU_ASSERT_EQUAL(ctl_body_parse(k, "{\"\xff\":1}", 8, &b, err, 256), 400); /* UTF-8 */
    }
    CU_ASSERT_EQUAL(body(CTL_BODY_EMPTY, "{}", &b, err), 0);
    CU_ASSERT_EQUAL(body(CTL_BODY_EMPTY, "  ", &b, err), 0);
    CU_ASSERT_EQUAL(body(-1, "{}", &b, err), 400);
    CU_ASSERT_EQUAL(body(CTL_BODY_KINDS, "{}", &b, err), 400);

    /* Not NUL-terminated input is read only up to len. */
    const char buf[] = {'{', '}', 'x'};
    CU_ASSERT_EQUAL(ctl_body_parse(CTL_BODY_EMPTY, buf, 2, &b, err, 256), 0);
    CU_ASSERT_EQUAL(ctl_body_parse(CTL_BODY_EMPTY, buf, CTL_BODY_MAX + 1, &b, err, 256), 413);
}

/* ---- the gate ----------------------------------------------------------------- */

static long gate(const char *hdr, char *out, size_t cap)
{
    return ctl_gate_rewrite(hdr, strlen(hdr), 65536, out, cap);
}

static void test_gate(void)
{
    char out[1024];
    long n;

    CU_ASSERT_EQUAL(gate("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof(out)), 0);
    CU_ASSERT_EQUAL(
        gate("POST /v1/reload HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", out, sizeof(out)), 0);

    n = gate("POST /v1/rebalance HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n"
             "Expect: 100-continue\r\nX-Other: 1\r\n\r\n",
             out, sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_STRING_EQUAL(out, "POST /v1/rebalance HTTP/1.1\r\nHost: x\r\nX-Other: 1\r\n"
                                "Content-Length: 0\r\nX-Kmsrelay-Rejected: 413\r\n\r\n");

    /* Case-insensitive names, LF-only lines, continuation of a dropped header. */
    n = gate("POST / HTTP/1.1\ntransfer-encoding: gzip,\n chunked\nHost: y\n\n", out, sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_STRING_EQUAL(out, "POST / HTTP/1.1\r\nHost: y\r\nContent-Length: 0\r\n"
                                "X-Kmsrelay-Rejected: 411\r\n\r\n");

    n = gate("POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", out, sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "X-Kmsrelay-Rejected: 400"));
    n = gate("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", out,
             sizeof(out));
    CU_ASSERT(n > 0);
    n = gate("POST / HTTP/1.1\r\nContent-Length:  12 \r\n\r\n", out, sizeof(out));
    CU_ASSERT_EQUAL(n, 0);
    /* A smuggled marker is dropped from a refused request. */
    n = gate("POST / HTTP/1.1\r\nX-Kmsrelay-Rejected: 200\r\nContent-Length: 70000\r\n\r\n", out,
             sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_PTR_NULL(strstr(out, ": 200"));
    /* Output too small. */
    CU_ASSERT_EQUAL(gate("POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", out, 20), -1);
}

/* A repeated Content-Length (even with equal values) is refused: which one a
 * proxy in front used cannot be known (issue 11 item 15). */
static void test_gate_duplicate_length(void)
{
    char out[1024];
    long n = gate("POST /v1/rebalance HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n",
                  out, sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_STRING_EQUAL(out, "POST /v1/rebalance HTTP/1.1\r\nContent-Length: 0\r\n"
                                "X-Kmsrelay-Rejected: 400\r\n\r\n");
    n = gate("POST / HTTP/1.1\r\ncontent-length: 2\r\nHost: x\r\nCONTENT-LENGTH: 2\r\n\r\n", out,
             sizeof(out));
    CU_ASSERT(n > 0);
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "X-Kmsrelay-Rejected: 400"));
    /* with a Transfer-Encoding as well, 411 still wins */
    n = gate("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n"
             "Content-Length: 2\r\n\r\n",
             out, sizeof(out));
    out[n > 0 ? n : 0] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "X-Kmsrelay-Rejected: 411"));
}

/* ---- rebalance ------------------------------------------------------------------ */

static void mkpin(struct ctl_rb_pin *p, int id, int64_t seen, uint32_t host)
{
    memset(p, 0, sizeof(*p));
    p->cmid[0] = (uint8_t)id;
    p->cmid[1] = (uint8_t)(id >> 8);
    p->last_seen = seen;
    p->host = host;
}

static void test_rebalance(void)
{
    struct ctl_rb_host h[3];
    struct ctl_rb_pin pins[100];
    struct ctl_rb_move mv[100];
    size_t n;

    /* 30 pins all on host 0, equal weights: 20 move, oldest first. */
    memset(h, 0, sizeof(h));
    for (int i = 0; i < 3; i++)
        h[i].weight = 1;
    for (int i = 0; i < 30; i++)
        mkpin(&pins[i], i, 1000 + (i * 7) % 30, 0);
    h[0].count = 30;
    n = ctl_rebalance_plan(h, 3, pins, 30, 100, mv);
    CU_ASSERT_EQUAL(n, 20);
    CU_ASSERT_EQUAL(h[0].count, 10);
    CU_ASSERT_EQUAL(h[1].count, 10);
    CU_ASSERT_EQUAL(h[2].count, 10);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(mv[i].from, 0);
        CU_ASSERT_EQUAL(pins[mv[i].pin].last_seen, 1000 + (int64_t)i); /* oldest first */
    }
    /* Running again on the result moves nothing (no churn). */
    for (size_t i = 0; i < n; i++)
        pins[mv[i].pin].host = mv[i].to;
    CU_ASSERT_EQUAL(ctl_rebalance_plan(h, 3, pins, 30, 100, mv), 0);

    /* max caps the moves. */
    memset(h, 0, sizeof(h));
    for (int i = 0; i < 3; i++)
        h[i].weight = 1;
    for (int i = 0; i < 30; i++)
        mkpin(&pins[i], i, 1000 + i, 0);
    h[0].count = 30;
    CU_ASSERT_EQUAL(ctl_rebalance_plan(h, 3, pins, 30, 4, mv), 4);
    CU_ASSERT_EQUAL(h[0].count, 26);

    /* Weights 1:3 over 40 pins: shares 10 and 30. */
    memset(h, 0, sizeof(h));
    h[0].weight = 1;
    h[1].weight = 3;
    for (int i = 0; i < 40; i++)
        mkpin(&pins[i], i, 5000 - i, i < 20 ? 0 : 1);
    h[0].count = 20;
    h[1].count = 20;
    n = ctl_rebalance_plan(h, 2, pins, 40, 100, mv);
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(h[0].count, 10);
    CU_ASSERT_EQUAL(h[1].count, 30);
    CU_ASSERT_DOUBLE_EQUAL(h[1].target, 30.0, 1e-9);

    /* Within one pin of the share: left alone. */
    memset(h, 0, sizeof(h));
    h[0].weight = h[1].weight = 1;
    for (int i = 0; i < 3; i++)
        mkpin(&pins[i], i, 1, i < 2 ? 0 : 1);
    h[0].count = 2;
    h[1].count = 1;
    CU_ASSERT_EQUAL(ctl_rebalance_plan(h, 2, pins, 3, 100, mv), 0);

    /* EVICT gives everything, FIXED keeps everything. */
    memset(h, 0, sizeof(h));
    h[0].weight = h[1].weight = h[2].weight = 1;
    h[0].role = CTL_RB_EVICT;
    h[2].role = CTL_RB_FIXED;
    for (int i = 0; i < 9; i++)
        mkpin(&pins[i], i, i, i < 6 ? 0 : 1);
    h[0].count = 6;
    h[1].count = 3;
    h[2].count = 5; /* its pins are not even listed */
    n = ctl_rebalance_plan(h, 3, pins, 9, 100, mv);
    CU_ASSERT_EQUAL(n, 6);
    CU_ASSERT_EQUAL(h[0].count, 0);
    CU_ASSERT_EQUAL(h[1].count, 9);
    CU_ASSERT_EQUAL(h[2].count, 5);

    /* No pool host: nothing can move. */
    memset(h, 0, sizeof(h));
    h[0].role = CTL_RB_EVICT;
    h[0].weight = 1;
    h[0].count = 1;
    mkpin(&pins[0], 0, 0, 0);
    CU_ASSERT_EQUAL(ctl_rebalance_plan(h, 1, pins, 1, 100, mv), 0);
    CU_ASSERT_EQUAL(ctl_rebalance_plan(h, 0, pins, 0, 100, mv), 0);
}

/* ---- helpers --------------------------------------------------------------------- */

static void test_helpers(void)
{
    uint8_t id[16];
    int idx;
    bool by_id;
    char t[32];

    CU_ASSERT_EQUAL(ctl_app_filter_parse("Windows", id, &idx, &by_id), 0);
    CU_ASSERT_EQUAL(idx, 0);
    CU_ASSERT_EQUAL(ctl_app_filter_parse("office 2013+", id, &idx, &by_id), 0);
    CU_ASSERT_EQUAL(idx, 2);
    CU_ASSERT_EQUAL(ctl_app_filter_parse("Office-2010", id, &idx, &by_id), 0);
    CU_ASSERT_EQUAL(idx, 1);
    CU_ASSERT_EQUAL(ctl_app_filter_parse("59a52881-a989-479d-af46-f275c6370663", id, &idx, &by_id),
                    0);
    CU_ASSERT_TRUE(by_id);
    CU_ASSERT_EQUAL(idx, 1);
    CU_ASSERT_EQUAL(ctl_app_filter_parse("linux", id, &idx, &by_id), -1);

    ctl_iso_time(1795248160, t);
    CU_ASSERT_STRING_EQUAL(t, "2026-11-21T08:02:40Z");
    ctl_iso_time(0, t);
    CU_ASSERT_STRING_EQUAL(t, "");
    ctl_hresult_text(0xC004F042u, t);
    CU_ASSERT_STRING_EQUAL(t, "0xC004F042");
}

/* ---- client rows ------------------------------------------------------------------ */

static void sample_pin(struct kr_pin *p, const char *ws)
{
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < 16; i++)
        p->cmid[i] = (uint8_t)(i * 17 + 1);
    memcpy(p->app_id, kr_kms_app_office2010, 16);
    snprintf(p->host, sizeof(p->host), "kms-b");
    snprintf(p->workstation, sizeof(p->workstation), "%s", ws);
    p->first_seen = 1795248000;
    p->last_seen = 1795248160;
    p->is_vm = 1;
    p->license_status = 2;
    p->ver_major = 6;
    p->last_hresult = 0xC004F042u;
    p->last_count = 4;
    p->n_policy = 5;
    p->skew_s = -18000;
    p->activations = 3;
    p->prev_cmid[3] = 9;
}

static char *row_text(void (*fn)(struct evbuffer *, const struct kr_pin *), const struct kr_pin *p)
{
    struct evbuffer *b = evbuffer_new();
    fn(b, p);
    return kr_test_buffer_text(b);
}

static void test_rows(void)
{
    static const char *const names[] = {"pc-1.example.test", "say \"hi\", ok\\", "tab\there\n",
                                        "n\xc3\xa4me \xe2\x82\xac", ""};
    struct kr_pin p;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        sample_pin(&p, names[i]);
        char *t = row_text(ctl_client_row_json, &p);
        json_error_t je;
        json_t *got = json_loads(t, 0, &je), *want = ctl_pin_json(&p, false);
        CU_ASSERT_PTR_NOT_NULL(got);
        CU_ASSERT_TRUE(json_equal(got, want)); /* the same fields and values */
        json_decref(got);
        json_decref(want);
        free(t);

        t = row_text(ctl_client_row_csv, &p);
        size_t n = strlen(t);
        CU_ASSERT(n > 2 && strcmp(t + n - 2, "\r\n") == 0);
        /* As many fields as the header, counting commas outside quotes. */
        size_t commas = 0, hdr = 0;
        bool q = false;
        for (const char *c = t; *c; c++) {
            if (*c == '"')
                q = !q;
            else if (*c == ',' && !q)
                commas++;
        }
        for (const char *c = CTL_CLIENTS_CSV_HEADER; *c; c++)
            hdr += *c == ',';
        CU_ASSERT_EQUAL(commas, hdr);
        CU_ASSERT_FALSE(q);
        free(t);
    }
    sample_pin(&p, "say \"hi\", ok");
    char *t = row_text(ctl_client_row_csv, &p);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, ",\"say \"\"hi\"\", ok\",kms-b,Office 2010,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, ",true,oob_grace,6,0xC004F042,4,5,-18000,3,"));
    free(t);

    /* CSV injection guard on the client-supplied name only. */
    sample_pin(&p, "=HYPERLINK(\"x\")");
    t = row_text(ctl_client_row_csv, &p);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, ",\"'=HYPERLINK(\"\"x\"\")\",kms-b,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, ",-18000,")); /* numbers untouched */
    free(t);

    /* Invalid UTF-8 from the store still gives a document that parses. */
    sample_pin(&p, "bad\xff\xc3(\xed\xa0\x80");
    t = row_text(ctl_client_row_json, &p);
    json_t *got = json_loads(t, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(got);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(got, "workstation")),
                           "bad\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(got);
    free(t);
}

/* ---- weights (a relay reduced to what weights.c looks at) --------------------------- */

static char *tmpdir(char *buf)
{
    strcpy(buf, "/tmp/kr-control-XXXXXX");
    return mkdtemp(buf);
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

struct mini_relay {
    struct kr_relay r;
    struct kr_conf conf;
    struct kr_host h;
    struct kr_host *tab[1];
};

static void mini_init(struct mini_relay *m, struct kr_store *s, uint32_t cfg_weight)
{
    memset(m, 0, sizeof(*m));
    kr_conf_defaults(&m->conf);
    m->conf.n_hosts = 1;
    snprintf(m->conf.hosts[0].name, KR_CONF_NAME_MAX, "kms-a");
    m->conf.hosts[0].weight = cfg_weight;
    m->h.conf = m->conf.hosts[0];
    m->h.hrw.weight = cfg_weight;
    m->tab[0] = &m->h;
    m->r.conf = &m->conf;
    m->r.store = s;
    m->r.hosts = m->tab;
    m->r.n_hosts = 1;
}

static void test_weights(void)
{
    char dir[64];
    struct kr_store *s = NULL;
    struct mini_relay m;
    uint8_t val[8];
    size_t len = 0;

    kr_log_set_level(KR_LOG_WARN); /* no info lines in the test output */
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpdir(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);

    mini_init(&m, s, 1);
    CU_ASSERT_EQUAL(kr_control_set_weight(&m.r, &m.h, 3), 0);
    CU_ASSERT_EQUAL(kr_host_weight(&m.h), 3);
    CU_ASSERT_EQUAL(m.h.conf.weight, 1); /* the configuration half stays the config's */
    CU_ASSERT_EQUAL(m.h.hrw.weight, 3);
    CU_ASSERT_EQUAL(kr_control_config_weight(&m.r, &m.h), 1);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "weight:kms-a", val, sizeof(val), &len), 0);
    CU_ASSERT_EQUAL(len, 8);
    CU_ASSERT_EQUAL(val[0], 3);
    CU_ASSERT_EQUAL(val[4], 1);
    CU_ASSERT_EQUAL(kr_control_set_weight(&m.r, &m.h, 0), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_control_set_weight(&m.r, &m.h, 10001), KR_EINVAL);

    /* "Restart" with the same configuration: the operator's weight wins. */
    mini_init(&m, s, 1);
    kr_control_weights_apply(&m.r);
    CU_ASSERT_EQUAL(kr_host_weight(&m.h), 3);
    CU_ASSERT_EQUAL(m.h.hrw.weight, 3);

    /* The configured weight edited since: the configuration wins for good. */
    mini_init(&m, s, 2);
    kr_control_weights_apply(&m.r);
    CU_ASSERT_EQUAL(kr_host_weight(&m.h), 2);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "weight:kms-a", val, sizeof(val), &len), KR_ENOENT);
    mini_init(&m, s, 1);
    kr_control_weights_apply(&m.r);
    CU_ASSERT_EQUAL(kr_host_weight(&m.h), 1);

    /* Setting the configured weight again removes the override. */
    mini_init(&m, s, 5);
    CU_ASSERT_EQUAL(kr_control_set_weight(&m.r, &m.h, 7), 0);
    CU_ASSERT_EQUAL(kr_control_set_weight(&m.r, &m.h, 5), 0);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "weight:kms-a", val, sizeof(val), &len), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_host_weight(&m.h), 5);

    kr_store_close(s);
    rm_rf(dir);
}

/* ---- the socket file ------------------------------------------------------------- */

static void test_socket(void)
{
    char dir[64], path[128], err[512];
    struct stat st;
    dev_t dev, dev2;
    ino_t ino, ino2;
    int fd, fd2;

    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpdir(dir));
    snprintf(path, sizeof(path), "%s/c.sock", dir);

    fd = ctl_sock_listen(path, 0640, "", &dev, &ino, err, sizeof(err));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT_TRUE(S_ISSOCK(st.st_mode));
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);

    /* A live socket is never taken over. */
    fd2 = ctl_sock_listen(path, 0640, "", &dev2, &ino2, err, sizeof(err));
    CU_ASSERT_EQUAL(fd2, KR_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "answers"));

    /* A stale one (nobody listens) is replaced. */
    close(fd);
    fd = ctl_sock_listen(path, 0600, "", &dev, &ino, err, sizeof(err));
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_EQUAL(ctl_sock_perms(path, 0660, "", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
    CU_ASSERT_EQUAL(ctl_sock_perms(path, 0660, "no-such-group-kr", err, sizeof(err)), KR_EIO);
    /* The daemon's own group by number always works. */
    char gid[16];
    snprintf(gid, sizeof(gid), "%u", (unsigned)getegid());
    CU_ASSERT_EQUAL(ctl_sock_perms(path, 0660, gid, err, sizeof(err)), 0);

    /* Unlink removes only the file it created. */
    close(fd);
    ctl_sock_unlink(path, dev, ino + 1);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    ctl_sock_unlink(path, dev, ino);
    CU_ASSERT_NOT_EQUAL(lstat(path, &st), 0);

    /* Something that is not a socket is left alone. */
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    CU_ASSERT_EQUAL(ctl_sock_listen(path, 0660, "", &dev, &ino, err, sizeof(err)), KR_EEXIST);
    CU_ASSERT_EQUAL(lstat(path, &st), 0);
    CU_ASSERT_TRUE(S_ISREG(st.st_mode));
    unlink(path);

    /* Too long for sun_path. */
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    CU_ASSERT_EQUAL(ctl_sock_listen(longp, 0660, "", &dev, &ino, err, sizeof(err)), KR_EINVAL);
    rm_rf(dir);
}

/* ---- the control group of the configuration ------------------------------------- */

static int load_text(const char *dir, const char *text, struct kr_conf **c, char *err,
                     size_t errlen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/k.conf", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return kr_conf_load(path, c, err, errlen);
}

static void test_config(void)
{
    char dir[64], err[2048];
    struct kr_conf *c = NULL, d;

    kr_conf_defaults(&d);
    CU_ASSERT_STRING_EQUAL(d.control_socket, "/run/kmsrelay/control.sock");
    CU_ASSERT_EQUAL(d.control_mode, 0660);
    CU_ASSERT_STRING_EQUAL(d.control_group, "");

    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpdir(dir));
    CU_ASSERT_EQUAL(load_text(dir,
                              "hosts = ( { name = \"a\"; address = \"127.0.0.1:1688\"; } );\n"
                              "control: { socket = \"/tmp/x.sock\"; mode = \"0640\"; "
                              "group = \"adm\"; };\n",
                              &c, err, sizeof(err)),
                    0);
    if (c) {
        CU_ASSERT_STRING_EQUAL(c->control_socket, "/tmp/x.sock");
        CU_ASSERT_EQUAL(c->control_mode, 0640);
        CU_ASSERT_STRING_EQUAL(c->control_group, "adm");
        free(c);
        c = NULL;
    }
    CU_ASSERT_EQUAL(
        load_text(dir, "control: { mode = \"600\"; group = \"\"; };\n", &c, err, sizeof(err)), 0);
    if (c) {
        CU_ASSERT_EQUAL(c->control_mode, 0600);
        free(c);
        c = NULL;
    }
    static const char *const bad[] = {
        "control: { mode = \"0999\"; };\n", "control: { mode = \"01777\"; };\n",
        "control: { mode = 660; };\n",      "control: { mode = \"\"; };\n",
        "control: { group = \"a b\"; };\n", "control: { socket = \"\"; };\n",
        "control: { sockt = \"/x\"; };\n",  "control = 1;\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(load_text(dir, bad[i], &c, err, sizeof(err)), KR_ECONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "k.conf:1:")); /* file:line */
    }
    rm_rf(dir);
}

KR_SUITE(control)
{
    CU_pSuite s = CU_add_suite("control", NULL, NULL);
    CU_add_test(s, "routes", test_routes);
    CU_add_test(s, "route table", test_route_table);
    CU_add_test(s, "query parameters", test_query);
    CU_add_test(s, "bodies", test_bodies);
    CU_add_test(s, "body gate", test_gate);
    CU_add_test(s, "body gate: repeated Content-Length", test_gate_duplicate_length);
    CU_add_test(s, "rebalance plan", test_rebalance);
    CU_add_test(s, "helpers", test_helpers);
    CU_add_test(s, "client rows", test_rows);
    CU_add_test(s, "operator weights", test_weights);
    CU_add_test(s, "socket file", test_socket);
    CU_add_test(s, "configuration", test_config);
}
