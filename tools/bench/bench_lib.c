/*
 * bench_lib.c — the library in-process: fp_pool on libev's default loop
 * with an echo module defined here.
 *
 *   bench_lib           throughput with a window of jobs outstanding,
 *                       refilled from the done callback;
 *   bench_crash         crash -> replacement worker ready;
 *   bench_rss           the master's RSS across many jobs;
 *   bench_lib_idle_mem  an idle worker's private memory;
 *   bench_lib_mixed     one burst of mixed long and short jobs: makespan.
 *
 * Each runs in a runner process of its own (bench.h), so the default loop
 * and the heap are fresh.
 */
#include "config.h"
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "forkpool.h"
#include "bench.h"

#define WARM_SECS   0.1     /* steady state first: not timed */

/* ------------------------------------------------------------------------
 * The module: echo the job; the string "crash" raises SIGSEGV; a positive
 * integer N sleeps N microseconds and returns [pid, start, end] (seconds
 * on CLOCK_MONOTONIC, for the mixed-durations timeline).
 * ------------------------------------------------------------------------ */

static int
bench_sleep(uint64_t us, msgpack_packer *out)
{
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
    double start = now_s();

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    double end = now_s();
    return msgpack_pack_array(out, 3) != 0
        || msgpack_pack_int64(out, (int64_t)getpid()) != 0
        || msgpack_pack_double(out, start) != 0
        || msgpack_pack_double(out, end) != 0;
}

static int
bench_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    if (job->type == MSGPACK_OBJECT_STR && job->via.str.size == 5
        && memcmp(job->via.str.ptr, "crash", 5) == 0)
        raise(SIGSEGV);
    if (job->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return bench_sleep(job->via.u64, out);
    return msgpack_pack_object(out, *job) == 0 ? 0 : 1;
}

static const fp_module bench_module = {
    .abi = FP_MODULE_ABI,
    .name = "fpbench-echo",
    .handle = bench_handle,
};

/* Errors only: a crash benchmark would otherwise log 200 warnings. */
static void
quiet_log(int level, const char *msg, void *arg)
{
    (void)arg;
    if (level <= FP_LOG_ERR)
        fprintf(stderr, "fpbench: pool: %s\n", msg);
}

/* A started pool of `workers` echo workers on the default loop, or NULL
 * with the reason in r. */
static fp_pool *
start_pool_spares(unsigned workers, unsigned spares, struct bench_result *r)
{
    struct ev_loop *loop = ev_default_loop(0);
    fp_config cfg;
    char err[256];
    fp_pool *pool;

    fp_config_init(&cfg);
    cfg.workers = workers;
    cfg.spare_workers = spares;
    cfg.module = &bench_module;
    cfg.log = quiet_log;
    cfg.log_level = FP_LOG_ERR;
    pool = fp_pool_new(loop, &cfg, err, sizeof(err));
    if (pool == NULL) {
        bench_fail(r, "fp_pool_new: %s", err);
        return NULL;
    }
    if (fp_pool_start(pool) < 0) {
        bench_fail(r, "fp_pool_start failed");
        fp_pool_free(pool);
        return NULL;
    }
    return pool;
}

static fp_pool *
start_pool(unsigned workers, struct bench_result *r)
{
    return start_pool_spares(workers, 0, r);
}

/* ------------------------------------------------------------------------
 * A stream of echo jobs, W outstanding.  Phases: warm-up (untimed, until
 * WARM_SECS and 2W outcomes), timed (for a->seconds), then no refill until
 * every outstanding job is back.  RSS marks (bench_rss) are taken at given
 * outcome counts.
 * ------------------------------------------------------------------------ */

struct lib_run;

struct slot {
    struct lib_run *run;
    double          sent;
};

struct lib_run {
    struct ev_loop *loop;
    fp_pool        *pool;
    const char     *job;
    size_t          len;
    unsigned        window, outstanding;
    struct slot    *slots;
    unsigned       *free_slots;
    unsigned        nfree;
    int             phase;          /* 0 warm-up, 1 timed, 2 winding down */
    double          started, seconds;
    uint64_t        total;          /* stop refilling after this many (0 = by time) */
    uint64_t        submitted, completed, bad;
    double          t0, t1, cpu0, cpu1;
    uint64_t        c0, c1;
    uint64_t        marks[3];       /* RSS sampled at these outcome counts */
    double          mark_rss[3];
    struct hist     hist;
    const char     *reject;
    int             batch;          /* submit with fp_pool_submit_batch */
};

