/*
 * check_client.c — libforkpoolclient (include/forkpool_client.h) against a
 * real forkpoold: every call, what comes back for each outcome kind,
 * pipelining and tags, the event-loop primitives, and every error it
 * returns instead of exiting.  forkpoolctl is its other user: the ctl
 * suites drive it through the CLI.
 */
#include "config.h"
#include <check.h>

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <msgpack.h>

#include "forkpool_client.h"
#include "harness.h"
#include "sockbuf.h"

#define WAIT_S 10.0     /* an answer that should come promptly */

/* A job from JSON-ish text: packs a map {"op": op, key: num, ...} for the
 * test module.  Returns the packed bytes (static buffer, reused). */
static msgpack_sbuffer job_buf;

static const char *
op_job(const char *op, const char *key, double num, size_t *len)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(&job_buf);
    msgpack_packer_init(&pk, &job_buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key != NULL ? 2 : 1);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, op, strlen(op));
    if (key != NULL) {
        msgpack_pack_str_with_body(&pk, key, strlen(key));
        msgpack_pack_double(&pk, num);
    }
    *len = job_buf.size;
    return job_buf.data;
}

/* A msgpack value as a freshly unpacked object (in a zone kept until the
 * next call) for asserting on. */
static msgpack_unpacked unpacked;

static const msgpack_object *
obj(const char *raw, size_t len)
{
    msgpack_unpacked_destroy(&unpacked);
    msgpack_unpacked_init(&unpacked);
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(msgpack_unpack_next(&unpacked, raw, len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    return &unpacked.data;
}

static int
str_is(const char *raw, size_t len, const char *want)
{
    const msgpack_object *o = obj(raw, len);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(want)
           && memcmp(o->via.str.ptr, want, o->via.str.size) == 0;
}

static fp_client *
connected(struct h_daemon *d)
{
    fp_client *c;
    int rc = fp_client_connect(&c, d->sock, WAIT_S);

    ck_assert_msg(rc == 0, "connect: %s", fp_client_error(c));
    return c;
}

/* The client's socket takes a job of a MiB in one piece (as far as
 * net.core.wmem_max allows), not five of the default 208 KiB. */
START_TEST(the_connection_holds_a_mib_of_requests)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    long want = sndbuf_of_a_mib();
    int size = 0;
    socklen_t len = sizeof(size);

    ck_assert_int_eq(getsockopt(fp_client_fd(c), SOL_SOCKET, SO_SNDBUF, &size, &len), 0);
    if (want > 0)
        ck_assert_int_eq(size, want);
    fp_client_close(c);
}
END_TEST

/* ---- jobs ----------------------------------------------------------------- */

START_TEST(submit_returns_the_result_with_its_id_and_receipt)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    struct fp_client_outcome o;

    ck_assert_int_eq(fp_client_submit(c, "\xa2hi", 3, NULL, &o), 0);
    ck_assert(o.ok);
    ck_assert_str_eq(o.kind, "ok");
    ck_assert(o.has_id);
    ck_assert_uint_eq(o.id, 1);
    ck_assert(str_is(o.value, o.value_len, "hi"));
    ck_assert_ptr_nonnull(o.stats);
    ck_assert_int_eq(obj(o.stats, o.stats_len)->type, MSGPACK_OBJECT_MAP);
    ck_assert_ptr_null(o.stderr_tail);

    ck_assert_int_eq(fp_client_submit(c, "\xa2ho", 3, NULL, &o), 0);
    ck_assert_uint_eq(o.id, 2);
    fp_client_close(c);
}
END_TEST

