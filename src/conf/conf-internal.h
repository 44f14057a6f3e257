/*
 * conf-internal.h - the pieces shared by the src/conf files: the error collector,
 * the table of scalar settings, address helpers, and the load entry point
 * that works on an already parsed libconfig tree (used by kr_conf_load and
 * by the fuzz target, which parses from memory).
 *
 * Nothing here is part of the public contract (include/kmsrelay/conf.h).
 */
#ifndef KR_CONF_INTERNAL_H
#define KR_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include "kmsrelay/conf.h"

/* Collects "file:line: message\n" lines into a caller buffer. Never fails:
 * when the buffer is full, later lines are dropped and a last line says so. */
struct conf_errs {
    char *buf; /* borrowed; may be NULL (count only) */
    size_t cap;
    size_t len;
    unsigned n;
    bool truncated;
};

void conf_errs_init(struct conf_errs *e, char *buf, size_t cap);
/* line <= 0: "file: message". */
void conf_err(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Where a setting was written: the whole-config checks ask for the location
 * of "path" (a dotted setting path) and, for lists, element `index` (-1 for
 * the setting itself). The answer may be *line = 0 when unknown. */
typedef void (*conf_locate_fn)(void *ctx, const char *path, int index, const char **file,
                               int *line);

/* The cross-setting checks shared by kr_conf_load and kr_conf_validate. */
void conf_check(const struct kr_conf *c, struct conf_errs *e, conf_locate_fn loc, void *ctx,
                bool need_hosts);

/* Loads an already-read libconfig tree over the defaults (see kr_conf_load
 * for the contract); `source` names it in messages. */
int conf_load_tree(config_t *cfg, const char *source, struct kr_conf **out, struct conf_errs *e);

/* A backend address: "ip:port", "[v6]:port", or an address without a port
 * (1688 is added). Wildcards and port 0 are refused. */
int conf_host_addr_parse(const char *text, struct kr_addr *out, const char **why);
/* A host's `address`: a numeric one (conf_host_addr_parse) into h->addr,
 * or a DNS name "name[:port]" (1688 by default) into h->addr_name and
 * h->addr_port with h->addr left empty. 0 or KR_EMALF with *why. */
int conf_host_target_parse(const char *text, struct kr_conf_host *h, const char **why);
/* Host names: 1..63 printable ASCII bytes without space, '"', '=', ',' or '\'. */
bool conf_name_ok(const char *name);
/* Same address and port (families compared, v4-mapped not folded). */
bool conf_addr_equal(const struct kr_addr *a, const struct kr_addr *b);

/* What the loader carries around while reading one file. */
struct conf_ctx {
    config_t *cfg;
    const char *source; /* the main file, for settings without a location */
    struct conf_errs *e;
    struct kr_conf *c; /* being filled */
};

/* Where a setting was written (array elements without a line of their own
 * take their parent's). */
void conf_where(const struct conf_ctx *x, const config_setting_t *s, const char **file, int *line);
#define CONF_ERR_AT(x, s, ...)                                                                     \
    do {                                                                                           \
        const char *f_;                                                                            \
        int l_;                                                                                    \
        conf_where((x), (s), &f_, &l_);                                                            \
        conf_err((x)->e, f_, l_, __VA_ARGS__);                                                     \
    } while (0)

/* values.c: one value, type- and range-checked; errors reported at s. */
const char *conf_type_name(const config_setting_t *s); /* "a string", ... */
int conf_get_number(struct conf_ctx *x, const config_setting_t *s, const char *path, uint64_t *v);
int conf_get_units(struct conf_ctx *x, const config_setting_t *s, const char *path, int is_dur,
                   uint64_t *v);
const char *conf_get_string(struct conf_ctx *x, const config_setting_t *s, const char *path);
/* An octal permission mode "0660" (1 to 4 octal digits); 0 or -1. */
int conf_parse_mode(const char *text, uint64_t *out);
/* Loads the table entry o when the file sets it. */
struct conf_opt;
void conf_load_scalar(struct conf_ctx *x, const struct conf_opt *o);

/* One scalar setting of the file (load.c walks this table). */
enum conf_type {
    CT_U32,      /* whole number in [min, max] */
    CT_DUR,      /* duration ("10s"; a bare number is seconds), ms in [min, max] */
    CT_SIZE,     /* size ("256M"; a bare number is bytes), bytes in [min, max] */
    CT_BOOL,     /* true/false, stored as int 0/1 */
    CT_NAME,     /* string, conf_name_ok */
    CT_PATH,     /* non-empty string shorter than KR_CONF_PATH_MAX */
    CT_FAILBACK, /* "never" | "always" */
    CT_TARGET,   /* "stderr" | "syslog" */
    CT_LEVEL,    /* "error" | "warn" | "info" | "debug" */
    CT_MODE,     /* octal permission string "0660", at most 0777 (uint32_t) */
    CT_GROUP,    /* group name or number, or "" for none (KR_CONF_NAME_MAX) */
};

/* One setting, declared once (settings.c). */
struct conf_opt {
    const char *group; /* NULL for the top level */
    const char *name;
    enum conf_type type;
    size_t off; /* into struct kr_conf */
    uint64_t min, max;
    /* The default as written in the file, without quotes ("5s", "1G",
     * "true", "never"); "" for a string setting means none (off). */
    const char *def;
    bool restart;    /* a reload keeps the old value until the next start */
    const char *doc; /* one line, for people reading the table */
};

extern const struct conf_opt conf_opts[];
extern const size_t conf_n_opts;

/* defaults.c: stores o's default into c. 0, or -1 when the table's default
 * text does not parse as o's type (the unit suite checks every entry). */
int conf_default_value(struct kr_conf *c, const struct conf_opt *o);
/* values.c: the words of a keyword type (CT_FAILBACK, CT_TARGET,
 * CT_LEVEL) in the order of their stored values; NULL for other types. */
const char *const *conf_keywords(enum conf_type t, size_t *n);
/* restart.c: whether o has the same value in a and b. */
bool conf_value_equal(const struct conf_opt *o, const struct kr_conf *a, const struct kr_conf *b);

/* dns.c: the lists of the dns group and backend.discover (after the
 * scalars). */
void conf_load_dns(struct conf_ctx *x);
/* Extra list names of a group handled by dns.c ("zones", ...), NULL-ended. */
const char *const *conf_dns_lists(const char *group);

/* peers.c: the peers.relays list, and its checks (called by conf_check). */
void conf_load_peers(struct conf_ctx *x);
void conf_check_peers(const struct kr_conf *c, struct conf_errs *e, conf_locate_fn loc, void *ctx);

/* Setting names that are lists or groups handled by hand (not in conf_opts). */
#define CONF_GROUPS                                                                                \
    {                                                                                              \
        "clients", "backend", "routing", "store", "health", "log", "metrics", "dns", "control",    \
            "peers"                                                                                \
    }

#endif
