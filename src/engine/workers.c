/*
 * workers.c — the master's worker table: spawn a worker, talk to it over
 * its socket, notice its death, settle the jobs it held, replace it.
 *
 * A worker holds a window of jobs (pool.c decides how deep): the first is
 * running, the rest are prefetched.  Outcomes of a dead worker's jobs are
 * settled only in child_exit_cb, after the socket has been read dry, so a
 * result written just before a crash is never mistaken for a crash.
 */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_int.h"
#include "codec/wire.h"
#include "spawn.h"

#define READ_CHUNK        (64 * 1024)
#define KEEP_IN           (4u << 20)  /* read buffer kept between big frames */
#define READ_PER_WAKEUP   (4u << 20)    /* then let other watchers run */
#define STOP_GRACE        10.0          /* s for a stopped worker to exit */
#define BACKOFF_MIN       0.01          /* s after the first failed start */
#define BACKOFF_MAX       5.0

static void worker_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void worker_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void worker_stderr_cb(struct ev_loop *loop, ev_io *io, int revents);
static void child_exit_cb(struct ev_loop *loop, ev_child *cw, int revents);
static void job_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void slow_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void restart_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void stop_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static int process_input(struct fp_worker *w);
static void hold_area_free(struct fp_worker *w);

struct fp_worker *
fp_worker_new(struct fp_pool *p, unsigned slot)
{
    struct fp_worker *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->pool = p;
    w->slot = slot;
    w->state = W_WAITING;
    w->fd = -1;
    w->errfd = -1;
    TAILQ_INIT(&w->window);
    ev_init(&w->rio, worker_read_cb);
    ev_init(&w->wio, worker_write_cb);
    ev_init(&w->eio, worker_stderr_cb);
    ev_init(&w->child, child_exit_cb);
    ev_init(&w->job_timer, job_timer_cb);
    ev_init(&w->slow_timer, slow_timer_cb);
    ev_init(&w->restart_timer, restart_timer_cb);
    ev_init(&w->stop_timer, stop_timer_cb);
    w->rio.data = w->wio.data = w->eio.data = w->child.data = w;
    w->job_timer.data = w->restart_timer.data = w->stop_timer.data = w;
    w->slow_timer.data = w;
    return w;
}

static void
stop_io(struct fp_worker *w)
{
    struct ev_loop *loop = w->pool->loop;

    ev_io_stop(loop, &w->rio);
    ev_io_stop(loop, &w->wio);
    w->send_next = NULL;        /* nothing more goes to this process */
    ev_timer_stop(loop, &w->job_timer);
    ev_timer_stop(loop, &w->slow_timer);
}

/* Release everything but the window (the pool settles those jobs). */
void
fp_worker_free(struct fp_worker *w)
{
    struct ev_loop *loop = w->pool->loop;

    stop_io(w);
    ev_child_stop(loop, &w->child);
    ev_timer_stop(loop, &w->restart_timer);
    ev_timer_stop(loop, &w->stop_timer);
    ev_io_stop(loop, &w->eio);
    if (w->fd >= 0)
        close(w->fd);
    if (w->errfd >= 0)
        close(w->errfd);
    hold_area_free(w);
    fp_buf_free(&w->in);
    fp_buf_free(&w->errline);
    free(w);
}

/* ------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------ */

static void
schedule_restart(struct fp_worker *w)
{
    unsigned n = w->fail_streak;
    double delay = BACKOFF_MIN;

    while (n-- > 1 && delay < BACKOFF_MAX)
        delay *= 2;
    if (delay > BACKOFF_MAX)
        delay = BACKOFF_MAX;
    w->state = W_WAITING;
    ev_timer_set(&w->restart_timer, delay, 0.);
    ev_timer_start(w->pool->loop, &w->restart_timer);
}

/* --max-jobs plus up to 10% jitter, so workers started together do not
 * all recycle together. */
static unsigned
job_budget(struct fp_pool *p)
{
    unsigned max = p->cfg.max_jobs, spread = max / 10;

    if (max == 0 || spread == 0)
        return max;
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return max + (unsigned)(p->rng % (spread + 1));
}

