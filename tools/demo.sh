#!/bin/sh
# Build forkpool, start the daemon, push real jobs through it with
# forkpoolctl (ok, error, a segfault, a batch), show status, then drain.
# Usage: tools/demo.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/build.sh"
cd "$top/build"
make tests/testmod.la >/dev/null     # a handler that can crash on demand

tmp=$(mktemp -d /tmp/forkpool-demo.XXXXXX)
sock="$tmp/fp.sock"
ctl() { echo "\$ forkpoolctl $*" >&2; ./src/ctl/forkpoolctl -s "$sock" "$@"; }
daemon=""
trap 'kill $daemon 2>/dev/null || true; rm -rf "$tmp"' EXIT  # set -e holds in the trap too

echo "== starting forkpoold with 2 workers running tests/testmod.so"
./src/daemon/forkpoold -w 2 -s "$sock" --module ./tests/.libs/testmod.so 2>"$tmp/log" &
daemon=$!
until grep -q "listening on" "$tmp/log"; do sleep 0.05; done

ctl submit '{"hello": "world"}' || true
ctl submit '{"op": "fail", "detail": "bad input"}' || true
ctl submit '{"op": "crash"}' || true
ctl submit '{"op": "pid"}' || true
echo "== 8 jobs through 'map' (one of them segfaults; the rest are unaffected)"
printf '%s\n' 1 '"two"' '[3]' '{"op":"crash"}' '{"four":4}' 5.5 null true \
    | ctl map --keep-order || true
ctl status
echo "== draining (SIGTERM does the same)"
ctl drain
wait $daemon && echo "forkpoold exited with status 0"
echo "== daemon log"
cat "$tmp/log"
