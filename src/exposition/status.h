/*
 * status.h - the read-only status page (GET /status on the metrics
 * listener), shared by the src/exposition files that make it:
 *
 *   status.c           the page: head and style, summary, host cards
 *   status_sections.c  the report's findings and the DNS state
 *   status_report.c    the activation report, built off the loop and cached
 *   html.c             escaping (html.h)
 *
 * The page is plain HTML with an inline style sheet: no script, nothing
 * fetched from anywhere, a viewport meta and a one-column layout for
 * phones, and <meta http-equiv="refresh" content="10"> so an open page
 * follows the daemon. Every string that did not come from this program is
 * escaped (html.h).
 *
 * Threads: all on the event loop, except the report build (status_report.c).
 */
#ifndef KR_EXPOSITION_STATUS_H
#define KR_EXPOSITION_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;
struct kr_relay;

#define MX_STATUS_REFRESH_S 10 /* the page reloads itself this often */

/* ---- status_report.c: the cached report ---------------------------------- */
struct mx_report_cache;
struct mx_report_cache *mx_report_cache_new(void); /* NULL when out of memory */
/* Starts a build off the loop when the last one is old enough and none is
 * running (see status_report.c); never blocks. */
void mx_report_cache_refresh(struct mx_report_cache *c, struct kr_relay *r);
/* The last finished report (borrowed; NULL = none yet), its time (unix s)
 * and why the latest build failed (NULL when it did not). */
const json_t *mx_report_cache_get(const struct mx_report_cache *c, int64_t *at, const char **err);
bool mx_report_cache_busy(const struct mx_report_cache *c); /* a build is running */
/* Cancels a running build, waits for it (before the store closes), frees. */
void mx_report_cache_free(struct mx_report_cache *c);

/* ---- status.c: the page --------------------------------------------------- */
struct mx_page {
    const struct kr_relay *relay; /* hosts, instance, version; may be NULL */
    const json_t *report;         /* kmsrelay.report/1, NULL = not built yet */
    int64_t report_at;            /* when it was built (unix s) */
    const char *report_err;       /* the latest build's error, or NULL */
    bool report_busy;             /* a build is running */
    const json_t *dns;            /* kr_dns_status_json(), NULL = no DNS service */
    int64_t now;                  /* wall clock (unix s) */
};
/* Appends the whole page. 0, or KR_ENOMEM. */
int mx_status_page(struct evbuffer *b, const struct mx_page *p);

/* ---- helpers shared by status.c and status_sections.c --------------------- */
void mx_status_findings(struct evbuffer *b, const struct mx_page *p);
void mx_status_dns(struct evbuffer *b, const struct mx_page *p);
/* "2026-12-02 17:50:01 UTC"; "never" for 0. */
const char *mx_time_text(int64_t t, char *out, size_t cap);
/* "12 s", "4 min", "3 h", "2 d" for a duration in seconds (>= 0). */
const char *mx_age_text(int64_t s, char *out, size_t cap);
/* A string member of o, "" when missing; an integer member, dflt when not one. */
const char *mx_js(const json_t *o, const char *key);
int64_t mx_ji(const json_t *o, const char *key, int64_t dflt);

#endif
