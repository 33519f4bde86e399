/*
 * check_pool_limits.c — rate limits (SPEC 5.3): the queue's lanes and token
 * buckets on their own (src/engine/queue.c, with a made-up clock: exact),
 * then in an embedded pool (fp_pool_limit, fp_config.rate_limit).  The one
 * timed test measures a window with a tolerance no broken limiter passes.
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pool_int.h"
#include "pool_harness.h"

/* ========================================================================
 * The queue on its own
 * ======================================================================== */

static struct fp_job jobs[64];

/* Job `id` of key `k` (NULL: none), pushed. */
static void
push(struct fp_queue *q, uint64_t id, const char *k)
{
    struct fp_job *job = &jobs[id];

    memset(job, 0, sizeof(*job));
    job->id = id;
    job->key = k != NULL ? fp_queue_key_hold(q, k) : NULL;
    fp_queue_push(q, job);
}

/* The id of the next job allowed at `now`, or 0. */
static uint64_t
next_id(struct fp_queue *q, double now, double *wait)
{
    double w;
    struct fp_job *job = fp_queue_next(q, now, wait != NULL ? wait : &w);

    return job != NULL ? job->id : 0;
}

START_TEST(a_throttled_key_waits_alone_and_each_key_stays_fifo)
{
    struct fp_queue q;
    double wait;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 1, 1, 0), 0);
    push(&q, 1, "A");
    push(&q, 2, "A");
    push(&q, 3, "B");
    push(&q, 4, NULL);
    push(&q, 5, "A");
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);     /* A's one token */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 3);     /* A waits, B goes */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 4);
    ck_assert_uint_eq(next_id(&q, 0, &wait), 0);
    ck_assert(fabs(wait - 1.0) < 1e-9);             /* A's next token */
    ck_assert_uint_eq(next_id(&q, 0.5, &wait), 0);
    ck_assert(fabs(wait - 0.5) < 1e-9);
    ck_assert_uint_eq(next_id(&q, 1.0, NULL), 2);   /* A in order */
    ck_assert_uint_eq(next_id(&q, 1.5, NULL), 0);
    ck_assert_uint_eq(next_id(&q, 2.0, NULL), 5);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(next_id(&q, 9, &wait), 0);
    ck_assert(wait < 0);                            /* nothing to wake for */
    fp_queue_free(&q);
}
END_TEST

/* rate 20, burst 5, polled every millisecond for 2 s of made-up time:
 * 5 at once, then one every 50 ms. */
START_TEST(tokens_refill_at_the_rate_up_to_the_burst)
{
    struct fp_queue q;
    unsigned started = 0, at_once = 0;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "K", 20, 5, 0), 0);
    for (uint64_t id = 1; id < 64; id++)
        push(&q, id, "K");
    for (int ms = 0; ms <= 2000; ms++) {
        while (next_id(&q, ms / 1000.0, NULL) != 0) {
            started++;
            if (ms == 0)
                at_once++;
        }
    }
    ck_assert_uint_eq(at_once, 5);
    ck_assert_uint_eq(started, 5 + 40);
    /* Idle for a long time: the bucket holds no more than the burst. */
    while (next_id(&q, 100, NULL) != 0)
        started++;
    ck_assert_uint_eq(started, 5 + 40 + 5);
    fp_queue_free(&q);
}
END_TEST

START_TEST(pool_wide_bucket_governs_every_job)
{
    struct fp_queue q;
    double wait;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "", 2, 1, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 1000, 1000, 0), 0);
    push(&q, 1, NULL);
    push(&q, 2, "A");
    push(&q, 3, "B");
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);
    ck_assert_uint_eq(next_id(&q, 0, &wait), 0);    /* A has tokens; the
                                                       pool has none */
    ck_assert(fabs(wait - 0.5) < 1e-9);
    ck_assert_uint_eq(next_id(&q, 0.5, NULL), 2);
    ck_assert_uint_eq(next_id(&q, 1.0, NULL), 3);
    ck_assert_int_eq(fp_queue_unlimit(&q, ""), 1);
    ck_assert_int_eq(fp_queue_unlimit(&q, ""), 0);
    fp_queue_free(&q);
}
END_TEST

/* Jobs put back (a dead worker's) return to their places by id; removing
 * a bucket merges its lane back in order. */
