"""forkpool.worker: a Python --exec worker (tests/python/pyworker.py)
under a real forkpoold."""

import unittest

import forkpool
from fpharness import pyworker_daemon


class PythonExecWorker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = pyworker_daemon("-w", "1")
        cls.c = forkpool.Client(cls.d.sock, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.stop()

    def test_echo_keeps_bytes_and_str(self):
        job = {"b": b"\x00\x01\xff", "s": "caf\u00e9", "l": [1, None]}
        self.assertEqual(self.c.submit(job), job)

    def test_exception_is_an_error_with_message_and_traceback(self):
        with self.assertRaises(forkpool.JobError) as cm:
            self.c.submit({"op": "raise", "message": "boom"})
        d = cm.exception.detail
        self.assertEqual((d["type"], d["message"]), ("ValueError", "boom"))
        self.assertIn("ValueError: boom", d["traceback"])
        self.assertIn("pyworker.py", d["traceback"])

    def test_fail_sets_the_detail_exactly(self):
        with self.assertRaises(forkpool.JobError) as cm:
            self.c.submit({"op": "fail", "detail": [1, "two"]})
        self.assertEqual(cm.exception.detail, [1, "two"])

    def test_worker_lives_on_after_an_error(self):
        pid = self.c.submit({"op": "pid"})
        with self.assertRaises(forkpool.JobError):
            self.c.submit({"op": "raise"})
        self.assertEqual(self.c.submit({"op": "pid"}), pid)

    def test_a_forked_child_never_answers_for_the_worker(self):
        pid = self.c.submit({"op": "pid"})
        self.assertEqual(self.c.submit({"op": "fork"}), "parent")
        self.assertEqual(self.c.submit({"op": "pid"}), pid)
        self.assertEqual(self.c.submit("next"), "next")

    def test_unpackable_result_is_an_error(self):
        with self.assertRaises(forkpool.JobError) as cm:
            self.c.submit({"op": "unpackable"})
        self.assertIn("msgpack", cm.exception.detail["message"])

    def test_segfault_is_crashed_with_stats_and_stderr(self):
        with self.assertRaises(forkpool.JobCrashed) as cm:
            self.c.submit({"op": "segv", "say": "parser gave up"})
        e = cm.exception
        self.assertEqual(e.detail, "killed by SIGSEGV")
        self.assertIn("parser gave up", e.stderr)
        self.assertIn("Segmentation fault", e.stderr)   # faulthandler's stack
        self.assertGreater(e.stats["run_ms"], 0)
        self.assertEqual(self.c.submit("after the crash"), "after the crash")

    def test_print_goes_to_the_log_not_the_protocol(self):
        self.assertEqual(self.c.submit({"op": "print", "text": "stray output 42"}),
                         "printed")
        self.assertTrue(self.d.wait_log("stray output 42"))
        self.assertEqual(self.c.submit("still speaking"), "still speaking")

    def test_progress_reaches_the_submitter(self):
        seen = []
        n = self.c.submit({"op": "progress", "values": ["a", {"b": 2}]},
                          progress=lambda id, v: seen.append(v))
        self.assertEqual((n, seen), (2, ["a", {"b": 2}]))

    def test_map_through_python_workers(self):
        got = [o.get() for o in self.c.map(range(500), ordered=True)]
        self.assertEqual(got, list(range(500)))


class WorkerApi(unittest.TestCase):
    def test_progress_outside_a_job_raises(self):
        from forkpool import worker
        with self.assertRaises(RuntimeError):
            worker.progress(1)


if __name__ == "__main__":
    unittest.main()
