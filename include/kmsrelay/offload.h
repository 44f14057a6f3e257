/*
 * offload.h - the one way kmsrelay runs blocking work off the event loop: a
 * work function on its own worker thread, its completion delivered on the
 * event loop (through an event on a pipe the worker writes when it
 * returns), and cancellation.
 *
 * Used by the control API's jobs (walks over the pins), the periodic DNS
 * audit (blocking lookups and probes) and the pin gauges of /metrics.
 *
 *   o = kr_offload_start(base, work, done, arg);
 *     worker thread:  work(o, arg)   (checks kr_offload_cancelled(o))
 *     event loop:     done(arg)      (after work returned; then o is freed)
 *   kr_offload_cancel(o)             (loop: ask to stop, wait for work to
 *                                     return, free; done is not called)
 *
 * Threads: kr_offload_start and kr_offload_cancel run on the loop thread;
 * work must touch only what it was given (thread-safe objects and private
 * copies). Ownership: the offload owns its thread, pipe and event; `arg`
 * stays the caller's.
 */
#ifndef KMSRELAY_OFFLOAD_H
#define KMSRELAY_OFFLOAD_H

#include <stdbool.h>

struct event_base;
struct kr_offload;

typedef void (*kr_offload_work_fn)(struct kr_offload *o, void *arg);
typedef void (*kr_offload_done_fn)(void *arg);

/* Starts work on a new thread. NULL when no thread, pipe or event could be
 * made (errno set; nothing runs and done is never called). */
struct kr_offload *kr_offload_start(struct event_base *base, kr_offload_work_fn work,
                                    kr_offload_done_fn done, void *arg);

/* For the work function: has the loop asked it to stop? */
bool kr_offload_cancelled(const struct kr_offload *o);
/* The same flag for code that polls an int (non-zero = stop), read with
 * __atomic_load_n (the audit's collect options take one). */
const int *kr_offload_cancel_flag(const struct kr_offload *o);

/* Asks the work to stop, waits until it returns and frees the offload;
 * done is not called. NULL is fine. Never call it from done. */
void kr_offload_cancel(struct kr_offload *o);

#endif
