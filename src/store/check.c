/*
 * check.c - checking a state directory's data.mdb BEFORE LMDB maps it.
 *
 * LMDB maps the whole map size and reads pages straight from the map. A page
 * that lies beyond the end of the file (data.mdb truncated by a full disk, a
 * bad copy, a careless operator) is not an error code but a SIGBUS. LMDB
 * itself only reads the two meta pages with pread() and checks their magic,
 * so a truncated file opens "fine" and kills the process at the first read;
 * a zero-length file is taken for a new environment (every pin silently
 * gone); a meta page whose last page number is garbage makes the mapping
 * fail with ENOMEM. So we read the meta pages ourselves first and check
 * what LMDB would rely on: flags and magic, the data format version, a sane
 * page size, the root pages inside the used pages, and the file long enough
 * for every page up to the last one the newest meta page claims.
 *
 * Layout read here (LMDB 0.9 data format 1, 64-bit): a page header of 16
 * bytes (pgno u64, pad u16, flags u16, lower/upper u16), then MDB_meta:
 * magic u32 @16, version u32 @20, address @24, mapsize @32, the free DB's
 * MDB_db @40 (md_pad = page size, root @80), the main DB's @88 (root @128),
 * last_pg @136, txnid @144. Meta page 0 is at offset 0, meta page 1 at one
 * page size. LMDB uses the meta page with the larger txnid.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define META_MAGIC 0xBEEFC0DEu
#define META_VERSION 1u
#define P_META_FLAG 0x08u
#define P_INVALID_PG UINT64_MAX
#define META_BYTES 152               /* through txnid */
#define MAX_DATA ((uint64_t)1 << 44) /* 16 TiB: beyond this a meta is garbage */

struct meta {
    uint16_t flags;
    uint32_t magic, version, psize;
    uint64_t mapsize, free_root, main_root, last_pg, txnid;
};

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void parse_meta(const uint8_t *b, struct meta *m)
{
    m->flags = (uint16_t)le(b + 10, 2);
    m->magic = (uint32_t)le(b + 16, 4);
    m->version = (uint32_t)le(b + 20, 4);
    m->mapsize = le(b + 32, 8);
    m->psize = (uint32_t)le(b + 40, 4);
    m->free_root = le(b + 80, 8);
    m->main_root = le(b + 128, 8);
    m->last_pg = le(b + 136, 8);
    m->txnid = le(b + 144, 8);
}

/* NULL when the meta page itself is sane, else what is wrong with it. */
static const char *meta_problem(const struct meta *m, int *code)
{
    *code = KR_EMALF;
    if (!(m->flags & P_META_FLAG) || m->magic != META_MAGIC)
        return "it is not an LMDB meta page (bad flags or magic number)";
    if (m->version != META_VERSION) {
        *code = KR_EUNSUP;
        return "it has an unknown LMDB data format version";
    }
    if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)))
        return "its page size is not a power of two between 512 and 65536";
    if (m->last_pg < 1 || m->last_pg > MAX_DATA / m->psize)
        return "its last page number is out of range";
    if ((m->free_root != P_INVALID_PG && (m->free_root < 2 || m->free_root > m->last_pg)) ||
        (m->main_root != P_INVALID_PG && (m->main_root < 2 || m->main_root > m->last_pg)))
        return "a root page number lies outside the used pages";
    return NULL;
}

static int damaged(struct kr_store_check *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int damaged(struct kr_store_check *out, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->what, sizeof(out->what), fmt, ap);
    va_end(ap);
    out->state = code == KR_EUNSUP ? KR_STORE_NEWER : KR_STORE_DAMAGED;
    return code;
}

