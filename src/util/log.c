/* log.c - logfmt lines to stderr or syslog, optionally buffered in
 * batches (see kr_log_buffer_start in log.h). */
#include "kmsrelay/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kmsrelay/netaddr.h" /* kr_now_us */

static const char *log_ident = "kmsrelay";
static int log_syslog;
static int log_max = KR_LOG_INFO;

void kr_log_init(const char *ident, int use_syslog, int level)
{
    if (log_syslog && !use_syslog)
        closelog();
    log_ident = ident;
    log_syslog = use_syslog;
    log_max = level;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void kr_log_set_level(int level)
{
    log_max = level;
}

int kr_log_level(void)
{
    return log_max;
}

/* ---- the buffer ---------------------------------------------------------- */

#define LOGBUF_CAP 65536
/* A batch is written once it holds this many lines: it bounds what a
 * SIGKILL can lose (the rest of the time a timer of the loop flushes). */
#define LOGBUF_BATCH_LINES 32

static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[LOGBUF_CAP];
static size_t buf_len;      /* under buf_mu */
static unsigned buf_lines;  /* under buf_mu */
static bool buffering;      /* under buf_mu */
static pthread_t buf_owner; /* the thread whose lines are buffered */
static void (*buf_kick)(void *);
static void *buf_kick_arg;

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to write: nothing better to do with the line */
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void)
{
    if (buf_len)
        write_all(logbuf, buf_len);
    buf_len = 0;
    buf_lines = 0;
}

void kr_log_flush(void)
{
    int saved = errno;
    pthread_mutex_lock(&buf_mu);
    flush_locked();
    pthread_mutex_unlock(&buf_mu);
    errno = saved;
}

void kr_log_buffer_start(void (*kick)(void *arg), void *arg)
{
    static bool registered;
    pthread_mutex_lock(&buf_mu);
    flush_locked();
    buffering = true;
    buf_owner = pthread_self();
    buf_kick = kick;
    buf_kick_arg = arg;
    if (!registered)
        registered = atexit(kr_log_flush) == 0; /* exit() writes what is left */
    pthread_mutex_unlock(&buf_mu);
}

void kr_log_buffer_stop(void)
{
    pthread_mutex_lock(&buf_mu);
    flush_locked();
    buffering = false;
    buf_kick = NULL;
    buf_kick_arg = NULL;
    pthread_mutex_unlock(&buf_mu);
}

/* One whole line (with its newline) to stderr: a deferred line of the
 * buffering thread into the buffer, any other line at once, after what is
 * buffered (so that every other line, start-up and state changes above all,
 * is out before whatever the program does next, e.g. tell systemd). */
static void emit(const char *line, size_t n, bool defer)
{
    void (*kick)(void *) = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&buf_mu);
    if (defer && buffering && pthread_equal(pthread_self(), buf_owner)) {
        if (buf_len + n > LOGBUF_CAP)
            flush_locked();
        if (n > LOGBUF_CAP) {
            write_all(line, n);
        } else {
            if (buf_len == 0) {
                kick = buf_kick;
                arg = buf_kick_arg;
            }
            memcpy(logbuf + buf_len, line, n);
            buf_len += n;
            if (++buf_lines >= LOGBUF_BATCH_LINES)
                flush_locked(); /* the timer armed by the kick finds it empty */
        }
    } else {
        flush_locked(); /* what the loop buffered came first */
        write_all(line, n);
    }
    pthread_mutex_unlock(&buf_mu);
    if (kick)
        kick(arg);
}

static const char *level_name(int level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    return level >= 0 && level <= KR_LOG_DEBUG ? names[level] : "info";
}

/* "ts=...Z level=... " into out (at least 64 bytes); returns its length.
 * The date and time of the current second are formatted once a second per
 * thread, not once a line (thousands of activation lines a second). */
static int line_prefix(char *out, size_t cap, int level)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    return snprintf(out, cap, "ts=%s.%03ldZ level=%s ", cached, ts.tv_nsec / 1000000L,
                    level_name(level));
}

static void vlog_to(int level, bool defer, const char *fmt, va_list ap)
{
    if (level > log_max)
        return;
    int saved = errno;
    char out[2048 + 64];
    if (log_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        vsnprintf(out, sizeof(out), fmt, ap);
        syslog(prio[level < 0 ? 0 : level > 3 ? 3 : level], "level=%s %s", level_name(level), out);
    } else {
        /* one pass: the message is formatted right after its prefix */
        size_t n = (size_t)line_prefix(out, sizeof(out), level);
        int m = vsnprintf(out + n, sizeof(out) - n - 1, fmt, ap);
        if (m > 0)
            n += (size_t)m < sizeof(out) - n - 1 ? (size_t)m : sizeof(out) - n - 2;
        out[n++] = '\n';
        emit(out, n, defer);
    }
    errno = saved;
}

void kr_vlog(int level, const char *fmt, va_list ap)
{
    vlog_to(level, false, fmt, ap);
}

void kr_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(level, false, fmt, ap);
    va_end(ap);
}

void kr_log_defer(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_to(level, true, fmt, ap);
    va_end(ap);
}

const char *kr_logfmt_value(const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    int quote = *in == '\0';
    for (const unsigned char *p = (const unsigned char *)in; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            quote = 1;
    size_t o = 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < cap)                                                                           \
            out[o++] = (c);                                                                        \
    } while (0)
    if (quote)
        PUT('"');
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p == '"' || *p == '\\') {
            PUT('\\');
            PUT((char)*p);
        } else if (*p < ' ' || *p == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('x');
            PUT(hex[*p >> 4]);
            PUT(hex[*p & 15]);
        } else {
            PUT((char)*p);
        }
    }
    if (quote)
        PUT('"');
#undef PUT
    out[o] = '\0';
    return out;
}

#define LOG_PER_S 5
#define LOG_BURST 20

bool kr_log_allowed(struct kr_log_bucket *b, uint64_t *suppressed)
{
    uint64_t now = kr_now_us();
    if (!b->started) {
        b->started = true;
        b->tokens = LOG_BURST;
    } else {
        b->tokens += (double)(now - b->at_us) * LOG_PER_S / 1e6;
        if (b->tokens > LOG_BURST)
            b->tokens = LOG_BURST;
    }
    b->at_us = now;
    if (b->tokens < 1) {
        b->dropped++;
        return false;
    }
    b->tokens -= 1;
    *suppressed = b->dropped;
    b->dropped = 0;
    return true;
}
