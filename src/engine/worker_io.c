/*
 * worker_io.c — the mechanism of one worker (see worker.h): its process,
 * its socket, its stderr, the running job's deadline, its death.
 *
 * Every lifecycle change goes through step(), which looks the event up in
 * the table of worker_life.c and carries out the cell's action.  What is
 * worth deciding about (a result, readiness, an exit) is reported to the
 * owner through env->ops, last, once the worker is consistent.
 *
 * Outcomes of a dead worker's jobs are left to the owner, and only after
 * the socket has been read dry (and the results it held in shared memory
 * recovered), so a result written just before a crash is never mistaken
 * for a crash.
 */
#include "config.h"
#include <assert.h>
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

#include "worker.h"
#include "codec/wire.h"
#include "spawn.h"
#include "worker_claim.h"
#include "worker_hold.h"
#include "worker_loop.h"
#include "timer.h"

#define READ_CHUNK        (64 * 1024)
#define KEEP_IN           (4u << 20)    /* read buffer kept between big frames */
#define READ_PER_WAKEUP   (4u << 20)    /* then let other watchers run */
#define STOP_GRACE        10.0          /* s for a stopped worker to exit */

static void worker_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void child_exit_cb(struct ev_loop *loop, ev_child *cw, int revents);
static void job_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void slow_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void backoff_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void grace_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void start_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void step(struct fp_worker *w, enum fp_wevent ev, const void *arg);
static void process_input(struct fp_worker *w);
static void drain_socket(struct fp_worker *w, size_t budget, int in_order);
static int read_some(struct fp_worker *w, size_t budget);
static int reading(const struct fp_worker *w);
static int moved_past_head(const struct fp_worker *w);

struct fp_worker *
fp_worker_new(const struct fp_worker_env *env, unsigned slot)
{
    struct fp_worker *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->env = env;
    w->slot = slot;
    w->state = WS_WAITING;
    w->fd = -1;
    w->errfd = -1;
    TAILQ_INIT(&w->window);
    ev_init(&w->rio, worker_read_cb);
    ev_init(&w->wio, fp_worker_write_cb);
    ev_init(&w->child, child_exit_cb);
    ev_init(&w->job_timer, job_timer_cb);
    ev_init(&w->slow_timer, slow_timer_cb);
    ev_init(&w->backoff_timer, backoff_timer_cb);
    ev_init(&w->grace_timer, grace_timer_cb);
    ev_init(&w->start_timer, start_timer_cb);
    w->rio.data = w->wio.data = w->child.data = w;
    w->job_timer.data = w->slow_timer.data = w;
    w->backoff_timer.data = w->grace_timer.data = w->start_timer.data = w;
    fp_worker_stderr_init(w);
    fp_worker_beat_init(w);
    return w;
}

/* Nothing more is read from or written to its socket; no job or start
 * deadline. */
static void
stop_io(struct fp_worker *w)
{
    struct ev_loop *loop = w->env->loop;

    ev_io_stop(loop, &w->rio);
    ev_io_stop(loop, &w->wio);
    w->send_next = NULL;
    ev_timer_stop(loop, &w->job_timer);
    ev_timer_stop(loop, &w->slow_timer);
    ev_timer_stop(loop, &w->start_timer);
    fp_worker_beat_stop(w);
}

static void
hold_area_free(struct fp_worker *w)
{
    if (w->hold_area != NULL)
        munmap(w->hold_area, FP_HOLD_AREA);
    w->hold_area = NULL;
}

void
fp_worker_free(struct fp_worker *w)
{
    struct ev_loop *loop = w->env->loop;

    stop_io(w);
    ev_child_stop(loop, &w->child);
    ev_timer_stop(loop, &w->backoff_timer);
    ev_timer_stop(loop, &w->grace_timer);
    ev_timer_stop(loop, &w->start_timer);
    if (w->errfd >= 0)
        fp_worker_stderr_close(w);
    if (w->fd >= 0)
        close(w->fd);
    hold_area_free(w);
    fp_buf_free(&w->in);
    free(w);
}

