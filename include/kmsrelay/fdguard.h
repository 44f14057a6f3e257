/*
 * fdguard.h - the daemon's descriptor budget and the guard every listener
 * (clients, metrics, control) accepts through.
 *
 * Budget: at start the soft RLIMIT_NOFILE is raised to the hard limit
 * (kr_fd_raise_limit). A reserve of descriptors (kr_fd_set_reserve: backend
 * pools, health checks, the store, logs, DNS) is never given to accepted
 * connections: a connection whose descriptor number reaches into the
 * reserve is closed at once (descriptors are allocated lowest first, so an
 * accepted fd numbered N means N descriptors are in use). Each listener has
 * its own connection cap; kr_fd_budget_check says whether the caps and the
 * reserve fit in the limit.
 *
 * Guards: out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) a listener
 * pauses for KR_FD_PAUSE_MS instead of spinning on a socket that stays
 * readable, with one log line per episode. For evhttp listeners
 * (kr_fd_guard_evhttp) the guard also counts the open connections (the
 * connection's close callback tells when evhttp frees it),
 * stops accepting at the cap (connections wait in the backlog, nothing is
 * refused) and closes a connection whose request header block is not
 * complete within the header deadline: evhttp's own timeout restarts with
 * every byte, so a client sending one byte a second would hold a slot
 * forever.
 *
 * Ownership: a guard belongs to its listener's owner, which frees it after
 * the evhttp server (kr_fd_guard_free); the per-connection state goes
 * with the connection (its close callback).
 */
#ifndef KR_FDGUARD_H
#define KR_FDGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#define KR_FD_PAUSE_MS 250
#define KR_METRICS_MAX_CONNS 32 /* metrics listener's connection cap */
#define KR_CONTROL_MAX_CONNS 32 /* control socket's connection cap */
#define KR_FD_RESERVE_BASE 64   /* store, logs, DNS, signals, listeners */

/* Raises the soft RLIMIT_NOFILE to the hard limit (once; logged when it
 * changed). Returns the soft limit in force. */
uint64_t kr_fd_raise_limit(void);
/* The soft limit in force (read once, then cached). */
uint64_t kr_fd_limit(void);
void kr_fd_set_reserve(uint64_t n);
uint64_t kr_fd_reserve(void);
/* true when an accepted descriptor leaves the reserve intact. */
bool kr_fd_within_budget(int fd);
/* Room for client connections: limit - reserve - the other listeners'
 * caps (0 when they do not even fit). */
uint64_t kr_fd_client_room(void);

/* true (and *suppressed set) when a rate-limited warning may be logged:
 * a few lines a second across the whole process. */
bool kr_fd_log_allowed(uint64_t *suppressed);

struct kr_fd_guard;
/* Puts an evhttp server's bound socket under a guard: connection cap,
 * header deadline (ms, 0 = none), pause on EMFILE. `inner` (may be NULL)
 * makes the connection's socket bufferevent as evhttp_set_bevcb would
 * (without BEV_OPT_CLOSE_ON_FREE: evhttp closes the fd). Sets the evhttp's
 * bevcb; the connections' close callbacks are the guard's. NULL when out of memory. */
struct kr_fd_guard *kr_fd_guard_evhttp(struct evhttp *http, struct evhttp_bound_socket *bound,
                                       const char *name, uint32_t cap, uint64_t header_ms,
                                       struct bufferevent *(*inner)(struct event_base *, void *),
                                       void *inner_arg);
/* Open connections (evhttp guards). */
uint32_t kr_fd_guard_open(const struct kr_fd_guard *g);
/* Teardown: kr_fd_guard_stop before evhttp_free (which frees the listener
 * first, then the connections, whose close callbacks still report to the guard),
 * kr_fd_guard_free after it. */
void kr_fd_guard_stop(struct kr_fd_guard *g);
void kr_fd_guard_free(struct kr_fd_guard *g);

#endif
