/*
 * jlog.h - the stub host's JSON lines log: one compact JSON object per
 * line, fully buffered for speed (tens of thousands of lines per second,
 * no per-line flush or fsync), flushed by the caller once a second and at
 * exit so that tests can read it.
 *
 * Ownership: jlog_open() allocates; jlog_close() flushes, closes the file
 * unless it is stdout/stderr, and frees. jlog_write() takes the reference
 * to `obj`.
 */
#ifndef KR_STUBHOST_JLOG_H
#define KR_STUBHOST_JLOG_H

#include <stddef.h>

#include <jansson.h>

struct jlog;

/* path NULL = stderr, "-" = stdout, otherwise appended to. NULL on failure
 * (errno set). */
struct jlog *jlog_open(const char *path);
void jlog_close(struct jlog *l);

/* Writes `obj` as one line and releases it. NULL obj is ignored. */
void jlog_write(struct jlog *l, json_t *obj);
/* Flushes when something was written since the last flush. */
void jlog_flush(struct jlog *l);

/* "2026-11-21T07:07:37.123Z" (wall clock, UTC). */
void jlog_timestamp(char out[32]);

/* Sets obj[key] to a string, or to null when `s` is NULL or not UTF-8. */
void jlog_set_str(json_t *obj, const char *key, const char *s);

#endif
