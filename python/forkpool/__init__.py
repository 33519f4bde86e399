"""forkpool: a Python client and worker kit for the forkpool daemon.

* :class:`Client` (blocking) and :class:`AsyncClient` (asyncio) talk to
  ``forkpoold`` over its control socket (MessagePack-RPC): ``submit`` one
  job, ``map`` many with a window in flight, and ``status``, ``scale``,
  ``cancel``, ``drain``, ``reload``, ``metrics``, ``limit``, ``events``.
* A job that does not end ``ok`` raises a :class:`JobFailed` subclass, one
  per outcome kind; trouble with the connection raises
  :class:`ConnectionError`.
* :mod:`forkpool.worker` writes an ``--exec`` worker program as one
  decorated function.

Values travel as msgpack: ``bytes`` <-> bin, ``str`` <-> str.
"""

from ._wire import default_socket_path
from .aio import AsyncClient, AsyncEvents
from .client import Client, Events
from .errors import (ConnectionError, ForkpoolError, JobCancelled, JobCrashed,
                     JobError, JobFailed, JobRejected, JobTimedOut, KINDS,
                     ProtocolError, RequestError, WaitTimeout)
from .outcome import Outcome

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "Events", "AsyncEvents", "Outcome",
    "ForkpoolError", "JobFailed", "JobError", "JobCrashed", "JobTimedOut",
    "JobCancelled", "JobRejected", "KINDS", "ConnectionError", "WaitTimeout",
    "ProtocolError", "RequestError", "default_socket_path",
]