START_TEST(put_back_and_unlimit_keep_the_order_by_id)
{
    struct fp_queue q;
    uint64_t order[8];
    size_t n = 0;
    uint64_t id;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 0, 1, 0), 0);
    for (id = 1; id <= 6; id++)
        push(&q, id, id % 2 ? "A" : NULL);          /* A: 1 3 5 */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);
    ck_assert_uint_eq(next_id(&q, 0, NULL), 2);
    ck_assert_uint_eq(next_id(&q, 0, NULL), 4);
    fp_queue_put_back(&q, &jobs[4]);                /* back in reverse */
    fp_queue_put_back(&q, &jobs[2]);
    fp_queue_put_back(&q, &jobs[1]);
    ck_assert_uint_eq(fp_queue_find(&q, 3)->id, 3);
    ck_assert_ptr_null(fp_queue_find(&q, 9));
    ck_assert_int_eq(fp_queue_unlimit(&q, "A"), 1);
    while ((id = next_id(&q, 0, NULL)) != 0)
        order[n++] = id;
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(order[i], i + 1);
    fp_queue_free(&q);
}
END_TEST

START_TEST(a_key_record_lives_only_while_used)
{
    struct fp_queue q;
    struct fp_key *k[1000];
    char name[32];

    fp_queue_init(&q, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "key-%d", i);
        k[i] = fp_queue_key_hold(&q, name);
        ck_assert_ptr_eq(fp_queue_key_hold(&q, name), k[i]);
    }
    ck_assert_uint_eq(fp_queue_nkeys(&q), 1000);
    ck_assert_int_eq(fp_queue_limit(&q, "key-7", 1, 0, 0), 0);
    for (int i = 0; i < 1000; i++) {
        fp_queue_key_drop(&q, k[i]);
        fp_queue_key_drop(&q, k[i]);
    }
    ck_assert_uint_eq(fp_queue_nkeys(&q), 1);       /* key-7: its bucket */
    ck_assert_int_eq(fp_queue_unlimit(&q, "key-7"), 1);
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

START_TEST(a_bucket_needs_a_finite_rate_and_a_burst_of_at_least_one)
{
    static const double bad[][2] = {
        { NAN, 0 }, { -1, 0 }, { INFINITY, 0 }, { -INFINITY, 0 },
        { 1, 0.5 }, { 1, NAN }, { 1, INFINITY }, { 1, -2 },
    };
    struct fp_queue q;
    fp_limit_info row;

    fp_queue_init(&q, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        ck_assert_int_eq(fp_queue_limit(&q, "A", bad[i][0], bad[i][1], 0), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 0.5, 0, 0), 0);
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 1);
    ck_assert_str_eq(row.key, "A");
    ck_assert(row.rate == 0.5 && row.burst == 1 && row.tokens == 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 30, 0, 0), 0);
    fp_queue_limits(&q, 0, &row, 1);
    ck_assert(row.burst == 30 && row.tokens == 1);  /* kept its tokens */
    fp_queue_free(&q);
}
END_TEST

/* ========================================================================
 * In a pool
 * ======================================================================== */

static fp_job_opts
keyed(const char *key)
{
    fp_job_opts o = { .timeout = -1, .key = key };
    return o;
}

static uint64_t
submit_keyed(int64_t v, const char *key)
{
    char buf[16];
    size_t len = 0;
    fp_job_opts o = keyed(key);

    buf[len++] = (char)0xd3;                        /* int 64 */
    for (int shift = 56; shift >= 0; shift -= 8)
        buf[len++] = (char)((uint64_t)v >> shift);
    return submit_bytes(buf, len, &o);
}

/* The row of `key` in fp_pool_limits (asserted present). */
static fp_limit_info
limit_row(const char *key)
{
    fp_limit_info rows[8];
    size_t n = fp_pool_limits(H.pool, rows, 8);

    for (size_t i = 0; i < n && i < 8; i++)
        if (strcmp(rows[i].key, key) == 0)
            return rows[i];
    ck_abort_msg("no limit row for key '%s'", key);
    return rows[0];
}

static size_t want_done;
static int
done_at_least(void)
{
    return H.nrecs >= want_done;
}

/* Key A at 1 per second with 5 jobs queued first; key B's 5 jobs, after
 * them, all end before A's third can start (at 2 s). */
