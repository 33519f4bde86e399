/*
 * check_pool_dispatch.c — who gets which job (src/engine/dispatch.c), in an
 * embedded pool: the queue bound counts jobs sent ahead, a job never waits
 * behind a slow one while a worker is idle, and a job taken back from a
 * window runs once.  No timing asserts: only the order of outcomes and the
 * counts.
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <msgpack.h>

#include "engine/pool_int.h"
#include "pool_harness.h"

static int
one_idle(void)
{
    return stats().idle == 1;
}

/* {"op": "sleep", "s": secs} as msgpack. */
static size_t
sleep_job(char *buf, double secs)
{
    char *b = buf;

    *b++ = (char)0x82;
    *b++ = (char)0xa2; memcpy(b, "op", 2); b += 2;
    *b++ = (char)0xa5; memcpy(b, "sleep", 5); b += 5;
    *b++ = (char)0xa1; *b++ = 's';
    *b++ = (char)0xcb;
    uint64_t u;
    memcpy(&u, &secs, 8);
    for (int shift = 56; shift >= 0; shift -= 8)
        *b++ = (char)(u >> shift);
    return (size_t)(b - buf);
}

/* --queue-max counts every job accepted and not started, wherever it
 * waits: whether the dispatcher keeps them (run times unknown) or sends
 * them ahead to the busy worker (prefetch_wait < 0), one worker and a bound
 * of 2 accept exactly 1 running + 2 waiting. */
START_TEST(queue_max_counts_jobs_sent_ahead)
{
    static const double waits[] = { 0 /* judged */, -1 /* blind */ };
    fp_config cfg;
    char job[32];
    size_t len = sleep_job(job, 0.3);
    int accepted = 0, full = 0;

    base_config(&cfg, 1);
    cfg.queue_max = 2;
    cfg.prefetch_wait = waits[_i];
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    for (int i = 0; i < 10; i++) {
        const char *why = NULL;
        if (fp_pool_submit(H.pool, job, len, NULL, record_cb, &H, NULL, &why) == 0)
            accepted++;
        else if (strcmp(why, "queue full") == 0)
            full++;
    }
    ck_assert_int_eq(accepted, 3);
    ck_assert_int_eq(full, 7);
    fp_stats st = stats();
    ck_assert_uint_eq(st.busy, 1);
    if (_i == 1)
        ck_assert_uint_eq(st.queued, 0);    /* both sent ahead */
    else
        ck_assert_uint_eq(st.queued, 2);    /* both kept in the queue */
    wait_outcomes(3, 20);
    for (uint64_t id = 1; id <= 3; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
}
END_TEST

/* Jobs sent ahead to a worker that turns out to run a long job move to the
 * worker that falls idle: every short job ends before the long one, each
 * once (a job taken back and run where it was sent too would answer for a
 * job that worker no longer holds: a protocol error, and the long job would
 * not end ok). */
START_TEST(idle_worker_takes_over_jobs_sent_ahead)
{
    static const double waits[] = { -1 /* blind */, 0 /* judged */ };
    fp_config cfg;
    uint64_t quick[20];

    base_config(&cfg, 2);
    cfg.prefetch_wait = waits[_i];
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    warm_up(4);                 /* run times known: quick */
    size_t before = H.nrecs;
    uint64_t slow = submit_op_num("sleep", "s", 3.0, NULL);
    for (int i = 0; i < 20; i++)
        quick[i] = submit_int(100 + i);
    /* Some of the quick ones went to the slow job's worker behind it. */
    wait_outcomes(before + 21, 30);
    ck_assert_uint_eq(H.nrecs, before + 21);
    ck_assert_uint_eq(H.recs[H.nrecs - 1].id, slow);    /* last of all */
    ck_assert_int_eq(rec_for(slow)->kind, FP_OK);
    for (int i = 0; i < 20; i++) {
        ck_assert_uint_eq(count_for(quick[i]), 1);
        ck_assert_int_eq(rec_for(quick[i])->kind, FP_OK);
        ck_assert_uint_eq(rec_for(quick[i])->attempts, 1);
    }
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A worker stuck in a long job reads nothing: jobs sent ahead to it and
 * taken back leave their frames in its socket, and their claim slots must
 * not be reused before it reads them.  Blind windows refill the stuck
 * worker again and again while thousands of jobs pass through the other
 * one; once released, it must skip every job it gave up.  Each job writes
 * its start into a file: exactly one line per job. */
START_TEST(jobs_taken_back_from_a_stuck_worker_start_once)
{
    enum { BURST = 512, NJOBS = 24 * BURST };
    fp_config cfg;
    char dir[] = "/tmp/fp-lap-XXXXXX", gate[64], count[64];
    char *seen;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(gate, sizeof gate, "%s/gate", dir);
    snprintf(count, sizeof count, "%s/count", dir);
    setenv("TESTMOD_COUNT", count, 1);     /* small jobs: many fit its socket */
    base_config(&cfg, 2);
    cfg.prefetch_wait = -1;         /* blind: the stuck worker's window refills */
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    warm_up(4);
    size_t before = H.nrecs;
    uint64_t stuck = submit_op_str("gate", "path", gate, NULL);
    for (int done = 0; done < NJOBS; done += BURST) {
        for (int k = done; k < done + BURST; k++) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "op", 2);
            msgpack_pack_str_with_body(&pk, "count", 5);
            msgpack_pack_str_with_body(&pk, "n", 1);
            msgpack_pack_uint32(&pk, (uint32_t)k);
            submit_bytes(sb.data, sb.size, NULL);
            msgpack_sbuffer_destroy(&sb);
        }
        wait_outcomes(before + (size_t)done + BURST, 60);
    }
    ck_assert_uint_eq(count_for(stuck), 0);     /* still held at the gate */
    FILE *g = fopen(gate, "w");
    ck_assert_ptr_nonnull(g);
    fclose(g);
    wait_outcomes(before + NJOBS + 1, 60);
    ck_assert_int_eq(rec_for(stuck)->kind, FP_OK);

    seen = calloc(NJOBS, 1);
    ck_assert_ptr_nonnull(seen);
    FILE *f = fopen(count, "r");
    ck_assert_ptr_nonnull(f);
    unsigned long tag;
    long pid;
    int lines = 0;
    while (fscanf(f, "%lu %ld", &tag, &pid) == 2) {
        ck_assert_uint_lt(tag, NJOBS);
        ck_assert_msg(seen[tag] == 0, "job %lu started twice", tag);
        seen[tag] = 1;
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, NJOBS);
    for (size_t i = before; i < H.nrecs; i++)
        ck_assert_int_eq(H.recs[i].kind, FP_OK);
    ck_assert_uint_eq(stats().restarts, 0);     /* no protocol error kill */
    free(seen);
    unlink(gate);
    unlink(count);
    rmdir(dir);
}
END_TEST

