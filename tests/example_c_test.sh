#!/bin/sh
# example_c_test.sh — examples/c/fpsha256 (the C client example) against a
# real forkpoold running the cmd builtin: its lines equal sha256sum's own,
# in argument order, for small files and a 3 MiB one; an unreadable file
# costs that file only (exit 1); a daemon that is not there is exit 3.
set -eu
: "${abs_top_builddir:?run from make check}"
prog=$abs_top_builddir/examples/c/fpsha256
daemon_bin=$abs_top_builddir/src/daemon/forkpoold
work=$(mktemp -d "${TMPDIR:-/tmp}/fp-example-c.XXXXXX")
daemon=
cleanup() {
    [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "example_c_test: $*" >&2; exit 1; }

for i in 1 2 3 4 5 6 7 8; do
    printf 'file %s\n' "$i" >"$work/f$i"
done
head -c 3145728 /dev/urandom >"$work/big"

# Not running yet: exit 3, with the socket named.
rc=0
"$prog" -s "$work/s" "$work/f1" 2>"$work/err" || rc=$?
[ "$rc" -eq 3 ] || fail "no daemon: exit $rc, expected 3"
grep -q "$work/s" "$work/err" || fail "no daemon: message does not name the socket"

mkfifo "$work/log"
"$daemon_bin" -s "$work/s" -w 2 --builtin cmd 2>"$work/log" &
daemon=$!
exec 3<"$work/log"
ready=
while IFS= read -r line <&3; do
    case $line in *"listening on"*) ready=1; break ;; esac
done
[ -n "$ready" ] || fail "forkpoold did not start"
cat <&3 >/dev/null &     # keep draining its log

(cd "$work" && sha256sum f1 f2 f3 big f4 f5 f6 f7 f8) >"$work/want"
(cd "$work" && "$prog" -s s f1 f2 f3 big f4 f5 f6 f7 f8) >"$work/got" \
    || fail "fpsha256 failed"
cmp -s "$work/want" "$work/got" || { diff "$work/want" "$work/got" >&2; fail "lines differ from sha256sum's"; }

rc=0
(cd "$work" && "$prog" -s s f1 missing f2) >"$work/got" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] || fail "a missing file: exit $rc, expected 1"
[ "$(wc -l <"$work/got")" -eq 2 ] || fail "a missing file cost more than that file"
grep -q "missing: cannot read" "$work/err" || fail "a missing file: $(cat "$work/err")"

kill -TERM "$daemon"
wait "$daemon" || fail "forkpoold did not drain cleanly"
daemon=
echo "example_c_test: ok"
