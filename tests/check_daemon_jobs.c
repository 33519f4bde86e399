/*
 * check_daemon_jobs.c — jobs through forkpoold (SPEC §3): outcomes of
 * every kind, ids, batches, cancels, rejections and the job counters.
 *
 * Each test starts its own forkpoold in a fresh temp dir (harness.h), waits
 * for its "listening on" log line, and talks MessagePack-RPC to it or runs
 * forkpoolctl against it.  Nothing waits by sleeping: responses, log lines
 * and pidfds are awaited with deadlines.
 * Jobs for the test module are listed in testmod.h.
 */
#include "config.h"
#include <check.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

START_TEST(submit_echo_roundtrip)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    struct h_resp *r = h_submit(c, "{\"a\": [1, 2, \"x\"]}", NULL);
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_json(r->result), h_canon("{\"id\": 1, \"result\": {\"a\": [1, 2, \"x\"]}}"));

    h_need_ctl();
    h_ctl(&run, d, NULL, "submit", "{\"a\":1}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": true, \"result\": {\"a\": 1}}\n");
    ck_assert_str_eq(run.err, "");
    ck_assert_int_eq(h_exit_code(run.status), 0);
}
END_TEST

START_TEST(job_ids_count_up_from_one_in_acceptance_order)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);
    uint32_t m[6];

    /* Alternate connections; each connection's requests are taken in order
     * and each response is awaited before the next submit. */
    for (int i = 0; i < 6; i++) {
        struct h_rpc *c = i % 2 ? b : a;
        char job[32];
        snprintf(job, sizeof(job), "%d", i);
        m[i] = h_rpc_submit(c, job, NULL);
        struct h_resp *r = h_rpc_wait(c, m[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        char want[64];
        snprintf(want, sizeof(want), "{\"id\":%d,\"result\":%d}", i + 1, i);
        ck_assert_str_eq(h_json(r->result), want);
    }
}
END_TEST

START_TEST(segfault_mid_job_reports_crashed_and_replaces_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t old = h_worker_pid(c), now;
    int pidfd = h_pidfd(old);
    char line[128];

    ck_assert_int_ge(pidfd, 0);
    struct h_resp *r = h_submit(c, "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"crashed\", \"detail\": \"killed by SIGSEGV\"}"));
    ck_assert_str_eq(h_json(r->result), "null");

    ck_assert_msg(h_wait_readable(pidfd, 5000, d), "crashed worker %ld still exists", (long)old);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_status_pids(st, &now, 1), 1);
    ck_assert_int_ne(now, old);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), 1);

    /* The replacement runs the next jobs. */
    ck_assert_int_eq(h_worker_pid(c), now);
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"after\": true}")), "{\"after\":true}");
    snprintf(line, sizeof(line), "worker %ld killed by SIGSEGV while running job 2", (long)old);
    ck_assert_int_eq(h_log_count(d, line), 1);
}
END_TEST

/* status "restarts" counts replaced workers: ten crashes, ten restarts.
 * (Whether the master sees a dead worker's socket EOF or its SIGCHLD first
 * must not matter; over ten crashes both orders occur.) */
START_TEST(restarts_count_every_crashed_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    for (int i = 0; i < 10; i++) {
        struct h_resp *r = h_submit(c, "{\"op\": \"crash\"}", NULL);
        ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    }
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), 10);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 10);
}
END_TEST

START_TEST(abort_and_exit_mid_job_name_signal_and_status)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"abort\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"crashed\", \"detail\": \"killed by SIGABRT\"}"));
    r = h_submit(c, "{\"op\": \"exit\", \"code\": 7}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"crashed\", \"detail\": \"exited with status 7\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "[3]")), "[3]");
}
END_TEST

/* SPEC §5.1: basic (the default) sets RLIMIT_CORE 0 in workers, so a crash
 * dumps no core even when the daemon was started with cores allowed. */
START_TEST(crash_dumps_no_core_under_default_sandbox)
{
    struct h_opts o = { .umask = -1, .core_unlimited = 1 };
    char *args[] = { (char *)"--module", (char *)H_TESTMOD, (char *)"-w", (char *)"1", NULL };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"crashed\", \"detail\": \"killed by SIGSEGV\"}"));
}
END_TEST

START_TEST(garbage_from_worker_is_protocol_error)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t old = h_worker_pid(c), now;
    int pidfd = h_pidfd(old);

    struct h_resp *r = h_submit(c, "{\"op\": \"garbage\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"crashed\", \"detail\": \"protocol error\"}"));
    ck_assert_msg(h_wait_readable(pidfd, 5000, d), "worker %ld was not killed", (long)old);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_status_pids(st, &now, 1), 1);
    ck_assert_int_ne(now, old);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 1);
    ck_assert_int_eq(h_worker_pid(c), now);
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"k\": 1}")), "{\"k\":1}");
    ck_assert_int_eq(h_log_count(d, "protocol error: invalid msgpack"), 1);
}
END_TEST

