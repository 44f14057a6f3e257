/*
 * main.c - kmsrelayd: parses the command line and hands over to the daemon
 * (src/daemon), which loads the configuration the same way at start and on
 * every reload through load() below.
 */
#include "daemon/daemon.h"
#include "kmsrelayd/kmsrelayd.h"

static int load(void *arg, struct kr_conf **out, char *err, size_t errlen)
{
    return kd_build_conf(arg, out, err, errlen);
}

int main(int argc, char **argv)
{
    struct kd_opts opts = {0};
    int rc = kd_parse_args(argc, argv, &opts);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct kr_daemon_opts o = {
        .config = opts.config,
        .debug = opts.debug,
        .check = opts.check,
        .report = opts.report,
        .port_file = opts.port_file,
        .load = load,
        .load_arg = &opts,
    };
    return kr_daemon_main(&o);
}
