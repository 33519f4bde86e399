/*
 * check_pool_drain.c — stopping work in an embedded pool: drain, cancel and
 * fp_pool_free; every accepted job still gets exactly one outcome.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "pool_harness.h"
#include "testmod.h"

/* ------------------------------------------------------------------------
 * Drain
 * ------------------------------------------------------------------------ */

START_TEST(drain_finishes_everything)
{
    enum { N = 200 };
    fp_config cfg;
    pid_t pids[4];
    const char *why = NULL;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < N; i++) {
        if (i % 10 == 0)
            submit_op_num("sleep", "s", 0.01, NULL);
        else
            submit_int(i);
    }
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x01", 1, NULL, never_cb, NULL,
                                    NULL, &why), -1);
    ck_assert_str_eq(why, "draining");
    ck_assert_int_eq(stats().draining, 1);

    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_uint_eq(H.recs_at_drained, N);    /* every outcome came first */
    for (uint64_t id = 1; id <= N; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 0);
    ck_assert_uint_eq(stats().live, 0);
    ck_assert_uint_eq(stats().completed, N);
}
END_TEST

/* Draining a pool whose workers have not said "ready" yet stops them
 * cleanly: no restart, no error logged.  To make the order of events
 * deterministic the loop is kept still until both workers have exited
 * (waitid WNOWAIT leaves them for libev to reap), so the master sees each
 * exit together with the "ready" still unread in its socket. */
START_TEST(drain_of_just_started_pool_is_clean)
{
    fp_config cfg;
    pid_t pids[4];
    siginfo_t si;

    base_config(&cfg, 2);
    start_pool(&cfg);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 2);
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    for (int i = 0; i < 2; i++) {
        int rc;
        while ((rc = waitid(P_PID, (id_t)pids[i], &si, WEXITED | WNOWAIT)) < 0
               && errno == EINTR)
            ;
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(si.si_code, CLD_EXITED);
        ck_assert_int_eq(si.si_status, 0);
    }
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 0);
    ck_assert_uint_eq(stats().restarts, 0);
    ck_assert_msg(log_count("WARN:") == 0 && log_count("ERR:") == 0,
                  "a clean drain logged trouble:\n%s", H.log);
}
END_TEST

START_TEST(drain_timeout_cancels_the_rest)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch = 2;
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    for (int i = 1; i <= 3; i++)
        submit_int(i);
    run_until(one_busy, 20, "hang job running");
    /* Run times not known yet: nothing is sent ahead of the hang. */
    ck_assert_uint_eq(stats().queued, 3);

    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    fp_pool_drain(H.pool, 0.3, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_msg(H.drained_at - t0 >= 0.29, "cut off after %.3fs",
                  H.drained_at - t0);
    ck_assert_uint_eq(H.nrecs, 4);
    for (uint64_t id = hang; id <= hang + 3; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
        ck_assert_str_eq(detail(rec_for(id)), "drain timeout");
        ck_assert_uint_eq(rec_for(id)->attempts, id == hang ? 1 : 0);
    }
    pid_t pids[2];
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 2), 0);
    ck_assert_uint_eq(stats().cancelled, 4);
}
END_TEST

START_TEST(second_drain_cuts_off_at_once)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    run_until(one_busy, 20, "hang job running");

    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    fp_pool_drain(H.pool, 60, drained_cb, &H);
    fp_pool_drain(H.pool, 60, drained_cb, &H);
    run_until(drained, 5, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_msg(H.drained_at - t0 < 2, "took %.3fs", H.drained_at - t0);
    ck_assert_int_eq(rec_for(hang)->kind, FP_CANCELLED);
    ck_assert_uint_eq(count_for(hang), 1);
}
END_TEST

START_TEST(crash_during_drain_still_finishes_the_queue)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t crash = submit_op("crash", NULL);
    for (int i = 1; i <= 10; i++)
        submit_int(i);
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_int_eq(rec_for(crash)->kind, FP_CRASHED);
    for (uint64_t id = crash + 1; id <= crash + 10; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
}
END_TEST