static void lib_done(const fp_outcome *o, void *arg);

static void lib_done_batch(const fp_outcome *o, void *arg);

/* Batch mode: up to BATCH jobs per fp_pool_submit_batch.  Ids are
 * consecutive and fewer than `window` are outstanding, so id % window
 * names a free slot. */
#define BATCH 1024

static int
submit_batch(struct lib_run *run)
{
    static fp_job_buf jobs[BATCH];
    unsigned k = run->window - run->outstanding;
    uint64_t first;
    const char *why = NULL;

    if (k > BATCH)
        k = BATCH;
    if (run->total != 0 && run->submitted + k > run->total)
        k = (unsigned)(run->total - run->submitted);
    for (unsigned i = 0; i < k; i++)
        jobs[i] = (fp_job_buf){ run->job, run->len };
    if (fp_pool_submit_batch(run->pool, jobs, k, NULL, lib_done_batch, run,
                             &first, &why) < 0) {
        run->reject = why;
        return -1;
    }
    double t = now_s();
    for (unsigned i = 0; i < k; i++)
        run->slots[(first + i) % run->window].sent = t;
    run->outstanding += k;
    run->submitted += k;
    return 0;
}

static int
submit_one(struct lib_run *run)
{
    struct slot *s = &run->slots[run->free_slots[--run->nfree]];
    const char *why = NULL;

    s->sent = now_s();
    if (fp_pool_submit(run->pool, run->job, run->len, NULL, lib_done, s,
                       NULL, &why) < 0) {
        run->free_slots[run->nfree++] = (unsigned)(s - run->slots);
        run->reject = why;
        return -1;
    }
    run->outstanding++;
    run->submitted++;
    return 0;
}

static void
refill(struct lib_run *run)
{
    if (run->batch) {
        /* A batch once a quarter of the window is free: few, big calls. */
        if (run->outstanding <= run->window - run->window / 4
            && (run->total == 0 || run->submitted < run->total)
            && submit_batch(run) < 0)
            ev_break(run->loop, EVBREAK_ALL);
        return;
    }
    while (run->outstanding < run->window && run->nfree > 0
           && (run->total == 0 || run->submitted < run->total))
        if (submit_one(run) < 0) {
            ev_break(run->loop, EVBREAK_ALL);
            return;
        }
}

static void lib_finish(struct lib_run *run, struct slot *s, const fp_outcome *o);

static void
lib_done(const fp_outcome *o, void *arg)
{
    struct slot *s = arg;
    lib_finish(s->run, s, o);
}

static void
lib_done_batch(const fp_outcome *o, void *arg)
{
    struct lib_run *run = arg;
    lib_finish(run, &run->slots[o->id % run->window], o);
}

static void
lib_finish(struct lib_run *run, struct slot *s, const fp_outcome *o)
{
    double t = now_s();

    if (o->kind != FP_OK || o->len != run->len)
        run->bad++;
    if (run->phase == 1)
        hist_add(&run->hist, t - s->sent);
    if (!run->batch)
        run->free_slots[run->nfree++] = (unsigned)(s - run->slots);
    run->outstanding--;
    run->completed++;
    for (int i = 0; i < 3; i++)
        if (run->marks[i] != 0 && run->completed == run->marks[i])
            run->mark_rss[i] = proc_rss_kb(0);

    if (run->phase == 0 && t - run->started >= WARM_SECS
        && run->completed >= 2 * (uint64_t)run->window) {
        run->phase = 1;
        run->t0 = t;
        run->cpu0 = self_cpu_s();
        run->c0 = run->completed;
    } else if (run->phase == 0 && run->total != 0
               && run->completed >= run->total) {
        /* A fixed count reached before the warm-up ended: time it all. */
        run->phase = 2;
        run->t1 = t;
        run->t0 = run->started;
        run->cpu1 = self_cpu_s();
        run->c1 = run->completed;
    } else if (run->phase == 1
               && (run->total != 0 ? run->completed >= run->total
                                   : t - run->t0 >= run->seconds)) {
        run->phase = 2;
        run->t1 = t;
        run->cpu1 = self_cpu_s();
        run->c1 = run->completed;
    }
    if (run->phase < 2)
        refill(run);
    if (run->outstanding == 0 && (run->phase == 2 || run->reject != NULL))
        ev_break(run->loop, EVBREAK_ALL);
}

