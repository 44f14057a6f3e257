/*
 * bench_route.c - kmsrelayd's routing lookup, measured in process with the
 * daemon's own code: loads a kmsrelayd configuration, creates the relay
 * (kr_relay_create: opens the pin store in state_dir, the listeners, the
 * host table) and times kr_route_plan() - the pin lookup in LMDB plus the
 * weighted-rendezvous ranking of the hosts - for random CMIDs, 90% of them
 * pinned in a store that bench_store filled (same CMID generator), 10% not.
 * The event loop is never run, so no packet is sent; hosts stay UNKNOWN,
 * which the router treats as eligible when no host is UP.
 *
 * Not built by CMake; tests/bench/run builds it optimised against the
 * Release kr_core:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tests/bench/bench_route.c \
 *      BUILD/src/libkr_core.a $(pkg-config --libs libevent_core libevent_extra \
 *      ldns lmdb libconfig jansson libcrypto) -lpthread -lm -o /tmp/bench_route
 *   /tmp/bench_route -c kmsrelayd.conf [-n PINS_IN_STORE] [-l LOOKUPS]
 *
 * Output: one line "create_ms=... lookups=... hits=... p50_us=... p99_us=...
 * p999_us=... max_us=..." (logfmt, parsed by tests/bench/bench.py).
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/log.h"
#include "kmsrelay/store.h"
#include "relay/relay.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Must stay identical to bench_store.c: the pins it wrote are found by it. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void cmid_of(uint64_t i, uint8_t cmid[16])
{
    uint64_t x = i * 2654435761u, a = splitmix(&x), b = splitmix(&x);
    memcpy(cmid, &a, 8);
    memcpy(cmid + 8, &b, 8);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    size_t n = 1000000, lookups = 200000;
    int opt;
    while ((opt = getopt(argc, argv, "c:n:l:")) != -1) {
        if (opt == 'c')
            conf_path = optarg;
        else if (opt == 'n')
            n = strtoul(optarg, NULL, 10);
        else if (opt == 'l')
            lookups = strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    if (!conf_path || n == 0 || lookups == 0) {
        fprintf(stderr, "usage: bench_route -c CONFIG [-n PINS_IN_STORE] [-l LOOKUPS]\n");
        return 2;
    }
    kr_log_init("bench_route", 0, KR_LOG_WARN);

    static char errbuf[8192];
    struct kr_conf *conf = NULL;
    if (kr_conf_load(conf_path, &conf, errbuf, sizeof(errbuf)) != 0 ||
        kr_conf_validate(conf, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "bench_route: %s", errbuf);
        free(conf);
        return 1;
    }
    struct event_base *base = event_base_new();
    struct kr_relay *r = NULL;
    struct kr_store *store = NULL;
    const char *why = NULL;
    uint64_t t0 = now_ns(); /* store open included, as before the daemon object */
    if (kr_store_open(conf->state_dir, NULL, &store, &why) != 0) {
        fprintf(stderr, "bench_route: store %s: %s\n", conf->state_dir, why ? why : "cannot open");
        free(conf);
        return 1;
    }
    if (!base || kr_relay_create(base, conf, store, &r, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "bench_route: %s\n", errbuf);
        kr_store_close(store);
        free(conf);
        return 1;
    }
    double create_ms = (double)(now_ns() - t0) / 1e6;

    uint64_t *lat = malloc(lookups * sizeof(*lat));
    if (!lat)
        return 1;
    struct kr_kms_request kreq;
    struct kr_plan plan;
    struct kr_pin pin;
    memset(&kreq, 0, sizeof(kreq));
    kreq.ver_major = 6;
    memset(kreq.app_id, 0x55, 16); /* what bench_store's pins carry */
    memset(kreq.kms_id, 0x66, 16);
    kreq.n_policy = 25;
    uint64_t rnd = 4242;
    size_t hits = 0, planned = 0;
    for (size_t i = 0; i < lookups; i++) {
        uint64_t x = splitmix(&rnd);
        uint64_t id = (x % 10 == 0) ? n + x % 1000000 : x % n;
        cmid_of(id, kreq.cmid);
        uint64_t a = now_ns();
        kr_route_plan(r, &kreq, &plan, &pin);
        lat[i] = now_ns() - a;
        hits += plan.have_pin;
        planned += plan.n > 0;
    }
    qsort(lat, lookups, sizeof(*lat), cmp_u64);
    printf("create_ms=%.3f lookups=%zu hits=%zu planned=%zu p50_us=%.2f p99_us=%.2f p999_us=%.2f "
           "max_us=%.2f\n",
           create_ms, lookups, hits, planned, (double)lat[lookups / 2] / 1e3,
           (double)lat[lookups * 99 / 100] / 1e3, (double)lat[lookups * 999 / 1000] / 1e3,
           (double)lat[lookups - 1] / 1e3);
    free(lat);
    kr_relay_destroy(r);
    for (int i = 0; i < 8; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    kr_store_close(store);
    free(conf); /* the relay borrowed it */
    return 0;
}
