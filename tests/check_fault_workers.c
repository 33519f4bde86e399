/*
 * check_fault_workers.c — forkpoold when workers and jobs go wrong in ways
 * that used to hang or leak (issue 12): a worker that never becomes ready
 * (--start-timeout), jobs that must start in time or not at all (the
 * "expires" option, wherever the job waits), processes a job leaves behind
 * (none may outlive it), and --user with a module only root can read.
 *
 * Each test starts its own forkpoold (harness.h) and waits for log lines,
 * responses and pidfds with deadlines; nothing waits by sleeping.  The test
 * module's ops and config are listed in testmod.h.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define EXPIRED "expired before it started"

/* The outcome of a job that must end `kind` with detail `detail`. */
static void
assert_failed(const struct h_resp *r, const char *kind, const char *detail)
{
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->error != NULL, "job ended ok: %s", h_json(r->result));
    ck_assert_str_eq(h_get_str(r->error, "kind"), kind);
    ck_assert_str_eq(h_get_str(r->error, "detail"), detail);
}

/* Wait until process `pid` no longer exists (it was killed and reaped). */
static void
assert_gone(struct h_daemon *d, pid_t pid, const char *what)
{
    int64_t deadline = h_now_ms() + 5000;

    ck_assert_int_gt(pid, 1);
    while (!(kill(pid, 0) == -1 && errno == ESRCH)) {
        ck_assert_msg(h_now_ms() < deadline, "%s (pid %ld) outlived its job",
                      what, (long)pid);
        h_daemon_pump(d, 10);
    }
}

/* ========================================================================
 * Workers that never become ready (--start-timeout)
 * ======================================================================== */

/* Wait for `n` worker forks in all (the -v log). */
static void
wait_spawns(struct h_daemon *d, int n)
{
    int64_t deadline = h_now_ms() + 20000;

    while (h_spawns(d) < n) {
        ck_assert_msg(h_now_ms() < deadline && h_daemon_alive(d),
                      "only %d worker starts; log:\n%s", h_spawns(d), d->log);
        h_daemon_pump(d, 20);
    }
}

/* A module whose init never returns: the worker is killed at the start
 * timeout, counted as a failed start and restarted with backoff, logged
 * once per streak (not once per attempt); a job with "expires" that waits
 * for it meanwhile ends cancelled in time. */
START_TEST(module_init_that_never_returns_is_killed_at_start_timeout)
{
    struct h_daemon *d = h_started(h_daemon_start(
        H_MOD, "--module-config", "{\"hang_init\": true}",
        "--start-timeout", "0.2", "-w", "1", "-v", NULL));
    struct h_rpc *c = h_connected(d);

    assert_failed(h_submit(c, "{\"n\": 1}", "{\"expires\": 0.5}"), "cancelled", EXPIRED);
    wait_spawns(d, 4);
    ck_assert_int_eq(h_log_count(d, "not ready 0.2s after its start (--start-timeout)"), 1);
    struct h_resp *st = h_status(c);
    ck_assert_int_ge(h_get_int(st->result, "start_failures"), 3);
    ck_assert_int_eq(h_get_int(st->result, "queued"), 0);
    ck_assert_int_eq(h_get_int(st->result, "completed"), 0);
    ck_assert(h_daemon_alive(d));
}
END_TEST

/* An --exec program that never says "ready": each start is killed at the
 * start timeout (its process is gone).  With no worker able to start, a
 * queued job without "expires" waits -- a worker may yet come good -- and
 * still gets its outcome: the drain's cut-off cancels it (SPEC 5). */
