/*
 * check_pool_jobs.c — jobs through an embedded pool: every job gets its
 * own outcome and id, singly or in a batch, and what cannot be accepted is
 * rejected at submit with a reason.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <stdlib.h>
#include <string.h>

#include "pool_harness.h"

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------ */

START_TEST(echo_jobs_all_complete_ok)
{
    enum { N = 500 };
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(submit_int(1000 + 7 * i), (uint64_t)i + 1);
    ck_assert_uint_eq(H.nrecs, 0);      /* never called from inside submit */

    wait_outcomes(N, 20);
    ck_assert_uint_eq(H.nrecs, N);
    for (uint64_t id = 1; id <= N; id++) {
        const struct rec *r = rec_for(id);
        ck_assert_msg(r != NULL, "no outcome for job %llu", (unsigned long long)id);
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->attempts, 1);
        ck_assert(r->is_int);
        ck_assert_int_eq(r->ival, 1000 + 7 * (int64_t)(id - 1));
    }
    fp_stats st = stats();
    ck_assert_uint_eq(st.submitted, N);
    ck_assert_uint_eq(st.completed, N);
    ck_assert_uint_eq(st.crashed, 0);
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_uint_eq(st.queued, 0);
}
END_TEST

START_TEST(error_outcome_keeps_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();

    const struct rec *r = wait_job(submit_op_str("fail", "detail", "bad input: 42", NULL), 20);
    ck_assert_int_eq(r->kind, FP_ERROR);
    ck_assert_str_eq(detail(r), "bad input: 42");
    ck_assert_uint_eq(r->attempts, 1);

    ck_assert_int_eq(worker_pid_by_job(), before);
    fp_stats st = stats();
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.crashed, 0);
    ck_assert_uint_eq(st.restarts, 0);
}
END_TEST

/* The done callback may submit more work: a chain of jobs, each submitted
 * from the outcome of the one before. */
static void
chain_cb(const fp_outcome *o, void *arg)
{
    record_cb(o, arg);
    if (H.nrecs < 100) {
        msgpack_object next = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };
        next.via.u64 = H.nrecs;
        ck_assert_int_eq(fp_pool_submit_object(H.pool, &next, NULL, chain_cb,
                                               arg, NULL, NULL), 0);
    }
}

START_TEST(submit_from_callback_chains_jobs)
{
    fp_config cfg;
    msgpack_object first = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };

    base_config(&cfg, 2);
    start_pool(&cfg);
    first.via.u64 = 0;
    ck_assert_int_eq(fp_pool_submit_object(H.pool, &first, NULL, chain_cb, &H,
                                           NULL, NULL), 0);
    wait_outcomes(100, 20);
    for (uint64_t id = 1; id <= 100; id++) {
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_int_eq(rec_for(id)->ival, (int64_t)id - 1);
    }
}
END_TEST

START_TEST(stats_count_idle_and_busy_workers)
{
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    fp_stats st = stats();
    ck_assert_uint_eq(st.workers, 2);
    ck_assert_uint_eq(st.starting + st.idle, 2);
    run_until(two_idle, 20, "two idle workers");
    st = stats();
    ck_assert_uint_eq(st.live, 2);
    ck_assert_uint_eq(st.busy, 0);
    ck_assert_uint_eq(st.starting, 0);
    ck_assert_int_eq(st.draining, 0);

    submit_op("hang", NULL);
    submit_int(1);
    submit_int(2);
    st = stats();
    ck_assert_uint_eq(st.busy, 2);      /* idle workers get a job at once */
    ck_assert_uint_eq(st.idle, 0);
    ck_assert_uint_eq(st.queued, 1);
    ck_assert_uint_eq(st.submitted, 3);
    wait_outcomes(2, 20);
    st = stats();
    ck_assert_uint_eq(st.busy, 1);
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_uint_eq(st.completed, 2);
}
END_TEST

