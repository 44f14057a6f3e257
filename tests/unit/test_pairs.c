/* test_pairs.c - pins per (CMID, application id) (issue 10): one machine's
 * applications are separate pins, a machine's pairs are walked together,
 * a format 1 store (tests/fixtures/store-v1, written by the release before
 * pairs) migrates with every pin kept, and a store of an unknown newer
 * format is refused with a clear reason. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <jansson.h>
#include <lmdb.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/report.h"
#include "kmsrelay/store.h"
#include "testutil.h"

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static char *mk_dir(char *buf)
{
    strcpy(buf, "/tmp/kr-pairs-XXXXXX");
    return mkdtemp(buf);
}

static void mk_pair(int i, const uint8_t app[16], const char *host, int64_t seen, struct kr_pin *p)
{
    memset(p, 0, sizeof(*p));
    memset(p->cmid, 0, 16);
    p->cmid[0] = 0xc0;
    p->cmid[15] = (uint8_t)i;
    memcpy(p->app_id, app, 16);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->first_seen = p->last_seen = seen;
    kr_pin_note_name(p, "PC-1.corp.example", seen);
}

struct seen {
    int n;
    char hosts[8][KR_PIN_HOST_MAX];
    uint8_t apps[8][16];
};

static int seen_cb(const struct kr_pin *p, void *ctx)
{
    struct seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->hosts[s->n], KR_PIN_HOST_MAX, "%s", p->host);
        memcpy(s->apps[s->n], p->app_id, 16);
    }
    s->n++;
    return 0;
}

/* Windows and Office of one CMID are two pins: writing one leaves the
 * other as it was (the bug of issue 10 overwrote the application). */
