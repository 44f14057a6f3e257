/*
 * addr.h - inside src/dnsclient (and its unit test): how addr.c joins the
 * answers of a name's A and AAAA queries into one kr_dns_addrs.
 *
 * Ownership: borrows both results for the call.
 */
#ifndef KR_DNSCLIENT_ADDR_H
#define KR_DNSCLIENT_ADDR_H

#include <stdint.h>

#include "kmsrelay/dns.h"

/* The addresses of both answers (IPv4 first, byte order, no duplicates,
 * every one with `port`), their least TTL, and when there is none: absent
 * (both answers say so) and why. */
void kr_dns_addrs_join(const struct kr_dns_result *a, const struct kr_dns_result *aaaa,
                       uint16_t port, struct kr_dns_addrs *out);

#endif