START_TEST(each_outcome_kind_comes_back_as_ejob_with_kind_and_detail)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    fp_client *c = connected(d);
    struct fp_client_jobopts opts = { 0 };
    struct fp_client_outcome o;
    const char *job;
    size_t len;

    job = op_job("fail", NULL, 0, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, NULL, &o), FP_CLIENT_EJOB);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.kind, "error");
    ck_assert(str_is(o.value, o.value_len, "failed on purpose"));
    ck_assert_ptr_nonnull(o.stats);

    job = op_job("crash", NULL, 0, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, NULL, &o), FP_CLIENT_EJOB);
    ck_assert_str_eq(o.kind, "crashed");
    ck_assert(str_is(o.value, o.value_len, "killed by SIGSEGV"));
    ck_assert_ptr_nonnull(o.stderr_tail);      /* crashed: always there */

    opts.has_timeout = 1;
    opts.timeout = 0.2;
    job = op_job("sleep", "s", 30, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, &opts, &o), FP_CLIENT_EJOB);
    ck_assert_str_eq(o.kind, "timeout");

    /* cancelled: a second connection cancels it while it runs */
    opts = (struct fp_client_jobopts){ .notify_id = 1 };
    uint32_t tag = 0;
    struct fp_client_msg m;
    job = op_job("sleep", "s", 30, &len);
    ck_assert_int_eq(fp_client_submit_async(c, job, len, &opts, &tag), 0);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_ACCEPTED);
    ck_assert_uint_eq(m.tag, tag);
    fp_client *other = connected(d);
    int found = 0;
    ck_assert_int_eq(fp_client_cancel(other, m.id, &found), 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(fp_client_cancel(other, 999999, &found), 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_RESPONSE);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), FP_CLIENT_EJOB);
    ck_assert_str_eq(o.kind, "cancelled");

    /* expired before it started: its rate-limit class has no token left
     * for the next 1000 s */
    ck_assert_int_eq(fp_client_limit(other, "slow", 0.001, 1), 0);
    opts = (struct fp_client_jobopts){ .key = "slow" };
    job = op_job("sleep", "s", 0, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, &opts, &o), 0);
    opts.has_expires = 1;
    opts.expires = 0.05;
    ck_assert_int_eq(fp_client_submit(c, job, len, &opts, &o), FP_CLIENT_EJOB);
    ck_assert_str_eq(o.kind, "cancelled");
    ck_assert(str_is(o.value, o.value_len, "expired before it started"));

    /* rejected: the daemon drains (while a job keeps it from exiting) */
    fp_client *running = connected(d);
    opts = (struct fp_client_jobopts){ .notify_id = 1 };
    job = op_job("sleep", "s", 0.5, &len);
    ck_assert_int_eq(fp_client_submit_async(running, job, len, &opts, NULL), 0);
    ck_assert_int_eq(fp_client_wait(running, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_ACCEPTED);
    ck_assert_int_eq(fp_client_drain(other), 0);
    job = op_job("sleep", "s", 0, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, NULL, &o), FP_CLIENT_EJOB);
    ck_assert_str_eq(o.kind, "rejected");
    ck_assert(!o.has_id);
    ck_assert(str_is(o.value, o.value_len, "draining"));
    ck_assert_int_eq(fp_client_wait(running, &m, WAIT_S), 1);
    ck_assert_int_eq(fp_client_outcome(running, &m, &o), 0);
    fp_client_close(running);
    fp_client_close(other);
    fp_client_close(c);
}
END_TEST

struct progress_seen {
    uint64_t values[8];
    int      n;
    uint64_t id;
};

static void
on_progress(void *arg, uint64_t id, const char *value, size_t len)
{
    struct progress_seen *p = arg;
    const msgpack_object *v = obj(value, len);

    ck_assert_int_lt(p->n, 8);
    ck_assert_int_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    p->values[p->n++] = v->via.u64;
    p->id = id;
}

