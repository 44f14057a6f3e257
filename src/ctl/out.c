/*
 * out.c - kmsrelayctl's output: JSON as received, aligned text tables, RFC
 * 4180 CSV, and the per-command option scanner.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kmsrelay/csv.h"
#include "kmsrelay/termsafe.h"
#include "ctl/api.h"

struct ctl_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows x ncols, row 0 = headings */
    bool right[16];
};

void ctl_print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
}

struct ctl_table *ctl_table_new(size_t ncols, const char *const *heads)
{
    struct ctl_table *t = calloc(1, sizeof(*t));
    if (!t || ncols > 16) {
        free(t);
        return NULL;
    }
    t->ncols = ncols;
    ctl_table_add(t, heads);
    return t;
}

void ctl_table_right(struct ctl_table *t, size_t col)
{
    if (t && col < t->ncols)
        t->right[col] = true;
}

void ctl_table_add(struct ctl_table *t, const char *const *cells)
{
    if (!t)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));
        if (!nc)
            return;
        t->cells = nc;
        t->cap = cap;
    }
    /* Every cell is escaped: names in tables come from clients' requests. */
    for (size_t i = 0; i < t->ncols; i++) {
        const char *c = cells[i] ? cells[i] : "-";
        size_t cap = strlen(c) * 4 + 1;
        char *e = malloc(cap);
        t->cells[t->nrows * t->ncols + i] = e ? (char *)kr_term_safe(c, e, cap) : NULL;
    }
    t->nrows++;
}

/* Display width: counts UTF-8 characters, not bytes. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void ctl_table_print(const struct ctl_table *t, FILE *f)
{
    size_t w[16] = {0};
    if (!t)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t x = width(t->cells[r * t->ncols + c]);
            if (x > w[c])
                w[c] = x;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c] ? t->cells[r * t->ncols + c] : "";
            size_t pad = w[c] - width(s);
            bool last = c + 1 == t->ncols;
            if (t->right[c])
                fprintf(f, "%*s%s", (int)pad, "", s);
            else
                fprintf(f, "%s%*s", s, last ? 0 : (int)pad, "");
            fputs(last ? "\n" : "  ", f);
        }
    }
}

void ctl_table_free(struct ctl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void ctl_csv_field(FILE *f, const char *s, bool last)
{
    kr_csv_fput(f, s, false);
    fputs(last ? "\r\n" : ",", f);
}

const char *ctl_jstr(const json_t *o, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, cap, "%.1f", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "yes" : "no";
    return "";
}

long long ctl_jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

unsigned ctl_term_width(void)
{
    const char *c = getenv("COLUMNS");
    struct winsize ws;
    if (c && atoi(c) >= 40)
        return (unsigned)atoi(c);
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 80;
}

const char *ctl_opt_value(struct ctl_argv *a, const char *name, bool *missing)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=') {
        a->i++;
        return arg + n + 1;
    }
    if (arg[n] != '\0')
        return NULL;
    if (a->i + 1 >= a->argc) {
        *missing = true;
        return NULL;
    }
    a->i += 2;
    return a->argv[a->i - 1];
}

bool ctl_opt_flag(struct ctl_argv *a, const char *name)
{
    if (strcmp(a->argv[a->i], name) != 0)
        return false;
    a->i++;
    return true;
}