START_TEST(exec_program_that_never_says_ready_is_killed_and_queued_job_ends)
{
    struct h_daemon *d = h_started(h_daemon_start(
        "--exec", "sleep 1000", "--start-timeout", "0.2", "--drain-timeout", "1",
        "-w", "1", "-v", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid;

    ck_assert_int_eq(h_status_pids(h_status(c), &pid, 1), 1);
    int pidfd = h_pidfd(pid);
    if (pidfd >= 0)
        ck_assert_msg(h_wait_readable(pidfd, 5000, d), "worker %ld never killed", (long)pid);
    uint32_t waiting = h_rpc_submit(c, "{\"n\": 1}", NULL);
    assert_failed(h_submit(c, "{\"n\": 2}", "{\"expires\": 0.3}"), "cancelled", EXPIRED);
    /* Its log line comes before the next start's, on the one stream. */
    wait_spawns(d, 3);
    ck_assert_int_eq(h_log_count(d, "not ready 0.2s after its start"), 1);
    h_daemon_kill(d, SIGTERM);
    assert_failed(h_rpc_wait(c, waiting, 5000), "cancelled", "drain timeout");
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 1);
}
END_TEST

/* ========================================================================
 * expires (SPEC 3, 7, 8)
 * ======================================================================== */

/* Behind a job that never ends, a job with "expires" waits in the master's
 * queue and ends cancelled -- through the RPC and through forkpoolctl. */
START_TEST(expires_cancels_a_job_waiting_in_the_queue)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
    assert_failed(h_submit(c, "{\"n\": 1}", "{\"expires\": 0.2}"), "cancelled", EXPIRED);
    h_need_ctl();
    h_ctl(&run, d, NULL, "submit", "--expires", "0.2", "{\"n\": 2}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_str_eq(h_canon(run.out),
                     h_canon("{\"id\": 3, \"ok\": false, \"kind\": \"cancelled\", "
                             "\"detail\": \"expired before it started\"}"));
    h_ctl(&run, d, NULL, "submit", "--expires", "soon", "{\"n\": 3}", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    /* A bad value in the RPC is refused, naming the option. */
    struct h_resp *r = h_submit(c, "{\"n\": 4}", "{\"expires\": -1}");
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "malformed: expires must be a number of seconds >= 0");
}
END_TEST

/* A job waiting for a token of its key's bucket expires there too, and
 * forkpoolctl map passes --expires on to every job. */
START_TEST(expires_cancels_a_job_waiting_for_a_token)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;

    ck_assert_str_eq(h_json(h_rpc_call(c, "limit", "[\"A\", 0, 1]")->result), "true");
    ck_assert_ptr_null(h_submit(c, "{\"n\": 0}", "{\"key\": \"A\"}")->error);  /* A's token */
    h_need_ctl();
    h_ctl(&run, d, "{\"n\": 1}\n{\"n\": 2}\n", "map", "--key", "A", "--expires", "0.2",
          "--keep-order", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_int_eq(h_count_lines(run.out), 2);
    ck_assert_ptr_nonnull(strstr(run.out, "{\"index\": 0, \"id\": 2, \"ok\": false, "
                                 "\"kind\": \"cancelled\", \"detail\": \"" EXPIRED "\""));
    ck_assert_ptr_nonnull(strstr(run.out, "{\"index\": 1, \"id\": 3, \"ok\": false, "
                                 "\"kind\": \"cancelled\", \"detail\": \"" EXPIRED "\""));
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(h_get(h_get(st->result, "limits"), "A"), "waiting"), 0);
    ck_assert_int_eq(h_get_int(st->result, "queued"), 0);
}
END_TEST

/* worker_list[0].queued of a status result. */
static int64_t
first_worker_queued(const struct h_resp *st)
{
    const msgpack_object *list = h_get(st->result, "worker_list");

    ck_assert(list != NULL && list->type == MSGPACK_OBJECT_ARRAY
              && list->via.array.size == 1);
    return h_get_int(&list->via.array.ptr[0], "queued");
}

/* A job sent ahead to a busy worker, not started there when its time is
 * up, is taken back: cancelled, once, and the worker runs on.  Whether a
 * job is sent ahead depends on measured run times, so each round checks
 * that it was (status, in the same read as the submissions) and the test
 * needs one round where it was. */
