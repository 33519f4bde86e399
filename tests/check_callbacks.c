/*
 * check_callbacks.c — a pool's callbacks may do anything the API offers.
 *
 * Every `done` and drain callback runs from one place (the completion list,
 * once per loop iteration), never in the middle of a change to the pool, so
 * a callback may submit, cancel, drain or free the pool, and fp_pool_free
 * may run callbacks that resubmit.  These tests are meant for the ASan build
 * as much as the plain one: each would touch freed memory or loop forever
 * if a callback ran from inside a mutation.
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "forkpool.h"
#include "daemon/builtin.h"

#define MAXJOBS 2048

static struct {
    struct ev_loop *loop;
    fp_pool        *pool;
    unsigned        outcomes[MAXJOBS];  /* per id */
    fp_kind         kind[MAXJOBS];
    unsigned        total;
    unsigned        want;           /* break the loop at this many */
    unsigned        chain_left;     /* resubmit from done while > 0 */
    int             free_at;        /* free the pool at this outcome (0: no) */
    int             resubmits_refused;
    int             drained, drained_cut;
    uint64_t        cancel_in_done; /* cancel this id from a done */
    int             cancel_said;
} T;

static void quiet(int level, const char *msg, void *arg) { (void)level; (void)msg; (void)arg; }

static void done_cb(const fp_outcome *o, void *arg);

static uint64_t
submit(void)
{
    uint64_t id = 0;
    const char *why = NULL;

    if (fp_pool_submit(T.pool, "\x2a", 1, NULL, done_cb, NULL, &id, &why) < 0) {
        T.resubmits_refused++;
        ck_assert_str_eq(why, "draining");
        return 0;
    }
    return id;
}

static void
done_cb(const fp_outcome *o, void *arg)
{
    (void)arg;
    ck_assert_uint_lt(o->id, MAXJOBS);
    T.outcomes[o->id]++;
    T.kind[o->id] = o->kind;
    T.total++;
    if (T.chain_left > 0) {
        T.chain_left--;
        submit();
    }
    if (T.cancel_in_done != 0) {
        T.cancel_said = fp_pool_cancel(T.pool, T.cancel_in_done);
        T.cancel_in_done = 0;
    }
    if (T.free_at > 0 && T.total == (unsigned)T.free_at) {
        fp_pool_free(T.pool);
        T.pool = NULL;
    }
    if (T.want > 0 && T.total >= T.want)
        ev_break(T.loop, EVBREAK_ONE);
}

static void
drained_cb(fp_pool *pool, int cut_off, void *arg)
{
    (void)arg;
    T.drained++;
    T.drained_cut = cut_off;
    fp_pool_free(pool);             /* allowed from here too */
    T.pool = NULL;
    ev_break(T.loop, EVBREAK_ONE);
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    ck_abort_msg("deadline passed with %u outcomes", T.total);
}

static void
create(unsigned workers, unsigned prefetch)
{
    fp_config cfg;
    char err[256];

    memset(&T, 0, sizeof(T));
    signal(SIGPIPE, SIG_IGN);
    T.loop = ev_default_loop(0);
    fp_config_init(&cfg);
    cfg.workers = workers;
    cfg.prefetch = prefetch;
    cfg.module = &fp_builtin_echo;
    cfg.log = quiet;
    T.pool = fp_pool_new(T.loop, &cfg, err, sizeof(err));
    ck_assert_msg(T.pool != NULL, "%s", err);
}

static void
start(unsigned workers, unsigned prefetch)
{
    create(workers, prefetch);
    ck_assert_int_eq(fp_pool_start(T.pool), 0);
}

/* Run the loop until the callbacks break it, within `secs`. */
static void
run(double secs)
{
    ev_timer deadline;

    ev_timer_init(&deadline, deadline_cb, secs, 0.);
    ev_timer_start(T.loop, &deadline);
    ev_run(T.loop, 0);
    ev_timer_stop(T.loop, &deadline);
}

static void
assert_each_once(uint64_t first, uint64_t last)
{
    for (uint64_t id = first; id <= last; id++)
        ck_assert_msg(T.outcomes[id] == 1, "job %llu: %u outcomes",
                      (unsigned long long)id, T.outcomes[id]);
}

/* fp_pool_free cancels what is pending and calls back from inside: a
 * callback that resubmits is refused ("draining"), none is lost or loops. */
START_TEST(resubmit_from_done_during_free_is_refused)
{
    start(1, 4);
    for (int i = 0; i < 100; i++)
        submit();
    T.chain_left = 1000;            /* every callback tries again */
    fp_pool_free(T.pool);
    T.pool = NULL;
    ck_assert_uint_eq(T.total, 100);
    ck_assert_int_eq(T.resubmits_refused, 100);
    assert_each_once(1, 100);
    for (uint64_t id = 1; id <= 100; id++)
        ck_assert_int_eq(T.kind[id], FP_CANCELLED);
}
END_TEST

/* Freeing the pool from inside a done callback: the callbacks still due get
 * their outcome once, the loop stops turning for the pool, nothing is
 * touched after the free. */
