/*
 * meter.h — what a job cost: its CPU time (children included) and the peak
 * of its worker's resident memory, for the receipt every outcome carries
 * (SPEC §3 "Receipt"; forkpool.h's fp_receipt).  Mechanism only: numbers
 * out, no policy.
 *
 * Two places measure:
 *
 *  - A module worker measures itself (fp_meter_*, from worker_loop.c):
 *    getrusage of itself and of its waited-for children for the CPU, its
 *    ru_maxrss for the peak, and the peak reset between jobs by writing "5"
 *    to /proc/self/clear_refs (Linux: the high-water mark restarts from the
 *    resident size of the moment).  One sample costs four system calls --
 *    more than a trivial job does -- so jobs are not sampled one by one
 *    when they are short: a job samples at its start only if the last
 *    sample is FP_METER_GRAIN old, and at its end only if it ran that long.
 *    A shorter job reports its run time as its CPU time and the resident
 *    size at the last sample as its peak (both within a millisecond of the
 *    truth for a single-threaded job); a longer one is measured exactly,
 *    give or take the short jobs of the millisecond before it.  A stream of
 *    echo jobs so pays one sample a millisecond, not one a job.
 *    Even the clock costs: clock_gettime through the vDSO takes ~60 ns on
 *    a VM (kvm-clock), a tenth of a trivial job's whole cost; so jobs are
 *    timed with the CPU's tick counter (rdtsc, cntvct) where there is one,
 *    its rate measured against the clock between samples; the clock is
 *    read only for samples, until that rate is known, and for a job that
 *    moved to another CPU (whose counter need not agree).  The same
 *    reading tells the worker's sweep of what a job started whether the
 *    job was too quick to have started anything (fp_meter_elapsed_ns).
 *
 *  - The master measures from outside (fp_proc_*): an --exec worker runs
 *    one job at a time, so /proc/PID/stat and /proc/PID/status read between
 *    its jobs (and /proc/PID/clear_refs written) bracket each job; a worker
 *    killed mid-job is read just before the kill; one that died on its own
 *    is accounted from the master's RUSAGE_CHILDREN at its reap
 *    (fp_reaped_since).
 */
#ifndef FP_METER_H
#define FP_METER_H

#include <stdint.h>
#include <sys/types.h>

#include "codec/wire.h"     /* struct fp_job_cost */

/* Below this a job is "short": not sampled on its own (seconds). */
#define FP_METER_GRAIN 0.001
/* The tick counter is trusted once samples this far apart (seconds) have
 * measured its rate against CLOCK_MONOTONIC. */
#define FP_METER_CALIBRATE 0.01

/* ---- in a module worker -------------------------------------------------- */

struct fp_meter {
    int      peak_fd;       /* /proc/self/clear_refs, or -1: no reset, the
                               peak is the worker's since its start */
    /* The last sample: when (a CLOCK_MONOTONIC ns and a tick count, 0 =
     * none yet), the CPU then (own + waited-for children's) and the
     * resident size right after it. */
    uint64_t sampled_ns, sampled_ticks;
    uint32_t sampled_cpu;   /* the CPU each tick count was read on */
    uint64_t cpu_us;
    uint64_t base_kb;
    /* The tick counter's rate, from the first sample (the anchor) to the
     * last; 0 until they are FP_METER_CALIBRATE apart. */
    uint64_t anchor_ns, anchor_ticks;
    double   ns_per_tick;
    /* The running job: its start (ns only while uncalibrated), the CPU as
     * of then, and whether it took a sample. */
    uint64_t start_ns, start_ticks;
    uint32_t start_cpu;
    uint64_t start_cpu_us;
    int      sampled_in_job;
    /* The last job's end, while the next one follows it at once. */
    int      follows;
    uint64_t end_ns, end_ticks;
    uint32_t end_cpu;
};

/* Open /proc/self/clear_refs for fp_meter_init, close-on-exec.  Returns the
 * fd, or -1 (no /proc, or -- a process marked non-dumpable that is not
 * root -- not ours to open: then no peak is reset). */
int  fp_meter_open_peak(void);
/* Start measuring; `peak_fd` from fp_meter_open_peak (or -1), owned by the
 * meter from now on. */
void fp_meter_init(struct fp_meter *m, int peak_fd);
/* A job starts, ends; the worker is about to wait for more jobs. */
void fp_meter_job_start(struct fp_meter *m);
void fp_meter_job_end(struct fp_meter *m, struct fp_job_cost *cost);
/* How long the running job has run so far (ns), from the tick counter once
 * calibrated (one read of it), else from the clock; UINT64_MAX if the
 * counter cannot tell (it ran backwards): read as "long". */
uint64_t fp_meter_elapsed_ns(const struct fp_meter *m);
void fp_meter_idle(struct fp_meter *m);
void fp_meter_close(struct fp_meter *m);

/* ---- in the master ------------------------------------------------------- */

struct fp_proc_usage {
    uint64_t cpu_us;        /* utime+stime+cutime+cstime (clock ticks:
                               10 ms steps where USER_HZ is 100) */
    uint64_t peak_kb;       /* VmHWM; 0 if unknown */
    uint64_t rss_kb;        /* VmRSS; 0 if unknown */
};

/* Read process `pid`'s usage; with `reset`, then restart its peak from its
 * resident size (clear_refs).  Returns 0, or -1 if it cannot be read. */
int  fp_proc_usage(pid_t pid, int reset, struct fp_proc_usage *u);

/* The CPU and peak of children reaped since the last call (process-wide:
 * RUSAGE_CHILDREN): *cpu_us their CPU, *peak_kb the largest peak among
 * them if it is larger than any child's before (else 0: unknown). */
void fp_reaped_since(uint64_t *cpu_us, uint64_t *peak_kb);
/* Count from now on, if nothing was counted yet (before the first fork of
 * a worker, so that children reaped before do not count). */
void fp_reaped_mark(void);

#endif
