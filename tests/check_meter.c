/*
 * check_meter.c — a module worker's job clock (src/engine/meter.c): how
 * long the running job has run, read from the tick counter once its rate
 * is known and from the clock before, agrees with the clock either way.
 * (What jobs cost -- CPU, peak memory -- is checked end to end by the
 * receipt suites.)
 */
#include "config.h"
#include <check.h>
#include <stdint.h>
#include <time.h>

#include "engine/meter.h"

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
    /* Past FP_METER_CALIBRATE: each job now samples and the rate is set. */
    for (int i = 0; i < 20 && m.ns_per_tick == 0; i++)
        check_one_job(&m, 2000000);
    ck_assert(m.ns_per_tick > 0);
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
    ck_assert(m.ns_per_tick > 0);
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

static Suite *
meter_suite(void)
{
    Suite *s = suite_create("meter");
    TCase *tc = tcase_create("elapsed");

    tcase_add_test(tc, elapsed_follows_the_clock_before_and_after_calibration);
    tcase_add_test(tc, a_job_that_follows_another_is_timed_from_its_start);
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
