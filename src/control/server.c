/*
 * server.c - the control API's evhttp server: one generic callback that
 * routes through the table in dispatch.c, and the reply path every answer
 * takes (JSON body, Content-Type application/json, Connection: close).
 *
 * Every error is a 4xx/5xx with {"error": "..."}: unknown path 404, wrong
 * method 405 (with Allow), bad query or JSON 400, body refused by the gate
 * 413/411. Bodies never reach a handler unchecked, and a bad request never
 * affects anything else the daemon does.
 *
 * One request per connection: replies close the connection. That keeps a
 * refused body (gate.c) from being read as a next request, and costs an
 * operator tool nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/fdguard.h"
#include "kmsrelay/log.h"

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

void ctl_reply(struct kr_control *ctl, struct evhttp_request *req, int status, json_t *body,
               const char *err)
{
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char *text;

    if (!body)
        body = json_object();
    if (status >= 400) {
        ctl->errors++;
        if (body && !json_object_get(body, "error"))
            json_object_set_new(body, "error", json_string(err && *err ? err : reason(status)));
    }
    text = body ? json_dumps(body, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
                : NULL;
    if (!text || !buf) {
        status = 500;
        free(text);
        text = strdup("{\"error\": \"out of memory\"}");
    }
    if (buf && text) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
    }
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Connection", "close");
    evhttp_send_reply(req, status, reason(status), buf);
    if (buf)
        evbuffer_free(buf);
    free(text);
    json_decref(body);
}

void ctl_reply_raw(struct kr_control *ctl, struct evhttp_request *req, int status,
                   struct evbuffer *body, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type ? type : "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Connection", "close");
    evhttp_send_reply(req, status, reason(status), body);
    evbuffer_free(body);
}

static int method_of(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        return CTL_GET;
    case EVHTTP_REQ_POST:
        return CTL_POST;
    case EVHTTP_REQ_DELETE:
        return CTL_DELETE;
    case EVHTTP_REQ_PUT:
        return CTL_PUT;
    case EVHTTP_REQ_HEAD:
        return CTL_HEAD;
    default:
        return CTL_OTHER;
    }
}

/* The request's own method, for messages (method_of() folds the ones no
 * route uses into CTL_OTHER). */
static const char *method_text(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "(unknown)";
    }
}

static void log_request(const char *method, const char *path, int status)
{
    char q[300];
    /* Reads are debug; changes and errors are worth a line. */
    int level = status >= 500                                 ? KR_LOG_WARN
                : status >= 400 || strcmp(method, "GET") != 0 ? KR_LOG_INFO
                                                              : KR_LOG_DEBUG;
    kr_log(level, "event=control method=%s path=%s status=%d", method,
           kr_logfmt_value(path, q, sizeof(q)), status);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct kr_control *ctl = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    const char *gate = evhttp_find_header(evhttp_request_get_input_headers(req), CTL_GATE_HEADER);
    char params[CTL_MAX_PARAMS][CTL_PARAM_MAX] = {{0}}, allow[64] = "";
    const struct ctl_route *route = NULL;
    struct evkeyvalq q;
    struct ctl_call c;
    int method = method_of(req), status;

    ctl->requests++;
    memset(&c, 0, sizeof(c));
    TAILQ_INIT(&q);
    c.ctl = ctl;
    c.r = ctl->relay;
    c.req = req;
    c.query = &q;

    if (gate &&
        (strcmp(gate, "413") == 0 || strcmp(gate, "411") == 0 || strcmp(gate, "400") == 0)) {
        status = atoi(gate);
        ctl_fail(c.err, sizeof(c.err), status, "%s",
                 status == 413   ? "request body too large (the limit is 64 KiB)"
                 : status == 411 ? "chunked request bodies are not accepted; send Content-Length"
                                 : "malformed or repeated Content-Length header");
        goto reply;
    }
    if (!path || !*path) {
        status = ctl_fail(c.err, sizeof(c.err), 400, "malformed request URI");
        goto reply;
    }
    status = ctl_route_find(method, path, &route, params, allow, sizeof(allow));
    if (status == 404) {
        ctl_fail(c.err, sizeof(c.err), 404, "no such endpoint: %.200s (GET /v1 lists them)", path);
        goto reply;
    }
    if (status == 405) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        ctl_fail(c.err, sizeof(c.err), 405, "method %s not allowed on %.200s (allowed: %s)",
                 method_text(req), path, allow);
        goto reply;
    }
    if (status != 200) {
        ctl_fail(c.err, sizeof(c.err), 400, "malformed path %.200s", path);
        goto reply;
    }
    if (query && evhttp_parse_query_str(query, &q) != 0) {
        status = ctl_fail(c.err, sizeof(c.err), 400, "malformed query string");
        goto reply;
    }
    if ((status = ctl_query_check(&q, route->query, c.err, sizeof(c.err))) != 0)
        goto reply;
    for (size_t i = 0; i < CTL_MAX_PARAMS; i++)
        c.param[i] = params[i];
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    c.body_len = evbuffer_get_length(in);
    if (c.body_len > CTL_BODY_MAX) { /* behind the gate: should not happen */
        status = ctl_fail(c.err, sizeof(c.err), 413, "request body too large");
        goto reply;
    }
    c.body = c.body_len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)c.body_len) : NULL;

    status = route->fn(&c);
    if (status == CTL_ASYNC) {
        log_request(method_text(req), path, 202);
        evhttp_clear_headers(&q);
        return;
    }
