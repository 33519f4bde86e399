/*
 * check_daemon_autoscale.c — forkpoold's dynamic pool (SPEC §5.2):
 * --autoscale MIN-MAX and --idle-timeout S, as flags and config-file
 * options (their bad values: check_daemon_control.c's bad_flags); status's
 * "autoscale" map; growth, idle retirement, scale,
 * SIGTTIN/SIGTTOU and reload within the range; the log of each decision.
 *
 * Each test starts its own forkpoold (harness.h) and waits for responses
 * and log lines with deadlines, never by sleeping.
 */
#include "config.h"
#include <check.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int64_t
workers_of(struct h_rpc *c)
{
    return h_get_int(h_status(c)->result, "workers");
}

/* Wait until status says `n` workers with `n` pids. */
static void
wait_workers(struct h_daemon *d, struct h_rpc *c, int n, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    pid_t pids[64];

    for (;;) {
        struct h_resp *st = h_status(c);
        if (h_get_int(st->result, "workers") == n && h_status_pids(st, pids, 64) == n)
            return;
        ck_assert_msg(h_now_ms() < end, "never %d workers; log:\n%s", n, d->log);
        h_daemon_pump(d, 20);
    }
}

START_TEST(status_carries_the_range_and_starts_at_min)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--autoscale", "2-5", NULL));
    struct h_rpc *c = h_connected(d);
    const msgpack_object *as = h_get(h_status(c)->result, "autoscale");

    ck_assert_ptr_nonnull(as);
    ck_assert_str_eq(h_canon(h_json(as)), h_canon("{\"min\": 2, \"max\": 5}"));
    ck_assert_int_eq(workers_of(c), 2);
}
END_TEST

START_TEST(ctl_status_shows_the_range)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--autoscale", "1-3", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, NULL, "status", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_msg(strstr(run.out, "\nautoscale       1 to 3 workers\n") != NULL,
                  "%s", run.out);
}
END_TEST

START_TEST(status_has_no_range_without_autoscale)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_ptr_null(h_get(h_status(c)->result, "autoscale"));
}
END_TEST

START_TEST(workers_flag_is_clamped_to_the_range)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "8", "--autoscale",
                                                  "1-3", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_int_eq(workers_of(c), 3);
}
END_TEST

START_TEST(grows_under_a_backlog_and_logs_it)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--autoscale", "1-3",
                                                  "--idle-timeout", "60", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t ids[12];

    for (int i = 0; i < 12; i++)
        ids[i] = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.3}", NULL);
    /* 1 -> 2 at once, then the 2 due a second later, capped at MAX: 1. */
    wait_workers(d, c, 3, 10000);
    ck_assert(h_daemon_wait_log(d, ", 2 of max 3 running)", 0, 5000));
    for (int i = 0; i < 12; i++) {
        struct h_resp *r = h_rpc_wait(c, ids[i], 20000);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(r->error);
    }
    ck_assert_int_eq(workers_of(c), 3);
    ck_assert_int_eq(h_log_count(d, "autoscale: adding 1 worker ("), 2);
    ck_assert_int_eq(h_log_count(d, "autoscale: adding"), 2);
}
END_TEST

START_TEST(idle_workers_retire_to_min_and_log_it)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "3", "--autoscale", "1-3",
                                                  "--idle-timeout", "0.3", NULL));
    struct h_rpc *c = h_connected(d);

    wait_workers(d, c, 1, 10000);
    ck_assert_int_eq(h_log_count(d, "autoscale: retiring worker"), 2);
    ck_assert_int_eq(h_log_count(d, "(idle 0.3 s, 2 > min 1)"), 1);
}
END_TEST

START_TEST(scale_and_signals_stay_within_the_range)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--autoscale", "2-3",
                                                  "--idle-timeout", "60", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;
    size_t mark;

    r = h_rpc_call(c, "scale", "[4]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error),
                     "\"cannot scale to 4 workers: autoscale keeps 2 to 3\"");
    r = h_rpc_call(c, "scale", "[1]");
    ck_assert_ptr_nonnull(r->error);
    r = h_rpc_call(c, "scale", "[3]");
    ck_assert_str_eq(h_json(r->result), "{\"workers\":3}");
    mark = d->loglen;
    h_daemon_kill(d, SIGTTIN);          /* at MAX: refused */
    ck_assert(h_daemon_wait_log(d, "staying at 3 workers", mark, 5000));
    h_daemon_kill(d, SIGTTOU);
    wait_workers(d, c, 2, 5000);
    mark = d->loglen;
    h_daemon_kill(d, SIGTTOU);          /* at MIN: refused */
    ck_assert(h_daemon_wait_log(d, "staying at 2 workers", mark, 5000));
    ck_assert_int_eq(workers_of(c), 2);
}
END_TEST

START_TEST(reload_keeps_the_current_size)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--autoscale", "1-4",
                                                  "--idle-timeout", "60", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_rpc_call(c, "scale", "[3]");

    ck_assert_ptr_null(r->error);
    wait_workers(d, c, 3, 5000);
    h_daemon_kill(d, SIGHUP);
    ck_assert(h_daemon_wait_log(d, "reload complete", 0, 10000));
    wait_workers(d, c, 3, 5000);
}
END_TEST

START_TEST(config_file_takes_both_options)
{
    char path[512];
    FILE *f;
    struct h_daemon *d;
    struct h_rpc *c;

    snprintf(path, sizeof(path), "%s/auto.conf", h_tempdir());
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("autoscale 1-2\nidle-timeout 0.3\n", f);
    fclose(f);
    d = h_started(h_daemon_start(H_MOD, "-w", "2", "-c", path, NULL));
    c = h_connected(d);
    ck_assert_str_eq(h_canon(h_json(h_get(h_status(c)->result, "autoscale"))),
                     h_canon("{\"min\": 1, \"max\": 2}"));
    wait_workers(d, c, 1, 10000);       /* the short idle timeout took */
    ck_assert_int_eq(h_log_count(d, "(idle 0.3 s, 2 > min 1)"), 1);
}
END_TEST

static Suite *
daemon_autoscale_suite(void)
{
    Suite *s = suite_create("daemon autoscale");
    TCase *tc;

    tc = h_tcase("autoscale", 30);
    tcase_add_test(tc, status_carries_the_range_and_starts_at_min);
    tcase_add_test(tc, ctl_status_shows_the_range);
    tcase_add_test(tc, status_has_no_range_without_autoscale);
    tcase_add_test(tc, workers_flag_is_clamped_to_the_range);
    tcase_add_test(tc, grows_under_a_backlog_and_logs_it);
    tcase_add_test(tc, idle_workers_retire_to_min_and_log_it);
    tcase_add_test(tc, scale_and_signals_stay_within_the_range);
    tcase_add_test(tc, reload_keeps_the_current_size);
    tcase_add_test(tc, config_file_takes_both_options);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_autoscale_suite());
}
