/* err.c - text for the KR_E* codes. */
#include "kmsrelay/err.h"

const char *kr_strerror(int err)
{
    switch (err) {
    case KR_OK:
        return "success";
    case KR_EMORE:
        return "need more bytes";
    case KR_EMALF:
        return "malformed input";
    case KR_ETOOBIG:
        return "length over limit";
    case KR_EUNSUP:
        return "unsupported";
    case KR_ENOSPC:
        return "no space left";
    case KR_EINVAL:
        return "invalid argument";
    case KR_ENOMEM:
        return "out of memory";
    case KR_ECRYPTO:
        return "crypto library error";
    case KR_EIO:
        return "I/O error";
    case KR_ENOENT:
        return "not found";
    case KR_EEXIST:
        return "already exists";
    case KR_ETIMEDOUT:
        return "timed out";
    case KR_ECONFIG:
        return "configuration error";
    default:
        return "unknown error";
    }
}
