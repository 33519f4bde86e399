/*
 * completion.c — outcomes out.  Every user callback of the pool (a job's
 * `done`, the drain notice) runs from pool_run_callbacks, once per loop
 * iteration and never in the middle of a change to the pool, so a callback
 * may submit, cancel, scale, drain or free the pool.
 */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pool_int.h"
#include "poison.h"

void
pool_kick(struct fp_pool *p)
{
    /* An idle watcher keeps the loop from sleeping, or from returning for
     * want of active watchers, while callbacks are due. */
    if (p->free_state == FREE_NONE && !ev_is_active(&p->done_idle))
        ev_idle_start(p->loop, &p->done_idle);
}

static void
count(struct fp_pool *p, fp_kind kind)
{
    switch (kind) {
    case FP_OK:        p->counters.completed++; break;
    case FP_ERROR:     p->counters.failed++; break;
    case FP_CRASHED:   p->counters.crashed++; break;
    case FP_TIMEOUT:   p->counters.timed_out++; break;
    case FP_CANCELLED: p->counters.cancelled++; break;
    case FP_REJECTED:  break;
    }
}

void
pool_settle_recorded(struct fp_pool *p, struct fp_job *job)
{
    if (job->state >= JOB_SETTLED)
        return;
    job->state = JOB_SETTLED;
    pool_expiry_forget(p, job);
    p->held_bytes -= job->len;
    /* It never waits in the queue again: its key and group may go. */
    fp_queue_key_drop(&p->queue, job->key);
    job->key = NULL;
    pool_group_unref(job->group);
    job->group = NULL;
    count(p, job->kind);
    p->settled++;
    TAILQ_INSERT_TAIL(&p->done, job, done_link);
    pool_kick(p);
}

void
pool_settle(struct fp_pool *p, struct fp_job *job, fp_kind kind,
            const char *data, size_t len)
{
    if (job->state >= JOB_SETTLED)
        return;
    fp_job_set_outcome(job, kind, data, len);
    pool_settle_recorded(p, job);
}

void
pool_settle_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                const char *detail)
{
    fp_buf_clear(&p->scratch);
    fp_pack_cstr(&p->scratch_pk, detail);
    if (p->scratch.len > 0)
        pool_settle(p, job, kind, fp_buf_head(&p->scratch), p->scratch.len);
    else
        pool_settle(p, job, kind, "\xc0", 1);   /* nil: no memory for more */
}

void
pool_job_dropped(struct fp_pool *p, struct fp_job *job)
{
    job->worker = NULL;
    if (job->state == JOB_DELIVERED)
        fp_job_release(&p->job_cache, job);
    /* else: JOB_SETTLED, the runner frees it after its callback */
}

void
pool_callbacks_due(struct fp_pool *p)
{
    pool_kick(p);
}

void
pool_drained(struct fp_pool *p)
{
    if (p->phase == POOL_DRAINED)
        return;
    p->drain_cut_off = p->phase == POOL_CUT_OFF;
    p->phase = POOL_DRAINED;
    ev_timer_stop(p->loop, &p->drain_timer);
    pool_autoscale_stop(p);
    pool_kick(p);
}

void
pool_count_timeout(struct fp_pool *p, enum pool_timeout_cause cause)
{
    if (cause == TIMEOUT_HEARTBEAT)
        p->counters.timeouts_heartbeat++;
    else
        p->counters.timeouts_deadline++;
}

/* Add secs to a histogram over fp_latency_bounds (per bucket here;
 * fp_pool_stats makes it cumulative). */
static void
histogram_add(uint64_t *count, double *sum, double secs)
{
    unsigned i = 0;

    while (i < FP_LATENCY_BUCKETS - 1 && secs > fp_latency_bounds[i])
        i++;
    count[i]++;
    *sum += secs;
}

/* The receipt of a job that started: its wait and run times. */
static void
record_receipt(struct fp_pool *p, const fp_outcome *o)
{
    if (o->attempts == 0)
        return;
    histogram_add(p->counters.wait_count, &p->counters.wait_sum,
                  o->stats.wait_ms / 1000);
    histogram_add(p->counters.run_count, &p->counters.run_sum,
                  o->stats.run_ms / 1000);
}

