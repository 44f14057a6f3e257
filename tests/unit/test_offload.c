/* test_offload.c - the offload primitive (include/kmsrelay/offload.h): work
 * on another thread, completion on the event loop, cancellation. */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <event2/event.h>

#include "kmsrelay/offload.h"
#include "testutil.h"

struct job {
    struct event_base *base;
    pthread_t loop, worker;
    int work_runs, done_runs;
    bool done_on_loop;
    bool stopped_early;
};

static void work(struct kr_offload *o, void *arg)
{
    struct job *j = arg;
    j->worker = pthread_self();
    j->work_runs++;
}

static void done(void *arg)
{
    struct job *j = arg;
    j->done_runs++;
    j->done_on_loop = pthread_equal(pthread_self(), j->loop);
    event_base_loopbreak(j->base);
}

static void test_completion_on_loop(void)
{
    struct job j;
    memset(&j, 0, sizeof(j));
    j.base = event_base_new();
    j.loop = pthread_self();
    CU_ASSERT_PTR_NOT_NULL_FATAL(kr_offload_start(j.base, work, done, &j));
    struct timeval tv = {10, 0}; /* a bound, never reached when it works */
    event_base_loopexit(j.base, &tv);
    event_base_dispatch(j.base);
    CU_ASSERT_EQUAL(j.work_runs, 1);
    CU_ASSERT_EQUAL(j.done_runs, 1);
    CU_ASSERT(j.done_on_loop);
    CU_ASSERT(!pthread_equal(j.worker, j.loop)); /* the work ran on another thread */
    event_base_free(j.base);
}

/* Runs until cancelled (bounded: 10 s). */
static void long_work(struct kr_offload *o, void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 10000 && !kr_offload_cancelled(o); i++)
        usleep(1000);
    j->stopped_early = kr_offload_cancelled(o) && *kr_offload_cancel_flag(o) != 0;
    j->work_runs++;
}

static void test_cancel(void)
{
    struct job j;
    memset(&j, 0, sizeof(j));
    j.base = event_base_new();
    j.loop = pthread_self();
    struct kr_offload *o = kr_offload_start(j.base, long_work, done, &j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    usleep(20000);
    kr_offload_cancel(o); /* waits for the work to return */
    CU_ASSERT_EQUAL(j.work_runs, 1);
    CU_ASSERT(j.stopped_early);
    /* done never runs for a cancelled offload, even if the loop runs now */
    for (int i = 0; i < 4; i++)
        event_base_loop(j.base, EVLOOP_NONBLOCK);
    CU_ASSERT_EQUAL(j.done_runs, 0);
    kr_offload_cancel(NULL); /* NULL is fine */
    event_base_free(j.base);
}

KR_SUITE(offload)
{
    CU_pSuite s = CU_add_suite("offload", NULL, NULL);
    CU_add_test(s, "completion on the event loop", test_completion_on_loop);
    CU_add_test(s, "cancellation", test_cancel);
}
