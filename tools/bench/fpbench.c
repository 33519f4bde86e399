/*
 * fpbench.c — forkpool's benchmark (SPEC §9): every figure measured side by
 * side with its baselines in the same run, then one table.
 *
 * For each payload (a msgpack bin of 32 B, 4 KiB, 1 MiB) and each of R
 * rounds, every case runs once, interleaved, in a fresh runner process:
 * the raw socketpair bound (batched, and one write per message), the
 * library with 1, 2 and 4 workers, the daemon through a pipelined RPC
 * client, forkpoolctl map, and Python's multiprocessing.Pool.  Each
 * figure is the median over the rounds; each ratio is the median of the
 * per-round ratios (a pair measured seconds apart shares the machine's
 * mood).  Then, in the same run: the mixed-durations burst (library and
 * Python, each round), crash -> replacement latency, the master's RSS
 * across many jobs, an idle worker's private memory, and the SPEC §9
 * targets.
 *
 * Options: see usage().  tools/bench/bench.sh runs it against a build tree.
 */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_REPS 9
#define BG_LIMIT 0.2    /* CPUs busy with other work: above, a run is skewed */

static void
usage(FILE *f)
{
    fprintf(f,
"Usage: fpbench [--quick] [--seconds S] [--rounds N] [--forkpoold PATH]\n"
"               [--forkpoolctl PATH] [--python SCRIPT | --no-python]\n"
"               [--only TEXT] [--size BYTES] [--patience S]\n"
"\n"
"Measure forkpool against its baselines in one run and print one table.\n"
"  --quick             smoke run: short windows, one round (< 30 s)\n"
"  --seconds S         timed window of each run (default 0.4; quick 0.1)\n"
"  --rounds N          rounds of every case; figures are medians (default 3)\n"
"  --forkpoold PATH    the daemon (default src/daemon/forkpoold)\n"
"  --forkpoolctl PATH  the CLI (default src/ctl/forkpoolctl)\n"
"  --python SCRIPT     the Python baseline (default tools/bench/bench_py.py;\n"
"                      tools/bench/bench.sh passes the source tree's)\n"
"  --no-python         skip the Python baseline\n"
"  --only TEXT         run only the cases whose name contains TEXT (and\n"
"                      skip the crash, RSS and worker-memory figures);\n"
"                      'mixed' runs only the mixed-durations burst,\n"
"                      'rate' only the rate-limit figures,\n"
"                      'crash' only crash -> replacement\n"
"  --size BYTES        run only this payload size (32, 4096 or 1048576;\n"
"                      skips the mixed-durations burst unless --only names it)\n"
"  --patience S        a run disturbed by other processes (see 'bg') is\n"
"                      redone once the machine is quiet; wait at most S\n"
"                      seconds for that over the whole run (default 60;\n"
"                      quick 0)\n");
}

/* ------------------------------------------------------------------------
 * The plan
 * ------------------------------------------------------------------------ */

enum row {
    R_RAW_BATCH, R_RAW_MSG, R_LIB1, R_LIB2, R_LIB4, R_DAEMON, R_CTL,
    R_PY_IMAP, R_PY_MAP, R_RAW_W1, R_LIB2_W1, R_DAEMON_W1, R_LIB2_BATCH,
    R_DAEMON_SUBS, R_DAEMON_CMD, R_DAEMON_CMD_SUBS, NROWS
};

struct row_def {
    const char *label;
    bench_fn    fn;
    unsigned    workers;
    int         batched;
    const char *mode;
    int         window1;    /* window of 1: round-trip latency rows */
    double      timeout;    /* runner timeout, s */
    unsigned    subscribers;/* daemon: event subscribers reading meanwhile
                               (32 B only) */
};

#define SUBSCRIBERS 100
#define CMD_WINDOW  16     /* cmd rows: enough to keep 2 workers busy */
#define CMD_STRETCH 5      /* cmd rows: timed window x this (~180 jobs/s: a
                              0.4 s window is 70 jobs, too few to compare) */

static const struct row_def rows[NROWS] = {
    [R_RAW_BATCH] = { "raw socketpair, batched", bench_raw, 2, 1, NULL, 0, 60 },
    [R_RAW_MSG]   = { "raw socketpair, 1 write/msg", bench_raw, 2, 0, NULL, 0, 60 },
    [R_LIB1]      = { "library, 1 worker", bench_lib, 1, 0, NULL, 0, 60 },
    [R_LIB2]      = { "library, 2 workers", bench_lib, 2, 0, NULL, 0, 60 },
    [R_LIB4]      = { "library, 4 workers", bench_lib, 4, 0, NULL, 0, 60 },
    [R_DAEMON]    = { "daemon RPC, 2 workers", bench_daemon, 2, 0, NULL, 0, 60 },
    [R_CTL]       = { "forkpoolctl map, 2 workers", bench_ctl, 2, 0, NULL, 0, 120 },
    [R_PY_IMAP]   = { "python imap_unordered cs=1", bench_python, 2, 0, "imap", 0, 120 },
    [R_PY_MAP]    = { "python map (default chunks)", bench_python, 2, 0, "map", 0, 120 },
    [R_RAW_W1]    = { "raw socketpair, window 1", bench_raw, 2, 1, NULL, 1, 60 },
    [R_LIB2_W1]   = { "library, 2 workers, window 1", bench_lib, 2, 0, NULL, 1, 60 },
    [R_DAEMON_W1] = { "daemon RPC, window 1", bench_daemon, 2, 0, NULL, 1, 60 },
    /* fp_pool_submit_batch, 1024 jobs a call, 16x the window */
    [R_LIB2_BATCH] = { "library batch API, 2 workers", bench_lib, 2, 1, NULL, 0, 60 },
    [R_DAEMON_SUBS] = { "daemon RPC, 2w, 100 subscribers", bench_daemon, 2, 0, NULL,
                        0, 60, SUBSCRIBERS },
    /* The same pair on jobs that do something: the cmd builtin running
     * true(1), a fork and an exec per job (32 B only; no baseline ratios). */
    [R_DAEMON_CMD] = { "daemon RPC, 2w, cmd true", bench_daemon, 2, 0, "cmd", 0, 60 },
    [R_DAEMON_CMD_SUBS] = { "daemon RPC, 2w, cmd true, 100 subs", bench_daemon, 2, 0,
                            "cmd", 0, 60, SUBSCRIBERS },
};

