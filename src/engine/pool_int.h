/*
 * pool_int.h — the master's state: the policy side of the engine.
 *
 *   pool.c          create, start, free; jobs in; cancel; introspection
 *   dispatch.c      who gets which job (queue.c: the queue itself, with
 *                   its rate-limit lanes and buckets)
 *   completion.c    outcomes out: the one place user callbacks run
 *   pool_workers.c  what to do when a worker reports (ready, result,
 *                   retire, exited): outcomes, retries, respawn, backoff
 *   pool_scale.c    scale, rolling reload, drain
 *   pool_spares.c   spare workers: ready, given no jobs, replace at once
 *   pool_autoscale.c  the dynamic pool: grow under a backlog, retire idle
 *   pool_group.c    job groups: hold one submitter's jobs back
 *   pool_expire.c   the `expires` job option: jobs not started in time
 *   pool_progress.c jobs' progress reports out to their callbacks
 *   pool_events.c   the event stream (fp_pool_events)
 *   pool_orphans.c  what dead workers leave behind (reap_orphans)
 *   poison.c        poison payloads (poison_after): pure, no pool
 *
 * The mechanism below it (worker.h: worker_io.c, worker_life.c) reports
 * through fp_worker_ops and never calls up otherwise.
 */
#ifndef FP_POOL_INT_H
#define FP_POOL_INT_H

#include <sys/queue.h>
#include <ev.h>

#include "forkpool.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "job.h"
#include "log.h"
#include "precise_timer.h"
#include "queue.h"
#include "sandbox.h"
#include "spawn.h"
#include "worker.h"
#include "worker_loop.h"

TAILQ_HEAD(fp_workerq, fp_worker);

struct pool_event;
struct fp_poison;

/* The event stream's listener and the worker and pool events waiting for
 * delivery (pool_events.c). */
struct pool_events {
    fp_event_fn        fn;          /* NULL: nothing is recorded */
    void              *arg;
    struct pool_event *ring;        /* up to FP_EVENT_QUEUE_MAX, grown */
    size_t             cap, head, n;
    int                overflowing; /* events lost since it last had room */
};

/* Why a job ended FP_TIMEOUT (fp_stats' timeouts_* counters). */
enum pool_timeout_cause {
    TIMEOUT_DEADLINE,   /* its own timeout (or the pool's job_timeout) */
    TIMEOUT_HEARTBEAT,  /* no progress for heartbeat_timeout */
};

/* Where the pool is in its life; a drain moves it down the list. */
enum fp_pool_phase {
    POOL_NEW,       /* created, nothing forked */
    POOL_RUNNING,
    POOL_DRAINING,  /* no new jobs; accepted ones finish */
    POOL_CUT_OFF,   /* the drain ran out of time: what is left is cancelled */
    POOL_DRAINED,   /* every worker is gone; the drain notice is due */
};

struct fp_pool {
    struct ev_loop    *loop;
    fp_config          cfg;
    struct fp_logger   log;
    struct fp_limits   worker_limits;   /* frames from workers */
    struct fp_worker_args wargs;        /* what module workers run */
    struct fp_sandbox  sandbox;         /* how workers are confined */
    struct fp_spawn_req spawn_req;      /* how each worker is forked */
    struct fp_worker_env env;           /* what the mechanism is given */
    char              *module_config;   /* our copy of cfg.module_config */

    enum fp_pool_phase phase;
    int                drain_cut_off;   /* for the drain notice: it was cut off */

    /* Workers: the active slots, and those leaving for good (scaled down
     * or replaced by a reload), which finish their window and go. */
    struct fp_worker **workers;
    unsigned           nworkers;
    struct fp_workerq  leaving;
    struct fp_workerq  spares;      /* ready, given no jobs (pool_spares.c) */
    unsigned           target;      /* desired worker count */

    struct fp_queue    queue;       /* accepted, not yet sent to a worker
                                       (queue.h: lanes, rate limits) */
    size_t             nahead;      /* sent ahead: in windows, behind a head */
    double             run_est;     /* typical run time of a job, s (a moving
                                       average); < 0 until one has ended */
    size_t             held_bytes;  /* payloads of every unfinished job */
    struct fp_groupq   groups;      /* every group not yet freed */
    uint64_t           next_id;
    struct fp_job_cache job_cache;

    unsigned           generation;  /* bumped by each reload */
    int                reloading;   /* a rolling reload is under way */
    struct fp_worker  *reload_new;  /* replacement not yet ready, or NULL */
    struct fp_worker  *reload_old;  /* the worker it replaces */

