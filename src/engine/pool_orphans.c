/* pool_orphans.c — what dead workers leave behind (fp_config.reap_orphans).
 *
 * A worker kills what each job started when the job ends (descendants.h),
 * and every worker leads a process group that the master kills whenever
 * the worker ends.  What that misses is a process that left the group
 * (setsid) while its job was killed mid-run -- a timeout, a cancel, a
 * crash: the worker that would have swept it is gone, and the process is
 * re-parented.  With reap_orphans the pool's process is a child subreaper
 * (as PID 1 is for everything else), so such a process comes up to it;
 * and since in such a process (forkpoold) every child is a worker, each
 * time a child ends the pool kills every child that is not one of its
 * workers, with the group it leads.  libev reaps them (its SIGCHLD handler
 * waits for any child), and their own children come up in turn, to be
 * killed at the next end, until none is left.
 */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "descendants.h"
#include "pool_int.h"

#define SWEEP_MAX 256   /* children looked at per end (the rest: the next) */

static int
is_worker(const struct fp_pool *p, pid_t pid)
{
    POOL_FOREACH_WORKER(p, w)
        if (w->pid == pid)
            return 1;
    return 0;
}

/* Kill every child of ours that is not a worker. */
static void
sweep(struct fp_pool *p)
{
    pid_t kids[SWEEP_MAX];
    int n = fp_children_of(getpid(), kids, SWEEP_MAX), killed = 0;

    if (n > SWEEP_MAX)
        n = SWEEP_MAX;
    for (int i = 0; i < n; i++) {
        if (is_worker(p, kids[i]))
            continue;
        kill(-kids[i], SIGKILL);
        if (kill(kids[i], SIGKILL) == 0)
            killed++;
    }
    if (killed > 0)
        fp_logf(&p->log, FP_LOG_WARN, "killed %d process%s a dead worker's "
                "job left behind", killed, killed == 1 ? "" : "es");
}

static void
child_ended_cb(struct ev_loop *loop, ev_child *cw, int revents)
{
    (void)loop; (void)revents;
    sweep(cw->data);
}

void
pool_orphans_start(struct fp_pool *p)
{
    if (!p->cfg.reap_orphans)
        return;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        fp_logf(&p->log, FP_LOG_WARN, "reap_orphans: cannot become a child "
                "subreaper (%s): what a killed job left outside its worker's "
                "process group may outlive it", strerror(errno));
        return;
    }
    ev_child_init(&p->orphan_watch, child_ended_cb, 0, 0);     /* any child */
    p->orphan_watch.data = p;
    ev_child_start(p->loop, &p->orphan_watch);
    ev_unref(p->loop);      /* it keeps no loop running on its own */
}

void
pool_orphans_stop(struct fp_pool *p)
{
    if (!ev_is_active(&p->orphan_watch))
        return;
    ev_ref(p->loop);
    ev_child_stop(p->loop, &p->orphan_watch);
}