START_TEST(a_throttled_key_does_not_delay_another_key)
{
    fp_config cfg;
    uint64_t a[5], b[5];

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1, 1), 0);
    for (int i = 0; i < 5; i++)
        a[i] = submit_keyed(i, "A");
    for (int i = 0; i < 5; i++)
        b[i] = submit_keyed(100 + i, "B");
    for (int i = 0; i < 5; i++)
        wait_job(b[i], 20);
    ck_assert_uint_le(count_for(a[0]) + count_for(a[1]) + count_for(a[2]), 2);
    ck_assert_uint_ge(limit_row("A").waiting, 3);
    for (int i = 0; i < 5; i++)
        wait_job(a[i], 20);
    /* FIFO within A. */
    size_t at[5];
    for (int i = 0; i < 5; i++)
        for (size_t r = 0; r < H.nrecs; r++)
            if (H.recs[r].id == a[i])
                at[i] = r;
    for (int i = 1; i < 5; i++)
        ck_assert_uint_gt(at[i], at[i - 1]);
    ck_assert_uint_eq(limit_row("A").waiting, 0);
}
END_TEST

/* 40 jobs at 20 per second, bursts of 5: the last starts 35/20 s after
 * the first, give or take; a limiter at twice the rate, or none, is far
 * quicker, and one that stalls far slower. */
START_TEST(starts_follow_the_configured_rate)
{
    fp_config cfg;
    ev_tstamp t0, elapsed;

    base_config(&cfg, 2);
    if (_i == 1) {
        cfg.rate_limit = 20;
        cfg.rate_burst = 5;
    }
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    if (_i == 0)
        ck_assert_int_eq(fp_pool_limit(H.pool, "K", 20, 5), 0);
    /* The burst is full by now; time from the first submission. */
    t0 = ev_time();
    for (int i = 0; i < 40; i++)
        submit_keyed(i, _i == 0 ? "K" : NULL);
    want_done = 40;
    run_until(done_at_least, 30, "40 outcomes");
    elapsed = ev_time() - t0;
    ck_assert_msg(elapsed >= 35.0 / 20 * 0.9, "40 jobs in %.3f s: too fast",
                  elapsed);
    ck_assert_msg(elapsed <= 35.0 / 20 * 3 + 1, "40 jobs in %.3f s: too slow",
                  elapsed);
}
END_TEST

static int
one_idle(void)
{
    return stats().idle == 1;
}

static int
one_done(void)
{
    return H.nrecs >= 1;
}

/* A key with rate 0 (its one token spent): its jobs wait in the master's
 * queue, the workers idle -- even where jobs are sent ahead blindly. */
static void
three_jobs_held_back(void)
{
    fp_config cfg;

    base_config(&cfg, 2);
    cfg.prefetch_wait = -1;
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 0, 1), 0);
    for (int i = 0; i < 3; i++)
        submit_keyed(i, "A");
    run_until(one_done, 20, "the first job");
    run_for(0.2);
    ck_assert_uint_eq(H.nrecs, 1);
}

START_TEST(a_job_waiting_for_a_token_is_never_at_a_worker)
{
    fp_worker_info w[4];
    fp_stats st;

    three_jobs_held_back();
    st = stats();
    ck_assert_uint_eq(st.queued, 2);
    ck_assert_uint_eq(st.busy, 0);
    ck_assert_uint_eq(st.idle, 2);
    ck_assert_uint_eq(fp_pool_worker_info(H.pool, w, 4), 2);
    ck_assert_uint_eq(w[0].queued + w[1].queued, 0);
    fp_limit_info r = limit_row("A");
    ck_assert_uint_eq(r.waiting, 2);
    ck_assert(r.rate == 0 && r.burst == 1 && r.tokens < 1);
}
END_TEST

START_TEST(removing_a_limit_releases_the_waiting_jobs)
{
    three_jobs_held_back();
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 1);
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 0);
    wait_outcomes(3, 20);
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), 0);
}
END_TEST

START_TEST(raising_a_limit_releases_the_waiting_jobs)
{
    three_jobs_held_back();
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1000, 0), 0);
    wait_outcomes(3, 20);
}
END_TEST