/* The window now holds `n` jobs: keep the owner's count of jobs waiting
 * behind a head up to date. */
void
fp_worker_set_nwindow(struct fp_worker *w, unsigned n)
{
    size_t before = w->nwindow > 0 ? w->nwindow - 1 : 0;
    size_t after = n > 0 ? n - 1 : 0;

    *w->env->ahead += after;
    *w->env->ahead -= before;
    w->nwindow = n;
}

int
fp_worker_alive(const struct fp_worker *w)
{
    return w->state >= WS_STARTING && w->state <= WS_KILLED;
}

int
fp_worker_takes_jobs(const struct fp_worker *w)
{
    return w->state == WS_READY;
}

size_t
fp_worker_rss(const struct fp_worker *w)
{
    char path[64], buf[128];
    unsigned long size, resident;
    FILE *f;

    if (!fp_worker_alive(w))
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)w->pid);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    int ok = fgets(buf, sizeof(buf), f) != NULL
          && sscanf(buf, "%lu %lu", &size, &resident) == 2;
    fclose(f);
    return ok ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Is the process on its way out already (exiting, or a zombie)?  A dying
 * process closes its files before its parent can reap it, so its socket
 * may read EOF first.  Returns 1 if so, 0 if not, -1 when /proc cannot
 * tell (then it is taken as dying: its own exit status is what gets
 * reported). */
static int
process_exiting(pid_t pid)
{
    enum { PF_EXITING = 0x4 };      /* <linux/sched.h>: in do_exit() */
    char path[64], buf[512];
    unsigned flags = 0;
    char state = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "re")) == NULL)
        return -1;
    int ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    /* "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm
     * may hold anything, so fields are counted from its last ')'. */
    char *p = ok ? strrchr(buf, ')') : NULL;
    if (p == NULL
        || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %u", &state, &flags) != 2)
        return -1;
    return state == 'Z' || state == 'X' || (flags & PF_EXITING) != 0;
}

void
fp_worker_socket_gone(struct fp_worker *w)
{
    int exiting = process_exiting(w->pid);

    if (exiting > 0 && w->kill.cause == KILL_NONE)
        w->kill.dying = 1;
    fp_worker_kill(w, exiting != 0 ? KILL_BROKEN : KILL_CLOSED, 0);
}

/* ------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------ */

