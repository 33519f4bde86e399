/*
 * check_fault_ctl.c — faults around the control path, from outside: a job
 * too large for the daemon in the middle of a map, repeated drains, a
 * daemon that stops answering (--rpc-timeout), requests over the size
 * limits (also from a client that half-closes), socket paths that cannot
 * be, signals at the wrong moment, and a worker that closes its socket.
 *
 * Each test starts its own forkpoold (harness.h) and drives it with the
 * real forkpoolctl or MessagePack-RPC; nothing waits by sleeping.
 */
#include "config.h"
#include <check.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* A JSON line holding a string of n bytes. */
static char *
long_string_line(size_t n)
{
    char *s = malloc(n + 4);

    ck_assert_ptr_nonnull(s);
    s[0] = '"';
    memset(s + 1, 'x', n);
    memcpy(s + 1 + n, "\"\n", 3);
    return s;
}

/* ========================================================================
 * A job too large in the middle of a stream of jobs
 * ======================================================================== */

#define SLEPT(i, id) "{\"index\": " #i ", \"id\": " #id ", \"ok\": true, \"result\": \"slept\"}\n"
#define ECHOED(i, id) "{\"index\": " #i ", \"id\": " #id ", \"ok\": true, \"result\": " #i "}\n"
#define TOO_LARGE(i) "{\"index\": " #i ", \"id\": null, \"ok\": false, \"kind\": " \
                     "\"rejected\", \"detail\": \"job too large\"}\n"

/* A line larger than the daemon takes (well past its frame limit too) is
 * answered as rejected where it stands, with its index; the jobs before it,
 * still running, and the lines after it all get their outcomes; exit 1. */
START_TEST(map_line_too_large_is_rejected_and_every_other_line_gets_its_outcome)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2",
                                                  "--max-job-bytes", "4096", NULL));
    static const char sleep_line[] = "{\"op\": \"sleep\", \"s\": 0.2}\n";
    char *big = long_string_line(100000);
    size_t len = 4 * strlen(sleep_line) + strlen(big) + 16;
    char *in = malloc(len);
    struct h_run run;

    h_need_ctl();
    ck_assert_ptr_nonnull(in);
    snprintf(in, len, "%s%s%s%s%s5\n6\n7\n", sleep_line, sleep_line, sleep_line,
             sleep_line, big);
    h_ctl(&run, d, in, "map", "--keep-order", NULL);
    ck_assert_msg(h_exit_code(run.status) == 1, "exit %d: %s", h_exit_code(run.status),
                  run.err);
    ck_assert_str_eq(run.out, SLEPT(0, 1) SLEPT(1, 2) SLEPT(2, 3) SLEPT(3, 4)
                              TOO_LARGE(4) ECHOED(5, 5) ECHOED(6, 6) ECHOED(7, 7));
    ck_assert_str_eq(run.err, "");
    free(big);
    free(in);
}
END_TEST

/* A job within the byte limit but over the object limit is only found out
 * by the daemon: it refuses that request, skips its bytes and goes on
 * with the connection, so forkpoolctl prints it as rejected and every
 * other line's outcome too. */
START_TEST(map_line_over_the_daemons_object_limit_is_rejected_and_the_rest_go_on)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    static const char sleep_line[] = "{\"op\": \"sleep\", \"s\": 0.2}\n";
    const size_t zeros = 1100000;       /* objects: the limit is 1048576 */
    size_t len = 2 * sizeof sleep_line + 2 * zeros + 16;
    char *in = malloc(len), *p = in;
    struct h_run run;

    h_need_ctl();
    ck_assert_ptr_nonnull(in);
    p += sprintf(p, "%s%s[", sleep_line, sleep_line);
    for (size_t i = 0; i < zeros; i++) {
        *p++ = '0';
        *p++ = i + 1 < zeros ? ',' : ']';
    }
    strcpy(p, "\n3\n4\n");
    h_ctl(&run, d, in, "map", "--keep-order", NULL);
    ck_assert_msg(h_exit_code(run.status) == 1, "exit %d: %s", h_exit_code(run.status),
                  run.err);
    ck_assert_str_eq(run.out, SLEPT(0, 1) SLEPT(1, 2) TOO_LARGE(2) ECHOED(3, 3)
                              ECHOED(4, 4));
    ck_assert_str_eq(run.err, "");
    ck_assert(h_daemon_wait_log(d, "too many objects", 0, H_REPLY_MS));
    free(in);
}
END_TEST

