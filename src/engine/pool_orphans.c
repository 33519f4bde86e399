/* pool_orphans.c — what dead workers leave behind (fp_config.reap_orphans).
 *
 * A worker kills what each job started when the job ends (descendants.h),
 * and every worker leads a process group that the master kills whenever
 * the worker ends.  What that misses is a process that left the group
 * (setsid) while its job was killed mid-run -- a timeout, a cancel, a
 * crash: the worker that would have swept it is gone, and the process is
 * re-parented.  With reap_orphans the pool's process is a child subreaper
 * (as PID 1 is for everything else), so such a process comes up to it;
 * and since in such a process (forkpoold) every child is a worker, after
 * any child ends the pool kills every child that is not one of its
 * workers, with the group it leads.  libev reaps them (its SIGCHLD handler
 * waits for any child), and their own children come up in turn, to be
 * killed after the next end, until none is left.  When the pool is freed
 * (its workers already killed and reaped) it kills and reaps whatever is
 * left, generation after generation, before it returns.
 *
 * One sweep per loop iteration, however many children ended in it: a job
 * that leaves hundreds of processes costs a few sweeps, not one per
 * process.  A sweep that cannot read /proc (no fds left) tries again a
 * second later; the loop never spins on it.
 */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "descendants.h"
#include "pool_int.h"
#include "timer.h"

#define RETRY_SECS     1.0      /* after a sweep that could not read /proc */
#define FINAL_MAX_SECS 5.0      /* the last sweep, at the pool's free */
#define ON_STACK       256

static int
cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return x < y ? -1 : x > y;
}

/* The children of this process into *kids: `stack` (ON_STACK of them),
 * or a bigger array the caller frees (*kids != stack).  Returns how many
 * are there, or -1 if /proc cannot tell.  (Out of memory: the first
 * ON_STACK.) */
static int
list_children(pid_t *stack, pid_t **kids)
{
    int n = fp_children_of(getpid(), stack, ON_STACK);

    *kids = stack;
    for (int tries = 0; n > ON_STACK && tries < 3; tries++) {
        size_t cap = (size_t)n + 64;
        pid_t *big = malloc(cap * sizeof(*big));
        if (big == NULL)
            break;
        int m = fp_children_of(getpid(), big, cap);
        if (m >= 0 && (size_t)m <= cap) {
            *kids = big;
            return m;
        }
        free(big);
        if (m < 0)
            break;
        n = m;          /* more came meanwhile: again, bigger */
    }
    return n > ON_STACK ? ON_STACK : n;
}

/* The pool's workers' pids, sorted, into a fresh array (NULL if none, or
 * out of memory: then *n is 0 and the sweep kills nothing this time). */
static pid_t *
worker_pids(const struct fp_pool *p, size_t *n, int *failed)
{
    size_t count = 0, i = 0;
    pid_t *pids;

    *failed = 0;
    POOL_FOREACH_WORKER(p, w)
        count++;
    *n = 0;
    if (count == 0)
        return NULL;
    if ((pids = malloc(count * sizeof(*pids))) == NULL) {
        *failed = 1;
        return NULL;
    }
    POOL_FOREACH_WORKER(p, w)
        pids[i++] = w->pid;
    qsort(pids, count, sizeof(*pids), cmp_pid);
    *n = count;
    return pids;
}

/* Is `pid` one this pool killed and has not seen reaped yet?  (A process
 * SIGKILLed takes a moment to die: the next sweep must not count it again.) */
static int
killed_before(const struct fp_pool *p, pid_t pid)
{
    for (size_t i = 0; i < p->norphans_killed; i++)
        if (p->orphans_killed[i] == pid)
            return 1;
    return 0;
}

static void
note_killed(struct fp_pool *p, pid_t pid)
{
    if (p->norphans_killed == p->orphans_cap) {
        size_t cap = p->orphans_cap ? 2 * p->orphans_cap : 64;
        pid_t *more = realloc(p->orphans_killed, cap * sizeof(*more));
        if (more == NULL)
            return;         /* it may be counted twice, no worse */
        p->orphans_killed = more;
        p->orphans_cap = cap;
    }
    p->orphans_killed[p->norphans_killed++] = pid;
}

static void
note_reaped(struct fp_pool *p, pid_t pid)
{
    for (size_t i = 0; i < p->norphans_killed; i++)
        if (p->orphans_killed[i] == pid) {
            p->orphans_killed[i] = p->orphans_killed[--p->norphans_killed];
            return;
        }
}

