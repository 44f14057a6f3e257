/*
 * report.h - the activation report: the answers KMS itself never gives,
 * computed from the pins in the store and the counts the hosts last
 * reported.
 *
 * Source data. Every pin (store.h, struct kr_pin) IS the per-client summary
 * of its latest activation kept in LMDB: first/last seen, application, KMS
 * id, workstation name plus up to 4 names with their last-seen times, VM
 * flag, licence status, protocol version, last HRESULT and Count, N_Policy,
 * clock skew and the previous CMID. No other per-activation data is stored.
 * The hosts' last reported counts come from the daemon's memory (see
 * kr_report_relay_hosts); without them (no daemon) the report falls back to
 * the Count of the most recently seen client of each host ("count_source":
 * "pin").
 *
 * Producers and consumers: the daemon's control API (GET /v1/report) calls
 * kr_report_build() and returns the JSON as is; kmsrelayctl renders that
 * JSON with kr_report_write_table() / kr_report_write_csv(), so the three
 * formats always show the same numbers.
 *
 * Cost: two walks over the pins (kr_store_pin_iter, short read
 * transactions), memory O(hosts x applications + listed items). Lists are
 * capped at opts.max_items each; "totals" always has the full numbers.
 *
 * ---------------------------------------------------------------- schema
 * "kmsrelay.report/2". Times are ISO 8601 UTC strings ("2026-11-21T07:44:30Z"),
 * GUIDs lower-case text, applications by name ("Windows", "Office 2010",
 * "Office 2013+") or by GUID text when unknown.
 *
 * {
 *   "schema": "kmsrelay.report/2",
 *   "schema_changes": "...",       what changed since /1, in words:
 *       2: a client is the pair (CMID, application id), counted once in
 *       each application's pool as the hosts count it; "clients" counts
 *       pairs and "machines" distinct CMIDs; per-machine findings (clock
 *       skew, cloned images, stale, cmid_changed) are listed once per CMID
 *       with "applications"; a CMID replaced by a newer one is in its chain,
 *       not in "stale"; hosts carry "weight"
 *   "generated_at": ISO, "now": unix seconds,
 *   "window_days": 30, "stale_days": 7, "skew_limit_seconds": 14400,
 *   "pins": N,                     every pin (pair) walked
 *   "clients": N,                  pairs (CMID, app) seen within the window
 *   "machines": N,                 distinct CMIDs seen within the window
 *   "vm": N, "physical": N,        of the clients
 *   "applications": [ {
 *       "application": "Windows", "app_id": GUID,
 *       "clients": N, "vm": N, "physical": N,   within the window
 *       "licence": { "unlicensed": N, "licensed": N, "oob_grace": N,
 *                    "oot_grace": N, "non_genuine_grace": N,
 *                    "notification": N, "extended_grace": N, "other": N },
 *       "hosts": [ {
 *           "host": NAME, "clients": N,        pinned here, within the window
 *           "reported_count": N | null,        what the host last answered
 *           "count_source": "host" | "pin" | "none",
 *           "count_age_seconds": N | null,     only with "host"
 *           "threshold": N,                    highest N_Policy of its clients
 *                                              (else of the host's last
 *                                              report; else 25 for Windows,
 *                                              5 for Office)
 *           "below_threshold": bool            reported_count < threshold
 *       } ... ]                                sorted by host name
 *   } ... ],                                   Windows, Office 2010, Office
 *                                              2013+, then unknown ids
 *   "hosts": [ { "host": NAME, "admin": "ready"|..|null,
 *                "weight": N | null,             the weight in force
 *                "health": "up"|..|null, "clients": N } ... ],
 *   "findings": {
 *     "below_threshold": [ { "host", "application", "app_id",
 *         "count": N, "threshold": N,
 *         "clients": [ { "cmid", "workstation", "n_policy" } ],
 *                                  the host's clients whose N_Policy is above
 *                                  the count: they cannot activate there
 *         "clients_total": N } ],
 *     "clock_skew": [ { "cmid", "workstation", "host", "application",
 *         "applications": [ names ] (of the machine),
 *         "skew_seconds": N (client minus proxy), "last_seen": ISO } ],
 *                                  one per machine: its most skewed pair
 *                                  |skew| > 4 h: hosts refuse with 0xC004F06C
 *     "cloned_images": [ { "cmid", "host", "application", "applications",
 *         "workstation" (the latest name),
 *         "workstations": [ { "name", "last_seen": ISO } ] } ],
 *                                  2+ names within the window over all the
 *                                  machine's pairs, compared as DNS names
 *                                  (case, trailing dot ignored), most recent
 *                                  first: an image deployed without sysprep
 *     "cmid_changed": [ { "cmid", "workstation", "host", "application",
 *         "applications", "previous_cmid",
 *         "chain": [ GUID oldest, ..., GUID this one ] } ],
 *                                  one entry per chain (its newest CMID)
 *     "stale": [ { "cmid", "workstation", "host", "application",
 *         "applications", "last_seen": ISO, "days_idle": N } ]
 *                                  machines not seen for > 7 days, except
 *                                  CMIDs a newer CMID replaced (in a chain)
 *   },
 *   "totals": { "below_threshold": N, "clock_skew": N, "cloned_images": N,
 *               "cmid_changed": N, "stale": N },   before the item cap
 *   "warnings": [ "one sentence per finding group", ... ]
 * }
 * Within a list, items are sorted by host, then workstation, then CMID.
 *
 * CSV (kr_report_write_csv): RFC 4180 (CRLF, fields with a comma, quote or
 * line break quoted, quotes doubled), one header line and one row per item:
 *   kind,application,host,cmid,workstations,value,threshold,detail
 * kind is one of clients, machines, clients_host, vm, physical, licence, host_count,
 * below_threshold, clock_skew, cloned_image, cmid_changed, stale; the
 * meaning of value/threshold/detail per kind is in kmsrelayctl(8). The
 * per-machine kinds (clock_skew, cloned_image, cmid_changed, stale) give
 * the machine's applications joined with "; " in the application column.
 *
 * Errors: 0 or a negative KR_E* (err.h); `why` gets a static reason.
 * Ownership: *out is a new reference owned by the caller (json_decref).
 * Thread safety: none needed beyond the store's own (any thread).
 */
