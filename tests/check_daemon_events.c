/*
 * check_daemon_events.c — forkpoold's event stream (SPEC §7 `subscribe`,
 * §8 `forkpoolctl events`), poison payloads (§5 `--poison-after`) and the
 * metrics they feed.
 *
 * The scripted sequence states every event in order.  The one
 * nondeterminism it allows, and the README documents: a worker retired
 * (by a reload, a scale-down, a drain) exits when its process gets round
 * to it, so its "exited" event may come anywhere after its "retired" one.
 */
#include "config.h"
#include <check.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

#define EVENT_MS 10000

/* ------------------------------------------------------------------------
 * Reading the stream
 * ------------------------------------------------------------------------ */

/* A subscriber's stream, with the retired workers whose exit may come at
 * any later point. */
struct stream {
    struct h_rpc *c;
    pid_t         retired[16];
    int           exited[16];       /* exit events seen, per retired pid */
    int           nretired;
};

static int
retired_at(const struct stream *s, pid_t pid)
{
    for (int i = 0; i < s->nretired; i++)
        if (s->retired[i] == pid)
            return i;
    return -1;
}

static const char *
str_or_null(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = h_get(m, key);
    return v != NULL ? h_get_str(m, key) : NULL;
}

/* Take one event for the retired-worker bookkeeping: returns 1 if it was
 * the exit of a retired worker (then it is checked and counted). */
static int
deferred_exit(struct stream *s, const msgpack_object *m)
{
    int i;

    if (strcmp(h_get_str(m, "event"), "worker") != 0
        || strcmp(h_get_str(m, "what"), "exited") != 0
        || (i = retired_at(s, (pid_t)h_get_int(m, "pid"))) < 0)
        return 0;
    ck_assert_str_eq(h_get_str(m, "detail"), "exited normally");
    s->exited[i]++;
    return 1;
}

/* The next event of the main sequence (asserted). */
static const msgpack_object *
next_event(struct stream *s)
{
    for (;;) {
        struct h_resp *r = h_rpc_next_event(s->c, EVENT_MS);
        ck_assert_msg(r != NULL, "no event within %d ms", EVENT_MS);
        if (deferred_exit(s, r->result))
            continue;
        return r->result;
    }
}

/* The next event is {"event": "worker", "pid": pid (0: any), "what": what,
 * "detail"?: detail (NULL: absent)}; returns its pid. */
static pid_t
expect_worker(struct stream *s, const char *what, pid_t pid, const char *detail)
{
    const msgpack_object *m = next_event(s);

    ck_assert_msg(strcmp(h_get_str(m, "event"), "worker") == 0
                  && strcmp(h_get_str(m, "what"), what) == 0,
                  "expected worker %s, got %s", what, h_json(m));
    pid_t got = (pid_t)h_get_int(m, "pid");
    if (pid != 0)
        ck_assert_int_eq(got, pid);
    if (detail == NULL)
        ck_assert_msg(h_get(m, "detail") == NULL, "unexpected detail: %s", h_json(m));
    else
        ck_assert_str_eq(str_or_null(m, "detail"), detail);
    ck_assert_uint_eq(m->via.map.size, detail != NULL ? 4 : 3);
    if (strcmp(what, "retired") == 0) {
        ck_assert_int_lt(s->nretired, 16);
        s->retired[s->nretired++] = got;
    }
    return got;
}

static void
expect_pool(struct stream *s, const char *what, int64_t workers)
{
    const msgpack_object *m = next_event(s);

    ck_assert_msg(strcmp(h_get_str(m, "event"), "pool") == 0
                  && strcmp(h_get_str(m, "what"), what) == 0,
                  "expected pool %s, got %s", what, h_json(m));
    ck_assert_int_eq(h_get_int(m, "workers"), workers);
    ck_assert_uint_eq(m->via.map.size, 3);
}

