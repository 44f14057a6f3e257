/*
 * gss_async.c - GSS-TSIG requests for the non-blocking client (client.c):
 * Kerberos and the TKEY exchange may block on a KDC or a server, so each
 * GSS request runs on a worker thread of its own and completes on the
 * event loop through a socketpair (no libevent threading needed).
 *
 * Hand-over: the job holds copies of everything (servers, zone, records).
 * `state` decides who frees it: the thread, when the request was cancelled
 * while it ran; otherwise the loop, after the completion event.
 *
 * The security context is kept between requests (gss_pool.c): one TKEY
 * negotiation per server, then only signed messages.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsclient/transport.h"
#include "dnsclient/gss.h"
#include "kmsrelay/err.h"

enum { JOB_RUNNING = 0, JOB_CANCELLED = 1, JOB_DONE = 2 };

struct kr_dnsg_job {
    atomic_int state;
    int fds[2]; /* [0] loop side, [1] thread side */
    struct event *ev;
    struct kr_dns_req *r;
    char keytab[512], principal[256], name[KR_DNS_NAME_MAX];
    uint16_t type;
    bool update;
    struct kr_dns_rr *del, *add;
    size_t n_del, n_add;
    struct kr_addr addrs[KR_DNS_MAX_SERVERS];
    size_t n_addrs;
    uint64_t timeout_ms;
    struct kr_dns_result *res;
};

static void job_free(struct kr_dnsg_job *j)
{
    free(j->del);
    free(j->add);
    kr_dns_result_free(j->res);
    free(j);
}

static struct kr_dns_rr *dup_rrs(const struct kr_dns_rr *rrs, size_t n)
{
    struct kr_dns_rr *c = malloc(n ? n * sizeof(*c) : 1);
    if (c && n)
        memcpy(c, rrs, n * sizeof(*c));
    return c;
}

int kr_dnsg_prepare(struct kr_dns_req *r, const struct kr_dns_servers *s, const char *name,
                    uint16_t type, const struct kr_dns_update *u, char *err, size_t errlen)
{
    struct kr_dnsg_job *j = calloc(1, sizeof(*j));
    if (!j)
        return KR_ENOMEM;
    j->fds[0] = j->fds[1] = -1;
    snprintf(j->keytab, sizeof(j->keytab), "%s", s->gss_keytab ? s->gss_keytab : "");
    snprintf(j->principal, sizeof(j->principal), "%s", s->gss_principal);
    snprintf(j->name, sizeof(j->name), "%s", u ? (u->zone ? u->zone : "") : (name ? name : ""));
    j->type = type;
    j->update = u != NULL;
    j->n_addrs = r->n_addrs;
    memcpy(j->addrs, r->addrs, sizeof(j->addrs));
    j->timeout_ms = r->timeout_ms;
    r->gss = j;
    j->r = r;
    if (u && (!(j->del = dup_rrs(u->del, u->n_del)) || !(j->add = dup_rrs(u->add, u->n_add))))
        return KR_ENOMEM;
    j->n_del = u ? u->n_del : 0;
    j->n_add = u ? u->n_add : 0;
    if (!j->n_addrs) {
        snprintf(err, errlen,
                 "GSS-TSIG needs the zone's servers (dns.zones[].servers): the MNAME fallback "
                 "is for HMAC keys only");
        return KR_EINVAL;
    }
    return 0;
}

/* The blocking part: each server in turn until one answers. */
static void *worker(void *arg)
{
    struct kr_dnsg_job *j = arg;
    char err[1024] = "";
    for (size_t i = 0; i < j->n_addrs; i++) {
        struct kr_gss_opts o = {.keytab = j->keytab,
                                .principal = j->principal,
                                .zone = j->name,
                                .server = j->addrs[i],
                                .timeout_ms = j->timeout_ms};
        struct kr_gss_sess *s = NULL;
        kr_dns_result_free(j->res);
        j->res = NULL;
        int rc = kr_gss_pool_take(&o, &s, err, sizeof(err));
        if (rc == 0) {
            if (j->update) {
                struct kr_dns_update u = {j->name, NULL, 0, j->del, j->n_del, j->add, j->n_add};
                rc = kr_gss_update(s, &u, &j->res);
            } else {
                rc = kr_gss_query(s, j->name, j->type, &j->res);
            }
            kr_gss_pool_give(&o, s);
        }
        if (!j->res && (j->res = kr_dns_result_new()) != NULL)
            kr_dns_result_set(j->res,
                              rc == KR_ETIMEDOUT || rc == KR_EIO ? KR_DNS_E_NET : KR_DNS_E_KEY,
                              "GSS-TSIG: %s", err[0] ? err : kr_strerror(rc));
        if (!j->res || !kr_dns_status_transient(j->res->status))
            break;
    }
    int fd = j->fds[1]; /* j may be gone once the loop sees the byte */
    if (atomic_exchange(&j->state, JOB_DONE) == JOB_CANCELLED) {
        close(fd);
        job_free(j);
        return NULL;
    }
    (void)!send(fd, "x", 1, MSG_NOSIGNAL);
    close(fd);
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct kr_dnsg_job *j = arg;
    struct kr_dns_req *r = j->r;
    (void)fd, (void)what;
    if (j->res) {
        kr_dns_result_free(r->res);
        r->res = j->res;
        j->res = NULL;
    } else {
        kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "out of memory");
    }
    kr_dns_transport_finish(r); /* frees r, which releases the job (kr_dnsg_release) */
}

void kr_dnsg_start(struct kr_dns_req *r)
{
    struct kr_dnsg_job *j = r->gss;
    pthread_t t;
    pthread_attr_t at;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, j->fds) != 0 ||
        !(j->ev = event_new(r->c->base, j->fds[0], EV_READ, on_done, j)) ||
        event_add(j->ev, NULL) != 0) {
        kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "cannot start a GSS-TSIG worker");
        kr_dns_transport_finish(r);
        return;
    }
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, worker, j) != 0) {
        kr_dns_result_set(r->res, KR_DNS_E_LOCAL, "cannot start a GSS-TSIG worker thread");
        close(j->fds[1]);
        j->fds[1] = -1;
        kr_dns_transport_finish(r);
    }
    pthread_attr_destroy(&at);
}

void kr_dnsg_release(struct kr_dns_req *r)
{
    struct kr_dnsg_job *j = r->gss;
    if (!j)
        return;
    r->gss = NULL;
    if (j->ev)
        event_free(j->ev);
    if (j->fds[0] >= 0)
        close(j->fds[0]);
    /* Still running (cancelled): the thread frees the job when it ends. */
    if (j->fds[1] >= 0 && atomic_exchange(&j->state, JOB_CANCELLED) == JOB_RUNNING)
        return;
    job_free(j);
}
