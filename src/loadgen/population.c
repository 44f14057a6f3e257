/*
 * population.c - the simulated clients.
 *
 * Every property of client i is a pure function of (seed, i): the same seed
 * gives the same CMIDs, versions and products whatever -n, -c or -k say, so
 * a later run can renew exactly the clients an earlier run activated.
 *
 * Layout of the k clients (--dual-office D, --clone-clients C):
 *   [0, D)            machines that activate Windows AND Office: win10 here
 *   [D, k-C-D)        machines with one product
 *   [k-C-D, k-C)      the office2016 side of client i - (k-C-D): same CMID,
 *                     workstation, VM flag and clock (one machine, two
 *                     applications, as KMS hosts count them)
 *   [k-C, k)          clones of clients [0, C)
 */
#include <stdlib.h>
#include <string.h>

#include "loadgen/loadgen.h"

/* splitmix64's finaliser: a bijective 64-bit mixer. */
uint64_t lg_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

unsigned lg_target_of(const uint8_t cmid[16], unsigned n_targets)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 16; i++) {
        h ^= cmid[i];
        h *= 0x100000001b3ull;
    }
    return n_targets ? (unsigned)(h % n_targets) : 0;
}

/* A random version-4 GUID in wire layout (Data3's high nibble is byte 7's). */
static void random_cmid(uint64_t seed, uint32_t i, uint8_t out[16])
{
    uint64_t a = lg_rand(seed, LG_RS_CMID, 2 * (uint64_t)i);
    uint64_t b = lg_rand(seed, LG_RS_CMID, 2 * (uint64_t)i + 1);
    for (int k = 0; k < 8; k++) {
        out[k] = (uint8_t)(a >> (8 * k));
        out[8 + k] = (uint8_t)(b >> (8 * k));
    }
    out[7] = (uint8_t)((out[7] & 0x0F) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);
}

static unsigned pick_product(const struct lg_config *cfg, uint32_t i)
{
    unsigned total = cfg->mix[0] + cfg->mix[1] + cfg->mix[2];
    unsigned r = (unsigned)(lg_rand(cfg->seed, LG_RS_VERSION, i) % total);
    unsigned ver = 0;
    while (r >= cfg->mix[ver]) {
        r -= cfg->mix[ver];
        ver++;
    }
    /* Options made sure that a version with weight has an allowed product. */
    unsigned cand[32], n = 0;
    for (unsigned p = 0; p < lg_n_products; p++)
        if ((cfg->product_mask & (1u << p)) && lg_products[p].ver_major == ver + 4)
            cand[n++] = p;
    return cand[lg_rand(cfg->seed, LG_RS_PRODUCT, i) % n];
}

struct lg_client *lg_population_new(const struct lg_config *cfg)
{
    uint32_t k = cfg->clients;
    uint32_t first_clone = k - cfg->clone_clients;
    uint32_t first_dual = first_clone - cfg->dual_office;
    int win = -1, office = -1;
    for (unsigned p = 0; p < lg_n_products; p++) {
        if (strcmp(lg_products[p].name, "win10") == 0)
            win = (int)p;
        if (strcmp(lg_products[p].name, "office2016") == 0)
            office = (int)p;
    }
    if (cfg->dual_office && (win < 0 || office < 0))
        return NULL;
    struct lg_client *cl = calloc(k, sizeof(*cl));
    if (!cl)
        return NULL;
    for (uint32_t i = 0; i < k; i++) {
        struct lg_client *c = &cl[i];
        if (i >= first_dual && i < first_clone) {
            const struct lg_client *orig = &cl[i - first_dual];
            memcpy(c->cmid, orig->cmid, 16);
            c->product = (uint8_t)office;
            c->vm = orig->vm;
            c->ws_index = orig->ws_index;
            c->skewed = orig->skewed;
            c->target = orig->target;
            c->last_epid = -1;
            c->tally = -1;
            continue;
        }
        if (i >= first_clone) {
            const struct lg_client *orig = &cl[i - first_clone];
            memcpy(c->cmid, orig->cmid, 16);
            c->product = orig->product;
            c->vm = orig->vm;
        } else {
            if (i < cfg->n_fixed)
                memcpy(c->cmid, cfg->fixed_cmids[i], 16);
            else
                random_cmid(cfg->seed, i, c->cmid);
            c->product = (uint8_t)(i < cfg->dual_office ? (unsigned)win : pick_product(cfg, i));
            double u = (double)(lg_rand(cfg->seed, LG_RS_VM, i) >> 11) * 0x1.0p-53;
            c->vm = u < cfg->vm_ratio;
        }
        c->ws_index = i;
        c->skewed = i < cfg->skew_clients;
        c->target = (uint8_t)lg_target_of(c->cmid, cfg->n_targets);
        c->last_epid = -1;
        c->tally = -1;
    }
    return cl;
}
