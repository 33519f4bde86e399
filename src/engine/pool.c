/*
 * pool.c — the pool's public face: create, start and free it, accept jobs,
 * cancel them, and tell how it is doing.  (See pool_int.h for the rest of
 * the policy side; worker.h for the mechanism below it.)
 *
 * Everything here runs in libev callbacks or the caller's own code and
 * never blocks.
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
#include "poison.h"
#include "worker_claim.h"

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
 * Life cycle
 * ------------------------------------------------------------------------ */

/* Once per loop iteration, before it sleeps: the callbacks due, then the
 * jobs that can go out, then one write per worker for everything assigned
 * during this iteration, then spares to replace those that took a place. */
static void
flush_prepare_cb(struct ev_loop *loop, ev_prepare *pw, int revents)
{
    struct fp_pool *p = pw->data;
    (void)loop; (void)revents;

    if (pool_run_callbacks(p))
        return;                 /* a callback freed the pool */
    pool_dispatch(p);
    pool_autoscale_poke(p);     /* what the dispatcher could not place */
    POOL_FOREACH_WORKER(p, w)
        fp_worker_flush(w);
    pool_spares_fill(p);        /* last: a fork takes a while */
}

/* Callbacks are due and the loop might otherwise sleep or return: the
 * prepare watcher does the work, this only keeps the loop turning. */
static void
done_idle_cb(struct ev_loop *loop, ev_idle *iw, int revents)
{
    struct fp_pool *p = iw->data;
    (void)revents;

    if (TAILQ_EMPTY(&p->done) && TAILQ_EMPTY(&p->progress_due) && p->events.n == 0
        && !(p->phase == POOL_DRAINED && p->drained))
        ev_idle_stop(loop, iw);
}

/* ------------------------------------------------------------------------
 * Poison payloads (poison_after; the table is poison.c)
 * ------------------------------------------------------------------------ */

static int
poison_init(struct fp_pool *p, char *err, size_t errlen)
{
    if (p->cfg.poison_after > FP_POISON_AFTER_MAX) {
        snprintf(err, errlen, "poison_after %u: at most %u", p->cfg.poison_after,
                 FP_POISON_AFTER_MAX);
        return -1;
    }
    if ((p->poison = fp_poison_new(p->cfg.poison_after)) == NULL) {
        snprintf(err, errlen, "poison_after: out of memory, or libsodium "
                 "could not start");
        return -1;
    }
    snprintf(p->poison_reason, sizeof(p->poison_reason), "poison: crashed %u "
             "worker%s", p->cfg.poison_after, p->cfg.poison_after == 1 ? "" : "s");
    return 0;
}

void
pool_poison_crash(struct fp_pool *p, const struct fp_job *job)
{
    char hex[FP_POISON_HEX];

    if (p->poison != NULL
        && fp_poison_crash(p->poison, job->payload, job->len, ev_now(p->loop), hex))
        fp_logf(&p->log, FP_LOG_WARN, "payload %s (BLAKE2b-128 of its %zu "
                "bytes; job %llu) has crashed %u workers: quarantined, "
                "submissions of it are refused for up to an hour "
                "(--poison-after)", hex, job->len, (unsigned long long)job->id,
                p->cfg.poison_after);
}

/* The reason to refuse one of the jobs as poison, or NULL. */
static const char *
poison_check(struct fp_pool *p, const fp_job_buf *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fp_poison_check(p->poison, jobs[i].data, jobs[i].len, ev_now(p->loop))) {
            p->counters.poison_rejected++;
            return p->poison_reason;
        }
    return NULL;
}

