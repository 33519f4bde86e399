/*
 * dispatch.c — the queue, and which worker gets which job.
 *
 * FIFO.  Idle workers get a job first; only a queue deep enough to give
 * every worker with room one more job tops up the windows (jobs sent ahead,
 * up to cfg.prefetch), so a short queue is never parked behind a slow job.
 */
#include "config.h"

#include "pool_int.h"

struct fp_job *
pool_queue_pop(struct fp_pool *p)
{
    struct fp_job *job = TAILQ_FIRST(&p->queue);

    if (job != NULL) {
        TAILQ_REMOVE(&p->queue, job, link);
        p->nqueued--;
    }
    return job;
}

void
pool_requeue_front(struct fp_pool *p, struct fp_jobq *jobs)
{
    struct fp_job *job;

    while ((job = TAILQ_LAST(jobs, fp_jobq)) != NULL) {
        TAILQ_REMOVE(jobs, job, link);
        job->worker = NULL;
        job->state = JOB_QUEUED;
        TAILQ_INSERT_HEAD(&p->queue, job, link);
        p->nqueued++;
    }
}

/* How many more jobs `w` takes now. */
static unsigned
room(const struct fp_pool *p, const struct fp_worker *w)
{
    unsigned limit = p->cfg.prefetch;

    if (!fp_worker_takes_jobs(w))
        return 0;
    if (w->job_budget > 0) {
        unsigned left = w->job_budget > w->jobs_done ? w->job_budget - w->jobs_done : 0;
        if (left < limit)
            limit = left;
    }
    return limit > w->nwindow ? limit - w->nwindow : 0;
}

void
pool_dispatch(struct fp_pool *p)
{
    if (p->phase >= POOL_CUT_OFF || p->free_state != FREE_NONE)
        return;
    for (unsigned i = 0; i < p->nworkers && p->nqueued > 0; i++) {
        struct fp_worker *w = p->workers[i];
        if (w->nwindow == 0 && room(p, w) > 0)
            fp_worker_assign(w, pool_queue_pop(p));
    }
    while (p->nqueued > 0) {
        unsigned with_room = 0;
        for (unsigned i = 0; i < p->nworkers; i++)
            if (room(p, p->workers[i]) > 0)
                with_room++;
        if (with_room == 0 || p->nqueued < with_room)
            break;
        for (unsigned i = 0; i < p->nworkers; i++)
            if (room(p, p->workers[i]) > 0)
                fp_worker_assign(p->workers[i], pool_queue_pop(p));
    }
}