/* Run the stream to the end; fills r (throughput, latency, CPU, RSS). */
static void
lib_stream(struct lib_run *run, struct bench_result *r)
{
    run->slots = calloc(run->window, sizeof(*run->slots));
    run->free_slots = calloc(run->window, sizeof(*run->free_slots));
    if (run->slots == NULL || run->free_slots == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    for (unsigned i = 0; i < run->window; i++) {
        run->slots[i].run = run;
        run->free_slots[run->nfree++] = run->window - 1 - i;
    }
    hist_reset(&run->hist);
    r->rss_before_kb = proc_rss_kb(0);
    run->started = now_s();
    run->cpu0 = self_cpu_s();
    refill(run);
    ev_run(run->loop, 0);
    r->rss_after_kb = proc_rss_kb(0);
    if (run->reject != NULL) {
        bench_fail(r, "submit rejected: %s", run->reject);
    } else if (run->phase != 2) {
        bench_fail(r, "the loop stopped early");
    } else if (run->bad > 0) {
        bench_fail(r, "%llu outcomes were not ok echoes",
                   (unsigned long long)run->bad);
    } else {
        r->ok = 1;
        r->jobs = run->c1 - run->c0;
        r->secs = run->t1 - run->t0;
        r->jobs_s = (double)r->jobs / r->secs;
        r->p50_us = hist_quantile_us(&run->hist, 0.50);
        r->p99_us = hist_quantile_us(&run->hist, 0.99);
        r->cpu_us_per_job = (run->cpu1 - run->cpu0) * 1e6 / (double)r->jobs;
    }
    free(run->slots);
    free(run->free_slots);
}

void
bench_lib(const struct bench_args *a, struct bench_result *r)
{
    struct lib_run run;
    size_t len;
    char *job = make_bin_payload(a->payload, &len);

    memset(&run, 0, sizeof(run));
    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    run.loop = ev_default_loop(0);
    run.job = job;
    run.len = len;
    run.window = a->window;
    run.seconds = a->seconds;
    run.batch = a->batched;
    if (run.batch) {            /* batches need room to be batches */
        run.window = a->window * 16;
        while (run.window > a->window && (size_t)run.window * len > (256u << 20))
            run.window /= 2;    /* but at most 256 MiB outstanding */
    }
    run.pool = start_pool(a->workers, r);
    if (run.pool != NULL) {
        lib_stream(&run, r);
        fp_pool_free(run.pool);
    }
    free(job);
}

void
bench_rss(const struct bench_args *a, struct bench_result *r)
{
    struct lib_run run;
    size_t len;
    char *job = make_bin_payload(a->payload, &len);

    memset(&run, 0, sizeof(run));
    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    run.loop = ev_default_loop(0);
    run.job = job;
    run.len = len;
    run.window = a->window;
    run.total = a->count;
    run.marks[0] = a->count / 100;
    run.marks[1] = a->count / 10;
    run.marks[2] = a->count;
    run.pool = start_pool(a->workers, r);
    if (run.pool != NULL) {
        lib_stream(&run, r);
        for (int i = 0; i < 3; i++)
            r->aux[i] = run.mark_rss[i];
        fp_pool_free(run.pool);
    }
    free(job);
}

/* ------------------------------------------------------------------------
 * Crash -> replacement.  With every worker idle, submit the job "crash"
 * (its handler raises SIGSEGV) and watch the pool from an ev_prepare
 * watcher, which runs once per loop iteration after every callback: the
 * replacement is ready when fp_pool_stats shows all workers idle again and
 * fp_pool_worker_info an idle pid the slots did not have before (a fresh
 * worker, or with a->spares the spare that took the place; each crash
 * starts with every spare ready).  Two spans:
 *   submit -> ready     everything: dispatch, the handler, the signal, the
 *                       kernel tearing the process down, SIGCHLD, the reap,
 *                       the fork, the new worker's "ready" message (with
 *                       a spare: none of these three);
 *   outcome -> ready    from the crashed outcome (delivered when the master
 *                       has reaped the dead worker) to the replacement ready.
 * ------------------------------------------------------------------------ */

#define CRASH_WARM   5
#define MAX_WORKERS  32     /* workers and spares */

struct crash_run {
    fp_pool    *pool;
    unsigned    workers, spares, want, done, seen_kind_bad;
    int         crashing;
    double      submitted_at, outcome_at;
    pid_t       before[MAX_WORKERS];
    size_t      nbefore;
    double     *total, *after;      /* per measured crash, seconds */
    const char *fail;
};

static void crash_check(struct crash_run *c);

/* The crashed outcome: the replacement may be ready already (a spare took
 * the place while the dead worker was reaped), with nothing else to wake
 * the loop, so look now as well as before the loop next sleeps. */
static void
crash_done(const fp_outcome *o, void *arg)
{
    struct crash_run *c = arg;

    if (o->kind != FP_CRASHED)
        c->seen_kind_bad++;
    c->outcome_at = now_s();
    crash_check(c);
}

static int
pid_is_new(const struct crash_run *c, pid_t pid)
{
    for (size_t i = 0; i < c->nbefore; i++)
        if (c->before[i] == pid)
            return 0;
    return 1;
}

/* The pids of the workers in the pool's slots (idle or busy: not spares,
 * not starting) into pids[]; returns how many. */
static size_t
slot_pids(const struct crash_run *c, pid_t *pids)
{
    fp_worker_info rows[MAX_WORKERS];
    size_t n = fp_pool_worker_info(c->pool, rows, MAX_WORKERS), k = 0;

    for (size_t i = 0; i < n && i < MAX_WORKERS; i++)
        if (strcmp(rows[i].state, "idle") == 0 || strcmp(rows[i].state, "busy") == 0)
            pids[k++] = rows[i].pid;
    return k;
}

/* Is the replacement ready (then record it)?  Is every worker idle and
 * every spare ready (then crash the next one)? */
static void
crash_check(struct crash_run *c)
{
    struct ev_loop *loop = ev_default_loop(0);
    pid_t pids[MAX_WORKERS];
    fp_stats st;

    fp_pool_stats(c->pool, &st);
    if (st.idle != c->workers || st.queued != 0)
        return;
    size_t n = slot_pids(c, pids);
    if (c->crashing) {
        /* Ready: the slots are all idle again, one with a pid they did not
         * have (a fresh worker, or the spare that took the place). */
        if (c->outcome_at == 0)
            return;
        int fresh = 0;
        for (size_t i = 0; i < n; i++)
            fresh |= pid_is_new(c, pids[i]);
        if (!fresh)
            return;
        double t = now_s();
        if (c->done >= CRASH_WARM) {
            c->total[c->done - CRASH_WARM] = t - c->submitted_at;
            c->after[c->done - CRASH_WARM] = t - c->outcome_at;
        }
        c->crashing = 0;
        if (++c->done == c->want + CRASH_WARM) {
            ev_break(loop, EVBREAK_ALL);
            return;
        }
    }
    /* Crash the next one only from the same state each time: every worker
     * idle, every spare ready. */
    if (st.spares != c->spares || st.live != c->workers + c->spares)
        return;
    c->nbefore = n;
    memcpy(c->before, pids, n * sizeof(pid_t));
    c->outcome_at = 0;
    c->crashing = 1;
    c->submitted_at = now_s();
    if (fp_pool_submit(c->pool, "\xa5" "crash", 6, NULL, crash_done, c,
                       NULL, NULL) < 0) {
        c->fail = "submit rejected";
        ev_break(loop, EVBREAK_ALL);
    }
}

static void
crash_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop; (void)revents;
    crash_check(w->data);
}

