/*
 * run.h - the running load: connection slots (conn.c) and the scheduler that
 * feeds them activations (sched.c). Private to src/loadgen.
 *
 * A slot is one of the -c parallel connections. Its bufferevent lives from
 * connect to close; the slot itself, its timer and all buffers live for the
 * whole run, so an activation allocates nothing but the bufferevent.
 */
#ifndef KR_LOADGEN_RUN_H
#define KR_LOADGEN_RUN_H

#include <event2/event.h>

#include "loadgen/loadgen.h"

enum lg_slot_state {
    LG_S_FREE = 0, /* no connection */
    LG_S_BINDING,  /* connect + bind sent, waiting for bind_ack */
    LG_S_ALTERING, /* alter_context sent */
    LG_S_WAITING,  /* request sent */
    LG_S_IDLE,     /* connected, bound, nothing outstanding (--rate only) */
};

struct lg_slot {
    struct lg_run *run;
    struct bufferevent *bev;
    struct event *timer;
    enum lg_slot_state state;
    int connected;
    unsigned target;
    enum lg_ndr_mode mode; /* resolved: never LG_NDR_MIXED */
    struct lg_ctx_state ctx;
    uint32_t done;   /* requests answered on this connection */
    uint32_t act;    /* the activation in progress */
    uint64_t t_lat0; /* latency start (µs, monotonic) */
    struct lg_expect ex;
    /* Closed loop: the activations reserved for this connection are
     * queue[target][bpos..bend) (--per-conn of them, fewer at the end). */
    uint32_t bpos, bend;
    int32_t next, prev; /* free stack / resume stack / idle list links */
};

struct lg_run {
    const struct lg_config *cfg;
    struct lg_client *clients;
    struct lg_results *res;
    struct lg_stats *st;
    struct event_base *base;
    struct lg_slot *slots;
    unsigned n_slots;
    int32_t free_head;
    int32_t resume_head; /* slots whose batch needs a new connection */
    int32_t idle_head[LG_MAX_TARGETS];
    unsigned n_idle;
    /* Activations per target, in global order; qpos = next to start. */
    uint32_t *queue[LG_MAX_TARGETS];
    uint32_t qlen[LG_MAX_TARGETS], qpos[LG_MAX_TARGETS];
    uint32_t released; /* activations with a lower index may start */
    uint32_t finished;
    uint64_t t0_us;
    double us_per_act; /* --rate: 1e6 / rate; 0 in closed loop */
    struct event *rate_ev;
    int pumping, repump;
    uint8_t tx[KR_RPC_FRAG_MAX];
    uint8_t rx[KR_RPC_FRAG_MAX];
};

/* conn.c */
int lg_slot_init(struct lg_run *run, struct lg_slot *s);
void lg_slot_deinit(struct lg_slot *s);
/* Opens a connection to the target of activation `act` and starts it.
 * Failures are recorded and reported through lg_sched_done. */
void lg_slot_start(struct lg_slot *s, uint32_t act, uint64_t t_lat0);
/* Sends activation `act` on an idle (bound) connection of the same target. */
void lg_slot_send(struct lg_slot *s, uint32_t act, uint64_t t_lat0);
/* Closes the connection, if any; the slot becomes LG_S_FREE. */
void lg_slot_close(struct lg_slot *s);

/* sched.c: a slot finished its activation; `reusable` when the connection is
 * bound and may carry another request. */
void lg_sched_done(struct lg_run *run, struct lg_slot *s, int reusable);
/* An idle connection died (closed by the host); the slot is free again. */
void lg_sched_idle_lost(struct lg_run *run, struct lg_slot *s);

static inline uint32_t lg_client_of(const struct lg_run *run, uint32_t act)
{
    return act % run->cfg->clients;
}

#endif