START_TEST(progress_reaches_the_callback_and_the_message_stream)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    fp_client *c = connected(d);
    struct progress_seen seen = { .n = 0 };
    struct fp_client_jobopts opts = { .progress = 1, .on_progress = on_progress,
                                      .arg = &seen };
    struct fp_client_outcome o;
    struct fp_client_msg m;
    const char *job;
    size_t len;

    job = op_job("progress", "n", 3, &len);
    ck_assert_int_eq(fp_client_submit(c, job, len, &opts, &o), 0);
    ck_assert_int_eq(seen.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(seen.values[i], (uint64_t)i + 1);
    ck_assert_uint_eq(seen.id, o.id);

    /* pipelined: the progress messages come first, then the response */
    uint32_t tag = 0;
    ck_assert_int_eq(fp_client_submit_async(c, job, len, &opts, &tag), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
        ck_assert_int_eq(m.type, FP_CLIENT_MSG_PROGRESS);
        ck_assert_uint_eq(m.tag, tag);
        ck_assert_uint_eq(obj(m.result, m.result_len)->via.u64, (uint64_t)i + 1);
    }
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_RESPONSE);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
    ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, 3);
    fp_client_close(c);
}
END_TEST

#define PIPELINED 200

START_TEST(pipelined_submits_and_a_batch_are_answered_by_tag)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    fp_client *c = connected(d);
    static int answered[PIPELINED];
    uint32_t tags[PIPELINED];
    struct fp_client_outcome o;
    struct fp_client_msg m;
    char job[8];

    memset(answered, 0, sizeof answered);
    /* Tags the caller chose (the slot, plus one) and the library's own. */
    for (int i = 0; i < PIPELINED; i++) {
        tags[i] = i % 2 == 0 ? (uint32_t)i + 1 : 0;
        job[0] = (char)0xcd;    /* uint16 i */
        job[1] = (char)(i >> 8);
        job[2] = (char)i;
        ck_assert_int_eq(fp_client_submit_async(c, job, 3, NULL, &tags[i]), 0);
        if (i % 2 == 0)
            ck_assert_uint_eq(tags[i], (uint32_t)i + 1);
        else
            ck_assert_uint_gt(tags[i], FP_CLIENT_TAG_MAX);
    }
    ck_assert_uint_gt(fp_client_want_write(c), 0);
    struct fp_client_job batch[5];
    static const char five[5][1] = { {0x00}, {0x01}, {0x02}, {0x03}, {0x04} };
    for (int i = 0; i < 5; i++)
        batch[i] = (struct fp_client_job){ five[i], 1, NULL, NULL };
    uint32_t btag = 0;
    ck_assert_int_eq(fp_client_submit_batch(c, batch, 5, NULL, &btag), 0);

    int outcomes = 0, batch_answered = 0, index_seen = 0;
    for (int left = PIPELINED + 1 + 5; left > 0; left--) {
        ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
        if (m.tag == btag) {
            if (m.type == FP_CLIENT_MSG_RESPONSE) {
                ck_assert_ptr_null(m.error);
                batch_answered++;
                continue;
            }
            ck_assert_int_eq(m.type, FP_CLIENT_MSG_OUTCOME);
            ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
            ck_assert_uint_lt(m.index, 5);
            ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, m.index);
            index_seen |= 1 << m.index;
            outcomes++;
            continue;
        }
        ck_assert_int_eq(m.type, FP_CLIENT_MSG_RESPONSE);
        int i = 0;
        while (i < PIPELINED && tags[i] != m.tag)
            i++;
        ck_assert_int_lt(i, PIPELINED);
        ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
        ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, (uint64_t)i);
        answered[i]++;
    }
    for (int i = 0; i < PIPELINED; i++)
        ck_assert_int_eq(answered[i], 1);
    ck_assert_int_eq(batch_answered, 1);
    ck_assert_int_eq(outcomes, 5);
    ck_assert_int_eq(index_seen, 0x1f);
    ck_assert_int_eq(fp_client_wait(c, &m, 0), 0);     /* nothing more */
    fp_client_close(c);
}
END_TEST

static int released;

/* A msgpack bin of n bytes (bin 32 header, then byte i = i * 7), malloc'd:
 * n + 5 bytes in all. */
static char *
bin_job(size_t n)
{
    char *job = malloc(n + 5);

    ck_assert_ptr_nonnull(job);
    job[0] = (char)0xc6;
    job[1] = (char)(n >> 24); job[2] = (char)(n >> 16);
    job[3] = (char)(n >> 8); job[4] = (char)n;
    for (size_t i = 0; i < n; i++)
        job[5 + i] = (char)(i * 7);
    return job;
}

