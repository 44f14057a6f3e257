/* fuzz_conf.c - the configuration loader on arbitrary text: libconfig parses
 * it from memory and the same checks as kr_conf_load run over the tree.
 * Whatever the input, no crash, and a failure always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "conf/conf-internal.h"
#include "kmsrelay/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5's scanner itself leaks on some syntax errors (an unfinished
 * string literal, a token cut short): not ours to fix, so not reported. Run
 * libFuzzer with -detect_leaks=0 for the same reason. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    /* @include would make the fuzzer read arbitrary files (/dev/zero...). */
    if (memchr(d, '@', n))
        return 0;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, d, n);
    text[n] = '\0';

    config_t cfg;
    config_init(&cfg);
    if (config_read_string(&cfg, text) == CONFIG_TRUE) {
        char errs[2048];
        struct conf_errs e;
        struct kr_conf *c = NULL;
        conf_errs_init(&e, errs, sizeof(errs));
        int rc = conf_load_tree(&cfg, "fuzz.conf", &c, &e);
        if (rc == 0) {
            if (!c || e.n != 0)
                abort();
            /* A loaded config is self-consistent. */
            kr_conf_validate(c, errs, sizeof(errs));
            free(c);
        } else if (rc != KR_ECONFIG || e.n == 0 || errs[0] == '\0' || c) {
            abort();
        }
    }
    config_destroy(&cfg);
    free(text);
    return 0;
}
