/*
 * check_pool_events.c — an embedded pool's event stream (fp_pool_events),
 * poison payloads (poison_after) and the receipt histograms, through the
 * library API (pool_harness.h).
 *
 * Events are recorded as text ("worker spawned", "job 3 crashed", ...)
 * with their pids beside, so a test states the whole expected sequence.
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_harness.h"

#define MAX_EVENTS 256

static struct {
    char   text[MAX_EVENTS][96];
    pid_t  pid[MAX_EVENTS];
    size_t n;
    int    submit_on_ready;     /* the listener submits a job at "ready" */
    int    free_at_job;         /* the listener frees the pool at a job's event */
} E;

static void
event_cb(const fp_event *ev, void *arg)
{
    (void)arg;
    ck_assert_uint_lt(E.n, MAX_EVENTS);
    char *t = E.text[E.n];
    switch (ev->type) {
    case FP_EVENT_JOB:
        snprintf(t, sizeof(E.text[0]), "job %llu %s attempts %u",
                 (unsigned long long)ev->outcome->id,
                 fp_kind_name(ev->outcome->kind), ev->outcome->attempts);
        if (E.free_at_job) {
            fp_pool_free(H.pool);   /* takes effect as the callback returns */
            H.pool = NULL;
        }
        break;
    case FP_EVENT_WORKER:
        snprintf(t, sizeof(E.text[0]), "worker %s%s%s", ev->what,
                 ev->detail != NULL ? " " : "", ev->detail != NULL ? ev->detail : "");
        if (E.submit_on_ready && strcmp(ev->what, "ready") == 0) {
            E.submit_on_ready = 0;
            submit_int(42);         /* from inside the listener */
        }
        break;
    case FP_EVENT_POOL:
        snprintf(t, sizeof(E.text[0]), "pool %s %u", ev->what, ev->workers);
        break;
    }
    E.pid[E.n++] = ev->pid;
}

static size_t want_events;
static int have_events(void) { return E.n >= want_events; }

static void
wait_events(size_t n)
{
    want_events = n;
    run_until(have_events, 20, "events");
}

/* Event i is `text` (of worker `pid`, unless 0). */
static void
expect(size_t i, const char *text, pid_t pid)
{
    ck_assert_msg(i < E.n, "event %zu (%s) missing", i, text);
    ck_assert_str_eq(E.text[i], text);
    if (pid != 0)
        ck_assert_int_eq(E.pid[i], pid);
}

static void
new_pool(fp_config *cfg)
{
    char err[256] = "";

    H.pool = fp_pool_new(H.loop, cfg, err, sizeof(err));
    ck_assert_msg(H.pool != NULL, "fp_pool_new: %s", err);
}

START_TEST(events_come_in_the_order_things_happened)
{
    fp_config cfg;

    base_config(&cfg, 1);
    new_pool(&cfg);
    fp_pool_events(H.pool, event_cb, NULL);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
    wait_events(2);
    expect(0, "worker spawned", 0);
    expect(1, "worker ready", E.pid[0]);
    pid_t first = E.pid[0];

    uint64_t ok = submit_int(7), crash = submit_op("crash", NULL);
    wait_events(7);
    /* The death, then the outcome it caused, then the replacement. */
    char job[96];
    snprintf(job, sizeof(job), "job %llu ok attempts 1", (unsigned long long)ok);
    expect(2, job, 0);
    expect(3, "worker exited killed by SIGSEGV", first);
    snprintf(job, sizeof(job), "job %llu crashed attempts 1", (unsigned long long)crash);
    expect(4, job, 0);
    expect(5, "worker spawned", 0);
    expect(6, "worker ready", E.pid[5]);
    pid_t second = E.pid[5];
    ck_assert_int_ne(second, first);

    ck_assert_int_eq(fp_pool_scale(H.pool, 2), 0);
    wait_events(10);
    expect(7, "pool scale 2", 0);
    expect(8, "worker spawned", 0);
    expect(9, "worker ready", E.pid[8]);

    /* Scaling down retires the idle worker that came last. */
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), 0);
    wait_events(13);
    expect(10, "pool scale 1", 0);
    expect(11, "worker retired scale", E.pid[8]);
    expect(12, "worker exited exited normally", E.pid[8]);

    fp_pool_drain(H.pool, 0, drained_cb, &H);
    run_until(drained, 20, "drain");
    ck_assert_uint_eq(E.n, 16);
    expect(13, "pool drain 1", 0);
    expect(14, "worker retired drain", second);
    expect(15, "worker exited exited normally", second);
    ck_assert_uint_eq(stats().events_lost, 0);
}
END_TEST