/* ------------------------------------------------------------------------
 * Life cycle, continued
 * ------------------------------------------------------------------------ */

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
    /* Written so that a NaN fails. */
    if (!(cfg->heartbeat_timeout >= 0 && cfg->heartbeat_timeout <= 1e9)) {
        snprintf(err, errlen, "heartbeat timeout %g: want 0 (none) or a number "
                 "of seconds up to 1e9", cfg->heartbeat_timeout);
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
    if (p->cfg.autoscale_max > 0 || p->cfg.autoscale_min > 0) {
        unsigned lo = p->cfg.autoscale_min, hi = p->cfg.autoscale_max;
        if (lo < 1 || lo > hi || hi > p->cfg.max_workers) {
            snprintf(err, errlen, "autoscale range %u-%u: need 1 <= min <= max "
                     "<= %u", lo, hi, p->cfg.max_workers);
            free(p);
            return NULL;
        }
        /* Start with MIN, or the count asked for, within the range. */
        if (p->cfg.workers == 0 || p->cfg.workers < lo)
            p->cfg.workers = lo;
        else if (p->cfg.workers > hi)
            p->cfg.workers = hi;
        if (!(p->cfg.idle_timeout > 0))
            p->cfg.idle_timeout = FP_DEFAULT_IDLE_TIMEOUT;
    }
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
    if (p->cfg.spare_workers > FP_MAX_SPARE_WORKERS) {
        snprintf(err, errlen, "%u spare workers: at most %u",
                 p->cfg.spare_workers, FP_MAX_SPARE_WORKERS);
        free(p);
        return NULL;
    }
    if (p->cfg.worker_sched != FP_WORKER_SCHED_BATCH
        && p->cfg.worker_sched != FP_WORKER_SCHED_INHERIT) {
        snprintf(err, errlen, "unknown worker scheduling policy %d",
                 p->cfg.worker_sched);
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
    if (p->cfg.prefetch > FP_MAX_PREFETCH)
        p->cfg.prefetch = FP_MAX_PREFETCH;      /* the claims ring's reach */
    if (p->cfg.prefetch_wait == 0 || p->cfg.prefetch_wait != p->cfg.prefetch_wait)
        p->cfg.prefetch_wait = FP_DEFAULT_PREFETCH_WAIT;
    if (p->cfg.start_timeout == 0 || p->cfg.start_timeout != p->cfg.start_timeout)
        p->cfg.start_timeout = FP_DEFAULT_START_TIMEOUT;
    else if (p->cfg.start_timeout < 0)
        p->cfg.start_timeout = 0;       /* the mechanism's "none" */
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
    p->wargs.receipts = 1;           /* each result says what its job cost */
    /* A worker writes its results a quarter of a window at a time, so the
     * master hears of them while the worker runs the jobs after them, and
     * refills its window before it runs dry; the window is shared too (two
     * workers under a stream of 256 jobs in flight hold 128 each), and a
     * worker that holds to the end of its burst sleeps after each one
     * while the master answers.  A worker's wake-up costs more than a
     * hundred trivial jobs: held to half a window, the library's echo
     * stream ran at 2.5-3.4 M jobs/s with 2 workers, at a quarter 3.7-4.4
     * (1 worker: 2.3-2.9 and 3.8-3.9; 4 workers and the daemon within the
     * spread; runs in turn, 2 Dec).  Held to an eighth: slower again. */
    p->wargs.hold_results = p->cfg.prefetch / 4;

    p->spawn_req.exec_argv = p->cfg.exec_argv;
    p->spawn_req.child_main = fp_worker_main;
    p->spawn_req.child_prepare = fp_worker_prepare;
    p->spawn_req.child_arg = &p->wargs;
    p->spawn_req.sandbox = &p->sandbox;
    /* A job or result of up to a MiB crosses a worker's socket in one
     * piece, not five of the default 208 KiB (each a wake-up of both
     * ends): the same reasoning and size as a control connection's
     * (fp_sock_widen, src/common/sockpath.h). */
    p->spawn_req.sockbuf = 1 << 20;
    p->spawn_req.batch_sched = p->cfg.worker_sched == FP_WORKER_SCHED_BATCH;
    p->env.loop = loop;
    p->env.log = &p->log;
    p->env.ops = &pool_worker_ops;
    p->env.owner = p;
    p->env.limits = &p->worker_limits;
    p->env.slow_log = p->cfg.slow_log;
    p->env.start_timeout = p->cfg.start_timeout;
    p->env.heartbeat_timeout = p->cfg.heartbeat_timeout;
    p->env.ahead = &p->nahead;
    p->run_est = -1;

    TAILQ_INIT(&p->done);
    TAILQ_INIT(&p->progress_due);
    TAILQ_INIT(&p->leaving);
    TAILQ_INIT(&p->spares);
    TAILQ_INIT(&p->groups);
    p->phase = POOL_NEW;
    p->target = p->cfg.workers;
    p->next_id = 1;
    p->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)(ev_time() * 1e6) ^ 0x9e3779b97f4a7c15ull;
    fp_queue_init(&p->queue, p->rng * 0x2545f4914f6cdd1dull);
    if (cfg->rate_limit != 0
        && fp_queue_limit(&p->queue, "", cfg->rate_limit, cfg->rate_burst,
                          ev_now(loop)) < 0) {
        snprintf(err, errlen, "rate limit %g (burst %g): want a rate from 0 "
                 "to %g and a burst of 0 or from 1 to %g", cfg->rate_limit,
                 cfg->rate_burst, FP_LIMIT_MAX, FP_LIMIT_MAX);
        free(p->module_config);
        fp_sandbox_free(&p->sandbox);
        free(p);
        return NULL;
    }
    if (p->cfg.poison_after > 0 && poison_init(p, err, errlen) < 0) {
        fp_queue_free(&p->queue);
        free(p->module_config);
        fp_sandbox_free(&p->sandbox);
        free(p);
        return NULL;
    }
    msgpack_packer_init(&p->scratch_pk, &p->scratch, fp_buf_pack_write);
    pool_drain_init(p);
    pool_dispatch_init(p);
    pool_expiry_init(p);
    pool_autoscale_init(p);
    ev_idle_init(&p->done_idle, done_idle_cb);
    ev_prepare_init(&p->flush_prepare, flush_prepare_cb);
    p->flush_prepare.data = p;
    p->done_idle.data = p;
    /* From the start, so that the outcome of a job cancelled (or a drain
     * finished) before fp_pool_start is still delivered; unref'd: this
     * watcher alone must not keep the caller's ev_run going. */
    ev_prepare_start(p->loop, &p->flush_prepare);
    ev_unref(p->loop);
    return p;
}

