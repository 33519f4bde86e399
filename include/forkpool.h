/*
 * forkpool.h — a crash-isolating process pool.
 *
 * A master (your libev program, or forkpoold) forks a fixed set of worker
 * processes, each tied to it by one socketpair, and dispatches msgpack jobs
 * to them.  A worker that segfaults, hangs or exits costs the job it was
 * running and nothing else: the job gets a precise outcome and the worker is
 * replaced.
 *
 * This header holds two contracts:
 *   1. the module ABI (fp_module) — what a handler .so exports;
 *   2. the embedding API (fp_pool_*) — run a pool inside a libev program.
 *
 * Callbacks (a job's done, the drain notice) run from one place, once per
 * loop iteration, never from inside a call into the pool: a callback may
 * submit, cancel, scale, drain or free the pool.  The log callback runs
 * where its event happens and must not call into the pool.
 */
#ifndef FORKPOOL_H
#define FORKPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Module ABI
 * ------------------------------------------------------------------------ */

#define FP_MODULE_ABI 1

typedef struct fp_module {
    int         abi;    /* FP_MODULE_ABI */
    const char *name;
    /* Optional. Once per worker, after fork, before the sandbox locks down
     * and before the first job. Return 0, or nonzero to fail the start. */
    int  (*init)(void **state, const msgpack_object *config);
    /* Required. One job. Pack exactly one msgpack object into `out`.
     * Return 0: outcome ok, result = that object.
     * Return nonzero: outcome error, detail = that object. */
    int  (*handle)(void *state, const msgpack_object *job, msgpack_packer *out);
    /* Optional. When the worker stops cleanly. */
    void (*fini)(void *state);
} fp_module;

/* From inside `handle`, report progress of the running job: `data`/`len`
 * is exactly one msgpack value (copied; a percentage, a map of counters,
 * anything).  It goes to the master at once, ahead of the job's result and
 * never after it, and reaches the job's submitter if it asked for progress
 * (fp_job_opts.progress; forkpoold's "progress": true).  Each call also
 * counts as the job's heartbeat (fp_config.heartbeat_timeout).
 *
 * Returns 0, or -1 with errno set: ESRCH when no job is running (outside
 * `handle`, or in a process that is not a forkpool worker), EINVAL when
 * data is not exactly one msgpack value, EMSGSIZE when it is larger than
 * the pool's frame limit (max_job_bytes, max_job_objects, nesting), EPIPE
 * when the master is gone, ENOMEM.  Safe to call from any thread of the worker
 * while `handle` runs; once `handle` has returned it fails with ESRCH.
 *
 * Provided by the worker runtime: by libforkpool for an embedding program,
 * and by forkpoold itself for a --module .so, which therefore builds
 * against this header alone and resolves the symbol when it is loaded. */
int fp_progress(const char *data, size_t len);

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------ */

typedef enum fp_kind {
    FP_OK = 0,      /* handler succeeded; data = result */
    FP_ERROR,       /* handler reported failure; data = detail */
    FP_CRASHED,     /* worker died while running the job (after retries) */
    FP_TIMEOUT,     /* job ran past its timeout; worker killed, replaced */
    FP_CANCELLED,   /* cancelled, or cut off by the drain timeout */
    FP_REJECTED     /* never accepted (only from fp_pool_submit's reason) */
} fp_kind;

/* "ok", "error", "crashed", "timeout", "cancelled", "rejected". */
const char *fp_kind_name(fp_kind kind);

/* The single final outcome of an accepted job.  `data`/`len` is one
 * msgpack-encoded value: the result for FP_OK, the detail otherwise (a
 * string such as "killed by SIGSEGV" for outcomes the pool produces).  It is
 * valid only during the callback, unless the callback keeps it
 * (fp_outcome_keep). */
