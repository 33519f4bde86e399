/*
 * check_ctl_top.c — `forkpoolctl top` and map's progress line, tested from
 * outside against a real forkpoold (harness.c).
 *
 * With stdout on a pipe, top prints one key=value line per refresh; on a
 * terminal it draws a full screen.  The terminal cases run forkpoolctl on
 * a pseudo-terminal (openpty) whose slave end the test keeps open, so it
 * can read the slave's modes back after forkpoolctl exits and check that
 * they were restored.  map's progress line appears only with stderr on a
 * terminal and stdin a regular file; elsewhere map's output must not
 * change by a byte.
 *
 * Jobs for the testmod module (tests/testmod.c): {"op": "sleep", "s": f},
 * "fail", "crash", ...; anything else is echoed.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"

#define SHOW_CURSOR "\033[?25h"
#define HIDE_CURSOR "\033[?25l"

/* Submit `n` copies of job without waiting for them. */
static void
submit_many(struct h_rpc *c, const char *job, int n)
{
    for (int i = 0; i < n; i++)
        h_rpc_submit(c, job, NULL);
}

/* Wait until status says `n` workers are `what` ("busy", "idle"). */
static void
wait_workers(struct h_rpc *c, const char *what, int64_t n)
{
    int64_t deadline = h_now_ms() + H_REPLY_MS;

    for (;;) {
        struct h_resp *st = h_status(c);
        int64_t now = h_get_int(st->result, what);
        h_resp_free(st);
        if (now == n)
            return;
        ck_assert_msg(h_now_ms() < deadline, "%s stays %lld, not %lld", what,
                      (long long)now, (long long)n);
        usleep(10000);
    }
}

/* The value of " key=" in a plain top line, as a string (static). */
static const char *
value_of(const char *line, const char *key)
{
    static char buf[8][64];
    static int next;
    char pat[64];
    const char *p;

    snprintf(pat, sizeof pat, " %s=", key);
    if (strncmp(line, pat + 1, strlen(pat + 1)) == 0)
        p = line + strlen(pat + 1);     /* the first key */
    else if ((p = strstr(line, pat)) != NULL)
        p += strlen(pat);
    ck_assert_msg(p != NULL, "no %s= in: %s", key, line);
    size_t n = strcspn(p, " \n");
    next = (next + 1) % 8;
    snprintf(buf[next], sizeof buf[next], "%.*s", (int)n, p);
    return buf[next];
}

/* Lines of text, split in place (at most max). */
static int
split_lines(char *text, char **lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save);
         l != NULL && n < max; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

/* ---- running under a pseudo-terminal ------------------------------------ */

struct pty_run {
    pid_t  pid;
    int    pidfd;
    int    master, slave;
    char  *out;             /* everything read from the master */
    size_t len, cap;
    int    status;
    struct termios before;  /* the pty's modes before the program ran */
};

/* Start argv with its controlling terminal on a new pty of rows x cols.
 * Its stdin/stdout/stderr are the pty unless in_fd/out_fd/err_fd >= 0. */
static void
pty_start(struct pty_run *p, char *const argv[], int rows, int cols,
          int in_fd, int out_fd, int err_fd)
{
    struct winsize ws = { .ws_row = (unsigned short)rows,
                          .ws_col = (unsigned short)cols };

    memset(p, 0, sizeof *p);
    ck_assert_msg(openpty(&p->master, &p->slave, NULL, NULL, &ws) == 0,
                  "openpty: %s", strerror(errno));
    /* Taken now: once it runs, the program may change them at any moment. */
    ck_assert_int_eq(tcgetattr(p->slave, &p->before), 0);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        setsid();
        if (ioctl(p->slave, TIOCSCTTY, 0) < 0)
            _exit(126);
        if (dup2(in_fd >= 0 ? in_fd : p->slave, 0) < 0
            || dup2(out_fd >= 0 ? out_fd : p->slave, 1) < 0
            || dup2(err_fd >= 0 ? err_fd : p->slave, 2) < 0)
            _exit(126);
        close_range(3, ~0U, 0);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    p->pidfd = h_pidfd(p->pid);
    ck_assert_int_ge(p->pidfd, 0);
    fcntl(p->master, F_SETFL, O_NONBLOCK);
    p->cap = 65536;
    p->out = calloc(1, p->cap);
    ck_assert_ptr_nonnull(p->out);
}

