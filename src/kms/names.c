/*
 * names.c - application ids and HRESULT names for logs and the control CLI.
 * HRESULT names follow py-kms pykms_Misc.py ErrorCodes and Microsoft's
 * documentation (kms-protocol.md 5.1).
 */
#include <stddef.h>
#include <string.h>

#include "kmsrelay/kms.h"

const uint8_t kr_kms_app_windows[16] = {0x34, 0x27, 0xc9, 0x55, 0x82, 0xd6, 0x71, 0x4d,
                                        0x98, 0x3e, 0xd6, 0xec, 0x3f, 0x16, 0x05, 0x9f};
const uint8_t kr_kms_app_office2010[16] = {0x81, 0x28, 0xa5, 0x59, 0x89, 0xa9, 0x9d, 0x47,
                                           0xaf, 0x46, 0xf2, 0x75, 0xc6, 0x37, 0x06, 0x63};
const uint8_t kr_kms_app_office2013[16] = {0x15, 0xce, 0xf1, 0x0f, 0x89, 0xa9, 0x9d, 0x47,
                                           0xaf, 0x46, 0xf2, 0x75, 0xc6, 0x37, 0x06, 0x63};

static const uint8_t *const known_ids[KR_KMS_APPS_KNOWN] = {
    kr_kms_app_windows, kr_kms_app_office2010, kr_kms_app_office2013};
static const char *const known_names[KR_KMS_APPS_KNOWN] = {"Windows", "Office 2010",
                                                           "Office 2013+"};

int kr_kms_app_index(const uint8_t app_id[16])
{
    int i = 0;
    while (i < KR_KMS_APPS_KNOWN && memcmp(app_id, known_ids[i], 16) != 0)
        i++;
    return i;
}

const uint8_t *kr_kms_app_id(int idx)
{
    return idx >= 0 && idx < KR_KMS_APPS_KNOWN ? known_ids[idx] : NULL;
}

const char *kr_kms_app_label(int idx)
{
    return idx >= 0 && idx < KR_KMS_APPS_KNOWN ? known_names[idx] : "other";
}

const char *kr_kms_app_name(const uint8_t app_id[16])
{
    int i = kr_kms_app_index(app_id);
    return i < KR_KMS_APPS_KNOWN ? known_names[i] : NULL;
}

static const struct {
    uint32_t hr;
    const char *name;
} hresults[] = {
    {KR_HR_OK, "S_OK"},
    {KR_HR_INVALID_DATA, "ERROR_INVALID_DATA"},
    {0xC004C008u, "SL_E_CHPA_MAXIMUM_UNLOCK_EXCEEDED"},
    {0xC004D104u, "SL_REMAPPING_SP_STATUS_INVALIDARG"},
    {KR_HR_NOT_ENOUGH_COUNT, "SL_E_VL_NOT_ENOUGH_COUNT"},
    {0xC004F039u, "SL_E_VL_BINDING_SERVICE_NOT_ENABLED"},
    {0xC004F041u, "SL_E_VL_KEY_MANAGEMENT_SERVICE_NOT_ACTIVATED"},
    {KR_HR_KMS_ID_MISMATCH, "SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH"},
    {KR_HR_INVALID_TIMESTAMP, "SL_E_VL_INVALID_TIMESTAMP"},
    {KR_HR_NO_KMS, "SL_E_VL_BINDING_SERVICE_UNAVAILABLE"},
    /* RPC fault statuses (kms-protocol.md 1.6), listed for the same logs. */
    {0x1C010003u, "nca_s_unk_if"},
    {0x1C01000Bu, "nca_s_proto_error"},
};

const char *kr_kms_hresult_name(uint32_t hr)
{
    for (size_t i = 0; i < sizeof(hresults) / sizeof(hresults[0]); i++)
        if (hresults[i].hr == hr)
            return hresults[i].name;
    return NULL;
}
