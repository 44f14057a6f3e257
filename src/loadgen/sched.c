/*
 * sched.c - which activation runs next, and on which connection slot.
 *
 * Activations are split into one queue per target (a client always uses the
 * target its CMID hashes to) keeping their global order. A free slot serves
 * the target whose next activation is the oldest.
 *
 * Closed loop (default): everything is released at once and the -c slots
 * stay busy. A new connection reserves the next --per-conn activations of its
 * target, so connections carry exactly that many requests, as vlmcs -n does;
 * if the connection breaks, the rest of its batch goes on a new connection.
 *
 * Open loop (--rate R): activation i is released at t0 + i/R and taken one
 * at a time; a connection that may carry more requests waits idle for the
 * next release of its target and is closed when a free slot is needed for
 * another target.
 */
#include <stdlib.h>
#include <string.h>

#include "loadgen/run.h"

static int32_t slot_id(const struct lg_run *run, const struct lg_slot *s)
{
    return (int32_t)(s - run->slots);
}

static void push(struct lg_run *run, int32_t *head, struct lg_slot *s)
{
    s->next = *head;
    *head = slot_id(run, s);
}

static struct lg_slot *pop(struct lg_run *run, int32_t *head)
{
    struct lg_slot *s = &run->slots[*head];
    *head = s->next;
    return s;
}

static void idle_push(struct lg_run *run, struct lg_slot *s)
{
    s->state = LG_S_IDLE;
    s->prev = -1;
    s->next = run->idle_head[s->target];
    if (s->next >= 0)
        run->slots[s->next].prev = slot_id(run, s);
    run->idle_head[s->target] = slot_id(run, s);
    run->n_idle++;
}

static void idle_remove(struct lg_run *run, struct lg_slot *s)
{
    if (s->prev >= 0)
        run->slots[s->prev].next = s->next;
    else
        run->idle_head[s->target] = s->next;
    if (s->next >= 0)
        run->slots[s->next].prev = s->prev;
    run->n_idle--;
}

static int eligible(const struct lg_run *run, unsigned t)
{
    return run->qpos[t] < run->qlen[t] && run->queue[t][run->qpos[t]] < run->released;
}

/* The target whose next activation is the oldest released one, or -1. */
static int next_target(const struct lg_run *run)
{
    int best = -1;
    for (unsigned t = 0; t < run->cfg->n_targets; t++)
        if (eligible(run, t) &&
            (best < 0 || run->queue[t][run->qpos[t]] < run->queue[best][run->qpos[best]]))
            best = (int)t;
    return best;
}

/* Reserves the slot's next batch on target t: --per-conn activations in
 * closed loop, one under --rate (later ones are not released yet). */
static void reserve(struct lg_run *run, struct lg_slot *s, unsigned t)
{
    uint32_t n = run->us_per_act > 0 ? 1 : run->cfg->per_conn;
    uint32_t left = run->qlen[t] - run->qpos[t];
    s->target = t;
    s->bpos = run->qpos[t];
    s->bend = s->bpos + (n < left ? n : left);
    run->qpos[t] = s->bend;
}

/* The next activation of the slot's batch, and its latency start. */
static uint32_t take(struct lg_run *run, struct lg_slot *s, uint64_t *t_lat0)
{
    uint32_t act = run->queue[s->target][s->bpos++];
    uint64_t now = kr_now_us();
    if (run->us_per_act > 0) {
        uint64_t due = run->t0_us + (uint64_t)((double)act * run->us_per_act);
        if (now > due + 1000)
            run->st->late_starts++;
        *t_lat0 = due;
    } else {
        *t_lat0 = now;
    }
    return act;
}

/* One step of work: returns 0 when nothing more can start now. */
static int pump_one(struct lg_run *run)
{
    uint64_t t_lat0;
    struct lg_slot *s;

    if (run->resume_head >= 0) { /* a broken connection's batch goes on */
        s = pop(run, &run->resume_head);
        uint32_t act = take(run, s, &t_lat0);
        lg_slot_start(s, act, t_lat0);
        return 1;
    }
    int t = next_target(run);
    if (t < 0)
        return 0;
    if (run->idle_head[t] >= 0) {
        s = &run->slots[run->idle_head[t]];
        idle_remove(run, s);
        reserve(run, s, (unsigned)t);
        uint32_t act = take(run, s, &t_lat0);
        lg_slot_send(s, act, t_lat0);
        return 1;
    }
    if (run->free_head < 0 && run->n_idle > 0) {
        /* Every slot is busy or idle on another target: recycle one. */
        for (unsigned u = 0; u < run->cfg->n_targets; u++) {
            if (run->idle_head[u] >= 0) {
                s = &run->slots[run->idle_head[u]];
                idle_remove(run, s);
                lg_slot_close(s);
                push(run, &run->free_head, s);
                break;
            }
        }
    }
    if (run->free_head < 0)
        return 0;
    s = pop(run, &run->free_head);
    reserve(run, s, (unsigned)t);
    uint32_t act = take(run, s, &t_lat0);
    lg_slot_start(s, act, t_lat0);
    return 1;
}

/* Starts whatever can start. Re-entrant calls (a connect that fails at once
 * finishes its activation inside lg_slot_start) only ask for another round,
 * so the stack stays flat however many connects fail. */
