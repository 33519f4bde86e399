/*
 * check_redis_functions.c — the server-side half of the scale-out queue
 * (src/redis/functions.lua, SPEC 10) against a real redis-server: the
 * lease check, its fencing by delivery count, renewal, hand-back,
 * recording and dead-lettering, each asserted on the stream and the
 * group's pending list as Redis itself reports them.
 */
#include "config.h"
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "redis/redis_functions.h"

#define JOBS  "fp:{q}:jobs"
#define DEAD  "fp:{q}:dead"
#define REPLY "fp:{q}:reply:c1"

static redisContext *rc;

/* One command from NULL-terminated string arguments; fails the test on a
 * transport error.  The reply is kept until the next call. */
static redisReply *
cmd(const char *arg, ...)
{
    static redisReply *last;
    const char *argv[64];
    size_t argvlen[64];
    int argc = 0;
    va_list ap;

    freeReplyObject(last);
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, 64);
        argv[argc] = a;
        argvlen[argc++] = strlen(a);
    }
    va_end(ap);
    last = redisCommandArgv(rc, argc, argv, argvlen);
    ck_assert_msg(last != NULL, "redis: %s", rc->errstr);
    ck_assert_msg(last->type != REDIS_REPLY_ERROR, "redis error: %s", last->str);
    return last;
}

