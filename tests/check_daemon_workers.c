/*
 * check_daemon_workers.c — forkpoold's workers (SPEC §4): isolation, failed
 * starts and their backoff, --exec programs, the cmd builtin, recycling,
 * and what a worker shows of itself (stderr, process title).
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
#include <fcntl.h>
#include <sched.h>
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

/* ========================================================================
 * Workers (SPEC §4)
 * ======================================================================== */

START_TEST(master_sigkill_leaves_no_workers)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "3", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[3];
    int pidfd[3];

    ck_assert_int_eq(h_status_pids(h_status(c), pids, 3), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(pids[i]), 0);
    /* One of them busy in a job, too. */
    h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    h_status(c);
    h_daemon_kill(d, SIGKILL);
    int status = h_daemon_wait(d, 5000);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, NULL),
                      "worker %ld outlived its master", (long)pids[i]);
}
END_TEST

/* /proc/PID/cmdline up to its first NUL. */
static const char *
cmdline_of(pid_t pid, char *buf, size_t len)
{
    char path[64];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The pid of the first worker_list row in `state` in a status result, or 0. */
static pid_t
status_pid_in(const struct h_resp *st, const char *state)
{
    const msgpack_object *rows = h_get(st->result, "worker_list");

    ck_assert_ptr_nonnull(rows);
    for (uint32_t i = 0; i < rows->via.array.size; i++) {
        const char *s = h_get_str(&rows->via.array.ptr[i], "state");
        if (s != NULL && strcmp(s, state) == 0)
            return (pid_t)h_get_int(&rows->via.array.ptr[i], "pid");
    }
    return 0;
}

/* --spare-workers 1: status shows the spare (its title unnumbered); a
 * worker killed by a signal is replaced by it (its pid now runs the jobs)
 * and a new spare starts; SIGKILL of the master takes the spare with it,
 * like every worker. */
START_TEST(spare_worker_takes_a_dead_workers_place)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--spare-workers", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t worker = h_worker_pid(c), spare = 0, fresh = 0;
    struct h_resp *st;

    int64_t deadline = h_now_ms() + 10000;
    while ((spare = status_pid_in(st = h_status(c), "spare")) == 0)
        ck_assert_msg(h_left_ms(deadline) > 0, "no spare ready");
    ck_assert_int_eq(h_get_int(st->result, "spares"), 1);
    ck_assert_int_eq(h_get_int(st->result, "workers"), 1);
    ck_assert_int_ne(spare, worker);
    char title[256];
    /* No slot number: which slot it takes is not known when it starts. */
    ck_assert_str_eq(cmdline_of(spare, title, sizeof title), "forkpool: worker idle");

    ck_assert_int_eq(kill(worker, SIGSEGV), 0);
    ck_assert_int_eq(h_daemon_wait_log(d, "killed by SIGSEGV while idle", 0, 10000), 1);
    ck_assert_int_eq(h_worker_pid(c), spare);
    while ((fresh = status_pid_in(st = h_status(c), "spare")) == 0 || fresh == spare)
        ck_assert_msg(h_left_ms(deadline) > 0, "no new spare ready");
    ck_assert_int_ne(fresh, worker);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 1);

    int pidfd = h_pidfd(fresh);
    ck_assert_int_ge(pidfd, 0);
    h_daemon_kill(d, SIGKILL);
    h_daemon_wait(d, 5000);
    ck_assert_msg(h_wait_readable(pidfd, 5000, NULL), "spare %ld outlived its "
                  "master", (long)fresh);
}
END_TEST

/* --worker-sched (README "Worker scheduling"): workers run under
 * SCHED_BATCH by default, and a daemon under a policy other than
 * SCHED_OTHER passes its own on (seen on the replacement of a killed
 * worker, forked after the daemon moved to SCHED_IDLE). */
