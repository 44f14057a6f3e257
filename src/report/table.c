/*
 * table.c - the report for a terminal: a summary, one table per
 * application and host, then the findings. Every line fits `width`
 * columns: the widest text column shrinks and long names end in "~";
 * figures that must never be cut (licence states, notably notification
 * and extended grace) are wrapped lines of their own, not a column.
 * Widths count UTF-8 characters, not bytes (workstation names may be
 * non-ASCII), and control characters from the wire are shown as '?'.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "report/report-internal.h"

#define TCOLS 6
#define CELL 256

struct tbl {
    const char *head[TCOLS];
    bool right[TCOLS];
    int flex; /* column that shrinks */
    size_t ncols, nrows, cap;
    char (*cells)[TCOLS][CELL];
};

static size_t u8len_n(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes && s[i]; i++)
        n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}

static size_t u8len(const char *s)
{
    return u8len_n(s, strlen(s));
}

/* Copies at most `cols` characters of s into out, '~' marking a cut. */
static void u8cut(const char *s, size_t cols, char *out, size_t cap)
{
    size_t n = 0, o = 0, len = u8len(s);
    for (; *s && o + 5 < cap; s++) {
        bool start = ((uint8_t)*s & 0xC0) != 0x80;
        if (start && ++n > (len > cols ? cols - 1 : cols))
            break;
        out[o++] = (uint8_t)*s < 0x20 || *s == 0x7f ? '?' : *s;
    }
    if (len > cols && cols > 0)
        out[o++] = '~';
    out[o] = '\0';
}

static void tbl_row(struct tbl *t, ...)
{
    va_list ap;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *c = realloc(t->cells, cap * sizeof(*t->cells));
        if (!c)
            return; /* a missing row beats a crash in a report */
        t->cells = c;
        t->cap = cap;
    }
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        snprintf(t->cells[t->nrows][i], CELL, "%s", s ? s : "");
    }
    va_end(ap);
    t->nrows++;
}

static void tbl_print(struct tbl *t, FILE *f, unsigned width, const char *indent)
{
    size_t w[TCOLS], total = strlen(indent);
    char buf[CELL * 2];
    for (size_t i = 0; i < t->ncols; i++) {
        w[i] = u8len(t->head[i]);
        for (size_t r = 0; r < t->nrows; r++)
            if (u8len(t->cells[r][i]) > w[i])
                w[i] = u8len(t->cells[r][i]);
        total += w[i] + (i ? 2 : 0);
    }
    if (total > width && t->flex >= 0) {
        size_t over = total - width, min = 6;
        w[t->flex] = w[t->flex] > over + min ? w[t->flex] - over : min;
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        fputs(indent, f);
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = r == 0 ? t->head[i] : t->cells[r - 1][i];
            u8cut(s, w[i], buf, sizeof(buf));
            size_t pad = w[i] - u8len(buf);
            bool last = i + 1 == t->ncols;
            if (i)
                fputs("  ", f);
            if (t->right[i])
                fprintf(f, "%*s%s", (int)pad, "", buf);
            else
                fprintf(f, "%s%*s", buf, last ? 0 : (int)pad, "");
        }
        fputc('\n', f);
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}

/* Writes n bytes of s with control characters (from the wire) as '?'. */
static void put_clean(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc((uint8_t)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], f);
}

/* Prints text wrapped at width: the first line after `lead`, the others
 * indented by `ind` spaces. Words longer than a line are not cut. */