size_t
fp_worker_rss(const struct fp_worker *w)
{
    char path[64], buf[128];
    unsigned long size, resident;
    FILE *f;

    if (w->pid <= 0 || w->reaped)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)w->pid);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    int ok = fgets(buf, sizeof(buf), f) != NULL
          && sscanf(buf, "%lu %lu", &size, &resident) == 2;
    fclose(f);
    return ok ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The area a module worker holds its results in, shared with us: mapped
 * before the fork so that the child inherits it.  NULL if it cannot be
 * had (the worker then writes every result at once). */
static struct fp_hold_area *
hold_area_new(struct fp_worker *w)
{
    void *a = mmap(NULL, FP_HOLD_AREA, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    w->hold_area = a != MAP_FAILED ? a : NULL;
    return w->hold_area;
}

static void
hold_area_free(struct fp_worker *w)
{
    if (w->hold_area != NULL)
        munmap(w->hold_area, FP_HOLD_AREA);
    w->hold_area = NULL;
}

/* A dead worker's last results: the bytes of [base, base+len) its area
 * still holds that its socket did not deliver.  The area is as untrusted as
 * the socket: out-of-bounds figures are ignored, and what is taken goes
 * through the same scanning as any frame. */
static void
recover_held(struct fp_worker *w)
{
    struct fp_hold_area *a = w->hold_area;

    if (a == NULL)
        return;
    uint64_t base = __atomic_load_n(&a->base, __ATOMIC_ACQUIRE);
    uint32_t len = __atomic_load_n(&a->len, __ATOMIC_ACQUIRE);
    if (len > FP_HOLD_CAP || base > w->received || base + len <= w->received)
        return;
    size_t skip = (size_t)(w->received - base);
    if (fp_buf_append(&w->in, a->data + skip, len - skip) == 0) {
        w->received = base + len;
        process_input(w);
    }
}

int
fp_worker_spawn(struct fp_worker *w)
{
    struct fp_pool *p = w->pool;
    struct fp_spawn_req req = {
        .exec_argv = p->cfg.exec_argv,
        .child_main = fp_worker_main,
        .child_arg = &p->wargs,
        .sandbox = &p->sandbox,
    };
    int fd, errfd;
    pid_t pid;

    p->wargs.slot = w->slot;    /* the child sees it as of the fork */
    p->wargs.hold_area = p->cfg.exec_argv == NULL ? hold_area_new(w) : NULL;
    pid = fp_spawn(&req, &fd, &errfd);
    /* This worker's area is its own: no later child inherits it. */
    if (w->hold_area != NULL)
        (void)madvise(w->hold_area, FP_HOLD_AREA, MADV_DONTFORK);

    if (pid < 0) {
        hold_area_free(w);
        if (w->fail_streak++ == 0)
            fp_logf(&p->log, FP_LOG_ERR, "worker slot %u: cannot fork: %s; "
                    "retrying with backoff", w->slot, strerror(errno));
        schedule_restart(w);
        return -1;
    }
    w->pid = pid;
    w->fd = fd;
    w->errfd = errfd;
    fp_buf_clear(&w->errline);
    ev_io_set(&w->eio, errfd, EV_READ);
    ev_io_start(p->loop, &w->eio);
    w->state = W_STARTING;
    w->spawned_at = ev_now(p->loop);
    w->jobs_done = 0;
    w->job_budget = job_budget(p);
    w->recycle_why = NULL;
    w->kill_cause = KILL_NONE;
    w->kill_job = 0;
    w->generation = p->generation;
    w->ever_ready = 0;
    w->shutdown_pending = 0;
    w->stop_requested = 0;
    w->reaped = 0;
    fp_buf_clear(&w->in);
    w->received = 0;
    w->send_next = NULL;
    w->send_off = 0;
    fp_scanner_reset(&w->scan);
    ev_io_set(&w->rio, fd, EV_READ);
    ev_io_set(&w->wio, fd, EV_WRITE);
    ev_io_start(p->loop, &w->rio);
    ev_child_set(&w->child, pid, 0);
    ev_child_start(p->loop, &w->child);
    fp_logf(&p->log, FP_LOG_DEBUG, "worker slot %u: started pid %ld",
            w->slot, (long)pid);
    return 0;
}

/* ------------------------------------------------------------------------
 * Jobs out
 * ------------------------------------------------------------------------ */

unsigned
fp_worker_room(const struct fp_worker *w)
{
    const struct fp_pool *p = w->pool;
    unsigned limit = p->cfg.prefetch;

    if (w->state != W_READY || w->retiring || w->recycle_why != NULL || p->cut_off)
        return 0;
    if (w->job_budget > 0) {
        unsigned left = w->job_budget > w->jobs_done ? w->job_budget - w->jobs_done : 0;
        if (left < limit)
            limit = left;
    }
    return limit > w->nwindow ? limit - w->nwindow : 0;
}

/* The first job of the window starts running now. */
static void
start_head(struct fp_worker *w)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);
    struct ev_loop *loop = w->pool->loop;

    ev_timer_stop(loop, &w->job_timer);
    ev_timer_stop(loop, &w->slow_timer);
    if (head == NULL)
        return;
    if (head->settled) {
        /* Cancelled while prefetched: only a restart keeps the worker from
         * running it; the jobs behind it go back to the queue untouched. */
        fp_worker_kill(w, KILL_CANCEL, head->id);
        return;
    }
    head->attempts++;
    w->job_started = ev_now(loop);
    if (head->timeout > 0) {
        ev_timer_set(&w->job_timer, head->timeout, 0.);
        ev_timer_start(loop, &w->job_timer);
    }
    if (w->pool->cfg.slow_log > 0) {
        ev_timer_set(&w->slow_timer, w->pool->cfg.slow_log, 0.);
        ev_timer_start(loop, &w->slow_timer);
    }
}

