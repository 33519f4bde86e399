"""The control protocol's bytes (SPEC §7): the socket path rule, requests,
and the shape of every message the daemon sends, checked before use.

Pure code over bytes and values: no sockets, no event loop.  Both clients
(client.py, aio.py) build on it.
"""

import os

import msgpack

from .errors import ProtocolError, RequestError
from .outcome import Outcome

REQUEST, RESPONSE, NOTIFY = 0, 1, 2

#: Largest message accepted from the daemon (its own frame limit is
#: --max-job-bytes, 64 MiB by default, plus the envelope).
MAX_MESSAGE = 1 << 30

#: Jobs per submit_batch request (as forkpoolctl map).
BATCH_MAX = 256

#: msgids are uint32 on the wire.
MSGID_MASK = 0xFFFFFFFF


def default_socket_path():
    """The daemon's socket path by the rule both programs use:
    ``$FORKPOOL_SOCKET``, else ``$XDG_RUNTIME_DIR/forkpool.sock``, else
    ``/tmp/forkpool-<uid>.sock``."""
    env = os.environ.get("FORKPOOL_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "forkpool.sock")
    return "/tmp/forkpool-%d.sock" % os.getuid()


def packer():
    """A packer for requests: ``bytes`` as msgpack bin, ``str`` as str
    (a ``str`` holding lone surrogates from a non-UTF-8 value goes back as
    the bytes it came from)."""
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape")


def unpacker():
    """A streaming unpacker for the daemon's messages: bin -> ``bytes``,
    str -> ``str`` (invalid UTF-8 kept as surrogate escapes), any map key."""
    return msgpack.Unpacker(raw=False, unicode_errors="surrogateescape",
                            strict_map_key=False, max_buffer_size=MAX_MESSAGE)


def job_options(timeout=None, retries=None, key=None, expires=None,
                progress=False, notify=False):
    """The options map of a submit (only what was given), or ``None``."""
    opts = {}
    if timeout is not None:
        opts["timeout"] = float(timeout)
    if retries is not None:
        opts["retries"] = int(retries)
    if key is not None:
        opts["key"] = key
    if expires is not None:
        opts["expires"] = float(expires)
    if progress:
        opts["progress"] = True
    if notify:
        opts["notify"] = True
    return opts or None


def submit_params(job, opts):
    """params of a submit: ``[job]`` or ``[job, opts]``."""
    return [job] if opts is None else [job, opts]


def batch_params(jobs, opts):
    """params of a submit_batch: ``[[job, ...]]`` or ``[[job, ...], opts]``."""
    return [jobs] if opts is None else [jobs, opts]


def request(pk, msgid, method, params):
    """The bytes of request ``[0, msgid, method, params]``."""
    return pk.pack([REQUEST, msgid, method, params])


def classify(msg):
    """Check one message's shape.  Returns ``(RESPONSE, msgid, error,
    result)`` or ``(NOTIFY, method, params, None)``; raises
    :class:`ProtocolError` for anything else."""
    if type(msg) is list:
        n = len(msg)
        if n == 4 and msg[0] == RESPONSE and type(msg[1]) is int:
            return RESPONSE, msg[1], msg[2], msg[3]
        if n == 3 and msg[0] == NOTIFY and type(msg[1]) is str \
                and type(msg[2]) is list:
            return NOTIFY, msg[1], msg[2], None
    raise ProtocolError("unexpected message from forkpoold: %.200r" % (msg,))


def outcome(error, result, index=None):
    """The :class:`Outcome` of a submit response (or of a submit_batch
    "outcome" notification's error and result).  A string error (the
    request itself refused) raises :class:`RequestError`."""
    if error is None:
        if type(result) is not dict:
            raise ProtocolError("submit result is not a map: %.200r" % (result,))
        return Outcome(index, result.get("id"), "ok", result.get("result"),
                       None, _stats(result))
    if type(error) is dict and "kind" in error:
        return Outcome(index, error.get("id"), error["kind"], None,
                       error.get("detail"), _stats(error), error.get("stderr"))
    if type(error) is str:
        raise RequestError(error)
    raise ProtocolError("submit error is not an outcome: %.200r" % (error,))


def _stats(m):
    stats = m.get("stats")
    if stats is not None and "attempts" in m and "attempts" not in stats:
        stats["attempts"] = m["attempts"]
    return stats


def method_result(error, result):
    """The result of a method that runs no job, or raise its error."""
    if error is not None:
        raise RequestError(error if type(error) is str else repr(error))
    return result


def notification(method, params):
    """Check a notification's params.  Returns ``(kind, msgid, a, b)``:
    ``("progress", msgid, job_id, value)``, ``("accepted", msgid, job_id,
    None)``, ``("outcome", msgid, index, (error, result))`` or
    ``("event", None, event_map, None)``; ``None`` for a notification this
    version does not know (ignored, for forward compatibility)."""
    n = len(params)
    if method == "outcome" and n == 4 and type(params[0]) is int \
            and type(params[1]) is int:
        return "outcome", params[0], params[1], (params[2], params[3])
    if method == "progress" and n == 3 and type(params[0]) is int:
        return "progress", params[0], params[1], params[2]
    if method == "accepted" and n == 2 and type(params[0]) is int:
        return "accepted", params[0], params[1], None
    if method == "event" and n == 1 and type(params[0]) is dict:
        return "event", None, params[0], None
    if method in ("outcome", "progress", "accepted", "event"):
        raise ProtocolError("malformed %s notification: %.200r" % (method, params))
    return None
