/*
 * epid.c - the stub host's ePID, derived from its name so that tests can
 * tell hosts apart by the ePID in their answers (kms-protocol.md 3.3).
 *
 * Form, as vlmcsd generates for a Windows Server CSVLK:
 *   PPPPP-GGGGG-KKK-KKKKKK-03-LCID-BUILD.0000-DDDYYYY
 *   03612-00206-563-462860-03-1033-17763.0000-3132025
 * platform 03612 and group 00206 (Windows Server 2016/2019/2022 KMS host
 * keys), a key id in that group's range 551000000..570999999, LCID 1033, a
 * host build among 14393/17763/20348, and an activation day 001..365 of a
 * year 2019..2024. Every field comes from SHA-256(name), so one name always
 * gives the same 49-character ePID (P = 100 bytes on the wire).
 */
#include "stubhost/stubhost.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"

void stub_epid_derive(const char *name, char out[KR_KMS_EPID_UTF8])
{
    static const unsigned builds[] = {14393, 17763, 20348};
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)name, strlen(name), h);

    uint32_t key = 551000000u + kr_le32(h) % 20000000u;
    unsigned build = builds[h[4] % 3];
    unsigned day = 1 + kr_le16(h + 5) % 365u;
    unsigned year = 2019 + h[7] % 6u;
    snprintf(out, KR_KMS_EPID_UTF8, "03612-00206-%03u-%06u-03-1033-%u.0000-%03u%04u",
             (unsigned)(key / 1000000u), (unsigned)(key % 1000000u), build, day, year);
}

int stub_epid_check(const char *epid, const char **why)
{
    /* P = (units + 1) * 2 must stay <= KR_KMS_EPID_MAX (128). */
    uint16_t units[KR_KMS_EPID_MAX / 2];
    if (!epid || !*epid)
        return kr_fail(why, KR_EINVAL, "the ePID must not be empty");
    if (strlen(epid) >= KR_KMS_EPID_UTF8)
        return kr_fail(why, KR_EINVAL, "the ePID is longer than 63 UTF-16 units");
    size_t n = kr_utf8_to_utf16(epid, units, sizeof(units) / sizeof(units[0]));
    if (n > KR_KMS_EPID_MAX / 2 - 1)
        return kr_fail(why, KR_EINVAL, "the ePID is longer than 63 UTF-16 units");
    return 0;
}
