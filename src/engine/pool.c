/*
 * pool.c — the master's job side: accept jobs, queue them FIFO, hand them to
 * workers, deliver each job's single outcome, and drain.
 *
 * The worker side (processes, their sockets, their deaths) is workers.c.
 * Everything here runs in libev callbacks and never blocks.
 */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_int.h"

/* Room for the envelope around a job or result: ["error", <uint64>, ...]. */
#define ENVELOPE_BYTES       64

static const char *const kind_names[] = {
    "ok", "error", "crashed", "timeout", "cancelled", "rejected"
};

const char *
fp_kind_name(fp_kind kind)
{
    if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
        return "unknown";
    return kind_names[kind];
}

const double fp_latency_bounds[FP_LATENCY_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

void
fp_config_init(fp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = FP_LOG_INFO;
}

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------ */

/* Deliver the job's one outcome (unless it was settled already). */
static void
job_settle(struct fp_pool *p, struct fp_job *job, fp_kind kind,
           const char *data, size_t len)
{
    if (job->settled)
        return;
    job->settled = 1;
    fp_outcome o = {
        .id = job->id, .kind = kind, .data = data, .len = len,
        .attempts = job->attempts,
    };

    switch (kind) {
    case FP_OK:        p->counters.completed++; break;
    case FP_ERROR:     p->counters.failed++; break;
    case FP_CRASHED:   p->counters.crashed++; break;
    case FP_TIMEOUT:   p->counters.timed_out++; break;
    case FP_CANCELLED: p->counters.cancelled++; break;
    case FP_REJECTED:  break;
    }
    if (job->done != NULL)
        job->done(&o, job->arg);
}

/* Job blocks: one allocation holds the job and its payload.  Small ones
 * are kept on a free list and reused, so a steady stream of small jobs
 * costs no malloc at all. */
#define JOB_SMALL     512       /* payload bytes of a reusable block */
#define JOB_FREE_MAX  1024      /* blocks kept for reuse */

static struct fp_job *
job_alloc(struct fp_pool *p, size_t len)
{
    struct fp_job *job;
    size_t cap = len <= JOB_SMALL ? JOB_SMALL : len;

    if (cap == JOB_SMALL && p->free_jobs != NULL) {
        job = p->free_jobs;
        p->free_jobs = TAILQ_NEXT(job, link);
        p->nfree_jobs--;
    } else if ((job = malloc(sizeof(*job) + cap)) == NULL) {
        return NULL;
    }
    memset(job, 0, sizeof(*job));
    job->cap = cap;
    job->payload = job->inline_payload;
    return job;
}

static void
job_release(struct fp_pool *p, struct fp_job *job)
{
    if (job->cap == JOB_SMALL && p->nfree_jobs < JOB_FREE_MAX) {
        TAILQ_NEXT(job, link) = p->free_jobs;
        p->free_jobs = job;
        p->nfree_jobs++;
    } else {
        free(job);
    }
}

/* Deliver the job's outcome (once) and free it.  The caller has already
 * taken it off whatever list held it. */
void
fp_job_finish(struct fp_pool *p, struct fp_job *job, fp_kind kind,
              const char *data, size_t len)
{
    job_settle(p, job, kind, data, len);
    p->held_bytes -= job->len;
    job_release(p, job);
}

/* Pack `detail` as a msgpack str and settle (finish = 1: and free). */
static void
settle_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
           const char *detail, int finish)
{
    fp_buf_clear(&p->scratch);
    fp_pack_cstr(&p->scratch_pk, detail);
    /* The callback may submit and so reuse scratch: hand it a copy. */
    size_t len = p->scratch.len;
    char *copy = malloc(len);
    if (copy != NULL)
        memcpy(copy, fp_buf_head(&p->scratch), len);
    else
        len = 1;
    if (finish)
        fp_job_finish(p, job, kind, copy ? copy : "\xc0", len);
    else
        job_settle(p, job, kind, copy ? copy : "\xc0", len);
    free(copy);
}

