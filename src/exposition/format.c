/*
 * format.c - the Prometheus text exposition format, version 0.0.4:
 *
 *   # HELP name text          (text: backslash and newline escaped)
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} number
 *
 * Label values escape backslash, double quote and newline; numbers are
 * integers where the value is a count, else shortest-exact doubles, with
 * "+Inf" for the last histogram bucket.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "exposition/exposition-internal.h"

static void escaped(struct evbuffer *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            evbuffer_add(b, "\\\\", 2);
        else if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else if (quote && *s == '"')
            evbuffer_add(b, "\\\"", 2);
        else
            evbuffer_add(b, s, 1);
    }
}

void mx_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s ", name);
    escaped(b, help, false);
    evbuffer_add_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void labels(struct evbuffer *b, va_list ap)
{
    const char *k = va_arg(ap, const char *);
    if (!k)
        return;
    evbuffer_add(b, "{", 1);
    for (bool first = true; k; k = va_arg(ap, const char *), first = false) {
        const char *v = va_arg(ap, const char *);
        evbuffer_add_printf(b, "%s%s=\"", first ? "" : ",", k);
        escaped(b, v ? v : "", true);
        evbuffer_add(b, "\"", 1);
    }
    evbuffer_add(b, "}", 1);
}

void mx_sample(struct evbuffer *b, const char *name, double v, ...)
{
    va_list ap;
    evbuffer_add_printf(b, "%s", name);
    va_start(ap, v);
    labels(b, ap);
    va_end(ap);
    if (isinf(v) || v >= 1e300)
        evbuffer_add_printf(b, " %s\n", v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        evbuffer_add_printf(b, " NaN\n");
    else
        evbuffer_add_printf(b, " %.15g\n", v);
}

void mx_sample_u(struct evbuffer *b, const char *name, uint64_t v, ...)
{
    va_list ap;
    evbuffer_add_printf(b, "%s", name);
    va_start(ap, v);
    labels(b, ap);
    va_end(ap);
    evbuffer_add_printf(b, " %llu\n", (unsigned long long)v);
}
