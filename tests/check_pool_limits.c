/*
 * check_pool_limits.c — rate limits (SPEC 5.3): the queue's lanes and token
 * buckets on their own (src/engine/queue.c, with a made-up clock: exact),
 * then in an embedded pool (fp_pool_limit, fp_config.rate_limit).  The one
 * timed test measures a window with a tolerance no broken limiter passes;
 * the cost tests count CPU time against a bound a hundred times what the
 * queue needs (and a tenth of what a walk over the keys took).
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/pool_int.h"
#include "pool_harness.h"

/* ========================================================================
 * The queue on its own
 * ======================================================================== */

static struct fp_job jobs[64];

/* An assertion for hot loops: Check's own report each passed check to the
 * parent process, which costs more than the queue does. */
#define REQUIRE(cond) \
    do { if (!(cond)) ck_abort_msg("Assertion '%s' failed", #cond); } while (0)

/* CPU seconds this process has used. */
static double
cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Job `id` of key `k` (NULL: none), pushed. */
static void
push(struct fp_queue *q, uint64_t id, const char *k)
{
    struct fp_job *job = &jobs[id];

    memset(job, 0, sizeof(*job));
    job->id = id;
    job->key = k != NULL ? fp_queue_key_hold(q, k) : NULL;
    fp_queue_push(q, job);
}

/* The id of the next job allowed at `now`, or 0. */
static uint64_t
next_id(struct fp_queue *q, double now, double *wait)
{
    double w;
    struct fp_job *job = fp_queue_next(q, now, wait != NULL ? wait : &w);

    return job != NULL ? job->id : 0;
}

START_TEST(a_throttled_key_waits_alone_and_each_key_stays_fifo)
{
    struct fp_queue q;
    double wait;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 1, 1, 0), 0);
    push(&q, 1, "A");
    push(&q, 2, "A");
    push(&q, 3, "B");
    push(&q, 4, NULL);
    push(&q, 5, "A");
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);     /* A's one token */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 3);     /* A waits, B goes */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 4);
    ck_assert_uint_eq(next_id(&q, 0, &wait), 0);
    ck_assert(fabs(wait - 1.0) < 1e-9);             /* A's next token */
    ck_assert_uint_eq(next_id(&q, 0.5, &wait), 0);
    ck_assert(fabs(wait - 0.5) < 1e-9);
    ck_assert_uint_eq(next_id(&q, 1.0, NULL), 2);   /* A in order */
    ck_assert_uint_eq(next_id(&q, 1.5, NULL), 0);
    ck_assert_uint_eq(next_id(&q, 2.0, NULL), 5);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(next_id(&q, 9, &wait), 0);
    ck_assert(wait < 0);                            /* nothing to wake for */
    fp_queue_free(&q);
}
END_TEST

/* rate 20, burst 5, polled every millisecond for 2 s of made-up time:
 * 5 at once, then one every 50 ms. */
START_TEST(tokens_refill_at_the_rate_up_to_the_burst)
{
    struct fp_queue q;
    unsigned started = 0, at_once = 0;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "K", 20, 5, 0), 0);
    for (uint64_t id = 1; id < 64; id++)
        push(&q, id, "K");
    for (int ms = 0; ms <= 2000; ms++) {
        while (next_id(&q, ms / 1000.0, NULL) != 0) {
            started++;
            if (ms == 0)
                at_once++;
        }
    }
    ck_assert_uint_eq(at_once, 5);
    ck_assert_uint_eq(started, 5 + 40);
    /* Idle for a long time: the bucket holds no more than the burst. */
    while (next_id(&q, 100, NULL) != 0)
        started++;
    ck_assert_uint_eq(started, 5 + 40 + 5);
    fp_queue_free(&q);
}
END_TEST

START_TEST(pool_wide_bucket_governs_every_job)
{
    struct fp_queue q;
    double wait;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "", 2, 1, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 1000, 1000, 0), 0);
    push(&q, 1, NULL);
    push(&q, 2, "A");
    push(&q, 3, "B");
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);
    ck_assert_uint_eq(next_id(&q, 0, &wait), 0);    /* A has tokens; the
                                                       pool has none */
    ck_assert(fabs(wait - 0.5) < 1e-9);
    ck_assert_uint_eq(next_id(&q, 0.5, NULL), 2);
    ck_assert_uint_eq(next_id(&q, 1.0, NULL), 3);
    ck_assert_int_eq(fp_queue_unlimit(&q, ""), 1);
    ck_assert_int_eq(fp_queue_unlimit(&q, ""), 0);
    fp_queue_free(&q);
}
END_TEST

/* Jobs put back (a dead worker's) return to their places by id; removing
 * a bucket merges its lane back in order. */
START_TEST(put_back_and_unlimit_keep_the_order_by_id)
{
    struct fp_queue q;
    uint64_t order[8];
    size_t n = 0;
    uint64_t id;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 0, 1, 0), 0);
    for (id = 1; id <= 6; id++)
        push(&q, id, id % 2 ? "A" : NULL);          /* A: 1 3 5 */
    ck_assert_uint_eq(next_id(&q, 0, NULL), 1);
    ck_assert_uint_eq(next_id(&q, 0, NULL), 2);
    ck_assert_uint_eq(next_id(&q, 0, NULL), 4);
    fp_queue_put_back(&q, &jobs[4]);                /* back in reverse */
    fp_queue_put_back(&q, &jobs[2]);
    fp_queue_put_back(&q, &jobs[1]);
    ck_assert_uint_eq(fp_queue_find(&q, 3)->id, 3);
    ck_assert_ptr_null(fp_queue_find(&q, 9));
    ck_assert_int_eq(fp_queue_unlimit(&q, "A"), 1);
    while ((id = next_id(&q, 0, NULL)) != 0)
        order[n++] = id;
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(order[i], i + 1);
    fp_queue_free(&q);
}
END_TEST

