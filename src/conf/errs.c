/* errs.c - the error collector behind "report every error, not the first". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf-internal.h"

#define TRUNC_NOTE "(more errors not shown)\n"

void conf_errs_init(struct conf_errs *e, char *buf, size_t cap)
{
    memset(e, 0, sizeof(*e));
    e->buf = buf;
    e->cap = cap;
    if (buf && cap)
        buf[0] = '\0';
}

void conf_err(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
{
    char msg[512], full[1024];
    va_list ap;

    e->n++;
    if (!e->buf || e->cap == 0 || e->truncated)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d: %s\n", file, line, msg);
    else
        snprintf(full, sizeof(full), "%s: %s\n", file, msg);

    size_t n = strlen(full);
    /* Keep room for the truncation note so the reader knows lines are missing. */
    if (e->len + n + sizeof(TRUNC_NOTE) > e->cap) {
        e->truncated = true;
        if (e->len + sizeof(TRUNC_NOTE) <= e->cap) {
            memcpy(e->buf + e->len, TRUNC_NOTE, sizeof(TRUNC_NOTE));
            e->len += sizeof(TRUNC_NOTE) - 1;
        }
        return;
    }
    memcpy(e->buf + e->len, full, n + 1);
    e->len += n;
}