START_TEST(a_limit_needs_a_finite_rate)
{
    static const double bad[] = { NAN, -1, INFINITY, -INFINITY };
    fp_config cfg;
    char err[256];

    base_config(&cfg, 1);
    start_pool(&cfg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        ck_assert_int_eq(fp_pool_limit(H.pool, "A", bad[i], 0), -1);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_int_eq(fp_pool_limit(H.pool, NULL, bad[i], 0), -1);
    }
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), 0);
    cfg.rate_limit = NAN;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "rate limit"));
}
END_TEST

/* Jobs that wait for a token, not for a worker, do not grow a dynamic
 * pool: more workers would not start them sooner. */
START_TEST(jobs_waiting_for_a_token_do_not_grow_the_pool)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.autoscale_min = 1;
    cfg.autoscale_max = 4;
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 0, 1), 0);
    submit_keyed(0, "A");       /* spends A's one token */
    run_until(one_done, 20, "the first job");
    for (int i = 1; i < 4; i++)
        submit_keyed(i, "A");
    run_for(1.5);               /* growth would have begun at once */
    ck_assert_uint_eq(stats().workers, 1);
    ck_assert_uint_eq(stats().queued, 3);
    ck_assert_int_eq(log_count("autoscale: adding"), 0);
}
END_TEST

/* 100,000 distinct keys, each on one job that ends: no key record is
 * left.  And a keyed job put back by a worker's crash keeps its key
 * until it ends. */
START_TEST(keys_do_not_outlive_their_jobs)
{
    fp_config cfg;
    char key[32];
    fp_job_opts o = { .timeout = -1 };
    size_t done = 0;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    for (int batch = 0; batch < 100; batch++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "k%d", batch * 1000 + i);
            submit_keyed(i, key);
        }
        ck_assert_uint_ge(fp_queue_nkeys(&H.pool->queue), 1);
        done += 1000;
        wait_outcomes(done, 60);
        /* Records go as outcomes are settled, before their callbacks. */
        ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 0);
    }
    o.key = "crashy";
    o.retries = 1;
    uint64_t id = submit_op("crash", &o);
    ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 1);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 2);
    ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 0);
}
END_TEST

/* A job waiting in a throttled key's lane past its `expires` ends
 * cancelled, "expired before it started"; the key's other jobs keep their
 * places. */
START_TEST(expires_cancels_a_job_waiting_for_a_token)
{
    fp_job_opts o = { .timeout = -1, .key = "A", .expires = 0.2 };

    three_jobs_held_back();                 /* A: rate 0, one job done */
    uint64_t id = submit_op_num("sleep", "s", 0, &o);
    ck_assert_uint_eq(limit_row("A").waiting, 3);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "expired before it started");
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_uint_eq(limit_row("A").waiting, 2);
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 1);
    wait_outcomes(4, 20);
    ck_assert_uint_eq(count_for(id), 1);
}
END_TEST

static Suite *
pool_limits_suite(void)
{
    Suite *s = suite_create("pool_limits");
    TCase *tq = tcase_create("queue");
    TCase *tc = ph_tcase("pool");

    tcase_add_test(tq, a_throttled_key_waits_alone_and_each_key_stays_fifo);
    tcase_add_test(tq, tokens_refill_at_the_rate_up_to_the_burst);
    tcase_add_test(tq, pool_wide_bucket_governs_every_job);
    tcase_add_test(tq, put_back_and_unlimit_keep_the_order_by_id);
    tcase_add_test(tq, a_key_record_lives_only_while_used);
    tcase_add_test(tq, a_bucket_needs_a_finite_rate_and_a_burst_of_at_least_one);
    suite_add_tcase(s, tq);
    tcase_add_test(tc, a_throttled_key_does_not_delay_another_key);
    tcase_add_loop_test(tc, starts_follow_the_configured_rate, 0, 2);
    tcase_add_test(tc, a_job_waiting_for_a_token_is_never_at_a_worker);
    tcase_add_test(tc, expires_cancels_a_job_waiting_for_a_token);
    tcase_add_test(tc, removing_a_limit_releases_the_waiting_jobs);
    tcase_add_test(tc, raising_a_limit_releases_the_waiting_jobs);
    tcase_add_test(tc, a_limit_needs_a_finite_rate);
    tcase_add_test(tc, keys_do_not_outlive_their_jobs);
    tcase_add_test(tc, jobs_waiting_for_a_token_do_not_grow_the_pool);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_limits_suite());
}