    /* Outcomes waiting for their callbacks (completion.c), progress
     * reports waiting for theirs (pool_progress.c), and how many outcomes
     * have settled and been delivered so far (the event stream's clock). */
    struct fp_jobq     done;
    struct fp_progressq progress_due;
    uint64_t           settled, delivered;
    struct pool_events events;
    /* poison_after (poison.c): the table, or NULL when off; the reason a
     * quarantined payload is refused with. */
    struct fp_poison  *poison;
    char               poison_reason[48];
    fp_drained_fn      drained;
    void              *drained_arg;
    int                in_callbacks;    /* the runner is calling out */
    struct fp_job     *delivering;      /* the job whose callback runs */
    int                delivered_whole; /* its callback kept the job's
                                           block (fp_outcome_keep) */
    enum {
        FREE_NONE,
        FREE_DUE,       /* fp_pool_free from a callback: once it returns */
        FREE_UNDER_WAY, /* pool_teardown runs */
    }                  free_state;
    ev_idle            done_idle;       /* keeps the loop turning for them */
    ev_prepare         flush_prepare;   /* per iteration: callbacks, dispatch,
                                           writes */
    ev_timer           drain_timer;
    ev_timer           balance_timer;   /* look again at jobs sent ahead */
    struct fp_precise_timer rate_timer; /* a throttled job earns its token */

    /* Jobs with an `expires` deadline, a min-heap by deadline
     * (pool_expire.c), and the timer for the earliest. */
    struct fp_job    **expiry;
    size_t             nexpiry, capexpiry;
    ev_timer           expiry_timer;
    ev_tstamp          expiry_due;      /* its deadline; 0 = stopped */

    /* Dynamic pool (pool_autoscale.c); cfg.autoscale_max 0 = off. */
    ev_timer           autoscale_timer; /* next growth or idle expiry */
    ev_child           orphan_watch;    /* any child's end (pool_orphans.c) */
    ev_prepare         orphan_sweep;    /* one sweep per loop iteration */
    ev_timer           orphan_retry;    /* after a sweep that failed */
    pid_t             *orphans_killed;  /* killed, not yet reaped: not */
    size_t             norphans_killed, orphans_cap;   /* counted twice */
    unsigned           grow_step;       /* workers the next growth adds */
    ev_tstamp          next_grow;       /* no growth before this */
    ev_tstamp          autoscale_due;   /* the timer's deadline; 0 = stopped */

    ev_tstamp          started_at;
    uint64_t           rng;         /* xorshift state for --max-jobs jitter */
    fp_stats           counters;    /* the monotonic counters only */
    struct fp_buf      scratch;     /* packs pool-made details */
    msgpack_packer     scratch_pk;
};

/* w->slot of a worker in no active slot. */
#define POOL_SLOT_LEAVING ((unsigned)-1)   /* on p->leaving */
#define POOL_SLOT_SPARE   FP_WORKER_UNNUMBERED     /* on p->spares (its title
                                                    has no slot number) */

/* Walk every worker: active slots first, then the leaving ones, then the
 * spares. */
struct fp_worker *pool_first_worker(const struct fp_pool *p);
struct fp_worker *pool_next_worker(const struct fp_pool *p, const struct fp_worker *w);
#define POOL_FOREACH_WORKER(p, w) \
    for (struct fp_worker *w = pool_first_worker(p); w != NULL; \
         w = pool_next_worker(p, w))

/* completion.c */
/* Record the job's outcome (copied) and queue its callback. */
void pool_settle(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                 const char *data, size_t len);
/* The same with a detail string, packed as msgpack. */
void pool_settle_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                     const char *detail);
/* The job's outcome is already recorded in it (a worker's result). */
void pool_settle_recorded(struct fp_pool *p, struct fp_job *job);
/* A job left a worker's window for good: free it unless its callback is
 * still due. */
void pool_job_dropped(struct fp_pool *p, struct fp_job *job);
/* Callbacks (or events) are due: keep the loop from sleeping until they
 * have run. */
void pool_kick(struct fp_pool *p);
/* Run the callbacks due.  Returns 1 if the pool was freed meanwhile (the
 * caller must not touch it again), else 0. */
int  pool_run_callbacks(struct fp_pool *p);
/* The drain is over: its notice is due. */
void pool_drained(struct fp_pool *p);
/* Callbacks are due: keep the loop turning until they have run. */
void pool_callbacks_due(struct fp_pool *p);
/* fp_pool_free's work: kill, settle, call back, free. */
void pool_teardown(struct fp_pool *p);
/* A job ended FP_TIMEOUT for `cause` (counted; the caller settles it). */
void pool_count_timeout(struct fp_pool *p, enum pool_timeout_cause cause);

/* pool_events.c: record a worker or pool event (nothing without a
 * listener); deliver those due before the next outcome; tell the listener
 * of an outcome (just before its done callback); free the ring. */
void pool_event_worker(struct fp_pool *p, const char *what, pid_t pid,
                       const char *detail);
void pool_event_pool(struct fp_pool *p, const char *what, unsigned workers);
void pool_events_run(struct fp_pool *p);
void pool_event_job(struct fp_pool *p, const fp_outcome *o);
void pool_events_free(struct fp_pool *p);

/* pool.c: poison_after.  The job's payload crashed a worker: counted
 * (call before its outcome overwrites the payload). */
void pool_poison_crash(struct fp_pool *p, const struct fp_job *job);

/* dispatch.c */
void pool_dispatch(struct fp_pool *p);
void pool_dispatch_init(struct fp_pool *p);
/* A job ran `secs`: the dispatcher's estimate of run times learns it. */
void pool_learn_run_time(struct fp_pool *p, double secs);
/* Put jobs back in the queue at their places (by id). */
void pool_requeue_front(struct fp_pool *p, struct fp_jobq *jobs);

