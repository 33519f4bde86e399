/*
 * pool_spares.c — spare workers (fp_config.spare_workers): processes
 * started and ready but given no job, so that a worker that dies or is
 * recycled is replaced without waiting for a fork and a module's init.
 *
 * A spare lives on p->spares (linked through retiring_link, slot
 * POOL_SLOT_SPARE); the dispatcher, which looks only at the active slots,
 * never sees it.  When an active slot's worker has exited and the slot
 * would start a new process, pool_spare_take moves the first ready spare of
 * the current generation into the slot instead and frees the slot's old
 * fp_worker.  When no spare was ready then, the slot started a process of
 * its own; a spare that becomes ready before that process does takes the
 * slot after all (pool_spare_ready), and the process still starting
 * becomes the spare.  A worker that died young (a failed start) is not
 * replaced by a spare: its slot backs off.  The loop's prepare watcher is
 * the one place spares are started (at the pool's start too), once per
 * iteration, after the
 * outcomes due have been delivered and the jobs written: a fork costs the
 * master about half a millisecond here, which a crashed job's outcome and
 * the next jobs need not wait for.  A reload retires the spares of the old
 * generation (they hold no job: they stop at once), and the watcher starts
 * their successors; a drain stops them with every other worker
 * (pool_check_drained); the pool's teardown kills them.  Only a spare that
 * died is started again here, as the same fp_worker, for its backoff.
 */
#include "config.h"

#include "pool_int.h"

int
pool_is_spare(const struct fp_worker *w)
{
    return w->slot == POOL_SLOT_SPARE;
}

static unsigned
spare_count(const struct fp_pool *p)
{
    const struct fp_worker *w;
    unsigned n = 0;

    TAILQ_FOREACH(w, &p->spares, retiring_link)
        n++;
    return n;
}

/* Spares are kept only while the pool runs and takes jobs. */
static int
spares_wanted(const struct fp_pool *p)
{
    return p->cfg.spare_workers > 0 && p->phase == POOL_RUNNING
           && p->free_state == FREE_NONE;
}

void
pool_spares_fill(struct fp_pool *p)
{
    if (!spares_wanted(p))
        return;
    for (unsigned n = spare_count(p); n < p->cfg.spare_workers; n++) {
        struct fp_worker *w = fp_worker_new(&p->env, POOL_SLOT_SPARE);
        if (w == NULL) {
            fp_logf(&p->log, FP_LOG_ERR, "cannot start a spare worker: out of "
                    "memory");
            return;
        }
        TAILQ_INSERT_TAIL(&p->spares, w, retiring_link);
        pool_start_worker(p, w);
    }
}

struct fp_worker *
pool_spare_take(struct fp_pool *p, struct fp_worker *dead)
{
    struct fp_worker *s;
    unsigned slot = dead->slot;

    TAILQ_FOREACH(s, &p->spares, retiring_link)
        if (s->state == WS_READY && s->generation == p->generation)
            break;
    if (s == NULL)
        return NULL;
    TAILQ_REMOVE(&p->spares, s, retiring_link);
    s->slot = slot;
    p->workers[slot] = s;
    /* Half of a reload's pair: the spare is that half now.  (The old half
     * is retired once the new one is ready, as it would have been.) */
    if (p->reload_old == dead)
        p->reload_old = s;
    if (p->reload_new == dead)
        p->reload_new = s;
    fp_logf(&p->log, FP_LOG_DEBUG, "worker slot %u: spare %ld takes the place "
            "of %ld", slot, (long)s->pid, (long)dead->pid);
    fp_worker_free(dead);
    pool_autoscale_idle(p, s);
    pool_worker_ready(p, s);
    return s;       /* its successor is started after the callbacks */
}

/* An active slot of the current code whose worker is still starting and
 * younger than spare `s` (so no job can run there yet, and `s` is ready
 * first); or -1.  (At the pool's start the slots' first workers are forked
 * before the spares: they keep their places.)  A slot waiting out a
 * backoff keeps waiting: its worker failed to start, and feeding it spares
 * would restart a failing worker as fast as spares come up. */
static int
slot_not_ready(const struct fp_pool *p, const struct fp_worker *s)
{
    for (unsigned i = 0; i < p->nworkers; i++) {
        const struct fp_worker *w = p->workers[i];
        if (w == p->reload_old || w == p->reload_new)
            continue;           /* a reload's pair: reload.c's business */
        if (w->state == WS_STARTING && w->generation == p->generation
            && w->spawned_at > s->spawned_at)
            return (int)i;
    }
    return -1;
}

int
pool_spare_ready(struct fp_pool *p, struct fp_worker *s)
{
    int slot;

    if (!spares_wanted(p) || s->generation != p->generation
        || (slot = slot_not_ready(p, s)) < 0)
        return 0;
    struct fp_worker *w = p->workers[slot];
    TAILQ_REMOVE(&p->spares, s, retiring_link);
    s->slot = (unsigned)slot;
    p->workers[slot] = s;
    /* The slot's streak of failed starts goes with the slot. */
    if (w->fail_streak > s->fail_streak)
        s->fail_streak = w->fail_streak;
    /* The starting process becomes the spare (its process title keeps the
     * slot number it was started with). */
    w->slot = POOL_SLOT_SPARE;
    TAILQ_INSERT_TAIL(&p->spares, w, retiring_link);
    fp_logf(&p->log, FP_LOG_DEBUG, "worker slot %u: spare %ld takes the place "
            "of %ld, still starting, which becomes a spare", s->slot,
            (long)s->pid, (long)w->pid);
    pool_autoscale_idle(p, s);
    pool_worker_ready(p, s);
    return 1;
}

/* Move spare `w` to the leaving list (it holds no job: it stops at once). */
static void
retire_spare(struct fp_pool *p, struct fp_worker *w, const char *why)
{
    TAILQ_REMOVE(&p->spares, w, retiring_link);
    if (!fp_worker_alive(w)) {
        fp_worker_free(w);      /* waiting out a backoff: no process */
        return;
    }
    w->slot = POOL_SLOT_LEAVING;
    TAILQ_INSERT_TAIL(&p->leaving, w, retiring_link);
    pool_event_worker(p, "retired", w->pid, why);
    fp_worker_retire(w, why);
}

void
pool_spares_renew(struct fp_pool *p)
{
    struct fp_worker *w, *next;

    for (w = TAILQ_FIRST(&p->spares); w != NULL; w = next) {
        next = TAILQ_NEXT(w, retiring_link);
        if (w->generation != p->generation)
            retire_spare(p, w, "reload");
    }
}

void
pool_spare_exited(struct fp_pool *p, struct fp_worker *w, int failed_start)
{
    /* Still wanted, and of the current code: the same fp_worker starts
     * again (keeping its streak of failed starts for the backoff). */
    if (spares_wanted(p) && w->generation == p->generation) {
        if (failed_start) {
            w->fail_streak++;
            fp_worker_backoff(w, pool_backoff_delay(w->fail_streak));
        } else {
            pool_start_worker(p, w);
        }
        return;
    }
    TAILQ_REMOVE(&p->spares, w, retiring_link);
    fp_worker_free(w);
}
