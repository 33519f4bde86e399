/*
 * pool_workers.c — what the pool does when a worker reports: the policy
 * for outcomes, retries, recycling, respawn and backoff.
 */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"

#define BACKOFF_MIN  0.01   /* s after the first failed start */
#define BACKOFF_MAX  5.0

/* --max-jobs plus up to 10% jitter, so workers started together do not
 * all recycle together. */
static unsigned
job_budget(struct fp_pool *p)
{
    unsigned max = p->cfg.max_jobs, spread = max / 10;

    if (max == 0 || spread == 0)
        return max;
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return max + (unsigned)(p->rng % (spread + 1));
}

double
pool_backoff_delay(unsigned fail_streak)
{
    double delay = BACKOFF_MIN;

    while (fail_streak-- > 1 && delay < BACKOFF_MAX)
        delay *= 2;
    return delay > BACKOFF_MAX ? BACKOFF_MAX : delay;
}

void
pool_start_worker(struct fp_pool *p, struct fp_worker *w)
{
    w->job_budget = job_budget(p);
    w->generation = p->generation;
    if (fp_worker_spawn(w, &p->spawn_req) == 0) {
        pool_event_worker(p, "spawned", w->pid, NULL);
        return;
    }
    if (w->fail_streak++ == 0) {
        const char *why = strerror(errno);
        char who[32] = "spare worker";
        if (!pool_is_spare(w))
            snprintf(who, sizeof who, "worker slot %u", w->slot);
        fp_logf(&p->log, FP_LOG_ERR, "%s: cannot fork: %s; retrying with "
                "backoff", who, why);
    }
    fp_worker_backoff(w, pool_backoff_delay(w->fail_streak));
}

int
pool_add_workers(struct fp_pool *p, unsigned n)
{
    struct fp_worker **t = realloc(p->workers, n * sizeof(*t));

    if (t == NULL)
        return -1;
    p->workers = t;
    while (p->nworkers < n) {
        struct fp_worker *w = fp_worker_new(&p->env, p->nworkers);
        if (w == NULL)
            return -1;
        p->workers[p->nworkers++] = w;
        pool_start_worker(p, w);
    }
    return 0;
}

void
pool_record_latency(struct fp_pool *p, double secs)
{
    unsigned i = 0;

    while (i < FP_LATENCY_BUCKETS - 1 && secs > fp_latency_bounds[i])
        i++;
    p->counters.latency_count[i]++;     /* per bucket; made cumulative later */
    p->counters.latency_sum += secs;
}

/* ------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

static void
on_ready(struct fp_worker *w)
{
    pool_event_worker(w->env->owner, "ready", w->pid, NULL);
    if (pool_is_spare(w)) {
        /* Given no job until it takes a slot: now, if one still waits. */
        pool_spare_ready(w->env->owner, w);
        return;
    }
    pool_autoscale_idle(w->env->owner, w);
    pool_worker_ready(w->env->owner, w);
}

/* Retire w between jobs; `event` is the reason the event stream gives. */
static void
recycle(struct fp_pool *p, struct fp_worker *w, const char *why,
        const char *event)
{
    fp_logf(&p->log, FP_LOG_INFO, "worker %ld: recycling after %u jobs: %s",
            (long)w->pid, w->jobs_done, why);
    pool_event_worker(p, "retired", w->pid, event);
    fp_worker_retire(w, why);
}