/* The order within a round: each headline pair close together in time. */
static const enum row order[NROWS] = {
    R_RAW_BATCH, R_LIB2, R_PY_IMAP, R_DAEMON, R_DAEMON_SUBS, R_CTL, R_RAW_MSG,
    R_LIB1, R_LIB4, R_PY_MAP, R_LIB2_BATCH, R_RAW_W1, R_LIB2_W1, R_DAEMON_W1,
    R_DAEMON_CMD, R_DAEMON_CMD_SUBS,
};

/* Mixed durations (SPEC §9): one burst, makespan / ideal; see bench.h. */
enum mrow { M_LIB, M_LIB_ECHO, M_PY, NMROWS };

struct mrow_def {
    const char *label;
    bench_fn    fn;
    unsigned    echo_first;     /* echo jobs on the same pool first */
    double      timeout;        /* runner timeout, s */
};

#define MIXED_TARGET 1.05       /* makespan / ideal, at most */

static const struct mrow_def mrows[NMROWS] = {
    [M_LIB]      = { "mixed: library 2w, fresh pool", bench_lib_mixed, 0, 60 },
    [M_LIB_ECHO] = { "mixed: library 2w, after echo", bench_lib_mixed, 20000, 60 },
    [M_PY]       = { "mixed: python imap_unordered", bench_python_mixed, 0, 60 },
};

static struct bench_result mres[NMROWS][MAX_REPS];

#define NSIZES 3
static const size_t sizes[NSIZES] = { 32, 4096, 1u << 20 };

static unsigned
window_for(size_t payload)
{
    /* 256 jobs in flight; 64 for 1 MiB (64 MiB outstanding is plenty). */
    return payload >= (1u << 20) ? 64 : 256;
}

static struct bench_result res[NSIZES][NROWS][MAX_REPS];

struct opts {
    int         quick, reps;
    double      seconds;
    const char *forkpoold, *forkpoolctl, *python;
    const char *only;       /* run the rows whose label contains this */
    size_t      size;       /* run this payload only; 0 = all */
    double      patience;   /* s we may still wait for a quiet machine */
    int         redone;     /* disturbed runs done again */
};

/* Is this (size, row) part of the run? */
/* A row whose jobs are commands (the cmd builtin), not echoes. */
static int
cmd_row(enum row rw)
{
    return rows[rw].fn == bench_daemon && rows[rw].mode != NULL
           && strcmp(rows[rw].mode, "cmd") == 0;
}

static int
selected(const struct opts *o, int si, enum row rw)
{
    if ((rows[rw].window1 || rows[rw].subscribers > 0 || cmd_row(rw)) && si != 0)
        return 0;
    if (o->size != 0 && sizes[si] != o->size)
        return 0;
    return o->only == NULL || strstr(rows[rw].label, o->only) != NULL;
}

static int
mixed_selected(const struct opts *o, enum mrow m)
{
    if (o->only == NULL)
        return o->size == 0;
    return strstr(mrows[m].label, o->only) != NULL;
}

/* ------------------------------------------------------------------------
 * Medians and formatting
 * ------------------------------------------------------------------------ */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    if (n == 0)
        return -1;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median of one field over the measured rounds of a row; -1 if none. */
static double
field_median(const struct bench_result *r, int reps, size_t offset)
{
    double v[MAX_REPS];
    int n = 0;

    for (int i = 0; i < reps; i++) {
        double x = *(const double *)((const char *)&r[i] + offset);
        if (r[i].ok && x >= 0)
            v[n++] = x;
    }
    return median(v, n);
}

#define FIELD(r, reps, f) field_median(r, reps, offsetof(struct bench_result, f))

/* Median over rounds of a[i].jobs_s / b[i].jobs_s; -1 if no pair. */
static double
ratio_median(const struct bench_result *a, const struct bench_result *b, int reps)
{
    double v[MAX_REPS];
    int n = 0;

    for (int i = 0; i < reps; i++)
        if (a[i].ok && b[i].ok && b[i].jobs_s > 0)
            v[n++] = a[i].jobs_s / b[i].jobs_s;
    return median(v, n);
}

static const char *
fmt_num(char *buf, size_t len, double v, const char *fmt)
{
    if (v < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, fmt, v);
    return buf;
}

