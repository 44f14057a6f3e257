/*
 * validate.c - checks that span several settings: unique host names and
 * addresses, at least one listener, timeouts that fit inside each other.
 * Shared by the file loader (which knows lines) and kr_conf_validate (for a
 * config built from defaults and the command line).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/units.h"

struct check {
    struct conf_errs *e;
    conf_locate_fn loc;
    void *ctx;
    const char *source;
};

#define AT(k, path, index, ...)                                                                    \
    do {                                                                                           \
        const char *f_ = (k)->source;                                                              \
        int l_ = 0;                                                                                \
        if ((k)->loc)                                                                              \
            (k)->loc((k)->ctx, (path), (index), &f_, &l_);                                         \
        conf_err((k)->e, f_, l_, __VA_ARGS__);                                                     \
    } while (0)

static void dur(uint64_t ms, char *out)
{
    kr_format_duration(ms, out, KR_DURATION_STRLEN);
}

static void check_lists(const struct kr_conf *c, struct check *k, bool need_hosts)
{
    char a[KR_ADDRSTRLEN];

    if (c->n_listen == 0)
        AT(k, "listen", -1, "listen: at least one address is needed");
    for (size_t i = 0; i < c->n_listen; i++)
        for (size_t j = 0; j < i; j++)
            if (conf_addr_equal(&c->listen[i], &c->listen[j])) {
                kr_addr_format((const struct sockaddr *)&c->listen[i].ss, a);
                AT(k, "listen", (int)i, "listen: %s is listed twice", a);
            }
    if (need_hosts && c->n_hosts == 0 && c->n_discover == 0)
        AT(k, "hosts", -1,
           "no backend hosts: add a hosts list to the file, -H name=ip:port, or "
           "backend.discover");
    for (size_t i = 0; i < c->n_hosts; i++) {
        const struct kr_conf_host *h = &c->hosts[i];
        if (!conf_name_ok(h->name))
            AT(k, "hosts", (int)i, "host name \"%s\" is not valid", h->name);
        if (h->weight < 1)
            AT(k, "hosts", (int)i, "host %s: weight must be at least 1", h->name);
        if (h->admin > KR_ADMIN_RETIRED && h->admin != KR_ADMIN_UNSET)
            AT(k, "hosts", (int)i, "host %s: bad state", h->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(h->name, c->hosts[j].name) == 0)
                AT(k, "hosts", (int)i,
                   "host name \"%s\" is used twice (names must be unique: "
                   "they are what pins point to)",
                   h->name);
            else if (h->addr_name[0] && h->addr_port == c->hosts[j].addr_port &&
                     strcasecmp(h->addr_name, c->hosts[j].addr_name) == 0)
                AT(k, "hosts", (int)i, "host %s has the same address %s:%u as host %s", h->name,
                   h->addr_name, h->addr_port, c->hosts[j].name);
            else if (conf_addr_equal(&h->addr, &c->hosts[j].addr)) {
                kr_addr_format((const struct sockaddr *)&h->addr.ss, a);
                AT(k, "hosts", (int)i, "host %s has the same address %s as host %s", h->name, a,
                   c->hosts[j].name);
            }
        }
    }
}

static void check_times(const struct kr_conf *c, struct check *k)
{
    char a[KR_DURATION_STRLEN], b[KR_DURATION_STRLEN];

    if (c->connect_timeout_ms > c->attempt_timeout_ms) {
        dur(c->connect_timeout_ms, a);
        dur(c->attempt_timeout_ms, b);
        AT(k, "backend.connect_timeout", -1,
           "backend.connect_timeout (%s) is longer than backend.attempt_timeout (%s)", a, b);
    }
    if (c->attempt_timeout_ms > c->request_budget_ms) {
        dur(c->attempt_timeout_ms, a);
        dur(c->request_budget_ms, b);
        AT(k, "backend.attempt_timeout", -1,
           "backend.attempt_timeout (%s) is longer than backend.budget (%s)", a, b);
    }
    if (c->resolve_min_ms > c->resolve_max_ms) {
        dur(c->resolve_min_ms, a);
        dur(c->resolve_max_ms, b);
        AT(k, "backend.resolve_min", -1,
           "backend.resolve_min (%s) is longer than backend.resolve_max (%s)", a, b);
    }
    if (c->check_fast_interval_ms > c->check_interval_ms) {
        dur(c->check_fast_interval_ms, a);
        dur(c->check_interval_ms, b);
        AT(k, "health.fast_interval", -1,
           "health.fast_interval (%s) is longer than health.interval (%s)", a, b);
    }
    if (c->check_timeout_ms > c->check_interval_ms) {
        dur(c->check_timeout_ms, a);
        dur(c->check_interval_ms, b);
        AT(k, "health.timeout", -1, "health.timeout (%s) is longer than health.interval (%s)", a,
           b);
    }
    if (c->max_conn_per_source > c->max_connections)
        AT(k, "clients.max_per_source", -1,
           "clients.max_per_source (%u) is larger than clients.max_connections (%u)",
           c->max_conn_per_source, c->max_connections);
    if (c->rate_per_source > 0 && c->burst_per_source < 1)
        AT(k, "clients.burst", -1, "clients.burst must be at least 1");
    if (c->pool_size < 1)
        AT(k, "backend.pool_size", -1, "backend.pool_size must be at least 1");
    if (c->rise < 1 || c->fall < 1)
        AT(k, "health", -1, "health.rise and health.fall must be at least 1");
    if (c->commit_batch < 1)
        AT(k, "store.commit_batch", -1, "store.commit_batch must be at least 1");
    if (c->state_dir[0] == '\0')
        AT(k, "state_dir", -1, "state_dir must not be empty");
    if (c->instance_id[0] == '\0')
        AT(k, "instance_id", -1, "instance_id must not be empty");
    struct kr_addr ma;
    const char *why = "";
    if (c->metrics_listen[0] && kr_addr_parse(c->metrics_listen, AF_INET, &ma, &why) != 0)
        AT(k, "metrics.listen", -1, "metrics.listen: \"%s\": %s", c->metrics_listen, why);
}

void conf_check(const struct kr_conf *c, struct conf_errs *e, conf_locate_fn loc, void *ctx,
                bool need_hosts)
{
    struct check k = {e, loc, ctx, c->source[0] ? c->source : "command line"};
    check_lists(c, &k, need_hosts);
    check_times(c, &k);
    conf_check_peers(c, e, loc, ctx);
}

int kr_conf_validate(const struct kr_conf *c, char *errbuf, size_t errlen)
{
    struct conf_errs e;
    size_t start = errbuf && errlen ? strnlen(errbuf, errlen) : 0;

    /* Append after what is already in errbuf (the contract says appended). */
    if (start >= errlen)
        start = 0;
    conf_errs_init(&e, errbuf ? errbuf + start : NULL, errbuf ? errlen - start : 0);
    conf_check(c, &e, NULL, NULL, true);
    return e.n ? KR_ECONFIG : 0;
}
