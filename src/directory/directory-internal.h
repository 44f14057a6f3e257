/*
 * directory-internal.h - shared by the files of src/directory: the bound
 * LDAP session (session.c) and the error text (session.c), used by the
 * reader (read.c). Not for other modules.
 */
#ifndef KR_DIRECTORY_INTERNAL_H
#define KR_DIRECTORY_INTERNAL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <ldap.h>

#include "kmsrelay/directory.h"

/* Connects to o->server (bounded by ms), binds with SASL GSSAPI as the
 * thread's default credential; NULL with err on failure. */
LDAP *kr_dir_open(const struct kr_dir_opts *o, uint64_t ms, char *err, size_t errlen);

/* "LDAP <what> on ldap://<server>: <error> (<diagnostic>)" plus what to do. */
void kr_dir_error(LDAP *ld, int rc, const char *what, const struct kr_dir_opts *o, char *err,
                  size_t errlen);

/* SIGPIPE blocked for the calling thread, and one raised meanwhile taken
 * back (libldap writes with write()). */
void kr_dir_sigpipe_block(sigset_t *old);
void kr_dir_sigpipe_restore(const sigset_t *old);

#endif
