/*
 * check_meter.c — a module worker's job clock (src/engine/meter.c): how
 * long the running job has run, read from the tick counter once its rate
 * is known and from the clock before, agrees with the clock either way.
 * (What jobs cost -- CPU, peak memory -- is checked end to end by the
 * receipt suites.)
 */
#include "config.h"
#include <check.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "engine/meter.h"

/* Where meter.c has a tick counter to time jobs with. */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
#define HAVE_COUNTER 1
#else
#define HAVE_COUNTER 0
#endif
/* Where each CPU has a counter of its own (x86; aarch64's generic timer is
 * one for the system). */
#if defined(__x86_64__) || defined(__i386__)
#define COUNTER_PER_CPU 1
#else
#define COUNTER_PER_CPU 0
#endif

static uint64_t
clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Start a job, spin `spin_ns` on the clock, and check fp_meter_elapsed_ns
 * against the clock read before the start and after the reading: never
 * less than the spin, never more than the bracket (give or take the
 * rate's error, a few parts in a thousand: 2% allowed). */
static void
check_one_job(struct fp_meter *m, uint64_t spin_ns)
{
    struct fp_job_cost cost;
    uint64_t before = clock_ns();

    fp_meter_job_start(m);
    uint64_t started = clock_ns();
    while (clock_ns() - started < spin_ns)
        ;
    uint64_t got = fp_meter_elapsed_ns(m);
    uint64_t bracket = clock_ns() - before;
    ck_assert_msg(got >= spin_ns - spin_ns / 50,
                  "elapsed %llu ns after spinning %llu", (unsigned long long)got,
                  (unsigned long long)spin_ns);
    ck_assert_msg(got <= bracket + bracket / 50,
                  "elapsed %llu ns within %llu", (unsigned long long)got,
                  (unsigned long long)bracket);
    fp_meter_job_end(m, &cost);
    fp_meter_idle(m);
}

START_TEST(elapsed_follows_the_clock_before_and_after_calibration)
{
    struct fp_meter m;

    fp_meter_init(&m, -1);
    /* The first jobs: the rate is not known yet (the clock times them). */
    check_one_job(&m, 200000);
    ck_assert(m.ns_per_tick == 0);
    /* Past FP_METER_CALIBRATE: each job now samples and the rate is set
     * (where there is a counter: without, the clock goes on timing). */
    for (int i = 0; i < 20 && m.ns_per_tick == 0; i++)
        check_one_job(&m, 2000000);
    ck_assert(HAVE_COUNTER ? m.ns_per_tick > 0 : m.ns_per_tick == 0);
    /* The tick counter times them now: short and long. */
    for (int i = 0; i < 20; i++)
        check_one_job(&m, 50000);
    check_one_job(&m, 3000000);
    fp_meter_close(&m);
}
END_TEST

START_TEST(a_job_that_follows_another_is_timed_from_its_start)
{
    struct fp_meter m;
    struct fp_job_cost cost;

    fp_meter_init(&m, -1);
    for (int i = 0; i < 20 && m.ns_per_tick == 0; i++)
        check_one_job(&m, 2000000);
    /* Back to back (no idle between): the second starts where the first
     * ended, so what it reads is its own time, not the two together. */
    fp_meter_job_start(&m);
    uint64_t t = clock_ns();
    while (clock_ns() - t < 3000000)
        ;
    uint64_t before = clock_ns();
    fp_meter_job_end(&m, &cost);
    fp_meter_job_start(&m);
    uint64_t got = fp_meter_elapsed_ns(&m);
    uint64_t bracket = clock_ns() - before;
    ck_assert_msg(got <= bracket + bracket / 50, "elapsed %llu ns within %llu",
                  (unsigned long long)got, (unsigned long long)bracket);
    fp_meter_job_end(&m, &cost);
    fp_meter_close(&m);
}
END_TEST

/* Two CPUs' counters need not agree: a job that moved from one to another
 * cannot be timed by the counter, and reads as long (so the sweep of what
 * it started is never put off on the counter's word); its end takes the
 * clock's word, from a sample. */
START_TEST(a_job_that_moved_to_another_cpu_reads_as_long)
{
    struct fp_meter m;
    cpu_set_t was, one;
    int cpus[2], n = 0;

    ck_assert_int_eq(sched_getaffinity(0, sizeof(was), &was), 0);
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &was))
            cpus[n++] = c;
    if (n < 2)
        return;             /* one CPU: nowhere to move */
    if (!COUNTER_PER_CPU)
        return;             /* one counter for all, or the clock */
    fp_meter_init(&m, -1);
    for (int i = 0; i < 20 && m.ns_per_tick == 0; i++)
        check_one_job(&m, 2000000);
    ck_assert(m.ns_per_tick > 0);
    for (int round = 0; round < 2; round++) {
        CPU_ZERO(&one);
        CPU_SET(cpus[round], &one);
        ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        fp_meter_idle(&m);
        fp_meter_job_start(&m);
        /* Still on its CPU: the counter times it. */
        ck_assert_uint_lt(fp_meter_elapsed_ns(&m), 1000000000u);
        CPU_ZERO(&one);
        CPU_SET(cpus[1 - round], &one);
        ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        ck_assert_uint_eq(fp_meter_elapsed_ns(&m), UINT64_MAX);
        struct fp_job_cost cost;
        fp_meter_job_end(&m, &cost);
        ck_assert(cost.measured);   /* the clock's word, from a sample */
    }
    ck_assert_int_eq(sched_setaffinity(0, sizeof(was), &was), 0);
    fp_meter_close(&m);
}
END_TEST

static Suite *
meter_suite(void)
{
    Suite *s = suite_create("meter");
    TCase *tc = tcase_create("elapsed");

    tcase_add_test(tc, elapsed_follows_the_clock_before_and_after_calibration);
    tcase_add_test(tc, a_job_that_follows_another_is_timed_from_its_start);
    tcase_add_test(tc, a_job_that_moved_to_another_cpu_reads_as_long);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(meter_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