static void
count_release(void *arg)
{
    (void)arg;
    released++;
}

START_TEST(a_big_job_given_by_reference_is_sent_whole_and_released_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    size_t n = (size_t)1 << 20;
    char *job = bin_job(n);
    struct fp_client_outcome o;
    struct fp_client_msg m;

    released = 0;
    struct fp_client_job j = { job, n + 5, count_release, NULL };
    uint32_t tag = 0;
    ck_assert_int_eq(fp_client_submit_job(c, &j, NULL, &tag), 0);
    ck_assert_int_eq(released, 0);      /* still queued, by reference */
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
    ck_assert_uint_eq(o.value_len, n + 5);
    ck_assert(memcmp(o.value, job, n + 5) == 0);

    /* A small one is copied: released at once. */
    struct fp_client_job small = { "\xa1x", 2, count_release, NULL };
    ck_assert_int_eq(fp_client_submit_job(c, &small, NULL, NULL), 0);
    ck_assert_int_eq(released, 2);
    /* One left queued when the client closes is released then. */
    ck_assert_int_eq(fp_client_submit_job(c, &j, NULL, NULL), 0);
    ck_assert_int_eq(released, 2);
    fp_client_close(c);
    ck_assert_int_eq(released, 3);
    free(job);
}
END_TEST

/* ---- mixing blocking calls with pipelined requests ------------------------- */

START_TEST(a_blocking_call_keeps_other_answers_for_later_in_order)
{
    /* One worker runs jobs in the order they came: the two pipelined ones
     * end before the blocking one, whose wait meets their answers. */
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    struct fp_client_msg m;
    struct fp_client_outcome o;
    uint32_t t1 = 0, t2 = 0;

    ck_assert_int_eq(fp_client_submit_async(c, "\x01", 1, NULL, &t1), 0);
    ck_assert_int_eq(fp_client_submit_async(c, "\x02", 1, NULL, &t2), 0);
    ck_assert_int_eq(fp_client_submit(c, "\x03", 1, NULL, &o), 0);
    ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, 3);
    ck_assert_uint_eq(o.id, 3);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_uint_eq(m.tag, t1);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
    ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, 1);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_uint_eq(m.tag, t2);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
    ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, 2);
    ck_assert_int_eq(fp_client_wait(c, &m, 0), 0);
    fp_client_close(c);
}
END_TEST

/* ---- control methods -------------------------------------------------------- */

START_TEST(control_methods_answer_as_the_protocol_says)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    const char *st, *text;
    size_t len;
    unsigned workers = 0;

    ck_assert_int_eq(fp_client_status(c, &st, &len), 0);
    const msgpack_object *s = obj(st, len);
    ck_assert_str_eq(h_get_str(s, "state"), "running");
    ck_assert_int_eq(h_get_int(s, "workers"), 1);

    ck_assert_int_eq(fp_client_scale(c, 3, &workers), 0);
    ck_assert_uint_eq(workers, 3);
    ck_assert_int_eq(fp_client_reload(c), 0);

    ck_assert_int_eq(fp_client_limit(c, "k", 100, 5), 0);
    ck_assert_int_eq(fp_client_limit(c, "", 1000, 0), 0);
    ck_assert_int_eq(fp_client_status(c, &st, &len), 0);
    s = obj(st, len);
    const msgpack_object *limits = h_get(s, "limits");
    ck_assert_ptr_nonnull(limits);
    ck_assert_ptr_nonnull(h_get(limits, "k"));
    ck_assert_int_eq(fp_client_limit_remove(c, "k"), 0);
    ck_assert_int_eq(fp_client_limit(c, "k", NAN, 1), FP_CLIENT_EINVAL);
    ck_assert_int_eq(fp_client_limit(c, "k", 1, 0.5), FP_CLIENT_EREFUSED);
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "burst"));

    ck_assert_int_eq(fp_client_metrics(c, &text, &len), 0);
    ck_assert_ptr_nonnull(memmem(text, len, "forkpool_jobs_total{kind=\"ok\"}", 30));

    /* Any method by name; a method error is the caller's to judge. */
    struct fp_client_msg m;
    ck_assert_int_eq(fp_client_call(c, "no_such_method", "\x90", 1, &m), 0);
    ck_assert_ptr_nonnull(m.error);
    fp_client_close(c);
}
END_TEST