/* A worker scaled away finishes the job it has begun; what was sent ahead
 * to it moves to the worker that stays: every quick job ends before the
 * long job of the retired worker (before, they waited behind it). */
START_TEST(jobs_sent_ahead_to_a_retired_worker_move)
{
    fp_config cfg;
    uint64_t quick[20];

    base_config(&cfg, 2);
    cfg.prefetch_wait = -1;         /* blind: both windows get quick jobs */
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    warm_up(4);
    size_t before = H.nrecs;
    uint64_t shorter = submit_op_num("sleep", "s", 0.3, NULL);  /* worker 0 */
    uint64_t longer = submit_op_num("sleep", "s", 2.5, NULL);   /* worker 1 */
    for (int i = 0; i < 20; i++)
        quick[i] = submit_int(100 + i);
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), 0);  /* retires worker 1 */
    wait_outcomes(before + 22, 30);
    ck_assert_uint_eq(H.recs[H.nrecs - 1].id, longer);  /* last of all */
    ck_assert_int_eq(rec_for(shorter)->kind, FP_OK);
    ck_assert_int_eq(rec_for(longer)->kind, FP_OK);
    for (int i = 0; i < 20; i++) {
        ck_assert_uint_eq(count_for(quick[i]), 1);
        ck_assert_int_eq(rec_for(quick[i])->kind, FP_OK);
    }
}
END_TEST

/* Run times unknown, or long: nothing is sent ahead of a running job; an
 * idle worker always gets the next job. */
