/* csv.c - RFC 4180 fields with the CSV-injection guard. */
#include "kmsrelay/csv.h"

#include <string.h>

void kr_csv_field(const char *in, bool guard, kr_csv_put put, void *ctx)
{
    const char *s = in ? in : "";
    bool formula = guard && s[0] && strchr("=+-@\t\r", s[0]);
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        put(ctx, "\"", 1);
    if (formula)
        put(ctx, "'", 1);
    if (!quote) {
        put(ctx, s, strlen(s));
        return;
    }
    for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1) {
        put(ctx, s, (size_t)(q - s) + 1); /* up to and including the quote */
        put(ctx, "\"", 1);                /* doubled */
    }
    put(ctx, s, strlen(s));
    put(ctx, "\"", 1);
}

static void put_file(void *ctx, const char *p, size_t n)
{
    fwrite(p, 1, n, (FILE *)ctx);
}

void kr_csv_fput(FILE *f, const char *in, bool guard)
{
    kr_csv_field(in, guard, put_file, f);
}
