/*
 * check_sandbox.c — untrusted work (SPEC §5.1): the sandbox levels, the
 * resource limits, the privilege drop, and hostile bytes from workers and
 * clients, tested from outside against the real daemon.
 *
 * The escape attempts come from tests/hostilemod.c; each must end as a
 * failed job while the master, its workers and its other clients carry on.
 * Tests that need root (--user, kill(-1)) pass trivially without it; CI
 * runs as root.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define HOSTILE "--module", TOP_BUILDDIR "/tests/.libs/hostilemod.so"

/* AddressSanitizer reserves terabytes of address space: --rlimit-as cannot
 * be tried in a sanitized build. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif

/* A job that burns CPU takes as much wall time as the machine's load makes
 * it: wait for its answer this long, not H_REPLY_MS. */
#define CPU_JOB_MS 60000

static struct h_resp *
submit_cpu_job(struct h_rpc *c, const char *job)
{
    struct h_resp *r = h_rpc_wait(c, h_rpc_submit(c, job, NULL), CPU_JOB_MS);

    ck_assert_msg(r != NULL, "no response to submit %s", job);
    return r;
}

/* The outcome of a job that must fail: its error map as canonical JSON. */
static const char *
failed(struct h_rpc *c, const char *job)
{
    struct h_resp *r = submit_cpu_job(c, job);

    ck_assert_msg(r->error != NULL, "job %s was not stopped: %s", job, h_json(r->result));
    return h_json(r->error);
}

/* {"id": id, "kind": "crashed", "detail": "killed by SIGSYS"} */
static const char *
killed_by(uint64_t id, const char *sig)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "{\"id\": %llu, \"kind\": \"crashed\", "
             "\"detail\": \"killed by %s\"}", (unsigned long long)id, sig);
    return h_canon(buf);
}

/* A line of /proc/PID/status ("Uid:", "NoNewPrivs:"), value part. */
static const char *
proc_status(pid_t pid, const char *key)
{
    static char value[256];
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "re");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    value[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0) {
            char *v = line + strlen(key);
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            snprintf(value, sizeof(value), "%s", v);
        }
    fclose(f);
    return value;
}

/* Resident kilobytes of a process. */
static long
rss_kib(pid_t pid)
{
    return atol(proc_status(pid, "VmRSS:"));
}

/* A line of /proc/PID/limits, squeezed: "Max open files 16 16 files". */
static const char *
proc_limit(pid_t pid, const char *name)
{
    static char out[256];
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
    f = fopen(path, "re");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    out[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, strlen(name)) != 0)
            continue;
        size_t n = 0;
        for (char *tok = strtok(line, " \t\n"); tok != NULL; tok = strtok(NULL, " \t\n"))
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? " " : "", tok);
    }
    fclose(f);
    return out;
}

/* Wait until n workers have said "ready" (the daemon runs with -v): past
 * fork, each has entered its sandbox. */
static void
wait_workers_ready(struct h_daemon *d, int n)
{
    int64_t deadline = h_now_ms() + H_READY_MS;

    while (h_log_count(d, ": ready for jobs") < n) {
        ck_assert_msg(h_now_ms() < deadline && h_daemon_alive(d),
                      "workers not ready; log:\n%s", d->log);
        h_daemon_pump(d, 100);
    }
}

/* Status must still show `n` live workers, none busy, state running. */
static void
pool_intact(struct h_daemon *d, struct h_rpc *c, int n)
{
    struct h_resp *st = h_status(c);
    pid_t pids[64];

    ck_assert(h_daemon_alive(d));
    ck_assert_str_eq(h_get_str(st->result, "state"), "running");
    ck_assert_int_eq(h_get_int(st->result, "workers"), n);
    ck_assert_int_eq(h_status_pids(st, pids, 64), n);
}

/* ========================================================================
 * strict
 * ======================================================================== */

/* Every escape a hostile handler tries under strict is a forbidden system
 * call: the worker dies of SIGSYS, the job ends crashed, and the master,
 * its worker count and the next job are untouched. */