/* A job event's stats: exactly the receipt's keys (SPEC §3). */
static void
check_stats(const msgpack_object *m, int64_t attempts)
{
    static const char *const keys[] = { "wait_ms", "run_ms", "cpu_ms", "maxrss_kb" };
    const msgpack_object *st = h_get(m, "stats");

    ck_assert_msg(st != NULL && st->type == MSGPACK_OBJECT_MAP && st->via.map.size == 5,
                  "bad stats in %s", h_json(m));
    for (size_t i = 0; i < 4; i++) {
        const msgpack_object *v = h_get(st, keys[i]);
        ck_assert_msg(v != NULL && (v->type == MSGPACK_OBJECT_FLOAT64
                                    || v->type == MSGPACK_OBJECT_POSITIVE_INTEGER),
                      "stats.%s in %s", keys[i], h_json(m));
    }
    ck_assert_int_eq(h_get_int(st, "attempts"), attempts);
}

static void
expect_job(struct stream *s, int64_t id, const char *kind, int64_t attempts)
{
    const msgpack_object *m = next_event(s);

    ck_assert_msg(strcmp(h_get_str(m, "event"), "job") == 0,
                  "expected job %lld, got %s", (long long)id, h_json(m));
    ck_assert_int_eq(h_get_int(m, "id"), id);
    ck_assert_str_eq(h_get_str(m, "kind"), kind);
    ck_assert_uint_eq(m->via.map.size, 4);
    check_stats(m, attempts);
}

static struct h_rpc *
subscribed(struct h_daemon *d)
{
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_rpc_call(c, "subscribe", "[]");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_str_eq(h_json(r->result), "true");
    return c;
}

/* ------------------------------------------------------------------------
 * The stream
 * ------------------------------------------------------------------------ */

START_TEST(events_of_a_scripted_sequence)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);
    pid_t a = h_worker_pid(c);          /* job 1, before anyone listens */
    struct stream s = { .c = subscribed(d) };
    struct h_resp *r;

    /* An ok job; a crash: the death, its outcome, the replacement. */
    h_submit_ok(c, "{\"x\": 1}");
    expect_job(&s, 2, "ok", 1);
    r = h_submit(c, "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    expect_worker(&s, "exited", a, "killed by SIGSEGV");
    expect_job(&s, 3, "crashed", 1);
    pid_t b = expect_worker(&s, "spawned", 0, NULL);
    expect_worker(&s, "ready", b, NULL);

    /* scale 2: one more. */
    r = h_rpc_call(c, "scale", "[2]");
    ck_assert_ptr_null(r->error);
    expect_pool(&s, "scale", 2);
    pid_t cw = expect_worker(&s, "spawned", 0, NULL);
    expect_worker(&s, "ready", cw, NULL);

    /* reload: each worker replaced in turn, the new one ready before the
     * old one is retired. */
    r = h_rpc_call(c, "reload", "[]");
    ck_assert_ptr_null(r->error);
    expect_pool(&s, "reload", 2);
    pid_t dw = expect_worker(&s, "spawned", 0, NULL);
    expect_worker(&s, "ready", dw, NULL);
    expect_worker(&s, "retired", b, "reload");
    pid_t e = expect_worker(&s, "spawned", 0, NULL);
    expect_worker(&s, "ready", e, NULL);
    expect_worker(&s, "retired", cw, "reload");

    /* drain: the rest retire and exit; then the daemon closes. */
    r = h_rpc_call(c, "drain", "[]");
    ck_assert_ptr_null(r->error);
    expect_pool(&s, "drain", 2);
    expect_worker(&s, "retired", dw, "drain");
    expect_worker(&s, "retired", e, "drain");
    while ((r = h_rpc_next_event(s.c, EVENT_MS)) != NULL)
        ck_assert_msg(deferred_exit(&s, r->result), "unexpected event %s",
                      h_json(r->result));
    ck_assert_msg(s.c->eof, "the stream did not end");
    for (int i = 0; i < s.nretired; i++)
        ck_assert_msg(s.exited[i] == 1, "worker %ld: %d exit events",
                      (long)s.retired[i], s.exited[i]);
    ck_assert_int_eq(s.nretired, 4);
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, H_REPLY_MS)), 0);
}
END_TEST

