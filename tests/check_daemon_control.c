/*
 * check_daemon_control.c — forkpoold's control socket and flags (SPEC §5,
 * §7): bad input disturbs no one, the socket's mode, stale and live
 * sockets, peer uids, bad flags, the default socket path.
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
 * Control socket (SPEC §5, §7)
 * ======================================================================== */

START_TEST(bad_control_input_does_not_disturb_others)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *a = h_connected(d), *b, *c;
    static const char submit_req[] = "\x94\x00\x09\xa6submit\x91\x81\xa1x\x01";
    char nested[128];
    struct h_resp *r;

    uint32_t job = h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.3}", NULL);
    ck_assert_int_eq(h_get_int(h_status(a)->result, "submitted"), 1);

    /* Not msgpack: no msgid can be read, the connection closes. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, "\xc1", 1), 0);
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 0);

    /* An array declaring 2^32-1 elements: refused from its header. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, "\xdd\xff\xff\xff\xff", 5), 0);
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 0);

    /* Unknown method: an error string; the connection stays usable. */
    b = h_connected(d);
    r = h_rpc_call(b, "frobnicate", "[]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"unknown method: frobnicate\"");
    ck_assert_str_eq(h_json(r->result), "null");
    r = h_rpc_call(b, "submit", "{}");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"bad request: params must be an array\"");
    h_status(b);

    /* A job nested 33 deep, beyond msgpack-c's 32: refused cleanly (the
     * frame is rejected as it is scanned: an error for its msgid, then the
     * connection closes). */
    b = h_connected(d);
    for (int i = 0; i < 33; i++)
        nested[i] = '[';
    for (int i = 0; i < 33; i++)
        nested[33 + i] = ']';
    nested[66] = '\0';
    r = h_rpc_wait(b, h_rpc_submit(b, nested, NULL), H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"bad request: nesting too deep\"");
    ck_assert_int_eq(h_rpc_wait_eof(b, H_REPLY_MS), 1);

    /* A truncated request, then goodbye. */
    b = h_connected(d);
    ck_assert_int_eq(h_rpc_send_raw(b, submit_req, sizeof(submit_req) - 4), 0);
    h_rpc_close(b);

    r = h_rpc_wait(a, job, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "{\"id\":1,\"result\":\"slept\"}");
    /* None of the bad requests was accepted as a job. */
    c = h_connected(d);
    r = h_submit(c, "{\"c\": 1}", NULL);
    ck_assert_str_eq(h_json(r->result), "{\"id\":2,\"result\":{\"c\":1}}");
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(client_leaving_with_jobs_in_flight_disturbs_nothing)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);

    h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.1}", NULL);
    h_rpc_submit(a, "{\"op\": \"sleep\", \"s\": 0.1}", NULL);
    ck_assert_int_eq(h_get_int(h_status(a)->result, "submitted"), 2);
    h_rpc_close(a);
    ck_assert_str_eq(h_json(h_submit_ok(b, "\"b\"")), "\"b\"");
    struct h_resp *st = h_status(b);
    ck_assert_int_eq(h_get_int(st->result, "completed"), 3);
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(socket_is_mode_0600_whatever_the_umask)
{
    struct h_opts o = { .umask = 0 };
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    struct stat sb;

    ck_assert_int_eq(stat(d->sock, &sb), 0);
    ck_assert(S_ISSOCK(sb.st_mode));
    ck_assert_uint_eq(sb.st_mode & 07777, 0600);
}
END_TEST

START_TEST(stale_socket_file_is_replaced)
{
    const char *dir = h_tempdir();
    struct h_opts o = { .umask = -1 };
    char path[108];
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat sb;

    /* A socket file nobody listens on: what a dead daemon leaves. */
    snprintf(path, sizeof(path), "%s/s", dir);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    ck_assert_int_eq(stat(path, &sb), 0);

    o.sock = path;
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    struct h_rpc *c = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"fresh\"")), "\"fresh\"");
}
END_TEST

