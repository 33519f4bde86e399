/*
 * worker_beat.c — the running job's progress and heartbeat: the mechanism
 * side (worker.h).  A ["progress", id, value] message is allowed only for
 * the job the worker is running; anything else is a protocol error, as a
 * stray result is.  Each one is the job's heartbeat: with
 * --heartbeat-timeout S, a job that has neither reported progress nor
 * ended S seconds after its start or its last report is killed (the owner
 * makes it a timeout, "no heartbeat for S s").
 *
 * The timer is not restarted on every report (a job may report thousands
 * of times a second): a report only notes the time, and the timer, when it
 * fires, is armed again for what is left from the last one (ev.pod, "be
 * smart about timeouts").
 */
#include "config.h"
#include <stdio.h>

#include "worker.h"
#include "codec/wire.h"
#include "timer.h"

static void heartbeat_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);

void
fp_worker_beat_init(struct fp_worker *w)
{
    ev_init(&w->heartbeat_timer, heartbeat_timer_cb);
    w->heartbeat_timer.data = w;
}

void
fp_worker_beat_arm(struct fp_worker *w)
{
    struct ev_loop *loop = w->env->loop;

    w->beat_at = ev_now(loop);
    fp_timer_after(loop, &w->heartbeat_timer, w->env->heartbeat_timeout);
}

static void
heartbeat_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_worker *w = tw->data;
    struct fp_job *head = TAILQ_FIRST(&w->window);
    double limit = w->env->heartbeat_timeout;
    ev_tstamp left = w->beat_at + limit - ev_now(loop);
    (void)revents;

    if (head == NULL || fp_worker_moved_past_head(w))
        return;     /* it has ended: its result is on the way */
    if (left > 0) {
        fp_timer_after(loop, &w->heartbeat_timer, left);
        return;
    }
    fp_logf(w->env->log, FP_LOG_WARN, "job %llu sent no heartbeat for %gs; "
            "killing worker %ld", (unsigned long long)head->id, limit,
            (long)w->pid);
    fp_worker_kill(w, KILL_HEARTBEAT, head->id);
}

void
fp_worker_on_progress(struct fp_worker *w, const struct fp_worker_msg *m)
{
    struct fp_job *job = TAILQ_FIRST(&w->window);
    char why[96];

    /* The running job is the window's head, once all its bytes are out
     * (the worker cannot have started one it has not read whole). */
    if (job == NULL || job == w->send_next || job->id != m->id
        || fp_worker_skips(w, job)) {
        snprintf(why, sizeof(why), "progress for job %llu, which it is not "
                 "running", (unsigned long long)m->id);
        fp_worker_protocol_error(w, why);
        return;
    }
    w->beat_at = ev_now(w->env->loop);
    /* A job cancelled while sent ahead has its outcome already: whatever
     * it says now goes nowhere. */
    if (job->state == JOB_ASSIGNED)
        w->env->ops->progress(w, job, m->value, m->value_len);
}