START_TEST(a_subscriber_receives_events)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *sub = connected(d), *c = connected(d);
    struct fp_client_outcome o;
    struct fp_client_msg m;

    ck_assert_int_eq(fp_client_subscribe(sub), 0);
    ck_assert_int_eq(fp_client_submit(c, "\x07", 1, NULL, &o), 0);
    for (;;) {
        ck_assert_int_eq(fp_client_wait(sub, &m, WAIT_S), 1);
        ck_assert_int_eq(m.type, FP_CLIENT_MSG_EVENT);
        const msgpack_object *e = obj(m.result, m.result_len);
        if (strcmp(h_get_str(e, "event"), "job") != 0)
            continue;
        ck_assert_int_eq(h_get_int(e, "id"), (int64_t)o.id);
        ck_assert_str_eq(h_get_str(e, "kind"), "ok");
        break;
    }
    fp_client_close(sub);
    fp_client_close(c);
}
END_TEST

/* ---- event-loop primitives -------------------------------------------------- */

START_TEST(the_nonblocking_primitives_drive_a_poll_loop)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    fp_client *c = connected(d);
    struct fp_client_msg m;
    int answers = 0;

    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(fp_client_submit_async(c, "\xc0", 1, NULL, NULL), 0);
    int64_t deadline = h_now_ms() + 10000;
    while (answers < 50) {
        struct pollfd pfd = { .fd = fp_client_fd(c),
                              .events = POLLIN | (fp_client_want_write(c) ? POLLOUT : 0) };
        ck_assert_int_lt(h_now_ms(), deadline);
        ck_assert_int_ge(poll(&pfd, 1, 1000), 0);
        if (pfd.revents & POLLOUT)
            ck_assert_int_eq(fp_client_flush(c), 0);
        if (pfd.revents & POLLIN) {
            ck_assert_int_eq(fp_client_read(c), 1);
            int rc;
            while ((rc = fp_client_next(c, &m)) == 1) {
                ck_assert_int_eq(m.type, FP_CLIENT_MSG_RESPONSE);
                answers++;
            }
            ck_assert_int_eq(rc, 0);
        }
    }
    ck_assert_uint_eq(fp_client_want_write(c), 0);
    fp_client_close(c);
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */

START_TEST(errors_are_return_codes_with_a_message)
{
    char path[200];
    fp_client *c;

    snprintf(path, sizeof path, "%s/nobody-listens", h_tempdir());
    ck_assert_int_eq(fp_client_connect(&c, path, 1), FP_CLIENT_ECONNECT);
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "No such file"));
    ck_assert_str_eq(fp_client_path(c), path);
    fp_client_close(c);
    fp_client_close(NULL);
    ck_assert_str_eq(fp_client_error(NULL), "out of memory");

    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    c = connected(d);
    struct fp_client_outcome o;
    struct fp_client_msg m;
    size_t len;
    const char *job = op_job("sleep", "s", 30, &len);

    /* The client's timeout bounds a blocking wait... */
    fp_client_set_timeout(c, 0.2);
    ck_assert_int_eq(fp_client_submit(c, job, len, NULL, &o), FP_CLIENT_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "within 0.2 s"));
    /* ...and fp_client_wait takes its own. */
    ck_assert_int_eq(fp_client_wait(c, &m, 0.05), 0);

    /* Bad arguments. */
    uint32_t tag = FP_CLIENT_TAG_MAX + 1;
    ck_assert_int_eq(fp_client_submit_async(c, "\xc0", 1, NULL, &tag), FP_CLIENT_EINVAL);
    ck_assert_int_eq(fp_client_submit_async(c, "", 0, NULL, NULL), FP_CLIENT_EINVAL);
    ck_assert_int_eq(fp_client_submit_batch(c, NULL, 0, NULL, NULL), FP_CLIENT_EINVAL);

    /* A request the daemon refuses: its answer names why. */
    ck_assert_int_eq(fp_client_call(c, "scale", "\x91\xa3" "abc", 5, &m), 0);
    ck_assert_ptr_nonnull(m.error);

    /* The daemon goes away: an error, not a SIGPIPE or an exit. */
    fp_client_set_timeout(c, WAIT_S);
    h_daemon_kill(d, SIGKILL);
    ck_assert_int_ne(h_daemon_wait(d, 5000), -1);
    int rc = fp_client_submit(c, job, len, NULL, &o);
    ck_assert_msg(rc == FP_CLIENT_ECONNECT, "rc %d: %s", rc, fp_client_error(c));
    fp_client_close(c);
}
END_TEST

