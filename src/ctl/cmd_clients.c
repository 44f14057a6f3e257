/*
 * cmd_clients.c - kmsrelayctl clients [--app A] [--host H] [--since D]
 * [--limit N] [--format table|json|csv]
 *
 * JSON and CSV are rendered by the daemon while it walks the pins (a big
 * list never becomes a big in-memory document on either side) and printed
 * here unchanged; the table is drawn from the JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"

static const char usage_text[] =
    "usage: kmsrelayctl clients [--app A] [--host H] [--since D] [--limit N]\n"
    "                           [--format table|json|csv]\n"
    "  --app A     Windows, Office2010, Office2013 (or Office), other, or an application GUID\n"
    "  --host H    clients pinned to host H\n"
    "  --since D   seen within D (a duration: 7d, 12h, 30m)\n"
    "  --limit N   at most N clients (default all)\n";

static void add_param(char *path, size_t cap, const char *key, const char *val)
{
    size_t l = strlen(path);
    snprintf(path + l, cap - l, "%s%s=", strchr(path, '?') ? "&" : "?", key);
    ctl_urlencode(val, path, cap);
}

static void print_table(const json_t *doc)
{
    static const char *const heads[] = {"CMID",      "WORKSTATION", "HOST", "APPLICATION",
                                        "LAST SEEN", "RESULT",      "COUNT"};
    static const char *const keys[] = {"cmid",      "workstation", "host", "application",
                                       "last_seen", "last_result", "count"};
    const json_t *list = json_object_get(doc, "clients"), *c;
    struct ctl_table *t = ctl_table_new(7, heads);
    size_t i;

    ctl_table_right(t, 6);
    json_array_foreach(list, i, c)
    {
        char b[7][80], tmp[32];
        const char *row[7];
        for (int k = 0; k < 7; k++) {
            const char *v = ctl_jstr(c, keys[k], tmp, sizeof(tmp));
            /* Workstation names can be long FQDNs: keep the table narrow. */
            if (k == 1 && strlen(v) > 28)
                snprintf(b[k], sizeof(b[k]), "%.27s~", v);
            else
                snprintf(b[k], sizeof(b[k]), "%s", v);
            row[k] = b[k][0] ? b[k] : "-";
        }
        /* The result by name when it is not plain success. */
        const json_t *rn = json_object_get(c, "last_result_name");
        if (json_is_string(rn) && strcmp(json_string_value(rn), "S_OK") != 0)
            snprintf(b[5], sizeof(b[5]), "%s", json_string_value(rn));
        else if (json_is_string(rn))
            snprintf(b[5], sizeof(b[5]), "ok");
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    printf("\n%lld client(s)", ctl_jint(doc, "count"));
    if (json_is_true(json_object_get(doc, "truncated")))
        printf(" of %lld matching (raise --limit to see more)", ctl_jint(doc, "matched"));
    printf("\n");
}

int ctl_cmd_clients(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    struct ctl_argv a = {argc, argv, 0};
    const char *app = NULL, *host = NULL, *since = NULL, *limit = NULL, *format = "table", *v;
    char path[1024] = "/v1/clients";
    bool missing = false;
    struct ctl_resp r;
    int rc;

    while (a.i < argc && !missing) {
        if (ctl_opt_flag(&a, "--json"))
            format = "json";
        else if ((v = ctl_opt_value(&a, "--app", &missing)))
            app = v;
        else if ((v = ctl_opt_value(&a, "--host", &missing)))
            host = v;
        else if ((v = ctl_opt_value(&a, "--since", &missing)))
            since = v;
        else if ((v = ctl_opt_value(&a, "--limit", &missing)))
            limit = v;
        else if ((v = ctl_opt_value(&a, "--format", &missing)))
            format = v;
        else if (!missing) {
            fputs(usage_text, stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (missing) {
        fprintf(stderr, "kmsrelayctl: %s needs a value\n%s", argv[argc - 1], usage_text);
        return CTL_EXIT_USAGE;
    }
    if (o.json && strcmp(format, "table") == 0)
        format = "json";
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
        fprintf(stderr, "kmsrelayctl: --format table, json or csv\n");
        return CTL_EXIT_USAGE;
    }
    if (app)
        add_param(path, sizeof(path), "app", app);
    if (host)
        add_param(path, sizeof(path), "host", host);
    if (since)
        add_param(path, sizeof(path), "since", since);
    if (limit)
        add_param(path, sizeof(path), "limit", limit);
    add_param(path, sizeof(path), "format", strcmp(format, "csv") == 0 ? "csv" : "json");

    if ((rc = ctl_http(&o, "GET", path, NULL, &r)) != 0)
        return rc;
    if (r.status != 200 || strcmp(format, "table") == 0)
        ctl_resp_json(&r);
    if (r.status != 200) {
        const json_t *e = r.json ? json_object_get(r.json, "error") : NULL;
        fprintf(stderr, "kmsrelayctl: %s\n",
                json_is_string(e) ? json_string_value(e) : "the daemon refused the request");
        rc = ctl_exit_for_status(r.status);
    } else if (strcmp(format, "table") == 0) {
        if (r.json)
            print_table(r.json);
        else
            fprintf(stderr, "kmsrelayctl: the daemon's answer is not JSON\n"), rc = 1;
    } else {
        fwrite(r.body, 1, r.body_len, stdout);
    }
    ctl_resp_free(&r);
    return rc;
}
