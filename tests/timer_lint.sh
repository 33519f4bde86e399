#!/bin/sh
# timer_lint.sh — every one-shot ev_timer in src/ is (re)armed through
# fp_timer_after (src/engine/timer.h), never by ev_timer_start/_set/_again
# directly: a one-shot timer restarted without its delay fires at once,
# and a pause becomes a busy loop (issue 12).  A repeating timer, started
# once after ev_timer_init, says so on its line ("repeating timer").
set -eu
src=${abs_top_srcdir:?run from make check}/src
bad=$(grep -rn -E 'ev_timer_(start|set|again) *\(' "$src" \
        --include='*.c' --include='*.h' \
      | grep -v "^$src/engine/timer\.h:" | grep -v 'repeating timer' || true)
if [ -n "$bad" ]; then
    echo "timer_lint: arm one-shot timers with fp_timer_after (src/engine/timer.h):" >&2
    echo "$bad" >&2
    exit 1
fi
