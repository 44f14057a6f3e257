/*
 * print.c - the human-readable form of a decoded conversation. It reads the
 * JSON object built by kr_diag_decode, so text and --json can never disagree.
 */
#include "kmsrelay/diag.h"

#include <string.h>

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long num(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void print_contexts(FILE *out, const json_t *items)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        json_t *ts = json_array_get(json_object_get(it, "transfer_syntaxes"), 0);
        fprintf(out, "    ctx %lld: %s v%lld.%lld / %s v%lld", num(it, "ctx_id"),
                json_is_true(json_object_get(it, "kms_interface")) ? "KMS" : str(it, "interface"),
                num(it, "interface_version_major"), num(it, "interface_version_minor"),
                ts ? str(ts, "kind") : "none", ts ? num(ts, "version") : 0);
        if (json_object_get(it, "btfn_mask"))
            fprintf(out, " mask=0x%llx", num(it, "btfn_mask"));
        fputc('\n', out);
    }
}

static void print_results(FILE *out, const json_t *results)
{
    size_t i;
    json_t *it;
    json_array_foreach(results, i, it)
    {
        const json_t *ts = json_object_get(it, "transfer_syntax");
        fprintf(out, "    result %zu: %s reason=%lld syntax=%s v%lld\n", i, str(it, "result"),
                num(it, "reason"), str(ts, "kind"), num(ts, "version"));
    }
}

static void print_kms(FILE *out, const json_t *k, int is_response)
{
    if (!k)
        return;
    if (!is_response) {
        const char *app = json_string_value(json_object_get(k, "app"));
        fprintf(out,
                "    KMS %s request: cmid=%s\n"
                "      app=%s (%s) sku=%s kms_id=%s\n"
                "      n_policy=%lld vm=%s license_status=%lld grace=%lld min\n"
                "      time=%s UTC workstation=\"%s\" previous_cmid=%s\n",
                str(k, "kms_version"), str(k, "cmid"), str(k, "app_id"), app ? app : "unknown",
                str(k, "sku_id"), str(k, "kms_id"), num(k, "n_policy"),
                json_is_true(json_object_get(k, "is_vm")) ? "yes" : "no", num(k, "license_status"),
                num(k, "grace_minutes"), str(k, "request_time_utc"), str(k, "workstation"),
                str(k, "previous_cmid"));
        return;
    }
    fprintf(out,
            "    KMS %s response: epid=%s\n"
            "      cmid_echo=%s count=%lld activation=%lld min renewal=%lld min",
            str(k, "kms_version"), str(k, "epid"), str(k, "cmid_echo"), num(k, "count"),
            num(k, "activation_interval"), num(k, "renewal_interval"));
    if (json_object_get(k, "hwid"))
        fprintf(out, " hwid=%s", str(k, "hwid"));
    fputc('\n', out);
}

void kr_diag_print(FILE *out, const json_t *decoded)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(decoded, "pdus"), i, p)
    {
        const char *type = str(p, "type");
        fprintf(out, "#%zu %s %s", i + 1, str(p, "dir"), type);
        if (json_object_get(p, "call_id"))
            fprintf(out, " call_id=%lld", num(p, "call_id"));
        fprintf(out, " length=%lld", num(p, "length"));
        if (json_object_get(p, "ctx_id"))
            fprintf(out, " ctx=%lld", num(p, "ctx_id"));
        if (json_object_get(p, "ndr"))
            fprintf(out, " %s%s", str(p, "ndr"),
                    json_is_true(json_object_get(p, "ndr_guessed")) ? " (guessed)" : "");
        if (json_object_get(p, "sec_addr"))
            fprintf(out, " sec_addr=\"%s\"", str(p, "sec_addr"));
        if (json_object_get(p, "hresult")) {
            fprintf(out, " hresult=%s", str(p, "hresult"));
            if (json_object_get(p, "hresult_name"))
                fprintf(out, " (%s)", str(p, "hresult_name"));
        }
        if (json_object_get(p, "status"))
            fprintf(out, " status=%s", str(p, "status"));
        fputc('\n', out);
        if (json_object_get(p, "error"))
            fprintf(out, "    error: %s\n", str(p, "error"));
        if (json_object_get(p, "contexts"))
            print_contexts(out, json_object_get(p, "contexts"));
        if (json_object_get(p, "results"))
            print_results(out, json_object_get(p, "results"));
        print_kms(out, json_object_get(p, "kms"), strcmp(type, "response") == 0);
    }
    size_t nreq = json_array_size(json_object_get(decoded, "requests"));
    size_t nresp = json_array_size(json_object_get(decoded, "responses"));
    fprintf(out, "%zu PDUs, %zu KMS requests, %zu successful responses", i, nreq, nresp);
    if (json_object_get(decoded, "hresult"))
        fprintf(out, ", result %s", str(decoded, "hresult"));
    fputc('\n', out);
}