reply:
    log_request(method_text(req), path ? path : "?", status);
    evhttp_clear_headers(&q);
    ctl_reply(ctl, req, status, c.out, c.err);
}

int kr_control_start(struct event_base *base, const struct kr_control_deps *deps,
                     struct kr_control **out, char *err, size_t errlen)
{
    const struct kr_conf *conf = deps->relay->conf;
    struct kr_control *ctl = calloc(1, sizeof(*ctl));
    int fd = -1;

    *out = NULL;
    if (!ctl) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    ctl->base = base;
    ctl->relay = deps->relay;
    ctl->dns = deps->dns;
    ctl->audit = deps->audit;
    ctl->peers = deps->peers;
    ctl->reload = deps->reload;
    ctl->reload_arg = deps->reload_arg;
    snprintf(ctl->path, sizeof(ctl->path), "%s", conf->control_socket);
    if (ctl_jobs_init(ctl) != 0 || !(ctl->http = evhttp_new(base))) {
        snprintf(err, errlen, "control API: cannot set up: %s", strerror(errno));
        ctl_jobs_stop(ctl);
        if (ctl->http)
            evhttp_free(ctl->http);
        free(ctl);
        return KR_ENOMEM;
    }
    evhttp_set_gencb(ctl->http, on_request, ctl);
    evhttp_set_bevcb(ctl->http, ctl_gate_bev, ctl);
    /* Every method reaches on_request, so a wrong one gets a JSON 405
     * instead of evhttp's own 501 page. */
    evhttp_set_allowed_methods(ctl->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(ctl->http, CTL_BODY_MAX); /* backstop behind gate.c */
    evhttp_set_max_headers_size(ctl->http, 8192);
    evhttp_set_timeout(ctl->http, CTL_TIMEOUT_S);

    fd = ctl_sock_listen(ctl->path, conf->control_mode, conf->control_group, &ctl->dev, &ctl->ino,
                         err, errlen);
    struct evhttp_bound_socket *bound =
        fd < 0 ? NULL : evhttp_accept_socket_with_handle(ctl->http, fd);
    if (fd < 0 || !bound || ctl_sock_guard(ctl, bound) != 0) {
        int rc = fd < 0 ? fd : KR_EIO;
        if (fd >= 0) {
            snprintf(err, errlen, "control socket %s: cannot serve it", ctl->path);
            if (!bound)
                close(fd); /* else evhttp_free closes it */
            ctl_sock_unlink(ctl->path, ctl->dev, ctl->ino);
        }
        ctl_jobs_stop(ctl);
        evhttp_free(ctl->http);
        free(ctl);
        return rc;
    }
    kr_log(KR_LOG_INFO, "event=control_listen socket=%s mode=%04o group=%s", ctl->path,
           conf->control_mode & 0777, conf->control_group[0] ? conf->control_group : "-");
    *out = ctl;
    return 0;
}

void kr_control_apply(struct kr_control *ctl)
{
    char err[512];
    if (!ctl)
        return;
    const struct kr_conf *conf = ctl->relay->conf;
    if (strcmp(conf->control_socket, ctl->path) != 0) {
        kr_log(KR_LOG_WARN,
               "event=reload_note setting=control.socket msg=\"takes effect at the next start; "
               "still serving %s\"",
               ctl->path);
        return;
    }
    if (ctl_sock_perms(ctl->path, conf->control_mode, conf->control_group, err, sizeof(err)) != 0) {
        char q[600];
        kr_log(KR_LOG_ERR, "event=control_error msg=%s", kr_logfmt_value(err, q, sizeof(q)));
    }
}

void kr_control_free(struct kr_control *ctl)
{
    if (!ctl)
        return;
    ctl_jobs_stop(ctl);
    ctl_reload_drop(ctl);
    kr_fd_guard_stop(ctl->guard);
    evhttp_free(ctl->http); /* closes the listening socket and every connection */
    kr_fd_guard_free(ctl->guard);
    ctl_sock_unlink(ctl->path, ctl->dev, ctl->ino);
    free(ctl);
}

const char *kr_control_path(const struct kr_control *ctl)
{
    return ctl ? ctl->path : "";
}

/* Operator weights are host runtime state of the relay; these names stay
 * for the control API's handlers and tests. */
int kr_control_set_weight(struct kr_relay *r, struct kr_host *h, uint32_t weight)
{
    return kr_relay_set_weight(r, h, weight);
}

void kr_control_weights_apply(struct kr_relay *r)
{
    kr_relay_weights_apply(r);
}

uint32_t kr_control_config_weight(const struct kr_relay *r, const struct kr_host *h)
{
    return kr_relay_config_weight(r, h);
}
