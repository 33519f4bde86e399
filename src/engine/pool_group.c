/*
 * pool_group.c — job groups (forkpool.h): hold one submitter's jobs back
 * while the rest of the pool goes on.
 *
 * The queue does the holding (queue.h: a held group's jobs are parked as
 * they reach the heads of their lanes).  Here: the group's life, counted
 * in references (one per unsettled job, one for its owner), and the jobs
 * sent ahead to busy workers, which a hold takes back where the worker has
 * not started them, so that "held" means none of them starts.
 */
#include "config.h"
#include <stdlib.h>

#include "pool_int.h"

fp_group *
fp_group_new(fp_pool *p)
{
    struct fp_group *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return NULL;
    TAILQ_INIT(&g->parked);
    g->pool = p;
    g->refs = 1;
    TAILQ_INSERT_TAIL(&p->groups, g, pool_link);
    return g;
}

void
pool_group_ref(struct fp_group *g, size_t n)
{
    if (g != NULL)
        g->refs += n;
}

void
pool_group_unref(struct fp_group *g)
{
    if (g == NULL || --g->refs > 0)
        return;
    if (g->pool != NULL) {
        /* No job left to park: this only takes it off the held list (it
         * may still be on it if its owner let go during a teardown). */
        fp_queue_release(&g->pool->queue, g);
        TAILQ_REMOVE(&g->pool->groups, g, pool_link);
    }
    free(g);
}

void
pool_groups_detach(struct fp_pool *p)
{
    struct fp_group *g;

    while ((g = TAILQ_FIRST(&p->groups)) != NULL) {
        TAILQ_REMOVE(&p->groups, g, pool_link);
        g->pool = NULL;
        g->held = 0;
    }
}

/* Take back the jobs of g sent ahead to busy workers that have not started
 * them; each goes where it belongs (`to`: NULL = back in the queue, else
 * onto that list).  Returns how many. */
static size_t
take_back_sent_ahead(struct fp_pool *p, struct fp_group *g, struct fp_jobq *to)
{
    struct fp_job *job, *next;
    size_t n = 0;

    POOL_FOREACH_WORKER(p, w) {
        job = TAILQ_FIRST(&w->window);
        for (job = job != NULL ? TAILQ_NEXT(job, link) : NULL; job != NULL; job = next) {
            next = TAILQ_NEXT(job, link);
            if (job->group != g || !fp_worker_take_back(w, job))
                continue;
            job->state = JOB_QUEUED;
            if (to != NULL)
                TAILQ_INSERT_TAIL(to, job, link);
            else
                fp_queue_put_back(&p->queue, job);
            n++;
        }
    }
    return n;
}

void
fp_group_hold(fp_group *g, int held)
{
    struct fp_pool *p = g != NULL ? g->pool : NULL;

    if (p == NULL || p->free_state != FREE_NONE || !held == !g->held)
        return;
    if (held) {
        fp_queue_hold(&p->queue, g);
        if (take_back_sent_ahead(p, g, NULL) == 0)
            return;
    } else {
        fp_queue_release(&p->queue, g);
    }
    /* Room in a window, or jobs free to start: dispatch looks again. */
    if (p->phase == POOL_RUNNING || p->phase == POOL_DRAINING)
        pool_dispatch(p);
}

size_t
fp_group_cancel_queued(fp_group *g, const char *detail)
{
    struct fp_pool *p = g != NULL ? g->pool : NULL;
    struct fp_jobq jobs;
    struct fp_job *job;
    size_t n;

    if (p == NULL || p->free_state != FREE_NONE)
        return 0;
    TAILQ_INIT(&jobs);
    n = fp_queue_take_group(&p->queue, g, &jobs);
    n += take_back_sent_ahead(p, g, &jobs);
    while ((job = TAILQ_FIRST(&jobs)) != NULL) {
        TAILQ_REMOVE(&jobs, job, link);
        pool_settle_str(p, job, FP_CANCELLED, detail != NULL ? detail : "cancelled");
    }
    if (n > 0) {
        pool_check_drained(p);
        if (p->phase == POOL_RUNNING || p->phase == POOL_DRAINING)
            pool_dispatch(p);
    }
    return n;
}

void
fp_group_free(fp_group *g)
{
    if (g == NULL)
        return;
    if (g->pool != NULL && g->held)
        fp_group_hold(g, 0);
    pool_group_unref(g);
}
