/*
 * pool_progress.c — jobs' progress reports out to their callbacks
 * (fp_job_opts.progress): the policy side of a worker's progress report.
 *
 * A report is copied at once (it lies in the worker's read buffer, which
 * moves on) into its job's queue, and the job goes on the pool's list of
 * jobs with reports due.  pool_run_callbacks hands them out before any
 * outcome, and a job's reports before its own outcome, from the one place
 * user callbacks run (completion.c).  A job without a progress callback
 * costs one pointer test per report.
 */
#include "config.h"
#include <stdlib.h>

#include "pool_int.h"

#define KEEP_VALUES (4 * 1024)  /* a job's queue kept between deliveries */

/* ops->progress: job `job` of worker `w` reported value/len. */
void
pool_on_progress(struct fp_worker *w, struct fp_job *job, const char *value,
                 size_t len)
{
    struct fp_pool *p = w->env->owner;
    uint64_t before;

    if (job->progress_fn == NULL)
        return;
    before = job->progress != NULL ? job->progress->dropped : 0;
    switch (fp_job_progress_add(job, value, len)) {
    case -1:
        fp_logf(&p->log, FP_LOG_WARN, "job %llu: no memory for a progress "
                "report of %zu bytes; dropped", (unsigned long long)job->id, len);
        return;
    case 1:
        fp_logf(&p->log, FP_LOG_DEBUG, "job %llu: progress callbacks behind; "
                "%llu older reports dropped", (unsigned long long)job->id,
                (unsigned long long)(job->progress->dropped - before));
        break;
    }
    if (!job->progress->due) {
        job->progress->due = 1;
        TAILQ_INSERT_TAIL(&p->progress_due, job->progress, link);
        pool_callbacks_due(p);
    }
}

/* Hand the reports of one job to its callback, in order.  The queue is
 * taken off the job first: a callback may call into the pool. */
static void
deliver(struct fp_pool *p, struct fp_job_progress *jp)
{
    struct fp_job *job = jp->job;
    struct fp_buf values = jp->values;
    struct fp_reader r;
    const char *v;
    size_t len;

    TAILQ_REMOVE(&p->progress_due, jp, link);
    jp->due = 0;
    jp->values = (struct fp_buf)FP_BUF_INIT;
    jp->nvalues = 0;
    /* Each value was scanned as part of its frame: the reader walks them
     * within bounds. */
    fp_reader_init(&r, fp_buf_head(&values), values.len);
    while (p->free_state != FREE_DUE && fp_read_skip(&r, &v, &len) == 0)
        job->progress_fn(job->id, v, len, job->progress_arg);
    /* The buffer goes back for the next reports (none can have come
     * meanwhile: callbacks read no worker). */
    if (jp->values.data == NULL) {
        fp_buf_clear(&values);
        fp_buf_shrink(&values, KEEP_VALUES);
        jp->values = values;
    } else {
        fp_buf_free(&values);
    }
}

void
pool_progress_run(struct fp_pool *p)
{
    struct fp_job_progress *jp;

    while ((jp = TAILQ_FIRST(&p->progress_due)) != NULL
           && p->free_state != FREE_DUE)
        deliver(p, jp);
}

void
pool_progress_run_job(struct fp_pool *p, struct fp_job *job)
{
    if (pool_progress_due(job))
        deliver(p, job->progress);
}
