/*
 * products.c - the products kms-loadgen can impersonate, and the --mix and
 * --products parsers.
 *
 * The ids come from the shared vectors (real captures) and vlmcsd's product
 * list; the N policy is the activation threshold the client sends (25 for
 * Windows clients, 5 for servers and Office).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/guid.h"
#include "loadgen/loadgen.h"

#define APP_WINDOWS "55c92734-d682-4d71-983e-d6ec3f16059f"
#define APP_OFFICE2010 "59a52881-a989-479d-af46-f275c6370663"
#define APP_OFFICE2013 "0ff1ce15-a989-479d-af46-f275c6370663"

struct lg_product lg_products[] = {
    {"win10",
     "Windows 10 Professional",
     6,
     APP_WINDOWS,
     "2de67392-b7a7-462a-b1ca-108dd189f588",
     "58e2134f-8e11-4d17-9cb2-91069c151148",
     25,
     {0},
     {0},
     {0}},
    {"server2019",
     "Windows Server 2019 Datacenter",
     6,
     APP_WINDOWS,
     "34e1ae55-27f8-4950-8877-7a03be5fb181",
     "8449b1fb-f0ea-497a-99ab-66ca96e9a0f5",
     5,
     {0},
     {0},
     {0}},
    {"office2016",
     "Office Professional Plus 2016",
     6,
     APP_OFFICE2013,
     "d450596f-894d-49e0-966a-fd39ed4c4c64",
     "85b5f61b-320b-4be3-814a-b76b2bfafc82",
     5,
     {0},
     {0},
     {0}},
    {"win8",
     "Windows 8 Professional",
     5,
     APP_WINDOWS,
     "a98bcd6d-5343-4603-8afe-5908e4611112",
     "3c40b358-5948-45af-923b-53d21fcc7e79",
     25,
     {0},
     {0},
     {0}},
    {"office2013",
     "Office Professional Plus 2013",
     5,
     APP_OFFICE2013,
     "b322da9c-a2e2-4058-9e4e-f59a6970bd69",
     "e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0",
     5,
     {0},
     {0},
     {0}},
    {"win7",
     "Windows 7 Professional",
     4,
     APP_WINDOWS,
     "b92e9980-b9d5-4821-9c94-140f632f6312",
     "7fde5219-fbfa-484a-82c9-34d1ad53e856",
     25,
     {0},
     {0},
     {0}},
    {"office2010",
     "Office Professional Plus 2010",
     4,
     APP_OFFICE2010,
     "6f327760-8c5c-417c-9b61-836a98287e0c",
     "e85af946-2e25-47b7-83e1-bebcebeac611",
     5,
     {0},
     {0},
     {0}},
};
const unsigned lg_n_products = sizeof(lg_products) / sizeof(lg_products[0]);

int lg_products_init(void)
{
    for (unsigned i = 0; i < lg_n_products; i++) {
        struct lg_product *p = &lg_products[i];
        if (kr_guid_parse(p->app_text, p->app_id) != 0 ||
            kr_guid_parse(p->sku_text, p->sku_id) != 0 ||
            kr_guid_parse(p->kms_text, p->kms_id) != 0)
            return -1;
    }
    return 0;
}

int lg_product_find(const char *name)
{
    for (unsigned i = 0; i < lg_n_products; i++)
        if (strcmp(lg_products[i].name, name) == 0)
            return (int)i;
    return -1;
}

void lg_products_print(FILE *f)
{
    fprintf(f, "%-11s %-3s %-36s %-36s %-36s %s\n", "name", "ver", "app id", "sku id", "kms id",
            "N");
    for (unsigned i = 0; i < lg_n_products; i++) {
        const struct lg_product *p = &lg_products[i];
        fprintf(f, "%-11s V%-2u %-36s %-36s %-36s %u  (%s)\n", p->name, p->ver_major, p->app_text,
                p->sku_text, p->kms_text, p->n_policy, p->desc);
    }
}

/* Splits `text` on commas into a bounded copy; calls fn per item. */
static int for_each_item(const char *text, int (*fn)(const char *item, void *arg, const char **why),
                         void *arg, const char **why)
{
    char buf[512];
    if (strlen(text) >= sizeof(buf))
        return kr_fail(why, -1, "list too long");
    strcpy(buf, text);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (fn(tok, arg, why) != 0)
            return -1;
        n++;
    }
    if (n == 0)
        return kr_fail(why, -1, "empty list");
    return 0;
}

static int mix_item(const char *item, void *arg, const char **why)
{
    unsigned *w = arg;
    unsigned ver;
    char *end;
    if ((item[0] != 'v' && item[0] != 'V') || item[1] < '4' || item[1] > '6' || item[2] != ':')
        return kr_fail(why, -1, "items must look like v6:60 (versions v4, v5, v6)");
    ver = (unsigned)(item[1] - '4');
    unsigned long v = strtoul(item + 3, &end, 10);
    if (item[3] == '\0' || *end != '\0' || v > 1000000)
        return kr_fail(why, -1, "weight must be a number from 0 to 1000000");
    w[ver] = (unsigned)v;
    return 0;
}

int lg_mix_parse(const char *text, unsigned weights[3], const char **why)
{
    unsigned w[3] = {0, 0, 0};
    if (for_each_item(text, mix_item, w, why) != 0)
        return -1;
    if (w[0] + w[1] + w[2] == 0)
        return kr_fail(why, -1, "all weights are zero");
    memcpy(weights, w, sizeof(w));
    return 0;
}

static int product_item(const char *item, void *arg, const char **why)
{
    static char msg[128];
    uint32_t *mask = arg;
    int i = lg_product_find(item);
    if (i < 0) {
        snprintf(msg, sizeof(msg), "unknown product '%.40s' (see --list-products)", item);
        return kr_fail(why, -1, msg);
    }
    *mask |= 1u << i;
    return 0;
}

int lg_products_parse(const char *text, uint32_t *mask, const char **why)
{
    uint32_t m = 0;
    if (for_each_item(text, product_item, &m, why) != 0)
        return -1;
    *mask = m;
    return 0;
}
