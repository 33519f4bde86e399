/*
 * check_daemon_drain.c — forkpoold's drain and signals (SPEC §5): SIGTERM,
 * SIGINT and the drain method finish every job; a drain timeout or a second
 * signal cuts it off; SIGHUP reloads, SIGTTIN/SIGTTOU scale.
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

START_TEST(sigterm_drains_200_queued_jobs)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--drain-timeout", "5", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--drain-timeout", "0.5", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--drain-timeout", "60", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", "-v", NULL));
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
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
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

static Suite *
daemon_drain_suite(void)
{
    Suite *s = suite_create("daemon drain");
    TCase *tc;

    tc = h_tcase("drain", 20);
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
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_drain_suite());
}
