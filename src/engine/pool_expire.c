/*
 * pool_expire.c — the `expires` job option (SPEC §3): a job not started
 * within its time of acceptance ends cancelled, "expired before it
 * started", wherever it waits: the master's queue, a rate-limit lane, or a
 * busy worker's window, sent ahead (then it is withdrawn: taken back, or,
 * its bytes half written, skipped by the worker; worker_claim.h settles
 * whether the worker started it first).
 *
 * Jobs with a deadline sit in a binary min-heap by deadline (each job
 * knows its place, so one that settles leaves at once); one timer is set
 * for the earliest.  A job that starts stays in the heap until its
 * deadline comes or it settles: then it is simply let go, which costs less
 * than telling this file about every start.
 */
#include "config.h"
#include <stdlib.h>

#include "pool_int.h"
#include "timer.h"

#define EXPIRED_DETAIL  "expired before it started"
/* A timer may fire a hair before its time on the loop's clock. */
#define DUE_SLACK       1e-6

/* ------------------------------------------------------------------------
 * The heap
 * ------------------------------------------------------------------------ */

/* Does a come due before b?  Ties go by id, oldest first. */
static int
before(const struct fp_job *a, const struct fp_job *b)
{
    if (a->expires_at != b->expires_at)
        return a->expires_at < b->expires_at;
    return a->id < b->id;
}

static void
place(struct fp_pool *p, size_t i, struct fp_job *job)
{
    p->expiry[i] = job;
    job->expiry_pos = i + 1;
}

static void
sift_up(struct fp_pool *p, size_t i)
{
    struct fp_job *job = p->expiry[i];

    while (i > 0 && before(job, p->expiry[(i - 1) / 2])) {
        place(p, i, p->expiry[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(p, i, job);
}

static void
sift_down(struct fp_pool *p, size_t i)
{
    struct fp_job *job = p->expiry[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->nexpiry)
            break;
        if (c + 1 < p->nexpiry && before(p->expiry[c + 1], p->expiry[c]))
            c++;
        if (!before(p->expiry[c], job))
            break;
        place(p, i, p->expiry[c]);
        i = c;
    }
    place(p, i, job);
}

static void
heap_push(struct fp_pool *p, struct fp_job *job)
{
    p->expiry[p->nexpiry++] = job;
    sift_up(p, p->nexpiry - 1);
}

static void
heap_remove(struct fp_pool *p, struct fp_job *job)
{
    size_t i = job->expiry_pos - 1;
    struct fp_job *last = p->expiry[--p->nexpiry];

    job->expiry_pos = 0;
    if (last == job)
        return;
    place(p, i, last);
    if (i > 0 && before(last, p->expiry[(i - 1) / 2]))
        sift_up(p, i);
    else
        sift_down(p, i);
}

/* ------------------------------------------------------------------------
 * The timer
 * ------------------------------------------------------------------------ */

/* Set the timer for the earliest deadline (or stop it). */
static void
arm(struct fp_pool *p)
{
    if (p->nexpiry == 0) {
        ev_timer_stop(p->loop, &p->expiry_timer);
        p->expiry_due = 0;
        return;
    }
    ev_tstamp due = p->expiry[0]->expires_at;
    if (due == p->expiry_due && ev_is_active(&p->expiry_timer))
        return;
    ev_tstamp in = due - ev_now(p->loop);
    fp_timer_after(p->loop, &p->expiry_timer, in > 0 ? in : 0.);
    p->expiry_due = due;
}

/* `job`'s time to start is up (it has left the heap).  Returns 1 if it
 * was settled. */
static int
expire(struct fp_pool *p, struct fp_job *job)
{
    if (job->attempts > 0)
        return 0;       /* it started (and may be back in the queue for a retry) */
    if (job->state == JOB_QUEUED) {
        fp_queue_remove(&p->queue, job);
    } else if (job->state == JOB_ASSIGNED) {
        /* Sent ahead: taken back, or (half written) to be skipped by the
         * worker, unless it has taken it up already. */
        if (fp_worker_withdraw(job->worker, job) == 0)
            return 0;
    } else {
        return 0;
    }
    fp_logf(&p->log, FP_LOG_DEBUG, "job %llu: " EXPIRED_DETAIL,
            (unsigned long long)job->id);
    pool_settle_str(p, job, FP_CANCELLED, EXPIRED_DETAIL);
    return 1;
}

static void
expiry_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_pool *p = tw->data;
    ev_tstamp now = ev_now(loop);
    int settled = 0;
    (void)revents;

    p->expiry_due = 0;
    while (p->nexpiry > 0 && p->expiry[0]->expires_at <= now + DUE_SLACK) {
        struct fp_job *job = p->expiry[0];
        heap_remove(p, job);
        settled |= expire(p, job);
    }
    arm(p);
    if (settled)
        pool_check_drained(p);
}

/* ------------------------------------------------------------------------
 * The pool's side
 * ------------------------------------------------------------------------ */

void
pool_expiry_init(struct fp_pool *p)
{
    ev_timer_init(&p->expiry_timer, expiry_timer_cb, 0., 0.);
    p->expiry_timer.data = p;
}

int
pool_expiry_reserve(struct fp_pool *p, size_t n)
{
    size_t want = p->nexpiry + n, cap = p->capexpiry;
    struct fp_job **t;

    if (want <= cap)
        return 0;
    while (cap < want)
        cap = cap ? cap * 2 : 64;
    if ((t = realloc(p->expiry, cap * sizeof(*t))) == NULL)
        return -1;
    p->expiry = t;
    p->capexpiry = cap;
    return 0;
}

void
pool_expiry_add(struct fp_pool *p, struct fp_job *job)
{
    heap_push(p, job);
    arm(p);
}

void
pool_expiry_forget(struct fp_pool *p, struct fp_job *job)
{
    if (job->expiry_pos == 0)
        return;
    heap_remove(p, job);
    arm(p);
}

void
pool_expiry_free(struct fp_pool *p)
{
    ev_timer_stop(p->loop, &p->expiry_timer);
    free(p->expiry);
    p->expiry = NULL;
    p->nexpiry = p->capexpiry = 0;
}