static void
pty_read(struct pty_run *p)
{
    for (;;) {
        if (p->cap - p->len < 4097) {
            p->cap *= 2;
            p->out = realloc(p->out, p->cap);
            ck_assert_ptr_nonnull(p->out);
        }
        ssize_t n = read(p->master, p->out + p->len, 4096);
        if (n <= 0)
            break;
        p->len += (size_t)n;
        p->out[p->len] = '\0';
    }
}

/* Read until the output from byte `from` on holds needle.  Returns 1, or 0
 * on timeout or exit. */
static int
pty_wait_for(struct pty_run *p, const char *needle, size_t from, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        pty_read(p);
        if (p->len > from && memmem(p->out + from, p->len - from, needle,
                                    strlen(needle)) != NULL)
            return 1;
        int64_t left = deadline - h_now_ms();
        if (left <= 0 || h_pidfd_exited(p->pidfd))
            return 0;
        struct pollfd pfd[2] = {
            { .fd = p->master, .events = POLLIN },
            { .fd = p->pidfd, .events = POLLIN },
        };
        poll(pfd, 2, (int)left);
    }
}

/* Wait for the program to exit (reading its output meanwhile) and reap it.
 * Returns its exit code, or -1 (killed after timeout_ms, or by a signal). */
static int
pty_wait_exit(struct pty_run *p, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (!h_pidfd_exited(p->pidfd)) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) {
            kill(p->pid, SIGKILL);
            break;
        }
        struct pollfd pfd[2] = {
            { .fd = p->master, .events = POLLIN },
            { .fd = p->pidfd, .events = POLLIN },
        };
        poll(pfd, 2, (int)left);
        pty_read(p);
    }
    pty_read(p);
    while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
        ;
    return h_exit_code(p->status);
}

static void
pty_close(struct pty_run *p)
{
    close(p->pidfd);
    close(p->master);
    close(p->slave);
    free(p->out);
}

/* forkpoolctl -s SOCK top --interval 0.1 on a pty. */
static void
top_on_pty(struct pty_run *p, struct h_daemon *d, int rows, int cols)
{
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", d->sock, (char *)"top",
                     (char *)"--interval", (char *)"0.1", NULL };

    pty_start(p, argv, rows, cols, -1, -1, -1);
}

/* After top exited: the cursor shown again, the modes it changed put back. */
static void
assert_terminal_restored(const struct pty_run *p, const struct termios *before)
{
    struct termios after;
    const char *hidden = memmem(p->out, p->len, HIDE_CURSOR, strlen(HIDE_CURSOR));
    const char *shown = NULL;

    for (const char *s = p->out; (s = memmem(s, p->len - (size_t)(s - p->out),
                                             SHOW_CURSOR, strlen(SHOW_CURSOR))) != NULL;
         s++)
        shown = s;
    ck_assert_msg(hidden != NULL, "the cursor was never hidden");
    ck_assert_msg(shown != NULL && shown > hidden, "the cursor was not shown again");
    ck_assert_int_eq(tcgetattr(p->slave, &after), 0);
    ck_assert_msg((after.c_lflag & (ICANON | ECHO)) == (before->c_lflag & (ICANON | ECHO)),
                  "terminal modes not restored: lflag %#x, was %#x",
                  (unsigned)after.c_lflag, (unsigned)before->c_lflag);
}

/* ======================================================================== */

