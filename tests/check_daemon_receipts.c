/*
 * check_daemon_receipts.c — receipts and crash forensics through forkpoold
 * and forkpoolctl (SPEC §3 "Receipt", §7 submit row, §8 outcome line):
 * "stats" on every outcome but a rejection, "stderr" on a crashed one; the
 * cmd builtin's children's CPU; the per-job peak under the strict sandbox.
 *
 * Bounds only where load cannot break them: CPU is burnt by CPU time.
 */
#include "config.h"
#include <check.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"

#define MIB_KB 1024.0

/* The receipt of a response (its result for ok, else its error), checked
 * to hold exactly the five figures of SPEC §3. */
static const msgpack_object *
receipt_of(const struct h_resp *r)
{
    const msgpack_object *outcome = r->error != NULL ? r->error : r->result;
    const msgpack_object *st = h_get(outcome, "stats");
    static const char *const keys[] = {
        "wait_ms", "run_ms", "cpu_ms", "maxrss_kb", "attempts",
    };

    ck_assert_msg(st != NULL && st->type == MSGPACK_OBJECT_MAP,
                  "no stats map in %s", h_json(outcome));
    ck_assert_uint_eq(st->via.map.size, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(h_get(st, keys[i]) != NULL, "no %s in the stats", keys[i]);
    return st;
}

/* A figure of a receipt, as a number. */
static double
figure(const msgpack_object *st, const char *key)
{
    const msgpack_object *v = h_get(st, key);

    ck_assert_ptr_nonnull(v);
    switch (v->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v->via.f64;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)v->via.u64;
    default:
        ck_abort_msg("%s is not a number", key);
    }
    return 0;
}

START_TEST(outcomes_carry_a_receipt_and_crashes_their_stderr)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    ck_assert_ptr_null(r->error);
    const msgpack_object *st = receipt_of(r);
    ck_assert_msg(figure(st, "run_ms") >= 190 && figure(st, "run_ms") <= 600,
                  "%s", h_json(st));
    ck_assert_msg(figure(st, "cpu_ms") < 100, "%s", h_json(st));
    ck_assert_msg(figure(st, "maxrss_kb") > 0, "%s", h_json(st));
    ck_assert_int_eq(h_get_int(st, "attempts"), 1);
    ck_assert_ptr_null(h_get(r->result, "stderr"));

    r = h_submit(c, "{\"op\": \"crash\", \"say\": \"about to fault\", \"n\": 2}",
                 "{\"retries\": 1}");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    ck_assert_int_eq(h_get_int(receipt_of(r), "attempts"), 2);
    ck_assert_str_eq(h_get_str(r->error, "stderr"),
                     "about to fault 0000\nabout to fault 0001\n");

    /* Other failures have a receipt and no stderr. */
    r = h_submit(c, "{\"op\": \"hang\"}", "{\"timeout\": 0.2}");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");
    ck_assert_msg(figure(receipt_of(r), "run_ms") >= 190, "%s", h_json(r->error));
    ck_assert_ptr_null(h_get(r->error, "stderr"));
    r = h_submit(c, "{\"op\": \"fail\"}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "error");
    receipt_of(r);
    ck_assert_ptr_null(h_get(r->error, "stderr"));

    /* A rejection has none. */
    r = h_submit(c, "1", "{\"retries\": -1}");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    ck_assert_ptr_null(h_get(r->error, "stats"));
}
END_TEST

/* A crash's stderr tail is the last FP_STDERR_TAIL bytes when one line is
 * all there is, so it can begin inside a character: that byte goes out as
 * U+FFFD and the rest as it was, and the outcome stays valid msgpack str. */
START_TEST(a_stderr_tail_cut_inside_a_character_is_still_utf8)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    enum { EUROS = 2000 };          /* 6000 bytes; with " 0000\n", 6006 */
    static char job[64 + 3 * EUROS], want[16 + 3 * EUROS];
    size_t n = (size_t)snprintf(job, sizeof job, "{\"op\": \"crash\", \"say\": \"");

    for (int i = 0; i < EUROS; i++, n += 3)
        memcpy(job + n, "\xe2\x82\xac", 3);
    snprintf(job + n, sizeof job - n, "\"}");
    /* The tail starts 4096 bytes before the end: at byte 1910 of the
     * euros, the last byte of the 637th; then 1363 whole ones. */
    n = (size_t)snprintf(want, sizeof want, "\xef\xbf\xbd");
    for (int i = 0; i < 1363; i++, n += 3)
        memcpy(want + n, "\xe2\x82\xac", 3);
    snprintf(want + n, sizeof want - n, " 0000\n");

    struct h_resp *r = h_submit(c, job, NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    ck_assert_str_eq(h_get_str(r->error, "stderr"), want);
}
END_TEST

START_TEST(batch_outcomes_carry_a_receipt)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    uint32_t m = h_rpc_send(c, "submit_batch", "[[1, {\"op\": \"burn\", \"s\": 0.3}]]");
    struct h_resp *r = h_rpc_wait(c, m, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    r = h_rpc_wait_outcome(c, m, 1, 20000);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(figure(receipt_of(r), "cpu_ms") >= 250, "%s", h_json(r->result));
    r = h_rpc_wait_outcome(c, m, 0, 20000);
    ck_assert_ptr_nonnull(r);
    receipt_of(r);
}
END_TEST