START_TEST(every_subscriber_gets_every_event)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);
    h_worker_pid(c);                    /* job 1: the worker is ready */
    struct stream s1 = { .c = subscribed(d) }, s2 = { .c = subscribed(d) };

    /* A client may subscribe and submit on one connection; subscribing
     * twice changes nothing. */
    struct h_resp *r = h_rpc_call(s1.c, "subscribe", "[]");
    ck_assert_str_eq(h_json(r->result), "true");
    h_submit_ok(s1.c, "7");
    h_submit_ok(c, "8");
    expect_job(&s1, 2, "ok", 1);
    expect_job(&s1, 3, "ok", 1);
    expect_job(&s2, 2, "ok", 1);
    expect_job(&s2, 3, "ok", 1);
    ck_assert_int_eq(h_get_int(h_get(h_status(c)->result, "clients"), "subscribers"), 2);
    /* One leaves: the other goes on. */
    h_rpc_close(s1.c);
    h_submit_ok(c, "9");
    expect_job(&s2, 4, "ok", 1);
    ck_assert_int_eq(h_get_int(h_get(h_status(c)->result, "clients"), "subscribers"), 1);
}
END_TEST

/* The value of the metrics line that starts with `name ` (asserted). */
static double
metric(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; p != NULL && *p != '\0'; ) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    ck_abort_msg("no metric %s in:\n%s", name, text);
    return 0;
}

/* The metrics text (the caller frees it). */
static char *
metrics_text(struct h_rpc *c)
{
    struct h_resp *r = h_rpc_call(c, "metrics", "[]");

    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_int_eq(r->result->type, MSGPACK_OBJECT_STR);
    char *t = malloc(r->result->via.str.size + 1);
    ck_assert_ptr_nonnull(t);
    memcpy(t, r->result->via.str.ptr, r->result->via.str.size);
    t[r->result->via.str.size] = '\0';
    return t;
}

START_TEST(a_subscriber_that_does_not_read_is_dropped_and_jobs_flow)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "2", "--builtin", "echo",
                                                  "--reply-soft-limit", "65536",
                                                  NULL));
    struct h_rpc *c = h_connected(d), *deaf = h_connected(d);
    int small = 4096;
    char batch[16384];
    size_t n = 0;

    /* It asks, then never reads another byte (a small receive buffer, so
     * the kernel holds little for it). */
    setsockopt(deaf->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    h_rpc_send(deaf, "subscribe", "[]");
    n += (size_t)snprintf(batch, sizeof(batch), "[[");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(batch + n, sizeof(batch) - n, "%s%d", i ? "," : "", i);
    snprintf(batch + n, sizeof(batch) - n, "]]");

    /* Batches of 1000 jobs, each job an event of ~100 bytes, until it is
     * dropped; every job of every batch ends ok meanwhile. */
    int dropped = 0;
    for (int round = 0; round < 100 && !dropped; round++) {
        uint32_t msgid = h_rpc_send(c, "submit_batch", batch);
        struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(r->error);
        for (uint64_t i = 0; i < 1000; i++) {
            r = h_rpc_wait_outcome(c, msgid, i, H_REPLY_MS);
            ck_assert_msg(r != NULL && r->error == NULL, "job %llu of round %d",
                          (unsigned long long)i, round);
            h_resp_free(r);
        }
        h_daemon_pump(d, 0);
        dropped = h_log_count(d, "subscriber not reading its events") > 0;
    }
    ck_assert_msg(dropped, "the subscriber was never dropped");
    ck_assert_int_eq(h_log_count(d, "subscriber not reading its events"), 1);
    /* It was closed (what it had been sent is still there to read), and
     * the daemon goes on. */
    ck_assert_int_ge(h_rpc_wait_eof(deaf, H_REPLY_MS), 1);
    ck_assert_int_eq(h_submit_ok(c, "5")->via.u64, 5);
    char *t = metrics_text(c);
    ck_assert_int_eq((int)metric(t, "forkpool_subscribers_dropped_total"), 1);
    ck_assert_int_eq((int)metric(t, "forkpool_subscribers"), 0);
    free(t);
}
END_TEST

