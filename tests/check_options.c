/*
 * check_options.c — forkpoold's option parser (src/daemon/daemon_opts.c),
 * called in-process: it returns what it found and never exits, so a bad
 * flag is an error value to assert on, not a dead test process.
 *
 * What the real binary makes of the parser's answers (the one-line message
 * on stderr, exit 2) is tested from outside in check_daemon.c and
 * check_service.c.
 */
#include "config.h"
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_opts.h"
#include "harness.h"

/* A config file with `text` in the test's temp dir (removed at teardown);
 * the path lives until the test's third call. */
static const char *
write_config(const char *name, const char *text)
{
    static char paths[2][256];
    static int next;
    char *path = paths[next++ % 2];
    FILE *f;

    snprintf(path, sizeof(paths[0]), "%s/%s", h_tempdir(), name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Parse "forkpoold ARGS..." (at most 8) into o, with "%s" inside an
 * argument replaced by `file`.  Returns what fp_daemon_opts_parse did. */
static int
parse(struct fp_daemon_opts *o, const char *file, const char *const args[])
{
    static char buf[8][512];
    char *argv[10];
    int argc = 0;

    argv[argc++] = (char *)"forkpoold";
    for (int i = 0; i < 8 && args[i] != NULL; i++) {
        const char *at = strstr(args[i], "%s");
        if (at != NULL)
            snprintf(buf[i], sizeof(buf[i]), "%.*s%s%s", (int)(at - args[i]), args[i],
                     file, at + 2);
        else
            snprintf(buf[i], sizeof(buf[i]), "%s", args[i]);
        argv[argc++] = buf[i];
    }
    argv[argc] = NULL;
    return fp_daemon_opts_parse(o, argc, argv);
}

/* ========================================================================
 * --config: every spelling getopt accepts reads the file
 * ======================================================================== */

static const struct {
    const char *args[5];
} config_spellings[] = {
    { { "-c", "%s" } },
    { { "-c%s" } },
    { { "--config", "%s" } },
    { { "--config=%s" } },
    { { "--conf", "%s" } },         /* an unambiguous prefix */
    { { "--conf=%s" } },
    { { "--c", "%s" } },
    { { "-vc", "%s" } },            /* bundled after a flag without a value */
    { { "-vc%s" } },
    { { "-dvc%s" } },
    { { "--builtin", "echo", "-c", "%s" } },
};

/* Parse args, with the config file `file`, and check the daemon would run
 * with that file and these values. */
static void
assert_runs_with(const char *file, const char *const args[], unsigned workers,
                 size_t queue_max)
{
    struct fp_daemon_opts o;
    int rc = parse(&o, file, args);

    ck_assert_msg(rc == FP_OPTS_RUN, "%s: %d: %s", args[0], rc, o.err);
    ck_assert_str_eq(o.config_file, file);
    ck_assert_uint_eq(o.cfg.workers, workers);
    ck_assert_uint_eq(o.cfg.queue_max, queue_max);
    fp_daemon_opts_free(&o);
}

START_TEST(every_config_spelling_reads_the_file)
{
    const char *file = write_config("forkpool.conf", "workers 3\nqueue-max 7\n");

    assert_runs_with(file, config_spellings[_i].args, 3, 7);
}
END_TEST

START_TEST(flags_override_the_config_file_before_or_after_it)
{
    const char *file = write_config("forkpool.conf", "workers 3\nqueue-max 7\n");
    const char *const before[] = { "-w", "2", "-c", "%s", NULL };
    const char *const after[] = { "--conf=%s", "--queue-max", "9", NULL };

    assert_runs_with(file, before, 2, 7);
    assert_runs_with(file, after, 3, 9);
}
END_TEST

START_TEST(last_config_flag_names_the_file)
{
    const char *first = write_config("first.conf", "workers 3\nqueue-max 7\n");
    const char *second = write_config("second.conf", "workers 5\nqueue-max 8\n");
    const char *const args[] = { "-c", first, "--conf", "%s", NULL };

    assert_runs_with(second, args, 5, 8);
}
END_TEST

START_TEST(poison_after_comes_from_the_config_file_too)
{
    const char *file = write_config("forkpool.conf", "poison-after 3\n");
    const char *const args[] = { "-c", "%s", NULL };
    const char *const flag[] = { "-c", "%s", "--poison-after", "0", NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, file, args), FP_OPTS_RUN);
    ck_assert_uint_eq(o.cfg.poison_after, 3);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, file, flag), FP_OPTS_RUN);
    ck_assert_uint_eq(o.cfg.poison_after, 0);     /* the flag wins: off */
    fp_daemon_opts_free(&o);
}
END_TEST