static void
on_result(struct fp_worker *w, struct fp_job *job)
{
    struct fp_pool *p = w->env->owner;
    double ran = ev_now(p->loop) - job->started_at;

    if (w->nwindow == 0)
        pool_autoscale_idle(p, w);
    if (job->state != JOB_ASSIGNED) {
        pool_job_dropped(p, job);       /* cancelled while sent ahead */
        return;
    }
    pool_record_latency(p, ran);
    pool_learn_run_time(p, ran);
    if (w->fail_streak > 0) {
        fp_logf(&p->log, FP_LOG_INFO, "worker slot %u: healthy again after %u "
                "failed starts", w->slot, w->fail_streak);
        w->fail_streak = 0;
    }
    if (w->kill.cause == KILL_CANCEL && w->kill.job == job->id) {
        /* Cancelled (cancel said true) while its result was on the way:
         * the cancel wins, so the caller sees the outcome it was promised. */
        fp_job_set_outcome(job, FP_CANCELLED, "\xa9" "cancelled", 10);
    }
    pool_settle_recorded(p, job);
    if (w->state != WS_READY)
        return;
    /* --max-rss, checked between jobs (and not on every one of a burst:
     * reading /proc costs more than a trivial job). */
    if (p->cfg.max_rss > 0 && (w->nwindow == 0 || w->jobs_done % 16 == 0)
        && fp_worker_rss(w) > p->cfg.max_rss)
        recycle(p, w, "its memory passed --max-rss", "max-rss");
    else if (w->job_budget > 0 && w->jobs_done >= w->job_budget)
        recycle(p, w, "it reached --max-jobs", "max-jobs");
    pool_check_drained(p);
}

static void
on_retire(struct fp_worker *w, const char *why)
{
    struct fp_pool *p = w->env->owner;

    fp_logf(&p->log, FP_LOG_INFO, "worker %ld: recycling after %u jobs: %s",
            (long)w->pid, w->jobs_done, why);
    pool_event_worker(p, "retired", w->pid, "rlimit-cpu");
}

static void
on_start_due(struct fp_worker *w)
{
    struct fp_pool *p = w->env->owner;

    if (p->phase < POOL_CUT_OFF && p->free_state == FREE_NONE)
        pool_start_worker(p, w);
}

/* It died on its own: we did not kill it, or only once it was dying (its
 * socket broke) or had closed its socket. */
static int
on_its_own(const struct fp_worker_exit *x)
{
    return x->cause == KILL_NONE || x->cause == KILL_BROKEN
           || x->cause == KILL_CLOSED;
}

/* A crashed job's outcome carries what its worker wrote to stderr during
 * it (without memory for it, none). */
static void
keep_stderr(struct fp_job *job, const struct fp_worker_exit *x)
{
    free(job->errtail);
    job->errtail = NULL;
    job->errtail_len = 0;
    if (x->stderr_len > 0 && (job->errtail = malloc(x->stderr_len)) != NULL) {
        memcpy(job->errtail, x->stderr_tail, x->stderr_len);
        job->errtail_len = x->stderr_len;
    }
}

/* The running job of a dead worker gets its outcome, or another attempt
 * (then it goes into `back`, to the head of the queue). */
static void
settle_head(struct fp_pool *p, const struct fp_worker_exit *x,
            struct fp_job *head, struct fp_jobq *back)
{
    char detail[224], killed[160];
    /* Killed by us for another job (whose end we had not heard of yet). */
    int for_another = !on_its_own(x) && x->cause != KILL_GRACE
                      && x->cause != KILL_PROTOCOL && x->kill_job != head->id;

    /* It ran until now (if it goes back untouched, its next start
     * measures it afresh). */
    head->stats.run_ms = x->cost.run_ms;
    head->stats.cpu_ms = x->cost.cpu_ms;
    head->stats.maxrss_kb = x->cost.maxrss_kb;