typedef struct fp_outcome {
    uint64_t    id;
    fp_kind     kind;
    const char *data;
    size_t      len;
    unsigned    attempts;   /* how many times the job was started */
    /* The receipt (SPEC 3 "Receipt") of the job's last attempt; all zero
     * for a job that never started. */
    struct fp_receipt {
        double   wait_ms;   /* accepted -> started */
        double   run_ms;    /* started -> ended */
        double   cpu_ms;    /* the worker's user+system CPU for the job,
                               its children included */
        uint64_t maxrss_kb; /* the worker's peak resident memory during
                               the job */
    } stats;
    /* FP_CRASHED: the last lines (at most FP_STDERR_TAIL bytes) the worker
     * wrote to stderr during the job; otherwise NULL, 0. */
    const char *stderr_tail;
    size_t      stderr_len;
} fp_outcome;

typedef struct fp_receipt fp_receipt;

/* A job's progress (fp_progress in its handler, or ["progress", id, value]
 * from an --exec worker): `value`/`len` is one msgpack value, valid only
 * during the callback.  Called from the same place as the done callbacks,
 * in the order the worker sent them, and always before the job's outcome.
 * Should callbacks fall behind a worker that reports faster than the loop
 * turns, at most FP_PROGRESS_PENDING bytes of a job's progress wait for
 * delivery: past that the older values waiting are dropped and the latest
 * kept (a larger single value is kept alone). */
typedef void (*fp_progress_fn)(uint64_t id, const char *value, size_t len,
                               void *arg);

#define FP_PROGRESS_PENDING ((size_t)1 << 20)

#define FP_STDERR_TAIL 4096u

typedef void (*fp_done_fn)(const fp_outcome *outcome, void *arg);


/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

/* Default limits: the one home of each, used by the engine (for a zero
 * field of fp_config), forkpoold's help text and option ranges, and
 * forkpoolctl. */
#define FP_DEFAULT_MAX_WORKERS      1024u
#define FP_DEFAULT_QUEUE_MAX        65536u
#define FP_DEFAULT_QUEUE_MAX_BYTES  ((size_t)1 << 30)        /* 1 GiB */
#define FP_DEFAULT_MAX_JOB_BYTES    ((size_t)64 << 20)       /* 64 MiB */
#define FP_DEFAULT_MAX_JOB_OBJECTS  ((size_t)1 << 20)        /* 1 Mi */
#define FP_DEFAULT_PREFETCH         256u
#define FP_DEFAULT_PREFETCH_WAIT    0.001                    /* seconds */
#define FP_DEFAULT_DRAIN_TIMEOUT    30.0                     /* seconds */
#define FP_DEFAULT_START_TIMEOUT    30.0                     /* seconds */
#define FP_DEFAULT_IDLE_TIMEOUT     10.0                     /* seconds */
#define FP_POISON_PAYLOADS          4096u   /* payloads fp_config.poison_after
                                               remembers at a time */
#define FP_POISON_AFTER_MAX         65535u  /* the largest poison_after */
#define FP_MAX_SPARE_WORKERS        64u     /* the most fp_config.spare_workers */

enum fp_log_level { FP_LOG_ERR = 0, FP_LOG_WARN, FP_LOG_INFO, FP_LOG_DEBUG };
typedef void (*fp_log_fn)(int level, const char *msg, void *arg);

