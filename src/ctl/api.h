/*
 * api.h - kmsrelayctl's client side of the control API (http.c), its output
 * helpers (out.c) and the commands built on them (cmd_hosts.c, cmd_pins.c,
 * cmd_clients.c, cmd_ops.c), for the command table in main.c.
 *
 * The client is deliberately tiny: one HTTP/1.1 request per connection over
 * the AF_UNIX socket, blocking, "Connection: close", the whole answer read
 * before it is parsed. Every command is a request plus a rendering of its
 * JSON answer; --json prints the answer itself.
 *
 * Ownership: ctl_resp owns its body and json; ctl_table copies every cell.
 */
#ifndef KR_CTL_API_H
#define KR_CTL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "ctl/ctl.h"

/* ---- http.c --------------------------------------------------------------- */

struct ctl_resp {
    int status; /* HTTP status */
    char *body; /* NUL-terminated, body_len bytes before the NUL */
    size_t body_len;
    char ctype[128]; /* Content-Type */
    json_t *json;    /* ctl_resp_json's parse, owned */
    bool parsed;
};

/* One request. Returns 0 with *r filled (any HTTP status), or
 * CTL_EXIT_UNREACHABLE after printing why, naming the socket path. body may
 * be NULL. */
int ctl_http(const struct ctl_opts *o, const char *method, const char *path, const char *body,
             struct ctl_resp *r);
void ctl_resp_free(struct ctl_resp *r);
/* The body parsed when it is JSON, else NULL; parsed on first use (a large
 * list printed as it came is never parsed). Owned by r. */
json_t *ctl_resp_json(struct ctl_resp *r);

/* A request whose answer must be 2xx JSON: returns CTL_EXIT_OK with *out
 * (caller decrefs), or prints "kmsrelayctl: <the daemon's error>" and
 * returns the exit code: 2 for the caller's mistakes (400, 404, 405, 409,
 * 411, 413), 1 for everything else the daemon refused, 3 unreachable. */
int ctl_call(const struct ctl_opts *o, const char *method, const char *path, const json_t *body,
             json_t **out);
/* The exit code for an HTTP error status (see ctl_call). */
int ctl_exit_for_status(int status);

/* Appends s percent-encoded (everything but A-Z a-z 0-9 - . _ ~) to out. */
void ctl_urlencode(const char *s, char *out, size_t cap);

/* ---- out.c ---------------------------------------------------------------- */

/* JSON as the daemon sent it, indented, one document, newline. */
void ctl_print_json(const json_t *j);

/* A text table: columns sized to their widest cell, two spaces apart. */
struct ctl_table;
struct ctl_table *ctl_table_new(size_t ncols, const char *const *heads);
/* Right-aligns column col (numbers). */
void ctl_table_right(struct ctl_table *t, size_t col);
/* Adds a row of ncols strings (copied through kr_term_safe(); NULL prints
 * as "-"). */
void ctl_table_add(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t, FILE *f);
void ctl_table_free(struct ctl_table *t);

/* RFC 4180: quotes the field when it holds a comma, quote, CR or LF;
 * quotes doubled; rows end in CRLF. */
void ctl_csv_field(FILE *f, const char *s, bool last);

/* Scalars of a JSON object as text ("" for missing/null, numbers in
 * decimal, booleans yes/no). buf is used for numbers. */
const char *ctl_jstr(const json_t *o, const char *key, char *buf, size_t cap);
long long ctl_jint(const json_t *o, const char *key);

/* Width of the terminal on stdout (COLUMNS, the tty, else 80). */
unsigned ctl_term_width(void);

/* Per-command options: --json (also accepted after the command) and the
 * positional arguments left over. Options a command takes are matched with
 * ctl_opt_value / ctl_opt_flag first. */
struct ctl_argv {
    int argc;
    char **argv;
    int i;
};
/* "--name VALUE" or "--name=VALUE" at argv[i]: returns VALUE and advances,
 * NULL when argv[i] is not that option (or its value is missing: *missing). */
const char *ctl_opt_value(struct ctl_argv *a, const char *name, bool *missing);
bool ctl_opt_flag(struct ctl_argv *a, const char *name);

/* ---- the commands --------------------------------------------------------- */

int ctl_cmd_status(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_hosts(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_host(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_pin(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_rebalance(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_clients(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_report(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_dns(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_peers(const struct ctl_opts *o, int argc, char **argv); /* cmd_peers.c */
int ctl_cmd_reload(const struct ctl_opts *o, int argc, char **argv);

#endif
