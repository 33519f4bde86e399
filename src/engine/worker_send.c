/*
 * worker_send.c — jobs out to one worker: its window written with one
 * sendmsg per wake-up, straight from the jobs, each job numbered and offered
 * (worker_claim.h) before its first byte goes out; and jobs sent ahead
 * taken back for another worker.
 */
#include "config.h"
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "worker.h"
#include "worker_claim.h"
#include "worker_hold.h"

#define WRITE_IOV 512       /* iovecs per sendmsg, one per job: two
                               default windows (each sendmsg costs more
                               than a trivial job) */

/* Jobs from the first one with no byte out got none after all: they are
 * unnumbered again, so a job taken back before it was written leaves no
 * gap in the numbering. */
static void
unnumber_unsent(struct fp_worker *w)
{
    struct fp_job *j = w->send_next;

    if (j != NULL && w->send_off > 0)
        j = TAILQ_NEXT(j, link);        /* it has bytes out: it keeps its number */
    if (j == NULL || j->seq == FP_SEQ_NONE)
        return;
    w->next_seq = j->seq;
    for (; j != NULL && j->seq != FP_SEQ_NONE; j = TAILQ_NEXT(j, link))
        j->seq = FP_SEQ_NONE;
}

/* Write queued jobs: one sendmsg carries many, each as its envelope and its
 * payload, straight from the job.  Each job is numbered and offered to the
 * worker (worker_claim.h) before its first byte goes out.  Returns 0 once
 * all are out (and sends the EOF a stop asked for), 1 when the socket is
 * full, 2 when the next job must wait for the worker to read (the claims
 * ring), -1 after the worker was killed for a broken socket. */
static int
send_jobs(struct fp_worker *w)
{
    struct iovec iov[WRITE_IOV];
    uint64_t *claims = w->hold_area != NULL ? w->hold_area->claims : NULL;

    while (w->send_next != NULL) {
        int n = 0;
        size_t skip = w->send_off;
        for (struct fp_job *j = w->send_next; j != NULL && n < WRITE_IOV;
             j = TAILQ_NEXT(j, link)) {
            if (j->seq == FP_SEQ_NONE && claims != NULL
                && w->next_seq - w->read_seq >= FP_CLAIM_RING)
                break;      /* it would lap a job the worker has not read */
            if (j->seq == FP_SEQ_NONE) {
                j->seq = w->next_seq++;
                if (claims != NULL)
                    fp_claim_offer(claims, j->seq);
            }
            /* The envelope ends where the payload begins (job.h). */
            iov[n++] = (struct iovec){ j->hdr + skip, FP_JOB_ENVELOPE + j->len - skip };
            skip = 0;
        }
        if (n == 0)
            return 2;       /* until the worker answers: fp_worker_flush */
        /* sendmsg, not writev: a worker that just died must cost an
         * EPIPE, not a SIGPIPE that kills a library user's program. */
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t put = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
        if (put < 0 && errno == EINTR) {
            unnumber_unsent(w);
            continue;
        }
        if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            unnumber_unsent(w);
            return 1;
        }
        if (put < 0) {
            fp_worker_socket_gone(w);
            return -1;
        }
        size_t left = (size_t)put;
        while (w->send_next != NULL) {
            size_t size = FP_JOB_ENVELOPE + w->send_next->len;
            if (w->send_off + left < size) {
                w->send_off += left;
                break;
            }
            left -= size - w->send_off;
            w->send_next = TAILQ_NEXT(w->send_next, link);
            w->send_off = 0;
        }
        unnumber_unsent(w);
    }
    if (w->state == WS_STOPPING)
        shutdown(w->fd, SHUT_WR);   /* the EOF its stop asked for */
    return 0;
}

int
fp_worker_can_take_back(const struct fp_worker *w)
{
    return w->hold_area != NULL;
}

int
fp_worker_take_back(struct fp_worker *w, struct fp_job *job)
{
    if (job->worker != w || job == TAILQ_FIRST(&w->window)
        || job->state != JOB_ASSIGNED
        || (job == w->send_next && w->send_off > 0))
        return 0;
    if (job->seq != FP_SEQ_NONE
        && (w->hold_area == NULL || !fp_claim_take(w->hold_area->claims, job->seq)))
        return 0;
    if (job == w->send_next)
        w->send_next = TAILQ_NEXT(job, link);   /* never written: no gap */
    TAILQ_REMOVE(&w->window, job, link);
    fp_worker_set_nwindow(w, w->nwindow - 1);
    job->worker = NULL;
    return 1;
}

int
fp_worker_withdraw(struct fp_worker *w, struct fp_job *job)
{
    if (fp_worker_take_back(w, job))
        return 1;
    /* Half written: its claim was offered before its first byte went out,
     * so the worker can still be told to skip it. */
    if (job->worker != w || job == TAILQ_FIRST(&w->window)
        || job->state != JOB_ASSIGNED || job != w->send_next || w->send_off == 0
        || w->hold_area == NULL || !fp_claim_take(w->hold_area->claims, job->seq))
        return 0;
    return 2;
}

int
fp_worker_skips(const struct fp_worker *w, const struct fp_job *job)
{
    return job->state != JOB_ASSIGNED && job->seq != FP_SEQ_NONE
        && w->hold_area != NULL
        && __atomic_load_n(&w->hold_area->claims[job->seq % FP_CLAIM_RING],
                           __ATOMIC_ACQUIRE) == (job->seq << 2 | CLAIM_TAKEN);
}

void
fp_worker_drop_skipped_head(struct fp_worker *w)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);

    TAILQ_REMOVE(&w->window, head, link);
    fp_worker_set_nwindow(w, w->nwindow - 1);
    head->worker = NULL;
    fp_worker_next_head(w);
    w->env->ops->result(w, head);
}

/* Bytes went out: a head withdrawn while half written may leave now --
 * before anything the worker says about the jobs behind it. */
static void
sent(struct fp_worker *w)
{
    struct fp_job *head = TAILQ_FIRST(&w->window);

    if (head != NULL && head != w->send_next && fp_worker_skips(w, head))
        fp_worker_drop_skipped_head(w);
}

void
fp_worker_flush(struct fp_worker *w)
{
    if (w->fd < 0 || w->send_next == NULL || ev_is_active(&w->wio))
        return;
    int rc = send_jobs(w);
    if (rc == 1)
        ev_io_start(w->env->loop, &w->wio);
    if (rc >= 0)
        sent(w);
}

void
fp_worker_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_worker *w = io->data;
    (void)revents;

    int rc = send_jobs(w);
    if (rc == 0 || rc == 2)
        ev_io_stop(loop, &w->wio);
    if (rc >= 0)
        sent(w);
}

