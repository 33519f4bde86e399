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
"""
import argparse
import multiprocessing
import resource
import sys
import time


def f(x):
    return x


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
    ap.add_argument("--mode", choices=("imap", "map"), default="imap")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

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