START_TEST(strict_stops_every_escape_with_sigsys)
{
    struct h_daemon *d = h_started(h_daemon_start(HOSTILE, "--sandbox", "strict",
                                                  "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[2];
    char job[256];
    uint64_t id = 0;

    ck_assert_int_eq(h_status_pids(h_status(c), pids, 2), 2);
    static const char *const simple[] = {
        "open", "socket", "killppid", "exec", "fork",
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        snprintf(job, sizeof(job), "{\"op\": \"%s\"}", simple[i]);
        ck_assert_str_eq(failed(c, job), killed_by(++id, "SIGSYS"));
    }
    snprintf(job, sizeof(job), "{\"op\": \"ctl\", \"path\": \"%s\"}", d->sock);
    ck_assert_str_eq(failed(c, job), killed_by(++id, "SIGSYS"));
    /* Siblings: pids[] were both alive when asked; whichever worker runs
     * the job, one of the two is another process. */
    for (int i = 0; i < 2; i++) {
        snprintf(job, sizeof(job), "{\"op\": \"ptrace\", \"pid\": %ld}", (long)pids[i]);
        ck_assert_str_eq(failed(c, job), killed_by(++id, "SIGSYS"));
        snprintf(job, sizeof(job), "{\"op\": \"vmread\", \"pid\": %ld}", (long)pids[i]);
        ck_assert_str_eq(failed(c, job), killed_by(++id, "SIGSYS"));
    }
    pool_intact(d, c, 2);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), (int64_t)id);
    ck_assert_int_eq(h_get_int(st->result, "restarts"), (int64_t)id);
    /* The hostile module still answers its harmless ops. */
    ck_assert_str_eq(h_json(h_get(h_submit(c, "{\"op\": \"nothing\"}", NULL)->error,
                                  "detail")), "\"unknown op\"");
}
END_TEST

/* The same module under basic: the attempts are real (so the test above
 * can fail), and basic alone does not stop them. */
START_TEST(basic_lets_the_same_attempts_through)
{
    struct h_daemon *d = h_started(h_daemon_start(HOSTILE, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"open\"}")), "\"opened /etc/passwd\"");
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"socket\"}")), "\"made a socket\"");
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"fork\"}")), "\"forked\"");
    pool_intact(d, c, 1);
}
END_TEST

/* abort() in a strict worker raises SIGABRT on itself, which the filter
 * allows: the outcome names SIGABRT, not SIGSYS.  Ordinary jobs, stdio and
 * crashes behave as without the sandbox. */
START_TEST(strict_abort_reads_as_sigabrt)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--sandbox", "strict",
                                                  "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"k\": [1, 2]}")), "{\"k\":[1,2]}");
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"say\", \"text\": \"hello\"}")),
                     "\"said\"");
    ck_assert(h_daemon_wait_log(d, ": stdout: hello", 0, H_REPLY_MS));
    ck_assert_str_eq(failed(c, "{\"op\": \"abort\"}"), killed_by(3, "SIGABRT"));
    ck_assert_str_eq(failed(c, "{\"op\": \"crash\"}"), killed_by(4, "SIGSEGV"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"after\"")), "\"after\"");
    pool_intact(d, c, 1);
}
END_TEST

/* kill(-1, SIGKILL) would take down every process the uid may signal, so
 * it is only tried as nobody, and only once a forbidden call has been seen
 * to kill a worker of this very daemon. */