START_TEST(free_from_inside_a_done_callback)
{
    start(2, 8);
    for (int i = 0; i < 200; i++)
        submit();
    T.free_at = 50;
    T.want = 200;
    run(20);
    ck_assert_ptr_null(T.pool);
    ck_assert_uint_eq(T.total, 200);
    assert_each_once(1, 200);
    /* The loop has nothing of the pool's left: it returns at once. */
    ck_assert_int_eq(ev_run(T.loop, EVRUN_NOWAIT), 0);
}
END_TEST

/* Each outcome submits the next job: with one worker, a long chain runs to
 * its end, one job at a time. */
START_TEST(chain_of_resubmits_with_one_worker)
{
    start(1, 128);
    submit();
    T.chain_left = 999;
    T.want = 1000;
    run(30);
    ck_assert_uint_eq(T.total, 1000);
    assert_each_once(1, 1000);
    fp_pool_free(T.pool);
    ck_assert_uint_eq(T.total, 1000);
}
END_TEST

/* Callbacks never run from inside a call into the pool. */
START_TEST(no_callback_from_inside_submit_or_cancel)
{
    start(1, 1);
    uint64_t a = submit(), b = submit(), c = submit();
    ck_assert_int_eq(fp_pool_cancel(T.pool, c), 1);
    ck_assert_uint_eq(T.total, 0);
    T.want = 3;
    run(20);
    ck_assert_int_eq(T.kind[a], FP_OK);
    ck_assert_int_eq(T.kind[b], FP_OK);
    ck_assert_int_eq(T.kind[c], FP_CANCELLED);
    assert_each_once(a, c);
    fp_pool_free(T.pool);
}
END_TEST

/* A done callback may cancel another job, queued or sent ahead. */
START_TEST(cancel_from_inside_a_done_callback)
{
    start(1, 1);
    for (int i = 0; i < 10; i++)
        submit();
    T.cancel_in_done = 10;
    T.want = 10;
    run(20);
    ck_assert_int_eq(T.cancel_said, 1);
    ck_assert_int_eq(T.kind[10], FP_CANCELLED);
    assert_each_once(1, 10);
    fp_pool_free(T.pool);
}
END_TEST

/* The drain notice comes after the last outcome, from the same place, and
 * may free the pool. */
START_TEST(free_from_the_drained_callback)
{
    start(2, 16);
    for (int i = 0; i < 300; i++)
        submit();
    fp_pool_drain(T.pool, 0, drained_cb, NULL);
    run(20);
    ck_assert_int_eq(T.drained, 1);
    ck_assert_int_eq(T.drained_cut, 0);
    ck_assert_uint_eq(T.total, 300);
    assert_each_once(1, 300);
}
END_TEST

/* Before fp_pool_start: a cancelled job's outcome and a drain's notice
 * still arrive, from the loop. */
START_TEST(outcomes_before_start_arrive_from_the_loop)
{
    create(1, 1);
    uint64_t a = submit(), b = submit();
    ck_assert_int_eq(fp_pool_cancel(T.pool, a), 1);
    ck_assert_uint_eq(T.total, 0);
    T.want = 1;
    run(5);
    ck_assert_int_eq(T.kind[a], FP_CANCELLED);
    ck_assert_uint_eq(T.outcomes[b], 0);    /* waits for a worker */
    fp_pool_drain(T.pool, 1, drained_cb, NULL);
    run(5);
    ck_assert_int_eq(T.drained, 1);
    ck_assert_int_eq(T.kind[b], FP_CANCELLED);  /* nothing ever ran it */
    assert_each_once(a, b);
}
END_TEST

/* A drain before fp_pool_start waits for the start: the jobs it accepted
 * run, then the notice comes, not cut off. */
START_TEST(drain_before_start_runs_what_was_accepted)
{
    create(1, 1);
    uint64_t a = submit(), b = submit();
    fp_pool_drain(T.pool, 0, drained_cb, NULL);
    ck_assert_int_eq(fp_pool_start(T.pool), 0);
    ck_assert_int_eq(fp_pool_start(T.pool), -1);        /* once */
    run(20);
    ck_assert_int_eq(T.drained, 1);
    ck_assert_int_eq(T.drained_cut, 0);
    ck_assert_int_eq(T.kind[a], FP_OK);
    ck_assert_int_eq(T.kind[b], FP_OK);
    assert_each_once(a, b);
}
END_TEST

static Suite *
callbacks_suite(void)
{
    Suite *s = suite_create("callbacks");
    TCase *tc = tcase_create("reentry");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, resubmit_from_done_during_free_is_refused);
    tcase_add_test(tc, free_from_inside_a_done_callback);
    tcase_add_test(tc, chain_of_resubmits_with_one_worker);
    tcase_add_test(tc, no_callback_from_inside_submit_or_cancel);
    tcase_add_test(tc, cancel_from_inside_a_done_callback);
    tcase_add_test(tc, free_from_the_drained_callback);
    tcase_add_test(tc, outcomes_before_start_arrive_from_the_loop);
    tcase_add_test(tc, drain_before_start_runs_what_was_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(callbacks_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