START_TEST(a_key_record_lives_only_while_used)
{
    struct fp_queue q;
    struct fp_key *k[1000];
    char name[32];

    fp_queue_init(&q, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "key-%d", i);
        k[i] = fp_queue_key_hold(&q, name);
        ck_assert_ptr_eq(fp_queue_key_hold(&q, name), k[i]);
    }
    ck_assert_uint_eq(fp_queue_nkeys(&q), 1000);
    ck_assert_int_eq(fp_queue_limit(&q, "key-7", 1, 0, 0), 0);
    for (int i = 0; i < 1000; i++) {
        fp_queue_key_drop(&q, k[i]);
        fp_queue_key_drop(&q, k[i]);
    }
    ck_assert_uint_eq(fp_queue_nkeys(&q), 1);       /* key-7: its bucket */
    ck_assert_int_eq(fp_queue_unlimit(&q, "key-7"), 1);
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

START_TEST(a_bucket_needs_a_finite_rate_and_a_burst_of_at_least_one)
{
    static const double bad[][2] = {
        { NAN, 0 }, { -1, 0 }, { INFINITY, 0 }, { -INFINITY, 0 },
        { 1, 0.5 }, { 1, NAN }, { 1, INFINITY }, { 1, -2 },
    };
    struct fp_queue q;
    fp_limit_info row;

    fp_queue_init(&q, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        ck_assert_int_eq(fp_queue_limit(&q, "A", bad[i][0], bad[i][1], 0), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 0.5, 0, 0), 0);
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 1);
    ck_assert_str_eq(row.key, "A");
    ck_assert(row.rate == 0.5 && row.burst == 1 && row.tokens == 1);
    ck_assert_int_eq(fp_queue_limit(&q, "A", 30, 0, 0), 0);
    fp_queue_limits(&q, 0, &row, 1);
    ck_assert(row.burst == 30 && row.tokens == 1);  /* kept its tokens */
    fp_queue_free(&q);
}
END_TEST

/* Issue: `limit "" 1e308` (or a burst of 2^64 - 1) was taken, and a
 * bucket of 2^64 tokens or more made the conversion to a count undefined
 * (0 on x86-64): no job counted ready, so autoscale never grew. */
START_TEST(a_limit_past_the_bound_is_refused)
{
    static const double bad[][2] = {
        { 1e308, 0 }, { 1e20, 0 }, { FP_LIMIT_MAX * 1.000001, 0 },
        { 1, 18446744073709551615.0 }, { 1, FP_LIMIT_MAX * 1.000001 },
        { FP_LIMIT_MAX * 2, FP_LIMIT_MAX },
    };
    struct fp_queue q;
    fp_limit_info row;

    fp_queue_init(&q, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        ck_assert_int_eq(fp_queue_limit(&q, "A", bad[i][0], bad[i][1], 0), -1);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_int_eq(fp_queue_limit(&q, "", bad[i][0], bad[i][1], 0), -1);
    }
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 0);
    /* The bound itself is a limit; the default burst of the largest rate
     * is within it. */
    ck_assert_int_eq(fp_queue_limit(&q, "A", FP_LIMIT_MAX, FP_LIMIT_MAX, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "", FP_LIMIT_MAX, 0, 0), 0);
    ck_assert_uint_eq(fp_queue_limits(&q, 0, &row, 1), 2);
    ck_assert(row.key[0] == '\0' && row.burst == FP_LIMIT_MAX);
    for (uint64_t id = 1; id <= 40; id++)
        push(&q, id, id % 2 ? "A" : NULL);
    ck_assert_uint_eq(fp_queue_ready(&q, 1, SIZE_MAX), 40);
    while (next_id(&q, 1, NULL) != 0)
        ;
    ck_assert_uint_eq(q.n, 0);
    fp_queue_free(&q);
}
END_TEST

/* Whatever a bucket holds, the count of whole tokens is defined: huge
 * counts saturate, nothing and NaN count none. */
START_TEST(whole_tokens_saturate)
{
    struct fp_bucket b;

    fp_bucket_init(&b, 1, 1e300, 0);
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), SIZE_MAX);
    fp_bucket_init(&b, 1, 18446744073709551616.0, 0);
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), SIZE_MAX);
    fp_bucket_init(&b, 1, 1e15, 0);
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), 1000000000000000u);
    fp_bucket_init(&b, 1, 2.5, 0);
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), 2);
    b.tokens = -3;
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), 0);
    b.tokens = b.burst = NAN;
    ck_assert_uint_eq(fp_bucket_whole_at(&b, 0), 0);
}
END_TEST

/* The same, on a bucket the queue holds: a count from 2^64 tokens (which
 * no limit can have now) is not 0. */
