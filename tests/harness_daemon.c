/*
 * harness_daemon.c — start forkpoold, follow its log, signal it and reap it
 * (see harness.h).
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_int.h"

/* The daemons of this test, killed and reaped at teardown. */
static struct h_daemon *daemons[MAX_TRACKED];
static size_t ndaemons;

void
h_log_read(struct h_daemon *d)
{
    while (d->errfd >= 0) {
        if (d->logcap - d->loglen < READ_CHUNK + 1) {
            d->logcap = d->logcap * 2 + READ_CHUNK + 1;
            d->log = realloc(d->log, d->logcap);
            ck_assert_ptr_nonnull(d->log);
        }
        ssize_t n = read(d->errfd, d->log + d->loglen, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)      /* EAGAIN */
            break;
        if (n == 0) {
            close(d->errfd);
            d->errfd = -1;
            break;
        }
        d->loglen += (size_t)n;
        d->log[d->loglen] = '\0';
    }
}

void
h_daemon_pump(struct h_daemon *d, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    do {
        struct pollfd pfd = { .fd = d->errfd, .events = POLLIN };
        if (d->errfd < 0)
            return;
        int n = poll(&pfd, 1, h_left_ms(deadline));
        if (n > 0)
            h_log_read(d);
    } while (h_left_ms(deadline) > 0);
}

/* The first complete line at or after `from` that contains needle. */
static const char *
find_line(const struct h_daemon *d, const char *needle, size_t from)
{
    const char *p = d->log != NULL && from < d->loglen ? d->log + from : NULL;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        if (strchr(p, '\n') != NULL)
            return p;
        p = NULL;   /* the line is not complete yet */
    }
    return NULL;
}

int
h_log_count(const struct h_daemon *d, const char *needle)
{
    int n = 0;
    const char *p = d->log;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        n++;
        p = nl + 1;
    }
    return n;
}

/* Reap the daemon if its pidfd says it has exited. */
static int
try_reap(struct h_daemon *d)
{
    if (d->reaped)
        return 1;
    if (!h_pidfd_exited(d->pidfd))
        return 0;
    while (waitpid(d->pid, &d->status, 0) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    d->reaped = 1;
    h_log_read(d);        /* what it wrote before it died */
    return 1;
}

int
h_daemon_wait_log(struct h_daemon *d, const char *needle, size_t from,
                  int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        h_log_read(d);
        if (find_line(d, needle, from) != NULL)
            return 1;
        if (try_reap(d) || d->errfd < 0 || h_left_ms(deadline) == 0)
            return 0;
        struct pollfd pfd[2] = {
            { .fd = d->errfd, .events = POLLIN },
            { .fd = d->pidfd, .events = POLLIN },
        };
        if (poll(pfd, 2, h_left_ms(deadline)) < 0)
            ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
    }
}

void
h_daemon_kill(struct h_daemon *d, int sig)
{
    ck_assert_msg(!d->reaped, "signal %d to a daemon that already exited", sig);
    ck_assert_msg(kill(d->pid, sig) == 0, "kill: %s", strerror(errno));
}

int
h_daemon_wait(struct h_daemon *d, int timeout_ms)
{
    if (h_wait_readable(d->pidfd, timeout_ms, d) == 0 && !d->reaped)
        return -1;
    try_reap(d);
    return d->status;
}

int
h_daemon_alive(struct h_daemon *d)
{
    return !try_reap(d);
}

int
h_spawns(const struct h_daemon *d)
{
    return h_log_count(d, ": started pid ");
}