typedef struct fp_config {
    unsigned    workers;        /* worker count; 0 = online CPUs */
    unsigned    max_workers;    /* upper bound for scaling; 0 = 1024
                                   (FP_DEFAULT_MAX_WORKERS) */
    double      job_timeout;    /* default per-job timeout in s; 0 = none */
    size_t      queue_max;      /* queued (not yet running) jobs; 0 = 65536 */
    size_t      queue_max_bytes;/* payload bytes held for unfinished jobs
                                   before submissions are refused "queue
                                   full"; 0 = 1 GiB */
    size_t      max_job_bytes;  /* largest job/result; 0 = 64 MiB */
    size_t      max_job_objects;/* most msgpack objects in one job/result;
                                   0 = 1048576 */
    unsigned    max_jobs;       /* recycle a worker after N jobs; 0 = never */
    unsigned    prefetch;       /* most jobs sent ahead to one busy worker
                                   (its window); 0 = 256 */
    double      prefetch_wait;  /* a job is sent ahead to a busy worker only
                                   while it would start there within this
                                   many seconds, judged from measured run
                                   times; 0 = 0.001; < 0 = whenever its
                                   window has room (for jobs known to be
                                   trivial) */
    size_t      max_rss;        /* recycle a worker, between jobs, once its
                                   resident memory passes this many bytes;
                                   0 = never */
    double      slow_log;       /* log a job still running after this many
                                   seconds (once); 0 = never */
    double      heartbeat_timeout; /* a running job that reports no
                                   progress (fp_progress) for this many
                                   seconds is killed: FP_TIMEOUT, detail
                                   "no heartbeat for S s"; each progress
                                   report starts the count again, so a job
                                   that reports runs as long as it needs
                                   (its own timeout still applies); 0 =
                                   off */
    double      start_timeout;  /* a worker not ready this many seconds
                                   after its fork (its init still running,
                                   an exec'd program silent) is killed and
                                   counts as a failed start (restarted
                                   with backoff); 0 = 30
                                   (FP_DEFAULT_START_TIMEOUT); < 0 = no
                                   limit */

    /* Dynamic pool (autoscale_max 0 = off, a fixed size).  The pool starts
     * autoscale_min workers (or `workers`, if set, clamped to the range);
     * while jobs wait unstarted it adds workers, 1, 2, 4, ... a second, up
     * to autoscale_max; a worker idle for idle_timeout seconds is retired
     * while more than autoscale_min run.  Needs 1 <= autoscale_min <=
     * autoscale_max <= max_workers. */
    unsigned    autoscale_min;
    unsigned    autoscale_max;
    double      idle_timeout;   /* seconds; 0 = 10 (FP_DEFAULT_IDLE_TIMEOUT) */

    /* Spare workers: this many more processes, started and ready but given
     * no job.  When a worker dies (a crash, a kill, a timeout) or is
     * recycled, a ready spare takes its place at once -- no fork and no
     * init on that path -- and a new spare is started behind it.  Each
     * costs an idle worker's memory.  0 = none (the default); at most
     * FP_MAX_SPARE_WORKERS. */
    unsigned    spare_workers;

    /* Where a worker's code comes from: exactly one of these. */
    const fp_module *module;        /* run in-process in the forked worker */
    const char      *module_path;   /* or: each new worker dlopens this .so
                                       (so a reload picks up a new file) */
    const char      *module_config; /* msgpack bytes handed to init, or NULL */
    size_t           module_config_len;
    char *const     *exec_argv;     /* or: exec this protocol-speaking program */

    /* Optional: show a title for a worker process ("forkpool: worker 3
     * busy job 123"); called inside module workers.  forkpoold sets the
     * command line seen in ps with it. */
    void      (*title)(const char *title, void *arg);
    void       *title_arg;

    /* Confinement of each worker (SPEC 5.1; README "Threat model"). */
    int         sandbox;        /* FP_SANDBOX_BASIC (the default, 0),
                                   FP_SANDBOX_NONE or FP_SANDBOX_STRICT */
    size_t      rlimit_as;      /* address space per worker, bytes; 0 = none */
    unsigned    rlimit_cpu;     /* CPU seconds each job may use; 0 = none */
    unsigned    rlimit_nofile;  /* open files per worker; 0 = inherited */
    const char *user;           /* run workers as this user when the master
                                   is root; NULL = as the master */
    int         worker_sched;   /* FP_WORKER_SCHED_BATCH (the default, 0) or
                                   FP_WORKER_SCHED_INHERIT; see below */

    /* The pool-wide rate limit (a token bucket): at most rate_limit job
     * starts per second, in bursts of up to rate_burst; 0 = no limit.
     * rate_burst 0 = max(1, rate_limit); both at most FP_LIMIT_MAX.  See
     * fp_pool_limit. */
    double      rate_limit;
    double      rate_burst;

    /* Poison payloads: a job whose exact bytes have crashed poison_after
     * workers (a crash of each attempt counts, retries included) within
     * the last hour is refused at submission, reason "poison: crashed K
     * workers" (K = poison_after), and the log names the payload's hash
     * once, when it is quarantined.  The pool remembers the hashes of at
     * most FP_POISON_PAYLOADS payloads (BLAKE2b-128; a fixed table of about
     * 150 KiB, allocated only when this is set); 0 = off. */
    unsigned    poison_after;

    /* 1: the calling process becomes a child subreaper (prctl
     * PR_SET_CHILD_SUBREAPER) once the pool starts, so that a process a
     * job started and moved out of its worker's process group (setsid)
     * comes up to it when a timeout, cancel or crash kills the worker
     * mid-job; and whenever a child of the process ends, the pool kills
     * (SIGKILL, with the group each leads) every child that is not one of
     * its workers; fp_pool_free kills and reaps every child left.  Only
     * for a process whose children are all the pool's:
     * forkpoold sets it.  0 = off: such a process outlives the job. */
    int         reap_orphans;

    fp_log_fn   log;            /* NULL = lines on stderr */
    void       *log_arg;
    int         log_level;      /* most verbose level emitted; default INFO */
} fp_config;

