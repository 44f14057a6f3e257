/* test_logbuf.c - the buffered log (util/log.c, kr_log_buffer_start):
 * deferred lines of the buffering thread wait for kr_log_flush() (one
 * write), the loop is kicked once per batch, other lines (kr_log, other
 * threads) go out at once and after what was buffered, and exit() writes
 * what is left. stderr is a pipe here. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/log.h"
#include "testutil.h"

struct capture {
    int pfd[2];
    int saved;
};

static void capture_start(struct capture *c)
{
    CU_ASSERT_FATAL(pipe(c->pfd) == 0);
    fcntl(c->pfd[0], F_SETFL, O_NONBLOCK);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(dup2(c->pfd[1], STDERR_FILENO) == STDERR_FILENO);
}

/* What the pipe holds now (NUL-terminated, at most cap - 1 bytes). */
static size_t drain(struct capture *c, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(c->pfd[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    return n;
}

static void capture_stop(struct capture *c)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    close(c->pfd[0]);
    close(c->pfd[1]);
}

static int kicks;
static void kick(void *arg)
{
    (void)arg;
    kicks++;
}

static void *other_thread(void *arg)
{
    (void)arg;
    kr_log(KR_LOG_WARN, "event=from_thread");
    return NULL;
}

/* stderr captured, level info, buffering on with a fresh kick count;
 * returns the level to restore. */
static int buffered_start(struct capture *c)
{
    int level = kr_log_level();
    kr_log_set_level(KR_LOG_INFO);
    capture_start(c);
    kicks = 0;
    kr_log_buffer_start(kick, NULL);
    return level;
}

static void test_buffered(void)
{
    struct capture c;
    char got[8192];
    int level = buffered_start(&c);
    kr_log_defer(KR_LOG_INFO, "event=one n=1");
    kr_log_defer(KR_LOG_INFO, "event=two n=2");
    CU_ASSERT_EQUAL(drain(&c, got, sizeof(got)), 0); /* nothing written yet */
    CU_ASSERT_EQUAL(kicks, 1);                       /* the loop was told once */
    kr_log_flush();
    drain(&c, got, sizeof(got));
    char *a = strstr(got, "event=one n=1\n"), *b = strstr(got, "event=two n=2\n");
    CU_ASSERT(a && b && a < b);
    CU_ASSERT(strstr(got, "level=info") != NULL);

    /* the next batch kicks again; another thread's line comes after it */
    kr_log_defer(KR_LOG_INFO, "event=three");
    CU_ASSERT_EQUAL(kicks, 2);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, other_thread, NULL) == 0);
    pthread_join(t, NULL);
    drain(&c, got, sizeof(got));
    a = strstr(got, "event=three");
    b = strstr(got, "event=from_thread");
    CU_ASSERT(a && b && a < b);

    /* a line that is not deferred (start-up, state changes) is out at once,
     * after the deferred ones */
    kr_log_defer(KR_LOG_INFO, "event=four");
    kr_log(KR_LOG_WARN, "event=ready");
    drain(&c, got, sizeof(got));
    a = strstr(got, "event=four");
    b = strstr(got, "event=ready");
    CU_ASSERT(a && b && a < b);

    /* a full buffer is written without waiting for the loop */
    size_t total = 0;
    for (int i = 0; i < 2000; i++) {
        kr_log_defer(KR_LOG_INFO, "event=fill i=%d pad=%0100d", i, 0);
        size_t n;
        while ((n = drain(&c, got, sizeof(got))) > 0)
            total += n;
    }
    CU_ASSERT(total > 65536 / 2);
    kr_log_buffer_stop(); /* writes the rest */
    for (size_t n; (n = drain(&c, got, sizeof(got))) > 0;)
        total += n;
    CU_ASSERT(total > 2000 * 120);
    kr_log_defer(KR_LOG_INFO, "event=unbuffered");
    drain(&c, got, sizeof(got));
    CU_ASSERT(strstr(got, "event=unbuffered") != NULL); /* stopped: written at once */
    capture_stop(&c);
    kr_log_set_level(level);
}

/* A batch goes out by its 32nd line without waiting for the loop's timer:
 * what a SIGKILL can lose is bounded (31 lines), whatever the rate. */
static void test_batch_bound(void)
{
    struct capture c;
    char got[16384];
    int level = buffered_start(&c);
    for (int i = 0; i < 31; i++)
        kr_log_defer(KR_LOG_INFO, "event=activation i=%d", i);
    CU_ASSERT_EQUAL(drain(&c, got, sizeof(got)), 0); /* 31 lines wait */
    kr_log_defer(KR_LOG_INFO, "event=activation i=31");
    drain(&c, got, sizeof(got));
    CU_ASSERT(strstr(got, "i=0\n") != NULL);
    CU_ASSERT(strstr(got, "i=31\n") != NULL); /* the 32nd wrote the batch */
    kr_log_defer(KR_LOG_INFO, "event=activation i=32");
    CU_ASSERT_EQUAL(drain(&c, got, sizeof(got)), 0); /* a new batch waits again */
    CU_ASSERT_EQUAL(kicks, 2);                       /* and told the loop again */
    kr_log_buffer_stop();
    drain(&c, got, sizeof(got));
    CU_ASSERT(strstr(got, "i=32\n") != NULL);
    /* the timestamp: ts=YYYY-MM-DDTHH:MM:SS.mmmZ level=info, the cached
     * second included */
    const char *ts = strstr(got, "ts=");
    CU_ASSERT(ts && strlen(ts) > 40 && ts[7] == '-' && ts[13] == 'T' && ts[22] == '.' &&
              ts[26] == 'Z' && strncmp(ts + 27, " level=info event=activation", 28) == 0);
    capture_stop(&c);
    kr_log_set_level(level);
}

/* A long line is cut, still ends with its newline, and the next line is
 * whole. */
static void test_long_line(void)
{
    struct capture c;
    static char got[8192], big[4000];
    memset(big, 'x', sizeof(big) - 1);
    capture_start(&c);
    kr_log(KR_LOG_WARN, "event=big v=%s", big);
    kr_log(KR_LOG_WARN, "event=after");
    size_t n = drain(&c, got, sizeof(got));
    char *nl = strchr(got, '\n');
    CU_ASSERT(nl && nl - got > 2000 && nl - got < 2200);
    CU_ASSERT(n > 0 && got[n - 1] == '\n' && strstr(got, "level=warn event=after\n") != NULL);
    capture_stop(&c);
}

/* A process that exits (a graceful stop ends in exit()) loses nothing. */
static void test_exit_flush(void)
{
    struct capture c;
    char got[4096];
    capture_start(&c);
    pid_t pid = fork();
    if (pid == 0) {
        kr_log_set_level(KR_LOG_INFO);
        kr_log_buffer_start(kick, NULL);
        kr_log_defer(KR_LOG_INFO, "event=activation last=1");
        exit(0);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    drain(&c, got, sizeof(got));
    CU_ASSERT(strstr(got, "event=activation last=1") != NULL);
    capture_stop(&c);
}

KR_SUITE(logbuf)
{
    CU_pSuite s = CU_add_suite("logbuf", NULL, NULL);
    CU_add_test(s, "buffered until flushed", test_buffered);
    CU_add_test(s, "written at exit", test_exit_flush);
    CU_add_test(s, "a batch is written by its 32nd line", test_batch_bound);
    CU_add_test(s, "a long line is cut and ends with a newline", test_long_line);
}