static void
crash_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct crash_run *c = w->data;
    (void)revents;

    c->fail = "a replacement took longer than 10 s";
    ev_break(loop, EVBREAK_ALL);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

void
bench_crash(const struct bench_args *a, struct bench_result *r)
{
    struct ev_loop *loop = ev_default_loop(0);
    struct crash_run c;
    ev_prepare prep;
    ev_timer deadline;

    memset(&c, 0, sizeof(c));
    c.workers = a->workers < MAX_WORKERS ? a->workers : MAX_WORKERS;
    c.want = a->count;
    c.total = calloc(c.want, sizeof(double));
    c.after = calloc(c.want, sizeof(double));
    if (c.total == NULL || c.after == NULL) {
        bench_fail(r, "out of memory");
        goto out;
    }
    c.spares = a->spares;
    if ((c.pool = start_pool_spares(c.workers, c.spares, r)) == NULL)
        goto out;
    ev_prepare_init(&prep, crash_prepare_cb);
    prep.data = &c;
    ev_prepare_start(loop, &prep);
    /* Re-armed by every crash: a deadline per replacement. */
    ev_timer_init(&deadline, crash_deadline_cb, 0., 10.);
    deadline.data = &c;
    ev_timer_again(loop, &deadline);
    unsigned last = 0;
    while (c.done < c.want + CRASH_WARM && c.fail == NULL) {
        ev_run(loop, EVRUN_ONCE);
        if (c.done != last) {
            last = c.done;
            ev_timer_again(loop, &deadline);
        }
    }
    ev_prepare_stop(loop, &prep);
    ev_timer_stop(loop, &deadline);
    if (c.fail != NULL) {
        bench_fail(r, "%s", c.fail);
    } else if (c.seen_kind_bad > 0) {
        bench_fail(r, "%u crash jobs did not end 'crashed'", c.seen_kind_bad);
    } else {
        fp_stats st;
        fp_pool_stats(c.pool, &st);
        r->ok = 1;
        r->aux[0] = quantile(c.total, c.want, 0.50) * 1e6;
        r->aux[1] = quantile(c.total, c.want, 0.99) * 1e6;
        r->aux[2] = quantile(c.after, c.want, 0.50) * 1e6;
        r->aux[3] = quantile(c.after, c.want, 0.99) * 1e6;
        r->aux[4] = c.want;
        r->aux[5] = (double)st.restarts;
    }
    fp_pool_free(c.pool);
out:
    free(c.total);
    free(c.after);
}

