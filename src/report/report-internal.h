/*
 * report-internal.h - the report builder's working state, shared by its
 * files:
 *
 *   build.c   kr_report_build(): the two walks over the pins
 *   machine.c one machine (CMID) at a time: its pairs come one after the
 *             other in a walk, so per-machine findings (cloned image, clock
 *             skew, stale, CMID chain) are decided once per CMID
 *   tally.c   host and application tables, thresholds per host and app
 *   items.c   one JSON item per finding, the CMID chains, sorting
 *   emit.c    the final document and its warning sentences
 *   fmt.c     times and GUIDs as text, shared with the renderers
 *   csv.c     kr_report_write_csv()
 *   table.c   kr_report_write_table()
 *   relay_hosts.c  kr_report_relay_hosts() (the daemon's host table)
 *
 * Ownership: struct rp owns every json_t it holds and every array; rp_free()
 * releases them. Nothing here is part of the public contract.
 */
#ifndef KR_REPORT_INTERNAL_H
#define KR_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kmsrelay/report.h"
#include "kmsrelay/store.h"

#define RP_APPS 8       /* applications told apart; more ids share the last slot */
#define RP_LICENCE 8    /* licence states 0..6, then "other" */
#define RP_CHAIN_MAX 16 /* CMIDs followed back in one chain */
#define RP_ISO_LEN 24   /* "2026-11-21T07:44:30Z" + NUL */
#define RP_MACH_NAMES 8 /* distinct workstation names kept per machine */

enum rp_list_kind { RP_BELOW, RP_SKEW, RP_CLONED, RP_CHANGED, RP_STALE, RP_NLISTS };

enum rp_count_src { RP_SRC_NONE = 0, RP_SRC_PIN = 1, RP_SRC_HOST = 2 };

/* One (host, application) cell. */
struct rp_ha {
    uint64_t clients;      /* pinned here within the window */
    uint32_t max_policy;   /* highest N_Policy of those clients */
    int64_t latest_seen;   /* most recent successful client (pin fallback) */
    uint32_t latest_count; /* its Count */
    /* resolved after the first walk (tally.c) */
    int src; /* enum rp_count_src */
    uint32_t count, threshold;
    int64_t count_age; /* seconds, -1 unknown */
    bool below;
    json_t *affected; /* array of clients that cannot activate, capped */
    size_t affected_total;
};

struct rp_host {
    char name[KR_PIN_HOST_MAX];
    const struct kr_report_host *in; /* the caller's entry, NULL if only in pins */
    uint64_t clients;
    struct rp_ha ha[RP_APPS];
};

struct rp_app {
    uint8_t id[16];
    uint64_t clients, vm, physical;
    uint64_t licence[RP_LICENCE];
};

struct rp_list {
    json_t *items; /* array, at most max_items */
    size_t total;  /* before the cap */
};

/* The pairs of one CMID, added up while a walk passes them. */
struct rp_mach {
    bool have;
    uint8_t cmid[16];
    uint8_t app_mask;     /* bit per rp_app index */
    int64_t last_seen;    /* the most recent of its pairs */
    struct kr_pin latest; /* the pair seen last (host, workstation shown) */
    bool skewed;
    struct kr_pin skew;                      /* the in-window pair with the largest |skew| */
    bool chained;                            /* some pair names a previous CMID */
    struct kr_pin link;                      /* the latest such pair */
    struct kr_pin_name names[RP_MACH_NAMES]; /* distinct (DNS) names in the window */
    unsigned n_names;
};

/* A pin whose request carried a previous CMID. */
struct rp_link {
    uint8_t cmid[16], prev[16];
};

struct rp {
    struct kr_report_opts o; /* defaults filled in */
    int64_t now, window_start, stale_before;
    const struct kr_report_host *in_hosts;
    size_t n_in_hosts;

