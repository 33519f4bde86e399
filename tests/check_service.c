/*
 * check_service.c — forkpoold as a system service: systemd notification
 * and socket activation (tested without systemd, by setting up the
 * environment the way systemd does), classic daemon mode with a pid file,
 * and the config file.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

/* A datagram socket at dir/notify, as systemd's NOTIFY_SOCKET. */
static int
notify_socket(const char *dir, char *path, size_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    snprintf(path, len, "%s/notify", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* The next notification datagram, draining d's log meanwhile; fails the
 * test after 5 s. */
static const char *
next_notification(int fd, struct h_daemon *d)
{
    static char buf[1024];
    int64_t deadline = h_now_ms() + 5000;

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n >= 0) {
            buf[n] = '\0';
            return buf;
        }
        ck_assert_msg(errno == EAGAIN, "recv: %s", strerror(errno));
        int64_t left = deadline - h_now_ms();
        ck_assert_msg(left > 0, "no notification within 5 s; log:\n%s", d->log);
        struct pollfd pfd[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = d->errfd, .events = POLLIN },
        };
        poll(pfd, 2, (int)left);
        h_daemon_pump(d, 0);
    }
}

/* Skip STATUS= updates; return the next state change. */
static const char *
next_state(int fd, struct h_daemon *d)
{
    const char *m;
    while (strncmp(m = next_notification(fd, d), "STATUS=", 7) == 0)
        ;
    return m;
}

START_TEST(sd_notify_reports_ready_reloading_and_stopping)
{
    const char *dir = h_tempdir();
    char path[108], env[140], want[64];
    int fd = notify_socket(dir, path, sizeof(path));
    snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", path);
    char *envv[] = { env, NULL };
    char *args[] = { "--builtin", "echo", "-w", "2", NULL };
    struct h_opts o = { .umask = -1, .env = envv };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));

    snprintf(want, sizeof(want), "READY=1\nMAINPID=%ld", (long)d->pid);
    ck_assert_str_eq(next_state(fd, d), want);
    const char *status = next_notification(fd, d);
    ck_assert_msg(strncmp(status, "STATUS=running: 2 workers", 25) == 0, "%s", status);

    h_daemon_kill(d, SIGHUP);
    ck_assert_str_eq(next_state(fd, d), "RELOADING=1");
    ck_assert_str_eq(next_state(fd, d), "READY=1");

    h_daemon_kill(d, SIGTERM);
    ck_assert_str_eq(next_state(fd, d), "STOPPING=1");
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
    close(fd);
}
END_TEST

/* LISTEN_FDS: the daemon serves the socket it was handed, leaves its file
 * alone at exit, and its workers do not inherit LISTEN_*. */
START_TEST(socket_activation_serves_the_passed_socket)
{
    const char *dir = h_tempdir();
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct stat st;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/activated.sock", dir);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    char *args[] = { "-w", "1", NULL };     /* the cmd builtin */
    struct h_opts o = { .umask = -1, .listen_fd = lfd, .no_sock = 1 };
    struct h_daemon *d = h_started(h_daemon_startv(&o, args));
    close(lfd);
    ck_assert_int_eq(h_log_count(d, sa.sun_path), 1);

    struct h_rpc *c = h_rpc_open_path(sa.sun_path, d);
    ck_assert_ptr_nonnull(c);
    const msgpack_object *res = h_submit_ok(c, "{\"argv\": [\"env\"]}");
    const char *out = h_get_str(res, "stdout");
    ck_assert_msg(strstr(out, "LISTEN_") == NULL, "a worker sees: %s", out);
    h_rpc_close(c);

    h_daemon_kill(d, SIGTERM);
    int status = h_daemon_wait(d, 5000);
    ck_assert_msg(h_exit_code(status) == 0, "wait status 0x%x; log:\n%s", status, d->log);
    ck_assert_int_eq(stat(sa.sun_path, &st), 0);    /* systemd's, not ours */
}
END_TEST

/* Read a whole small file into a static buffer ("" if missing). */
static const char *
slurp(const char *path)
{
    static char buf[256];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return buf;
}

/* --daemon: the command returns once the daemon listens; the daemon runs
 * detached (own session, not its leader, cwd /, stdio on /dev/null), its
 * pid file is written and locked, and removed when it exits. */
START_TEST(daemon_mode_detaches_and_keeps_a_pidfile)
{
    const char *dir = h_tempdir();
    char sock[108], pidfile[108], link[64], target[256];
    struct h_run run;

    snprintf(sock, sizeof(sock), "%s/s", dir);
    snprintf(pidfile, sizeof(pidfile), "%s/forkpoold.pid", dir);
    char *argv[] = { H_FORKPOOLD, "--daemon", "--pidfile", pidfile, "-s", sock,
                     "--builtin", "echo", "-w", "1", "--log", "stderr", NULL };
    h_run_argv(&run, NULL, NULL, 10000, argv);
    ck_assert_msg(h_exit_code(run.status) == 0, "status %d: %s", run.status, run.err);

    pid_t pid = (pid_t)atol(slurp(pidfile));
    ck_assert_int_gt(pid, 1);
    int pidfd = h_pidfd(pid);
    ck_assert_int_ge(pidfd, 0);
    ck_assert_int_ne(getsid(pid), getsid(0));
    ck_assert_int_ne(getsid(pid), pid);     /* cannot regain a terminal */
    snprintf(link, sizeof(link), "/proc/%ld/cwd", (long)pid);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "/");
    snprintf(link, sizeof(link), "/proc/%ld/fd/2", (long)pid);
    n = readlink(link, target, sizeof(target) - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "/dev/null");

    /* It serves; a second daemon on the same pid file is refused. */
    struct h_rpc *c = h_rpc_open_path(sock, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(h_json(h_submit_ok(c, "\"detached\"")), "\"detached\"");
    h_rpc_close(c);
    char sock2[108];
    snprintf(sock2, sizeof(sock2), "%s/s2", dir);
    char *again[] = { H_FORKPOOLD, "--pidfile", pidfile, "-s", sock2,
                      "--builtin", "echo", NULL };
    h_run_argv(&run, NULL, NULL, 10000, again);
    ck_assert_int_eq(h_exit_code(run.status), 1);
    char want[64];
    snprintf(want, sizeof(want), "already running as pid %ld", (long)pid);
    ck_assert_msg(strstr(run.err, want) != NULL, "%s", run.err);

    kill(pid, SIGTERM);
    ck_assert(h_wait_readable(pidfd, 5000, NULL));
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    ck_assert_int_eq(access(sock, F_OK), -1);
}
END_TEST

