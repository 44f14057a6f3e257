/*
 * cmd_store.c - `kmsrelayctl store check|set-aside --state-dir DIR`: the
 * offline side of a damaged store (no daemon needed, none may run for
 * set-aside).
 *
 *   check      kr_store_check() (plain reads, never maps the file), then, if
 *              that passes, a read of every pin in a child process, so damage
 *              deeper in the file is reported instead of crashing us.
 *   set-aside  moves data.mdb and lock.mdb into DIR/set-aside-<UTC time>/
 *              (never deletes anything) so that kmsrelayd starts with an
 *              empty store. Refused while a process has the store open, and
 *              for a store the check finds sound unless --force.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl/ctl.h"
#include "kmsrelay/err.h"
#include "kmsrelay/store.h"

static const char *state_name(int st)
{
    static const char *const n[] = {"ok", "absent", "damaged", "newer", "unreadable"};
    return st >= 0 && st <= KR_STORE_UNREADABLE ? n[st] : "?";
}

static int count_pin(const struct kr_pin *p, void *ctx)
{
    (void)p;
    (*(size_t *)ctx)++;
    return 0;
}

/* Reads every pin in a child; fills *pins. Returns 0, or a description of
 * the failure in msg and -1. */
static int deep_read(const char *dir, size_t *pins, uint64_t *bad, char *msg, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return snprintf(msg, cap, "pipe: %s", strerror(errno)), -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        struct kr_store *s = NULL;
        const char *why = "";
        unsigned long long r[2] = {0, 0};
        struct kr_store_opts so = {.read_only = true};
        int rc = kr_store_open(dir, &so, &s, &why);
        if (rc == 0) {
            size_t n = 0;
            rc = kr_store_pin_iter(s, count_pin, &n);
            struct kr_store_stats st;
            kr_store_stats(s, &st);
            r[0] = n;
            r[1] = st.bad_records;
            if (rc)
                why = kr_strerror(rc);
            kr_store_close(s);
        }
        char out[1100];
        int len = snprintf(out, sizeof(out), "%d %llu %llu %.1000s", rc, r[0], r[1], why);
        if (write(pfd[1], out, (size_t)len) < 0)
            _exit(3);
        _exit(0);
    }
    close(pfd[1]);
    char buf[1100];
    size_t got = 0;
    ssize_t n;
    while (pid > 0 && got < sizeof(buf) - 1 &&
           (n = read(pfd[0], buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = 0;
    close(pfd[0]);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return snprintf(msg, cap, "cannot run the read check"), -1;
    if (WIFSIGNALED(st))
        return snprintf(msg, cap, "reading its pins killed the reader (%s): the file is damaged",
                        strsignal(WTERMSIG(st))),
               -1;
    int rc = -1, off = 0;
    unsigned long long np = 0, nb = 0;
    if (sscanf(buf, "%d %llu %llu %n", &rc, &np, &nb, &off) < 3)
        return snprintf(msg, cap, "the read check said nothing"), -1;
    if (rc != 0)
        return snprintf(msg, cap, "reading its pins failed: %s", buf + off), -1;
    *pins = (size_t)np;
    *bad = nb;
    return 0;
}

/* The pid of a process holding LMDB's lock on lock.mdb, 0 if none, -1 if
 * unknown. LMDB takes a (shared or exclusive) fcntl lock on its first byte
 * for as long as it has the environment open. */
static long store_user(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    long pid = fcntl(fd, F_GETLK, &fl) != 0 ? -1 : fl.l_type == F_UNLCK ? 0 : (long)fl.l_pid;
    close(fd);
    return pid;
}

static int do_check(const struct ctl_opts *o, const char *dir)
{
    struct kr_store_check c;
    int rc = kr_store_check(dir, &c);
    size_t pins = 0;
    uint64_t bad = 0;
    char deep[1200] = "";
    if (rc == 0 && c.state == KR_STORE_OK && deep_read(dir, &pins, &bad, deep, sizeof(deep)) != 0)
        c.state = KR_STORE_DAMAGED;
    const char *advice = kr_store_check_advice(c.state);
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I}", "path", c.path, "state",
                              state_name(c.state), "what", *deep ? deep : c.what, "file_size",
                              (json_int_t)c.file_size, "need_size", (json_int_t)c.need_size);
        if (c.state == KR_STORE_OK) {
            json_object_set_new(j, "pins", json_integer((json_int_t)pins));
            json_object_set_new(j, "bad_records", json_integer((json_int_t)bad));
        }
        if (*advice)
            json_object_set_new(j, "action", json_string(advice));
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        printf("%s: %s: %s\n", c.path, state_name(c.state), *deep ? deep : c.what);
        if (c.state == KR_STORE_OK)
            printf("pins: %zu readable, %llu undecodable\n", pins, (unsigned long long)bad);
        if (*advice)
            printf("what to do: %s\n", advice);
    }
    return c.state == KR_STORE_OK || c.state == KR_STORE_ABSENT ? CTL_EXIT_OK : CTL_EXIT_FINDINGS;
}

