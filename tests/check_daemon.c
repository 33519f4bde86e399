/*
 * check_daemon.c — forkpoold and forkpoolctl tested from outside, as the
 * SPEC describes them: the real binaries, a real UNIX socket, real signals.
 *
 * Each test starts its own daemon in a fresh temp dir (harness.c), waits
 * for its "listening on" log line, and talks MessagePack-RPC to it or runs
 * forkpoolctl against it.  Nothing waits by sleeping: responses, log lines
 * and pidfds are awaited with deadlines.  The only fixed waits are in the
 * tests that measure behaviour over time (restart backoff).
 *
 * Jobs for the testmod module (tests/testmod.c): {"op": "crash"}, "abort",
 * "exit", "fail", "sleep", "hang", "garbage", "extra", "fds", "pid", "none";
 * anything else is echoed.
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

#define MOD "--module", H_TESTMOD

static int
exit_code_of(const struct h_run *r)
{
    return h_exit_code(r->status);
}

/* Worker processes forked so far, from the -v debug log. */
static int
spawns(const struct h_daemon *d)
{
    return h_log_count(d, ": started pid ");
}

static void
need_ctl(void)
{
    ck_assert_msg(h_have_ctl(), "%s has not been built", H_FORKPOOLCTL);
}

/* ========================================================================
 * Jobs and outcomes (SPEC §3)
 * ======================================================================== */

START_TEST(submit_echo_roundtrip)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    struct h_resp *r = h_submit(c, "{\"a\": [1, 2, \"x\"]}", NULL);
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_json(r->result), h_canon("{\"id\": 1, \"result\": {\"a\": [1, 2, \"x\"]}}"));

    need_ctl();
    h_ctl(&run, d, NULL, "submit", "{\"a\":1}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": true, \"result\": {\"a\": 1}}\n");
    ck_assert_str_eq(run.err, "");
    ck_assert_int_eq(exit_code_of(&run), 0);
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"fail\", \"detail\": {\"why\": [1, \"x\"]}}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"error\", \"detail\": {\"why\": [1, \"x\"]}}"));
}
END_TEST

START_TEST(job_timeout_kills_and_replaces_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--job-timeout", "0.2", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--prefetch", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--prefetch", "1",
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--prefetch", "1",
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
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
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

/* ========================================================================
 * Drain and signals (SPEC §5)
 * ======================================================================== */

START_TEST(sigterm_drains_200_queued_jobs)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t msgid[200];
    struct stat sb;

    for (int i = 0; i < 200; i++) {
        char job[64];
        if (i % 2 == 0)
            snprintf(job, sizeof(job), "{\"op\": \"sleep\", \"s\": 0.005}");
        else
            snprintf(job, sizeof(job), "{\"i\": %d}", i);
        msgid[i] = h_rpc_submit(c, job, NULL);
    }
    /* Requests on one connection are taken in order: once status answers,
     * all 200 were accepted. */
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "submitted"), 200);
    h_daemon_kill(d, SIGTERM);

    for (int i = 0; i < 200; i++) {
        struct h_resp *r = h_rpc_wait(c, msgid[i], 10000);
        char want[64];
        ck_assert_msg(r != NULL, "no outcome for job %d", i + 1);
        ck_assert_msg(r->error == NULL, "job %d: %s", i + 1, h_json(r->error));
        if (i % 2 == 0)
            snprintf(want, sizeof(want), "{\"id\":%d,\"result\":\"slept\"}", i + 1);
        else
            snprintf(want, sizeof(want), "{\"id\":%d,\"result\":{\"i\":%d}}", i + 1, i);
        ck_assert_str_eq(h_json(r->result), want);
        h_resp_free(r);
    }
    int status = h_daemon_wait(d, 10000);
    ck_assert_msg(status != -1, "forkpoold did not exit after the drain");
    ck_assert_int_eq(h_exit_code(status), 0);
    ck_assert_int_eq(stat(d->sock, &sb), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(h_log_count(d, "drained; exiting"), 1);
}
END_TEST

START_TEST(new_submissions_rejected_while_draining)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--drain-timeout", "5", NULL));
    struct h_rpc *a = h_connected(d), *b;
    size_t mark;

    uint32_t hang = h_rpc_submit(a, "{\"op\": \"hang\"}", NULL);
    ck_assert_int_eq(h_get_int(h_status(a)->result, "submitted"), 1);
    mark = d->loglen;
    h_daemon_kill(d, SIGTERM);
    ck_assert_msg(h_daemon_wait_log(d, "draining:", mark, 5000), "no drain log line");

    b = h_connected(d);
    struct h_resp *r = h_submit(b, "{\"x\": 1}", NULL);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": null, \"kind\": \"rejected\", \"detail\": \"draining\"}"));
    struct h_resp *st = h_status(b);
    ck_assert_str_eq(h_get_str(st->result, "state"), "draining");
    /* The accepted job is still owed its outcome. */
    ck_assert_ptr_null(h_rpc_wait(a, hang, 0));
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(drain_method_finishes_jobs_and_exits_0)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t job = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    struct h_resp *r = h_rpc_call(c, "drain", "[]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_json(r->result), "null");
    r = h_rpc_wait(c, job, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
}
END_TEST

START_TEST(sigint_drains_like_sigterm)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t job = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "submitted"), 1);
    h_daemon_kill(d, SIGINT);
    struct h_resp *r = h_rpc_wait(c, job, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
}
END_TEST

