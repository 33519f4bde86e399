/*
 * bench.h — fpbench internals: one measured run of one case, the helpers
 * every case shares (clocks, a constant-memory latency histogram, /proc
 * readers, payloads), and the cases themselves:
 *
 *   bench_lib.c   the library in-process: throughput, crash -> replacement,
 *                 master RSS over many jobs, an idle worker's memory;
 *   bench_raw.c   the physical bound: a raw socketpair echo loop;
 *   bench_ext.c   the daemon (pipelined MessagePack-RPC), forkpoolctl map,
 *                 and the Python multiprocessing baseline;
 *   bench_util.c  the shared helpers;
 *   fpbench.c     options, the plan of runs, the table.
 *
 * Every case runs in a forked "runner" process of its own (run_isolated),
 * so each library pool gets a fresh libev default loop and a fresh heap,
 * and a case that hangs or dies costs one row, not the run.
 */
#ifndef FP_BENCH_H
#define FP_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- one measured run --------------------------------------------------- */

struct bench_result {
    int      ok;            /* 1 = measured; 0 = see note */
    char     note[160];
    uint64_t jobs;          /* jobs counted in the timed window */
    double   secs;          /* length of the timed window */
    double   jobs_s;
    double   p50_us, p99_us;        /* submit -> outcome; < 0 = n/a */
    double   cpu_us_per_job;        /* master CPU; < 0 = n/a */
    double   rss_before_kb, rss_after_kb;   /* master; < 0 = n/a */
    double   aux[8];        /* case-specific figures (see each case) */
    double   foreign_cpus;  /* CPUs kept busy by processes not ours, on
                               average over the run (set by run_isolated) */
};

/* What a case is asked to do. */
struct bench_args {
    size_t      payload;    /* bytes of the msgpack bin's body */
    unsigned    workers;
    unsigned    window;     /* jobs outstanding */
    double      seconds;    /* timed window */
    const char *forkpoold;
    const char *forkpoolctl;
    const char *python;     /* bench_py.py, or NULL */
    const char *tmpdir;     /* for sockets and logs */
    int         quick;
    unsigned    count;      /* case-specific: crashes, jobs, ... */
    int         batched;    /* raw: batched writes */
    const char *mode;       /* python: "imap" or "map" */
    unsigned    burst;      /* rate: the throttled key's burst */
    unsigned    spares;     /* library: fp_config.spare_workers */
};

/* The shortest timed run of forkpoolctl map, s (bench_ctl). */
#define CTL_SECONDS 1.0

typedef void (*bench_fn)(const struct bench_args *a, struct bench_result *r);

/* Run fn in a forked runner process (killed after timeout_s) and copy its
 * result out.  Returns 0, or -1 with r->ok = 0 and r->note saying why. */
int run_isolated(bench_fn fn, const struct bench_args *a,
                 struct bench_result *r, double timeout_s);