    if (p->phase == POOL_CUT_OFF) {
        pool_settle_str(p, head, FP_CANCELLED, "drain timeout");
    } else if (for_another && !x->head_started) {
        /* It had not started: it goes back untouched. */
        head->attempts--;
        TAILQ_INSERT_HEAD(back, head, link);
    } else if (!for_another && x->cause == KILL_TIMEOUT) {
        snprintf(detail, sizeof(detail), "timed out after %gs", head->timeout);
        pool_count_timeout(p, TIMEOUT_DEADLINE);
        pool_settle_str(p, head, FP_TIMEOUT, detail);
    } else if (!for_another && x->cause == KILL_HEARTBEAT) {
        snprintf(detail, sizeof(detail), "no heartbeat for %g s",
                 p->cfg.heartbeat_timeout);
        pool_count_timeout(p, TIMEOUT_HEARTBEAT);
        pool_settle_str(p, head, FP_TIMEOUT, detail);
    } else if (!for_another && (x->cause == KILL_CANCEL || x->cause == KILL_CUTOFF)) {
        pool_settle_str(p, head, FP_CANCELLED,
                        x->cause == KILL_CANCEL ? "cancelled" : "drain timeout");
    } else {
        const char *why = x->cause == KILL_PROTOCOL ? "protocol error" : x->death;
        if (for_another) {
            /* It had started: it may have done part of its work, so it is
             * not simply run again (retries apply, as to any crash). */
            snprintf(killed, sizeof(killed), "%s (its worker was killed to stop "
                     "job %llu)", x->death, (unsigned long long)x->kill_job);
            why = killed;
        } else if (on_its_own(x) || x->cause == KILL_PROTOCOL) {
            /* Its payload killed the worker (it died running it, or broke
             * the protocol): poison_after counts each such attempt. */
            pool_poison_crash(p, head);
        }
        if (head->retries_left > 0) {
            head->retries_left--;
            fp_logf(&p->log, FP_LOG_INFO, "job %llu: worker %s; retrying "
                    "(%u retries left)", (unsigned long long)head->id, why,
                    head->retries_left);
            TAILQ_INSERT_HEAD(back, head, link);
        } else {
            if (head->attempts > 1)
                snprintf(detail, sizeof(detail), "%s (after %u attempts)", why,
                         head->attempts);
            else
                snprintf(detail, sizeof(detail), "%s", why);
            keep_stderr(head, x);
            pool_settle_str(p, head, FP_CRASHED, detail);
        }
    }
}

/* Every job the dead worker held: the running one settled (or retried),
 * the ones sent ahead back to the queue untouched, cancelled ones dropped. */
static void
settle_window(struct fp_pool *p, const struct fp_worker_exit *x,
              struct fp_jobq *window)
{
    struct fp_jobq back = TAILQ_HEAD_INITIALIZER(back);
    struct fp_job *job, *head = NULL;

    TAILQ_INIT(&back);
    /* The running job: the window's first one, or, behind jobs cancelled
     * in place, the first other one if the worker had started it. */
    head = TAILQ_FIRST(window);
    while (head != NULL && head->state != JOB_ASSIGNED)
        head = TAILQ_NEXT(head, link);
    if (head != NULL && (head == TAILQ_FIRST(window) || x->head_started)) {
        TAILQ_REMOVE(window, head, link);
        head->worker = NULL;
    } else {
        head = NULL;
    }
    while ((job = TAILQ_FIRST(window)) != NULL) {
        TAILQ_REMOVE(window, job, link);
        if (job->state != JOB_ASSIGNED) {
            pool_job_dropped(p, job);   /* cancelled while sent ahead */
        } else if (p->phase == POOL_CUT_OFF) {
            job->worker = NULL;
            pool_settle_str(p, job, FP_CANCELLED, "drain timeout");
        } else {
            TAILQ_INSERT_TAIL(&back, job, link);
        }
    }
    if (head != NULL)
        settle_head(p, x, head, &back);
    pool_requeue_front(p, &back);
}

