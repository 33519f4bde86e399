/*
 * check_redis_daemon.c — the scale-out queue end to end (SPEC 10): real
 * forkpoold hosts with --redis draining a real redis-server, jobs put in
 * and outcomes read back through the documented keys and functions
 * (forkpool-protocol(7)), hosts killed and stopped, Redis killed and
 * restarted.  Every test asserts that each job has exactly one outcome
 * record, by the host the scenario says.
 */
#include "config.h"
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "redis/redis_functions.h"

#define JOBS  "fp:{forkpool}:jobs"
#define DEAD  "fp:{forkpool}:dead"
#define REPLY "fp:{forkpool}:reply:test"

static struct h_redis *R;
static void free_records(void);
static redisReply *cmdv(int argc, const char **argv, const size_t *lens);
static redisContext *rc;
static char count_path[128];

static void
setup(void)
{
    R = h_redis_start();
    rc = h_redis_connect(R);
    /* As a producer may, before any host has come: load the library. */
    const char *load[] = { "FUNCTION", "LOAD", "REPLACE", fp_redis_functions };
    freeReplyObject(cmdv(4, load, NULL));
    snprintf(count_path, sizeof(count_path), "%s/count", h_tempdir());
}

static void
teardown(void)
{
    free_records();
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
}

/* A host: forkpoold with the test module on the test's Redis. */
static struct h_daemon *
host(const char *workers, const char *lease, const char *extra)
{
    struct h_daemon *d = extra != NULL
        ? h_daemon_start("-w", workers, H_MOD, "--redis", R->url, "--lease",
                         lease, extra, NULL)
        : h_daemon_start("-w", workers, H_MOD, "--redis", R->url, "--lease",
                         lease, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert(h_daemon_wait_log(d, "redis: connected to", 0, 5000));
    return d;
}

static redisReply *
cmdv(int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    ck_assert_msg(r->type != REDIS_REPLY_ERROR, "redis: %s", r->str);
    return r;
}

static long long
cmd_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Put a job {"op": op, "n": n, "path": count_path, "s": s} (n < 0: no
 * "n"; s <= 0: no "s") into the queue; its id into id. */
static void
submit(const char *op, int n, double s, char *id, size_t idlen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (n >= 0) + (s > 0));
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, op, strlen(op));
    msgpack_pack_str_with_body(&pk, "path", 4);
    msgpack_pack_str_with_body(&pk, count_path, strlen(count_path));
    if (n >= 0) {
        msgpack_pack_str_with_body(&pk, "n", 1);
        msgpack_pack_int(&pk, n);
    }
    if (s > 0) {
        msgpack_pack_str_with_body(&pk, "s", 1);
        msgpack_pack_double(&pk, s);
    }
    const char *argv[] = { "FCALL", "fp_submit", "1", JOBS, sb.data, "", REPLY,
                           "600" };
    size_t lens[] = { 5, 9, 1, strlen(JOBS), sb.size, 0, strlen(REPLY), 3 };
    redisReply *r = cmdv(8, argv, lens);
    snprintf(id, idlen, "%s", r->element[0]->str);
    freeReplyObject(r);
    msgpack_sbuffer_destroy(&sb);
}

/* Outcome records read so far: their bytes and unpacked maps live until
 * teardown (msgpack's strings point into the bytes). */
struct kept_record {
    char             *bytes;
    msgpack_unpacked  u;
};
static struct kept_record kept[256];
static size_t nkept;

static void
free_records(void)
{
    while (nkept > 0) {
        struct kept_record *k = &kept[--nkept];
        msgpack_unpacked_destroy(&k->u);
        free(k->bytes);
    }
}

/* The outcome record map of job id, or NULL if there is none yet. */
static const msgpack_object *
record(const char *id)
{
    redisReply *r = redisCommand(rc, "HGET fp:{forkpool}:out:%s o", id);
    const msgpack_object *rec = NULL;