static int do_set_aside(const struct ctl_opts *o, const char *dir, int force)
{
    struct kr_store_check c;
    kr_store_check(dir, &c);
    if (c.state == KR_STORE_ABSENT) {
        printf("%s: no store: nothing to set aside\n", c.path);
        return CTL_EXIT_OK;
    }
    long pid = store_user(dir);
    if (pid != 0) {
        fprintf(stderr,
                "kmsrelayctl store set-aside: %s is open in %s%ld; stop kmsrelayd first "
                "(systemctl stop kmsrelayd)\n",
                dir, pid > 0 ? "process " : "another process", pid > 0 ? pid : 0);
        return CTL_EXIT_FINDINGS;
    }
    if (c.state == KR_STORE_OK && !force) {
        fprintf(stderr,
                "kmsrelayctl store set-aside: %s is sound (%s); use --force to set it aside "
                "anyway (its pins would no longer be used)\n",
                c.path, c.what);
        return CTL_EXIT_FINDINGS;
    }
    char stamp[32], dest[4200], from[4200], to[4300];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    snprintf(dest, sizeof(dest), "%s/set-aside-%s", dir, stamp);
    if (mkdir(dest, 0700) != 0) {
        fprintf(stderr, "kmsrelayctl store set-aside: cannot create %s: %s\n", dest,
                strerror(errno));
        return CTL_EXIT_FINDINGS;
    }
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof(from), "%s/%s", dir, files[i]);
        snprintf(to, sizeof(to), "%s/%s", dest, files[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            fprintf(stderr, "kmsrelayctl store set-aside: cannot move %s to %s: %s\n", from, to,
                    strerror(errno));
            return CTL_EXIT_FINDINGS;
        }
    }
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "path", c.path, "state", state_name(c.state),
                              "moved_to", dest);
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else
        printf("%s (%s: %s) moved to %s/\nkmsrelayd will start with an empty store; nothing "
               "was deleted.\n",
               c.path, state_name(c.state), c.what, dest);
    return CTL_EXIT_OK;
}

int ctl_cmd_store(const struct ctl_opts *o, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL, *dir = NULL;
    int force = 0;
    struct ctl_opts oo = *o;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--state-dir=", 12) == 0)
            dir = argv[i] + 12;
        else if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "--json") == 0)
            oo.json = 1;
        else
            sub = NULL;
    }
    if (!sub || !dir || (strcmp(sub, "check") && strcmp(sub, "set-aside"))) {
        fprintf(stderr, "usage: kmsrelayctl store check --state-dir DIR\n"
                        "       kmsrelayctl store set-aside [--force] --state-dir DIR\n"
                        "DIR is store.state_dir of kmsrelay.conf (default /var/lib/kmsrelay).\n");
        return CTL_EXIT_USAGE;
    }
    return strcmp(sub, "check") == 0 ? do_check(&oo, dir) : do_set_aside(&oo, dir, force);
}
