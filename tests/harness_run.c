/*
 * harness_run.c — run a program (forkpoolctl and the like) with its output
 * captured and a deadline (see harness.h).
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
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_int.h"

struct capture {
    int    fd;
    char  *buf;
    size_t len, cap;
};

/* Read what fd has (nonblocking); closes it at EOF. */
static void
capture_read(struct capture *cp)
{
    while (cp->fd >= 0) {
        if (cp->cap - cp->len < READ_CHUNK + 1) {
            cp->cap = cp->cap * 2 + READ_CHUNK + 1;
            cp->buf = realloc(cp->buf, cp->cap);
            ck_assert_ptr_nonnull(cp->buf);
        }
        ssize_t n = read(cp->fd, cp->buf + cp->len, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (n == 0) {
            close(cp->fd);
            cp->fd = -1;
            break;
        }
        cp->len += (size_t)n;
    }
}

/* A program started by h_run_start, until h_run_finish. */
struct h_proc {
    int            runs_ctl;        /* forkpoolctl is in its argv */
    pid_t          pid;
    int            pidfd;
    int            in;              /* its stdin, -1 once closed */
    const char    *stdin_text;
    size_t         in_off, in_len;
    struct capture co, ce;
    const char    *name;
};

struct h_proc *
h_run_start(const char *stdin_text, char *const argv[])
{
    int in[2], out[2], err[2];
    struct h_proc *p = h_keep(calloc(1, sizeof(*p)));

    ck_assert_ptr_nonnull(p);
    h_track_exit();
    ck_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0
              && pipe2(err, O_CLOEXEC) == 0);
    p->pid = fork();
    ck_assert_msg(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(126);
        close_range(3, ~0U, 0);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->pidfd = h_pidfd(p->pid);
    ck_assert_int_ge(p->pidfd, 0);
    p->name = argv[0];
    /* forkpoolctl's output (maybe behind a wrapper): receipts stripped. */
    for (size_t i = 0; argv[i] != NULL; i++)
        if (strcmp(argv[i], H_FORKPOOLCTL) == 0)
            p->runs_ctl = 1;
    p->in = in[1];
    p->stdin_text = stdin_text;
    p->in_len = stdin_text != NULL ? strlen(stdin_text) : 0;
    p->co.fd = out[0];
    p->ce.fd = err[0];
    fcntl(p->in, F_SETFL, O_NONBLOCK);
    fcntl(p->co.fd, F_SETFL, O_NONBLOCK);
    fcntl(p->ce.fd, F_SETFL, O_NONBLOCK);
    if (p->in_len == 0) {
        close(p->in);
        p->in = -1;
    }
    return p;
}

int
h_run_finish(struct h_run *r, struct h_proc *p, struct h_daemon *d,
             int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int status = -1;

    for (;;) {
        struct pollfd pfd[5] = {
            { .fd = p->pidfd, .events = POLLIN },
            { .fd = p->co.fd, .events = POLLIN },
            { .fd = p->ce.fd, .events = POLLIN },
            { .fd = p->in, .events = POLLOUT },
            { .fd = d != NULL ? d->errfd : -1, .events = POLLIN },
        };
        int n = poll(pfd, 5, h_left_ms(deadline));
        if (n < 0) {
            ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
            continue;
        }
        if (pfd[4].revents != 0)
            h_log_read(d);
        if (pfd[1].revents != 0)
            capture_read(&p->co);
        if (pfd[2].revents != 0)
            capture_read(&p->ce);
        if (pfd[3].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = write(p->in, p->stdin_text + p->in_off, p->in_len - p->in_off);
            if (w > 0)
                p->in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || p->in_off == p->in_len) {
                close(p->in);
                p->in = -1;
            }
        }
        if (pfd[0].revents != 0) {
            /* Exited: what it wrote is in the pipes; take it. */
            capture_read(&p->co);
            capture_read(&p->ce);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (h_left_ms(deadline) == 0) {
            fprintf(stderr, "harness: %s did not finish within %d ms; killing it\n",
                    p->name, timeout_ms);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            status = -1;
            break;
        }
    }
    close(p->pidfd);
    if (p->in >= 0)
        close(p->in);
    if (p->co.fd >= 0)
        close(p->co.fd);
    if (p->ce.fd >= 0)
        close(p->ce.fd);
    r->status = status;
    r->out = h_keep(p->co.buf != NULL ? p->co.buf : strdup(""));
    r->outlen = p->co.len;
    r->out[p->co.len] = '\0';
    r->out_raw = r->out;
    r->outlen_raw = r->outlen;
    if (p->runs_ctl) {
        r->out = h_keep(strdup(r->out_raw));
        r->outlen = h_strip_receipts(r->out);
    }
    r->err = h_keep(p->ce.buf != NULL ? p->ce.buf : strdup(""));
    r->errlen = p->ce.len;
    r->err[p->ce.len] = '\0';
    return status;
}

int
h_run_argv(struct h_run *r, struct h_daemon *d, const char *stdin_text,
           int timeout_ms, char *const argv[])
{
    return h_run_finish(r, h_run_start(stdin_text, argv), d, timeout_ms);
}

/* forkpoolctl -s d->sock and the NULL-terminated args after `arg`, into
 * argv (room for 64). */
static void
ctl_argv(char **argv, struct h_daemon *d, const char *arg, va_list ap)
{
    size_t n = 0;

    argv[n++] = (char *)H_FORKPOOLCTL;
    argv[n++] = (char *)"-s";
    argv[n++] = d->sock;
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, 63);
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
}

struct h_proc *
h_ctl_start(struct h_daemon *d, const char *arg, ...)
{
    char *argv[64];
    va_list ap;

    va_start(ap, arg);
    ctl_argv(argv, d, arg, ap);
    va_end(ap);
    return h_run_start(NULL, argv);
}

int
h_ctl(struct h_run *r, struct h_daemon *d, const char *stdin_text,
      const char *arg, ...)
{
    char *argv[64];
    va_list ap;

    va_start(ap, arg);
    ctl_argv(argv, d, arg, ap);
    va_end(ap);
    return h_run_argv(r, d, stdin_text, 10000, argv);
}

int
h_have_ctl(void)
{
    return access(H_FORKPOOLCTL, X_OK) == 0;
}

void
h_need_ctl(void)
{
    ck_assert_msg(h_have_ctl(), "%s has not been built", H_FORKPOOLCTL);
}
