/*
 * result.c - a whole audit's results: classifying every entry, counting
 * problems, freeing. No I/O.
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/err.h"

int kr_audit_classify_all(struct kr_audit_result *r, const struct kr_audit_policy *p)
{
    int problems = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct kr_audit_entry *e = &r->e[i];
        size_t n = kr_audit_classify(e->set, p, NULL, 0);
        struct kr_audit_finding *f = calloc(n ? n : 1, sizeof(*f));
        json_t **fix = calloc(n ? n : 1, sizeof(*fix));
        if (!f || !fix) {
            free(f);
            free(fix);
            return KR_ENOMEM;
        }
        kr_audit_classify(e->set, p, f, n);
        if (e->fix)
            for (size_t k = 0; k < e->n_f; k++)
                json_decref(e->fix[k]);
        free(e->fix);
        free(e->f);
        e->f = f;
        e->fix = fix;
        e->n_f = n;
        for (size_t k = 0; k < n; k++)
            problems += kr_audit_is_problem(&f[k]);
    }
    return problems;
}

size_t kr_audit_problems(const struct kr_audit_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->e[i].n_f; k++)
            n += (size_t)kr_audit_is_problem(&r->e[i].f[k]);
    return n;
}

void kr_audit_result_free(struct kr_audit_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct kr_audit_entry *e = &r->e[i];
        if (e->fix)
            for (size_t k = 0; k < e->n_f; k++)
                json_decref(e->fix[k]);
        free(e->fix);
        free(e->f);
        free(e->set);
        free(e->txt);
    }
    free(r->e);
    for (size_t i = 0; i < r->n_errors; i++)
        free(r->errors[i]);
    free(r->errors);
    memset(r, 0, sizeof(*r));
}
