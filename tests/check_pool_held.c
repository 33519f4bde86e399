/*
 * check_pool_held.c — prefetch windows and held results in an embedded pool:
 * jobs sent ahead to a worker that has not started them are requeued when it
 * dies, and every job it finished keeps its ok outcome, whatever kills it.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <string.h>

#include "pool_harness.h"

START_TEST(prefetch_crash_requeues_unstarted_jobs)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    cfg.prefetch = 8;
    start_pool(&cfg);
    /* All in before the worker is ready: it gets the crash job and 7 more
     * in its window at once. */
    uint64_t crash = submit_op("crash", NULL);
    for (int i = 1; i <= 20; i++)
        ck_assert_uint_eq(submit_int(i), crash + (uint64_t)i);

    wait_outcomes(21, 20);
    run_for(0.05);              /* room for a wrongly repeated outcome */
    ck_assert_uint_eq(H.nrecs, 21);
    const struct rec *r = rec_for(crash);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_uint_eq(r->attempts, 1);
    for (uint64_t id = crash + 1; id <= crash + 20; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        r = rec_for(id);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->attempts, 1);
        ck_assert_int_eq(r->ival, (int64_t)(id - crash));
    }
    /* One worker, FIFO: the echoes complete in submission order. */
    uint64_t last = 0;
    for (size_t i = 0; i < H.nrecs; i++) {
        if (H.recs[i].id == crash)
            continue;
        ck_assert_uint_gt(H.recs[i].id, last);
        last = H.recs[i].id;
    }
}
END_TEST

START_TEST(timeout_with_prefetched_jobs_requeues_them)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.2, .retries = 0 };

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", &opts);
    for (int i = 1; i <= 10; i++)
        submit_int(i);
    wait_outcomes(11, 20);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
    for (uint64_t id = hang + 1; id <= hang + 10; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_uint_eq(rec_for(id)->attempts, 1);
    }
}
END_TEST

/* A finished job's result goes out before the worker starts on the next
 * job in its window, not after it. */
START_TEST(quick_result_is_not_held_behind_slow_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    /* Both sent before the worker is ready: it reads them together. */
    uint64_t quick = submit_int(1);
    uint64_t slow = submit_op_num("sleep", "s", 2.0, NULL);
    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    const struct rec *r = wait_job(quick, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_msg(count_for(slow) == 0,
                  "the quick result came only with the slow one, after %.2fs",
                  ev_now(H.loop) - t0);
    ck_assert_msg(ev_now(H.loop) - t0 < 1.0, "quick result took %.2fs",
                  ev_now(H.loop) - t0);
}
END_TEST

/* The thread that writes results held too long starts with the first
 * result held, not with the worker: a job alone leaves the worker with
 * one thread; once jobs arrive together (the first result is held while
 * the next runs), it has two. */
START_TEST(the_flusher_starts_with_the_first_held_result)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("threads", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_int_eq(r->ival, 1);
    /* Three in one loop turn: the worker reads them together. */
    submit_int(1);
    submit_int(2);
    r = wait_job(submit_op("threads", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_int_eq(r->ival, 2);
}
END_TEST

/* Deaths no handler can see — _exit() inside the handler, SIGKILL — while
 * the results of the jobs before are held: the master takes those results
 * from the area it shares with the worker, so every finished job keeps its
 * ok outcome, only the job that was running is crashed, and the jobs after
 * it run on a fresh worker. */
static const char *const unseen_deaths[][2] = {
    { "\x82\xa2op\xa4" "exit\xa4" "code\x03", "exited with status 3" },
    { "\x81\xa2op\xa7" "sigkill",
      "killed by SIGKILL (not sent by forkpool: out of memory?)" },
};

START_TEST(held_results_survive_deaths_no_handler_sees)
{
    fp_config cfg;
    fp_job_buf jobs[60];
    char ints[60];
    uint64_t first;
    const char *why;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    worker_pid_by_job();
    for (int i = 0; i < 60; i++) {
        ints[i] = (char)i;
        jobs[i] = (fp_job_buf){ &ints[i], 1 };
    }
    jobs[30] = (fp_job_buf){ unseen_deaths[_i][0], strlen(unseen_deaths[_i][0]) };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 60, NULL, record_cb, &H,
                                          &first, &why), 0);
    wait_outcomes(1 + 60, 20);
    for (int i = 0; i < 60; i++) {
        const struct rec *r = rec_for(first + (uint64_t)i);
        ck_assert_uint_eq(count_for(first + (uint64_t)i), 1);
        if (i == 30) {
            ck_assert_int_eq(r->kind, FP_CRASHED);
            ck_assert_str_eq(detail(r), unseen_deaths[_i][1]);
        } else {
            ck_assert_msg(r->kind == FP_OK && r->is_int && r->ival == i,
                          "job %d: %s %s", i, fp_kind_name(r->kind), detail(r));
            ck_assert_uint_eq(r->attempts, 1);
        }
    }
    ck_assert_uint_eq(stats().crashed, 1);
}
END_TEST

/* A job whose own forked child crashes: the child inherits the worker's
 * crash handler and its copy of the held results, but must not send them
 * (the master would see results twice and blame a job that succeeded). */
START_TEST(crash_of_a_jobs_child_sends_no_results)
{
    fp_config cfg;
    fp_job_buf jobs[50];
    char ints[50];
    uint64_t first;
    const char *why;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    worker_pid_by_job();
    for (int i = 0; i < 50; i++) {
        ints[i] = (char)i;
        jobs[i] = (fp_job_buf){ &ints[i], 1 };
    }
    jobs[25] = (fp_job_buf){ "\x81\xa2op\xaa" "fork_abort", 15 };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 50, NULL, record_cb, &H,
                                          &first, &why), 0);
    wait_outcomes(1 + 50, 20);
    for (int i = 0; i < 50; i++)
        ck_assert_msg(rec_for(first + (uint64_t)i)->kind == FP_OK, "job %d: %s %s", i,
                      fp_kind_name(rec_for(first + (uint64_t)i)->kind),
                      detail(rec_for(first + (uint64_t)i)));
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A module that traps its own faults in init (a JIT, a GC) keeps its
 * handler: the worker does not replace it with the held-results one. */