/* Child side of the daemon start: never returns. */
static void __attribute__((noreturn))
exec_daemon(const struct h_opts *o, const char *dir, int errw, char *const argv[])
{
    int devnull = open("/dev/null", O_RDWR);

    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0
        || dup2(errw, 2) < 0)
        _exit(126);
    if (o->listen_fd > 0) {
        char pid[32];
        if (o->listen_fd != 3 && dup2(o->listen_fd, 3) < 0)
            _exit(126);
        fcntl(3, F_SETFD, 0);
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", pid, 1);
        close_range(4, ~0U, 0);
    } else {
        close_range(3, ~0U, 0);
    }
    for (size_t i = 0; o->env != NULL && o->env[i] != NULL; i++)
        putenv(o->env[i]);
    signal(SIGPIPE, SIG_DFL);
    if (o->umask >= 0)
        umask((mode_t)o->umask);
    if (o->core_unlimited) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_CORE, &rl);
        }
    }
    if (dir != NULL && chdir(dir) < 0)
        _exit(126);
    execv(argv[0], argv);
    dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

struct h_daemon *
h_daemon_startv(const struct h_opts *o, char *const args[])
{
    struct h_daemon *d = calloc(1, sizeof(*d));
    const char *dir = NULL;
    char *argv[64];
    size_t n = 0;
    int p[2];

    ck_assert_ptr_nonnull(d);
    ck_assert_uint_lt(ndaemons, MAX_TRACKED);
    h_track_exit();
    if (o->sock != NULL) {
        snprintf(d->sock, sizeof(d->sock), "%s", o->sock);
        char *slash = strrchr(d->sock, '/');
        if (slash != NULL) {
            /* cwd for cores and the like: the socket's directory */
            static char sockdir[108];
            snprintf(sockdir, sizeof(sockdir), "%.*s", (int)(slash - d->sock),
                     d->sock);
            dir = sockdir[0] != '\0' ? sockdir : "/";
        }
    } else {
        dir = h_tempdir();
        snprintf(d->sock, sizeof(d->sock), "%s/s", dir);
    }
    argv[n++] = (char *)H_FORKPOOLD;
    if (!o->env_sock && !o->no_sock) {
        argv[n++] = (char *)"-s";
        argv[n++] = d->sock;
    }
    for (size_t i = 0; args[i] != NULL; i++) {
        ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    ck_assert_msg(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    /* Room for a burst of log lines even when no one is reading yet. */
    (void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    d->pid = fork();
    ck_assert_msg(d->pid >= 0, "fork: %s", strerror(errno));
    if (d->pid == 0)
        exec_daemon(o, dir, p[1], argv);
    close(p[1]);
    d->errfd = p[0];
    fcntl(d->errfd, F_SETFL, O_NONBLOCK);
    d->pidfd = h_pidfd(d->pid);
    ck_assert_int_ge(d->pidfd, 0);
    daemons[ndaemons++] = d;
    if (o->no_wait)
        return d;
    if (!h_daemon_wait_log(d, "listening on", 0, H_READY_MS)) {
        fprintf(stderr, "harness: forkpoold did not become ready; its log:\n%s\n",
                d->log != NULL ? d->log : "");
        return NULL;
    }
    return d;
}

struct h_daemon *
h_daemon_start(const char *arg, ...)
{
    struct h_opts o = { .umask = -1 };
    char *args[64];
    size_t n = 0;
    va_list ap;

    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, sizeof(args) / sizeof(args[0]) - 1);
        args[n++] = (char *)a;
    }
    va_end(ap);
    args[n] = NULL;
    return h_daemon_startv(&o, args);
}

struct h_daemon *
h_started(struct h_daemon *d)
{
    ck_assert_msg(d != NULL, "forkpoold did not start (see stderr)");
    return d;
}

void
h_daemon_teardown(void)
{
    while (ndaemons > 0) {
        struct h_daemon *d = daemons[--ndaemons];
        if (!d->reaped) {
            kill(d->pid, SIGKILL);
            while (waitpid(d->pid, &d->status, 0) < 0 && errno == EINTR)
                ;
        }
        close(d->pidfd);
        if (d->errfd >= 0)
            close(d->errfd);
        free(d->log);
        free(d);
    }
}
