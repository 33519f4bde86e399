#!/bin/sh
# install_test.sh — `make install` into a staging directory (DESTDIR), then
# build an out-of-tree module and an out-of-tree embedding program against
# the *installed* copy, finding everything through `pkg-config forkpool`,
# and run them: the module under the installed forkpoold and forkpoolctl,
# the embedding program on its own.  Run by `make check`.
set -eu
: "${abs_top_builddir:?}"
MAKE=${MAKE:-make}
CC=${CC:-cc}
# The build's flags (a sanitizer build needs them to link against its
# library); CFLAGS may carry -O and -g, that is all.
CFLAGS=${CFLAGS:-}
LDFLAGS=${LDFLAGS:-}

stage=$(mktemp -d "${TMPDIR:-/tmp}/fp-install.XXXXXX")
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null
    rm -rf "$stage"
}
trap cleanup EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

$MAKE -s -C "$abs_top_builddir" install DESTDIR="$stage" >"$stage/install.log" 2>&1 \
    || { cat "$stage/install.log" >&2; fail "make install failed"; }

var() { sed -n "s/^$1=//p" "$abs_top_builddir/forkpool.pc"; }
prefix=$(var prefix)
libdir=$(var libdir | sed "s|\${exec_prefix}|$prefix|; s|\${prefix}|$prefix|")
sbindir=$prefix/sbin
bindir=$prefix/bin

# Everything where the conventions put it.
for f in "$sbindir/forkpoold" "$bindir/forkpoolctl" "$prefix/include/forkpool.h" \
         "$libdir/libforkpool.so" "$libdir/libforkpool.a" \
         "$libdir/pkgconfig/forkpool.pc" \
         "$prefix/share/man/man8/forkpoold.8" "$prefix/share/man/man1/forkpoolctl.1" \
         "$prefix/share/man/man3/forkpool.3" "$prefix/share/man/man7/forkpool-protocol.7" \
         "$prefix/share/bash-completion/completions/forkpoold" \
         "$prefix/share/bash-completion/completions/forkpoolctl" \
         "$prefix/share/doc/forkpool/examples/forkpoold.service" \
         "$prefix/include/forkpool_client.h" "$libdir/libforkpoolclient.so" \
         "$libdir/pkgconfig/forkpool-client.pc" \
         "$prefix/share/man/man3/forkpool_client.3" \
         "$prefix/share/doc/forkpool/examples/fpsha256.c"; do
    [ -e "$stage$f" ] || fail "not installed: $f"
done
# A versioned shared library, with its soname link.
ls "$stage$libdir"/libforkpool.so.0* >/dev/null 2>&1 || fail "no libforkpool.so.0*"

export PKG_CONFIG_PATH="$stage$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$stage"
cflags=$(pkg-config --cflags forkpool) || fail "pkg-config --cflags forkpool"
libs=$(pkg-config --libs forkpool) || fail "pkg-config --libs forkpool"
work=$stage/work
mkdir -p "$work"

# An out-of-tree module: doubles an integer, reporting "half" on the way
# (fp_progress: left undefined in the .so, the daemon provides it).
cat >"$work/double.c" <<'C'
#include <forkpool.h>

static int
handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    if (fp_progress("\xa4half", 5) != 0) {
        msgpack_pack_str_with_body(out, "fp_progress failed", 18);
        return 1;
    }
    if (job->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        msgpack_pack_str_with_body(out, "not a number", 12);
        return 1;
    }
    return msgpack_pack_uint64(out, job->via.u64 * 2) == 0 ? 0 : 1;
}

const fp_module forkpool_module = { FP_MODULE_ABI, "double", NULL, handle, NULL };
C
# shellcheck disable=SC2086
$CC $CFLAGS $LDFLAGS -shared -fPIC -Wall -Wextra -Werror "$work/double.c" $cflags \
    -o "$work/double.so" \
    || fail "cannot build the module"

# An out-of-tree embedding program: a pool of 2 running the same handler,
# with its progress.
cat >"$work/embed.c" <<'C'
#include <ev.h>
#include <stdio.h>
#include <forkpool.h>