int
fp_pool_start(fp_pool *p)
{
    /* Drained before it was started: it starts, runs what it accepted,
     * and then the drain completes. */
    if (p->started_at > 0 || (p->phase != POOL_NEW && p->phase != POOL_DRAINING)) {
        errno = EALREADY;
        return -1;
    }
    if (p->phase == POOL_NEW)
        p->phase = POOL_RUNNING;
    p->started_at = ev_now(p->loop);
    if (p->started_at <= 0)
        p->started_at = 1e-9;
    fp_sandbox_activate(&p->sandbox, &p->log);
    /* A non-dumpable process that is not root may not open its own
     * /proc/self/clear_refs (meter.h): then no peak restarts per job. */
    if (p->cfg.exec_argv == NULL && p->sandbox.level != FP_SANDBOX_NONE
        && geteuid() != 0)
        fp_logf(&p->log, FP_LOG_INFO, "receipts: maxrss_kb is each worker's "
                "peak so far, not each job's: restarting the peak needs a "
                "master running as root, or --sandbox none");
    pool_orphans_start(p);
    return pool_add_workers(p, p->target);     /* spares: flush_prepare_cb */
}

/* Inside a done or drained callback the work waits until it returns. */
void
fp_pool_free(fp_pool *p)
{
    if (p == NULL || p->free_state != FREE_NONE)
        return;
    if (p->in_callbacks) {
        p->free_state = FREE_DUE;
        return;
    }
    pool_teardown(p);
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
    const char *key = opts != NULL ? opts->key : NULL;
    struct fp_group *group = opts != NULL ? opts->group : NULL;
    /* A deadline to start by: finite and > 0, else none. */
    double expires = opts != NULL && opts->expires > 0 && opts->expires < 1e15
                     ? opts->expires : 0;
    struct fp_key *k = NULL;
    struct fp_jobq batch;
    struct fp_job *job;
    size_t bytes = 0;

    for (size_t i = 0; i < n; i++)
        bytes += jobs[i].len;
    if (n == 0)
        why = "empty batch";
    else if (group != NULL && group->pool != p)
        why = "bad group";
    else if (!pool_accepts_jobs(p))
        why = "draining";
    else if (p->queue.n + p->nahead >= p->cfg.queue_max
             || n > p->cfg.queue_max - p->queue.n - p->nahead
             || bytes > p->cfg.queue_max_bytes - p->held_bytes
             || p->held_bytes > p->cfg.queue_max_bytes)
        why = "queue full";
    for (size_t i = 0; why == NULL && i < n; i++)
        why = check_job(p, jobs[i].data, jobs[i].len);
    if (why == NULL && p->poison != NULL)
        why = poison_check(p, jobs, n);
    if (why == NULL && expires > 0 && pool_expiry_reserve(p, n) < 0)
        why = "out of memory";
    if (why != NULL) {
        if (reason != NULL)
            *reason = why;
        return -1;
    }
    /* All or none: allocate every job before accepting any. */
    TAILQ_INIT(&batch);
    for (size_t i = 0; i < n; i++) {
        if ((job = fp_job_alloc(&p->job_cache, jobs[i].len)) == NULL
            || (key != NULL && key[0] != '\0'
                && (k = fp_queue_key_hold(&p->queue, key)) == NULL)) {
            if (job != NULL)
                TAILQ_INSERT_TAIL(&batch, job, link);
            while ((job = TAILQ_FIRST(&batch)) != NULL) {
                TAILQ_REMOVE(&batch, job, link);
                fp_queue_key_drop(&p->queue, job->key);
                fp_job_release(&p->job_cache, job);
            }
            if (reason != NULL)
                *reason = "out of memory";
            return -1;
        }
        job->key = k;
        job->group = group;
        memcpy(job->payload, jobs[i].data, jobs[i].len);
        job->len = jobs[i].len;
        job->timeout = (opts != NULL && opts->timeout >= 0) ? opts->timeout
                                                            : p->cfg.job_timeout;
        job->retries_left = opts != NULL ? opts->retries : 0;
        job->accepted_at = ev_now(p->loop);
        job->done = done;
        job->arg = arg;
        if (opts != NULL && opts->progress != NULL) {
            job->progress_fn = opts->progress;
            job->progress_arg = opts->progress_arg;
        }
        TAILQ_INSERT_TAIL(&batch, job, link);
    }
    if (first_id != NULL)
        *first_id = p->next_id;
    while ((job = TAILQ_FIRST(&batch)) != NULL) {
        TAILQ_REMOVE(&batch, job, link);
        job->id = p->next_id++;
        fp_queue_push(&p->queue, job);
        if (expires > 0) {
            job->expires_at = ev_now(p->loop) + expires;
            pool_expiry_add(p, job);
        }
    }
    pool_group_ref(group, n);
    p->held_bytes += bytes;
    p->counters.submitted += n;
    if (p->phase == POOL_RUNNING)
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
 * Cancel
 * ------------------------------------------------------------------------ */

int
fp_pool_cancel(fp_pool *p, uint64_t id)
{
    struct fp_job *job;

    if (p->free_state != FREE_NONE)
        return 0;
    if ((job = fp_queue_find(&p->queue, id)) != NULL) {
        fp_queue_remove(&p->queue, job);
        pool_settle_str(p, job, FP_CANCELLED, "cancelled");
        pool_check_drained(p);
        return 1;
    }
    POOL_FOREACH_WORKER(p, w) {
        TAILQ_FOREACH(job, &w->window, link) {
            if (job->id != id)
                continue;
            if (job->state != JOB_ASSIGNED)
                return 0;       /* cancelled already */
            /* Running: only killing the worker stops it (the outcome is
             * settled when it is gone).  Sent ahead: taken back, or (the
             * worker has just started it) it stays in the window, its
             * result dropped; either way it gets its outcome now. */
            if (fp_worker_cancel(w, job) != 1)
                pool_settle_str(p, job, FP_CANCELLED, "cancelled");
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

void
fp_pool_stats(const fp_pool *p, fp_stats *st)
{
    *st = p->counters;
    for (unsigned i = 1; i < FP_LATENCY_BUCKETS; i++) {
        st->latency_count[i] += st->latency_count[i - 1];
        st->wait_count[i] += st->wait_count[i - 1];
        st->run_count[i] += st->run_count[i - 1];
    }
    st->poisoned = p->poison != NULL ? fp_poison_count(p->poison, ev_now(p->loop)) : 0;
    st->draining = p->phase >= POOL_DRAINING;
    st->reloading = p->reloading;
    st->workers = p->target;
    st->autoscale_min = p->cfg.autoscale_max > 0 ? p->cfg.autoscale_min : 0;
    st->autoscale_max = p->cfg.autoscale_max;
    st->live = st->busy = st->idle = st->starting = st->spares = 0;
    st->start_failures = 0;
    POOL_FOREACH_WORKER(p, w) {
        if (fp_worker_alive(w))
            st->live++;
        if (w->fail_streak > st->start_failures)
            st->start_failures = w->fail_streak;
        if (pool_is_spare(w) && w->state == WS_READY)
            st->spares++;
        else if (w->nwindow > 0)
            st->busy++;
        else if (w->state == WS_READY)
            st->idle++;
        else if (w->state == WS_STARTING || w->state == WS_WAITING)
            st->starting++;
    }
    st->queued = p->queue.n;
    st->uptime_s = p->started_at > 0 ? ev_now(p->loop) - p->started_at : 0;
}

size_t
fp_pool_pids(const fp_pool *p, pid_t *pids, size_t max)
{
    size_t n = 0;

    POOL_FOREACH_WORKER(p, w) {
        if (!fp_worker_alive(w))
            continue;
        if (n < max)
            pids[n] = w->pid;
        n++;
    }
    return n;
}

/* The state a status display shows for a worker. */
static const char *
shown_state(const struct fp_worker *w)
{
    if (w->state == WS_STOPPING || w->state == WS_KILLED)
        return "stopping";
    if (w->ready_at == 0)
        return "starting";
    if (pool_is_spare(w))
        return "spare";
    return w->nwindow > 0 ? "busy" : "idle";
}

size_t
fp_pool_worker_info(const fp_pool *p, fp_worker_info *rows, size_t max)
{
    size_t n = 0;
    ev_tstamp now = ev_now(p->loop);

    POOL_FOREACH_WORKER(p, w) {
        const struct fp_job *head = TAILQ_FIRST(&w->window);
        if (!fp_worker_alive(w))
            continue;
        if (n < max) {
            fp_worker_info *r = &rows[n];
            r->pid = w->pid;
            r->state = shown_state(w);
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

/* ------------------------------------------------------------------------
 * Rate limits
 * ------------------------------------------------------------------------ */

int
fp_pool_limit(fp_pool *p, const char *key, double rate, double burst)
{
    if (fp_queue_limit(&p->queue, key, rate, burst, ev_now(p->loop)) < 0)
        return -1;
    /* A faster bucket may let jobs go now (or sooner than the timer
     * says): the next loop iteration looks again. */
    fp_precise_timer_stop(p->loop, &p->rate_timer);
    if (p->started_at > 0)
        pool_dispatch(p);
    return 0;
}

int
fp_pool_limit_remove(fp_pool *p, const char *key)
{
    int had = fp_queue_unlimit(&p->queue, key);

    if (had && p->started_at > 0) {
        fp_precise_timer_stop(p->loop, &p->rate_timer);
        pool_dispatch(p);
    }
    return had;
}

size_t
fp_pool_limits(const fp_pool *p, fp_limit_info *rows, size_t max)
{
    return fp_queue_limits(&p->queue, ev_now(p->loop), rows, max);
}
