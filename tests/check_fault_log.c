/*
 * check_fault_log.c — forkpoold keeps serving when its log cannot keep up:
 * a log pipe nobody reads never blocks the master (lines are queued, then
 * dropped and counted), and a worker flooding its stderr is cut to its log
 * budget without costing other clients their answers (README, "Operating
 * forkpool": the log under faults).
 *
 * Each test starts its own forkpoold (harness.h).  Waits are on responses,
 * log lines and pidfds, with generous deadlines: nothing here times the
 * daemon against a clock it could miss on a loaded machine, except CPU
 * time, which load can only make smaller.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* The worker stderr budget of README "Operating forkpool" (and of
 * src/engine/stderr_budget.h): per worker, bursts of this many lines and
 * bytes, refilled at these rates. */
#define BUDGET_LINES_BURST  1000
#define BUDGET_LINES_RATE   100
#define BUDGET_BYTES_BURST  (128 * 1024)
#define BUDGET_BYTES_RATE   (16 * 1024)

/* Shrink the daemon's stderr pipe to one page, once the harness has read
 * what it holds (the pipe cannot shrink below its contents). */
static void
shrink_log_pipe(struct h_daemon *d)
{
    for (int tries = 0; tries < 100; tries++) {
        h_daemon_pump(d, 0);
        if (fcntl(d->errfd, F_SETPIPE_SZ, 4096) >= 0)
            return;
        ck_assert_msg(errno == EBUSY, "F_SETPIPE_SZ: %s", strerror(errno));
        h_daemon_pump(d, 10);
    }
    ck_abort_msg("the daemon's log pipe never emptied");
}

/* Wait (reading the log) until it holds `n` lines containing needle. */
static void
wait_log_count(struct h_daemon *d, const char *needle, int n, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_log_count(d, needle) < n) {
        ck_assert_msg(h_now_ms() < deadline && h_daemon_alive(d),
                      "%d of %d \"%s\" lines in the log", h_log_count(d, needle),
                      n, needle);
        h_daemon_pump(d, 50);
    }
}

/* Complete log lines from byte `from` on that contain needle, and their
 * bytes (newlines included). */
static size_t
lines_since(const struct h_daemon *d, size_t from, const char *needle,
            size_t *bytes)
{
    size_t n = 0;
    const char *p = d->log + from, *end = d->log + d->loglen;

    *bytes = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (memmem(p, (size_t)(nl - p), needle, strlen(needle)) != NULL) {
            n++;
            *bytes += (size_t)(nl - p) + 1;
        }
        p = nl + 1;
    }
    return n;
}

/* Utime + stime of a process, in seconds. */
static double
cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15, counted after the ")" that ends the name. */
    const char *p = strrchr(buf, ')');
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                            &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ========================================================================
 * A log pipe nobody reads
 * ======================================================================== */

/* Ten workers each write 160 lines of 1000 bytes to stderr: more than the
 * daemon's 1 MiB log queue takes even within their budgets, into a log pipe
 * of one page that the test does not read.  The master must answer and
 * finish jobs all the same; once the test reads, the log says how many
 * lines it had to drop, and every line that did come out is whole. */
