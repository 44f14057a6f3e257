/*
 * server.c - kms-stubhost start-up, signals and teardown (main.c parses the
 * options). See stubhost.h for the file map and `kms-stubhost --help`.
 */
#include "stubhost/stubhost.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/rand.h>

#include "kmsrelay/err.h"
#include "stubhost/cmidset.h"
#include "stubhost/jlog.h"

#define US_PER_DAY (86400.0 * 1e6)

static void log_event(struct stub_host *h, json_t *o)
{
    char ts[32];
    jlog_timestamp(ts);
    jlog_set_str(o, "ts", ts);
    jlog_write(h->log, o);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    stub_conn_accept(arg, fd, sa, salen);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stub_listener *l = arg;
    evconnlistener_enable(l->lev);
}

/* Out of descriptors and the like: pause accepting for a moment rather
 * than spin on a listening socket that stays readable. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct stub_listener *l = arg;
    json_t *o = json_object();
    jlog_set_str(o, "event", "accept_error");
    jlog_set_str(o, "addr", l->addr);
    jlog_set_str(o, "why", strerror(errno));
    log_event(l->host, o);
    evconnlistener_disable(lev);
    struct timeval tv = {0, 100000};
    evtimer_add(l->resume, &tv);
}

static int listen_one(struct stub_host *h, struct stub_listener *l, const char *text)
{
    struct kr_addr a;
    const char *why = NULL;
    if (kr_addr_parse(text, AF_INET, &a, &why) != 0) {
        fprintf(stderr, "kms-stubhost: --listen %s: %s\n", text, why);
        return -1;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
    if (a.ss.ss_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    l->host = h;
    l->lev = evconnlistener_new_bind(h->base, accept_cb, l, flags, 1024, (struct sockaddr *)&a.ss,
                                     (int)a.len);
    l->resume = evtimer_new(h->base, resume_cb, l);
    if (!l->lev || !l->resume) {
        fprintf(stderr, "kms-stubhost: cannot listen on %s: %s\n", text, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, accept_error_cb);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &sl) != 0) {
        fprintf(stderr, "kms-stubhost: getsockname: %s\n", strerror(errno));
        return -1;
    }
    l->port = kr_addr_port((struct sockaddr *)&ss);
    kr_addr_format((struct sockaddr *)&ss, l->addr);

    json_t *o = json_object();
    jlog_set_str(o, "event", "listening");
    jlog_set_str(o, "addr", l->addr);
    jlog_set_str(o, "name", h->conf.name);
    jlog_set_str(o, "epid", h->conf.epid);
    log_event(h, o);
    return 0;
}

/* Written to FILE.tmp and renamed, so a reader never sees half a number. */
static int write_port_file(const char *path, uint16_t port)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%u\n", (unsigned)port) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "kms-stubhost: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct stub_host *h = arg;
    if (sig == SIGUSR1) {
        h->hang = !h->hang;
        json_t *o = json_object();
        jlog_set_str(o, "event", "hang");
        json_object_set_new(o, "on", json_boolean(h->hang));
        log_event(h, o);
        jlog_flush(h->log);
        return;
    }
    event_base_loopexit(h->base, NULL);
}

/* Once a second: make the log readable and drop CMIDs that left the window. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stub_host *h = arg;
    jlog_flush(h->log);
    cmid_db_expire(h->db, kr_now_us());
}

static int setup(struct stub_host *h)
{
    uint64_t seed = 0;
    uint32_t assoc = 0;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1 ||
        RAND_bytes((unsigned char *)&assoc, sizeof(assoc)) != 1) {
        fprintf(stderr, "kms-stubhost: no randomness\n");
        return -1;
    }
    h->next_assoc = assoc;
    h->hang = h->conf.hang;
    h->log = jlog_open(h->conf.log_path);
    if (!h->log) {
        fprintf(stderr, "kms-stubhost: cannot open log %s: %s\n", h->conf.log_path,
                strerror(errno));
        return -1;
    }
    h->db = cmid_db_new((uint64_t)(h->conf.window_days * US_PER_DAY), seed);
    h->base = event_base_new();
    h->listeners = calloc(h->conf.n_listen, sizeof(*h->listeners));
    if (!h->db || !h->base || !h->listeners) {
        fprintf(stderr, "kms-stubhost: out of memory\n");
        return -1;
    }
    h->sig_term = evsignal_new(h->base, SIGTERM, signal_cb, h);
    h->sig_int = evsignal_new(h->base, SIGINT, signal_cb, h);
    h->sig_usr1 = evsignal_new(h->base, SIGUSR1, signal_cb, h);
    h->tick = event_new(h->base, -1, EV_PERSIST, tick_cb, h);
    struct timeval one = {1, 0};
    if (!h->sig_term || !h->sig_int || !h->sig_usr1 || !h->tick ||
        evsignal_add(h->sig_term, NULL) || evsignal_add(h->sig_int, NULL) ||
        evsignal_add(h->sig_usr1, NULL) || evtimer_add(h->tick, &one)) {
        fprintf(stderr, "kms-stubhost: cannot set up events\n");
        return -1;
    }
    for (size_t i = 0; i < h->conf.n_listen; i++) {
        h->n_listeners = i + 1;
        if (listen_one(h, &h->listeners[i], h->conf.listen[i]) != 0)
            return -1;
    }
    jlog_flush(h->log);
    if (h->conf.port_file && write_port_file(h->conf.port_file, h->listeners[0].port) != 0)
        return -1;
    return 0;
}

static void teardown(struct stub_host *h)
{
    stub_conns_free_all(h);
    for (size_t i = 0; i < h->n_listeners; i++) {
        if (h->listeners[i].lev)
            evconnlistener_free(h->listeners[i].lev);
        if (h->listeners[i].resume)
            event_free(h->listeners[i].resume);
    }
    free(h->listeners);
    struct event *evs[] = {h->sig_term, h->sig_int, h->sig_usr1, h->tick};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    if (h->base)
        event_base_free(h->base);
    cmid_db_free(h->db);
    jlog_close(h->log);
    stub_config_free(&h->conf);
}

int stub_run(struct stub_config *conf)
{
    struct stub_host h;
    memset(&h, 0, sizeof(h));
    h.conf = *conf; /* takes it: teardown frees it */
    memset(conf, 0, sizeof(*conf));
    signal(SIGPIPE, SIG_IGN);
    if (setup(&h) != 0) {
        teardown(&h);
        return 1;
    }
    event_base_dispatch(h.base);

    json_t *o = json_object();
    jlog_set_str(o, "event", "exit");
    json_object_set_new(o, "requests", json_integer((json_int_t)h.n_requests));
    json_object_set_new(o, "connections", json_integer((json_int_t)h.n_conns));
    log_event(&h, o);
    teardown(&h);
    return 0;
}
