/*
 * check_pool_receipts.c — what an embedded pool tells about each job beyond
 * its value (SPEC §3 "Receipt", §7 "stderr"): the receipt of every outcome
 * (wait_ms, run_ms, cpu_ms, maxrss_kb, attempts), the last lines a crashed
 * job wrote to stderr, and a SIGKILL nobody in forkpool sent.
 *
 * The figures are asserted with bounds that load cannot break: CPU is
 * burnt by CPU time (testmod's "burn"), not by the clock; waits and runs
 * only have lower bounds where the machine could stretch them.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include "modutil.h"
#include "pool_harness.h"

#define MIB_KB 1024u

/* Submit {"op": op, k1: v1[, k2: v2]} with number values (k2 may be NULL). */
static uint64_t
submit_op2(const char *op, const char *k1, double v1, const char *k2, double v2,
           const fp_job_opts *opts)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, k2 != NULL ? 3 : 2);
    pack_cstr(&pk, "op");
    pack_cstr(&pk, op);
    pack_cstr(&pk, k1);
    msgpack_pack_double(&pk, v1);
    if (k2 != NULL) {
        pack_cstr(&pk, k2);
        msgpack_pack_double(&pk, v2);
    }
    uint64_t id = submit_bytes(sb.data, sb.size, opts);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

/* Submit {"op": "crash", "say": text, "n": n}: n lines on stderr, then a
 * SIGSEGV. */
static uint64_t
submit_crash_saying(const char *text, unsigned n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_cstr(&pk, "op");
    pack_cstr(&pk, "crash");
    pack_cstr(&pk, "say");
    pack_cstr(&pk, text);
    pack_cstr(&pk, "n");
    msgpack_pack_unsigned_int(&pk, n);
    uint64_t id = submit_bytes(sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

static const struct rec *
done_ok(uint64_t id)
{
    const struct rec *r = wait_job(id, 20);
    ck_assert_msg(r->kind == FP_OK, "job %llu: %s %s", (unsigned long long)id,
                  fp_kind_name(r->kind), detail(r));
    return r;
}

/* ---- the receipt ---------------------------------------------------------- */

START_TEST(sleeping_job_runs_without_using_cpu)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = done_ok(submit_op_num("sleep", "s", 0.2, NULL));
    ck_assert_msg(r->stats.run_ms >= 190 && r->stats.run_ms <= 600,
                  "run_ms %.3f", r->stats.run_ms);
    ck_assert_msg(r->stats.cpu_ms < 100, "cpu_ms %.3f", r->stats.cpu_ms);
    ck_assert_msg(r->stats.wait_ms >= 0, "wait_ms %.3f", r->stats.wait_ms);
    ck_assert_uint_gt(r->stats.maxrss_kb, 0);
    ck_assert_uint_eq(r->attempts, 1);
}
END_TEST

START_TEST(spinning_job_reports_its_cpu)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = done_ok(submit_op_num("burn", "s", 0.3, NULL));
    ck_assert_msg(r->stats.cpu_ms >= 250, "cpu_ms %.3f", r->stats.cpu_ms);
    ck_assert_msg(r->stats.run_ms >= r->stats.cpu_ms * 0.9, "run_ms %.3f, cpu_ms %.3f",
                  r->stats.run_ms, r->stats.cpu_ms);
}
END_TEST

/* The CPU of the job's children (waited for) is the job's. */
START_TEST(cpu_of_a_jobs_child_counts)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = done_ok(submit_op_num("burn_child", "s", 0.3, NULL));
    ck_assert_msg(r->stats.cpu_ms >= 250, "cpu_ms %.3f", r->stats.cpu_ms);
}
END_TEST

/* maxrss_kb is the peak during the job, not the worker's high-water mark:
 * the jobs after a big one on the same worker report their own. */
START_TEST(peak_memory_is_the_jobs_own)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *big = done_ok(submit_op_num("touch", "mib", 100, NULL));
    ck_assert_msg(big->stats.maxrss_kb >= 100 * MIB_KB, "big job: %llu kB",
                  (unsigned long long)big->stats.maxrss_kb);
    /* A short one (below the meter's grain) and a longer one. */
    const struct rec *small = done_ok(submit_int(7));
    ck_assert_msg(small->stats.maxrss_kb > 0 && small->stats.maxrss_kb < 50 * MIB_KB,
                  "small job after it: %llu kB",
                  (unsigned long long)small->stats.maxrss_kb);
    const struct rec *nap = done_ok(submit_op_num("sleep", "s", 0.02, NULL));
    ck_assert_msg(nap->stats.maxrss_kb > 0 && nap->stats.maxrss_kb < 50 * MIB_KB,
                  "sleeping job after it: %llu kB",
                  (unsigned long long)nap->stats.maxrss_kb);
}
END_TEST

/* A job sent ahead to a busy worker waits there: it starts when the job
 * before it ends, and its wait says so, not its run. */
