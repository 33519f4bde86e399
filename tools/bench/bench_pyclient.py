#!/usr/bin/env python3
"""bench_pyclient.py — Python client throughput on trivial jobs against a
running forkpoold (best run with --builtin echo), one row per way:

    bench_pyclient.py -s SOCKET [-n JOBS] [--window W]

  Client.map        sync, pipelined through submit_batch, `window` in flight
  AsyncClient.map   the same on asyncio
  AsyncClient.gather  N concurrent submits (one request per job)
  Client.submit     one job at a time (round trips; N/10 jobs)

Prints "row<TAB>jobs<TAB>seconds<TAB>jobs/s" lines; needs the forkpool
package importable (PYTHONPATH=python in a source tree).
"""

import argparse
import asyncio
import time

import forkpool


def timed(fn, n):
    t = time.perf_counter()
    fn(n)
    return time.perf_counter() - t


def sync_map(path, window):
    def run(n):
        with forkpool.Client(path) as c:
            for o in c.map(("x" for _ in range(n)), window=window):
                if not o.ok:
                    o.get()
    return run


def async_map(path, window):
    async def go(n):
        async with forkpool.AsyncClient(path) as c:
            async for o in c.map(("x" for _ in range(n)), window=window):
                if not o.ok:
                    o.get()
    return lambda n: asyncio.run(go(n))


def async_gather(path, window):
    async def go(n):
        async with forkpool.AsyncClient(path) as c:
            sem = asyncio.Semaphore(window)

            async def one():
                async with sem:
                    await c.submit("x")
            await asyncio.gather(*(one() for _ in range(n)))
    return lambda n: asyncio.run(go(n))


def sync_submit(path, window):
    def run(n):
        with forkpool.Client(path) as c:
            for _ in range(n):
                c.submit("x")
    return run


ROWS = [("Client.map", sync_map, 1), ("AsyncClient.map", async_map, 1),
        ("AsyncClient.gather", async_gather, 10), ("Client.submit", sync_submit, 10)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-s", "--socket", default=None)
    ap.add_argument("-n", "--jobs", type=int, default=100000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--only", default=None, help="run only this row")
    a = ap.parse_args()
    path = a.socket or forkpool.default_socket_path()
    for name, make, div in ROWS:
        if a.only and a.only != name:
            continue
        n = max(1, a.jobs // div)
        fn = make(path, a.window)
        fn(min(n, 1000))                        # warm up
        s = timed(fn, n)
        print("python %s\t%d\t%.3f\t%.0f" % (name, n, s, n / s), flush=True)


if __name__ == "__main__":
    main()