/* The worker writes ["ok", 999999, nil] before its real result.  Both go
 * down one stream in that order, so the master always sees the unsolicited
 * result while the job is running: it kills the worker (KILL_PROTOCOL,
 * aimed at that job) and never reads the real result.  The job's one
 * outcome is therefore always crashed / "protocol error". */
START_TEST(unsolicited_result_from_worker_is_protocol_error)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t old = h_worker_pid(c), now;
    int pidfd = h_pidfd(old);

    struct h_resp *r = h_submit(c, "{\"op\": \"extra\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"crashed\", \"detail\": \"protocol error\"}"));
    ck_assert_msg(h_wait_readable(pidfd, 5000, d), "worker %ld was not killed", (long)old);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"next\"")), "\"next\"");
    now = h_worker_pid(c);
    ck_assert_int_ne(now, old);
    /* Exactly one response per request: nothing extra arrived. */
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 1);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), 1);
    ck_assert_int_eq(h_get_int(st->result, "completed"), 3);
    ck_assert_uint_eq(c->nstash, 0);
    ck_assert_uint_eq(c->got, c->next_msgid - 1);
    ck_assert_int_eq(h_log_count(d, "result for job 999999, which it is not running"), 1);
}
END_TEST

START_TEST(handler_packing_nothing_is_error)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);

    struct h_resp *r = h_submit(c, "{\"op\": \"none\"}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"error\", \"detail\": \"handler packed no value\"}"));
    /* An error outcome leaves the worker alive. */
    ck_assert_int_eq(h_worker_pid(c), pid);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "failed"), 1);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 0);
}
END_TEST

START_TEST(handler_error_carries_its_detail_value)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"fail\", \"detail\": {\"why\": [1, \"x\"]}}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"error\", \"detail\": {\"why\": [1, \"x\"]}}"));
}
END_TEST

START_TEST(job_timeout_kills_and_replaces_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t old = h_worker_pid(c);
    int pidfd = h_pidfd(old);
    int64_t t0 = h_now_ms();

    struct h_resp *r = h_submit(c, "{\"op\": \"hang\"}", "{\"timeout\": 0.2}");
    int64_t took = h_now_ms() - t0;
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"timeout\", \"detail\": \"timed out after 0.2s\"}"));
    ck_assert_int_ge(took, 190);
    ck_assert_msg(h_wait_readable(pidfd, 5000, d), "timed-out worker %ld still exists", (long)old);
    ck_assert_int_ne(h_worker_pid(c), old);
}
END_TEST

START_TEST(default_job_timeout_applies)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--job-timeout", "0.2", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"hang\"}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");
    /* A per-job 0 means no timeout, overriding the default. */
    r = h_submit(c, "{\"op\": \"sleep\", \"s\": 0.3}", "{\"timeout\": 0}");
    ck_assert_str_eq(h_json(r->error), "null");
}
END_TEST

START_TEST(cancel_running_and_queued_jobs)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--prefetch", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t hang = h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    uint32_t queued = h_rpc_submit(c, "{\"q\": 1}", NULL);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "submitted"), 2);

    /* The queued one first: it must not run after the hang is gone. */
    struct h_resp *r = h_rpc_call(c, "cancel", "[2]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "true");
    r = h_rpc_wait(c, queued, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 2, \"kind\": \"cancelled\", \"detail\": \"cancelled\"}"));
    r = h_rpc_call(c, "cancel", "[1]");
    ck_assert_str_eq(h_json(r->result), "true");
    r = h_rpc_wait(c, hang, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"cancelled\", \"detail\": \"cancelled\"}"));
    r = h_rpc_call(c, "cancel", "[99]");
    ck_assert_str_eq(h_json(r->result), "false");
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"alive\"")), "\"alive\"");
}
END_TEST

/* submit_batch: one response with the ids at once, then each job's own
 * outcome as an "outcome" notification; a crash costs its job only. */