START_TEST(config_file_error_names_file_and_line)
{
    const char *file = write_config("forkpool.conf", "workers 2\nworkers zero\n");
    const char *const args[] = { "--conf", "%s", NULL };
    struct fp_daemon_opts o;
    char want[600];

    ck_assert_int_eq(parse(&o, file, args), FP_OPTS_ERROR);
    snprintf(want, sizeof(want), "%s:2: --workers: expected an integer", file);
    ck_assert_msg(strncmp(o.err, want, strlen(want)) == 0, "%s", o.err);
    fp_daemon_opts_free(&o);
}
END_TEST

/* --heartbeat-timeout, from the file or the command line (which wins). */
START_TEST(heartbeat_timeout_from_the_config_file_or_a_flag)
{
    const char *file = write_config("forkpool.conf", "heartbeat-timeout 2.5\n");
    const char *const from_file[] = { "-c", "%s", NULL };
    const char *const overridden[] = { "-c", "%s", "--heartbeat-timeout", "0.5", NULL };
    const char *const none[] = { NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, file, from_file), FP_OPTS_RUN);
    ck_assert(o.cfg.heartbeat_timeout == 2.5);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, file, overridden), FP_OPTS_RUN);
    ck_assert(o.cfg.heartbeat_timeout == 0.5);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, NULL, none), FP_OPTS_RUN);
    ck_assert(o.cfg.heartbeat_timeout == 0);     /* off by default */
    fp_daemon_opts_free(&o);
}
END_TEST

START_TEST(unreadable_config_file_is_an_error)
{
    const char *const args[] = { "-c/nonexistent/forkpool.conf", NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, NULL, args), FP_OPTS_ERROR);
    ck_assert_str_eq(o.err, "--config: cannot read /nonexistent/forkpool.conf: "
                     "No such file or directory");
    fp_daemon_opts_free(&o);
}
END_TEST

/* ========================================================================
 * Errors are returned, naming the flag; --help and --version are reported
 * ======================================================================== */

