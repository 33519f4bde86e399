"""The asyncio client: :class:`AsyncClient` and :class:`AsyncEvents`.

One connection, any number of concurrent calls on it: a reader task
dispatches every answer to the call it belongs to (by msgid), so
``asyncio.gather(*(c.submit(j) for j in jobs))`` pipelines them all.
"""

import asyncio
import time

from . import _wire
from ._mapper import Mapper
from ._session import Session
from .errors import ConnectionError, ProtocolError, WaitTimeout

READ_CHUNK = 256 * 1024


class AsyncClient:
    """An asyncio connection to ``forkpoold``'s control socket.

    Arguments as :class:`forkpool.Client`: ``path`` (default rule),
    ``timeout`` (longest wait for a job's outcome, or for ``map``'s next
    one; None: no limit), ``rpc_timeout`` (methods that run no job, and
    connecting; default 5 s).  Connects on first use, or explicitly with
    ``await client.connect()``; ``async with AsyncClient() as c:`` closes
    it at the end.  Every method is a coroutine (``map`` and ``events``:
    async iterators) and may run concurrently with the others.
    """

    def __init__(self, path=None, timeout=None, rpc_timeout=5.0):
        self.path = path or _wire.default_socket_path()
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self._session = None
        self._writer = None
        self._reader_task = None
        self._broken = None
        self._connecting = None
        self._fed = None
        self._waiters = set()   # map's wake-ups: set after every read

    async def connect(self):
        """Connect now (done by the first call otherwise)."""
        if self._session is not None:
            self._check()
            return
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._connecting)

    async def _open(self):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path), self.rpc_timeout)
        except asyncio.TimeoutError:
            raise WaitTimeout("forkpoold at %s did not accept the connection "
                              "within %gs" % (self.path, self.rpc_timeout)) from None
        except OSError as e:
            raise ConnectionError("cannot reach forkpoold at %s: %s"
                                  % (self.path, e.strerror or e)) from None
        self._writer = writer
        self._fed = asyncio.Event()
        self._session = Session()
        self._reader_task = asyncio.ensure_future(self._read_loop(reader))

    async def _read_loop(self, reader):
        session = self._session
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    self._lose("closed by the daemon")
                    return
                session.feed(data)
                self._fed.set()
                for w in self._waiters:
                    w.set()
        except ProtocolError as e:
            self._lose(None, "%s (%s)" % (e, self.path), ProtocolError)
        except asyncio.CancelledError:
            self._lose("closed")
            raise
        except OSError as e:
            self._lose("broke: %s" % (e.strerror or e))

    def _lose(self, why, text=None, cls=ConnectionError):
        """The connection is gone: every call waiting on it raises."""
        if self._broken is None:
            self._broken = cls(text or "connection to forkpoold at %s %s"
                               % (self.path, why))
        routes = self._session.routes
        self._session.routes = {}
        for msgid, h in routes.items():
            h(msgid, "lost", self._broken, None)
        self._fed.set()
        for w in self._waiters:
            w.set()
        if self._writer is not None:
            self._writer.close()

    def _check(self):
        if self._broken is not None:
            raise type(self._broken)(str(self._broken))

    async def close(self):
        """Close the connection.  Jobs in flight still run; their outcomes
        are dropped, and calls waiting for them raise ConnectionError."""
        if self._reader_task is not None:
            self._reader_task.cancel()
            try:
                await self._reader_task
            except (asyncio.CancelledError, Exception):
                pass
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- the plumbing ----------------------------------------------------

    def _send(self, data):
        self._check()
        self._writer.write(data)

    async def _call(self, method, params, timeout, progress=None, accepted=None):
        """Send one request; return its (error, result)."""
        await self.connect()
        fut = asyncio.get_running_loop().create_future()

        def handler(msgid, kind, a, b):
            if kind == "response":
                if not fut.done():
                    fut.set_result((a, b))
                return True
            if kind == "lost":
                if not fut.done():
                    fut.set_exception(type(a)(str(a)))
                return True
            if kind == "progress" and progress is not None:
                progress(a, b)
            elif kind == "accepted" and accepted is not None:
                accepted(a)
            return False

        msgid, data = self._session.request(method, params, handler)
        try:
            self._send(data)
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise WaitTimeout("no answer from forkpoold at %s for %s"
                              % (self.path, method)) from None
        finally:
            self._session.forget([msgid])

    async def _rpc(self, method, params=()):
        error, result = await self._call(method, list(params), self.rpc_timeout)
        return _wire.method_result(error, result)

    # ---- jobs ------------------------------------------------------------

    async def submit(self, job, timeout=None, retries=None, key=None,
                     expires=None, progress=None, accepted=None, wait=None):
        """Run one job and return its result; raises the outcome's
        :class:`forkpool.JobFailed` subclass when it is not ``ok``.
        Arguments as :meth:`forkpool.Client.submit`."""
        o = await self.submit_outcome(job, timeout, retries, key, expires,
                                      progress, accepted, wait)
        return o.get()

    async def submit_outcome(self, job, timeout=None, retries=None, key=None,
                             expires=None, progress=None, accepted=None,
                             wait=None):
        """As :meth:`submit`, but return the :class:`forkpool.Outcome`."""
        opts = _wire.job_options(timeout, retries, key, expires,
                                 progress is not None, accepted is not None)
        error, result = await self._call(
            "submit", _wire.submit_params(job, opts),
            self.timeout if wait is None else wait, progress, accepted)
        return _wire.outcome(error, result)

    async def map(self, jobs, window=256, ordered=False, timeout=None,
                  retries=None, key=None, expires=None, progress=None):
        """An async iterator of :class:`forkpool.Outcome`, one per job of
        the (plain) iterable ``jobs``, with up to ``window`` in flight:
        as they complete, or in input order with ``ordered=True``.  As
        :meth:`forkpool.Client.map`."""
        await self.connect()
        opts = _wire.job_options(timeout, retries, key, expires,
                                 progress is not None)
        m = Mapper(jobs, window, ordered, opts, progress, self._session)
        # Woken once per read, not per message (a read brings hundreds).
        woken = asyncio.Event()
        self._waiters.add(woken)
        try:
            while True:
                woken.clear()
                for data in m.fill():
                    self._send(data)
                ready = m.pop_ready()
                if ready:
                    for o in ready:
                        yield o
                    continue
                if m.finished:
                    return
                self._check()
                if self._writer.transport.get_write_buffer_size() > (1 << 20):
                    await self._writer.drain()
                wait = self.timeout
                wake = m.wait_until()
                paced = False
                if wake is not None:
                    left = max(0.0, wake - time.monotonic())
                    if wait is None or left < wait:
                        wait, paced = left, True
                try:
                    await asyncio.wait_for(woken.wait(), wait)
                except asyncio.TimeoutError:
                    if not paced:
                        raise WaitTimeout("no answer from forkpoold at %s for "
                                          "map" % self.path) from None
        finally:
            self._waiters.discard(woken)
            if self._session is not None:
                self._session.forget(m.msgids())

    # ---- methods that run no job ---------------------------------------

    async def status(self):
        """The pool's status map."""
        return await self._rpc("status")

    async def scale(self, n):
        """Set the worker count; returns ``{"workers": n}``."""
        return await self._rpc("scale", [n])

    async def cancel(self, id):
        """Cancel job ``id``; True if it was found."""
        return await self._rpc("cancel", [id])

    async def drain(self):
        """Drain the daemon, as SIGTERM; returns at once."""
        return await self._rpc("drain")

    async def reload(self):
        """Rolling reload, as SIGHUP."""
        return await self._rpc("reload")

    async def metrics(self):
        """The Prometheus text exposition, a str."""
        return await self._rpc("metrics")

    async def limit(self, key, rate, burst=None):
        """Set, change (or with ``rate=None`` remove) the rate limit of
        ``key``; returns True."""
        if rate is None:
            return await self._rpc("limit", [key, None])
        if burst is None:
            return await self._rpc("limit", [key, rate])
        return await self._rpc("limit", [key, rate, burst])

    def events(self, timeout=None):
        """An :class:`AsyncEvents` async iterator of event maps, on a
        connection of its own: ``async with client.events() as ev: async
        for e in ev: ...``."""
        return AsyncEvents(self.path, timeout, self.rpc_timeout)


class AsyncEvents:
    """The daemon's events as an async iterator (see
    :class:`forkpool.Events`).  ``await ev.start()`` (or ``async with``)
    subscribes; iteration does it too on first use.  ``timeout``: the
    longest wait for the next event (raises WaitTimeout)."""

    def __init__(self, path=None, timeout=None, rpc_timeout=5.0):
        self.timeout = timeout
        self._client = AsyncClient(path, None, rpc_timeout)
        self._started = False

    async def start(self):
        """Subscribe (once)."""
        if not self._started:
            await self._client._rpc("subscribe")
            self._started = True

    def __aiter__(self):
        return self

    async def __anext__(self):
        await self.start()
        c = self._client
        events = c._session.events
        while not events:
            c._check()
            c._fed.clear()
            try:
                await asyncio.wait_for(c._fed.wait(), self.timeout)
            except asyncio.TimeoutError:
                raise WaitTimeout("no event from forkpoold at %s" % c.path) from None
        return events.popleft()

    async def close(self):
        """Unsubscribe (close the connection)."""
        await self._client.close()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()
