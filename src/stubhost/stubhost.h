/*
 * stubhost.h - kms-stubhost, the test double KMS host: its configuration,
 * runtime state and the functions its files share.
 *
 * Files: main.c (options, then stub_run), server.c (start-up, signals,
 * teardown), options.c (command line and --help), epid.c (ePID from the host name), conn.c (one TCP
 * connection: read loop, delays, idle timeout, closing), answer.c (one PDU in, one reply out: bind
 * policy, KMS answers, log line), cmidset.c (client counts), jlog.c (JSON lines log).
 *
 * The stub host answers like a real host, but its responses carry zeroed
 * integrity fields (kr_kms_response_encode never computes them), so it can
 * never activate a real client.
 *
 * Ownership: main() owns the one struct stub_host; the host owns its
 * listeners, connections, CMID sets and log. String pointers in struct
 * stub_config borrow argv unless noted.
 */
#ifndef KR_STUBHOST_STUBHOST_H
#define KR_STUBHOST_STUBHOST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "kmsrelay/kms.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/rpc.h"

#define STUB_DEFAULT_LISTEN "127.0.0.1:1688"
#define STUB_DEFAULT_NAME "stub"
#define STUB_DEFAULT_HWID "3A1C049600B60076"
#define STUB_DEFAULT_IDLE_S 30
#define STUB_DEFAULT_ACT_MIN 120
#define STUB_DEFAULT_RENEW_MIN 10080
#define STUB_DEFAULT_WINDOW_DAYS 30.0
/* Largest reply PDU: a bind_ack with KR_RPC_MAX_CTX results, or a response
 * with a KR_KMS_RESP_MAX message and its NDR64 framing. */
#define STUB_REPLY_MAX 1024
/* Stop processing a connection's input while this much output is queued
 * (a client that sends but never reads must not grow our memory). */
#define STUB_OUTPUT_MAX 65536

struct stub_config {
    const char **listen; /* n_listen addresses (argv strings), default added */
    size_t n_listen;
    const char *port_file;
    const char *name;
    char epid[KR_KMS_EPID_UTF8];
    uint8_t hwid[8];
    int ndr32_only;
    int no_btfn;
    int reject_bind;
    int hang;              /* initial hang mode; SIGUSR1 toggles stub_host.hang */
    uint8_t (*refuse)[16]; /* n_refuse KMS counted ids (allocated) */
    size_t n_refuse;
    unsigned delay_ms;
    unsigned close_after;    /* 0 = never */
    unsigned idle_timeout_s; /* 0 = never */
    uint32_t activation_interval;
    uint32_t renewal_interval;
    double window_days;
    const char *log_path; /* NULL = stderr, "-" = stdout */
};

struct stub_listener {
    struct stub_host *host;
    struct evconnlistener *lev;
    struct event *resume; /* re-enables accepting after EMFILE and friends */
    uint16_t port;        /* actual local port, for sec_addr */
    char addr[KR_ADDRSTRLEN];
};

/* Context ids accepted on one connection, with their transfer syntax. */
struct stub_ctx {
    uint16_t id;
    uint8_t ndr; /* enum kr_ndr */
};

struct stub_conn {
    struct stub_conn *prev, *next;
    struct stub_host *host;
    const struct stub_listener *lst;
    struct bufferevent *bev;
    struct event *timer; /* idle timeout, or the delayed reply when `pending` */
    char peer[KR_ADDRSTRLEN];
    uint32_t assoc_group;
    struct stub_ctx ctx[KR_RPC_MAX_CTX];
    size_t n_ctx;
    unsigned answered;
    int pending;  /* a delayed reply waits in out[] */
    int closing;  /* --close-after reached: flush output, then free */
    int peer_eof; /* the peer half-closed: answer what came, flush, free */
    uint8_t out[STUB_REPLY_MAX];
    size_t out_len;
};

struct jlog;
struct cmid_db;

struct stub_host {
    struct stub_config conf;
    struct event_base *base;
    struct stub_listener *listeners;
    size_t n_listeners;
    struct stub_conn *conns; /* doubly linked */
    struct cmid_db *db;
    struct jlog *log;
    struct event *sig_term, *sig_int, *sig_usr1, *tick;
    int hang;
    uint32_t next_assoc;
    uint64_t n_requests;
    uint64_t n_conns;
};

/* options.c. Parses argv into `conf` (defaults filled in). Returns 0, 1 when
 * --help or --version was printed (exit 0), or -1 after printing an error
 * (exit 2). stub_config_free releases what parsing allocated. */
int stub_options_parse(int argc, char **argv, struct stub_config *conf);
void stub_config_free(struct stub_config *conf);
/* server.c: runs the host until SIGTERM/SIGINT; takes *conf (frees it and
 * zeroes the caller's copy). 0, or 1 when it cannot start. */
int stub_run(struct stub_config *conf);

/* epid.c. A vlmcsd-style ePID derived deterministically from `name`. */
void stub_epid_derive(const char *name, char out[KR_KMS_EPID_UTF8]);
/* 0 when `epid` fits a response (1..63 UTF-16 units), else KR_EINVAL. */
int stub_epid_check(const char *epid, const char **why);

/* conn.c. Takes `fd` (closed on failure). */
void stub_conn_accept(struct stub_listener *lst, int fd, const struct sockaddr *sa, int salen);
/* Frees one connection (NULL-safe) and all of a host's connections. */
void stub_conn_free(struct stub_conn *c);
void stub_conns_free_all(struct stub_host *h);

/*
 * answer.c. Answers one whole PDU (`pdu`, `len` = frag_length, header in
 * `hdr`) received on `c`: writes the reply into `out` (*out_len 0 when there
 * is none) and sets *is_answer when it answers a request (subject to
 * --delay-ms and --close-after). Returns 0, or a negative KR_E* with *why
 * set when the connection must be closed (protocol error or a PTYPE a host
 * does not accept); the caller logs and closes.
 */
int stub_answer_pdu(struct stub_conn *c, const uint8_t *pdu, size_t len,
                    const struct kr_rpc_hdr *hdr, uint8_t out[STUB_REPLY_MAX], size_t *out_len,
                    int *is_answer, const char **why);

#endif