/* The cmd builtin's job is its child: the child's CPU is the job's. */
START_TEST(cmd_childs_cpu_is_the_jobs)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "cmd", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"argv\": [\"" H_EXEC_WORKER "\", \"burn\", \"0.3\"]}",
                                NULL);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    ck_assert_int_eq(h_get_int(h_get(r->result, "result"), "exit"), 0);
    ck_assert_msg(figure(receipt_of(r), "cpu_ms") >= 250, "%s", h_json(r->result));
}
END_TEST

/* Under strict (seccomp), the peak still restarts with each job, and a
 * crashed job's stderr still comes back. */
START_TEST(strict_sandbox_keeps_receipts_per_job)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--sandbox",
                                                  "strict", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"op\": \"touch\", \"mib\": 100}", NULL);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    ck_assert_msg(figure(receipt_of(r), "maxrss_kb") >= 100 * MIB_KB, "%s",
                  h_json(h_get(r->result, "stats")));
    r = h_submit(c, "7", NULL);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    double small = figure(receipt_of(r), "maxrss_kb");
    ck_assert_msg(small > 0 && small < 50 * MIB_KB, "%s", h_json(h_get(r->result, "stats")));
    r = h_submit(c, "{\"op\": \"sleep\", \"s\": 0.02}", NULL);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    small = figure(receipt_of(r), "maxrss_kb");
    ck_assert_msg(small > 0 && small < 50 * MIB_KB, "%s", h_json(h_get(r->result, "stats")));
    r = h_submit(c, "{\"op\": \"burn\", \"s\": 0.3}", NULL);
    ck_assert_msg(figure(receipt_of(r), "cpu_ms") >= 250, "%s", h_json(r->result));

    r = h_submit(c, "{\"op\": \"assert\"}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "detail"), "killed by SIGABRT");
    ck_assert_ptr_nonnull(strstr(h_get_str(r->error, "stderr"), "testmod assertion"));
}
END_TEST

/* forkpoolctl's outcome line (SPEC §8): "stats" after the value or the
 * detail, "stderr" after it on a crash; the figures as the daemon rounds
 * them, not as 17 digits. */
START_TEST(ctl_outcome_lines_carry_the_receipt)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, NULL, "submit", "{\"op\": \"sleep\", \"s\": 0.01}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": \"slept\"}\n");
    static const char head[] = "{\"id\": 1, \"ok\": true, \"result\": \"slept\", "
                               "\"stats\": {\"wait_ms\": ";
    ck_assert_msg(strncmp(run.out_raw, head, strlen(head)) == 0, "%s", run.out_raw);
    ck_assert_msg(strstr(run.out_raw, "\"attempts\": 1}}\n") != NULL, "%s", run.out_raw);
    /* Milliseconds to the microsecond: at most three decimals. */
    const char *run_ms = strstr(run.out_raw, "\"run_ms\": ");
    ck_assert_ptr_nonnull(run_ms);
    const char *dot = strchr(run_ms, '.'), *comma = strchr(run_ms, ',');
    ck_assert_msg(dot != NULL && dot < comma && comma - dot <= 4, "%s", run.out_raw);

    h_ctl(&run, d, NULL, "submit", "{\"op\": \"crash\", \"say\": \"the \\\"end\\\"\"}",
          NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": false, \"kind\": \"crashed\", "
                              "\"detail\": \"killed by SIGSEGV\"}\n");
    ck_assert_msg(strstr(run.out_raw, "\"attempts\": 1}, "
                                      "\"stderr\": \"the \\\"end\\\" 0000\\n\"}\n") != NULL,
                  "%s", run.out_raw);

    h_ctl(&run, d, "3\n{\"op\": \"fail\"}\n", "map", "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_str_eq(run.out, "{\"index\": 0, \"id\": 3, \"ok\": true, \"result\": 3}\n"
                              "{\"index\": 1, \"id\": 4, \"ok\": false, \"kind\": \"error\", "
                              "\"detail\": \"failed on purpose\"}\n");
    ck_assert_int_eq(h_count_lines(run.out_raw), 2);
    ck_assert_msg(strstr(run.out_raw, "\"result\": 3, \"stats\": {\"wait_ms\": ") != NULL,
                  "%s", run.out_raw);
    ck_assert_msg(strstr(run.out_raw, "\"failed on purpose\", \"stats\": {\"wait_ms\": ")
                  != NULL, "%s", run.out_raw);
}
END_TEST

static Suite *
daemon_receipts_suite(void)
{
    Suite *s = suite_create("daemon_receipts");
    TCase *tc;

    tc = h_tcase("receipts", 30);
    tcase_add_test(tc, outcomes_carry_a_receipt_and_crashes_their_stderr);
    tcase_add_test(tc, a_stderr_tail_cut_inside_a_character_is_still_utf8);
    tcase_add_test(tc, batch_outcomes_carry_a_receipt);
    tcase_add_test(tc, cmd_childs_cpu_is_the_jobs);
    tcase_add_test(tc, strict_sandbox_keeps_receipts_per_job);
    tcase_add_test(tc, ctl_outcome_lines_carry_the_receipt);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_receipts_suite());
}