START_TEST(expires_takes_back_a_job_sent_ahead)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    uint64_t next_id = 1;
    int sent_ahead = 0;

    for (int round = 0; round < 5 && !sent_ahead; round++) {
        uint32_t m[64];
        /* Quick jobs first, so that run times are known to be short. */
        h_rpc_cork(c);
        for (int i = 0; i < 64; i++)
            m[i] = h_rpc_submit(c, "7", NULL);
        h_rpc_uncork(c);
        for (int i = 0; i < 64; i++)
            ck_assert_ptr_null(h_rpc_wait(c, m[i], H_REPLY_MS)->error);
        next_id += 64;
        uint64_t hang_id = next_id++, id = next_id++;
        h_rpc_cork(c);
        uint32_t hang = h_rpc_submit(c, "{\"op\": \"hang\"}", NULL);
        uint32_t job = h_rpc_submit(c, "{\"n\": 1}", "{\"expires\": 0.5}");
        uint32_t st = h_rpc_send(c, "status", "[]");
        h_rpc_uncork(c);
        struct h_resp *s = h_rpc_wait(c, st, H_REPLY_MS);
        ck_assert_ptr_nonnull(s);
        sent_ahead = first_worker_queued(s) == 1;
        struct h_resp *r = h_rpc_wait(c, job, 5000);
        assert_failed(r, "cancelled", EXPIRED);
        ck_assert_int_eq(h_get_int(r->error, "id"), (int64_t)id);
        if (sent_ahead) {
            /* It left the window; the hung job still runs there. */
            s = h_status(c);
            ck_assert_int_eq(first_worker_queued(s), 0);
            ck_assert_int_eq(h_get_int(s->result, "busy"), 1);
            ck_assert_int_eq(h_get_int(s->result, "restarts"), 0);
        }
        char arg[32];
        snprintf(arg, sizeof(arg), "[%llu]", (unsigned long long)hang_id);
        ck_assert_str_eq(h_json(h_rpc_call(c, "cancel", arg)->result), "true");
        assert_failed(h_rpc_wait(c, hang, 5000), "cancelled", "cancelled");
    }
    ck_assert_msg(sent_ahead, "no job was sent ahead in 5 rounds");
    /* The worker skipped the job taken back: nothing answers for it, and
     * the next job runs. */
    ck_assert_str_eq(h_json(h_submit_ok(c, "8")), "8");
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), 0);
    ck_assert(h_daemon_alive(d));
}
END_TEST

/* ========================================================================
 * Nothing a job started outlives it (README: Handlers)
 * ======================================================================== */

/* The pid a cmd job printed on its stdout. */
static pid_t
printed_pid(const msgpack_object *result)
{
    const char *out = h_get_str(result, "stdout");

    ck_assert_int_eq(h_get_int(result, "exit"), 0);
    return (pid_t)atol(out);
}

/* A cmd job that leaves a process behind -- in the background, orphaned by
 * a subshell, or in a session of its own -- returns when the command
 * exits (not when the process lets go of stdout), and the process is gone
 * by its outcome. */
START_TEST(cmd_job_leaves_no_process_behind)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char job[2048], script[1536], flag[256];

    snprintf(flag, sizeof(flag), "%s/setsid.pid", h_tempdir());
    const char *scripts[] = {
        "sleep 300 & echo $!",
        "(sleep 300 & echo $!)",
        NULL,
    };
    snprintf(script, sizeof(script),
             "setsid sh -c 'echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 300' & "
             "while [ ! -s %s ]; do sleep 0.01; done; cat %s",
             flag, flag, flag, flag, flag);
    scripts[2] = script;
    for (int i = 0; i < 3; i++) {
        snprintf(job, sizeof(job), "{\"argv\": [\"sh\", \"-c\", \"%s\"]}", scripts[i]);
        assert_gone(d, printed_pid(h_submit_ok(c, job)), scripts[i]);
    }
}
END_TEST

/* A chain of 100 generations, each in a session of its own and each
 * parent alive: the sweep follows orphans down generation by generation,
 * and the last one is gone by the outcome too (a cap of 64 generations
 * once let the rest outlive the job and the daemon). */
START_TEST(cmd_job_leaves_no_deep_chain_behind)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    const char *dir = h_tempdir();
    char chain[256], flag[256], job[1024];

    snprintf(chain, sizeof(chain), "%s/chain.sh", dir);
    snprintf(flag, sizeof(flag), "%s/last.pid", dir);
    FILE *f = fopen(chain, "w");
    ck_assert_ptr_nonnull(f);
    fputs("n=$1; flag=$2\n"
          "if [ \"$n\" -eq 0 ]; then echo $$ > \"$flag.tmp\"; "
          "mv \"$flag.tmp\" \"$flag\"; exec sleep 300; fi\n"
          "setsid sh \"$0\" $((n - 1)) \"$flag\" &\n"
          "exec sleep 300\n", f);
    ck_assert_int_eq(fclose(f), 0);
    int len = snprintf(job, sizeof(job), "{\"argv\": [\"sh\", \"-c\", \"sh %s 100 %s & "
                       "while [ ! -s %s ]; do sleep 0.01; done; cat %s\"]}",
                       chain, flag, flag, flag);
    ck_assert(len > 0 && (size_t)len < sizeof(job));
    /* Building 100 generations of sh takes a while on a loaded machine. */
    struct h_resp *r = h_rpc_wait(c, h_rpc_submit(c, job, NULL), 60000);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->error == NULL, "%s", h_json(r->error));
    assert_gone(d, printed_pid(h_get(r->result, "result")), "generation 100");
}
END_TEST

