"""A Python --exec worker for the tests, written with forkpool.worker.

Job: any value is echoed back, except a map with "op":
  {"op": "raise", "message": m}   raise ValueError(m)       -> error
  {"op": "fail", "detail": v}     raise worker.Fail(v)      -> error, detail v
  {"op": "segv", "say": s}        write s to stderr, then SIGSEGV itself
  {"op": "print", "text": t}      print(t) to stdout; result "printed"
  {"op": "progress", "values": [v...]}   report each v; result: how many
  {"op": "unpackable"}            return a value msgpack cannot pack
  {"op": "pid"}                   result: the worker's pid
  {"op": "fork"}                  fork; the child returns "child" (into
                                  the worker's loop), the parent waits for
                                  it and returns "parent"
"""
import os
import signal
import sys

from forkpool import worker


@worker.handler
def handle(job):
    op = job.get("op") if isinstance(job, dict) else None
    if op == "raise":
        raise ValueError(job.get("message", "raised on purpose"))
    if op == "fail":
        raise worker.Fail(job.get("detail"))
    if op == "segv":
        sys.stderr.write(job.get("say", "about to crash") + "\n")
        os.kill(os.getpid(), signal.SIGSEGV)
    if op == "print":
        print(job["text"])
        return "printed"
    if op == "progress":
        for v in job["values"]:
            worker.progress(v)
        return len(job["values"])
    if op == "unpackable":
        return object()
    if op == "pid":
        return os.getpid()
    if op == "fork":
        child = os.fork()
        if child == 0:
            return "child"
        os.waitpid(child, 0)
        return "parent"
    return job


if __name__ == "__main__":
    worker.run()