/* On one connection: a job, a request over the frame limit, a status and
 * another job.  The big one is rejected ("job too large") and its bytes
 * skipped; everything else is answered on the same connection. */
START_TEST(request_over_the_frame_limit_is_refused_and_the_connection_goes_on)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--max-job-bytes", "1024", NULL));
    struct h_rpc *c = h_connected(d);
    char *big = long_string_line(200000);

    /* The params [ "xxx..." ], in place of the line's newline. */
    size_t n = strlen(big);
    big = realloc(big, n + 2);
    ck_assert_ptr_nonnull(big);
    memmove(big + 1, big, n - 1);
    big[0] = '[';
    big[n] = ']';
    big[n + 1] = '\0';
    uint32_t first = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    uint32_t huge = h_rpc_send(c, "submit", big);
    uint32_t status = h_rpc_send(c, "status", "[]");
    uint32_t last = h_rpc_submit(c, "\"after\"", NULL);

    struct h_resp *r = h_rpc_wait(c, huge, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                               "\"detail\": \"job too large\"}"));
    r = h_rpc_wait(c, status, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(h_get_int(r->result, "max_job_bytes"), 1024);
    r = h_rpc_wait(c, first, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    r = h_rpc_wait(c, last, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":2,\"result\":\"after\"}");
    free(big);
}
END_TEST

/* A request over the frame limit among others, then a half-close: the big
 * one is refused and skipped, every other request is answered, and only
 * then does the daemon close the connection. */
START_TEST(half_closed_after_a_refused_request_every_reply_then_eof)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--max-job-bytes", "1024", NULL));
    struct h_rpc *c = h_connected(d);
    char *big = malloc(200000 + 8);

    ck_assert_ptr_nonnull(big);
    big[0] = '[';
    big[1] = '"';
    memset(big + 2, 'x', 200000);
    strcpy(big + 2 + 200000, "\"]");
    h_rpc_cork(c);
    uint32_t first = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    uint32_t huge = h_rpc_send(c, "submit", big);
    uint32_t last = h_rpc_submit(c, "\"after\"", NULL);
    h_rpc_uncork(c);
    ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);

    struct h_resp *r = h_rpc_wait(c, huge, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                               "\"detail\": \"job too large\"}"));
    r = h_rpc_wait(c, first, 10000);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    r = h_rpc_wait(c, last, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":2,\"result\":\"after\"}");
    ck_assert_int_eq(h_rpc_wait_eof(c, H_REPLY_MS), 3);
    ck_assert(h_daemon_alive(d));
    free(big);
}
END_TEST

/* A request over the frame limit that ends cut short, in the middle of a
 * value's header, by a half-close: it is refused, the bytes left over are
 * dropped, the job before it still gets its outcome, and the connection
 * closes (it is not kept open waiting for the rest of the header). */
START_TEST(half_close_in_the_middle_of_a_refused_request_is_answered_then_eof)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--max-job-bytes", "1024", "-v", NULL));
    struct h_rpc *c = h_connected(d);
    enum { ITEMS = 20000 };             /* str8 values: 100 KB, over 65 KB */
    const uint32_t huge = 1000;
    size_t cap = 32 + 5 * (size_t)ITEMS, n = 0;
    unsigned char *req = malloc(cap);

    ck_assert_ptr_nonnull(req);
    /* [0, 1000, "submit", [["abc" x ITEMS]]], each "abc" as a str8 (d9 03
     * 'a' 'b' 'c'): a header of 2 bytes that can be cut in two. */
    static const unsigned char head[] = { 0x94, 0x00, 0xcd, 0x03, 0xe8, 0xa6,
                                          's', 'u', 'b', 'm', 'i', 't', 0x91,
                                          0xdd, 0x00, 0x00,
                                          (ITEMS >> 8) & 0xff, ITEMS & 0xff };
    memcpy(req, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i < ITEMS; i++) {
        static const unsigned char item[] = { 0xd9, 0x03, 'a', 'b', 'c' };
        memcpy(req + n, item, sizeof item);
        n += sizeof item;
    }
    n -= 4;                             /* the last header cut after 1 byte */
    uint32_t first = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    ck_assert_int_eq(h_rpc_send_raw(c, req, n), 0);
    ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);

    struct h_resp *r = h_rpc_wait(c, huge, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                               "\"detail\": \"job too large\"}"));
    r = h_rpc_wait(c, first, 10000);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    ck_assert_int_eq(h_rpc_wait_eof(c, H_REPLY_MS), 2);
    ck_assert(h_daemon_wait_log(d, "its refused request ends cut short; its last "
                                "1 bytes dropped", 0, H_REPLY_MS));
    ck_assert(h_daemon_alive(d));
    free(req);
}
END_TEST

