/*
 * logbuf.c — log lines queued and written without blocking (logbuf.h).
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "engine/log.h"
#include "logbuf.h"

#define KEEP_BUFFER (64 * 1024)     /* kept allocated once the queue empties */

static void write_cb(struct ev_loop *loop, ev_io *io, int revents);

/* A descriptor of our own, nonblocking, for what `fd` writes to; *is_socket
 * set if it is a socket.  Setting O_NONBLOCK on `fd` itself would set it on
 * a file description we share with our parent (a shell's terminal, a
 * supervisor's pipe), which could then fail its own writes with EAGAIN, or
 * clear the flag again under us.  So:
 *   - a socket (journald's stream): send(MSG_DONTWAIT) is nonblocking per
 *     call, whatever the flags;
 *   - a pipe or terminal: opening it again through /proc gives a
 *     description of our own;
 *   - a regular file never waits for a reader: a duplicate will do;
 *   - anything else, or no /proc: a duplicate with O_NONBLOCK, the shared
 *     flag being the lesser evil than a master that can block. */
static int
own_nonblocking_fd(int fd, int *is_socket)
{
    struct stat st;
    char path[64];
    int nfd, fl;

    *is_socket = 0;
    if (fstat(fd, &st) < 0)
        return -1;
    if (S_ISSOCK(st.st_mode)) {
        *is_socket = 1;
        return fcntl(fd, F_DUPFD_CLOEXEC, 3);
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        nfd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (nfd >= 0)
            return nfd;
    }
    if ((nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return -1;
    if (!S_ISREG(st.st_mode) && (fl = fcntl(nfd, F_GETFL)) >= 0)
        (void)fcntl(nfd, F_SETFL, fl | O_NONBLOCK);
    return nfd;
}

int
fp_logbuf_open(struct fp_logbuf *lb, int fd, const char *ident, size_t max)
{
    struct fp_buf empty = FP_BUF_INIT;

    lb->fd = own_nonblocking_fd(fd, &lb->is_socket);
    if (lb->fd < 0)
        return -1;
    lb->loop = NULL;
    ev_io_init(&lb->wio, write_cb, lb->fd, EV_WRITE);
    lb->wio.data = lb;
    lb->owner = getpid();
    lb->ident = ident;
    lb->queue = empty;
    lb->max = max;
    lb->dropping = 0;
    lb->dropped = 0;
    lb->dropped_total = 0;
    return 0;
}

void
fp_logbuf_attach(struct fp_logbuf *lb, struct ev_loop *loop)
{
    lb->loop = loop;
    if (lb->queue.len > 0)
        ev_io_start(loop, &lb->wio);
}

/* Queue a formatted line, or drop it (and whatever comes until the queue
 * is down to half). */
static void
enqueue(struct fp_logbuf *lb, const char *line, size_t len)
{
    if (lb->dropping || lb->queue.len + len > lb->max
        || fp_buf_append(&lb->queue, line, len) < 0) {
        lb->dropping = 1;
        lb->dropped++;
        lb->dropped_total++;
    }
}

/* Once the queue is down to half: say what was dropped, take lines again. */
static void
maybe_resume(struct fp_logbuf *lb)
{
    char msg[128], line[FP_LOG_LINE_MAX];

    if (!lb->dropping || lb->queue.len > lb->max / 2)
        return;
    lb->dropping = 0;
    snprintf(msg, sizeof(msg), "%llu log lines dropped: the log output was "
             "not read fast enough", (unsigned long long)lb->dropped);
    lb->dropped = 0;
    enqueue(lb, line, fp_log_format(line, sizeof(line), lb->ident, FP_LOG_WARN, msg));
}

static ssize_t
write_some(struct fp_logbuf *lb, const char *p, size_t n)
{
    if (lb->is_socket)
        return send(lb->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(lb->fd, p, n);
}

/* Write what the descriptor takes now; the watcher is armed exactly while
 * something is left. */
static void
drain(struct fp_logbuf *lb)
{
    for (;;) {
        maybe_resume(lb);
        if (lb->queue.len == 0)
            break;
        ssize_t n = write_some(lb, fp_buf_head(&lb->queue), lb->queue.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            /* The reader is gone (EPIPE) or the descriptor broke: these
             * lines cannot be delivered; later ones try again. */
            fp_buf_clear(&lb->queue);
            break;
        }
        fp_buf_consume(&lb->queue, (size_t)n);
    }
    if (lb->queue.len == 0)
        fp_buf_shrink(&lb->queue, KEEP_BUFFER);
    if (lb->loop == NULL)
        return;
    if (lb->queue.len > 0)
        ev_io_start(lb->loop, &lb->wio);
    else
        ev_io_stop(lb->loop, &lb->wio);
}

static void
write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    drain(io->data);
}

void
fp_logbuf_sink(int level, const char *msg, void *arg)
{
    struct fp_logbuf *lb = arg;
    char line[FP_LOG_LINE_MAX];

    /* A forked child (a worker, before it execs or runs its loop) has its
     * own stderr, and no loop of ours to flush a queue. */
    if (getpid() != lb->owner) {
        fp_log_stderr(level, msg, (void *)lb->ident);
        return;
    }
    enqueue(lb, line, fp_log_format(line, sizeof(line), lb->ident, level, msg));
    /* With the watcher armed the descriptor was full a moment ago: leave
     * the writing to it, and the order of the lines intact. */
    if (!ev_is_active(&lb->wio))
        drain(lb);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
fp_logbuf_flush(struct fp_logbuf *lb, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    for (;;) {
        drain(lb);
        int64_t left = deadline - now_ms();
        if ((lb->queue.len == 0 && !lb->dropping) || left <= 0)
            return lb->queue.len;
        struct pollfd pfd = { .fd = lb->fd, .events = POLLOUT };
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return lb->queue.len;
    }
}

void
fp_logbuf_close(struct fp_logbuf *lb)
{
    if (lb->loop != NULL)
        ev_io_stop(lb->loop, &lb->wio);
    fp_buf_free(&lb->queue);
    close(lb->fd);
    lb->fd = -1;
}
