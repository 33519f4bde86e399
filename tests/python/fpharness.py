"""Test harness: a real forkpoold on a socket in a temp dir, torn down at
the end; its log is collected by a thread and can be awaited."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

FORKPOOLD = os.environ.get("FORKPOOLD", "forkpoold")
TESTMOD = os.environ.get("FORKPOOL_TESTMOD")
HERE = os.path.dirname(os.path.abspath(__file__))
READY_S = 20


class Daemon:
    """forkpoold with the given arguments, listening on <tempdir>/s."""

    def __init__(self, *args, env=None):
        self.dir = tempfile.mkdtemp(prefix="fp-py-")
        self.sock = os.path.join(self.dir, "s")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [FORKPOOLD, "-s", self.sock] + list(args), cwd=self.dir,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        if not self.wait_log("listening on", READY_S):
            self.stop()
            raise RuntimeError("forkpoold did not start; its log:\n" + self.log())

    def _read_log(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)     # EOF: the daemon has gone
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return "".join(l for l in self.lines if l is not None)

    def wait_log(self, text, timeout=READY_S):
        """Wait until a log line contains text; False if the daemon exits
        or the time runs out first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        return False
                    if text in line:
                        return True
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)

    def wait_exit(self, timeout=READY_S):
        """The daemon's exit status once it exits by itself."""
        return self.proc.wait(timeout)

    def stop(self):
        """SIGKILL it if still running, reap it, remove the temp dir."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def testmod_daemon(*args):
    """forkpoold running the test module (tests/testmod.h lists its ops)."""
    return Daemon("--module", TESTMOD, *args)


def pyworker_daemon(*args, script=None):
    """forkpoold running a Python --exec worker (default:
    tests/python/pyworker.py) under this interpreter."""
    script = script or os.path.join(HERE, "pyworker.py")
    return Daemon("--exec", "%s %s" % (sys.executable, script), *args)
