/*
 * pool_events.c — the event stream (fp_pool_events): what the pool does,
 * told to one listener.
 *
 * Worker and pool events happen in the middle of a change (a worker is
 * being reaped, a scale is under way): they are only recorded there, in a
 * bounded ring, and delivered from pool_run_callbacks like the done
 * callbacks, so the listener may call into the pool.  Each records how
 * many outcomes had settled before it (p->settled); the runner delivers it
 * once that many outcomes have been delivered, which keeps jobs, workers
 * and the pool in the one order they happened.  A job's event is not
 * recorded at all: the runner makes it from the job's outcome, just before
 * its done callback.
 *
 * With no listener nothing is recorded: events cost nothing then.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"

#define RING_FIRST 64               /* the ring's first size; it doubles */

struct pool_event {
    fp_event_type type;
    const char   *what;             /* static */
    pid_t         pid;
    unsigned      workers;
    uint64_t      after;            /* outcomes settled before it */
    char          detail[96];       /* "" = none */
};

void
fp_pool_events(fp_pool *p, fp_event_fn fn, void *arg)
{
    struct pool_events *ev = &p->events;

    ev->fn = fn;
    ev->arg = arg;
    ev->head = ev->n = 0;           /* what was pending is dropped */
    if (fn == NULL) {
        free(ev->ring);
        ev->ring = NULL;
        ev->cap = 0;
    }
}

void
pool_events_free(struct fp_pool *p)
{
    free(p->events.ring);
    memset(&p->events, 0, sizeof(p->events));
}

/* A free slot at the ring's tail, or NULL (the event is lost, counted). */
static struct pool_event *
slot(struct fp_pool *p)
{
    struct pool_events *ev = &p->events;

    if (ev->n == ev->cap) {
        size_t cap = ev->cap == 0 ? RING_FIRST : ev->cap * 2;
        struct pool_event *ring = cap <= FP_EVENT_QUEUE_MAX
                                  ? malloc(cap * sizeof(*ring)) : NULL;
        if (ring == NULL) {
            p->counters.events_lost++;
            if (!ev->overflowing)
                fp_logf(&p->log, FP_LOG_WARN, "event queue full (%zu events "
                        "waiting for delivery): events lost until it drains",
                        ev->n);
            ev->overflowing = 1;
            return NULL;
        }
        /* Unwrapped into the new ring, oldest first. */
        for (size_t i = 0; i < ev->n; i++)
            ring[i] = ev->ring[(ev->head + i) % ev->cap];
        free(ev->ring);
        ev->ring = ring;
        ev->cap = cap;
        ev->head = 0;
    }
    ev->overflowing = 0;
    struct pool_event *e = &ev->ring[(ev->head + ev->n++) % ev->cap];
    memset(e, 0, sizeof(*e));
    e->after = p->settled;
    pool_kick(p);
    return e;
}

void
pool_event_worker(struct fp_pool *p, const char *what, pid_t pid,
                  const char *detail)
{
    struct pool_event *e;

    if (p->events.fn == NULL || pid <= 0 || (e = slot(p)) == NULL)
        return;
    e->type = FP_EVENT_WORKER;
    e->what = what;
    e->pid = pid;
    if (detail != NULL)
        snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

void
pool_event_pool(struct fp_pool *p, const char *what, unsigned workers)
{
    struct pool_event *e;

    if (p->events.fn == NULL || (e = slot(p)) == NULL)
        return;
    e->type = FP_EVENT_POOL;
    e->what = what;
    e->workers = workers;
}

void
pool_events_run(struct fp_pool *p)
{
    struct pool_events *ev = &p->events;

    while (ev->n > 0 && p->free_state != FREE_DUE
           && ev->ring[ev->head].after <= p->delivered) {
        /* Out of the ring first: the listener may record more. */
        struct pool_event e = ev->ring[ev->head];
        ev->head = (ev->head + 1) % ev->cap;
        ev->n--;
        fp_event out = {
            .type = e.type, .what = e.what, .pid = e.pid,
            .detail = e.detail[0] != '\0' ? e.detail : NULL,
            .workers = e.workers,
        };
        if (ev->fn != NULL)
            ev->fn(&out, ev->arg);
    }
}

void
pool_event_job(struct fp_pool *p, const fp_outcome *o)
{
    if (p->events.fn != NULL) {
        fp_event out = { .type = FP_EVENT_JOB, .outcome = o };
        p->events.fn(&out, p->events.arg);
    }
}
