/*
 * worker_meter.c — the master's side of each job's receipt (meter.h) for
 * one worker: the base its running job is measured from, what a result
 * reports or /proc says between an --exec program's jobs, its usage just
 * before we kill it, and what its death leaves to know.  Mechanism only:
 * it fills in figures; worker_io.c calls it at those moments.
 */
#include "config.h"

#include "worker.h"

/* Its usage as we are about to kill it while a job runs (once): that
 * job's receipt, since a killed process can no longer be asked. */
void
fp_worker_measure_kill(struct fp_worker *w)
{
    if (w->meter.killed_read || !fp_worker_alive(w) || w->state == WS_KILLED
        || TAILQ_EMPTY(&w->window))
        return;
    w->meter.killed_read = fp_proc_usage(w->pid, 0, &w->meter.at_kill) == 0;
}

/* The running job ended with a result: the rest of its receipt, from the
 * cost the worker reports (`c`, or NULL) or, for an --exec program (one
 * job at a time), from /proc, which also resets its peak for the next
 * job.  Either way the CPU it has used so far is the next job's base. */
void
fp_worker_measure_result(struct fp_worker *w, struct fp_job *job,
                         const struct fp_job_cost *c)
{
    struct fp_proc_usage u;
    fp_receipt scratch, *r = job->state == JOB_ASSIGNED ? &job->stats : &scratch;

    /* (A job cancelled while sent ahead has its outcome already, but what
     * the worker used on it still moves the base.) */
    r->run_ms = (ev_now(w->env->loop) - job->started_at) * 1e3;
    if (c != NULL && !c->measured) {
        /* Short, no sample taken (wire.h). */
        r->run_ms = r->cpu_ms = (double)c->run_us / 1e3;
        r->maxrss_kb = w->meter.base_rss_kb;
    } else if (c != NULL) {
        r->run_ms = (double)c->run_us / 1e3;
        r->cpu_ms = (double)c->cpu_us / 1e3;
        r->maxrss_kb = c->maxrss_kb;
        w->meter.base_cpu_us = c->total_cpu_us;
        w->meter.base_rss_kb = c->rss_kb;
    } else if (!w->meter.own_loop && fp_proc_usage(w->pid, 1, &u) == 0) {
        r->cpu_ms = u.cpu_us > w->meter.base_cpu_us
                    ? (double)(u.cpu_us - w->meter.base_cpu_us) / 1e3 : 0;
        r->maxrss_kb = u.peak_kb;
        w->meter.base_rss_kb = u.rss_kb;
        w->meter.base_cpu_us = u.cpu_us;
    }
}

/* It said "ready": what its start cost is no job's.  (An --exec program's
 * peak restarts here; our own job loop restarts its own.)  What it wrote
 * to stderr so far is no job's either. */
void
fp_worker_measure_ready(struct fp_worker *w)
{
    struct fp_proc_usage u;

    if (fp_proc_usage(w->pid, !w->meter.own_loop, &u) == 0) {
        w->meter.base_cpu_us = u.cpu_us;
        w->meter.base_rss_kb = u.rss_kb;
    }
    fp_worker_stderr_sync(w);
}

/* Its process is gone: the running job's run_ms, cpu_ms and maxrss_kb up
 * to now (meter.h), and the last lines it wrote to stderr (its pipe read
 * dry first). */
void
fp_worker_measure_death(struct fp_worker *w, struct fp_worker_exit *x)
{
    uint64_t cpu, peak;

    /* Always: what is reaped must not count again at the next reap. */
    fp_reaped_since(&cpu, &peak);
    if (w->meter.killed_read) {
        cpu = w->meter.at_kill.cpu_us;
        if (w->meter.at_kill.peak_kb > 0)
            peak = w->meter.at_kill.peak_kb;
    }
    /* Its peak went with it unless it beat every child reaped before:
     * then what is known, its resident size as the job started. */
    if (peak == 0)
        peak = w->meter.base_rss_kb;
    x->cost = (fp_receipt){
        .run_ms = (ev_now(w->env->loop) - w->job_started) * 1e3,
        .cpu_ms = cpu > w->meter.base_cpu_us
                  ? (double)(cpu - w->meter.base_cpu_us) / 1e3 : 0,
        .maxrss_kb = peak,
    };
    x->stderr_len = fp_worker_stderr_tail(w, x->stderr_tail);
}

