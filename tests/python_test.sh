#!/bin/sh
# python_test.sh — the Python client's and worker kit's unittest suites
# (tests/python/test_{client,async,worker}.py), each against a real
# forkpoold from this build.  make check sets PYTHON, abs_top_builddir
# and abs_top_srcdir.
set -eu
: "${PYTHON:?set PYTHON (make check does)}"
FORKPOOLD="$abs_top_builddir/src/daemon/forkpoold"
FORKPOOL_TESTMOD="$abs_top_builddir/tests/.libs/testmod.so"
PYTHONPATH="$abs_top_srcdir/python:$abs_top_srcdir/tests/python"
PYTHONDONTWRITEBYTECODE=1
export FORKPOOLD FORKPOOL_TESTMOD PYTHONPATH PYTHONDONTWRITEBYTECODE
cd "$abs_top_srcdir/tests/python"
exec "$PYTHON" -m unittest ${PYTHON_TEST_ARGS:-} test_client test_async test_worker