void
fp_job_finish_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                  const char *detail)
{
    settle_str(p, job, kind, detail, 1);
}

void
fp_job_settle_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                  const char *detail)
{
    settle_str(p, job, kind, detail, 0);
}

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void drained_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);

/* Before the loop sleeps: jobs assigned during this iteration go out, one
 * writev per worker, however many submits and results it handled. */
static void
flush_prepare_cb(struct ev_loop *loop, ev_prepare *pw, int revents)
{
    struct fp_pool *p = pw->data;
    (void)loop; (void)revents;

    for (unsigned i = 0; i < p->nworkers; i++)
        fp_worker_flush(p->workers[i]);
}

fp_pool *
fp_pool_new(struct ev_loop *loop, const fp_config *cfg, char *err, size_t errlen)
{
    struct fp_pool *p;

    if (loop == NULL || !ev_is_default_loop(loop)) {
        snprintf(err, errlen, "the pool needs libev's default loop (ev_default_loop)");
        return NULL;
    }
    if ((cfg->module != NULL) + (cfg->module_path != NULL) + (cfg->exec_argv != NULL) != 1) {
        snprintf(err, errlen, "exactly one of module, module_path and exec_argv "
                 "must be set");
        return NULL;
    }
    if (cfg->module != NULL && (cfg->module->abi != FP_MODULE_ABI
                                || cfg->module->handle == NULL)) {
        snprintf(err, errlen, "module %s: ABI %d (want %d) or no handle function",
                 cfg->module->name ? cfg->module->name : "?", cfg->module->abi,
                 FP_MODULE_ABI);
        return NULL;
    }
    if (cfg->exec_argv != NULL && cfg->exec_argv[0] == NULL) {
        snprintf(err, errlen, "exec_argv is empty");
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = *cfg;
    if (p->cfg.max_workers == 0)
        p->cfg.max_workers = FP_DEFAULT_MAX_WORKERS;
    if (p->cfg.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->cfg.workers = n > 0 ? (unsigned)n : 1;
    }
    if (p->cfg.workers > p->cfg.max_workers) {
        snprintf(err, errlen, "%u workers exceeds the limit of %u",
                 p->cfg.workers, p->cfg.max_workers);
        free(p);
        return NULL;
    }
    if (p->cfg.queue_max == 0)
        p->cfg.queue_max = FP_DEFAULT_QUEUE_MAX;
    if (p->cfg.queue_max_bytes == 0)
        p->cfg.queue_max_bytes = FP_DEFAULT_QUEUE_MAX_BYTES;
    if (p->cfg.max_job_bytes == 0)
        p->cfg.max_job_bytes = FP_DEFAULT_MAX_JOB_BYTES;
    if (p->cfg.max_job_objects == 0)
        p->cfg.max_job_objects = FP_DEFAULT_MAX_JOB_OBJECTS;
    if (p->cfg.prefetch == 0)
        p->cfg.prefetch = FP_DEFAULT_PREFETCH;
    p->log.fn = cfg->log;
    p->log.arg = cfg->log_arg;
    p->log.level = cfg->log_level;

    if (fp_sandbox_prepare(&p->sandbox, cfg, &p->log, err, errlen) < 0) {
        free(p);
        return NULL;
    }
    p->worker_limits.max_bytes = p->cfg.max_job_bytes + ENVELOPE_BYTES;
    p->worker_limits.max_objects = p->cfg.max_job_objects + 8;
    p->worker_limits.max_depth = FP_MAX_DEPTH + 1;

    if (cfg->module_config != NULL && cfg->module_config_len > 0) {
        p->module_config = malloc(cfg->module_config_len);
        if (p->module_config == NULL) {
            snprintf(err, errlen, "out of memory");
            fp_sandbox_free(&p->sandbox);
            free(p);
            return NULL;
        }
        memcpy(p->module_config, cfg->module_config, cfg->module_config_len);
    }
    p->wargs.module = cfg->module;
    p->wargs.module_path = cfg->module_path;
    p->wargs.config = p->module_config;
    p->wargs.config_len = p->module_config ? cfg->module_config_len : 0;
    p->wargs.limits = p->worker_limits;
    p->wargs.title = cfg->title;
    p->wargs.title_arg = cfg->title_arg;
    p->wargs.sandbox = &p->sandbox;

    TAILQ_INIT(&p->queue);
    p->next_id = 1;
    p->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)(ev_time() * 1e6) ^ 0x9e3779b97f4a7c15ull;
    msgpack_packer_init(&p->scratch_pk, &p->scratch, fp_buf_pack_write);
    ev_timer_init(&p->drain_timer, drain_timer_cb, 0., 0.);
    p->drain_timer.data = p;
    ev_idle_init(&p->drained_idle, drained_idle_cb);
    ev_prepare_init(&p->flush_prepare, flush_prepare_cb);
    p->flush_prepare.data = p;
    p->drained_idle.data = p;
    return p;
}