static const char *
fmt_rss(char *buf, size_t len, double before, double after)
{
    if (before < 0 || after < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f>%.1f", before / 1024, after / 1024);
    return buf;
}

static const char *
size_name(size_t n)
{
    return n >= (1u << 20) ? "1 MiB" : n >= 1024 ? "4 KiB" : "32 B";
}

/* Run one case.  A run that other processes disturbed (more than BG_LIMIT
 * CPUs busy with work not ours) is done again, up to twice, once the
 * machine is quiet, while the run's budget of patience lasts. */
static void
measure(struct opts *o, bench_fn fn, const struct bench_args *a,
        struct bench_result *r, double timeout)
{
    run_isolated(fn, a, r, timeout);
    for (int retry = 0; retry < 2 && r->ok && r->foreign_cpus > BG_LIMIT
                        && o->patience > 0; retry++) {
        double t0 = now_s(), bg;
        fprintf(stderr, "fpbench: %.2f CPUs busy with other work during that "
                "run; waiting for a quiet machine to run it again\n",
                r->foreign_cpus);
        while ((bg = background_cpus(0.5)) > BG_LIMIT / 2
               && now_s() - t0 < o->patience)
            ;
        o->patience -= now_s() - t0;
        if (bg > BG_LIMIT / 2)
            return;
        struct bench_result again;
        run_isolated(fn, a, &again, timeout);
        o->redone++;
        if (again.ok)
            *r = again;
    }
}

/* Every selected case, every round: sizes outer, rounds inner, cases
 * interleaved within a round. */
static void
run_throughput(const struct bench_args *base, struct opts *o,
               int have_python)
{
    int step = 0, steps = 0;

    for (int si = 0; si < NSIZES; si++)
        for (int i = 0; i < NROWS; i++)
            if (selected(o, si, (enum row)i))
                steps += o->reps;
    for (int si = 0; si < NSIZES; si++) {
        for (int rep = 0; rep < o->reps; rep++) {
            for (int i = 0; i < NROWS; i++) {
                enum row rw = order[i];
                struct bench_args a = *base;
                struct bench_result *r = &res[si][rw][rep];
                if (!selected(o, si, rw))
                    continue;
                step++;
                if (!have_python && rows[rw].fn == bench_python) {
                    bench_fail(r, "skipped");
                    continue;
                }
                a.payload = sizes[si];
                a.workers = rows[rw].workers;
                a.batched = rows[rw].batched;
                a.mode = rows[rw].mode;
                a.window = rows[rw].window1 ? 1 : cmd_row(rw) ? CMD_WINDOW
                         : window_for(sizes[si]);
                if (cmd_row(rw))
                    a.seconds *= CMD_STRETCH;
                a.count = rows[rw].subscribers;
                measure(o, rows[rw].fn, &a, r, rows[rw].timeout);
                fprintf(stderr, "fpbench: [%3d/%d] %-5s round %d  %-30s ",
                        step, steps, size_name(sizes[si]), rep + 1,
                        rows[rw].label);
                if (r->ok)
                    fprintf(stderr, "%10.0f jobs/s  (bg %.2f CPUs)\n", r->jobs_s,
                            r->foreign_cpus);
                else
                    fprintf(stderr, "FAILED: %s\n", r->note);
            }
        }
    }
}

/* The mixed-durations burst, every round (once with --quick): the
 * library on a fresh pool, Python, the library after echo jobs. */
static void
run_mixed(const struct bench_args *base, struct opts *o, int have_python)
{
    int step = 0, steps = 0;

    for (int m = 0; m < NMROWS; m++)
        if (mixed_selected(o, (enum mrow)m))
            steps += o->reps;
    for (int rep = 0; rep < o->reps; rep++) {
        for (int m = 0; m < NMROWS; m++) {
            struct bench_args a = *base;
            struct bench_result *r = &mres[m][rep];
            if (!mixed_selected(o, (enum mrow)m))
                continue;
            step++;
            if (!have_python && mrows[m].fn == bench_python_mixed) {
                bench_fail(r, "skipped");
                continue;
            }
            a.workers = 2;
            a.count = mrows[m].echo_first;
            measure(o, mrows[m].fn, &a, r, mrows[m].timeout);
            fprintf(stderr, "fpbench: [%3d/%d] round %d  %-30s ", step, steps,
                    rep + 1, mrows[m].label);
            if (r->ok)
                fprintf(stderr, "makespan %.3f s = %.3f x ideal  (bg %.2f CPUs)\n",
                        r->aux[0], r->aux[2], r->foreign_cpus);
            else
                fprintf(stderr, "FAILED: %s\n", r->note);
        }
    }
}

/* ------------------------------------------------------------------------
 * Beyond throughput: crash -> replacement, RSS across many jobs, idle
 * workers' memory.
 * ------------------------------------------------------------------------ */

/* The rate-limit figures: a burst of 1 spends every token as it falls
 * due, so it shows what a late wake-up costs; alone (no unkeyed stream
 * waking the loop), only the rate timer starts the throttled jobs. */
#define NRATES 3
static const struct {
    unsigned burst, window;     /* window: unkeyed echo jobs outstanding */
} rate_cases[NRATES] = { { 10, 256 }, { 1, 256 }, { 1, 0 } };

struct extras {
    struct bench_result crash, crash_spare, rss, lmem, dmem, rate[NRATES];
    unsigned            crashes, rss_jobs, mem_jobs, rate_jobs;
    int                 only_rate;  /* --only rate: nothing else ran */
    int                 only_crash; /* --only crash: nothing else ran */
};

/* The rate-limit figures, one per burst. */
static void
run_rates(const struct bench_args *base, struct opts *o, struct extras *ex)
{
    struct bench_args a = *base;

    ex->rate_jobs = o->quick ? 1000 : 5000;
    a.payload = 32;
    a.workers = 2;
    a.count = ex->rate_jobs;
    for (int i = 0; i < NRATES; i++) {
        a.burst = rate_cases[i].burst;
        a.window = rate_cases[i].window;
        fprintf(stderr, "fpbench: rate limit, %u throttled jobs, burst %u%s\n",
                ex->rate_jobs, a.burst, a.window ? "" : ", alone");
        measure(o, bench_lib_rate, &a, &ex->rate[i], 60);
    }
}

/* Crash -> replacement ready, with 2 idle workers. */
static void
run_crash(const struct bench_args *base, struct opts *o, struct extras *ex)
{
    struct bench_args a = *base;

    ex->crashes = o->quick ? 30 : 200;
    a.payload = 32;
    a.workers = 2;
    a.window = 256;
    a.count = ex->crashes;
    fprintf(stderr, "fpbench: crash -> replacement, %u crashes\n", ex->crashes);
    measure(o, bench_crash, &a, &ex->crash, 120);
    a.spares = 1;
    fprintf(stderr, "fpbench: crash -> replacement, %u crashes, 1 spare worker\n",
            ex->crashes);
    measure(o, bench_crash, &a, &ex->crash_spare, 120);
}

static void
run_extras(const struct bench_args *base, struct opts *o, struct extras *ex)
{
    struct bench_args a = *base;

    run_crash(base, o, ex);
    ex->rss_jobs = o->quick ? 100000 : 1000000;
    ex->mem_jobs = o->quick ? 2000 : 10000;
    a.payload = 32;
    a.workers = 2;
    a.window = 256;
    a.count = ex->rss_jobs;
    fprintf(stderr, "fpbench: master RSS over %u jobs\n", ex->rss_jobs);
    measure(o, bench_rss, &a, &ex->rss, 300);
    a.count = ex->mem_jobs;
    fprintf(stderr, "fpbench: idle worker memory\n");
    measure(o, bench_lib_idle_mem, &a, &ex->lmem, 60);
    measure(o, bench_daemon_idle_mem, &a, &ex->dmem, 60);
    run_rates(base, o, ex);
}

static void
print_notes(const struct opts *o)
{
    printf("  GB/s: payload bytes (one way) per second.  latency: submit -> "
           "outcome, with the window full\n  (so about window / throughput); "
           "window-1 rows show a lone round trip.  cpu: the master's\n  user+"
           "system time per job (library, raw: the bench process itself; "
           "daemon, forkpoolctl:\n  forkpoold's /proc/PID/stat; python: the "
           "Pool's parent).  rss: the master's VmRSS before > after\n  (python: "
           "with its pre-built job list).  spread: (max - min) / median over "
           "the rounds.\n  forkpoolctl map: wall time of the whole command, "
           "start-up included, on N jobs sized to\n  ~%.2f s.  bg: the most "
           "CPUs that processes not ours kept busy, on average over\n  one "
           "round of the row (from /proc/stat less our own CPU time); '!' above "
           "%.1f: that row is skewed.\n\n",
           o->seconds > CTL_SECONDS ? o->seconds : CTL_SECONDS, BG_LIMIT);
    double paired = FIELD(res[0][R_DAEMON_CMD_SUBS], o->reps, aux[0]);
    if (selected(o, 0, R_DAEMON_CMD_SUBS) && paired > 0)
        printf("daemon RPC, cmd true: with 100 subscribers %.3f x the rate without, "
               "the same daemon\n  streaming without them just before and just "
               "after (median of rounds)\n", paired);
    for (int si = 0; si < NSIZES; si++) {
        const struct bench_result *r = res[si][R_CTL];
        double cpu = FIELD(r, o->reps, aux[0]), up = FIELD(r, o->reps, aux[1]);
        if (selected(o, si, R_CTL) && cpu >= 0)
            printf("forkpoolctl map, %s: its own CPU %.2f us/job; start-up and "
                   "exit with no jobs %.1f ms\n", size_name(sizes[si]), cpu, up);
    }
}

static void
print_rates(const struct opts *o, const struct extras *ex)
{
    double free_lib2 = FIELD(res[0][R_LIB2], o->reps, jobs_s);

    printf("rate limit (library, 2 workers): %u jobs of key \"throttled\" at "
           "%.0f/s, submitted at once,\nwith a window of 256 unkeyed echo jobs "
           "streaming past, or alone:\n", ex->rate_jobs, RATE_LIMIT);
    for (int i = 0; i < NRATES; i++) {
        const struct bench_result *r = &ex->rate[i];
        char base[64] = "", with[96] = "";
        if (!r->ok) {
            printf("  burst %2u: FAILED: %s\n", rate_cases[i].burst, r->note);
            continue;
        }
        if (free_lib2 > 0)
            snprintf(base, sizeof(base), " (%.0f%% of the unthrottled row)",
                     100 * r->aux[2] / free_lib2);
        if (rate_cases[i].window > 0)
            snprintf(with, sizeof(with), "; meanwhile %.0f unkeyed jobs/s%s",
                     r->aux[2], base);
        else
            snprintf(with, sizeof(with), ", alone");
        printf("  burst %2u: achieved %6.1f starts/s = %.3f x the limit%s\n",
               rate_cases[i].burst, r->aux[0], r->aux[1], with);
    }
}

static void
print_crash(const struct extras *ex)
{
    const struct bench_result *c = &ex->crash, *cs = &ex->crash_spare;

    printf("crash -> replacement ready (library, 2 workers, %u crashes by "
           "raise(SIGSEGV), each with every\nworker idle; ready = fp_pool_stats "
           "shows them all idle, one with a pid the slots did not have):\n",
           ex->crashes);
    if (c->ok)
        printf("  submit of the crashing job -> replacement ready:    p50 %6.0f us"
               "   p99 %6.0f us\n"
               "  crashed outcome (child reaped) -> replacement ready: p50 %6.0f us"
               "   p99 %6.0f us\n", c->aux[0], c->aux[1], c->aux[2], c->aux[3]);
    else
        printf("  FAILED: %s\n", c->note);
    if (cs->ok)
        printf("  with 1 spare worker (fp_config.spare_workers, --spare-workers 1):\n"
               "  submit of the crashing job -> replacement ready:    p50 %6.0f us"
               "   p99 %6.0f us\n"
               "  crashed outcome (child reaped) -> replacement ready: p50 %6.0f us"
               "   p99 %6.0f us\n", cs->aux[0], cs->aux[1], cs->aux[2], cs->aux[3]);
    else
        printf("  with 1 spare worker: FAILED: %s\n", cs->note);
}

static void
print_extras(const struct opts *o, const struct extras *ex)
{
    const struct bench_result *rss = &ex->rss;
    (void)o;

    print_crash(ex);
    if (rss->ok)
        printf("master RSS, library, 2 workers, 32 B, window 256: %.0f KiB before "
               "the first job;\n  %.0f KiB at %u jobs, %.0f KiB at %u, %.0f KiB at "
               "%u (%.0f jobs/s over the run)\n", rss->rss_before_kb, rss->aux[0],
               ex->rss_jobs / 100, rss->aux[1], ex->rss_jobs / 10, rss->aux[2],
               ex->rss_jobs, rss->jobs_s);
    else
        printf("master RSS over many jobs: FAILED: %s\n", rss->note);
    if (ex->lmem.ok && ex->dmem.ok)
        printf("idle worker private memory (smaps_rollup Private_Clean + "
               "Private_Dirty, worst of 2 workers):\n"
               "  daemon --builtin echo: %4.0f KiB just started, %4.0f KiB after "
               "%u jobs\n  library echo module:   %4.0f KiB just started, %4.0f "
               "KiB after %u jobs\n", ex->dmem.aux[0], ex->dmem.aux[1],
               ex->mem_jobs, ex->lmem.aux[0], ex->lmem.aux[1], ex->mem_jobs);
    else
        printf("idle worker memory: FAILED: %s %s\n",
               ex->lmem.ok ? "" : ex->lmem.note, ex->dmem.ok ? "" : ex->dmem.note);
    print_rates(o, ex);
}

struct target {
    const char *what;
    int         valid;
    double      got, want;
    int         below;      /* 1: pass when got < want; 2: got <= want */
    const char *unit;
};

static void
print_targets(const struct opts *o, const struct extras *ex)
{
    double lib2_1m = FIELD(res[2][R_LIB2], o->reps, jobs_s);
    double r_py = ratio_median(res[0][R_LIB2], res[0][R_PY_IMAP], o->reps);
    double r_raw = ratio_median(res[0][R_LIB2], res[0][R_RAW_BATCH], o->reps);
    double r_dpy = ratio_median(res[0][R_DAEMON], res[0][R_PY_IMAP], o->reps);
    double r_cpy = ratio_median(res[0][R_CTL], res[0][R_PY_IMAP], o->reps);
    double r_cpy4 = ratio_median(res[1][R_CTL], res[1][R_PY_IMAP], o->reps);
    double ctl_1m = FIELD(res[2][R_CTL], o->reps, jobs_s);
    double r_bpm = ratio_median(res[0][R_LIB2_BATCH], res[0][R_PY_MAP], o->reps);
    double r_subs = ratio_median(res[0][R_DAEMON_SUBS], res[0][R_DAEMON], o->reps);
    /* Measured within one daemon (bench_daemon's aux[0]): the cmd rows'
     * rate moves too much between daemons for a ratio of rows. */
    double r_subs_cmd = FIELD(res[0][R_DAEMON_CMD_SUBS], o->reps, aux[0]);
    double mx = FIELD(mres[M_LIB], o->reps, aux[2]);
    double mx_echo = FIELD(mres[M_LIB_ECHO], o->reps, aux[2]);
    char growth[64];

    snprintf(growth, sizeof(growth), "master RSS growth, %uk -> %uk jobs",
             ex->rss_jobs / 10000, ex->rss_jobs / 1000);
    const struct target t[] = {
        { "library 2w vs python imap_unordered", r_py >= 0, r_py, 20, 0, "x" },
        { "library 2w vs raw batched bound", r_raw >= 0, r_raw, 0.5, 0, "x" },
        { "daemon RPC vs python imap_unordered", r_dpy >= 0, r_dpy, 10, 0, "x" },
        { "forkpoolctl map vs python imap", r_cpy >= 0, r_cpy, 6, 0, "x" },
        /* issue 11: the CLI path at real sizes */
        { "forkpoolctl map 4 KiB vs python imap", r_cpy4 >= 0, r_cpy4, 3, 0, "x" },
        { "forkpoolctl map 1 MiB", ctl_1m >= 0, ctl_1m * (double)(1u << 20) / 1e9,
          0.3, 0, " GB/s" },
        { "batch API 2w vs python map (chunked)", r_bpm >= 0, r_bpm, 0.5, 0, "x" },
        /* issue 13: a hundred subscribers cost "a few percent" */
        { "daemon RPC, 100 subscribers vs none", r_subs >= 0, r_subs, 0.95, 0, "x" },
        { "  the same, cmd true jobs (same daemon)", r_subs_cmd > 0, r_subs_cmd,
          0.95, 0, "x" },
        { "1 MiB payloads, library 2w", lib2_1m >= 0,
          lib2_1m * (double)(1u << 20) / 1e9, 2, 0, " GB/s" },
        { "crash -> replacement ready, p50", ex->crash.ok, ex->crash.aux[0],
          2000, 1, " us" },
        { "  the same with 1 spare worker", ex->crash_spare.ok,
          ex->crash_spare.aux[0], 2000, 1, " us" },
        { growth, ex->rss.ok, ex->rss.aux[2] - ex->rss.aux[1], 1024, 1, " KiB" },
        { "idle daemon echo worker, private", ex->dmem.ok, ex->dmem.aux[1],
          1024, 1, " KiB" },
        { "mixed durations, lib 2w, fresh pool", mx >= 0, mx, MIXED_TARGET, 2,
          "x ideal" },
        { "mixed durations, lib 2w, after echo", mx_echo >= 0, mx_echo,
          MIXED_TARGET, 2, "x ideal" },
    };

    printf("\nSPEC §9 targets (32 B echo unless said; ratios: median of "
           "per-round ratios):\n");
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *rel = t[i].below == 2 ? "<=" : t[i].below ? "<" : ">=";
        if (!t[i].valid) {
            printf("  %-40s %10s  (target %s %g%s)\n", t[i].what, "n/a",
                   rel, t[i].want, t[i].unit);
            continue;
        }
        int pass = t[i].below == 2 ? t[i].got <= t[i].want
                 : t[i].below ? t[i].got < t[i].want : t[i].got >= t[i].want;
        printf("  %-40s %10.2f  (target %s %g%s)  %s\n", t[i].what, t[i].got,
               rel, t[i].want, t[i].unit, pass ? "PASS" : "MISS");
    }
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static void
print_header(const struct opts *o, double load_before, double load_after)
{
    struct utsname u;
    char model[128] = "?", line[256];
    FILE *f = fopen("/proc/cpuinfo", "re");
    time_t t = time(NULL);

    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                snprintf(model, sizeof(model), "%.120s", p ? p + 2 : line);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        fclose(f);
    }
    uname(&u);
    printf("fpbench (%s) — %s, %ld CPUs, Linux %s, %s", PACKAGE_STRING, model,
           sysconf(_SC_NPROCESSORS_ONLN), u.release, ctime(&t));
    printf("%s run: %d round%s of every case, %.2f s timed window per run "
           "(after a %.1f s warm-up);\n", o->quick ? "quick" : "full", o->reps,
           o->reps > 1 ? "s" : "", o->seconds, 0.1);
    printf("figures are medians over the rounds, ratios the median of "
           "per-round ratios.\n");
    printf("other load on the machine (idle-time sample of 1 s): %.2f CPUs busy "
           "before the run, %.2f after;\n%d disturbed run%s done again once the "
           "machine was quiet (see 'bg' below)\n\n", load_before, load_after,
           o->redone, o->redone == 1 ? "" : "s");
}

