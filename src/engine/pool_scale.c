/*
 * pool_scale.c — the pool's size over time: scale, rolling reload, drain.
 *
 * Scaling down and reloading work through one mechanism: a worker moved to
 * the `leaving` list takes no new jobs (fp_worker_retire), stops once its
 * window is empty, and is forgotten when its process is gone.  No job is
 * ever killed by them.
 */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "pool_int.h"
#include "timer.h"

static void reload_step(struct fp_pool *p);

int
pool_accepts_jobs(const struct fp_pool *p)
{
    return p->phase <= POOL_RUNNING && p->free_state == FREE_NONE;
}

/* The first leaving worker, else the first spare. */
static struct fp_worker *
first_unslotted(const struct fp_pool *p)
{
    struct fp_worker *w = TAILQ_FIRST(&p->leaving);
    return w != NULL ? w : TAILQ_FIRST(&p->spares);
}

struct fp_worker *
pool_first_worker(const struct fp_pool *p)
{
    return p->nworkers > 0 ? p->workers[0] : first_unslotted(p);
}

struct fp_worker *
pool_next_worker(const struct fp_pool *p, const struct fp_worker *w)
{
    if (w->slot < p->nworkers && p->workers[w->slot] == w)
        return w->slot + 1 < p->nworkers ? p->workers[w->slot + 1]
                                         : first_unslotted(p);
    struct fp_worker *next = TAILQ_NEXT(w, retiring_link);
    if (next == NULL && !pool_is_spare(w))
        return TAILQ_FIRST(&p->spares);     /* the last leaving one */
    return next;
}

void
pool_remove_leaving(struct fp_pool *p, struct fp_worker *w)
{
    TAILQ_REMOVE(&p->leaving, w, retiring_link);
    fp_worker_free(w);
}

/* The jobs sent ahead to `w` that it has not started go back to the head
 * of the queue, in their order, for the workers that stay. */
static void
take_back_ahead(struct fp_pool *p, struct fp_worker *w)
{
    struct fp_jobq back = TAILQ_HEAD_INITIALIZER(back);
    struct fp_job *job = TAILQ_FIRST(&w->window), *next;

    for (job = job != NULL ? TAILQ_NEXT(job, link) : NULL; job != NULL; job = next) {
        next = TAILQ_NEXT(job, link);
        if (fp_worker_take_back(w, job))
            TAILQ_INSERT_TAIL(&back, job, link);
    }
    pool_requeue_front(p, &back);
}

/* Move active slot `w` to the leaving list: it finishes the job it has
 * begun and goes; what was sent ahead to it and not started moves to the
 * others.  A slot with no process goes at once. */
void
pool_retire(struct fp_pool *p, struct fp_worker *w, const char *why)
{
    unsigned i = w->slot;

    /* A scale-down that takes either half of a reload's pair breaks the
     * pair up: the survivor is an ordinary worker, and the reload goes on
     * from the next stale one (fp_pool_scale calls reload_step). */
    if (w == p->reload_new || w == p->reload_old)
        p->reload_new = p->reload_old = NULL;
    memmove(&p->workers[i], &p->workers[i + 1],
            (p->nworkers - i - 1) * sizeof(p->workers[0]));
    p->nworkers--;
    for (; i < p->nworkers; i++)
        p->workers[i]->slot = i;
    if (!fp_worker_alive(w)) {
        fp_worker_free(w);
        return;
    }
    take_back_ahead(p, w);
    w->slot = POOL_SLOT_LEAVING;
    TAILQ_INSERT_TAIL(&p->leaving, w, retiring_link);
    pool_event_worker(p, "retired", w->pid, why);
    fp_worker_retire(w, why);
}

/* How much a worker costs to retire: no process < starting < idle < busy. */
static int
retire_rank(const struct fp_worker *w)
{
    if (!fp_worker_alive(w))
        return 0;
    if (w->ready_at == 0)
        return 1;
    return w->nwindow == 0 ? 2 : 3;
}

int
pool_resize(struct fp_pool *p, unsigned n)
{
    /* A reload's replacement not yet ready is extra: it takes its old
     * worker's place once it is. */
    unsigned extra = p->reload_new != NULL ? 1 : 0;

    p->target = n;
    if (p->phase == POOL_NEW)
        return 0;               /* fp_pool_start starts that many */
    if (p->nworkers - extra < n && pool_add_workers(p, n + extra) < 0)
        return -1;
    for (int rank = 0; rank <= 3 && p->nworkers - extra > n; rank++)
        for (unsigned i = p->nworkers; i-- > 0 && p->nworkers - extra > n; ) {
            if (retire_rank(p->workers[i]) != rank)
                continue;
            if (p->workers[i] == p->reload_new)
                extra = 0;      /* the pair breaks up: it is ordinary now */
            pool_retire(p, p->workers[i], "scale");
        }
    if (p->reloading)
        reload_step(p);
    return 0;
}