/* Grow the slot table to `n` workers and start the new ones. */
static int
add_workers(struct fp_pool *p, unsigned n)
{
    struct fp_worker **t = realloc(p->workers, n * sizeof(*t));

    if (t == NULL)
        return -1;
    p->workers = t;
    while (p->nworkers < n) {
        struct fp_worker *w = fp_worker_new(p, p->nworkers);
        if (w == NULL)
            return -1;
        p->workers[p->nworkers++] = w;
        fp_worker_spawn(w);     /* a failed fork retries on its backoff */
    }
    return 0;
}

int
fp_pool_start(fp_pool *p)
{
    if (p->started) {
        errno = EALREADY;
        return -1;
    }
    p->started = 1;
    p->started_at = ev_now(p->loop);
    p->target = p->cfg.workers;
    fp_sandbox_activate(&p->sandbox, &p->log);
    /* Unref'd: this watcher alone must not keep the caller's ev_run going. */
    ev_prepare_start(p->loop, &p->flush_prepare);
    ev_unref(p->loop);
    return add_workers(p, p->target);
}

/* Pool-wide SIGKILL and reap; used only on teardown. */
void
fp_pool_free(fp_pool *p)
{
    struct fp_job *job;

    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        pid_t pid = w->pid;
        while ((job = TAILQ_FIRST(&w->window)) != NULL) {
            TAILQ_REMOVE(&w->window, job, link);
            fp_job_finish_str(p, job, FP_CANCELLED, "pool freed");
        }
        fp_worker_free(w);      /* stops watchers, closes the socket */
        if (pid > 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    while ((job = TAILQ_FIRST(&p->queue)) != NULL) {
        TAILQ_REMOVE(&p->queue, job, link);
        fp_job_finish_str(p, job, FP_CANCELLED, "pool freed");
    }
    ev_timer_stop(p->loop, &p->drain_timer);
    ev_idle_stop(p->loop, &p->drained_idle);
    if (ev_is_active(&p->flush_prepare)) {
        ev_ref(p->loop);
        ev_prepare_stop(p->loop, &p->flush_prepare);
    }
    while ((job = p->free_jobs) != NULL) {
        p->free_jobs = TAILQ_NEXT(job, link);
        free(job);
    }
    free(p->workers);
    free(p->module_config);
    fp_sandbox_free(&p->sandbox);
    fp_buf_free(&p->scratch);
    free(p);
}

/* ------------------------------------------------------------------------
 * Jobs in
 * ------------------------------------------------------------------------ */

/* Check that job/len is exactly one msgpack value within the job limits. */
static const char *
check_job(const struct fp_pool *p, const char *job, size_t len)
{
    struct fp_limits lim = {
        .max_bytes = p->cfg.max_job_bytes,
        .max_objects = p->cfg.max_job_objects,
        .max_depth = FP_MAX_DEPTH,
    };
    struct fp_scanner sc;
    const char *why = NULL;
    ssize_t n;

    if (len > p->cfg.max_job_bytes)
        return "job too large";
    fp_scanner_reset(&sc);
    n = fp_scan(&sc, job, len, &lim, &why);
    if (n < 0 && why != NULL && (strcmp(why, "frame too large") == 0
                                 || strcmp(why, "too many objects") == 0))
        return "job too large";
    if (n <= 0 || (size_t)n != len)
        return "malformed";
    return NULL;
}

int
fp_pool_submit_batch(fp_pool *p, const fp_job_buf *jobs, size_t n,
                     const fp_job_opts *opts, fp_done_fn done, void *arg,
                     uint64_t *first_id, const char **reason)
{
    const char *why = NULL;
    struct fp_jobq batch;
    struct fp_job *job;
    size_t bytes = 0;

    for (size_t i = 0; i < n; i++)
        bytes += jobs[i].len;
    if (n == 0)
        why = "empty batch";
    else if (p->draining)
        why = "draining";
    else if (n > p->cfg.queue_max - p->nqueued
             || p->nqueued >= p->cfg.queue_max
             || bytes > p->cfg.queue_max_bytes - p->held_bytes
             || p->held_bytes > p->cfg.queue_max_bytes)
        why = "queue full";
    for (size_t i = 0; why == NULL && i < n; i++)
        why = check_job(p, jobs[i].data, jobs[i].len);
    if (why != NULL) {
        if (reason != NULL)
            *reason = why;
        return -1;
    }
    /* All or none: allocate every job before accepting any. */
    TAILQ_INIT(&batch);
    for (size_t i = 0; i < n; i++) {
        if ((job = job_alloc(p, jobs[i].len)) == NULL) {
            while ((job = TAILQ_FIRST(&batch)) != NULL) {
                TAILQ_REMOVE(&batch, job, link);
                job_release(p, job);
            }
            if (reason != NULL)
                *reason = "out of memory";
            return -1;
        }
        memcpy(job->payload, jobs[i].data, jobs[i].len);
        job->len = jobs[i].len;
        job->timeout = (opts != NULL && opts->timeout >= 0) ? opts->timeout
                                                            : p->cfg.job_timeout;
        job->retries_left = opts != NULL ? opts->retries : 0;
        job->done = done;
        job->arg = arg;
        TAILQ_INSERT_TAIL(&batch, job, link);
    }
    if (first_id != NULL)
        *first_id = p->next_id;
    while ((job = TAILQ_FIRST(&batch)) != NULL) {
        TAILQ_REMOVE(&batch, job, link);
        job->id = p->next_id++;
        TAILQ_INSERT_TAIL(&p->queue, job, link);
    }
    p->nqueued += n;
    p->held_bytes += bytes;
    p->counters.submitted += n;
    if (p->started)
        pool_dispatch(p);
    return 0;
}

int
fp_pool_submit(fp_pool *p, const char *data, size_t len,
               const fp_job_opts *opts, fp_done_fn done, void *arg,
               uint64_t *id, const char **reason)
{
    fp_job_buf one = { data, len };

    return fp_pool_submit_batch(p, &one, 1, opts, done, arg, id, reason);
}

int
fp_pool_submit_object(fp_pool *p, const msgpack_object *obj,
                      const fp_job_opts *opts, fp_done_fn done, void *arg,
                      uint64_t *id, const char **reason)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *obj) != 0) {
        msgpack_sbuffer_destroy(&sb);
        if (reason != NULL)
            *reason = "malformed";
        return -1;
    }
    rc = fp_pool_submit(p, sb.data, sb.size, opts, done, arg, id, reason);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ------------------------------------------------------------------------
 * Dispatch: FIFO.  Idle workers get a job first; only a queue deep enough to
 * give every worker with room one more job tops up the prefetch windows, so
 * a short queue is never parked behind a slow job.
 * ------------------------------------------------------------------------ */