START_TEST(the_default_path_follows_the_socket_rule)
{
    char buf[108];
    fp_client *c;

    setenv("FORKPOOL_SOCKET", "/run/x/fp.sock", 1);
    ck_assert_int_eq(fp_client_default_path(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/run/x/fp.sock");
    unsetenv("FORKPOOL_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    ck_assert_int_eq(fp_client_default_path(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/run/user/7/forkpool.sock");
    unsetenv("XDG_RUNTIME_DIR");
    ck_assert_int_eq(fp_client_default_path(buf, sizeof buf), 0);
    char want[64];
    snprintf(want, sizeof want, "/tmp/forkpool-%u.sock", (unsigned)getuid());
    ck_assert_int_eq(fp_client_default_path(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(fp_client_default_path(buf, 8), FP_CLIENT_EINVAL);

    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    setenv("FORKPOOL_SOCKET", d->sock, 1);
    ck_assert_int_eq(fp_client_connect(&c, NULL, WAIT_S), 0);
    ck_assert_str_eq(fp_client_path(c), d->sock);
    ck_assert_int_eq(fp_client_drain(c), 0);
    unsetenv("FORKPOOL_SOCKET");
    fp_client_close(c);
    int status = h_daemon_wait(d, 10000);
    ck_assert_int_ne(status, -1);
    ck_assert_int_eq(h_exit_code(status), 0);
}
END_TEST

/* A progress callback that tries to wait on its own client. */
static void
nested_call(void *arg, uint64_t id, const char *value, size_t len)
{
    fp_client *c = arg;
    const char *st;
    size_t stlen;
    struct fp_client_msg m;

    (void)id; (void)value; (void)len;
    ck_assert_int_eq(fp_client_status(c, &st, &stlen), FP_CLIENT_EINVAL);
    ck_assert_int_eq(fp_client_wait(c, &m, 0), FP_CLIENT_EINVAL);
}

START_TEST(a_callback_cannot_wait_on_its_own_client)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    fp_client *c = connected(d);
    struct fp_client_outcome o;
    size_t len;
    const char *job = op_job("progress", "n", 2, &len);

    fp_client_set_timeout(c, WAIT_S);
    struct fp_client_jobopts opts = { .progress = 1, .on_progress = nested_call,
                                      .arg = c };
    /* The outer call still gets its answer, and nothing hangs. */
    ck_assert_int_eq(fp_client_submit(c, job, len, &opts, &o), 0);
    ck_assert_uint_eq(obj(o.value, o.value_len)->via.u64, 2);
    fp_client_close(c);
}
END_TEST

START_TEST(a_client_that_did_not_connect_says_so_at_once)
{
    char path[200];
    fp_client *c;
    struct fp_client_outcome o;
    struct fp_client_msg m;
    const char *st;
    size_t len;

    snprintf(path, sizeof path, "%s/nobody-listens", h_tempdir());
    ck_assert_int_eq(fp_client_connect(&c, path, 30), FP_CLIENT_ECONNECT);
    int64_t t0 = h_now_ms();
    ck_assert_int_eq(fp_client_submit(c, "\xc0", 1, NULL, &o), FP_CLIENT_ECONNECT);
    ck_assert_int_eq(fp_client_status(c, &st, &len), FP_CLIENT_ECONNECT);
    ck_assert_int_eq(fp_client_wait(c, &m, 30), FP_CLIENT_ECONNECT);
    ck_assert_int_eq(fp_client_flush(c), FP_CLIENT_ECONNECT);
    ck_assert_int_eq(fp_client_read(c), FP_CLIENT_ECONNECT);
    ck_assert_str_eq(fp_client_error(c), "not connected");
    ck_assert_int_lt(h_now_ms() - t0, 20000);  /* not the 30 s timeouts */
    released = 0;
    struct fp_client_job j = { "\xc0", 1, count_release, NULL };
    ck_assert_int_eq(fp_client_submit_job(c, &j, NULL, NULL), FP_CLIENT_ECONNECT);
    ck_assert_int_eq(released, 1);
    fp_client_close(c);
}
END_TEST

START_TEST(a_batch_response_is_not_mistaken_for_an_outcome)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    struct fp_client_job one = { "\x01", 1, NULL, NULL };
    struct fp_client_outcome o;
    struct fp_client_msg m;
    uint32_t tag = 0;

    ck_assert_int_eq(fp_client_submit_batch(c, &one, 1, NULL, &tag), 0);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_RESPONSE);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), FP_CLIENT_EPROTO);
    ck_assert_uint_eq(o.tag, tag);
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_int_eq(m.type, FP_CLIENT_MSG_OUTCOME);
    ck_assert_int_eq(fp_client_outcome(c, &m, &o), 0);
    ck_assert_uint_eq(o.tag, tag);
    ck_assert_uint_eq(o.index, 0);
    fp_client_close(c);
}
END_TEST