/* Put ["job", id, payload] in the window: the envelope goes in job->hdr
 * and the payload is written from the job itself (worker_write_cb). */
void
fp_worker_assign(struct fp_worker *w, struct fp_job *job)
{
    char *h = job->hdr;

    job->worker = w;
    TAILQ_INSERT_TAIL(&w->window, job, link);
    w->nwindow++;
    *h++ = (char)0x93;                  /* array of 3 */
    *h++ = (char)0xa3;                  /* str of 3 */
    memcpy(h, "job", 3);
    h += 3;
    *h++ = (char)0xcf;                  /* uint64, big-endian */
    for (int shift = 56; shift >= 0; shift -= 8)
        *h++ = (char)(job->id >> shift);
    job->hdrlen = (unsigned char)(h - job->hdr);
    if (w->send_next == NULL) {
        w->send_next = job;
        w->send_off = 0;
    }
    if (w->nwindow == 1)
        start_head(w);
}

/* ------------------------------------------------------------------------
 * Stop and kill
 * ------------------------------------------------------------------------ */

void
fp_worker_kill(struct fp_worker *w, enum fp_kill_cause cause, uint64_t job)
{
    if (w->pid <= 0)
        return;
    if (w->kill_cause == KILL_NONE) {
        w->kill_cause = cause;
        w->kill_job = job;
    }
    if (!w->reaped) {   /* a reaped pid may already belong to someone else */
        kill(-w->pid, SIGKILL);     /* its group: what the handler started */
        kill(w->pid, SIGKILL);      /* in case it had not set up its group */
    }
    w->state = W_STOPPING;
    stop_io(w);
}

/* Ask the worker to exit cleanly: EOF on its input (once our queued bytes
 * are out), SIGKILL if it is still there after STOP_GRACE. */