/* Sandbox levels (fp_config.sandbox).
 *   none:   fork hygiene only (fds closed, signals reset, parent-death
 *           signal, own process group, no core files).
 *   basic:  + no_new_privs, the rlimit_* limits, the master non-dumpable.
 *   strict: + a seccomp allowlist loaded after the module's init (a
 *           forbidden system call kills the worker: "killed by SIGSYS") and,
 *           where the kernel allows, a network namespace of its own.  Needs
 *           a module handler (not exec_argv). */
enum fp_sandbox_level {
    FP_SANDBOX_BASIC = 0,
    FP_SANDBOX_NONE,
    FP_SANDBOX_STRICT
};

/* Scheduling policy of workers (fp_config.worker_sched).
 *   batch:   when the master runs under the normal policy (SCHED_OTHER),
 *            each worker, and what its jobs start, runs under SCHED_BATCH:
 *            the same share of the CPU (nice is unchanged), but a worker the
 *            master wakes with jobs does not preempt the master on its CPU.
 *            A master started under another policy (chrt(1), systemd's
 *            CPUSchedulingPolicy=) passes its own on unchanged.
 *   inherit: workers run under the master's policy. */
enum fp_worker_sched {
    FP_WORKER_SCHED_BATCH = 0,
    FP_WORKER_SCHED_INHERIT
};

/* Fill `cfg` with defaults (everything zero/NULL, log level INFO). */
void fp_config_init(fp_config *cfg);

/* A group of jobs held back or let go together (fp_group_new). */
typedef struct fp_group fp_group;

/* Per-job options for fp_pool_submit. */
typedef struct fp_job_opts {
    double   timeout;   /* seconds; < 0 = pool default; 0 = none */
    unsigned retries;   /* attempts after a crash; default 0 */
    const char *key;    /* rate-limit key (copied; see fp_pool_limit);
                           NULL or "" = none */
    fp_group   *group;  /* the job's group (of this pool), or NULL */
    double   expires;   /* seconds: a job not started this long after its
                           acceptance ends FP_CANCELLED, detail "expired
                           before it started" (wherever it waits: the
                           queue, a rate-limit lane, or sent ahead to a
                           busy worker); 0 = never */
    fp_progress_fn progress;    /* the job's progress reports, or NULL:
                                   then they are dropped (they still count
                                   as heartbeats) */
    void          *progress_arg;
} fp_job_opts;

/* ------------------------------------------------------------------------
 * The pool
 * ------------------------------------------------------------------------ */

typedef struct fp_pool fp_pool;
struct ev_loop;

/* Create a pool on `loop`, which must be libev's default loop (only it can
 * watch children).  The config is copied; the module and exec_argv it points
 * to must outlive the pool.  Returns NULL and writes a message to `err` on
 * failure.  Nothing is forked until fp_pool_start(). */
fp_pool *fp_pool_new(struct ev_loop *loop, const fp_config *cfg,
                     char *err, size_t errlen);

/* Fork the workers.  Returns 0, or -1 with errno set. */
int fp_pool_start(fp_pool *pool);

/* Submit one job: `job`/`len` is exactly one msgpack value (it is copied).
 * On acceptance returns 0, stores the new id in *id (if not NULL), and
 * `done` is later called exactly once with the final outcome — never from
 * inside this call.  On rejection returns -1 and sets *reason (if not NULL)
 * to a static string: "queue full", "draining", "job too large",
 * "malformed"; `done` is not called. */