START_TEST(a_bucket_of_2_64_tokens_does_not_hide_the_ready_jobs)
{
    struct fp_queue q;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "", 1, 1, 0), 0);
    q.global.rate = q.global.burst = q.global.tokens = 1e20;
    for (uint64_t id = 1; id <= 40; id++)
        push(&q, id, NULL);
    ck_assert_uint_eq(fp_queue_ready(&q, 0, SIZE_MAX), 40);
    while (next_id(&q, 0, NULL) != 0)
        ;
    fp_queue_free(&q);
}
END_TEST

/* Issue: any number of keys could get a bucket (100,000: +35 MB, and a
 * walk over all of them for each job).  Past FP_LIMIT_KEYS_MAX a new key
 * is refused; existing ones still change, the pool-wide one is apart. */
START_TEST(no_more_than_the_bound_of_keys_get_a_bucket)
{
    struct fp_queue q;
    char name[32];

    fp_queue_init(&q, 1);
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++) {
        snprintf(name, sizeof(name), "key-%u", i);
        REQUIRE(fp_queue_limit(&q, name, 1, 0, 0) == 0);
    }
    errno = 0;
    ck_assert_int_eq(fp_queue_limit(&q, "one-more", 1, 0, 0), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_uint_eq(fp_queue_nkeys(&q), FP_LIMIT_KEYS_MAX);
    ck_assert_int_eq(fp_queue_limit(&q, "key-7", 5, 10, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "", 5, 10, 0), 0);
    ck_assert_uint_eq(fp_queue_limits(&q, 0, NULL, 0), FP_LIMIT_KEYS_MAX + 1);
    ck_assert_int_eq(fp_queue_unlimit(&q, "key-7"), 1);
    ck_assert_int_eq(fp_queue_limit(&q, "one-more", 1, 0, 0), 0);
    ck_assert_int_eq(fp_queue_limit(&q, "two-more", 1, 0, 0), -1);
    fp_queue_free(&q);
}
END_TEST

/* Issue: each pick walked every key with a bucket, jobs or not (unkeyed
 * jobs/s fell from 16k to 335 with 100,000 keys), and so did the count of
 * ready jobs autoscale takes every loop iteration.  Now: the bound of
 * keys, each with a job held back for good (rate 0); 100,000 unkeyed jobs
 * counted and picked one by one.  A walk over the keys is 2 x 10^9 steps
 * (many seconds); the lanes' heaps make it a few milliseconds. */
START_TEST(picking_costs_nothing_per_throttled_key)
{
    static struct fp_job many[2 * FP_LIMIT_KEYS_MAX + 1];
    struct fp_queue q;
    char name[32];
    uint64_t id = 1;
    double cpu0;

    fp_queue_init(&q, 1);
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++) {
        snprintf(name, sizeof(name), "key-%u", i);
        REQUIRE(fp_queue_limit(&q, name, 0, 1, 0) == 0);
        for (int j = 0; j < 2; j++, id++) {
            many[id].id = id;
            many[id].key = fp_queue_key_hold(&q, name);
            fp_queue_push(&q, &many[id]);
        }
    }
    /* Each key's one token goes; its second job waits for good. */
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++)
        REQUIRE(fp_queue_next(&q, 0, &(double){ 0 }) != NULL);
    ck_assert_uint_eq(q.n, FP_LIMIT_KEYS_MAX);
    ck_assert_uint_eq(fp_queue_ready(&q, 1, SIZE_MAX), 0);

    cpu0 = cpu_s();
    for (int i = 0; i < 100000; i++) {
        double wait;
        jobs[0].id = id++;
        jobs[0].key = NULL;
        fp_queue_push(&q, &jobs[0]);
        REQUIRE(fp_queue_ready(&q, 1, 1) == 1);
        REQUIRE(fp_queue_next(&q, 1, &wait) == &jobs[0]);
    }
    ck_assert_msg(cpu_s() - cpu0 < 1.0, "100,000 picks past %u throttled keys "
                  "took %.3f s of CPU", FP_LIMIT_KEYS_MAX, cpu_s() - cpu0);
    ck_assert_uint_eq(fp_queue_ready(&q, 1, SIZE_MAX), 0);
    for (size_t i = 1; i < id && i <= 2 * FP_LIMIT_KEYS_MAX; i++)
        if (many[i].key != NULL)
            fp_queue_key_drop(&q, many[i].key);
    while (fp_queue_pop_any(&q) != NULL)
        ;
    fp_queue_free(&q);
}
END_TEST

/* Issue: the rate timer was set half a millisecond after the token was
 * due, so that it would not find the bucket a hair short; with a burst of
 * 1 the bucket is full for that half millisecond and its refill is lost,
 * every token (1000/s in bursts of 1 ran at 425/s).  Now the timer is set
 * for the moment itself, and a clock a hair short of it (the loop's clock
 * and the timer's round differently) still finds the token. */