static struct fp_job *
queue_pop(struct fp_pool *p)
{
    struct fp_job *job = TAILQ_FIRST(&p->queue);
    if (job != NULL) {
        TAILQ_REMOVE(&p->queue, job, link);
        p->nqueued--;
    }
    return job;
}

void
pool_dispatch(struct fp_pool *p)
{
    if (p->cut_off)
        return;
    for (unsigned i = 0; i < p->nworkers && p->nqueued > 0; i++) {
        struct fp_worker *w = p->workers[i];
        if (w->nwindow == 0 && fp_worker_room(w) > 0)
            fp_worker_assign(w, queue_pop(p));
    }
    while (p->nqueued > 0) {
        unsigned with_room = 0;
        for (unsigned i = 0; i < p->nworkers; i++)
            if (fp_worker_room(p->workers[i]) > 0)
                with_room++;
        if (with_room == 0 || p->nqueued < with_room)
            break;
        for (unsigned i = 0; i < p->nworkers; i++)
            if (fp_worker_room(p->workers[i]) > 0)
                fp_worker_assign(p->workers[i], queue_pop(p));
    }
}

/* ------------------------------------------------------------------------
 * Cancel
 * ------------------------------------------------------------------------ */

int
fp_pool_cancel(fp_pool *p, uint64_t id)
{
    struct fp_job *job;

    TAILQ_FOREACH(job, &p->queue, link) {
        if (job->id == id) {
            TAILQ_REMOVE(&p->queue, job, link);
            p->nqueued--;
            fp_job_finish_str(p, job, FP_CANCELLED, "cancelled");
            pool_check_drained(p);
            return 1;
        }
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        TAILQ_FOREACH(job, &w->window, link) {
            if (job->id != id)
                continue;
            if (job->settled)
                return 0;
            if (job == TAILQ_FIRST(&w->window)) {
                /* Running: only killing the worker stops it. */
                fp_worker_kill(w, KILL_CANCEL, id);
            } else {
                /* Prefetched, not started: it gets its outcome now and
                 * stays in the window as a ghost whose result, when the
                 * worker gets to it, is dropped. */
                fp_job_settle_str(p, job, FP_CANCELLED, "cancelled");
            }
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Scaling and rolling reload.  Both work through one mechanism: a slot
 * marked `retiring` takes no new jobs, is stopped once its window is empty,
 * and is removed when its process is gone.  No job is ever killed by them.
 * ------------------------------------------------------------------------ */

static void reload_step(struct fp_pool *p);

void
pool_remove_slot(struct fp_pool *p, struct fp_worker *w)
{
    unsigned i = w->slot;

    int was_reloading = p->reload_new == w || p->reload_old == w;

    if (was_reloading)
        p->reload_new = p->reload_old = NULL;
    memmove(&p->workers[i], &p->workers[i + 1],
            (p->nworkers - i - 1) * sizeof(p->workers[0]));
    p->nworkers--;
    for (; i < p->nworkers; i++)
        p->workers[i]->slot = i;
    fp_worker_free(w);
    if (was_reloading)
        reload_step(p);
}

/* Stop taking jobs on `w`; it stops as soon as its window is empty. */
static void
retire(struct fp_pool *p, struct fp_worker *w)
{
    /* A scale-down that takes either half of a reload's pair breaks the
     * pair up: the survivor is an ordinary worker, and the reload goes on
     * from the next stale one (fp_pool_scale calls reload_step). */
    if (w == p->reload_new || w == p->reload_old)
        p->reload_new = p->reload_old = NULL;
    w->retiring = 1;
    if (w->pid <= 0 && w->state == W_WAITING)
        pool_remove_slot(p, w);
    else if (w->nwindow == 0)
        fp_worker_stop(w);
}

/* How much a worker costs to retire: waiting < starting < idle < busy. */
static int
retire_rank(const struct fp_worker *w)
{
    if (w->pid <= 0)
        return 0;
    if (!w->ever_ready)
        return 1;
    return w->nwindow == 0 ? 2 : 3;
}

int
fp_pool_scale(fp_pool *p, unsigned n)
{
    unsigned active = 0;

    if (n < 1 || n > p->cfg.max_workers || p->draining) {
        errno = p->draining ? EBUSY : EINVAL;
        return -1;
    }
    for (unsigned i = 0; i < p->nworkers; i++)
        if (!p->workers[i]->retiring)
            active++;
    p->target = n;
    fp_logf(&p->log, FP_LOG_INFO, "scaling from %u to %u workers", active, n);
    if (active < n) {
        if (add_workers(p, p->nworkers + (n - active)) < 0)
            return -1;
    }
    for (int rank = 0; rank <= 3 && active > n; rank++) {
        for (unsigned i = p->nworkers; i-- > 0 && active > n; ) {
            struct fp_worker *w = p->workers[i];
            if (!w->retiring && retire_rank(w) == rank) {
                active--;
                retire(p, w);
            }
        }
    }
    if (p->reloading)
        reload_step(p);
    return 0;
}

/* Replace the next stale worker: start its successor first, and retire it
 * once the successor is ready, so capacity never drops. */
static void
reload_step(struct fp_pool *p)
{
    if (p->reload_new != NULL || p->draining)
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        if (w->retiring || w->generation == p->generation)
            continue;
        if (w->pid <= 0) {      /* no process: its next start is fresh */
            w->generation = p->generation;
            continue;
        }
        if (add_workers(p, p->nworkers + 1) < 0)
            return;
        p->reload_new = p->workers[p->nworkers - 1];
        p->reload_new->generation = p->generation;
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
    if (w == p->reload_new) {
        struct fp_worker *old = p->reload_old;
        p->reload_new = p->reload_old = NULL;
        if (old != NULL)
            retire(p, old);     /* may free it */
        reload_step(p);
    }
}

void
fp_pool_reload(fp_pool *p)
{
    if (p->draining)
        return;
    p->generation++;
    p->reloading = 1;
    fp_logf(&p->log, FP_LOG_INFO, "rolling reload of %u workers", p->target);
    reload_step(p);
}

/* ------------------------------------------------------------------------
 * Drain
 * ------------------------------------------------------------------------ */

static int
pool_idle(const struct fp_pool *p)
{
    if (p->nqueued > 0)
        return 0;
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i]->nwindow > 0)
            return 0;
    return 1;
}

static int
pool_dead(const struct fp_pool *p)
{
    for (unsigned i = 0; i < p->nworkers; i++)
        if (p->workers[i]->pid > 0)
            return 0;
    return 1;
}

/* Called whenever work or a worker ends: moves a drain along. */
void
pool_check_drained(struct fp_pool *p)
{
    if (!p->draining || p->drained == NULL)
        return;
    if (!p->cut_off && !pool_idle(p))
        return;
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        ev_timer_stop(p->loop, &w->restart_timer);
        if (w->pid > 0 && w->state != W_STOPPING)
            fp_worker_stop(w);
    }
    if (pool_dead(p))
        ev_idle_start(p->loop, &p->drained_idle);
}

