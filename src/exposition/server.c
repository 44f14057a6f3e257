/*
 * server.c - the metrics HTTP listener: libevent's evhttp on the daemon's
 * own event base, answering GET/HEAD /metrics with the text exposition,
 * /status with the read-only status page (status.h), / with a redirect to
 * /status, and everything else with 404 (other methods get evhttp's 501).
 *
 * The socket is created here (not by evhttp_bind_socket) so that IPv6 gets
 * V6ONLY, the bound port can be logged (port 0 in tests), and a bind error
 * reaches the operator as errno text.
 *
 * Ownership: the server borrows the relay and the DNS service;
 * kr_metrics_server_free() must run before either is destroyed (it also
 * joins the pin count and the status page's report build, which borrow the
 * relay's store).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/fdguard.h"
#include "kmsrelay/log.h"
#include "kmsrelay/netaddr.h"
#include "dnsservice/dnsservice.h"
#include "exposition/exposition-internal.h"
#include "exposition/status.h"
#include "relay/relay.h"

#define MX_TIMEOUT_S 10
#define MX_MAX_HEADERS 8192

struct kr_metrics_server {
    struct evhttp *http;
    struct kr_fd_guard *guard; /* fdguard.h: cap, header deadline, EMFILE */
    struct kr_relay *relay;
    struct kr_dns *dns;             /* NULL until kr_metrics_server_set_dns */
    struct kr_peers *peers;         /* NULL: replication off */
    struct mx_report_cache *report; /* the status page's */
    char listen[KR_CONF_NAME_MAX];  /* as configured */
    char bound[KR_ADDRSTRLEN];      /* actual address */
};

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(b, "%s", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

/* The status page. The report it shows is built off the loop; this view
 * shows the last one and may ask for a new one (status_report.c). */
static void send_status(struct kr_metrics_server *m, struct evhttp_request *req)
{
    struct mx_page pg = {.relay = m->relay, .now = kr_wall_s()};
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    mx_report_cache_refresh(m->report, m->relay);
    if (m->relay)
        mx_pins_refresh(m->relay->base, m->relay->store);
    pg.report = mx_report_cache_get(m->report, &pg.report_at, &pg.report_err);
    pg.report_busy = mx_report_cache_busy(m->report);
    json_t *dns = m->dns ? kr_dns_status_json(m->dns) : NULL;
    pg.dns = dns;
    struct evbuffer *b = evbuffer_new();
    int rc = b ? mx_status_page(b, &pg) : KR_ENOMEM;
    json_decref(dns);
    if (rc != 0) {
        if (b)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    /* Defence in depth beside the escaping: no script, no fetch, no frame. */
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                      "form-action 'none'; base-uri 'none'");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct kr_metrics_server *m = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (path && strcmp(path, "/status") == 0) {
        send_status(m, req);
        return;
    }
    if (path && strcmp(path, "/") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/status");
        reply_text(req, HTTP_MOVETEMP, "Found",
                   "kmsrelayd: status at /status, metrics at /metrics\n");
        return;
    }
    if (!path || strcmp(path, "/metrics") != 0) {
        reply_text(req, HTTP_NOTFOUND, "Not Found", "not found: try /status or /metrics\n");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b || kr_metrics_render(m->relay, b) != 0) {
        if (b)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    mx_render_peers(m->peers, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

/* A non-blocking listening socket on a; returns the fd or -1 (errno set). */
static int listen_on(const struct kr_addr *a)
{
    int one = 1, fam = a->ss.ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fam == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int kr_metrics_server_start(struct event_base *base, struct kr_relay *r, const struct kr_conf *conf,
                            struct kr_metrics_server **out, char *err, size_t errlen)
{
    struct kr_addr a;
    const char *why = "";
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);

    *out = NULL;
    if (!conf->metrics_listen[0])
        return 0;
    if (kr_addr_parse(conf->metrics_listen, AF_INET, &a, &why) != 0) {
        snprintf(err, errlen, "metrics.listen \"%s\": %s", conf->metrics_listen, why);
        return KR_EINVAL;
    }
    struct kr_metrics_server *m = calloc(1, sizeof(*m));
    if (!m || !(m->report = mx_report_cache_new()) || !(m->http = evhttp_new(base))) {
        if (m)
            mx_report_cache_free(m->report);
        free(m);
        snprintf(err, errlen, "metrics: out of memory");
        return KR_ENOMEM;
    }
    int fd = listen_on(&a);
    struct evhttp_bound_socket *bound =
        fd < 0 ? NULL : evhttp_accept_socket_with_handle(m->http, fd);
    /* its own connection cap, a header deadline, a pause on EMFILE */
    if (bound)
        m->guard = kr_fd_guard_evhttp(m->http, bound, "metrics", KR_METRICS_MAX_CONNS,
                                      MX_TIMEOUT_S * 1000, NULL, NULL);
    if (fd < 0 || !bound || !m->guard) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %s", conf->metrics_listen,
                 fd < 0 ? strerror(errno) : "evhttp refused the socket");
        if (fd >= 0 && !bound)
            close(fd); /* else evhttp_free closes it */
        evhttp_free(m->http);
        mx_report_cache_free(m->report);
        free(m);
        return KR_EIO;
    }
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(m->http, MX_TIMEOUT_S);
    evhttp_set_max_headers_size(m->http, MX_MAX_HEADERS);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_gencb(m->http, on_request, m);
    m->relay = r;
    snprintf(m->listen, sizeof(m->listen), "%s", conf->metrics_listen);
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        kr_addr_format((const struct sockaddr *)&got, m->bound);
    kr_log(KR_LOG_INFO, "event=metrics_listen addr=%s path=/metrics status=/status", m->bound);
    *out = m;
    return 0;
}

void kr_metrics_server_set_dns(struct kr_metrics_server *m, struct kr_dns *dns)
{
    if (m)
        m->dns = dns;
}

void kr_metrics_server_set_peers(struct kr_metrics_server *m, struct kr_peers *peers)
{
    if (m)
        m->peers = peers;
}

const char *kr_metrics_server_addr(const struct kr_metrics_server *m)
{
    return m ? m->bound : "";
}

void kr_metrics_server_free(struct kr_metrics_server *m)
{
    mx_pins_join();
    if (!m)
        return;
    kr_fd_guard_stop(m->guard);
    evhttp_free(m->http);
    kr_fd_guard_free(m->guard);
    mx_report_cache_free(m->report); /* waits for a build: before the store closes */
    free(m);
}

int kr_metrics_server_apply(struct kr_metrics_server **m, struct event_base *base,
                            struct kr_relay *r, const struct kr_conf *conf, char *err,
                            size_t errlen)
{
    struct kr_metrics_server *old = *m, *nw = NULL;
    const char *want = conf->metrics_listen;

    if (old && strcmp(old->listen, want) == 0) {
        old->relay = r;
        return 0;
    }
    if (!want[0]) {
        if (old)
            kr_log(KR_LOG_INFO, "event=metrics_stop addr=%s", old->bound);
        kr_metrics_server_free(old);
        *m = NULL;
        return 0;
    }
    int rc = kr_metrics_server_start(base, r, conf, &nw, err, errlen);
    if (rc == KR_EIO && old) {
        /* The new address may overlap the old one (same port): free it first. */
        kr_metrics_server_free(old);
        *m = old = NULL;
        rc = kr_metrics_server_start(base, r, conf, &nw, err, errlen);
    }
    if (rc != 0)
        return rc;
    kr_metrics_server_free(old);
    *m = nw;
    return 0;
}