/* Mark a result failed with a printf-style note. */
void bench_fail(struct bench_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- clocks and CPU ------------------------------------------------------ */

double now_s(void);                 /* CLOCK_MONOTONIC, seconds */
double self_cpu_s(void);            /* this process: user + system */
/* user + system CPU of `pid` from /proc/PID/stat, seconds; < 0 on error. */
double proc_cpu_s(pid_t pid);
/* VmRSS of `pid` (0 = self) in KiB; < 0 on error. */
double proc_rss_kb(pid_t pid);
/* Private_Clean + Private_Dirty of `pid` from smaps_rollup, KiB; < 0. */
double proc_private_kb(pid_t pid);
/* The most private memory (KiB) of any of pids[0..n); -1 if none. */
double worst_private_kb(const pid_t *pids, size_t n);
/* Direct children of `pid`, into pids[max]; returns how many. */
size_t proc_children(pid_t pid, pid_t *pids, size_t max);
/* How many CPUs' worth the whole machine was busy over the next `secs`
 * seconds (sampled from /proc/stat while we sleep); < 0 on error. */
double background_cpus(double secs);
/* Remove a flat directory of scratch files (sockets, logs). */
void remove_tmpdir(const char *dir);

/* ---- latency histogram: log-linear buckets, ~3% wide, fixed size -------- */

#define HIST_BUCKETS (64 + 40 * 32)

struct hist {
    uint64_t n;
    uint64_t b[HIST_BUCKETS];
};

void   hist_reset(struct hist *h);
void   hist_add(struct hist *h, double secs);
/* The q-quantile (0..1) in microseconds; -1 when empty. */
double hist_quantile_us(const struct hist *h, double q);

/* ---- payloads -------------------------------------------------------------- */

/* A msgpack bin of `n` body bytes (a fixed pseudo-random pattern) in a
 * malloc'd buffer; *len gets the encoded size.  NULL when out of memory. */
char *make_bin_payload(size_t n, size_t *len);

/* ---- mixed durations (SPEC §9) ------------------------------------------ */

/* One burst of MIXED_JOBS jobs submitted at once: MIXED_LONGS of them sleep
 * MIXED_LONG_US, the rest MIXED_SHORT_US.  The long ones are jobs 0, 2, 4
 * and 6 (mixed_long_at): the first jobs, one every other, so that a pool
 * dealing jobs round-robin into per-worker windows hands all four to one
 * worker (makespan ~4.2 s), while a pool that hands one job at a time to
 * idle workers, or takes jobs sent ahead back, splits them 2 + 2. */
#define MIXED_JOBS      200
#define MIXED_LONGS     4
#define MIXED_LONG_US   1000000u
#define MIXED_SHORT_US  2000u
extern const unsigned mixed_long_at[MIXED_LONGS];

/* How long job i (0-based, in submission order) sleeps, microseconds. */
unsigned mixed_job_us(unsigned i);
/* max(total work / 2 workers, longest job), seconds: 2.196. */
double   mixed_ideal_s(void);

/* What one burst looked like: times on CLOCK_MONOTONIC (shared by every
 * process on the machine), start/end as the worker saw them. */
struct mixed_timeline {
    double t0;                      /* first submit */
    double t_last;                  /* last outcome received */
    long   pid[MIXED_JOBS];         /* worker that ran job i; 0 = unknown */
    double start[MIXED_JOBS], end[MIXED_JOBS];
};

/* Fill r from a complete timeline (aux[0] = makespan s, aux[1] = ideal s,
 * aux[2] = makespan / ideal, aux[3] = the latest start of a long job
 * after t0, s; jobs_s = jobs / makespan) and print a one-paragraph
 * summary per worker to stderr, prefixed by `who`. */
void mixed_finish(const char *who, const struct mixed_timeline *tl,
                  struct bench_result *r);

/* ---- the cases -------------------------------------------------------------- */

/* bench_lib.c */
void bench_lib(const struct bench_args *a, struct bench_result *r);
/* aux[0..3] = crash->ready p50, p99 (us); outcome->ready p50, p99 (us);
 * aux[4] = crashes measured. */
void bench_crash(const struct bench_args *a, struct bench_result *r);
/* The master's RSS (KiB) after a->count / 100 jobs in aux[0], after
 * a->count / 10 in aux[1], after a->count in aux[2]. */
void bench_rss(const struct bench_args *a, struct bench_result *r);
/* aux[0] = library worker idle, fresh; aux[1] = after jobs (KiB). */
void bench_lib_idle_mem(const struct bench_args *a, struct bench_result *r);
/* The mixed-durations burst through the library (2 workers, default
 * config); a->count > 0: that many 32 B echo jobs first, on the same pool
 * (its run-time estimate then says "trivial jobs").  See mixed_finish. */
void bench_lib_mixed(const struct bench_args *a, struct bench_result *r);
/* a->count jobs of one key throttled to RATE_LIMIT/s (burst a->burst)
 * beside a stream of a->window unkeyed echo jobs (0: alone): aux[0] = achieved starts/s of the
 * key, aux[1] = aux[0] / RATE_LIMIT, aux[2] = unkeyed jobs/s meanwhile.
 * fpbench runs it with a burst of 10 and of 1 (where every token is
 * spent as soon as it is due, so a late wake-up costs rate). */
#define RATE_LIMIT 1000.0
void bench_lib_rate(const struct bench_args *a, struct bench_result *r);

/* bench_raw.c */
void bench_raw(const struct bench_args *a, struct bench_result *r);

/* bench_ext.c */
void bench_daemon(const struct bench_args *a, struct bench_result *r);
/* aux[0] = forkpoolctl's own CPU per job (us); aux[1] = its start-up and
 * exit with no jobs (ms). */
void bench_ctl(const struct bench_args *a, struct bench_result *r);
void bench_python(const struct bench_args *a, struct bench_result *r);
/* The mixed-durations burst through bench_py.py --mode mixed. */
void bench_python_mixed(const struct bench_args *a, struct bench_result *r);
/* aux[0] = daemon worker idle, fresh; aux[1] = after jobs (KiB). */
void bench_daemon_idle_mem(const struct bench_args *a, struct bench_result *r);

#endif /* FP_BENCH_H */