START_TEST(large_jobs_round_trip)
{
    enum { N = 6, SIZE = 3 << 20 };
    fp_config cfg;
    char *job = malloc(SIZE + 5);

    ck_assert_ptr_nonnull(job);
    base_config(&cfg, 2);
    start_pool(&cfg);
    job[0] = (char)0xc6;        /* bin 32 */
    job[1] = (char)((SIZE >> 24) & 0xff);
    job[2] = (char)((SIZE >> 16) & 0xff);
    job[3] = (char)((SIZE >> 8) & 0xff);
    job[4] = (char)(SIZE & 0xff);
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < SIZE; k++)
            job[5 + k] = (char)(k * 31 + (size_t)i);
        submit_bytes(job, SIZE + 5, NULL);
    }
    wait_outcomes(N, 20);
    for (int i = 0; i < N; i++) {
        const struct rec *r = rec_for((uint64_t)i + 1);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->len, SIZE + 5);
        for (size_t k = 0; k < SIZE; k++)
            job[5 + k] = (char)(k * 31 + (size_t)i);
        ck_assert_msg(memcmp(r->data, job, SIZE + 5) == 0,
                      "job %d came back altered", i + 1);
    }
    free(job);
}
END_TEST

/* What keep_cb kept of each outcome (fp_outcome_keep). */
static struct kept {
    uint64_t    id;
    const char *data;       /* where the outcome's bytes were */
    size_t      len;
    void       *handle;
    int         again;      /* a second keep of the same outcome */
} kept[8];
static size_t nkept;

static void
keep_cb(const fp_outcome *o, void *arg)
{
    struct kept *k = &kept[nkept++];

    record_cb(o, arg);
    k->id = o->id;
    k->data = o->data;
    k->len = o->len;
    k->handle = fp_outcome_keep(H.pool, o);
    k->again = fp_outcome_keep(H.pool, o) != NULL;
}

/* A done callback keeps a result where the pool put it -- big or small --
 * and reads it after the callback, after other jobs ran, and after the
 * pool is freed; nothing is copied and nothing leaks (valgrind, ASan). */
START_TEST(a_kept_outcome_outlives_its_callback_and_the_pool)
{
    enum { SIZE = 256 << 10 };
    fp_config cfg;
    char *job = malloc(SIZE + 5);
    fp_outcome outside = { .id = 1 };

    ck_assert_ptr_nonnull(job);
    nkept = 0;
    base_config(&cfg, 2);
    start_pool(&cfg);
    ck_assert_ptr_null(fp_outcome_keep(H.pool, &outside));     /* no callback runs */
    job[0] = (char)0xc6;        /* bin 32 */
    job[1] = 0;
    job[2] = (char)((SIZE >> 16) & 0xff);
    job[3] = (char)((SIZE >> 8) & 0xff);
    job[4] = (char)(SIZE & 0xff);
    for (int i = 0; i < 4; i++) {
        for (size_t k = 0; k < SIZE; k++)
            job[5 + k] = (char)(k * 7 + (size_t)i);
        ck_assert_int_eq(fp_pool_submit(H.pool, job, SIZE + 5, NULL, keep_cb, &H,
                                        NULL, NULL), 0);
    }
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x2a", 1, NULL, keep_cb, &H, NULL,
                                    NULL), 0);
    wait_outcomes(5, 20);
    submit_int(7);              /* more jobs run over the same blocks */
    wait_outcomes(6, 20);
    fp_pool_free(H.pool);
    H.pool = NULL;

    ck_assert_uint_eq(nkept, 5);
    for (size_t n = 0; n < nkept; n++) {
        struct kept *k = &kept[n];
        ck_assert_msg(k->handle != NULL, "job %llu: not kept", (unsigned long long)k->id);
        ck_assert_int_eq(k->again, 0);
        if (k->id == 5) {
            ck_assert_uint_eq(k->len, 1);
            ck_assert_int_eq(k->data[0], 0x2a);
        } else {
            ck_assert_uint_eq(k->len, SIZE + 5);
            for (size_t b = 0; b < SIZE; b++)
                job[5 + b] = (char)(b * 7 + (size_t)(k->id - 1));
            ck_assert_msg(memcmp(k->data, job, SIZE + 5) == 0,
                          "job %llu: kept result altered", (unsigned long long)k->id);
        }
        fp_outcome_release(k->handle);
    }
    free(job);
}
END_TEST