START_TEST(nothing_sent_ahead_of_jobs_of_unknown_length)
{
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    uint64_t a = submit_op_num("sleep", "s", 0.2, NULL);
    uint64_t b = submit_op_num("sleep", "s", 0.2, NULL);
    for (int i = 0; i < 4; i++)
        submit_op_num("sleep", "s", 0.2, NULL);
    fp_stats st = stats();
    ck_assert_uint_eq(st.busy, 2);      /* a and b, one each */
    ck_assert_uint_eq(st.queued, 4);    /* the rest wait in the master */
    wait_outcomes(6, 20);
    ck_assert_int_eq(rec_for(a)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    /* Measured now: 200 ms jobs are never sent ahead. */
    for (int i = 0; i < 4; i++)
        submit_op_num("sleep", "s", 0.2, NULL);
    st = stats();
    ck_assert_uint_eq(st.queued, 2);
}
END_TEST

static int
one_sent_ahead(void)
{
    fp_worker_info w[1];

    return fp_pool_worker_info(H.pool, w, 1) == 1 && w[0].queued == 1;
}

/* A job sent ahead to a busy worker, and not started there when its
 * `expires` comes, is taken back: cancelled, "expired before it started",
 * once; the worker is not disturbed. */
START_TEST(expires_takes_back_a_job_sent_ahead)
{
    fp_config cfg;
    fp_job_opts o = { .timeout = -1, .expires = 0.3 };

    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;     /* send ahead whenever the window has room */
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    uint64_t hang = submit_op("hang", NULL);
    uint64_t id = submit_op_num("sleep", "s", 0, &o);
    ck_assert_msg(one_sent_ahead(), "the job was not sent ahead");
    ck_assert_uint_eq(stats().queued, 0);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(r->str, "expired before it started");
    ck_assert_uint_eq(r->attempts, 0);
    fp_worker_info w[1];
    ck_assert_uint_eq(fp_pool_worker_info(H.pool, w, 1), 1);
    ck_assert_uint_eq(w[0].queued, 0);      /* it left the window */
    ck_assert_uint_eq(w[0].job, hang);      /* the hung job runs on */
    /* The worker skips the job taken back: the next one runs there, and
     * nothing answers for the expired one. */
    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    uint64_t after = submit_int(7);
    ck_assert_int_eq(wait_job(after, 20)->kind, FP_OK);
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_uint_eq(stats().crashed, 0);
}
END_TEST

/* The same for a job whose bytes are only half written when its time is
 * up (a big one, behind a job that keeps the worker from reading): it
 * cannot leave the window before its last byte, but the worker is told to
 * skip it, so it ends now, once, and the jobs behind it run.  A cancel
 * does the same, without a restart. */
START_TEST(expires_withdraws_a_job_sent_ahead_half_written)
{
    fp_config cfg;
    fp_job_opts o = { .timeout = -1, .expires = _i == 0 ? 0.2 : 0 };
    size_t big = 8u << 20;
    char *job = malloc(5 + big);

    ck_assert_ptr_nonnull(job);
    job[0] = (char)0xc6;                /* bin 32 */
    job[1] = (char)(big >> 24);
    job[2] = (char)(big >> 16);
    job[3] = (char)(big >> 8);
    job[4] = (char)big;
    memset(job + 5, 'x', big);
    base_config(&cfg, 1);
    cfg.prefetch_wait = -1;
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    uint64_t head = submit_op_num("sleep", "s", 0.8, NULL);
    uint64_t id = submit_bytes(job, 5 + big, &o);
    uint64_t after = submit_int(7);
    run_for(0.05);                      /* the writes begin */
    const struct fp_worker *w = H.pool->workers[0];
    ck_assert_msg(w->send_next != NULL && w->send_next->id == id && w->send_off > 0,
                  "the big job is not half written");
    if (_i == 1)
        ck_assert_int_eq(fp_pool_cancel(H.pool, id), 1);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(r->str, _i == 0 ? "expired before it started" : "cancelled");
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_msg(rec_for(head) == NULL, "the head ended first");
    ck_assert_int_eq(wait_job(after, 20)->kind, FP_OK);
    ck_assert_int_eq(rec_for(head)->kind, FP_OK);
    ck_assert_uint_eq(count_for(id), 1);
    fp_stats st = stats();
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_uint_eq(st.crashed, 0);
    fp_worker_info wi[1];
    ck_assert_uint_eq(fp_pool_worker_info(H.pool, wi, 1), 1);
    ck_assert_uint_eq(wi[0].queued, 0);
    ck_assert_uint_eq(wi[0].job, 0);
    free(job);
}
END_TEST

static Suite *
pool_dispatch_suite(void)
{
    Suite *s = suite_create("pool_dispatch");
    TCase *tc = ph_tcase("dispatch");

    tcase_add_loop_test(tc, queue_max_counts_jobs_sent_ahead, 0, 2);
    tcase_add_loop_test(tc, idle_worker_takes_over_jobs_sent_ahead, 0, 2);
    tcase_add_test(tc, nothing_sent_ahead_of_jobs_of_unknown_length);
    tcase_add_test(tc, jobs_taken_back_from_a_stuck_worker_start_once);
    tcase_add_test(tc, jobs_sent_ahead_to_a_retired_worker_move);
    tcase_add_test(tc, expires_takes_back_a_job_sent_ahead);
    tcase_add_loop_test(tc, expires_withdraws_a_job_sent_ahead_half_written, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_dispatch_suite());
}
