/*
 * check_pool_groups.c — job groups (forkpool.h's fp_group): the queue's
 * parking of a held group's jobs on its own (src/engine/queue.c, exact),
 * then in an embedded pool: a held group's jobs wait while the others run,
 * start in their order once released, can be cancelled unstarted, and are
 * taken back from a busy worker's window when the hold comes.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pool_int.h"
#include "pool_harness.h"

/* ========================================================================
 * The queue on its own
 * ======================================================================== */

static struct fp_job jobs[32];

static void
group_init(struct fp_group *g)
{
    memset(g, 0, sizeof(*g));
    TAILQ_INIT(&g->parked);
}

/* Job `id` of group g (NULL: none) and key k (NULL: none), pushed. */
static void
push(struct fp_queue *q, uint64_t id, struct fp_group *g, const char *k)
{
    struct fp_job *job = &jobs[id];

    memset(job, 0, sizeof(*job));
    job->id = id;
    job->group = g;
    job->key = k != NULL ? fp_queue_key_hold(q, k) : NULL;
    fp_queue_push(q, job);
}

/* The id of the next job that may start (no buckets in play), or 0. */
static uint64_t
next_id(struct fp_queue *q)
{
    double wait;
    struct fp_job *job = fp_queue_next(q, 0, &wait);

    return job != NULL ? job->id : 0;
}

START_TEST(a_held_group_is_passed_over_and_rejoins_in_its_order)
{
    struct fp_queue q;
    struct fp_group a;
    double wait;

    fp_queue_init(&q, 1);
    group_init(&a);
    push(&q, 1, &a, NULL);
    push(&q, 2, NULL, NULL);
    push(&q, 3, &a, NULL);
    push(&q, 4, NULL, NULL);
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 2);
    ck_assert_uint_eq(next_id(&q), 2);
    ck_assert_uint_eq(next_id(&q), 4);
    ck_assert_ptr_null(fp_queue_next(&q, 0, &wait));
    ck_assert(wait < 0);                        /* nothing will, until released */
    ck_assert_uint_eq(q.n, 2);                  /* still waiting: counted */
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 0);
    ck_assert_ptr_eq(fp_queue_find(&q, 3), &jobs[3]);   /* parked: found */

    push(&q, 5, NULL, NULL);
    fp_queue_release(&q, &a);
    push(&q, 6, NULL, NULL);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 4);
    ck_assert_uint_eq(next_id(&q), 1);
    ck_assert_uint_eq(next_id(&q), 3);
    ck_assert_uint_eq(next_id(&q), 5);
    ck_assert_uint_eq(next_id(&q), 6);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(q.nheld, 0);
    fp_queue_free(&q);
}
END_TEST

START_TEST(held_jobs_of_a_throttled_key_keep_the_key_counts_right)
{
    struct fp_queue q;
    struct fp_group a;
    fp_limit_info row;

    fp_queue_init(&q, 1);
    group_init(&a);
    ck_assert_int_eq(fp_queue_limit(&q, "k", 1000, 1000, 0), 0);
    push(&q, 1, &a, "k");
    push(&q, 2, NULL, "k");
    push(&q, 3, &a, "k");
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(next_id(&q), 2);          /* 1 parked on the way */
    fp_queue_limits(&q, 0, &row, 1);
    ck_assert_uint_eq(row.waiting, 1);          /* 3, still in the lane */
    ck_assert_uint_eq(next_id(&q), 0);          /* only held jobs left */
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 0);
    /* The key's bucket goes while they are parked: they rejoin the common
     * lane, in order. */
    ck_assert_int_eq(fp_queue_unlimit(&q, "k"), 1);
    push(&q, 4, NULL, NULL);
    fp_queue_release(&q, &a);
    ck_assert_uint_eq(next_id(&q), 1);
    ck_assert_uint_eq(next_id(&q), 3);
    ck_assert_uint_eq(next_id(&q), 4);
    fp_queue_key_drop(&q, jobs[1].key);
    fp_queue_key_drop(&q, jobs[2].key);
    fp_queue_key_drop(&q, jobs[3].key);
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

/* A held group's jobs never count as ready, beside a throttled key whose
 * tokens bound its own (the common lane's held jobs are counted out
 * exactly, not merely capped by the jobs not held); the count stops at
 * `enough`. */
