/*
 * netaddr.h - socket addresses as operators write them, and clocks.
 *
 * Accepted forms: "1.2.3.4:1688", "[::1]:1688", "[::]:1688", "host:1688"
 * (numeric only: the daemon never blocks on a resolver), and a bare port
 * "1688" meaning the wildcard address of `family_hint` (AF_INET or AF_INET6).
 *
 * Ownership: plain values, nothing allocates.
 */
#ifndef KMSRELAY_NETADDR_H
#define KMSRELAY_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define KR_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" and a NUL, with room */

struct kr_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses a numeric address with a port; returns 0 or KR_EMALF with *why set. */
int kr_addr_parse(const char *text, int family_hint, struct kr_addr *out, const char **why);

/* Formats as "1.2.3.4:1688" or "[::1]:1688". */
void kr_addr_format(const struct sockaddr *sa, char out[KR_ADDRSTRLEN]);

/* Port of an AF_INET/AF_INET6 address (host order), 0 otherwise. */
uint16_t kr_addr_port(const struct sockaddr *sa);

/* Monotonic clock in microseconds (for latencies and deadlines). */
uint64_t kr_now_us(void);

/* Wall clock in seconds since the Unix epoch. */
int64_t kr_wall_s(void);

#endif
