/*
 * check_poison.c — the poison-payload table (src/engine/poison.c), pure:
 * crashes counted per payload, quarantine at K and not before, crashes
 * forgotten after an hour, a fixed table whose quarantined entries
 * survive a flood of other payloads, and the hash the log names.
 */
#include "config.h"
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "forkpool.h"
#include "engine/poison.h"

/* {"op": "crash"} as msgpack: testmod's crashing job. */
static const char CRASH[] = "\x81\xa2op\xa5" "crash";
#define CRASH_LEN (sizeof(CRASH) - 1)

START_TEST(quarantined_after_k_crashes_and_not_before)
{
    struct fp_poison *t = fp_poison_new(3);
    char hex[FP_POISON_HEX];

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, 1000), 0);
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, 1000, hex), 0);
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, 1001, hex), 0);
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, 1001), 0);
    ck_assert_uint_eq(fp_poison_count(t, 1001), 0);
    /* The third crash quarantines it, and says so once. */
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, 1002, hex), 1);
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, 1002), 1);
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, 1003, hex), 0);
    ck_assert_uint_eq(fp_poison_count(t, 1003), 1);
    /* Other bytes, even one more or one less, are not it. */
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN - 1, 1003), 0);
    ck_assert_int_eq(fp_poison_check(t, "\x81\xa2op\xa5" "crasH", CRASH_LEN, 1003), 0);
    fp_poison_free(t);
}
END_TEST

START_TEST(the_hash_is_blake2b_128_of_the_payload)
{
    struct fp_poison *t = fp_poison_new(1);
    char hex[FP_POISON_HEX];

    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, 5, hex), 1);
    /* printf '\x81\xa2op\xa5crash' | b2sum -l 128 */
    ck_assert_str_eq(hex, "59ee1a56c0eda2c35904da2afcb3db0a");
    fp_poison_free(t);
}
END_TEST

START_TEST(crashes_are_forgotten_after_an_hour)
{
    struct fp_poison *t = fp_poison_new(2);
    double t0 = 1.7e9;

    fp_poison_crash(t, CRASH, CRASH_LEN, t0, NULL);
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, t0 + 1, NULL), 1);
    /* Held 48 minutes later; gone an hour later. */
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, t0 + 2880), 1);
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, t0 + FP_POISON_WINDOW), 0);
    ck_assert_uint_eq(fp_poison_count(t, t0 + FP_POISON_WINDOW), 0);
    /* Two crashes more than an hour apart never add up to two. */
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, t0 + 2 * FP_POISON_WINDOW,
                                     NULL), 0);
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, t0 + 2 * FP_POISON_WINDOW), 0);
    /* Within it they do, and the quarantine is announced again. */
    ck_assert_int_eq(fp_poison_crash(t, CRASH, CRASH_LEN, t0 + 2 * FP_POISON_WINDOW
                                     + 1200, NULL), 1);
    fp_poison_free(t);
}
END_TEST

START_TEST(the_table_stays_bounded_and_keeps_what_it_quarantined)
{
    struct fp_poison *t = fp_poison_new(2);
    char job[32];

    fp_poison_crash(t, CRASH, CRASH_LEN, 100, NULL);
    fp_poison_crash(t, CRASH, CRASH_LEN, 100, NULL);
    /* Far more payloads than entries, each crashing once: they push one
     * another out, never the quarantined one. */
    for (unsigned i = 0; i < 20 * FP_POISON_PAYLOADS; i++) {
        int n = snprintf(job, sizeof(job), "\xa9" "p%08u", i);
        fp_poison_crash(t, job, (size_t)n, 200, NULL);
    }
    ck_assert_int_eq(fp_poison_check(t, CRASH, CRASH_LEN, 300), 1);
    ck_assert_uint_eq(fp_poison_count(t, 300), 1);
    fp_poison_free(t);
}
END_TEST

START_TEST(bad_thresholds_are_refused)
{
    ck_assert_ptr_null(fp_poison_new(0));
    ck_assert_ptr_null(fp_poison_new(FP_POISON_AFTER_MAX + 1));
    struct fp_poison *t = fp_poison_new(FP_POISON_AFTER_MAX);
    ck_assert_ptr_nonnull(t);
    fp_poison_free(t);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("poison");
    TCase *tc = tcase_create("table");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, quarantined_after_k_crashes_and_not_before);
    tcase_add_test(tc, the_hash_is_blake2b_128_of_the_payload);
    tcase_add_test(tc, crashes_are_forgotten_after_an_hour);
    tcase_add_test(tc, the_table_stays_bounded_and_keeps_what_it_quarantined);
    tcase_add_test(tc, bad_thresholds_are_refused);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
