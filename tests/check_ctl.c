/*
 * check_ctl.c — forkpoolctl against a real forkpoold (SPEC §8): exit
 * codes, submit --ids, map, status, and the one-shot commands.
 *
 * Each test starts its own forkpoold in a fresh temp dir (harness.h), waits
 * for its "listening on" log line, and talks MessagePack-RPC to it or runs
 * forkpoolctl against it.  Nothing waits by sleeping: responses, log lines
 * and pidfds are awaited with deadlines.
 * Jobs for the test module are listed in testmod.h.
 */
#include "config.h"
#include <check.h>
#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

START_TEST(forkpoolctl_ids_prints_each_id_when_accepted)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    /* submit: the id on stderr at acceptance, the outcome on stdout. */
    h_ctl(&run, d, NULL, "submit", "--ids", "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.err, "{\"id\": 1, \"accepted\": true}\n");
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": \"slept\"}\n");

    /* map: one accepted line per job, with its index. */
    h_ctl(&run, d, "10\n20\n30\n", "map", "--ids", "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_int_eq(h_count_lines(run.err), 3);
    ck_assert_ptr_nonnull(strstr(run.err, "{\"index\": 0, \"id\": 2, \"accepted\": true}\n"));
    ck_assert_ptr_nonnull(strstr(run.err, "{\"index\": 2, \"id\": 4, \"accepted\": true}\n"));
    ck_assert_str_eq(run.out, "{\"index\": 0, \"id\": 2, \"ok\": true, \"result\": 10}\n"
                              "{\"index\": 1, \"id\": 3, \"ok\": true, \"result\": 20}\n"
                              "{\"index\": 2, \"id\": 4, \"ok\": true, \"result\": 30}\n");
}
END_TEST

START_TEST(forkpoolctl_exit_codes)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;
    char nosock[128];

    h_need_ctl();
    h_ctl(&run, d, NULL, "submit", "{\"x\": 1}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": {\"x\": 1}}\n");
    ck_assert_int_eq(h_exit_code(run.status), 0);

    h_ctl(&run, d, NULL, "submit", "{\"op\": \"crash\"}", NULL);
    ck_assert_str_eq(run.out, "{\"id\": 2, \"ok\": false, \"kind\": \"crashed\", "
                              "\"detail\": \"killed by SIGSEGV\"}\n");
    ck_assert_int_eq(h_exit_code(run.status), 1);

    h_ctl(&run, d, NULL, "submit", "{bad", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_str_eq(run.out, "");
    ck_assert_str_ne(run.err, "");

    h_ctl(&run, d, NULL, "frobnicate", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "frobnicate"));

    h_ctl(&run, d, NULL, "submit", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);

    snprintf(nosock, sizeof(nosock), "%s/nobody-here", h_tempdir());
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", nosock, (char *)"submit",
                     (char *)"1", NULL };
    h_run_argv(&run, NULL, NULL, 10000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_msg(strstr(run.err, nosock) != NULL, "message does not name %s: %s", nosock,
                  run.err);
    ck_assert_str_eq(run.out, "");
}
END_TEST

/* 100 job lines, every tenth (from 3) a failure whose detail is its index. */
static char *
map_input(int with_failures)
{
    char *text = malloc(100 * 64), *p = text;

    for (int i = 0; i < 100; i++) {
        if (with_failures && i % 10 == 3)
            p += sprintf(p, "{\"op\": \"fail\", \"detail\": %d}\n", i);
        else
            p += sprintf(p, "{\"n\": %d}\n", i);
    }
    return text;
}