/* A module job that leaves processes behind: they are gone by its
 * outcome too. */
START_TEST(module_job_leaves_no_process_behind)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    static const char *const how[] = { "child", "setsid", "orphan" };
    char job[128];

    pid_t worker = h_worker_pid(c);
    for (int i = 0; i < 3; i++) {
        snprintf(job, sizeof(job), "{\"op\": \"spawn\", \"how\": \"%s\"}", how[i]);
        const msgpack_object *r = h_submit_ok(c, job);
        ck_assert_int_eq(r->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_gone(d, (pid_t)r->via.u64, how[i]);
    }
    ck_assert_int_eq(h_worker_pid(c), worker);
}
END_TEST

/* A job that moves a process out of its worker's process group and is
 * then killed mid-run (its timeout): the worker that would have swept the
 * process is gone, so the daemon -- a child subreaper, to which the
 * process comes up -- kills it (fp_config.reap_orphans), and serves on. */
START_TEST(a_killed_job_leaves_no_process_behind)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char path[256], job[512], line[32] = "";

    snprintf(path, sizeof(path), "%s/spawned.pid", h_tempdir());
    snprintf(job, sizeof(job), "{\"op\": \"spawn\", \"how\": \"setsid\", "
             "\"path\": \"%s\", \"then\": \"hang\"}", path);
    struct h_resp *r = h_submit(c, job, "{\"timeout\": 0.3}");
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "timeout");
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    assert_gone(d, (pid_t)atol(line), "a process in a session of its own");
    ck_assert(h_daemon_wait_log(d, "killed 1 process a dead worker's job left behind",
                                0, H_REPLY_MS));
    ck_assert_str_eq(h_json(h_submit_ok(c, "7")), "7");
}
END_TEST

/* Is process `pid` dead: gone, or a zombie (a parent that does not reap,
 * such as some containers' PID 1, keeps those)? */
static int
dead(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "re")) == NULL)
        return 1;
    char *line = fgets(buf, sizeof(buf), f);
    fclose(f);
    char *rp = line != NULL ? strrchr(line, ')') : NULL;
    return rp == NULL || rp[1] == '\0' || rp[2] == 'Z';
}

/* A cmd job that starts a chain of `gens` generations, each in a session
 * of its own, each noting its pid in DIR/pids, and then sleeps.  Returns
 * the job; *dir gets the directory. */
static void
chain_job(char *job, size_t size, int gens, const char **dir)
{
    char chain[256];

    *dir = h_tempdir();
    snprintf(chain, sizeof(chain), "%s/chain.sh", *dir);
    FILE *f = fopen(chain, "w");
    ck_assert_ptr_nonnull(f);
    fputs("n=$1; dir=$2; echo $$ >> \"$dir/pids\"\n"
          "if [ \"$n\" -eq 0 ]; then touch \"$dir/built\"; exec sleep 300; fi\n"
          "setsid sh \"$0\" $((n - 1)) \"$dir\" &\n"
          "exec sleep 300\n", f);
    ck_assert_int_eq(fclose(f), 0);
    int len = snprintf(job, size, "{\"argv\": [\"sh\", \"-c\", \"setsid sh %s %d %s & "
                       "while [ ! -e %s/built ]; do sleep 0.01; done; exec sleep 300\"]}",
                       chain, gens - 1, *dir, *dir);
    ck_assert(len > 0 && (size_t)len < size);
}

/* Wait for a job's processes to be all started (the file DIR/built), and
 * return the `gens` pids they noted in DIR/pids. */
