/*
 * bench_raw.c — the physical bound: a parent and forked echo children tied
 * by socketpairs, the same payload and the same window as the pool, with
 * nothing else: no ids, no envelope, no dispatch table, no outcome.
 *
 * A message is a 4-byte length and the payload (the same msgpack bin the
 * pool gets).  Two variants:
 *   one write per message  the parent writes each message with its own
 *                          write(); a child echoes each complete message
 *                          with its own write();
 *   batched                the parent writes every pending message for a
 *                          child in one writev(); a child echoes whatever
 *                          one read() returned with one write().
 * The parent polls its (nonblocking) ends; the children block.
 */
#include "config.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"

#define RAW_CHILDREN  2
#define CHUNK         (256 * 1024)
#define WARM_SECS     0.1
#define MAX_IOV       1024

struct raw_child {
    pid_t    pid;
    int      fd;
    unsigned pending;       /* messages not yet fully written */
    size_t   woff;          /* bytes of the first pending one written */
    unsigned outstanding;   /* sent or pending, not yet echoed back */
    double  *sent;          /* ring of send times, FIFO per child */
    unsigned ring_head;
    unsigned char hdr[4];   /* the echo being read: its length header */
    unsigned hpos;
    size_t   rleft;         /* payload bytes of it still to come */
};

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The echo child: blocking, exits at EOF. */
static void __attribute__((noreturn))
child_main(int fd, int batched, size_t frame_len)
{
    size_t cap = frame_len + CHUNK, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        _exit(1);
    for (;;) {
        ssize_t n = read(fd, buf + len, batched ? CHUNK : cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        if (batched) {
            if (write_all(fd, buf, (size_t)n) < 0)
                _exit(1);
            continue;
        }
        len += (size_t)n;
        size_t off = 0;
        while (len - off >= 4) {
            uint32_t m;
            memcpy(&m, buf + off, 4);
            if (len - off < 4 + (size_t)m)
                break;
            if (write_all(fd, buf + off, 4 + (size_t)m) < 0)
                _exit(1);
            off += 4 + (size_t)m;
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
}

struct raw_run {
    struct raw_child ch[RAW_CHILDREN];
    const char *frame;
    size_t      flen;
    unsigned    window, outstanding, per_child_ring;
    int         batched, phase;
    double      started, seconds, t0, t1, cpu0, cpu1;
    uint64_t    completed, c0, c1;
    struct hist hist;
};

/* Queue one message on the child with the fewest outstanding. */
static void
enqueue(struct raw_run *run)
{
    struct raw_child *c = &run->ch[0];

    for (int i = 1; i < RAW_CHILDREN; i++)
        if (run->ch[i].outstanding < c->outstanding)
            c = &run->ch[i];
    c->sent[(c->ring_head + c->outstanding) % run->per_child_ring] = now_s();
    c->outstanding++;
    c->pending++;
    run->outstanding++;
}

/* Write what is pending; returns -1 on a broken socket. */
static int
flush_child(struct raw_run *run, struct raw_child *c)
{
    while (c->pending > 0) {
        ssize_t n;
        if (run->batched) {
            struct iovec iov[MAX_IOV];
            unsigned k = c->pending < MAX_IOV ? c->pending : MAX_IOV;
            for (unsigned i = 0; i < k; i++) {
                iov[i].iov_base = (void *)run->frame;
                iov[i].iov_len = run->flen;
            }
            iov[0].iov_base = (char *)run->frame + c->woff;
            iov[0].iov_len = run->flen - c->woff;
            n = writev(c->fd, iov, (int)k);
        } else {
            n = write(c->fd, run->frame + c->woff, run->flen - c->woff);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        size_t left = (size_t)n;
        while (left > 0) {
            size_t take = run->flen - c->woff;
            if (take > left)
                take = left;
            c->woff += take;
            left -= take;
            if (c->woff == run->flen) {
                c->woff = 0;
                c->pending--;
            }
        }
    }
    return 0;
}

static void
on_echo(struct raw_run *run, struct raw_child *c)
{
    double t = now_s();

    if (run->phase == 1)
        hist_add(&run->hist, t - c->sent[c->ring_head]);
    c->ring_head = (c->ring_head + 1) % run->per_child_ring;
    c->outstanding--;
    run->outstanding--;
    run->completed++;
    if (run->phase == 0 && t - run->started >= WARM_SECS
        && run->completed >= 2 * (uint64_t)run->window) {
        run->phase = 1;
        run->t0 = t;
        run->cpu0 = self_cpu_s();
        run->c0 = run->completed;
    } else if (run->phase == 1 && t - run->t0 >= run->seconds) {
        run->phase = 2;
        run->t1 = t;
        run->cpu1 = self_cpu_s();
        run->c1 = run->completed;
    }
    if (run->phase < 2)
        while (run->outstanding < run->window)
            enqueue(run);
}

/* Read what the child sent and account every complete echo.  Returns -1 at
 * EOF or on error. */
static int
read_child(struct raw_run *run, struct raw_child *c, char *buf)
{
    for (;;) {
        ssize_t n = read(c->fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        size_t off = 0, got = (size_t)n;
        while (off < got) {
            if (c->hpos < 4) {
                c->hdr[c->hpos++] = (unsigned char)buf[off++];
                if (c->hpos == 4) {
                    uint32_t m;
                    memcpy(&m, c->hdr, 4);
                    c->rleft = m;
                }
            } else {
                size_t take = got - off < c->rleft ? got - off : c->rleft;
                off += take;
                c->rleft -= take;
            }
            if (c->hpos == 4 && c->rleft == 0) {
                c->hpos = 0;
                on_echo(run, c);
            }
        }
        if ((size_t)n < CHUNK)
            return 0;
    }
}

static int
spawn_children(struct raw_run *run)
{
    for (int i = 0; i < RAW_CHILDREN; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return -1;
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(run->ch[j].fd);
            child_main(sv[1], run->batched, run->flen);
        }
        close(sv[1]);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        run->ch[i].pid = pid;
        run->ch[i].fd = sv[0];
    }
    return 0;
}

void
bench_raw(const struct bench_args *a, struct bench_result *r)
{
    struct raw_run run;
    size_t plen;
    char *payload = make_bin_payload(a->payload, &plen);
    char *frame = payload ? malloc(plen + 4) : NULL;
    char *buf = malloc(CHUNK);
    const char *fail = NULL;

    memset(&run, 0, sizeof(run));
    if (frame == NULL || buf == NULL) {
        bench_fail(r, "out of memory");
        goto out;
    }
    uint32_t m = (uint32_t)plen;
    memcpy(frame, &m, 4);
    memcpy(frame + 4, payload, plen);
    run.frame = frame;
    run.flen = plen + 4;
    run.window = a->window;
    run.batched = a->batched;
    run.seconds = a->seconds;
    run.per_child_ring = a->window + 1;
    for (int i = 0; i < RAW_CHILDREN; i++) {
        run.ch[i].fd = -1;
        run.ch[i].sent = calloc(run.per_child_ring, sizeof(double));
        if (run.ch[i].sent == NULL) {
            bench_fail(r, "out of memory");
            goto out;
        }
    }
    r->rss_before_kb = proc_rss_kb(0);
    if (spawn_children(&run) < 0) {
        bench_fail(r, "cannot start the echo children");
        goto out;
    }
    hist_reset(&run.hist);
    run.started = now_s();
    while (run.outstanding < run.window)
        enqueue(&run);
    while (fail == NULL && (run.phase < 2 || run.outstanding > 0)) {
        struct pollfd pfd[RAW_CHILDREN];
        for (int i = 0; i < RAW_CHILDREN; i++) {
            if (flush_child(&run, &run.ch[i]) < 0)
                fail = "an echo child went away";
            pfd[i].fd = run.ch[i].fd;
            pfd[i].events = POLLIN | (run.ch[i].pending > 0 ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        if (fail != NULL)
            break;
        if (poll(pfd, RAW_CHILDREN, 10000) <= 0) {
            fail = errno == EINTR ? NULL : "poll failed or stalled";
            continue;
        }
        for (int i = 0; i < RAW_CHILDREN; i++)
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                && read_child(&run, &run.ch[i], buf) < 0)
                fail = "an echo child went away";
    }
    r->rss_after_kb = proc_rss_kb(0);
    if (fail != NULL) {
        bench_fail(r, "%s", fail);
    } else {
        r->ok = 1;
        r->jobs = run.c1 - run.c0;
        r->secs = run.t1 - run.t0;
        r->jobs_s = (double)r->jobs / r->secs;
        r->p50_us = hist_quantile_us(&run.hist, 0.50);
        r->p99_us = hist_quantile_us(&run.hist, 0.99);
        r->cpu_us_per_job = (run.cpu1 - run.cpu0) * 1e6 / (double)r->jobs;
    }
out:
    for (int i = 0; i < RAW_CHILDREN; i++) {
        if (run.ch[i].fd >= 0)
            close(run.ch[i].fd);
        if (run.ch[i].pid > 0)
            waitpid(run.ch[i].pid, NULL, 0);
        free(run.ch[i].sent);
    }
    free(payload);
    free(frame);
    free(buf);
}
