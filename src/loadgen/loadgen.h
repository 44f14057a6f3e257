/*
 * loadgen.h - internal interfaces of kms-loadgen, the simulated KMS client
 * population used by the integration tests and benchmarks.
 *
 * Layout of the program (one concern per file):
 *   options.c     command line -> struct lg_config (and --help)
 *   products.c    the product table, --mix and --products parsing
 *   population.c  the seeded client population (CMIDs, products, names)
 *   pdu.c         building bind / alter_context / request PDUs and checking
 *                 bind_ack / response PDUs; pure, no I/O
 *   conn.c        one connection slot: the libevent state machine
 *   sched.c       which activation goes on which slot, closed loop or --rate
 *   results.c     recording outcomes: global stats and per-client tallies
 *   report.c      the text summary and --json
 *
 * Ownership: one struct lg_run owns everything for the whole process run;
 * nothing is freed before exit except connections (bufferevents), which are
 * the only per-activation allocation.
 */
#ifndef KR_LOADGEN_H
#define KR_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/rpc.h"

#define LG_MAX_TARGETS 64
#define LG_MAX_ACTIVATIONS 0xFFFFFFF0u /* indices and latencies fit in u32 */
#define LG_WS_SUFFIX ".example.test"

/* --ndr */
enum lg_ndr_mode { LG_NDR32 = 0, LG_NDR_WIN8 = 1, LG_NDR64 = 2, LG_NDR_MIXED = 3 };

/* Error kinds, in report order. */
enum lg_kind {
    LG_K_CONNECT = 0,
    LG_K_TIMEOUT,
    LG_K_CLOSED,
    LG_K_PROTOCOL,
    LG_K_MISMATCH,
    LG_K_BIND_REJECTED,
    LG_K_HRESULT,
    LG_K_FAULT,
    LG_K_COUNT
};
const char *lg_kind_name(enum lg_kind k);

/* One row of the product table. GUIDs are parsed once at start-up. */
struct lg_product {
    const char *name;
    const char *desc;
    uint16_t ver_major;
    const char *app_text, *sku_text, *kms_text;
    uint32_t n_policy;
    uint8_t app_id[16], sku_id[16], kms_id[16];
};

extern struct lg_product lg_products[];
extern const unsigned lg_n_products;

/* Parses the GUID texts of the table; returns 0 or -1 (a table typo). */
int lg_products_init(void);
/* Index of a product by name, or -1. */
int lg_product_find(const char *name);
void lg_products_print(FILE *f);
/* "v6:60,v5:25,v4:15" -> weights[0..2] for V4..V6. Returns 0 or -1 with *why. */
int lg_mix_parse(const char *text, unsigned weights[3], const char **why);
/* "win10,office2016" -> bit mask over lg_products. Returns 0 or -1 with *why
 * naming the unknown product (static buffer). */
int lg_products_parse(const char *text, uint32_t *mask, const char **why);

struct lg_config {
    struct kr_addr targets[LG_MAX_TARGETS];
    char target_text[LG_MAX_TARGETS][KR_ADDRSTRLEN];
    unsigned n_targets;
    struct kr_addr source; /* --source: local address to bind before connecting */
    int have_source;
    uint32_t activations;
    unsigned concurrency;
    uint32_t clients; /* 0 until resolved (default = activations) */
    uint64_t seed;
    uint8_t (*fixed_cmids)[16]; /* owned, n_fixed entries */
    uint32_t n_fixed;
    unsigned mix[3];       /* weights of V4, V5, V6 */
    uint32_t product_mask; /* allowed products */
    enum lg_ndr_mode ndr;
    uint32_t per_conn;
    double vm_ratio;
    const char *ws_prefix; /* borrowed from argv */
    uint32_t skew_clients;
    int64_t skew_seconds;
    uint32_t clone_clients;
    uint32_t dual_office;  /* machines activating win10 and office2016 with one CMID */
    uint8_t prev_cmid[16]; /* --prev-cmid: previous CMID in every request, or zero */
    uint32_t timeout_ms;
    double rate;        /* 0 = closed loop */
    uint32_t *allow_hr; /* owned */
    unsigned n_allow;
    const char *json_path;    /* borrowed from argv */
    const char *latency_path; /* --latency-file, borrowed from argv */
    int quiet;
    int verbose;
    int list_products;
};

/* Parses argv. Returns 0 to run, 1 when the program should exit 0 (--help,
 * --list-products done), 2 on a usage error (message already printed). */
int lg_options_parse(int argc, char **argv, struct lg_config *cfg);
void lg_config_free(struct lg_config *cfg);
/* app.c: the whole run after option parsing; takes *cfg (frees it). The
 * exit status: 0 every activation ok, 1 errors, 2 an output cannot open. */
int lg_main(struct lg_config *cfg);

/* A simulated client and what happened to it. */
struct lg_client {
    uint8_t cmid[16];
    uint8_t product; /* index into lg_products */
    uint8_t vm;
    uint8_t target;
    uint8_t skewed;
    uint32_t ws_index; /* workstation = prefix + ws_index + LG_WS_SUFFIX */
    /* results */
    uint32_t activations, ok, refused, errors;
    uint32_t last_count;
    int32_t last_epid; /* interned ePID id, -1 when none answered */
    int32_t tally;     /* head of this client's tally list (results.c), -1 */
};

/* Builds cfg->clients clients. Returns the array (caller frees) or NULL. */
struct lg_client *lg_population_new(const struct lg_config *cfg);
/* The target index a CMID maps to (FNV-1a of the 16 wire bytes, mod n). */
unsigned lg_target_of(const uint8_t cmid[16], unsigned n_targets);