int
fp_pool_scale(fp_pool *p, unsigned n)
{
    unsigned lo = 1, hi = p->cfg.max_workers;

    if (p->cfg.autoscale_max > 0) {
        lo = p->cfg.autoscale_min;
        hi = p->cfg.autoscale_max;
    }
    if (n < lo || n > hi || !pool_accepts_jobs(p)) {
        errno = pool_accepts_jobs(p) ? EINVAL : EBUSY;
        return -1;
    }
    if (p->phase != POOL_NEW)
        fp_logf(&p->log, FP_LOG_INFO, "scaling from %u to %u workers", p->target, n);
    pool_event_pool(p, "scale", n);
    return pool_resize(p, n);
}

/* Replace the next stale worker: start its successor first, and retire it
 * once the successor is ready, so capacity never drops. */
static void
reload_step(struct fp_pool *p)
{
    if (p->reload_new != NULL || !pool_accepts_jobs(p))
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        if (w->generation == p->generation)
            continue;
        if (!fp_worker_alive(w)) {  /* no process: its next start is fresh */
            w->generation = p->generation;
            continue;
        }
        if (pool_add_workers(p, p->nworkers + 1) < 0)
            return;
        p->reload_new = p->workers[p->nworkers - 1];
        p->reload_old = w;
        return;
    }
    if (p->reloading) {
        p->reloading = 0;
        fp_logf(&p->log, FP_LOG_INFO, "reload complete");
    }
}

void
pool_worker_ready(struct fp_pool *p, struct fp_worker *w)
{
    struct fp_worker *old = p->reload_old;

    if (w != p->reload_new)
        return;
    p->reload_new = p->reload_old = NULL;
    if (old != NULL)
        pool_retire(p, old, "reload");
    reload_step(p);
}

void
fp_pool_reload(fp_pool *p)
{
    if (!pool_accepts_jobs(p)) {
        /* Said, so a SIGHUP during a drain is not lost without a trace. */
        if (p->phase >= POOL_DRAINING)
            fp_logf(&p->log, FP_LOG_WARN, "reload ignored: the pool is draining");
        return;
    }
    p->generation++;
    p->reloading = 1;
    fp_logf(&p->log, FP_LOG_INFO, "rolling reload of %u workers", p->target);
    pool_event_pool(p, "reload", p->target);
    pool_spares_renew(p);
    reload_step(p);
}

/* ------------------------------------------------------------------------
 * Drain
 * ------------------------------------------------------------------------ */

static int
pool_idle(const struct fp_pool *p)
{
    if (p->queue.n > 0)
        return 0;
    POOL_FOREACH_WORKER(p, w)
        if (w->nwindow > 0)
            return 0;
    return 1;
}

void
pool_check_drained(struct fp_pool *p)
{
    int alive = 0;

    if (p->phase != POOL_DRAINING && p->phase != POOL_CUT_OFF)
        return;
    if (p->phase == POOL_DRAINING && !pool_idle(p))
        return;
    POOL_FOREACH_WORKER(p, w) {
        /* Told once (a worker already retired was told why then). */
        if (p->phase == POOL_DRAINING
            && (w->state == WS_STARTING || w->state == WS_READY))
            pool_event_worker(p, "retired", w->pid, "drain");
        if (w->state == WS_WAITING)
            fp_worker_stop(w);      /* drops its pending restart */
        else if (fp_worker_alive(w))
            fp_worker_stop(w);
        alive += fp_worker_alive(w);
    }
    if (alive == 0)
        pool_drained(p);
}

/* The drain ran out of time (or was forced): cancel what is left. */
static void
cut_off(struct fp_pool *p)
{
    struct fp_job *job;

    if (p->phase != POOL_DRAINING)
        return;
    p->phase = POOL_CUT_OFF;
    fp_logf(&p->log, FP_LOG_WARN, "drain cut off: cancelling %zu queued jobs "
            "and killing busy workers", p->queue.n);
    while ((job = fp_queue_pop_any(&p->queue)) != NULL)
        pool_settle_str(p, job, FP_CANCELLED, "drain timeout");
    POOL_FOREACH_WORKER(p, w) {
        struct fp_job *head = TAILQ_FIRST(&w->window);
        if (w->state == WS_WAITING)
            fp_worker_stop(w);
        else
            fp_worker_kill(w, KILL_CUTOFF, head != NULL ? head->id : 0);
    }
    pool_check_drained(p);
}

static void
drain_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    cut_off(tw->data);
}

void
pool_drain_init(struct fp_pool *p)
{
    ev_timer_init(&p->drain_timer, drain_timer_cb, 0., 0.);
    p->drain_timer.data = p;
}

void
fp_pool_drain(fp_pool *p, double timeout, fp_drained_fn done, void *arg)
{
    if (p->free_state != FREE_NONE)
        return;
    if (p->phase == POOL_DRAINING) {
        cut_off(p);
        return;
    }
    if (p->phase != POOL_RUNNING && p->phase != POOL_NEW)
        return;
    /* Before fp_pool_start, the drain waits for the start: the jobs it
     * accepted still run. */
    p->phase = POOL_DRAINING;
    p->drained = done;
    p->drained_arg = arg;
    fp_logf(&p->log, FP_LOG_INFO, "draining: %zu queued, finishing accepted jobs",
            p->queue.n);
    pool_event_pool(p, "drain", p->target);
    if (timeout > 0)
        fp_timer_after(p->loop, &p->drain_timer, timeout);
    pool_check_drained(p);
}
