"""One control connection's protocol state, without I/O: msgids, the
table of requests waiting for answers, and the dispatch of every message
read to the request it belongs to.  The sync and asyncio clients each do
the I/O around one of these.
"""

from collections import deque

from . import _wire
from .errors import ProtocolError


class Session:
    """Protocol state of one connection.

    A handler is registered per msgid: ``handler(msgid, kind, a, b)`` with
    ``kind`` ``"response"`` (a=error, b=result), ``"outcome"`` (a=index,
    b=(error, result)), ``"progress"`` (a=job id, b=value) or
    ``"accepted"`` (a=job id).  A handler returns True once the msgid has
    nothing more to come; it is then forgotten.  Messages for a msgid with
    no handler (a request given up on) are dropped.  Events (after
    ``subscribe``) collect in ``events``.
    """

    def __init__(self):
        self.pk = _wire.packer()
        self.up = _wire.unpacker()
        self.routes = {}
        self.events = deque()
        self._msgid = 0

    def request(self, method, params, handler):
        """Register handler under a fresh msgid; return the request's
        bytes."""
        msgid = self._msgid = (self._msgid + 1) & _wire.MSGID_MASK
        self.routes[msgid] = handler
        return msgid, _wire.request(self.pk, msgid, method, params)

    def forget(self, msgids):
        """Stop routing answers for these msgids (a call given up on)."""
        for m in msgids:
            self.routes.pop(m, None)

    def feed(self, data):
        """Take bytes read from the socket and dispatch every whole
        message in them.  Raises ProtocolError on bytes that are not the
        protocol."""
        up = self.up
        up.feed(data)
        try:
            for msg in up:
                self.dispatch(msg)
        except ProtocolError:
            raise
        except (ValueError, msgpack_errors()) as e:
            raise ProtocolError("forkpoold sent bytes that are not msgpack: %s"
                                % e) from None

    def dispatch(self, msg):
        """Route one message."""
        # The commonest first, checked as _wire checks it, with no call:
        # a submit_batch outcome, [2, "outcome", [msgid, index, error,
        # result]] (map's stream: a few calls a message are a good part of
        # what map costs per job).
        if type(msg) is list and len(msg) == 3 and msg[1] == "outcome" \
                and msg[0] == _wire.NOTIFY:
            p = msg[2]
            if type(p) is list and len(p) == 4 and type(p[0]) is int \
                    and type(p[1]) is int:
                msgid = p[0]
                h = self.routes.get(msgid)
                if h is not None and h(msgid, "outcome", p[1], (p[2], p[3])):
                    self.routes.pop(msgid, None)
                return
        what, x, y, z = _wire.classify(msg)
        if what == _wire.RESPONSE:
            h = self.routes.get(x)
            if h is not None and h(x, "response", y, z):
                self.routes.pop(x, None)
            return
        n = _wire.notification(x, y)
        if n is None:
            return
        kind, msgid, a, b = n
        if kind == "event":
            self.events.append(a)
            return
        h = self.routes.get(msgid)
        if h is not None and h(msgid, kind, a, b):
            self.routes.pop(msgid, None)


def msgpack_errors():
    import msgpack
    return (msgpack.UnpackException, msgpack.ExtraData)