START_TEST(ready_counts_no_held_job_and_stops_at_enough)
{
    struct fp_queue q;
    struct fp_group a;

    fp_queue_init(&q, 1);
    group_init(&a);
    ck_assert_int_eq(fp_queue_limit(&q, "k", 1, 2, 0), 0);    /* 2 tokens */
    for (uint64_t id = 1; id <= 5; id++)
        push(&q, id, &a, NULL);
    for (uint64_t id = 6; id <= 9; id++)
        push(&q, id, NULL, "k");
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 7);
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 2);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, 1), 1);
    ck_assert_uint_eq(next_id(&q), 6);          /* parks 1-5 on the way */
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 1);
    fp_queue_release(&q, &a);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 6);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, 3), 3);
    for (uint64_t id = 1; id <= 5; id++)
        ck_assert_uint_eq(next_id(&q), id);
    ck_assert_uint_eq(next_id(&q), 7);
    ck_assert_uint_eq(next_id(&q), 0);          /* k is out of tokens */
    fp_queue_remove(&q, &jobs[8]);
    fp_queue_remove(&q, &jobs[9]);
    for (uint64_t id = 6; id <= 9; id++)
        fp_queue_key_drop(&q, jobs[id].key);
    fp_queue_unlimit(&q, "k");
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

/* A key's lane moves in the heaps as its held jobs are parked and come
 * back: picking stays in id order across keys, and a cancelled job is
 * found wherever it waits. */