/* Kill every child that is not a worker (but zombies: they are dead
 * already; and those killed before, still dying).  Returns how many were
 * killed, or -1 if it could not look. */
static int
sweep(struct fp_pool *p)
{
    pid_t stack[ON_STACK], *kids;
    size_t nworkers;
    int failed, killed = 0;
    pid_t *workers = worker_pids(p, &nworkers, &failed);
    int n = failed ? -1 : list_children(stack, &kids);

    for (int i = 0; i < n; i++) {
        pid_t pid = kids[i];
        if (nworkers > 0 && bsearch(&pid, workers, nworkers, sizeof(pid), cmp_pid))
            continue;
        if (killed_before(p, pid) || fp_process_state(pid) == 'Z')
            continue;
        kill(-pid, SIGKILL);
        if (kill(pid, SIGKILL) == 0) {
            note_killed(p, pid);
            killed++;
        }
    }
    if (!failed && kids != stack)
        free(kids);
    free(workers);
    return n < 0 ? -1 : killed;
}

static void
sweep_and_log(struct fp_pool *p)
{
    int killed = sweep(p);

    if (killed > 0)
        fp_logf(&p->log, FP_LOG_WARN, "killed %d process%s a dead worker's "
                "job left behind", killed, killed == 1 ? "" : "es");
    else if (killed < 0 && !ev_is_active(&p->orphan_retry))
        fp_timer_after(p->loop, &p->orphan_retry, RETRY_SECS);
}

/* Children ended in this iteration: sweep once, before the loop waits. */
static void
sweep_due_cb(struct ev_loop *loop, ev_prepare *pw, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, pw);
    sweep_and_log(pw->data);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    sweep_and_log(tw->data);
}

static void
child_ended_cb(struct ev_loop *loop, ev_child *cw, int revents)
{
    struct fp_pool *p = cw->data;
    (void)revents;

    note_reaped(p, cw->rpid);
    if (!ev_is_active(&p->orphan_sweep))
        ev_prepare_start(loop, &p->orphan_sweep);
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
    ev_prepare_init(&p->orphan_sweep, sweep_due_cb);
    p->orphan_sweep.data = p;
    ev_timer_init(&p->orphan_retry, retry_cb, 0., 0.);
    p->orphan_retry.data = p;
    ev_child_init(&p->orphan_watch, child_ended_cb, 0, 0);     /* any child */
    p->orphan_watch.data = p;
    ev_child_start(p->loop, &p->orphan_watch);
    ev_unref(p->loop);      /* it keeps no loop running on its own */
}

/* Every worker has been killed and reaped: kill and reap every child left,
 * and what comes up in their place, until none is left (or for at most
 * FINAL_MAX_SECS: a process stuck in the kernel cannot hold the free
 * forever). */
static void
final_sweep(struct fp_pool *p)
{
    struct timespec t0, now;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t stack[ON_STACK], *kids;
        int n = list_children(stack, &kids), reaped = 0, killed = 0;
        for (int i = 0; i < n; i++) {
            int fresh = fp_process_state(kids[i]) != 'Z' && !killed_before(p, kids[i]);
            kill(-kids[i], SIGKILL);
            if (kill(kids[i], SIGKILL) != 0)
                continue;       /* not ours to kill (nor to wait for) */
            killed += fresh;
            while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
                ;
            reaped++;
        }
        if (kids != stack)
            free(kids);
        if (killed > 0)
            fp_logf(&p->log, FP_LOG_WARN, "killed %d process%s a dead worker's "
                    "job left behind", killed, killed == 1 ? "" : "es");
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (reaped == 0 || (double)(now.tv_sec - t0.tv_sec)
                      + (double)(now.tv_nsec - t0.tv_nsec) * 1e-9 > FINAL_MAX_SECS)
            return;
    }
}

void
pool_orphans_stop(struct fp_pool *p)
{
    if (!ev_is_active(&p->orphan_watch))
        return;
    ev_ref(p->loop);
    ev_child_stop(p->loop, &p->orphan_watch);
    ev_prepare_stop(p->loop, &p->orphan_sweep);
    ev_timer_stop(p->loop, &p->orphan_retry);
    final_sweep(p);
    free(p->orphans_killed);
    p->orphans_killed = NULL;
    p->norphans_killed = p->orphans_cap = 0;
}
