/*
 * http.c - kmsrelayctl's HTTP/1.1 client over the control socket.
 *
 * One request per connection ("Connection: close"), blocking, with a
 * generous receive timeout (a report over a million pins takes seconds).
 * The answer is read to EOF and framed by its Content-Length; the daemon
 * (evhttp_send_reply) always sends one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/api.h"

#define RESP_MAX (1024u * 1024 * 1024) /* 1 GiB: far above any real answer */
#define TIMEOUT_S 300

void ctl_urlencode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strlen(out);
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static int unreachable(const struct ctl_opts *o, const char *what, int e)
{
    fprintf(stderr,
            "kmsrelayctl: cannot reach kmsrelayd on %s: %s%s%s\n"
            "  (is kmsrelayd running? is this the socket of control.socket? use --socket PATH "
            "or KMSRELAY_SOCKET)\n",
            o->socket, what, e ? ": " : "", e ? strerror(e) : "");
    return CTL_EXIT_UNREACHABLE;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads to EOF into a growing buffer. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= RESP_MAX) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* Splits the raw answer into status, headers and body. */
static int parse_response(char *raw, size_t n, struct ctl_resp *r)
{
    char *hend = strstr(raw, "\r\n\r\n");
    int major, minor;
    if (!hend || sscanf(raw, "HTTP/%d.%d %d", &major, &minor, &r->status) != 3)
        return -1;
    *hend = '\0';
    char *body = hend + 4;
    size_t blen = n - (size_t)(body - raw);
    for (char *line = strstr(raw, "\r\n"); line && *line; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0) {
            unsigned long long cl = strtoull(h + 15, NULL, 10);
            if (cl < blen)
                blen = (size_t)cl;
        } else if (strncasecmp(h, "Content-Type:", 13) == 0) {
            const char *v = h + 13 + strspn(h + 13, " ");
            size_t vl = strcspn(v, "\r\n");
            snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)(vl < 127 ? vl : 127), v);
        } else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) {
            return -1; /* the daemon never sends chunked answers */
        }
    }
    if (!(r->body = malloc(blen + 1)))
        return -1;
    memcpy(r->body, body, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    return 0;
}

json_t *ctl_resp_json(struct ctl_resp *r)
{
    if (!r->parsed && r->body && strncmp(r->ctype, "application/json", 16) == 0)
        r->json = json_loadb(r->body, r->body_len, 0, NULL);
    r->parsed = true;
    return r->json;
}

int ctl_http(const struct ctl_opts *o, const char *method, const char *path, const char *body,
             struct ctl_resp *r)
{
    struct sockaddr_un sa;
    struct timeval tv = {TIMEOUT_S, 0};
    size_t blen = body ? strlen(body) : 0, n = 0;
    char head[2048];
    int fd, e;

    memset(r, 0, sizeof(*r));
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (!o->socket || !*o->socket || strlen(o->socket) >= sizeof(sa.sun_path))
        return unreachable(o, "the socket path is empty or too long", 0);
    memcpy(sa.sun_path, o->socket, strlen(o->socket) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return unreachable(o, "socket", errno);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        e = errno;
        close(fd);
        return unreachable(o, "connect", e);
    }
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: kmsrelay\r\nUser-Agent: kmsrelayctl/%s\r\n"
                      "Connection: close\r\nAccept: application/json\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, KR_VERSION, blen);
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        close(fd);
        fprintf(stderr, "kmsrelayctl: request path too long\n");
        return CTL_EXIT_USAGE;
    }
    if (send_all(fd, head, (size_t)hl) != 0 || (blen && send_all(fd, body, blen) != 0)) {
        e = errno;
        close(fd);
        return unreachable(o, "sending the request", e);
    }
    char *raw = read_all(fd, &n);
    e = errno;
    close(fd);
    if (!raw)
        return unreachable(o, "reading the answer", e);
    if (n == 0 || parse_response(raw, n, r) != 0) {
        free(raw);
        ctl_resp_free(r);
        return unreachable(o, n ? "the answer is not HTTP" : "the daemon closed the connection", 0);
    }
    free(raw);
    return 0;
}

void ctl_resp_free(struct ctl_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

int ctl_exit_for_status(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 409:
    case 411:
    case 413:
        return CTL_EXIT_USAGE;
    default:
        return CTL_EXIT_FINDINGS;
    }
}

int ctl_call(const struct ctl_opts *o, const char *method, const char *path, const json_t *body,
             json_t **out)
{
    struct ctl_resp r;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = ctl_http(o, method, path, text, &r);
    free(text);
    *out = NULL;
    if (rc != 0)
        return rc;
    ctl_resp_json(&r);
    if (r.status < 200 || r.status >= 300) {
        const json_t *e = r.json ? json_object_get(r.json, "error") : NULL;
        fprintf(stderr, "kmsrelayctl: %s\n",
                json_is_string(e) ? json_string_value(e) : "the daemon refused the request");
        if (o->json && r.json)
            ctl_print_json(r.json);
        rc = ctl_exit_for_status(r.status);
        ctl_resp_free(&r);
        return rc;
    }
    if (!r.json) {
        fprintf(stderr, "kmsrelayctl: the daemon's answer is not JSON\n");
        ctl_resp_free(&r);
        return CTL_EXIT_FINDINGS;
    }
    *out = r.json;
    r.json = NULL;
    ctl_resp_free(&r);
    return CTL_EXIT_OK;
}