static void test_two_apps_one_cmid(void)
{
    char dir[64];
    struct kr_store *s = NULL;
    struct kr_pin w, o, q, other;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    mk_pair(1, kr_kms_app_windows, "kms-a", 1000, &w);
    mk_pair(1, kr_kms_app_office2013, "kms-b", 1001, &o);
    mk_pair(2, kr_kms_app_windows, "kms-c", 1002, &other); /* the next CMID */
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &w), 0);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &other), 0);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &o), 0); /* queued only */

    CU_ASSERT_EQUAL(kr_store_pin_get(s, w.cmid, kr_kms_app_windows, &q), 0);
    CU_ASSERT_STRING_EQUAL(q.host, "kms-a");
    CU_ASSERT_EQUAL(kr_store_pin_get(s, w.cmid, kr_kms_app_office2013, &q), 0);
    CU_ASSERT_STRING_EQUAL(q.host, "kms-b");
    CU_ASSERT(memcmp(q.app_id, kr_kms_app_office2013, 16) == 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, w.cmid, kr_kms_app_office2010, &q), KR_ENOENT);

    /* the machine's pairs: committed and queued merged, nothing else */
    struct seen m = {0};
    CU_ASSERT_EQUAL(kr_store_pin_iter_cmid(s, w.cmid, seen_cb, &m), 0);
    CU_ASSERT_EQUAL(m.n, 2);
    CU_ASSERT_STRING_EQUAL(m.hosts[0], "kms-b"); /* 0ff1ce15... < 55c92734... */
    CU_ASSERT_STRING_EQUAL(m.hosts[1], "kms-a");
    struct seen all = {0};
    CU_ASSERT_EQUAL(kr_store_pin_iter(s, seen_cb, &all), 0);
    CU_ASSERT_EQUAL(all.n, 3);

    /* forgetting one application keeps the other */
    CU_ASSERT_EQUAL(kr_store_pin_del(s, w.cmid, kr_kms_app_windows), 0);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, w.cmid, kr_kms_app_windows, &q), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, w.cmid, kr_kms_app_office2013, &q), 0);
    memset(&m, 0, sizeof(m));
    CU_ASSERT_EQUAL(kr_store_pin_iter_cmid(s, w.cmid, seen_cb, &m), 0);
    CU_ASSERT_EQUAL(m.n, 1);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 2);
    /* a CMID with no pin at all */
    uint8_t none[16] = {0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    memset(&m, 0, sizeof(m));
    CU_ASSERT_EQUAL(kr_store_pin_iter_cmid(s, none, seen_cb, &m), 0);
    CU_ASSERT_EQUAL(m.n, 0);
    kr_store_close(s);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Names compare as DNS names: one machine, two spellings. */
static void test_dns_names(void)
{
    struct kr_pin p;
    memset(&p, 0, sizeof(p));
    CU_ASSERT(kr_pin_name_eq("PC-2.corp.example", "pc-2.CORP.example."));
    CU_ASSERT(!kr_pin_name_eq("PC-2.corp.example", "PC-3.corp.example"));
    CU_ASSERT(!kr_pin_name_eq("pc.", "pc.."));
    CU_ASSERT(kr_pin_note_name(&p, "PC-2.corp.example", 10));
    CU_ASSERT(!kr_pin_note_name(&p, "pc-2.CORP.example.", 20));
    CU_ASSERT_EQUAL(p.n_names, 1);
    CU_ASSERT_STRING_EQUAL(p.names[0].name, "pc-2.CORP.example."); /* as last seen */
    CU_ASSERT_EQUAL(kr_pin_names_since(&p, 0), 1);
    /* a record from before: two spellings stored, counted once */
    snprintf(p.names[1].name, sizeof(p.names[1].name), "PC-2.corp.example");
    p.names[1].last_seen = 15;
    p.n_names = 2;
    CU_ASSERT_EQUAL(kr_pin_names_since(&p, 0), 1);
    CU_ASSERT(kr_pin_note_name(&p, "PC-7.corp.example", 30));
    CU_ASSERT_EQUAL(kr_pin_names_since(&p, 0), 2);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        if (fwrite(buf, 1, n, b) != n)
            rc = -1;
    if (a)
        fclose(a);
    if (b && fclose(b) != 0)
        rc = -1;
    return rc;
}

/* Acceptance 3 (store side): the fixture store of the previous release
 * opens with all 300 pins, each under (CMID, its application), with the
 * host and fields `kmsrelayctl clients` showed before; host records kept. */
static void test_migrate_fixture(void)
{
    char dir[64], path[128];
    struct kr_store *s = NULL;
    struct kr_store_stats st;
    const char *why = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(dir));
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    CU_ASSERT_EQUAL_FATAL(copy_file(KR_TESTS_DIR "/fixtures/store-v1/data.mdb", path), 0);
    json_error_t je;
    json_t *doc = json_load_file(KR_TESTS_DIR "/fixtures/store-v1/clients.json", 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    json_t *clients = json_object_get(doc, "clients");
    CU_ASSERT_EQUAL(json_array_size(clients), 300);

    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, &why), 0);
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.pins_migrated, 300);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 300);
    size_t i, ok = 0;
    json_t *c;
    json_array_foreach(clients, i, c)
    {
        uint8_t cmid[16], app[16];
        struct kr_pin p;
        if (kr_guid_parse(json_string_value(json_object_get(c, "cmid")), cmid) != 0 ||
            kr_guid_parse(json_string_value(json_object_get(c, "app_id")), app) != 0)
            continue;
        if (kr_store_pin_get(s, cmid, app, &p) != 0)
            continue;
        ok += strcmp(p.host, json_string_value(json_object_get(c, "host"))) == 0 &&
              strcmp(p.workstation, json_string_value(json_object_get(c, "workstation"))) == 0 &&
              p.activations == json_integer_value(json_object_get(c, "activations")) &&
              p.last_count == json_integer_value(json_object_get(c, "count"));
    }
    CU_ASSERT_EQUAL(ok, 300);
    struct kr_host_rec h;
    CU_ASSERT_EQUAL(kr_store_host_get(s, "kms-a", &h), 0);
    CU_ASSERT_EQUAL(h.weight, 2);
    kr_store_close(s);

    /* once only: the second open finds format 2 */
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, &why), 0);
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.pins_migrated, 0);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 300);
    kr_store_close(s);
    json_decref(doc);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Sets meta "format" of a closed store, the way another build would. */
static int set_format(const char *dir, uint32_t fmt)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t b[4] = {(uint8_t)fmt, 0, 0, 0};
    MDB_val k = {6, (void *)"format"}, v = {4, b};
    int rc = mdb_env_create(&env);
    if (rc)
        return rc;
    mdb_env_set_maxdbs(env, 8);
    if (!(rc = mdb_env_open(env, dir, 0, 0600)) && !(rc = mdb_txn_begin(env, NULL, 0, &txn))) {
        if (!(rc = mdb_dbi_open(txn, "meta", 0, &dbi)) && !(rc = mdb_put(txn, dbi, &k, &v, 0)))
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc;
}

