/*
 * proxy-internal.h - helpers shared by the data-path files of the relay
 * (front.c, forward.c, route.c, backend.c) and nothing else.
 *
 * Ownership: every pointer argument is borrowed for the call.
 */
#ifndef KR_PROXY_INTERNAL_H
#define KR_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "relay/relay.h"

/* RPC status codes (rpc_s_* / rpc_x_*) the relay sends in fault PDUs. */
#define KR_RPC_S_SERVER_UNAVAILABLE 0x000006BAu /* no host could answer: fail over */
#define KR_RPC_S_SERVER_TOO_BUSY 0x000006BBu    /* per-source rate limit */
#define KR_RPC_X_BAD_STUB_DATA 0x000006F7u      /* request stub does not decode */

/* route.c: the index of the host with this HRW key and name, or -1. `name`
 * may be NULL to match on the key alone. */
/* Registers `ev` for `what` (EV_READ and/or EV_WRITE, persistent; 0 =
 * none) on fd, with *cur the set registered now; no call when unchanged. */
void relay_io_want(struct event_base *base, struct event *ev, short *cur, evutil_socket_t fd,
                   short what, event_callback_fn cb, void *arg);

/* Sends what is left of a blocked write (buf + *off, *len bytes) and
 * advances *off and *len by what the socket took. 0 (progress, or it would
 * block), -1 when the connection is gone. */
int relay_send_pending(evutil_socket_t fd, const uint8_t *buf, uint16_t *off, uint16_t *len);

int route_host_index(const struct kr_relay *r, uint64_t key, const char *name);
/* route.c: the host by name, or -1. */
int route_host_by_name(const struct kr_relay *r, const char *name);
/* route.c: true while host `h` is remembered as refusing `kms_id`. */
bool route_refuses(const struct kr_host *h, const uint8_t kms_id[16], uint64_t now_us);
/* route.c: the store failed (rc, what); raises the alarm once per episode. */
void route_store_trouble(struct kr_relay *r, int rc, const char *what);

/* front.c: true when a rate-limited warning may be logged now (at most a
 * few lines per second for the whole relay); *suppressed gets the number
 * of lines dropped since the last one that was allowed. */
bool front_log_allowed(uint64_t *suppressed);

#endif