/* ========================================================================
 * Drain
 * ======================================================================== */

/* A job that runs through the drain requests; the connection it came on. */
static struct h_rpc *
running_job(struct h_daemon *d, uint32_t *msgid)
{
    struct h_rpc *c = h_connected(d);

    /* Ready first (the daemons run with -v), so the job starts as it comes. */
    ck_assert(h_daemon_wait_log(d, ": ready for jobs", 0, H_READY_MS));
    *msgid = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 2}", NULL);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "busy"), 1);
    return c;
}

/* The job is still running, the pool draining (the drain requests came
 * while it ran); then it ends ok and the daemon exits 0. */
static void
job_ends_ok_and_daemon_exits_0(struct h_daemon *d, struct h_rpc *c, uint32_t job)
{
    struct h_resp *st = h_status(c);

    ck_assert_str_eq(h_get_str(st->result, "state"), "draining");
    ck_assert_int_eq(h_get_int(st->result, "busy"), 1);
    struct h_resp *r = h_rpc_wait(c, job, 30000);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 30000)), 0);
    ck_assert_int_eq(h_log_count(d, "drain cut off"), 0);
}

/* A retried `forkpoolctl drain` is the same drain: both succeed and the
 * running job finishes. */
START_TEST(repeated_drain_requests_let_the_running_job_finish)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "-v",
                                                  "--drain-timeout", "60", NULL));
    struct h_run run;
    uint32_t job;
    struct h_rpc *c;

    h_need_ctl();
    c = running_job(d, &job);
    h_ctl(&run, d, NULL, "drain", NULL);
    ck_assert_msg(h_exit_code(run.status) == 0, "first drain: %s", run.err);
    h_ctl(&run, d, NULL, "drain", NULL);
    ck_assert_msg(h_exit_code(run.status) == 0, "second drain: %s", run.err);
    job_ends_ok_and_daemon_exits_0(d, c, job);
    ck_assert_int_eq(h_log_count(d, "drain requested: already draining"), 1);
}
END_TEST

/* A SIGTERM during a drain that a request started is the first stop
 * signal, not a second: it does not cut the drain off. */
START_TEST(first_sigterm_during_a_requested_drain_does_not_cut_it_off)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "-v",
                                                  "--drain-timeout", "60", NULL));
    uint32_t job;
    struct h_rpc *c = running_job(d, &job);
    struct h_resp *r = h_rpc_call(c, "drain", "[]");

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "null");
    h_daemon_kill(d, SIGTERM);
    job_ends_ok_and_daemon_exits_0(d, c, job);
    ck_assert_int_eq(h_log_count(d, "drain requested: already draining"), 1);
}
END_TEST

/* SIGHUP during a drain changes nothing, and the log says so. */
START_TEST(sighup_during_a_drain_is_logged)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "-v",
                                                  "--drain-timeout", "60", NULL));
    uint32_t job;
    struct h_rpc *c = running_job(d, &job);
    struct h_resp *r = h_rpc_call(c, "drain", "[]");

    ck_assert_ptr_nonnull(r);
    h_daemon_kill(d, SIGHUP);
    ck_assert_msg(h_daemon_wait_log(d, "reload ignored: the pool is draining", 0,
                                    H_REPLY_MS), "log:\n%s", d->log);
    ck_assert_int_eq(h_log_count(d, "rolling reload"), 0);
    job_ends_ok_and_daemon_exits_0(d, c, job);
}
END_TEST