START_TEST(top_count_prints_one_plain_line_per_refresh)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;
    char *lines[8];
    static const char *const keys[] = {
        "time", "state", "uptime", "workers", "target", "busy", "idle",
        "starting", "queued", "rate", "completed", "failed", "crashed",
        "timed_out", "cancelled", "restarts",
    };

    h_need_ctl();
    /* Every worker ready first, or the jobs could all be prefetched by the
     * first one up. */
    wait_workers(c, "idle", 2);
    submit_many(c, "{\"op\": \"sleep\", \"s\": 20}", 6);
    wait_workers(c, "busy", 2);
    h_ctl(&run, d, NULL, "top", "--count", "3", "--interval", "0.1", NULL);
    ck_assert_msg(h_exit_code(run.status) == 0, "status %d, stderr %s", run.status, run.err);
    ck_assert_str_eq(run.err, "");
    ck_assert_int_eq(h_count_lines(run.out), 3);
    ck_assert_ptr_null(strchr(run.out, '\033'));
    ck_assert_int_eq(split_lines(run.out, lines, 8), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(strncmp(lines[i], "time=", 5) == 0, "line %d: %s", i, lines[i]);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            value_of(lines[i], keys[k]);
        ck_assert_str_eq(value_of(lines[i], "state"), "running");
        ck_assert_str_eq(value_of(lines[i], "workers"), "2");
        ck_assert_str_eq(value_of(lines[i], "target"), "2");
        ck_assert_str_eq(value_of(lines[i], "busy"), "2");
        ck_assert_str_eq(value_of(lines[i], "idle"), "0");
        ck_assert_str_eq(value_of(lines[i], "completed"), "0");
        ck_assert_str_eq(value_of(lines[i], "crashed"), "0");
    }
    /* The rate needs two samples; nothing finished in between. */
    ck_assert_str_eq(value_of(lines[0], "rate"), "-");
    ck_assert_str_eq(value_of(lines[1], "rate"), "0.0/s");
    ck_assert_str_eq(value_of(lines[2], "rate"), "0.0/s");
}
END_TEST

/* Jobs finishing between refreshes show as a rate, counted from every
 * finished kind (here ok and error). */
START_TEST(top_rate_counts_jobs_finished_between_refreshes)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_run run;
    char *lines[8];

    h_need_ctl();
    wait_workers(c, "idle", 2);
    /* ~2 s of work on 2 workers, some of it failing. */
    for (int i = 0; i < 30; i++)
        h_rpc_submit(c, i % 2 ? "{\"op\": \"sleep\", \"s\": 0.1}"
                              : "{\"op\": \"fail\"}", NULL);
    submit_many(c, "{\"op\": \"sleep\", \"s\": 0.1}", 30);
    h_ctl(&run, d, NULL, "top", "--count", "3", "--interval", "0.3", NULL);
    ck_assert_msg(h_exit_code(run.status) == 0, "status %d, stderr %s", run.status, run.err);
    ck_assert_int_eq(split_lines(run.out, lines, 8), 3);
    long long done[3];
    for (int i = 0; i < 3; i++)
        done[i] = atoll(value_of(lines[i], "completed")) + atoll(value_of(lines[i], "failed"));
    for (int i = 1; i < 3; i++) {
        const char *rate = value_of(lines[i], "rate");
        ck_assert_msg(strstr(rate, "/s") != NULL, "rate %s", rate);
        if (done[i] > done[i - 1])
            ck_assert_msg(atof(rate) > 0, "line %d: %lld more done, rate %s",
                          i, done[i] - done[i - 1], rate);
        else
            ck_assert_str_eq(rate, "0.0/s");
    }
    ck_assert_msg(done[2] > done[0], "no job finished during top: %s / %s",
                  lines[0], lines[2]);
}
END_TEST

START_TEST(top_without_daemon_exits_3_naming_the_socket)
{
    char sock[256];
    struct h_run run;

    h_need_ctl();
    snprintf(sock, sizeof sock, "%s/nobody-here.sock", h_tempdir());
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", sock, (char *)"top",
                     (char *)"--count", (char *)"1", NULL };
    h_run_argv(&run, NULL, NULL, 10000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 3);
    ck_assert_str_eq(run.out, "");
    ck_assert_msg(strstr(run.err, sock) != NULL, "stderr: %s", run.err);
}
END_TEST

