/* jlog.c - buffered JSON lines log (see jlog.h). */
#include "stubhost/jlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JLOG_BUFSIZE (1 << 16)

struct jlog {
    FILE *f;
    int owned; /* we opened it and must fclose it */
    int dirty;
};

struct jlog *jlog_open(const char *path)
{
    struct jlog *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (!path) {
        l->f = stderr;
    } else if (strcmp(path, "-") == 0) {
        l->f = stdout;
    } else {
        l->f = fopen(path, "ae");
        if (!l->f) {
            free(l);
            return NULL;
        }
        l->owned = 1;
    }
    /* Full buffering even for stderr: the periodic flush bounds the delay. */
    setvbuf(l->f, NULL, _IOFBF, JLOG_BUFSIZE);
    return l;
}

void jlog_close(struct jlog *l)
{
    if (!l)
        return;
    fflush(l->f);
    if (l->owned)
        fclose(l->f);
    free(l);
}

void jlog_write(struct jlog *l, json_t *obj)
{
    if (!obj)
        return;
    if (json_dumpf(obj, l->f, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0)
        fputc('\n', l->f);
    json_decref(obj);
    l->dirty = 1;
}

void jlog_flush(struct jlog *l)
{
    if (l && l->dirty) {
        fflush(l->f);
        l->dirty = 0;
    }
}

void jlog_timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

void jlog_set_str(json_t *obj, const char *key, const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    json_object_set_new(obj, key, v ? v : json_null());
}
