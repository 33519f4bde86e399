/*
 * pool_autoscale.c — the dynamic pool (cfg.autoscale_min..autoscale_max).
 *
 * Policy only, on top of pool_scale.c's mechanism for a size change:
 *   - while jobs wait unstarted (queued, or sent ahead behind a running
 *     one) and fewer than MAX workers run, add workers: 1 at once, then 2,
 *     4, ... a second later each while the backlog lasts (PHP-FPM's spawn
 *     rate), up to MAX;
 *   - a worker idle for idle_timeout seconds is retired while more than
 *     MIN run.  Only idle workers are retired, through the same `leaving`
 *     list a scale-down uses, so no job is ever touched.
 * One one-shot timer, re-armed for the nearest of the next growth and the
 * next idle expiry; with nothing to wait for it is stopped.
 */
#include "config.h"

#include "pool_int.h"
#include "timer.h"

/* A deadline this close counts as reached (timers and ev_now differ by
 * a hair): no timer is re-armed for a few microseconds. */
#define SLACK 0.001

static int
autoscale_on(const struct fp_pool *p)
{
    return p->cfg.autoscale_max > 0;
}

/* Jobs waiting for a worker: not those that wait for a rate limit's
 * token, which more workers would not start any sooner.  Counted no
 * further than `enough` in the queue, whose count costs as much as it
 * finds (this runs every loop iteration; most callers need only "any?"). */
static size_t
waiting(const struct fp_pool *p, size_t enough)
{
    return fp_queue_ready(&p->queue, ev_now(p->loop), enough) + p->nahead;
}

/* (Re)arm the timer for `due` (0 = nothing to wait for: stopped). */
static void
arm(struct fp_pool *p, ev_tstamp due)
{
    ev_tstamp now = ev_now(p->loop);

    p->autoscale_due = due;
    if (due <= 0) {
        ev_timer_stop(p->loop, &p->autoscale_timer);
        return;
    }
    fp_timer_after(p->loop, &p->autoscale_timer, due > now ? due - now : 0.);
}

/* A backlog and room: add the next step of workers if its second has
 * come.  Returns when to look again (0 = no need). */
static ev_tstamp
grow(struct fp_pool *p, ev_tstamp now)
{
    unsigned max = p->cfg.autoscale_max, add;
    size_t n = waiting(p, 1);

    if (n == 0) {
        p->grow_step = 1;       /* the next backlog starts slowly again */
        return 0;
    }
    if (p->target >= max)
        return 0;
    if (now + SLACK >= p->next_grow) {
        add = p->grow_step < max - p->target ? p->grow_step : max - p->target;
        n = waiting(p, SIZE_MAX);       /* for the log: once a growth */
        fp_logf(&p->log, FP_LOG_INFO, "autoscale: adding %u worker%s (%zu job%s "
                "waiting, %u of max %u running)", add, add == 1 ? "" : "s", n,
                n == 1 ? "" : "s", p->target, max);
        pool_event_pool(p, "scale", p->target + add);
        if (pool_resize(p, p->target + add) < 0)
            fp_logf(&p->log, FP_LOG_ERR, "autoscale: cannot add workers: out "
                    "of memory");
        if (p->grow_step < max)
            p->grow_step *= 2;
        p->next_grow = now + 1.0;
    }
    return p->target < max ? p->next_grow : 0;
}

/* Workers up and able to take jobs (slots starting or backing off after a
 * failed start are not). */
static unsigned
running(const struct fp_pool *p)
{
    unsigned n = 0;

    for (unsigned i = 0; i < p->nworkers; i++)
        n += p->workers[i]->state == WS_READY;
    return n;
}

/* Retire the workers idle past the timeout while more than MIN run: the
 * size counts slots whose workers fail to start, the floor only workers
 * that run (else the only healthy worker could go, leaving none).
 * Returns the next idle expiry (0 = none matters). */
static ev_tstamp
retire_idle(struct fp_pool *p, ev_tstamp now)
{
    double timeout = p->cfg.idle_timeout;
    ev_tstamp next = 0;
    unsigned up = running(p);

    if (waiting(p, 1) > 0)
        return 0;               /* the dispatcher is about to use them */
    for (unsigned i = p->nworkers; i-- > 0 && p->target > p->cfg.autoscale_min
                                   && up > p->cfg.autoscale_min; ) {
        struct fp_worker *w = p->workers[i];
        ev_tstamp at = w->idle_since + timeout;
        /* A reload's pair is the reload's business; a worker not ready,
         * or with a job, is not idle. */
        if (w == p->reload_new || w == p->reload_old || w->state != WS_READY
            || w->nwindow > 0)
            continue;
        if (at <= now + SLACK) {
            fp_logf(&p->log, FP_LOG_INFO, "autoscale: retiring worker %ld "
                    "(idle %g s, %u > min %u)", (long)w->pid, timeout, p->target,
                    p->cfg.autoscale_min);
            p->target--;
            up--;
            pool_event_pool(p, "scale", p->target);
            pool_retire(p, w, "idle");
        } else if (next == 0 || at < next) {
            next = at;
        }
    }
    return p->target > p->cfg.autoscale_min && up > p->cfg.autoscale_min ? next : 0;
}

/* Decide now, and arm the timer for the next decision. */
static void
autoscale_check(struct fp_pool *p)
{
    ev_tstamp now = ev_now(p->loop), due, idle;

    if (!autoscale_on(p) || !pool_accepts_jobs(p) || p->phase != POOL_RUNNING) {
        arm(p, 0);
        return;
    }
    due = grow(p, now);
    idle = retire_idle(p, now);
    if (idle > 0 && (due == 0 || idle < due))
        due = idle;
    arm(p, due);
}

static void
autoscale_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_pool *p = tw->data;
    (void)loop; (void)revents;

    p->autoscale_due = 0;
    autoscale_check(p);
}

void
pool_autoscale_init(struct fp_pool *p)
{
    ev_timer_init(&p->autoscale_timer, autoscale_timer_cb, 0., 0.);
    p->autoscale_timer.data = p;
    p->grow_step = 1;
}

void
pool_autoscale_stop(struct fp_pool *p)
{
    arm(p, 0);
}

void
pool_autoscale_poke(struct fp_pool *p)
{
    ev_tstamp now, at;

    if (!autoscale_on(p) || p->phase != POOL_RUNNING || waiting(p, 1) == 0
        || p->target >= p->cfg.autoscale_max)
        return;
    /* A backlog: decide unless the timer is already set for the growth. */
    now = ev_now(p->loop);
    at = p->next_grow > now ? p->next_grow : now;
    if (p->autoscale_due == 0 || p->autoscale_due > at + SLACK)
        autoscale_check(p);
}

void
pool_autoscale_idle(struct fp_pool *p, struct fp_worker *w)
{
    w->idle_since = ev_now(p->loop);
    /* Armed already: for something sooner than this one's expiry, and
     * the check then looks at every idle worker.  Only arm here (no
     * decision inside a worker's report). */
    if (autoscale_on(p) && p->phase == POOL_RUNNING && p->autoscale_due == 0
        && p->target > p->cfg.autoscale_min)
        arm(p, w->idle_since + p->cfg.idle_timeout);
}
