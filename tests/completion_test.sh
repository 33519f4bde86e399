#!/usr/bin/env bash
# completion_test.sh — the bash completions in tools/completion, tested for
# real: source them, fill COMP_WORDS/COMP_CWORD as bash would, call the
# completion function and check COMPREPLY.  No terminal needed.
#
# Runs twice: with plain bash, and (if it is installed) with bash-completion
# loaded, since the scripts use its _filedir when it is there.  When the
# built programs are found (the build directory is the current directory
# under `make check`), every option and command their --help lists must be
# offered too, so the completions cannot silently fall behind.  The
# scripts must not be touched by this: the test only reads them.
#
# Exit status: 0 all passed, 1 a check failed, 77 (automake's "skip") when
# there is no bash or it lacks programmable completion.

if [ -z "$BASH_VERSION" ]; then
    if ! command -v bash >/dev/null 2>&1; then
        echo "SKIP: bash not found"
        exit 77
    fi
    exec bash "$0" "$@"
fi

# make check exports abs_top_srcdir/abs_top_builddir (AM_TESTS_ENVIRONMENT)
# and srcdir; run by hand, the tree is the script's parent and the build
# directory the current one.
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "${abs_top_srcdir:-${srcdir:-$here/..}}" && pwd) || exit 1
build=${abs_top_builddir:-$PWD}
compdir=$top/tools/completion
fails=0
checks=0

if ! complete -p >/dev/null 2>&1 || ! compgen -W x x >/dev/null 2>&1; then
    echo "SKIP: this bash has no programmable completion"
    exit 77
fi