START_TEST(retries_show_each_death_and_one_outcome)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 1 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    worker_pid_by_job();            /* up and running */
    fp_pool_events(H.pool, event_cb, NULL);
    uint64_t id = submit_op("crash", &opts);
    wait_job(id, 20);
    wait_events(5);
    char job[96];
    snprintf(job, sizeof(job), "job %llu crashed attempts 2", (unsigned long long)id);
    expect(0, "worker exited killed by SIGSEGV", 0);
    expect(1, "worker spawned", 0);
    expect(2, "worker ready", E.pid[1]);
    expect(3, "worker exited killed by SIGSEGV", E.pid[1]);
    expect(4, job, 0);
}
END_TEST

START_TEST(without_a_listener_nothing_is_recorded)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    worker_pid_by_job();
    /* A listener set and cleared again: what happened meanwhile is gone,
     * and nothing after reaches it. */
    fp_pool_events(H.pool, event_cb, NULL);
    ck_assert_int_eq(fp_pool_scale(H.pool, 2), 0);
    fp_pool_events(H.pool, NULL, NULL);
    wait_job(submit_op("crash", NULL), 20);
    worker_pid_by_job();
    ck_assert_uint_eq(E.n, 0);
    /* Set again: from now on only. */
    fp_pool_events(H.pool, event_cb, NULL);
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), 0);
    wait_events(1);
    expect(0, "pool scale 1", 0);
}
END_TEST

START_TEST(the_listener_may_call_into_the_pool)
{
    fp_config cfg;

    base_config(&cfg, 1);
    new_pool(&cfg);
    E.submit_on_ready = 1;
    fp_pool_events(H.pool, event_cb, NULL);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
    wait_outcomes(1, 20);
    ck_assert_int_eq(H.recs[0].ival, 42);
    /* Freed from a job's event: its done callback still runs (the job has
     * left the queue), then the pool is gone. */
    E.free_at_job = 1;
    submit_int(43);
    wait_outcomes(2, 20);
    ck_assert_ptr_null(H.pool);
    ck_assert_int_eq(H.recs[1].ival, 43);
}
END_TEST

/* ------------------------------------------------------------------------
 * Poison payloads
 * ------------------------------------------------------------------------ */

/* Submit {"op": "crash"}: -1 with *why if refused, else its id. */
static int64_t
try_crash(const fp_job_opts *opts, const char **why)
{
    uint64_t id = 0;

    if (fp_pool_submit(H.pool, "\x81\xa2op\xa5" "crash", 10, opts, record_cb, &H,
                       &id, why) < 0)
        return -1;
    return (int64_t)id;
}

START_TEST(a_payload_that_crashed_k_workers_is_refused)
{
    fp_config cfg;
    const char *why = NULL;
    int64_t id;

    base_config(&cfg, 1);
    cfg.poison_after = 2;
    start_pool(&cfg);
    ck_assert_int_eq(wait_job((uint64_t)try_crash(NULL, &why), 20)->kind, FP_CRASHED);
    ck_assert_int_ge(id = try_crash(NULL, &why), 1);     /* not before K */
    ck_assert_int_eq(wait_job((uint64_t)id, 20)->kind, FP_CRASHED);
    ck_assert_int_eq(try_crash(NULL, &why), -1);
    ck_assert_str_eq(why, "poison: crashed 2 workers");
    /* A batch with it in is refused whole; other bytes are accepted. */
    fp_job_buf batch[2] = { { "\x01", 1 }, { "\x81\xa2op\xa5" "crash", 10 } };
    uint64_t first;
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, batch, 2, NULL, record_cb, &H,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "poison: crashed 2 workers");
    ck_assert_int_eq(wait_job(submit_int(5), 20)->kind, FP_OK);
    fp_stats st = stats();
    ck_assert_uint_eq(st.poisoned, 1);
    ck_assert_uint_eq(st.poison_rejected, 2);
    ck_assert_int_eq(log_count("has crashed 2 workers: quarantined"), 1);
    ck_assert_int_eq(log_count("59ee1a56c0eda2c35904da2afcb3db0a"), 1);
}
END_TEST