START_TEST(time_in_a_workers_window_is_waiting)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", "s", 0.3, NULL);
    uint64_t quick = submit_int(1);
    run_until(one_busy_nothing_queued, 20, "both at the worker");
    const struct rec *r = done_ok(quick);
    ck_assert_msg(r->stats.wait_ms >= 250, "wait_ms %.3f", r->stats.wait_ms);
    ck_assert_msg(r->stats.run_ms < 100, "run_ms %.3f", r->stats.run_ms);
    ck_assert_msg(rec_for(slow)->stats.run_ms >= 250, "slow job's run_ms %.3f",
                  rec_for(slow)->stats.run_ms);
}
END_TEST

START_TEST(time_in_the_queue_is_waiting)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    submit_op_num("sleep", "s", 0.3, NULL);
    const struct rec *r = done_ok(submit_int(1));
    ck_assert_msg(r->stats.wait_ms >= 250, "wait_ms %.3f", r->stats.wait_ms);
}
END_TEST

/* A retried job's receipt is its last attempt's; attempts counts them. */
START_TEST(receipt_of_a_retried_crash)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 2 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op2("crash", "burn", 0.2, NULL, 0, &opts), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 3);
    /* Its CPU, counted when its worker was reaped. */
    ck_assert_msg(r->stats.cpu_ms >= 150, "cpu_ms %.3f", r->stats.cpu_ms);
    ck_assert_msg(r->stats.run_ms >= r->stats.cpu_ms * 0.9, "run_ms %.3f",
                  r->stats.run_ms);
    ck_assert_uint_gt(r->stats.maxrss_kb, 0);
}
END_TEST

START_TEST(timed_out_job_has_a_receipt)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("hang", &opts), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.3s");
    ck_assert_msg(r->stats.run_ms >= 290, "run_ms %.3f", r->stats.run_ms);
    ck_assert_msg(r->stats.cpu_ms < 100, "cpu_ms %.3f", r->stats.cpu_ms);
    ck_assert_uint_gt(r->stats.maxrss_kb, 0);
    ck_assert_ptr_null(r->errtail);
}
END_TEST

/* A job that never started has a receipt of zeros. */
START_TEST(job_cancelled_in_the_queue_has_zero_receipt)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t busy = submit_op_num("sleep", "s", 0.2, NULL);
    uint64_t queued = submit_int(1);
    ck_assert_int_eq(fp_pool_cancel(H.pool, queued), 1);
    const struct rec *r = wait_job(queued, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert(r->stats.wait_ms == 0 && r->stats.run_ms == 0 && r->stats.cpu_ms == 0);
    ck_assert_uint_eq(r->stats.maxrss_kb, 0);
    ck_assert_uint_eq(r->attempts, 0);
    done_ok(busy);
}
END_TEST

/* ---- a crashed job's stderr ------------------------------------------------- */

START_TEST(segfault_carries_its_stderr)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_crash_saying("parsing record", 2), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_str_eq(r->errtail, "parsing record 0000\nparsing record 0001\n");
}
END_TEST

START_TEST(failed_assertion_carries_its_message)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("assert", NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGABRT");
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_msg(strstr(r->errtail, "Assertion") != NULL
                  && strstr(r->errtail, "testmod assertion") != NULL,
                  "stderr: %s", r->errtail);
}
END_TEST

/* At most FP_STDERR_TAIL bytes, the last ones, from a line's start. */
START_TEST(stderr_tail_keeps_the_last_lines)
{
    fp_config cfg;
    static const char text[] = "a line of forty-odd characters of stderr";

    base_config(&cfg, 1);
    start_pool(&cfg);
    /* 200 lines of 46 bytes: over twice what is kept. */
    const struct rec *r = wait_job(submit_crash_saying(text, 200), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_uint_le(r->errtail_len, FP_STDERR_TAIL);
    ck_assert_uint_gt(r->errtail_len, FP_STDERR_TAIL - 2 * (sizeof(text) + 5));
    ck_assert_msg(strncmp(r->errtail, text, sizeof(text) - 1) == 0,
                  "does not start with a whole line: %.60s", r->errtail);
    char want[64];
    snprintf(want, sizeof(want), "%s 0199\n", text);
    ck_assert_str_eq(r->errtail + r->errtail_len - strlen(want), want);
    ck_assert_ptr_null(strstr(r->errtail, " 0000\n"));
}
END_TEST

START_TEST(ok_outcome_has_no_stderr)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = done_ok(submit_op_str("say", "text", "hello", NULL));
    ck_assert_ptr_null(r->errtail);
}
END_TEST

/* What the job before wrote is not the crashed job's. */
START_TEST(stderr_of_the_job_before_is_not_the_crashed_jobs)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    done_ok(submit_op_str("say", "text", "written by the job before", NULL));
    const struct rec *r = wait_job(submit_crash_saying("written by the crashed job", 1), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_str_eq(r->errtail, "written by the crashed job 0000\n");
}
END_TEST

/* Not even when the crashed job was sent ahead behind it, and started
 * while the result before it was held back (its own first lines may be
 * lost then, never shown to another job's client). */
