/*
 * ctl.h - kmsrelayctl's command table. Each command is one entry; the usage
 * text and `help` output are generated from the table, so a command can
 * never be missing from the help.
 *
 * Exit codes (documented in kmsrelayctl(8)):
 *   0 success; 1 the command ran and found problems (a failed decode, audit
 *   findings); 2 usage or input error; 3 the daemon could not be reached.
 */
#ifndef KR_CTL_H
#define KR_CTL_H

#define CTL_EXIT_OK 0
#define CTL_EXIT_FINDINGS 1
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_UNREACHABLE 3

struct ctl_opts {
    int json;           /* --json: machine-readable output */
    const char *socket; /* control socket path */
};

struct ctl_cmd {
    const char *name;
    const char *args; /* argument synopsis */
    const char *help; /* one line */
    int (*run)(const struct ctl_opts *o, int argc, char **argv);
};

int ctl_cmd_decode(const struct ctl_opts *o, int argc, char **argv);
int ctl_cmd_store(const struct ctl_opts *o, int argc, char **argv);

#endif