START_TEST(module_signal_handlers_are_left_alone)
{
    fp_config cfg;
    static const char config[] = "\x81\xa9trap_segv\xc3";   /* {"trap_segv": true} */

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    cfg.module_config = config;
    cfg.module_config_len = sizeof(config) - 1;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("trapped_fault", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "recovered");
}
END_TEST

/* The same when the job after it hangs until its timeout: the worker's
 * held result goes out on its own long before the kill, so the timeout
 * is charged to the job that hung. */
START_TEST(job_before_a_hang_keeps_its_ok_result)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3 };

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t hang = submit_op("hang", &opts);
    wait_outcomes(2, 20);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
    ck_assert_uint_eq(stats().timed_out, 1);
}
END_TEST

/* A job that completed keeps its ok outcome when the job after it in the
 * same window crashes the worker. */
START_TEST(job_before_crash_keeps_its_ok_result)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t crash = submit_op("crash", NULL);
    wait_outcomes(2, 20);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 2);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(crash)->kind, FP_CRASHED);
    ck_assert_str_eq(detail(rec_for(crash)), "killed by SIGSEGV");
    ck_assert_uint_eq(rec_for(crash)->attempts, 1);
    ck_assert_uint_eq(stats().crashed, 1);
}
END_TEST

/* The timeout of a job that was prefetched behind a quick one still fires. */
START_TEST(timeout_of_prefetched_job_still_fires)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3, .retries = 0 };

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t hang = submit_op("hang", &opts);
    wait_outcomes(2, 5);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
}
END_TEST

/* A job cancelled while sent ahead, whose result is among a dead worker's
 * last words: the cancel stands, the job is freed once, and the job behind
 * it that crashed the worker is blamed on its own (not on the cancel). */
START_TEST(cancelled_job_in_a_dead_workers_last_words)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t a = submit_op_num("sleep", "s", 1.0, NULL);
    uint64_t b = submit_int(7);
    uint64_t c = submit_op("crash", NULL);
    run_until(one_busy_nothing_queued, 20, "all three at the worker");
    ck_assert_int_eq(fp_pool_cancel(H.pool, b), 1);
    wait_outcomes(3, 20);
    run_for(0.05);              /* room for a wrongly repeated outcome */
    ck_assert_uint_eq(H.nrecs, 3);
    ck_assert_int_eq(rec_for(a)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_CANCELLED);
    ck_assert_int_eq(rec_for(c)->kind, FP_CRASHED);
    ck_assert_str_eq(detail(rec_for(c)), "killed by SIGSEGV");
    ck_assert_uint_eq(rec_for(c)->attempts, 1);
}
END_TEST

static Suite *
pool_held_suite(void)
{
    Suite *s = suite_create("pool_held");
    TCase *tc;

    tc = ph_tcase("prefetch");
    tcase_add_test(tc, prefetch_crash_requeues_unstarted_jobs);
    tcase_add_test(tc, timeout_with_prefetched_jobs_requeues_them);
    tcase_add_test(tc, quick_result_is_not_held_behind_slow_job);
    tcase_add_test(tc, the_flusher_starts_with_the_first_held_result);
    tcase_add_test(tc, job_before_crash_keeps_its_ok_result);
    tcase_add_test(tc, job_before_a_hang_keeps_its_ok_result);
    tcase_add_test(tc, crash_of_a_jobs_child_sends_no_results);
    tcase_add_loop_test(tc, held_results_survive_deaths_no_handler_sees, 0, 2);
    tcase_add_test(tc, module_signal_handlers_are_left_alone);
    tcase_add_test(tc, timeout_of_prefetched_job_still_fires);
    tcase_add_test(tc, cancelled_job_in_a_dead_workers_last_words);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_held_suite());
}