/* Reads and checks meta page i (at offset off). */
static int read_meta(int fd, int i, uint64_t off, struct meta *m, struct kr_store_check *out)
{
    uint8_t b[META_BYTES];
    ssize_t n = pread(fd, b, sizeof(b), (off_t)off);
    if (n < 0) {
        int e = errno;
        snprintf(out->what, sizeof(out->what), "cannot read meta page %d: %s", i, strerror(e));
        out->state = KR_STORE_UNREADABLE;
        errno = e;
        return KR_EIO;
    }
    if (n != (ssize_t)sizeof(b))
        return damaged(out, KR_EMALF,
                       "the file is %llu bytes, too short to hold meta page %d (truncated)",
                       (unsigned long long)out->file_size, i);
    parse_meta(b, m);
    int code;
    const char *p = meta_problem(m, &code);
    if (p)
        return damaged(out, code, "meta page %d is damaged: %s", i, p);
    return 0;
}

static int check_fd(int fd, struct kr_store_check *out)
{
    struct meta m0, m1;
    int rc = read_meta(fd, 0, 0, &m0, out);
    if (rc)
        return rc;
    out->page_size = m0.psize;
    if ((rc = read_meta(fd, 1, m0.psize, &m1, out)) != 0)
        return rc;
    if (m1.psize != m0.psize)
        return damaged(out, KR_EMALF, "the two meta pages disagree on the page size (%u, %u)",
                       m0.psize, m1.psize);
    const struct meta *m = m1.txnid > m0.txnid ? &m1 : &m0; /* LMDB's choice */
    out->last_page = m->last_pg;
    out->txnid = m->txnid;
    out->need_size = (m->last_pg + 1) * m->psize;
    if (out->file_size < out->need_size)
        return damaged(out, KR_EMALF,
                       "the file is %llu bytes but its newest meta page (transaction %llu) "
                       "uses pages up to byte %llu: the file was truncated",
                       (unsigned long long)out->file_size, (unsigned long long)m->txnid,
                       (unsigned long long)out->need_size);
    out->state = KR_STORE_OK;
    snprintf(out->what, sizeof(out->what),
             "%llu bytes, page size %u, %llu pages in use, transaction %llu",
             (unsigned long long)out->file_size, m->psize, (unsigned long long)m->last_pg + 1,
             (unsigned long long)m->txnid);
    return 0;
}

int kr_store_check(const char *dir, struct kr_store_check *out)
{
    memset(out, 0, sizeof(*out));
    if (!dir || !*dir)
        return damaged(out, KR_EINVAL, "no state directory given");
    snprintf(out->path, sizeof(out->path), "%s/data.mdb", dir);
    int fd = open(out->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            out->state = KR_STORE_ABSENT;
            snprintf(out->what, sizeof(out->what), "no store yet (a new one is created)");
            return 0;
        }
        out->state = KR_STORE_UNREADABLE;
        snprintf(out->what, sizeof(out->what), "cannot open it: %s", strerror(e));
        errno = e;
        return KR_EIO;
    }
    struct stat st;
    int rc;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        out->state = KR_STORE_UNREADABLE;
        snprintf(out->what, sizeof(out->what), "cannot stat it: %s", strerror(e));
        errno = e;
        rc = KR_EIO;
    } else if (!S_ISREG(st.st_mode)) {
        rc = damaged(out, KR_EMALF, "it is not a regular file");
    } else if ((out->file_size = (uint64_t)st.st_size) == 0) {
        rc = damaged(out, KR_EMALF,
                     "the file is empty (0 bytes) where a store was expected: every pin it "
                     "held is gone from it");
    } else {
        rc = check_fd(fd, out);
    }
    close(fd);
    return rc;
}

const char *kr_store_check_advice(int state)
{
    switch (state) {
    case KR_STORE_DAMAGED:
        return "restore data.mdb from a backup, or move the damaged files aside and start "
               "with an empty store (kmsrelayd stopped): kmsrelayctl store set-aside "
               "--state-dir DIR (nothing is deleted; clients are then routed afresh)";
    case KR_STORE_NEWER:
        return "run the kmsrelay version that wrote it, or move it aside: kmsrelayctl store "
               "set-aside --state-dir DIR";
    case KR_STORE_UNREADABLE:
        return "check the permissions and the disk of the state directory";
    default:
        return "";
    }
}
