/*
 * state.c - the daemon's pin store: opened in conf.state_dir (created 0750
 * when missing) with the store's background flusher (flush_interval =
 * commit_interval, early flush at commit_batch queued pins), so the event
 * loop never waits for an fsync. A timer watches those background commits
 * and raises one alarm per failing episode. A store that cannot open stops
 * the start: the pins are the product, running without them would silently
 * break affinity.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/daemon-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

/* mkdir -p, new components 0750: the pins are not for every local user. */
static int make_dirs(const char *dir)
{
    char path[KR_CONF_PATH_MAX];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int daemon_store_open(struct kr_daemon *d, char *err, size_t errlen)
{
    const struct kr_conf *c = d->conf;
    struct kr_store_opts opts;
    const char *why = NULL;

    if (make_dirs(c->state_dir) != 0) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", c->state_dir,
                 strerror(errno));
        return KR_EIO;
    }
    memset(&opts, 0, sizeof(opts));
    opts.map_size = c->map_size;
    opts.flush_interval_ms =
        c->commit_interval_ms > 60000 ? 60000 : (unsigned)c->commit_interval_ms;
    opts.flush_batch = c->commit_batch;
    errno = 0;
    int rc = kr_store_open(c->state_dir, &opts, &d->store, &why);
    if (rc != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open the state store in %s: %s%s%s", c->state_dir,
                 why ? why : kr_strerror(rc), e ? ": " : "", e ? strerror(e) : "");
        d->store = NULL;
        return rc;
    }
    return 0;
}

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* The background flusher reports through the store's counters. */
static void on_commit_watch(evutil_socket_t fd, short what, void *arg)
{
    struct kr_daemon *d = arg;
    struct kr_store_stats st;

    kr_store_stats(d->store, &st);
    if (st.commit_failures > d->commit_failures_seen && !d->commit_alarm) {
        d->commit_alarm = true;
        kr_log(KR_LOG_ERR,
               "event=store_alarm state=commit_failing error=\"%s\" pending=%zu drops=%llu "
               "action=\"pins are kept in memory and retried\"",
               st.last_why && *st.last_why ? st.last_why : kr_strerror(st.last_error), st.pending,
               (unsigned long long)st.drops);
    } else if (d->commit_alarm && !st.degraded) {
        d->commit_alarm = false;
        kr_log(KR_LOG_WARN, "event=store_alarm state=commits_ok pending=%zu", st.pending);
    }
    d->commit_failures_seen = st.commit_failures;
    arm_ms(d->commit_timer, d->conf->commit_interval_ms < 200 ? 200 : d->conf->commit_interval_ms);
}

void daemon_store_watch(struct kr_daemon *d)
{
    if (d->commit_timer || !(d->commit_timer = evtimer_new(d->base, on_commit_watch, d)))
        return;
    arm_ms(d->commit_timer, 1000);
}

void daemon_store_close(struct kr_daemon *d)
{
    if (d->commit_timer)
        event_free(d->commit_timer);
    d->commit_timer = NULL;
    if (!d->store)
        return;
    size_t pending = kr_store_pending(d->store);
    int rc = kr_store_close(d->store);
    if (rc != 0)
        kr_log(KR_LOG_ERR, "event=store_error what=\"final flush\" error=\"%s\" lost=%zu",
               kr_strerror(rc), pending);
    else
        kr_log(KR_LOG_INFO, "event=store_closed flushed=%zu", pending);
    d->store = NULL;
}