START_TEST(top_bad_options_exit_2)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run run;

    h_need_ctl();
    h_ctl(&run, d, NULL, "top", "--interval", "0", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "--interval"));
    h_ctl(&run, d, NULL, "top", "--count", "0", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    ck_assert_ptr_nonnull(strstr(run.err, "--count"));
    h_ctl(&run, d, NULL, "top", "extra", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 2);
    h_ctl(&run, d, NULL, "top", "--help", NULL);
    ck_assert_int_eq(h_exit_code(run.status), 0);
    ck_assert_ptr_nonnull(strstr(run.out, "--interval"));
}
END_TEST

/* ---- top on a terminal ---------------------------------------------------- */

START_TEST(top_on_a_terminal_draws_workers_and_restores_it_on_q)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct pty_run p;
    pid_t pids[2];
    char pid[32];

    h_need_ctl();
    wait_workers(c, "idle", 2);
    h_rpc_submit(c, "{\"op\": \"sleep\", \"s\": 20}", NULL);
    wait_workers(c, "busy", 1);
    struct h_resp *st = h_status(c);
    ck_assert_int_eq(h_status_pids(st, pids, 2), 2);
    h_resp_free(st);

    top_on_pty(&p, d, 30, 100);
    ck_assert_msg(pty_wait_for(&p, "PID", 0, H_REPLY_MS), "no header: %s", p.out);
    for (int i = 0; i < 2; i++) {
        snprintf(pid, sizeof pid, " %ld  ", (long)pids[i]);
        ck_assert_msg(pty_wait_for(&p, pid, 0, H_REPLY_MS), "no row for pid %ld: %s",
                      (long)pids[i], p.out);
    }
    ck_assert_ptr_nonnull(strstr(p.out, "Workers: 2/2 live (busy 1, idle 1"));
    ck_assert_ptr_nonnull(strstr(p.out, "  busy  "));
    /* Non-canonical, no echo, while it runs. */
    struct termios during;
    ck_assert_int_eq(tcgetattr(p.slave, &during), 0);
    ck_assert_int_eq(during.c_lflag & (ICANON | ECHO), 0);

    ck_assert_int_eq(write(p.master, "q", 1), 1);
    ck_assert_int_eq(pty_wait_exit(&p, H_REPLY_MS), 0);
    assert_terminal_restored(&p, &p.before);
    pty_close(&p);
}
END_TEST

/* SIGINT (Ctrl-C) and SIGTERM end top with status 0 and the terminal
 * restored, like q. */
START_TEST(top_on_a_terminal_restores_it_on_a_signal)
{
    static const int sigs[] = { SIGINT, SIGTERM };
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct pty_run p;

    h_need_ctl();
    top_on_pty(&p, d, 24, 80);
    ck_assert_msg(pty_wait_for(&p, "PID", 0, H_REPLY_MS), "no header: %s", p.out);
    kill(p.pid, sigs[_i]);
    ck_assert_int_eq(pty_wait_exit(&p, H_REPLY_MS), 0);
    assert_terminal_restored(&p, &p.before);
    pty_close(&p);
}
END_TEST

/* On SIGWINCH the view is cut to the new height: rows that do not fit are
 * counted on the last line. */
START_TEST(top_on_a_terminal_fits_the_rows_to_its_height)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "8", NULL));
    struct h_rpc *c = h_connected(d);
    struct pty_run p;
    struct winsize small = { .ws_row = 10, .ws_col = 80 };

    h_need_ctl();
    wait_workers(c, "idle", 8);     /* all started: the rows are 8 */
    top_on_pty(&p, d, 40, 80);
    ck_assert_msg(pty_wait_for(&p, "PID", 0, H_REPLY_MS), "no header: %s", p.out);
    ck_assert_ptr_null(strstr(p.out, "more"));

    size_t from = p.len;
    ck_assert_int_eq(ioctl(p.master, TIOCSWINSZ, &small), 0);
    /* 10 rows: 6 header lines, 3 workers, "... 5 more". */
    ck_assert_msg(pty_wait_for(&p, "  ... 5 more", from, H_REPLY_MS),
                  "not cut to 10 rows: %s", p.out + from);
    ck_assert_int_eq(write(p.master, "q", 1), 1);
    ck_assert_int_eq(pty_wait_exit(&p, H_REPLY_MS), 0);
    pty_close(&p);
}
END_TEST