/* ------------------------------------------------------------------------
 * An idle worker's private memory: just ready, and after a->count jobs.
 * ------------------------------------------------------------------------ */

/* Run the loop until every worker is idle (and nothing queued). */
static int
wait_all_idle(struct ev_loop *loop, fp_pool *pool, unsigned workers)
{
    double give_up = now_s() + 10;
    fp_stats st;

    for (;;) {
        fp_pool_stats(pool, &st);
        if (st.idle == workers && st.live == workers && st.queued == 0)
            return 0;
        if (now_s() > give_up)
            return -1;
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(1000);
    }
}

static double
max_private_kb(fp_pool *pool)
{
    pid_t pids[MAX_WORKERS];
    size_t n = fp_pool_pids(pool, pids, MAX_WORKERS);

    return worst_private_kb(pids, n < MAX_WORKERS ? n : MAX_WORKERS);
}

void
bench_lib_idle_mem(const struct bench_args *a, struct bench_result *r)
{
    struct lib_run run;
    struct bench_result tmp;
    size_t len;
    char *job = make_bin_payload(a->payload, &len);

    memset(&run, 0, sizeof(run));
    memset(&tmp, 0, sizeof(tmp));
    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    run.loop = ev_default_loop(0);
    run.pool = start_pool(a->workers, r);
    if (run.pool == NULL)
        goto out;
    if (wait_all_idle(run.loop, run.pool, a->workers) < 0) {
        bench_fail(r, "workers did not become ready");
        goto out;
    }
    r->aux[0] = max_private_kb(run.pool);
    run.job = job;
    run.len = len;
    run.window = a->window;
    run.total = a->count;
    lib_stream(&run, &tmp);
    if (!tmp.ok) {
        bench_fail(r, "%s", tmp.note);
        goto out;
    }
    if (wait_all_idle(run.loop, run.pool, a->workers) < 0) {
        bench_fail(r, "workers did not become idle");
        goto out;
    }
    r->aux[1] = max_private_kb(run.pool);
    r->ok = r->aux[0] >= 0 && r->aux[1] >= 0;
    if (!r->ok)
        bench_fail(r, "cannot read /proc/PID/smaps_rollup");
out:
    if (run.pool != NULL)
        fp_pool_free(run.pool);
    free(job);
}

/* ------------------------------------------------------------------------
 * Mixed durations: every worker idle (and, with a->count, after that many
 * echo jobs), submit the whole burst in one go, run until the last
 * outcome.  Each result is [pid, start, end] from the worker.
 * ------------------------------------------------------------------------ */

struct mixed_run {
    struct ev_loop        *loop;
    struct mixed_timeline *tl;
    unsigned               done, bad;
};

