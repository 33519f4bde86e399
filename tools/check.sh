#!/bin/sh
# Build forkpool in ./build and run every test (`make check`).
# Usage: tools/check.sh  — from a fresh Debian machine, this is all it takes.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/build.sh"
cd "$top/build"
if ! make -j"$(nproc)" check; then
    cat tests/*.log >&2 || true
    exit 1
fi
