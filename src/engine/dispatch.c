/*
 * dispatch.c — the queue, and which worker gets which job.
 *
 * FIFO per rate-limit key: the next job is the oldest one allowed to
 * start (queue.c); a job waiting for a token waits here, never at a
 * worker, and a one-shot timer wakes dispatch when the first throttled
 * one may have earned it.  An idle worker always gets the next job.  A
 * busy worker gets more (jobs sent ahead, up to cfg.prefetch) only while
 * the expected wait there is tiny, judged from measured run times: for
 * trivial jobs that keeps a window of them at each worker (the wake-ups
 * and writes are batched), and a job that could take longer never waits
 * behind another one.  A job sent ahead that has not started moves to a
 * worker that falls idle (worker_claim.h settles who starts it).
 */
#include "config.h"

#include "pool_int.h"
#include "worker_hold.h"
#include "timer.h"

/* Weight of the newest run time in the moving average. */
#define EST_WEIGHT       0.125

void
pool_requeue_front(struct fp_pool *p, struct fp_jobq *jobs)
{
    struct fp_job *job;

    while ((job = TAILQ_LAST(jobs, fp_jobq)) != NULL) {
        TAILQ_REMOVE(jobs, job, link);
        job->worker = NULL;
        job->state = JOB_QUEUED;
        fp_queue_put_back(&p->queue, job);
    }
}

void
pool_learn_run_time(struct fp_pool *p, double secs)
{
    if (secs < 0)
        secs = 0;
    p->run_est = p->run_est < 0 ? secs : p->run_est + EST_WEIGHT * (secs - p->run_est);
}

/* How long a job queued behind `behind` jobs of `w`'s window (its head
 * included) would wait to start.  A head that has already run longer than
 * the estimate is expected to run as long again -- not counting the time a
 * module worker may hold a finished job's result before we hear of it
 * (else a worker racing through trivial jobs would look stuck between its
 * batches of results). */
static double
expected_wait(const struct fp_pool *p, const struct fp_worker *w, unsigned behind)
{
    double est = p->run_est, ran, head_left;

    if (behind == 0)
        return 0;
    ran = ev_now(p->loop) - w->job_started;
    if (fp_worker_can_take_back(w))
        ran = ran > FP_HOLD_MAX_WAIT ? ran - FP_HOLD_MAX_WAIT : 0;
    head_left = est > ran ? est - ran : ran;
    return head_left + (behind - 1) * est;
}

/* The most jobs `w`'s window may hold. */
static unsigned
window_cap(const struct fp_pool *p, const struct fp_worker *w)
{
    unsigned limit = p->cfg.prefetch;

    if (w->job_budget > 0) {
        unsigned left = w->job_budget > w->jobs_done ? w->job_budget - w->jobs_done : 0;
        if (left < limit)
            limit = left;
    }
    return limit;
}

/* Does `w` take one more job now? */
static int
has_room(const struct fp_pool *p, const struct fp_worker *w)
{
    if (!fp_worker_takes_jobs(w) || w->nwindow >= window_cap(p, w))
        return 0;
    if (w->nwindow == 0)
        return 1;
    /* Sent ahead only where it can be taken back, and only once run times
     * are known and say it would start almost at once (or blindly, if the
     * embedder said so). */
    if (!fp_worker_can_take_back(w))
        return 0;
    if (p->cfg.prefetch_wait < 0)
        return 1;
    return p->run_est >= 0 && expected_wait(p, w, w->nwindow) < p->cfg.prefetch_wait;
}

/* Move `job`, sent ahead to `from` and not started, to `idle`; else (the
 * worker has just started it) one of the jobs behind it.  Returns 1 if one
 * moved. */
static int
take_over(struct fp_worker *from, struct fp_job *job, struct fp_worker *idle)
{
    for (; job != NULL; job = TAILQ_NEXT(job, link)) {
        if (fp_worker_take_back(from, job)) {
            job->state = JOB_QUEUED;
            fp_worker_assign(idle, job);
            return 1;
        }
    }
    return 0;
}

/* The oldest job sent ahead to `w` that would still wait `worth` seconds
 * or more to start there (NULL if none), and in *wait the longest wait of
 * any job there (its last one's). */
static struct fp_job *
first_waiting_long(const struct fp_pool *p, const struct fp_worker *w,
                   double worth, double *wait)
{
    struct fp_job *job = TAILQ_FIRST(&w->window);
    unsigned behind = 1;

    *wait = 0;
    if (job == NULL || w->nwindow < 2 || !fp_worker_can_take_back(w))
        return NULL;
    *wait = expected_wait(p, w, w->nwindow - 1);
    while ((job = TAILQ_NEXT(job, link)) != NULL)
        if (expected_wait(p, w, behind++) >= worth)
            return job;
    return NULL;
}