START_TEST(workers_run_under_sched_batch_unless_the_master_is_not_normal)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t worker = h_worker_pid(c), fresh;
    struct sched_param none = { 0 };

    ck_assert_int_eq(sched_getscheduler(d->pid), SCHED_OTHER);
    ck_assert_int_eq(sched_getscheduler(worker), SCHED_BATCH);
    ck_assert_int_eq(sched_setscheduler(d->pid, SCHED_IDLE, &none), 0);
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    ck_assert_int_eq(h_daemon_wait_log(d, "killed by SIGKILL", 0, 10000), 1);
    fresh = h_worker_pid(c);
    ck_assert_int_ne(fresh, worker);
    ck_assert_int_eq(sched_getscheduler(fresh), SCHED_IDLE);
}
END_TEST

/* --worker-sched inherit: the daemon's own policy. */
START_TEST(worker_sched_inherit_keeps_the_masters_policy)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--worker-sched", "inherit", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_int_eq(sched_getscheduler(h_worker_pid(c)), SCHED_OTHER);
}
END_TEST

/* Compare "N -> target" entries by fd number. */
static int
by_fd(const void *a, const void *b)
{
    return atoi(*(char *const *)a) - atoi(*(char *const *)b);
}

/* Every worker now running was forked while three clients were connected
 * and the other workers' sockets were open in the master: its fd table
 * must still be exactly stdin (/dev/null), stdout/stderr (the log), its
 * own socket on fd 3 and, on fd 4, its own /proc/PID/clear_refs (each
 * job's peak memory restarts through it: meter.h). */
START_TEST(worker_fd_table_holds_only_its_own)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "3", "--prefetch", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d), *c = h_connected(d);
    pid_t orig[3];
    int pidfd[3];
    uint32_t m[3];

    h_status(a);
    h_status(b);
    ck_assert_int_eq(h_status_pids(h_status(c), orig, 3), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(orig[i]), 0);

    /* With a window of one job, three sleeps run on three workers; when
     * they are done all three are idle, and three crash jobs arriving in
     * one read go one to each.  So every original worker is replaced. */
    h_rpc_cork(a);
    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.2}", NULL);
    h_rpc_uncork(a);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(h_rpc_wait(a, m[i], H_REPLY_MS));
    ck_assert_int_eq(h_get_int(h_status(a)->result, "idle"), 3);
    h_rpc_cork(a);
    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(a, "{\"op\": \"crash\"}", NULL);
    h_rpc_uncork(a);
    for (int i = 0; i < 3; i++) {
        struct h_resp *r = h_rpc_wait(a, m[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, d), "original worker %ld not replaced",
                      (long)orig[i]);

    for (int i = 0; i < 3; i++)
        m[i] = h_rpc_submit(b, "{\"op\": \"fds\"}", NULL);
    for (int i = 0; i < 3; i++) {
        struct h_resp *r = h_rpc_wait(b, m[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_msg(r->error == NULL, "fds job failed: %s", h_json(r->error));
        const msgpack_object *list = h_get(r->result, "result");
        ck_assert_int_eq(list->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_msg(list->via.array.size == 5, "worker fds: %s", h_json(list));
        char *e[5];
        for (int k = 0; k < 5; k++) {
            const msgpack_object *s = &list->via.array.ptr[k];
            ck_assert_int_eq(s->type, MSGPACK_OBJECT_STR);
            e[k] = strndup(s->via.str.ptr, s->via.str.size);
        }
        qsort(e, 5, sizeof(e[0]), by_fd);
        ck_assert_str_eq(e[0], "0 -> /dev/null");
        ck_assert_msg(strncmp(e[1], "1 -> ", 5) == 0 && strncmp(e[2], "2 -> ", 5) == 0
                      && strcmp(e[1] + 5, e[2] + 5) == 0,
                      "stdout and stderr differ: %s / %s", e[1], e[2]);
        ck_assert_msg(strncmp(e[3], "3 -> socket:[", 13) == 0, "fd 3: %s", e[3]);
        size_t n4 = strlen(e[4]);
        ck_assert_msg(strncmp(e[4], "4 -> /proc/", 11) == 0 && n4 > 11 + 11
                      && strcmp(e[4] + n4 - 11, "/clear_refs") == 0, "fd 4: %s", e[4]);
        for (int k = 0; k < 5; k++)
            free(e[k]);
    }
}
END_TEST

/* A daemon (-w 1 -v) whose worker can never start forks it again with
 * exponential backoff (10 ms, doubling), not in a tight loop, and counts
 * each failed start.  Only bounds a slow machine cannot break: the first
 * five starts take at least the backoffs between them, and the second
 * after them holds at most the few starts the doubling allows. */
static void
assert_failed_starts_back_off(struct h_daemon *d)
{
    struct h_rpc *c = h_connected(d);
    int64_t t0 = h_now_ms(), deadline = t0 + 20000;

    while (h_spawns(d) < 5 && h_now_ms() < deadline)
        h_daemon_pump(d, 5);
    int64_t took = h_now_ms() - t0;
    ck_assert_msg(h_spawns(d) >= 5, "only %d workers forked in 20 s", h_spawns(d));
    /* Between starts 1..5: at least 10 + 20 + 40 + 80 ms of backoff. */
    ck_assert_msg(took >= 140, "5 starts in %lld ms: no backoff", (long long)took);
    int at5 = h_spawns(d);
    h_daemon_pump(d, 1000);
    /* Then 160, 320, 640 ms...: at most 3 more within a second (+1 for a
     * start already due). */
    ck_assert_msg(h_spawns(d) - at5 <= 4, "%d more workers forked in 1 s",
                  h_spawns(d) - at5);
    struct h_resp *st = h_status(c);
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 4);
    ck_assert_int_ge(h_get_int(st->result, "restarts"), 4);
    h_resp_free(st);
}

START_TEST(init_failure_backs_off_without_fork_bomb)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--module-config", "{\"fail_init\": true}",
                                                "-w", "1", "-v", NULL));

    assert_failed_starts_back_off(d);
    ck_assert_int_eq(h_log_count(d, "before it was ready"), 1);
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(exec_worker_roundtrip)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_submit(c, "{\"via\": \"exec\", \"n\": [1, 2.5, null]}", NULL);
    ck_assert_str_eq(h_json(r->result),
                     h_canon("{\"id\": 1, \"result\": {\"via\": \"exec\", \"n\": [1, 2.5, null]}}"));
}
END_TEST