int fp_pool_submit(fp_pool *pool, const char *job, size_t len,
                   const fp_job_opts *opts, fp_done_fn done, void *arg,
                   uint64_t *id, const char **reason);

/* One job of a batch: exactly one msgpack value. */
typedef struct fp_job_buf {
    const char *data;
    size_t      len;
} fp_job_buf;

/* Submit n jobs in one call, all or none.  On acceptance returns 0: the
 * jobs get the consecutive ids *first_id .. *first_id + n - 1 in order, and
 * `done` is later called once per job (never from inside this call), with
 * the same `arg` (o->id - first_id is the job's index).  Otherwise returns
 * -1 with *reason as for fp_pool_submit (or "empty batch") and accepts
 * none; a batch larger than the queue's free room is "queue full". */
int fp_pool_submit_batch(fp_pool *pool, const fp_job_buf *jobs, size_t n,
                         const fp_job_opts *opts, fp_done_fn done, void *arg,
                         uint64_t *first_id, const char **reason);

/* From inside a job's `done` callback only: keep the outcome's data
 * (outcome->data, ->len) past the callback, at the same address, without
 * copying it -- to pass a big result on as it is written out, say.
 * Returns a handle for fp_outcome_release, which frees the data (before or
 * after the pool is freed); or NULL when the data cannot be kept (copy it
 * then).  The other fields of the outcome stay the pool's. */
void *fp_outcome_keep(fp_pool *pool, const fp_outcome *outcome);
void  fp_outcome_release(void *kept);

/* Load the module a .so exports as `forkpool_module` and check its ABI.
 * Returns it (and the dlopen handle in *handle, for dlclose), or NULL with a
 * message in err. */
const fp_module *fp_module_load(const char *path, void **handle,
                                char *err, size_t errlen);

/* The same with a msgpack_object, packed for you. */
int fp_pool_submit_object(fp_pool *pool, const msgpack_object *job,
                          const fp_job_opts *opts, fp_done_fn done, void *arg,
                          uint64_t *id, const char **reason);

/* Cancel job `id`: a queued one is dropped, a running one's worker is killed
 * and replaced; either ends FP_CANCELLED.  Returns 1 if found, 0 if not. */
int fp_pool_cancel(fp_pool *pool, uint64_t id);

/* Change the worker count (1..max_workers; with autoscale, within
 * [autoscale_min, autoscale_max]).  Returns 0 or -1 (EINVAL; EBUSY while
 * draining). */
int fp_pool_scale(fp_pool *pool, unsigned workers);

/* Replace every worker by a fresh one after its current job, one at a time. */
void fp_pool_reload(fp_pool *pool);

typedef void (*fp_drained_fn)(fp_pool *pool, int cut_off, void *arg);

/* Stop taking jobs; finish every accepted one; stop the workers; then call
 * `done` once with cut_off = 0.  If `timeout` seconds (0 = none) pass first,
 * or fp_pool_drain is called again, what is left ends FP_CANCELLED, busy
 * workers are killed, and `done` gets cut_off = 1. */
void fp_pool_drain(fp_pool *pool, double timeout, fp_drained_fn done,
                   void *arg);

#define FP_LATENCY_BUCKETS 12

