/*
 * check_logbuf.c — forkpoold's log queue (src/daemon/logbuf.c) over real
 * pipes and sockets and a libev loop of the test's own: lines go out at
 * once while the descriptor takes them, wait in order while it is full,
 * are dropped whole (and counted) past the bound, and never block.
 *
 * A sink call that blocked would hang the test: Check's timeout catches
 * that as a failure.
 */
#include "config.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>

#include "daemon/logbuf.h"
#include "engine/log.h"

static char out[1 << 20];      /* what the test read from the log */
static size_t outlen;

/* Read what fd holds now (it is nonblocking) into out. */
static void
read_out(int fd)
{
    ssize_t n;

    while (outlen < sizeof(out) - 1
           && (n = read(fd, out + outlen, sizeof(out) - 1 - outlen)) > 0)
        outlen += (size_t)n;
    out[outlen] = '\0';
}

/* A pipe of one page, both ends nonblocking for the test's own use. */
static void
small_pipe(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_ge(fcntl(p[0], F_SETPIPE_SZ, 4096), 0);
}

/* Fill the pipe until it takes nothing more; returns the bytes written. */
static size_t
fill(int wfd)
{
    char junk[512];
    size_t total = 0;
    ssize_t n;

    memset(junk, '#', sizeof(junk));
    junk[sizeof(junk) - 1] = '\n';
    while ((n = write(wfd, junk, sizeof(junk))) > 0)
        total += (size_t)n;
    ck_assert_int_eq(errno, EAGAIN);
    return total;
}

/* Read and run the loop until the log holds needle (bounded). */
static void
pump_until(struct ev_loop *loop, int rfd, const char *needle)
{
    for (int i = 0; i < 10000 && strstr(out, needle) == NULL; i++) {
        read_out(rfd);
        ev_run(loop, EVRUN_NOWAIT);
    }
    read_out(rfd);
    ck_assert_msg(strstr(out, needle) != NULL, "no \"%s\" in the log: %.200s",
                  needle, out);
}

static void
setup(void)
{
    outlen = 0;
    out[0] = '\0';
    signal(SIGPIPE, SIG_IGN);      /* as forkpoold does */
}

START_TEST(a_line_goes_out_at_once_while_the_descriptor_takes_it)
{
    struct fp_logbuf lb;
    char want[128];
    int p[2];

    small_pipe(p);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    fp_logbuf_sink(FP_LOG_INFO, "hello", &lb);
    ck_assert_uint_eq(lb.queue.len, 0);
    read_out(p[0]);
    snprintf(want, sizeof(want), "t[%ld]: info: hello\n", (long)getpid());
    ck_assert_str_eq(out, want);
    fp_logbuf_close(&lb);
}
END_TEST

/* O_NONBLOCK is set on a descriptor of the log's own, never on the one it
 * was given: that file description is shared with whoever started us. */
START_TEST(the_given_descriptor_keeps_its_flags)
{
    struct fp_logbuf lb;
    int p[2];

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    ck_assert_int_ne(lb.fd, p[1]);
    ck_assert_int_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(lb.fd, F_GETFL) & O_NONBLOCK, 0);
    fp_logbuf_close(&lb);
}
END_TEST

