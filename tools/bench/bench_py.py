#!/usr/bin/env python3
"""bench_py.py -- the Python baseline for fpbench (SPEC section 9).

Runs trivial echo jobs (f returns its argument) through
multiprocessing.Pool(W) on payloads of SIZE bytes, the way a Python
programmer would:

  --mode imap   pool.imap_unordered(f, jobs, chunksize=1)
  --mode map    pool.map(f, jobs)               (default chunking)

Every job is a distinct bytes object (the payload with the job's number in
its last 8 bytes), built before the clock starts: pickle memoizes repeated
objects, so a batch of one object repeated would cost map() a single copy
per chunk and measure nothing.  The batch is bounded to 512 MiB of
payload.  Warm-up batches run first on the same pool (untimed) and size
the timed batch to last about --seconds.  Prints one machine-readable line:

  fpbench-py jobs=N secs=S cpu=C rss0=KB rss1=KB

where secs is the wall time of the timed batch, cpu the user+system time
of this (master) process over it, and rss0/rss1 its VmRSS before and after.
Pool start-up is not timed.

  --mode mixed  one burst of jobs that time.sleep(d) through
                pool.imap_unordered(g, durations, chunksize=1): --jobs N
                jobs, those at --long-at (comma-separated positions) sleep
                --long-us, the others --short-us microseconds.  The pool's
                workers run a trivial job each first (untimed).  Prints one
                line per job, then the summary line:

  fpbench-py-job I PID START END      (time.monotonic() in the worker)
  fpbench-py jobs=N secs=S cpu=C rss0=KB rss1=KB t0=T0 tlast=TLAST

where secs is the makespan: the first job handed to imap_unordered ->
the last result received (t0, tlast on time.monotonic()).
"""
import argparse
import multiprocessing
import os
import resource
import sys
import time


def f(x):
    return x


def g(job):
    i, d = job
    start = time.monotonic()
    time.sleep(d)
    return i, os.getpid(), start, time.monotonic()


def run_mixed(args):
    long_at = {int(x) for x in args.long_at.split(",") if x}
    durations = [(i, (args.long_us if i in long_at else args.short_us) / 1e6)
                 for i in range(args.jobs)]
    with multiprocessing.Pool(args.workers) as pool:
        pool.map(f, range(args.workers), chunksize=1)   # workers up
        results = []
        rss0 = rss_kb()
        c0 = cpu_s()
        t0 = time.monotonic()
        for r in pool.imap_unordered(g, durations, chunksize=1):
            results.append(r)
        tlast = time.monotonic()
        c1 = cpu_s()
        rss1 = rss_kb()
    if len(results) != args.jobs:
        raise SystemExit("bench_py: %d of %d results" % (len(results), args.jobs))
    for i, pid, start, end in sorted(results):
        print("fpbench-py-job %d %d %.6f %.6f" % (i, pid, start, end))
    print("fpbench-py jobs=%d secs=%.6f cpu=%.6f rss0=%d rss1=%d t0=%.6f tlast=%.6f"
          % (args.jobs, tlast - t0, c1 - c0, rss0, rss1, t0, tlast))
    sys.stdout.flush()


def rss_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def make_jobs(payload, n):
    head = payload[:-8]
    return [head + i.to_bytes(8, "little") for i in range(n)]


def run(pool, mode, jobs):
    n = len(jobs)
    if mode == "imap":
        done = 0
        for _ in pool.imap_unordered(f, jobs, chunksize=1):
            done += 1
    else:
        done = len(pool.map(f, jobs))
    if done != n:
        raise SystemExit("bench_py: %d of %d results" % (done, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--mode", choices=("imap", "map", "mixed"), default="imap")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--long-at", default="0,2,4,6")
    ap.add_argument("--long-us", type=int, default=1000000)
    ap.add_argument("--short-us", type=int, default=2000)
    args = ap.parse_args()
    if args.mode == "mixed":
        run_mixed(args)
        return

    size = max(8, args.size)
    payload = bytes((i * 131 + 7) & 0xFF for i in range(size))
    cap = max(20, (512 << 20) // size)
    with multiprocessing.Pool(args.workers) as pool:
        # Warm-up batches, 4x larger each time, until one lasts 50 ms: its
        # rate sizes the timed batch (a tiny batch would underrate map()).
        n = min(cap, max(20, min(2000, (64 << 20) // size)))
        while True:
            jobs = make_jobs(payload, n)
            t = time.perf_counter()
            run(pool, args.mode, jobs)
            took = time.perf_counter() - t
            if took >= 0.05 or n >= cap:
                break
            n = min(cap, n * 4)
        # The timed batch; sized again from its own rate and redone (once)
        # if it was over in less than half the time asked for.
        for attempt in range(2):
            n = max(20, min(int(n / took * args.seconds), cap))
            jobs = make_jobs(payload, n)
            rss0 = rss_kb()
            c0 = cpu_s()
            t0 = time.perf_counter()
            run(pool, args.mode, jobs)
            t1 = time.perf_counter()
            c1 = cpu_s()
            rss1 = rss_kb()
            took = t1 - t0
            if took >= args.seconds / 2 or n >= cap:
                break
    print("fpbench-py jobs=%d secs=%.6f cpu=%.6f rss0=%d rss1=%d"
          % (n, t1 - t0, c1 - c0, rss0, rss1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
