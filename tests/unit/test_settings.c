/*
 * test_settings.c - the table of settings (src/conf/settings.c) is the one
 * place a setting is declared: every default parses and lies within its
 * bounds, kr_conf_defaults() is the table's defaults, the commented
 * deploy/kmsrelay.conf and kmsrelay.conf(5) show every setting with the
 * table's default (and the man page says "next start" exactly for the
 * settings a reload cannot change), and the reload notes
 * (kr_conf_restart_changes) are the table's restart flags.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "conf/conf-internal.h"
#include "testutil.h"

static char *slurp(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/../%s", KR_TESTS_DIR, rel);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "\n  cannot open %s\n", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static void dotted(const struct conf_opt *o, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", o->group ? o->group : "", o->group ? "." : "", o->name);
}

/* The default as the file writes it: numbers and booleans bare, the rest
 * in double quotes. */
static void shown(const struct conf_opt *o, char *out, size_t cap)
{
    if (o->type == CT_U32 || o->type == CT_BOOL)
        snprintf(out, cap, "%s", o->def);
    else
        snprintf(out, cap, "\"%s\"", o->def);
}

/* String settings whose default is "" (none, off): the documents show an
 * example value instead. */
static int off_by_default(const struct conf_opt *o)
{
    return o->def[0] == '\0';
}

