/*
 * daemon.h - kmsrelayd as one object: it owns the configuration, the pin
 * store, the relay (the proxy: hosts, listeners, sessions, routing), the
 * DNS service, the periodic audit, the metrics exposition and the control
 * API, and runs one sequence over them:
 *
 *   create  open the store, start the relay (listeners last), apply the
 *           persisted host runtime state, then DNS, audit, metrics, control
 *   apply   a reload: relay first (the only step that can refuse), then the
 *           modules above it, each from the new configuration
 *   stop    graceful: stop accepting, withdraw our DNS records, let requests
 *           in flight finish within shutdown_grace
 *   destroy in reverse order; the store is closed last (its final flush)
 *
 * kmsrelayd's main.c parses options and calls kr_daemon_main().
 *
 * Ownership: the daemon owns every object above and its configuration
 * (kr_daemon_create and kr_daemon_apply take the kr_conf on success).
 */
#ifndef KR_DAEMON_H
#define KR_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "kmsrelay/conf.h"

struct event_base;
struct kr_daemon;

/* Builds the configuration to run (the file plus the command line), the
 * same way at start and on every reload. 0, or KR_ECONFIG with every
 * problem in err, one per line. */
typedef int (*kr_daemon_load_fn)(void *arg, struct kr_conf **out, char *err, size_t errlen);

struct kr_daemon_opts {
    const char *config;    /* the file, for messages; NULL: reloads are refused */
    bool debug;            /* -d: debug logging to stderr */
    bool check;            /* -n: check the configuration and exit */
    const char *report;    /* --report=FORMAT: print the report and exit */
    const char *port_file; /* write the first listener's port here */
    kr_daemon_load_fn load;
    void *load_arg;
};

/* The whole program after option parsing: load, check or report, or run
 * until stopped. Returns the exit status. */
int kr_daemon_main(const struct kr_daemon_opts *o);

/* Lifecycle, for kr_daemon_main and tests. */
int kr_daemon_create(struct event_base *base, const struct kr_daemon_opts *o, struct kr_conf *conf,
                     struct kr_daemon **out, char *err, size_t errlen);
/* Reload with an already built configuration (taken on success). */
int kr_daemon_apply(struct kr_daemon *d, struct kr_conf *nc, char *err, size_t errlen);
/* Begins the graceful stop; the loop is broken when it is done. */
void kr_daemon_stop(struct kr_daemon *d, const char *why);
void kr_daemon_destroy(struct kr_daemon *d);

#endif