static void
print_size_table(const struct opts *o, int si, int have_python)
{
    size_t payload = sizes[si];
    int reps = o->reps, any = 0;

    for (int i = 0; i < NROWS; i++)
        any |= selected(o, si, (enum row)i);
    if (!any)
        return;
    char a[32], b[32], c[32], d[32], e[32], g[32], h[32];

    printf("payload %s (msgpack bin), window %u jobs in flight\n",
           size_name(payload), window_for(payload));
    printf("  %-30s %10s %6s %7s %9s %9s %9s %11s %9s %9s %5s\n", "case",
           "jobs/s", "spread", "GB/s", "p50 us", "p99 us", "cpu us/j",
           "rss MiB", "x py-imap", "x raw-bat", "bg");
    for (int i = 0; i < NROWS; i++) {
        enum row rw = (enum row)i;     /* the table shows them in enum order */
        const struct bench_result *r = res[si][rw];
        if (!selected(o, si, rw))
            continue;
        if (!have_python && (rw == R_PY_IMAP || rw == R_PY_MAP)) {
            printf("  %-30s   skipped: python3 missing\n", rows[rw].label);
            continue;
        }
        double js = FIELD(r, reps, jobs_s);
        if (js < 0) {
            const char *why = "not measured";
            for (int k2 = 0; k2 < reps; k2++)
                if (!r[k2].ok && r[k2].note[0]) {
                    why = r[k2].note;
                    break;
                }
            printf("  %-30s   FAILED: %s\n", rows[rw].label, why);
            continue;
        }
        double lo = -1, hi = -1, bg = 0;
        for (int k2 = 0; k2 < reps; k2++)
            if (r[k2].ok) {
                if (r[k2].foreign_cpus > bg)
                    bg = r[k2].foreign_cpus;
                if (lo < 0 || r[k2].jobs_s < lo)
                    lo = r[k2].jobs_s;
                if (r[k2].jobs_s > hi)
                    hi = r[k2].jobs_s;
            }
        /* Window-1 rows are about latency: no throughput ratios. */
        int ratios = !rows[rw].window1 && !cmd_row(rw);
        double xpy = rw == R_PY_IMAP || !ratios ? -1
                   : ratio_median(r, res[si][R_PY_IMAP], reps);
        double xraw = rw == R_RAW_BATCH || !ratios ? -1
                    : ratio_median(r, res[si][R_RAW_BATCH], reps);
        printf("  %-30s %10.0f %5.0f%% %7s %9s %9s %9s %11s %9s %9s %4.2f%s\n",
               rows[rw].label, js, (hi - lo) / js * 100,
               fmt_num(a, sizeof(a), js * (double)payload / 1e9, "%.3f"),
               fmt_num(b, sizeof(b), FIELD(r, reps, p50_us), "%.1f"),
               fmt_num(c, sizeof(c), FIELD(r, reps, p99_us), "%.1f"),
               fmt_num(d, sizeof(d), FIELD(r, reps, cpu_us_per_job), "%.2f"),
               fmt_rss(e, sizeof(e), FIELD(r, reps, rss_before_kb),
                       FIELD(r, reps, rss_after_kb)),
               fmt_num(g, sizeof(g), xpy, "%.1fx"),
               fmt_num(h, sizeof(h), xraw, "%.2fx"), bg, bg > BG_LIMIT ? "!" : "");
    }
    printf("\n");
}