START_TEST(drain_timeout_cancels_and_exits_1)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--drain-timeout", "0.5", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t m[4];
    int64_t t0;

    m[0] = h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    for (int i = 1; i < 4; i++)
        m[i] = h_rpc_submit(c, "{\"queued\": true}", NULL);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "submitted"), 4);
    t0 = h_now_ms();
    h_daemon_kill(d, SIGTERM);
    for (int i = 0; i < 4; i++) {
        struct h_resp *r = h_rpc_wait(c, m[i], 5000);
        char want[96];
        ck_assert_msg(r != NULL, "no outcome for job %d", i + 1);
        snprintf(want, sizeof(want),
                 "{\"detail\":\"drain timeout\",\"id\":%d,\"kind\":\"cancelled\"}", i + 1);
        ck_assert_str_eq(h_json(r->error), want);
    }
    int status = h_daemon_wait(d, 5000);
    int64_t took = h_now_ms() - t0;
    ck_assert_int_eq(h_exit_code(status), 1);
    ck_assert_int_ge(took, 450);
    ck_assert_int_lt(took, 3000);
}
END_TEST

START_TEST(second_sigterm_cuts_drain_off)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--drain-timeout", "60", NULL));
    struct h_rpc *c = h_connected(d);
    size_t mark;
    int64_t t0;

    uint32_t hang = h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "submitted"), 1);
    mark = d->loglen;
    h_daemon_kill(d, SIGTERM);
    /* Signals do not queue: the second must come after the first was seen. */
    ck_assert_msg(h_daemon_wait_log(d, "draining:", mark, 5000), "no drain log line");
    t0 = h_now_ms();
    h_daemon_kill(d, SIGTERM);
    struct h_resp *r = h_rpc_wait(c, hang, 3000);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error),
                     h_canon("{\"id\": 1, \"kind\": \"cancelled\", \"detail\": \"drain timeout\"}"));
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 3000)), 1);
    ck_assert_int_lt(h_now_ms() - t0, 3000);
}
END_TEST

START_TEST(sighup_replaces_every_worker_without_losing_jobs)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", "-v", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t old[2], now[2];
    int pidfd[2];
    uint32_t m[20];
    size_t mark;
    char line[64];

    ck_assert_int_eq(h_status_pids(h_status(c), old, 2), 2);
    for (int i = 0; i < 2; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(old[i]), 0);
    for (int i = 0; i < 20; i++)
        m[i] = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.01}", NULL);
    mark = d->loglen;
    h_daemon_kill(d, SIGHUP);
    for (int i = 0; i < 20; i++) {
        struct h_resp *r = h_rpc_wait(c, m[i], 5000);
        ck_assert_msg(r != NULL && r->error == NULL, "job %d lost in the reload", i + 1);
    }
    ck_assert_msg(h_daemon_wait_log(d, "reload complete", mark, 5000), "reload did not complete");
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, d), "old worker %ld still runs", (long)old[i]);
        /* ...and the master has reaped it (until then status lists it). */
        snprintf(line, sizeof(line), "worker %ld stopped: ", (long)old[i]);
        ck_assert(h_daemon_wait_log(d, line, mark, 5000));
    }
    ck_assert_int_eq(h_status_pids(h_status(c), now, 2), 2);
    for (int i = 0; i < 2; i++)
        ck_assert(now[i] != old[0] && now[i] != old[1]);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"after\"")), "\"after\"");
}
END_TEST

/* Copy src over dst the way a deploy does: a new file renamed into place. */
static void
install_file(const char *src, const char *dst)
{
    char tmp[300], buf[65536];
    FILE *in = fopen(src, "rb"), *out;
    size_t n;

    snprintf(tmp, sizeof(tmp), "%s.new", dst);
    ck_assert_msg(in != NULL, "%s: %s", src, strerror(errno));
    ck_assert_ptr_nonnull(out = fopen(tmp, "wb"));
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

START_TEST(reload_loads_the_new_build_of_the_module)
{
    char mod[256];
    size_t mark;

    snprintf(mod, sizeof(mod), "%s/mod.so", h_tempdir());
    install_file(H_TESTMOD, mod);
    struct h_daemon *d = h_started(h_daemon_start("--module", mod, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"v1\"")), "\"v1\"");

    install_file(TOP_BUILDDIR "/tests/.libs/testmod2.so", mod);
    mark = d->loglen;
    h_daemon_kill(d, SIGHUP);
    ck_assert_msg(h_daemon_wait_log(d, "reload complete", mark, 5000), "reload did not complete");
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(h_json(h_submit_ok(c, "\"v1\"")), "\"v2\"");
}
END_TEST

START_TEST(sigttin_and_sigttou_scale_by_one)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    size_t mark = d->loglen;

    h_daemon_kill(d, SIGTTIN);
    ck_assert(h_daemon_wait_log(d, "scaling from 2 to 3 workers", mark, 5000));
    ck_assert_int_eq(h_get_int(h_status(c)->result, "workers"), 3);
    mark = d->loglen;
    h_daemon_kill(d, SIGTTOU);
    ck_assert(h_daemon_wait_log(d, "scaling from 3 to 2 workers", mark, 5000));
    ck_assert_int_eq(h_get_int(h_status(c)->result, "workers"), 2);
}
END_TEST

/* ========================================================================
 * Workers (SPEC §4)
 * ======================================================================== */

START_TEST(master_sigkill_leaves_no_workers)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "3", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[3];
    int pidfd[3];

    ck_assert_int_eq(h_status_pids(h_status(c), pids, 3), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(pids[i]), 0);
    /* One of them busy in a job, too. */
    h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    h_status(c);
    h_daemon_kill(d, SIGKILL);
    int status = h_daemon_wait(d, 5000);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, NULL),
                      "worker %ld outlived its master", (long)pids[i]);
}
END_TEST

/* Compare "N -> target" entries by fd number. */
static int
by_fd(const void *a, const void *b)
{
    return atoi(*(char *const *)a) - atoi(*(char *const *)b);
}

/* Every worker now running was forked while three clients were connected
 * and the other workers' sockets were open in the master: its fd table
 * must still be exactly stdin (/dev/null), stdout/stderr (the log) and its
 * own socket on fd 3. */