START_TEST(a_token_due_within_the_slack_is_there)
{
    struct fp_queue q;
    double wait;

    fp_queue_init(&q, 1);
    ck_assert_int_eq(fp_queue_limit(&q, "K", 1000, 1, 5000.0), 0);
    for (uint64_t id = 1; id <= 4; id++)
        push(&q, id, "K");
    ck_assert_uint_eq(next_id(&q, 5000.0, NULL), 1);
    ck_assert_uint_eq(next_id(&q, 5000.0, &wait), 0);
    ck_assert(fabs(wait - 0.001) < 1e-9);
    /* A timer for 5000.001 that sees the clock at 5000.001 less 2.4e-7
     * (one step of a double near 5000 is 9e-13; near the epoch's 1.7e9 it
     * is 2.4e-7): the token is there. */
    ck_assert_uint_eq(next_id(&q, 5000.001 - 2.4e-7, NULL), 2);
    /* It was lent: the next one is due 1 ms after the last was, not 1 ms
     * after it was taken. */
    ck_assert_uint_eq(next_id(&q, 5000.002 - 1.5e-6, &wait), 0);
    ck_assert(fabs(wait - 1.5e-6) < 1e-9);
    ck_assert_uint_eq(next_id(&q, 5000.002, NULL), 3);
    /* Further than the slack is not now. */
    ck_assert_uint_eq(next_id(&q, 5000.003 - 2e-6, &wait), 0);
    ck_assert(fabs(wait - 2e-6) < 1e-9);
    fp_queue_free(&q);
}
END_TEST

/* Woken exactly when told (or a hair before or after), a burst-1 limit
 * starts its jobs at its rate, and never faster: the k-th start is never
 * earlier than k / rate (less the microsecond of slack). */
START_TEST(woken_on_time_a_limit_keeps_its_rate_and_never_outruns_it)
{
    static const double hair[] = { 0, -2.4e-7, 3e-7, -9e-7, 1e-7 };
    static const double rates[] = { 1000, 300, 2000, 7 };
    static struct fp_job many[3001];
    struct fp_queue q;

    for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
        double rate = rates[r], t = 100.0, wait;
        unsigned started = 0;
        struct fp_job *job;

        fp_queue_init(&q, 1);
        ck_assert_int_eq(fp_queue_limit(&q, "K", rate, 1, t), 0);
        for (uint64_t id = 1; id <= 3000; id++) {
            many[id].id = id;
            many[id].key = fp_queue_key_hold(&q, "K");
            fp_queue_push(&q, &many[id]);
        }
        for (unsigned wake = 0; started < 3000; wake++) {
            REQUIRE(wake < 2 * 3000);
            while ((job = fp_queue_next(&q, t, &wait)) != NULL) {
                if (t < 100.0 + started / rate - 1e-6)
                    ck_abort_msg("start %u at %.9f: before %.9f", started, t,
                                 100.0 + started / rate);
                started++;
                fp_queue_key_drop(&q, job->key);
            }
            if (started < 3000) {
                REQUIRE(wait > 0);
                t += wait + hair[wake % 5];
            }
        }
        /* Nothing lost but the hairs late (a burst of 1 is full then). */
        ck_assert_msg(t <= 100.0 + 2999 / rate + 3000 * 4e-7, "rate %g: 3000 "
                      "starts took %.6f s", rate, t - 100.0);
        fp_queue_free(&q);
    }
}
END_TEST

/* The heaps give the same answer as the rule they stand for: the lowest
 * id among the lane heads whose buckets hold a token (the common lane's
 * always does), held jobs passed over, and else the wait for the first
 * token due.  Random pushes, put-backs, cancels, limit changes, holds and
 * releases of a group (whose jobs are parked off the keys' lanes and put
 * back), its cancellation, and picks over twelve keys, checked at each
 * pick against a walk over every lane with its own copy of each bucket. */
#define ORACLE_KEYS 12
#define ORACLE_JOBS 4000

struct oracle {
    struct fp_bucket bucket[ORACLE_KEYS];
    int              limited[ORACLE_KEYS];
    int              waiting[ORACLE_JOBS + 1];  /* in the queue */
    int              key_of[ORACLE_JOBS + 1];   /* -1: none */
    int              grouped[ORACLE_JOBS + 1];  /* of the group */
    int              held;                      /* the group is */
};

static uint64_t rng = 88172645463325252ull;

static unsigned
rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* The job the rule picks at `now` (0: none, *wait as fp_queue_next),
 * taking nothing. */
static uint64_t
oracle_pick(struct oracle *o, uint64_t maxid, double now, double *wait)
{
    uint64_t head[ORACLE_KEYS + 1] = { 0 };     /* [ORACLE_KEYS]: common */

    *wait = -1;
    for (uint64_t id = 1; id <= maxid; id++) {
        int k = o->key_of[id] >= 0 && o->limited[o->key_of[id]]
                ? o->key_of[id] : ORACLE_KEYS;
        if (o->waiting[id] && !(o->grouped[id] && o->held) && head[k] == 0)
            head[k] = id;
    }
    uint64_t best = head[ORACLE_KEYS];
    for (int k = 0; k < ORACLE_KEYS; k++) {
        double w;
        if (head[k] == 0)
            continue;
        struct fp_bucket b = o->bucket[k];
        if ((w = fp_bucket_wait(&b, 1, now)) != 0) {
            if (w > 0 && (*wait < 0 || w < *wait))
                *wait = w;
            continue;
        }
        if (best == 0 || head[k] < best)
            best = head[k];
    }
    return best;
}

