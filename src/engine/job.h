/*
 * job.h — the master's record of one accepted job, from acceptance to the
 * delivery of its one outcome.
 *
 * A job lives in exactly one place at a time: the pool's queue, a worker's
 * window (sent; the first one runs), or the completion list (its outcome is
 * recorded and waits for delivery).  One case overlaps: a job cancelled while
 * prefetched keeps its place in the window (its bytes may already be at the
 * worker, whose result for it must still be matched) while its outcome waits
 * on the completion list.  It is freed once it has left both.
 */
#ifndef FP_JOB_H
#define FP_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "forkpool.h"
#include "codec/buf.h"

struct fp_worker;
struct fp_key;
struct fp_group;

enum fp_job_state {
    JOB_QUEUED,     /* accepted, in the pool's queue */
    JOB_ASSIGNED,   /* in a worker's window */
    JOB_SETTLED,    /* outcome recorded, on the completion list */
    JOB_DELIVERED,  /* its done callback has run */
};

/* The bytes before a job's payload in ["job", id, payload] to a worker
 * (SPEC §6): an array of 3, the str "job" and the id as a uint64. */
#define FP_JOB_ENVELOPE 14

struct fp_job {
    TAILQ_ENTRY(fp_job) link;       /* in a lane of the queue or a worker's
                                       window */
    TAILQ_ENTRY(fp_job) done_link;  /* on the completion list */
    uint64_t          id;
    enum fp_job_state state;
    char             *payload;      /* msgpack bytes of the job value */
    size_t            len;
    size_t            cap;          /* bytes the inline block can hold */
    double            timeout;      /* seconds; 0 = none */
    unsigned          retries_left;
    unsigned          attempts;     /* times started */
    double            accepted_at;  /* ev_now() when it was accepted */
    double            started_at;   /* ev_now() when it last started */
    fp_done_fn        done;
    void             *arg;
    fp_progress_fn    progress_fn;  /* fp_job_opts.progress, or NULL */
    void             *progress_arg;
    struct fp_job_progress *progress; /* its reports waiting for
                                       progress_fn (from the first one), or
                                       NULL */
    struct fp_worker *worker;       /* whose window holds it, or NULL */
    struct fp_key    *key;          /* its rate-limit key, or NULL */
    struct fp_group  *group;        /* its group (fp_job_opts.group), or NULL */
    int               parked;       /* waiting on its held group's parked
                                       list rather than in a lane (queue.h) */

    /* The outcome, once settled: the result or detail bytes live in the
     * job's own block when they fit (the payload is no longer needed), or
     * in `out_heap`. */
    fp_kind           kind;
    const char       *out;
    size_t            out_len;
    char             *out_heap;
    /* Its receipt (SPEC §3; fp_outcome.stats): wait_ms set as it starts,
     * the rest as it ends; and a crashed job's stderr tail (malloc'd, or
     * NULL). */
    fp_receipt        stats;
    char             *errtail;
    size_t            errtail_len;

    double            expires_at;   /* ev_now() by which it must have
                                       started, or 0 (fp_job_opts.expires) */
    size_t            expiry_pos;   /* its place + 1 in the pool's expiry
                                       heap; 0 = not there */

    uint64_t          seq;          /* its number in the worker's stream,
                                       FP_SEQ_NONE until its bytes go out */
    /* ["job", id, ...]'s envelope, right before the payload: the job's
     * bytes on the wire are one piece of memory (one iovec per job). */
    char              hdr[FP_JOB_ENVELOPE];
    char              inline_payload[];
};
_Static_assert(offsetof(struct fp_job, inline_payload)
               == offsetof(struct fp_job, hdr) + FP_JOB_ENVELOPE,
               "the envelope must end where the payload begins");
TAILQ_HEAD(fp_jobq, fp_job);

/* A job's progress reports not yet handed to its callback: one msgpack
 * value after another, at most FP_PROGRESS_PENDING bytes of them (the
 * latest one alone may be larger). */
struct fp_job_progress {
    TAILQ_ENTRY(fp_job_progress) link;  /* on the pool's list of them */
    struct fp_job    *job;
    int               due;      /* on that list */
    struct fp_buf     values;
    unsigned          nvalues;
    uint64_t          dropped;  /* older values dropped for the bound */
};
TAILQ_HEAD(fp_progressq, fp_job_progress);

#define FP_SEQ_NONE UINT64_MAX

/* Small job blocks are kept for reuse, so a steady stream of small jobs
 * costs no malloc. */
struct fp_job_cache {
    struct fp_job *free;
    unsigned       nfree;
};

/* A block for a job of `len` payload bytes, zeroed, or NULL. */
struct fp_job *fp_job_alloc(struct fp_job_cache *c, size_t len);
void fp_job_release(struct fp_job_cache *c, struct fp_job *job);
/* Free what the job owns besides its block (the block itself is then the
 * keeper's: fp_outcome_keep). */
void fp_job_drop_owned(struct fp_job *job);
/* Hand the memory holding the outcome's bytes (job->out) to the caller:
 * the outcome's own buffer, or the job's block itself when they live in it
 * (*whole set: the block is no longer the pool's).  Returns it, to be
 * freed with free(), or NULL when they are not in memory of the job's
 * (a static message). */
void *fp_job_take_outcome(struct fp_job *job, int *whole);
void fp_job_cache_free(struct fp_job_cache *c);

/* Queue one progress value (copied) for the job's callback.  Returns 0;
 * 1 if older values waiting were dropped to keep within
 * FP_PROGRESS_PENDING; -1 if there was no memory (the value is dropped). */
int fp_job_progress_add(struct fp_job *job, const char *value, size_t len);

/* Record the job's outcome, copying data/len (one msgpack value) into the
 * job's block or, when larger, a buffer of its own.  Returns 0; or -1 if
 * that buffer could not be had: the outcome is then FP_ERROR with a detail
 * saying so (never a truncated value). */
int fp_job_set_outcome(struct fp_job *job, fp_kind kind, const char *data,
                       size_t len);

#endif