START_TEST(worker_fd_table_holds_only_its_own)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "3", "--prefetch", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d), *c = h_connected(d);
    pid_t orig[3];
    int pidfd[3];
    uint32_t m[3];

    h_status(a);
    h_status(b);
    ck_assert_int_eq(h_status_pids(h_status(c), orig, 3), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(orig[i]), 0);

    /* With a window of one job, three sleeps run on three workers; when
     * they are done all three are idle, and three crash jobs arriving in
     * one read go one to each.  So every original worker is replaced. */
    h_rpc_cork(a);
    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    h_rpc_uncork(a);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(h_rpc_wait(a, m[i], H_REPLY_MS));
    ck_assert_int_eq(h_get_int(h_status(a)->result, "idle"), 3);
    h_rpc_cork(a);
    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(a, "{\"op\": \"crash\"}", NULL);
    h_rpc_uncork(a);
    for (int i = 0; i < 3; i++) {
        struct h_resp *r = h_rpc_wait(a, m[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, d), "original worker %ld not replaced",
                      (long)orig[i]);

    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(b, "{\"op\": \"fds\"}", NULL);
    for (int i = 0; i < 3; i++) {
        struct h_resp *r = h_rpc_wait(b, m[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_msg(r->error == NULL, "fds job failed: %s", h_json(r->error));
        const msgpack_object *list = h_get(r->result, "result");
        ck_assert_int_eq(list->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_msg(list->via.array.size == 4, "worker fds: %s", h_json(list));
        char *e[4];
        for (int k = 0; k < 4; k++) {
            const msgpack_object *s = &list->via.array.ptr[k];
            ck_assert_int_eq(s->type, MSGPACK_OBJECT_STR);
            e[k] = strndup(s->via.str.ptr, s->via.str.size);
        }
        qsort(e, 4, sizeof(e[0]), by_fd);
        ck_assert_str_eq(e[0], "0 -> /dev/null");
        ck_assert_msg(strncmp(e[1], "1 -> ", 5) == 0 && strncmp(e[2], "2 -> ", 5) == 0
                      && strcmp(e[1] + 5, e[2] + 5) == 0,
                      "stdout and stderr differ: %s / %s", e[1], e[2]);
        ck_assert_msg(strncmp(e[3], "3 -> socket:[", 13) == 0, "fd 3: %s", e[3]);
        for (int k = 0; k < 4; k++)
            free(e[k]);
    }
}
END_TEST

START_TEST(init_failure_backs_off_without_fork_bomb)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "--module-config", "{\"fail_init\": true}",
                                                "-w", "1", "-v", NULL));
    struct h_rpc *c = h_connected(d);

    /* A fixed wait: what is measured is how often it restarts over ~1 s
     * (backoff from 10 ms, doubling: about 7 starts). */
    h_daemon_pump(d, 1000);
    ck_assert_msg(spawns(d) >= 4 && spawns(d) <= 15, "%d workers forked in ~1 s", spawns(d));
    struct h_resp *st = h_status(c);
    int64_t restarts = h_get_int(st->result, "restarts");
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 3);
    ck_assert_msg(restarts >= 3 && restarts <= 12,
                  "%lld restarts in ~1 s", (long long)restarts);
    ck_assert_int_eq(h_log_count(d, "before it was ready"), 1);
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(exec_worker_roundtrip)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"via\": \"exec\", \"n\": [1, 2.5, null]}", NULL);
    ck_assert_str_eq(h_json(r->result),
                     h_canon("{\"id\": 1, \"result\": {\"via\": \"exec\", \"n\": [1, 2.5, null]}}"));
}
END_TEST

START_TEST(exec_program_failing_to_start_backs_off_and_logs_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER " fail", "-w", "1",
                                                "-v", NULL));
    struct h_rpc *c = h_connected(d);

    h_daemon_pump(d, 1000);
    ck_assert_msg(spawns(d) >= 4 && spawns(d) <= 15, "%d workers forked in ~1 s", spawns(d));
    struct h_resp *st = h_status(c);
    int64_t restarts = h_get_int(st->result, "restarts");
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 3);
    ck_assert_msg(restarts >= 3 && restarts <= 12, "%lld restarts in ~1 s", (long long)restarts);
    ck_assert_int_eq(h_log_count(d, "before it was ready"), 1);
}
END_TEST

/* A broken --exec program that answers garbage instead of "ready" is a
 * failed start too: backoff, and the log says why once per streak. */
START_TEST(exec_program_answering_garbage_backs_off_and_logs_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER " garbage", "-w", "1",
                                                "-v", NULL));
    struct h_rpc *c = h_connected(d);

    h_daemon_pump(d, 1000);
    ck_assert_msg(spawns(d) >= 4 && spawns(d) <= 15, "%d workers forked in ~1 s", spawns(d));
    struct h_resp *st = h_status(c);
    int64_t restarts = h_get_int(st->result, "restarts");
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 3);
    ck_assert_msg(restarts >= 3 && restarts <= 12, "%lld restarts in ~1 s", (long long)restarts);
    ck_assert_msg(h_log_count(d, "protocol error") == 1,
                  "%d \"protocol error\" log lines in one failing streak:\n%s",
                  h_log_count(d, "protocol error"), d->log);
}
END_TEST

/* A worker that says "ready" and exits at once, without a job, is a failed
 * start too (SPEC §4: it must not turn the master into a fork bomb). */
