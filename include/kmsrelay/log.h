/*
 * log.h - the daemon's log: stderr (default, for systemd's journal and for
 * tests) or syslog. Lines are logfmt (key=value, values quoted when they
 * contain spaces or quotes) so that both people and tools can read them.
 *
 * errno is preserved across every call. kr_log_warn_errno appends
 * strerror(errno). Messages never include secrets: callers pass key names,
 * never key material.
 */
#ifndef KMSRELAY_LOG_H
#define KMSRELAY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kr_log_level { KR_LOG_ERR = 0, KR_LOG_WARN = 1, KR_LOG_INFO = 2, KR_LOG_DEBUG = 3 };

/* ident: program name; use_syslog: 0 stderr, 1 syslog; level: most verbose
 * level written. May be called again (reload). */
void kr_log_init(const char *ident, int use_syslog, int level);
void kr_log_set_level(int level);
int kr_log_level(void);

/* A free-form line: level=... msg="..." is added around it. The format is
 * printf's; the result should itself be logfmt pairs, e.g.
 *   kr_log(KR_LOG_INFO, "event=host_state host=%s from=%s to=%s reason=%s", ...) */
void kr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kr_vlog(int level, const char *fmt, va_list ap);

/*
 * Buffered lines (the activation log at thousands of lines a second):
 * kr_log_defer() is kr_log() for a line that may wait a few milliseconds.
 * After kr_log_buffer_start(), deferred stderr lines of the calling thread
 * (the event loop) are appended to an in-memory buffer instead of being
 * written one write() each. A batch is written by the 32nd line (so a
 * SIGKILL loses at most 31 lines), and `kick(arg)` is called when the
 * buffer turns non-empty so that the loop can arm a short timer that calls
 * kr_log_flush() (the relay: 10 ms). Every other line (kr_log, other
 * threads) is written at once, after what is buffered (order is kept). The
 * buffer is also written when it fills up, by kr_log_buffer_stop(), and at
 * exit() (atexit): a graceful stop (SIGTERM is handled on the loop) loses
 * nothing. Syslog lines are never buffered.
 */
void kr_log_defer(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kr_log_buffer_start(void (*kick)(void *arg), void *arg);
/* Writes what is buffered; buffering goes on. Any thread. */
void kr_log_flush(void);
/* Writes what is buffered and stops buffering. */
void kr_log_buffer_stop(void);

/* Quotes a value for logfmt into out: bare when it has no space, '=', '"'
 * or control characters, else "..." with \" and \\ escapes; control bytes
 * become \xNN. Always NUL-terminates; truncates to cap. Returns out. */
const char *kr_logfmt_value(const char *in, char *out, size_t cap);

/* A rate limit for warnings a peer can trigger at will (bad PDUs, refused
 * connections, EMFILE): 5 lines a second with bursts of 20. A bucket is
 * zero-initialised; one per kind of line. kr_log_allowed() is true when a
 * line may be written, and then *suppressed gets the lines dropped since
 * the last one written. Event loop only (no locking). */
struct kr_log_bucket {
    uint64_t at_us, dropped;
    double tokens;
    bool started;
};
bool kr_log_allowed(struct kr_log_bucket *b, uint64_t *suppressed);

#endif
