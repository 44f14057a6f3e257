/* cmd_audit.h - `kmsrelayctl audit` (cmd_audit.c), for the command table. */
#ifndef KR_CTL_CMD_AUDIT_H
#define KR_CTL_CMD_AUDIT_H

#include "ctl/ctl.h"

int ctl_cmd_audit(const struct ctl_opts *o, int argc, char **argv);

#endif