int
pool_run_callbacks(struct fp_pool *p)
{
    struct fp_job *job;

    if (p->in_callbacks)
        return 0;           /* a callback's own call: the outer run goes on */
    p->in_callbacks = 1;
    /* Progress first: a job's reports always come before its outcome. */
    if (!TAILQ_EMPTY(&p->progress_due))
        pool_progress_run(p);
    for (;;) {
        pool_events_run(p);     /* those that came before the next outcome */
        if (p->free_state == FREE_DUE || (job = TAILQ_FIRST(&p->done)) == NULL)
            break;
        /* Every report was handed out above and callbacks read no worker,
         * so this holds only if that ever changes: the order still would. */
        if (pool_progress_due(job)) {
            pool_progress_run_job(p, job);
            continue;
        }
        TAILQ_REMOVE(&p->done, job, done_link);
        job->state = JOB_DELIVERED;
        p->delivered++;
        fp_outcome o = {
            .id = job->id, .kind = job->kind, .data = job->out,
            .len = job->out_len, .attempts = job->attempts,
            .stats = job->stats,
        };
        if (job->kind == FP_CRASHED) {
            o.stderr_tail = job->errtail != NULL ? job->errtail : "";
            o.stderr_len = job->errtail_len;
        }
        p->delivering = job;
        p->delivered_whole = 0;
        record_receipt(p, &o);
        pool_event_job(p, &o);
        if (job->done != NULL)
            job->done(&o, job->arg);
        p->delivering = NULL;
        if (p->delivered_whole)
            fp_job_drop_owned(job);     /* the block is the keeper's */
        else if (job->worker == NULL)
            fp_job_release(&p->job_cache, job);
    }
    if (p->phase == POOL_DRAINED && p->drained != NULL
        && p->free_state == FREE_NONE && TAILQ_EMPTY(&p->done)) {
        fp_drained_fn fn = p->drained;
        p->drained = NULL;
        fn(p, p->drain_cut_off, p->drained_arg);
    }
    p->in_callbacks = 0;
    if (p->free_state == FREE_DUE) {
        pool_teardown(p);
        return 1;
    }
    if (TAILQ_EMPTY(&p->done) && TAILQ_EMPTY(&p->progress_due) && p->events.n == 0)
        ev_idle_stop(p->loop, &p->done_idle);
    return 0;
}

void *
fp_outcome_keep(fp_pool *p, const fp_outcome *o)
{
    struct fp_job *job = p->delivering;
    int whole;

    if (job == NULL || o == NULL || o->data != job->out || p->delivered_whole)
        return NULL;
    /* A job cancelled while sent ahead stays in its worker's window; its
     * outcome is then in a buffer of its own (fp_job_set_outcome). */
    if (job->worker != NULL && job->out != job->out_heap)
        return NULL;
    void *kept = fp_job_take_outcome(job, &whole);
    p->delivered_whole = whole;
    return kept;
}

void
fp_outcome_release(void *kept)
{
    free(kept);
}

/* Kill every worker at once and reap it; settle the jobs it held. */
static void
teardown_worker(struct fp_pool *p, struct fp_worker *w)
{
    struct fp_job *job;

    while ((job = TAILQ_FIRST(&w->window)) != NULL) {
        TAILQ_REMOVE(&w->window, job, link);
        if (job->state == JOB_ASSIGNED) {
            job->worker = NULL;
            pool_settle_str(p, job, FP_CANCELLED, "pool freed");
        } else {
            pool_job_dropped(p, job);   /* cancelled while sent ahead */
        }
    }
    w->nwindow = 0;
    if (fp_worker_alive(w)) {
        pid_t pid = w->pid;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    fp_worker_free(w);
}

void
pool_teardown(struct fp_pool *p)
{
    struct fp_job *job;
    struct fp_worker *w;

    p->free_state = FREE_UNDER_WAY;
    ev_idle_stop(p->loop, &p->done_idle);
    for (unsigned i = 0; i < p->nworkers; i++)
        teardown_worker(p, p->workers[i]);
    p->nworkers = 0;
    while ((w = TAILQ_FIRST(&p->leaving)) != NULL) {
        TAILQ_REMOVE(&p->leaving, w, retiring_link);
        teardown_worker(p, w);
    }
    while ((w = TAILQ_FIRST(&p->spares)) != NULL) {
        TAILQ_REMOVE(&p->spares, w, retiring_link);
        teardown_worker(p, w);
    }
    p->reload_new = p->reload_old = NULL;
    while ((job = fp_queue_pop_any(&p->queue)) != NULL)
        pool_settle_str(p, job, FP_CANCELLED, "pool freed");
    ev_timer_stop(p->loop, &p->drain_timer);
    ev_timer_stop(p->loop, &p->balance_timer);
    fp_precise_timer_free(p->loop, &p->rate_timer);
    pool_expiry_free(p);    /* every job has settled: the heap is empty */
    pool_autoscale_stop(p);
    pool_orphans_stop(p);
    if (ev_is_active(&p->flush_prepare)) {
        ev_ref(p->loop);
        ev_prepare_stop(p->loop, &p->flush_prepare);
    }
    /* Their callbacks run now; a submission from one is refused. */
    p->in_callbacks = 0;
    pool_run_callbacks(p);
    ev_idle_stop(p->loop, &p->done_idle);
    fp_job_cache_free(&p->job_cache);
    pool_events_free(p);
    fp_poison_free(p->poison);
    pool_groups_detach(p);
    fp_queue_free(&p->queue);
    free(p->workers);
    free(p->module_config);
    fp_sandbox_free(&p->sandbox);
    fp_buf_free(&p->scratch);
    free(p);
}
