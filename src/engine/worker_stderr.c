/*
 * worker_stderr.c — a worker's stderr (and a module worker's stdout): read
 * from its pipe and logged line by line with the worker's pid, within the
 * worker's budget (stderr_budget.h): reading is paced, lines beyond the
 * budget are counted and summarised instead of logged.
 *
 * When the budget is spent the pipe is still drained (at the paced rate),
 * not left to fill: a worker blocked on a full stderr pipe would turn a
 * chatty job into a hung one, and its timeout into the user's problem.
 */
#include "config.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "timer.h"
#include "worker.h"

/* A longer line is logged in pieces, each whole in one log message. */
#define ERRLINE_MAX     (FP_LOG_MSG_MAX - 64)
/* What is read from a dead worker's pipe, at most: its last words, yet
 * bounded if something it left behind still writes there. */
#define LAST_WORDS_MAX  (1024 * 1024)

enum pipe_state { PIPE_EMPTY, PIPE_MORE, PIPE_CLOSED };

static void stderr_cb(struct ev_loop *loop, ev_io *io, int revents);
static void resume_cb(struct ev_loop *loop, ev_timer *tw, int revents);
static void summary_cb(struct ev_loop *loop, ev_timer *tw, int revents);

void
fp_worker_stderr_init(struct fp_worker *w)
{
    ev_init(&w->eio, stderr_cb);
    /* Read before its socket in each loop iteration (see "The running
     * job's stderr" below). */
    ev_set_priority(&w->eio, 1);
    ev_init(&w->err_resume, resume_cb);
    ev_init(&w->err_summary, summary_cb);
    w->eio.data = w->err_resume.data = w->err_summary.data = w;
    fp_stderr_budget_init(&w->errbudget, ev_now(w->env->loop));
}

void
fp_worker_stderr_open(struct fp_worker *w, int errfd)
{
    w->errfd = errfd;
    fp_buf_clear(&w->errline);
    w->errtail.total = w->errtail.synced = w->errtail.mark = 0;
    w->errtail.synced_at = 0;
    w->errtail.cut_short = 0;
    ev_io_set(&w->eio, errfd, EV_READ);
    ev_io_start(w->env->loop, &w->eio);
}

static void
log_summary(struct fp_worker *w)
{
    uint64_t lines, bytes;

    if (fp_stderr_budget_summary(&w->errbudget, &lines, &bytes))
        fp_logf(w->env->log, FP_LOG_WARN,
                "worker %ld: suppressed %llu lines (%llu bytes) of stderr",
                (long)w->pid, (unsigned long long)lines, (unsigned long long)bytes);
}

/* One line (without its newline): logged if the budget allows. */
static void
log_line(struct fp_worker *w, const char *line, size_t len)
{
    struct ev_loop *loop = w->env->loop;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (fp_stderr_budget_admit(&w->errbudget, len, ev_now(loop)))
        fp_logf(w->env->log, FP_LOG_INFO, "worker %ld: %.*s", (long)w->pid,
                (int)len, line);
    else if (!ev_is_active(&w->err_summary)) {
        /* Not active here, so set and start are safe. */
        ev_timer_set(&w->err_summary, FP_STDERR_SUMMARY_EVERY,   /* repeating timer */
                     FP_STDERR_SUMMARY_EVERY);
        ev_timer_start(loop, &w->err_summary);                   /* repeating timer */
    }
}

/* The line held so far plus p[0, n). */
static void
end_line(struct fp_worker *w, const char *p, size_t n)
{
    if (w->errline.len == 0) {
        log_line(w, p, n);
        return;
    }
    fp_buf_append(&w->errline, p, n);
    log_line(w, fp_buf_head(&w->errline), w->errline.len);
    fp_buf_clear(&w->errline);
}

/* Cut bytes read into lines: complete ones (and pieces of ERRLINE_MAX)
 * are logged, an unfinished rest waits in errline. */
static void
take_bytes(struct fp_worker *w, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl != NULL ? (size_t)(nl - p) : n;
        size_t room = ERRLINE_MAX - w->errline.len;

        if (nl != NULL && seg <= room) {
            end_line(w, p, seg);
            p += seg + 1;
            n -= seg + 1;
        } else if (nl == NULL && seg <= room) {
            fp_buf_append(&w->errline, p, seg);
            return;
        } else {
            end_line(w, p, room);
            p += room;
            n -= room;
        }
    }
}

/* ------------------------------------------------------------------------
 * The running job's stderr, for its outcome if it crashes
 *
 * Every byte read is kept in a ring of the last FP_STDERR_TAIL, before the
 * log's budget suppresses any line: the budget bounds the log, not what a
 * crashed job's client is told.  Which bytes are the job's?  The pipe is
 * not the socket, so the two are ordered by what the worker does: it
 * writes a job's stderr before that job's result, and starts the next job
 * only after it.  So once a result has arrived, what the pipe holds (read
 * or not) belongs to that job or an earlier one, and the job that starts
 * as it ends begins past it.  A job started while the result before it was
 * held back (worker_hold.h) may lose its first lines that way, but it
 * never shows a line of the job before.
 *
 * "Read or not" costs nothing most of the time: the pipe's watcher has a
 * higher priority than the socket's, and the pipe was written first, so
 * when a result is read in a loop iteration, the pipe has been read dry in
 * that iteration before it (libev invokes higher priorities first, and
 * readiness is level-triggered).  Only when that is not so -- its reading
 * paused by the budget, a read cut at the budget's chunk, a second socket
 * read in the same wakeup, or a dead worker's last results -- does
 * FIONREAD ask the pipe what it still holds.
 * ------------------------------------------------------------------------ */