static const struct {
    const char *args[6];
    const char *err;        /* the whole message */
} bad_values[] = {
    { { "--workers", "0" }, "--workers: expected an integer from 1 to 65536, got '0'" },
    { { "-w" }, "-w: missing value" },
    { { "--bogus" }, "unknown option '--bogus'" },
    { { "-x" }, "unknown option '-x'" },
    { { "stray" }, "unexpected argument 'stray'" },
    { { "--sandbox", "leaky" }, "--sandbox: expected none, basic or strict, got 'leaky'" },
    { { "--worker-sched", "fifo" }, "--worker-sched: expected batch or inherit, got 'fifo'" },
    { { "--log-level", "loud" },
      "--log-level: expected err, warning, info or debug, got 'loud'" },
    { { "--log", "file" }, "--log: expected stderr or syslog, got 'file'" },
    { { "--job-timeout", "-1" },
      "--job-timeout: expected a number of seconds >= 0, got '-1'" },
    { { "--heartbeat-timeout", "-1" },
      "--heartbeat-timeout: expected a number of seconds >= 0, got '-1'" },
    { { "--heartbeat-timeout", "nan" },
      "--heartbeat-timeout: expected a number of seconds >= 0, got 'nan'" },
    { { "--pidfile=" }, "--pidfile: empty path" },
    { { "--max-workers", "4", "-w", "5" }, "--workers: 5 is more than --max-workers (4)" },
    { { "--module-config", "{}" }, "--module-config: needs --module" },
    { { "--builtin", "echo", "--exec", "cat" },
      "--module, --exec and --builtin are exclusive: choose one" },
    { { "--spare-workers", "65" },
      "--spare-workers: expected an integer from 0 to 64, got '65'" },
    { { "--poison-after", "-1" },
      "--poison-after: expected an integer from 0 to 65535, got '-1'" },
    { { "--poison-after", "65536" },
      "--poison-after: expected an integer from 0 to 65535, got '65536'" },
    { { "--reply-soft-limit", "100" },
      "--reply-soft-limit: expected an integer from 4096 to 1099511627776, got '100'" },
    { { "--reply-max-bytes", "1x" },
      "--reply-max-bytes: expected an integer from 4096 to 1099511627776, got '1x'" },
    { { "--redis", "tcp://h:1" },
      "--redis: bad Redis URL 'tcp://h:1': expected unix:/path or redis://host:port[/db]" },
    { { "--redis", "redis://h:99999" },
      "--redis: bad Redis URL 'redis://h:99999': the port must be 1..65535" },
    { { "--lease", "5" }, "--lease: needs --redis" },
    { { "--redis-queue", "q" }, "--redis-queue: needs --redis" },
    { { "--redis", "unix:/r.sock", "--lease", "0.01" },
      "--lease: expected seconds from 0.1 to 86400, got '0.01'" },
    { { "--redis", "unix:/r.sock", "--max-deliveries", "0" },
      "--max-deliveries: expected an integer from 1 to 1000, got '0'" },
    { { "--redis", "unix:/r.sock", "--redis-queue", "a{b}" },
      "--redis-queue: 'a{b}': only printable characters, no spaces or braces" },
    { { "--max-job-bytes", "1048576", "--reply-hard-limit", "9437183" },
      "--reply-hard-limit: 9437183 is less than the soft limit plus --max-job-bytes "
      "(8388608 + 1048576): one result could cut off a client that reads" },
};

START_TEST(bad_value_returns_an_error_naming_the_flag)
{
    struct fp_daemon_opts o;

    /* Getting here at all shows the parser did not exit. */
    ck_assert_int_eq(parse(&o, NULL, bad_values[_i].args), FP_OPTS_ERROR);
    ck_assert_str_eq(o.err, bad_values[_i].err);
    fp_daemon_opts_free(&o);
}
END_TEST

/* The Redis options, from the config file as from flags. */
START_TEST(redis_options_from_the_config_file)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/conf", h_tempdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("redis redis://127.0.0.1:6390/2\nredis-queue images\nlease 12.5\n"
          "max-deliveries 5\nredis-retention 3600\n", f);
    fclose(f);
    const char *const args[] = { "-c", "%s", NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, path, args), FP_OPTS_RUN);
    ck_assert_str_eq(o.redis.url_text, "redis://127.0.0.1:6390/2");
    ck_assert_str_eq(o.redis.url.host, "127.0.0.1");
    ck_assert_uint_eq(o.redis.url.port, 6390);
    ck_assert_uint_eq(o.redis.url.db, 2);
    ck_assert_str_eq(o.redis.queue, "images");
    ck_assert(o.redis.lease == 12.5);
    ck_assert_uint_eq(o.redis.max_deliveries, 5);
    ck_assert(o.redis.retention == 3600);
    fp_daemon_opts_free(&o);

    const char *const none[] = { NULL };
    ck_assert_int_eq(parse(&o, NULL, none), FP_OPTS_RUN);
    ck_assert_ptr_null(o.redis.url_text);
    ck_assert_str_eq(o.redis.queue, "forkpool");
    ck_assert(o.redis.lease == 30);
    ck_assert_uint_eq(o.redis.max_deliveries, 3);
    fp_daemon_opts_free(&o);
}
END_TEST

START_TEST(help_and_version_are_reported_not_acted_on)
{
    const char *const help[] = { "-w", "2", "--help", "--bogus", NULL };
    const char *const version[] = { "-V", NULL };
    const char *const late_help[] = { "--bogus", "--help", NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, NULL, help), FP_OPTS_HELP);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, NULL, version), FP_OPTS_VERSION);
    fp_daemon_opts_free(&o);
    /* Flags are taken in order: an error before --help wins. */
    ck_assert_int_eq(parse(&o, NULL, late_help), FP_OPTS_ERROR);
    fp_daemon_opts_free(&o);
}
END_TEST