int
fp_worker_spawn(struct fp_worker *w, const struct fp_spawn_req *req)
{
    struct ev_loop *loop = w->env->loop;
    /* The worker loop's arguments, for a module worker; an --exec program
     * (child_main is set for every worker, but exec replaces it) shares
     * no memory with us: no hold area, so nothing is ever sent ahead to
     * it or taken back from it (it would run a job we took back). */
    struct fp_worker_args *args = req->exec_argv == NULL && req->child_main != NULL
                                  ? req->child_arg : NULL;
    int fd, errfd;
    pid_t pid;

    if (w->state != WS_WAITING && w->state != WS_DEAD)
        return -1;
    ev_timer_stop(loop, &w->backoff_timer);
    /* A module worker holds its results in an area shared with us, mapped
     * before the fork so that the child inherits it (NULL if it cannot be
     * had: the worker then writes every result at once). */
    if (args != NULL) {
        void *a = mmap(NULL, FP_HOLD_AREA, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        w->hold_area = a != MAP_FAILED ? a : NULL;
        args->slot = w->slot;           /* the child sees these as of the fork */
        args->hold_area = w->hold_area;
    }
    pid = fp_spawn(req, &fd, &errfd);
    /* This worker's area is its own: no later child inherits it. */
    if (w->hold_area != NULL)
        (void)madvise(w->hold_area, FP_HOLD_AREA, MADV_DONTFORK);
    if (pid < 0) {
        int e = errno;
        hold_area_free(w);
        step(w, WE_SPAWN_FAILED, NULL);
        errno = e;
        return -1;
    }
    w->pid = pid;
    w->fd = fd;
    fp_worker_stderr_open(w, errfd);
    fp_reaped_mark();           /* before its first reap: meter.h */
    w->spawned_at = ev_now(loop);
    w->ready_at = 0;
    w->jobs_done = 0;
    w->retire_why = NULL;
    w->kill.cause = KILL_NONE;
    w->kill.job = 0;
    w->kill.why[0] = '\0';
    w->kill.dying = 0;
    w->meter.own_loop = args != NULL;
    w->meter.base_cpu_us = w->meter.base_rss_kb = 0;
    w->meter.killed_read = 0;
    w->received = 0;
    w->send_next = NULL;
    w->send_off = 0;
    w->next_seq = 0;
    w->read_seq = 0;
    fp_buf_clear(&w->in);
    fp_scanner_reset(&w->scan);
    ev_io_set(&w->rio, fd, EV_READ);
    ev_io_set(&w->wio, fd, EV_WRITE);
    ev_io_start(loop, &w->rio);
    ev_child_set(&w->child, pid, 0);
    ev_child_start(loop, &w->child);
    /* A handler whose init never returns, or a program that never says
     * "ready", must not hold the slot (and the queue) forever. */
    if (w->env->start_timeout > 0) {
        fp_timer_after(loop, &w->start_timer, w->env->start_timeout);
    }
    fp_logf(w->env->log, FP_LOG_DEBUG, "worker slot %u: started pid %ld",
            w->slot, (long)pid);
    step(w, WE_SPAWNED, NULL);
    return 0;
}

void
fp_worker_backoff(struct fp_worker *w, double delay)
{
    if (fp_worker_alive(w))
        return;
    w->state = WS_WAITING;      /* the owner parks a slot with no process */
    fp_timer_after(w->env->loop, &w->backoff_timer, delay);
}

static void
backoff_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    step(tw->data, WE_BACKOFF_EXPIRED, NULL);
}

/* ------------------------------------------------------------------------
 * Jobs out
 * ------------------------------------------------------------------------ */

/* The first job of the window starts running now. */
static void
start_head(struct fp_worker *w)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);
    struct ev_loop *loop = w->env->loop;

    ev_timer_stop(loop, &w->job_timer);
    ev_timer_stop(loop, &w->slow_timer);
    fp_worker_beat_stop(w);
    if (head == NULL)
        return;
    if (fp_worker_skips(w, head)) {
        /* Not to be run: it goes once its last byte is out (now, or when
         * the writer gets there). */
        if (head != w->send_next)
            fp_worker_drop_skipped_head(w);
        return;
    }
    if (head->state != JOB_ASSIGNED) {
        /* Cancelled while sent ahead, after the worker had started it (else
         * it was taken back): if it still runs, only a restart stops it; the
         * jobs behind it go back to the queue untouched.  If the worker has
         * moved past it (or is dead and its last words are being read), its
         * result, if one comes, is dropped. */
        if (w->state != WS_DEAD && !moved_past_head(w))
            fp_worker_kill(w, KILL_CANCEL, head->id);
        return;
    }
    head->attempts++;
    head->started_at = w->job_started = ev_now(loop);
    /* A job sent ahead starts only now, as the one before it ends: its
     * time in the window is waiting. */
    head->stats = (fp_receipt){
        .wait_ms = head->started_at > head->accepted_at
                   ? (head->started_at - head->accepted_at) * 1e3 : 0,
    };
    fp_worker_stderr_job_start(w);
    if (head->timeout > 0)
        fp_timer_after(loop, &w->job_timer, head->timeout);
    if (w->env->slow_log > 0)
        fp_timer_after(loop, &w->slow_timer, w->env->slow_log);
    fp_worker_beat_start(w);
}

