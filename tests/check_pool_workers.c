/*
 * check_pool_workers.c — worker lifecycles in an embedded pool: a worker that
 * crashes, exits or times out is replaced and its job gets the matching
 * outcome; retries run on fresh workers; failed starts back off; workers
 * are recycled, scaled and reloaded without losing a job; --exec workers.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "modutil.h"
#include "pool_harness.h"
#include "sockbuf.h"

/* ------------------------------------------------------------------------
 * Crashes, exits, retries and timeouts
 * ------------------------------------------------------------------------ */

START_TEST(crash_mid_job_reports_crashed_and_respawns)
{
    fp_config cfg;
    pid_t pids[4];

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_int_eq(pids[0], before);

    const struct rec *r = wait_job(submit_op("crash", NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_int_eq(pids[0], after);

    uint64_t first = submit_int(1);
    for (int i = 2; i <= 10; i++)
        submit_int(i);
    wait_outcomes(H.nrecs + 10, 20);
    for (uint64_t id = first; id < first + 10; id++) {
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_int_eq(rec_for(id)->ival, (int64_t)(id - first + 1));
    }
    fp_stats st = stats();
    ck_assert_uint_eq(st.crashed, 1);
    ck_assert_uint_eq(st.restarts, 1);
}
END_TEST

START_TEST(exit_mid_job_names_status)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op_num("exit", "code", 3, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "exited with status 3");
    ck_assert_int_eq(wait_job(submit_int(5), 20)->kind, FP_OK);
}
END_TEST

START_TEST(retries_rerun_on_fresh_worker)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 2 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("crash", &opts), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 3);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV (after 3 attempts)");
    ck_assert_uint_eq(count_for(r->id), 1);
    ck_assert_uint_eq(stats().restarts, 3);     /* one fresh worker each */

    r = wait_job(submit_int(77), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    r = wait_job(submit_op("pid", &opts), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->attempts, 1);
}
END_TEST

START_TEST(retried_job_can_succeed_on_second_attempt)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 3 };
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "/tmp/check_pool_crash_once.%ld", (long)getpid());
    unlink(path);
    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op_str("crash_once", "path", path, &opts), 20);
    unlink(path);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->attempts, 2);
    ck_assert_uint_eq(stats().crashed, 0);
}
END_TEST

START_TEST(timeout_kills_and_replaces)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.2, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();

    const struct rec *r = wait_job(submit_op("hang", &opts), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.2s");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    fp_stats st = stats();
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.restarts, 1);
}
END_TEST

START_TEST(pool_default_timeout_applies_without_opts)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.job_timeout = 0.2;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("hang", NULL), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.2s");
}
END_TEST