START_TEST(worker_exiting_right_after_ready_backs_off)
{
    /* The ready message, ["ready", {"pid": 1, "proto": 1}], from printf. */
    struct h_daemon *d = h_started(h_daemon_start(
        "--exec", "printf '\\222\\245ready\\202\\243pid\\001\\245proto\\001'",
        "-w", "1", "-v", NULL));
    struct h_rpc *c = h_connected(d);

    h_daemon_pump(d, 1000);
    ck_assert_msg(spawns(d) >= 4 && spawns(d) <= 15, "%d workers forked in ~1 s", spawns(d));
    struct h_resp *st = h_status(c);
    int64_t restarts = h_get_int(st->result, "restarts");
    ck_assert_msg(restarts >= 3 && restarts <= 12, "%lld restarts in ~1 s", (long long)restarts);
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 3);
    ck_assert_int_eq(h_log_count(d, "just after it was ready"), 1);
}
END_TEST

START_TEST(cmd_builtin_runs_command)
{
    /* No handler flag: the default is cmd. */
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", "
                                         "\"echo hi; echo err >&2; exit 3\"]}")),
                     h_canon("{\"exit\": 3, \"signal\": null, \"stdout\": \"hi\\n\", "
                           "\"stderr\": \"err\\n\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"cat\"], \"stdin\": \"abc\"}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"abc\", \"stderr\": \"\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", \"echo $FPT_X\"], "
                                         "\"env\": {\"FPT_X\": \"from env\"}}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"from env\\n\", "
                           "\"stderr\": \"\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", \"kill -TERM $$\"]}")),
                     h_canon("{\"exit\": 143, \"signal\": \"SIGTERM\", \"stdout\": \"\", "
                           "\"stderr\": \"\"}"));

    struct h_resp *r = h_submit(c, "{\"argv\": [\"/nonexistent/fpt-cmd\"]}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "error");
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "cannot execute /nonexistent/fpt-cmd: No such file or directory");
}
END_TEST

START_TEST(worker_stderr_is_logged_line_by_line_with_its_pid)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);
    char want[128];

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"say\", \"text\": \"hello log\"}")),
                     "\"said\"");
    /* A module worker's stdout joins its stderr: both reach the log. */
    snprintf(want, sizeof(want), "info: worker %ld: hello log", (long)pid);
    ck_assert(h_daemon_wait_log(d, want, 0, 5000));
    snprintf(want, sizeof(want), "info: worker %ld: stdout: hello log", (long)pid);
    ck_assert(h_daemon_wait_log(d, want, 0, 5000));
}
END_TEST

/* /proc/PID/cmdline up to its first NUL. */
static const char *
cmdline_of(pid_t pid, char *buf, size_t len)
{
    char path[64];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

START_TEST(process_titles_show_role_and_job)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);
    char buf[256], want[256];
    uint32_t msgid;

    snprintf(want, sizeof(want), "forkpool: master %s", d->sock);
    ck_assert_str_eq(cmdline_of(d->pid, buf, sizeof(buf)), want);
    ck_assert_str_eq(cmdline_of(pid, buf, sizeof(buf)), "forkpool: worker 0 idle");
    msgid = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.5}", NULL);
    /* Once the master counts the job as running, the worker sets its title
     * as it starts it: poll the title briefly (nothing to wait on). */
    struct h_resp *st;
    do {
        st = h_status(c);
    } while (h_get_int(st->result, "busy") == 0);
    int64_t deadline = h_now_ms() + 5000;
    while (strcmp(cmdline_of(pid, buf, sizeof(buf)), "forkpool: worker 0 busy job 2") != 0
           && h_now_ms() < deadline)
        h_daemon_pump(d, 10);
    ck_assert_str_eq(buf, "forkpool: worker 0 busy job 2");
    ck_assert_ptr_nonnull(h_rpc_wait(c, msgid, 5000));
}
END_TEST

START_TEST(forkpoolctl_ids_prints_each_id_when_accepted)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_run run;

    need_ctl();
    /* submit: the id on stderr at acceptance, the outcome on stdout. */
    h_ctl(&run, d, NULL, "submit", "--ids", "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    ck_assert_str_eq(run.err, "{\"id\": 1, \"accepted\": true}\n");
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": \"slept\"}\n");

    /* map: one accepted line per job, with its index. */
    h_ctl(&run, d, "10\n20\n30\n", "map", "--ids", "--keep-order", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    ck_assert_int_eq(h_count_lines(run.err), 3);
    ck_assert_ptr_nonnull(strstr(run.err, "{\"index\": 0, \"id\": 2, \"accepted\": true}\n"));
    ck_assert_ptr_nonnull(strstr(run.err, "{\"index\": 2, \"id\": 4, \"accepted\": true}\n"));
    ck_assert_str_eq(run.out, "{\"index\": 0, \"id\": 2, \"ok\": true, \"result\": 10}\n"
                              "{\"index\": 1, \"id\": 3, \"ok\": true, \"result\": 20}\n"
                              "{\"index\": 2, \"id\": 4, \"ok\": true, \"result\": 30}\n");
}
END_TEST

START_TEST(scale_beyond_max_workers_is_refused)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", "--max-workers", "3", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_rpc_call(c, "scale", "[4]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"cannot scale to 4 workers: the limit is 1 to 3\"");
    r = h_rpc_call(c, "scale", "[0]");
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "workers"), 2);
    r = h_rpc_call(c, "scale", "[3]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"workers\":3}");
}
END_TEST

START_TEST(max_jobs_recycles_each_worker_with_jitter)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--max-jobs", "10", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t prev = 0;
    int run = 0, runs = 0;

    /* One worker, jobs one at a time: each pid serves a run of 10 or 11
     * jobs (10 plus up to 10% jitter) before a fresh one takes over. */
    for (int i = 0; i < 60; i++) {
        pid_t pid = h_worker_pid(c);
        if (pid != prev && prev != 0) {
            ck_assert_msg(run >= 10 && run <= 11, "worker %ld ran %d jobs", (long)prev, run);
            runs++;
            run = 0;
        }
        prev = pid;
        run++;
    }
    ck_assert_int_ge(runs, 4);
    ck_assert_int_ge(h_log_count(d, "reached --max-jobs"), 4);
}
END_TEST

