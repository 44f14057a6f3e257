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
 *     without the control API otherwise: a warning here, not an error).
 * Listen addresses and every value were parsed with the configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/err.h"

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

int daemon_preflight(const struct kr_conf *c, char *err, size_t errlen)
{
    int rc;
    if ((rc = kr_dns_check(c, err, errlen)) != 0)
        return rc;
    if ((rc = check_state_dir(c, err, errlen)) != 0)
        return rc;
    check_control_dir(c);
    return 0;
}
