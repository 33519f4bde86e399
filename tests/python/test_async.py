"""forkpool.AsyncClient against a real forkpoold running the test module."""

import asyncio
import os
import socket
import tempfile
import unittest

import forkpool
from fpharness import testmod_daemon


class AsyncJobs(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "2")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    async def asyncSetUp(self):
        self.c = forkpool.AsyncClient(self.d.sock, timeout=30)
        await self.c.connect()

    async def asyncTearDown(self):
        await self.c.close()

    async def test_ok_returns_the_result(self):
        job = {"s": "text", "b": b"\x00\xff"}
        self.assertEqual(await self.c.submit(job), job)

    async def test_concurrent_submits_share_one_connection(self):
        got = await asyncio.gather(*(self.c.submit(i) for i in range(500)))
        self.assertEqual(got, list(range(500)))

    async def test_error_raises_job_error(self):
        with self.assertRaises(forkpool.JobError) as cm:
            await self.c.submit({"op": "fail", "detail": "nope"})
        self.assertEqual(cm.exception.detail, "nope")
        self.assertIn("run_ms", cm.exception.stats)

    async def test_crash_raises_job_crashed_with_stderr(self):
        with self.assertRaises(forkpool.JobCrashed) as cm:
            await self.c.submit({"op": "crash", "say": "async last words"})
        self.assertEqual(cm.exception.detail, "killed by SIGSEGV")
        self.assertIn("async last words", cm.exception.stderr)

    async def test_timeout_raises_job_timed_out(self):
        with self.assertRaises(forkpool.JobTimedOut):
            await self.c.submit({"op": "hang"}, timeout=0.2)

    async def test_cancel_raises_job_cancelled(self):
        accepted = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self.c.submit(
            {"op": "hang"}, accepted=accepted.set_result))
        self.assertTrue(await self.c.cancel(await accepted))
        with self.assertRaises(forkpool.JobCancelled):
            await task

    async def test_progress_callback(self):
        seen = []
        n = await self.c.submit({"op": "progress", "values": [1, 2]},
                                progress=lambda id, v: seen.append(v))
        self.assertEqual((n, seen), (2, [1, 2]))

    async def test_map_completion_order_and_input_order(self):
        jobs = [{"op": "sleep", "s": 0.5}, "a", "b", "c"]
        got = [o async for o in self.c.map(jobs)]
        self.assertEqual(got[-1].index, 0, "the slow job finishes last")
        got = [o async for o in self.c.map(jobs, ordered=True)]
        self.assertEqual([o.result for o in got], ["slept", "a", "b", "c"])

    async def test_map_many_jobs_in_order(self):
        got = [o.get() async for o in self.c.map(range(3000), window=13, ordered=True)]
        self.assertEqual(got, list(range(3000)))

    async def test_map_failures_are_outcomes(self):
        got = {o.index: o.kind async for o in self.c.map(["x", {"op": "fail"}])}
        self.assertEqual(got, {0: "ok", 1: "error"})

    async def test_status_scale_limit_metrics_reload(self):
        st = await self.c.status()
        self.assertEqual(st["state"], "running")
        self.assertEqual(await self.c.scale(3), {"workers": 3})
        self.assertEqual(await self.c.scale(2), {"workers": 2})
        with self.assertRaises(forkpool.RequestError):
            await self.c.scale(0)
        self.assertTrue(await self.c.limit("k", 5))
        self.assertTrue(await self.c.limit("k", None))
        self.assertIn("forkpool_jobs_total", await self.c.metrics())
        self.assertIsNone(await self.c.reload())
        self.assertFalse(await self.c.cancel(1 << 60))

    async def test_events(self):
        async with self.c.events(timeout=10) as ev:
            o = await self.c.submit_outcome("watched")
            async for e in ev:
                if e.get("event") == "job" and e.get("id") == o.id:
                    break
        self.assertEqual(e["kind"], "ok")


class AsyncRejections(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = testmod_daemon("-w", "1", "--queue-max", "1")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    async def test_queue_full_and_expired(self):
        async with forkpool.AsyncClient(self.d.sock, timeout=30) as c:
            running = asyncio.get_running_loop().create_future()
            busy = asyncio.ensure_future(c.submit(
                {"op": "progress", "values": [1], "after": 30},
                progress=lambda id, v: running.done() or running.set_result(id)))
            busy_id = await running
            queued = asyncio.get_running_loop().create_future()
            late = asyncio.ensure_future(c.submit_outcome(
                "late", expires=0.05, accepted=queued.set_result))
            await queued
            o = await c.submit_outcome("one too many")
            self.assertEqual((o.kind, o.detail), ("rejected", "queue full"))
            o = await late
            self.assertEqual((o.kind, o.detail), ("cancelled", "expired before it started"))
            self.assertTrue(await c.cancel(busy_id))
            with self.assertRaises(forkpool.JobCancelled):
                await busy

    async def test_map_resends_queue_full(self):
        async with forkpool.AsyncClient(self.d.sock, timeout=30) as c:
            got = [o.get() async for o in c.map(range(300), window=64)]
            self.assertEqual(sorted(got), list(range(300)))


class AsyncUnreachable(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fp-py-")
        self.path = os.path.join(self.dir, "s")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    async def test_missing_socket_raises_connection_error(self):
        c = forkpool.AsyncClient(self.path)
        with self.assertRaises(forkpool.ConnectionError) as cm:
            await c.status()
        self.assertIn(self.path, str(cm.exception))

    async def test_silent_daemon_raises_wait_timeout(self):
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.listen(8)
        try:
            async with forkpool.AsyncClient(self.path, rpc_timeout=0.1) as c:
                with self.assertRaises(forkpool.WaitTimeout):
                    await c.status()
        finally:
            s.close()

    async def _goes_away_while_waiting(self, call):
        """Start call(client) against a fake daemon that reads its request
        and hangs up: the call must raise ConnectionError.  (The bound
        only turns a call that is never woken into a failure.)"""
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.listen(1)
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            async with forkpool.AsyncClient(self.path) as c:
                conn, _ = await loop.sock_accept(s)
                run = asyncio.ensure_future(call(c))
                await loop.sock_recv(conn, 4096)    # the request: it waits
                conn.close()
                with self.assertRaises(forkpool.ConnectionError):
                    await asyncio.wait_for(run, 10)
        finally:
            s.close()

    async def test_daemon_going_away_fails_waiting_calls(self):
        await self._goes_away_while_waiting(lambda c: c.submit("x"))

    async def test_daemon_going_away_fails_a_waiting_map(self):
        async def drain(c):
            async for _ in c.map(["a", "b", "c"]):
                pass
        await self._goes_away_while_waiting(drain)

if __name__ == "__main__":
    unittest.main()
