"""The synchronous client: :class:`Client` and :class:`Events`."""

import select
import socket
import time

from . import _wire
from ._mapper import Mapper
from ._session import Session
from .errors import ConnectionError, ProtocolError, WaitTimeout

READ_CHUNK = 256 * 1024


class _Conn:
    """One nonblocking connection to the daemon and its Session: bytes
    queued out, bytes read and dispatched, every wait bounded by a
    deadline.  Reading never stops while writing waits, so a big request
    cannot deadlock against the daemon's answers."""

    def __init__(self, path, connect_timeout):
        self.path = path
        self.session = Session()
        self.out = bytearray()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(connect_timeout)
            self.sock.connect(path)
        except socket.timeout:
            self.sock.close()
            raise WaitTimeout("forkpoold at %s did not accept the connection "
                              "within %gs" % (path, connect_timeout)) from None
        except OSError as e:
            self.sock.close()
            raise ConnectionError("cannot reach forkpoold at %s: %s"
                                  % (path, e.strerror or e)) from None
        self.sock.setblocking(False)
        self.poll = select.poll()
        self.fd = self.sock.fileno()
        self.broken = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # A Client dropped without close() (one per thread, say) closes its
    # socket quietly.
    __del__ = close

    def _fail(self, why):
        self.broken = "connection to forkpoold at %s %s" % (self.path, why)
        self.close()
        raise ConnectionError(self.broken)

    def check(self):
        """Raise if the connection is closed or broken."""
        if self.sock is None:
            raise ConnectionError(self.broken or "client is closed (%s)" % self.path)

    def send(self, data):
        """Queue bytes and write what the socket takes now."""
        self.check()
        self.out += data
        self._write()

    def _write(self):
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fail("broke: %s" % (e.strerror or e))
        del self.out[:n]

    def _read(self):
        """Read what is there and dispatch it; False if nothing was."""
        try:
            data = self.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            self._fail("broke: %s" % (e.strerror or e))
        if not data:
            self._fail("closed by the daemon")
        try:
            self.session.feed(data)
        except ProtocolError as e:
            self.broken = "%s (%s)" % (e, self.path)
            self.close()
            raise ProtocolError(self.broken) from None
        return True

    def step(self, deadline, what):
        """Make progress: write queued bytes, read and dispatch what has
        arrived, waiting for one of them until `deadline` (a monotonic
        time, or None for no limit).  Raises WaitTimeout past it, naming
        `what` was waited for."""
        self.check()
        if self.out:
            self._write()
        if self._read():
            return
        timeout = -1
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("no answer from forkpoold at %s for %s"
                                  % (self.path, what))
            timeout = max(1, int(left * 1000 + 0.999))
        self.poll.register(self.fd, select.POLLIN | (select.POLLOUT if self.out else 0))
        try:
            ready = self.poll.poll(timeout)
        except InterruptedError:
            ready = None
        if ready:
            if self.out:
                self._write()
            self._read()


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


class _Call:
    """A plain request's answer, and the callbacks of a submit."""

    __slots__ = ("done", "error", "result", "progress", "accepted")

    def __init__(self, progress=None, accepted=None):
        self.done = False
        self.error = self.result = None
        self.progress = progress
        self.accepted = accepted

    def __call__(self, msgid, kind, a, b):
        if kind == "response":
            self.done = True
            self.error, self.result = a, b
            return True
        if kind == "progress" and self.progress is not None:
            self.progress(a, b)
        elif kind == "accepted" and self.accepted is not None:
            self.accepted(a)
        return False


