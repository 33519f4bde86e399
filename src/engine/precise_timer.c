/* precise_timer.c — a one-shot timer with sub-millisecond precision
 * (precise_timer.h). */
#include "config.h"
#include <errno.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "precise_timer.h"
#include "timer.h"

/* Re-arming for a moment this close to the armed one is left undone. */
#define SAME_MOMENT 1e-6
/* A moment further ahead is armed for this far ahead (the owner looks
 * again then): keeps the conversion to time_t defined for any double. */
#define MAX_AHEAD   (86400.0 * 30)

static void
fire(struct ev_loop *loop, struct fp_precise_timer *t)
{
    fp_precise_timer_stop(loop, t);
    t->cb(t->arg);
}

static void
timerfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct fp_precise_timer *t = w->data;
    uint64_t expirations;
    (void)revents;

    /* Nothing to read: re-armed since the loop saw it readable. */
    if (read(t->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
        return;
    fire(loop, t);
}

static void
fallback_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    fire(loop, w->data);
}

void
fp_precise_timer_init(struct fp_precise_timer *t, void (*cb)(void *), void *arg)
{
    t->at = 0;
    t->cb = cb;
    t->arg = arg;
    t->fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    ev_io_init(&t->io, timerfd_cb, t->fd, EV_READ);
    t->io.data = t;
    ev_init(&t->fallback, fallback_cb);
    t->fallback.data = t;
}

void
fp_precise_timer_at(struct ev_loop *loop, struct fp_precise_timer *t, double at)
{
    double now = ev_now(loop);

    if (at > now + MAX_AHEAD)
        at = now + MAX_AHEAD;
    if (t->at != 0 && at > t->at - SAME_MOMENT && at < t->at + SAME_MOMENT)
        return;
    if (t->fd >= 0) {
        struct itimerspec its = { { 0, 0 }, { 0, 0 } };
        if (at > 0) {
            its.it_value.tv_sec = (time_t)at;
            its.it_value.tv_nsec = (long)((at - (double)its.it_value.tv_sec) * 1e9);
            if (its.it_value.tv_nsec > 999999999)
                its.it_value.tv_nsec = 999999999;
        }
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec <= 0)
            its.it_value.tv_nsec = 1;   /* zero would disarm it */
        if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) == 0) {
            t->at = at;
            ev_io_start(loop, &t->io);
            return;
        }
    }
    /* No timerfd: libev's own timer, late by up to its rounding. */
    fp_timer_after(loop, &t->fallback, at > now ? at - now : 0);
    t->at = at;
}

void
fp_precise_timer_stop(struct ev_loop *loop, struct fp_precise_timer *t)
{
    /* A timerfd left armed only wakes the loop once: its callback then
     * finds the watcher stopped, or reads and ignores it.  So no system
     * call here. */
    ev_io_stop(loop, &t->io);
    ev_timer_stop(loop, &t->fallback);
    t->at = 0;
}

void
fp_precise_timer_free(struct ev_loop *loop, struct fp_precise_timer *t)
{
    fp_precise_timer_stop(loop, t);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}