/* Check map's output lines; returns the indexes in output order. */
static void
check_map_output(const char *out, int with_failures, int order[100])
{
    const char *line = out;
    int seen[100] = { 0 }, n = 0;

    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        char *text = strndup(line, (size_t)(nl - line));
        json_error_t err;
        json_t *o = json_loads(text, 0, &err);
        ck_assert_msg(o != NULL, "not JSON: %s", text);
        ck_assert_msg(strncmp(text, "{\"index\": ", 10) == 0, "index is not first: %s", text);
        json_int_t idx = json_integer_value(json_object_get(o, "index"));
        ck_assert_msg(idx >= 0 && idx < 100 && !seen[idx], "bad or repeated index: %s", text);
        seen[idx] = 1;
        ck_assert_int_lt(n, 100);
        order[n++] = (int)idx;
        if (with_failures && idx % 10 == 3) {
            ck_assert_msg(json_is_false(json_object_get(o, "ok")), "%s", text);
            ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "error");
            ck_assert_int_eq(json_integer_value(json_object_get(o, "detail")), idx);
        } else {
            ck_assert_msg(json_is_true(json_object_get(o, "ok")), "%s", text);
            json_t *res = json_object_get(o, "result");
            ck_assert_int_eq(json_integer_value(json_object_get(res, "n")), idx);
        }
        ck_assert(json_is_integer(json_object_get(o, "id")));
        json_decref(o);
        free(text);
        line = nl + 1;
    }
    ck_assert_int_eq(n, 100);
}

