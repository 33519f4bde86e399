#!/bin/sh
# bench_clients.sh — the client libraries side by side (README
# "Performance", issue 15's "Python within 2x of C"): trivial jobs through
# one forkpoold --builtin echo -w 2, measured in the same run with the C
# client (bench_cclient, libforkpoolclient) and the Python package
# (bench_pyclient.py), the same three ways each, and the ratio of each
# Python row to its C counterpart.
#
#   tools/bench/bench_clients.sh [--quick] [--jobs N]
#
# Run from the build directory (`make bench` does), or set BUILDDIR.
set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$srcdir/../.." && pwd)
build=${BUILDDIR:-.}
jobs=100000
while [ $# -gt 0 ]; do
    case $1 in
        --jobs) jobs=$2; shift 2 ;;
        --quick) jobs=20000; shift ;;
        *) echo "bench_clients.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
python=${PYTHON:-}
[ -n "$python" ] || python=$(sed -n 's/^PYTHON = //p' "$build/Makefile" 2>/dev/null || true)
[ -n "$python" ] || python=/usr/bin/python3
if ! "$python" -c 'import msgpack' 2>/dev/null; then
    echo "clients: skipped ($python cannot import msgpack)"
    exit 0
fi

dir=$(mktemp -d /tmp/fpbench-clients.XXXXXX)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$build/src/daemon/forkpoold" -s "$dir/s" -w 2 --builtin echo 2>"$dir/log" &
daemon=$!
i=0
until "$build/src/ctl/forkpoolctl" -s "$dir/s" status --json >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 500 ] || { echo "forkpoold did not start" >&2; exit 1; }
    sleep 0.01
done

"$build/tools/bench/bench_cclient" -s "$dir/s" -n "$jobs" >"$dir/c"
PYTHONPATH=$top/python "$python" "$srcdir/bench_pyclient.py" -s "$dir/s" -n "$jobs" >"$dir/py"

echo
echo "clients: trivial jobs through forkpoold --builtin echo -w 2, $jobs per row"
echo "  (N/10 for the one-at-a-time rows); python: $python"
printf '  %-26s %9s %9s   %s\n' "row" "jobs/s" "x C" "C counterpart"
# Python row -> its C counterpart: map -> map, gather -> submit_async,
# submit -> submit.
awk -F '\t' '
    FNR == NR { c[$1] = $4; next }
    {
        name = $1; sub(/^python /, "", name)
        twin = name ~ /map/ ? "C map" : name ~ /gather/ ? "C submit_async" : "C submit"
        ratio = c[twin] > 0 ? $4 / c[twin] : 0
        printf "  %-26s %9.0f %8.2fx   %s %.0f/s\n", $1, $4, ratio, twin, c[twin]
    }' "$dir/c" "$dir/py"
awk -F '\t' '{ printf "  %-26s %9.0f\n", $1, $4 }' "$dir/c"
echo "  target: python Client.map and AsyncClient.map >= 0.5x C map"
