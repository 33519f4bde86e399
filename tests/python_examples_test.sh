#!/bin/sh
# python_examples_test.sh — runs the examples of examples/python as a user
# would (tests/python/test_examples.py), so they cannot rot.  make check
# sets PYTHON, abs_top_builddir and abs_top_srcdir.
set -eu
: "${PYTHON:?set PYTHON (make check does)}"
FORKPOOLD="$abs_top_builddir/src/daemon/forkpoold"
PYTHONPATH="$abs_top_srcdir/python:$abs_top_srcdir/tests/python"
PYTHONDONTWRITEBYTECODE=1
FORKPOOL_EXAMPLES="$abs_top_srcdir/examples/python"
export FORKPOOLD PYTHONPATH PYTHONDONTWRITEBYTECODE FORKPOOL_EXAMPLES
cd "$abs_top_srcdir/tests/python"
exec "$PYTHON" -m unittest ${PYTHON_TEST_ARGS:-} test_examples
