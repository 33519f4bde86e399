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

int
h_run_argv(struct h_run *r, struct h_daemon *d, const char *stdin_text,
           int timeout_ms, char *const argv[])
{
    int in[2], out[2], err[2], pidfd, status = -1;
    int64_t deadline = h_now_ms() + timeout_ms;
    size_t in_off = 0, in_len = stdin_text != NULL ? strlen(stdin_text) : 0;
    struct capture co = { 0 }, ce = { 0 };
    pid_t pid;

    h_track_exit();
    ck_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0
              && pipe2(err, O_CLOEXEC) == 0);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
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
    pidfd = h_pidfd(pid);
    ck_assert_int_ge(pidfd, 0);
    co.fd = out[0];
    ce.fd = err[0];
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(co.fd, F_SETFL, O_NONBLOCK);
    fcntl(ce.fd, F_SETFL, O_NONBLOCK);
    if (in_len == 0) {
        close(in[1]);
        in[1] = -1;
    }

    for (;;) {
        struct pollfd pfd[5] = {
            { .fd = pidfd, .events = POLLIN },
            { .fd = co.fd, .events = POLLIN },
            { .fd = ce.fd, .events = POLLIN },
            { .fd = in[1], .events = POLLOUT },
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
            capture_read(&co);
        if (pfd[2].revents != 0)
            capture_read(&ce);
        if (pfd[3].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = write(in[1], stdin_text + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (pfd[0].revents != 0) {
            /* Exited: what it wrote is in the pipes; take it. */
            capture_read(&co);
            capture_read(&ce);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (h_left_ms(deadline) == 0) {
            fprintf(stderr, "harness: %s did not finish within %d ms; killing it\n",
                    argv[0], timeout_ms);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            status = -1;
            break;
        }
    }
    close(pidfd);
    if (in[1] >= 0)
        close(in[1]);
    if (co.fd >= 0)
        close(co.fd);
    if (ce.fd >= 0)
        close(ce.fd);
    r->status = status;
    r->out = h_keep(co.buf != NULL ? co.buf : strdup(""));
    r->outlen = co.len;
    r->out[co.len] = '\0';
    r->out_raw = r->out;
    r->outlen_raw = r->outlen;
    for (size_t i = 0; argv[i] != NULL; i++)
        if (strcmp(argv[i], H_FORKPOOLCTL) == 0) {
            r->out = h_keep(strdup(r->out_raw));
            r->outlen = h_strip_receipts(r->out);
            break;
        }
    r->err = h_keep(ce.buf != NULL ? ce.buf : strdup(""));
    r->errlen = ce.len;
    r->err[ce.len] = '\0';
    return status;
}

int
h_ctl(struct h_run *r, struct h_daemon *d, const char *stdin_text,
      const char *arg, ...)
{
    char *argv[64];
    size_t n = 0;
    va_list ap;

    argv[n++] = (char *)H_FORKPOOLCTL;
    argv[n++] = (char *)"-s";
    argv[n++] = d->sock;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
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