/* Put ["job", id, payload] in the window: the envelope goes in job->hdr,
 * right before the payload, and the job is written from its own block
 * (send_jobs). */
void
fp_worker_assign(struct fp_worker *w, struct fp_job *job)
{
    char *h = job->hdr;

    job->worker = w;
    job->state = JOB_ASSIGNED;
    job->seq = FP_SEQ_NONE;
    TAILQ_INSERT_TAIL(&w->window, job, link);
    fp_worker_set_nwindow(w, w->nwindow + 1);
    *h++ = (char)0x93;                  /* array of 3 */
    *h++ = (char)0xa3;                  /* str of 3 */
    memcpy(h, "job", 3);
    h += 3;
    *h++ = (char)0xcf;                  /* uint64, big-endian */
    for (int shift = 56; shift >= 0; shift -= 8)
        *h++ = (char)(job->id >> shift);
    assert(h == job->hdr + FP_JOB_ENVELOPE);
    if (w->send_next == NULL) {
        w->send_next = job;
        w->send_off = 0;
    }
    if (w->nwindow == 1)
        start_head(w);
}

/* ------------------------------------------------------------------------
 * Lifecycle events from the owner
 * ------------------------------------------------------------------------ */

void
fp_worker_retire(struct fp_worker *w, const char *why)
{
    step(w, WE_RETIRE, why);
}

void
fp_worker_stop(struct fp_worker *w)
{
    step(w, WE_STOP, NULL);
}

void
fp_worker_kill(struct fp_worker *w, enum fp_kill_cause cause, uint64_t job)
{
    fp_worker_measure_kill(w);
    /* The first cause stands: it decides the outcome of the job it held.
     * (Recorded even when dead, for a protocol error in its last words.) */
    if (w->kill.cause == KILL_NONE && w->state != WS_WAITING) {
        w->kill.cause = cause;
        w->kill.job = job;
    }
    step(w, WE_KILL, NULL);
}

/* Has the worker moved past the window's head?  It runs its jobs in
 * order, so once it has claimed the next one, the head has ended and its
 * result is on the way (held for at most a millisecond). */
static int
moved_past_head(const struct fp_worker *w)
{
    const struct fp_job *head = TAILQ_FIRST(&w->window);
    const struct fp_job *next = head != NULL ? TAILQ_NEXT(head, link) : NULL;

    if (w->hold_area == NULL)
        return 0;
    /* Jobs it skips (withdrawn) say nothing: look at the one after. */
    for (; next != NULL && next->seq != FP_SEQ_NONE; next = TAILQ_NEXT(next, link)) {
        uint64_t claim = __atomic_load_n(&w->hold_area->claims[next->seq % FP_CLAIM_RING],
                                         __ATOMIC_ACQUIRE);
        if (claim != (next->seq << 2 | CLAIM_TAKEN))
            return claim == (next->seq << 2 | CLAIM_STARTED);
    }
    return 0;
}

int
fp_worker_cancel(struct fp_worker *w, struct fp_job *job)
{
    /* A head that has ended already is not worth a worker: it is cancelled
     * in place, its result dropped when it comes. */
    if (job == TAILQ_FIRST(&w->window) && moved_past_head(w))
        return 0;
    if (job != TAILQ_FIRST(&w->window)) {
        /* Sent ahead: taken back if the worker has not started it (or
         * skipped by it, once its bytes are out); else it stays, and is
         * dropped when it comes up. */
        return fp_worker_withdraw(w, job) == 1 ? 2 : 0;
    }
    fp_worker_kill(w, KILL_CANCEL, job->id);
    return 1;
}

static void
grace_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)loop; (void)revents;

    fp_logf(w->env->log, FP_LOG_WARN, "worker %ld did not exit within %gs "
            "of being stopped; killing it", (long)w->pid, STOP_GRACE);
    if (w->kill.cause == KILL_NONE)
        w->kill.cause = KILL_GRACE;
    step(w, WE_GRACE_EXPIRED, NULL);
}