static void
print_mixed_table(const struct opts *o, int have_python)
{
    int reps = o->reps, any = 0;
    char longs[64] = "";
    size_t used = 0;

    for (int m = 0; m < NMROWS; m++)
        any |= mixed_selected(o, (enum mrow)m);
    if (!any)
        return;
    for (unsigned k = 0; k < MIXED_LONGS; k++)
        used += (size_t)snprintf(longs + used, sizeof(longs) - used, "%s%u",
                                 k ? ", " : "", mixed_long_at[k]);
    printf("mixed durations: one burst of %u jobs submitted at once, 2 workers, "
           "default config;\n  %u sleep %.0f s (jobs %s of 0..%u), %u sleep "
           "%.0f ms; ideal makespan (max(work / 2, longest)) %.3f s\n",
           MIXED_JOBS, MIXED_LONGS, MIXED_LONG_US / 1e6, longs, MIXED_JOBS - 1,
           MIXED_JOBS - MIXED_LONGS, MIXED_SHORT_US / 1e3, mixed_ideal_s());
    printf("  %-30s %10s %6s %9s %17s %11s %9s %11s %5s\n", "case",
           "makespan s", "spread", "x ideal", "target", "long start", "cpu us/j",
           "rss MiB", "bg");
    for (int m = 0; m < NMROWS; m++) {
        const struct bench_result *r = mres[m];
        char d[32], e[32];
        if (!mixed_selected(o, (enum mrow)m))
            continue;
        if (!have_python && mrows[m].fn == bench_python_mixed) {
            printf("  %-30s   skipped: python3 missing\n", mrows[m].label);
            continue;
        }
        double ms = FIELD(r, reps, aux[0]);
        if (ms < 0) {
            const char *why = "not measured";
            for (int k = 0; k < reps; k++)
                if (!r[k].ok && r[k].note[0]) {
                    why = r[k].note;
                    break;
                }
            printf("  %-30s   FAILED: %s\n", mrows[m].label, why);
            continue;
        }
        double lo = -1, hi = -1, bg = 0;
        for (int k = 0; k < reps; k++)
            if (r[k].ok) {
                if (r[k].foreign_cpus > bg)
                    bg = r[k].foreign_cpus;
                if (lo < 0 || r[k].aux[0] < lo)
                    lo = r[k].aux[0];
                if (r[k].aux[0] > hi)
                    hi = r[k].aux[0];
            }
        double x = FIELD(r, reps, aux[2]);
        char target[32] = "-";
        /* The SPEC target is the library's; Python is the baseline. */
        if (mrows[m].fn != bench_python_mixed)
            snprintf(target, sizeof(target), "<= %.2fx  %s", MIXED_TARGET,
                     x <= MIXED_TARGET ? "PASS" : "MISS");
        printf("  %-30s %10.3f %5.0f%% %8.3fx %17s %11.3f %9s %11s %4.2f%s\n",
               mrows[m].label, ms, (hi - lo) / ms * 100, x, target,
               FIELD(r, reps, aux[3]),
               fmt_num(d, sizeof(d), FIELD(r, reps, cpu_us_per_job), "%.1f"),
               fmt_rss(e, sizeof(e), FIELD(r, reps, rss_before_kb),
                       FIELD(r, reps, rss_after_kb)),
               bg, bg > BG_LIMIT ? "!" : "");
    }
    printf("  makespan: first submit -> last outcome received.  x ideal: median "
           "of per-round makespan / ideal.\n  long start: when the last of the "
           "long jobs started, s after the first submit (2 rounds of\n  long "
           "jobs on 2 workers: ideally ~1.0).  fresh pool: the burst is the "
           "pool's first work; after\n  echo: the same pool ran %u trivial "
           "echo jobs just before (its run-time estimate says\n  \"trivial\").  "
           "python: multiprocessing.Pool(2).imap_unordered(chunksize=1), "
           "time.sleep.\n\n", mrows[M_LIB_ECHO].echo_first);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "quick", no_argument, NULL, 'q' },
        { "seconds", required_argument, NULL, 'S' },
        { "rounds", required_argument, NULL, 'r' },
        { "forkpoold", required_argument, NULL, 'd' },
        { "forkpoolctl", required_argument, NULL, 'c' },
        { "python", required_argument, NULL, 'p' },
        { "no-python", no_argument, NULL, 'n' },
        { "only", required_argument, NULL, 'o' },
        { "size", required_argument, NULL, 'z' },
        { "patience", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct opts o = {
        .reps = -1, .seconds = -1, .patience = -1, .forkpoold = "src/daemon/forkpoold",
        .forkpoolctl = "src/ctl/forkpoolctl", .python = "tools/bench/bench_py.py",
    };
    int no_python = 0, ch;
    char tmpdir[] = "/tmp/fpbench.XXXXXX";

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'q': o.quick = 1; break;
        case 'S': o.seconds = atof(optarg); break;
        case 'r': o.reps = atoi(optarg); break;
        case 'd': o.forkpoold = optarg; break;
        case 'c': o.forkpoolctl = optarg; break;
        case 'p': o.python = optarg; break;
        case 'n': no_python = 1; break;
        case 'o': o.only = optarg; break;
        case 'z': o.size = strtoul(optarg, NULL, 10); break;
        case 'P': o.patience = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default:  usage(stderr); return 100;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 100;
    }
    if (o.reps < 0)
        o.reps = o.quick ? 1 : 3;
    if (o.seconds < 0)
        o.seconds = o.quick ? 0.1 : 0.4;
    if (o.patience < 0)
        o.patience = o.quick ? 0 : 60;
    if (o.reps < 1 || o.reps > MAX_REPS || o.seconds <= 0 || o.seconds > 60) {
        fprintf(stderr, "fpbench: --rounds 1..%d, --seconds (0, 60]\n", MAX_REPS);
        return 100;
    }
    if (o.size != 0 && o.size != sizes[0] && o.size != sizes[1] && o.size != sizes[2]) {
        fprintf(stderr, "fpbench: --size is 32, 4096 or 1048576\n");
        return 100;
    }
    if (access(o.forkpoold, X_OK) < 0 || access(o.forkpoolctl, X_OK) < 0) {
        fprintf(stderr, "fpbench: cannot run %s or %s (use --forkpoold, "
                "--forkpoolctl, or tools/bench/bench.sh)\n", o.forkpoold, o.forkpoolctl);
        return 111;
    }
    int have_python = !no_python && access(o.python, R_OK) == 0
        && system("python3 -c 'import multiprocessing' >/dev/null 2>&1") == 0;
    if (!no_python && !have_python)
        fprintf(stderr, "fpbench: python3 (or %s) missing: the Python "
                "baseline is skipped\n", o.python);
    if (mkdtemp(tmpdir) == NULL) {
        perror("fpbench: mkdtemp");
        return 111;
    }
    /* A crashing worker must not dump core (the engine also ensures it). */
    struct rlimit nocore = { 0, 0 };
    setrlimit(RLIMIT_CORE, &nocore);

    fprintf(stderr, "fpbench: sampling the machine's background load (1 s)\n");
    double load_before = background_cpus(1.0);
    double t_start = now_s();
    struct extras ex;
    struct bench_args base = {
        .seconds = o.seconds, .forkpoold = o.forkpoold,
        .forkpoolctl = o.forkpoolctl, .python = o.python, .tmpdir = tmpdir,
        .quick = o.quick,
    };

    run_throughput(&base, &o, have_python);
    run_mixed(&base, &o, have_python);

    memset(&ex, 0, sizeof(ex));
    ex.only_rate = o.only != NULL && strcmp(o.only, "rate") == 0;
    ex.only_crash = o.only != NULL && strcmp(o.only, "crash") == 0;
    if (o.only == NULL)
        run_extras(&base, &o, &ex);
    else if (ex.only_rate)
        run_rates(&base, &o, &ex);
    else if (ex.only_crash)
        run_crash(&base, &o, &ex);

    double load_after = background_cpus(1.0);
    print_header(&o, load_before, load_after);
    for (int si = 0; si < NSIZES; si++)
        print_size_table(&o, si, have_python);
    print_mixed_table(&o, have_python);
    print_notes(&o);
    if (o.only == NULL) {
        print_extras(&o, &ex);
        print_targets(&o, &ex);
    } else if (ex.only_rate) {
        print_rates(&o, &ex);
    } else if (ex.only_crash) {
        print_crash(&ex);
    }
    printf("\ntotal bench time %.0f s\n", now_s() - t_start);

    remove_tmpdir(tmpdir);
    return 0;
}