START_TEST(max_rss_recycles_between_jobs_never_mid_job)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--max-rss", "40", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t before = h_worker_pid(c);

    /* The job that crosses the limit still completes ok ... */
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"grow\", \"mib\": 64}")), "\"grown\"");
    /* ... and the next job runs on a fresh worker. */
    ck_assert_int_ne(h_worker_pid(c), before);
    ck_assert_int_eq(h_log_count(d, "passed --max-rss"), 1);
}
END_TEST

START_TEST(slow_log_names_a_running_job_once)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--slow-log", "0.1", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t msgid = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.6}", NULL);

    /* Logged while the job still runs: before its response exists. */
    ck_assert(h_daemon_wait_log(d, "slow job 1 on worker", 0, 5000));
    struct h_resp *st = h_status(c);
    const msgpack_object *rows = h_get(st->result, "worker_list");
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_eq(rows->via.array.size, 1);
    ck_assert_str_eq(h_get_str(&rows->via.array.ptr[0], "state"), "busy");
    ck_assert_int_eq(h_get_int(&rows->via.array.ptr[0], "job"), 1);
    ck_assert_int_gt(h_get_int(&rows->via.array.ptr[0], "rss"), 0);

    struct h_resp *r = h_rpc_wait(c, msgid, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_int_eq(h_log_count(d, "slow job 1 on worker"), 1);

    struct h_resp *m = h_rpc_call(c, "metrics", "[]");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->result->type, MSGPACK_OBJECT_STR);
    ck_assert_msg(memmem(m->result->via.str.ptr, m->result->via.str.size,
                         "forkpool_job_duration_seconds_count 1\n", 38) != NULL,
                  "no job duration histogram in metrics");
}
END_TEST

START_TEST(cmd_timeout_kills_the_whole_process_group)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char job[1024], path[256], buf[32];
    const char *dir = h_tempdir();

    /* A grandchild in the background, its pid left in a file, then a wait
     * that outlives the timeout. */
    snprintf(path, sizeof(path), "%s/grandchild.pid", dir);
    snprintf(job, sizeof(job), "{\"argv\": [\"sh\", \"-c\", \"sleep 1000 & "
             "echo $! > %s.tmp; mv %s.tmp %s; wait\"]}", path, path, path);
    struct h_resp *r = h_submit(c, job, "{\"timeout\": 0.5}");
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");

    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "the job never wrote its grandchild's pid");
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    pid_t grandchild = (pid_t)atol(buf);
    ck_assert_int_gt(grandchild, 1);
    int pfd = h_pidfd(grandchild);
    if (pfd >= 0) {     /* -1: already gone */
        ck_assert_msg(h_wait_readable(pfd, 5000, d) > 0,
                      "grandchild %ld survived the job's timeout", (long)grandchild);
        close(pfd);
    }
    /* The pool goes on. */
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"true\"]}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"\", "
                           "\"stderr\": \"\"}"));
}
END_TEST

/* ========================================================================
 * Control socket (SPEC §5, §7)
 * ======================================================================== */

START_TEST(bad_control_input_does_not_disturb_others)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
    struct h_rpc *a = h_connected(d), *b, *c;
    static const char submit_req[] = "\x94\x00\x09\xa6submit\x91\x81\xa1x\x01";
    char nested[128];
    struct h_resp *r;

    uint32_t job = h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.3}", NULL);
    ck_assert_int_eq(h_get_int(h_status(a)->result, "submitted"), 1);

    /* Not msgpack: no msgid can be read, the connection closes. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, "\xc1", 1), 0);
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 0);

    /* An array declaring 2^32-1 elements: refused from its header. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, "\xdd\xff\xff\xff\xff", 5), 0);
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 0);

    /* Unknown method: an error string; the connection stays usable. */
    b = h_connected(d);
    r = h_rpc_call(b, "frobnicate", "[]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"unknown method: frobnicate\"");
    ck_assert_str_eq(h_json(r->result), "null");
    r = h_rpc_call(b, "submit", "{}");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"bad request: params must be an array\"");
    h_status(b);

    /* A job nested 33 deep, beyond msgpack-c's 32: refused cleanly (the
     * frame is rejected as it is scanned: an error for its msgid, then the
     * connection closes). */
    b = h_connected(d);
    for (int i = 0; i < 33; i++)
        nested[i] = '[';
    for (int i = 0; i < 33; i++)
        nested[33 + i] = ']';
    nested[66] = '\0';
    r = h_rpc_wait(b, h_rpc_submit(b, nested, NULL), H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"bad request: nesting too deep\"");
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 1);

    /* A truncated request, then goodbye. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, submit_req, sizeof(submit_req) - 4), 0);
    h_rpc_close(b);

    r = h_rpc_wait(a, job, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    /* None of the bad requests was accepted as a job. */
    c = h_connected(d);
    r = h_submit(c, "{\"c\": 1}", NULL);
    ck_assert_str_eq(h_json(r->result), "{\"id\":2,\"result\":{\"c\":1}}");
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(client_leaving_with_jobs_in_flight_disturbs_nothing)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);

    h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.1}", NULL);
    h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.1}", NULL);
    ck_assert_int_eq(h_get_int(h_status(a)->result, "submitted"), 2);
    h_rpc_close(a);
    ck_assert_str_eq(h_json(h_submit_ok(b, "\"b\"")), "\"b\"");
    struct h_resp *st = h_status(b);
    ck_assert_int_eq(h_get_int(st->result, "completed"), 3);
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(socket_is_mode_0600_whatever_the_umask)
{
    struct h_opts o = { .umask = 0 };
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    struct stat sb;

    ck_assert_int_eq(stat(d->sock, &sb), 0);
    ck_assert(S_ISSOCK(sb.st_mode));
    ck_assert_uint_eq(sb.st_mode & 07777, 0600);
}
END_TEST

