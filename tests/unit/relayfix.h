/*
 * relayfix.h - a struct kr_relay built by hand, for the unit suites that
 * test relay files without relay.c (test_proxy.c, test_route.c): default
 * configuration, n hosts "kms-a", "kms-b", ... of weight 1, ready and up,
 * and on request a real store in a fresh temporary directory.
 *
 * Ownership: the fixture owns everything it points to (hosts, conf, store);
 * the caller owns the fixture itself and sets anything else the relay needs
 * (event base, limits, host addresses) after kr_fix_init().
 */
#ifndef KR_RELAYFIX_H
#define KR_RELAYFIX_H

#include <stddef.h>

#include "relay/relay.h"

#define KR_FIX_MAX_HOSTS 4

struct kr_relay_fix {
    struct kr_relay r; /* r.conf = &conf, r.hosts = ptrs */
    struct kr_conf conf;
    struct kr_host hosts[KR_FIX_MAX_HOSTS];
    struct kr_host *ptrs[KR_FIX_MAX_HOSTS];
    char dir[64]; /* the store's directory, "" without a store */
    int saved_level;
};

/* Zeroes f and builds the relay with n (<= KR_FIX_MAX_HOSTS) hosts; sets
 * the log level to log_level until kr_fix_fini(). */
void kr_fix_init(struct kr_relay_fix *f, size_t n, int log_level);

/* Opens a real store for r.store in a new /tmp/kr-<tag>-XXXXXX directory
 * (fatal assertion on failure). */
void kr_fix_store_open(struct kr_relay_fix *f, const char *tag);

/* Closes the store, removes its directory and restores the log level. */
void kr_fix_fini(struct kr_relay_fix *f);

#endif
