"""Write an ``forkpoold --exec`` worker as one decorated function::

    from forkpool import worker

    @worker.handler
    def handle(job):
        worker.progress("half way")     # optional, any msgpack value
        return {"len": len(job)}        # the result (any msgpack value)

    if __name__ == "__main__":
        worker.run()

``forkpoold --exec "python3 myworker.py"`` then runs one such process per
worker.  It speaks the worker protocol (SPEC §6): ``["ready", {"pid",
"proto": 1}]`` once, then for each ``["job", id, payload]`` (in order)
``["ok", id, result]`` or ``["error", id, detail]``, and ``["progress",
id, value]`` while the job runs; it exits when the master closes its end.

* An exception in the handler becomes an ``error`` outcome whose detail is
  ``{"type": "ValueError", "message": "...", "traceback": "..."}``; raise
  :class:`Fail` to choose the detail value yourself.  A result that cannot
  be packed is an ``error`` too.  The worker lives on.  ``SystemExit`` and
  ``KeyboardInterrupt`` are not errors of the job but the end of the
  process: the job ends ``crashed`` ("exited normally", "killed by
  SIGINT"), like any worker that exits in the middle of a job.
* A process the handler forks must not return into the worker's loop: one
  that does (returns or raises in the child) ends there, at once, and only
  the worker answers for the job.
* The protocol runs on a private copy of the socket the master gave as
  stdin and stdout.  ``run()`` then points fd 1 (and ``sys.stdout``) at
  stderr and fd 0 at ``/dev/null``, so a stray ``print()`` in the handler,
  or a child process writing to its stdout, goes to the daemon's log (and
  into a crashed job's ``stderr`` tail), never onto the wire.
* ``faulthandler`` is on: a worker that dies by a signal (a segfault in
  a C extension, say) leaves its Python stack in that ``stderr`` tail.
* Payloads arrive as msgpack: bin -> ``bytes``, str -> ``str``.
"""

import faulthandler
import os
import sys
import threading
import traceback

import msgpack

__all__ = ["handler", "progress", "run", "Fail", "current_job_id"]

_handler = None
_out_fd = None
_write_lock = threading.Lock()
_running = None             # id of the job being run, or None
_worker_pid = None          # the worker's own pid (not a forked child's)
_packer_local = threading.local()


class Fail(Exception):
    """Raise from a handler to end the job ``error`` with exactly
    ``detail`` (any msgpack value) as its detail."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail


def handler(fn):
    """Decorator: make ``fn(job) -> result`` this worker's handler."""
    global _handler
    _handler = fn
    return fn


def current_job_id():
    """The id of the job being run, or None between jobs."""
    return _running


def _pack(value):
    pk = getattr(_packer_local, "pk", None)
    if pk is None:
        pk = _packer_local.pk = msgpack.Packer(use_bin_type=True,
                                               unicode_errors="surrogateescape")
    return pk.pack(value)


def _write(data):
    with _write_lock:
        view = memoryview(data)
        while view:
            n = os.write(_out_fd, view)
            view = view[n:]


def progress(value):
    """Report how far the running job has got: ``value`` is any msgpack
    value; it reaches a submitter that asked for progress, and counts as
    the job's heartbeat.  Callable from any thread while the handler
    runs.  Raises RuntimeError when no job is running (a report then
    would be a protocol error and cost the worker)."""
    job = _running
    if job is None or _out_fd is None:
        raise RuntimeError("forkpool.worker.progress: no job is running")
    _write(_pack(["progress", job, value]))


def _error_detail(e):
    return {"type": type(e).__name__, "message": str(e),
            "traceback": "".join(traceback.format_exception(type(e), e,
                                                            e.__traceback__))}


def _child_leaves():
    """A process the handler forked that came back into the worker's loop
    (returned, or raised, in the child): it must not speak for the worker.
    It ends here, as a child of a fork that returns nowhere would."""
    if os.getpid() != _worker_pid:
        os._exit(0)


def _answer(job_id, payload, fn):
    """Run one job; return the bytes of its answer."""
    global _running
    _running = job_id
    try:
        try:
            result = fn(payload)
        except Fail as e:
            _child_leaves()
            return _pack(["error", job_id, e.detail])
        except Exception as e:
            _child_leaves()
            return _pack(["error", job_id, _error_detail(e)])
        _child_leaves()
        try:
            return _pack(["ok", job_id, result])
        except Exception as e:
            return _pack(["error", job_id, {
                "type": type(e).__name__,
                "message": "the handler's result cannot be sent as msgpack: %s" % e,
                "traceback": ""}])
    finally:
        _running = None
        sys.stdout.flush()


def _take_stdio():
    """Keep the protocol socket (fd 0, also fd 1) on a private fd; point
    fd 1 at stderr and fd 0 at /dev/null.  Returns the private fd."""
    sys.stdout.flush()
    fd = os.dup(0)                  # non-inheritable: children never see it
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = open(1, "w", buffering=1, encoding=sys.stdout.encoding,
                      errors="backslashreplace", closefd=False)
    return fd


def run(fn=None):
    """Serve jobs with ``fn`` (default: the :func:`handler`-decorated
    function) until the master closes the connection; then return.
    Call it once, from the main thread."""
    global _out_fd, _worker_pid
    fn = fn or _handler
    if fn is None:
        raise RuntimeError("forkpool.worker.run: no handler (decorate one "
                           "with @forkpool.worker.handler)")
    _worker_pid = os.getpid()
    faulthandler.enable()
    fd = _out_fd = _take_stdio()
    up = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape",
                          strict_map_key=False, max_buffer_size=1 << 30)
    _write(_pack(["ready", {"pid": os.getpid(), "proto": 1}]))
    while True:
        try:
            data = os.read(fd, 256 * 1024)
        except InterruptedError:
            continue
        if not data:
            return
        up.feed(data)
        for msg in up:
            if type(msg) is not list or len(msg) != 3 or msg[0] != "job" \
                    or type(msg[1]) is not int:
                raise SystemExit("forkpool worker: unexpected message from "
                                 "the master: %.200r" % (msg,))
            # Each answer goes out as soon as it is ready: the next job
            # (sent ahead) may be a long one.
            _write(_answer(msg[1], msg[2], fn))