/* ------------------------------------------------------------------------
 * forkpoolctl events
 * ------------------------------------------------------------------------ */

/* Line i of text (0-based) as JSON (asserted). */
static json_t *
json_line(const char *text, int i)
{
    const char *p = text;
    json_error_t err;

    for (; i > 0 && p != NULL; i--) {
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    ck_assert_ptr_nonnull(p);
    json_t *v = json_loadb(p, strcspn(p, "\n"), 0, &err);
    ck_assert_msg(v != NULL, "not JSON: %s", p);
    return v;
}

START_TEST(forkpoolctl_events_prints_count_events)
{
    struct h_daemon *d = h_started(h_daemon_start("-v", "-w", "1", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    h_need_ctl();
    h_worker_pid(c);                    /* job 1: up and running */
    struct h_proc *p = h_ctl_start(d, "events", "--count", "3", NULL);
    ck_assert(h_daemon_wait_log(d, "subscribed to the event stream", 0, H_REPLY_MS));
    h_submit_ok(c, "2");
    h_submit_ok(c, "3");
    h_submit_ok(c, "4");
    h_submit_ok(c, "5");                /* after the third: not printed */
    h_run_finish(&run, p, d, H_REPLY_MS);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_int_eq(h_count_lines(run.out), 3);
    ck_assert_str_eq(run.err, "");
    for (int i = 0; i < 3; i++) {
        json_t *v = json_line(run.out, i);
        ck_assert_str_eq(json_string_value(json_object_get(v, "event")), "job");
        ck_assert_int_eq(json_integer_value(json_object_get(v, "id")), i + 2);
        ck_assert_str_eq(json_string_value(json_object_get(v, "kind")), "ok");
        ck_assert_int_eq(json_integer_value(json_object_get(
                             json_object_get(v, "stats"), "attempts")), 1);
        json_decref(v);
    }
    /* The line as printed: keys in the daemon's order, SPEC's separators. */
    static const char head[] = "{\"event\": \"job\", \"id\": 2, \"kind\": \"ok\", "
                               "\"stats\": {\"wait_ms\": ";
    ck_assert_msg(strncmp(run.out, head, strlen(head)) == 0, "%s", run.out);
}
END_TEST

START_TEST(forkpoolctl_events_waits_past_the_rpc_timeout_and_ends_with_the_daemon)
{
    struct h_daemon *d = h_started(h_daemon_start("-v", "-w", "1", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    h_need_ctl();
    h_worker_pid(c);
    /* --rpc-timeout bounds the answer to subscribe, not the events: the
     * job's event comes after 0.6 s, the stream ends at the drain. */
    struct h_proc *p = h_ctl_start(d, "--rpc-timeout", "0.2", "events", NULL);
    ck_assert(h_daemon_wait_log(d, "subscribed to the event stream", 0, H_REPLY_MS));
    h_submit_ok(c, "{\"op\": \"sleep\", \"s\": 0.6}");
    h_rpc_call(c, "drain", "[]");
    h_run_finish(&run, p, d, H_REPLY_MS);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.err, "");
    json_t *v = json_line(run.out, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "id")), 2);
    json_decref(v);
    v = json_line(run.out, 1);
    ck_assert_str_eq(json_string_value(json_object_get(v, "what")), "drain");
    json_decref(v);
    ck_assert_int_eq(h_count_lines(run.out), 4);    /* + retired, exited */
}
END_TEST

START_TEST(forkpoolctl_events_usage_and_unreachable)
{
    struct h_run run;
    char *const argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s",
                           (char *)"/nonexistent/fp.sock", (char *)"events", NULL };

    h_need_ctl();
    h_run_argv(&run, NULL, NULL, 10000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert(strstr(run.err, "/nonexistent/fp.sock") != NULL);
    char *const bad[] = { (char *)H_FORKPOOLCTL, (char *)"events", (char *)"--count",
                          (char *)"0", NULL };
    h_run_argv(&run, NULL, NULL, 10000, bad);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_str_eq(run.err, "forkpoolctl: events: --count: '0' is not a count >= 1\n"
                     "Try 'forkpoolctl events --help'.\n");
    char *const extra[] = { (char *)H_FORKPOOLCTL, (char *)"events", (char *)"x", NULL };
    h_run_argv(&run, NULL, NULL, 10000, extra);
    ck_assert_int_eq(h_exit_code(run.status), 2);
}
END_TEST

/* ------------------------------------------------------------------------
 * Poison payloads and metrics
 * ------------------------------------------------------------------------ */

#define POISON_HASH "59ee1a56c0eda2c35904da2afcb3db0a"  /* {"op": "crash"} */

static const char *
submit_kind(struct h_rpc *c, const char *job, const char *opts)
{
    struct h_resp *r = h_submit(c, job, opts);
    return r->error == NULL ? "ok" : h_get_str(r->error, "kind");
}

START_TEST(a_payload_that_crashed_k_workers_is_rejected)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", H_MOD, "--poison-after",
                                                  "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;

    /* Accepted twice, crashing two workers; then refused, exactly so. */
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\"}", NULL), "crashed");
    ck_assert_int_eq(h_get_int(h_status(c)->result, "poisoned"), 0);
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\"}", NULL), "crashed");
    r = h_submit(c, "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                               "\"detail\": \"poison: crashed 2 workers\"}"));
    r = h_submit(c, "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "detail"), "poison: crashed 2 workers");
    /* Other bytes are other payloads. */
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\", \"n\": 1}", NULL), "crashed");
    ck_assert_str_eq(submit_kind(c, "7", NULL), "ok");
    /* Retries count: one submission that crashed two workers. */
    r = h_submit(c, "{\"op\": \"crash\", \"n\": 2}", "{\"retries\": 1}");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    ck_assert_int_eq(h_get_int(r->error, "attempts"), 2);
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\", \"n\": 2}", NULL), "rejected");

    /* The log names the first payload's hash once. */
    h_daemon_pump(d, 0);
    ck_assert_int_eq(h_log_count(d, "payload " POISON_HASH " "), 1);
    ck_assert_int_eq(h_log_count(d, "quarantined"), 2);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "poisoned"), 2);
    char *t = metrics_text(c);
    ck_assert_int_eq((int)metric(t, "forkpool_poisoned_payloads"), 2);
    ck_assert_int_eq((int)metric(t, "forkpool_poison_rejected_total"), 3);
    free(t);
}
END_TEST

