/*
 * check_redis_conn.c — the URL parser and the master's Redis connection
 * (src/redis/redis_url.c, redis_conn.c) against a real redis-server that
 * the test kills, stops and restarts: every command gets exactly one
 * callback, "down" is reported once per outage, the connection comes back
 * by itself with the functions loaded again, and a server that stops
 * answering costs a deadline, never a blocked loop.
 */
#include "config.h"
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>

#include "harness.h"
#include "redis/redis_conn.h"
#include "redis/redis_url.h"

/* ---- URLs ------------------------------------------------------------- */

static int
parse(const char *text, struct fp_redis_url *u)
{
    char err[200];
    return fp_redis_url_parse(text, u, err, sizeof(err));
}

START_TEST(urls_parse_exactly)
{
    struct fp_redis_url u;

    ck_assert_int_eq(parse("unix:/run/redis/redis.sock", &u), 0);
    ck_assert_str_eq(u.path, "/run/redis/redis.sock");
    ck_assert_int_eq(parse("redis://localhost", &u), 0);
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_uint_eq(u.port, 6379);
    ck_assert_uint_eq(u.db, 0);
    ck_assert_int_eq(parse("redis://127.0.0.1:7000/3", &u), 0);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_uint_eq(u.port, 7000);
    ck_assert_uint_eq(u.db, 3);
    ck_assert_int_eq(parse("redis://[::1]:7001", &u), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_uint_eq(u.port, 7001);

    const char *bad[] = {
        "", "unix:", "unix:relative.sock", "http://x", "redis://",
        "redis://:6379", "redis://h:0", "redis://h:65536", "redis://h:12x",
        "redis://h:", "redis://u:pw@h", "redis://h/x", "redis://h/",
        "redis://h?timeout=1", "redis://[::1", "redis://[::1]x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse(bad[i], &u) < 0, "accepted '%s'", bad[i]);
    char err[200];
    fp_redis_url_parse("redis://u:pw@h", &u, err, sizeof(err));
    ck_assert_str_eq(err, "bad Redis URL 'redis://u:pw@h': passwords are not supported");
}
END_TEST

/* ---- the connection ---------------------------------------------------- */

struct watch {
    struct ev_loop *loop;
    int ups, downs;
    char why[200];
    int replies, failures;      /* command callbacks: with / without reply */
    long long last_int;
};

static void
on_state(struct fp_redis_conn *c, int up, const char *why, void *arg)
{
    struct watch *w = arg;
    (void)c;
    if (up) {
        w->ups++;
    } else {
        w->downs++;
        snprintf(w->why, sizeof(w->why), "%s", why);
    }
    ev_break(w->loop, EVBREAK_ONE);
}

static void
on_reply(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct watch *w = arg;
    (void)c;
    if (r == NULL) {
        w->failures++;
    } else {
        w->replies++;
        if (r->type == REDIS_REPLY_INTEGER)
            w->last_int = r->integer;
    }
    ev_break(w->loop, EVBREAK_ONE);
}

/* Run the loop until *counter reaches want or timeout_ms passes. */
static int
run_until(struct watch *w, int *counter, int want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    /* Each test runs a 50 ms tick, so one iteration never blocks long. */
    while (*counter < want && h_left_ms(deadline) > 0)
        ev_run(w->loop, EVRUN_ONCE);
    return *counter >= want;
}

static struct fp_redis_conn *
open_conn(struct watch *w, struct h_redis *r, double timeout)
{
    struct fp_redis_conn_cfg cfg = {
        .name = "redis", .timeout = timeout, .backoff_min = 0.02,
        .backoff_max = 0.2, .load_functions = 1, .on_state = on_state,
        .arg = w,
    };
    char err[200];

    ck_assert_int_eq(fp_redis_url_parse(r->url, &cfg.url, err, sizeof(err)), 0);
    return fp_redis_conn_new(w->loop, &cfg);
}

static int
send_cmd(struct fp_redis_conn *c, struct watch *w, const char *a, const char *b,
     const char *d)
{
    const char *argv[] = { a, b, d };
    int argc = d != NULL ? 3 : b != NULL ? 2 : 1;
    return fp_redis_command(c, on_reply, w, 0, argc, argv, NULL);
}

/* A timer that keeps the loop from blocking forever in ev_run ONCE. */
static void tick_cb(struct ev_loop *l, ev_timer *t, int e) { (void)l; (void)t; (void)e; }

START_TEST(comes_up_with_functions_and_survives_restarts)
{
    struct h_redis *r = h_redis_start();
    struct watch w = { .loop = ev_loop_new(0) };
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.05, 0.05);
    ev_timer_start(w.loop, &tick);

    struct fp_redis_conn *c = open_conn(&w, r, 2.0);
    ck_assert(run_until(&w, &w.ups, 1, 5000));
    ck_assert(fp_redis_conn_up(c));
    /* The library is loaded: fp_join answers. */
    const char *join[] = { "FCALL", "fp_join", "1", "fp:{t}:jobs" };
    ck_assert_int_eq(fp_redis_command(c, on_reply, &w, 0, 4, join, NULL), 0);
    ck_assert(run_until(&w, &w.replies, 1, 5000));
    ck_assert_int_eq(w.last_int, 1);

    /* kill -9 with a command in flight: its callback runs once, without
     * a reply; "down" once; commands refused while down. */
    ck_assert_int_eq(send_cmd(c, &w, "DEBUG", "SLEEP", "0.5"), 0);
    h_redis_kill(r, SIGKILL);
    ck_assert(run_until(&w, &w.downs, 1, 5000));
    ck_assert(run_until(&w, &w.failures, 1, 5000));
    ck_assert_int_eq(w.replies, 1);
    ck_assert_int_eq(send_cmd(c, &w, "PING", NULL, NULL), -1);
    /* Reconnect attempts against a dead socket: still one "down". */
    for (int i = 0; i < 10; i++)
        ev_run(w.loop, EVRUN_ONCE);
    ck_assert_int_eq(w.downs, 1);

    /* Back: up again by itself, functions loaded again (a fresh server
     * would have them from the AOF anyway; FUNCTION FLUSH proves it). */
    h_redis_restart(r);
    redisContext *rc = h_redis_connect(r);
    freeReplyObject(redisCommand(rc, "FUNCTION FLUSH"));
    redisFree(rc);
    ck_assert(run_until(&w, &w.ups, 2, 5000));
    ck_assert_int_eq(fp_redis_command(c, on_reply, &w, 0, 4, join, NULL), 0);
    ck_assert(run_until(&w, &w.replies, 2, 5000));
    ck_assert_int_eq(w.last_int, 1);

    fp_redis_conn_free(c);
    ev_loop_destroy(w.loop);
}
END_TEST

START_TEST(a_server_that_stops_answering_costs_a_deadline)
{
    struct h_redis *r = h_redis_start();
    struct watch w = { .loop = ev_loop_new(0) };
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.05, 0.05);
    ev_timer_start(w.loop, &tick);

    struct fp_redis_conn *c = open_conn(&w, r, 0.3);
    ck_assert(run_until(&w, &w.ups, 1, 5000));
    h_redis_kill(r, SIGSTOP);
    int64_t t0 = h_now_ms();
    ck_assert_int_eq(send_cmd(c, &w, "PING", NULL, NULL), 0);
    ck_assert_int_eq(send_cmd(c, &w, "PING", NULL, NULL), 0);
    ck_assert(run_until(&w, &w.failures, 2, 5000));
    ck_assert_int_ge(h_now_ms() - t0, 250);     /* not before its deadline */
    ck_assert_int_eq(w.downs, 1);
    ck_assert_msg(strstr(w.why, "no answer within 0.3 s") != NULL, "%s", w.why);
    ck_assert_int_eq(w.replies, 0);
    h_redis_kill(r, SIGCONT);
    ck_assert(run_until(&w, &w.ups, 2, 5000));
    ck_assert_int_eq(send_cmd(c, &w, "PING", NULL, NULL), 0);
    ck_assert(run_until(&w, &w.replies, 1, 5000));

    fp_redis_conn_free(c);
    ev_loop_destroy(w.loop);
}
END_TEST