START_TEST(the_message_bound_is_the_clients_to_set)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    fp_client *c = connected(d);
    size_t n = (size_t)2 << 20;
    char *job = bin_job(n);
    struct fp_client_outcome o;

    /* Bounded at 1 MiB: the echo is larger, refused before it is
     * buffered, and the connection is done for. */
    fp_client_set_max_bytes(c, (size_t)1 << 20);
    ck_assert_int_eq(fp_client_submit(c, job, n + 5, NULL, &o), FP_CLIENT_EPROTO);
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "bad response frame: "));
    /* ...and so does every later call: the stream cannot be read on. */
    const char *st;
    size_t stlen;
    struct fp_client_msg m;
    ck_assert_int_eq(fp_client_status(c, &st, &stlen), FP_CLIENT_EPROTO);
    ck_assert_int_eq(fp_client_wait(c, &m, 1), FP_CLIENT_EPROTO);
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "bad response frame: "));
    fp_client_close(c);
    /* Raised above it (as for a daemon with a larger --max-job-bytes than
     * the default): taken whole.  0 is the default again, which takes it. */
    c = connected(d);
    fp_client_set_max_bytes(c, (size_t)3 << 20);
    ck_assert_int_eq(fp_client_submit(c, job, n + 5, NULL, &o), 0);
    ck_assert_uint_eq(o.value_len, n + 5);
    ck_assert(memcmp(o.value, job, n + 5) == 0);
    fp_client_set_max_bytes(c, 0);
    ck_assert_int_eq(fp_client_submit(c, job, n + 5, NULL, &o), 0);
    fp_client_close(c);
    free(job);
}
END_TEST