START_TEST(forkpoolctl_map_outcomes)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_run run;
    int order[100];
    char *in = map_input(1), *all_ok = map_input(0);

    h_need_ctl();
    h_ctl(&run, d, in, "map", NULL);
    ck_assert_msg(h_exit_code(run.status) == 1, "status %d, stderr %s", run.status, run.err);
    check_map_output(run.out, 1, order);

    h_ctl(&run, d, in, "map", "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    check_map_output(run.out, 1, order);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(order[i], i);

    h_ctl(&run, d, all_ok, "map", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    check_map_output(run.out, 0, order);
    ck_assert_str_eq(run.err, "");
    free(in);
    free(all_ok);
}
END_TEST

/* map widens the pipes it reads and writes to 256 KiB (a 1 MiB job's line
 * crosses a 64 KiB pipe in twenty pieces): seen from the test's own ends,
 * once map has answered a line. */
START_TEST(forkpoolctl_map_widens_its_pipes)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    int in[2], out[2], status;
    char buf[256];

    h_need_ctl();
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl(H_FORKPOOLCTL, H_FORKPOOLCTL, "-s", d->sock, "map", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    ck_assert_int_eq(write(in[1], "7\n", 2), 2);
    ck_assert_int_gt(read(out[0], buf, sizeof(buf)), 0);
    ck_assert_int_eq(fcntl(in[1], F_GETPIPE_SZ), 256 * 1024);
    ck_assert_int_eq(fcntl(out[0], F_GETPIPE_SZ), 256 * 1024);
    close(in[1]);
    while (read(out[0], buf, sizeof(buf)) > 0)
        ;
    close(out[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(h_exit_code(status), 0);
}
END_TEST

/* A fake daemon for one `forkpoolctl map`: it listens on a socket of its
 * own, starts map on it (stdin from a pipe we write, stdout to /dev/null),
 * and reads map's requests; it answers only what a test tells it to. */
struct fake {
    char             path[256];
    int              lsn, conn, in;     /* in: map's stdin, our end */
    pid_t            map;
    msgpack_unpacker up;
    msgpack_unpacked req;
    uint64_t         total;             /* bytes map has sent */
};

static void
fake_start(struct fake *f, const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int in[2];

    h_need_ctl();
    snprintf(f->path, sizeof f->path, "%s/%s", h_tempdir(), name);
    ck_assert_int_lt(strlen(f->path), sizeof sa.sun_path);
    strcpy(sa.sun_path, f->path);
    ck_assert_int_ge(f->lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(bind(f->lsn, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(f->lsn, 1), 0);
    ck_assert_int_eq(pipe(in), 0);
    f->map = fork();
    ck_assert_int_ge(f->map, 0);
    if (f->map == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(in[0], 0);
        dup2(nul, 1);
        close(in[0]);
        close(in[1]);
        execl(H_FORKPOOLCTL, H_FORKPOOLCTL, "-s", f->path, "map", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    f->in = in[1];
    ck_assert_int_eq(h_wait_readable(f->lsn, H_REPLY_MS, NULL), 1);
    ck_assert_int_ge(f->conn = accept(f->lsn, NULL, NULL), 0);
    f->total = 0;
    ck_assert(msgpack_unpacker_init(&f->up, 1 << 16));
    msgpack_unpacked_init(&f->req);
}

/* Map's next request [0, msgid, method, params]; `what` names it in the
 * failure message if none comes. */
static const msgpack_object *
fake_next(struct fake *f, const char *what)
{
    while (msgpack_unpacker_next(&f->up, &f->req) != MSGPACK_UNPACK_SUCCESS) {
        ck_assert_msg(h_wait_readable(f->conn, H_REPLY_MS, NULL) == 1,
                      "map sent no request for %s", what);
        ck_assert(msgpack_unpacker_reserve_buffer(&f->up, 1 << 16));
        ssize_t n = read(f->conn, msgpack_unpacker_buffer(&f->up), 1 << 16);
        ck_assert_int_gt(n, 0);
        f->total += (uint64_t)n;
        msgpack_unpacker_buffer_consumed(&f->up, (size_t)n);
    }
    ck_assert(f->req.data.type == MSGPACK_OBJECT_ARRAY && f->req.data.via.array.size == 4);
    return f->req.data.via.array.ptr;
}

/* Map's first request is for the daemon's status: answered with an error,
 * its msgid echoed (map then takes the default job limit). */
static void
fake_refuse_status(struct fake *f)
{
    const msgpack_object *rq = fake_next(f, "the status");

    ck_assert_str_eq(h_json(&rq[2]), "\"status\"");
    uint32_t id = (uint32_t)rq[1].via.u64;
    const unsigned char no[] = {        /* [1, id, "no", nil] */
        0x94, 0x01, 0xce, (unsigned char)(id >> 24), (unsigned char)(id >> 16),
        (unsigned char)(id >> 8), (unsigned char)id, 0xa2, 'n', 'o', 0xc0,
    };
    ck_assert_int_eq(write(f->conn, no, sizeof no), (ssize_t)sizeof no);
}

static void
fake_stop(struct fake *f)
{
    kill(f->map, SIGKILL);
    waitpid(f->map, NULL, 0);
    if (f->in >= 0)
        close(f->in);
    close(f->conn);
    close(f->lsn);
    msgpack_unpacked_destroy(&f->req);
    msgpack_unpacker_destroy(&f->up);
}

/* line = {"x": "aaa…"} with `len` a's and a newline; returns its length. */
static size_t
big_line(char *line, size_t len)
{
    memcpy(line, "{\"x\": \"", 7);
    memset(line + 7, 'a', len);
    memcpy(line + 7 + len, "\"}\n", 3);
    return len + 10;
}

/* Without acceptances, map converts no more than 4 MiB of jobs ahead
 * (ctl_map.c, AHEAD_BYTES).  The fake daemon answers nothing after the
 * status request and reads every byte: map, fed 1 MiB jobs, must stop
 * sending after some four or five of them, instead of converting line
 * after line while no acceptance comes. */
START_TEST(forkpoolctl_map_converts_a_bounded_amount_ahead)
{
    enum { JOBS = 30, JOB = 1 << 20 };
    struct fake f;

    fake_start(&f, "fake.sock");
    /* The lines, written by a child of their own: map stops reading them. */
    pid_t writer = fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0) {
        static char line[JOB + 16];
        size_t len = big_line(line, JOB);
        for (int i = 0; i < JOBS; i++)
            for (size_t off = 0; off < len; ) {
                ssize_t n = write(f.in, line + off, len - off);
                if (n <= 0)
                    _exit(0);
                off += (size_t)n;
            }
        _exit(0);
    }
    close(f.in);
    f.in = -1;
    fake_refuse_status(&f);

    /* Then everything map sends, until it has sent four MiB and gone
     * quiet for a second (or, broken, sent ten). */
    static char buf[1 << 16];
    int64_t deadline = h_now_ms() + 60000;
    for (;;) {
        int quiet = f.total >= ((uint64_t)4 << 20) ? 1000 : h_left_ms(deadline);
        if (f.total > ((uint64_t)10 << 20) || h_wait_readable(f.conn, quiet, NULL) != 1)
            break;
        ssize_t n = read(f.conn, buf, sizeof buf);
        if (n <= 0)
            break;
        f.total += (uint64_t)n;
    }
    uint64_t total = f.total;
    fake_stop(&f);
    kill(writer, SIGKILL);
    waitpid(writer, NULL, 0);
    /* 4 MiB, and the job that crossed it. */
    ck_assert_msg(total >= ((uint64_t)4 << 20) && total <= ((uint64_t)5 << 20) + 4096,
                  "map sent %" PRIu64 " bytes with no job accepted", total);
}
END_TEST

/* ... but jobs sent as plain submits (a lone line of a small job, or any
 * job sent again after "queue full") are answered only at their end, and
 * do not count as converted ahead: against a fake daemon that never ends
 * them, map still sends each of 100 lone lines of 60 KiB as it comes
 * (6 MiB in all, past the 4 MiB bound), one at a time. */
START_TEST(forkpoolctl_map_plain_submits_do_not_count_as_ahead)
{
    enum { JOBS = 100, JOB = 60 << 10 };
    static char line[JOB + 16];
    size_t len = big_line(line, JOB);
    struct fake f;
    char what[32];

    fake_start(&f, "fake2.sock");
    fake_refuse_status(&f);
    /* Line i is written only once the request for line i - 1 arrived, so
     * that each line is alone. */
    for (int i = 0; i < JOBS; i++) {
        ck_assert_int_eq(write(f.in, line, len), (ssize_t)len);
        snprintf(what, sizeof what, "line %d", i);
        ck_assert_str_eq(h_json(&fake_next(&f, what)[2]), "\"submit\"");
    }
    fake_stop(&f);
}
END_TEST

/* map sends the lines waiting on stdin as submit_batch requests; against a
 * queue of 4, most batches are refused whole and their jobs go again one
 * by one, paced: still every line gets exactly one outcome. */
START_TEST(forkpoolctl_map_batches_survive_a_full_queue)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--queue-max", "4",
                                                  NULL));
    struct h_run run;
    int order[100];
    char *in = map_input(1);

    h_need_ctl();
    h_ctl(&run, d, in, "map", NULL);
    ck_assert_msg(h_exit_code(run.status) == 1, "status %d, stderr %s", run.status, run.err);
    check_map_output(run.out, 1, order);
    ck_assert_str_eq(run.err, "");
    free(in);
}
END_TEST

/* Big jobs go out by reference to the line's converted params, not
 * copied (codec/outq.h): against a queue of 2, their batches are refused
 * and they are sent again, one by one, from the same params -- which stay
 * untouched until their bytes are written.  Every line, big or small, gets
 * its own result back. */
START_TEST(forkpoolctl_map_big_jobs_survive_a_full_queue)
{
    enum { N = 60 };
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--queue-max", "2", NULL));
    struct h_run run;
    size_t cap = (size_t)N * 80000, at = 0;
    char *in = malloc(cap);
    int seen[N] = { 0 };

    ck_assert_ptr_nonnull(in);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            at += (size_t)sprintf(in + at, "{\"n\": %d}\n", i);
            continue;
        }
        at += (size_t)sprintf(in + at, "{\"n\": %d, \"pad\": \"", i);
        memset(in + at, 'a' + i % 26, 17000 + (size_t)i * 1000);
        at += 17000 + (size_t)i * 1000;
        at += (size_t)sprintf(in + at, "\"}\n");
    }
    h_need_ctl();
    h_ctl(&run, d, in, "map", NULL);
    ck_assert_msg(h_exit_code(run.status) == 0, "status %d, stderr %s", run.status, run.err);
    ck_assert_int_eq(h_count_lines(run.out), N);
    for (const char *line = run.out; *line != '\0'; line = strchr(line, '\n') + 1) {
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)(strchr(line, '\n') - line), 0, &err);
        ck_assert_msg(o != NULL, "not JSON: %.80s", line);
        json_int_t idx = json_integer_value(json_object_get(o, "index"));
        ck_assert(idx >= 0 && idx < N && !seen[idx]);
        seen[idx] = 1;
        ck_assert(json_is_true(json_object_get(o, "ok")));
        json_t *res = json_object_get(o, "result");
        ck_assert_int_eq(json_integer_value(json_object_get(res, "n")), idx);
        const char *pad = json_string_value(json_object_get(res, "pad"));
        if (idx % 3 == 0) {
            ck_assert_ptr_null(pad);
        } else {
            ck_assert_ptr_nonnull(pad);
            ck_assert_uint_eq(strlen(pad), 17000 + (size_t)idx * 1000);
            ck_assert_int_eq(pad[0], 'a' + idx % 26);
            ck_assert_uint_eq(strspn(pad, (char[]){ (char)('a' + idx % 26), 0 }),
                              strlen(pad));
        }
        json_decref(o);
    }
    free(in);
}
END_TEST

