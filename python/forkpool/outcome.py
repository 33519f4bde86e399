"""One job's final outcome, as ``map`` yields it."""

from .errors import job_failed


class Outcome:
    """The final outcome of one job.

    ``index`` (its place in the ``map`` input), ``id`` (the daemon's job id;
    ``None`` if it was rejected), ``ok``, ``result`` (the handler's result
    when ``ok``), ``kind`` (``"ok"``, ``"error"``, ``"crashed"``,
    ``"timeout"``, ``"cancelled"``, ``"rejected"``), ``detail`` (when not
    ``ok``), ``stats`` (the receipt: ``wait_ms``, ``run_ms``, ``cpu_ms``,
    ``maxrss_kb``, ``attempts``; ``None`` for ``rejected``) and ``stderr``
    (a crashed job's stderr tail).

    ``get()`` returns the result or raises the outcome's
    :class:`~forkpool.JobFailed` subclass.
    """

    __slots__ = ("index", "id", "ok", "result", "kind", "detail", "stats",
                 "stderr")

    def __init__(self, index, id, kind, result=None, detail=None, stats=None,
                 stderr=None):
        self.index = index
        self.id = id
        self.kind = kind
        self.ok = kind == "ok"
        self.result = result
        self.detail = detail
        self.stats = stats
        self.stderr = stderr

    def exception(self):
        """The :class:`~forkpool.JobFailed` this outcome stands for, or
        ``None`` when it is ``ok``."""
        if self.ok:
            return None
        return job_failed(self.id, self.kind, self.detail, self.stats,
                          self.stderr, self.index)

    def get(self):
        """The result if ``ok``; otherwise raise :meth:`exception`."""
        if self.ok:
            return self.result
        raise self.exception()

    def __repr__(self):
        if self.ok:
            return "Outcome(index=%r, id=%r, ok=True, result=%r)" % (
                self.index, self.id, self.result)
        return "Outcome(index=%r, id=%r, kind=%r, detail=%r)" % (
            self.index, self.id, self.kind, self.detail)
