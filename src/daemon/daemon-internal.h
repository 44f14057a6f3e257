/*
 * daemon-internal.h - shared by the files of src/daemon:
 *
 *   daemon.c   create / apply / stop / destroy
 *   main.c     kr_daemon_main: load, -n, --report, signals, the loop, reload
 *   state.c    the pin store: open (state_dir created 0750), commit alarms
 *   dnsenv.c   the DNS service's view of the relay (struct kr_dns_env)
 *   notes.c    start-up and reload notes: public listeners, the port file,
 *              multi-line errors as log lines
 *   names.c    backend hosts whose address is a DNS name: their lookups
 *
 * Ownership: struct kr_daemon owns every pointer in it.
 */
#ifndef KR_DAEMON_INTERNAL_H
#define KR_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "control/control.h"
#include "daemon/daemon.h"
#include "dnsservice/dnsservice.h"
#include "peer/peer.h"
#include "kmsrelay/store.h"

struct kr_daemon {
    struct kr_daemon_opts opts;
    struct event_base *base;
    struct kr_conf *conf; /* the configuration in force (owned) */
    struct kr_store *store;
    struct kr_relay *relay; /* borrows store and conf */
    struct kr_dns *dns;     /* borrows the relay through dns_env */
    struct kr_dns_env dns_env;
    struct daemon_names *names;        /* names.c: host names' lookups */
    struct kr_audit_periodic *audit;   /* borrows the store */
    struct kr_metrics_server *metrics; /* NULL when metrics are off */
    struct kr_control *control;        /* NULL when the control socket failed */
    struct kr_peers *peers;            /* NULL when peers.name is not set */
    struct event *commit_timer;        /* state.c */
    bool commit_alarm;
    uint64_t commit_failures_seen;
    struct event *sig_hup, *sig_term, *sig_int, *sig_xcpu, *stop_timer;
    uint64_t stop_deadline_us;
    bool stopping;
    struct kr_offload *reload;     /* main.c: a reload being parsed */
    struct reload_job *reload_job; /* ... and its state */
};

/* main.c: the one reload path, for SIGHUP and POST /v1/reload: the file is
 * read and parsed on a worker thread, then validated and applied on the
 * loop. Returns 0 when the reload started: done(done_arg, rc, err) (done
 * may be NULL) runs on the loop when it is over, with rc 0, KR_ECONFIG
 * (every error in err, one per line) or the apply error, unless
 * kr_daemon_destroy comes first; without a worker thread it runs before
 * this returns. Else KR_EUNSUP (no file to read), KR_EINVAL (shutting
 * down, a reload in progress) or KR_ENOMEM with err; done does not run. */
int kr_daemon_reload_start(struct kr_daemon *d, kr_control_reload_done_fn done, void *done_arg,
                           char *err, size_t errlen);
/* Stops a reload in progress (destroy): waits for its parse, drops it;
 * its done does not run. */
void daemon_reload_cancel(struct kr_daemon *d);

/* preflight.c: the start's checks without side effects (-n). 0, or KR_E*
 * with the problem in err. */
int daemon_preflight(const struct kr_conf *c, char *err, size_t errlen);

/* state.c */
int daemon_store_open(struct kr_daemon *d, char *err, size_t errlen);
void daemon_store_watch(struct kr_daemon *d); /* arms the commit watch */
void daemon_store_close(struct kr_daemon *d);

/* dnsenv.c */
void daemon_dns_env(struct kr_daemon *d, struct kr_dns_env *env);

/* names.c: the lookups of the hosts written with a DNS name (borrows
 * d->relay and d->conf). create starts them; apply (after a reload)
 * starts every one again; destroy cancels them. */
struct daemon_names;
int daemon_names_create(struct kr_daemon *d, struct daemon_names **out);
void daemon_names_apply(struct daemon_names *n);
/* True while a configured name waits for its first answer (discovery holds
 * its round meanwhile, see dnsservice.h names_settling). */
bool daemon_names_settling(const struct daemon_names *n);
void daemon_names_destroy(struct daemon_names *n);
/* -n: every host name must resolve now. 0, or KR_ECONFIG with one line
 * per name that does not ("file:line: host kms1: address ... does not
 * resolve: NXDOMAIN ..."). Blocks (at most dns.timeout per resolver). */
int daemon_names_check(const struct kr_conf *c, char *err, size_t errlen);

/* notes.c */
void daemon_log_lines(int level, const char *event, const char *text);
void daemon_warn_public(const struct kr_conf *c);
void daemon_write_port_file(struct kr_daemon *d);
void daemon_init_log(const struct kr_conf *c, bool debug);

#endif