START_TEST(exec_program_failing_to_start_backs_off_and_logs_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER " fail", "-w", "1",
                                                "-v", NULL));

    assert_failed_starts_back_off(d);
    ck_assert_int_eq(h_log_count(d, "before it was ready"), 1);
}
END_TEST

/* A broken --exec program that answers garbage instead of "ready" is a
 * failed start too: backoff, and the log says why once per streak. */
START_TEST(exec_program_answering_garbage_backs_off_and_logs_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--exec", H_EXEC_WORKER " garbage", "-w", "1",
                                                "-v", NULL));

    assert_failed_starts_back_off(d);
    ck_assert_msg(h_log_count(d, "protocol error") == 1,
                  "%d \"protocol error\" log lines in one failing streak:\n%s",
                  h_log_count(d, "protocol error"), d->log);
}
END_TEST

/* A worker that says "ready" and exits at once, without a job, is a failed
 * start too (SPEC §4: it must not turn the master into a fork bomb). */
START_TEST(worker_exiting_right_after_ready_backs_off)
{
    /* The ready message, ["ready", {"pid": 1, "proto": 1}], from printf. */
    struct h_daemon *d = h_started(h_daemon_start(
        "--exec", "printf '\\222\\245ready\\202\\243pid\\001\\245proto\\001'",
        "-w", "1", "-v", NULL));

    assert_failed_starts_back_off(d);
    ck_assert_int_eq(h_log_count(d, "just after it was ready"), 1);
}
END_TEST

START_TEST(scale_beyond_max_workers_is_refused)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", "--max-workers", "3", NULL));
    struct h_rpc *c = h_connected(d);

    struct h_resp *r = h_rpc_call(c, "scale", "[4]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"cannot scale to 4 workers: the limit is 1 to 3\"");
    r = h_rpc_call(c, "scale", "[0]");
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_int_eq(h_get_int(h_status(c)->result, "workers"), 2);
    r = h_rpc_call(c, "scale", "[3]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"workers\":3}");
}
END_TEST