/* ---- map's progress line ------------------------------------------------- */

/* Write text to a new file in a temp dir; returns its path (static). */
static const char *
write_file(const char *text)
{
    static char path[256];

    snprintf(path, sizeof path, "%s/jobs.jsonl", h_tempdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Jobs of every kind map reports, blank and malformed lines among them;
 * *lines: how many are not blank. */
static char *
mixed_jobs(int *lines)
{
    size_t cap = 65536, len = 0;
    char *in = malloc(cap);

    ck_assert_ptr_nonnull(in);
    *lines = 0;
    for (int i = 0; i < 300; i++) {
        const char *job = i % 50 == 7  ? "{\"op\": \"crash\"}"
                        : i % 20 == 3  ? "{\"op\": \"fail\", \"detail\": [1, 2]}"
                        : i % 60 == 11 ? "{not json"
                        : i % 40 == 5  ? ""
                        : NULL;
        *lines += job == NULL || job[0] != '\0';
        len += (size_t)(job != NULL ? snprintf(in + len, cap - len, "%s\n", job)
                                    : snprintf(in + len, cap - len,
                                               "{\"n\": %d, \"s\": \"%0*d\"}\n",
                                               i, i % 17, 0));
        ck_assert_uint_lt(len, cap);
    }
    return in;
}

/* stdin a regular file but stderr a pipe: not a byte differs from the same
 * jobs fed through a pipe, and nothing goes to stderr. */
START_TEST(map_output_unchanged_when_stderr_is_not_a_terminal)
{
    struct h_daemon *a = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_daemon *b = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_run piped, filed;
    int lines;
    char *in = mixed_jobs(&lines);
    const char *path = write_file(in);

    h_need_ctl();
    h_ctl(&piped, a, in, "map", "--keep-order", NULL);
    char *argv[] = { (char *)"/bin/sh", (char *)"-c",
                     (char *)"f=$1; shift; exec \"$@\" < \"$f\"", (char *)"sh",
                     (char *)path, (char *)H_FORKPOOLCTL, (char *)"-s", b->sock,
                     (char *)"map", (char *)"--keep-order", NULL };
    h_run_argv(&filed, b, NULL, 10000, argv);

    ck_assert_int_eq(h_exit_code(piped.status), 1);
    ck_assert_int_eq(h_exit_code(filed.status), 1);
    ck_assert_int_eq(h_count_lines(filed.out), lines);
    ck_assert_uint_eq(filed.outlen, piped.outlen);
    ck_assert_msg(memcmp(filed.out, piped.out, piped.outlen) == 0,
                  "outputs differ:\n%s\n---\n%s", filed.out, piped.out);
    ck_assert_str_eq(filed.err, "");
    ck_assert_str_eq(piped.err, "");
    free(in);
}
END_TEST

/* stderr a terminal and stdin a file: the progress line is drawn there,
 * ends exact and is cleared; stdout is the same as ever. */
START_TEST(map_progress_line_on_a_terminal_leaves_stdout_alone)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct pty_run p;
    char in[4096] = "", expect[8192] = "";
    int out[2];

    h_need_ctl();
    /* 30 jobs of 50 ms on 2 workers: ~0.75 s, several redraws. */
    for (int i = 0; i < 30; i++) {
        strcat(in, "{\"op\": \"sleep\", \"s\": 0.05}\n");
        snprintf(expect + strlen(expect), sizeof expect - strlen(expect),
                 "{\"index\": %d, \"id\": %d, \"ok\": true, \"result\": \"slept\"}\n",
                 i, i + 1);
    }
    int fd = open(write_file(in), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pipe(out), 0);
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", d->sock, (char *)"map",
                     (char *)"--keep-order", NULL };
    pty_start(&p, argv, 24, 80, fd, out[1], -1);
    close(fd);
    close(out[1]);
    ck_assert_int_eq(pty_wait_exit(&p, 10000), 0);

    char got[8192];
    size_t len = 0;
    ssize_t n;
    while ((n = read(out[0], got + len, sizeof got - 1 - len)) > 0)
        len += (size_t)n;
    got[len] = '\0';
    close(out[0]);
    h_strip_receipts(got);      /* compared as h_ctl's output is */
    ck_assert_str_eq(got, expect);

    ck_assert_msg(strstr(p.out, "\rmap: ") != NULL, "no progress line: %s", p.out);
    ck_assert_msg(strstr(p.out, "/30 jobs") != NULL, "total never exact: %s", p.out);
    ck_assert_ptr_nonnull(strstr(p.out, "jobs/s"));
    ck_assert_ptr_nonnull(strstr(p.out, "ETA "));
    ck_assert_ptr_null(strchr(p.out, '\n'));      /* one row, rewritten */
    ck_assert_msg(p.len >= 4 && strcmp(p.out + p.len - 4, "\r\033[K") == 0,
                  "line not cleared at the end");
    pty_close(&p);
}
END_TEST

