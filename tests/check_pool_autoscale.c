/*
 * check_pool_autoscale.c — the dynamic pool (SPEC §5.2) in an embedded
 * pool: it grows under a backlog up to MAX and never past it, retires only
 * idle workers after the idle timeout and never below MIN, scales within
 * [MIN, MAX] only, keeps its size through a reload, and logs each decision.
 *
 * The pool runs in-process with the test module (pool_harness.h).  The
 * tests wait for the pool's own state (the loop polls it), never for a
 * guessed time, except where the claim is that nothing happens.
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool_harness.h"
#include "testmod.h"

/* An autoscaling config: MIN-MAX, `workers` asked for (0 = none). */
static void
autoscale_config(fp_config *cfg, unsigned workers, unsigned min, unsigned max,
                 double idle_timeout)
{
    base_config(cfg, workers);
    cfg->log_level = FP_LOG_INFO;       /* the decisions, not every job */
    cfg->autoscale_min = min;
    cfg->autoscale_max = max;
    cfg->idle_timeout = idle_timeout;
}

/* What the polls saw: the most workers targeted and alive at once, the
 * fewest targeted while `watched` had no outcome. */
static unsigned most_target, most_live, fewest_target_busy;
static uint64_t watched;
static unsigned want_target, want_idle;

static void
observe(void)
{
    fp_stats st = stats();

    if (st.workers > most_target)
        most_target = st.workers;
    if (st.live > most_live)
        most_live = st.live;
    if (watched != 0 && count_for(watched) == 0 && st.workers < fewest_target_busy)
        fewest_target_busy = st.workers;
}

/* `want_target` workers targeted, all alive, none leaving. */
static int
at_target(void)
{
    fp_stats st;

    observe();
    st = stats();
    return st.workers == want_target && st.live == want_target;
}

/* `want_target` workers, `want_idle` of them idle and ready. */
static int
at_target_idle(void)
{
    return at_target() && stats().idle == want_idle;
}

static int
watched_done(void)
{
    observe();
    return count_for(watched) > 0;
}

static void
reset_observations(void)
{
    most_target = most_live = 0;
    fewest_target_busy = ~0u;
    watched = 0;
}

/* ------------------------------------------------------------------------
 * Growth
 * ------------------------------------------------------------------------ */

START_TEST(starts_min_workers_and_reports_the_range)
{
    fp_config cfg;
    fp_stats st;

    autoscale_config(&cfg, 0, 2, 5, 30);
    start_pool(&cfg);
    st = stats();
    ck_assert_uint_eq(st.workers, 2);
    ck_assert_uint_eq(st.autoscale_min, 2);
    ck_assert_uint_eq(st.autoscale_max, 5);
}
END_TEST

START_TEST(workers_asked_for_are_clamped_to_the_range)
{
    fp_config cfg;

    autoscale_config(&cfg, 9, 1, 3, 30);
    start_pool(&cfg);
    ck_assert_uint_eq(stats().workers, 3);
}
END_TEST

