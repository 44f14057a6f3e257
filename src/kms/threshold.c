/*
 * threshold.c - the activation threshold (kms.h): one rule for the control
 * API, the report and the metrics, so that `kmsrelayctl hosts`, `kmsrelayctl
 * report` and kmsrelay_host_activation_threshold agree on what "below the
 * threshold" means.
 */
#include <string.h>

#include "kmsrelay/kms.h"

/* The usual N_Policy of an application's clients when none is known:
 * Windows client editions ask 25 (servers 5, but one count serves both, so
 * the higher one applies); Office asks 5, and so does anything unknown
 * (kms-protocol.md 2: "25 for Windows client, 5 for server and Office"). */
#define KR_KMS_MIN_WINDOWS 25u
#define KR_KMS_MIN_OTHER 5u

uint32_t kr_kms_activation_threshold(const uint8_t app_id[16], uint32_t n_policy, int all_known)
{
    uint32_t usual =
        memcmp(app_id, kr_kms_app_windows, 16) == 0 ? KR_KMS_MIN_WINDOWS : KR_KMS_MIN_OTHER;
    if (n_policy && all_known)
        return n_policy;
    return n_policy > usual ? n_policy : usual;
}