/* A pid file left by a dead daemon (not locked) is taken over. */
START_TEST(stale_pidfile_is_replaced)
{
    const char *dir = h_tempdir();
    char pidfile[108], want[32];

    snprintf(pidfile, sizeof(pidfile), "%s/stale.pid", dir);
    FILE *f = fopen(pidfile, "w");
    fputs("999999\n", f);
    fclose(f);
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--pidfile", pidfile, NULL));
    snprintf(want, sizeof(want), "%ld\n", (long)d->pid);
    ck_assert_str_eq(slurp(pidfile), want);
    h_daemon_kill(d, SIGTERM);
    ck_assert_int_eq(h_exit_code(h_daemon_wait(d, 5000)), 0);
    ck_assert_int_eq(access(pidfile, F_OK), -1);
}
END_TEST

static const char *
write_config(const char *text)
{
    static char path[108];
    snprintf(path, sizeof(path), "%s/forkpool.conf", h_tempdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* --config: one option per line, flag names; the command line wins. */
START_TEST(config_file_sets_options_and_flags_override_it)
{
    const char *conf = write_config("# forkpoold settings\n"
                                    "\n"
                                    "workers 3\n"
                                    "builtin = echo   # the handler\n"
                                    "--queue-max 7\n"
                                    "max-workers 16\n");
    struct h_daemon *d = h_started(h_daemon_start("--config", conf, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);

    ck_assert_int_eq(h_get_int(h_status(c)->result, "workers"), 2);
    ck_assert_str_eq(h_json(h_submit_ok(c, "[\"echoed\"]")), "[\"echoed\"]");
    struct h_resp *r = h_rpc_call(c, "scale", "[17]");
    ck_assert_ptr_nonnull(r->error);            /* beyond max-workers 16 */
}
END_TEST

static const struct {
    const char *text;
    const char *message;
} bad_configs[] = {
    { "workers 2\nworkers zero\n", "forkpool.conf:2: --workers: expected an integer" },
    { "frobnicate 1\n", "forkpool.conf:1: unknown option 'frobnicate'" },
    { "daemon yes\n", "forkpool.conf:1: --daemon takes no value" },
    { "socket\n", "forkpool.conf:1: --socket: missing value" },
    { "config /etc/other.conf\n", "forkpool.conf:1: 'config' cannot be used" },
};

START_TEST(bad_config_file_exits_2_naming_file_and_line)
{
    const char *conf = write_config(bad_configs[_i].text);
    char *argv[] = { H_FORKPOOLD, "--config", (char *)conf, NULL };
    struct h_run run;

    h_run_argv(&run, NULL, NULL, 5000, argv);
    ck_assert_msg(h_exit_code(run.status) == 2, "status %d: %s", run.status, run.err);
    ck_assert_msg(strstr(run.err, bad_configs[_i].message) != NULL, "%s", run.err);
    ck_assert_int_eq(h_count_lines(run.err), 1);
}
END_TEST

/* --log-level: debug lines appear only when asked for. */
START_TEST(log_level_filters_lines)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--log-level", "debug", NULL));
    ck_assert(h_daemon_wait_log(d, "debug: worker slot 0: started pid", 0, 5000));
    struct h_daemon *q = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--log-level", "info", NULL));
    struct h_rpc *c = h_connected(q);
    h_status(c);
    h_daemon_pump(q, 0);
    ck_assert_int_eq(h_log_count(q, "debug:"), 0);
}
END_TEST

static Suite *
service_suite(void)
{
    Suite *s = suite_create("service");
    TCase *tc = h_tcase("systemd", 30);

    tcase_add_test(tc, sd_notify_reports_ready_reloading_and_stopping);
    tcase_add_test(tc, socket_activation_serves_the_passed_socket);
    suite_add_tcase(s, tc);

    tc = h_tcase("daemon", 30);
    tcase_add_test(tc, daemon_mode_detaches_and_keeps_a_pidfile);
    tcase_add_test(tc, stale_pidfile_is_replaced);
    tcase_add_test(tc, config_file_sets_options_and_flags_override_it);
    tcase_add_loop_test(tc, bad_config_file_exits_2_naming_file_and_line, 0,
                        sizeof(bad_configs) / sizeof(bad_configs[0]));
    tcase_add_test(tc, log_level_filters_lines);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(service_suite());
}
