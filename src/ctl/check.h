/*
 * check.h - the monitoring verdict behind `kmsrelayctl check` and the
 * --check-exit option of `status` and `hosts` (cmd_check.c).
 *
 * One rule, the exit codes of the monitoring-plugin convention that Nagios,
 * Icinga, Zabbix agents and Sensu all read:
 *   0 OK
 *   1 WARNING   a host down (not in maintenance or retired), a host's count
 *               below an application's activation threshold, findings
 *               (clients with a skewed clock or a cloned image, _vlmcs audit
 *               problems), a failing DNS update, the store filling up
 *   2 CRITICAL  no host takes new clients (up, ready, weight > 0), the relay
 *               is not published in a DNS zone it publishes in, the store
 *               cannot commit (degraded) or is nearly full
 *   3 UNKNOWN   the daemon cannot be reached or answers with an error
 * Thresholds are options of `check` (struct ctl_check_limits); --check-exit
 * uses the defaults.
 *
 * Inputs are the control API's documents: GET /v1/status, /v1/hosts,
 * /v1/dns and /v1/report (its totals; skipped with --no-report, because the
 * report walks every pin twice). A command that already has one passes it
 * in; the rest are fetched.
 *
 * Ownership: struct ctl_check_docs owns its references (ctl_check_docs_free).
 */
#ifndef KR_CTL_CHECK_H
#define KR_CTL_CHECK_H

#include <stdbool.h>

#include <jansson.h>

#include "ctl/ctl.h"

enum { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };

struct ctl_check_limits {
    long down_warn;     /* hosts down for WARNING (default 1; 0 = never) */
    long down_crit;     /* hosts down for CRITICAL (default 0 = never) */
    long eligible_warn; /* WARNING below this many hosts taking new clients (default 0) */
    long eligible_crit; /* CRITICAL below this many (default 1) */
    long below_warn;    /* counts below threshold for WARNING (default 1; 0 = never) */
    long findings_warn; /* findings for WARNING (default 1; 0 = never) */
    long store_warn;    /* store map used, percent, for WARNING (default 80) */
    long store_crit;    /* ... for CRITICAL (default 95) */
    bool report;        /* read the report's findings (default true) */
};

struct ctl_check_docs {
    json_t *status, *hosts, *dns, *report; /* NULL = fetch */
};

void ctl_check_defaults(struct ctl_check_limits *l);
void ctl_check_docs_free(struct ctl_check_docs *d);

/* Fetches the documents still NULL in d (the report only when l->report)
 * and returns the verdict 0..3. With `line` non-NULL, prints the plugin
 * line ("KMSRELAY WARNING - ... | perfdata") there. */
int ctl_check_run(const struct ctl_opts *o, const struct ctl_check_limits *l,
                  struct ctl_check_docs *d, FILE *line);

/* For --check-exit of status and hosts: the verdict with the default limits;
 * a non-OK verdict is explained on stderr, stdout stays as it was. Takes
 * over `have` (the document the command already read, may be NULL) as
 * the status (is_status) or hosts document. */
int ctl_check_exit_code(const struct ctl_opts *o, json_t *have, bool is_status);

int ctl_cmd_check(const struct ctl_opts *o, int argc, char **argv);

#endif
