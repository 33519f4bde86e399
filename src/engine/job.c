/* job.c — job blocks and their outcomes (see job.h). */
#include "config.h"
#include <stdlib.h>
#include <string.h>

#include "job.h"

#define JOB_SMALL     512       /* payload bytes of a reusable block */
#define JOB_FREE_MAX  1024      /* blocks kept for reuse */

struct fp_job *
fp_job_alloc(struct fp_job_cache *c, size_t len)
{
    struct fp_job *job;
    size_t cap = len <= JOB_SMALL ? JOB_SMALL : len;

    if (cap == JOB_SMALL && c->free != NULL) {
        job = c->free;
        c->free = TAILQ_NEXT(job, link);
        c->nfree--;
    } else if ((job = malloc(sizeof(*job) + cap)) == NULL) {
        return NULL;
    }
    memset(job, 0, sizeof(*job));
    job->cap = cap;
    job->payload = job->inline_payload;
    return job;
}

void
fp_job_drop_owned(struct fp_job *job)
{
    free(job->out_heap);
    job->out_heap = NULL;
    free(job->errtail);
    job->errtail = NULL;
    if (job->progress != NULL) {
        fp_buf_free(&job->progress->values);
        free(job->progress);
        job->progress = NULL;
    }
}

void
fp_job_release(struct fp_job_cache *c, struct fp_job *job)
{
    fp_job_drop_owned(job);
    if (job->cap == JOB_SMALL && c->nfree < JOB_FREE_MAX) {
        TAILQ_NEXT(job, link) = c->free;
        c->free = job;
        c->nfree++;
    } else {
        free(job);
    }
}

void
fp_job_cache_free(struct fp_job_cache *c)
{
    struct fp_job *job;

    while ((job = c->free) != NULL) {
        c->free = TAILQ_NEXT(job, link);
        free(job);
    }
    c->nfree = 0;
}

void *
fp_job_take_outcome(struct fp_job *job, int *whole)
{
    *whole = 0;
    if (job->out_heap != NULL && job->out == job->out_heap) {
        void *mem = job->out_heap;
        job->out_heap = NULL;
        return mem;
    }
    if (job->out != job->inline_payload)
        return NULL;
    *whole = 1;
    return job;
}

int
fp_job_set_outcome(struct fp_job *job, fp_kind kind, const char *data,
                   size_t len)
{
    static const char nomem[] = "\xd9\x23" "master out of memory for the result";
    char *to = job->inline_payload;

    free(job->out_heap);        /* a second outcome (a cancel that wins) */
    job->out_heap = NULL;
    job->kind = kind;
    /* The payload is no longer needed once the job has ended, so its room
     * takes the outcome -- unless the job still sits in a window (cancelled
     * while prefetched), whose payload may still be on its way out. */
    if (len > job->cap || job->worker != NULL)
        to = job->out_heap = malloc(len > 0 ? len : 1);
    if (to == NULL) {
        job->kind = FP_ERROR;
        job->out = nomem;
        job->out_len = sizeof(nomem) - 1;
        return -1;
    }
    memcpy(to, data, len);
    job->out = to;
    job->out_len = len;
    return 0;
}

int
fp_job_progress_add(struct fp_job *job, const char *value, size_t len)
{
    struct fp_job_progress *jp = job->progress;
    int dropped = 0;

    if (jp == NULL) {
        if ((jp = calloc(1, sizeof(*jp))) == NULL)
            return -1;
        jp->job = job;
        job->progress = jp;
    }
    /* Callbacks run once per loop iteration, and a worker's reports come
     * in at most a few MiB per iteration: only a flood gets here. */
    if (jp->nvalues > 0 && jp->values.len + len > FP_PROGRESS_PENDING) {
        jp->dropped += jp->nvalues;
        jp->nvalues = 0;
        fp_buf_clear(&jp->values);
        dropped = 1;
    }
    if (fp_buf_append(&jp->values, value, len) < 0)
        return -1;
    jp->nvalues++;
    return dropped;
}