class Client:
    """A connection to ``forkpoold``'s control socket.

    ``path``: the socket (default: ``$FORKPOOL_SOCKET``, else
    ``$XDG_RUNTIME_DIR/forkpool.sock``, else ``/tmp/forkpool-<uid>.sock``).
    ``timeout``: the longest wait, in seconds, for a job's outcome
    (``submit``) or for the next outcome (``map``); ``None`` (the default)
    waits as long as the jobs take -- give jobs their own ``timeout``.
    ``rpc_timeout``: the longest wait for methods that run no job
    (``status``, ``scale``...) and for connecting (default 5 s).

    Connection trouble raises :class:`forkpool.ConnectionError` (a
    :class:`forkpool.WaitTimeout` past a timeout); a job that does not end
    ``ok`` raises its :class:`forkpool.JobFailed` subclass.

    One Client serves one thread at a time (give each thread its own, or
    use :class:`forkpool.AsyncClient`); many requests are pipelined on its
    one connection by :meth:`map`.  Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, path=None, timeout=None, rpc_timeout=5.0):
        self.path = path or _wire.default_socket_path()
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self._conn = _Conn(self.path, rpc_timeout)

    def close(self):
        """Close the connection.  Jobs in flight still run; their outcomes
        are dropped."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the plumbing ----------------------------------------------------

    def _call(self, method, params, timeout, call=None):
        conn = self._conn
        call = call or _Call()
        msgid, data = conn.session.request(method, params, call)
        try:
            conn.send(data)
            deadline = _deadline(timeout)
            while not call.done:
                conn.step(deadline, method)
        except BaseException:
            conn.session.forget([msgid])
            raise
        return call

    def _rpc(self, method, params=()):
        call = self._call(method, list(params), self.rpc_timeout)
        return _wire.method_result(call.error, call.result)

    # ---- jobs ------------------------------------------------------------

    def submit(self, job, timeout=None, retries=None, key=None, expires=None,
               progress=None, accepted=None, wait=None):
        """Run one job and return its result.

        ``job`` is any msgpack-able value (``bytes`` go as msgpack bin).
        Options, as the daemon's: ``timeout`` (seconds the job may run),
        ``retries`` (attempts after a crash), ``key`` (its rate-limit
        class), ``expires`` (seconds it may wait to start).
        ``progress(job_id, value)`` is called for each progress report,
        before the outcome; ``accepted(job_id)`` as soon as the daemon
        accepts the job (in time to :meth:`cancel` it).  ``wait`` overrides
        the client's ``timeout`` for this call.

        Raises the outcome's :class:`forkpool.JobFailed` subclass when it
        is not ``ok``.
        """
        return self.submit_outcome(job, timeout, retries, key, expires,
                                   progress, accepted, wait).get()

    def submit_outcome(self, job, timeout=None, retries=None, key=None,
                       expires=None, progress=None, accepted=None, wait=None):
        """As :meth:`submit`, but return the :class:`forkpool.Outcome`
        whatever its kind."""
        opts = _wire.job_options(timeout, retries, key, expires,
                                 progress is not None, accepted is not None)
        call = self._call("submit", _wire.submit_params(job, opts),
                          self.timeout if wait is None else wait,
                          _Call(progress, accepted))
        return _wire.outcome(call.error, call.result)

    def map(self, jobs, window=256, ordered=False, timeout=None, retries=None,
            key=None, expires=None, progress=None):
        """Run every job of the iterable ``jobs`` through the pool, with up
        to ``window`` of them in flight on this connection, and yield one
        :class:`forkpool.Outcome` per job: as they complete, or in input
        order with ``ordered=True`` (then ``window`` also bounds how far
        ahead of the oldest unfinished job the input is read).  Each
        outcome's ``index`` is the job's place in the input.

        Failed jobs are yielded too (``outcome.ok`` is False;
        ``outcome.get()`` raises).  A job the daemon refuses with ``queue
        full`` is sent again later, paced; other refusals are outcomes.
        Options as in :meth:`submit`, for every job; ``progress(job_id,
        value)``.  Stopping early leaves the jobs in flight running; their
        outcomes are dropped.
        """
        conn = self._conn
        opts = _wire.job_options(timeout, retries, key, expires,
                                 progress is not None)
        m = Mapper(jobs, window, ordered, opts, progress, conn.session)
        try:
            deadline = _deadline(self.timeout)
            while True:
                for data in m.fill():
                    conn.send(data)
                ready = m.pop_ready()
                if ready:
                    yield from ready
                    deadline = _deadline(self.timeout)
                    continue
                if m.finished:
                    return
                wake = m.wait_until()
                if wake is not None and (deadline is None or wake < deadline):
                    if time.monotonic() < wake:
                        try:
                            conn.step(wake, "map")
                        except WaitTimeout:
                            pass
                    continue
                conn.step(deadline, "map")
        finally:
            conn.session.forget(m.msgids())

    # ---- methods that run no job ---------------------------------------

    def status(self):
        """The pool's status map (``state``, ``workers``, ``busy``,
        ``queued``, ``pids``, ``worker_list``, ``limits``...)."""
        return self._rpc("status")

    def scale(self, n):
        """Set the worker count; returns ``{"workers": n}``.  Raises
        :class:`forkpool.RequestError` when n is out of range."""
        return self._rpc("scale", [n])

    def cancel(self, id):
        """Cancel job ``id``; True if it was found (its submitter then
        gets ``cancelled``)."""
        return self._rpc("cancel", [id])

    def drain(self):
        """Drain the daemon, as SIGTERM: it refuses new jobs, finishes
        those it accepted, and exits.  Returns at once."""
        return self._rpc("drain")

    def reload(self):
        """Rolling reload, as SIGHUP: each worker is replaced after its
        current job."""
        return self._rpc("reload")

    def metrics(self):
        """The Prometheus text exposition, a str."""
        return self._rpc("metrics")

    def limit(self, key, rate, burst=None):
        """Set (or change) the rate limit of ``key`` (``""`` = pool-wide):
        ``rate`` job starts a second, bursts of ``burst``; ``rate=None``
        removes it.  Returns True."""
        if rate is None:
            return self._rpc("limit", [key, None])
        if burst is None:
            return self._rpc("limit", [key, rate])
        return self._rpc("limit", [key, rate, burst])

    def events(self, timeout=None):
        """Subscribe to the daemon's event stream on a connection of its
        own; returns an :class:`Events` iterator of event maps
        (``{"event": "job"|"worker"|"pool", ...}``).  ``timeout``: the
        longest wait for the next event (None: no limit)."""
        return Events(self.path, timeout, self.rpc_timeout)


class Events:
    """An iterator over the daemon's events (after ``subscribe``), each a
    dict: ``{"event": "job", "id", "kind", "stats"}``, ``{"event":
    "worker", "pid", "what", "detail"?}``, ``{"event": "pool", "what",
    "workers"?}``.  Iteration raises :class:`forkpool.WaitTimeout` when no
    event comes within ``timeout``.  Close it (or use ``with``) to
    unsubscribe."""

    def __init__(self, path=None, timeout=None, rpc_timeout=5.0):
        self.path = path or _wire.default_socket_path()
        self.timeout = timeout
        self._conn = _Conn(self.path, rpc_timeout)
        call = _Call()
        conn = self._conn
        msgid, data = conn.session.request("subscribe", [], call)
        try:
            conn.send(data)
            deadline = _deadline(rpc_timeout)
            while not call.done:
                conn.step(deadline, "subscribe")
            _wire.method_result(call.error, call.result)
        except BaseException:
            conn.close()
            raise

    def __iter__(self):
        return self

    def __next__(self):
        events = self._conn.session.events
        deadline = _deadline(self.timeout)
        while not events:
            self._conn.step(deadline, "the next event")
        return events.popleft()

    def close(self):
        """Unsubscribe (close the connection)."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