START_TEST(strict_stops_kill_of_every_process)
{
    if (geteuid() != 0)
        return;
    struct h_daemon *d = h_started(h_daemon_start(HOSTILE, "--sandbox", "strict",
                                                  "--user", "nobody", "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(failed(c, "{\"op\": \"open\"}"), killed_by(1, "SIGSYS"));
    ck_assert_str_eq(failed(c, "{\"op\": \"killall\", \"sure\": true}"),
                     killed_by(2, "SIGSYS"));
    pool_intact(d, c, 2);
}
END_TEST

/* Where the kernel lets us, a strict worker lives in a network namespace
 * of its own; where it does not, the log says so once. */
START_TEST(strict_worker_gets_its_own_network_namespace)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--sandbox", "strict",
                                                  "-w", "2", "-v", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[2];
    char path[64], master_ns[64] = "", worker_ns[64] = "";

    wait_workers_ready(d, 2);
    ck_assert_int_eq(h_status_pids(h_status(c), pids, 2), 2);
    if (h_log_count(d, "workers keep the host's network") == 1)
        return;     /* said once; seccomp alone keeps sockets out */
    ck_assert_int_eq(h_log_count(d, "workers keep the host's network"), 0);
    snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)d->pid);
    ck_assert_int_gt(readlink(path, master_ns, sizeof(master_ns) - 1), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)pids[i]);
        memset(worker_ns, 0, sizeof(worker_ns));
        ck_assert_int_gt(readlink(path, worker_ns, sizeof(worker_ns) - 1), 0);
        ck_assert_msg(strcmp(worker_ns, master_ns) != 0, "worker %ld shares the "
                      "master's %s; log:\n%s", (long)pids[i], master_ns, d->log);
    }
}
END_TEST

/* ========================================================================
 * basic: limits and privileges
 * ======================================================================== */

/* The --rlimit-* flags reach every worker. */
START_TEST(rlimits_are_set_in_each_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", "-v",
                                                  "--rlimit-nofile", "32",
                                                  "--rlimit-cpu", "5",
#ifndef ASAN_BUILD
                                                  "--rlimit-as", "512",
#endif
                                                  NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[2];

    wait_workers_ready(d, 2);
    ck_assert_int_eq(h_status_pids(h_status(c), pids, 2), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(proc_limit(pids[i], "Max open files"), "Max open files 32 32 files");
#ifndef ASAN_BUILD
        ck_assert_str_eq(proc_limit(pids[i], "Max address space"),
                         "Max address space 536870912 536870912 bytes");
#endif
        ck_assert_str_eq(proc_limit(pids[i], "Max core file size"),
                         "Max core file size 0 0 bytes");
        ck_assert_str_eq(proc_status(pids[i], "NoNewPrivs:"), "1");
    }
    /* The hard CPU limit is the backstop, 32 * 5 + 32 seconds. */
    ck_assert_str_eq(proc_limit(pids[0], "Max cpu time"), "Max cpu time 5 192 seconds");
}
END_TEST

/* --sandbox none: a plain fork, without no_new_privs. */
START_TEST(sandbox_none_is_a_plain_fork)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "--sandbox", "none",
                                                  "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(proc_status(h_worker_pid(c), "NoNewPrivs:"), "0");
}
END_TEST

/* A memory bomb under --rlimit-as fails its job (malloc fails: error; or
 * the worker dies: crashed); the pool carries on. */
START_TEST(memory_bomb_under_rlimit_as_fails_one_job)
{
#ifdef ASAN_BUILD
    return;
#endif
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--rlimit-as", "256", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_submit(c, "{\"op\": \"grow\", \"mib\": 1024}", NULL);

    ck_assert_msg(r->error != NULL, "a 1 GiB allocation passed --rlimit-as 256");
    const char *kind = h_get_str(r->error, "kind");
    ck_assert_msg(strcmp(kind, "error") == 0 || strcmp(kind, "crashed") == 0,
                  "kind %s", kind);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"next\"")), "\"next\"");
    pool_intact(d, c, 1);
}
END_TEST

/* A job spinning past --rlimit-cpu is killed by the kernel (SIGXCPU). */
START_TEST(cpu_spin_under_rlimit_cpu_is_killed)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--rlimit-cpu", "1", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_str_eq(failed(c, "{\"op\": \"spin\"}"), killed_by(1, "SIGXCPU"));
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"next\"")), "\"next\"");
    pool_intact(d, c, 1);
}
END_TEST

/* --rlimit-cpu is per job: three jobs of 0.6 s CPU each on one worker
 * (1.8 s in all) pass a 1 s limit, because the limit moves before each;
 * under strict too, where the worker loop moves it through the filter. */
static const char *const cpu_levels[] = { "basic", "strict" };