/* --worker-sched: batch unless told, from a flag or the file. */
START_TEST(worker_sched_is_batch_unless_told)
{
    const char *file = write_config("forkpool.conf", "worker-sched inherit\n");
    const char *const from_file[] = { "-c", "%s", NULL };
    const char *const flag[] = { "-c", "%s", "--worker-sched", "batch", NULL };
    const char *const none[] = { NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, NULL, none), FP_OPTS_RUN);
    ck_assert_int_eq(o.cfg.worker_sched, FP_WORKER_SCHED_BATCH);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, file, from_file), FP_OPTS_RUN);
    ck_assert_int_eq(o.cfg.worker_sched, FP_WORKER_SCHED_INHERIT);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse(&o, file, flag), FP_OPTS_RUN);
    ck_assert_int_eq(o.cfg.worker_sched, FP_WORKER_SCHED_BATCH);
    fp_daemon_opts_free(&o);
}
END_TEST

/* ========================================================================
 * Defaults: one home each, FP_DEFAULT_* in forkpool.h
 * ======================================================================== */

START_TEST(defaults_are_the_forkpool_h_ones)
{
    const char *const none[] = { NULL };
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse(&o, NULL, none), FP_OPTS_RUN);
    ck_assert_uint_eq(o.max_workers, FP_DEFAULT_MAX_WORKERS);
    ck_assert_uint_eq(o.cfg.max_workers, FP_DEFAULT_MAX_WORKERS);
    ck_assert(o.drain_timeout == FP_DEFAULT_DRAIN_TIMEOUT);
    ck_assert_str_eq(o.handler, "cmd");
    fp_daemon_opts_free(&o);
}
END_TEST

START_TEST(help_text_shows_the_default_limits)
{
    char *text = NULL, want[6][64];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    fp_daemon_usage(f);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(want[0], sizeof(want[0]), "SIGTTIN and -w (default %u)", FP_DEFAULT_MAX_WORKERS);
    snprintf(want[1], sizeof(want[1]), "(default %u)", FP_DEFAULT_QUEUE_MAX);
    snprintf(want[2], sizeof(want[2]), "are rejected (default %zu GiB)",
             FP_DEFAULT_QUEUE_MAX_BYTES >> 30);
    snprintf(want[3], sizeof(want[3]), "in bytes (default %zu MiB)",
             FP_DEFAULT_MAX_JOB_BYTES >> 20);
    snprintf(want[4], sizeof(want[4]), "(default %u)", FP_DEFAULT_PREFETCH);
    snprintf(want[5], sizeof(want[5]), "take (default %g; 0 = no limit)",
             FP_DEFAULT_DRAIN_TIMEOUT);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "no '%s' in:\n%s", want[i], text);
    free(text);
}
END_TEST

static Suite *
options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc;

    tc = h_tcase("config", 10);
    tcase_add_loop_test(tc, every_config_spelling_reads_the_file, 0,
                        sizeof(config_spellings) / sizeof(config_spellings[0]));
    tcase_add_test(tc, flags_override_the_config_file_before_or_after_it);
    tcase_add_test(tc, last_config_flag_names_the_file);
    tcase_add_test(tc, config_file_error_names_file_and_line);
    tcase_add_test(tc, poison_after_comes_from_the_config_file_too);
    tcase_add_test(tc, unreadable_config_file_is_an_error);
    tcase_add_test(tc, heartbeat_timeout_from_the_config_file_or_a_flag);
    tcase_add_test(tc, worker_sched_is_batch_unless_told);
    suite_add_tcase(s, tc);

    tc = h_tcase("errors", 10);
    tcase_add_loop_test(tc, bad_value_returns_an_error_naming_the_flag, 0,
                        sizeof(bad_values) / sizeof(bad_values[0]));
    tcase_add_test(tc, help_and_version_are_reported_not_acted_on);
    tcase_add_test(tc, redis_options_from_the_config_file);
    suite_add_tcase(s, tc);

    tc = h_tcase("defaults", 10);
    tcase_add_test(tc, defaults_are_the_forkpool_h_ones);
    tcase_add_test(tc, help_text_shows_the_default_limits);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(options_suite());
}