START_TEST(the_heaps_pick_as_the_rule_says)
{
    static struct fp_job many[ORACLE_JOBS + 1];
    static struct oracle o;
    static struct fp_group g;
    struct fp_queue q;
    char name[ORACLE_KEYS][8];
    uint64_t maxid = 0;
    double now = 1000.0;
    unsigned picks = 0, waits = 0;

    memset(&o, 0, sizeof(o));
    memset(&g, 0, sizeof(g));
    TAILQ_INIT(&g.parked);
    fp_queue_init(&q, 7);
    for (int k = 0; k < ORACLE_KEYS; k++)
        snprintf(name[k], sizeof(name[k]), "k%d", k);
    while (maxid < ORACLE_JOBS) {
        unsigned op = rnd(100);
        if (op < 35) {                                  /* a new job */
            uint64_t id = ++maxid;
            int k = rnd(20) > 0 ? (int)rnd(ORACLE_KEYS) : -1;
            many[id].id = id;
            many[id].key = k >= 0 ? fp_queue_key_hold(&q, name[k]) : NULL;
            many[id].group = rnd(4) == 0 ? &g : NULL;
            o.grouped[id] = many[id].group != NULL;
            o.key_of[id] = k;
            o.waiting[id] = 1;
            fp_queue_push(&q, &many[id]);
        } else if (op < 40 && maxid > 0) {              /* cancel one */
            uint64_t id = 1 + rnd((unsigned)maxid);
            if (o.waiting[id]) {
                REQUIRE(fp_queue_find(&q, id) == &many[id]);
                fp_queue_remove(&q, &many[id]);
                o.waiting[id] = 0;
            } else {
                REQUIRE(fp_queue_find(&q, id) == NULL);
            }
        } else if (op < 45 && maxid > 0) {              /* a job comes back */
            uint64_t id = 1 + rnd((unsigned)maxid);
            if (!o.waiting[id] && many[id].key != NULL) {
                fp_queue_put_back(&q, &many[id]);
                o.waiting[id] = 1;
            }
        } else if (op < 48) {                           /* hold or release */
            if (o.held)
                fp_queue_release(&q, &g);
            else
                fp_queue_hold(&q, &g);
            o.held = !o.held;
        } else if (op == 48 && rnd(8) == 0) {           /* cancel the group */
            struct fp_jobq out;
            size_t want = 0, got;
            TAILQ_INIT(&out);
            for (uint64_t id = 1; id <= maxid; id++)
                if (o.waiting[id] && o.grouped[id]) {
                    o.waiting[id] = 0;
                    want++;
                }
            got = fp_queue_take_group(&q, &g, &out);
            REQUIRE(got == want);
            REQUIRE(g.nqueued == 0);
        } else if (op < 52) {                           /* a limit changes */
            int k = (int)rnd(ORACLE_KEYS);
            if (rnd(8) == 0) {
                REQUIRE(fp_queue_unlimit(&q, name[k]) == o.limited[k]);
                o.limited[k] = 0;
            } else {
                double rate = rnd(5) == 0 ? 0 : 1 + rnd(200);
                double burst = 1 + rnd(3);
                REQUIRE(fp_queue_limit(&q, name[k], rate, burst, now) == 0);
                if (o.limited[k])
                    fp_bucket_refill(&o.bucket[k], now);
                else
                    o.bucket[k].tokens = burst;
                o.bucket[k].rate = rate;
                o.bucket[k].burst = burst;
                if (o.bucket[k].tokens > burst)
                    o.bucket[k].tokens = burst;
                o.bucket[k].stamp = now;
                o.limited[k] = 1;
            }
        } else {                                        /* time passes, a pick */
            double want_wait, wait;
            now += rnd(3) == 0 ? 0 : rnd(20) * 1e-3;
            uint64_t want = oracle_pick(&o, maxid, now, &want_wait);
            struct fp_job *got = fp_queue_next(&q, now, &wait);
            if ((got != NULL ? got->id : 0) != want)
                ck_abort_msg("picked %llu, the rule says %llu",
                             (unsigned long long)(got != NULL ? got->id : 0),
                             (unsigned long long)want);
            if (got == NULL) {
                /* A lane whose held jobs are not parked yet may ask for a
                 * wake-up sooner (then parks them); never later. */
                if (o.held && want_wait >= 0 && !(wait >= 0 && wait <= want_wait + 1e-9))
                    ck_abort_msg("wait %.9f, want at most %.9f", wait, want_wait);
                if (!o.held && !(fabs(wait - want_wait) < 1e-9))
                    ck_abort_msg("wait %.9f, want %.9f", wait, want_wait);
                waits++;
                continue;
            }
            int k = o.key_of[want];
            if (k >= 0 && o.limited[k]) {
                fp_bucket_wait(&o.bucket[k], 1, now);
                fp_bucket_take(&o.bucket[k], 1);
            }
            o.waiting[want] = 0;
            picks++;
            REQUIRE(fp_queue_ready(&q, now, SIZE_MAX) <= q.n - q.nheld);
        }
    }
    ck_assert_uint_gt(picks, 500);
    ck_assert_uint_gt(waits, 50);
    while (fp_queue_pop_any(&q) != NULL)
        ;
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(g.nqueued, 0);
    ck_assert_uint_eq(q.nheld, 0);
    fp_queue_release(&q, &g);
    for (uint64_t id = 1; id <= maxid; id++)
        fp_queue_key_drop(&q, many[id].key);
    for (int k = 0; k < ORACLE_KEYS; k++)
        fp_queue_unlimit(&q, name[k]);
    ck_assert_uint_eq(fp_queue_nkeys(&q), 0);
    fp_queue_free(&q);
}
END_TEST

/* ========================================================================
 * In a pool
 * ======================================================================== */