START_TEST(parking_keeps_the_lanes_in_order)
{
    struct fp_queue q;
    struct fp_group a;

    fp_queue_init(&q, 1);
    group_init(&a);
    ck_assert_int_eq(fp_queue_limit(&q, "k", 1000, 1000, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "m", 1000, 1000, 0), 0);
    push(&q, 1, &a, "k");
    push(&q, 2, &a, "k");
    push(&q, 3, NULL, "m");
    push(&q, 4, NULL, "k");
    push(&q, 5, &a, "m");
    push(&q, 6, NULL, "m");
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(next_id(&q), 3);          /* parks 1 and 2 */
    ck_assert_uint_eq(next_id(&q), 4);
    ck_assert_ptr_eq(fp_queue_find(&q, 2), &jobs[2]);
    ck_assert_ptr_eq(fp_queue_find(&q, 5), &jobs[5]);   /* still in m's lane */
    fp_queue_remove(&q, &jobs[2]);              /* cancelled while parked */
    fp_queue_release(&q, &a);
    ck_assert_uint_eq(next_id(&q), 1);          /* back at k's head */
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(next_id(&q), 6);          /* parks 5 */
    fp_queue_remove(&q, &jobs[5]);              /* expired while parked */
    fp_queue_release(&q, &a);
    ck_assert_uint_eq(next_id(&q), 0);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(q.due.n + q.ready.n, 0);  /* no lane left in a heap */
    for (uint64_t id = 1; id <= 6; id++)
        fp_queue_key_drop(&q, jobs[id].key);
    fp_queue_unlimit(&q, "k");
    fp_queue_unlimit(&q, "m");
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

START_TEST(taking_a_group_removes_its_jobs_parked_or_not)
{
    struct fp_queue q;
    struct fp_group a, b;
    struct fp_jobq out;

    fp_queue_init(&q, 1);
    group_init(&a);
    group_init(&b);
    ck_assert_int_eq(fp_queue_limit(&q, "k", 1000, 1000, 0), 0);
    push(&q, 1, &a, NULL);
    push(&q, 2, &b, NULL);
    push(&q, 3, &a, "k");
    push(&q, 4, &a, NULL);
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(next_id(&q), 2);          /* parks 1 and 3 */
    TAILQ_INIT(&out);
    ck_assert_uint_eq(fp_queue_take_group(&q, &a, &out), 3);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(q.nheld, 0);
    ck_assert_uint_eq(a.nqueued, 0);
    ck_assert(TAILQ_EMPTY(&a.parked));
    fp_queue_release(&q, &a);
    ck_assert_ptr_null(fp_queue_pop_any(&q));
    fp_queue_key_drop(&q, jobs[3].key);
    fp_queue_free(&q);
}
END_TEST

START_TEST(pop_any_and_remove_reach_parked_jobs)
{
    struct fp_queue q;
    struct fp_group a;

    fp_queue_init(&q, 1);
    group_init(&a);
    push(&q, 1, &a, NULL);
    push(&q, 2, &a, NULL);
    push(&q, 3, NULL, NULL);
    fp_queue_hold(&q, &a);
    ck_assert_uint_eq(next_id(&q), 3);          /* parks 1 and 2 */
    fp_queue_remove(&q, &jobs[2]);              /* e.g. cancelled */
    ck_assert_int_eq(jobs[2].parked, 0);
    ck_assert_ptr_eq(fp_queue_pop_any(&q), &jobs[1]);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(q.nheld, 0);
    fp_queue_release(&q, &a);
    fp_queue_free(&q);
}
END_TEST

/* ========================================================================
 * In a pool
 * ======================================================================== */

static uint64_t
submit_in(int64_t v, fp_group *g)
{
    fp_job_opts o = { .timeout = -1, .group = g };
    char buf[9];

    buf[0] = (char)0xd3;                        /* int 64 */
    for (int i = 0; i < 8; i++)
        buf[1 + i] = (char)((uint64_t)v >> (56 - 8 * i));
    return submit_bytes(buf, sizeof(buf), &o);
}

/* The arrival position of job id's outcome among H.recs (asserted there). */
static size_t
pos_of(uint64_t id)
{
    for (size_t i = 0; i < H.nrecs; i++)
        if (H.recs[i].id == id)
            return i;
    ck_abort_msg("no outcome for job %llu", (unsigned long long)id);
    return 0;
}

START_TEST(a_held_group_waits_while_other_jobs_run_then_goes_first)
{
    fp_config cfg;
    uint64_t a[3], b[3], later;

    base_config(&cfg, 1);
    start_pool(&cfg);
    fp_group *g = fp_group_new(H.pool);
    ck_assert_ptr_nonnull(g);
    fp_group_hold(g, 1);
    for (int i = 0; i < 3; i++) {
        a[i] = submit_in(i, g);
        b[i] = submit_in(10 + i, NULL);
    }
    wait_outcomes(3, 20);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(rec_for(b[i]));
    run_for(0.2);
    ck_assert_uint_eq(H.nrecs, 3);
    ck_assert_uint_eq(stats().queued, 3);       /* waiting, not lost */

    fp_group_hold(g, 0);
    later = submit_in(99, NULL);
    wait_outcomes(7, 20);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rec_for(a[i])->kind, FP_OK);
        ck_assert_uint_eq(pos_of(a[i]), 3 + (size_t)i);     /* in order */
    }
    ck_assert_uint_eq(pos_of(later), 6);        /* after the older ones */
    fp_group_free(g);
}
END_TEST

START_TEST(cancel_queued_ends_only_the_unstarted_jobs)
{
    fp_config cfg;
    uint64_t running, q1, q2, other;

    base_config(&cfg, 1);
    start_pool(&cfg);
    fp_group *g = fp_group_new(H.pool);
    fp_job_opts o = { .timeout = -1, .group = g };
    running = submit_op_num("sleep", "s", 0.3, &o);
    run_until(one_busy, 20, "the first job running");
    q1 = submit_in(1, g);
    other = submit_in(2, NULL);
    q2 = submit_in(3, g);
    fp_group_hold(g, 1);
    ck_assert_uint_eq(fp_group_cancel_queued(g, "client gone"), 2);
    wait_outcomes(4, 20);
    ck_assert_int_eq(rec_for(q1)->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(rec_for(q1)), "client gone");
    ck_assert_int_eq(rec_for(q2)->kind, FP_CANCELLED);
    ck_assert_int_eq(rec_for(running)->kind, FP_OK);
    ck_assert_str_eq(detail(rec_for(running)), "slept");
    ck_assert_int_eq(rec_for(other)->kind, FP_OK);
    ck_assert_uint_eq(count_for(q1), 1);
    fp_group_free(g);
}
END_TEST

static int
one_idle(void)
{
    return stats().idle == 1;
}