void
fp_worker_stop(struct fp_worker *w)
{
    struct ev_loop *loop = w->pool->loop;

    if (w->pid <= 0) {
        ev_timer_stop(loop, &w->restart_timer);
        return;
    }
    if (w->state == W_STOPPING)
        return;
    w->state = W_STOPPING;
    w->stop_requested = 1;
    if (w->send_next == NULL)
        shutdown(w->fd, SHUT_WR);
    else
        w->shutdown_pending = 1;
    ev_timer_set(&w->stop_timer, STOP_GRACE, 0.);
    ev_timer_start(loop, &w->stop_timer);
}

static void
stop_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)loop; (void)revents;

    fp_logf(&w->pool->log, FP_LOG_WARN, "worker %ld did not exit within %gs "
            "of being stopped; killing it", (long)w->pid, STOP_GRACE);
    fp_worker_kill(w, KILL_NONE, 0);
}

static void
job_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    struct fp_job *head = TAILQ_FIRST(&w->window);
    (void)loop; (void)revents;

    if (head == NULL)
        return;
    fp_logf(&w->pool->log, FP_LOG_WARN, "job %llu timed out after %gs; killing "
            "worker %ld", (unsigned long long)head->id, head->timeout, (long)w->pid);
    fp_worker_kill(w, KILL_TIMEOUT, head->id);
}

/* --slow-log: once per job, while it still runs. */
static void
slow_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    struct fp_job *head = TAILQ_FIRST(&w->window);
    char prefix[4 * 48 + 1];
    size_t n = 0;
    (void)revents;

    if (head == NULL)
        return;
    /* The payload is msgpack: show its first bytes, escaped. */
    for (size_t i = 0; i < head->len && i < 48; i++) {
        unsigned char c = (unsigned char)head->payload[i];
        n += (size_t)snprintf(prefix + n, sizeof(prefix) - n,
                              c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    }
    fp_logf(&w->pool->log, FP_LOG_WARN, "slow job %llu on worker %ld: running "
            "for %.1fs; payload (%zu bytes) %s%s", (unsigned long long)head->id,
            (long)w->pid, ev_now(loop) - w->job_started, head->len, prefix,
            head->len > 48 ? "..." : "");
}

static void
protocol_error(struct fp_worker *w, const char *why)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);

    /* Before "ready" this is a failed start: logged once per streak. */
    if (w->ever_ready || w->fail_streak == 0)
        fp_logf(&w->pool->log, FP_LOG_WARN, "worker %ld: protocol error: %s; "
                "killing it", (long)w->pid, why);
    fp_worker_kill(w, KILL_PROTOCOL, head != NULL ? head->id : 0);
}

/* ------------------------------------------------------------------------
 * Messages in
 * ------------------------------------------------------------------------ */

/* A result for the running job: settle it, start the next. */
static void
on_result(struct fp_worker *w, fp_kind kind, const char *raw, size_t len)
{
    struct fp_pool *p = w->pool;
    struct fp_job *job = TAILQ_FIRST(&w->window);

    TAILQ_REMOVE(&w->window, job, link);
    w->nwindow--;
    w->jobs_done++;
    pool_record_latency(p, ev_now(p->loop) - w->job_started);
    /* --max-rss, checked between jobs (and not on every one of a burst:
     * reading /proc costs more than a trivial job). */
    if (p->cfg.max_rss > 0 && w->recycle_why == NULL
        && (w->nwindow == 0 || w->jobs_done % 16 == 0)
        && fp_worker_rss(w) > p->cfg.max_rss)
        w->recycle_why = "its memory passed --max-rss";
    if (w->recycle_why == NULL && w->job_budget > 0 && w->jobs_done >= w->job_budget)
        w->recycle_why = "it reached --max-jobs";
    if (w->fail_streak > 0) {
        fp_logf(&p->log, FP_LOG_INFO, "worker slot %u: healthy again after %u "
                "failed starts", w->slot, w->fail_streak);
        w->fail_streak = 0;
    }
    start_head(w);
    if (w->kill_cause == KILL_CANCEL && w->kill_job == job->id) {
        /* Cancelled (cancel said true) while its result was on the way:
         * the cancel wins, so the caller sees the outcome it was promised. */
        fp_job_finish_str(p, job, FP_CANCELLED, "cancelled");
    } else {
        fp_job_finish(p, job, kind, raw, len);
    }
    if (w->nwindow > 0 || w->state != W_READY)
        return;
    if (w->retiring) {
        fp_worker_stop(w);
    } else if (w->recycle_why != NULL) {
        fp_logf(&p->log, FP_LOG_INFO, "worker %ld: recycling after %u jobs: %s",
                (long)w->pid, w->jobs_done, w->recycle_why);
        fp_worker_stop(w);
    }
}