static void
drained_idle_cb(struct ev_loop *loop, ev_idle *iw, int revents)
{
    struct fp_pool *p = iw->data;
    fp_drained_fn done = p->drained;
    (void)revents;

    ev_idle_stop(loop, iw);
    ev_timer_stop(loop, &p->drain_timer);
    p->drained = NULL;
    if (done != NULL)
        done(p, p->cut_off, p->drained_arg);
}

/* The drain ran out of time (or was forced): cancel what is left. */
static void
cut_off(struct fp_pool *p)
{
    struct fp_job *job;

    if (p->cut_off)
        return;
    p->cut_off = 1;
    fp_logf(&p->log, FP_LOG_WARN, "drain cut off: cancelling %zu queued jobs "
            "and killing busy workers", p->nqueued);
    while ((job = queue_pop(p)) != NULL)
        fp_job_finish_str(p, job, FP_CANCELLED, "drain timeout");
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct fp_worker *w = p->workers[i];
        ev_timer_stop(p->loop, &w->restart_timer);
        if (w->pid > 0) {
            struct fp_job *head = TAILQ_FIRST(&w->window);
            fp_worker_kill(w, KILL_CUTOFF, head ? head->id : 0);
        }
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
fp_pool_drain(fp_pool *p, double timeout, fp_drained_fn done, void *arg)
{
    if (p->draining) {
        cut_off(p);
        return;
    }
    p->draining = 1;
    p->drained = done;
    p->drained_arg = arg;
    fp_logf(&p->log, FP_LOG_INFO, "draining: %zu queued, finishing accepted jobs",
            p->nqueued);
    if (timeout > 0) {
        ev_timer_set(&p->drain_timer, timeout, 0.);
        ev_timer_start(p->loop, &p->drain_timer);
    }
    pool_check_drained(p);
}

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

void
pool_record_latency(struct fp_pool *p, double secs)
{
    unsigned i = 0;

    while (i < FP_LATENCY_BUCKETS - 1 && secs > fp_latency_bounds[i])
        i++;
    p->counters.latency_count[i]++;     /* per bucket; made cumulative below */
    p->counters.latency_sum += secs;
}

void
fp_pool_stats(const fp_pool *p, fp_stats *st)
{
    *st = p->counters;
    for (unsigned i = 1; i < FP_LATENCY_BUCKETS; i++)
        st->latency_count[i] += st->latency_count[i - 1];
    st->draining = p->draining;
    st->reloading = p->reloading;
    st->workers = p->target;
    st->live = st->busy = st->idle = st->starting = 0;
    st->start_failures = 0;
    for (unsigned i = 0; i < p->nworkers; i++) {
        const struct fp_worker *w = p->workers[i];
        if (w->pid > 0)
            st->live++;
        if (w->nwindow > 0)
            st->busy++;
        else if (w->state == W_READY)
            st->idle++;
        else if (w->state == W_STARTING || w->state == W_WAITING)
            st->starting++;
        if (w->fail_streak > st->start_failures)
            st->start_failures = w->fail_streak;
    }
    st->queued = p->nqueued;
    st->uptime_s = p->started ? ev_now(p->loop) - p->started_at : 0;
}

size_t
fp_pool_pids(const fp_pool *p, pid_t *pids, size_t max)
{
    size_t n = 0;

    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->workers[i]->pid <= 0)
            continue;
        if (n < max)
            pids[n] = p->workers[i]->pid;
        n++;
    }
    return n;
}

size_t
fp_pool_worker_info(const fp_pool *p, fp_worker_info *rows, size_t max)
{
    size_t n = 0;
    ev_tstamp now = ev_now(p->loop);

    for (unsigned i = 0; i < p->nworkers; i++) {
        const struct fp_worker *w = p->workers[i];
        const struct fp_job *head = TAILQ_FIRST(&w->window);
        if (w->pid <= 0)
            continue;
        if (n < max) {
            fp_worker_info *r = &rows[n];
            r->pid = w->pid;
            r->state = w->state == W_STOPPING ? "stopping"
                     : !w->ever_ready ? "starting"
                     : head != NULL ? "busy" : "idle";
            r->job = head != NULL ? head->id : 0;
            r->job_age_s = head != NULL ? now - w->job_started : 0;
            r->queued = w->nwindow > 0 ? w->nwindow - 1 : 0;
            r->jobs_done = w->jobs_done;
            r->rss = fp_worker_rss(w);
        }
        n++;
    }
    return n;
}