START_TEST(stale_socket_file_is_replaced)
{
    const char *dir = h_tempdir();
    struct h_opts o = { .umask = -1 };
    char path[108];
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat sb;

    /* A socket file nobody listens on: what a dead daemon leaves. */
    snprintf(path, sizeof(path), "%s/s", dir);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    ck_assert_int_eq(stat(path, &sb), 0);

    o.sock = path;
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    struct h_rpc *c = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"fresh\"")), "\"fresh\"");
}
END_TEST

START_TEST(live_socket_is_never_stolen)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run run;
    struct stat before, after;
    char *argv[] = { (char *)H_FORKPOOLD, (char *)"-s", d->sock, (char *)"--builtin",
                     (char *)"echo", (char *)"-w", (char *)"1", NULL };

    ck_assert_int_eq(stat(d->sock, &before), 0);
    h_run_argv(&run, d, NULL, 5000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_msg(strstr(run.err, d->sock) != NULL, "message does not name %s: %s",
                  d->sock, run.err);
    ck_assert_int_eq(h_count_lines(run.err), 1);
    ck_assert_int_eq(stat(d->sock, &after), 0);
    ck_assert_uint_eq(after.st_ino, before.st_ino);

    struct h_rpc *c = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"still mine\"")), "\"still mine\"");
}
END_TEST

/* SPEC §5: other uids are refused (SO_PEERCRED).  Needs root to act as
 * another uid; the socket is opened up to it so the refusal is the
 * daemon's, not the file mode's. */
START_TEST(connection_from_other_uid_is_refused)
{
    if (geteuid() != 0)
        return;
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    size_t mark = d->loglen;
    int status = -1;

    /* Let the other uid reach the socket: it and the dirs above it, up to
     * /tmp, are ours. */
    ck_assert_int_eq(chmod(d->sock, 0666), 0);
    {
        char dir[108];
        char *slash;
        snprintf(dir, sizeof(dir), "%s", d->sock);
        while ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
            *slash = '\0';
            if (strcmp(dir, "/tmp") == 0)
                break;
            ck_assert_int_eq(chmod(dir, 0711), 0);
        }
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* As nobody: connect, ask for status, expect EOF and no answer. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[64];
        alarm(5);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(10);
        strcpy(sa.sun_path, d->sock);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            _exit(11);
        if (send(fd, "\x94\x00\x01\xa6status\x90", 10, MSG_NOSIGNAL) != 10)
            _exit(0);       /* already closed: refused */
        _exit(read(fd, buf, sizeof(buf)) <= 0 ? 0 : 12);
    }
    int pidfd = h_pidfd(pid);
    ck_assert(h_wait_readable(pidfd, 5000, d));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(h_exit_code(status) == 0, "client as uid 65534: wait status 0x%x; log:\n%s",
                  status, d->log);
    ck_assert(h_daemon_wait_log(d, "refused a connection from uid 65534", mark, 5000));
}
END_TEST

/* ========================================================================
 * Flags (SPEC §5)
 * ======================================================================== */

static const struct {
    const char *args[4];
    const char *names;      /* what the message must name */
} bad_flags[] = {
    { { "--workers", "0" }, "--workers" },
    { { "--workers", "abc" }, "--workers" },
    { { "-w" }, "-w" },
    { { "--job-timeout", "-1" }, "--job-timeout" },
    { { "--drain-timeout", "soon" }, "--drain-timeout" },
    { { "--queue-max", "0" }, "--queue-max" },
    { { "--bogus" }, "--bogus" },
    { { "--builtin", "nosuch" }, "--builtin" },
    { { "--module-config", "{}" }, "--module-config" },
    { { "--module", "/nonexistent.so" }, "--module" },
    { { "--module", H_TESTMOD, "--module-config", "{bad" }, "--module-config" },
    { { "--exec", "" }, "--exec" },
    { { "--sandbox", "leaky" }, "--sandbox" },
    { { "--sandbox", "strict" }, "--sandbox" },     /* with the cmd builtin */
    { { "--sandbox", "strict", "--exec", "cat" }, "--sandbox" },
    { { "--rlimit-as", "0" }, "--rlimit-as" },
    { { "--rlimit-as", "lots" }, "--rlimit-as" },
    { { "--rlimit-cpu", "-1" }, "--rlimit-cpu" },
    { { "--rlimit-nofile", "3" }, "--rlimit-nofile" },
    { { "--user", "no-such-user-here" }, "--user" },
    { { "--user", "root" }, "--user" },
};

START_TEST(bad_flags_exit_2)
{
    const char *dir = h_tempdir();
    char sock[108], *argv[10];
    struct h_run run;
    struct stat sb;
    size_t n = 0;

    snprintf(sock, sizeof(sock), "%s/s", dir);
    argv[n++] = (char *)H_FORKPOOLD;
    argv[n++] = (char *)"-s";
    argv[n++] = sock;
    for (size_t i = 0; i < 4 && bad_flags[_i].args[i] != NULL; i++)
        argv[n++] = (char *)bad_flags[_i].args[i];
    argv[n] = NULL;

    h_run_argv(&run, NULL, NULL, 5000, argv);
    ck_assert_msg(h_exit_code(run.status) == 2, "%s ...: status %d, stderr: %s",
                  argv[3], run.status, run.err);
    /* One line naming the flag (plus, at most, the usual --help hint). */
    char *nl = strchr(run.err, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = '\0';
    ck_assert_msg(strstr(run.err, bad_flags[_i].names) != NULL, "message does not name %s: %s",
                  bad_flags[_i].names, run.err);
    ck_assert_msg(nl[1] == '\0', "more than a one-line message: %s", nl + 1);
    ck_assert_str_eq(run.out, "");
    ck_assert_int_eq(stat(sock, &sb), -1);
}
END_TEST

START_TEST(default_socket_path_comes_from_environment)
{
    const char *dir = h_tempdir();
    char path[108];
    struct h_opts o = { .umask = -1, .env_sock = 1 };
    struct h_run run;

    /* Neither program gets -s: both must find the socket from the
     * environment (Check runs each test in its own process). */
    snprintf(path, sizeof(path), "%s/env.sock", dir);
    setenv("FORKPOOL_SOCKET", path, 1);
    o.sock = path;
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));

    need_ctl();
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"submit", (char *)"7", NULL };
    h_run_argv(&run, d, NULL, 10000, argv);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": 7}\n");
    ck_assert_int_eq(exit_code_of(&run), 0);
}
END_TEST

