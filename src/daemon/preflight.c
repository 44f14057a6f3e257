/*
 * preflight.c - `kmsrelayd -n`: every check start-up runs, without its side
 * effects (nothing is created, bound, opened for writing or published), so
 * a configuration that passes here is not refused by the start:
 *   - the TSIG key files of dns.zones (missing, mode not 0600, secret not
 *     base64, unknown algorithm: kr_dns_check, the start's own check), and
 *     the keytabs of GSS-TSIG zones (file, mode, principal present);
 *   - state_dir: an existing directory we can write, or one we can create
 *     (the nearest existing parent is a writable directory);
 *   - the control socket's directory exists (the start logs and goes on
 *     without the control API otherwise: a warning here, not an error);
 *   - the store in state_dir, when there is one: kr_store_check reads its
 *     meta pages with plain reads (never mapping it), so a damaged,
 *     empty or newer store fails here as the start would refuse it;
 *   - the descriptor budget: with the hard RLIMIT_NOFILE the start raises
 *     the soft limit to, does the reserve for backends and checks leave room
 *     for clients.max_connections? (a warning: the start runs with the
 *     smaller cap in force, and says so).
 *   - every backend host written as a DNS name resolves now (names.c;
 *     each one that does not is reported with the file:line of its address).
 * Listen addresses and every value were parsed with the configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/fdguard.h"
#include "kmsrelay/store.h"
#include "peer/peer.h"
#include "relay/relay.h"

/* The nearest existing ancestor of path (path itself when it exists). */
static int nearest(const char *path, char *out, size_t cap, struct stat *st)
{
    snprintf(out, cap, "%s", path);
    for (;;) {
        if (stat(out, st) == 0)
            return 0;
        char *slash = strrchr(out, '/');
        if (!slash)
            return -1;
        if (slash == out) {
            out[1] = '\0';
            return stat(out, st);
        }
        *slash = '\0';
    }
}

static int check_state_dir(const struct kr_conf *c, char *err, size_t errlen)
{
    char at[KR_CONF_PATH_MAX];
    struct stat st;
    if (nearest(c->state_dir, at, sizeof(at), &st) != 0) {
        snprintf(err, errlen, "state_dir %s: no existing parent directory", c->state_dir);
        return KR_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "state_dir %s: %s is not a directory", c->state_dir, at);
        return KR_EIO;
    }
    if (access(at, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "state_dir %s: %s is not writable by this user: %s", c->state_dir, at,
                 strerror(errno));
        return KR_EIO;
    }
    return 0;
}

static void check_control_dir(const struct kr_conf *c)
{
    char dir[KR_CONF_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s", c->control_socket);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        fprintf(stderr,
                "kmsrelayd: warning: control.socket %s: the directory %s does not exist; "
                "kmsrelayd would run without the control API\n",
                c->control_socket, dir);
}

static int check_store(const struct kr_conf *c, char *err, size_t errlen)
{
    struct kr_store_check st;
    int rc = kr_store_check(c->state_dir, &st);
    if (rc == 0)
        return 0; /* sound, or none yet (the start creates it) */
    const char *advice = kr_store_check_advice(st.state);
    snprintf(err, errlen, "store %s: %s%s%s", st.path, st.what, *advice ? "; " : "", advice);
    return rc;
}

/* The start's budget (relay/listen.c) with the limit it will raise to. */
static void check_fd_budget(const struct kr_conf *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
        return;
    uint64_t limit = (uint64_t)rl.rlim_max, reserve = kr_relay_fd_reserve(c);
    uint64_t used = reserve + KR_METRICS_MAX_CONNS + KR_CONTROL_MAX_CONNS;
    uint64_t room = limit > used ? limit - used : 0;
    if (room >= c->max_connections)
        return;
    fprintf(stderr,
            "kmsrelayd: warning: the descriptor limit (%llu, hard RLIMIT_NOFILE) leaves room for "
            "%llu clients after the reserve of %llu for backends and checks, not "
            "clients.max_connections = %u; raise it (LimitNOFILE=) or lower "
            "clients.max_connections or backend.pool_size\n",
            (unsigned long long)limit, (unsigned long long)room, (unsigned long long)reserve,
            c->max_connections);
}

int daemon_preflight(const struct kr_conf *c, char *err, size_t errlen)
{
    int rc;
    if ((rc = kr_dns_check(c, err, errlen)) != 0)
        return rc;
    if ((rc = daemon_names_check(c, err, errlen)) != 0)
        return rc;
    if ((rc = check_state_dir(c, err, errlen)) != 0)
        return rc;
    if ((rc = check_store(c, err, errlen)) != 0)
        return rc;
    if ((rc = kr_peers_check(c, err, errlen)) != 0)
        return rc;
    check_control_dir(c);
    check_fd_budget(c);
    return 0;
}
