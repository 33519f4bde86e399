/*
 * check_pool_progress.c — progress reports and heartbeats through an
 * embedded pool: fp_progress in a module's handler and ["progress", id, v]
 * from an --exec program reach the job's progress callback in order and
 * before its outcome; what the protocol does not allow is a protocol
 * error; --heartbeat-timeout kills a silent job and spares one that
 * reports.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "forkpool.h"

#include "common/jsonmp.h"
#include "engine/job.h"
#include "pool_harness.h"

/* ------------------------------------------------------------------------
 * What arrives, in order: per job, "progress VALUE" and "KIND VALUE"
 * entries (values as compact JSON), joined by " | " (events_of).  Only
 * the order within a job is promised: the reports of one job and the
 * outcome of another that arrive together may be handed out either way.
 * ------------------------------------------------------------------------ */

enum { MAX_EVENTS = 64 };
static struct {
    uint64_t id;
    char     text[256];
} events[MAX_EVENTS];
static size_t nevents;
static int progress_arg_seen;   /* the progress callback got its own arg */
static int cancel_on_progress;  /* the progress callback cancels its job */
static int free_on_progress;    /* ... or frees the pool */

static void
note(uint64_t id, const char *what, const char *value, size_t len)
{
    struct fp_buf json = FP_BUF_INIT;
    char why[128];

    ck_assert_uint_lt(nevents, MAX_EVENTS);
    if (fp_json_write_msgpack(&json, value, len, FP_JSON_COMPACT, why, sizeof(why)) < 0)
        fp_buf_printf(&json, "<%s>", why);
    events[nevents].id = id;
    snprintf(events[nevents].text, sizeof(events[0].text), "%s %.*s", what,
             (int)json.len, fp_buf_head(&json));
    nevents++;
    fp_buf_free(&json);
}

/* Job id's entries, in the order they arrived. */
static const char *
events_of(uint64_t id)
{
    static char text[4096];
    size_t n = 0;

    text[0] = '\0';
    for (size_t i = 0; i < nevents; i++)
        if (events[i].id == id)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
                                  n > 0 ? " | " : "", events[i].text);
    return text;
}

static void
progress_cb(uint64_t id, const char *value, size_t len, void *arg)
{
    if (arg == (void *)events)
        progress_arg_seen = 1;
    note(id, "progress", value, len);
    if (cancel_on_progress)
        ck_assert_int_eq(fp_pool_cancel(H.pool, id), 1);
    if (free_on_progress && H.pool != NULL) {
        fp_pool_free(H.pool);
        H.pool = NULL;
    }
}

static void
done_cb(const fp_outcome *o, void *arg)
{
    note(o->id, fp_kind_name(o->kind), o->data, o->len);
    record_cb(o, arg);
}

static const fp_job_opts with_progress = {
    .timeout = -1, .progress = progress_cb, .progress_arg = (void *)events,
};

/* Submit the job given as JSON text with done_cb; returns its id. */
static uint64_t
submit_json(const char *json, const fp_job_opts *opts)
{
    struct fp_buf job = FP_BUF_INIT;
    char why[128];
    const char *reason = NULL;
    uint64_t id = 0;

    ck_assert_msg(fp_json_text_to_buf(json, strlen(json), &job, why, sizeof(why)) == 0,
                  "bad JSON %s: %s", json, why);
    int rc = fp_pool_submit(H.pool, fp_buf_head(&job), job.len, opts, done_cb, &H,
                            &id, &reason);
    ck_assert_msg(rc == 0, "submit rejected: %s", reason ? reason : "?");
    fp_buf_free(&job);
    return id;
}

/* ------------------------------------------------------------------------
 * Progress reaches the callback
 * ------------------------------------------------------------------------ */

START_TEST(module_progress_reaches_the_callback_in_order_before_the_outcome)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t id = submit_json("{\"op\": \"progress\", \"values\": [1, \"half\", "
                              "{\"x\": [1.5, null]}]}", &with_progress);
    ck_assert_uint_eq(id, 1);
    wait_job(id, 20);
    ck_assert_str_eq(events_of(1), "progress 1 | progress \"half\" | "
                                   "progress {\"x\":[1.5,null]} | ok 3");
    ck_assert(progress_arg_seen);
}
END_TEST

