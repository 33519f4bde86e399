/*
 * precise_timer.h — a one-shot timer for the master's loop that fires on
 * time to within microseconds, not milliseconds.
 *
 * libev's epoll backend sleeps in whole milliseconds, rounded up: an
 * ev_timer due in 0.3 ms fires after 1 ms, one due in 3.3 ms after 4.  A
 * rate limit with small bursts spends each token as it falls due, and
 * every wake-up late by that rounding loses the refill of the late part
 * (the bucket is full meanwhile): a limit of 2000/s in bursts of 1 would
 * run at 1000/s, one of 300/s at 250/s.  This timer is a timerfd on
 * CLOCK_REALTIME (the clock of ev_now()), armed for an absolute moment in
 * nanoseconds and watched by an ev_io; where no timerfd can be had, an
 * ev_timer stands in.  The fd is made with the timer, so the owner's fds
 * do not change as it is used; it is close-on-exec (and workers close
 * every fd they inherit anyway).
 *
 * Mechanism only: it calls back; the owner decides what the moment means.
 */
#ifndef FP_PRECISE_TIMER_H
#define FP_PRECISE_TIMER_H

#include <ev.h>

struct fp_precise_timer {
    ev_io     io;           /* the timerfd's readiness; active while armed */
    ev_timer  fallback;     /* in place of a timerfd that could not be had */
    int       fd;           /* the timerfd, or -1: the fallback */
    double    at;           /* the moment it is armed for, or 0 */
    void    (*cb)(void *arg);
    void     *arg;
};

/* A stopped timer that calls cb(arg) when it fires.  Cannot fail: without
 * a timerfd (no fd left), it is the fallback. */
void fp_precise_timer_init(struct fp_precise_timer *t, void (*cb)(void *),
                           void *arg);
/* Arm it for the moment `at` (ev_now()'s clock), in place of whatever it
 * was armed for; a moment past fires at the next loop iteration.  Re-arming
 * for (about) the same moment costs nothing. */
void fp_precise_timer_at(struct ev_loop *loop, struct fp_precise_timer *t,
                         double at);
void fp_precise_timer_stop(struct ev_loop *loop, struct fp_precise_timer *t);
/* Stop it and close its fd. */
void fp_precise_timer_free(struct ev_loop *loop, struct fp_precise_timer *t);

#endif
