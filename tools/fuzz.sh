#!/bin/sh
# Build the libFuzzer targets (tests/fuzz) in ./build-fuzz with clang, ASan
# and UBSan, and run each for SECONDS_EACH seconds (default 20) on a copy of
# its seed corpus in a temporary directory; the repository is never written.
# Any finding (crash, sanitizer report, leak, timeout, out of memory) is
# fatal: the script prints the report and the input, keeps the temporary
# directory, and exits 1 once every target has run.
# Usage: tools/fuzz.sh [SECONDS_EACH]
# Reproduce a finding: build-fuzz/tests/fuzz/<target> <input file>
set -eu
secs=${1:-20}
case $secs in
    '' | *[!0-9]*) echo "usage: tools/fuzz.sh [SECONDS_EACH]" >&2; exit 100 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
targets="fuzz_worker_msg fuzz_request fuzz_jsonmp fuzz_client"

"$top/tools/deps.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/forkpool-fuzz.XXXXXX")

# clang and libFuzzer's runtime, which Debian ships in libclang-rt-*-dev
# (clang only recommends it).
can_fuzz() {
    command -v clang >/dev/null 2>&1 || return 1
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$work/probe.c"
    clang -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" \
        >/dev/null 2>&1
}
if ! can_fuzz; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-dev
    can_fuzz || { echo "fuzz.sh: clang cannot link a libFuzzer target" >&2; exit 111; }
fi

# Once configured, the build tree's own rules regenerate what goes stale.
cd "$top"
if [ ! -x configure ] || [ ! -f Makefile.in ] \
        || ! grep -q enable-fuzzing configure; then
    autoreconf -fi >/dev/null
fi

# Findings must stop the run: no sanitizer may recover and carry on.
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
cflags="-O1 -g -fno-omit-frame-pointer $san"
ldflags="-fsanitize=address,undefined"
# Static libraries, so that each fuzzer is a plain binary, not a libtool
# wrapper script.
config="CC=clang CFLAGS=$cflags LDFLAGS=$ldflags --enable-fuzzing --disable-shared"
mkdir -p build-fuzz
cd build-fuzz
if [ ! -f Makefile ] || [ "$(cat .fuzz-config 2>/dev/null)" != "$config" ]; then
    ../configure -q CC=clang CFLAGS="$cflags" LDFLAGS="$ldflags" \
        --enable-fuzzing --disable-shared
    printf '%s\n' "$config" >.fuzz-config
fi
progs=""
for t in $targets; do
    progs="$progs tests/fuzz/$t"
done
# The plain build is the one held to no warnings; here they are noise.
# shellcheck disable=SC2086
if ! make -j"$(nproc)" $progs >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    exit 1
fi

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for t in $targets; do
    dir="$work/$t"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp "$top/tests/fuzz/corpus/$t/"* "$dir/corpus/"
    chmod -R u+w "$dir"        # seeds from a distcheck tree are read-only
    dict=msgpack.dict
    [ "$t" = fuzz_jsonmp ] && dict=json.dict
    if "tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
            -dict="$top/tests/fuzz/$dict" -artifact_prefix="$dir/artifacts/" \
            "$dir/corpus" >"$dir/log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
        done_line=$(grep 'DONE' "$dir/log" | sed 's/^#[0-9]*[[:space:]]*DONE *//')
        echo "fuzz: $t: ${secs}s, $execs runs, $rate/s, $done_line"
        continue
    fi
    status=1
    echo "fuzz: $t: FINDING" >&2
    grep -v -E '^#[0-9]+' "$dir/log" >&2 || true
    found=0
    for f in "$dir/artifacts/"*; do
        [ -f "$f" ] || continue
        found=1
        echo "fuzz: $t: input $f ($(wc -c <"$f") bytes):" >&2
        od -An -tx1 -v "$f" | head -n 64 >&2
        echo "fuzz: reproduce: $top/build-fuzz/tests/fuzz/$t $f" >&2
    done
    [ "$found" -eq 1 ] || echo "fuzz: $t: failed without an input; log: $dir/log" >&2
done
if [ "$status" -ne 0 ]; then
    echo "fuzz: findings kept in $work" >&2
    exit 1
fi
rm -rf "$work"