START_TEST(forkpoolctl_status_json_and_table)
{
    static const char *const keys[] = {
        "state", "workers", "busy", "idle", "queued", "completed", "failed",
        "crashed", "timed_out", "restarts", "uptime_s", "pids",
    };
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_run run;
    json_error_t err;

    h_need_ctl();
    h_ctl(&run, d, NULL, "status", "--json", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    json_t *st = json_loads(run.out, 0, &err);
    ck_assert_msg(st != NULL && json_is_object(st), "not a JSON map: %s", run.out);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(json_object_get(st, keys[i]) != NULL, "status --json lacks \"%s\": %s",
                      keys[i], run.out);
    ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "running");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "workers")), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(st, "pids")), 2);
    ck_assert(json_is_number(json_object_get(st, "uptime_s")));
    json_decref(st);

    h_ctl(&run, d, NULL, "status", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    const char *w = strstr(run.out, "workers");
    ck_assert_msg(w != NULL && (w == run.out || w[-1] == '\n'), "no workers line: %s", run.out);
    w += strlen("workers");
    while (*w == ' ')
        w++;
    ck_assert_msg(w[0] == '2' && (w[1] == ' ' || w[1] == '\n'), "workers line: %s", run.out);
}
END_TEST

START_TEST(forkpoolctl_cancel_scale_metrics_drain)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, NULL, "cancel", "42", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);

    h_ctl(&run, d, NULL, "scale", "3", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_str_eq(run.out, "{\"workers\": 3}\n");

    h_ctl(&run, d, NULL, "metrics", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_ptr_nonnull(strstr(run.out, "# TYPE forkpool_jobs_total counter\n"));

    h_ctl(&run, d, NULL, "drain", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
}
END_TEST

static Suite *
ctl_suite(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc;

    tc = h_tcase("forkpoolctl", 30);
    tcase_add_test(tc, forkpoolctl_ids_prints_each_id_when_accepted);
    tcase_add_test(tc, forkpoolctl_exit_codes);
    tcase_add_test(tc, forkpoolctl_map_outcomes);
    tcase_add_test(tc, forkpoolctl_map_widens_its_pipes);
    tcase_add_test(tc, forkpoolctl_map_converts_a_bounded_amount_ahead);
    tcase_add_test(tc, forkpoolctl_map_plain_submits_do_not_count_as_ahead);
    tcase_add_test(tc, forkpoolctl_map_batches_survive_a_full_queue);
    tcase_add_test(tc, forkpoolctl_map_big_jobs_survive_a_full_queue);
    tcase_add_test(tc, forkpoolctl_status_json_and_table);
    tcase_add_test(tc, forkpoolctl_cancel_scale_metrics_drain);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(ctl_suite());
}
