/*
 * gate.c - refuses request bodies the control API will not read, with a
 * JSON error instead of evhttp's own HTML page.
 *
 * evhttp (2.1) enforces evhttp_set_max_body_size() itself and answers 413
 * with a built-in HTML body, and it has no hook between the headers and the
 * body on the server side. So the gate sits one level lower: an evbuffer
 * callback on each connection's input buffer sees the bytes before evhttp
 * parses them. Once the header block is complete it decides:
 *   - Content-Length within CTL_BODY_MAX: the callback removes itself and
 *     evhttp reads the request unchanged;
 *   - a larger Content-Length (413), a chunked or other Transfer-Encoding
 *     (411), or an unreadable or repeated Content-Length (400): the header block is
 *     rewritten to announce no body and to carry CTL_GATE_HEADER with the
 *     status; everything after it is discarded as it arrives. The request
 *     then reaches server.c, which answers with the JSON error and closes
 *     the connection (replies always say Connection: close), so the unread
 *     body never becomes a "next request".
 * Memory stays bounded: at most the header block is ever buffered. A header
 * block over GATE_SCAN_MAX is left to evhttp's own header limit.
 * evhttp_set_max_body_size() stays as a backstop behind the gate.
 *
 * The callback runs synchronously when the socket bufferevent fills its
 * input, before the bufferevent's read callback (evhttp's parser) is
 * invoked, so evhttp never sees the original headers of a refused request.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "control/control-internal.h"

#define GATE_SCAN_MAX 16384 /* larger than evhttp's max_headers_size (8 KiB) */

static bool name_is(const char *line, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l && line[l] == ':' && strncasecmp(line, name, l) == 0;
}

/* A Content-Length value: digits with optional surrounding blanks. */
static int parse_length(const char *v, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t x = 0;
    bool any = false;

    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < n && isdigit((unsigned char)v[i]); i++) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
        any = true;
    }
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (!any || i != n)
        return -1;
    *out = x;
    return 0;
}

static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + n > cap)
        return false;
    memcpy(out + *o, s, n);
    *o += n;
    return true;
}

/* The header line at *pos (without its CR LF, n bytes); moves *pos past it. */
static const char *next_line(const char *hdr, size_t len, size_t *pos, size_t *n)
{
    const char *line = hdr + *pos, *nl = memchr(line, '\n', len - *pos);
    *n = nl ? (size_t)(nl - line) : len - *pos;
    *pos += *n + (nl ? 1 : 0);
    if (*n && line[*n - 1] == '\r')
        (*n)--;
    return line;
}

long ctl_gate_rewrite(const char *hdr, size_t len, uint64_t limit, char *out, size_t cap)
{
    int verdict = 0, n_length = 0;
    size_t pos = 0, o = 0;
    bool first = true, dropping = false;

    /* Pass 1: the verdict. */
    while (pos < len) {
        size_t n;
        const char *line = next_line(hdr, len, &pos, &n);
        if (first) {
            first = false;
            continue;
        }
        if (n == 0)
            break;
        if (name_is(line, n, "content-length")) {
            uint64_t v;
            size_t k = strlen("content-length") + 1;
            /* Two lengths (even equal ones) make the framing ambiguous: which
             * one a proxy in front used is unknowable, so neither is trusted. */
            if (parse_length(line + k, n - k, &v) != 0 || ++n_length > 1)
                verdict = verdict == 411 ? verdict : 400;
            else if (v > limit)
                verdict = verdict == 400 || verdict == 411 ? verdict : 413;
        } else if (name_is(line, n, "transfer-encoding")) {
            verdict = 411;
        }
    }
    if (!verdict)
        return 0;

    /* Pass 2: the same block, minus the body framing, plus the marker. */
    pos = 0;
    first = true;
    while (pos < len) {
        size_t n;
        const char *line = next_line(hdr, len, &pos, &n);
        if (!first && n == 0)
            break;
        if (!first && (line[0] == ' ' || line[0] == '\t')) {
            if (dropping) /* continuation of a dropped header */
                continue;
        } else if (!first) {
            dropping = name_is(line, n, "content-length") ||
                       name_is(line, n, "transfer-encoding") || name_is(line, n, "expect") ||
                       name_is(line, n, CTL_GATE_HEADER);
            if (dropping)
                continue;
        }
        first = false;
        if (!put(out, cap, &o, line, n) || !put(out, cap, &o, "\r\n", 2))
            return -1;
    }
    char tail[96];
    int tl = snprintf(tail, sizeof(tail), "Content-Length: 0\r\n%s: %d\r\n\r\n", CTL_GATE_HEADER,
                      verdict);
    if (!put(out, cap, &o, tail, (size_t)tl))
        return -1;
    return (long)o;
}

/* After a refusal: whatever else the client sends is thrown away. */
static void drain_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    if (info->n_added && evbuffer_get_length(b))
        evbuffer_drain(b, evbuffer_get_length(b));
}

/* Length of the header block (through its empty line) at the start of buf,
 * or 0 when it is not complete yet. */
static size_t block_end(const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < n && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static void header_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    size_t have = evbuffer_get_length(b);
    if (!info->n_added || have == 0)
        return;
    size_t scan = have < GATE_SCAN_MAX ? have : GATE_SCAN_MAX;
    unsigned char *buf = evbuffer_pullup(b, (ev_ssize_t)scan);
    if (!buf)
        return;
    size_t end = block_end(buf, scan);
    if (!end) {
        if (have >= GATE_SCAN_MAX) /* evhttp's header limit answers */
            evbuffer_remove_cb(b, header_cb, arg);
        return;
    }
    /* Decided now, whichever way: this callback is done. Removing it
     * before touching the buffer keeps it from seeing its own edits. */
    evbuffer_remove_cb(b, header_cb, arg);

    /* Bare-LF lines grow by their CR: twice the block always suffices. */
    size_t cap = 2 * end + 128;
    char *rew = malloc(cap);
    long rl = rew ? ctl_gate_rewrite((const char *)buf, end, CTL_BODY_MAX, rew, cap) : -1;
    if (rl > 0) {
        evbuffer_drain(b, have);
        evbuffer_add(b, rew, (size_t)rl);
        evbuffer_add_cb(b, drain_cb, NULL);
    }
    free(rew);
}

struct bufferevent *ctl_gate_bev(struct event_base *base, void *arg)
{
    /* No BEV_OPT_CLOSE_ON_FREE: evhttp closes the fd itself, as for the
     * bufferevents it makes on its own. */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    if (bev && !evbuffer_add_cb(bufferevent_get_input(bev), header_cb, arg)) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}