START_TEST(no_server_yet_is_one_down_then_up)
{
    struct h_redis *r = h_redis_start();
    struct watch w = { .loop = ev_loop_new(0) };
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.05, 0.05);
    ev_timer_start(w.loop, &tick);

    h_redis_kill(r, SIGKILL);
    unlink(r->sock);
    struct fp_redis_conn *c = open_conn(&w, r, 1.0);
    ck_assert(run_until(&w, &w.downs, 1, 5000));
    ck_assert_msg(strstr(w.why, "cannot connect") != NULL, "%s", w.why);
    h_redis_restart(r);
    ck_assert(run_until(&w, &w.ups, 1, 5000));
    ck_assert_int_eq(w.downs, 1);
    /* Freeing with a command in flight runs its callback once. */
    ck_assert_int_eq(send_cmd(c, &w, "PING", NULL, NULL), 0);
    fp_redis_conn_free(c);
    ck_assert_int_eq(w.failures + w.replies, 1);
    ev_loop_destroy(w.loop);
}
END_TEST

static Suite *
redis_conn_suite(void)
{
    Suite *s = suite_create("redis connection");
    TCase *tc = h_tcase("url", 10);

    tcase_add_test(tc, urls_parse_exactly);
    suite_add_tcase(s, tc);
    tc = h_tcase("conn", 30);
    tcase_add_test(tc, comes_up_with_functions_and_survives_restarts);
    tcase_add_test(tc, a_server_that_stops_answering_costs_a_deadline);
    tcase_add_test(tc, no_server_yet_is_one_down_then_up);
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
    return h_run_suite(redis_conn_suite());
}
