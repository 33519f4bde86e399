/*
 * check_worker_hold.c — a worker's held results (src/engine/worker_hold.c),
 * driven over a socketpair and a shared area like the real one: how many
 * results it holds, that they go out whole and in order, and that the
 * area's stream offsets account for every byte.
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/worker_hold.h"

/* A rig lives as long as the process: the flusher thread the hold starts
 * keeps using it after the test function returns (as a worker's does
 * until it exits). */
struct rig {
    struct fp_hold_area *area;
    struct fp_hold       hold;
    int                  sv[2];     /* [0]: the master's end */
};

static void
rig_start(struct rig *r, unsigned max_held)
{
    void *a = mmap(NULL, FP_HOLD_AREA, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(a, MAP_FAILED);
    r->area = a;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, r->sv), 0);
    ck_assert_int_eq(fp_hold_start(&r->hold, r->area, r->sv[1], max_held), 0);
}

/* Everything the master's end can read right now (nothing waits for the
 * flusher: it writes only results 1 ms old). */
static size_t
read_now(struct rig *r, char *buf, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t n = recv(r->sv[0], buf + got, cap - got, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got;
        got += (size_t)n;
    }
}

/* With room for 3, the fourth result of a burst sends all four at once,
 * in order: the master hears of them without waiting for the burst's end
 * or the flusher. */
START_TEST(a_full_hold_goes_out_with_the_result_that_fills_it)
{
    static struct rig r;
    char buf[64];

    rig_start(&r, 3);
    ck_assert_int_eq(fp_hold_send(&r.hold, "aa", 2, 1), 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "bbb", 3, 1), 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "c", 1, 1), 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "dddd", 4, 1), 0);
    ck_assert_uint_eq(read_now(&r, buf, sizeof buf), 10);
    ck_assert_int_eq(memcmp(buf, "aabbbcdddd", 10), 0);
    /* Nothing is held now, and the stream offset counts every byte. */
    ck_assert_uint_eq(__atomic_load_n(&r.area->len, __ATOMIC_ACQUIRE), 0);
    ck_assert_uint_eq(__atomic_load_n(&r.area->base, __ATOMIC_ACQUIRE), 10);
    fp_hold_stop(&r.hold);
}
END_TEST

/* A limit of 0 is taken as 1: the second result of a burst takes the
 * first out with it. */
START_TEST(a_limit_of_zero_holds_one)
{
    static struct rig r;
    char buf[16];

    rig_start(&r, 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "x", 1, 1), 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "y", 1, 1), 0);
    ck_assert_uint_eq(read_now(&r, buf, sizeof buf), 2);
    ck_assert_int_eq(memcmp(buf, "xy", 2), 0);
    ck_assert_uint_eq(__atomic_load_n(&r.area->base, __ATOMIC_ACQUIRE), 2);
    fp_hold_stop(&r.hold);
}
END_TEST

/* The burst's end (may_wait 0) writes what is held and its own bytes after
 * it; then a flush finds nothing more to write. */
START_TEST(the_end_of_a_burst_writes_everything_in_order)
{
    static struct rig r;
    char buf[16];

    rig_start(&r, 64);
    ck_assert_int_eq(fp_hold_send(&r.hold, "12", 2, 1), 0);
    ck_assert_int_eq(fp_hold_send(&r.hold, "345", 3, 0), 0);
    ck_assert_uint_eq(read_now(&r, buf, sizeof buf), 5);
    ck_assert_int_eq(memcmp(buf, "12345", 5), 0);
    ck_assert_int_eq(fp_hold_flush(&r.hold), 0);
    ck_assert_uint_eq(read_now(&r, buf, sizeof buf), 0);
    ck_assert_uint_eq(__atomic_load_n(&r.area->base, __ATOMIC_ACQUIRE), 5);
    fp_hold_stop(&r.hold);
}
END_TEST

static Suite *
worker_hold_suite(void)
{
    Suite *s = suite_create("worker hold");
    TCase *tc = tcase_create("hold");

    tcase_add_test(tc, a_full_hold_goes_out_with_the_result_that_fills_it);
    tcase_add_test(tc, a_limit_of_zero_holds_one);
    tcase_add_test(tc, the_end_of_a_burst_writes_everything_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_hold_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
