/*
 * api_clients.c - GET /v1/clients?app=A&host=H&since=D&limit=N&format=F
 *
 * Lists clients, one per pair (CMID, application id) with its pin, in
 * (CMID, application) order, so a machine's applications are adjacent;
 * filtered by
 * application (name or GUID), host and "seen within D" (a duration such as
 * "7d"). The answer is rendered while walking, on a worker thread, one
 * client at a time: a list of 100k clients is a few tens of megabytes of
 * text, never 100k jansson objects at once.
 *
 * format=json (default): {"schema": "kmsrelay.clients/2", "changes":
 * TEXT, "clients": [ {...}, ... ], "count": N, "matched": N, "truncated":
 * bool, "generated_at": ISO}, one client per line. Schema 2 (per-application
 * pins): a CMID may appear once per application; rows gained "sku_id". format=csv: RFC 4180 (CRLF,
 * a header row, fields quoted when they hold a comma, quote or line break, quotes doubled), so it
 * loads into a spreadsheet unchanged; the columns are CTL_CLIENTS_CSV_HEADER. Rows are formatted by
 * rows.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/units.h"

#define CLIENTS_LIMIT_MAX 10000000
#define CTL_CLIENTS_SCHEMA "kmsrelay.clients/2"
#define CTL_CLIENTS_CHANGES                                                                        \
    "2: a client is the pair (cmid, app_id): a machine activating several applications has "       \
    "one row per application, each with its own host; rows gained sku_id"

struct clients_ctx {
    struct kr_store *store;
    struct ctl_job *job;
    bool by_app, by_id, csv;
    int app_idx;
    uint8_t app_id[16];
    char host[KR_PIN_HOST_MAX];
    int64_t since; /* unix s; 0 = no filter */
    uint64_t limit, count, matched, walked;
    struct evbuffer *buf;
    int64_t now;
};

static int one_client(const struct kr_pin *p, void *arg)
{
    struct clients_ctx *x = arg;
    if ((++x->walked & 4095) == 0 && ctl_job_cancelled(x->job))
        return KR_ETIMEDOUT;
    if (x->by_app && (x->by_id ? memcmp(p->app_id, x->app_id, 16) != 0
                               : kr_kms_app_index(p->app_id) != x->app_idx))
        return 0;
    if (x->host[0] && strcmp(p->host, x->host) != 0)
        return 0;
    if (x->since && p->last_seen < x->since)
        return 0;
    x->matched++;
    if (x->limit && x->count >= x->limit)
        return 0;
    if (x->csv) {
        ctl_client_row_csv(x->buf, p);
    } else {
        evbuffer_add(x->buf, x->count ? ",\n  " : "\n  ", x->count ? 4 : 3);
        ctl_client_row_json(x->buf, p);
    }
    x->count++;
    return 0;
}

static void clients_work(struct ctl_job *j)
{
    struct clients_ctx *x = j->ctx;
    x->job = j;
    if (!(x->buf = evbuffer_new())) {
        j->status = ctl_fail(j->err, sizeof(j->err), 500, "out of memory");
        return;
    }
    if (x->csv)
        evbuffer_add_printf(x->buf, "%s\r\n", CTL_CLIENTS_CSV_HEADER);
    else
        evbuffer_add_printf(x->buf,
                            "{\"schema\": \"%s\",\n  \"changes\": \"%s\",\n  "
                            "\"clients\": [",
                            CTL_CLIENTS_SCHEMA, CTL_CLIENTS_CHANGES);
    int rc = kr_store_pin_iter(x->store, one_client, x);
    if (rc != 0) {
        evbuffer_free(x->buf);
        x->buf = NULL;
        j->status =
            ctl_fail(j->err, sizeof(j->err), 500, "cannot walk the pins: %s", kr_strerror(rc));
        return;
    }
    if (!x->csv) {
        char when[32];
        ctl_iso_time(x->now, when);
        evbuffer_add_printf(x->buf,
                            "%s],\n  \"count\": %llu,\n  \"matched\": %llu,\n  \"truncated\": "
                            "%s,\n  \"generated_at\": \"%s\"\n}\n",
                            x->count ? "\n" : "", (unsigned long long)x->count,
                            (unsigned long long)x->matched,
                            x->matched > x->count ? "true" : "false", when);
    }
    j->raw = x->buf;
    j->raw_type = x->csv ? "text/csv; charset=utf-8; header=present" : "application/json";
    x->buf = NULL;
    j->status = 200;
}

static void clients_free(void *arg)
{
    struct clients_ctx *x = arg;
    if (x && x->buf)
        evbuffer_free(x->buf);
    free(x);
}

int ctl_api_clients(struct ctl_call *c)
{
    struct clients_ctx *x = calloc(1, sizeof(*x));
    const char *v, *why = "";

    if (!x)
        return ctl_fail(c->err, sizeof(c->err), 500, "out of memory");
    x->store = c->r->store;
    x->now = kr_wall_s();
    if ((v = evhttp_find_header(c->query, "app")) && *v) {
        x->by_app = true;
        if (ctl_app_filter_parse(v, x->app_id, &x->app_idx, &x->by_id) != 0) {
            free(x);
            return ctl_fail(c->err, sizeof(c->err), 400,
                            "app=%.64s: not an application (Windows, Office2010, Office2013, "
                            "other, or an application GUID)",
                            v);
        }
    }
    if ((v = evhttp_find_header(c->query, "host")) && *v) {
        if (strlen(v) >= sizeof(x->host)) {
            free(x);
            return ctl_fail(c->err, sizeof(c->err), 400, "host=: name too long");
        }
        snprintf(x->host, sizeof(x->host), "%s", v);
    }
    if ((v = evhttp_find_header(c->query, "since")) && *v) {
        uint64_t ms;
        if (kr_parse_duration_ms(v, &ms, &why) != 0) {
            free(x);
            return ctl_fail(c->err, sizeof(c->err), 400,
                            "since=%.64s: not a duration such as 7d or 12h: %s", v, why);
        }
        x->since = x->now - (int64_t)(ms / 1000);
    }
    if ((v = evhttp_find_header(c->query, "limit")) && *v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end || *v == '-' || n > CLIENTS_LIMIT_MAX) {
            free(x);
            return ctl_fail(c->err, sizeof(c->err), 400,
                            "limit=%.32s: a whole number up to %d (0 = all)", v, CLIENTS_LIMIT_MAX);
        }
        x->limit = n;
    }
    if ((v = evhttp_find_header(c->query, "format")) && *v) {
        if (strcmp(v, "csv") == 0)
            x->csv = true;
        else if (strcmp(v, "json") != 0) {
            free(x);
            return ctl_fail(c->err, sizeof(c->err), 400, "format=%.32s: json or csv", v);
        }
    }
    return ctl_job_start(c, clients_work, NULL, x, clients_free);
}
