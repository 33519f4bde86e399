"""The example image worker (examples/python/image_worker.py) with a
parser bug planted for the tests: an upload starting with b"CRASH"
segfaults it, one starting with b"HANG" never returns."""
import os
import signal
import sys
import time

sys.path.insert(0, os.environ["FORKPOOL_EXAMPLES"])
import image_worker                             # noqa: E402
from forkpool import worker                     # noqa: E402


@worker.handler
def handle(job):
    if isinstance(job, bytes) and job.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if isinstance(job, bytes) and job.startswith(b"HANG"):
        while True:
            time.sleep(1)
    return image_worker.handle(job)


if __name__ == "__main__":
    worker.run()
