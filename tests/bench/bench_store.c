/*
 * bench_store.c - the store's performance targets: 1,000,000 pins inserted
 * in group commits of 1000, then open time with a million pins (target
 * < 1 s), random lookup latency (target p99 < 20 µs), walk and sweep cost,
 * and the size on disk. Not built by CMake and not run by ctest; build it
 * optimised, without sanitizers:
 *
 *   cc -O2 -D_GNU_SOURCE -std=c11 -Iinclude -Isrc $(ls src/store/[a-z]*.c) \
 *      src/util/err.c tests/bench/bench_store.c -llmdb -lpthread -o /tmp/bench_store
 *   /tmp/bench_store [-n PINS] [-b BATCH] [-l LOOKUPS] [-w PUTS_PER_S] [-d DIR] [-k]
 *
 * Without -d it works in a fresh mkdtemp() dir under /tmp and removes it
 * afterwards (-k keeps it). With -w the lookups run while another thread
 * puts new pins at that rate and the store's own flusher commits every
 * second (the daemon's steady state). Numbers are for a warm page cache.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* CMID i: pseudo-random like real GUIDs, reproducible from i. */
static void cmid_of(uint64_t i, uint8_t cmid[16])
{
    uint64_t x = i * 2654435761u, a = splitmix(&x), b = splitmix(&x);
    memcpy(cmid, &a, 8);
    memcpy(cmid + 8, &b, 8);
}