/* A store of a newer format is refused, saying so, and left untouched. */
static void test_newer_format_refused(void)
{
    char dir[64];
    struct kr_store *s = NULL;
    struct kr_pin p, q;
    const char *why = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    mk_pair(3, kr_kms_app_windows, "kms-a", 5, &p);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    kr_store_close(s);
    CU_ASSERT_EQUAL_FATAL(set_format(dir, 3), 0);
    s = NULL;
    CU_ASSERT_EQUAL(kr_store_open(dir, NULL, &s, &why), KR_EUNSUP);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "newer kmsrelay"));
    /* put back: the pin is still there (the refusal wrote nothing) */
    CU_ASSERT_EQUAL_FATAL(set_format(dir, 2), 0);
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0);
    kr_store_close(s);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void put(struct kr_store *s, int i, const uint8_t app[16], const char *host, int64_t seen,
                const char *ws)
{
    struct kr_pin p;
    mk_pair(i, app, host, seen, &p);
    p.n_names = 0;
    kr_pin_note_name(&p, ws, seen);
    p.n_policy = 5;
    p.last_count = 50;
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
}

static json_t *finding(const json_t *rep, const char *list)
{
    return json_object_get(json_object_get(rep, "findings"), list);
}

/* The report counts a machine once in each application's pool and states
 * machine findings once: a Windows+Office machine, a machine whose two
 * applications saw two spellings of one DNS name (not a clone), a real
 * clone, and a CMID replaced by a newer one (in its chain, not stale). */
static void test_report_machines(void)
{
    char dir[64];
    struct kr_store *s = NULL;
    const int64_t now = 1800000000, day = 86400;
    json_t *rep = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &s, NULL), 0);
    put(s, 1, kr_kms_app_windows, "kms-a", now - 60, "PC-1.corp.example");
    put(s, 1, kr_kms_app_office2013, "kms-a", now - 50, "PC-1.corp.example");
    put(s, 2, kr_kms_app_windows, "kms-a", now - 60, "PC-2.corp.example");
    put(s, 2, kr_kms_app_office2013, "kms-b", now - 50, "pc-2.CORP.example.");
    put(s, 3, kr_kms_app_windows, "kms-a", now - 60, "PC-3.corp.example");
    put(s, 3, kr_kms_app_office2013, "kms-a", now - 50, "PC-4.corp.example");
    /* CMID 4 was replaced by CMID 5 twenty days ago; 6 really went away */
    put(s, 4, kr_kms_app_windows, "kms-a", now - 20 * day, "PC-5.corp.example");
    struct kr_pin p;
    mk_pair(5, kr_kms_app_windows, "kms-a", now - 100, &p);
    p.cmid[15] = 5;
    memset(p.prev_cmid, 0, 16);
    p.prev_cmid[0] = 0xc0;
    p.prev_cmid[15] = 4;
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    put(s, 6, kr_kms_app_windows, "kms-a", now - 9 * day, "PC-6.corp.example");
    put(s, 6, kr_kms_app_office2013, "kms-a", now - 9 * day, "PC-6.corp.example");
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);

    CU_ASSERT_EQUAL_FATAL(kr_report_build(s, NULL, 0, now, NULL, &rep, NULL), 0);
    const json_t *apps = json_object_get(rep, "applications");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(apps, 0), "clients")), 6);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(apps, 2), "clients")), 4);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rep, "clients")), 10);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rep, "machines")), 6);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(rep, "schema")), "kmsrelay.report/2");

    const json_t *cl = finding(rep, "cloned_images");
    CU_ASSERT_EQUAL_FATAL(json_array_size(cl), 1); /* machine 3 only, once */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(cl, 0), "cmid")),
                           "000000c0-0000-0000-0000-000000000003");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(json_array_get(cl, 0), "applications")), 2);
    const json_t *st = finding(rep, "stale");
    CU_ASSERT_EQUAL_FATAL(json_array_size(st), 1); /* machine 6 once; not the replaced 4 */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(st, 0), "cmid")),
                           "000000c0-0000-0000-0000-000000000006");
    const json_t *ch = finding(rep, "cmid_changed");
    CU_ASSERT_EQUAL_FATAL(json_array_size(ch), 1);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(json_array_get(ch, 0), "chain")), 2);
    json_decref(rep);
    kr_store_close(s);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

KR_SUITE(pairs)
{
    CU_pSuite s = CU_add_suite("pairs", NULL, NULL);
    CU_add_test(s, "two applications of one CMID are two pins", test_two_apps_one_cmid);
    CU_add_test(s, "workstation names compare as DNS names", test_dns_names);
    CU_add_test(s, "format 1 fixture store migrates, every pin kept", test_migrate_fixture);
    CU_add_test(s, "a newer store format is refused", test_newer_format_refused);
    CU_add_test(s, "report: pairs per pool, findings per machine", test_report_machines);
}