START_TEST(live_socket_is_never_stolen)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run run;
    struct stat before, after;
    char *argv[] = { (char *)H_FORKPOOLD, (char *)"-s", d->sock, (char *)"--builtin",
                     (char *)"echo", (char *)"-w", (char *)"1", NULL };

    ck_assert_int_eq(stat(d->sock, &before), 0);
    h_run_argv(&run, d, NULL, 5000, argv);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    ck_assert_msg(strstr(run.err, d->sock) != NULL, "message does not name %s: %s",
                  d->sock, run.err);
    ck_assert_int_eq(h_count_lines(run.err), 1);
    ck_assert_int_eq(stat(d->sock, &after), 0);
    ck_assert_uint_eq(after.st_ino, before.st_ino);

    struct h_rpc *c = h_connected(d);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"still mine\"")), "\"still mine\"");
}
END_TEST

/* SPEC §5: other uids are refused (SO_PEERCRED).  Needs root to act as
 * another uid; the socket is opened up to it so the refusal is the
 * daemon's, not the file mode's. */
START_TEST(connection_from_other_uid_is_refused)
{
    if (geteuid() != 0)
        return;
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    size_t mark = d->loglen;
    int status = -1;

    /* Let the other uid reach the socket: it and the dirs above it, up to
     * /tmp, are ours. */
    ck_assert_int_eq(chmod(d->sock, 0666), 0);
    {
        char dir[108];
        char *slash;
        snprintf(dir, sizeof(dir), "%s", d->sock);
        while ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
            *slash = '\0';
            if (strcmp(dir, "/tmp") == 0)
                break;
            ck_assert_int_eq(chmod(dir, 0711), 0);
        }
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* As nobody: connect, ask for status, expect EOF and no answer. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[64];
        alarm(5);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(10);
        strcpy(sa.sun_path, d->sock);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            _exit(11);
        if (send(fd, "\x94\x00\x01\xa6status\x90", 10, MSG_NOSIGNAL) != 10)
            _exit(0);       /* already closed: refused */
        _exit(read(fd, buf, sizeof(buf)) <= 0 ? 0 : 12);
    }
    int pidfd = h_pidfd(pid);
    ck_assert(h_wait_readable(pidfd, 5000, d));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(h_exit_code(status) == 0, "client as uid 65534: wait status 0x%x; log:\n%s",
                  status, d->log);
    ck_assert(h_daemon_wait_log(d, "refused a connection from uid 65534", mark, 5000));
}
END_TEST

/* ========================================================================
 * Flags (SPEC §5)
 * ======================================================================== */

static const struct {
    const char *args[4];
    const char *names;      /* what the message must name */
} bad_flags[] = {
    { { "--workers", "0" }, "--workers" },
    { { "--workers", "abc" }, "--workers" },
    { { "-w" }, "-w" },
    { { "--job-timeout", "-1" }, "--job-timeout" },
    { { "--drain-timeout", "soon" }, "--drain-timeout" },
    { { "--start-timeout", "-1" }, "--start-timeout" },
    { { "--start-timeout", "soon" }, "--start-timeout" },
    { { "--queue-max", "0" }, "--queue-max" },
    { { "--bogus" }, "--bogus" },
    { { "--builtin", "nosuch" }, "--builtin" },
    { { "--module-config", "{}" }, "--module-config" },
    { { "--module", "/nonexistent.so" }, "--module" },
    { { "--module", H_TESTMOD, "--module-config", "{bad" }, "--module-config" },
    { { "--exec", "" }, "--exec" },
    { { "--sandbox", "leaky" }, "--sandbox" },
    { { "--sandbox", "strict" }, "--sandbox" },     /* with the cmd builtin */
    { { "--sandbox", "strict", "--exec", "cat" }, "--sandbox" },
    { { "--rlimit-as", "0" }, "--rlimit-as" },
    { { "--rlimit-as", "lots" }, "--rlimit-as" },
    { { "--rlimit-cpu", "-1" }, "--rlimit-cpu" },
    { { "--rlimit-nofile", "3" }, "--rlimit-nofile" },
    { { "--user", "no-such-user-here" }, "--user" },
    { { "--user", "root" }, "--user" },
    { { "--autoscale", "0-4" }, "--autoscale" },
    { { "--autoscale", "5-2" }, "--autoscale" },
    { { "--autoscale", "3" }, "--autoscale" },
    { { "--autoscale", "1-x" }, "--autoscale" },
    { { "--autoscale", "-1-3" }, "--autoscale" },
    { { "--autoscale", "1-9", "--max-workers", "8" }, "--autoscale" },
    { { "--idle-timeout", "5" }, "--idle-timeout" },    /* without --autoscale */
    { { "--autoscale", "1-2", "--idle-timeout", "0" }, "--idle-timeout" },
    { { "--autoscale", "1-2", "--idle-timeout", "soon" }, "--idle-timeout" },
};

