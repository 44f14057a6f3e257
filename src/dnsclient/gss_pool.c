/*
 * gss_pool.c - the daemon's GSS-TSIG sessions, kept between requests (see
 * gss.h): one TKEY negotiation then many signed messages per server,
 * instead of one per message (0.2-0.8 s each, and a ticket request to the
 * KDC). Sessions live here only while idle; a worker that takes one owns it
 * until it gives it back, so a session is never used by two threads.
 *
 * Ownership: the pool owns its entries and their idle sessions; the
 * entries outlive clients (a cancelled worker may give back later).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/gss.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

struct pool_ent {
    struct pool_ent *next;
    char key[1024];
    struct kr_gss_sess *idle;
    unsigned failures;
    uint64_t retry_us;
    int rc;
    char err[400];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool_ent *head;

static void make_key(const struct kr_gss_opts *o, char *key, size_t cap)
{
    char as[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&o->server.ss, as);
    snprintf(key, cap, "%s|%s|%s|%s", o->keytab, o->principal, as,
             o->server_name ? o->server_name : "");
}

/* The entry for key, made when absent (NULL: out of memory). Locked. */
static struct pool_ent *entry(const char *key)
{
    for (struct pool_ent *e = head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    struct pool_ent *e = calloc(1, sizeof(*e));
    if (e) {
        snprintf(e->key, sizeof(e->key), "%s", key);
        e->next = head;
        head = e;
    }
    return e;
}

int kr_gss_pool_take(const struct kr_gss_opts *o, struct kr_gss_sess **out, char *err,
                     size_t errlen)
{
    char key[1024];
    make_key(o, key, sizeof(key));
    *out = NULL;
    pthread_mutex_lock(&mu);
    struct pool_ent *e = entry(key);
    if (e && e->idle) {
        *out = e->idle;
        e->idle = NULL;
        pthread_mutex_unlock(&mu);
        return 0;
    }
    uint64_t now = kr_now_us();
    if (e && now < e->retry_us) {
        /* The same text each time: the service logs repeats as repeats. */
        snprintf(err, errlen, "%s (negotiation backing off)", e->err);
        int rc = e->rc;
        pthread_mutex_unlock(&mu);
        return rc;
    }
    pthread_mutex_unlock(&mu);
    int rc = kr_gss_open(o, out, err, errlen); /* blocking, outside the lock */
    pthread_mutex_lock(&mu);
    if ((e = entry(key)) != NULL) {
        if (rc) {
            unsigned n = e->failures < 6 ? e->failures : 6;
            e->failures++;
            e->retry_us = kr_now_us() + (uint64_t)((1u << n) < 60 ? (1u << n) : 60) * 1000000;
            e->rc = rc;
            snprintf(e->err, sizeof(e->err), "%s", err);
        } else {
            e->failures = 0;
            e->retry_us = 0;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void kr_gss_pool_give(const struct kr_gss_opts *o, struct kr_gss_sess *s)
{
    char key[1024];
    if (!s)
        return;
    make_key(o, key, sizeof(key));
    pthread_mutex_lock(&mu);
    struct pool_ent *e = entry(key);
    if (e && !e->idle) {
        e->idle = s;
        s = NULL;
    }
    pthread_mutex_unlock(&mu);
    kr_gss_close(s); /* a second one for the same server (or no memory) */
}

void kr_gss_pool_clear(void)
{
    pthread_mutex_lock(&mu);
    struct pool_ent *e = head;
    head = NULL;
    pthread_mutex_unlock(&mu);
    while (e) {
        struct pool_ent *next = e->next;
        kr_gss_close(e->idle);
        free(e);
        e = next;
    }
}
