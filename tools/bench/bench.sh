#!/bin/sh
# bench.sh — run fpbench against the programs of a build tree.
#
#   tools/bench/bench.sh [--quick] [fpbench options...]
#
# Run from the build directory (`make bench` does that, with BUILDDIR set),
# or set BUILDDIR.  The full run takes about four minutes on 2 cores and
# prints three tables (then: scale-out through Redis, bench_redis.sh; the
# C and Python clients side by side, bench_clients.sh);
# --quick is a smoke run of about a minute.  The machine should be otherwise idle: every figure is compared with
# baselines measured in the same run, but a busy machine still skews them.
set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
build=${BUILDDIR:-.}

for prog in "$build/tools/bench/fpbench" "$build/src/daemon/forkpoold" "$build/src/ctl/forkpoolctl"; do
    if [ ! -x "$prog" ]; then
        echo "bench.sh: $prog not found: build first (make), or set BUILDDIR" >&2
        exit 111
    fi
done

"$build/tools/bench/fpbench" \
    --forkpoold "$build/src/daemon/forkpoold" \
    --forkpoolctl "$build/src/ctl/forkpoolctl" \
    --python "$srcdir/bench_py.py" \
    "$@"

# The scale-out table (bench_redis.sh), unless only some rows were asked for.
quick=
for arg in "$@"; do
    case $arg in
        --only*|--size*) exit 0 ;;
        --quick) quick=--quick ;;
    esac
done
BUILDDIR=$build "$srcdir/bench_redis.sh" $quick
# The client libraries, C and Python side by side (bench_clients.sh).
BUILDDIR=$build "$srcdir/bench_clients.sh" $quick