static fp_job_opts
keyed(const char *key)
{
    fp_job_opts o = { .timeout = -1, .key = key };
    return o;
}

static uint64_t
submit_keyed(int64_t v, const char *key)
{
    char buf[16];
    size_t len = 0;
    fp_job_opts o = keyed(key);

    buf[len++] = (char)0xd3;                        /* int 64 */
    for (int shift = 56; shift >= 0; shift -= 8)
        buf[len++] = (char)((uint64_t)v >> shift);
    return submit_bytes(buf, len, &o);
}

/* The row of `key` in fp_pool_limits (asserted present). */
static fp_limit_info
limit_row(const char *key)
{
    fp_limit_info rows[8];
    size_t n = fp_pool_limits(H.pool, rows, 8);

    for (size_t i = 0; i < n && i < 8; i++)
        if (strcmp(rows[i].key, key) == 0)
            return rows[i];
    ck_abort_msg("no limit row for key '%s'", key);
    return rows[0];
}

static size_t want_done;
static int
done_at_least(void)
{
    return H.nrecs >= want_done;
}

/* Key A at 1 per second with 5 jobs queued first; key B's 5 jobs, after
 * them, all end before A's third can start (at 2 s). */
START_TEST(a_throttled_key_does_not_delay_another_key)
{
    fp_config cfg;
    uint64_t a[5], b[5];

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1, 1), 0);
    for (int i = 0; i < 5; i++)
        a[i] = submit_keyed(i, "A");
    for (int i = 0; i < 5; i++)
        b[i] = submit_keyed(100 + i, "B");
    for (int i = 0; i < 5; i++)
        wait_job(b[i], 20);
    ck_assert_uint_le(count_for(a[0]) + count_for(a[1]) + count_for(a[2]), 2);
    ck_assert_uint_ge(limit_row("A").waiting, 3);
    for (int i = 0; i < 5; i++)
        wait_job(a[i], 20);
    /* FIFO within A. */
    size_t at[5];
    for (int i = 0; i < 5; i++)
        for (size_t r = 0; r < H.nrecs; r++)
            if (H.recs[r].id == a[i])
                at[i] = r;
    for (int i = 1; i < 5; i++)
        ck_assert_uint_gt(at[i], at[i - 1]);
    ck_assert_uint_eq(limit_row("A").waiting, 0);
}
END_TEST

/* 40 jobs at 20 per second, bursts of 5: the last starts 35/20 s after
 * the first, give or take; a limiter at twice the rate, or none, is far
 * quicker, and one that stalls far slower. */
START_TEST(starts_follow_the_configured_rate)
{
    fp_config cfg;
    ev_tstamp t0, elapsed;

    base_config(&cfg, 2);
    if (_i == 1) {
        cfg.rate_limit = 20;
        cfg.rate_burst = 5;
    }
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    if (_i == 0)
        ck_assert_int_eq(fp_pool_limit(H.pool, "K", 20, 5), 0);
    /* The burst is full by now; time from the first submission. */
    t0 = ev_time();
    for (int i = 0; i < 40; i++)
        submit_keyed(i, _i == 0 ? "K" : NULL);
    want_done = 40;
    run_until(done_at_least, 30, "40 outcomes");
    elapsed = ev_time() - t0;
    ck_assert_msg(elapsed >= 35.0 / 20 * 0.9, "40 jobs in %.3f s: too fast",
                  elapsed);
    ck_assert_msg(elapsed <= 35.0 / 20 * 3 + 1, "40 jobs in %.3f s: too slow",
                  elapsed);
}
END_TEST

static int
one_idle(void)
{
    return stats().idle == 1;
}

static int
one_done(void)
{
    return H.nrecs >= 1;
}

/* A key with rate 0 (its one token spent): its jobs wait in the master's
 * queue, the workers idle -- even where jobs are sent ahead blindly. */
static void
three_jobs_held_back(void)
{
    fp_config cfg;

    base_config(&cfg, 2);
    cfg.prefetch_wait = -1;
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 0, 1), 0);
    for (int i = 0; i < 3; i++)
        submit_keyed(i, "A");
    run_until(one_done, 20, "the first job");
    run_for(0.2);
    ck_assert_uint_eq(H.nrecs, 1);
}

START_TEST(a_job_waiting_for_a_token_is_never_at_a_worker)
{
    fp_worker_info w[4];
    fp_stats st;

    three_jobs_held_back();
    st = stats();
    ck_assert_uint_eq(st.queued, 2);
    ck_assert_uint_eq(st.busy, 0);
    ck_assert_uint_eq(st.idle, 2);
    ck_assert_uint_eq(fp_pool_worker_info(H.pool, w, 4), 2);
    ck_assert_uint_eq(w[0].queued + w[1].queued, 0);
    fp_limit_info r = limit_row("A");
    ck_assert_uint_eq(r.waiting, 2);
    ck_assert(r.rate == 0 && r.burst == 1 && r.tokens < 1);
}
END_TEST

START_TEST(removing_a_limit_releases_the_waiting_jobs)
{
    three_jobs_held_back();
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 1);
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 0);
    wait_outcomes(3, 20);
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), 0);
}
END_TEST

START_TEST(raising_a_limit_releases_the_waiting_jobs)
{
    three_jobs_held_back();
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1000, 0), 0);
    wait_outcomes(3, 20);
}
END_TEST