/* Handle one complete frame; returns 0, or -1 after a protocol error. */
static int
handle_frame(struct fp_worker *w, const char *frame, size_t len)
{
    struct fp_worker_msg m;
    struct fp_job *head = TAILQ_FIRST(&w->window);
    const char *why;
    char msg[128];

    if (fp_wire_worker_msg(frame, len, &m, &why) < 0) {
        protocol_error(w, why);
        return -1;
    }
    if (m.type == FP_WMSG_READY) {
        if (w->ever_ready) {
            protocol_error(w, "unexpected ready message");
            return -1;
        }
        /* A worker stopped before it was ready (a drain) stays stopping. */
        if (w->state == W_STARTING)
            w->state = W_READY;
        w->ever_ready = 1;
        fp_logf(&w->pool->log, FP_LOG_DEBUG, "worker %ld: ready for jobs", (long)w->pid);
        pool_worker_ready(w->pool, w);
        return 0;
    }
    if (m.type == FP_WMSG_RETIRE) {
        /* Nothing more is sent to it; it stops once its window is done. */
        if (w->recycle_why == NULL)
            w->recycle_why = "its CPU time is halfway to the --rlimit-cpu backstop";
        if (w->nwindow == 0 && w->state == W_READY && !w->retiring) {
            fp_logf(&w->pool->log, FP_LOG_INFO, "worker %ld: recycling after "
                    "%u jobs: %s", (long)w->pid, w->jobs_done, w->recycle_why);
            fp_worker_stop(w);
        }
        return 0;
    }
    if (head != NULL && head == w->send_next) {
        /* Answered before it was even fully sent: the head must stay put
         * while its bytes are still being written. */
        protocol_error(w, "result for a job not yet received");
        return -1;
    }
    if (!w->ever_ready || head == NULL || head->id != m.id) {
        snprintf(msg, sizeof(msg), "result for job %llu, which it is not running",
                 (unsigned long long)m.id);
        protocol_error(w, msg);
        return -1;
    }
    on_result(w, m.type == FP_WMSG_OK ? FP_OK : FP_ERROR, m.value, m.value_len);
    return 0;
}

/* Parse every complete frame in w->in.  Returns -1 once the worker has been
 * killed (protocol error, or a callback cancelled its job). */
static int
process_input(struct fp_worker *w)
{
    const char *why;
    enum fp_kill_cause before = w->kill_cause;

    while (w->in.len > 0) {
        ssize_t n = fp_scan(&w->scan, fp_buf_head(&w->in), w->in.len,
                            &w->pool->worker_limits, &why);
        if (n < 0) {
            protocol_error(w, why);
            return -1;
        }
        if (n == 0)
            break;
        int rc = handle_frame(w, fp_buf_head(&w->in), (size_t)n);
        fp_buf_consume(&w->in, (size_t)n);
        fp_scanner_reset(&w->scan);
        if (rc < 0 || w->kill_cause != before)
            return -1;
    }
    fp_buf_shrink(&w->in, KEEP_IN);
    return 0;
}

/* Read what the socket holds (up to `budget` bytes) and process it.
 * Returns 1 at EOF or error, 0 otherwise. */