START_TEST(forkpoolctl_map_reports_the_poisoned_line_alone)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", H_MOD, "--poison-after",
                                                  "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    h_need_ctl();
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\"}", NULL), "crashed");
    h_ctl(&run, d, "1\n{\"op\": \"crash\"}\n2\n", "map", "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_str_eq(run.out,
        "{\"index\": 0, \"id\": 2, \"ok\": true, \"result\": 1}\n"
        "{\"index\": 1, \"id\": null, \"ok\": false, \"kind\": \"rejected\", "
        "\"detail\": \"poison: crashed 1 worker\"}\n"
        "{\"index\": 2, \"id\": 3, \"ok\": true, \"result\": 2}\n");
}
END_TEST

START_TEST(poison_after_is_off_by_default)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);

    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\"}", NULL), "crashed");
    ck_assert_int_eq(h_get_int(h_status(c)->result, "poisoned"), 0);
}
END_TEST

/* Each histogram's buckets rise to +Inf, which equals _count. */
static void
check_histogram(const char *t, const char *name, int count)
{
    char key[160];
    double prev = 0;
    int buckets = 0;

    for (const char *p = strstr(t, name); p != NULL; p = strstr(p + 1, name)) {
        size_t n = strlen(name);
        if (strncmp(p + n, "_bucket{le=\"", 12) != 0)
            continue;
        const char *v = strchr(p, ' ');
        double x = strtod(v + 1, NULL);
        ck_assert_msg(x >= prev, "%s: buckets fall", name);
        prev = x;
        buckets++;
    }
    ck_assert_int_eq(buckets, 12);
    snprintf(key, sizeof(key), "%s_bucket{le=\"+Inf\"}", name);
    ck_assert_int_eq((int)metric(t, key), count);
    snprintf(key, sizeof(key), "%s_count", name);
    ck_assert_int_eq((int)metric(t, key), count);
    snprintf(key, sizeof(key), "%s_sum", name);
    ck_assert(metric(t, key) >= 0);
    snprintf(key, sizeof(key), "# TYPE %s", name);
    ck_assert_msg(strstr(t, key) != NULL && strstr(strstr(t, key), "histogram") != NULL,
                  "%s has no TYPE line", name);
}