START_TEST(submit_batch_streams_each_outcome)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t msgid = h_rpc_send(c, "submit_batch",
                                "[[10, {\"op\": \"crash\"}, \"x\", "
                                "{\"op\": \"fail\", \"detail\": 7}]]");
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"count\":4,\"first_id\":1}");
    static const char *const want[] = {
        "null {\"id\":1,\"result\":10}",
        "{\"detail\":\"killed by SIGSEGV\",\"id\":2,\"kind\":\"crashed\"} null",
        "null {\"id\":3,\"result\":\"x\"}",
        "{\"detail\":7,\"id\":4,\"kind\":\"error\"} null",
    };
    for (unsigned i = 0; i < 4; i++) {
        char got[256];
        r = h_rpc_wait_outcome(c, msgid, i, H_REPLY_MS);
        ck_assert_msg(r != NULL, "no outcome for batch job %u", i);
        snprintf(got, sizeof(got), "%s %s", h_json(r->error), h_json(r->result));
        ck_assert_str_eq(got, want[i]);
    }
    /* All or none: one bad job refuses the whole batch, nothing is queued. */
    r = h_rpc_call(c, "submit_batch", "[[1, 2], {\"retries\": 1000}]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    r = h_rpc_call(c, "submit_batch", "[[]]");
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": null, \"kind\": \"rejected\", \"detail\": \"empty batch\"}"));
    r = h_rpc_call(c, "submit_batch", "[5]");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    ck_assert_int_eq(h_get_int(h_status(c)->result, "submitted"), 4);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"after\"")), "\"after\"");
}
END_TEST

START_TEST(queue_full_rejects_submissions)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--prefetch", "1",
                                                "--queue-max", "1", NULL));
    struct h_rpc *c = h_connected(d);

    /* Wait for the worker so the hang is running, not queued. */
    h_worker_pid(c);
    h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    h_rpc_submit(c, "\"queued\"", NULL);
    struct h_resp *r = h_submit(c, "\"one too many\"", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": null, \"kind\": \"rejected\", \"detail\": \"queue full\"}"));
}
END_TEST

START_TEST(queued_bytes_limit_rejects_submissions)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--prefetch", "1",
                                                "--queue-max-bytes", "1024", NULL));
    struct h_rpc *c = h_connected(d);
    char job[700];

    h_worker_pid(c);
    h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    memset(job, 'x', sizeof(job) - 1);
    job[0] = job[sizeof(job) - 2] = '"';
    job[sizeof(job) - 1] = '\0';
    h_rpc_submit(c, job, NULL);             /* ~700 bytes held: accepted */
    struct h_resp *r = h_submit(c, job, NULL);  /* ~1400 > 1024: refused */
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": null, \"kind\": \"rejected\", \"detail\": \"queue full\"}"));
    /* Small jobs still fit. */
    uint32_t small = h_rpc_submit(c, "1", NULL);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "queued"), 2);
    (void)small;
}
END_TEST

START_TEST(oversized_job_is_rejected)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                "--max-job-bytes", "100", NULL));
    struct h_rpc *c = h_connected(d);
    char job[256];

    memset(job, 'x', sizeof(job));
    job[0] = '"';
    job[200] = '"';
    job[201] = '\0';
    struct h_resp *r = h_submit(c, job, NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": null, \"kind\": \"rejected\", \"detail\": \"job too large\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"small\"")), "\"small\"");
}
END_TEST

START_TEST(metrics_expose_job_counters)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    h_submit_ok(c, "1");
    h_submit(c, "{\"op\": \"fail\"}", NULL);
    struct h_resp *r = h_rpc_call(c, "metrics", "[]");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->result->type, MSGPACK_OBJECT_STR);
    char *text = strndup(r->result->via.str.ptr, r->result->via.str.size);
    ck_assert_msg(strstr(text, "\nforkpool_jobs_total{kind=\"ok\"} 1\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\nforkpool_jobs_total{kind=\"error\"} 1\n") != NULL, "%s", text);
    free(text);
}
END_TEST

static Suite *
daemon_jobs_suite(void)
{
    Suite *s = suite_create("daemon jobs");
    TCase *tc;

    tc = h_tcase("jobs", 20);
    tcase_add_test(tc, submit_echo_roundtrip);
    tcase_add_test(tc, job_ids_count_up_from_one_in_acceptance_order);
    tcase_add_test(tc, segfault_mid_job_reports_crashed_and_replaces_worker);
    tcase_add_test(tc, restarts_count_every_crashed_worker);
    tcase_add_test(tc, abort_and_exit_mid_job_name_signal_and_status);
    tcase_add_test(tc, crash_dumps_no_core_under_default_sandbox);
    tcase_add_test(tc, garbage_from_worker_is_protocol_error);
    tcase_add_test(tc, unsolicited_result_from_worker_is_protocol_error);
    tcase_add_test(tc, handler_packing_nothing_is_error);
    tcase_add_test(tc, handler_error_carries_its_detail_value);
    tcase_add_test(tc, job_timeout_kills_and_replaces_worker);
    tcase_add_test(tc, default_job_timeout_applies);
    tcase_add_test(tc, cancel_running_and_queued_jobs);
    tcase_add_test(tc, submit_batch_streams_each_outcome);
    tcase_add_test(tc, queue_full_rejects_submissions);
    tcase_add_test(tc, queued_bytes_limit_rejects_submissions);
    tcase_add_test(tc, oversized_job_is_rejected);
    tcase_add_test(tc, metrics_expose_job_counters);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_jobs_suite());
}