static void
start_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)loop; (void)revents;

    /* Timers and sockets are served in no particular order: a "ready"
     * may be waiting in the socket (after a long loop iteration, say).
     * It counts: read it first. */
    drain_socket(w, READ_PER_WAKEUP, 0);
    step(w, WE_START_EXPIRED, NULL);
}

static void
job_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    struct fp_job *head = TAILQ_FIRST(&w->window);
    (void)loop; (void)revents;

    if (head == NULL || moved_past_head(w))
        return;     /* it has ended: its result is on the way */
    fp_logf(w->env->log, FP_LOG_WARN, "job %llu timed out after %gs; killing "
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
    fp_logf(w->env->log, FP_LOG_WARN, "slow job %llu on worker %ld: running "
            "for %.1fs; payload (%zu bytes) %s%s", (unsigned long long)head->id,
            (long)w->pid, ev_now(loop) - w->job_started, head->len, prefix,
            head->len > 48 ? "..." : "");
}

/* ------------------------------------------------------------------------
 * Messages in
 * ------------------------------------------------------------------------ */

/* Still worth reading: alive and not killed, or dead and not killed for
 * talking nonsense (its last results count). */
static int
reading(const struct fp_worker *w)
{
    if (w->state == WS_DEAD)
        return w->kill.cause != KILL_PROTOCOL;
    return w->state != WS_KILLED && w->state != WS_WAITING;
}

static void
protocol_error(struct fp_worker *w, const char *why)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);

    if (w->kill.cause == KILL_NONE)
        snprintf(w->kill.why, sizeof(w->kill.why), "%s", why);
    /* Before "ready" it is a failed start, which the owner logs (once per
     * streak, with this reason). */
    if (w->ready_at > 0)
        fp_logf(w->env->log, FP_LOG_WARN, "worker %ld: protocol error: %s; "
                "killing it", (long)w->pid, why);
    fp_worker_kill(w, KILL_PROTOCOL, head != NULL ? head->id : 0);
}

void
fp_worker_protocol_error(struct fp_worker *w, const char *why)
{
    protocol_error(w, why);
}

int
fp_worker_moved_past_head(const struct fp_worker *w)
{
    return moved_past_head(w);
}

/* A result for the running job: record it, start the next, report. */
static void
deliver(struct fp_worker *w, const struct fp_worker_msg *m)
{
    struct fp_job *job = TAILQ_FIRST(&w->window);
    struct fp_job_cost cost;
    char msg[128];

    if (job != NULL && job == w->send_next) {
        /* Answered before it was even fully sent: the head must stay put
         * while its bytes are still being written. */
        protocol_error(w, "result for a job not yet received");
        return;
    }
    if (job == NULL || job->id != m->id) {
        snprintf(msg, sizeof(msg), "result for job %llu, which it is not running",
                 (unsigned long long)m->id);
        protocol_error(w, msg);
        return;
    }
    if (m->cost != NULL && fp_wire_job_cost(m->cost, m->cost_len, &cost) < 0) {
        protocol_error(w, "malformed result");
        return;
    }
    /* All it wrote to stderr before this result is in the pipe by now. */
    if (w->errtail.synced_at != w->received)
        fp_worker_stderr_sync(w);
    TAILQ_REMOVE(&w->window, job, link);
    fp_worker_set_nwindow(w, w->nwindow - 1);
    if (job->seq != FP_SEQ_NONE && job->seq >= w->read_seq)
        w->read_seq = job->seq + 1;     /* it read its frames in order */
    w->jobs_done++;
    job->worker = NULL;
    fp_worker_measure_result(w, job, m->cost != NULL ? &cost : NULL);
    if (job->state == JOB_ASSIGNED)     /* not one cancelled while sent ahead */
        fp_job_set_outcome(job, m->type == FP_WMSG_OK ? FP_OK : FP_ERROR,
                           m->value, m->value_len);
    fp_worker_next_head(w);
    w->env->ops->result(w, job);
}