/* A SIGTERM that comes before forkpoold has its signal watchers (here it
 * is pending from before the exec: the test blocks it across the fork)
 * is handled as any: a clean drain, exit 0, not death by SIGTERM.  A
 * daemon that never unblocked it would not stop at all. */
START_TEST(sigterm_at_startup_ends_in_a_clean_drain)
{
    for (int i = 0; i < 5; i++) {
        struct h_opts o = { .umask = -1, .no_wait = 1 };
        char *args[] = { "--builtin", "echo", "-w", "2", NULL };
        sigset_t term, old;

        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &term, &old), 0);
        struct h_daemon *d = h_daemon_startv(&o, args);
        ck_assert_int_eq(sigprocmask(SIG_SETMASK, &old, NULL), 0);
        h_daemon_kill(d, SIGTERM);
        int status = h_daemon_wait(d, 20000);
        ck_assert_msg(status != -1, "round %d: still running; log:\n%s", i, d->log);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "round %d: status %#x; log:\n%s", i, status, d->log);
        ck_assert_int_eq(h_log_count(d, "Terminated received"), 1);
        ck_assert_int_eq(h_log_count(d, "drained; exiting"), 1);
    }
}
END_TEST

/* ========================================================================
 * --rpc-timeout
 * ======================================================================== */

/* forkpoolctl -s SOCK [--rpc-timeout t] ARGS... with a deadline of its own. */
static int
ctl_timed(struct h_run *run, struct h_daemon *d, const char *timeout, int deadline_ms,
          const char *stdin_text, const char *a1, const char *a2)
{
    char *argv[10];
    int n = 0;

    argv[n++] = (char *)H_FORKPOOLCTL;
    argv[n++] = (char *)"-s";
    argv[n++] = d->sock;
    if (timeout != NULL) {
        argv[n++] = (char *)"--rpc-timeout";
        argv[n++] = (char *)timeout;
    }
    argv[n++] = (char *)a1;
    if (a2 != NULL)
        argv[n++] = (char *)a2;
    argv[n] = NULL;
    return h_run_argv(run, d, stdin_text, deadline_ms, argv);
}

/* A stopped daemon accepts connections (the kernel does) and answers
 * nothing: each command gives up after its --rpc-timeout with exit 3 and
 * says so.  (The deadlines only keep a hung forkpoolctl from hanging the
 * test: they are not what is tested.) */
START_TEST(rpc_timeout_bounds_the_wait_on_a_stopped_daemon)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run run;
    char want[256];

    h_need_ctl();
    h_daemon_kill(d, SIGSTOP);
    snprintf(want, sizeof want, "forkpoolctl: status: forkpoold at %s did not answer "
             "within 0.5 s (--rpc-timeout)\n", d->sock);
    ctl_timed(&run, d, "0.5", 30000, NULL, "status", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_str_eq(run.err, want);
    ck_assert_str_eq(run.out, "");

    ctl_timed(&run, d, "0.5", 30000, NULL, "submit", "1");
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_ptr_nonnull(strstr(run.err, "did not answer"));
    ctl_timed(&run, d, "0.5", 30000, "1\n2\n", "map", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_ptr_nonnull(strstr(run.err, "did not answer"));

    /* Without the flag, the commands that run no jobs wait 10 s. */
    ctl_timed(&run, d, NULL, 60000, NULL, "metrics", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_ptr_nonnull(strstr(run.err, "did not answer within 10 s (--rpc-timeout)"));
    h_daemon_kill(d, SIGCONT);
}
END_TEST

/* A daemon that answers in time is not cut off by the timeout, and a bad
 * value is a usage error. */
START_TEST(rpc_timeout_lets_a_live_daemon_answer)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    ctl_timed(&run, d, "30", 30000, NULL, "submit", "[1]");
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": [1]}\n");
    ctl_timed(&run, d, "0", 30000, "2\n", "map", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ctl_timed(&run, d, "-1", 30000, NULL, "status", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "--rpc-timeout: '-1' is not a number of "
                                          "seconds >= 0"));
}
END_TEST

/* ========================================================================
 * Socket paths that cannot be
 * ======================================================================== */