/* ========================================================================
 * forkpoolctl (SPEC §8)
 * ======================================================================== */

START_TEST(forkpoolctl_exit_codes)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_run run;
    char nosock[128];

    need_ctl();
    h_ctl(&run, d, NULL, "submit", "{\"x\": 1}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": {\"x\": 1}}\n");
    ck_assert_int_eq(exit_code_of(&run), 0);

    h_ctl(&run, d, NULL, "submit", "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": false, \"kind\": \"crashed\", "
                              "\"detail\": \"killed by SIGSEGV\"}\n");
    ck_assert_int_eq(exit_code_of(&run), 1);

    h_ctl(&run, d, NULL, "submit", "{bad", NULL);
    ck_assert_int_eq(exit_code_of(&run), 2);
    ck_assert_str_eq(run.out, "");
    ck_assert_str_ne(run.err, "");

    h_ctl(&run, d, NULL, "frobnicate", NULL);
    ck_assert_int_eq(exit_code_of(&run), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "frobnicate"));

    h_ctl(&run, d, NULL, "submit", NULL);
    ck_assert_int_eq(exit_code_of(&run), 2);

    snprintf(nosock, sizeof(nosock), "%s/nobody-here", h_tempdir());
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", nosock, (char *)"submit",
                     (char *)"1", NULL };
    h_run_argv(&run, NULL, NULL, 10000, argv);
    ck_assert_int_eq(exit_code_of(&run), 3);
    ck_assert_msg(strstr(run.err, nosock) != NULL, "message does not name %s: %s", nosock,
                  run.err);
    ck_assert_str_eq(run.out, "");
}
END_TEST

/* 100 job lines, every tenth (from 3) a failure whose detail is its index. */
static char *
map_input(int with_failures)
{
    char *text = malloc(100 * 64), *p = text;

    for (int i = 0; i < 100; i++) {
        if (with_failures && i % 10 == 3)
            p += sprintf(p, "{\"op\": \"fail\", \"detail\": %d}\n", i);
        else
            p += sprintf(p, "{\"n\": %d}\n", i);
    }
    return text;
}

/* Check map's output lines; returns the indexes in output order. */
static void
check_map_output(const char *out, int with_failures, int order[100])
{
    const char *line = out;
    int seen[100] = { 0 }, n = 0;

    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        char *text = strndup(line, (size_t)(nl - line));
        json_error_t err;
        json_t *o = json_loads(text, 0, &err);
        ck_assert_msg(o != NULL, "not JSON: %s", text);
        ck_assert_msg(strncmp(text, "{\"index\": ", 10) == 0, "index is not first: %s", text);
        json_int_t idx = json_integer_value(json_object_get(o, "index"));
        ck_assert_msg(idx >= 0 && idx < 100 && !seen[idx], "bad or repeated index: %s", text);
        seen[idx] = 1;
        ck_assert_int_lt(n, 100);
        order[n++] = (int)idx;
        if (with_failures && idx % 10 == 3) {
            ck_assert_msg(json_is_false(json_object_get(o, "ok")), "%s", text);
            ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "error");
            ck_assert_int_eq(json_integer_value(json_object_get(o, "detail")), idx);
        } else {
            ck_assert_msg(json_is_true(json_object_get(o, "ok")), "%s", text);
            json_t *res = json_object_get(o, "result");
            ck_assert_int_eq(json_integer_value(json_object_get(res, "n")), idx);
        }
        ck_assert(json_is_integer(json_object_get(o, "id")));
        json_decref(o);
        free(text);
        line = nl + 1;
    }
    ck_assert_int_eq(n, 100);
}

START_TEST(forkpoolctl_map_outcomes)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
    struct h_run run;
    int order[100];
    char *in = map_input(1), *all_ok = map_input(0);

    need_ctl();
    h_ctl(&run, d, in, "map", NULL);
    ck_assert_msg(exit_code_of(&run) == 1, "status %d, stderr %s", run.status, run.err);
    check_map_output(run.out, 1, order);

    h_ctl(&run, d, in, "map", "--keep-order", NULL);
    ck_assert_int_eq(exit_code_of(&run), 1);
    check_map_output(run.out, 1, order);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(order[i], i);

    h_ctl(&run, d, all_ok, "map", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    check_map_output(run.out, 0, order);
    ck_assert_str_eq(run.err, "");
    free(in);
    free(all_ok);
}
END_TEST

/* map sends the lines waiting on stdin as submit_batch requests; against a
 * queue of 4, most batches are refused whole and their jobs go again one
 * by one, paced: still every line gets exactly one outcome. */
START_TEST(forkpoolctl_map_batches_survive_a_full_queue)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", "--queue-max", "4",
                                                  NULL));
    struct h_run run;
    int order[100];
    char *in = map_input(1);

    need_ctl();
    h_ctl(&run, d, in, "map", NULL);
    ck_assert_msg(exit_code_of(&run) == 1, "status %d, stderr %s", run.status, run.err);
    check_map_output(run.out, 1, order);
    ck_assert_str_eq(run.err, "");
    free(in);
}
END_TEST