/* Workers that cannot start hold no drain hostage past its timeout: the
 * queued job is cancelled and the drain reports the cut-off. */
START_TEST(drain_with_failing_workers_cuts_off_at_timeout)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("fail_init", NULL, &len);
    pid_t pids[2];

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    free(conf);
    uint64_t id = submit_int(1);
    fp_pool_drain(H.pool, 0.3, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 2), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Cancel
 * ------------------------------------------------------------------------ */

START_TEST(cancel_queued_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch = 1;           /* nothing prefetched: the others queue */
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", "s", 0.3, NULL);
    uint64_t a = submit_int(1), b = submit_int(2);
    run_until(one_busy, 20, "slow job running");
    ck_assert_uint_eq(stats().queued, 2);

    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    ck_assert_ptr_null(rec_for(a));     /* never from inside the call */
    const struct rec *r = wait_job(a, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "cancelled");
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 0);     /* gone now */

    wait_outcomes(3, 20);
    ck_assert_int_eq(rec_for(slow)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    ck_assert_uint_eq(count_for(a), 1);
    ck_assert_uint_eq(stats().cancelled, 1);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

START_TEST(cancel_unknown_id_returns_zero)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_cancel(H.pool, 0), 0);
    ck_assert_int_eq(fp_pool_cancel(H.pool, 12345), 0);
    uint64_t id = submit_int(1);
    wait_job(id, 20);
    ck_assert_int_eq(fp_pool_cancel(H.pool, id), 0);    /* already done */
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_uint_eq(stats().cancelled, 0);
}
END_TEST

START_TEST(cancel_running_job_replaces_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();
    uint64_t hang = submit_op("hang", NULL);
    run_until(one_busy, 20, "hang job running");

    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    const struct rec *r = wait_job(hang, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "cancelled");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    ck_assert_uint_eq(count_for(hang), 1);
    ck_assert_uint_eq(stats().restarts, 1);
    ck_assert_uint_eq(stats().cancelled, 1);
}
END_TEST

START_TEST(cancel_prefetched_job_gets_one_outcome)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", "s", 0.2, NULL);
    uint64_t a = submit_int(1), b = submit_int(2);
    run_until(one_busy_nothing_queued, 20, "jobs in the worker's window");

    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    ck_assert_int_eq(wait_job(a, 20)->kind, FP_CANCELLED);
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 0);
    wait_outcomes(3, 20);
    wait_job(submit_int(3), 20);        /* anything of a's would be in by now */
    ck_assert_uint_eq(count_for(a), 1);
    ck_assert_int_eq(rec_for(slow)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    ck_assert_uint_eq(stats().cancelled, 1);
}
END_TEST

/* A cancelled job that was already sent to a worker must not run forever
 * in its place: the jobs behind it still complete. */
START_TEST(cancel_prefetched_hang_does_not_stall_the_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", "s", 0.1, NULL);
    uint64_t hang = submit_op("hang", NULL);
    uint64_t after = submit_int(7);
    run_until(one_busy_nothing_queued, 20, "jobs in the worker's window");

    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    ck_assert_int_eq(wait_job(hang, 20)->kind, FP_CANCELLED);
    ck_assert_int_eq(wait_job(slow, 5)->kind, FP_OK);
    const struct rec *r = wait_job(after, 5);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(count_for(hang), 1);
}
END_TEST

/* ------------------------------------------------------------------------
 * Lifecycle and configuration
 * ------------------------------------------------------------------------ */

START_TEST(submit_before_start_runs_after_start)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    H.pool = fp_pool_new(H.loop, &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(H.pool);
    ck_assert_uint_eq(submit_int(10), 1);
    ck_assert_uint_eq(submit_int(11), 2);
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
    errno = 0;
    ck_assert_int_eq(fp_pool_start(H.pool), -1);        /* only once */
    ck_assert_int_ne(errno, 0);
    wait_outcomes(2, 20);
    ck_assert_int_eq(rec_for(1)->ival, 10);
    ck_assert_int_eq(rec_for(2)->ival, 11);
}
END_TEST