    ck_assert_ptr_nonnull(r);
    if (r->type == REDIS_REPLY_STRING) {
        ck_assert_uint_lt(nkept, sizeof(kept) / sizeof(kept[0]));
        struct kept_record *k = &kept[nkept++];
        k->bytes = malloc(r->len);
        ck_assert_ptr_nonnull(k->bytes);
        memcpy(k->bytes, r->str, r->len);
        msgpack_unpacked_init(&k->u);
        ck_assert_int_eq(msgpack_unpack_next(&k->u, k->bytes, r->len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        rec = &k->u.data;
    }
    freeReplyObject(r);
    return rec;
}

/* Wait (on the reply stream, not by sleeping) until job id has its outcome
 * record; fails the test after timeout_ms.  Returns the record map. */
static const msgpack_object *
wait_record(const char *id, int timeout_ms, struct h_daemon *pump)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    const msgpack_object *rec;

    while ((rec = record(id)) == NULL) {
        ck_assert_msg(h_left_ms(deadline) > 0, "no outcome for job %s", id);
        /* Any new reply entry wakes us; 100 ms at most between looks. */
        freeReplyObject(redisCommand(rc, "XREAD BLOCK 100 STREAMS " REPLY " $"));
        if (pump != NULL)
            h_daemon_pump(pump, 0);
    }
    return rec;
}

/* How many entries the reply stream has for job id. */
static int
replies_for(const char *id)
{
    redisReply *r = redisCommand(rc, "XRANGE " REPLY " - +");
    int n = 0;

    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < r->elements; i++)
        if (strcmp(r->element[i]->element[1]->element[1]->str, id) == 0)
            n++;
    freeReplyObject(r);
    return n;
}

/* Lines of the count file (each handler run appends one). */
static int
runs(void)
{
    FILE *f = fopen(count_path, "r");
    int n = 0, c;

    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int
wait_runs(int want, int timeout_ms, struct h_daemon *pump)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (runs() < want && h_left_ms(deadline) > 0) {
        /* The count file has no event to wait on: look every 10 ms. */
        h_daemon_pump(pump, 10);
    }
    return runs() >= want;
}

/* The host's status "redis" field `key`. */
static int64_t
redis_status(struct h_daemon *d, const char *key)
{
    struct h_rpc *c = h_rpc_open(d);
    ck_assert_ptr_nonnull(c);
    struct h_resp *st = h_status(c);
    const msgpack_object *redis = h_get(st->result, "redis");
    ck_assert_ptr_nonnull(redis);
    int64_t v = h_get_int(redis, key);
    h_rpc_close(c);
    return v;
}

