/*
 * iowant.c - what client sessions (front.c) and backend connections
 * (backend.c) share about their socket: one registered I/O event, re-armed
 * only when the wanted set changes (each change costs an epoll_ctl), and
 * sending what is left of a blocked write.
 *
 * Ownership: the caller owns the event and the descriptor.
 */
#include <errno.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "relay/proxy-internal.h"

void relay_io_want(struct event_base *base, struct event *ev, short *cur, evutil_socket_t fd,
                   short what, event_callback_fn cb, void *arg)
{
    if (fd < 0 || what == *cur)
        return;
    if (*cur)
        event_del(ev);
    *cur = what;
    if (!what)
        return;
    event_assign(ev, base, fd, (short)(what | EV_PERSIST), cb, arg);
    event_add(ev, NULL);
}

int relay_send_pending(evutil_socket_t fd, const uint8_t *buf, uint16_t *off, uint16_t *len)
{
    ssize_t w = send(fd, buf + *off, *len, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    *off = (uint16_t)(*off + w);
    *len = (uint16_t)(*len - w);
    return 0;
}