/* Deterministic per-purpose randomness derived from the seed. */
uint64_t lg_mix64(uint64_t x);
static inline uint64_t lg_rand(uint64_t seed, uint64_t stream, uint64_t index)
{
    return lg_mix64(seed ^ lg_mix64(stream * 0x9E3779B97F4A7C15ull + index));
}
enum { LG_RS_CMID = 1, LG_RS_VERSION, LG_RS_PRODUCT, LG_RS_VM, LG_RS_IV, LG_RS_NDR };

/* ---- PDUs (pdu.c) ---- */

/* What a connection negotiated. */
struct lg_ctx_state {
    int ndr32_ok; /* NDR32 context 0 accepted */
    int ndr64_ok; /* NDR64 context 1 accepted */
};

/* The bind (or, with alter set, the alter_context offering NDR32 ctx 0 only). */
int lg_pdu_bind(enum lg_ndr_mode mode, int alter, uint32_t call_id, uint8_t *out, size_t cap,
                size_t *len);
/* Number of context items lg_pdu_bind offers. */
unsigned lg_pdu_bind_items(enum lg_ndr_mode mode, int alter);
/* Reads a bind_ack / alter_context_resp answering a PDU that offered
 * `n_offered` items into st (accepted contexts only ever get added).
 * Returns -1 when fine, or the enum lg_kind of the failure with *why set. */
int lg_pdu_bind_ack(const uint8_t *pdu, size_t len, int alter, unsigned n_offered, uint32_t call_id,
                    struct lg_ctx_state *st, const char **why);

/* Everything needed to check the answer to one request. */
struct lg_expect {
    uint32_t call_id;
    uint16_t ctx_id;
    enum kr_ndr ndr;
    uint16_t ver_major;
    uint8_t cmid[16];
    uint64_t request_time;
};

/* Builds the KMS request of client `c` (request time `ft`, IV from `iv_seed`)
 * wrapped in NDR and a request PDU; fills `ex`. */
int lg_pdu_request(const struct lg_config *cfg, const struct lg_client *c, uint64_t ft,
                   uint64_t iv_seed, enum kr_ndr ndr, uint16_t ctx_id, uint32_t call_id,
                   uint8_t *out, size_t cap, size_t *len, struct lg_expect *ex);

struct lg_answer {
    int kind;                    /* -1 answered (see hresult), else enum lg_kind */
    uint32_t hresult;            /* KMS HRESULT when answered */
    uint32_t status;             /* fault status for LG_K_FAULT */
    const char *why;             /* static reason for errors */
    struct kr_kms_response resp; /* valid when answered with hresult 0 */
};
/* Checks one whole PDU against `ex`; returns ans->kind. */
int lg_pdu_answer(const uint8_t *pdu, size_t len, const struct lg_expect *ex,
                  struct lg_answer *ans);

/* ---- results (results.c) ---- */

struct lg_hr_count {
    uint32_t hr;
    uint64_t n;
};

struct lg_stats {
    uint64_t answered_ok; /* HRESULT 0 */
    uint64_t refused;     /* allowed non-zero HRESULT */
    uint64_t errors;
    uint64_t kind[LG_K_COUNT];
    struct lg_hr_count *hr_err, *hr_refused, *faults; /* small dynamic arrays */
    size_t n_hr_err, n_hr_refused, n_faults;
    uint32_t *lat_us; /* one per answered activation */
    uint64_t n_lat;
    int lat_sorted;
    uint64_t connections;
    uint64_t late_starts; /* --rate: activations that waited for a slot */
    uint64_t t_start_us, t_end_us;
};

struct lg_results;
struct lg_results *lg_results_new(const struct lg_config *cfg, struct lg_client *clients);
void lg_results_free(struct lg_results *r);
struct lg_stats *lg_results_stats(struct lg_results *r);
/* Records one finished activation. `ans` NULL for transport errors of `kind`
 * (then `why` explains). latency_us is recorded when the host answered. */
void lg_results_record(struct lg_results *r, uint32_t client_idx, uint32_t act,
                       const struct lg_answer *ans, enum lg_kind kind, const char *why,
                       uint64_t latency_us);
/* Per-client detail for the JSON report. */
const char *lg_results_epid(const struct lg_results *r, int32_t id);
/* Iterates a client's tally: *it starts at c->tally; returns 0 at the end. */
enum lg_tally_tag { LG_T_HRESULT = 0, LG_T_KIND = 1, LG_T_FAULT = 2, LG_T_EPID = 3 };
int lg_results_tally_next(const struct lg_results *r, int32_t *it, int *tag, uint32_t *key,
                          uint32_t *n);

/* ---- report (report.c) ---- */
/* Writes --latency-file: one latency in µs per answered activation, one per
 * line, in completion order (call before lg_report_text, which sorts them).
 * Returns 0 or -1 (errno set). */
int lg_report_latencies(FILE *f, const struct lg_stats *st);
void lg_report_text(FILE *f, const struct lg_config *cfg, struct lg_stats *st);
/* Writes --json; returns 0 or -1 (errno set). */
int lg_report_json(FILE *f, const struct lg_config *cfg, struct lg_stats *st,
                   const struct lg_results *r, const struct lg_client *clients);

/* ---- scheduling and connections (sched.c, conn.c) ---- */

struct lg_run;
/* Runs all activations; returns 0, or -1 on a setup failure (printed). */
int lg_run_all(const struct lg_config *cfg, struct lg_client *clients, struct lg_results *res);

#endif