/* An --exec program speaks the same message: ["progress", id, value]. */
START_TEST(exec_worker_progress_reaches_the_callback_in_order_before_the_outcome)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("tag");
    start_pool(&cfg);
    uint64_t id = submit_json("{\"progress\": [1, 2, \"three\"]}", &with_progress);
    wait_job(id, 20);
    ck_assert_str_eq(events_of(1), "progress 1 | progress 2 | progress \"three\" | "
                                   "ok [\"exec\",{\"progress\":[1,2,\"three\"]}]");
}
END_TEST

/* Without a progress callback the reports are dropped (and nothing else
 * changes); each job's reports go to its own callback only. */
START_TEST(progress_goes_only_to_jobs_that_asked_for_it)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t quiet = submit_json("{\"op\": \"progress\", \"n\": 3}", NULL);
    uint64_t loud = submit_json("{\"op\": \"progress\", \"n\": 2}", &with_progress);
    wait_outcomes(2, 20);
    ck_assert_str_eq(events_of(quiet), "ok 3");
    ck_assert_str_eq(events_of(loud), "progress 1 | progress 2 | ok 2");
}
END_TEST

/* A batch shares one callback: the id says whose report it is. */
START_TEST(batch_progress_names_each_job)
{
    fp_config cfg;
    struct fp_buf a = FP_BUF_INIT, b = FP_BUF_INIT;
    char why[128];
    uint64_t first = 0;
    const char *reason = NULL;

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(fp_json_text_to_buf("{\"op\": \"progress\", \"values\": [\"a\"]}",
                                         35, &a, why, sizeof(why)), 0);
    ck_assert_int_eq(fp_json_text_to_buf("{\"op\": \"progress\", \"values\": [\"b\"]}",
                                         35, &b, why, sizeof(why)), 0);
    fp_job_buf jobs[2] = { { fp_buf_head(&a), a.len }, { fp_buf_head(&b), b.len } };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 2, &with_progress, done_cb, &H,
                                          &first, &reason), 0);
    wait_outcomes(2, 20);
    ck_assert_str_eq(events_of(first), "progress \"a\" | ok 1");
    ck_assert_str_eq(events_of(first + 1), "progress \"b\" | ok 1");
    fp_buf_free(&a);
    fp_buf_free(&b);
}
END_TEST

/* A progress callback may call into the pool: here it cancels its job,
 * which then ends cancelled, after the report. */
START_TEST(progress_callback_may_cancel_its_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    cancel_on_progress = 1;
    uint64_t id = submit_json("{\"op\": \"progress\", \"values\": [1], "
                              "\"after\": 30}", &with_progress);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(events_of(id), "progress 1 | cancelled \"cancelled\"");
}
END_TEST

/* ... or free the pool: the job then ends "pool freed", after the report. */
START_TEST(progress_callback_may_free_the_pool)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    free_on_progress = 1;
    submit_json("{\"op\": \"progress\", \"values\": [1], \"after\": 30}",
                &with_progress);
    submit_json("{\"op\": \"sleep\", \"s\": 5}", &with_progress);
    wait_outcomes(2, 20);
    ck_assert_ptr_null(H.pool);
    ck_assert_str_eq(events_of(1), "progress 1 | cancelled \"pool freed\"");
    ck_assert_str_eq(events_of(2), "cancelled \"pool freed\"");
}
END_TEST

/* ------------------------------------------------------------------------
 * fp_progress's refusals
 * ------------------------------------------------------------------------ */

/* No job runs in the master, nor during the module's init. */
START_TEST(fp_progress_fails_outside_a_job)
{
    fp_config cfg;

    errno = 0;
    ck_assert_int_eq(fp_progress("\x01", 1), -1);
    ck_assert_int_eq(errno, ESRCH);

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("progress_outside", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "ESRCH");
}
END_TEST

/* What the master would take as a protocol error is refused in the worker
 * (EINVAL, EMSGSIZE), the job goes on, and nothing of it is reported. */
START_TEST(fp_progress_refuses_bad_values_and_the_job_goes_on)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.max_job_bytes = 65536;
    start_pool(&cfg);
    uint64_t id = submit_json("{\"op\": \"progress_bad\", \"bytes\": 100000}",
                              &with_progress);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(events_of(id), "progress \"good\" | "
                     "ok [\"EINVAL\",\"EINVAL\",\"EINVAL\",\"EMSGSIZE\",\"0\"]");
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

