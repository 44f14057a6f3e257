/* relayfix.c - the hand-built relay of relayfix.h. */
#include "relayfix.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/log.h"
#include "kmsrelay/store.h"

void kr_fix_init(struct kr_relay_fix *f, size_t n, int log_level)
{
    memset(f, 0, sizeof(*f));
    f->saved_level = kr_log_level();
    kr_log_set_level(log_level);
    kr_conf_defaults(&f->conf);
    f->r.conf = &f->conf;
    for (size_t i = 0; i < n && i < KR_FIX_MAX_HOSTS; i++) {
        struct kr_host *h = &f->hosts[i];
        snprintf(h->conf.name, sizeof(h->conf.name), "kms-%c", (char)('a' + i));
        h->conf.weight = 1;
        h->hrw.key = kr_hrw_key(h->conf.name);
        h->hrw.weight = 1;
        h->admin = KR_ADMIN_READY;
        h->health = KR_HEALTH_UP;
        h->relay = &f->r;
        f->ptrs[i] = h;
    }
    f->r.hosts = f->ptrs;
    f->r.n_hosts = n < KR_FIX_MAX_HOSTS ? n : KR_FIX_MAX_HOSTS;
}

void kr_fix_store_open(struct kr_relay_fix *f, const char *tag)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/kr-%s-XXXXXX", tag);
    CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
    CU_ASSERT_FATAL(kr_store_open(f->dir, NULL, &f->r.store, NULL) == 0);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

void kr_fix_fini(struct kr_relay_fix *f)
{
    if (f->r.store) {
        kr_store_close(f->r.store);
        f->r.store = NULL;
        nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    }
    kr_log_set_level(f->saved_level);
}
