/*
 * fuzz_conf_file.c - kr_conf_load() on the raw bytes of whole configuration
 * files: the input is written to a file and loaded exactly as kmsrelayd
 * loads its configuration (open, the size bound, libconfig's file reader,
 * NUL bytes, @include, every check), unlike fuzz_conf, which parses text
 * from memory. Properties: no crash; a success has no error; a failure has
 * a message that names a file; a file over the size bound is refused at
 * once, naming the limit.
 *
 * Big inputs without big corpus files: an input that starts with the magic
 * line "#krx\n" is a recipe, expanded before use: segments of
 *   u32 LE repeat count, u16 LE length L, L bytes
 * are concatenated, each repeated `count` times (total capped at 5 MiB).
 * The 4 MB line case of issue 11 is such a recipe of a few dozen bytes
 * (corpus/conf_file/line-4mb.krx); the fuzzer mutates recipes like any
 * input, so it also explores large files cheaply.
 *
 * @include is allowed only as `@include "inc.conf"` (a valid file written
 * next to the input): any other '@' could make the fuzzer read arbitrary
 * files (/dev/zero) and is skipped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
const char *__lsan_default_suppressions(void);

#define EXPAND_MAX (5u << 20)
#define CONF_FILE_MAX (1u << 20) /* src/conf/load.c's bound */

/* libconfig 1.5's scanner leaks on some syntax errors (see fuzz_conf.c). */
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

static const char inc_text[] = "log: { level = \"warn\"; };\n";
static const char include_ok[] = "@include \"inc.conf\"";

static char dir[64];

static void cleanup(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/inc.conf", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/fuzz.conf", dir);
    unlink(p);
    rmdir(dir);
}

static int setup(void)
{
    if (dir[0])
        return 0;
    snprintf(dir, sizeof(dir), "/tmp/kr-fuzz-conf-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char p[128];
    snprintf(p, sizeof(p), "%s/inc.conf", dir);
    FILE *f = fopen(p, "w");
    if (!f || fputs(inc_text, f) < 0 || fclose(f) != 0)
        return -1;
    atexit(cleanup);
    return 0;
}

/* Expands a "#krx\n" recipe into a new buffer; NULL for a bad recipe. */
static uint8_t *expand(const uint8_t *d, size_t n, size_t *outlen)
{
    size_t cap = 4096, len = 0, i = 5;
    uint8_t *out = malloc(cap);
    while (out && i + 6 <= n) {
        uint32_t cnt = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 |
                       (uint32_t)d[i + 3] << 24;
        size_t l = (size_t)d[i + 4] | (size_t)d[i + 5] << 8;
        i += 6;
        if (l > n - i || (l && cnt > (EXPAND_MAX - len) / l))
            break;
        for (uint32_t k = 0; k < cnt && l; k++) {
            if (len + l > cap) {
                size_t nc = cap * 2 > len + l ? cap * 2 : len + l;
                uint8_t *nb = realloc(out, nc);
                if (!nb) {
                    free(out);
                    return NULL;
                }
                out = nb;
                cap = nc;
            }
            memcpy(out + len, d + i, l);
            len += l;
        }
        i += l;
    }
    *outlen = len;
    return out;
}

/* Every '@' must start `@include "inc.conf"`. */
static bool includes_ok(const uint8_t *d, size_t n)
{
    const size_t il = sizeof(include_ok) - 1;
    for (const uint8_t *p = d; (p = memchr(p, '@', n - (size_t)(p - d))) != NULL; p++)
        if ((size_t)(d + n - p) < il || memcmp(p, include_ok, il) != 0)
            return false;
    return true;
}

static void load(const uint8_t *d, size_t n)
{
    char path[128], errs[4096];
    snprintf(path, sizeof(path), "%s/fuzz.conf", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(d, 1, n, f) != n)
        abort();
    if (fclose(f) != 0)
        abort();
    struct kr_conf *c = NULL;
    errs[0] = '\0';
    int rc = kr_conf_load(path, &c, errs, sizeof(errs));
    if (rc == 0) {
        if (!c || n > CONF_FILE_MAX)
            abort(); /* a file over the bound must never be parsed */
        free(c);
        return;
    }
    /* Every failure says where: this file, or the included one (libconfig
     * names that as written in the @include). */
    if (rc != KR_ECONFIG || c ||
        (strncmp(errs, dir, strlen(dir)) != 0 && strncmp(errs, "inc.conf:", 9) != 0))
        abort();
    if (n > CONF_FILE_MAX && !strstr(errs, "at most"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (setup() != 0)
        abort();
    uint8_t *buf = NULL;
    if (n >= 5 && memcmp(d, "#krx\n", 5) == 0) {
        if (!(buf = expand(d, n, &n)))
            return 0;
        d = buf;
    }
    if (includes_ok(d, n))
        load(d, n);
    free(buf);
    return 0;
}
