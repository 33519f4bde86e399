/*
 * check_daemon_progress.c — progress and heartbeats through the real
 * forkpoold (SPEC §4 fp_progress, §5 --heartbeat-timeout, §6 "progress",
 * §7 progress notifications, §8 --progress): a client that submitted with
 * "progress": true gets each report as a notification before its outcome;
 * forkpoolctl prints them on stderr; reports count against the client's
 * reply memory; a silent job is killed by the heartbeat timeout.
 *
 * Each test starts its own forkpoold (harness.h); the jobs of the test
 * module are listed in testmod.h, the --exec worker's modes in
 * exec_worker.c.
 */
#include "config.h"
#include <check.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"

#define H_EXEC_TAG H_EXEC_WORKER " tag"

/* The progress notifications of msgid, which must all have come before
 * its response r, as "id:value" JSON joined by " | ". */
static const char *
progress_before(struct h_rpc *c, uint32_t msgid, const struct h_resp *r)
{
    static char text[4096];
    struct h_resp *p[64];
    size_t n = h_rpc_take_progress(c, msgid, p, 64), len = 0;

    text[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(p[i]->seq < r->seq, "progress %zu came after the outcome", i);
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%llu:%s",
                                i > 0 ? " | " : "", (unsigned long long)p[i]->id,
                                h_json(p[i]->result));
    }
    return text;
}

/* ------------------------------------------------------------------------
 * Notifications to an RPC client
 * ------------------------------------------------------------------------ */

START_TEST(module_progress_reaches_the_client_in_order_before_the_outcome)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t msgid = h_rpc_submit(c, "{\"op\": \"progress\", \"values\": [10, \"half\", "
                                  "{\"done\": [1, 2]}]}", "{\"progress\": true}");
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":3}");
    ck_assert_str_eq(progress_before(c, msgid, r),
                     "1:10 | 1:\"half\" | 1:{\"done\":[1,2]}");
}
END_TEST

START_TEST(exec_worker_progress_reaches_the_client_in_order_before_the_outcome)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_TAG, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t msgid = h_rpc_submit(c, "{\"progress\": [1, 2, 3]}", "{\"progress\": true}");
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_str_eq(progress_before(c, msgid, r), "1:1 | 1:2 | 1:3");
}
END_TEST

/* Without "progress" (or with false) nothing but the outcome comes. */
START_TEST(without_the_option_no_progress_is_sent)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t a = h_rpc_submit(c, "{\"op\": \"progress\", \"n\": 5}", NULL);
    uint32_t b = h_rpc_submit(c, "{\"op\": \"progress\", \"n\": 5}", "{\"progress\": false}");
    struct h_resp *ra = h_rpc_wait(c, a, H_REPLY_MS), *rb = h_rpc_wait(c, b, H_REPLY_MS);
    ck_assert_ptr_nonnull(ra);
    ck_assert_ptr_nonnull(rb);
    ck_assert_str_eq(h_json(h_get(rb->result, "result")), "5");
    /* The responses are the only messages that arrived. */
    ck_assert_uint_eq(c->got, 2);
    ck_assert_str_eq(progress_before(c, a, ra), "");
}
END_TEST

/* submit_batch: the batch's msgid and each job's id. */
START_TEST(batch_progress_names_each_job)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t msgid = h_rpc_send(c, "submit_batch",
        "[[{\"op\": \"progress\", \"values\": [\"a\"]}, "
        "{\"op\": \"progress\", \"values\": [\"b\"]}], {\"progress\": true}]");
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(h_get_int(r->result, "first_id"), 1);
    struct h_resp *o0 = h_rpc_wait_outcome(c, msgid, 0, H_REPLY_MS);
    struct h_resp *o1 = h_rpc_wait_outcome(c, msgid, 1, H_REPLY_MS);
    ck_assert_ptr_nonnull(o0);
    ck_assert_ptr_nonnull(o1);
    struct h_resp *p[4];
    ck_assert_uint_eq(h_rpc_take_progress(c, msgid, p, 4), 2);
    ck_assert_uint_eq(p[0]->id, 1);
    ck_assert_str_eq(h_json(p[0]->result), "\"a\"");
    ck_assert_uint_lt(p[0]->seq, o0->seq);
    ck_assert_uint_eq(p[1]->id, 2);
    ck_assert_str_eq(h_json(p[1]->result), "\"b\"");
    ck_assert_uint_lt(p[1]->seq, o1->seq);
}
END_TEST

START_TEST(unknown_progress_option_value_is_rejected)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_submit(c, "1", "{\"progress\": 1}");

    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "malformed: progress must be true or false");
}
END_TEST

/* Reports are replies: a client that does not read them is cut off at its
 * hard limit, as with outcomes (the job finishes unseen). */
START_TEST(unread_progress_counts_against_the_reply_limits)
{
    /* Two workers: the reporting job runs on unseen for seconds after the
     * cut (longer on a loaded machine), and the next client's job must not
     * wait behind it. */
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", "-v",
        "--reply-soft-limit", "65536", "--max-job-bytes", "65536",
        "--reply-hard-limit", "1048576", NULL));
    struct h_rpc *c = h_connected(d);

    /* 4000 reports of 1000 bytes, and the client reads none of them.  One
     * a millisecond: a flood (FP_PROGRESS_PENDING bytes within one turn of
     * the loop) would have its older reports dropped, and then whether the
     * rest pass the hard limit is a matter of timing. */
    h_rpc_submit(c, "{\"op\": \"progress\", \"n\": 4000, \"pad\": 1000, "
                 "\"every\": 0.001}", "{\"progress\": true}");
    ck_assert(h_daemon_wait_log(d, "past the hard limit of 1048576; disconnecting it "
                                "(0 jobs not started cancelled, 1 running finish unseen)",
                                0, 20000));
    /* The daemon serves on. */
    struct h_rpc *next = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(next, "7")), "7");
}
END_TEST

