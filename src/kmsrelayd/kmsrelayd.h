/*
 * kmsrelayd.h - the daemon's program files (main.c: options, then
 * kr_daemon_main in src/daemon; options.c: command line, help, building
 * the config).
 *
 * Ownership: struct kd_opts borrows its strings from argv.
 */
#ifndef KR_KMSRELAYD_H
#define KR_KMSRELAYD_H

#include <stdbool.h>
#include <stddef.h>

#include "kmsrelay/conf.h"

struct kd_opts {
    const char *config;                   /* -c FILE, NULL: embedded defaults */
    bool check;                           /* -n */
    bool debug;                           /* -d */
    const char *hosts[KR_CONF_MAX_HOSTS]; /* -H, in order */
    size_t n_hosts;
    const char *listen[KR_CONF_MAX_LISTEN]; /* -l, replaces the config's list */
    size_t n_listen;
    const char *state_dir; /* -s */
    const char *port_file; /* --port-file */
    const char *report;    /* --report[=FORMAT]: print the activation report and exit */
    const char *control;   /* --control PATH: control socket (overrides control.socket) */
};

/* Parses argv. Returns 0 to run, 1 when done (help/version printed: exit 0),
 * or 2 on a usage error (message printed). */
int kd_parse_args(int argc, char **argv, struct kd_opts *o);

/* The largest configuration file kd_build_conf reads (the main file). */
#define KD_CONF_MAX_BYTES (1024 * 1024)

/* The config to run: the file (or the defaults) with the command line on top,
 * validated as a whole. On failure returns KR_ECONFIG with every problem in
 * errbuf (one "file:line: message" per line) and *out untouched; the caller
 * frees *out with free(). */
int kd_build_conf(const struct kd_opts *o, struct kr_conf **out, char *errbuf, size_t errlen);

#endif