START_TEST(max_jobs_recycles_each_worker_with_jitter)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--max-jobs", "10", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t prev = 0;
    int run = 0, runs = 0;

    /* One worker, jobs one at a time: each pid serves a run of 10 or 11
     * jobs (10 plus up to 10% jitter) before a fresh one takes over. */
    for (int i = 0; i < 60; i++) {
        pid_t pid = h_worker_pid(c);
        if (pid != prev && prev != 0) {
            ck_assert_msg(run >= 10 && run <= 11, "worker %ld ran %d jobs", (long)prev, run);
            runs++;
            run = 0;
        }
        prev = pid;
        run++;
    }
    ck_assert_int_ge(runs, 4);
    ck_assert_int_ge(h_log_count(d, "reached --max-jobs"), 4);
}
END_TEST

START_TEST(max_rss_recycles_between_jobs_never_mid_job)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--max-rss", "40", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t before = h_worker_pid(c);

    /* The job that crosses the limit still completes ok ... */
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"grow\", \"mib\": 64}")), "\"grown\"");
    /* ... and the next job runs on a fresh worker. */
    ck_assert_int_ne(h_worker_pid(c), before);
    ck_assert_int_eq(h_log_count(d, "passed --max-rss"), 1);
}
END_TEST

/* ========================================================================
 * Handlers and what workers show (SPEC §4, §5)
 * ======================================================================== */

START_TEST(cmd_builtin_runs_command)
{
    /* No handler flag: the default is cmd. */
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", "
                                         "\"echo hi; echo err >&2; exit 3\"]}")),
                     h_canon("{\"exit\": 3, \"signal\": null, \"stdout\": \"hi\\n\", "
                           "\"stderr\": \"err\\n\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"cat\"], \"stdin\": \"abc\"}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"abc\", \"stderr\": \"\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", \"echo $FPT_X\"], "
                                         "\"env\": {\"FPT_X\": \"from env\"}}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"from env\\n\", "
                           "\"stderr\": \"\"}"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"sh\", \"-c\", \"kill -TERM $$\"]}")),
                     h_canon("{\"exit\": 143, \"signal\": \"SIGTERM\", \"stdout\": \"\", "
                           "\"stderr\": \"\"}"));

    struct h_resp *r = h_submit(c, "{\"argv\": [\"/nonexistent/fpt-cmd\"]}", NULL);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "error");
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "cannot execute /nonexistent/fpt-cmd: No such file or directory");
}
END_TEST

START_TEST(cmd_timeout_kills_the_whole_process_group)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char job[1024], path[256], buf[32];
    const char *dir = h_tempdir();

    /* A grandchild in the background, its pid left in a file, then a wait
     * that outlives the timeout. */
    snprintf(path, sizeof(path), "%s/grandchild.pid", dir);
    snprintf(job, sizeof(job), "{\"argv\": [\"sh\", \"-c\", \"sleep 1000 & "
             "echo $! > %s.tmp; mv %s.tmp %s; wait\"]}", path, path, path);
    struct h_resp *r = h_submit(c, job, "{\"timeout\": 0.5}");
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");

    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "the job never wrote its grandchild's pid");
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    pid_t grandchild = (pid_t)atol(buf);
    ck_assert_int_gt(grandchild, 1);
    int pfd = h_pidfd(grandchild);
    if (pfd >= 0) {     /* -1: already gone */
        ck_assert_msg(h_wait_readable(pfd, 5000, d) > 0,
                      "grandchild %ld survived the job's timeout", (long)grandchild);
        close(pfd);
    }
    /* The pool goes on. */
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"argv\": [\"true\"]}")),
                     h_canon("{\"exit\": 0, \"signal\": null, \"stdout\": \"\", "
                           "\"stderr\": \"\"}"));
}
END_TEST

START_TEST(worker_stderr_is_logged_line_by_line_with_its_pid)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);
    char want[128];

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"say\", \"text\": \"hello log\"}")),
                     "\"said\"");
    /* A module worker's stdout joins its stderr: both reach the log. */
    snprintf(want, sizeof(want), "info: worker %ld: hello log", (long)pid);
    ck_assert(h_daemon_wait_log(d, want, 0, 5000));
    snprintf(want, sizeof(want), "info: worker %ld: stdout: hello log", (long)pid);
    ck_assert(h_daemon_wait_log(d, want, 0, 5000));
}
END_TEST

