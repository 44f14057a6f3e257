/*
 * err.h - the one error space of kmsrelay.
 *
 * Every function that can fail returns an int: 0 on success or one of the
 * negative KR_E* codes below. Codecs distinguish "need more bytes"
 * (KR_EMORE, the caller should read on) from "malformed" (KR_EMALF, the
 * peer sent something wrong); this difference drives every read loop.
 *
 * Decoders also take an optional `const char **why`: on failure it is set to
 * a static, human-readable reason ("frag_length 12 is shorter than the
 * header"), never to be freed. Pass NULL when the reason is not wanted.
 */
#ifndef KMSRELAY_ERR_H
#define KMSRELAY_ERR_H

enum kr_err {
    KR_OK = 0,
    KR_EMORE = -1,   /* input is a valid prefix: need more bytes */
    KR_EMALF = -2,   /* input is malformed */
    KR_ETOOBIG = -3, /* a length exceeds a documented cap */
    KR_EUNSUP = -4,  /* well formed, but a feature we do not support */
    KR_ENOSPC = -5,  /* the output buffer is too small */
    KR_EINVAL = -6,  /* a bad argument from our own caller */
    KR_ENOMEM = -7,  /* allocation failed */
    KR_ECRYPTO = -8, /* the crypto library failed */
    KR_EIO = -9,     /* an I/O or system call failed; see errno */
    KR_ENOENT = -10, /* not found */
    KR_EEXIST = -11, /* already exists */
    KR_ETIMEDOUT = -12,
    KR_ECONFIG = -13, /* configuration rejected */
};

/* Static text for a KR_E* code; "unknown error" for anything else. */
const char *kr_strerror(int err);

/* Set *why to `msg` when why is not NULL; returns `err` so that decoders can
 * write `return kr_fail(why, KR_EMALF, "...")`. */
static inline int kr_fail(const char **why, int err, const char *msg)
{
    if (why)
        *why = msg;
    return err;
}

#endif