/* With --progress the bar gives way to the jobs' progress lines, which
 * stderr (the terminal) carries instead, whole. */
START_TEST(map_progress_option_replaces_the_bar_on_a_terminal)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct pty_run p;
    int out[2];

    h_need_ctl();
    int fd = open(write_file("{\"op\": \"progress\", \"n\": 2, \"every\": 0.2}\n"
                             "{\"op\": \"progress\", \"n\": 1, \"every\": 0.2}\n"),
                  O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pipe(out), 0);
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"-s", d->sock, (char *)"map",
                     (char *)"--keep-order", (char *)"--progress", NULL };
    pty_start(&p, argv, 24, 80, fd, out[1], -1);
    close(fd);
    close(out[1]);
    ck_assert_int_eq(pty_wait_exit(&p, 10000), 0);
    close(out[0]);

    ck_assert_msg(strstr(p.out, "map: ") == NULL, "a progress bar: %s", p.out);
    ck_assert_str_eq(p.out, "{\"id\": 1, \"progress\": 1}\r\n"
                            "{\"id\": 1, \"progress\": 2}\r\n"
                            "{\"id\": 2, \"progress\": 1}\r\n");
    pty_close(&p);
}
END_TEST

/* ======================================================================== */

static Suite *
ctl_top_suite(void)
{
    Suite *s = suite_create("ctl_top");
    TCase *tc;

    tc = h_tcase("top", 30);
    tcase_add_test(tc, top_count_prints_one_plain_line_per_refresh);
    tcase_add_test(tc, top_rate_counts_jobs_finished_between_refreshes);
    tcase_add_test(tc, top_without_daemon_exits_3_naming_the_socket);
    tcase_add_test(tc, top_bad_options_exit_2);
    suite_add_tcase(s, tc);

    tc = h_tcase("terminal", 30);
    tcase_add_test(tc, top_on_a_terminal_draws_workers_and_restores_it_on_q);
    tcase_add_loop_test(tc, top_on_a_terminal_restores_it_on_a_signal, 0, 2);
    tcase_add_test(tc, top_on_a_terminal_fits_the_rows_to_its_height);
    suite_add_tcase(s, tc);

    tc = h_tcase("progress", 30);
    tcase_add_test(tc, map_output_unchanged_when_stderr_is_not_a_terminal);
    tcase_add_test(tc, map_progress_line_on_a_terminal_leaves_stdout_alone);
    tcase_add_test(tc, map_progress_option_replaces_the_bar_on_a_terminal);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(ctl_top_suite());
}