static void
count_progress_cb(uint64_t id, const char *value, size_t len, void *arg)
{
    (void)id; (void)value; (void)len;
    ++*(size_t *)arg;
}

/* A thread the handler left behind reports without pause while a thousand
 * jobs begin and end around it: no report may follow its job's result
 * (that would be a protocol error, a crash), so every job ends ok on the
 * one worker.  (Jobs of a millisecond: the thread reports during each.) */
START_TEST(a_reporting_thread_never_outruns_its_job)
{
    enum { N = 1000 };
    fp_config cfg;
    size_t reports = 0;
    fp_job_opts opts = { .timeout = -1, .progress = count_progress_cb,
                         .progress_arg = &reports };

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(wait_job(submit_op("progress_thread", NULL), 20)->kind, FP_OK);
    for (int i = 0; i < N; i++)
        submit_op_num("sleep", "s", 0.001, &opts);
    wait_outcomes(N + 1, 60);
    for (size_t i = 0; i < H.nrecs; i++)
        ck_assert_msg(H.recs[i].kind == FP_OK, "job %llu ended %s",
                      (unsigned long long)H.recs[i].id, fp_kind_name(H.recs[i].kind));
    ck_assert_uint_eq(stats().restarts, 0);
    ck_assert_int_eq(log_count("protocol error"), 0);
    ck_assert_msg(reports >= N, "%zu reports", reports);
}
END_TEST

/* ------------------------------------------------------------------------
 * Protocol errors (an --exec program can send anything)
 * ------------------------------------------------------------------------ */

static void
exec_pool(void)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exec_worker_argv("tag");
    start_pool(&cfg);
}

START_TEST(progress_for_another_job_is_a_protocol_error)
{
    exec_pool();
    uint64_t id = submit_json("\"progress wrong id\"", &with_progress);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    ck_assert_int_eq(log_count("protocol error: progress for job 1001, which it is "
                               "not running"), 1);
    ck_assert_str_eq(events_of(id), "crashed \"protocol error\"");
}
END_TEST

START_TEST(progress_larger_than_the_frame_limit_is_a_protocol_error)
{
    exec_pool();
    uint64_t id = submit_json("\"progress huge\"", &with_progress);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    ck_assert_int_eq(log_count("protocol error: frame too large"), 1);
}
END_TEST

static int
idle_progress_logged(void)
{
    return log_count("protocol error: progress for job 1, which it is not running") == 1;
}

/* Reported after its result, while idle: the job keeps its outcome, the
 * worker is killed and replaced, and the next job runs. */
START_TEST(progress_while_idle_is_a_protocol_error)
{
    exec_pool();
    uint64_t id = submit_json("\"progress after\"", &with_progress);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    run_until(idle_progress_logged, 20, "the protocol error logged");
    ck_assert_int_eq(wait_job(submit_json("\"next\"", NULL), 20)->kind, FP_OK);
    ck_assert_uint_eq(stats().restarts, 1);
    ck_assert_str_eq(events_of(id), "ok null");
}
END_TEST

/* ------------------------------------------------------------------------
 * Heartbeats
 * ------------------------------------------------------------------------ */

START_TEST(heartbeat_timeout_kills_a_silent_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.heartbeat_timeout = 0.5;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op_num("sleep", "s", 30, NULL), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "no heartbeat for 0.5 s");
    fp_stats st = stats();
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_int_eq(log_count("sent no heartbeat for 0.5s; killing worker"), 1);
    /* The worker was replaced: the next job runs. */
    ck_assert_int_eq(wait_job(submit_int(7), 20)->kind, FP_OK);
}
END_TEST

/* Every 100 ms for 1.5 s, three times the heartbeat timeout: ok. */
START_TEST(heartbeat_spares_a_job_that_reports_progress)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.heartbeat_timeout = 0.5;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_json("{\"op\": \"progress\", \"n\": 15, "
                                               "\"every\": 0.1}", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert(r->is_int);
    ck_assert_int_eq(r->ival, 15);
    ck_assert_uint_eq(stats().timed_out, 0);
}
END_TEST