START_TEST(the_late_answer_of_a_call_that_gave_up_is_dropped)
{
    /* One worker: the jobs end in the order they came. */
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    fp_client *c = connected(d);
    struct fp_client_outcome o;
    struct fp_client_msg m;
    uint32_t tag = 0;
    size_t len;
    const char *job = op_job("sleep", "s", 0.5, &len);

    fp_client_set_timeout(c, 0.1);
    ck_assert_int_eq(fp_client_submit(c, job, len, NULL, &o), FP_CLIENT_ETIMEDOUT);
    fp_client_set_timeout(c, WAIT_S);
    ck_assert_int_eq(fp_client_submit_async(c, "\xa1x", 2, NULL, &tag), 0);
    /* The first job's answer comes first, and is not handed out. */
    ck_assert_int_eq(fp_client_wait(c, &m, WAIT_S), 1);
    ck_assert_uint_eq(m.tag, tag);
    ck_assert_int_eq(fp_client_wait(c, &m, 0), 0);
    fp_client_close(c);
}
END_TEST

START_TEST(what_a_blocking_call_sets_aside_is_bounded)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    fp_client *c = connected(d), *other = connected(d);
    static struct fp_client_job jobs[2000];
    struct fp_client_outcome o;
    struct fp_client_msg m;
    size_t len;
    const char *job;

    /* A subscriber bounded at 64 KiB, waiting for a slow job while 2000
     * quick ones end (an event each, about 200 bytes). */
    fp_client_set_max_bytes(c, (size_t)64 << 10);
    ck_assert_int_eq(fp_client_subscribe(c), 0);
    job = op_job("sleep", "s", 0, &len);
    for (int i = 0; i < 2000; i++)
        jobs[i] = (struct fp_client_job){ job, len, NULL, NULL };
    ck_assert_int_eq(fp_client_submit_batch(other, jobs, 2000, NULL, NULL), 0);
    ck_assert_int_eq(fp_client_flush(other), 0);
    job = op_job("sleep", "s", 3, &len);
    int rc = fp_client_submit(c, job, len, NULL, &o);
    ck_assert_msg(rc == FP_CLIENT_ENOMEM, "rc %d: %s", rc, fp_client_error(c));
    ck_assert_ptr_nonnull(strstr(fp_client_error(c), "set aside"));
    /* What was set aside, and what waited behind it, is all there, in
     * order: events only (the slow job's answer is not for anyone now). */
    int events = 0;
    while ((rc = fp_client_wait(c, &m, 0)) == 1) {
        ck_assert_int_eq(m.type, FP_CLIENT_MSG_EVENT);
        events++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_gt(events, 64 * 1024 / 400);
    fp_client_close(other);
    fp_client_close(c);
}
END_TEST

static Suite *
client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc;

    tc = h_tcase("jobs", 60);
    tcase_add_test(tc, submit_returns_the_result_with_its_id_and_receipt);
    tcase_add_test(tc, the_connection_holds_a_mib_of_requests);
    tcase_add_test(tc, each_outcome_kind_comes_back_as_ejob_with_kind_and_detail);
    tcase_add_test(tc, progress_reaches_the_callback_and_the_message_stream);
    tcase_add_test(tc, pipelined_submits_and_a_batch_are_answered_by_tag);
    tcase_add_test(tc, a_big_job_given_by_reference_is_sent_whole_and_released_once);
    tcase_add_test(tc, a_blocking_call_keeps_other_answers_for_later_in_order);
    suite_add_tcase(s, tc);

    tc = h_tcase("control", 30);
    tcase_add_test(tc, control_methods_answer_as_the_protocol_says);
    tcase_add_test(tc, a_subscriber_receives_events);
    tcase_add_test(tc, the_nonblocking_primitives_drive_a_poll_loop);
    tcase_add_test(tc, errors_are_return_codes_with_a_message);
    tcase_add_test(tc, the_default_path_follows_the_socket_rule);
    tcase_add_test(tc, a_callback_cannot_wait_on_its_own_client);
    tcase_add_test(tc, a_client_that_did_not_connect_says_so_at_once);
    tcase_add_test(tc, a_batch_response_is_not_mistaken_for_an_outcome);
    tcase_add_test(tc, the_message_bound_is_the_clients_to_set);
    tcase_add_test(tc, the_late_answer_of_a_call_that_gave_up_is_dropped);
    tcase_add_test(tc, what_a_blocking_call_sets_aside_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(client_suite());
}