START_TEST(a_limit_needs_a_finite_rate)
{
    static const double bad[] = { NAN, -1, INFINITY, -INFINITY };
    fp_config cfg;
    char err[256];

    base_config(&cfg, 1);
    start_pool(&cfg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        ck_assert_int_eq(fp_pool_limit(H.pool, "A", bad[i], 0), -1);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_int_eq(fp_pool_limit(H.pool, NULL, bad[i], 0), -1);
    }
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), 0);
    cfg.rate_limit = NAN;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "rate limit"));
}
END_TEST

/* One bound for every way in: fp_pool_limit and fp_config.rate_limit. */
START_TEST(a_limit_past_the_bound_is_refused_by_the_pool)
{
    fp_config cfg;
    char err[256];

    base_config(&cfg, 1);
    start_pool(&cfg);
    errno = 0;
    ck_assert_int_eq(fp_pool_limit(H.pool, NULL, 1e308, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1e20, 0), -1);
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 1, 18446744073709551615.0), -1);
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), 0);
    ck_assert_int_eq(fp_pool_limit(H.pool, NULL, FP_LIMIT_MAX, FP_LIMIT_MAX), 0);
    cfg.rate_limit = 1e20;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "rate limit"));
    cfg.rate_limit = 5;
    cfg.rate_burst = FP_LIMIT_MAX * 2;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof(err)));
}
END_TEST

/* A new key past FP_LIMIT_KEYS_MAX: ENOSPC, and nothing changes. */
START_TEST(the_pool_refuses_a_key_past_the_bound)
{
    fp_config cfg;
    char name[32];

    base_config(&cfg, 1);
    start_pool(&cfg);
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++) {
        snprintf(name, sizeof(name), "k%u", i);
        REQUIRE(fp_pool_limit(H.pool, name, 1000, 0) == 0);
    }
    errno = 0;
    ck_assert_int_eq(fp_pool_limit(H.pool, "another", 1000, 0), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_uint_eq(fp_pool_limits(H.pool, NULL, 0), FP_LIMIT_KEYS_MAX);
    /* The keyed jobs still run. */
    submit_keyed(1, "k3");
    submit_keyed(2, "another");
    wait_outcomes(2, 20);
}
END_TEST

/* The rate timer is set for the moment the throttled key's token is due,
 * not after it (see a_token_due_within_the_slack_is_there). */
START_TEST(the_rate_timer_is_set_for_the_moment_the_token_is_due)
{
    fp_config cfg;
    struct fp_key *k;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "K", 2, 1), 0);
    submit_keyed(1, "K");
    submit_keyed(2, "K");
    run_until(one_done, 20, "the first job");
    k = fp_queue_key_hold(&H.pool->queue, "K");
    ck_assert_uint_eq(k->nwaiting, 1);
    ck_assert_msg(fabs(H.pool->rate_timer.at - fp_bucket_due(&k->bucket, 1)) < 1e-6,
                  "timer at %.6f, token due at %.6f", H.pool->rate_timer.at,
                  fp_bucket_due(&k->bucket, 1));
    fp_queue_key_drop(&H.pool->queue, k);
    wait_outcomes(2, 20);
}
END_TEST

/* The timer behind it: never before its moment, and finer than libev's
 * epoll backend, which sleeps whole milliseconds rounded up (an ev_timer
 * due in 0.2 ms fires after 1 ms or more, every time).  Of 200 timers due
 * in 0.2 ms, at least one fires within 0.8 ms: only a machine too loaded
 * to wake a process in 0.6 ms even once in 200 tries would fail it. */
struct timer_probe {
    double   at, fired;
    unsigned n, quick;
    double   earliest;          /* the least (fired - at) */
};

static void
probe_cb(void *arg)
{
    struct timer_probe *pr = arg;

    pr->fired = ev_time();
    ev_break(H.loop, EVBREAK_ONE);
}

START_TEST(the_rate_timer_fires_on_time_to_well_within_a_millisecond)
{
    struct fp_precise_timer t;
    struct timer_probe pr = { .earliest = 1 };

    fp_precise_timer_init(&t, probe_cb, &pr);
    for (pr.n = 0; pr.n < 200; pr.n++) {
        ev_now_update(H.loop);
        pr.at = ev_now(H.loop) + 0.0002;
        pr.fired = 0;
        fp_precise_timer_at(H.loop, &t, pr.at + 5);    /* re-armed below */
        fp_precise_timer_at(H.loop, &t, pr.at);
        ev_run(H.loop, 0);
        ck_assert(pr.fired > 0);
        if (pr.fired - pr.at < pr.earliest)
            pr.earliest = pr.fired - pr.at;
        pr.quick += pr.fired - pr.at < 0.0008;
    }
    ck_assert_msg(pr.earliest >= 0, "fired %.1f us early", -pr.earliest * 1e6);
    ck_assert_msg(pr.quick > 0, "none of 200 timers fired within 0.8 ms");
    /* Stopped, it does not fire. */
    ev_now_update(H.loop);
    fp_precise_timer_at(H.loop, &t, ev_now(H.loop) + 0.001);
    fp_precise_timer_stop(H.loop, &t);
    pr.fired = 0;
    run_for(0.01);
    ck_assert(pr.fired == 0);
    fp_precise_timer_free(H.loop, &t);
}
END_TEST