/* Heartbeats do not lift the job's own timeout. */
START_TEST(heartbeat_leaves_the_job_timeout_in_force)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.8 };

    base_config(&cfg, 1);
    cfg.heartbeat_timeout = 0.5;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_json("{\"op\": \"progress\", \"n\": 100, "
                                               "\"every\": 0.1}", &opts), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.8s");
}
END_TEST

START_TEST(heartbeat_timeout_must_be_a_number_of_seconds)
{
    fp_config cfg;
    char err[256];

    base_config(&cfg, 1);
    cfg.heartbeat_timeout = -1;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_str_eq(err, "heartbeat timeout -1: want 0 (none) or a number of "
                          "seconds up to 1e9");
}
END_TEST

/* ------------------------------------------------------------------------
 * The bound on reports waiting for a callback
 * ------------------------------------------------------------------------ */

/* Past FP_PROGRESS_PENDING bytes waiting, the older values go and the
 * latest stays; a single value larger than that is kept alone. */
START_TEST(pending_progress_keeps_the_latest_within_its_bound)
{
    static struct fp_job_cache cache;
    struct fp_job *job = fp_job_alloc(&cache, 1);
    enum { V = 1000 };
    char value[V + 3];
    size_t fit = FP_PROGRESS_PENDING / (V + 3);

    ck_assert_ptr_nonnull(job);
    value[0] = (char)0xc5;                      /* bin 16 of V bytes */
    value[1] = (char)(V >> 8);
    value[2] = (char)(V & 0xff);
    memset(value + 3, 'v', V);
    for (size_t i = 0; i < fit; i++)
        ck_assert_int_eq(fp_job_progress_add(job, value, sizeof(value)), 0);
    ck_assert_uint_eq(job->progress->nvalues, fit);
    ck_assert_int_eq(fp_job_progress_add(job, value, sizeof(value)), 1);
    ck_assert_uint_eq(job->progress->nvalues, 1);
    ck_assert_uint_eq(job->progress->dropped, fit);
    ck_assert_uint_eq(job->progress->values.len, sizeof(value));

    size_t big = FP_PROGRESS_PENDING + 10;
    char *huge = calloc(1, big);
    ck_assert_ptr_nonnull(huge);
    ck_assert_int_eq(fp_job_progress_add(job, huge, big), 1);
    ck_assert_uint_eq(job->progress->values.len, big);
    ck_assert_int_eq(fp_job_progress_add(job, value, sizeof(value)), 1);
    ck_assert_uint_eq(job->progress->values.len, sizeof(value));
    free(huge);
    fp_job_release(&cache, job);
    fp_job_cache_free(&cache);
}
END_TEST

static Suite *
pool_progress_suite(void)
{
    Suite *s = suite_create("pool_progress");
    TCase *tc;

    tc = ph_tcase("progress");
    tcase_add_test(tc, module_progress_reaches_the_callback_in_order_before_the_outcome);
    tcase_add_test(tc, exec_worker_progress_reaches_the_callback_in_order_before_the_outcome);
    tcase_add_test(tc, progress_goes_only_to_jobs_that_asked_for_it);
    tcase_add_test(tc, batch_progress_names_each_job);
    tcase_add_test(tc, progress_callback_may_cancel_its_job);
    tcase_add_test(tc, progress_callback_may_free_the_pool);
    tcase_add_test(tc, fp_progress_fails_outside_a_job);
    tcase_add_test(tc, fp_progress_refuses_bad_values_and_the_job_goes_on);
    tcase_add_test(tc, pending_progress_keeps_the_latest_within_its_bound);
    tcase_add_test(tc, a_reporting_thread_never_outruns_its_job);
    suite_add_tcase(s, tc);

    tc = ph_tcase("protocol errors");
    tcase_add_test(tc, progress_for_another_job_is_a_protocol_error);
    tcase_add_test(tc, progress_larger_than_the_frame_limit_is_a_protocol_error);
    tcase_add_test(tc, progress_while_idle_is_a_protocol_error);
    suite_add_tcase(s, tc);

    tc = ph_tcase("heartbeats");
    tcase_add_test(tc, heartbeat_timeout_kills_a_silent_job);
    tcase_add_test(tc, heartbeat_spares_a_job_that_reports_progress);
    tcase_add_test(tc, heartbeat_leaves_the_job_timeout_in_force);
    tcase_add_test(tc, heartbeat_timeout_must_be_a_number_of_seconds);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_progress_suite());
}