START_TEST(grows_under_a_backlog_to_max_and_never_past_it)
{
    enum { N = 24 };
    fp_config cfg;

    autoscale_config(&cfg, 0, 1, 4, 30);
    start_pool(&cfg);
    reset_observations();
    for (int i = 0; i < N; i++)
        submit_op_num("sleep", "s", 0.3, NULL);
    want_target = 4;
    run_until(at_target, 20, "four workers");
    wait_outcomes(N, 30);
    observe();
    for (uint64_t id = 1; id <= N; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_uint_eq(most_target, 4);
    ck_assert_uint_le(most_live, 4);
    /* 1 -> 2 at once, then 2 more a second later: two decisions. */
    ck_assert_int_eq(log_count("autoscale: adding 1 worker ("), 1);
    ck_assert_int_eq(log_count("autoscale: adding 2 workers ("), 1);
    ck_assert_int_eq(log_count("autoscale: adding"), 2);
    ck_assert_int_eq(log_count("of max 4 running)"), 2);
}
END_TEST

START_TEST(no_backlog_no_growth)
{
    fp_config cfg;

    autoscale_config(&cfg, 0, 1, 4, 30);
    start_pool(&cfg);
    want_target = 1;
    want_idle = 1;
    run_until(at_target_idle, 10, "the worker ready");
    /* One job at a time to a ready worker: none waits for a worker. */
    for (int i = 0; i < 5; i++)
        wait_job(submit_int(i), 10);
    ck_assert_uint_eq(stats().workers, 1);
    ck_assert_int_eq(log_count("autoscale:"), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Retiring idle workers
 * ------------------------------------------------------------------------ */

START_TEST(idle_workers_retire_down_to_min_and_not_below)
{
    fp_config cfg;

    autoscale_config(&cfg, 3, 1, 3, 0.3);
    start_pool(&cfg);
    ck_assert_uint_eq(stats().workers, 3);
    want_target = 1;
    run_until(at_target, 10, "back to one worker");
    ck_assert_int_eq(log_count("autoscale: retiring worker"), 2);
    ck_assert_int_eq(log_count("(idle 0.3 s, 3 > min 1)"), 1);
    ck_assert_int_eq(log_count("(idle 0.3 s, 2 > min 1)"), 1);
    /* The claim is that nothing more happens: several idle timeouts. */
    run_for(1.0);
    ck_assert_uint_eq(stats().workers, 1);
    ck_assert_uint_eq(stats().live, 1);
    ck_assert_int_eq(log_count("autoscale: retiring worker"), 2);
}
END_TEST

/* Workers added under a backlog that fail to start do not count towards
 * MIN: the one healthy worker is never retired for idleness, so a pool
 * whose new workers fail keeps running jobs. */
START_TEST(the_only_running_worker_is_not_retired)
{
    fp_config cfg;
    char dir[] = "/tmp/fp-as-XXXXXX", flag[64];
    size_t len;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(flag, sizeof flag, "%s/fail", dir);
    char *conf = config_map("fail_init_if", flag, &len);
    autoscale_config(&cfg, 0, 1, 4, 0.3);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    free(conf);
    want_target = 1;
    want_idle = 1;
    run_until(at_target_idle, 10, "the first worker ready");
    FILE *f = fopen(flag, "w");             /* from now on, starts fail */
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (int i = 0; i < 8; i++)
        submit_op_num("sleep", "s", 0.1, NULL);
    wait_outcomes(8, 30);
    for (uint64_t id = 1; id <= 8; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_int_ge(log_count("autoscale: adding"), 1);
    run_for(1.0);                           /* three idle timeouts */
    ck_assert_int_eq(log_count("autoscale: retiring worker"), 0);
    ck_assert_uint_eq(stats().idle, 1);
    const struct rec *r = wait_job(submit_int(7), 10);
    ck_assert_int_eq(r->kind, FP_OK);
    unlink(flag);
    rmdir(dir);
}
END_TEST

START_TEST(busy_workers_are_never_retired)
{
    fp_config cfg;
    uint64_t a, b;

    autoscale_config(&cfg, 3, 1, 3, 0.3);
    start_pool(&cfg);
    reset_observations();
    /* Two workers busy for four idle timeouts from their first moment
     * (the jobs wait for them), alive long before the check. */
    a = submit_op_num("sleep", "s", 1.2, NULL);
    b = submit_op_num("sleep", "s", 1.2, NULL);
    watched = a;
    run_until(watched_done, 10, "the first long job");
    wait_job(b, 10);
    ck_assert_int_eq(rec_for(a)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    /* Only the idle one went while they ran. */
    ck_assert_uint_eq(fewest_target_busy, 2);
    ck_assert_int_eq(log_count("autoscale: retiring worker"), 1);
    /* Then one of the two, now idle, goes too. */
    want_target = 1;
    run_until(at_target, 10, "back to one worker");
    ck_assert_int_eq(log_count("autoscale: retiring worker"), 2);
}
END_TEST

START_TEST(grows_again_after_shrinking)
{
    fp_config cfg;

    autoscale_config(&cfg, 2, 1, 2, 0.3);
    start_pool(&cfg);
    want_target = 1;
    run_until(at_target, 10, "back to one worker");
    for (int i = 0; i < 4; i++)
        submit_op_num("sleep", "s", 0.3, NULL);
    want_target = 2;
    run_until(at_target, 10, "two workers again");
    wait_outcomes(4, 10);
    ck_assert_int_eq(log_count("autoscale: adding 1 worker (3 jobs waiting, "
                               "1 of max 2 running)"), 1);
}
END_TEST

/* ------------------------------------------------------------------------
 * Scale and reload
 * ------------------------------------------------------------------------ */

START_TEST(scale_moves_within_the_range_only)
{
    fp_config cfg;

    autoscale_config(&cfg, 0, 2, 4, 30);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_scale(H.pool, 4), 0);
    ck_assert_uint_eq(stats().workers, 4);
    ck_assert_int_eq(fp_pool_scale(H.pool, 2), 0);
    ck_assert_uint_eq(stats().workers, 2);
    errno = 0;
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(fp_pool_scale(H.pool, 5), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_uint_eq(stats().workers, 2);
}
END_TEST

START_TEST(reload_keeps_the_current_size)
{
    fp_config cfg;
    pid_t before[8], after[8];

    autoscale_config(&cfg, 0, 1, 4, 30);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_scale(H.pool, 3), 0);
    want_target = 3;
    want_idle = 3;
    run_until(at_target_idle, 10, "three idle workers");
    ck_assert_uint_eq(fp_pool_pids(H.pool, before, 8), 3);
    fp_pool_reload(H.pool);
    run_until(at_target_idle, 10, "three idle workers again");
    while (stats().reloading)
        run_until(at_target_idle, 10, "the reload's end");
    ck_assert_uint_eq(fp_pool_pids(H.pool, after, 8), 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            ck_assert_int_ne(before[i], after[j]);
    ck_assert_uint_eq(stats().workers, 3);
}
END_TEST

START_TEST(bad_ranges_are_refused)
{
    static const unsigned ranges[][3] = {   /* min, max, max_workers */
        { 0, 4, 0 }, { 3, 2, 0 }, { 1, 9, 8 }, { 2, 0, 0 },
    };
    char err[256];
    fp_config cfg;

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        autoscale_config(&cfg, 0, ranges[i][0], ranges[i][1], 30);
        cfg.max_workers = ranges[i][2];
        err[0] = '\0';
        ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
        ck_assert_msg(strstr(err, "autoscale range") != NULL, "%s", err);
    }
}
END_TEST

static Suite *
pool_autoscale_suite(void)
{
    Suite *s = suite_create("pool autoscale");
    TCase *tc;

    tc = ph_tcase("growth");
    tcase_add_test(tc, starts_min_workers_and_reports_the_range);
    tcase_add_test(tc, workers_asked_for_are_clamped_to_the_range);
    tcase_add_test(tc, grows_under_a_backlog_to_max_and_never_past_it);
    tcase_add_test(tc, no_backlog_no_growth);
    suite_add_tcase(s, tc);

    tc = ph_tcase("idle");
    tcase_add_test(tc, idle_workers_retire_down_to_min_and_not_below);
    tcase_add_test(tc, busy_workers_are_never_retired);
    tcase_add_test(tc, the_only_running_worker_is_not_retired);
    tcase_add_test(tc, grows_again_after_shrinking);
    suite_add_tcase(s, tc);

    tc = ph_tcase("scale");
    tcase_add_test(tc, scale_moves_within_the_range_only);
    tcase_add_test(tc, reload_keeps_the_current_size);
    tcase_add_test(tc, bad_ranges_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_autoscale_suite());
}