static void
started_pids(struct h_daemon *d, const char *dir, pid_t *pids, int gens)
{
    char path[256], line[32];
    int64_t deadline = h_now_ms() + 30000;
    int n = 0;

    snprintf(path, sizeof(path), "%s/built", dir);
    while (access(path, F_OK) != 0) {
        ck_assert_msg(h_now_ms() < deadline, "the processes were not started");
        h_daemon_pump(d, 10);
    }
    snprintf(path, sizeof(path), "%s/pids", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (n < gens && fgets(line, sizeof(line), f) != NULL)
        pids[n++] = (pid_t)atol(line);
    fclose(f);
    ck_assert_int_eq(n, gens);
}

/* All `n` processes dead, within 10 s (pumping the daemon's log). */
static void
assert_all_dead(struct h_daemon *d, const pid_t *pids, int n)
{
    int64_t deadline = h_now_ms() + 10000;

    for (int i = 0; i < n; i++)
        while (!dead(pids[i])) {
            ck_assert_msg(h_now_ms() < deadline, "generation %d (pid %ld) outlived "
                          "its job", i, (long)pids[i]);
            h_daemon_pump(d, 10);
        }
}

/* A chain of setsid'd generations left by a job whose worker is killed
 * mid-run (here by SIGKILL from outside): each generation comes up to the
 * daemon when the one above it dies, and is killed in turn. */
START_TEST(a_killed_job_leaves_no_chain_behind)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char job[1024];
    const char *dir;
    pid_t pids[6], worker;

    chain_job(job, sizeof(job), 6, &dir);
    uint32_t msgid = h_rpc_submit(c, job, NULL);
    started_pids(d, dir, pids, 6);
    ck_assert_int_eq(h_status_pids(h_status(c), &worker, 1), 1);
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    struct h_resp *r = h_rpc_wait(c, msgid, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "crashed");
    assert_all_dead(d, pids, 6);
}
END_TEST

/* The same chain left running when a drain is cut off by its timeout: the
 * daemon kills and reaps every generation before it exits. */
START_TEST(a_drain_cut_off_leaves_no_chain_behind)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", "--drain-timeout", "0.2",
                                                  NULL));
    struct h_rpc *c = h_connected(d);
    char job[1024];
    const char *dir;
    pid_t pids[6];

    chain_job(job, sizeof(job), 6, &dir);
    (void)h_rpc_submit(c, job, NULL);
    started_pids(d, dir, pids, 6);
    ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
    /* Cut off: exit status 1 (SPEC 5). */
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 20000)), 1);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(dead(pids[i]), "generation %d (pid %ld) outlived the daemon",
                      i, (long)pids[i]);
}
END_TEST

/* One process in a session of its own with 50 children of its own, each
 * in a session too, left by a job whose worker is killed: all die, in a
 * couple of sweeps and as many log lines -- not one sweep (and line) per
 * process reaped. */
START_TEST(a_killed_job_leaving_a_crowd_costs_a_few_sweeps)
{
    struct h_daemon *d = h_started(h_daemon_start("-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    const char *dir = h_tempdir();
    char job[1024];
    pid_t pids[51], worker;

    int len = snprintf(job, sizeof(job), "{\"argv\": [\"sh\", \"-c\", \"setsid sh -c '"
                       "echo $$ >> %s/pids; for i in $(seq 50); do setsid sleep 300 & "
                       "echo $! >> %s/pids; done; touch %s/built; exec sleep 300' & "
                       "exec sleep 300\"]}", dir, dir, dir);
    ck_assert(len > 0 && (size_t)len < sizeof(job));
    uint32_t msgid = h_rpc_submit(c, job, NULL);
    started_pids(d, dir, pids, 51);
    size_t from = d->loglen;
    ck_assert_int_eq(h_status_pids(h_status(c), &worker, 1), 1);
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    ck_assert_ptr_nonnull(h_rpc_wait(c, msgid, H_REPLY_MS));
    assert_all_dead(d, pids, 51);
    h_daemon_pump(d, 100);
    int lines = 0;
    for (const char *p = d->log + from; (p = strstr(p, "a dead worker's job left behind")) != NULL; p++)
        lines++;
    ck_assert_msg(lines >= 1 && lines <= 4, "%d log lines for 51 processes:\n%s", lines,
                  d->log + from);
}
END_TEST

/* ========================================================================
 * Loading the module (SPEC 4)
 * ======================================================================== */

static void
copy_file(const char *src, const char *dst, mode_t mode)
{
    char buf[65536];
    ssize_t n;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ck_assert_msg(in >= 0 && out >= 0, "copy %s to %s: %s", src, dst, strerror(errno));
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    ck_assert_int_eq(close(out), 0);
}

/* The uid of process `pid` (its real one, from /proc). */
static long
uid_of(pid_t pid)
{
    char path[64], line[256];
    long uid = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "re"));
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "Uid:", 4) == 0)
            uid = atol(line + 4);
    fclose(f);
    return uid;
}

