/*
 * result.c - kr_dns_result allocation, record arrays and the message line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

struct kr_dns_result *kr_dns_result_new(void)
{
    struct kr_dns_result *res = calloc(1, sizeof(*res));
    if (res)
        res->rcode = -1;
    return res;
}

int kr_dns_rr_push(struct kr_dns_rr **arr, size_t *n, const struct kr_dns_rr *rr)
{
    /* Grow by doubling: capacity is the next power of two >= n. */
    size_t cap = 4;
    while (cap < *n)
        cap *= 2;
    if (*n == 0 || *n == cap) {
        size_t ncap = *n == 0 ? 4 : cap * 2;
        struct kr_dns_rr *p = realloc(*arr, ncap * sizeof(*p));
        if (!p)
            return KR_ENOMEM;
        *arr = p;
    }
    (*arr)[(*n)++] = *rr;
    return 0;
}

void kr_dns_result_clear_rrs(struct kr_dns_result *res)
{
    free(res->rrs);
    free(res->auth);
    res->rrs = res->auth = NULL;
    res->n_rrs = res->n_auth = 0;
}

void kr_dns_result_set(struct kr_dns_result *res, int status, const char *fmt, ...)
{
    va_list ap;
    res->status = status;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}

void kr_dns_result_free(struct kr_dns_result *res)
{
    if (!res)
        return;
    kr_dns_result_clear_rrs(res);
    free(res);
}
