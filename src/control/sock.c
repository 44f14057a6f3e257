/*
 * sock.c - the control API's AF_UNIX listening socket.
 *
 * Access control is the file's permissions, so they are never wider than
 * configured, not even for an instant: the socket is bound under umask 0177
 * (the file appears as 0600, daemon only), then chmod'ed to control.mode and
 * chgrp'ed to control.group (relayd's control_init does the same).
 *
 * A socket file left by a crashed daemon would make bind() fail. It is
 * removed only when nothing answers on it: a live kmsrelayd keeps its
 * socket and the second one refuses to take it over. Anything at the path
 * that is not a socket is never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/fdguard.h"

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sa->sun_path))
        return -1;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* 1 when a server accepts connections at path, 0 when nothing does. */
static int answers(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1; /* cannot tell: do not remove anything */
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(fd);
    if (rc == 0)
        return 1;
    /* ECONNREFUSED: a socket file nobody listens on. EAGAIN means a live
     * listener with a full backlog. */
    return e == ECONNREFUSED || e == ENOENT ? 0 : 1;
}

static int group_id(const char *group, gid_t *gid)
{
    char *end;
    unsigned long n = strtoul(group, &end, 10);
    if (*group && *end == '\0') {
        *gid = (gid_t)n;
        return 0;
    }
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(group, &gr, buf, sizeof(buf), &res) != 0 || !res)
        return -1;
    *gid = res->gr_gid;
    return 0;
}

int ctl_sock_perms(const char *path, unsigned mode, const char *group, char *err, size_t errlen)
{
    gid_t gid;
    if (group && *group) {
        if (group_id(group, &gid) != 0) {
            snprintf(err, errlen, "control socket %s: no group named \"%s\"", path, group);
            return KR_EIO;
        }
        if (chown(path, (uid_t)-1, gid) != 0) {
            snprintf(err, errlen, "control socket %s: cannot give it to group %s: %s", path, group,
                     strerror(errno));
            return KR_EIO;
        }
    }
    if (chmod(path, mode & 0777) != 0) {
        snprintf(err, errlen, "control socket %s: chmod %04o: %s", path, mode & 0777,
                 strerror(errno));
        return KR_EIO;
    }
    return 0;
}

int ctl_sock_listen(const char *path, unsigned mode, const char *group, dev_t *dev, ino_t *ino,
                    char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (errlen)
        err[0] = '\0';
    if (fill_addr(path, &sa) != 0) {
        snprintf(err, errlen, "control socket path \"%s\" is empty or longer than %zu bytes", path,
                 sizeof(sa.sun_path) - 1);
        return KR_EINVAL;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "control socket %s: the path exists and is not a socket", path);
            return KR_EEXIST;
        }
        if (answers(&sa)) {
            snprintf(err, errlen,
                     "control socket %s: another process (a running kmsrelayd?) answers on it",
                     path);
            return KR_EEXIST;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "control socket %s: cannot remove the stale socket: %s", path,
                     strerror(errno));
            return KR_EIO;
        }
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        return KR_EIO;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "control socket %s: bind: %s", path, strerror(e));
        close(fd);
        return KR_EIO;
    }
    if (lstat(path, &st) != 0) {
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return KR_EIO;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    if (ctl_sock_perms(path, mode, group, err, errlen) != 0 || listen(fd, 64) != 0) {
        if (!*err)
            snprintf(err, errlen, "control socket %s: listen: %s", path, strerror(errno));
        ctl_sock_unlink(path, *dev, *ino);
        close(fd);
        return KR_EIO;
    }
    return fd;
}

void ctl_sock_unlink(const char *path, dev_t dev, ino_t ino)
{
    struct stat st;
    /* A newer daemon may have replaced it meanwhile: only remove ours. */
    if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
        unlink(path);
}

int ctl_sock_guard(struct kr_control *ctl, struct evhttp_bound_socket *bound)
{
    ctl->guard = kr_fd_guard_evhttp(ctl->http, bound, "control", KR_CONTROL_MAX_CONNS,
                                    CTL_HEADER_DEADLINE_MS, ctl_gate_bev, ctl);
    return ctl->guard ? 0 : KR_ENOMEM;
}
