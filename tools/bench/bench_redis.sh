#!/bin/sh
# bench_redis.sh — the scale-out figures of SPEC 9 (README "Performance"):
# echo jobs/s through one local redis-server with one and with two
# forkpoold hosts of 2 workers each, the time another host needs to finish
# a SIGKILLed host's jobs, and — side by side, same server, same process
# count — Celery's prefork worker (Debian's python3-celery with
# python3-redis, Redis broker and result backend) when it is installed.
#
#   tools/bench/bench_redis.sh [--jobs N] [--rounds R]
#
# Run from the build directory (`make bench` does), or set BUILDDIR.
# Skipped (exit 0, one line said) without redis-server.
set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
build=${BUILDDIR:-.}
jobs=20000
rounds=3
while [ $# -gt 0 ]; do
    case $1 in
        --jobs) jobs=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --quick) jobs=4000; rounds=1; shift ;;
        *) echo "bench_redis.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if ! command -v redis-server >/dev/null 2>&1; then
    echo "scale-out: skipped (no redis-server)"
    exit 0
fi
forkpoold=$build/src/daemon/forkpoold
forkpoolctl=$build/src/ctl/forkpoolctl
python=/usr/bin/python3

dir=$(mktemp -d /tmp/fpbench-redis.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

sock=$dir/redis.sock
url=unix:$sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$dir/redis.log" &
pids="$pids $!"
i=0
until redis-cli -s "$sock" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 500 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.01
done

now_ms() { date +%s%3N; }

# host NAME [flags...]: a forkpoold of 2 echo workers on the queue.
host() {
    name=$1; shift
    "$forkpoold" -s "$dir/$name.sock" -w 2 --redis "$url" "$@" \
        >"$dir/$name.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$name=$!"
    i=0
    until grep -q "redis: connected" "$dir/$name.log" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 1000 ] || { echo "host $name did not start" >&2; exit 1; }
        sleep 0.01
    done
}
stop_host() {
    "$forkpoolctl" -s "$dir/$1.sock" drain >/dev/null 2>&1 || true
    eval "p=\$pid_$1"
    while kill -0 "$p" 2>/dev/null; do sleep 0.01; done
}

seq "$jobs" | sed 's/.*/{"n": &}/' >"$dir/jobs.txt"

# jobs/s of one map of every line through the queue (median of the rounds).
rate() {
    for r in $(seq "$rounds"); do
        t0=$(now_ms)
        n=$("$forkpoolctl" --redis "$url" map --window 4096 <"$dir/jobs.txt" | wc -l)
        t1=$(now_ms)
        [ "$n" -eq "$jobs" ] || { echo "lost outcomes: $n of $jobs" >&2; exit 1; }
        echo $((jobs * 1000 / (t1 - t0 + 1)))
    done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

host h1 --builtin echo
one=$(rate)
host h2 --builtin echo
two=$(rate)
stop_host h1
stop_host h2

# Recovery: a host holding two 1 s jobs is SIGKILLed; the other finishes
# them.  Recovery = when their outcomes land, less the kill and the run.
lease=2
host h1 --builtin cmd --lease $lease
for k in 1 2; do
    "$forkpoolctl" --redis "$url" submit '{"argv": ["sleep", "1"]}' \
        >"$dir/rec$k.out" 2>&1 &
    pids="$pids $!"
done
i=0
until "$forkpoolctl" -s "$dir/h1.sock" status --json 2>/dev/null \
        | grep -q '"leased": 2'; do
    i=$((i + 1)); [ $i -lt 1000 ] || { echo "h1 never held the jobs" >&2; exit 1; }
    sleep 0.01
done
host h2 --builtin cmd --lease $lease
t0=$(now_ms)
kill -9 "$pid_h1"
while [ "$(cat "$dir/rec1.out" "$dir/rec2.out" | grep -c '"ok": true')" -lt 2 ]; do
    sleep 0.01
done
t1=$(now_ms)
recovery=$(( (t1 - t0) - 1000 ))
stop_host h2

# Celery, same server, same process count (prefork, 2 and 4 processes).
celery_rate() {
    procs=$1
    cat >"$dir/fpbench_tasks.py" <<EOF
from celery import Celery
app = Celery("fpbench_tasks", broker="redis+socket://$sock",
             backend="redis+socket://$sock")
app.conf.worker_prefetch_multiplier = 4
@app.task
def echo(x):
    return x
EOF
    (cd "$dir" && exec $python -m celery -A fpbench_tasks worker --pool=prefork \
        -c "$procs" --loglevel=ERROR >"$dir/celery.log" 2>&1) &
    cpid=$!
    pids="$pids $cpid"
    n=$((jobs / 4))
    (cd "$dir" && $python - "$n" <<'EOF'
import sys, time
from fpbench_tasks import echo
n = int(sys.argv[1])
echo.delay(0).get(timeout=60)          # the worker is up
t0 = time.time()
rs = [echo.delay({"n": i}) for i in range(n)]
for r in rs:
    r.get(timeout=600)
print(int(n / (time.time() - t0)))
EOF
    )
    kill "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
}
if $python -c "import celery, redis" 2>/dev/null; then
    c2=$(celery_rate 2)
    c4=$(celery_rate 4)
else
    c2="-"; c4="-"
fi

ratio() { if [ "$2" = "-" ]; then echo "-"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; fi; }
echo
echo "Scale-out through one local redis-server (unix socket, appendfsync everysec),"
echo "$jobs echo jobs per round, median of $rounds (bench_redis.sh):"
printf '  %-44s %10s  %s\n' "row" "jobs/s" "vs Celery, same processes"
printf '  %-44s %10s  %s\n' "forkpool, 1 host x 2 workers" "$one" "$(ratio "$one" "$c2")"
printf '  %-44s %10s  %s\n' "forkpool, 2 hosts x 2 workers" "$two" "$(ratio "$two" "$c4")"
printf '  %-44s %10s\n' "Celery prefork, 1 worker x 2 processes" "$c2"
printf '  %-44s %10s\n' "Celery prefork, 1 worker x 4 processes" "$c4"
printf '  %-44s %8s ms  (target: lease %d s + 1 s)\n' \
    "recovery after a host's SIGKILL" "$recovery" "$lease"
[ "$c2" = "-" ] && echo "  (Celery rows: install python3-celery and python3-redis)"
exit 0