    struct rp_app apps[RP_APPS];
    size_t n_apps;
    struct rp_host *hosts;
    size_t n_hosts, cap_hosts;
    uint32_t *hash; /* open addressing: host index + 1, 0 = empty */
    size_t hash_cap;

    struct rp_list lists[RP_NLISTS];
    struct rp_link *links; /* sorted by cmid after the first walk */
    size_t n_links, cap_links;
    uint8_t (*prevs)[16]; /* every links[].prev, sorted */

    struct rp_mach m; /* the machine the walk is in */
    uint64_t pins, clients, vm, physical, machines;
    uint64_t stale_candidates; /* machines idle > stale_s, before chains are known */
    bool second_walk;          /* some cell is below threshold or there are chains */
    int err;                   /* first allocation failure */
};

/* tally.c */
int rp_init(struct rp *x, const struct kr_report_host *hosts, size_t n, int64_t now,
            const struct kr_report_opts *o);
void rp_free(struct rp *x);
/* Index of a host by name, added when absent; -1 on allocation failure. */
int rp_host(struct rp *x, const char *name);
/* Index of an application id, added when absent (the last slot is shared
 * once the table is full). */
int rp_app(struct rp *x, const uint8_t id[16]);
/* Counts, thresholds and below flags of every cell (after the first walk). */
void rp_resolve(struct rp *x);
/* Sorts the hosts by name for output; rp_host() must not be called after. */
void rp_hosts_sort(struct rp *x);

/* items.c */
/* Counts one finding of a kind; true when the list has room for its item
 * (build it only then: a million stale clients must not cost a million
 * JSON objects). */
bool rp_list_room(struct rp *x, int kind);
void rp_list_add(struct rp *x, int kind, json_t *item); /* steals item */
json_t *rp_item_skew(const struct rp *x, const struct rp_mach *m);
json_t *rp_item_cloned(const struct rp *x, const struct rp_mach *m);
json_t *rp_item_stale(const struct rp *x, const struct rp_mach *m);
json_t *rp_item_affected(const struct kr_pin *p);
int rp_link_add(struct rp *x, const struct kr_pin *p);
/* Sorts the links and the prev set; false on allocation failure. */
bool rp_links_index(struct rp *x);
/* True when p heads a chain (it has a prev, and no pin names it as prev). */
bool rp_link_is_head(const struct rp *x, const uint8_t cmid[16]);
/* True when some pin names cmid as its previous CMID (it was replaced). */
bool rp_is_replaced(const struct rp *x, const uint8_t cmid[16]);
json_t *rp_item_changed(const struct rp *x, const struct rp_mach *m);

/* machine.c */
/* Adds a pair to x->m; when it starts a new CMID, the previous machine is
 * finished first with `end` (walk 1 or walk 2's findings). */
void rp_mach_add(struct rp *x, const struct kr_pin *p, void (*end)(struct rp *x));
/* Walk 1's per-machine findings: cloned image, clock skew, stale count. */
void rp_mach_end1(struct rp *x);
/* Walk 2's: stale (unless replaced by a newer CMID), CMID chain. */
void rp_mach_end2(struct rp *x);
/* Sorts each list by host, workstation, cmid. */
void rp_lists_sort(struct rp *x);

/* emit.c */
json_t *rp_emit(struct rp *x);

/* fmt.c */
void rp_iso(int64_t t, char out[RP_ISO_LEN]);
/* Application display name: "Windows" ... or the GUID text. */
const char *rp_app_text(const uint8_t id[16], char buf[40]);
json_t *rp_guid_json(const uint8_t id[16]);
json_t *rp_iso_json(int64_t t);
/* Licence state key for LicenseStatus 0..6, "other" above. */
const char *rp_licence_name(unsigned i);
/* obj[key] as a string / integer, with fallbacks for missing members. */
const char *rp_str(const json_t *obj, const char *key);
long long rp_int(const json_t *obj, const char *key, long long dflt);

#endif
