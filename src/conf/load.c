/*
 * load.c - reads a libconfig file over the defaults: every setting is
 * checked for its name (unknown names are errors: a typo must not pass
 * silently), its type and its range, and every problem is reported as
 * "file:line: message", all of them, not just the first.
 *
 * @include paths are relative to the directory of the main file, so a
 * config can be checked from any working directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/conf-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

static const char *const host_keys[] = {"name", "address", "weight", "priority", "state"};
#define N_HOST_KEYS (sizeof(host_keys) / sizeof(host_keys[0]))
#define KR_CONF_FILE_MAX (1024 * 1024) /* bytes of the main file */

/* Edit distance, for "did you mean" on unknown names (short names only). */
static unsigned distance(const char *a, const char *b)
{
    unsigned row[40], la = (unsigned)strlen(a), lb = (unsigned)strlen(b);
    if (la >= 40 || lb >= 40)
        return 99;
    for (unsigned j = 0; j <= lb; j++)
        row[j] = j;
    for (unsigned i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = i;
        for (unsigned j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void unknown(struct conf_ctx *x, const config_setting_t *s, const char *scope,
                    const char *const *known, size_t n)
{
    const char *name = config_setting_name(s), *best = NULL;
    unsigned bd = 3;
    for (size_t i = 0; i < n; i++) {
        unsigned d = distance(name, known[i]);
        if (d < bd) {
            bd = d;
            best = known[i];
        }
    }
    if (best)
        CONF_ERR_AT(x, s, "unknown setting \"%s\"%s%s (did you mean \"%s\"?)", name,
                    scope ? " in " : "", scope ? scope : "", best);
    else
        CONF_ERR_AT(x, s, "unknown setting \"%s\"%s%s", name, scope ? " in " : "",
                    scope ? scope : "");
}

/* Known names in one scope: table entries of that group plus extras. */
static size_t scope_names(const char *group, const char **out, size_t cap)
{
    static const char *const groups[] = CONF_GROUPS;
    size_t n = 0;
    for (size_t i = 0; i < conf_n_opts && n < cap; i++)
        if ((group == NULL) == (conf_opts[i].group == NULL) &&
            (!group || strcmp(group, conf_opts[i].group) == 0))
            out[n++] = conf_opts[i].name;
    if (!group) {
        for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]) && n < cap; i++)
            out[n++] = groups[i];
        if (n + 2 <= cap) {
            out[n++] = "listen";
            out[n++] = "hosts";
        }
    } else if (strcmp(group, "clients") == 0 && n < cap) {
        out[n++] = "allow";
    } else if (strcmp(group, "peers") == 0 && n < cap) {
        out[n++] = "relays";
    }
    for (const char *const *l = conf_dns_lists(group); *l && n < cap; l++)
        out[n++] = *l;
    return n;
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Pass 1: names and shapes of everything in the file. */
static void check_names(struct conf_ctx *x)
{
    static const char *const groups[] = CONF_GROUPS;
    const char *names[64];
    config_setting_t *root = config_root_setting(x->cfg);
    size_t n = scope_names(NULL, names, 64);

    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        if (!name_in(name, names, n)) {
            unknown(x, s, NULL, names, n);
            continue;
        }
        if (!name_in(name, groups, sizeof(groups) / sizeof(groups[0])))
            continue;
        if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
            CONF_ERR_AT(x, s, "%s: expected a group { ... }, not %s", name, conf_type_name(s));
            continue;
        }
        const char *inner[64];
        size_t m = scope_names(name, inner, 64);
        for (int j = 0; j < config_setting_length(s); j++) {
            config_setting_t *k = config_setting_get_elem(s, (unsigned)j);
            if (!name_in(config_setting_name(k), inner, m))
                unknown(x, k, name, inner, m);
        }
    }
}

/* A string, or an array/list of strings: calls fn for each element. */
static void for_each_string(struct conf_ctx *x, config_setting_t *s, const char *path, size_t max,
                            void (*fn)(struct conf_ctx *, config_setting_t *, const char *, size_t))
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        fn(x, s, config_setting_get_string(s), 0);
        return;
    }
    if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
        CONF_ERR_AT(x, s, "%s: expected a list of strings [ \"...\", ... ], not %s", path,
                    conf_type_name(s));
        return;
    }
    int n = config_setting_length(s);
    if ((size_t)n > max) {
        CONF_ERR_AT(x, s, "%s: %d entries, at most %zu are allowed", path, n, max);
        return;
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(el) != CONFIG_TYPE_STRING) {
            CONF_ERR_AT(x, el, "%s[%d]: expected a string, not %s", path, i, conf_type_name(el));
            continue;
        }
        fn(x, el, config_setting_get_string(el), (size_t)i);
    }
}