START_TEST(rlimit_cpu_counts_per_job_not_per_worker)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1",
                                                  "--sandbox", cpu_levels[_i],
                                                  "--rlimit-cpu", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);

    for (int i = 0; i < 3; i++) {
        struct h_resp *r = submit_cpu_job(c, "{\"op\": \"burn\", \"s\": 0.6}");
        ck_assert_msg(r->error == NULL, "burn failed: %s", h_json(r->error));
        ck_assert_str_eq(h_json(h_get(r->result, "result")), "\"burnt\"");
    }
    ck_assert_int_eq(h_worker_pid(c), pid);
    ck_assert_str_eq(failed(c, "{\"op\": \"spin\"}"), killed_by(6, "SIGXCPU"));
}
END_TEST

/* Started as root with --user nobody: workers run as nobody (parent-death
 * signal still armed: set after the drop), the control socket stays the
 * daemon's, and a worker cannot reach it. */
START_TEST(user_drop_runs_workers_as_nobody)
{
    if (geteuid() != 0)
        return;
    struct h_daemon *d = h_started(h_daemon_start(HOSTILE, "--user", "nobody",
                                                  "-w", "2", "-v", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pids[2];
    int pidfd[2];
    struct stat sb;
    char job[200];

    wait_workers_ready(d, 2);
    ck_assert_int_eq(h_status_pids(h_status(c), pids, 2), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(proc_status(pids[i], "Uid:"), "65534\t65534\t65534\t65534");
        ck_assert_str_eq(proc_status(pids[i], "Gid:"), "65534\t65534\t65534\t65534");
        ck_assert_str_eq(proc_status(pids[i], "NoNewPrivs:"), "1");
    }
    ck_assert_str_eq(h_json(h_submit_ok(c, "{\"op\": \"whoami\"}")),
                     "{\"gid\":65534,\"uid\":65534}");
    ck_assert_int_eq(stat(d->sock, &sb), 0);
    ck_assert_int_eq(sb.st_uid, 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);

    /* "scale 10000" from a worker: refused, nothing scaled. */
    snprintf(job, sizeof(job), "{\"op\": \"ctl\", \"path\": \"%s\"}", d->sock);
    ck_assert_str_eq(h_get_str(h_submit(c, job, NULL)->error, "kind"), "error");
    pool_intact(d, c, 2);

    /* Killing the master still takes the workers with it. */
    for (int i = 0; i < 2; i++)
        ck_assert_int_ge(pidfd[i] = h_pidfd(pids[i]), 0);
    h_daemon_kill(d, SIGKILL);
    h_daemon_wait(d, 5000);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(h_wait_readable(pidfd[i], 5000, NULL),
                      "worker %ld outlived its master", (long)pids[i]);
}
END_TEST

/* ========================================================================
 * Hostile bytes
 * ======================================================================== */

/* Frames a worker sends: ["ok", 1, X] where X declares far more than any
 * limit allows, and then the worker stalls. */
static const struct {
    const char *hex;
    const char *what;
} huge_from_worker[] = {
    { "93a26f6b01dbffffffff", "a 4 GiB string" },
    { "93a26f6b01c6ffffffff", "a 4 GiB bin" },
    { "93a26f6b01dd10000000", "a 268-million-element array" },
    { "93a26f6b01df10000000", "a 268-million-pair map" },
    { "93a26f6b01dd00200000c0c0c0c0", "two million nils" },
};

/* The master refuses the frame from its header: the worker is killed at
 * once (the job has no timeout; it would hang otherwise) and the master's
 * memory does not move. */
START_TEST(worker_declaring_a_huge_value_is_killed_at_once)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char job[200];
    pid_t old = h_worker_pid(c);
    long before = rss_kib(d->pid);

    snprintf(job, sizeof(job), "{\"op\": \"raw\", \"hex\": \"%s\"}", huge_from_worker[_i].hex);
    ck_assert_str_eq(failed(c, job),
                     h_canon("{\"id\": 2, \"kind\": \"crashed\", \"detail\": \"protocol error\"}"));
    ck_assert_int_ne(h_worker_pid(c), old);
    long after = rss_kib(d->pid);
    ck_assert_msg(after - before < 1024, "%s: master RSS %ld -> %ld KiB",
                  huge_from_worker[_i].what, before, after);
    pool_intact(d, c, 1);
}
END_TEST

/* Requests [0, 7, "submit", [X]] with the same declarations: the client
 * gets its submit rejected ("job too large") at once, from the header; the
 * declared bytes are dropped as they come, never held, so the master's
 * memory does not move, and other clients are untouched. */
static const struct {
    const char *bytes;
    size_t      len;
} huge_from_client[] = {
    { "\x94\x00\x07\xa6submit\x91\xdb\xff\xff\xff\xff", 16 },
    { "\x94\x00\x07\xa6submit\x91\xdd\x10\x00\x00\x00", 16 },
    { "\x94\x00\x07\xa6submit\x91\xdd\x00\x20\x00\x00\xc0\xc0", 18 },
};

START_TEST(client_declaring_a_huge_value_is_rejected_at_once)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *good = h_connected(d), *bad = h_connected(d);
    long before = rss_kib(d->pid);

    ck_assert_int_eq(h_rpc_send_raw(bad, huge_from_client[_i].bytes, huge_from_client[_i].len), 0);
    struct h_resp *r = h_rpc_wait(bad, 7, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                               "\"detail\": \"job too large\"}"));
    long after = rss_kib(d->pid);
    ck_assert_msg(after - before < 1024, "master RSS %ld -> %ld KiB", before, after);
    ck_assert_str_eq(h_json(h_submit_ok(good, "\"still here\"")), "\"still here\"");
    pool_intact(d, good, 1);
}
END_TEST