static int
handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    if (fp_progress("\xa4half", 5) != 0)
        return 1;
    return msgpack_pack_uint64(out, job->via.u64 * 2);
}

static void
progress(uint64_t id, const char *value, size_t len, void *arg)
{
    (void)id; (void)arg;
    printf("progress %.*s\n", (int)len - 1, value + 1);
}

static const fp_module mod = { FP_MODULE_ABI, "embed", NULL, handle, NULL };

static void
done(const fp_outcome *o, void *arg)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_next(&u, o->data, o->len, NULL);
    printf("%s %llu\n", fp_kind_name(o->kind), (unsigned long long)u.data.via.u64);
    msgpack_unpacked_destroy(&u);
    ev_break(arg, EVBREAK_ALL);
}

int
main(void)
{
    struct ev_loop *loop = ev_default_loop(0);
    fp_config cfg;
    char err[256];

    fp_config_init(&cfg);
    cfg.workers = 2;
    cfg.module = &mod;
    fp_pool *pool = fp_pool_new(loop, &cfg, err, sizeof(err));
    if (pool == NULL || fp_pool_start(pool) != 0) {
        fprintf(stderr, "embed: %s\n", err);
        return 1;
    }
    fp_job_opts opts = { .timeout = -1, .progress = progress };
    fp_pool_submit(pool, "\x15", 1, &opts, done, loop, NULL, NULL);   /* 21 */
    ev_run(loop, 0);
    fp_pool_free(pool);
    return 0;
}
C
# shellcheck disable=SC2086
$CC $CFLAGS $LDFLAGS -Wall -Wextra -Werror "$work/embed.c" $cflags $libs -lev \
    -Wl,-rpath,"$stage$libdir" -o "$work/embed" || fail "cannot build the embedding program"
out=$("$work/embed") || fail "the embedding program failed"
[ "$out" = "progress half
ok 42" ] || fail "embedding program printed '$out', expected 'progress half', 'ok 42'"

# The client example, built against the installed client library alone
# (pkg-config forkpool-client), links and runs: with no daemon there, it
# says so and exits 3.
ccflags=$(pkg-config --cflags --libs forkpool-client msgpack) \
    || fail "pkg-config forkpool-client"
# shellcheck disable=SC2086
$CC $CFLAGS $LDFLAGS -Wall -Wextra -Werror \
    "$stage$prefix/share/doc/forkpool/examples/fpsha256.c" $ccflags \
    -Wl,-rpath,"$stage$libdir" -o "$work/fpsha256" \
    || fail "cannot build the client example against the installed library"
rc=0
"$work/fpsha256" -s "$work/nobody" /dev/null 2>/dev/null || rc=$?
[ "$rc" -eq 3 ] || fail "client example without a daemon: exit $rc, expected 3"

# The installed daemon runs the out-of-tree module; the installed CLI asks.
sock=$work/s
mkfifo "$work/log"
LD_LIBRARY_PATH="$stage$libdir" "$stage$sbindir/forkpoold" -s "$sock" -w 1 \
    --module "$work/double.so" 2>"$work/log" &
daemon=$!
exec 3<"$work/log"
# Ready once it logs "listening on" (read as it comes: no polling).
ready=
while IFS= read -r line <&3; do
    case $line in *"listening on"*) ready=1; break ;; esac
done
[ -n "$ready" ] || fail "installed forkpoold did not start"
out=$(LD_LIBRARY_PATH="$stage$libdir" "$stage$bindir/forkpoolctl" -s "$sock" \
      submit --progress 21 2>"$work/progress")
# The line, and its receipt (whose figures vary from run to run).
case $out in
    '{"id": 1, "ok": true, "result": 42, "stats": {"wait_ms": '*', "attempts": 1}}') ;;
    *) fail "forkpoolctl printed '$out'" ;;
esac
[ "$(cat "$work/progress")" = '{"id": 1, "progress": "half"}' ] \
    || fail "forkpoolctl --progress printed '$(cat "$work/progress")'"
kill -TERM "$daemon"
cat <&3 >/dev/null
wait "$daemon" || fail "installed forkpoold did not drain cleanly"
daemon=
echo "install_test: ok (prefix $prefix, staged in DESTDIR)"