static int
read_some(struct fp_worker *w, size_t budget)
{
    size_t got_total = 0;

    while (got_total < budget) {
        char *room = fp_buf_reserve(&w->in, READ_CHUNK);
        if (room == NULL) {
            fp_worker_kill(w, KILL_NONE, 0);
            return 1;
        }
        /* All the room there is: a big frame comes in few reads. */
        ssize_t n = read(w->fd, room, w->in.cap - w->in.off - w->in.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return 1;
        w->in.len += (size_t)n;
        w->received += (size_t)n;
        got_total += (size_t)n;
        if (process_input(w) < 0)
            return 1;
    }
    return 0;
}

static void
worker_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_worker *w = io->data;
    struct fp_pool *p = w->pool;
    (void)revents;

    if (read_some(w, READ_PER_WAKEUP)) {
        ev_io_stop(loop, &w->rio);
        /* EOF from a worker we did not stop: it is dying or broken. */
        if (w->state != W_STOPPING)
            fp_worker_kill(w, KILL_NONE, 0);
    }
    pool_dispatch(p);
    pool_check_drained(p);
}

#define WRITE_IOV    64          /* iovecs per writev: 32 jobs */

/* Write queued jobs: one writev carries many, each as its envelope and its
 * payload, straight from the job.  Returns 0 once all are out (and sends
 * the EOF a stop asked for), 1 when the socket is full, -1 after the
 * worker was killed for a broken socket. */
static int
send_jobs(struct fp_worker *w)
{
    struct iovec iov[WRITE_IOV];

    while (w->send_next != NULL) {
        int n = 0;
        size_t skip = w->send_off;
        for (struct fp_job *j = w->send_next; j != NULL && n + 2 <= WRITE_IOV;
             j = TAILQ_NEXT(j, link)) {
            size_t hdr_skip = skip < j->hdrlen ? skip : j->hdrlen;
            if (hdr_skip < j->hdrlen)
                iov[n++] = (struct iovec){ j->hdr + hdr_skip, j->hdrlen - hdr_skip };
            size_t pay_skip = skip - hdr_skip;
            if (pay_skip < j->len)
                iov[n++] = (struct iovec){ j->payload + pay_skip, j->len - pay_skip };
            skip = 0;
        }
        /* sendmsg, not writev: a worker that just died must cost an
         * EPIPE, not a SIGPIPE that kills a library user's program. */
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t put = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (put < 0) {
            /* Its end is closed: the worker is dying or broken. */
            fp_worker_kill(w, KILL_NONE, 0);
            return -1;
        }
        /* Advance past what went out. */
        size_t left = (size_t)put;
        while (w->send_next != NULL) {
            size_t size = w->send_next->hdrlen + w->send_next->len;
            if (w->send_off + left < size) {
                w->send_off += left;
                break;
            }
            left -= size - w->send_off;
            w->send_next = TAILQ_NEXT(w->send_next, link);
            w->send_off = 0;
        }
    }
    if (w->shutdown_pending) {
        w->shutdown_pending = 0;
        shutdown(w->fd, SHUT_WR);
    }
    return 0;
}

/* Called once per loop iteration, before the loop sleeps (the pool's
 * prepare watcher): everything assigned during this iteration goes out
 * with one writev per worker; EV_WRITE is armed only if a socket is full. */
void
fp_worker_flush(struct fp_worker *w)
{
    if (w->fd < 0 || ev_is_active(&w->wio)
        || (w->send_next == NULL && !w->shutdown_pending))
        return;
    if (send_jobs(w) == 1)
        ev_io_start(w->pool->loop, &w->wio);
}

static void
worker_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_worker *w = io->data;
    (void)revents;

    if (send_jobs(w) == 0)
        ev_io_stop(loop, &w->wio);
}

/* ------------------------------------------------------------------------
 * stderr: logged line by line with the worker's pid
 * ------------------------------------------------------------------------ */

#define ERRLINE_MAX 2048    /* a longer line is logged in pieces */

static void
log_stderr_line(struct fp_worker *w, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    fp_logf(&w->pool->log, FP_LOG_INFO, "worker %ld: %.*s", (long)w->pid,
            (int)len, line);
}

/* Log the unfinished rest of a line and close the pipe. */
static void
close_stderr(struct fp_worker *w)
{
    if (w->errline.len > 0)
        log_stderr_line(w, fp_buf_head(&w->errline), w->errline.len);
    fp_buf_free(&w->errline);
    ev_io_stop(w->pool->loop, &w->eio);
    close(w->errfd);
    w->errfd = -1;
}