static void pump(struct lg_run *run)
{
    if (run->pumping) {
        run->repump = 1;
        return;
    }
    run->pumping = 1;
    do {
        run->repump = 0;
        while (pump_one(run))
            ;
    } while (run->repump);
    run->pumping = 0;
    if (run->finished == run->cfg->activations) {
        if (run->rate_ev)
            evtimer_del(run->rate_ev);
        event_base_loopbreak(run->base);
    }
}

void lg_sched_done(struct lg_run *run, struct lg_slot *s, int reusable)
{
    uint64_t t_lat0;

    run->finished++;
    if (s->bpos < s->bend) {
        if (reusable) {
            uint32_t act = take(run, s, &t_lat0);
            lg_slot_send(s, act, t_lat0);
        } else {
            push(run, &run->resume_head, s);
        }
    } else if (reusable && run->us_per_act > 0 && run->qpos[s->target] < run->qlen[s->target]) {
        idle_push(run, s);
    } else {
        lg_slot_close(s);
        push(run, &run->free_head, s);
    }
    pump(run);
}

void lg_sched_idle_lost(struct lg_run *run, struct lg_slot *s)
{
    /* lg_slot_close already ran and set LG_S_FREE; the links still hold. */
    idle_remove(run, s);
    push(run, &run->free_head, s);
    pump(run);
}

/* --rate: releases what is due and sleeps until the next activation is. */
static void release(struct lg_run *run)
{
    uint64_t now = kr_now_us();
    double due = (double)(now - run->t0_us) / run->us_per_act + 1.0;
    uint32_t n = run->cfg->activations;
    uint32_t r = due >= (double)n ? n : (uint32_t)due;
    if (r > run->released)
        run->released = r;
    if (run->released < n) {
        uint64_t next = run->t0_us + (uint64_t)((double)run->released * run->us_per_act);
        uint64_t wait = next > now ? next - now : 0;
        struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
        evtimer_add(run->rate_ev, &tv);
    }
}

static void rate_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lg_run *run = arg;
    (void)fd;
    (void)what;
    release(run);
    pump(run);
}

static int build_queues(struct lg_run *run)
{
    const struct lg_config *cfg = run->cfg;
    for (uint32_t a = 0; a < cfg->activations; a++)
        run->qlen[run->clients[lg_client_of(run, a)].target]++;
    for (unsigned t = 0; t < cfg->n_targets; t++) {
        run->queue[t] = malloc((run->qlen[t] ? run->qlen[t] : 1) * sizeof(uint32_t));
        if (!run->queue[t])
            return -1;
        run->qlen[t] = 0;
    }
    for (uint32_t a = 0; a < cfg->activations; a++) {
        unsigned t = run->clients[lg_client_of(run, a)].target;
        run->queue[t][run->qlen[t]++] = a;
    }
    return 0;
}

static struct event_base *new_base(int precise)
{
    struct event_config *ec = event_config_new();
    if (!ec)
        return NULL;
    if (precise) /* --rate needs sub-millisecond timers */
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b;
}

int lg_run_all(const struct lg_config *cfg, struct lg_client *clients, struct lg_results *res)
{
    int rc = -1;
    struct lg_run *run = calloc(1, sizeof(*run));
    if (!run)
        goto out;
    run->cfg = cfg;
    run->clients = clients;
    run->res = res;
    run->st = lg_results_stats(res);
    run->free_head = -1;
    run->resume_head = -1;
    for (unsigned t = 0; t < LG_MAX_TARGETS; t++)
        run->idle_head[t] = -1;
    run->base = new_base(cfg->rate > 0);
    run->n_slots = cfg->concurrency < cfg->activations ? cfg->concurrency : cfg->activations;
    run->slots = calloc(run->n_slots, sizeof(*run->slots));
    if (!run->base || !run->slots || build_queues(run) != 0)
        goto out;
    for (unsigned i = run->n_slots; i-- > 0;) {
        if (lg_slot_init(run, &run->slots[i]) != 0)
            goto out;
        push(run, &run->free_head, &run->slots[i]);
    }
    run->t0_us = kr_now_us();
    run->st->t_start_us = run->t0_us;
    if (cfg->rate > 0) {
        run->us_per_act = 1e6 / cfg->rate;
        if (!(run->rate_ev = evtimer_new(run->base, rate_cb, run)))
            goto out;
        release(run);
    } else {
        run->released = cfg->activations;
    }
    pump(run);
    if (run->finished < cfg->activations)
        event_base_dispatch(run->base);
    run->st->t_end_us = kr_now_us();
    rc = run->finished == cfg->activations ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "kms-loadgen: event loop ended with %u of %u activations done\n",
                run->finished, cfg->activations);
out:
    if (rc != 0 && run && !run->base)
        fprintf(stderr, "kms-loadgen: cannot set up the event loop\n");
    if (run) {
        for (unsigned i = 0; run->slots && i < run->n_slots; i++)
            lg_slot_deinit(&run->slots[i]);
        free(run->slots);
        if (run->rate_ev)
            event_free(run->rate_ev);
        if (run->base)
            event_base_free(run->base);
        for (unsigned t = 0; t < LG_MAX_TARGETS; t++)
            free(run->queue[t]);
        free(run);
    }
    return rc;
}