/* ------------------------------------------------------------------------
 * Rejections and batches
 * ------------------------------------------------------------------------ */

START_TEST(submit_rejects_when_queue_full)
{
    fp_config cfg;
    const char *why = NULL;
    uint64_t id = 999;

    base_config(&cfg, 1);
    cfg.prefetch = 1;
    cfg.queue_max = 2;
    start_pool(&cfg);
    submit_op("hang", NULL);
    run_until(one_busy_nothing_queued, 20, "hang job running");
    uint64_t a = submit_int(1);
    submit_int(2);
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x03", 1, NULL, never_cb, NULL,
                                    &id, &why), -1);
    ck_assert_str_eq(why, "queue full");
    ck_assert_uint_eq(id, 999);                 /* untouched */
    ck_assert_uint_eq(stats().queued, 2);

    /* Room again once one leaves the queue. */
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    submit_int(4);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 1);              /* only a's cancellation */
}
END_TEST

/* A batch: consecutive ids in order, and each job its own outcome — a
 * crash in the middle costs that job only. */
START_TEST(submit_batch_gives_each_job_its_own_outcome)
{
    fp_config cfg;
    fp_job_buf jobs[40];
    char ints[40][2];
    uint64_t first = 0;
    const char *why = NULL;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < 40; i++) {
        ints[i][0] = (char)i;               /* positive fixint i */
        jobs[i] = (fp_job_buf){ ints[i], 1 };
    }
    jobs[17] = (fp_job_buf){ "\x81\xa2op\xa5" "crash", 10 };
    static const char fail_no[] = "\x82\xa2op\xa4" "fail\xa6" "detail\xa2no";
    jobs[30] = (fp_job_buf){ fail_no, sizeof(fail_no) - 1 };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 40, NULL, record_cb, &H,
                                          &first, &why), 0);
    ck_assert_uint_eq(first, 1);
    wait_outcomes(40, 20);
    for (int i = 0; i < 40; i++) {
        const struct rec *r = rec_for(first + (uint64_t)i);
        ck_assert_msg(r != NULL, "job %d has no outcome", i);
        ck_assert_uint_eq(count_for(first + (uint64_t)i), 1);
        if (i == 17) {
            ck_assert_int_eq(r->kind, FP_CRASHED);
            ck_assert_str_eq(detail(r), "killed by SIGSEGV");
        } else if (i == 30) {
            ck_assert_int_eq(r->kind, FP_ERROR);
            ck_assert_str_eq(detail(r), "no");
        } else {
            ck_assert_int_eq(r->kind, FP_OK);
            ck_assert(r->is_int);
            ck_assert_int_eq(r->ival, i);
        }
    }
    ck_assert_uint_eq(submit_int(99), 41);      /* ids go on after it */
}
END_TEST

/* A batch is accepted whole or not at all. */
START_TEST(submit_batch_is_all_or_none)
{
    fp_config cfg;
    fp_job_buf jobs[3] = { { "\x01", 1 }, { "\xc1", 1 }, { "\x03", 1 } };
    const char *why = NULL;
    uint64_t first = 999;

    base_config(&cfg, 1);
    cfg.queue_max = 4;
    cfg.prefetch = 1;
    start_pool(&cfg);
    submit_op("hang", NULL);
    run_until(one_busy_nothing_queued, 20, "hang job running");
    /* One malformed job refuses the batch. */
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 3, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "malformed");
    ck_assert_uint_eq(first, 999);
    /* More than the queue has room for. */
    jobs[1].data = "\x02";
    submit_int(7);
    submit_int(8);
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 3, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "queue full");
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 0, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "empty batch");
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_uint_eq(stats().submitted, 3);
    /* Two fit. */
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 2, NULL, record_cb, &H,
                                          &first, &why), 0);
    ck_assert_uint_eq(first, 4);
    ck_assert_uint_eq(stats().queued, 4);
}
END_TEST