static void mk_pin(uint64_t i, int64_t now, struct kr_pin *p)
{
    memset(p, 0, sizeof(*p));
    cmid_of(i, p->cmid);
    snprintf(p->host, sizeof(p->host), "kms-%02u.corp.example.com", (unsigned)(i % 8));
    p->first_seen = now - (int64_t)(i % 86400);
    p->last_seen = now;
    memset(p->app_id, 0x55, 16);
    memset(p->kms_id, 0x66, 16);
    char ws[80];
    snprintf(ws, sizeof(ws), "WS-%07llu.corp.example.com", (unsigned long long)i);
    kr_pin_note_name(p, ws, now);
    p->is_vm = (uint8_t)(i & 1);
    p->license_status = 1;
    p->ver_major = 6;
    p->last_count = 50;
    p->n_policy = 25;
    p->skew_s = (int32_t)(i % 7) - 3;
    p->activations = 1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int count_cb(const struct kr_pin *p, void *ctx)
{
    (*(size_t *)ctx)++;
    return 0;
}

struct writer {
    struct kr_store *s;
    uint64_t first, rate, done;
    atomic_int stop;
};

/* Puts new pins at about `rate` per second, in bursts every millisecond. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct kr_pin p;
    double t0 = now_s();
    while (!atomic_load(&w->stop)) {
        uint64_t due = (uint64_t)((now_s() - t0) * (double)w->rate);
        for (; w->done < due; w->done++) {
            mk_pin(w->first + w->done, 1700000000, &p);
            kr_store_pin_put(w->s, &p);
        }
        usleep(1000);
    }
    return NULL;
}

static struct kr_store *must_open(const char *dir, const struct kr_store_opts *o)
{
    struct kr_store *s = NULL;
    const char *why = "";
    int rc = kr_store_open(dir, o, &s, &why);
    if (rc) {
        fprintf(stderr, "open: %s (%s)\n", kr_strerror(rc), why);
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    size_t n = 1000000, batch = 1000, lookups = 100000, wrate = 0;
    const char *dir = NULL;
    int keep = 0, opt;
    while ((opt = getopt(argc, argv, "n:b:l:w:d:k")) != -1) {
        if (opt == 'n')
            n = strtoul(optarg, NULL, 10);
        else if (opt == 'b')
            batch = strtoul(optarg, NULL, 10);
        else if (opt == 'l')
            lookups = strtoul(optarg, NULL, 10);
        else if (opt == 'w')
            wrate = strtoul(optarg, NULL, 10);
        else if (opt == 'd')
            dir = optarg;
        else if (opt == 'k')
            keep = 1;
        else
            return 2;
    }
    char tmp[] = "/tmp/kr-bench-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmp)))
        return 1;
    struct kr_store_opts o = {0};
    o.map_size = (uint64_t)4 << 30;
    int64_t now = 1700000000;

    /* 1. Insert (skipped when -d names a store that has them already). */
    struct kr_store *s = must_open(dir, &o);
    struct kr_pin p, q;
    double t0 = now_s(), put_s = 0;
    size_t i0 = kr_store_pin_count(s) >= n ? n : 0;
    for (size_t i = i0; i < n; i++) {
        mk_pin(i, now, &p);
        double a = now_s();
        if (kr_store_pin_put(s, &p) != 0)
            return 1;
        put_s += now_s() - a;
        if ((i + 1) % batch == 0 && kr_store_flush(s, NULL) != 0)
            return 1;
    }
    if (kr_store_flush(s, NULL) != 0)
        return 1;
    double ins = now_s() - t0;
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    printf("insert: %zu pins in batches of %zu: %.2f s (%.0f pins/s); put %.2f us avg\n", n, batch,
           ins, (double)n / ins, put_s * 1e6 / (double)n);
    printf("commits: %llu, avg %.2f ms, max %.2f ms; map used %.1f MiB\n",
           (unsigned long long)st.commits,
           (double)st.commit_us_total / 1000.0 / (double)(st.commits ? st.commits : 1),
           (double)st.commit_us_max / 1000.0, (double)st.map_used / 1048576.0);
    kr_store_close(s);

    /* 2. Reopen. */
    if (wrate)
        o.flush_interval_ms = 1000;
    t0 = now_s();
    s = must_open(dir, &o);
    double open_s = now_s() - t0;
    printf("reopen (open only) with %zu pins: %.3f ms\n", kr_store_pin_count(s), open_s * 1e3);

    /* 3. Random lookups (90% hits, 10% misses). */
    struct writer w = {s, (uint64_t)n + 5000000, wrate, 0, 0};
    pthread_t wt;
    if (wrate && pthread_create(&wt, NULL, writer_main, &w) != 0)
        return 1;
    uint64_t *lat = malloc(lookups * sizeof(*lat));
    uint64_t rnd = 42;
    size_t hits = 0;
    for (size_t i = 0; i < lookups; i++) {
        uint64_t r = splitmix(&rnd);
        uint64_t id = (r % 10 == 0) ? n + r % 1000000 : r % n;
        uint8_t cmid[16];
        cmid_of(id, cmid);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        uint8_t app[16];
        memset(app, 0x55, 16); /* the application of every benchmark pin */
        int rc = kr_store_pin_get(s, cmid, app, &q);
        clock_gettime(CLOCK_MONOTONIC, &b);
        hits += rc == 0;
        lat[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)(b.tv_nsec - a.tv_nsec);
        if (wrate && i % 100 == 99)
            usleep(5000); /* spread the lookups over several commits */
    }
    if (wrate) {
        atomic_store(&w.stop, 1);
        pthread_join(wt, NULL);
        kr_store_stats(s, &st);
        printf("concurrent writer: %llu puts, %llu commits so far, commit max %.2f ms\n",
               (unsigned long long)w.done, (unsigned long long)st.commits,
               (double)st.commit_us_max / 1000.0);
    }
    qsort(lat, lookups, sizeof(*lat), cmp_u64);
    printf("lookups: %zu (%zu hits): p50 %.2f us, p99 %.2f us, p99.9 %.2f us, max %.2f us\n",
           lookups, hits, (double)lat[lookups / 2] / 1e3, (double)lat[lookups * 99 / 100] / 1e3,
           (double)lat[lookups * 999 / 1000] / 1e3, (double)lat[lookups - 1] / 1e3);
    free(lat);

    /* 4. A full walk (reports) and one expiry step. */
    size_t seen = 0;
    t0 = now_s();
    kr_store_pin_iter(s, count_cb, &seen);
    printf("walk: %zu pins in %.2f s\n", seen, now_s() - t0);
    size_t queued;
    bool wrapped;
    t0 = now_s();
    kr_store_expire(s, now - 45 * 86400, 1000, &queued, &wrapped);
    printf("expiry step (scan 1000): %.3f ms\n", (now_s() - t0) * 1e3);
    kr_store_close(s);

    /* 5. Size on disk. */
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) == 0)
        printf("data.mdb: %.1f MiB apparent, %.1f MiB allocated (%.0f bytes/pin)\n",
               (double)sb.st_size / 1048576.0, (double)sb.st_blocks * 512 / 1048576.0,
               (double)sb.st_blocks * 512 / (double)n);
    if (!keep)
        nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
