"""The exceptions of the forkpool client.

Two families, never mixed:

* :class:`JobFailed` and its subclasses: the daemon gave the job a final
  outcome other than ``ok`` (SPEC §3).  One subclass per outcome kind;
  catch :class:`JobFailed` for all of them.
* :class:`ConnectionError`: the daemon could not be reached, went away,
  spoke something that is not the protocol, or did not answer in time
  (:class:`WaitTimeout`).  It is also a builtin :class:`ConnectionError`
  (an :class:`OSError`), so code that already handles socket trouble
  catches it too.

:class:`RequestError` is what a method that runs no job raises when the
daemon refuses it (``scale`` out of range, bad ``limit`` params, ...).
"""

import builtins


class ForkpoolError(Exception):
    """Base of every exception this package raises."""


class JobFailed(ForkpoolError):
    """A job ended with an outcome other than ``ok``.

    Attributes: ``id`` (the job's id, or ``None`` when it was never
    accepted), ``kind`` (``"error"``, ``"crashed"``, ...), ``detail`` (the
    outcome's detail value: the handler's error detail, or a string such
    as ``"killed by SIGSEGV"``), ``stats`` (the receipt: ``wait_ms``,
    ``run_ms``, ``cpu_ms``, ``maxrss_kb``, ``attempts``; ``None`` for
    ``rejected``), ``stderr`` (a crashed job's stderr tail, else ``None``)
    and ``index`` (the job's place in a ``map``'s input, else ``None``).
    """

    kind = None

    def __init__(self, id, kind, detail, stats=None, stderr=None, index=None):
        self.id = id
        self.kind = kind
        self.detail = detail
        self.stats = stats
        self.stderr = stderr
        self.index = index
        super().__init__(id, kind, detail)

    def __str__(self):
        detail = self.detail
        if isinstance(detail, dict) and "message" in detail:
            detail = detail["message"]
        where = "job %s" % self.id if self.id is not None else "job"
        return "%s %s: %s" % (where, self.kind, detail)

    def __repr__(self):
        return "%s(id=%r, kind=%r, detail=%r)" % (
            type(self).__name__, self.id, self.kind, self.detail)


class JobError(JobFailed):
    """``error``: the handler reported failure; ``detail`` is its value."""
    kind = "error"


class JobCrashed(JobFailed):
    """``crashed``: the worker died running the job (after all retries);
    ``detail`` names how (``"killed by SIGSEGV"``) and ``stderr`` holds the
    last lines it wrote to stderr during the job."""
    kind = "crashed"


class JobTimedOut(JobFailed):
    """``timeout``: the job ran past its timeout (or sent no heartbeat)."""
    kind = "timeout"


class JobCancelled(JobFailed):
    """``cancelled``: cancelled by request, expired before it started, or
    cut off by the drain timeout."""
    kind = "cancelled"


class JobRejected(JobFailed):
    """``rejected``: never accepted (``queue full``, ``draining``, ``job too
    large``, ``malformed``...); ``id`` is ``None``."""
    kind = "rejected"


#: Outcome kind -> exception class (SPEC §3; ``fp_kind`` in forkpool.h).
KINDS = {cls.kind: cls for cls in
         (JobError, JobCrashed, JobTimedOut, JobCancelled, JobRejected)}


def job_failed(id, kind, detail, stats=None, stderr=None, index=None):
    """The exception for one failed outcome: its kind's class, or
    :class:`JobFailed` itself for a kind this version does not know."""
    cls = KINDS.get(kind, JobFailed)
    return cls(id, kind, detail, stats, stderr, index)


class ConnectionError(ForkpoolError, builtins.ConnectionError):
    """The daemon could not be reached or the connection broke.  The
    message names the socket path."""


class WaitTimeout(ConnectionError, builtins.TimeoutError):
    """No answer within the client's ``timeout`` (or ``rpc_timeout``).
    The request may still complete in the daemon; its answer is dropped."""


class ProtocolError(ConnectionError):
    """The daemon sent something that is not the control protocol; the
    connection is closed."""


class RequestError(ForkpoolError):
    """The daemon refused a request that runs no job; the message is its
    error string (``"cannot scale to 0 workers: ..."``)."""