void
fp_worker_next_head(struct fp_worker *w)
{
    start_head(w);
    if (w->nwindow == 0)
        step(w, WE_WINDOW_EMPTY, NULL);
}

static void
on_message(struct fp_worker *w, const struct fp_worker_msg *m)
{
    switch (m->type) {
    case FP_WMSG_READY:
        step(w, WE_READY, NULL);
        break;
    case FP_WMSG_RETIRE:
        /* It asks to go: nothing more is sent to it, and the owner hears
         * why.  Before "ready" there is nothing to retire from. */
        if (w->state == WS_READY) {
            fp_worker_retire(w, "its CPU time is halfway to the --rlimit-cpu backstop");
            w->env->ops->retire(w, w->retire_why);
        }
        break;
    case FP_WMSG_OK:
    case FP_WMSG_ERROR:
        step(w, WE_RESULT, m);
        break;
    case FP_WMSG_PROGRESS:
        step(w, WE_PROGRESS, m);
        break;
    }
}

/* Parse every complete frame in w->in while it is worth reading. */
static void
process_input(struct fp_worker *w)
{
    const char *why;
    struct fp_worker_msg m;

    while (w->in.len > 0 && reading(w)) {
        /* Most results of our own job loop in one pass (wire.h). */
        size_t quick = w->meter.own_loop
                       ? fp_wire_worker_ok_quick(fp_buf_head(&w->in), w->in.len,
                                                 w->env->limits, &m)
                       : 0;
        if (quick > 0) {
            on_message(w, &m);
            fp_buf_consume(&w->in, quick);
            fp_scanner_reset(&w->scan);
            continue;
        }
        ssize_t n = fp_scan(&w->scan, fp_buf_head(&w->in), w->in.len,
                            w->env->limits, &why);
        if (n < 0) {
            protocol_error(w, why);
            return;
        }
        if (n == 0)
            break;
        /* Our own job loop adds what each job cost to its results. */
        if ((w->meter.own_loop ? fp_wire_worker_msg_costed : fp_wire_worker_msg)
                (fp_buf_head(&w->in), (size_t)n, &m, &why) < 0)
            protocol_error(w, why);
        else
            on_message(w, &m);
        /* The message's bytes (a result's value) were copied: let go. */
        fp_buf_consume(&w->in, (size_t)n);
        fp_scanner_reset(&w->scan);
    }
    fp_buf_shrink(&w->in, KEEP_IN);
}

/* Read what the socket holds (up to `budget` bytes) and process it.
 * Returns 1 at EOF or error, 0 otherwise. */