typedef struct fp_stats {
    int      draining;
    int      reloading;     /* a rolling reload is under way */
    unsigned workers;       /* target worker count */
    unsigned autoscale_min, autoscale_max;  /* its range; 0, 0 = fixed size */
    unsigned live;          /* worker processes alive now */
    unsigned busy, idle, starting;
    unsigned spares;        /* of `live`: spare workers ready to take a
                               place (fp_config.spare_workers; one still
                               starting counts in `starting`) */
    size_t   queued;
    uint64_t submitted, completed, failed, crashed, timed_out, cancelled;
    uint64_t restarts;      /* workers replaced after they died */
    unsigned start_failures;/* longest current streak of failed starts */
    double   uptime_s;
    /* Run time of finished jobs (ok or error): a cumulative histogram with
     * upper bounds fp_latency_bounds[i] seconds; the last bucket is +Inf. */
    uint64_t latency_count[FP_LATENCY_BUCKETS];
    double   latency_sum;
    /* From the receipts (fp_outcome.stats) of the jobs that ended after
     * they had started (attempts > 0), whatever their outcome: how long
     * they waited (wait_ms) and ran (run_ms), in seconds, as cumulative
     * histograms over the same bounds. */
    uint64_t wait_count[FP_LATENCY_BUCKETS];
    double   wait_sum;
    uint64_t run_count[FP_LATENCY_BUCKETS];
    double   run_sum;
    /* Jobs ended FP_TIMEOUT, by cause: their own timeout, and silence
     * past heartbeat_timeout (timed_out counts both). */
    uint64_t timeouts_deadline, timeouts_heartbeat;
    /* poison_after: payloads quarantined now, and submissions refused
     * because of one (a batch counts once). */
    size_t   poisoned;
    uint64_t poison_rejected;
    /* Events (fp_pool_events) that did not fit the pool's queue of
     * FP_EVENT_QUEUE_MAX and were lost. */
    uint64_t events_lost;
} fp_stats;

extern const double fp_latency_bounds[FP_LATENCY_BUCKETS - 1];

/* One live worker, for status displays. */
typedef struct fp_worker_info {
    pid_t       pid;
    const char *state;      /* "starting", "idle", "busy", "stopping",
                               "spare" (fp_config.spare_workers) */
    uint64_t    job;        /* running job id, 0 = none */
    double      job_age_s;  /* how long it has been running */
    unsigned    queued;     /* further jobs prefetched behind it */
    unsigned    jobs_done;
    size_t      rss;        /* resident bytes (0 if unknown) */
} fp_worker_info;

/* Fill up to `max` rows, one per live worker; returns how many exist. */
size_t fp_pool_worker_info(const fp_pool *pool, fp_worker_info *rows, size_t max);

void fp_pool_stats(const fp_pool *pool, fp_stats *st);

/* Live worker pids into `pids` (at most `max`); returns how many exist. */
size_t fp_pool_pids(const fp_pool *pool, pid_t *pids, size_t max);

/* ------------------------------------------------------------------------
 * Events: what the pool does, as a stream
 * ------------------------------------------------------------------------ */

typedef enum fp_event_type {
    FP_EVENT_JOB,       /* a job's final outcome */
    FP_EVENT_WORKER,    /* a worker process's life */
    FP_EVENT_POOL,      /* the pool as a whole */
} fp_event_type;

/* One event.  Valid only during the callback. */
typedef struct fp_event {
    fp_event_type     type;
    /* FP_EVENT_WORKER: "spawned" (forked), "ready" (takes jobs),
     * "retired" (takes no more jobs; it goes once its window is done),
     * "exited" (its process is gone).  FP_EVENT_POOL: "scale" (a new
     * size: fp_pool_scale, SIGTTIN/SIGTTOU, or the autoscaler), "reload"
     * (a rolling reload begins), "drain" (a drain begins).  NULL for
     * FP_EVENT_JOB. */
    const char       *what;
    const fp_outcome *outcome;  /* FP_EVENT_JOB (as its done callback gets) */
    pid_t             pid;      /* FP_EVENT_WORKER */
    /* FP_EVENT_WORKER, or NULL: why it exited ("exited with status 0",
     * "killed by SIGSEGV", ...) or was retired ("scale", "reload", "idle",
     * "max-jobs", "max-rss", "rlimit-cpu", "drain"). */
    const char       *detail;
    unsigned          workers;  /* FP_EVENT_POOL: the size it aims at */
} fp_event;

typedef void (*fp_event_fn)(const fp_event *ev, void *arg);

/* The most worker and pool events held for delivery at a time (beyond it
 * they are lost and counted: fp_stats.events_lost). */
#define FP_EVENT_QUEUE_MAX 4096u

/* From now on call `fn` with each event (NULL: no more; the pool then
 * records none, so events cost nothing while nobody listens).  Events are
 * delivered from the same place as done callbacks, in the order they
 * happened: a job's event comes just before its done callback, and a
 * worker or pool event after the outcomes settled before it and before
 * those settled after it.  fn may call into the pool as a done callback
 * may.  Events pending when it is replaced or cleared are dropped. */
