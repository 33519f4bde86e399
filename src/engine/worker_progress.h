/*
 * worker_progress.h — fp_progress (forkpool.h) inside a module worker: the
 * job whose handler runs now, and the way its progress goes to the master.
 *
 * A progress message is written at once, through the worker's held-results
 * writer (worker_hold.h) with no waiting: whatever results of earlier jobs
 * are held go first, so the stream keeps its order, and the running job's
 * own result can only follow, since it is sent once its handler returns.
 */
#ifndef FP_WORKER_PROGRESS_H
#define FP_WORKER_PROGRESS_H

#include <pthread.h>
#include <stdint.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "worker_hold.h"

/* Every job passes through begin and end, reports or not, so those two
 * take no lock: `running` and `busy` are atomics that a report and the
 * job's end check against each other (each stores its own, then loads the
 * other's), so either the report sees the job ended, or the end sees the
 * report under way and waits for it on the lock. */
struct fp_worker_progress {
    struct fp_hold         *hold;       /* the worker's writer */
    const struct fp_limits *limits;     /* frames the master accepts */
    pthread_mutex_t         lock;       /* one report at a time */
    int                     running;    /* atomic: a job's handler runs */
    int                     busy;       /* atomic: a report is under way */
    uint64_t                job;        /* the running job's id */
    struct fp_buf           msg;        /* ["progress", id, value] */
};

/* Once per worker process, after its writer is set up: fp_progress reports
 * through `wp` from now on. */
void fp_worker_progress_init(struct fp_worker_progress *wp, struct fp_hold *hold,
                             const struct fp_limits *limits);
/* Job `id`'s handler starts / has returned (after this, fp_progress fails
 * with ESRCH until the next begin, even from a thread the handler left
 * running, so nothing can follow the job's result). */
void fp_worker_progress_begin(struct fp_worker_progress *wp, uint64_t id);
void fp_worker_progress_end(struct fp_worker_progress *wp);
/* Before the worker exits. */
void fp_worker_progress_fini(struct fp_worker_progress *wp);

#endif