START_TEST(a_hold_takes_back_jobs_sent_ahead_to_a_busy_worker)
{
    fp_config cfg;
    uint64_t head, a[3];

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;         /* send ahead whenever there is room */
    start_pool(&cfg);
    fp_group *g = fp_group_new(H.pool);
    run_until(one_idle, 20, "the worker ready");
    head = submit_op_num("sleep", "s", 0.3, NULL);
    for (int i = 0; i < 3; i++)
        a[i] = submit_in(i, g);
    ck_assert_uint_eq(stats().queued, 0);       /* all sent to the worker */
    fp_group_hold(g, 1);
    wait_job(head, 20);
    run_for(0.2);
    ck_assert_uint_eq(H.nrecs, 1);              /* none of them started */
    ck_assert_uint_eq(stats().queued, 3);
    fp_group_hold(g, 0);
    wait_outcomes(4, 20);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rec_for(a[i])->kind, FP_OK);
        ck_assert_uint_eq(pos_of(a[i]), 1 + (size_t)i);
        ck_assert_uint_eq(count_for(a[i]), 1);
    }
    fp_group_free(g);
}
END_TEST

START_TEST(a_group_freed_with_jobs_pending_lets_them_finish)
{
    fp_config cfg;
    uint64_t a[2];

    base_config(&cfg, 1);
    start_pool(&cfg);
    fp_group *g = fp_group_new(H.pool);
    fp_group_hold(g, 1);
    a[0] = submit_in(1, g);
    a[1] = submit_in(2, g);
    fp_group_free(g);                           /* released: they run */
    wait_outcomes(2, 20);
    ck_assert_int_eq(rec_for(a[0])->kind, FP_OK);
    ck_assert_int_eq(rec_for(a[1])->kind, FP_OK);
}
END_TEST

START_TEST(a_group_may_outlive_its_pool)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    fp_group *g = fp_group_new(H.pool), *other = fp_group_new(H.pool);
    fp_group_hold(g, 1);
    submit_in(1, g);
    fp_pool_free(H.pool);       /* its job ends cancelled ("pool freed") */
    H.pool = NULL;
    ck_assert_uint_eq(H.nrecs, 1);
    ck_assert_int_eq(H.recs[0].kind, FP_CANCELLED);
    fp_group_hold(g, 0);        /* harmless once the pool is gone */
    ck_assert_uint_eq(fp_group_cancel_queued(g, NULL), 0);
    fp_group_free(g);
    fp_group_free(other);
}
END_TEST

START_TEST(a_group_of_another_pool_is_refused)
{
    fp_config cfg;
    char err[256];
    const char *why = NULL;

    base_config(&cfg, 1);
    start_pool(&cfg);
    fp_pool *second = fp_pool_new(H.loop, &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(second);
    fp_group *g = fp_group_new(second);
    fp_job_opts o = { .timeout = -1, .group = g };
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x01", 1, &o, never_cb, NULL, NULL,
                                    &why), -1);
    ck_assert_str_eq(why, "bad group");
    fp_group_free(g);
    fp_pool_free(second);
}
END_TEST

static Suite *
pool_groups_suite(void)
{
    Suite *s = suite_create("pool_groups");
    TCase *tq = tcase_create("queue");
    TCase *tc = ph_tcase("pool");

    tcase_add_test(tq, a_held_group_is_passed_over_and_rejoins_in_its_order);
    tcase_add_test(tq, held_jobs_of_a_throttled_key_keep_the_key_counts_right);
    tcase_add_test(tq, ready_counts_no_held_job_and_stops_at_enough);
    tcase_add_test(tq, parking_keeps_the_lanes_in_order);
    tcase_add_test(tq, taking_a_group_removes_its_jobs_parked_or_not);
    tcase_add_test(tq, pop_any_and_remove_reach_parked_jobs);
    suite_add_tcase(s, tq);
    tcase_add_test(tc, a_held_group_waits_while_other_jobs_run_then_goes_first);
    tcase_add_test(tc, cancel_queued_ends_only_the_unstarted_jobs);
    tcase_add_test(tc, a_hold_takes_back_jobs_sent_ahead_to_a_busy_worker);
    tcase_add_test(tc, a_group_freed_with_jobs_pending_lets_them_finish);
    tcase_add_test(tc, a_group_may_outlive_its_pool);
    tcase_add_test(tc, a_group_of_another_pool_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_groups_suite());
}