static void one_listen(struct conf_ctx *x, config_setting_t *s, const char *text, size_t i)
{
    const char *why = "";
    if (kr_addr_parse(text, AF_INET6, &x->c->listen[x->c->n_listen], &why) != 0) {
        CONF_ERR_AT(x, s, "listen: \"%s\": %s", text, why);
        return;
    }
    x->c->n_listen++;
}

static void one_allow(struct conf_ctx *x, config_setting_t *s, const char *text, size_t i)
{
    const char *why = "";
    if (kr_cidr_parse(text, &x->c->allow[x->c->n_allow], &why) != 0) {
        CONF_ERR_AT(x, s, "clients.allow: \"%s\": %s", text, why);
        return;
    }
    x->c->n_allow++;
}

/* A host's name and address, both required; once the name is known, path
 * (for later messages) becomes "host NAME". 0 or -1 (reported). */
static int host_identity(struct conf_ctx *x, config_setting_t *g, struct kr_conf_host *h,
                         char *path, size_t cap)
{
    config_setting_t *s;
    const char *str, *why = "";
    int ok = 1;

    if (!(s = config_setting_get_member(g, "name"))) {
        CONF_ERR_AT(x, g, "%s: missing name", path);
        ok = 0;
    } else if (!(str = conf_get_string(x, s, "host name"))) {
        ok = 0;
    } else if (!conf_name_ok(str)) {
        CONF_ERR_AT(x, s,
                    "host name \"%s\" must be 1 to 63 printable characters without spaces, "
                    "quotes, '=', ',' or '\\'",
                    str);
        ok = 0;
    } else {
        snprintf(h->name, sizeof(h->name), "%s", str);
        snprintf(path, cap, "host %s", h->name);
    }
    if (!(s = config_setting_get_member(g, "address"))) {
        CONF_ERR_AT(x, g, "%s: missing address", path);
        ok = 0;
    } else if (!(str = conf_get_string(x, s, "address"))) {
        ok = 0;
    } else if (conf_host_target_parse(str, h, &why) != 0) {
        CONF_ERR_AT(x, s, "%s: address \"%s\": %s", path, str, why);
        ok = 0;
    } else {
        const char *f;
        int l;
        conf_where(x, s, &f, &l);
        snprintf(h->addr_at, sizeof(h->addr_at), "%s:%d", f, l);
    }
    return ok ? 0 : -1;
}

/* weight or priority when the host sets it: a whole number in [lo, hi].
 * 0 (out untouched when absent) or -1 (reported). */