# comp FUNC WORD... — complete the last WORD (the one under the cursor; give
# '' for an empty one) of the command line WORD...; the sorted, unique
# replies land in $got, one per line.
comp() {
    local fn=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMP_TYPE=9
    COMPREPLY=()
    "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" \
        "${COMP_WORDS[COMP_CWORD > 0 ? COMP_CWORD - 1 : 0]}"
    if ((${#COMPREPLY[@]})); then
        got=$(printf '%s\n' "${COMPREPLY[@]}" | sort -u)
    else
        got=''
    fi
}

# A list, one item a line, as one line.
flat() {
    tr '\n' ' ' <<<"$1" | sed 's/ $//'
}

fail() {
    fails=$((fails + 1))
    printf 'FAIL [%s]: %s\n' "$mode" "$*"
}

# is "expected words" FUNC WORD... — exactly these replies.
is() {
    local want
    # shellcheck disable=SC2086 # split the word list on purpose
    want=$(printf '%s\n' $1 | sort -u)
    shift
    comp "$@"
    checks=$((checks + 1))
    [[ $got == "$want" ]] ||
        fail "'${*:2}': expected [$(flat "$want")], got [$(flat "$got")]"
}

# has "words" FUNC WORD... — at least these replies.
has() {
    local w words=$1
    shift
    comp "$@"
    checks=$((checks + 1))
    for w in $words; do
        grep -qxF -- "$w" <<<"$got" ||
            fail "'${*:2}': expected '$w' among [$(flat "$got")]"
    done
}

# lacks "words" FUNC WORD... — none of these replies.
lacks() {
    local w words=$1
    shift
    comp "$@"
    checks=$((checks + 1))
    for w in $words; do
        grep -qxF -- "$w" <<<"$got" &&
            fail "'${*:2}': did not expect '$w' in [$(flat "$got")]"
    done
}

run_checks() {
    unset -f _forkpoold _forkpoolctl
    complete -r forkpoold forkpoolctl 2>/dev/null
    # shellcheck source=/dev/null
    . "$compdir/forkpoold" || fail "cannot source $compdir/forkpoold"
    # shellcheck source=/dev/null
    . "$compdir/forkpoolctl" || fail "cannot source $compdir/forkpoolctl"
    checks=$((checks + 2))
    [[ $(complete -p forkpoold 2>/dev/null) == *"-F _forkpoold"* ]] ||
        fail "forkpoold is not registered with complete -F _forkpoold"
    [[ $(complete -p forkpoolctl 2>/dev/null) == *"-F _forkpoolctl"* ]] ||
        fail "forkpoolctl is not registered with complete -F _forkpoolctl"

    # --- forkpoold: flags ---------------------------------------------
    has "--workers --socket --module --module-config --exec --builtin
         --sandbox --user --config --daemon --pidfile --log --log-level
         --verbose --help --version --max-workers --queue-max-bytes
         --rlimit-as --rlimit-cpu --rlimit-nofile" _forkpoold forkpoold --
    has "-w -s -c -d -v -h -V --workers" _forkpoold forkpoold -
    lacks "-w -c" _forkpoold forkpoold --
    is "--sandbox" _forkpoold forkpoold --sa
    is "--log --log-level" _forkpoold forkpoold --lo
    is "--max-deliveries --max-job-bytes --max-jobs --max-rss --max-workers" \
        _forkpoold forkpoold --max
    is "--pidfile --poison-after --prefetch" _forkpoold forkpoold -w 4 --p
    is "" _forkpoold forkpoold nonsense

    # --- forkpoold: values ----------------------------------------------
    is "none basic strict" _forkpoold forkpoold --sandbox ''
    is "strict" _forkpoold forkpoold --sandbox st
    is "echo cmd" _forkpoold forkpoold -w 2 --builtin ''
    is "echo" _forkpoold forkpoold --builtin e
    is "stderr syslog" _forkpoold forkpoold --log ''
    is "syslog" _forkpoold forkpoold -d --log sy
    is "err warning info debug" _forkpoold forkpoold --log-level ''
    is "debug" _forkpoold forkpoold --log-level d
    # --flag=value, as bash splits it (at '=') and as one word.
    is "none basic strict" _forkpoold forkpoold --sandbox = ''
    is "basic" _forkpoold forkpoold --sandbox = b
    is "--sandbox=basic" _forkpoold forkpoold --sandbox=b
    is "--log-level=info" _forkpoold forkpoold --log-level=i
    # Numbers and JSON: nothing to offer, and no flags either.
    is "" _forkpoold forkpoold --workers ''
    is "" _forkpoold forkpoold -w ''
    is "" _forkpoold forkpoold --drain-timeout ''
    is "" _forkpoold forkpoold --module-config ''
    is "" _forkpoold forkpoold --rlimit-as = ''
    is "" _forkpoold forkpoold --poison-after ''
    is "--poison-after" _forkpoold forkpoold --poi
    # Users.
    has "root" _forkpoold forkpoold --user ''
    has "root" _forkpoold forkpoold --user ro
    lacks "none" _forkpoold forkpoold --user ro
    # Files, in a scratch directory.
    pushd "$scratch" >/dev/null || fail "cannot cd to $scratch"
        is "lib mod.so other.so" _forkpoold forkpoold --module ''
        is "mod.so" _forkpoold forkpoold --module m
        has "conf.txt lib mod.so" _forkpoold forkpoold --config ''
        is "conf.txt" _forkpoold forkpoold -c co
        is "conf.txt" _forkpoold forkpoold --config = co
        is "--config=conf.txt" _forkpoold forkpoold --config=co
        has "run.pid" _forkpoold forkpoold --pidfile r
        has "conf.txt" _forkpoold forkpoold -s c
        is "conf.txt" _forkpoold forkpoold --socket con
        is "lib/inner.so" _forkpoold forkpoold --module lib/
        has "lib/run.sh" _forkpoold forkpoold --exec lib/r
    popd >/dev/null || fail "cannot cd back"
    has "bash" _forkpoold forkpoold --exec bas

    # --- forkpoolctl: global options and commands ------------------------
    is "submit map status top events scale cancel drain reload metrics limit" \
        _forkpoolctl forkpoolctl ''
    is "scale status submit" _forkpoolctl forkpoolctl s
    is "map metrics" _forkpoolctl forkpoolctl m
    is "-s --socket --rpc-timeout --redis --redis-queue -h --help -V --version" _forkpoolctl forkpoolctl -
    is "--socket" _forkpoolctl forkpoolctl --so
    is "--rpc-timeout" _forkpoolctl forkpoolctl --rp
    is "" _forkpoolctl forkpoolctl --rpc-timeout ''
    is "status" _forkpoolctl forkpoolctl --rpc-timeout 3 st
    is "status" _forkpoolctl forkpoolctl --rpc-timeout=3 -s /tmp/x.sock st
    is "--json --help" _forkpoolctl forkpoolctl --rpc-timeout 3 status --
    is "status" _forkpoolctl forkpoolctl -s /tmp/x.sock st
    is "status" _forkpoolctl forkpoolctl --socket /tmp/x.sock st
    is "status" _forkpoolctl forkpoolctl --socket = /tmp/x.sock st
    is "status" _forkpoolctl forkpoolctl --socket=/tmp/x.sock st
    pushd "$scratch" >/dev/null || fail "cannot cd to $scratch"
        is "conf.txt" _forkpoolctl forkpoolctl -s con
        is "conf.txt" _forkpoolctl forkpoolctl --socket = con
        is "--socket=conf.txt" _forkpoolctl forkpoolctl --socket=con
    popd >/dev/null || fail "cannot cd back"

    # --- forkpoolctl: per-command options -------------------------------
    is "--timeout --retries --key --expires --ids --idempotency-key --progress --help" _forkpoolctl forkpoolctl submit --
    is "map" _forkpoolctl forkpoolctl --redis unix:/r.sock --redis-queue q ma
    is "--timeout" _forkpoolctl forkpoolctl submit --t
    is "--keep-order --fail-fast --timeout --retries --window --key --expires --ids --progress --help" \
        _forkpoolctl forkpoolctl map --
    is "--fail-fast" _forkpoolctl forkpoolctl -s x.sock map --keep-order --f
    is "--window" _forkpoolctl forkpoolctl map --w
    is "--json --help" _forkpoolctl forkpoolctl status --
    is "--remove --help" _forkpoolctl forkpoolctl limit --
    is "--json --help -h" _forkpoolctl forkpoolctl status -
    is "--interval --count --help" _forkpoolctl forkpoolctl top --
    is "--count" _forkpoolctl forkpoolctl top --interval 2 --c
    is "--count --help" _forkpoolctl forkpoolctl events --
    is "" _forkpoolctl forkpoolctl events --count ''
    is "--help" _forkpoolctl forkpoolctl drain --
    is "--help" _forkpoolctl forkpoolctl scale --
    # Values and operands: nothing to offer.
    is "" _forkpoolctl forkpoolctl map --timeout ''
    is "" _forkpoolctl forkpoolctl map --window = ''
    is "" _forkpoolctl forkpoolctl top --interval ''
    is "" _forkpoolctl forkpoolctl top --count = ''
    is "" _forkpoolctl forkpoolctl scale ''
    is "" _forkpoolctl forkpoolctl cancel ''
    is "" _forkpoolctl forkpoolctl submit '{"a":'
    is "" _forkpoolctl forkpoolctl submit -- -
    # A command word is not offered again after the command.
    is "" _forkpoolctl forkpoolctl status s

    # --- the built programs' --help, when they are here -------------------
    local prog opt help
    for prog in "$build/src/daemon/forkpoold" "$top/build/src/daemon/forkpoold"; do
        [[ -x $prog ]] || continue
        help=$("$prog" --help 2>/dev/null) || continue
        echo "[$mode] checking against $prog --help"
        comp _forkpoold forkpoold --
        # shellcheck disable=SC2013 # option names have no spaces
        for opt in $(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u); do
            checks=$((checks + 1))
            grep -qxF -- "$opt" <<<"$got" ||
                fail "forkpoold --help lists $opt; the completion does not offer it"
        done
        break
    done
    for prog in "$build/src/ctl/forkpoolctl" "$top/build/src/ctl/forkpoolctl"; do
        [[ -x $prog ]] || continue
        help=$("$prog" --help 2>/dev/null) || continue
        echo "[$mode] checking against $prog --help"
        local c all=''
        # shellcheck disable=SC2013 # command names have no spaces
        for c in $(sed -n 's/^  \([a-z][a-z_]*\)\( .*\)\{0,1\}$/\1/p' <<<"$help"); do
            comp _forkpoolctl forkpoolctl "$c"
            checks=$((checks + 1))
            grep -qxF -- "$c" <<<"$got" ||
                fail "forkpoolctl --help lists command $c; the completion does not offer it"
            comp _forkpoolctl forkpoolctl "$c" --
            all+=$got$'\n'
        done
        comp _forkpoolctl forkpoolctl --
        all+=$got
        # shellcheck disable=SC2013 # option names have no spaces
        for opt in $(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u); do
            checks=$((checks + 1))
            grep -qxF -- "$opt" <<<"$all" ||
                fail "forkpoolctl --help lists $opt; no completion offers it"
        done
        break
    done
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/fpcomp.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/lib"
touch "$scratch/mod.so" "$scratch/other.so" "$scratch/conf.txt" \
    "$scratch/run.pid" "$scratch/lib/inner.so" "$scratch/lib/run.sh"

mode=plain
echo "[$mode] checking the completions in $compdir"
run_checks

bc=/usr/share/bash-completion/bash_completion
if [[ -r $bc ]]; then
    mode=bash-completion
    # shellcheck source=/dev/null
    if . "$bc" >/dev/null 2>&1 && declare -F _filedir >/dev/null; then
        echo "[$mode] checking again with $bc loaded"
        run_checks
    else
        echo "note: could not load $bc; skipped that mode"
    fi
fi

if ((fails > 0)); then
    echo "completion_test: $fails of $checks checks failed"
    exit 1
fi
echo "completion_test: all $checks checks passed"
exit 0
