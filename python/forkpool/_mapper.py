"""The policy of ``map``, without I/O: which jobs go out next (in
``submit_batch`` requests of up to BATCH_MAX jobs, never more than
``window`` jobs without an outcome), what each answer means, and which
outcomes are ready to hand to the caller (in completion order, or in
input order).

Like ``forkpoolctl map``: a batch the daemon refuses is sent again job by
job, so each job gets its own precise outcome; a job refused with
``queue full`` is sent again later, and until the daemon keeps up again
sending is paced by credits (a refusal takes them all, each outcome gives
two, a quiet spell gives one after a growing delay; ``window`` credits end
the pacing).  Any other refusal (``draining``, ``job too large``...) is
that job's outcome.
"""

import time
from collections import deque

from . import _wire
from .outcome import Outcome

RETRY_MIN = 0.005
RETRY_MAX = 0.2


class Mapper:
    """State of one ``map`` call.  The client calls :meth:`fill` to get
    the requests to send, routes answers to :meth:`handle`, and takes
    outcomes from :meth:`pop_ready` until :attr:`finished`."""

    def __init__(self, jobs, window, ordered, opts, progress, session):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.it = iter(jobs)
        self.window = window
        self.ordered = ordered
        self.opts = opts
        self.progress = progress
        self.session = session
        self.exhausted = False
        self.next_index = 0
        self.next_yield = 0
        self.outstanding = 0        # taken from the input, no outcome yet
                                    # (sent, or waiting in retry)
        self.retry = deque()        # (index, job) to send again, one by one
        self.batches = {}           # msgid -> [items, outcomes still to come]
        self.singles = {}           # msgid -> (index, job)
        self.ready = deque()        # completion order
        self.held = {}              # ordered: index -> Outcome
        self.backoff = False
        self.credits = 0
        self.delay = RETRY_MIN
        self.wake_at = None

    # ---- what to send --------------------------------------------------

    def fill(self):
        """The requests to send now: a list of bytes."""
        out = []
        if self.backoff and self.credits == 0 and self.wake_at is not None \
                and time.monotonic() >= self.wake_at:
            self.credits = 1
            self.wake_at = time.monotonic() + self.delay
            self.delay = min(self.delay * 2, RETRY_MAX)
        while self.retry and self._may_send():
            out.append(self._single(*self.retry.popleft()))
        if self.exhausted:
            return out
        room = self.window - self.outstanding
        if self.ordered:
            room = min(room, self.next_yield + self.window - self.next_index)
        if self.backoff:
            room = min(room, self.credits)
        room = min(room, _wire.BATCH_MAX)
        if room <= 0:
            return out
        items = []
        for job in self.it:
            items.append((self.next_index, job))
            self.next_index += 1
            if len(items) >= room:
                break
        else:
            self.exhausted = True
        self.outstanding += len(items)
        if self.backoff:
            self.credits -= len(items)
        if len(items) == 1:
            out.append(self._single(*items[0]))
        elif items:
            msgid, data = self.session.request(
                "submit_batch", _wire.batch_params([j for _, j in items], self.opts),
                self.handle)
            self.batches[msgid] = [items, len(items)]
            out.append(data)
        return out

    def _may_send(self):
        if not self.backoff:
            return True
        if self.credits > 0:
            self.credits -= 1
            return True
        return False

    def _single(self, index, job):
        msgid, data = self.session.request(
            "submit", _wire.submit_params(job, self.opts), self.handle)
        self.singles[msgid] = (index, job)
        return data

    def wait_until(self):
        """When fill() may have something to send without any answer
        arriving (a paced retry), or None."""
        if self.backoff and self.credits == 0 and self.retry:
            return self.wake_at
        return None

    # ---- answers ---------------------------------------------------------

    def handle(self, msgid, kind, a, b):
        """A Session handler (see Session)."""
        if kind == "progress":
            if self.progress is not None:
                self.progress(a, b)
            return False
        batch = self.batches.get(msgid)
        if batch is not None:
            return self._batch_answer(msgid, batch, kind, a, b)
        item = self.singles.get(msgid)
        if item is None or kind != "response":
            return False
        del self.singles[msgid]
        o = _wire.outcome(a, b, item[0])
        if o.kind == "rejected" and o.detail == "queue full":
            self._queue_full([item])
        else:
            self._done(o)
        return True

    def _batch_answer(self, msgid, batch, kind, a, b):
        items = batch[0]
        if kind == "response":
            if a is None:
                return False            # {"first_id", "count"}: outcomes follow
            o = _wire.outcome(a, b)     # refused whole: send job by job
            del self.batches[msgid]
            if o.detail == "queue full":
                self._queue_full(items)
            else:
                self.retry.extendleft(reversed(items))
            return True
        if kind != "outcome" or not 0 <= a < len(items):
            return False
        err, res = b
        self._done(_wire.outcome(err, res, items[a][0]))
        batch[1] -= 1
        if batch[1] == 0:
            del self.batches[msgid]
            return True
        return False

    def _queue_full(self, items):
        self.retry.extendleft(reversed(items))
        self.backoff = True
        self.credits = 0
        self.wake_at = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, RETRY_MAX)

    def _done(self, o):
        self.outstanding -= 1
        if self.backoff:
            self.credits += 2
            if self.credits >= self.window:
                self.backoff = False
                self.delay = RETRY_MIN
                self.wake_at = None
        if self.ordered:
            self.held[o.index] = o
        else:
            self.ready.append(o)

    # ---- what to hand out ----------------------------------------------

    def pop_ready(self):
        """Outcomes the caller may have now, in the promised order."""
        if not self.ordered:
            out = list(self.ready)
            self.ready.clear()
            return out
        out = []
        held = self.held
        while self.next_yield in held:
            out.append(held.pop(self.next_yield))
            self.next_yield += 1
        return out

    @property
    def finished(self):
        """Every job taken has its outcome, and there are no more."""
        return self.exhausted and self.outstanding == 0 and not self.retry \
            and not self.ready and not self.held

    def msgids(self):
        """The msgids still in flight (to forget when the caller stops)."""
        return list(self.batches) + list(self.singles)