START_TEST(submit_rejects_job_too_large)
{
    fp_config cfg;
    char job[200];
    const char *why = NULL;

    base_config(&cfg, 1);
    cfg.max_job_bytes = 100;
    cfg.max_job_objects = 10;
    start_pool(&cfg);

    /* bin 8: 2 header bytes + payload */
    memset(job, 'x', sizeof(job));
    job[0] = (char)0xc4;
    job[1] = 98;
    uint64_t ok = submit_bytes(job, 100, NULL);         /* exactly the limit */
    job[1] = 99;
    ck_assert_int_eq(fp_pool_submit(H.pool, job, 101, NULL, never_cb, NULL,
                                    NULL, &why), -1);
    ck_assert_str_eq(why, "job too large");

    /* An array of 50 small ints: few bytes, too many objects. */
    char many[53];
    many[0] = (char)0xdc;       /* array 16 */
    many[1] = 0;
    many[2] = 50;
    memset(many + 3, 1, 50);
    ck_assert_int_eq(fp_pool_submit(H.pool, many, sizeof(many), NULL, never_cb,
                                    NULL, NULL, &why), -1);
    ck_assert_str_eq(why, "job too large");

    /* The one at the limit went through whole. */
    const struct rec *r = wait_job(ok, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->len, 100);
    job[1] = 98;
    ck_assert(memcmp(r->data, job, 100) == 0);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 1);
}
END_TEST

START_TEST(submit_rejects_malformed_bytes)
{
    fp_config cfg;
    static const struct { const char *bytes; size_t len; } bad[] = {
        { "\xc1", 1 },              /* never-used byte */
        { "\x01\x02", 2 },          /* two values */
        { "\x92\x01", 2 },          /* truncated array */
        { "\xa5" "abc", 4 },        /* truncated str */
        { "", 0 },                  /* nothing */
    };

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_uint_eq(submit_int(1), 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        ck_assert_int_eq(fp_pool_submit(H.pool, bad[i].bytes, bad[i].len, NULL,
                                        never_cb, NULL, NULL, &why), -1);
        ck_assert_str_eq(why, "malformed");
    }
    ck_assert_uint_eq(submit_int(2), 2);        /* rejections use no id */
    wait_outcomes(2, 20);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 2);
    ck_assert_uint_eq(stats().submitted, 2);
}
END_TEST

/* Nesting: as deep as the library's limit goes through and comes back
 * intact; one level deeper is refused before it is queued. */