#ifndef KMSRELAY_REPORT_H
#define KMSRELAY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "kmsrelay/store.h"

#define KR_REPORT_SCHEMA "kmsrelay.report/2"
#define KR_REPORT_SCHEMA_CHANGES                                                                   \
    "2: a client is the pair (cmid, app_id), counted in each application's pool as KMS hosts "     \
    "count it; clients counts pairs, machines counts CMIDs; clock_skew, cloned_images, stale "     \
    "and cmid_changed are per machine with applications; cloned names compare as DNS names; a "    \
    "replaced CMID is in its chain, not in stale; hosts carry weight"
#define KR_REPORT_HOST_APPS 4 /* counts kept per host (relay.h KR_HOST_APPS) */

/* What one host last reported for one application. */
struct kr_report_count {
    uint8_t app_id[16];
    uint32_t count;    /* Count of the host's last answer for this application */
    uint32_t n_policy; /* N_Policy of the request that got it */
    int64_t age_s;     /* seconds since that answer; < 0 = unknown */
};

/* One backend host as the daemon sees it. */
struct kr_report_host {
    char name[KR_PIN_HOST_MAX];
    char admin[16];  /* "ready", "drain", "maint", "retired"; "" = unknown */
    char health[16]; /* "up", "down", "unknown"; "" = unknown */
    uint32_t weight; /* weight in force; 0 = unknown */
    size_t n_counts;
    struct kr_report_count counts[KR_REPORT_HOST_APPS];
};

/* Options; a zeroed struct (or NULL) means the defaults of the issue. */
struct kr_report_opts {
    int64_t window_s;        /* distinct-client window; 0 = 30 days (the KMS window) */
    int64_t stale_s;         /* "not seen for"; 0 = 7 days (the renewal interval) */
    int64_t skew_s;          /* clock skew limit; 0 = 4 hours (what hosts accept) */
    size_t max_items;        /* cap per list; 0 = 1000 */
    int64_t count_max_age_s; /* a host's reported count older than this is
                              * ignored (pins used instead); 0 = no limit */
};

/*
 * Builds the report. `hosts` (may be NULL with n_hosts 0) are the configured
 * hosts with their last reported counts; hosts that only appear in pins are
 * reported too. `now` is the proxy's wall clock (unix seconds). Errors:
 * KR_ENOMEM, or the error of the store walk (KR_EIO ...).
 */
int kr_report_build(struct kr_store *s, const struct kr_report_host *hosts, size_t n_hosts,
                    int64_t now, const struct kr_report_opts *o, json_t **out, const char **why);

/* Number of findings (sum of "totals"); 0 for a clean report. */
size_t kr_report_findings(const json_t *report);

/* Writes the report as CSV (see above). KR_EINVAL when `report` is not a
 * kmsrelay.report/1 object, KR_EIO on a write error. */
int kr_report_write_csv(const json_t *report, FILE *out);

/* Writes the report as text tables and findings that fit `width` columns
 * (0 = 80; names are shortened with "~" to fit). Same errors. */
int kr_report_write_table(const json_t *report, FILE *out, unsigned width);

/*
 * For the daemon (control API): fills out[] with the relay's configured
 * hosts, their admin and health state and their last reported counts
 * (ages from the monotonic clock). Returns the number written (<= max).
 * struct kr_relay is src/relay/relay.h.
 */
struct kr_relay;
size_t kr_report_relay_hosts(const struct kr_relay *r, struct kr_report_host *out, size_t max);

/* "table", "json" or "csv": the format's writer for a report. KR_EINVAL for
 * another name. JSON is indented, one document. */
int kr_report_write(const json_t *report, const char *format, FILE *out, unsigned width);

/*
 * Offline report (kmsrelayd --report): opens the store in c->state_dir
 * (which must exist; a running daemon may hold it open too: LMDB allows
 * both), builds the report with the config's hosts, their admin states and
 * weights resolved from the store as the daemon does on start (operator
 * drain/maint/weight persist), no health and no reported counts (counts
 * come from the pins), and writes it in `format`. Pins the running
 * daemon has queued but not committed yet (at most one commit interval) are
 * not seen. Returns 0, or a KR_E* with a message in err.
 */
struct kr_conf;
int kr_report_offline(const struct kr_conf *c, const char *format, FILE *out, char *err,
                      size_t errlen);

#endif