/* Jobs that wait for a token, not for a worker, do not grow a dynamic
 * pool: more workers would not start them sooner. */
START_TEST(jobs_waiting_for_a_token_do_not_grow_the_pool)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.autoscale_min = 1;
    cfg.autoscale_max = 4;
    start_pool(&cfg);
    run_until(one_idle, 20, "the worker ready");
    ck_assert_int_eq(fp_pool_limit(H.pool, "A", 0, 1), 0);
    submit_keyed(0, "A");       /* spends A's one token */
    run_until(one_done, 20, "the first job");
    for (int i = 1; i < 4; i++)
        submit_keyed(i, "A");
    run_for(1.5);               /* growth would have begun at once */
    ck_assert_uint_eq(stats().workers, 1);
    ck_assert_uint_eq(stats().queued, 3);
    ck_assert_int_eq(log_count("autoscale: adding"), 0);
}
END_TEST

/* 100,000 distinct keys, each on one job that ends: no key record is
 * left.  And a keyed job put back by a worker's crash keeps its key
 * until it ends. */
START_TEST(keys_do_not_outlive_their_jobs)
{
    fp_config cfg;
    char key[32];
    fp_job_opts o = { .timeout = -1 };
    size_t done = 0;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "both workers ready");
    for (int batch = 0; batch < 100; batch++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "k%d", batch * 1000 + i);
            submit_keyed(i, key);
        }
        ck_assert_uint_ge(fp_queue_nkeys(&H.pool->queue), 1);
        done += 1000;
        wait_outcomes(done, 60);
        /* Records go as outcomes are settled, before their callbacks. */
        ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 0);
    }
    o.key = "crashy";
    o.retries = 1;
    uint64_t id = submit_op("crash", &o);
    ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 1);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 2);
    ck_assert_uint_eq(fp_queue_nkeys(&H.pool->queue), 0);
}
END_TEST

/* A job waiting in a throttled key's lane past its `expires` ends
 * cancelled, "expired before it started"; the key's other jobs keep their
 * places. */
START_TEST(expires_cancels_a_job_waiting_for_a_token)
{
    fp_job_opts o = { .timeout = -1, .key = "A", .expires = 0.2 };

    three_jobs_held_back();                 /* A: rate 0, one job done */
    uint64_t id = submit_op_num("sleep", "s", 0, &o);
    ck_assert_uint_eq(limit_row("A").waiting, 3);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "expired before it started");
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_uint_eq(limit_row("A").waiting, 2);
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_int_eq(fp_pool_limit_remove(H.pool, "A"), 1);
    wait_outcomes(4, 20);
    ck_assert_uint_eq(count_for(id), 1);
}
END_TEST

static Suite *
pool_limits_suite(void)
{
    Suite *s = suite_create("pool_limits");
    TCase *tq = tcase_create("queue");
    TCase *tc = ph_tcase("pool");

    tcase_set_timeout(tq, 30);      /* 10,000 keys, on a loaded machine */
    tcase_add_test(tq, a_throttled_key_waits_alone_and_each_key_stays_fifo);
    tcase_add_test(tq, tokens_refill_at_the_rate_up_to_the_burst);
    tcase_add_test(tq, pool_wide_bucket_governs_every_job);
    tcase_add_test(tq, put_back_and_unlimit_keep_the_order_by_id);
    tcase_add_test(tq, a_key_record_lives_only_while_used);
    tcase_add_test(tq, a_bucket_needs_a_finite_rate_and_a_burst_of_at_least_one);
    tcase_add_test(tq, a_limit_past_the_bound_is_refused);
    tcase_add_test(tq, whole_tokens_saturate);
    tcase_add_test(tq, a_bucket_of_2_64_tokens_does_not_hide_the_ready_jobs);
    tcase_add_test(tq, no_more_than_the_bound_of_keys_get_a_bucket);
    tcase_add_test(tq, picking_costs_nothing_per_throttled_key);
    tcase_add_test(tq, a_token_due_within_the_slack_is_there);
    tcase_add_test(tq, woken_on_time_a_limit_keeps_its_rate_and_never_outruns_it);
    tcase_add_test(tq, the_heaps_pick_as_the_rule_says);
    suite_add_tcase(s, tq);
    tcase_add_test(tc, a_throttled_key_does_not_delay_another_key);
    tcase_add_loop_test(tc, starts_follow_the_configured_rate, 0, 2);
    tcase_add_test(tc, a_job_waiting_for_a_token_is_never_at_a_worker);
    tcase_add_test(tc, expires_cancels_a_job_waiting_for_a_token);
    tcase_add_test(tc, removing_a_limit_releases_the_waiting_jobs);
    tcase_add_test(tc, raising_a_limit_releases_the_waiting_jobs);
    tcase_add_test(tc, a_limit_needs_a_finite_rate);
    tcase_add_test(tc, a_limit_past_the_bound_is_refused_by_the_pool);
    tcase_add_test(tc, the_pool_refuses_a_key_past_the_bound);
    tcase_add_test(tc, the_rate_timer_is_set_for_the_moment_the_token_is_due);
    tcase_add_test(tc, the_rate_timer_fires_on_time_to_well_within_a_millisecond);
    tcase_add_test(tc, keys_do_not_outlive_their_jobs);
    tcase_add_test(tc, jobs_waiting_for_a_token_do_not_grow_the_pool);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_limits_suite());
}