/* Read what the pipe holds; log complete lines; close it at EOF. */
static void
read_stderr(struct fp_worker *w)
{
    char chunk[4096];

    for (;;) {
        ssize_t n = read(w->errfd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n' || w->errline.len >= ERRLINE_MAX) {
                log_stderr_line(w, fp_buf_head(&w->errline), w->errline.len);
                fp_buf_clear(&w->errline);
                if (chunk[i] == '\n')
                    continue;
            }
            fp_buf_append(&w->errline, &chunk[i], 1);
        }
    }
    close_stderr(w);
}

static void
worker_stderr_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    read_stderr(io->data);
}

/* ------------------------------------------------------------------------
 * Death
 * ------------------------------------------------------------------------ */

/* Put the window's jobs back at the head of the queue, in order. */
static void
requeue_front(struct fp_pool *p, struct fp_jobq *jobs)
{
    struct fp_job *job;

    while ((job = TAILQ_LAST(jobs, fp_jobq)) != NULL) {
        TAILQ_REMOVE(jobs, job, link);
        job->worker = NULL;
        TAILQ_INSERT_HEAD(&p->queue, job, link);
        p->nqueued++;
    }
}

/* The running job of a dead worker gets its outcome (or another attempt). */
static void
settle_head(struct fp_worker *w, struct fp_job *head, const char *death,
            struct fp_jobq *back)
{
    struct fp_pool *p = w->pool;
    char detail[160];

    if (head->settled) {
        fp_job_finish(p, head, FP_CANCELLED, NULL, 0);   /* a ghost: just free */
    } else if (p->cut_off) {
        fp_job_finish_str(p, head, FP_CANCELLED, "drain timeout");
    } else if (w->kill_cause != KILL_NONE && w->kill_job != head->id) {
        /* Killed for another job's sake (it had just finished): this one
         * barely started, so it goes back untouched. */
        head->attempts--;
        TAILQ_INSERT_HEAD(back, head, link);
    } else if (w->kill_cause == KILL_TIMEOUT) {
        snprintf(detail, sizeof(detail), "timed out after %gs", head->timeout);
        fp_job_finish_str(p, head, FP_TIMEOUT, detail);
    } else if (w->kill_cause == KILL_CANCEL || w->kill_cause == KILL_CUTOFF) {
        fp_job_finish_str(p, head, FP_CANCELLED,
                          w->kill_cause == KILL_CANCEL ? "cancelled" : "drain timeout");
    } else {
        const char *why = w->kill_cause == KILL_PROTOCOL ? "protocol error" : death;
        if (head->retries_left > 0) {
            head->retries_left--;
            fp_logf(&p->log, FP_LOG_INFO, "job %llu: worker %s; retrying "
                    "(%u retries left)", (unsigned long long)head->id, why,
                    head->retries_left);
            TAILQ_INSERT_HEAD(back, head, link);
        } else {
            if (head->attempts > 1)
                snprintf(detail, sizeof(detail), "%s (after %u attempts)", why,
                         head->attempts);
            else
                snprintf(detail, sizeof(detail), "%s", why);
            fp_job_finish_str(p, head, FP_CRASHED, detail);
        }
    }
}

/* Settle every job the dead worker held. */
static void
settle_window(struct fp_worker *w, const char *death)
{
    struct fp_pool *p = w->pool;
    struct fp_jobq back = TAILQ_HEAD_INITIALIZER(back);
    struct fp_job *head = TAILQ_FIRST(&w->window), *job;

    TAILQ_INIT(&back);
    if (head != NULL) {
        TAILQ_REMOVE(&w->window, head, link);
        w->nwindow--;
    }
    /* Not started: back to the queue (ghosts are simply dropped). */
    while ((job = TAILQ_FIRST(&w->window)) != NULL) {
        TAILQ_REMOVE(&w->window, job, link);
        w->nwindow--;
        if (job->settled)
            fp_job_finish(p, job, FP_CANCELLED, NULL, 0);
        else if (p->cut_off)
            fp_job_finish_str(p, job, FP_CANCELLED, "drain timeout");
        else
            TAILQ_INSERT_TAIL(&back, job, link);
    }
    if (head != NULL)
        settle_head(w, head, death, &back);
    requeue_front(p, &back);
}