static void test_defaults_parse(void)
{
    struct kr_conf c;
    int bad = 0;
    for (size_t i = 0; i < conf_n_opts; i++) {
        const struct conf_opt *o = &conf_opts[i];
        char name[KR_CONF_SETTING_MAX];
        dotted(o, name, sizeof(name));
        memset(&c, 0, sizeof(c));
        const char *why = NULL;
        if (conf_default_value(&c, o) != 0)
            why = "default does not parse";
        else if (!o->doc || !o->doc[0])
            why = "no documentation line";
        else if (o->type == CT_U32 || o->type == CT_DUR || o->type == CT_SIZE) {
            uint64_t v = o->type == CT_U32 ? *(uint32_t *)(void *)((char *)&c + o->off)
                                           : *(uint64_t *)(void *)((char *)&c + o->off);
            if (v < o->min || v > o->max)
                why = "default out of bounds";
        }
        if (why) {
            fprintf(stderr, "\n  %s: %s (\"%s\")", name, why, o->def);
            bad++;
        }
        for (size_t j = 0; j < i; j++)
            if (conf_opts[j].off == o->off) {
                fprintf(stderr, "\n  %s: field declared twice", name);
                bad++;
            }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_defaults_from_table(void)
{
    struct kr_conf c, one;
    kr_conf_defaults(&c);
    for (size_t i = 0; i < conf_n_opts; i++) {
        memset(&one, 0, sizeof(one));
        CU_ASSERT_EQUAL(conf_default_value(&one, &conf_opts[i]), 0);
        CU_ASSERT_TRUE(conf_value_equal(&conf_opts[i], &c, &one));
    }
    CU_ASSERT_EQUAL(c.log_debug, 0);
    CU_ASSERT_EQUAL(c.n_listen, 2);
    CU_ASSERT_EQUAL(c.n_allow, 6);
    CU_ASSERT_EQUAL(c.n_hosts, 0);
}

/* deploy/kmsrelay.conf: "#name = DEFAULT;" inside the setting's group. */
static int conf_file_shows(const char *text, const struct conf_opt *o)
{
    char want[256], value[200];
    shown(o, value, sizeof(value));
    if (off_by_default(o)) /* an example value */
        snprintf(want, sizeof(want), "#%s = ", o->name);
    else
        snprintf(want, sizeof(want), "#%s = %s;", o->name, value);
    const char *group = NULL;
    char gname[64];
    for (const char *ln = text; ln && *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : NULL) {
        size_t len = strcspn(ln, "\n");
        if (sscanf(ln, "%63[a-z_]: {", gname) == 1 && strstr(ln, "{") &&
            !isspace((unsigned char)ln[0])) {
            group = gname;
            continue;
        }
        if (strncmp(ln, "};", 2) == 0) {
            group = NULL;
            continue;
        }
        const char *p = ln;
        while (*p == ' ')
            p++;
        if ((group == NULL) != (o->group == NULL) || (group && strcmp(group, o->group) != 0))
            continue;
        size_t wl = strlen(want);
        if ((size_t)(p - ln) + wl <= len && strncmp(p, want, wl) == 0)
            return 1;
    }
    return 0;
}

static void test_deploy_conf(void)
{
    char *text = slurp("deploy/kmsrelay.conf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int bad = 0;
    for (size_t i = 0; i < conf_n_opts; i++)
        if (!conf_file_shows(text, &conf_opts[i])) {
            char name[KR_CONF_SETTING_MAX], value[200];
            dotted(&conf_opts[i], name, sizeof(name));
            shown(&conf_opts[i], value, sizeof(value));
            fprintf(stderr, "\n  deploy/kmsrelay.conf does not show #%s = %s;", name, value);
            bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
    free(text);
}

/* The man page with \(dq as " and \- as -, in place. */
static void man_plain(char *t)
{
    char *w = t;
    for (const char *r = t; *r;) {
        if (strncmp(r, "\\(dq", 4) == 0) {
            *w++ = '"';
            r += 4;
        } else if (strncmp(r, "\\-", 2) == 0) {
            *w++ = '-';
            r += 2;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* The text of o's entry in its section (".SH TOP LEVEL" or ".SH GROUP"):
 * from the .BR line naming it to the next .TP, .SH or .PP. 0 when absent. */
static int man_entry(const char *man, const struct conf_opt *o, const char **start, size_t *len)
{
    char sect[64], key[96];
    size_t k = 0;
    const char *g = o->group ? o->group : "top level";
    for (; g[k] && k < sizeof(sect) - 1; k++)
        sect[k] = (char)toupper((unsigned char)g[k]);
    sect[k] = '\0';
    char head[80];
    snprintf(head, sizeof(head), "\n.SH %s\n", sect);
    const char *s = strstr(man, head);
    if (!s)
        return 0;
    s += strlen(head);
    const char *end = strstr(s, "\n.SH ");
    if (!end)
        end = s + strlen(s);
    snprintf(key, sizeof(key), "%s \" = ", o->name);
    for (const char *p = s; (p = strstr(p, key)) && p < end; p++) {
        /* ".BR name" at a line start, or a second setting on the line: "; " name */
        int at_line = p - 4 >= s && strncmp(p - 4, ".BR ", 4) == 0 && p[-5] == '\n';
        int second = p - 4 >= s && strncmp(p - 4, "; \" ", 4) == 0;
        if (!at_line && !second)
            continue;
        const char *q = p;
        const char *stop = end;
        const char *marks[] = {"\n.TP", "\n.PP", "\n.RS"};
        for (size_t m = 0; m < 3; m++) {
            const char *x = strstr(q, marks[m]);
            if (x && x < stop)
                stop = x;
        }
        *start = p;
        *len = (size_t)(stop - p);
        return 1;
    }
    return 0;
}

static void test_man_page(void)
{
    char *man = slurp("doc/kmsrelay.conf.5");
    CU_ASSERT_PTR_NOT_NULL_FATAL(man);
    man_plain(man);
    int bad = 0;
    for (size_t i = 0; i < conf_n_opts; i++) {
        const struct conf_opt *o = &conf_opts[i];
        char name[KR_CONF_SETTING_MAX], value[200], want[300];
        dotted(o, name, sizeof(name));
        shown(o, value, sizeof(value));
        const char *e = NULL;
        size_t len = 0;
        if (!man_entry(man, o, &e, &len)) {
            fprintf(stderr, "\n  kmsrelay.conf(5) does not document %s", name);
            bad++;
            continue;
        }
        snprintf(want, sizeof(want), "%s \" = %s;", o->name, value);
        if (!off_by_default(o) && strncmp(e, want, strlen(want)) != 0) {
            fprintf(stderr, "\n  kmsrelay.conf(5) does not show %s = %s", name, value);
            bad++;
        }
        char *entry = strndup(e, len);
        int says = strstr(entry, "next start") != NULL;
        free(entry);
        if (says != (int)o->restart) {
            fprintf(stderr, "\n  kmsrelay.conf(5), %s: %s", name,
                    o->restart ? "needs a restart but the page does not say \"next start\""
                               : "says \"next start\" but a reload applies it");
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(man);
}

/* Changes o's value in c to something else of the same type. */
static void perturb(struct kr_conf *c, const struct conf_opt *o)
{
    char *f = (char *)c + o->off;
    switch (o->type) {
    case CT_U32:
    case CT_MODE:
        *(uint32_t *)(void *)f ^= 1;
        break;
    case CT_DUR:
    case CT_SIZE:
        *(uint64_t *)(void *)f += 1;
        break;
    case CT_BOOL:
    case CT_FAILBACK:
    case CT_TARGET:
    case CT_LEVEL:
        *(int *)(void *)f ^= 1;
        break;
    case CT_NAME:
    case CT_PATH:
    case CT_GROUP:
        snprintf(f, KR_CONF_NAME_MAX, "%s", f[0] == 'x' ? "y" : "x");
        break;
    }
}

static void test_reload_notes(void)
{
    struct kr_conf a, b;
    char names[8][KR_CONF_SETTING_MAX];
    kr_conf_defaults(&a);
    b = a;
    CU_ASSERT_EQUAL(kr_conf_restart_changes(&a, &b, names, 8), 0);
    for (size_t i = 0; i < conf_n_opts; i++) {
        const struct conf_opt *o = &conf_opts[i];
        char name[KR_CONF_SETTING_MAX];
        dotted(o, name, sizeof(name));
        b = a;
        perturb(&b, o);
        CU_ASSERT_FALSE(conf_value_equal(o, &a, &b));
        size_t n = kr_conf_restart_changes(&a, &b, names, 8);
        CU_ASSERT_EQUAL(n, o->restart ? 1 : 0);
        if (n == 1)
            CU_ASSERT_STRING_EQUAL(names[0], name);
        CU_ASSERT_EQUAL(kr_conf_needs_restart(name), o->restart ? 1 : 0);
    }
    /* The settings kmsrelayd has always named in its reload notes. */
    static const char *const restart[] = {"state_dir", "store.map_size", "store.commit_interval",
                                          "store.commit_batch", "control.socket"};
    for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
        CU_ASSERT_EQUAL(kr_conf_needs_restart(restart[i]), 1);
    CU_ASSERT_EQUAL(kr_conf_needs_restart("clients.rate"), 0);
    CU_ASSERT_EQUAL(kr_conf_needs_restart("store.nope"), -1);
    /* More changes than room: the count is still right. */
    b = a;
    for (size_t i = 0; i < conf_n_opts; i++)
        perturb(&b, &conf_opts[i]);
    /* 5, plus the 9 of the peers group (links are set up at start only) */
    CU_ASSERT_EQUAL(kr_conf_restart_changes(&a, &b, names, 2), 14);
}

KR_SUITE(settings)
{
    CU_pSuite s = CU_add_suite("settings", NULL, NULL);
    CU_add_test(s, "defaults parse, within bounds", test_defaults_parse);
    CU_add_test(s, "kr_conf_defaults is the table", test_defaults_from_table);
    CU_add_test(s, "deploy/kmsrelay.conf shows the table", test_deploy_conf);
    CU_add_test(s, "kmsrelay.conf(5) shows the table", test_man_page);
    CU_add_test(s, "reload notes from the table", test_reload_notes);
}
