#!/bin/sh
# abi_test.sh — the link graph is the architecture (SPEC §2):
#   1. libforkpool.so exports exactly the symbols of src/engine/libforkpool.sym,
#      and that list is exactly the functions and data include/forkpool.h
#      declares;
#   2. forkpoolctl links neither libev nor libseccomp;
#   3. the daemon's builtins (echo, cmd) are not in the embeddable library;
#   4. forkpoold exports to the modules it loads what they may leave
#      undefined (src/daemon/forkpoold.dynlist: fp_progress), and only that;
#   5. libforkpoolclient.so exports exactly src/client/libforkpoolclient.sym,
#      which is exactly what include/forkpool_client.h declares; it links
#      neither libev nor libforkpool, and forkpoolctl is built on its code.
set -eu
build=${abs_top_builddir:?run from make check}
src=${abs_top_srcdir:?run from make check}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "abi_test: $*" >&2; exit 1; }

so=$build/.libs/libforkpool.so
[ -f "$so" ] || { echo "abi_test: no shared library built; skipping"; exit 77; }

# 1a. What the library exports (defined, global, not libtool's or the
# toolchain's own markers).
nm -D --defined-only "$so" | awk '$2 ~ /^[TDRBVW]$/ { print $3 }' \
    | grep -v '^_' | sort -u >"$tmp/exported"
sort -u "$src/src/engine/libforkpool.sym" >"$tmp/listed"
if ! cmp -s "$tmp/exported" "$tmp/listed"; then
    echo "exported (<) vs src/engine/libforkpool.sym (>):" >&2
    diff "$tmp/exported" "$tmp/listed" >&2 || true
    fail "libforkpool.so exports other symbols than its list"
fi

# 1b. What the public header declares: every fp_ function or object at file
# scope (declarations end in ");" or "];" on their line or a later one).
sed -e 's|/\*.*\*/||g' "$src/include/forkpool.h" | tr '\n' ' ' | tr ';' '\n' \
    | grep -v 'typedef' \
    | sed -n -e 's/.*[ *]\(fp_[a-z_0-9]*\) *(.*/\1/p' \
             -e 's/^ *extern .*[ *]\(fp_[a-z_0-9]*\) *\[.*/\1/p' \
    | sort -u >"$tmp/declared"
if ! cmp -s "$tmp/declared" "$tmp/listed"; then
    echo "declared in forkpool.h (<) vs src/engine/libforkpool.sym (>):" >&2
    diff "$tmp/declared" "$tmp/listed" >&2 || true
    fail "the export list and the public header disagree"
fi

# 2. forkpoolctl's dependencies.
ctl=$build/src/ctl/forkpoolctl
[ -x "$build/src/ctl/.libs/forkpoolctl" ] && ctl=$build/src/ctl/.libs/forkpoolctl
deps=$(ldd "$ctl")
case $deps in
    *libev.so*) fail "forkpoolctl links libev: $deps" ;;
esac
case $deps in
    *libseccomp.so*) fail "forkpoolctl links libseccomp: $deps" ;;
esac

# 3. No builtin handler inside the embeddable library.
if nm "$so" | grep -q 'fp_builtin_'; then
    fail "libforkpool.so carries the daemon's builtin handlers"
fi
# 4. What forkpoold exports (defined, global, ours).
daemon=$build/src/daemon/forkpoold
[ -x "$build/src/daemon/.libs/forkpoold" ] && daemon=$build/src/daemon/.libs/forkpoold
nm -D --defined-only "$daemon" | awk '$2 ~ /^[TDRBVW]$/ { print $3 }' \
    | grep '^fp_' | sort -u >"$tmp/daemon_exports"
if [ "$(cat "$tmp/daemon_exports")" != "fp_progress" ]; then
    echo "forkpoold exports:" >&2
    cat "$tmp/daemon_exports" >&2
    fail "forkpoold must export fp_progress, and no other fp_ symbol, to its modules"
fi
# 5. The client library.
cso=$build/.libs/libforkpoolclient.so
[ -f "$cso" ] || fail "no libforkpoolclient.so beside libforkpool.so"
nm -D --defined-only "$cso" | awk '$2 ~ /^[TDRBVW]$/ { print $3 }' \
    | grep -v '^_' | sort -u >"$tmp/client_exported"
sort -u "$src/src/client/libforkpoolclient.sym" >"$tmp/client_listed"
if ! cmp -s "$tmp/client_exported" "$tmp/client_listed"; then
    diff "$tmp/client_exported" "$tmp/client_listed" >&2 || true
    fail "libforkpoolclient.so exports other symbols than its list"
fi
sed -e 's|/\*.*\*/||g' "$src/include/forkpool_client.h" | tr '\n' ' ' | tr ';' '\n' \
    | grep -v 'typedef' \
    | sed -n -e 's/.*[ *]\(fp_client_[a-z_0-9]*\) *(.*/\1/p' \
    | sort -u >"$tmp/client_declared"
if ! cmp -s "$tmp/client_declared" "$tmp/client_listed"; then
    diff "$tmp/client_declared" "$tmp/client_listed" >&2 || true
    fail "libforkpoolclient.sym and forkpool_client.h disagree"
fi
cdeps=$(ldd "$cso")
case $cdeps in
    *libev.so*|*libforkpool.so*) fail "libforkpoolclient links more than it needs: $cdeps" ;;
esac
# forkpoolctl is built on the client library's code (linked in, as
# forkpoold links the engine's): its fp_client_ functions are the library's.
nm "$ctl" | awk '$2 == "T" && $3 ~ /^fp_client_/ { print $3 }' | sort -u \
    >"$tmp/ctl_client"
if ! cmp -s "$tmp/ctl_client" "$tmp/client_listed"; then
    diff "$tmp/ctl_client" "$tmp/client_listed" >&2 || true
    fail "forkpoolctl is not built on the client library"
fi

echo "abi_test: $(wc -l <"$tmp/exported") exported symbols, as listed; forkpoolctl without libev/libseccomp, over libforkpoolclient ($(wc -l <"$tmp/client_exported") symbols, as listed); forkpoold exports fp_progress"