static void
child_exit_cb(struct ev_loop *loop, ev_child *cw, int revents)
{
    struct fp_worker *w = cw->data;
    struct fp_pool *p = w->pool;
    int status = cw->rstatus;
    char death[96];
    struct fp_job *head;
    int was_ready, stopped = w->stop_requested;
    (void)revents;

    ev_child_stop(loop, cw);
    w->reaped = 1;
    /* Whatever the worker started and left behind in its process group
     * (it was mid-job, or was killed) goes with it.  The group's members
     * keep its id from being reused, so this reaches only them. */
    if (TAILQ_FIRST(&w->window) != NULL || w->kill_cause != KILL_NONE)
        kill(-w->pid, SIGKILL);
    /* Results it wrote before dying are still in the socket: read them
     * first, unless it was killed for talking nonsense. */
    if (w->fd >= 0 && w->kill_cause != KILL_PROTOCOL) {
        read_some(w, SIZE_MAX);
        /* ...and then the results it held and never wrote. */
        if (w->kill_cause != KILL_PROTOCOL)
            recover_held(w);
    }
    hold_area_free(w);
    was_ready = w->ever_ready;
    /* Its last words, before the death is logged.  (A process it left
     * behind may still hold the pipe: whatever is there now is read, and
     * the pipe is closed with the worker.) */
    if (w->errfd >= 0)
        read_stderr(w);
    if (w->errfd >= 0)
        close_stderr(w);
    stop_io(w);
    ev_timer_stop(loop, &w->stop_timer);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    fp_describe_status(status, death, sizeof(death));

    head = TAILQ_FIRST(&w->window);
    /* Dying before "ready", or idle within a second of it without a job
     * done, is a failed start: restarting it at once could loop forever. */
    int failed_start = !stopped
        && (!was_ready || (head == NULL && w->jobs_done == 0
                           && ev_now(loop) - w->spawned_at < 1.0));
    if (!failed_start && w->kill_cause == KILL_NONE && !stopped)
        w->fail_streak = 0;
    if (head != NULL && w->kill_cause == KILL_NONE)
        fp_logf(&p->log, FP_LOG_WARN, "worker %ld %s while running job %llu",
                (long)w->pid, death, (unsigned long long)head->id);
    else if (failed_start && w->kill_cause == KILL_NONE && !p->cut_off) {
        if (w->fail_streak == 0)
            fp_logf(&p->log, FP_LOG_ERR, "worker %ld %s %s; restarting with "
                    "backoff (logged once until it runs a job)", (long)w->pid,
                    death, was_ready ? "just after it was ready"
                                     : "before it was ready");
    }
    else if (!stopped && w->kill_cause == KILL_NONE)
        fp_logf(&p->log, FP_LOG_WARN, "worker %ld %s while idle", (long)w->pid, death);
    else if (stopped)
        fp_logf(&p->log, FP_LOG_DEBUG, "worker %ld stopped: %s", (long)w->pid, death);
    w->pid = 0;
    settle_window(w, death);

    if (w->retiring) {
        pool_remove_slot(p, w);      /* w is gone */
    } else if (p->cut_off || (p->draining && p->nqueued == 0)) {
        w->state = W_WAITING;
    } else if (failed_start) {
        w->fail_streak++;
        p->counters.restarts++;
        schedule_restart(w);
    } else {
        if (!stopped || w->kill_cause != KILL_NONE)
            p->counters.restarts++;
        fp_worker_spawn(w);
    }
    pool_dispatch(p);
    pool_check_drained(p);
}

static void
restart_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)loop; (void)revents;

    fp_worker_spawn(w);
}
