/*
 * app.c - kms-loadgen's run: outputs, population, the load, the reports
 * (main.c parses the options). A simulated KMS client population.
 *
 * Builds real V4/V5/V6 activation requests (integrity fields zero, so they can
 * never activate anything), runs N of them at concurrency C against one or
 * more KMS hosts or proxies, checks every answer and reports counts,
 * throughput and latency. Exit 0 only when every activation was ok.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "loadgen/loadgen.h"

/* Thousands of sockets at -c in the thousands, plus TIME_WAIT churn. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int lg_main(struct lg_config *cfgp)
{
    struct lg_config cfg = *cfgp; /* taken: freed here */
    struct lg_client *clients = NULL;
    struct lg_results *res = NULL;
    FILE *json = NULL, *latf = NULL;
    int rc = 1;

    /* Open the output first: a typo in --json should not cost a whole run. */
    if (cfg.json_path) {
        json = strcmp(cfg.json_path, "-") == 0 ? stdout : fopen(cfg.json_path, "w");
        if (!json) {
            fprintf(stderr, "kms-loadgen: --json: cannot open '%s': %s\n", cfg.json_path,
                    strerror(errno));
            lg_config_free(&cfg);
            return 2;
        }
    }
    if (cfg.latency_path && !(latf = fopen(cfg.latency_path, "w"))) {
        fprintf(stderr, "kms-loadgen: --latency-file: cannot open '%s': %s\n", cfg.latency_path,
                strerror(errno));
        if (json && json != stdout)
            fclose(json);
        lg_config_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    clients = lg_population_new(&cfg);
    res = clients ? lg_results_new(&cfg, clients) : NULL;
    if (!res) {
        fprintf(stderr, "kms-loadgen: out of memory for %u clients / %u activations\n", cfg.clients,
                cfg.activations);
        goto out;
    }
    if (lg_run_all(&cfg, clients, res) != 0)
        goto out;

    struct lg_stats *st = lg_results_stats(res);
    /* Before the text report, which sorts the latencies in place. */
    if (latf && lg_report_latencies(latf, st) != 0) {
        fprintf(stderr, "kms-loadgen: --latency-file: write failed: %s\n", strerror(errno));
        goto out;
    }
    /* With --json - the summary goes to stderr so stdout stays one document. */
    if (!cfg.quiet)
        lg_report_text(json == stdout ? stderr : stdout, &cfg, st);
    if (json && lg_report_json(json, &cfg, st, res, clients) != 0) {
        fprintf(stderr, "kms-loadgen: --json: write failed: %s\n", strerror(errno));
        goto out;
    }
    rc = st->errors == 0 ? 0 : 1;
out:
    if (json && json != stdout && fclose(json) != 0 && rc == 0) {
        fprintf(stderr, "kms-loadgen: --json: close failed: %s\n", strerror(errno));
        rc = 1;
    }
    if (latf && fclose(latf) != 0 && rc == 0) {
        fprintf(stderr, "kms-loadgen: --latency-file: close failed: %s\n", strerror(errno));
        rc = 1;
    }
    lg_results_free(res);
    free(clients);
    lg_config_free(&cfg);
    return rc;
}
