/* guid.c - Microsoft mixed-endian GUIDs <-> text. */
#include "kmsrelay/guid.h"

#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"

/* By hand rather than snprintf: it formats the CMID of every activation
 * line (11 conversions cost more than the rest of the line's fields). */
void kr_guid_format(const uint8_t w[KR_GUID_LEN], char out[KR_GUID_STRLEN])
{
    static const char hex[] = "0123456789abcdef";
    /* text order: Data1..Data3 little-endian on the wire, Data4 as is */
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        uint8_t b = w[order[i]];
        *o++ = hex[b >> 4];
        *o++ = hex[b & 15];
    }
    *o = '\0';
}

int kr_guid_parse(const char *text, uint8_t wire[KR_GUID_LEN])
{
    size_t len = strlen(text);
    if (len == 38 && text[0] == '{' && text[37] == '}') {
        text++;
        len = 36;
    }
    if (len != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
        return KR_EMALF;
    /* Big-endian text digits, in field order, without the dashes. */
    char hex[33];
    size_t h = 0;
    for (size_t i = 0; i < 36; i++)
        if (i != 8 && i != 13 && i != 18 && i != 23)
            hex[h++] = text[i];
    hex[32] = '\0';
    uint8_t be[16];
    if (kr_hex_decode(hex, be, sizeof(be)) != 16)
        return KR_EMALF;
    /* Data1, Data2 and Data3 are little-endian on the wire; Data4 is raw. */
    uint8_t w[16] = {be[3], be[2], be[1], be[0], be[5], be[4], be[7], be[6]};
    memcpy(w + 8, be + 8, 8);
    memcpy(wire, w, 16);
    return 0;
}

int kr_guid_is_zero(const uint8_t wire[KR_GUID_LEN])
{
    uint8_t acc = 0;
    for (int i = 0; i < KR_GUID_LEN; i++)
        acc |= wire[i];
    return acc == 0;
}
