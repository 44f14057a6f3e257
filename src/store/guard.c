/*
 * guard.c - surviving data.mdb being truncated under an open store.
 *
 * LMDB reads pages straight from its map; a page beyond the end of the file
 * is a SIGBUS, not an error code. Two defences, both ending in the same
 * sticky "damaged" state in which the store never touches LMDB again
 * (lookups answer KR_EIO, pin writes stay queued in memory, every flush
 * fails and says why):
 *
 *  1. store_guard() before every transaction: fstat() of LMDB's own
 *     descriptor against the pages the current meta page uses. Cheap (one
 *     system call) and catches the truncation before any page is read.
 *     Point lookups (the routing step, thousands a second) use
 *     store_guard_read() instead: one read of the last byte of the pages in
 *     use, through the map. A file cut below it makes that read a SIGBUS,
 *     caught by (2), so the cut is found before the lookup reads a page,
 *     and without a system call.
 *  2. A SIGBUS handler for the rest (the file cut between the check and the
 *     read): when the faulting address lies in a registered store map, the
 *     handler maps anonymous zero pages over the rest of the map and
 *     returns, so the read completes with zeros, which LMDB rejects as a
 *     corrupted page (MDB_CORRUPTED) or which decode as a bad record; the
 *     store sees its slot's flag after the transaction and turns damaged.
 *     A SIGBUS anywhere else goes to the previous handler (or the default
 *     action), so real bugs still crash.
 *
 * mmap() is not on POSIX's async-signal-safe list, but on Linux it is one
 * system call with no user-space state, which is what matters here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define GUARD_SLOTS 8

struct guard_slot {
    _Atomic uintptr_t base, len; /* 0 = free */
    atomic_int hit;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction prev_bus;
static pthread_once_t installed = PTHREAD_ONCE_INIT;
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < GUARD_SLOTS; i++) {
        uintptr_t b = atomic_load(&slots[i].base), n = atomic_load(&slots[i].len);
        if (!b || a < b || a >= b + n)
            continue;
        uintptr_t pg = a & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
        if (mmap((void *)pg, b + n - pg, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0) == MAP_FAILED)
            break; /* cannot patch: fall through to the default action */
        atomic_store(&slots[i].hit, 1);
        return;
    }
    /* Not ours: behave as if we had never been installed. */
    if (prev_bus.sa_flags & SA_SIGINFO && prev_bus.sa_sigaction) {
        prev_bus.sa_sigaction(sig, si, uc);
        return;
    }
    if (prev_bus.sa_handler != SIG_DFL && prev_bus.sa_handler != SIG_IGN && prev_bus.sa_handler) {
        prev_bus.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &prev_bus);
}

/* LMDB does not tell where it mapped the file (me_mapaddr is the fixed
 * address of MDB_FIXEDMAP, NULL otherwise): find the mapping of data.mdb's
 * inode at offset 0 in /proc/self/maps. */
static int find_map(struct kr_store *s, uintptr_t *base, uintptr_t *len)
{
    int fd = -1;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0)
        return -1;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[512];
    int found = -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;
        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &mnr, &ino) == 6 &&
            ino == (unsigned long)st.st_ino && maj == major(st.st_dev) && mnr == minor(st.st_dev) &&
            off == 0) {
            *base = lo;
            *len = hi - lo;
            found = 0;
        }
    }
    fclose(f);
    return found;
}

void store_guard_register(struct kr_store *s)
{
    uintptr_t base, len;
    s->guard_slot = -1;
    if (find_map(s, &base, &len) != 0)
        return; /* the fstat check alone then */
    pthread_once(&installed, install);
    pthread_mutex_lock(&slots_mu);
    for (int i = 0; i < GUARD_SLOTS; i++)
        if (!atomic_load(&slots[i].base)) {
            atomic_store(&slots[i].hit, 0);
            atomic_store(&slots[i].len, len);
            atomic_store(&slots[i].base, base);
            s->guard_slot = i;
            break;
        }
    pthread_mutex_unlock(&slots_mu);
}