START_TEST(each_crashing_attempt_counts)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 2 };
    const char *why = NULL;

    base_config(&cfg, 1);
    cfg.poison_after = 3;
    start_pool(&cfg);
    const struct rec *r = wait_job((uint64_t)try_crash(&opts, &why), 30);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 3);
    ck_assert_int_eq(try_crash(NULL, &why), -1);
    ck_assert_str_eq(why, "poison: crashed 3 workers");
}
END_TEST

START_TEST(a_worker_killed_for_a_timeout_is_no_poison)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.05 };

    base_config(&cfg, 1);
    cfg.poison_after = 1;
    start_pool(&cfg);
    ck_assert_int_eq(wait_job(submit_op("hang", &opts), 20)->kind, FP_TIMEOUT);
    ck_assert_int_eq(wait_job(submit_op("hang", &opts), 20)->kind, FP_TIMEOUT);
    ck_assert_uint_eq(stats().poisoned, 0);
    ck_assert_uint_eq(stats().timeouts_deadline, 2);
}
END_TEST

START_TEST(timeouts_are_counted_by_cause)
{
    fp_config cfg;
    fp_job_opts deadline = { .timeout = 0.05 }, silent = { .timeout = 0 };

    base_config(&cfg, 1);
    cfg.heartbeat_timeout = 0.1;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("hang", &silent), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "no heartbeat for 0.1 s");
    ck_assert_int_eq(wait_job(submit_op("hang", &deadline), 20)->kind, FP_TIMEOUT);
    fp_stats st = stats();
    ck_assert_uint_eq(st.timed_out, 2);
    ck_assert_uint_eq(st.timeouts_heartbeat, 1);
    ck_assert_uint_eq(st.timeouts_deadline, 1);
}
END_TEST

START_TEST(poison_after_past_its_maximum_is_refused)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    cfg.poison_after = FP_POISON_AFTER_MAX + 1;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_str_eq(err, "poison_after 65536: at most 65535");
}
END_TEST

/* ------------------------------------------------------------------------
 * Receipts
 * ------------------------------------------------------------------------ */

START_TEST(the_receipt_histograms_count_every_job_that_started)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t sleeper = submit_op_num("sleep", "s", 0.3, NULL);
    uint64_t never = submit_int(1);
    ck_assert_int_eq(fp_pool_cancel(H.pool, never), 1);   /* never started */
    submit_int(2);
    submit_op("fail", NULL);
    submit_op("crash", NULL);
    wait_outcomes(5, 20);
    ck_assert_int_eq(rec_for(sleeper)->kind, FP_OK);
    ck_assert_int_eq(rec_for(never)->kind, FP_CANCELLED);
    fp_stats st = stats();
    ck_assert_uint_eq(st.wait_count[FP_LATENCY_BUCKETS - 1], 4);
    ck_assert_uint_eq(st.run_count[FP_LATENCY_BUCKETS - 1], 4);
    for (unsigned i = 1; i < FP_LATENCY_BUCKETS; i++) {
        ck_assert_uint_le(st.wait_count[i - 1], st.wait_count[i]);
        ck_assert_uint_le(st.run_count[i - 1], st.run_count[i]);
    }
    /* ok and error only, as before. */
    ck_assert_uint_eq(st.latency_count[FP_LATENCY_BUCKETS - 1], 3);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("pool events");
    TCase *tc = ph_tcase("events");

    tcase_add_test(tc, events_come_in_the_order_things_happened);
    tcase_add_test(tc, retries_show_each_death_and_one_outcome);
    tcase_add_test(tc, without_a_listener_nothing_is_recorded);
    tcase_add_test(tc, the_listener_may_call_into_the_pool);
    suite_add_tcase(s, tc);
    tc = ph_tcase("poison");
    tcase_add_test(tc, a_payload_that_crashed_k_workers_is_refused);
    tcase_add_test(tc, each_crashing_attempt_counts);
    tcase_add_test(tc, a_worker_killed_for_a_timeout_is_no_poison);
    tcase_add_test(tc, timeouts_are_counted_by_cause);
    tcase_add_test(tc, poison_after_past_its_maximum_is_refused);
    suite_add_tcase(s, tc);
    tc = ph_tcase("receipts");
    tcase_add_test(tc, the_receipt_histograms_count_every_job_that_started);
    suite_add_tcase(s, tc);
    return ph_run_suite(s);
}