/* Once the refused frame has all come (two million nils, past the object
 * limit), the same connection is served again. */
START_TEST(client_is_served_again_after_its_refused_frame)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    const size_t nils = 0x200000;
    char *frame = malloc(16 + nils);

    ck_assert_ptr_nonnull(frame);
    memcpy(frame, "\x94\x00\x07\xa6submit\x91\xdd\x00\x20\x00\x00", 16);
    memset(frame + 16, 0xc0, nils);
    ck_assert_int_eq(h_rpc_send_raw(c, frame, 16 + nils), 0);
    free(frame);
    struct h_resp *st = h_status(c);
    ck_assert_str_eq(h_get_str(st->result, "state"), "running");
    struct h_resp *r = h_rpc_wait(c, 7, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_get_str(r->error, "detail"), "job too large");
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"next\"")), "\"next\"");
    ck_assert(h_daemon_wait_log(d, "too many objects", 0, H_REPLY_MS));
}
END_TEST

static Suite *
sandbox_suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc;

    tc = h_tcase("strict", 30);
    tcase_add_test(tc, strict_stops_every_escape_with_sigsys);
    tcase_add_test(tc, basic_lets_the_same_attempts_through);
    tcase_add_test(tc, strict_abort_reads_as_sigabrt);
    tcase_add_test(tc, strict_stops_kill_of_every_process);
    tcase_add_test(tc, strict_worker_gets_its_own_network_namespace);
    suite_add_tcase(s, tc);

    tc = h_tcase("limits", 120);    /* CPU-bound jobs: wall time follows the load */
    tcase_add_test(tc, rlimits_are_set_in_each_worker);
    tcase_add_test(tc, sandbox_none_is_a_plain_fork);
    tcase_add_test(tc, memory_bomb_under_rlimit_as_fails_one_job);
    tcase_add_test(tc, cpu_spin_under_rlimit_cpu_is_killed);
    tcase_add_loop_test(tc, rlimit_cpu_counts_per_job_not_per_worker, 0, 2);
    tcase_add_test(tc, user_drop_runs_workers_as_nobody);
    suite_add_tcase(s, tc);

    tc = h_tcase("hostile bytes", 30);
    tcase_add_loop_test(tc, worker_declaring_a_huge_value_is_killed_at_once, 0,
                        sizeof(huge_from_worker) / sizeof(huge_from_worker[0]));
    tcase_add_loop_test(tc, client_declaring_a_huge_value_is_rejected_at_once, 0,
                        sizeof(huge_from_client) / sizeof(huge_from_client[0]));
    tcase_add_test(tc, client_is_served_again_after_its_refused_frame);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(sandbox_suite());
}