static int host_number(struct conf_ctx *x, config_setting_t *g, const char *key, const char *path,
                       uint64_t lo, uint64_t hi, uint32_t *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    uint64_t v;
    if (!s)
        return 0;
    if (conf_get_number(x, s, key, &v) != 0)
        return -1;
    if (v < lo || v > hi) {
        CONF_ERR_AT(x, s, "%s: %s %llu is out of range (%llu to %llu)", path, key,
                    (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The admin state when the host sets it. 0 or -1 (reported). */
static int host_state(struct conf_ctx *x, config_setting_t *g, const char *path, uint8_t *out)
{
    config_setting_t *s = config_setting_get_member(g, "state");
    const char *str;
    if (!s)
        return 0;
    if (!(str = conf_get_string(x, s, "state")))
        return -1;
    if (kr_admin_parse(str) < 0) {
        CONF_ERR_AT(x, s, "%s: state \"%s\" is not one of ready, drain, maint, retired", path, str);
        return -1;
    }
    *out = (uint8_t)kr_admin_parse(str);
    return 0;
}

static void load_host(struct conf_ctx *x, config_setting_t *g, int idx)
{
    struct kr_conf_host h;
    char path[16 + KR_CONF_NAME_MAX];
    int ok = 1;

    memset(&h, 0, sizeof(h));
    h.weight = 1;
    h.admin = KR_ADMIN_UNSET;
    snprintf(path, sizeof(path), "hosts[%d]", idx);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        CONF_ERR_AT(x, g, "%s: expected a group { name = ...; address = ...; }, not %s", path,
                    conf_type_name(g));
        return;
    }
    for (int j = 0; j < config_setting_length(g); j++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
        if (!name_in(config_setting_name(s), host_keys, N_HOST_KEYS)) {
            unknown(x, s, "a host", host_keys, N_HOST_KEYS);
            ok = 0;
        }
    }
    /* Every check runs, so that one pass reports every problem. */
    ok &= host_identity(x, g, &h, path, sizeof(path)) == 0;
    ok &= host_number(x, g, "weight", path, 1, 10000, &h.weight) == 0;
    ok &= host_number(x, g, "priority", path, 0, 1000, &h.priority) == 0;
    ok &= host_state(x, g, path, &h.admin) == 0;
    if (ok)
        x->c->hosts[x->c->n_hosts++] = h;
}

static void load_lists(struct conf_ctx *x)
{
    config_setting_t *s;

    if ((s = config_lookup(x->cfg, "listen"))) {
        x->c->n_listen = 0;
        for_each_string(x, s, "listen", KR_CONF_MAX_LISTEN, one_listen);
    }
    s = config_lookup(x->cfg, "clients");
    if (s && config_setting_type(s) == CONFIG_TYPE_GROUP &&
        (s = config_setting_get_member(s, "allow"))) {
        x->c->n_allow = 0;
        for_each_string(x, s, "clients.allow", KR_CONF_MAX_ACL, one_allow);
    }
    if ((s = config_lookup(x->cfg, "hosts"))) {
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_LIST && !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
            CONF_ERR_AT(x, s,
                        "hosts: expected a list ( { name = ...; address = ...; }, ... ), not %s",
                        conf_type_name(s));
        } else if (config_setting_length(s) > KR_CONF_MAX_HOSTS) {
            CONF_ERR_AT(x, s, "hosts: %d hosts, at most %d are allowed", config_setting_length(s),
                        KR_CONF_MAX_HOSTS);
        } else {
            for (int i = 0; i < config_setting_length(s); i++)
                load_host(x, config_setting_get_elem(s, (unsigned)i), i);
        }
    }
}

/* conf_check asks where a setting was written. */
static void locate(void *vx, const char *path, int index, const char **file, int *line)
{
    struct conf_ctx *x = vx;
    char buf[96];
    config_setting_t *s = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    while (!s && buf[0]) {
        s = config_lookup(x->cfg, buf);
        char *dot = strrchr(buf, '.');
        if (!s && dot)
            *dot = '\0';
        else if (!s)
            buf[0] = '\0';
    }
    if (s && index >= 0 && (config_setting_is_aggregate(s)) && index < config_setting_length(s))
        s = config_setting_get_elem(s, (unsigned)index);
    conf_where(x, s, file, line);
}

int conf_load_tree(config_t *cfg, const char *source, struct kr_conf **out, struct conf_errs *e)
{
    struct conf_ctx x = {cfg, source, e, NULL};
    unsigned before = e->n;

    x.c = malloc(sizeof(*x.c));
    if (!x.c) {
        conf_err(e, source, 0, "out of memory");
        return KR_ECONFIG;
    }
    kr_conf_defaults(x.c);
    snprintf(x.c->source, sizeof(x.c->source), "%s", source);

    check_names(&x);
    for (size_t i = 0; i < conf_n_opts; i++)
        conf_load_scalar(&x, &conf_opts[i]);
    x.c->log_debug = x.c->log_level == KR_LOG_DEBUG;
    load_lists(&x);
    conf_load_dns(&x);
    conf_load_peers(&x);
    /* Also after errors: every problem is reported in one pass. */
    conf_check(x.c, e, locate, &x, false);
    if (e->n != before) {
        free(x.c);
        return KR_ECONFIG;
    }
    *out = x.c;
    return 0;
}

int kr_conf_load(const char *path, struct kr_conf **out, char *errbuf, size_t errlen)
{
    struct conf_errs e;
    config_t cfg;
    char dir[KR_CONF_PATH_MAX];
    int rc;

    conf_errs_init(&e, errbuf, errlen);
    if (!path || !*path || strlen(path) >= KR_CONF_PATH_MAX) {
        conf_err(&e, path ? path : "(null)", 0, "configuration path is empty or too long");
        return KR_ECONFIG;
    }
    /* libconfig reads a directory without complaint: say what it is. */
    FILE *f = fopen(path, "r");
    if (!f) {
        conf_err(&e, path, 0, "cannot open: %s", strerror(errno));
        return KR_ECONFIG;
    }
    /* Bounded: libconfig takes seconds over a multi-megabyte line (issue 11). */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > KR_CONF_FILE_MAX) {
        conf_err(&e, path, 0,
                 "the file is %lld bytes; a configuration file may be at most %d "
                 "bytes (1 MiB)",
                 (long long)st.st_size, KR_CONF_FILE_MAX);
        fclose(f);
        return KR_ECONFIG;
    }
    fclose(f);

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");

    config_init(&cfg);
    config_set_include_dir(&cfg, dir);
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        const char *file = config_error_file(&cfg) ? config_error_file(&cfg) : path;
        const char *text = config_error_text(&cfg) ? config_error_text(&cfg) : "cannot read";
        conf_err(&e, file, config_error_line(&cfg), "%s", text);
        config_destroy(&cfg);
        return KR_ECONFIG;
    }
    rc = conf_load_tree(&cfg, path, out, &e);
    config_destroy(&cfg);
    return rc;
}
