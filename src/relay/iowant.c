/*
 * iowant.c - one registered I/O event per connection, re-armed only when the
 * wanted set changes (client sessions in front.c, backend connections in
 * backend.c). Each change costs an epoll_ctl, so callers ask for what they
 * need and this function skips the call when nothing changed.
 *
 * Ownership: the caller owns the event and the descriptor.
 */
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