START_TEST(a_full_pipe_queues_lines_and_the_loop_writes_them_in_order)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct fp_logbuf lb;
    char msg[32];
    int p[2];

    small_pipe(p);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    fp_logbuf_attach(&lb, loop);
    fill(p[1]);
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof(msg), "line %02d", i);
        fp_logbuf_sink(FP_LOG_INFO, msg, &lb);
    }
    ck_assert_uint_gt(lb.queue.len, 0);
    ck_assert(ev_is_active(&lb.wio));
    pump_until(loop, p[0], "line 19");
    const char *prev = out;
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof(msg), "info: line %02d\n", i);
        const char *at = strstr(out, msg);
        ck_assert_msg(at != NULL && at > prev, "line %d missing or out of order", i);
        prev = at;
    }
    ck_assert_uint_eq(lb.queue.len, 0);
    ck_assert(!ev_is_active(&lb.wio));      /* armed only while queued */
    fp_logbuf_close(&lb);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(past_the_bound_whole_lines_are_dropped_then_counted)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct fp_logbuf lb;
    char msg[64], want[64], line[FP_LOG_LINE_MAX];
    int p[2];

    small_pipe(p);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", 1000), 0);
    fp_logbuf_attach(&lb, loop);
    fill(p[1]);
    size_t len = fp_log_format(line, sizeof(line), "t", FP_LOG_INFO, "line 00");
    int fit = (int)(1000 / len);
    for (int i = 0; i < 50; i++) {
        snprintf(msg, sizeof(msg), "line %02d", i);
        fp_logbuf_sink(FP_LOG_INFO, msg, &lb);
    }
    ck_assert_uint_eq(lb.queue.len, (size_t)fit * len);
    ck_assert_uint_eq(lb.dropped, (uint64_t)(50 - fit));

    snprintf(want, sizeof(want), "warning: %d log lines dropped", 50 - fit);
    pump_until(loop, p[0], want);
    snprintf(msg, sizeof(msg), "line %02d\n", fit - 1);
    ck_assert_ptr_nonnull(strstr(out, msg));
    snprintf(msg, sizeof(msg), "line %02d\n", fit);
    ck_assert_ptr_null(strstr(out, msg));
    /* Lines flow again after the notice. */
    fp_logbuf_sink(FP_LOG_INFO, "after", &lb);
    pump_until(loop, p[0], "info: after\n");
    ck_assert_ptr_nonnull(strstr(strstr(out, want), "info: after\n"));
    /* And nothing was cut: every line but the filler is a whole log line. */
    for (const char *q = out, *nl; (nl = strchr(q, '\n')) != NULL; q = nl + 1)
        ck_assert_msg(*q == '#' || strncmp(q, "t[", 2) == 0, "torn: %.40s", q);
    fp_logbuf_close(&lb);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(the_final_flush_waits_no_longer_than_its_bound)
{
    struct fp_logbuf lb;
    int p[2];

    small_pipe(p);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    fill(p[1]);
    fp_logbuf_sink(FP_LOG_INFO, "last words", &lb);
    ck_assert_uint_gt(fp_logbuf_flush(&lb, 50), 0);       /* nobody reads */
    read_out(p[0]);
    ck_assert_uint_eq(fp_logbuf_flush(&lb, 5000), 0);
    read_out(p[0]);
    ck_assert_ptr_nonnull(strstr(out, "info: last words\n"));
    fp_logbuf_close(&lb);
}
END_TEST

START_TEST(a_full_socket_queues_lines_too)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct fp_logbuf lb;
    int sv[2], small = 4096;
    char junk[512];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ck_assert_int_eq(fp_logbuf_open(&lb, sv[0], "t", FP_LOGBUF_MAX), 0);
    ck_assert(lb.is_socket);
    fp_logbuf_attach(&lb, loop);
    memset(junk, '#', sizeof(junk));
    junk[sizeof(junk) - 1] = '\n';
    while (send(sv[0], junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    fp_logbuf_sink(FP_LOG_INFO, "through the socket", &lb);
    ck_assert_uint_gt(lb.queue.len, 0);
    ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    pump_until(loop, sv[1], "info: through the socket\n");
    fp_logbuf_close(&lb);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(a_reader_that_is_gone_costs_lines_not_a_hang)
{
    struct fp_logbuf lb;
    int p[2];

    small_pipe(p);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    close(p[0]);
    fp_logbuf_sink(FP_LOG_INFO, "into the void", &lb);
    ck_assert_uint_eq(lb.queue.len, 0);
    ck_assert_uint_eq(fp_logbuf_flush(&lb, 5000), 0);
    fp_logbuf_close(&lb);
}
END_TEST

/* A forked child has no loop to flush a queue: its lines go straight to
 * its own stderr, with its own pid. */
START_TEST(a_forked_child_writes_to_its_own_stderr)
{
    struct fp_logbuf lb;
    int p[2], q[2], status;
    char want[128];
    pid_t pid;

    small_pipe(p);
    small_pipe(q);
    ck_assert_int_eq(fp_logbuf_open(&lb, p[1], "t", FP_LOGBUF_MAX), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(q[1], 2);
        fp_logbuf_sink(FP_LOG_WARN, "from the child", &lb);
        _exit(lb.queue.len == 0 ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    read_out(q[0]);
    snprintf(want, sizeof(want), "t[%ld]: warning: from the child\n", (long)pid);
    ck_assert_str_eq(out, want);
    outlen = 0;
    read_out(p[0]);
    ck_assert_str_eq(out, "");
    fp_logbuf_close(&lb);
}
END_TEST

static Suite *
logbuf_suite(void)
{
    Suite *s = suite_create("logbuf");
    TCase *tc = tcase_create("logbuf");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, a_line_goes_out_at_once_while_the_descriptor_takes_it);
    tcase_add_test(tc, the_given_descriptor_keeps_its_flags);
    tcase_add_test(tc, a_full_pipe_queues_lines_and_the_loop_writes_them_in_order);
    tcase_add_test(tc, past_the_bound_whole_lines_are_dropped_then_counted);
    tcase_add_test(tc, the_final_flush_waits_no_longer_than_its_bound);
    tcase_add_test(tc, a_full_socket_queues_lines_too);
    tcase_add_test(tc, a_reader_that_is_gone_costs_lines_not_a_hang);
    tcase_add_test(tc, a_forked_child_writes_to_its_own_stderr);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(logbuf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