void fp_pool_events(fp_pool *pool, fp_event_fn fn, void *arg);

/* Rate limits: a token bucket per key.  A job starts (is given to a
 * worker) only with a token from its key's bucket, if that key has one,
 * and from the pool-wide bucket, if set; until then it waits in the
 * master's queue while the jobs of other keys start.  Jobs of one key
 * start in the order they were accepted.
 *
 * Set or change the bucket of `key` (NULL or "" = the pool-wide one): at
 * most `rate` starts per second (finite, 0 to FP_LIMIT_MAX; 0 = none until
 * it changes), bursts of up to `burst` (0 = max(1, rate); else finite, 1
 * to FP_LIMIT_MAX).  A new bucket starts full; a changed one keeps its
 * tokens (up to the new burst).  At most FP_LIMIT_KEYS_MAX keys have a
 * bucket at a time (the pool-wide one aside).  Returns 0, or -1 with errno
 * EINVAL (a bad rate or burst), ENOSPC (a new key past FP_LIMIT_KEYS_MAX)
 * or ENOMEM. */
int fp_pool_limit(fp_pool *pool, const char *key, double rate, double burst);

/* The largest rate (starts per second) and burst of a rate limit, for the
 * library, the limit method and --rate-limit alike: no pool starts jobs
 * that fast, so a larger one would not limit anything, and every token
 * count stays far inside what a double and a size_t hold exactly. */
#define FP_LIMIT_MAX        1e9
/* The most keys with a bucket at a time, so that neither the master's
 * memory nor the work of each dispatch grows without bound. */
#define FP_LIMIT_KEYS_MAX   10000u

/* Remove the bucket of `key` (NULL or "" = the pool-wide one); the jobs it
 * held back may start at once.  Returns 1 if there was one, else 0. */
int fp_pool_limit_remove(fp_pool *pool, const char *key);

/* One bucket, for status displays. */
typedef struct fp_limit_info {
    const char *key;        /* "" = the pool-wide bucket; valid until the
                               next call into the pool */
    double      rate;       /* tokens per second */
    double      burst;      /* most tokens held */
    double      tokens;     /* held now */
    size_t      waiting;    /* jobs in the master's queue it governs (for
                               "": every job there) */
} fp_limit_info;

/* Fill up to `max` rows, the pool-wide bucket first; returns how many
 * buckets exist. */
size_t fp_pool_limits(const fp_pool *pool, fp_limit_info *rows, size_t max);

/* Job groups.  A server with many clients gives each its own group and
 * holds it while that client does not keep up with its results (its
 * replies pile up unread): the group's jobs that have not started then
 * wait in the master's queue -- jobs sent ahead to a busy worker are taken
 * back where the worker has not started them -- while every other job goes
 * ahead.  Jobs already running go on.  Released, the group's jobs start
 * in their order again, before younger jobs.
 *
 * A new group, not held (NULL if out of memory). */
fp_group *fp_group_new(fp_pool *pool);

/* Hold (held != 0) or release the group. */
void fp_group_hold(fp_group *group, int held);

/* Cancel the group's jobs that have not started: each ends FP_CANCELLED
 * with `detail` (a string; NULL = "cancelled"), its callback later as
 * usual.  Jobs already running go on.  Returns how many were cancelled. */
size_t fp_group_cancel_queued(fp_group *group, const char *detail);

/* Done with the group: it is released, and its memory goes once its last
 * job has ended (the jobs themselves go on).  May be called after
 * fp_pool_free.  (Each fp_group_* function ignores a NULL group.) */
void fp_group_free(fp_group *group);

/* Kill every worker at once and free the pool.  Jobs still pending end
 * FP_CANCELLED ("pool freed"), their callbacks run inside this call (a
 * submission from one is rejected, "draining"); drain first for a graceful
 * stop.  May be called from a done or drained callback: it takes effect as
 * that callback returns. */
void fp_pool_free(fp_pool *pool);

#ifdef __cplusplus
}
#endif
#endif /* FORKPOOL_H */