START_TEST(timeout_does_not_apply_to_quick_jobs)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 5, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t first = submit_op_num("sleep", "s", 0.01, &opts);
    for (int i = 0; i < 20; i++)
        submit_op_num("sleep", "s", 0.001, &opts);
    wait_outcomes(21, 20);
    for (uint64_t id = first; id < first + 21; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_uint_eq(stats().timed_out, 0);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Worker starts, recycling, scale and reload
 * ------------------------------------------------------------------------ */

START_TEST(init_receives_module_config)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("greeting", "hello from config", &len);

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    free(conf);                 /* the pool keeps its own copy */
    const struct rec *r = wait_job(submit_op("greet", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "hello from config");
}
END_TEST

START_TEST(init_failure_backs_off)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("fail_init", NULL, &len);
    pid_t pids[4];

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    uint64_t id = submit_int(1);
    /* Measuring the backoff itself: one second of loop time. */
    run_for(1.0);
    fp_stats st = stats();
    ck_assert_msg(st.restarts >= 2 && st.restarts < 12,
                  "%llu restarts in 1s (want exponential backoff from 10ms)",
                  (unsigned long long)st.restarts);
    ck_assert_uint_ge(st.start_failures, 1);
    ck_assert_uint_eq(st.start_failures, st.restarts);
    ck_assert_uint_le(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_uint_le(st.live, 1);
    ck_assert_int_eq(log_count("before it was ready"), 1);   /* once per streak */
    /* The job waits; it is not lost. */
    ck_assert_uint_eq(st.queued, 1);
    ck_assert_uint_eq(H.nrecs, 0);
    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    free(conf);
}
END_TEST

START_TEST(max_jobs_recycles_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.max_jobs = 3;
    start_pool(&cfg);
    for (int i = 0; i < 6; i++)
        submit_op("pid", NULL);
    wait_outcomes(6, 20);
    for (uint64_t id = 1; id <= 6; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_int_eq(rec_for(1)->ival, rec_for(3)->ival);
    ck_assert_int_eq(rec_for(4)->ival, rec_for(6)->ival);
    ck_assert_int_ne(rec_for(3)->ival, rec_for(4)->ival);
    ck_assert_uint_eq(stats().crashed, 0);
}
END_TEST

static unsigned want_live;

static int
live_and_idle_as_wanted(void)
{
    fp_stats st = stats();
    return st.live == want_live && st.idle == want_live && st.starting == 0;
}

START_TEST(scale_up_and_down_keeps_every_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_scale(H.pool, 3), 0);
    ck_assert_uint_eq(stats().workers, 3);
    want_live = 3;
    run_until(live_and_idle_as_wanted, 20, "three idle workers");

    /* Scale down while all three are busy: no running job is killed. */
    uint64_t first = submit_op_num("sleep", "s", 0.2, NULL);
    submit_op_num("sleep", "s", 0.2, NULL);
    submit_op_num("sleep", "s", 0.2, NULL);
    for (int i = 0; i < 20; i++)
        submit_int(i);
    ck_assert_uint_eq(stats().busy, 3);
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), 0);
    ck_assert_uint_eq(stats().workers, 1);
    wait_outcomes(23, 20);
    for (uint64_t id = first; id < first + 23; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    want_live = 1;
    run_until(live_and_idle_as_wanted, 20, "one idle worker");
    ck_assert_uint_eq(stats().restarts, 0);
    ck_assert_uint_eq(stats().crashed, 0);

    errno = 0;
    ck_assert_int_eq(fp_pool_scale(H.pool, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static pid_t reload_before[2];

static int
all_workers_replaced(void)
{
    pid_t now[4];
    size_t n = fp_pool_pids(H.pool, now, 4);
    fp_stats st = stats();

    if (n != 2 || st.idle != 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (now[i] == reload_before[0] || now[i] == reload_before[1])
            return 0;
    return 1;
}

START_TEST(reload_replaces_every_worker_without_losing_jobs)
{
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "two idle workers");
    ck_assert_uint_eq(fp_pool_pids(H.pool, reload_before, 2), 2);

    for (int i = 0; i < 50; i++)
        submit_op_num("sleep", "s", 0.002, NULL);
    fp_pool_reload(H.pool);
    for (int i = 0; i < 50; i++)
        submit_int(i);
    wait_outcomes(100, 20);
    run_until(all_workers_replaced, 20, "every worker replaced");
    for (uint64_t id = 1; id <= 100; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    ck_assert_uint_eq(stats().workers, 2);
    ck_assert_uint_eq(stats().crashed, 0);
    ck_assert_uint_eq(stats().cancelled, 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * --exec workers
 * ------------------------------------------------------------------------ */

/* An --exec worker shares no memory with the master: a job written to it
 * cannot be taken back, so none is ever sent ahead to it, however quick
 * the jobs are known to be (it once got windows, and a job "taken back"
 * from one ran twice: "result for job N, which it is not running"). */
START_TEST(exec_workers_get_one_job_at_a_time)
{
    fp_config cfg;
    fp_worker_info info[4];

    base_config(&cfg, 2);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("tag");
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    for (int round = 0; round < 5; round++) {
        size_t before = H.nrecs;
        for (int i = 0; i < 200; i++)
            submit_int(i);
        size_t n = fp_pool_worker_info(H.pool, info, 4);
        ck_assert_uint_eq(n, 2);
        for (size_t k = 0; k < n; k++)
            ck_assert_uint_eq(info[k].queued, 0);
        ck_assert_uint_eq(stats().queued, 198);
        wait_outcomes(before + 200, 30);
    }
    for (size_t i = 0; i < H.nrecs; i++)
        ck_assert_int_eq(H.recs[i].kind, FP_OK);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A worker's socket takes a job or result of a MiB in one piece (as far as
 * net.core.wmem_max allows), not five of the default 208 KiB. */
START_TEST(a_workers_socket_holds_a_mib)
{
    fp_config cfg;
    long want = sndbuf_of_a_mib();

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("sndbuf", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    if (want > 0)
        ck_assert_int_eq(r->ival, want);
    else
        ck_assert_int_gt(r->ival, 0);
}
END_TEST

/* fp_config.worker_sched: module workers (_i 0) and --exec workers (_i 2)
 * run under SCHED_BATCH by default; with FP_WORKER_SCHED_INHERIT (_i 1)
 * under the master's own SCHED_OTHER. */
START_TEST(workers_run_under_sched_batch_unless_told_to_inherit)
{
    fp_config cfg;
    fp_worker_info info[2];

    base_config(&cfg, 2);
    cfg.worker_sched = _i == 1 ? FP_WORKER_SCHED_INHERIT : FP_WORKER_SCHED_BATCH;
    if (_i == 2) {
        cfg.module = NULL;
        cfg.exec_argv = exec_worker_argv("tag");
    }
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_uint_eq(fp_pool_worker_info(H.pool, info, 2), 2);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(sched_getscheduler(info[k].pid),
                         _i == 1 ? SCHED_OTHER : SCHED_BATCH);
}
END_TEST

START_TEST(an_unknown_worker_sched_is_refused)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    cfg.worker_sched = 7;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_str_eq(err, "unknown worker scheduling policy 7");
}
END_TEST

START_TEST(exec_worker_speaks_protocol)
{
    fp_config cfg;

    base_config(&cfg, 2);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("tag");
    start_pool(&cfg);

    uint64_t first = submit_int(0);
    for (int i = 1; i < 50; i++)
        submit_int(i);
    uint64_t fail = submit_bytes("\xa4" "fail", 5, NULL);
    wait_outcomes(51, 20);
    for (uint64_t id = first; id < first + 50; id++) {
        const struct rec *r = rec_for(id);
        msgpack_unpacked u;
        size_t off = 0;
        ck_assert_int_eq(r->kind, FP_OK);
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, r->data, r->len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(u.data.via.array.size, 2);
        ck_assert(is(&u.data.via.array.ptr[0], "exec"));
        ck_assert_uint_eq(u.data.via.array.ptr[1].via.u64, id - first);
        msgpack_unpacked_destroy(&u);
    }
    ck_assert_int_eq(rec_for(fail)->kind, FP_ERROR);
    ck_assert_str_eq(detail(rec_for(fail)), "exec says no");
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A worker that breaks the protocol is killed; its job ends crashed with
 * detail "protocol error", and the pool carries on. */
START_TEST(exec_worker_protocol_error_crashes_the_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("tag");
    start_pool(&cfg);

    const struct rec *r = wait_job(submit_bytes("\xa8" "wrong id", 9, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    r = wait_job(submit_bytes("\xa4" "huge", 5, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    r = wait_job(submit_int(9), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(stats().crashed, 2);
    ck_assert_uint_eq(stats().restarts, 2);
}
END_TEST

/* A worker that says "ready" and dies at once, with no job, is a failed
 * start too: it is restarted with backoff, not in a tight loop. */
START_TEST(worker_dying_right_after_ready_backs_off)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("ready-then-exit");
    start_pool(&cfg);
    run_for(1.0);
    int spawns = log_count("worker slot 0: started pid");
    fp_stats st = stats();
    ck_assert_msg(spawns >= 2 && spawns < 12,
                  "%d worker starts in 1s (want exponential backoff)", spawns);
    ck_assert_msg(st.restarts >= 1, "%llu restarts counted for %d starts",
                  (unsigned long long)st.restarts, spawns);
    ck_assert_uint_ge(st.start_failures, 1);
}
END_TEST

/* ------------------------------------------------------------------------
 * Workers that never become ready (start_timeout)
 * ------------------------------------------------------------------------ */

static int
two_failed_starts(void)
{
    return stats().start_failures >= 2;
}

/* A worker still not ready start_timeout after its fork -- a module init
 * that never returns, a program that never says "ready" -- is killed: a
 * failed start, restarted with backoff, logged once per streak.  A job
 * waiting for a worker meanwhile still ends, when its `expires` says. */
START_TEST(start_timeout_kills_a_worker_that_never_becomes_ready)
{
    static char sleep_path[] = "sleep", sleep_arg[] = "1000";
    static char *sleep_argv[] = { sleep_path, sleep_arg, NULL };
    fp_config cfg;
    size_t len;
    char *conf = config_map("hang_init", NULL, &len);
    fp_job_opts o = { .timeout = -1, .expires = 0.3 };

    base_config(&cfg, 1);
    if (_i == 0) {
        cfg.module_config = conf;
        cfg.module_config_len = len;
    } else {
        cfg.module = NULL;
        cfg.exec_argv = sleep_argv;
    }
    cfg.start_timeout = 0.1;
    start_pool(&cfg);
    pid_t first = 0;
    ck_assert_uint_eq(fp_pool_pids(H.pool, &first, 1), 1);
    uint64_t id = submit_op_num("sleep", "s", 0, &o);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "expired before it started");
    run_until(two_failed_starts, 20, "two failed starts");
    ck_assert_int_eq(kill(first, 0), -1);       /* killed, and reaped */
    ck_assert_int_eq(log_count("not ready 0.1s after its start"), 1);
    ck_assert_uint_eq(stats().completed, 0);
    free(conf);
}
END_TEST

/* Without a start_timeout of its own the pool uses 30 s, and a negative
 * one means no limit: neither kills a worker slow to start in 0.5 s. */
START_TEST(start_timeout_default_leaves_a_slow_start_alone)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("hang_init", NULL, &len);

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    cfg.start_timeout = _i == 0 ? 0 : -1;
    start_pool(&cfg);
    run_for(0.5);
    ck_assert_uint_eq(stats().start_failures, 0);
    ck_assert_uint_eq(stats().starting, 1);
    ck_assert_int_eq(log_count("not ready"), 0);
    free(conf);
}
END_TEST

/* ------------------------------------------------------------------------
 * Nothing a job started outlives it
 * ------------------------------------------------------------------------ */

static pid_t watched;

static int
watched_gone(void)
{
    return kill(watched, 0) == -1 && errno == ESRCH;
}

/* A process a job leaves behind -- a plain child, one in a session of its
 * own, an orphan whose parent has exited -- is gone once the job's outcome
 * is in, and the worker lives on. */
START_TEST(processes_a_job_leaves_behind_die_with_it)
{
    static const char *const how[] = { "child", "setsid", "orphan" };
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t worker = worker_pid_by_job();
    const struct rec *r = wait_job(submit_op_str("spawn", "how", how[_i], NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert(r->is_int);
    ck_assert_int_gt(r->ival, 1);
    watched = (pid_t)r->ival;
    /* Killed and reaped before the result went out: gone at once (the
     * bound only guards against a broken sweep hanging the test). */
    run_until(watched_gone, 10, "the job's process gone");
    ck_assert_int_eq(worker_pid_by_job(), worker);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* The spawn job's outcome, seen from its callback: the process it
 * reported, whether that was still alive then, and whether the worker was
 * still busy (with the job after it). */
static pid_t spawned_pid;
static int spawned_alive_at_outcome = -1, busy_at_outcome = -1;

static int
one_idle(void)
{
    return stats().idle == 1;
}

static void
spawn_outcome_cb(const fp_outcome *o, void *arg)
{
    msgpack_unpacked u;
    size_t off = 0;

    msgpack_unpacked_init(&u);
    if (o->kind == FP_OK
        && msgpack_unpack_next(&u, o->data, o->len, &off) == MSGPACK_UNPACK_SUCCESS
        && u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        spawned_pid = (pid_t)u.data.via.u64;
        spawned_alive_at_outcome = kill(spawned_pid, 0) == 0;
        busy_at_outcome = (int)stats().busy;
    }
    msgpack_unpacked_destroy(&u);
    record_cb(o, arg);
}

/* A job that started a process, with a long job right behind it at the
 * same worker: its result is held, and written while the long job runs
 * (worker_hold.h) -- and its process is gone by then.  Only jobs too
 * quick to have started one put their sweep off to the end of the burst;
 * a worker that misjudged how long a job ran would let its outcome out
 * ahead of the sweep. */
START_TEST(a_held_outcome_still_follows_the_sweep)
{
    fp_config cfg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *why = NULL;
    uint64_t id;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* blind: the long job goes in the window too */
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "spawn", 5);
    ck_assert_int_eq(fp_pool_submit(H.pool, sb.data, sb.size, NULL, spawn_outcome_cb,
                                    &H, &id, &why), 0);
    msgpack_sbuffer_destroy(&sb);
    uint64_t longer = submit_op_num("sleep", "s", 1.0, NULL);
    wait_job(id, 20);
    ck_assert_int_eq(busy_at_outcome, 1);          /* the long job runs */
    ck_assert_int_eq(spawned_alive_at_outcome, 0);
    ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    wait_job(longer, 20);
}
END_TEST

/* With reap_orphans, what a job killed mid-run moved out of its worker's
 * process group comes up to the pool's process and is killed; the pool's
 * log says so. */
START_TEST(reap_orphans_kills_what_a_killed_job_left)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3, .retries = 0 };
    char dir[] = "/tmp/fp-orphan-XXXXXX", path[64], line[32] = "";
    msgpack_sbuffer sb;
    msgpack_packer pk;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pid", dir);
    base_config(&cfg, 1);
    cfg.reap_orphans = 1;
    start_pool(&cfg);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "spawn", 5);
    msgpack_pack_str_with_body(&pk, "how", 3);
    msgpack_pack_str_with_body(&pk, "setsid", 6);
    msgpack_pack_str_with_body(&pk, "path", 4);
    msgpack_pack_str_with_body(&pk, path, strlen(path));
    msgpack_pack_str_with_body(&pk, "then", 4);
    msgpack_pack_str_with_body(&pk, "hang", 4);
    const struct rec *r = wait_job(submit_bytes(sb.data, sb.size, &opts), 20);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
    rmdir(dir);
    watched = (pid_t)atol(line);
    ck_assert_int_gt(watched, 1);
    run_until(watched_gone, 10, "the process the killed job left");
    ck_assert_int_eq(log_count("killed 1 process a dead worker's job left behind"), 1);
    ck_assert_int_eq(wait_job(submit_int(5), 20)->kind, FP_OK);
}
END_TEST

/* What init started (a helper serving every job) outlives each job, and
 * goes with the worker when it stops. */
START_TEST(processes_init_started_live_until_the_worker_stops)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("helper", NULL, &len);

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("helper", NULL), 20);
    ck_assert(r->is_int);
    pid_t helper = (pid_t)r->ival;
    r = wait_job(submit_op("spawn", NULL), 20);
    ck_assert(r->is_int);
    watched = (pid_t)r->ival;
    run_until(watched_gone, 10, "the job's process gone");
    ck_assert_int_eq(kill(helper, 0), 0);       /* the helper lives on */
    fp_pool_drain(H.pool, 0, drained_cb, &H);
    run_until(drained, 20, "the drain");
    watched = helper;
    run_until(watched_gone, 10, "the helper gone with its worker");
    free(conf);
}
END_TEST

static Suite *
pool_workers_suite(void)
{
    Suite *s = suite_create("pool_workers");
    TCase *tc;

    tc = ph_tcase("outcomes");
    tcase_add_test(tc, crash_mid_job_reports_crashed_and_respawns);
    tcase_add_test(tc, exit_mid_job_names_status);
    tcase_add_test(tc, retries_rerun_on_fresh_worker);
    tcase_add_test(tc, retried_job_can_succeed_on_second_attempt);
    tcase_add_test(tc, timeout_kills_and_replaces);
    tcase_add_test(tc, pool_default_timeout_applies_without_opts);
    tcase_add_test(tc, timeout_does_not_apply_to_quick_jobs);
    suite_add_tcase(s, tc);

    tc = ph_tcase("workers");
    tcase_add_test(tc, init_receives_module_config);
    tcase_add_test(tc, init_failure_backs_off);
    tcase_add_test(tc, max_jobs_recycles_worker);
    tcase_add_test(tc, scale_up_and_down_keeps_every_job);
    tcase_add_test(tc, reload_replaces_every_worker_without_losing_jobs);
    tcase_add_test(tc, exec_worker_speaks_protocol);
    tcase_add_test(tc, exec_workers_get_one_job_at_a_time);
    tcase_add_loop_test(tc, workers_run_under_sched_batch_unless_told_to_inherit, 0, 3);
    tcase_add_test(tc, an_unknown_worker_sched_is_refused);
    tcase_add_test(tc, a_workers_socket_holds_a_mib);
    tcase_add_test(tc, exec_worker_protocol_error_crashes_the_job);
    tcase_add_test(tc, worker_dying_right_after_ready_backs_off);
    tcase_add_loop_test(tc, start_timeout_kills_a_worker_that_never_becomes_ready, 0, 2);
    tcase_add_loop_test(tc, start_timeout_default_leaves_a_slow_start_alone, 0, 2);
    suite_add_tcase(s, tc);

    tc = ph_tcase("descendants");
    tcase_add_loop_test(tc, processes_a_job_leaves_behind_die_with_it, 0, 3);
    tcase_add_test(tc, processes_init_started_live_until_the_worker_stops);
    tcase_add_test(tc, a_held_outcome_still_follows_the_sweep);
    tcase_add_test(tc, reap_orphans_kills_what_a_killed_job_left);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_workers_suite());
}