void store_guard_unregister(struct kr_store *s)
{
    if (s->guard_slot < 0)
        return;
    pthread_mutex_lock(&slots_mu);
    atomic_store(&slots[s->guard_slot].base, 0);
    atomic_store(&slots[s->guard_slot].len, 0);
    pthread_mutex_unlock(&slots_mu);
    s->guard_slot = -1;
}

void store_mark_damaged(struct kr_store *s, const char *fmt, ...)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&s->damage_claim, &expect, 1))
        return; /* the first reason wins */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->damage_why, sizeof(s->damage_why), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(s->damage_why))
        snprintf(s->damage_why + n, sizeof(s->damage_why) - (size_t)n,
                 "; the store is no longer used: new pins are kept in memory only (lost at "
                 "exit); stop kmsrelayd, then restore data.mdb or run kmsrelayctl store "
                 "set-aside");
    atomic_store(&s->damaged, true);
}

bool store_guard_tripped(struct kr_store *s)
{
    if (atomic_load(&s->damaged))
        return true;
    if (s->guard_slot >= 0 && atomic_load(&slots[s->guard_slot].hit)) {
        store_mark_damaged(s, "a read of data.mdb hit the end of the file (SIGBUS): data.mdb "
                              "was truncated under the running daemon");
        return true;
    }
    return false;
}

int store_guard(struct kr_store *s)
{
    if (store_guard_tripped(s))
        return EIO;
    /* The meta page first, the file size second: a commit of the flusher
     * writes its pages before its meta page, so a file that grows between
     * the two reads is never taken for a truncated one. */
    MDB_envinfo info;
    int fd = -1;
    struct stat st;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0)
        return store_guard_tripped(s) ? EIO : 0; /* cannot tell: let LMDB answer */
    uint64_t size = (uint64_t)st.st_size;
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * s->psize;
    /* LMDB never shrinks data.mdb: smaller than ever seen is a cut, even if a
     * commit that was running at that moment wrote pages past it again. */
    uint64_t seen = atomic_load(&s->seen_size);
    while (size > seen && !atomic_compare_exchange_weak(&s->seen_size, &seen, size))
        ;
    if (size < seen) {
        store_mark_damaged(s,
                           "data.mdb shrank from %llu to %llu bytes under the running daemon "
                           "(truncated)",
                           (unsigned long long)seen, (unsigned long long)size);
        return EIO;
    }
    if (size < need || size < 2 * (uint64_t)s->psize) {
        store_mark_damaged(s,
                           "data.mdb shrank to %llu bytes under the running daemon but its "
                           "pages end at byte %llu (truncated)",
                           (unsigned long long)size, (unsigned long long)need);
        return EIO;
    }
    return store_guard_tripped(s) ? EIO : 0;
}

int store_guard_read(struct kr_store *s)
{
    if (store_guard_tripped(s))
        return EIO;
    const volatile uint8_t *map = store_guard_map(s);
    MDB_envinfo info;
    if (!map || mdb_env_info(s->env, &info) != 0)
        return store_guard(s);
    uint64_t last = ((uint64_t)info.me_last_pgno + 1) * s->psize - 1;
    if (last >= atomic_load(&slots[s->guard_slot].len))
        return store_guard(s);
    /* The last byte of the pages in use: in a file cut below it this read
     * is a SIGBUS, which the handler turns into zero pages and a hit. */
    (void)map[last];
    return store_guard_tripped(s) ? EIO : 0;
}

const void *store_guard_map(const struct kr_store *s)
{
    return s->guard_slot < 0 ? NULL : (const void *)atomic_load(&slots[s->guard_slot].base);
}

int store_note_rc(struct kr_store *s, int rc)
{
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
        store_mark_damaged(s,
                           "LMDB finds data.mdb corrupted (%s): it was changed under the "
                           "running daemon (truncated or overwritten)",
                           mdb_strerror(rc));
    return store_guard_tripped(s) ? EIO : rc;
}

bool kr_store_damaged(const struct kr_store *s)
{
    return atomic_load(&s->damaged);
}
