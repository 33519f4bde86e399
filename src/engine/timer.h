/*
 * timer.h — arming a one-shot libev timer the one safe way.
 *
 * A one-shot ev_timer remembers the time it had left when it last
 * stopped; once it has fired that is zero or less, so ev_timer_start on
 * it again fires at once: a timer meant to pause becomes a busy loop (and
 * ev_timer_set on a running timer corrupts libev's heap).  Every one-shot
 * timer of forkpool is therefore (re)armed through fp_timer_after, which
 * stops it and sets its delay each time, whatever state it is in.
 * ev_timer_start is left to repeating timers, started once after
 * ev_timer_init (tests/timer_lint.sh holds the tree to this).
 */
#ifndef FP_TIMER_H
#define FP_TIMER_H

#include <ev.h>

/* Fire `w` once, `delay` seconds from now (running, stopped or expired). */
static inline void
fp_timer_after(struct ev_loop *loop, ev_timer *w, ev_tstamp delay)
{
    ev_timer_stop(loop, w);
    ev_timer_set(w, delay, 0.);
    ev_timer_start(loop, w);
}

#endif /* FP_TIMER_H */