static int
read_some(struct fp_worker *w, size_t budget)
{
    size_t got_total = 0;

    while (got_total < budget && reading(w)) {
        char *room = fp_buf_reserve(&w->in, READ_CHUNK);
        if (room == NULL) {
            fp_logf(w->env->log, FP_LOG_ERR, "worker %ld: out of memory "
                    "reading its messages; killing it", (long)w->pid);
            fp_worker_kill(w, KILL_BROKEN, 0);
            return 1;
        }
        /* All the room there is: a big frame comes in few reads. */
        size_t want = w->in.cap - w->in.off - w->in.len;
        ssize_t n = read(w->fd, room, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return 1;
        w->in.len += (size_t)n;
        w->received += (size_t)n;
        got_total += (size_t)n;
        process_input(w);
        /* What a further read brings may follow stderr not read yet. */
        w->errtail.in_order = 0;
        /* Less than asked for: the socket is empty.  (A read of a stream
         * socket takes all its queue holds; nothing we send or receive
         * carries a file or credentials, which would cut it short.)  What
         * comes later, an EOF too, makes it readable again: sparing the
         * read that would say EAGAIN saves a system call per wake-up. */
        if ((size_t)n < want)
            return 0;
    }
    return 0;
}

/* Read and process what the socket holds, up to `budget` bytes.
 * `in_order`: its stderr was read before us in this loop iteration
 * (worker_stderr.c, a higher priority), so the results of the first read
 * come after all of it. */
static void
drain_socket(struct fp_worker *w, size_t budget, int in_order)
{
    if (!reading(w))
        return;
    w->errtail.in_order = in_order;
    int eof = read_some(w, budget);
    w->errtail.in_order = 0;
    if (eof) {
        ev_io_stop(w->env->loop, &w->rio);
        /* EOF from a worker we did not stop: it is dying or broken. */
        if (w->state != WS_STOPPING)
            fp_worker_socket_gone(w);
    }
}

static void
worker_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    drain_socket(io->data, READ_PER_WAKEUP, 1);
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

/* ------------------------------------------------------------------------
 * Death
 * ------------------------------------------------------------------------ */

/* Had the window's first job not cancelled already started at the worker?
 * Its claim says so where there is one; without (an --exec worker, one job
 * at a time), its bytes having gone out does. */
static int
head_started(const struct fp_worker *w)
{
    const struct fp_job *head = TAILQ_FIRST(&w->window);

    while (head != NULL && head->state != JOB_ASSIGNED)
        head = TAILQ_NEXT(head, link);
    if (head == NULL || head->seq == FP_SEQ_NONE)
        return 0;
    if (w->hold_area == NULL)
        return head == TAILQ_FIRST(&w->window);
    return __atomic_load_n(&w->hold_area->claims[head->seq % FP_CLAIM_RING],
                           __ATOMIC_ACQUIRE) == (head->seq << 2 | CLAIM_STARTED);
}

/* WA_REAP: the process is gone (the state is WS_DEAD already).  Read what
 * it left, close everything, hand its window to the owner. */
static void
reap(struct fp_worker *w, enum fp_wstate from, int status)
{
    struct ev_loop *loop = w->env->loop;
    struct fp_worker_exit x = {
        .status = status, .from = from, .cause = w->kill.cause,
        .kill_job = w->kill.job,
    };
    struct fp_jobq window;

    ev_child_stop(loop, &w->child);
    /* Whatever it started and left behind in its process group goes with
     * it, however it ended (a module worker kills what its jobs and its
     * init started before a clean exit; a crash, a kill or an --exec
     * program leaves that to us).  The group's members keep its id from
     * being reused, so this reaches only them. */
    kill(-w->pid, SIGKILL);
    /* Results it wrote before dying are still in the socket, and the ones
     * it held in the shared area after that (reading() skips both after a
     * protocol error). */
    if (w->fd >= 0) {
        /* Frames already read but left unprocessed when it was killed
         * come first: their results count as much as the rest. */
        process_input(w);
        read_some(w, SIZE_MAX);
        if (reading(w))
            recover_held(w);
    }
    x.head_started = head_started(w);
    hold_area_free(w);
    /* Its last words, before the owner logs the death.  (A process it
     * left behind may still hold the pipe: what is there now is read.) */
    if (w->errfd >= 0)
        fp_worker_stderr_read(w);
    if (w->errfd >= 0)
        fp_worker_stderr_close(w);
    fp_worker_measure_death(w, &x);
    stop_io(w);
    ev_timer_stop(loop, &w->grace_timer);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    x.cause = w->kill.cause;            /* a protocol error in its last words */
    x.kill_job = w->kill.job;
    x.why = w->kill.why;
    x.was_ready = w->ready_at > 0;
    fp_describe_status(status, x.death, sizeof(x.death));
    if (x.cause == KILL_CLOSED && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        snprintf(x.death, sizeof(x.death), "closed its socket");   /* our kill */
    else if ((x.cause == KILL_NONE || (x.cause == KILL_BROKEN && w->kill.dying))
             && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        /* Not ours (we record every kill we send): most likely the kernel's
         * OOM killer -- or someone's kill -9. */
        snprintf(x.death, sizeof(x.death), "killed by SIGKILL (not sent by "
                 "forkpool: out of memory?)");

    TAILQ_INIT(&window);
    TAILQ_CONCAT(&window, &w->window, link);
    fp_worker_set_nwindow(w, 0);
    w->env->ops->exited(w, &x, &window);   /* last: it may free w */
}

static void
child_exit_cb(struct ev_loop *loop, ev_child *cw, int revents)
{
    struct fp_worker *w = cw->data;
    (void)loop; (void)revents;

    /* Its last words happened before its exit, whichever event libev
     * serves first: a "ready" or a result still in the socket is taken
     * while the worker is in the state it sent them from. */
    if (reading(w))
        (void)read_some(w, SIZE_MAX);   /* EOF too: the exit says why */
    step(w, WE_EXITED, &cw->rstatus);
}

/* ------------------------------------------------------------------------
 * The table's actions
 * ------------------------------------------------------------------------ */

/* Feed `ev` (with its argument: a message, a reason, an exit status) to
 * the lifecycle table and carry out the cell's action. */
static void
step(struct fp_worker *w, enum fp_wevent ev, const void *arg)
{
    const struct fp_wcell *cell = fp_wlife_cell(w->state, ev);
    enum fp_wstate from = w->state;
    struct ev_loop *loop = w->env->loop;

    if (cell->action == WA_IGNORE)
        return;
    w->state = cell->next;
    switch (cell->action) {
    case WA_UNDECIDED:      /* not in the table (tests/check_worker_life.c) */
    case WA_IGNORE:
    case WA_ENTER:
    case WA_COUNT:
        break;
    case WA_PROTOCOL_ERROR:
        w->state = from;    /* protocol_error kills through the table */
        protocol_error(w, ev == WE_READY ? "unexpected ready message"
                          : ev == WE_PROGRESS ? "progress before it was ready"
                          : "result before it was ready");
        break;
    case WA_NOTE_READY:
        ev_timer_stop(loop, &w->start_timer);
        w->ready_at = ev_now(loop);
        fp_worker_measure_ready(w);
        fp_logf(w->env->log, FP_LOG_DEBUG, "worker %ld: ready for jobs",
                (long)w->pid);
        w->env->ops->ready(w);
        break;
    case WA_DELIVER:
        deliver(w, arg);
        break;
    case WA_PROGRESS:
        fp_worker_on_progress(w, arg);
        break;
    case WA_WIND_DOWN:
        w->retire_why = arg;
        if (w->nwindow == 0)
            step(w, WE_WINDOW_EMPTY, NULL);
        break;
    case WA_SEND_EOF:
        if (w->send_next == NULL)
            shutdown(w->fd, SHUT_WR);   /* else once the rest is out */
        fp_timer_after(loop, &w->grace_timer, STOP_GRACE);
        break;
    case WA_START_TIMEOUT:
    case WA_STOP_OVERDUE:
        /* The owner logs a failed start, once per streak of them; one that
         * was stopped first is just a stop that took too long. */
        if (w->kill.cause == KILL_NONE)
            w->kill.cause = cell->action == WA_START_TIMEOUT ? KILL_START
                                                             : KILL_GRACE;
        /* fall through */
    case WA_SIGKILL:
        kill(-w->pid, SIGKILL);     /* its group: what the handler started */
        kill(w->pid, SIGKILL);      /* in case it had not set up its group */
        stop_io(w);
        break;
    case WA_REAP:
        reap(w, from, *(const int *)arg);
        break;
    case WA_START_DUE:
        w->env->ops->start_due(w);
        break;
    case WA_CANCEL_BACKOFF:
        ev_timer_stop(loop, &w->backoff_timer);
        break;
    }
}
