/*
 * check_stderr_budget.c — the budget of a worker's stderr
 * (src/engine/stderr_budget.c) and the token bucket under it
 * (src/engine/bucket.c), driven with made-up times: no worker, no loop.
 */
#include "config.h"
#include <check.h>
#include <stdlib.h>

#include "engine/bucket.h"
#include "engine/stderr_budget.h"

/* ---- the bucket ------------------------------------------------------- */

START_TEST(bucket_starts_full_and_refills_at_its_rate_up_to_its_burst)
{
    struct fp_bucket b;

    fp_bucket_init(&b, 10, 5, 100.0);
    ck_assert_double_eq(fp_bucket_tokens_at(&b, 100.0), 5);
    fp_bucket_take(&b, 5);
    ck_assert_double_eq_tol(fp_bucket_tokens_at(&b, 100.2), 2, 1e-9);
    ck_assert_double_eq(fp_bucket_tokens_at(&b, 200.0), 5);
    /* Taking more than it holds leaves it empty, not in debt. */
    fp_bucket_take(&b, 50);
    ck_assert_double_eq(b.tokens, 0);
}
END_TEST

START_TEST(bucket_wait_says_when_n_tokens_are_there)
{
    struct fp_bucket b;

    fp_bucket_init(&b, 4, 8, 0.0);
    ck_assert_double_eq(fp_bucket_wait(&b, 8, 0.0), 0);
    fp_bucket_take(&b, 8);
    ck_assert_double_eq_tol(fp_bucket_wait(&b, 2, 0.0), 0.5, 1e-9);
    ck_assert_double_eq(fp_bucket_wait(&b, 2, 0.5), 0);
    /* More than the burst never comes; nor anything without a rate. */
    ck_assert_double_lt(fp_bucket_wait(&b, 9, 0.5), 0);
    fp_bucket_init(&b, 0, 1, 0.0);
    fp_bucket_take(&b, 1);
    ck_assert_double_lt(fp_bucket_wait(&b, 1, 1000.0), 0);
}
END_TEST

/* ---- lines and bytes that reach the log ------------------------------ */

START_TEST(a_burst_of_lines_is_logged_then_the_rest_is_counted)
{
    struct fp_stderr_budget b;
    uint64_t lines, bytes;
    int admitted = 0;

    fp_stderr_budget_init(&b, 0.0);
    ck_assert_int_eq(fp_stderr_budget_summary(&b, &lines, &bytes), 0);
    for (int i = 0; i < FP_STDERR_LINES_BURST + 500; i++)
        admitted += fp_stderr_budget_admit(&b, 1, 0.0);
    ck_assert_int_eq(admitted, FP_STDERR_LINES_BURST);
    ck_assert_int_eq(fp_stderr_budget_summary(&b, &lines, &bytes), 1);
    ck_assert_uint_eq(lines, 500);
    ck_assert_uint_eq(bytes, 500);
    /* Counted once: the summary starts again from zero. */
    ck_assert_int_eq(fp_stderr_budget_summary(&b, &lines, &bytes), 0);
}
END_TEST

START_TEST(lines_come_back_at_the_sustained_rate)
{
    struct fp_stderr_budget b;
    int admitted = 0;

    fp_stderr_budget_init(&b, 0.0);
    while (fp_stderr_budget_admit(&b, 1, 0.0))
        ;
    /* Ten seconds of a flood, a line every millisecond. */
    for (int ms = 1; ms <= 10000; ms++)
        admitted += fp_stderr_budget_admit(&b, 1, ms / 1000.0);
    ck_assert_int_ge(admitted, 10 * FP_STDERR_LINES_RATE - 1);
    ck_assert_int_le(admitted, 10 * FP_STDERR_LINES_RATE + 1);
}
END_TEST

START_TEST(long_lines_are_held_to_the_bytes_budget)
{
    struct fp_stderr_budget b;
    uint64_t lines, bytes;
    int admitted = 0;

    fp_stderr_budget_init(&b, 0.0);
    for (int i = 0; i < 200; i++)
        admitted += fp_stderr_budget_admit(&b, 1000, 0.0);
    ck_assert_int_eq(admitted, FP_STDERR_BYTES_BURST / 1000);
    ck_assert_int_eq(fp_stderr_budget_summary(&b, &lines, &bytes), 1);
    ck_assert_uint_eq(lines, 200 - admitted);
    ck_assert_uint_eq(bytes, 1000 * lines);
    /* A refused long line took nothing: a short one still fits. */
    ck_assert_int_eq(fp_stderr_budget_admit(&b, 10, 0.0), 1);
}
END_TEST

/* ---- what the master reads -------------------------------------------- */

START_TEST(reading_is_a_chunk_per_wakeup_then_paced)
{
    struct fp_stderr_budget b;
    size_t total = 0;

    fp_stderr_budget_init(&b, 0.0);
    /* The burst, one chunk at a time. */
    for (;;) {
        size_t n = fp_stderr_budget_readable(&b, 0.0);
        ck_assert_uint_le(n, FP_STDERR_READ_CHUNK);
        if (n < FP_STDERR_READ_CHUNK)
            break;
        fp_stderr_budget_read(&b, n);
        total += n;
    }
    ck_assert_uint_eq(total, FP_STDERR_READ_BURST);
    /* Then a chunk comes back after chunk / rate seconds. */
    double wait = fp_stderr_budget_read_wait(&b, 0.0);
    ck_assert_double_eq_tol(wait, (double)FP_STDERR_READ_CHUNK / FP_STDERR_READ_RATE, 1e-9);
    ck_assert_uint_eq(fp_stderr_budget_readable(&b, wait), FP_STDERR_READ_CHUNK);
    ck_assert_double_eq(fp_stderr_budget_read_wait(&b, wait), 0);
}
END_TEST

static Suite *
stderr_budget_suite(void)
{
    Suite *s = suite_create("stderr budget");
    TCase *tc = tcase_create("bucket");

    tcase_add_test(tc, bucket_starts_full_and_refills_at_its_rate_up_to_its_burst);
    tcase_add_test(tc, bucket_wait_says_when_n_tokens_are_there);
    suite_add_tcase(s, tc);
    tc = tcase_create("budget");
    tcase_add_test(tc, a_burst_of_lines_is_logged_then_the_rest_is_counted);
    tcase_add_test(tc, lines_come_back_at_the_sustained_rate);
    tcase_add_test(tc, long_lines_are_held_to_the_bytes_budget);
    tcase_add_test(tc, reading_is_a_chunk_per_wakeup_then_paced);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(stderr_budget_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