START_TEST(forkpoolctl_status_json_and_table)
{
    static const char *const keys[] = {
        "state", "workers", "busy", "idle", "queued", "completed", "failed",
        "crashed", "timed_out", "restarts", "uptime_s", "pids",
    };
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "2", NULL));
    struct h_run run;
    json_error_t err;

    need_ctl();
    h_ctl(&run, d, NULL, "status", "--json", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    json_t *st = json_loads(run.out, 0, &err);
    ck_assert_msg(st != NULL && json_is_object(st), "not a JSON map: %s", run.out);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(json_object_get(st, keys[i]) != NULL, "status --json lacks \"%s\": %s",
                      keys[i], run.out);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "running");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "workers")), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(st, "pids")), 2);
    ck_assert(json_is_number(json_object_get(st, "uptime_s")));
    json_decref(st);

    h_ctl(&run, d, NULL, "status", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    const char *w = strstr(run.out, "workers");
    ck_assert_msg(w != NULL && (w == run.out || w[-1] == '\n'), "no workers line: %s", run.out);
    w += strlen("workers");
    while (*w == ' ')
        w++;
    ck_assert_msg(w[0] == '2' && (w[1] == ' ' || w[1] == '\n'), "workers line: %s", run.out);
}
END_TEST

START_TEST(forkpoolctl_cancel_scale_metrics_drain)
{
    struct h_daemon *d = h_started(h_daemon_start(MOD, "-w", "1", NULL));
    struct h_run run;

    need_ctl();
    h_ctl(&run, d, NULL, "cancel", "42", NULL);
    ck_assert_int_eq(exit_code_of(&run), 1);

    h_ctl(&run, d, NULL, "scale", "3", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    ck_assert_str_eq(run.out, "{\"workers\": 3}\n");

    h_ctl(&run, d, NULL, "metrics", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    ck_assert_ptr_nonnull(strstr(run.out, "# TYPE forkpool_jobs_total counter\n"));

    h_ctl(&run, d, NULL, "drain", NULL);
    ck_assert_int_eq(exit_code_of(&run), 0);
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
}
END_TEST

/* ======================================================================== */

static Suite *
daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc;

    tc = tcase_create("jobs");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 20);
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
    tcase_add_test(tc, queue_full_rejects_submissions);
    tcase_add_test(tc, submit_batch_streams_each_outcome);
    tcase_add_test(tc, oversized_job_is_rejected);
    tcase_add_test(tc, queued_bytes_limit_rejects_submissions);
    tcase_add_test(tc, metrics_expose_job_counters);
    tcase_add_test(tc, cmd_builtin_runs_command);
    tcase_add_test(tc, cmd_timeout_kills_the_whole_process_group);
    tcase_add_test(tc, max_jobs_recycles_each_worker_with_jitter);
    tcase_add_test(tc, scale_beyond_max_workers_is_refused);
    tcase_add_test(tc, process_titles_show_role_and_job);
    tcase_add_test(tc, worker_stderr_is_logged_line_by_line_with_its_pid);
    tcase_add_test(tc, max_rss_recycles_between_jobs_never_mid_job);
    tcase_add_test(tc, slow_log_names_a_running_job_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("drain");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, sigterm_drains_200_queued_jobs);
    tcase_add_test(tc, new_submissions_rejected_while_draining);
    tcase_add_test(tc, drain_method_finishes_jobs_and_exits_0);
    tcase_add_test(tc, sigint_drains_like_sigterm);
    tcase_add_test(tc, drain_timeout_cancels_and_exits_1);
    tcase_add_test(tc, second_sigterm_cuts_drain_off);
    tcase_add_test(tc, sighup_replaces_every_worker_without_losing_jobs);
    tcase_add_test(tc, reload_loads_the_new_build_of_the_module);
    tcase_add_test(tc, sigttin_and_sigttou_scale_by_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("workers");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, master_sigkill_leaves_no_workers);
    tcase_add_test(tc, worker_fd_table_holds_only_its_own);
    tcase_add_test(tc, init_failure_backs_off_without_fork_bomb);
    tcase_add_test(tc, exec_worker_roundtrip);
    tcase_add_test(tc, exec_program_failing_to_start_backs_off_and_logs_once);
    tcase_add_test(tc, exec_program_answering_garbage_backs_off_and_logs_once);
    tcase_add_test(tc, worker_exiting_right_after_ready_backs_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("control");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, bad_control_input_does_not_disturb_others);
    tcase_add_test(tc, client_leaving_with_jobs_in_flight_disturbs_nothing);
    tcase_add_test(tc, socket_is_mode_0600_whatever_the_umask);
    tcase_add_test(tc, stale_socket_file_is_replaced);
    tcase_add_test(tc, live_socket_is_never_stolen);
    tcase_add_test(tc, connection_from_other_uid_is_refused);
    tcase_add_test(tc, default_socket_path_comes_from_environment);
    suite_add_tcase(s, tc);

    tc = tcase_create("flags");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, bad_flags_exit_2, 0, sizeof(bad_flags) / sizeof(bad_flags[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("forkpoolctl");
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, forkpoolctl_exit_codes);
    tcase_add_test(tc, forkpoolctl_map_outcomes);
    tcase_add_test(tc, forkpoolctl_map_batches_survive_a_full_queue);
    tcase_add_test(tc, forkpoolctl_status_json_and_table);
    tcase_add_test(tc, forkpoolctl_cancel_scale_metrics_drain);
    tcase_add_test(tc, forkpoolctl_ids_prints_each_id_when_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_suite());
}