START_TEST(stderr_of_the_job_before_stays_its_own_when_sent_ahead)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever there is room */
    start_pool(&cfg);
    uint64_t before = submit_op_str("say", "text", "written by the job before", NULL);
    uint64_t crash = submit_crash_saying("written by the crashed job", 1);
    done_ok(before);
    const struct rec *r = wait_job(crash, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_msg(strstr(r->errtail, "job before") == NULL, "stderr: %s", r->errtail);
}
END_TEST

/* ---- who killed it ---------------------------------------------------------- */

START_TEST(sigkill_from_outside_says_so)
{
    fp_config cfg;
    pid_t pid;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t id = submit_op("hang", NULL);
    run_until(one_busy, 20, "the job running");
    ck_assert_uint_eq(fp_pool_pids(H.pool, &pid, 1), 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGKILL (not sent by forkpool: out of memory?)");
    ck_assert_msg(r->stats.run_ms > 0, "run_ms %.3f", r->stats.run_ms);
}
END_TEST

START_TEST(cancel_kill_keeps_its_detail)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t id = submit_op("hang", NULL);
    run_until(one_busy, 20, "the job running");
    ck_assert_int_eq(fp_pool_cancel(H.pool, id), 1);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "cancelled");
    ck_assert_ptr_null(r->errtail);
}
END_TEST

/* ---- an --exec worker, measured from outside -------------------------------- */

static void
exec_config(fp_config *cfg)
{
    base_config(cfg, 1);
    cfg->module = NULL;
    cfg->exec_argv = exec_worker_argv("testmod");
}

START_TEST(exec_worker_receipt)
{
    fp_config cfg;

    exec_config(&cfg);
    start_pool(&cfg);
    const struct rec *r = done_ok(submit_op_num("burn", "s", 0.3, NULL));
    /* /proc counts in clock ticks: 10 ms steps. */
    ck_assert_msg(r->stats.cpu_ms >= 250, "cpu_ms %.3f", r->stats.cpu_ms);
    r = done_ok(submit_op_num("sleep", "s", 0.2, NULL));
    ck_assert_msg(r->stats.run_ms >= 190 && r->stats.run_ms <= 600,
                  "run_ms %.3f", r->stats.run_ms);
    ck_assert_msg(r->stats.cpu_ms < 100, "cpu_ms %.3f", r->stats.cpu_ms);
    r = done_ok(submit_op_num("touch", "mib", 100, NULL));
    ck_assert_msg(r->stats.maxrss_kb >= 100 * MIB_KB, "big job: %llu kB",
                  (unsigned long long)r->stats.maxrss_kb);
    r = done_ok(submit_int(7));
    ck_assert_msg(r->stats.maxrss_kb > 0 && r->stats.maxrss_kb < 50 * MIB_KB,
                  "small job after it: %llu kB", (unsigned long long)r->stats.maxrss_kb);
}
END_TEST

START_TEST(exec_worker_crash_carries_its_stderr)
{
    fp_config cfg;

    exec_config(&cfg);
    start_pool(&cfg);
    /* (chatter, not say: an exec worker's stdout is its protocol) */
    done_ok(submit_op_str("chatter", "text", "written by the job before", NULL));
    const struct rec *r = wait_job(submit_crash_saying("exec worker faulting", 1), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_ptr_nonnull(r->errtail);
    ck_assert_str_eq(r->errtail, "exec worker faulting 0000\n");
}
END_TEST

static Suite *
pool_receipts_suite(void)
{
    Suite *s = suite_create("pool_receipts");
    TCase *tc;

    tc = ph_tcase("receipt");
    tcase_add_test(tc, sleeping_job_runs_without_using_cpu);
    tcase_add_test(tc, spinning_job_reports_its_cpu);
    tcase_add_test(tc, cpu_of_a_jobs_child_counts);
    tcase_add_test(tc, peak_memory_is_the_jobs_own);
    tcase_add_test(tc, time_in_a_workers_window_is_waiting);
    tcase_add_test(tc, time_in_the_queue_is_waiting);
    tcase_add_test(tc, receipt_of_a_retried_crash);
    tcase_add_test(tc, timed_out_job_has_a_receipt);
    tcase_add_test(tc, job_cancelled_in_the_queue_has_zero_receipt);
    suite_add_tcase(s, tc);

    tc = ph_tcase("forensics");
    tcase_add_test(tc, segfault_carries_its_stderr);
    tcase_add_test(tc, failed_assertion_carries_its_message);
    tcase_add_test(tc, stderr_tail_keeps_the_last_lines);
    tcase_add_test(tc, ok_outcome_has_no_stderr);
    tcase_add_test(tc, stderr_of_the_job_before_is_not_the_crashed_jobs);
    tcase_add_test(tc, stderr_of_the_job_before_stays_its_own_when_sent_ahead);
    tcase_add_test(tc, sigkill_from_outside_says_so);
    tcase_add_test(tc, cancel_kill_keeps_its_detail);
    suite_add_tcase(s, tc);

    tc = ph_tcase("exec");
    tcase_add_test(tc, exec_worker_receipt);
    tcase_add_test(tc, exec_worker_crash_carries_its_stderr);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_receipts_suite());
}