START_TEST(metrics_histograms_count_the_jobs_that_ran)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "2", H_MOD, NULL));
    struct h_rpc *c = h_connected(d);

    for (int i = 0; i < 4; i++)
        h_submit_ok(c, "1");
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"fail\"}", NULL), "error");
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"crash\"}", NULL), "crashed");
    ck_assert_str_eq(submit_kind(c, "{\"op\": \"hang\"}", "{\"timeout\": 0.05}"),
                     "timeout");
    char *t = metrics_text(c);
    check_histogram(t, "forkpool_job_wait_seconds", 7);
    check_histogram(t, "forkpool_job_run_seconds", 7);
    check_histogram(t, "forkpool_job_duration_seconds", 5);
    ck_assert_int_eq((int)metric(t, "forkpool_job_timeouts_total{cause=\"deadline\"}"), 1);
    ck_assert_int_eq((int)metric(t, "forkpool_job_timeouts_total{cause=\"heartbeat\"}"), 0);
    ck_assert_int_eq((int)metric(t, "forkpool_log_lines_dropped_total"), 0);
    ck_assert_int_eq((int)metric(t, "forkpool_poison_rejected_total"), 0);
    ck_assert_int_eq((int)metric(t, "forkpool_events_lost_total"), 0);
    free(t);
}
END_TEST

static Suite *
daemon_events_suite(void)
{
    Suite *s = suite_create("daemon events");
    TCase *tc;

    tc = h_tcase("stream", 60);
    tcase_add_test(tc, events_of_a_scripted_sequence);
    tcase_add_test(tc, every_subscriber_gets_every_event);
    tcase_add_test(tc, a_subscriber_that_does_not_read_is_dropped_and_jobs_flow);
    suite_add_tcase(s, tc);
    tc = h_tcase("forkpoolctl", 30);
    tcase_add_test(tc, forkpoolctl_events_prints_count_events);
    tcase_add_test(tc, forkpoolctl_events_waits_past_the_rpc_timeout_and_ends_with_the_daemon);
    tcase_add_test(tc, forkpoolctl_events_usage_and_unreachable);
    suite_add_tcase(s, tc);
    tc = h_tcase("poison", 30);
    tcase_add_test(tc, a_payload_that_crashed_k_workers_is_rejected);
    tcase_add_test(tc, forkpoolctl_map_reports_the_poisoned_line_alone);
    tcase_add_test(tc, poison_after_is_off_by_default);
    tcase_add_test(tc, metrics_histograms_count_the_jobs_that_ran);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_events_suite());
}