struct mixed_slot {
    struct mixed_run *run;
    unsigned          i;
};

static void
mixed_done(const fp_outcome *o, void *arg)
{
    struct mixed_slot *s = arg;
    struct mixed_run *run = s->run;
    msgpack_unpacked u;
    int good = 0;

    run->tl->t_last = now_s();
    msgpack_unpacked_init(&u);
    if (o->kind == FP_OK
        && msgpack_unpack_next(&u, o->data, o->len, NULL) == MSGPACK_UNPACK_SUCCESS
        && u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 3) {
        const msgpack_object *v = u.data.via.array.ptr;
        if (v[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
            && v[1].type == MSGPACK_OBJECT_FLOAT64
            && v[2].type == MSGPACK_OBJECT_FLOAT64) {
            run->tl->pid[s->i] = (long)v[0].via.u64;
            run->tl->start[s->i] = v[1].via.f64;
            run->tl->end[s->i] = v[2].via.f64;
            good = 1;
        }
    }
    msgpack_unpacked_destroy(&u);
    if (!good && run->bad++ == 0)
        fprintf(stderr, "fpbench: mixed job %u: outcome %s, %zu bytes, not "
                "[pid, start, end]\n", s->i, fp_kind_name(o->kind), o->len);
    if (++run->done == MIXED_JOBS)
        ev_break(run->loop, EVBREAK_ALL);
}

void
bench_lib_mixed(const struct bench_args *a, struct bench_result *r)
{
    static struct mixed_timeline tl;
    static struct mixed_slot slots[MIXED_JOBS];
    struct mixed_run mr = { .loop = ev_default_loop(0), .tl = &tl };
    char jobs[MIXED_JOBS][9];
    size_t lens[MIXED_JOBS];
    fp_pool *pool = start_pool(a->workers, r);

    if (pool == NULL)
        return;
    for (unsigned i = 0; i < MIXED_JOBS; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_uint32(&pk, mixed_job_us(i));
        lens[i] = sb.size <= sizeof(jobs[i]) ? sb.size : 0;
        memcpy(jobs[i], sb.data, lens[i]);
        msgpack_sbuffer_destroy(&sb);
        slots[i] = (struct mixed_slot){ &mr, i };
    }
    if (wait_all_idle(mr.loop, pool, a->workers) < 0) {
        bench_fail(r, "workers did not become ready");
        goto out;
    }
    if (a->count > 0) {
        /* The pool just ran trivial jobs, as a pool serving the echo rows
         * would have: its run-time estimate is microseconds. */
        struct lib_run run;
        struct bench_result tmp;
        size_t len;
        char *echo = make_bin_payload(32, &len);
        memset(&run, 0, sizeof(run));
        memset(&tmp, 0, sizeof(tmp));
        if (echo == NULL) {
            bench_fail(r, "out of memory");
            goto out;
        }
        run.loop = mr.loop;
        run.pool = pool;
        run.job = echo;
        run.len = len;
        run.window = 256;
        run.total = a->count;
        lib_stream(&run, &tmp);
        free(echo);
        if (!tmp.ok) {
            bench_fail(r, "echo jobs first: %s", tmp.note);
            goto out;
        }
        if (wait_all_idle(mr.loop, pool, a->workers) < 0) {
            bench_fail(r, "workers did not become idle after the echo jobs");
            goto out;
        }
    }
    r->rss_before_kb = proc_rss_kb(0);
    double cpu0 = self_cpu_s();
    tl.t0 = now_s();
    for (unsigned i = 0; i < MIXED_JOBS; i++) {
        const char *why = NULL;
        if (fp_pool_submit(pool, jobs[i], lens[i], NULL, mixed_done, &slots[i],
                           NULL, &why) < 0) {
            bench_fail(r, "submit rejected: %s", why ? why : "?");
            goto out;
        }
    }
    ev_run(mr.loop, 0);
    if (mr.done != MIXED_JOBS)
        bench_fail(r, "the loop stopped after %u of %u outcomes", mr.done,
                   MIXED_JOBS);
    else if (mr.bad > 0)
        bench_fail(r, "%u outcomes were not ok [pid, start, end]", mr.bad);
    else {
        mixed_finish(a->count > 0 ? "mixed, library after echo jobs"
                                  : "mixed, library (fresh pool)", &tl, r);
        r->cpu_us_per_job = (self_cpu_s() - cpu0) * 1e6 / MIXED_JOBS;
        r->rss_after_kb = proc_rss_kb(0);
    }
out:
    fp_pool_free(pool);
}

/* ------------------------------------------------------------------------
 * Rate limits: a->count jobs of one key throttled to RATE_LIMIT starts/s
 * (burst a->burst), all submitted at once, while a window of unkeyed
 * echo jobs streams past them.  The bucket starts full, so the last keyed
 * job can start (a->count - a->burst) / RATE_LIMIT s after the submit:
 * that is the rate achieved.  The unkeyed stream (a->window jobs
 * outstanding; 0: none) shows that the waiting jobs hold no worker and no
 * window slot.
 * ------------------------------------------------------------------------ */

struct rate_run {
    struct ev_loop *loop;
    fp_pool        *pool;
    const char     *job;
    size_t          len;
    unsigned        keyed_total, keyed_done, free_out, window;
    uint64_t        free_done, bad;
    double          t_submit, t_last_keyed;
    const char     *reject;
};

static void rate_free_done(const fp_outcome *o, void *arg);

static void
rate_refill(struct rate_run *run)
{
    while (run->keyed_done < run->keyed_total && run->free_out < run->window) {
        const char *why = NULL;
        if (fp_pool_submit(run->pool, run->job, run->len, NULL, rate_free_done, run,
                           NULL, &why) < 0) {
            run->reject = why;
            ev_break(run->loop, EVBREAK_ALL);
            return;
        }
        run->free_out++;
    }
}

static void
rate_keyed_done(const fp_outcome *o, void *arg)
{
    struct rate_run *run = arg;

    run->bad += o->kind != FP_OK;
    run->t_last_keyed = now_s();
    if (++run->keyed_done == run->keyed_total && run->free_out == 0)
        ev_break(run->loop, EVBREAK_ALL);
}

static void
rate_free_done(const fp_outcome *o, void *arg)
{
    struct rate_run *run = arg;

    run->bad += o->kind != FP_OK;
    run->free_out--;
    if (run->keyed_done < run->keyed_total)
        run->free_done++;       /* counted while the keyed jobs trickle */
    rate_refill(run);
    if (run->keyed_done == run->keyed_total && run->free_out == 0)
        ev_break(run->loop, EVBREAK_ALL);
}

void
bench_lib_rate(const struct bench_args *a, struct bench_result *r)
{
    struct rate_run run = { .loop = ev_default_loop(0), .keyed_total = a->count,
                            .window = a->window };
    fp_job_opts keyed = { .timeout = -1, .key = "throttled" };
    size_t len;
    char *job = make_bin_payload(32, &len);

    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    run.job = job;
    run.len = len;
    run.pool = start_pool(a->workers, r);
    if (run.pool == NULL)
        goto out;
    if (wait_all_idle(run.loop, run.pool, a->workers) < 0) {
        bench_fail(r, "workers did not become ready");
        goto out;
    }
    if (fp_pool_limit(run.pool, "throttled", RATE_LIMIT, a->burst) < 0) {
        bench_fail(r, "fp_pool_limit failed");
        goto out;
    }
    run.t_submit = now_s();
    for (unsigned i = 0; i < run.keyed_total; i++) {
        const char *why = NULL;
        if (fp_pool_submit(run.pool, job, len, &keyed, rate_keyed_done, &run, NULL,
                           &why) < 0) {
            bench_fail(r, "submit rejected: %s", why);
            goto out;
        }
    }
    rate_refill(&run);
    ev_run(run.loop, 0);
    if (run.reject != NULL) {
        bench_fail(r, "submit rejected: %s", run.reject);
    } else if (run.bad > 0 || run.keyed_done != run.keyed_total) {
        bench_fail(r, "%llu outcomes not ok, %u of %u keyed jobs done",
                   (unsigned long long)run.bad, run.keyed_done, run.keyed_total);
    } else {
        double secs = run.t_last_keyed - run.t_submit;
        r->ok = 1;
        r->secs = secs;
        r->aux[0] = (double)(run.keyed_total - a->burst) / secs;
        r->aux[1] = r->aux[0] / RATE_LIMIT;
        r->aux[2] = (double)run.free_done / secs;
        r->jobs = run.keyed_total;
    }
out:
    if (run.pool != NULL)
        fp_pool_free(run.pool);
    free(job);
}