/* pool_workers.c */
extern const struct fp_worker_ops pool_worker_ops;
/* Add active slots up to `n` and start them.  Returns 0 or -1. */
int  pool_add_workers(struct fp_pool *p, unsigned n);
/* Fork `w` (an active slot's worker, or a spare); a failed fork retries
 * on its backoff. */
void pool_start_worker(struct fp_pool *p, struct fp_worker *w);
/* How long a worker waits after its n-th failed start in a row. */
double pool_backoff_delay(unsigned fail_streak);
void pool_record_latency(struct fp_pool *p, double secs);

/* pool_scale.c */
/* A worker said "ready": lets a rolling reload move on. */
void pool_worker_ready(struct fp_pool *p, struct fp_worker *w);
/* A leaving worker's process is gone: forget it (frees w). */
void pool_remove_leaving(struct fp_pool *p, struct fp_worker *w);
/* Called whenever work or a worker ends: moves a drain along. */
void pool_check_drained(struct fp_pool *p);
int  pool_accepts_jobs(const struct fp_pool *p);
void pool_drain_init(struct fp_pool *p);
/* Move the active size to n (checked by the caller), adding workers or
 * retiring the cheapest first.  Returns 0 or -1. */
int  pool_resize(struct fp_pool *p, unsigned n);
/* Retire active slot `w`: it finishes its window and goes.  `why` is the
 * event stream's word for it: "scale", "reload", "idle". */
void pool_retire(struct fp_pool *p, struct fp_worker *w, const char *why);

/* pool_spares.c */
int  pool_is_spare(const struct fp_worker *w);
/* Start spares until there are cfg.spare_workers (while the pool runs);
 * the pool's prepare watcher calls it once per loop iteration. */
void pool_spares_fill(struct fp_pool *p);
/* Active slot `dead` has exited and wants a process again: put a ready
 * spare of the current generation in its place (`dead` is freed); the
 * next pool_spares_fill starts another.  Returns the spare, or NULL if
 * none is ready (then `dead` is untouched). */
struct fp_worker *pool_spare_take(struct fp_pool *p, struct fp_worker *dead);
/* Spare `s` has just become ready: if an active slot still waits for its
 * own, younger worker to start, `s` takes that slot (and is made ready for
 * jobs), and the process still starting there becomes a spare instead.
 * Returns 1 if it took a slot. */
int  pool_spare_ready(struct fp_pool *p, struct fp_worker *s);
/* A reload: retire the spares of older generations (the next
 * pool_spares_fill starts their successors). */
void pool_spares_renew(struct fp_pool *p);
/* Spare `w`'s process is gone: start it again (after a backoff, if it
 * failed to start), or forget it (frees w). */
void pool_spare_exited(struct fp_pool *p, struct fp_worker *w, int failed_start);

/* pool_group.c */
/* A job of group g (or none) is accepted / has settled. */
void pool_group_ref(struct fp_group *g, size_t n);
void pool_group_unref(struct fp_group *g);
/* The pool goes: its groups live on, detached, until their owners free them. */
void pool_groups_detach(struct fp_pool *p);
/* pool_expire.c */
void pool_expiry_init(struct fp_pool *p);
/* Room for n more jobs with a deadline.  Returns 0 or -1 (no memory). */
int  pool_expiry_reserve(struct fp_pool *p, size_t n);
/* Watch job->expires_at (room reserved). */
void pool_expiry_add(struct fp_pool *p, struct fp_job *job);
/* The job settled: its deadline no longer matters. */
void pool_expiry_forget(struct fp_pool *p, struct fp_job *job);
void pool_expiry_free(struct fp_pool *p);

/* pool_progress.c */
/* ops->progress: queue the report for the job's callback (if it has one). */
void pool_on_progress(struct fp_worker *w, struct fp_job *job, const char *value,
                      size_t len);
/* Hand out every report due / job's reports, if any are due (before its
 * outcome).  Only from pool_run_callbacks. */
void pool_progress_run(struct fp_pool *p);
void pool_progress_run_job(struct fp_pool *p, struct fp_job *job);

/* 1 if the job has reports waiting for its callback (a test per outcome). */
static inline int
pool_progress_due(const struct fp_job *job)
{
    return job->progress != NULL && job->progress->due;
}

/* pool_autoscale.c */
void pool_autoscale_init(struct fp_pool *p);
void pool_autoscale_stop(struct fp_pool *p);

/* pool_orphans.c */
/* With cfg.reap_orphans: become a child subreaper and kill every child
 * that is not a worker whenever a child ends / stop doing so. */
void pool_orphans_start(struct fp_pool *p);
void pool_orphans_stop(struct fp_pool *p);
/* Once per loop iteration: a backlog may call for more workers. */
void pool_autoscale_poke(struct fp_pool *p);
/* Worker `w` has nothing to do from now on. */
void pool_autoscale_idle(struct fp_pool *p, struct fp_worker *w);

#endif