/* Started as root with --user nobody and a module in a directory only
 * root can enter: the workers load it before they switch user, and run
 * jobs as nobody. */
START_TEST(user_nobody_runs_a_module_only_root_can_read)
{
    char dir[256], mod[300];

    if (geteuid() != 0)
        return;     /* needs root: nothing to test otherwise */
    snprintf(dir, sizeof(dir), "%s/private", h_tempdir());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(mod, sizeof(mod), "%s/testmod.so", dir);
    copy_file(H_TESTMOD, mod, 0600);
    struct h_daemon *d = h_started(h_daemon_start("--module", mod, "--user", "nobody",
                                                  "-w", "2", "-v", NULL));
    struct h_rpc *c = h_connected(d);

    for (int i = 0; i < 4; i++) {
        const msgpack_object *r = h_submit_ok(c, "{\"op\": \"pid\"}");
        ck_assert_int_eq(r->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_int_eq(uid_of((pid_t)r->via.u64), 65534);
    }
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "start_failures"), 0);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), 0);
    ck_assert_int_eq(h_log_count(d, "Permission denied"), 0);
}
END_TEST

/* A file that is no module: the daemon does not start (exit 2, one line
 * naming --module and why), rather than start workers that fail forever. */
START_TEST(module_that_cannot_be_loaded_fails_startup)
{
    const char *dir = h_tempdir();
    char sock[108], mod[256];
    struct h_run run;
    FILE *f;

    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(mod, sizeof(mod), "%s/notamodule.so", dir);
    ck_assert_ptr_nonnull(f = fopen(mod, "w"));
    fputs("not an ELF file\n", f);
    fclose(f);
    char *argv[] = { (char *)H_FORKPOOLD, (char *)"-s", sock, (char *)"--module", mod,
                     NULL };
    h_run_argv(&run, NULL, NULL, 5000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_msg(strncmp(run.err, "forkpoold: --module: ", 21) == 0, "stderr: %s", run.err);
    ck_assert_int_eq(h_count_lines(run.err), 1);
    ck_assert_int_eq(access(sock, F_OK), -1);
}
END_TEST

static Suite *
fault_workers_suite(void)
{
    Suite *s = suite_create("fault_workers");
    TCase *tc;

    tc = h_tcase("start timeout", 30);
    tcase_add_test(tc, module_init_that_never_returns_is_killed_at_start_timeout);
    tcase_add_test(tc, exec_program_that_never_says_ready_is_killed_and_queued_job_ends);
    suite_add_tcase(s, tc);

    tc = h_tcase("expires", 30);
    tcase_add_test(tc, expires_cancels_a_job_waiting_in_the_queue);
    tcase_add_test(tc, expires_cancels_a_job_waiting_for_a_token);
    tcase_add_test(tc, expires_takes_back_a_job_sent_ahead);
    suite_add_tcase(s, tc);

    tc = h_tcase("descendants", 30);
    tcase_add_test(tc, cmd_job_leaves_no_process_behind);
    tcase_add_test(tc, cmd_job_leaves_no_deep_chain_behind);
    tcase_add_test(tc, module_job_leaves_no_process_behind);
    tcase_add_test(tc, a_killed_job_leaves_no_process_behind);
    tcase_add_test(tc, a_killed_job_leaves_no_chain_behind);
    tcase_add_test(tc, a_drain_cut_off_leaves_no_chain_behind);
    tcase_add_test(tc, a_killed_job_leaving_a_crowd_costs_a_few_sweeps);
    suite_add_tcase(s, tc);

    tc = h_tcase("module", 30);
    tcase_add_test(tc, user_nobody_runs_a_module_only_root_can_read);
    tcase_add_test(tc, module_that_cannot_be_loaded_fails_startup);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(fault_workers_suite());
}
