/*
 * test_directory.c - the directory module's name handling (src/directory/
 * names.c): which dnsNode names are _vlmcs names and their owner names,
 * names that cannot be DNS names rejected with a reason, zone DNs escaped
 * for LDAP, DNS partitions recognised. (The LDAP reading itself is tested
 * against Samba: tests/integration/test_ad_audit.py.)
 */
#include <CUnit/CUnit.h>

#include <string.h>

#include "kmsrelay/directory.h"
#include "kmsrelay/err.h"
#include "testutil.h"

static void t_owner(void)
{
    char out[KR_DNS_NAME_MAX];
    const char *why;
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp", "corp.test", out, sizeof(out), &why), 0);
    CU_ASSERT_STRING_EQUAL(out, "_vlmcs._tcp.corp.test.");
    CU_ASSERT_EQUAL(kr_dir_owner("_VLMCS._tcp.Child", "Corp.Test.", out, sizeof(out), &why), 0);
    CU_ASSERT_STRING_EQUAL(out, "_vlmcs._tcp.child.corp.test.");
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp.a.b-c", "corp.test", out, sizeof(out), &why), 0);
    CU_ASSERT_STRING_EQUAL(out, "_vlmcs._tcp.a.b-c.corp.test.");
    /* the apex only when the zone itself is the _vlmcs name */
    CU_ASSERT_EQUAL(kr_dir_owner("@", "_vlmcs._tcp.corp.test", out, sizeof(out), &why), 0);
    CU_ASSERT_STRING_EQUAL(out, "_vlmcs._tcp.corp.test.");
    CU_ASSERT_EQUAL(kr_dir_owner("@", "corp.test", out, sizeof(out), &why), KR_ENOENT);
    /* other names */
    CU_ASSERT_EQUAL(kr_dir_owner("_ldap._tcp", "corp.test", out, sizeof(out), &why), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcpx", "corp.test", out, sizeof(out), &why), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs", "corp.test", out, sizeof(out), &why), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_dir_owner("x._vlmcs._tcp", "corp.test", out, sizeof(out), &why), KR_ENOENT);
}

static void t_owner_bad(void)
{
    char out[KR_DNS_NAME_MAX], big[300];
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp.", "corp.test", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "dot"));
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp..x", "corp.test", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty label"));
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp.a b", "corp.test", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "character"));
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp.a\\.b", "corp.test", out, sizeof(out), &why),
                    KR_EMALF);
    memset(big, 'a', sizeof(big));
    memcpy(big, "_vlmcs._tcp.", 12);
    big[12 + 64] = 0;
    CU_ASSERT_EQUAL(kr_dir_owner(big, "corp.test", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "63"));
    big[12 + 64] = 'a';
    for (size_t i = 12 + 60; i < sizeof(big) - 1; i += 61)
        big[i] = '.';
    big[sizeof(big) - 1] = 0;
    CU_ASSERT_EQUAL(kr_dir_owner(big, "corp.test", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "253"));
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp", "", out, sizeof(out), &why), KR_EMALF);
    CU_ASSERT_EQUAL(kr_dir_owner("_vlmcs._tcp", "corp.test", out, 10, &why), KR_EMALF);
}

static void t_zone_dn(void)
{
    char dn[KR_DIR_DN_MAX];
    CU_ASSERT_EQUAL(
        kr_dir_zone_dn("corp.test.", "DC=DomainDnsZones,DC=corp,DC=test", dn, sizeof(dn)), 0);
    CU_ASSERT_STRING_EQUAL(dn, "DC=corp.test,CN=MicrosoftDNS,DC=DomainDnsZones,DC=corp,DC=test");
    CU_ASSERT_EQUAL(kr_dir_zone_dn("#a,b+c=d", "X=y", dn, sizeof(dn)), 0);
    CU_ASSERT_STRING_EQUAL(dn, "DC=\\#a\\,b\\+c\\=d,CN=MicrosoftDNS,X=y");
    CU_ASSERT_EQUAL(kr_dir_zone_dn("", "X=y", dn, sizeof(dn)), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_dir_zone_dn("a b", "X=y", dn, sizeof(dn)), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_dir_zone_dn("corp.test", "X=y", dn, 20), KR_ENOSPC);
    CU_ASSERT_EQUAL(kr_dir_zone_dn("corp.test", "X=y", dn, 5), KR_ENOSPC);
}

static void t_partition(void)
{
    CU_ASSERT_TRUE(kr_dir_dns_partition("DC=DomainDnsZones,DC=corp,DC=test"));
    CU_ASSERT_TRUE(kr_dir_dns_partition("dc=forestdnszones,DC=corp,DC=test"));
    CU_ASSERT_FALSE(kr_dir_dns_partition("CN=Configuration,DC=corp,DC=test"));
    CU_ASSERT_FALSE(kr_dir_dns_partition("DC=corp,DC=test"));
}

KR_SUITE(directory)
{
    CU_pSuite s = CU_add_suite("directory", NULL, NULL);
    CU_add_test(s, "_vlmcs node names", t_owner);
    CU_add_test(s, "names that are not DNS names", t_owner_bad);
    CU_add_test(s, "zone DNs", t_zone_dn);
    CU_add_test(s, "DNS partitions", t_partition);
}
