/* hrw.c - weighted rendezvous hashing of CMIDs over backend hosts
 * (contract and rationale in kmsrelay/hrw.h).
 *
 * Everything here is frozen by design: the SipHash keys, the way u is made
 * from the hash and the logarithm decide which host every unpinned CMID goes
 * to, so a change moves clients between KMS hosts. test_hrw.c pins a few
 * results; update them only on purpose. */
#include <string.h>

#include "kmsrelay/hrw.h"

/* Fixed key for kr_hrw_key(): the ASCII of "kmsrelay" and "hrw-key1". */
#define NAME_K0 0x6b6d7372656c6179ull
#define NAME_K1 0x6872772d6b657931ull
/* Second half of the per-host SipHash key, derived from the 64-bit host key
 * (the fractional bits of the golden ratio, any fixed odd constant would do). */
#define HOST_K1_XOR 0x9e3779b97f4a7c15ull

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012), the reference algorithm. */
struct sip {
    uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static inline void sip_init(struct sip *s, uint64_t k0, uint64_t k1)
{
    s->v0 = k0 ^ 0x736f6d6570736575ull;
    s->v1 = k1 ^ 0x646f72616e646f6dull;
    s->v2 = k0 ^ 0x6c7967656e657261ull;
    s->v3 = k1 ^ 0x7465646279746573ull;
}

static inline void sip_block(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

static inline uint64_t sip_final(struct sip *s)
{
    s->v2 ^= 0xff;
    sip_round(s);
    sip_round(s);
    sip_round(s);
    sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
    struct sip s;
    sip_init(&s, k0, k1);
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        sip_block(&s, load_le64(in + i));
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t j = 0; i + j < len; j++)
        last |= (uint64_t)in[i + j] << (8 * j);
    sip_block(&s, last);
    return sip_final(&s);
}

/* The same for exactly 16 bytes, unrolled: this is the per-host hot path. */
static inline uint64_t siphash24_16(uint64_t k0, uint64_t k1, uint64_t m0, uint64_t m1)
{
    struct sip s;
    sip_init(&s, k0, k1);
    sip_block(&s, m0);
    sip_block(&s, m1);
    sip_block(&s, (uint64_t)16 << 56);
    return sip_final(&s);
}

/*
 * -ln(u) for u in (0,1), from IEEE-754 bits and a series, not libm: the
 * result must be bit-identical on every build that will ever route the same
 * CMIDs. u = 2^e * m with m in [sqrt(1/2), sqrt(2)), and
 * ln(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1),
 * |s| <= 0.172, so 12 terms reach double precision.
 */
static double neg_ln(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1,2) */
    double m;
    memcpy(&m, &bits, sizeof(m));
    if (m > 1.4142135623730951) {
        m *= 0.5; /* exact */
        e++;
    }
    double s = (m - 1.0) / (m + 1.0), z = s * s, z2 = z * z, z4 = z2 * z2;
    /* sum of z^k / (2k+1) for k = 0..11, in Estrin's scheme: a shallow tree
     * instead of a 12-deep chain, as this sits on the per-host path. */
    double p0 = 1.0 + z * (1.0 / 3), p1 = 1.0 / 5 + z * (1.0 / 7);
    double p2 = 1.0 / 9 + z * (1.0 / 11), p3 = 1.0 / 13 + z * (1.0 / 15);
    double p4 = 1.0 / 17 + z * (1.0 / 19), p5 = 1.0 / 21 + z * (1.0 / 23);
    double t = (p0 + z2 * p1) + z4 * ((p2 + z2 * p3) + z4 * (p4 + z2 * p5));
    double ln_m = 2.0 * s * t;
    return -((double)e * 0.69314718055994530942 + ln_m);
}

uint64_t kr_hrw_key(const char *name)
{
    return siphash24(NAME_K0, NAME_K1, (const uint8_t *)name, strlen(name));
}

/* u for this host and CMID: an odd multiple of 2^-53, so u lies in
 * [2^-53, 1 - 2^-53], is exact in a double, and neither ln(0) nor ln(1) = 0
 * (a division by zero) can happen. */
static inline double host_u(const struct kr_hrw_node *n, uint64_t m0, uint64_t m1)
{
    uint64_t h = siphash24_16(n->key, n->key ^ HOST_K1_XOR, m0, m1);
    return (double)((h >> 11) | 1) * 0x1p-53;
}

/* Score with the CMID already loaded as two little-endian words. */
static inline double score(const struct kr_hrw_node *n, uint64_t m0, uint64_t m1)
{
    if (n->weight == 0)
        return 0.0;
    return (double)n->weight / neg_ln(host_u(n, m0, m1));
}

double kr_hrw_score(const struct kr_hrw_node *n, const uint8_t cmid[16])
{
    return score(n, load_le64(cmid), load_le64(cmid + 8));
}

/* 1 when a ranks before b: higher score, then larger key (exact ties only
 * come from duplicate names; the caller settles those by index). Written
 * without branches: the outcome is a coin flip the CPU cannot predict. */
static inline int beats(double sa, uint64_t ka, double sb, uint64_t kb)
{
    return (sa > sb) | ((sa == sb) & (ka > kb));
}

int kr_hrw_best(const struct kr_hrw_node *nodes, size_t n, const uint8_t cmid[16])
{
    if (n > KR_HRW_MAX_NODES)
        return -1;
    uint64_t m0 = load_le64(cmid), m1 = load_le64(cmid + 8);
    int best = -1;
    double best_score = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].weight == 0)
            continue;
        double u = host_u(&nodes[i], m0, m1);
        /* Skip the logarithm when this host cannot win: -ln(u) >= 1 - u, so
         * w / (1 - u) bounds its score (1 - u is exact). The margin covers
         * the last-bit error of neg_ln(), so skipping never changes the
         * answer, it only saves most logarithms once a strong host is seen. */
        if (best >= 0 && (double)nodes[i].weight / (1.0 - u) * (1.0 + 0x1p-20) < best_score)
            continue;
        double sc = (double)nodes[i].weight / neg_ln(u);
        if (best < 0 || beats(sc, nodes[i].key, best_score, nodes[best].key)) {
            best = (int)i;
            best_score = sc;
        }
    }
    return best;
}

size_t kr_hrw_rank(const struct kr_hrw_node *nodes, size_t n, const uint8_t cmid[16],
                   uint16_t *order_out, size_t max_out)
{
    if (n > KR_HRW_MAX_NODES || max_out == 0)
        return 0;
    uint64_t m0 = load_le64(cmid), m1 = load_le64(cmid + 8);
    double sc[KR_HRW_MAX_NODES];
    uint64_t key[KR_HRW_MAX_NODES];
    uint16_t idx[KR_HRW_MAX_NODES];
    size_t m = 0; /* eligible nodes, in index order */
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].weight == 0)
            continue;
        sc[m] = score(&nodes[i], m0, m1);
        key[m] = nodes[i].key;
        idx[m++] = (uint16_t)i;
    }
    /* Each node's place is the number of nodes that beat it (an equal one
     * with a lower index counts as beating it). O(m^2) comparisons, but
     * branch-free: for pool sizes (a handful of hosts) this is faster than
     * any sort, whose every comparison would be a mispredicted branch. */
    for (size_t a = 0; a < m; a++) {
        size_t place = 0;
        for (size_t b = 0; b < m; b++)
            place += (size_t)(beats(sc[b], key[b], sc[a], key[a]) |
                              ((sc[b] == sc[a]) & (key[b] == key[a]) & (b < a)));
        if (place < max_out)
            order_out[place] = idx[a];
    }
    return m < max_out ? m : max_out;
}