START_TEST(submit_rejects_nesting_past_the_limit)
{
    enum { LIMIT = 32 };        /* FP_MAX_DEPTH, msgpack-c's own bound */
    fp_config cfg;
    char job[LIMIT + 2];
    const char *why = NULL;

    base_config(&cfg, 1);
    start_pool(&cfg);
    memset(job, (char)0x91, sizeof(job));      /* [[[...]]] */
    job[LIMIT] = 0x07;
    uint64_t ok = submit_bytes(job, LIMIT + 1, NULL);
    job[LIMIT + 1] = 0x07;
    ck_assert_int_eq(fp_pool_submit(H.pool, job, LIMIT + 2, NULL, never_cb,
                                    NULL, NULL, &why), -1);
    ck_assert_str_eq(why, "malformed");

    const struct rec *r = wait_job(ok, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    job[LIMIT] = 0x07;
    ck_assert_uint_eq(r->len, LIMIT + 1);
    ck_assert(memcmp(r->data, job, LIMIT + 1) == 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * expires (SPEC 3)
 * ------------------------------------------------------------------------ */

#define EXPIRED "expired before it started"

static int
one_idle(void)
{
    return stats().idle == 1;
}

/* Behind a job that never ends, a job with `expires` waits in the queue
 * (run times unknown: nothing is sent ahead) and ends cancelled when its
 * time is up, never started; the other jobs are untouched. */
START_TEST(expires_cancels_a_job_still_in_the_queue)
{
    fp_config cfg;
    fp_job_opts soon = { .timeout = -1, .expires = 0.2 };
    fp_job_opts later = { .timeout = -1, .expires = 60 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    uint64_t hang = submit_op("hang", NULL);
    uint64_t id = submit_op_num("sleep", "s", 0, &soon);
    uint64_t keep = submit_op_num("sleep", "s", 0, &later);
    ck_assert_uint_eq(stats().queued, 2);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), EXPIRED);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_uint_eq(stats().queued, 1);
    ck_assert_uint_eq(stats().cancelled, 1);
    /* The job with time left runs once the worker is free. */
    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    r = wait_job(keep, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "slept");
    ck_assert_uint_eq(count_for(id), 1);
}
END_TEST

/* Once a job has started, its `expires` no longer matters: a job running
 * past it ends as it ends. */
START_TEST(expires_does_not_touch_a_started_job)
{
    fp_config cfg;
    fp_job_opts o = { .timeout = -1, .expires = 0.1 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    uint64_t id = submit_op_num("sleep", "s", 0.4, &o);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "slept");
    ck_assert_uint_eq(count_for(id), 1);
}
END_TEST

/* A batch shares its options: behind a hung job, every job of it
 * expires, each once. */
START_TEST(expires_applies_to_each_job_of_a_batch)
{
    fp_config cfg;
    fp_job_opts o = { .timeout = -1, .expires = 0.2 };
    fp_job_buf jobs[5] = {
        { "\x01", 1 }, { "\x02", 1 }, { "\x03", 1 }, { "\x04", 1 }, { "\x05", 1 },
    };
    uint64_t first = 0;
    const char *why = NULL;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 5, &o, record_cb, &H,
                                          &first, &why), 0);
    wait_outcomes(5, 20);
    for (uint64_t i = 0; i < 5; i++) {
        ck_assert_uint_eq(count_for(first + i), 1);
        ck_assert_int_eq(rec_for(first + i)->kind, FP_CANCELLED);
        ck_assert_str_eq(detail(rec_for(first + i)), EXPIRED);
    }
    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    ck_assert_int_eq(wait_job(hang, 20)->kind, FP_CANCELLED);
}
END_TEST

static Suite *
pool_jobs_suite(void)
{
    Suite *s = suite_create("pool_jobs");
    TCase *tc;

    tc = ph_tcase("outcomes");
    tcase_add_test(tc, echo_jobs_all_complete_ok);
    tcase_add_test(tc, error_outcome_keeps_worker);
    tcase_add_test(tc, submit_from_callback_chains_jobs);
    tcase_add_test(tc, stats_count_idle_and_busy_workers);
    tcase_add_test(tc, large_jobs_round_trip);
    tcase_add_test(tc, a_kept_outcome_outlives_its_callback_and_the_pool);
    suite_add_tcase(s, tc);

    tc = ph_tcase("expires");
    tcase_add_test(tc, expires_cancels_a_job_still_in_the_queue);
    tcase_add_test(tc, expires_does_not_touch_a_started_job);
    tcase_add_test(tc, expires_applies_to_each_job_of_a_batch);
    suite_add_tcase(s, tc);

    tc = ph_tcase("rejections");
    tcase_add_test(tc, submit_rejects_when_queue_full);
    tcase_add_test(tc, submit_rejects_job_too_large);
    tcase_add_test(tc, submit_batch_gives_each_job_its_own_outcome);
    tcase_add_test(tc, submit_batch_is_all_or_none);
    tcase_add_test(tc, submit_rejects_malformed_bytes);
    tcase_add_test(tc, submit_rejects_nesting_past_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_jobs_suite());
}