/* Idle workers and an empty queue: each takes over the oldest job sent
 * ahead that would otherwise wait long (FIFO: what has waited longest moves
 * first).  Jobs that would start soon stay; if they might still come to
 * wait long, look again when they would. */
static void
balance(struct fp_pool *p)
{
    double worth = p->cfg.prefetch_wait > 0 ? p->cfg.prefetch_wait : 0;

    for (unsigned i = 0; i < p->nworkers && p->nahead > 0; i++) {
        struct fp_worker *idle = p->workers[i], *from = NULL;
        struct fp_job *oldest = NULL;
        double longest = 0;

        if (idle->nwindow > 0 || !fp_worker_takes_jobs(idle))
            continue;
        for (unsigned k = 0; k < p->nworkers; k++) {
            double wait;
            struct fp_job *job = first_waiting_long(p, p->workers[k], worth, &wait);
            if (wait > longest)
                longest = wait;
            if (job != NULL && (oldest == NULL || job->id < oldest->id)) {
                oldest = job;
                from = p->workers[k];
            }
        }
        if (oldest == NULL && longest == 0)
            return;     /* nothing sent ahead to an active worker waits */
        if (oldest == NULL || !take_over(from, oldest, idle)) {
            /* Not worth it yet, or the jobs have just started (their
             * results are on the way): look again in a moment. */
            double delay = longest < worth ? worth - longest : FP_DEFAULT_PREFETCH_WAIT;
            fp_timer_after(p->loop, &p->balance_timer, delay + 0.0002);
            return;
        }
    }
}

/* balance_timer: look again. */
static void
dispatch_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    pool_dispatch(tw->data);
}

/* rate_timer: a throttled job's token is due. */
static void
rate_timer_cb(void *arg)
{
    pool_dispatch(arg);
}

void
pool_dispatch_init(struct fp_pool *p)
{
    ev_timer_init(&p->balance_timer, dispatch_timer_cb, 0., 0.);
    p->balance_timer.data = p;
    fp_precise_timer_init(&p->rate_timer, rate_timer_cb, p);
}

/* The next job allowed to start, its tokens taken; or NULL, with the rate
 * timer armed for when a throttled one earns its token.  For that very
 * moment, not a little after: with a burst of 1 the bucket is full from
 * then on, and each late microsecond is rate lost (a timer that sees a
 * clock a hair short of the moment still finds the token: FP_DUE_SLACK). */
static struct fp_job *
next_job(struct fp_pool *p)
{
    double wait, now = ev_now(p->loop);
    struct fp_job *job = fp_queue_next(&p->queue, now, &wait);

    if (job == NULL && wait >= 0)
        fp_precise_timer_at(p->loop, &p->rate_timer, now + wait);
    return job;
}

void
pool_dispatch(struct fp_pool *p)
{
    struct fp_job *job = NULL;
    int gave, dry = 0;

    if (p->phase >= POOL_CUT_OFF || p->free_state != FREE_NONE)
        return;
    /* Idle workers first.  A job is taken from the queue only for a worker
     * with room (taking it spends its tokens). */
    do {
        gave = 0;
        for (unsigned i = 0; i < p->nworkers && !dry; i++) {
            struct fp_worker *w = p->workers[i];
            if (w->nwindow == 0 && has_room(p, w)) {
                if ((job = next_job(p)) == NULL)
                    dry = 1;
                else {
                    fp_worker_assign(w, job);
                    gave = 1;
                }
            }
        }
    } while (gave && !dry);
    /* Then each job to the worker with room where it would start soonest,
     * so windows fill evenly. */
    while (!dry && p->queue.n > 0) {
        struct fp_worker *best = NULL;
        double best_wait = 0;
        for (unsigned i = 0; i < p->nworkers; i++) {
            struct fp_worker *w = p->workers[i];
            if (!has_room(p, w))
                continue;
            double wait = expected_wait(p, w, w->nwindow);
            if (best == NULL || wait < best_wait
                || (wait == best_wait && w->nwindow < best->nwindow)) {
                best = w;
                best_wait = wait;
            }
        }
        if (best == NULL)
            break;
        if ((job = next_job(p)) == NULL)
            dry = 1;
        else
            fp_worker_assign(best, job);
    }
    /* Nothing more may start now (the queue is empty, or what is left
     * waits for tokens): idle workers take over jobs sent ahead. */
    if ((dry || p->queue.n == 0) && p->nahead > 0)
        balance(p);
}