START_TEST(free_with_pending_jobs_cancels_them)
{
    fp_config cfg;
    pid_t pids[4];

    base_config(&cfg, 1);
    cfg.prefetch = 2;           /* one running, one prefetched, rest queued */
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    for (int i = 1; i <= 5; i++)
        submit_int(i);
    run_until(one_busy, 20, "hang job running");
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);

    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(H.nrecs, 6);
    for (uint64_t id = hang; id <= hang + 5; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    }
    /* The worker is gone, and reaped. */
    ck_assert_int_eq(kill(pids[0], 0), -1);
    ck_assert_int_eq(errno, ESRCH);
}
END_TEST

START_TEST(free_before_start_cancels_queued_jobs)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    H.pool = fp_pool_new(H.loop, &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(H.pool);
    for (int i = 0; i < 3; i++)
        submit_int(i);
    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(H.nrecs, 3);
    for (uint64_t id = 1; id <= 3; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
}
END_TEST

static const fp_module no_handle_module = {
    .abi = FP_MODULE_ABI, .name = "nohandle",
};
static const fp_module wrong_abi_module = {
    .abi = FP_MODULE_ABI + 41, .name = "wrongabi", .handle = testmod_handle,
};

/* fp_pool_new must fail with a message and leave nothing behind. */
static void
assert_pool_new_fails(struct ev_loop *loop, const fp_config *cfg)
{
    char err[256] = "";
    fp_pool *p = fp_pool_new(loop, cfg, err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_msg(err[0] != '\0', "no error message");
}

START_TEST(pool_new_rejects_bad_config)
{
    fp_config cfg;
    static char prog[] = "/bin/true";
    static char *argv_ok[] = { prog, NULL };
    static char *argv_empty[] = { NULL };

    base_config(&cfg, 1);
    cfg.module = NULL;
    assert_pool_new_fails(H.loop, &cfg);                /* no handler */

    base_config(&cfg, 1);
    cfg.exec_argv = argv_ok;
    assert_pool_new_fails(H.loop, &cfg);                /* both handlers */

    base_config(&cfg, 1);
    cfg.module = &wrong_abi_module;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 1);
    cfg.module = &no_handle_module;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = argv_empty;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 5);
    cfg.max_workers = 4;
    assert_pool_new_fails(H.loop, &cfg);

    struct ev_loop *other = ev_loop_new(0);
    base_config(&cfg, 1);
    assert_pool_new_fails(other, &cfg);                 /* not the default */
    ev_loop_destroy(other);
}
END_TEST

static Suite *
pool_drain_suite(void)
{
    Suite *s = suite_create("pool_drain");
    TCase *tc;

    tc = ph_tcase("drain");
    tcase_add_test(tc, drain_finishes_everything);
    tcase_add_test(tc, drain_of_just_started_pool_is_clean);
    tcase_add_test(tc, drain_timeout_cancels_the_rest);
    tcase_add_test(tc, second_drain_cuts_off_at_once);
    tcase_add_test(tc, crash_during_drain_still_finishes_the_queue);
    tcase_add_test(tc, drain_with_failing_workers_cuts_off_at_timeout);
    suite_add_tcase(s, tc);

    tc = ph_tcase("cancel");
    tcase_add_test(tc, cancel_queued_job);
    tcase_add_test(tc, cancel_unknown_id_returns_zero);
    tcase_add_test(tc, cancel_running_job_replaces_worker);
    tcase_add_test(tc, cancel_prefetched_job_gets_one_outcome);
    tcase_add_test(tc, cancel_prefetched_hang_does_not_stall_the_worker);
    suite_add_tcase(s, tc);

    tc = ph_tcase("lifecycle");
    tcase_add_test(tc, submit_before_start_runs_after_start);
    tcase_add_test(tc, free_with_pending_jobs_cancels_them);
    tcase_add_test(tc, free_before_start_cancels_queued_jobs);
    tcase_add_test(tc, pool_new_rejects_bad_config);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_drain_suite());
}