static void wrap(FILE *f, const char *lead, size_t ind, const char *text, unsigned width)
{
    size_t col = strlen(lead), start = col;
    fputs(lead, f);
    while (*text) {
        size_t n = strcspn(text, " ");
        if (col > start && col + 1 + u8len_n(text, n) > width) {
            fprintf(f, "\n%*s", (int)ind, "");
            col = start = ind;
        } else if (col > start) {
            fputc(' ', f);
            col++;
        }
        put_clean(f, text, n);
        col += u8len_n(text, n);
        text += n;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

static const char *num(char *buf, long long v)
{
    snprintf(buf, 24, "%lld", v);
    return buf;
}

/* "+5h00m", "-30m", "+12s" */
static const char *skew_text(char *buf, long long s)
{
    long long a = s < 0 ? -s : s;
    char sign = s < 0 ? '-' : '+';
    if (a >= 3600)
        snprintf(buf, 24, "%c%lldh%02lldm", sign, a / 3600, a % 3600 / 60);
    else if (a >= 60)
        snprintf(buf, 24, "%c%lldm", sign, a / 60);
    else
        snprintf(buf, 24, "%c%llds", sign, a);
    return buf;
}

static void overview(FILE *f, const json_t *rep, unsigned width)
{
    struct tbl t = {.head = {"APPLICATION", "CLIENTS", "VM", "PHYSICAL"},
                    .right = {false, true, true, true},
                    .flex = 0,
                    .ncols = 4};
    char a[24], b[24], c[24], lic[CELL];
    size_t i, j;
    const json_t *ap, *cell;
    const char *k;
    const json_t *v;

    fprintf(f, "kmsrelay activation report, %s\n", rp_str(rep, "generated_at"));
    snprintf(lic, sizeof(lic),
             "%lld clients (machine and application, as KMS hosts count them) on %lld machines "
             "seen within %lld days (%lld VM, %lld physical), %lld pins",
             rp_int(rep, "clients", 0), rp_int(rep, "machines", 0), rp_int(rep, "window_days", 30),
             rp_int(rep, "vm", 0), rp_int(rep, "physical", 0), rp_int(rep, "pins", 0));
    wrap(f, "", 0, lic, width);
    fputc('\n', f);
    json_array_foreach(json_object_get(rep, "applications"), i, ap)
    {
        tbl_row(&t, rp_str(ap, "application"), num(a, rp_int(ap, "clients", 0)),
                num(b, rp_int(ap, "vm", 0)), num(c, rp_int(ap, "physical", 0)));
    }
    tbl_print(&t, f, width, "");
    fprintf(f, "\nLicence states:\n");
    json_array_foreach(json_object_get(rep, "applications"), i, ap)
    {
        char lead[64];
        lic[0] = '\0';
        json_object_foreach((json_t *)json_object_get(ap, "licence"), k, v)
        {
            if (json_integer_value(v) > 0)
                snprintf(lic + strlen(lic), sizeof(lic) - strlen(lic), "%s%s=%lld",
                         lic[0] ? ", " : "", k, (long long)json_integer_value(v));
        }
        snprintf(lead, sizeof(lead), "  %s: ", rp_str(ap, "application"));
        wrap(f, lead, 4, lic[0] ? lic : "-", width);
    }
    fputc('\n', f);

    struct tbl h = {.head = {"HOST", "APPLICATION", "CLIENTS", "COUNT", "NEEDED", "STATE"},
                    .right = {false, false, true, true, true, false},
                    .flex = 0,
                    .ncols = 6};
    json_array_foreach(json_object_get(rep, "applications"), i, ap)
    {
        json_array_foreach(json_object_get(ap, "hosts"), j, cell)
        {
            bool known = json_is_integer(json_object_get(cell, "reported_count"));
            const char *state = json_is_true(json_object_get(cell, "below_threshold"))
                                    ? "BELOW THRESHOLD"
                                : known ? "ok"
                                        : "no count yet";
            tbl_row(&h, rp_str(cell, "host"), rp_str(ap, "application"),
                    num(a, rp_int(cell, "clients", 0)),
                    known ? num(b, rp_int(cell, "reported_count", 0)) : "-",
                    num(c, rp_int(cell, "threshold", 0)), state);
        }
    }
    if (h.nrows)
        tbl_print(&h, f, width, "");
    else
        fprintf(f, "no hosts and no clients yet\n");
    free(h.cells);
}

static const char *days(char *buf, const json_t *it)
{
    snprintf(buf, 24, "%lld d", rp_int(it, "days_idle", 0));
    return buf;
}

/* A machine's applications, short ("Win+O2013+"), from "applications"
 * (or the item's one "application"). */
static const char *apps_short(const json_t *it, char *out, size_t cap)
{
    static const char *const names[][2] = {
        {"Windows", "Win"}, {"Office 2010", "O2010"}, {"Office 2013+", "O2013+"}};
    const json_t *arr = json_object_get(it, "applications"), *a;
    size_t i;
    out[0] = '\0';
    json_array_foreach(arr, i, a)
    {
        const char *s = json_string_value(a) ? json_string_value(a) : "?";
        for (size_t k = 0; k < 3; k++)
            if (strcmp(s, names[k][0]) == 0)
                s = names[k][1];
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "+" : "", s);
    }
    if (!out[0])
        snprintf(out, cap, "%s", rp_str(it, "application"));
    return out;
}

static void client_list(FILE *f, const json_t *arr, const char *title, bool skew, unsigned width)
{
    char apps[CELL];
    struct tbl t = {.head = {"WORKSTATION", skew ? "SKEW" : "IDLE", "HOST", "APPS", "CMID"},
                    .right = {false, true, false, false, false},
                    .flex = 0,
                    .ncols = 5};
    char a[24];
    size_t i;
    const json_t *it;
    if (json_array_size(arr) == 0)
        return;
    fprintf(f, "\n%s\n", title);
    json_array_foreach(arr, i, it)
    {
        tbl_row(&t, rp_str(it, "workstation"),
                skew ? skew_text(a, rp_int(it, "skew_seconds", 0)) : days(a, it),
                rp_str(it, "host"), apps_short(it, apps, sizeof(apps)), rp_str(it, "cmid"));
    }
    tbl_print(&t, f, width, "  ");
}

static void findings(FILE *f, const json_t *rep, unsigned width)
{
    const json_t *fd = json_object_get(rep, "findings"), *it, *w;
    char title[128], line[4096];
    size_t i, n = kr_report_findings(rep);

    fprintf(f, "\n");
    if (n == 0) {
        fprintf(f, "No findings.\n");
        return;
    }
    fprintf(f, "Findings: %zu\n", n);
    json_array_foreach(json_object_get(rep, "warnings"), i, w)
    {
        wrap(f, "  ! ", 4, json_string_value(w) ? json_string_value(w) : "", width);
    }
    snprintf(title, sizeof(title), "Clock skew (more than %lld h; hosts refuse with 0xC004F06C):",
             rp_int(rep, "skew_limit_seconds", 14400) / 3600);
    client_list(f, json_object_get(fd, "clock_skew"), title, true, width);
    if (json_array_size(json_object_get(fd, "cloned_images")))
        fprintf(f, "\nCloned images (one CMID, several workstation names):\n");
    json_array_foreach(json_object_get(fd, "cloned_images"), i, it)
    {
        const json_t *ws = json_object_get(it, "workstations"), *nm;
        size_t j;
        char apps[CELL];
        snprintf(line, sizeof(line), "%s (%s) on %s:", rp_str(it, "cmid"),
                 apps_short(it, apps, sizeof(apps)), rp_str(it, "host"));
        json_array_foreach(ws, j, nm)
        {
            snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s %s", j ? "," : "",
                     rp_str(nm, "name"));
        }
        wrap(f, "  ", 4, line, width);
    }
    if (json_array_size(json_object_get(fd, "cmid_changed")))
        fprintf(f, "\nCMID changes (oldest > newest):\n");
    json_array_foreach(json_object_get(fd, "cmid_changed"), i, it)
    {
        const json_t *ch = json_object_get(it, "chain"), *g;
        size_t j;
        snprintf(line, sizeof(line), "%s:", rp_str(it, "workstation"));
        json_array_foreach(ch, j, g)
        {
            snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s %s", j ? " >" : "",
                     json_string_value(g) ? json_string_value(g) : "?");
        }
        wrap(f, "  ", 4, line, width);
    }
    snprintf(title, sizeof(title),
             "Not seen for more than %lld days:", rp_int(rep, "stale_days", 7));
    client_list(f, json_object_get(fd, "stale"), title, false, width);
}

int kr_report_write_table(const json_t *report, FILE *out, unsigned width)
{
    if (!json_is_object(report) || strcmp(rp_str(report, "schema"), KR_REPORT_SCHEMA) != 0)
        return KR_EINVAL;
    if (width == 0)
        width = 80;
    if (width < 40)
        width = 40;
    overview(out, report, width);
    findings(out, report, width);
    return fflush(out) == 0 && !ferror(out) ? 0 : KR_EIO;
}