START_TEST(socket_path_too_long_is_a_usage_error)
{
    char longpath[160], envvar[200];
    struct h_run run;

    h_need_ctl();
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    snprintf(envvar, sizeof envvar, "FORKPOOL_SOCKET=%s", longpath);

    char *ctl_flag[] = { H_FORKPOOLCTL, "-s", longpath, "status", NULL };
    h_run_argv(&run, NULL, NULL, 10000, ctl_flag);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "-s: socket path too long (1 to 107 bytes)"));
    char *ctl_empty[] = { H_FORKPOOLCTL, "-s", "", "status", NULL };
    h_run_argv(&run, NULL, NULL, 10000, ctl_empty);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    char *ctl_env[] = { "/usr/bin/env", envvar, H_FORKPOOLCTL, "status", NULL };
    h_run_argv(&run, NULL, NULL, 10000, ctl_env);
    ck_assert_int_eq(h_exit_code(run.status), 2);

    char *d_flag[] = { H_FORKPOOLD, "-s", longpath, "--builtin", "echo", NULL };
    h_run_argv(&run, NULL, NULL, 10000, d_flag);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "--socket: path too long"));
    char *d_env[] = { "/usr/bin/env", envvar, H_FORKPOOLD, "--builtin", "echo", NULL };
    h_run_argv(&run, NULL, NULL, 10000, d_env);
    ck_assert_int_eq(h_exit_code(run.status), 2);
}
END_TEST

/* ========================================================================
 * A worker that closes its socket
 * ======================================================================== */

/* An --exec worker that takes a job, closes its socket and lives on is
 * killed; its job's outcome says what it did, not "killed by SIGKILL"
 * (which reads as the kernel's OOM killer). */
START_TEST(exec_worker_closing_its_socket_is_reported_as_such)
{
    struct h_daemon *d = h_started(h_daemon_start(
        "--exec", "sh -c 'printf \"\\222\\245ready\\202\\243pid\\001\\245proto\\001\"; "
                  "head -c 1 >/dev/null; exec 0<&- 1>&-; exec sleep 60'",
        "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_submit(c, "\"x\"", NULL);

    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": 1, \"kind\": \"crashed\", "
                                               "\"detail\": \"closed its socket\"}"));
    /* The log line comes before the outcome, but down another pipe. */
    ck_assert(h_daemon_wait_log(d, "closed its socket while running job 1", 0, H_REPLY_MS));
}
END_TEST

static Suite *
fault_ctl_suite(void)
{
    Suite *s = suite_create("fault_ctl");
    TCase *tc;

    tc = h_tcase("too large", 60);
    tcase_add_test(tc, map_line_too_large_is_rejected_and_every_other_line_gets_its_outcome);
    tcase_add_test(tc, map_line_over_the_daemons_object_limit_is_rejected_and_the_rest_go_on);
    tcase_add_test(tc, request_over_the_frame_limit_is_refused_and_the_connection_goes_on);
    tcase_add_test(tc, half_closed_after_a_refused_request_every_reply_then_eof);
    tcase_add_test(tc, half_close_in_the_middle_of_a_refused_request_is_answered_then_eof);
    suite_add_tcase(s, tc);

    tc = h_tcase("drain and signals", 90);
    tcase_add_test(tc, repeated_drain_requests_let_the_running_job_finish);
    tcase_add_test(tc, first_sigterm_during_a_requested_drain_does_not_cut_it_off);
    tcase_add_test(tc, sighup_during_a_drain_is_logged);
    tcase_add_test(tc, sigterm_at_startup_ends_in_a_clean_drain);
    suite_add_tcase(s, tc);

    tc = h_tcase("rpc timeout", 120);
    tcase_add_test(tc, rpc_timeout_bounds_the_wait_on_a_stopped_daemon);
    tcase_add_test(tc, rpc_timeout_lets_a_live_daemon_answer);
    tcase_add_test(tc, socket_path_too_long_is_a_usage_error);
    suite_add_tcase(s, tc);

    tc = h_tcase("workers", 30);
    tcase_add_test(tc, exec_worker_closing_its_socket_is_reported_as_such);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(fault_ctl_suite());
}