static long long
cmd_int(const char *arg, ...)
{
    /* Re-dispatch through cmd() with up to 12 arguments. */
    const char *a[13] = { arg };
    va_list ap;
    int n = 1;

    va_start(ap, arg);
    while (n < 12 && (a[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    a[n] = NULL;
    redisReply *r = cmd(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
                        a[9], a[10], a[11], a[12]);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    return r->integer;
}

static void
setup(void)
{
    struct h_redis *r = h_redis_start();

    rc = h_redis_connect(r);
    redisReply *rep = cmd("FUNCTION", "LOAD", "REPLACE", fp_redis_functions,
                          NULL);
    ck_assert_str_eq(rep->str, "forkpool");
}

/* Submit payload; returns its id (static buffer per call site's copy). */
static char *
submit(const char *payload, const char *idem, int *fresh)
{
    redisReply *r = idem != NULL
        ? cmd("FCALL", "fp_submit", "2", JOBS, idem, payload, "", REPLY, "60",
              NULL)
        : cmd("FCALL", "fp_submit", "1", JOBS, payload, "", REPLY, "60", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 2);
    if (fresh != NULL)
        *fresh = (int)r->element[1]->integer;
    return strdup(r->element[0]->str);
}

/* Read up to n new jobs as consumer; returns how many. */
static size_t
read_new(const char *consumer, const char *n)
{
    redisReply *r = cmd("XREADGROUP", "GROUP", FP_REDIS_GROUP, consumer,
                        "COUNT", n, "STREAMS", JOBS, ">", NULL);
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    return r->element[0]->element[1]->elements;
}

/* The pending entry of id: its owner into owner (if not NULL) and its
 * delivery count; -1 if it is not pending. */
static long long
pending(const char *id, char *owner, size_t ownerlen)
{
    redisReply *r = cmd("XPENDING", JOBS, FP_REDIS_GROUP, id, id, "1", NULL);
    if (r->elements == 0)
        return -1;
    if (owner != NULL)
        snprintf(owner, ownerlen, "%s", r->element[0]->element[1]->str);
    return r->element[0]->element[3]->integer;
}

START_TEST(submit_is_idempotent_by_key)
{
    int fresh;
    char *a = submit("p1", "fp:{q}:idem:k", &fresh);
    ck_assert_int_eq(fresh, 1);
    char *b = submit("p1", "fp:{q}:idem:k", &fresh);
    ck_assert_int_eq(fresh, 0);
    ck_assert_str_eq(a, b);
    char *c = submit("p1", NULL, &fresh);
    ck_assert_int_eq(fresh, 1);
    ck_assert_str_ne(a, c);
    ck_assert_int_eq(cmd_int("XLEN", JOBS, NULL), 2);
    ck_assert_int_gt(cmd_int("TTL", "fp:{q}:idem:k", NULL), 0);
    free(a); free(b); free(c);
}
END_TEST

START_TEST(a_lapsed_lease_moves_and_fences_the_old_holder)
{
    char *id = submit("p1", NULL, NULL);
    char owner[64];

    ck_assert_uint_eq(read_new("A", "10"), 1);
    ck_assert_int_eq(pending(id, owner, sizeof(owner)), 1);
    ck_assert_str_eq(owner, "A");

    /* A renews with its token: nothing lost.  A wrong token is lost. */
    ck_assert_uint_eq(cmd("FCALL", "fp_renew", "1", JOBS, "A", id, "1",
                          NULL)->elements, 0);
    ck_assert_uint_eq(cmd("FCALL", "fp_renew", "1", JOBS, "A", id, "2",
                          NULL)->elements, 1);

    /* Held well within a long lease: B claims nothing. */
    ck_assert_uint_eq(cmd("FCALL", "fp_claim", "1", JOBS, "B", "60000", "10",
                          NULL)->elements, 1);
    /* Past a 50 ms lease (idle only grows): B claims it, count 2. */
    usleep(100 * 1000);
    redisReply *r = cmd("FCALL", "fp_claim", "1", JOBS, "B", "50", "10", NULL);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, "0-0");    /* looked at it all */
    ck_assert_str_eq(r->element[1]->element[0]->str, id);
    ck_assert_int_eq(r->element[1]->element[1]->integer, 2);
    ck_assert_str_eq(r->element[1]->element[2]->str, "p");
    ck_assert_str_eq(r->element[1]->element[3]->str, "p1");
    ck_assert_int_eq(pending(id, owner, sizeof(owner)), 2);
    ck_assert_str_eq(owner, "B");

    /* A may neither renew nor record any more, and changes nothing. */
    ck_assert_uint_eq(cmd("FCALL", "fp_renew", "1", JOBS, "A", id, "1",
                          NULL)->elements, 1);
    char out[96];
    snprintf(out, sizeof(out), "fp:{q}:out:%s", id);
    ck_assert_int_eq(cmd_int("FCALL", "fp_record", "3", JOBS, out, REPLY, "A",
                             id, "1", "late", "60", "100", NULL), 0);
    ck_assert_int_eq(cmd_int("EXISTS", out, NULL), 0);
    ck_assert_int_eq(cmd_int("XLEN", JOBS, NULL), 1);

    /* B records: acknowledged, gone from the stream, outcome kept. */
    ck_assert_int_eq(cmd_int("FCALL", "fp_record", "3", JOBS, out, REPLY, "B",
                             id, "2", "done", "60", "100", NULL), 1);
    ck_assert_int_eq(pending(id, NULL, 0), -1);
    ck_assert_int_eq(cmd_int("XLEN", JOBS, NULL), 0);
    ck_assert_str_eq(cmd("HGET", out, "o", NULL)->str, "done");
    ck_assert_str_eq(cmd("HGET", out, "by", NULL)->str, "B 2");
    ck_assert_int_gt(cmd_int("TTL", out, NULL), 0);
    r = cmd("XRANGE", REPLY, "-", "+", NULL);
    ck_assert_uint_eq(r->elements, 1);
    ck_assert_str_eq(r->element[0]->element[1]->element[1]->str, id);
    ck_assert_str_eq(r->element[0]->element[1]->element[3]->str, "done");
    ck_assert_int_gt(cmd_int("TTL", REPLY, NULL), 0);
    /* B's retry (its reply was lost) finds its own record: 1, unchanged;
     * A's stale call still 0. */
    ck_assert_int_eq(cmd_int("FCALL", "fp_record", "2", JOBS, out, "B", id,
                             "2", "again", "60", "100", NULL), 1);
    ck_assert_int_eq(cmd_int("FCALL", "fp_record", "2", JOBS, out, "A", id,
                             "1", "late", "60", "100", NULL), 0);
    ck_assert_str_eq(cmd("HGET", out, "o", NULL)->str, "done");
    ck_assert_uint_eq(cmd("XRANGE", REPLY, "-", "+", NULL)->elements, 1);
    free(id);
}
END_TEST

START_TEST(renewal_keeps_the_lease)
{
    char *id = submit("p1", NULL, NULL);

    ck_assert_uint_eq(read_new("A", "10"), 1);
    for (int i = 0; i < 5; i++) {
        usleep(60 * 1000);
        ck_assert_uint_eq(cmd("FCALL", "fp_renew", "1", JOBS, "A", id, "1",
                              NULL)->elements, 0);
        /* Just renewed: its idle time is far below 10 s. */
        ck_assert_uint_eq(cmd("FCALL", "fp_claim", "1", JOBS, "B", "10000",
                              "10", NULL)->elements, 1);
    }
    /* Renewal does not raise the delivery count (the token). */
    ck_assert_int_eq(pending(id, NULL, 0), 1);
    free(id);
}
END_TEST

START_TEST(handback_frees_the_job_without_counting_a_lost_host)
{
    char *id = submit("p1", NULL, NULL);
    char owner[64];

    ck_assert_uint_eq(read_new("A", "10"), 1);
    ck_assert_int_eq(cmd_int("FCALL", "fp_handback", "1", JOBS, "A", id, "1",
                             NULL), 1);
    /* At once claimable with any lease; the count comes back to 1. */
    redisReply *r = cmd("FCALL", "fp_claim", "1", JOBS, "B", "60000", "10", NULL);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_int_eq(r->element[1]->element[1]->integer, 1);
    ck_assert_int_eq(pending(id, owner, sizeof(owner)), 1);
    ck_assert_str_eq(owner, "B");
    /* A's stale hand-back changes nothing. */
    ck_assert_int_eq(cmd_int("FCALL", "fp_handback", "1", JOBS, "A", id, "1",
                             NULL), 0);
    ck_assert_int_eq(pending(id, owner, sizeof(owner)), 1);
    ck_assert_str_eq(owner, "B");
    free(id);
}
END_TEST

START_TEST(dead_letter_copies_the_job_and_its_outcome)
{
    char *id = submit("poison", NULL, NULL);
    char out[96];

    snprintf(out, sizeof(out), "fp:{q}:out:%s", id);
    ck_assert_uint_eq(read_new("A", "10"), 1);
    ck_assert_int_eq(cmd_int("FCALL", "fp_record", "2", JOBS, out, "A", id,
                             "1", "lost", "60", "100", DEAD, NULL), 1);
    redisReply *r = cmd("XRANGE", DEAD, "-", "+", NULL);
    ck_assert_uint_eq(r->elements, 1);
    redisReply *f = r->element[0]->element[1];
    ck_assert_uint_eq(f->elements, 8);
    ck_assert_str_eq(f->element[0]->str, "id");
    ck_assert_str_eq(f->element[1]->str, id);
    ck_assert_str_eq(f->element[2]->str, "outcome");
    ck_assert_str_eq(f->element[3]->str, "lost");
    ck_assert_str_eq(f->element[4]->str, "p");
    ck_assert_str_eq(f->element[5]->str, "poison");
    ck_assert_int_eq(cmd_int("XLEN", JOBS, NULL), 0);
    free(id);
}
END_TEST

START_TEST(the_library_reloads_and_survives_a_restart)
{
    struct h_redis *r = h_redis_start();
    redisContext *c = h_redis_connect(r);
    redisReply *rep;

    rep = redisCommand(c, "FUNCTION LOAD REPLACE %s", fp_redis_functions);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    freeReplyObject(rep);
    rep = redisCommand(c, "FCALL fp_submit 1 " JOBS " p1 '' '' 60");
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    redisFree(c);
    /* kill -9: the AOF (appendfsync always) keeps the job and the library. */
    h_redis_restart(r);
    c = h_redis_connect(r);
    rep = redisCommand(c, "XLEN " JOBS);
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);
    rep = redisCommand(c, "FCALL fp_join 1 " JOBS);
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(c);
}
END_TEST

START_TEST(record_many_records_each_under_its_own_check)
{
    char *a = submit("pa", NULL, NULL), *b = submit("pb", NULL, NULL);
    char out_a[96], out_b[96];

    snprintf(out_a, sizeof(out_a), "fp:{q}:out:%s", a);
    snprintf(out_b, sizeof(out_b), "fp:{q}:out:%s", b);
    ck_assert_uint_eq(read_new("A", "10"), 2);
    /* a with A's token and a reply; b with a wrong token, dead-lettered. */
    redisReply *r = cmd("FCALL", "fp_record_many", "6", JOBS, DEAD, out_a, REPLY,
                        out_b, out_b, "A", "60", "100",
                        a, "1", "oa", "r", b, "7", "ob", "d", NULL);
    ck_assert_uint_eq(r->elements, 2);
    ck_assert_int_eq(r->element[0]->integer, 1);
    ck_assert_int_eq(r->element[1]->integer, 0);
    ck_assert_str_eq(cmd("HGET", out_a, "o", NULL)->str, "oa");
    ck_assert_int_eq(cmd_int("EXISTS", out_b, NULL), 0);
    ck_assert_int_eq(pending(a, NULL, 0), -1);
    ck_assert_int_eq(pending(b, NULL, 0), 1);
    ck_assert_int_eq(cmd_int("XLEN", DEAD, NULL), 0);
    ck_assert_uint_eq(cmd("XRANGE", REPLY, "-", "+", NULL)->elements, 1);
    /* Now b with its token, dead-lettered, no reply stream. */
    r = cmd("FCALL", "fp_record_many", "4", JOBS, DEAD, out_b, out_b, "A", "60",
            "100", b, "1", "ob", "d", NULL);
    ck_assert_int_eq(r->element[0]->integer, 1);
    ck_assert_int_eq(cmd_int("XLEN", DEAD, NULL), 1);
    ck_assert_uint_eq(cmd("XRANGE", REPLY, "-", "+", NULL)->elements, 1);
    ck_assert_int_eq(cmd_int("XLEN", JOBS, NULL), 0);
    free(a);
    free(b);
}
END_TEST

static Suite *
redis_functions_suite(void)
{
    Suite *s = suite_create("redis functions");
    TCase *tc = h_tcase("lease", 30);

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, submit_is_idempotent_by_key);
    tcase_add_test(tc, a_lapsed_lease_moves_and_fences_the_old_holder);
    tcase_add_test(tc, renewal_keeps_the_lease);
    tcase_add_test(tc, handback_frees_the_job_without_counting_a_lost_host);
    tcase_add_test(tc, dead_letter_copies_the_job_and_its_outcome);
    tcase_add_test(tc, record_many_records_each_under_its_own_check);
    suite_add_tcase(s, tc);
    tc = h_tcase("server", 30);
    tcase_add_test(tc, the_library_reloads_and_survives_a_restart);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (!h_redis_available()) {
        fprintf(stderr, "redis-server not found: skipped\n");
        return 77;
    }
    return h_run_suite(redis_functions_suite());
}