START_TEST(bad_flags_exit_2)
{
    const char *dir = h_tempdir();
    char sock[108], *argv[10];
    struct h_run run;
    struct stat sb;
    size_t n = 0;

    snprintf(sock, sizeof(sock), "%s/s", dir);
    argv[n++] = (char *)H_FORKPOOLD;
    argv[n++] = (char *)"-s";
    argv[n++] = sock;
    for (size_t i = 0; i < 4 && bad_flags[_i].args[i] != NULL; i++)
        argv[n++] = (char *)bad_flags[_i].args[i];
    argv[n] = NULL;

    h_run_argv(&run, NULL, NULL, 5000, argv);
    ck_assert_msg(h_exit_code(run.status) == 2, "%s ...: status %d, stderr: %s",
                  argv[3], run.status, run.err);
    /* One line naming the flag (plus, at most, the usual --help hint). */
    char *nl = strchr(run.err, '\n');
    ck_assert_ptr_nonnull(nl);
    *nl = '\0';
    ck_assert_msg(strstr(run.err, bad_flags[_i].names) != NULL, "message does not name %s: %s",
                  bad_flags[_i].names, run.err);
    ck_assert_msg(nl[1] == '\0', "more than a one-line message: %s", nl + 1);
    ck_assert_str_eq(run.out, "");
    ck_assert_int_eq(stat(sock, &sb), -1);
}
END_TEST

START_TEST(default_socket_path_comes_from_environment)
{
    const char *dir = h_tempdir();
    char path[108];
    struct h_opts o = { .umask = -1, .env_sock = 1 };
    struct h_run run;

    /* Neither program gets -s: both must find the socket from the
     * environment (Check runs each test in its own process). */
    snprintf(path, sizeof(path), "%s/env.sock", dir);
    setenv("FORKPOOL_SOCKET", path, 1);
    o.sock = path;
    char *args[] = { (char *)"--builtin", (char *)"echo", (char *)"-w", (char *)"1", NULL };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));

    h_need_ctl();
    char *argv[] = { (char *)H_FORKPOOLCTL, (char *)"submit", (char *)"7", NULL };
    h_run_argv(&run, d, NULL, 10000, argv);
    ck_assert_str_eq(run.out, "{\"id\": 1, \"ok\": true, \"result\": 7}\n");
    ck_assert_int_eq(h_exit_code(run.status), 0);
}
END_TEST

static Suite *
daemon_control_suite(void)
{
    Suite *s = suite_create("daemon control");
    TCase *tc;

    tc = h_tcase("control", 20);
    tcase_add_test(tc, bad_control_input_does_not_disturb_others);
    tcase_add_test(tc, client_leaving_with_jobs_in_flight_disturbs_nothing);
    tcase_add_test(tc, socket_is_mode_0600_whatever_the_umask);
    tcase_add_test(tc, stale_socket_file_is_replaced);
    tcase_add_test(tc, live_socket_is_never_stolen);
    tcase_add_test(tc, connection_from_other_uid_is_refused);
    tcase_add_test(tc, default_socket_path_comes_from_environment);
    suite_add_tcase(s, tc);

    tc = h_tcase("flags", 20);
    tcase_add_loop_test(tc, bad_flags_exit_2, 0, sizeof(bad_flags) / sizeof(bad_flags[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_control_suite());
}