START_TEST(process_titles_show_role_and_job)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);
    char buf[256], want[256];
    uint32_t msgid;

    snprintf(want, sizeof(want), "forkpool: master %s", d->sock);
    ck_assert_str_eq(cmdline_of(d->pid, buf, sizeof(buf)), want);
    ck_assert_str_eq(cmdline_of(pid, buf, sizeof(buf)), "forkpool: worker 0 idle");
    msgid = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.5}", NULL);
    /* Once the master counts the job as running, the worker sets its title
     * as it starts it: poll the title briefly (nothing to wait on). */
    struct h_resp *st;
    do {
        st = h_status(c);
    } while (h_get_int(st->result, "busy") == 0);
    int64_t deadline = h_now_ms() + 5000;
    while (strcmp(cmdline_of(pid, buf, sizeof(buf)), "forkpool: worker 0 busy job 2") != 0
           && h_now_ms() < deadline)
        h_daemon_pump(d, 10);
    ck_assert_str_eq(buf, "forkpool: worker 0 busy job 2");
    ck_assert_ptr_nonnull(h_rpc_wait(c, msgid, 5000));
}
END_TEST

START_TEST(slow_log_names_a_running_job_once)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", "--slow-log", "0.1", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t msgid = h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 0.6}", NULL);

    /* Logged while the job still runs: before its response exists. */
    ck_assert(h_daemon_wait_log(d, "slow job 1 on worker", 0, 5000));
    struct h_resp *st = h_status(c);
    const msgpack_object *rows = h_get(st->result, "worker_list");
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_eq(rows->via.array.size, 1);
    ck_assert_str_eq(h_get_str(&rows->via.array.ptr[0], "state"), "busy");
    ck_assert_int_eq(h_get_int(&rows->via.array.ptr[0], "job"), 1);
    ck_assert_int_gt(h_get_int(&rows->via.array.ptr[0], "rss"), 0);

    struct h_resp *r = h_rpc_wait(c, msgid, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->error);
    ck_assert_int_eq(h_log_count(d, "slow job 1 on worker"), 1);

    struct h_resp *m = h_rpc_call(c, "metrics", "[]");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->result->type, MSGPACK_OBJECT_STR);
    ck_assert_msg(memmem(m->result->via.str.ptr, m->result->via.str.size,
                         "forkpool_job_duration_seconds_count 1\n", 38) != NULL,
                  "no job duration histogram in metrics");
}
END_TEST

static Suite *
daemon_workers_suite(void)
{
    Suite *s = suite_create("daemon workers");
    TCase *tc;

    tc = h_tcase("workers", 20);
    tcase_add_test(tc, master_sigkill_leaves_no_workers);
    tcase_add_test(tc, spare_worker_takes_a_dead_workers_place);
    tcase_add_test(tc, workers_run_under_sched_batch_unless_the_master_is_not_normal);
    tcase_add_test(tc, worker_sched_inherit_keeps_the_masters_policy);
    tcase_add_test(tc, worker_fd_table_holds_only_its_own);
    tcase_add_test(tc, init_failure_backs_off_without_fork_bomb);
    tcase_add_test(tc, exec_worker_roundtrip);
    tcase_add_test(tc, exec_program_failing_to_start_backs_off_and_logs_once);
    tcase_add_test(tc, exec_program_answering_garbage_backs_off_and_logs_once);
    tcase_add_test(tc, worker_exiting_right_after_ready_backs_off);
    tcase_add_test(tc, scale_beyond_max_workers_is_refused);
    tcase_add_test(tc, max_jobs_recycles_each_worker_with_jitter);
    tcase_add_test(tc, max_rss_recycles_between_jobs_never_mid_job);
    suite_add_tcase(s, tc);

    tc = h_tcase("handlers", 20);
    tcase_add_test(tc, cmd_builtin_runs_command);
    tcase_add_test(tc, cmd_timeout_kills_the_whole_process_group);
    tcase_add_test(tc, worker_stderr_is_logged_line_by_line_with_its_pid);
    tcase_add_test(tc, process_titles_show_role_and_job);
    tcase_add_test(tc, slow_log_names_a_running_job_once);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_workers_suite());
}