/* Under --sandbox strict (seccomp, no results held) fp_progress works the
 * same: it needs nothing but a write to the worker's socket. */
START_TEST(progress_works_under_the_strict_sandbox)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--sandbox",
                                                  "strict", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t msgid = h_rpc_submit(c, "{\"op\": \"progress\", \"values\": [1, 2]}",
                                  "{\"progress\": true}");
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    ck_assert_str_eq(progress_before(c, msgid, r), "1:1 | 1:2");
}
END_TEST

/* ------------------------------------------------------------------------
 * Protocol errors
 * ------------------------------------------------------------------------ */

START_TEST(progress_for_a_job_not_running_is_a_protocol_error)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_TAG, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_submit(c, "\"progress wrong id\"", "{\"progress\": true}");

    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    ck_assert_str_eq(h_get_str(r->error, "detail"), "protocol error");
    ck_assert(h_daemon_wait_log(d, "protocol error: progress for job 1001, which it is "
                                "not running", 0, H_REPLY_MS));
    r = h_submit(c, "\"progress huge\"", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    ck_assert_str_eq(h_get_str(r->error, "detail"), "protocol error");
    ck_assert(h_daemon_wait_log(d, "protocol error: frame too large", 0, H_REPLY_MS));
}
END_TEST

/* ------------------------------------------------------------------------
 * forkpoolctl --progress
 * ------------------------------------------------------------------------ */

START_TEST(forkpoolctl_submit_progress_prints_the_reports_on_stderr)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, NULL, "submit", "--progress",
          "{\"op\": \"progress\", \"values\": [0.5, {\"step\": \"b\"}, [1]]}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": 3}\n");
    ck_assert_str_eq(run.err, "{\"id\": 1, \"progress\": 0.5}\n"
                              "{\"id\": 1, \"progress\": {\"step\": \"b\"}}\n"
                              "{\"id\": 1, \"progress\": [1]}\n");
    /* Without --progress: nothing on stderr. */
    h_ctl(&run, d, NULL, "submit", "{\"op\": \"progress\", \"n\": 2}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.err, "");
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": true, \"result\": 2}\n");
}
END_TEST

START_TEST(forkpoolctl_map_progress_prints_the_reports_on_stderr)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, "{\"op\": \"progress\", \"n\": 2}\n{\"op\": \"progress\", \"n\": 1}\n",
          "map", "--progress", "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.out, "{\"index\": 0, \"id\": 1, \"ok\": true, \"result\": 2}\n"
                              "{\"index\": 1, \"id\": 2, \"ok\": true, \"result\": 1}\n");
    ck_assert_str_eq(run.err, "{\"id\": 1, \"progress\": 1}\n"
                              "{\"id\": 1, \"progress\": 2}\n"
                              "{\"id\": 2, \"progress\": 1}\n");
}
END_TEST

/* ------------------------------------------------------------------------
 * --heartbeat-timeout
 * ------------------------------------------------------------------------ */

START_TEST(heartbeat_timeout_kills_a_silent_job_and_spares_a_reporting_one)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2",
                                                  "--heartbeat-timeout", "0.5", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t silent = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 30}", NULL);
    uint32_t alive = h_rpc_submit(c, "{\"op\": \"progress\", \"n\": 15, \"every\": 0.1}",
                                  NULL);
    struct h_resp *r = h_rpc_wait(c, silent, 10000);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");
    ck_assert_str_eq(h_get_str(r->error, "detail"), "no heartbeat for 0.5 s");
    r = h_rpc_wait(c, alive, 10000);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    ck_assert_str_eq(h_json(h_get(r->result, "result")), "15");
    ck_assert_int_eq(h_get_int(h_status(c)->result, "timed_out"), 1);
}
END_TEST

START_TEST(heartbeat_timeout_flag_takes_only_seconds)
{
    struct h_run run;
    char *const argv[] = { (char *)H_FORKPOOLD, (char *)"--heartbeat-timeout",
                           (char *)"soon", NULL };

    h_run_argv(&run, NULL, NULL, 5000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "--heartbeat-timeout: expected a number of "
                                          "seconds >= 0, got 'soon'"));
}
END_TEST

static Suite *
daemon_progress_suite(void)
{
    Suite *s = suite_create("daemon_progress");
    TCase *tc;

    tc = h_tcase("notifications", 30);
    tcase_add_test(tc, module_progress_reaches_the_client_in_order_before_the_outcome);
    tcase_add_test(tc, exec_worker_progress_reaches_the_client_in_order_before_the_outcome);
    tcase_add_test(tc, without_the_option_no_progress_is_sent);
    tcase_add_test(tc, batch_progress_names_each_job);
    tcase_add_test(tc, unknown_progress_option_value_is_rejected);
    tcase_add_test(tc, unread_progress_counts_against_the_reply_limits);
    tcase_add_test(tc, progress_works_under_the_strict_sandbox);
    tcase_add_test(tc, progress_for_a_job_not_running_is_a_protocol_error);
    suite_add_tcase(s, tc);

    tc = h_tcase("forkpoolctl", 30);
    tcase_add_test(tc, forkpoolctl_submit_progress_prints_the_reports_on_stderr);
    tcase_add_test(tc, forkpoolctl_map_progress_prints_the_reports_on_stderr);
    suite_add_tcase(s, tc);

    tc = h_tcase("heartbeats", 30);
    tcase_add_test(tc, heartbeat_timeout_kills_a_silent_job_and_spares_a_reporting_one);
    tcase_add_test(tc, heartbeat_timeout_flag_takes_only_seconds);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_progress_suite());
}