START_TEST(stalled_log_pipe_blocks_neither_status_nor_jobs)
{
    enum { WORKERS = 10 };
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-v", "-w", "10", NULL));
    char text[1001], job[1200];
    uint32_t ids[WORKERS];
    pid_t pids[WORKERS];
    struct h_rpc *c;

    /* All workers ready, so each job gets a worker of its own. */
    wait_log_count(d, ": ready for jobs", WORKERS, 10000);
    shrink_log_pipe(d);
    /* From here on nothing reads the log: this connection does not pump. */
    ck_assert_ptr_nonnull(c = h_rpc_open_path(d->sock, NULL));
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    snprintf(job, sizeof(job),
             "{\"op\": \"chatter\", \"text\": \"%s\", \"n\": 160, \"s\": 0.5}", text);
    for (int i = 0; i < WORKERS; i++)
        ids[i] = h_rpc_submit(c, job, NULL);

    struct h_resp *st = h_rpc_wait(c, h_rpc_send(c, "status", "[]"), 5000);
    ck_assert_msg(st != NULL, "status not answered while the log pipe is full");
    for (int i = 0; i < WORKERS; i++) {
        struct h_resp *r = h_rpc_wait(c, ids[i], 30000);
        ck_assert_msg(r != NULL, "job %d did not complete while the log pipe is full", i);
        ck_assert_ptr_null(r->error);
        pids[i] = (pid_t)h_get_int(r->result, "result");
        for (int j = 0; j < i; j++)
            ck_assert_msg(pids[j] != pids[i],
                          "two jobs ran on worker %ld: the test needs one each",
                          (long)pids[i]);
    }
    struct h_resp *r = h_rpc_wait(c, h_rpc_submit(c, "\"after\"", NULL), 5000);
    ck_assert_msg(r != NULL && r->error == NULL, "a job after the flood did not complete");
    ck_assert_msg(h_rpc_wait(c, h_rpc_send(c, "status", "[]"), 5000) != NULL,
                  "status not answered after the flood");

    /* Now read: the log drains and says what it lost. */
    ck_assert_msg(h_daemon_wait_log(d, "log lines dropped", 0, 10000),
                  "no \"log lines dropped\" notice once the log was read");
    ck_assert_int_eq(h_log_count(d, "log lines dropped"), 1);
    const char *note = strstr(d->log, "log lines dropped");
    while (note > d->log && note[-1] != '\n')
        note--;
    ck_assert_msg(strncmp(strstr(note, ": warning: "), ": warning: ", 11) == 0
                  && atol(strstr(note, ": warning: ") + 11) > 0,
                  "the notice: %.100s", note);
    /* Every line is whole: lines were dropped, never cut. */
    for (const char *p = d->log, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
        ck_assert_msg(strncmp(p, "forkpoold[", 10) == 0, "a torn line: %.60s", p);
}
END_TEST

/* ========================================================================
 * A worker flooding its stderr
 * ======================================================================== */

/* A job writing "y" lines as fast as it can for two seconds: it completes
 * (the master keeps draining its pipe), the log gets no more of it than
 * the budget allows, and says how much it suppressed. */
START_TEST(flooding_job_completes_and_is_cut_to_its_budget)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    pid_t pid = h_worker_pid(c);
    char tag[64];
    size_t mark = d->loglen, bytes;

    int64_t t0 = h_now_ms();
    struct h_resp *r = h_rpc_wait(c, h_rpc_submit(c, "{\"op\": \"flood\", \"s\": 2}", NULL),
                                  60000);
    ck_assert_msg(r != NULL, "the flooding job did not complete");
    ck_assert_str_eq(h_json(h_get(r->result, "result")), "\"flooded\"");
    snprintf(tag, sizeof(tag), "worker %ld: suppressed ", (long)pid);
    ck_assert_msg(h_daemon_wait_log(d, tag, mark, 5000), "no suppressed-lines notice");
    double secs = (double)(h_now_ms() - t0) / 1000;

    snprintf(tag, sizeof(tag), "info: worker %ld: ", (long)pid);
    size_t lines = lines_since(d, mark, tag, &bytes);
    ck_assert_msg(lines <= BUDGET_LINES_BURST + BUDGET_LINES_RATE * secs + 1,
                  "%zu lines of its stderr logged in %.1f s", lines, secs);
    ck_assert_msg(bytes <= BUDGET_BYTES_BURST + BUDGET_BYTES_RATE * secs + 64 * lines,
                  "%zu bytes of its stderr logged in %.1f s", bytes, secs);
    /* It did reach the log, up to the budget. */
    ck_assert_uint_ge(lines, BUDGET_LINES_BURST / 2);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"still here\"")), "\"still here\"");
}
END_TEST

/* A job floods stderr as fast as it can for 4 s (as `yes >&2` would; a
 * `yes` left behind is now killed with its job): the master keeps serving
 * other jobs promptly, spends a bounded share of a CPU on the flood (it
 * reads at most 4 MiB/s of it: a few percent; unbounded, it was all of
 * one), and logs no more of it than the budget allows. */
START_TEST(stderr_flood_leaves_others_served)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d), *flooder = h_connected(d);
    size_t mark = d->loglen, bytes;
    int64_t t0 = h_now_ms();
    double cpu0 = cpu_seconds(d->pid);

    uint32_t flood = h_rpc_submit(flooder, "{\"op\": \"flood\", \"s\": 4}", NULL);
    int jobs = 0;
    while (h_now_ms() - t0 < 3000) {
        int64_t sent = h_now_ms();
        struct h_resp *r = h_rpc_wait(c, h_rpc_submit(c, "\"ping\"", NULL), 5000);
        ck_assert_msg(r != NULL, "a job went unanswered for 5 s during the flood");
        ck_assert_ptr_null(r->error);
        ck_assert_int_lt(h_now_ms() - sent, 5000);
        jobs++;
        /* A job every 100 ms or so: the master's CPU is the flood's. */
        h_daemon_pump(d, 100);
    }
    double secs = (double)(h_now_ms() - t0) / 1000;
    double cpu = cpu_seconds(d->pid) - cpu0;
    ck_assert_msg(cpu < 0.5 * secs, "the master used %.2f s of CPU in %.2f s", cpu, secs);
    ck_assert_msg(h_daemon_wait_log(d, ": suppressed ", mark, 5000),
                  "no suppressed-lines notice");
    secs = (double)(h_now_ms() - t0) / 1000;    /* all the log read covers */
    size_t lines = lines_since(d, mark, "info: worker ", &bytes);
    ck_assert_msg(lines <= BUDGET_LINES_BURST + BUDGET_LINES_RATE * secs + 1,
                  "%zu lines of stderr logged in %.1f s", lines, secs);
    ck_assert_uint_gt(jobs, 0);
    struct h_resp *r = h_rpc_wait(flooder, flood, 30000);
    ck_assert_msg(r != NULL && r->error == NULL, "the flooding job did not end ok");
}
END_TEST

static Suite *
fault_log_suite(void)
{
    Suite *s = suite_create("fault log");
    TCase *tc;

    tc = h_tcase("stalled log", 60);
    tcase_add_test(tc, stalled_log_pipe_blocks_neither_status_nor_jobs);
    suite_add_tcase(s, tc);

    tc = h_tcase("stderr flood", 60);
    tcase_add_test(tc, flooding_job_completes_and_is_cut_to_its_budget);
    tcase_add_test(tc, stderr_flood_leaves_others_served);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(fault_log_suite());
}
