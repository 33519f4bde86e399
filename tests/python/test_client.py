"""forkpool.Client against a real forkpoold running the test module."""

import builtins
import os
import socket
import tempfile
import threading
import unittest

import forkpool
from fpharness import Daemon, testmod_daemon


class Jobs(unittest.TestCase):
    """Outcomes of single jobs, on a pool of 2 workers."""

    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "2")
        cls.c = forkpool.Client(cls.d.sock, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()

    def test_ok_returns_the_result_with_str_and_bytes_kept_apart(self):
        job = {"s": "text", "b": b"\x00\xff", "n": [1, 2.5, None, True]}
        self.assertEqual(self.c.submit(job), job)

    def test_ok_outcome_carries_id_and_stats(self):
        o = self.c.submit_outcome("x")
        self.assertTrue(o.ok)
        self.assertEqual(o.kind, "ok")
        self.assertIsInstance(o.id, int)
        for k in ("wait_ms", "run_ms", "cpu_ms", "maxrss_kb", "attempts"):
            self.assertIn(k, o.stats)

    def test_error_raises_job_error_with_detail_and_stats(self):
        with self.assertRaises(forkpool.JobError) as cm:
            self.c.submit({"op": "fail", "detail": {"why": "no"}})
        e = cm.exception
        self.assertIsInstance(e, forkpool.JobFailed)
        self.assertEqual(e.kind, "error")
        self.assertEqual(e.detail, {"why": "no"})
        self.assertIsInstance(e.id, int)
        self.assertEqual(e.stats["attempts"], 1)

    def test_crash_raises_job_crashed_with_stderr_tail(self):
        with self.assertRaises(forkpool.JobCrashed) as cm:
            self.c.submit({"op": "crash", "say": "last words"})
        e = cm.exception
        self.assertEqual(e.detail, "killed by SIGSEGV")
        self.assertIn("last words", e.stderr)
        self.assertIn("run_ms", e.stats)

    def test_crash_retried_reports_attempts(self):
        with self.assertRaises(forkpool.JobCrashed) as cm:
            self.c.submit({"op": "crash"}, retries=1)
        self.assertEqual(cm.exception.stats["attempts"], 2)

    def test_timeout_raises_job_timed_out(self):
        with self.assertRaises(forkpool.JobTimedOut) as cm:
            self.c.submit({"op": "hang"}, timeout=0.2)
        self.assertEqual(cm.exception.kind, "timeout")

    def test_cancel_by_id_raises_job_cancelled(self):
        with forkpool.Client(self.d.sock) as other:
            found = []
            with self.assertRaises(forkpool.JobCancelled):
                self.c.submit({"op": "hang"},
                              accepted=lambda id: found.append(other.cancel(id)))
        self.assertEqual(found, [True])

    def test_cancel_unknown_id_is_false(self):
        self.assertFalse(self.c.cancel(1 << 60))

    def test_progress_callback_gets_each_report_before_the_result(self):
        seen = []
        n = self.c.submit({"op": "progress", "values": [1, "two", {"k": b"3"}]},
                          progress=lambda id, v: seen.append(v))
        self.assertEqual(n, 3)
        self.assertEqual(seen, [1, "two", {"k": b"3"}])

    def test_wait_timeout_gives_up_on_the_job_not_the_connection(self):
        with self.assertRaises(forkpool.WaitTimeout):
            self.c.submit({"op": "sleep", "s": 0.5}, wait=0.05)
        self.assertEqual(self.c.submit("still here"), "still here")


class Map(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "2")
        cls.c = forkpool.Client(cls.d.sock, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()

    JOBS = [{"op": "sleep", "s": 0.5}, "a", "b", "c"]

    def test_map_yields_outcomes_as_they_complete(self):
        got = list(self.c.map(self.JOBS))
        self.assertEqual(sorted(o.index for o in got), [0, 1, 2, 3])
        self.assertEqual(got[-1].index, 0, "the slow job finishes last")
        for o in got:
            self.assertEqual(o.result, "slept" if o.index == 0 else self.JOBS[o.index])

    def test_map_ordered_yields_in_input_order(self):
        got = list(self.c.map(self.JOBS, ordered=True))
        self.assertEqual([o.index for o in got], [0, 1, 2, 3])
        self.assertEqual([o.result for o in got], ["slept", "a", "b", "c"])

    def test_map_many_jobs_through_a_small_window(self):
        got = [o.get() for o in self.c.map(range(2000), window=7, ordered=True)]
        self.assertEqual(got, list(range(2000)))

    def test_map_failed_jobs_are_outcomes_that_raise_on_get(self):
        got = {o.index: o for o in self.c.map(
            ["ok", {"op": "fail"}, {"op": "crash"}, {"op": "hang"}], timeout=0.5)}
        self.assertTrue(got[0].ok)
        self.assertEqual([got[i].kind for i in (1, 2, 3)],
                         ["error", "crashed", "timeout"])
        with self.assertRaises(forkpool.JobCrashed) as cm:
            got[2].get()
        self.assertEqual(cm.exception.index, 2)
        self.assertIsInstance(got[2].exception(), forkpool.JobCrashed)

    def test_map_progress_reaches_the_callback(self):
        seen = []
        out = list(self.c.map([{"op": "progress", "values": [7]}] * 3,
                              progress=lambda id, v: seen.append((id, v))))
        self.assertEqual(sorted(v for _, v in seen), [7, 7, 7])
        self.assertEqual(sorted(i for i, _ in seen), sorted(o.id for o in out))

    def test_map_stopped_early_leaves_the_connection_usable(self):
        for o in self.c.map(range(1000), window=50):
            break
        self.assertEqual(self.c.submit("after"), "after")


class Control(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "2")
        cls.c = forkpool.Client(cls.d.sock, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()

    def test_status_has_the_documented_fields(self):
        st = self.c.status()
        for k in ("state", "workers", "busy", "idle", "queued", "completed",
                  "failed", "crashed", "timed_out", "restarts", "uptime_s", "pids"):
            self.assertIn(k, st)
        self.assertEqual(st["state"], "running")

    def test_scale_sets_the_worker_count(self):
        self.assertEqual(self.c.scale(3), {"workers": 3})
        self.assertEqual(self.c.status()["workers"], 3)
        self.assertEqual(self.c.scale(2), {"workers": 2})

    def test_scale_out_of_range_raises_request_error(self):
        with self.assertRaises(forkpool.RequestError):
            self.c.scale(0)

    def test_limit_sets_and_removes_a_bucket(self):
        self.assertTrue(self.c.limit("k", 100, 10))
        self.assertEqual(self.c.status()["limits"]["k"]["rate"], 100)
        self.assertTrue(self.c.limit("k", None))
        self.assertNotIn("k", self.c.status()["limits"])
        with self.assertRaises(forkpool.RequestError):
            self.c.limit("k", -1)

    def test_metrics_is_prometheus_text(self):
        self.assertIn("forkpool_jobs_total", self.c.metrics())

    def test_reload_answers_nil(self):
        self.assertIsNone(self.c.reload())

    def test_events_stream_reports_each_job(self):
        with self.c.events(timeout=10) as ev:
            o = self.c.submit_outcome("watched")
            for e in ev:
                if e.get("event") == "job" and e.get("id") == o.id:
                    break
        self.assertEqual(e["kind"], "ok")


class OneWorker(unittest.TestCase):
    """Rejections and expiry: one worker, a queue of one."""

    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "1", "--queue-max", "1")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        self.cs = [forkpool.Client(self.d.sock, timeout=30) for _ in range(3)]

    def tearDown(self):
        for c in self.cs:
            c.close()

    # A job that reports once, then sleeps: its report says it is running.
    BUSY = {"op": "progress", "values": [1], "after": 30}

    def run_while_busy(self, fn):
        """Run fn(busy_job_id) once the one worker is busy, then cancel
        the busy job (if fn has not)."""
        c, _, canceller = self.cs
        out = []

        def running(id, value):
            try:
                out.append(fn(id))
            finally:
                canceller.cancel(id)
        with self.assertRaises(forkpool.JobCancelled):
            c.submit(self.BUSY, progress=running)
        return out[0]

    def test_queue_full_rejects(self):
        second, third = self.cs[1], self.cs[2]
        got = {}

        def queued(busy_id):
            # b waits for the worker: the queue is full.
            got["c"] = third.submit_outcome("c")
            third.cancel(busy_id)

        def fill_queue(busy_id):
            got["b"] = second.submit_outcome("b", accepted=lambda id: queued(busy_id))
        self.run_while_busy(fill_queue)
        self.assertTrue(got["b"].ok)
        self.assertEqual(got["c"].kind, "rejected")
        self.assertEqual(got["c"].detail, "queue full")
        self.assertIsNone(got["c"].id)
        with self.assertRaises(forkpool.JobRejected):
            got["c"].get()

    def test_expired_before_it_started_is_cancelled(self):
        o = self.run_while_busy(lambda busy_id: self.cs[1].submit_outcome("late", expires=0.05))
        self.assertEqual(o.kind, "cancelled")
        self.assertEqual(o.detail, "expired before it started")

    def test_map_resends_jobs_refused_with_queue_full(self):
        got = [o.get() for o in self.cs[0].map(range(300), window=64, ordered=True)]
        self.assertEqual(got, list(range(300)))


class Drain(unittest.TestCase):
    def test_drain_rejects_new_jobs_and_finishes_accepted_ones(self):
        d = testmod_daemon("-w", "1")
        try:
            with forkpool.Client(d.sock) as a, forkpool.Client(d.sock) as b, \
                    forkpool.Client(d.sock) as c:
                late = []

                def running(id, value):
                    b.drain()
                    late.append(c.submit_outcome("late"))
                n = a.submit({"op": "progress", "values": [1], "after": 0.2},
                             progress=running)
                self.assertEqual(n, 1)
                self.assertEqual(late[0].kind, "rejected")
                self.assertEqual(late[0].detail, "draining")
            self.assertEqual(d.wait_exit(), 0)
        finally:
            d.stop()


class Unreachable(unittest.TestCase):
    """Connection errors, without a daemon."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fp-py-")
        self.path = os.path.join(self.dir, "s")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_missing_socket_raises_connection_error_naming_it(self):
        with self.assertRaises(forkpool.ConnectionError) as cm:
            forkpool.Client(self.path)
        self.assertIn(self.path, str(cm.exception))
        self.assertIsInstance(cm.exception, builtins.ConnectionError)

    def test_stale_socket_is_connection_refused(self):
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.close()
        with self.assertRaises(forkpool.ConnectionError) as cm:
            forkpool.Client(self.path)
        self.assertIn("refused", str(cm.exception))

    def test_silent_daemon_raises_wait_timeout(self):
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.listen(8)                     # accepted by the kernel, never answered
        try:
            with forkpool.Client(self.path, rpc_timeout=0.1) as c:
                with self.assertRaises(forkpool.WaitTimeout):
                    c.status()
                with self.assertRaises(forkpool.WaitTimeout):
                    c.submit("x", wait=0.1)
        finally:
            s.close()

    def serve_once(self, reply):
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.listen(1)

        def serve():
            conn, _ = s.accept()
            conn.recv(4096)
            conn.sendall(reply)
            conn.close()
            s.close()
        t = threading.Thread(target=serve)
        t.start()
        return t

    def test_daemon_closing_the_connection_raises_connection_error(self):
        t = self.serve_once(b"")
        with forkpool.Client(self.path) as c:
            with self.assertRaises(forkpool.ConnectionError) as cm:
                c.status()
        t.join()
        self.assertIn("closed", str(cm.exception))
        with self.assertRaises(forkpool.ConnectionError):
            c.status()

    def test_garbage_from_the_daemon_raises_protocol_error(self):
        t = self.serve_once(b"\xa5hello")   # a msgpack str, not a message
        with forkpool.Client(self.path) as c:
            with self.assertRaises(forkpool.ProtocolError):
                c.status()
        t.join()

    def test_default_socket_path_rule(self):
        env = dict(os.environ)
        try:
            os.environ["FORKPOOL_SOCKET"] = "/x/s"
            self.assertEqual(forkpool.default_socket_path(), "/x/s")
            del os.environ["FORKPOOL_SOCKET"]
            os.environ["XDG_RUNTIME_DIR"] = "/run/user/7"
            self.assertEqual(forkpool.default_socket_path(), "/run/user/7/forkpool.sock")
            del os.environ["XDG_RUNTIME_DIR"]
            self.assertEqual(forkpool.default_socket_path(),
                             "/tmp/forkpool-%d.sock" % os.getuid())
        finally:
            os.environ.clear()
            os.environ.update(env)


if __name__ == "__main__":
    unittest.main()
