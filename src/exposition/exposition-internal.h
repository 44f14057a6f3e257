/*
 * exposition-internal.h - shared by the src/exposition files:
 *
 *   format.c   writing the text exposition format: HELP/TYPE headers,
 *              label escaping, numbers
 *   render.c   kr_metrics_render(): every metric, in a fixed order
 *   pins.c     pins per host, counted off the event loop
 *   server.c   the evhttp listener: /metrics, and /status (status.h)
 */
#ifndef KR_EXPOSITION_INTERNAL_H
#define KR_EXPOSITION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "exposition/exposition.h"
#include "metrics/counters.h"

/* format.c: one metric family header, then samples. Labels are given as
 * alternating name, value strings ending with NULL. */
/* peers.c: the replication links (nothing when p is NULL). */
struct kr_peers;
void mx_render_peers(const struct kr_peers *p, struct evbuffer *b);

void mx_head(struct evbuffer *b, const char *name, const char *type, const char *help);
void mx_sample(struct evbuffer *b, const char *name, double v, ...);
void mx_sample_u(struct evbuffer *b, const char *name, uint64_t v, ...);

/* pins.c */
struct kr_store;
struct event_base;
/* Starts a count off the loop when the last one is older than the refresh
 * time and none is running; never blocks. Its result arrives on base's loop. */
void mx_pins_refresh(struct event_base *base, struct kr_store *s);
/* Writes kmsrelay_host_pins samples of the last finished count and its
 * timestamp metric. */
void mx_pins_render(struct evbuffer *b);
/* Cancels a running count and waits for it to stop (shutdown, tests). */
void mx_pins_join(void);
/* For the status page: the host's pins in the last finished count (false
 * when it has none there or no count finished yet), and that count's time
 * (unix s, 0 = none yet). */
bool mx_pins_of(const char *host, uint64_t *n);
int64_t mx_pins_when(void);
/* Forgets the last count (tests). */
void mx_pins_reset(void);

#endif