static void
assert_queue_empty(void)
{
    ck_assert_int_eq(cmd_int("XLEN " JOBS), 0);
    redisReply *r = redisCommand(rc, "XPENDING " JOBS " forkpool");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(two_hosts_share_the_queue)
{
    struct h_daemon *a = host("1", "5", NULL), *b = host("1", "5", NULL);
    char ids[40][48];

    for (int i = 0; i < 40; i++)
        submit("count", i, 0.02, ids[i], sizeof(ids[i]));
    for (int i = 0; i < 40; i++) {
        const msgpack_object *rec = wait_record(ids[i], 20000, a);
        ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
        ck_assert_int_eq(h_get_int(rec, "deliveries"), 1);
        ck_assert_int_eq(replies_for(ids[i]), 1);
    }
    ck_assert_int_eq(runs(), 40);
    int64_t ra = redis_status(a, "recorded"), rb = redis_status(b, "recorded");
    ck_assert_int_eq(ra + rb, 40);
    ck_assert_int_gt(ra, 0);
    ck_assert_int_gt(rb, 0);
    assert_queue_empty();
    /* What is kept expires. */
    ck_assert_int_gt(cmd_int("TTL " REPLY), 0);
    ck_assert_int_gt(cmd_int("TTL fp:{forkpool}:out:%s", ids[0]), 0);
}
END_TEST

START_TEST(idempotency_key_runs_once_through_the_cli)
{
    struct h_daemon *a = host("2", "5", NULL);
    struct h_run r1, r2;
    char job[256];

    snprintf(job, sizeof(job), "{\"op\": \"count\", \"n\": 1, \"path\": \"%s\"}",
             count_path);
    char *argv1[] = { H_FORKPOOLCTL, "--redis", R->url, "submit",
                      "--idempotency-key", "order-17", job, NULL };
    ck_assert_int_eq(h_run_argv(&r1, a, NULL, 20000, argv1), 0);
    ck_assert_int_eq(h_run_argv(&r2, a, NULL, 20000, argv1), 0);
    ck_assert_str_eq(r1.out, r2.out);
    ck_assert_ptr_nonnull(strstr(r1.out, "\"ok\": true"));
    ck_assert_int_eq(runs(), 1);
    /* top shows the host's side of it. */
    struct h_run t;
    char *top[] = { H_FORKPOOLCTL, "-s", a->sock, "top", "--count", "1", NULL };
    ck_assert_int_eq(h_run_argv(&t, a, NULL, 10000, top), 0);
    ck_assert_msg(strstr(t.out, " redis_connected=true redis_leased=0 "
                         "redis_claimed=1 redis_recorded=1 redis_lost_leases=0\n")
                  != NULL, "%s", t.out);
}
END_TEST

START_TEST(map_through_redis_prints_every_outcome)
{
    struct h_daemon *a = host("2", "5", NULL);
    struct h_run r;
    char *argv[] = { H_FORKPOOLCTL, "--redis", R->url, "map", "--keep-order",
                     NULL };
    const char *in = "{\"x\": 1}\n\n{\"op\": \"crash\"}\nnot json\n{\"x\": 3}\n";

    ck_assert_int_eq(WEXITSTATUS(h_run_argv(&r, a, in, 20000, argv)), 1);
    /* In input order, blank line skipped, ids are stream ids. */
    char *l0 = strtok(r.out, "\n"), *l1 = strtok(NULL, "\n"),
         *l2 = strtok(NULL, "\n"), *l3 = strtok(NULL, "\n");
    ck_assert_ptr_nonnull(l3);
    ck_assert_ptr_null(strtok(NULL, "\n"));
    ck_assert_ptr_nonnull(strstr(l0, "\"index\": 0, \"ok\": true, \"result\": {\"x\": 1}"));
    ck_assert_ptr_nonnull(strstr(l1, "\"index\": 1, \"ok\": false, \"kind\": \"crashed\", "
                                 "\"detail\": \"killed by SIGSEGV\""));
    ck_assert_ptr_nonnull(strstr(l2, "\"index\": 2, \"ok\": false, \"kind\": \"rejected\""));
    ck_assert_ptr_nonnull(strstr(l3, "\"index\": 3, \"ok\": true"));
    assert_queue_empty();
}
END_TEST

START_TEST(progress_reaches_a_redis_producer_before_the_outcome)
{
    struct h_daemon *a = host("2", "5", NULL);
    struct h_run r;
    char *argv[] = { H_FORKPOOLCTL, "--redis", R->url, "submit", "--progress",
                     "{\"op\": \"progress\", \"values\": [\"a\", {\"pct\": 50}, 3]}",
                     NULL };

    ck_assert_int_eq(h_run_argv(&r, a, NULL, 20000, argv), 0);
    /* The outcome's id is the job's stream id; each report names it. */
    char id[64], want[512];
    ck_assert_int_eq(sscanf(r.out, "{\"id\": \"%63[0-9-]\"", id), 1);
    ck_assert_ptr_nonnull(strstr(r.out, "\"ok\": true, \"result\": 3"));
    snprintf(want, sizeof(want),
             "{\"id\": \"%s\", \"progress\": \"a\"}\n"
             "{\"id\": \"%s\", \"progress\": {\"pct\": 50}}\n"
             "{\"id\": \"%s\", \"progress\": 3}\n", id, id, id);
    ck_assert_str_eq(r.err, want);
    /* The producer's streams are gone with it; without --progress the
     * host writes no progress stream at all. */
    redisReply *k = redisCommand(rc, "KEYS fp:{forkpool}:progress:*");
    ck_assert_ptr_nonnull(k);
    ck_assert_uint_eq(k->elements, 0);
    freeReplyObject(k);
    char *quiet[] = { H_FORKPOOLCTL, "--redis", R->url, "submit",
                      "{\"op\": \"progress\", \"n\": 2}", NULL };
    ck_assert_int_eq(h_run_argv(&r, a, NULL, 20000, quiet), 0);
    ck_assert_str_eq(r.err, "");
    /* A burst of reports, more than one read takes: every one is printed
     * before the outcome ends the command.  (Whether the outcome arrives
     * with a full read of reports still behind it -- what read_outcomes
     * holds outcomes back for -- is up to timing here: usually the producer
     * keeps up, and this only guards the count.) */
    char *burst[] = { H_FORKPOOLCTL, "--redis", R->url, "submit", "--progress",
                      "{\"op\": \"progress\", \"n\": 5000}", NULL };
    ck_assert_int_eq(h_run_argv(&r, a, NULL, 60000, burst), 0);
    ck_assert_int_eq(h_count_lines(r.err), 5000);
    ck_assert_ptr_nonnull(strstr(r.err, "\"progress\": 5000}\n"));
    k = redisCommand(rc, "KEYS fp:{forkpool}:progress:*");
    ck_assert_ptr_nonnull(k);
    ck_assert_uint_eq(k->elements, 0);
    freeReplyObject(k);
    assert_queue_empty();
}
END_TEST

START_TEST(a_killed_host_s_jobs_finish_elsewhere_once)
{
    struct h_daemon *a = host("2", "1", NULL);
    char id0[48], id1[48];

    submit("count", 0, 3.0, id0, sizeof(id0));
    submit("count", 1, 3.0, id1, sizeof(id1));
    ck_assert(wait_runs(2, 10000, a));          /* both running on a */
    struct h_daemon *b = host("2", "1", NULL);
    int64_t t0 = h_now_ms();
    h_daemon_kill(a, SIGKILL);
    ck_assert(wait_runs(4, 10000, b));          /* b took both over */
    /* Within the lease (1 s) plus a second, and slack for a loaded
     * machine: only a broken reclaim (waiting out anything long) fails. */
    ck_assert_int_lt(h_now_ms() - t0, 1000 + 1000 + 3000);
    for (int i = 0; i < 2; i++) {
        const char *id = i == 0 ? id0 : id1;
        const msgpack_object *rec = wait_record(id, 20000, b);
        ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
        ck_assert_int_eq(h_get_int(rec, "deliveries"), 2);
        ck_assert_int_eq(replies_for(id), 1);
    }
    ck_assert_int_eq(redis_status(b, "recorded"), 2);
    assert_queue_empty();
}
END_TEST

START_TEST(a_stopped_host_s_late_result_is_refused)
{
    struct h_daemon *a = host("1", "0.5", NULL);
    char id[48];

    submit("count", 0, 1.5, id, sizeof(id));
    ck_assert(wait_runs(1, 10000, a));
    h_daemon_kill(a, SIGSTOP);
    struct h_daemon *b = host("1", "0.5", NULL);
    /* b runs it too; a wakes while b still holds it: a's renewal and
     * record must both be refused. */
    ck_assert(wait_runs(2, 10000, b));
    h_daemon_kill(a, SIGCONT);
    const msgpack_object *rec = wait_record(id, 20000, b);
    ck_assert_int_eq(h_get_int(rec, "deliveries"), 2);
    char by_b[128];
    snprintf(by_b, sizeof(by_b), "%s", h_get_str(rec, "host"));
    ck_assert_int_eq(redis_status(b, "recorded"), 1);
    /* a learns it lost the lease (its renewal, or its record, is refused)
     * and says so; the record stays b's, one reply. */
    ck_assert(h_daemon_wait_log(a, "lease", 0, 10000));
    int64_t deadline = h_now_ms() + 10000;
    while (redis_status(a, "lost_leases") < 1 && h_left_ms(deadline) > 0)
        h_daemon_pump(a, 50);
    ck_assert_int_eq(redis_status(a, "lost_leases"), 1);
    ck_assert_int_eq(redis_status(a, "recorded"), 0);
    rec = wait_record(id, 1000, NULL);
    ck_assert_str_eq(h_get_str(rec, "host"), by_b);
    ck_assert_int_eq(replies_for(id), 1);
}
END_TEST

START_TEST(a_renewed_lease_is_never_taken)
{
    struct h_daemon *a = host("1", "0.4", NULL);
    char id[48];

    submit("count", 0, 2.0, id, sizeof(id));    /* 5 leases long */
    ck_assert(wait_runs(1, 10000, a));
    struct h_daemon *b = host("1", "0.4", NULL);
    const msgpack_object *rec = wait_record(id, 20000, a);
    ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
    ck_assert_int_eq(h_get_int(rec, "deliveries"), 1);
    ck_assert_int_eq(runs(), 1);
    ck_assert_int_eq(redis_status(b, "claimed"), 0);
    ck_assert_int_eq(redis_status(a, "lost_leases"), 0);
}
END_TEST

START_TEST(a_job_that_kills_its_hosts_is_dead_lettered)
{
    char id[48];
    int hosts = 0;

    submit("kill_master", -1, 0, id, sizeof(id));
    const msgpack_object *rec;
    while ((rec = record(id)) == NULL) {
        ck_assert_int_lt(hosts, 5);
        struct h_daemon *d = host("1", "0.3", "--max-deliveries=2");
        hosts++;
        /* It dies running the job, or dead-letters it and lives. */
        int64_t deadline = h_now_ms() + 10000;
        while (h_daemon_alive(d) && record(id) == NULL && h_left_ms(deadline) > 0)
            h_daemon_pump(d, 20);
    }
    ck_assert_int_eq(hosts, 3);
    ck_assert_str_eq(h_get_str(rec, "kind"), "crashed");
    ck_assert_str_eq(h_get_str(rec, "detail"), "lost 2 hosts");
    ck_assert_int_eq(cmd_int("XLEN " DEAD), 1);
    assert_queue_empty();
}
END_TEST

START_TEST(a_worker_crash_is_one_delivery)
{
    struct h_daemon *a = host("1", "5", NULL);
    char id[48];

    submit("crash", -1, 0, id, sizeof(id));
    const msgpack_object *rec = wait_record(id, 20000, a);
    ck_assert_str_eq(h_get_str(rec, "kind"), "crashed");
    ck_assert_str_eq(h_get_str(rec, "detail"), "killed by SIGSEGV");
    ck_assert_int_eq(h_get_int(rec, "deliveries"), 1);
    ck_assert_int_eq(cmd_int("XLEN " DEAD), 0);
}
END_TEST

START_TEST(redis_restarts_lose_and_double_nothing)
{
    struct h_daemon *a = host("2", "3", NULL), *b = host("2", "3", NULL);
    char ids[60][48];

    for (int i = 0; i < 30; i++)
        submit("count", i, 0.05, ids[i], sizeof(ids[i]));
    ck_assert(wait_runs(5, 10000, a));
    h_redis_restart(R);
    redisFree(rc);
    rc = h_redis_connect(R);
    for (int i = 30; i < 60; i++)
        submit("count", i, 0.05, ids[i], sizeof(ids[i]));
    ck_assert(wait_runs(35, 20000, a));
    h_redis_kill(R, SIGKILL);                   /* down a while */
    usleep(300 * 1000);
    h_redis_restart(R);
    redisFree(rc);
    rc = h_redis_connect(R);
    for (int i = 0; i < 60; i++) {
        const msgpack_object *rec = wait_record(ids[i], 30000, b);
        ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
    }
    ck_assert_int_eq(redis_status(a, "recorded") + redis_status(b, "recorded"), 60);
    ck_assert_int_eq(runs(), 60);
    assert_queue_empty();
}
END_TEST

START_TEST(functions_flushed_on_the_server_are_loaded_again)
{
    struct h_daemon *a = host("1", "5", NULL);
    const char *flush[] = { "FUNCTION", "FLUSH" };
    char id[48];
    size_t from = a->loglen;

    /* An operator flushes them: the host's next FCALL fails, and it
     * connects again, which loads them. */
    freeReplyObject(cmdv(2, flush, NULL));
    ck_assert(h_daemon_wait_log(a, "its functions are gone from the server", from,
                                10000));
    ck_assert(h_daemon_wait_log(a, "redis: connected to", from, 10000));
    /* They are back, loaded by the host: a producer that loads nothing
     * submits (cmdv fails the test on an error reply), and the job runs. */
    submit("count", 0, 0, id, sizeof(id));
    const msgpack_object *rec = wait_record(id, 20000, a);
    ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
    ck_assert_int_eq(runs(), 1);
    assert_queue_empty();
}
END_TEST

START_TEST(drain_hands_back_what_has_not_started)
{
    /* One token per 100 s: the second job a holds waits for it, unstarted. */
    struct h_daemon *a = host("2", "5", "--rate-limit=0.01:1");
    char id0[48], id1[48];

    submit("count", 0, 1.0, id0, sizeof(id0));
    submit("count", 1, 0, id1, sizeof(id1));
    ck_assert(wait_runs(1, 10000, a));
    int64_t deadline = h_now_ms() + 10000;
    while (redis_status(a, "leased") < 2 && h_left_ms(deadline) > 0)
        h_daemon_pump(a, 20);
    ck_assert_int_eq(redis_status(a, "leased"), 2);
    h_daemon_kill(a, SIGTERM);
    ck_assert(h_daemon_wait_log(a, "handing back 1 job", 0, 5000));
    ck_assert_int_eq(WEXITSTATUS(h_daemon_wait(a, 10000)), 0);
    const msgpack_object *rec = wait_record(id0, 1000, NULL);
    ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
    /* The handed-back job waits for another host, as new. */
    ck_assert_ptr_null(record(id1));
    struct h_daemon *b = host("2", "5", NULL);
    rec = wait_record(id1, 10000, b);
    ck_assert_str_eq(h_get_str(rec, "kind"), "ok");
    ck_assert_int_eq(h_get_int(rec, "deliveries"), 1);
    ck_assert_int_eq(runs(), 2);
}
END_TEST

/* Runs of each job n (count file lines "n pid"); returns the total. */
static int
runs_by_job(int *by, int n)
{
    FILE *f = fopen(count_path, "r");
    int total = 0, job;
    long pid;

    memset(by, 0, (size_t)n * sizeof(*by));
    if (f == NULL)
        return 0;
    while (fscanf(f, "%d %ld", &job, &pid) == 2) {
        if (job >= 0 && job < n)
            by[job]++;
        total++;
    }
    fclose(f);
    return total;
}

/* Two hosts and a Redis under random faults: hosts killed (and replaced),
 * stopped past their lease and resumed, Redis killed and restarted.
 * Every job ends with exactly one outcome record and one reply; every ok
 * job's handler ran; handlers ran again only where a fault took a host's
 * running jobs away (at most the host's workers per fault). */
START_TEST(soak_under_random_host_and_redis_faults)
{
    enum { N = 300, W = 2 };
    struct h_daemon *hosts[2] = { host("2", "1", NULL), host("2", "1", NULL) };
    static char ids[N][48];
    int by[N], faults = 0, submitted = 0;
    unsigned seed = (unsigned)h_now_ms();

    fprintf(stderr, "soak seed %u\n", seed);
    srand(seed);
    while (submitted < N || faults < 8) {
        for (int k = 0; k < 30 && submitted < N; k++, submitted++)
            submit("count", submitted, 0.001 + (rand() % 40) / 1000.0,
                   ids[submitted], sizeof(ids[submitted]));
        int victim = rand() % 2;
        switch (rand() % 3) {
        case 0:                             /* a host dies; a new one comes */
            h_daemon_kill(hosts[victim], SIGKILL);
            h_daemon_wait(hosts[victim], 5000);
            hosts[victim] = host("2", "1", NULL);
            break;
        case 1:                             /* a host stops past its lease */
            h_daemon_kill(hosts[victim], SIGSTOP);
            usleep((useconds_t)(1100 + rand() % 500) * 1000);
            h_daemon_kill(hosts[victim], SIGCONT);
            break;
        case 2:                             /* Redis dies and comes back */
            h_redis_restart(R);
            redisFree(rc);
            rc = h_redis_connect(R);
            break;
        }
        faults++;
        h_daemon_pump(hosts[0], 0);
        h_daemon_pump(hosts[1], 0);
        usleep((useconds_t)(rand() % 300) * 1000);
    }
    for (int i = 0; i < N; i++) {
        const msgpack_object *rec = wait_record(ids[i], 60000, hosts[0]);
        ck_assert_msg(strcmp(h_get_str(rec, "kind"), "ok") == 0, "job %d: %s", i,
                      h_json(rec));
        ck_assert_int_eq(replies_for(ids[i]), 1);
        free_records();
    }
    int total = runs_by_job(by, N);
    for (int i = 0; i < N; i++)
        ck_assert_msg(by[i] >= 1, "job %d never ran", i);
    ck_assert_msg(total <= N + 2 * W * faults, "%d runs for %d jobs after %d "
                  "faults", total, N, faults);
    assert_queue_empty();
}
END_TEST

static Suite *
redis_daemon_suite(void)
{
    Suite *s = suite_create("redis daemon");
    TCase *tc = h_tcase("queue", 60);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, two_hosts_share_the_queue);
    tcase_add_test(tc, idempotency_key_runs_once_through_the_cli);
    tcase_add_test(tc, map_through_redis_prints_every_outcome);
    tcase_add_test(tc, progress_reaches_a_redis_producer_before_the_outcome);
    tcase_add_test(tc, a_worker_crash_is_one_delivery);
    tcase_add_test(tc, drain_hands_back_what_has_not_started);
    suite_add_tcase(s, tc);

    tc = h_tcase("failures", 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_killed_host_s_jobs_finish_elsewhere_once);
    tcase_add_test(tc, a_stopped_host_s_late_result_is_refused);
    tcase_add_test(tc, a_renewed_lease_is_never_taken);
    tcase_add_test(tc, a_job_that_kills_its_hosts_is_dead_lettered);
    tcase_add_test(tc, redis_restarts_lose_and_double_nothing);
    tcase_add_test(tc, functions_flushed_on_the_server_are_loaded_again);
    suite_add_tcase(s, tc);

    tc = h_tcase("soak", 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, soak_under_random_host_and_redis_faults);
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
    return h_run_suite(redis_daemon_suite());
}