static void
tail_add(struct fp_worker *w, const char *p, size_t n)
{
    struct fp_errtail *t = &w->errtail;

    if (n > FP_STDERR_TAIL) {
        t->total += n - FP_STDERR_TAIL;
        p += n - FP_STDERR_TAIL;
        n = FP_STDERR_TAIL;
    }
    size_t at = (size_t)(t->total % FP_STDERR_TAIL);
    size_t first = n < FP_STDERR_TAIL - at ? n : FP_STDERR_TAIL - at;
    memcpy(t->ring + at, p, first);
    memcpy(t->ring, p + first, n - first);
    t->total += n;
}

void
fp_worker_stderr_sync(struct fp_worker *w)
{
    int pending = 0;

    if (w->errfd >= 0
        && (!w->errtail.in_order || w->errtail.cut_short || !ev_is_active(&w->eio))
        && (ioctl(w->errfd, FIONREAD, &pending) < 0 || pending < 0))
        pending = 0;
    w->errtail.synced = w->errtail.total + (uint64_t)pending;
    w->errtail.synced_at = w->received;
}

void
fp_worker_stderr_job_start(struct fp_worker *w)
{
    struct fp_errtail *t = &w->errtail;

    t->mark = t->synced > t->total ? t->synced : t->total;
}

size_t
fp_worker_stderr_tail(const struct fp_worker *w, char *out)
{
    const struct fp_errtail *t = &w->errtail;
    uint64_t from = t->mark;
    int cut = 0;

    if (t->total <= from)
        return 0;
    if (t->total - from > FP_STDERR_TAIL) {
        from = t->total - FP_STDERR_TAIL;
        cut = 1;
    }
    size_t n = (size_t)(t->total - from);
    size_t at = (size_t)(from % FP_STDERR_TAIL);
    size_t first = n < FP_STDERR_TAIL - at ? n : FP_STDERR_TAIL - at;
    memcpy(out, t->ring + at, first);
    memcpy(out + first, t->ring, n - first);
    /* Cut short: its last lines, whole (unless one line is all there is). */
    const char *nl = cut ? memchr(out, '\n', n) : NULL;
    if (nl != NULL && (size_t)(nl + 1 - out) < n) {
        size_t skip = (size_t)(nl + 1 - out);
        memmove(out, out + skip, n - skip);
        n -= skip;
    }
    return n;
}

/* Read at most `max` bytes from the pipe into lines; *got says how many. */
static enum pipe_state
read_upto(struct fp_worker *w, size_t max, size_t *got)
{
    char chunk[16384];

    *got = 0;
    while (*got < max) {
        size_t want = max - *got < sizeof(chunk) ? max - *got : sizeof(chunk);
        ssize_t n = read(w->errfd, chunk, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PIPE_EMPTY;
        if (n <= 0)
            return PIPE_CLOSED;
        *got += (size_t)n;
        tail_add(w, chunk, (size_t)n);
        take_bytes(w, chunk, (size_t)n);
    }
    return PIPE_MORE;
}

/* Log the unfinished rest of a line and what was suppressed; close the
 * pipe. */
void
fp_worker_stderr_close(struct fp_worker *w)
{
    struct ev_loop *loop = w->env->loop;

    if (w->errline.len > 0)
        log_line(w, fp_buf_head(&w->errline), w->errline.len);
    log_summary(w);
    fp_buf_free(&w->errline);
    ev_io_stop(loop, &w->eio);
    ev_timer_stop(loop, &w->err_resume);
    ev_timer_stop(loop, &w->err_summary);
    close(w->errfd);
    w->errfd = -1;
}

/* A dead worker's last words: what its pipe holds now, up to a bound,
 * whatever the pace; the pipe is closed at EOF. */
void
fp_worker_stderr_read(struct fp_worker *w)
{
    size_t got;

    if (read_upto(w, LAST_WORDS_MAX, &got) == PIPE_CLOSED)
        fp_worker_stderr_close(w);
}

/* One chunk per wakeup, and none while the read budget is spent: then the
 * watcher rests until a chunk's worth has come back. */
static void
stderr_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_worker *w = io->data;
    size_t got;
    (void)revents;

    enum pipe_state st = read_upto(w, fp_stderr_budget_readable(&w->errbudget,
                                                                ev_now(loop)), &got);
    fp_stderr_budget_read(&w->errbudget, got);
    w->errtail.cut_short = st == PIPE_MORE;
    if (st == PIPE_CLOSED) {
        fp_worker_stderr_close(w);
    } else if (st == PIPE_MORE
               && fp_stderr_budget_readable(&w->errbudget, ev_now(loop))
                  < FP_STDERR_READ_CHUNK) {
        ev_io_stop(loop, &w->eio);
        fp_timer_after(loop, &w->err_resume,
                       fp_stderr_budget_read_wait(&w->errbudget, ev_now(loop)));
    }
}

static void
resume_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)revents;

    if (w->errfd >= 0)
        ev_io_start(loop, &w->eio);
}

/* Once a period while lines are suppressed; quiet for a whole period, it
 * stops. */
static void
summary_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    (void)revents;

    if (w->errbudget.held_lines == 0)
        ev_timer_stop(loop, tw);
    else
        log_summary(w);
}