/* Log a worker's death as what it means. */
static void
log_exit(struct fp_pool *p, const struct fp_worker *w,
         const struct fp_worker_exit *x, const struct fp_job *head,
         int failed_start, int stopped)
{
    pid_t pid = w->pid;
    const char *who = pool_is_spare(w) ? "spare worker" : "worker";

    if (head != NULL && on_its_own(x))
        fp_logf(&p->log, FP_LOG_WARN, "worker %ld %s while running job %llu",
                (long)pid, x->death, (unsigned long long)head->id);
    else if (failed_start && p->phase < POOL_CUT_OFF
             && (on_its_own(x) || x->cause == KILL_PROTOCOL
                 || x->cause == KILL_START)) {
        if (w->fail_streak == 0) {
            if (x->cause == KILL_START)
                fp_logf(&p->log, FP_LOG_ERR, "%s %ld not ready %gs after "
                        "its start (--start-timeout): killed; restarting with "
                        "backoff (logged once until it runs a job)", who,
                        (long)pid, p->cfg.start_timeout);
            else if (x->cause == KILL_PROTOCOL)
                fp_logf(&p->log, FP_LOG_ERR, "%s %ld: protocol error %s: "
                        "%s; restarting with backoff (logged once until it "
                        "runs a job)", who, (long)pid, x->was_ready
                        ? "just after it was ready" : "before it was ready",
                        x->why);
            else
                fp_logf(&p->log, FP_LOG_ERR, "%s %ld %s %s; restarting "
                        "with backoff (logged once until it runs a job)",
                        who, (long)pid, x->death, x->was_ready
                        ? "just after it was ready" : "before it was ready");
        }
    } else if (!stopped && on_its_own(x))
        fp_logf(&p->log, FP_LOG_WARN, "%s %ld %s while idle", who, (long)pid,
                x->death);
    else if (stopped)
        fp_logf(&p->log, FP_LOG_DEBUG, "%s %ld stopped: %s", who, (long)pid,
                x->death);
}

static void
on_exited(struct fp_worker *w, const struct fp_worker_exit *x,
          struct fp_jobq *window)
{
    struct fp_pool *p = w->env->owner;
    const struct fp_job *head = TAILQ_FIRST(window);
    /* We asked it to exit (it may have overstayed its grace). */
    int stopped = x->from == WS_STOPPING || x->cause == KILL_GRACE;
    int leaving = !(w->slot < p->nworkers && p->workers[w->slot] == w);

    if (head != NULL && head->state != JOB_ASSIGNED)
        head = NULL;
    /* Dying before "ready", or idle within a second of it without a job
     * done, is a failed start: restarting it at once could loop forever. */
    int failed_start = !stopped
        && (!x->was_ready || (head == NULL && w->jobs_done == 0
                              && ev_now(p->loop) - w->spawned_at < 1.0));
    log_exit(p, w, x, head, failed_start, stopped);
    /* Before its jobs settle: the death comes first in the event stream. */
    pool_event_worker(p, "exited", w->pid, x->death);
    if (!failed_start && on_its_own(x) && !stopped)
        w->fail_streak = 0;
    settle_window(p, x, window);

    if (pool_is_spare(w)) {
        pool_spare_exited(p, w, failed_start);
        w = NULL;
    } else if (leaving) {
        pool_remove_leaving(p, w);      /* w is gone */
        w = NULL;
    } else if (p->phase >= POOL_CUT_OFF
               || (p->phase == POOL_DRAINING && p->queue.n == 0)) {
        /* parked: no process, no restart */
    } else if (failed_start) {
        /* The slot backs off, spare or no spare: a spare put in its place
         * would leave the slot's streak of failures behind, and its own
         * successor would be forked at once -- a worker that keeps dying
         * young would then be restarted as fast as it dies. */
        w->fail_streak++;
        p->counters.restarts++;
        fp_worker_backoff(w, pool_backoff_delay(w->fail_streak));
    } else {
        if (!stopped)
            p->counters.restarts++;
        /* A ready spare takes the slot at once (w is freed); else fork. */
        if (pool_spare_take(p, w) == NULL)
            pool_start_worker(p, w);
        w = NULL;
    }
    /* A drain parks slots once nothing is queued; jobs put back since
     * (a retry, a dead worker's window) need a worker again. */
    if (p->phase == POOL_DRAINING && p->queue.n > 0)
        for (unsigned i = 0; i < p->nworkers; i++)
            if (p->workers[i]->state == WS_DEAD)
                pool_start_worker(p, p->workers[i]);
    pool_check_drained(p);
}

const struct fp_worker_ops pool_worker_ops = {
    .ready = on_ready,
    .result = on_result,
    .progress = pool_on_progress,
    .retire = on_retire,
    .start_due = on_start_due,
    .exited = on_exited,
};
