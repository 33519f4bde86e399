/*
 * queue.h — the master's queue of accepted jobs that have not started, with
 * rate limits (SPEC 5.3): a token bucket per key and one pool-wide.
 *
 * Jobs wait in lanes, each in the order of their ids: one lane per key that
 * has a bucket, and the common lane for every other job (no key, or a key
 * without a bucket).  The next job to start is the lowest id among the lane
 * heads whose buckets hold a token, so a throttled key waits alone while
 * every other job goes ahead, and each key stays FIFO.
 *
 * Picking never walks the keys: a lane with waiting jobs sits in one of two
 * heaps, `ready` (thought to hold a token; ordered by its head's id) or
 * `due` (out of tokens; ordered by when its next one is due, never-due
 * last).  A lane moves from `due` to `ready` when its token falls due, and
 * back when it is found empty of tokens; a lane without jobs is in
 * neither.  So a pick costs O(log L) for L lanes with jobs, and a key with
 * a bucket but no jobs costs nothing.  `ready` is a hint that the bucket
 * has the last word on: a lane put there without a look at its bucket (a
 * job arrived; its bucket changed) is checked when it comes to the top.
 * At most FP_LIMIT_KEYS_MAX keys have a bucket.
 *
 * A key record lives while a job of that key lives (counted in `refs`) or
 * while it has a bucket; then it is freed, so a million distinct keys seen
 * once cost nothing after their jobs end.
 *
 * Groups (fp_group in forkpool.h) can be held: a held group's jobs do not
 * start.  They stay where they are until one reaches the head of its lane;
 * then it is parked on its group's own list, off every lane, and picking
 * goes on past it.  So holding costs nothing up front and a held group
 * never blocks another's jobs; released, its parked jobs take their places
 * by id again (near the heads: they were the oldest), keeping FIFO.
 * Parking and unparking count a job out of and into its key's lane like
 * any other change, so the lane moves in (or leaves) the heaps at once.
 *
 * Pure data: times are passed in (seconds, any monotonic origin), nothing
 * here knows libev.
 */
#ifndef FP_QUEUE_H
#define FP_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "bucket.h"
#include "job.h"

/* Where a limited key's lane is. */
enum fp_lane_place {
    LANE_IDLE,      /* no waiting job (or no bucket): in no heap */
    LANE_READY,     /* in q->ready */
    LANE_DUE,       /* in q->due */
};

struct fp_key {
    struct fp_key   *hnext;         /* hash chain */
    uint64_t         hash;
    size_t           refs;          /* jobs of this key not yet settled */
    int              limited;       /* has a bucket (and a lane) */
    struct fp_bucket bucket;
    struct fp_jobq   lane;          /* its waiting jobs, while limited */
    size_t           nwaiting;
    enum fp_lane_place place;
    size_t           heap_at;       /* its index in that heap */
    double           due;           /* LANE_DUE: when its next token is
                                       due (INFINITY: not without a change
                                       of its limit) */
    TAILQ_ENTRY(fp_key) limited_link;
    char             name[];
};
TAILQ_HEAD(fp_keyq, fp_key);

struct fp_pool;

/* A group of jobs held back or let go together (forkpool.h's fp_group).
 * The queue uses the fields up to `parked`; the pool the rest. */
struct fp_group {
    int              held;
    size_t           nqueued;       /* its jobs waiting, parked or not */
    size_t           ncommon;       /* of which in the common lane (so
                                       not parked) */
    struct fp_jobq   parked;        /* held jobs taken off their lanes, by id */
    TAILQ_ENTRY(fp_group) held_link;    /* on the queue's held list */

    struct fp_pool  *pool;          /* NULL once the pool is gone */
    size_t           refs;          /* unsettled jobs, + 1 while its owner
                                       keeps it */
    TAILQ_ENTRY(fp_group) pool_link;    /* on the pool's list of groups */
};
TAILQ_HEAD(fp_groupq, fp_group);

/* A binary min-heap of lanes; each remembers its index (heap_at). */
struct fp_lane_heap {
    struct fp_key  **v;
    size_t           n;
};

struct fp_queue {
    struct fp_jobq   lane;          /* jobs no key's bucket governs */
    size_t           n;             /* every waiting job, all lanes */
    size_t           ncommon;       /* of which in the common lane */
    struct fp_keyq   limited;       /* keys with a bucket */
    size_t           nlimited;
    struct fp_lane_heap ready, due; /* lanes with jobs (see above); room
                                       for nlimited each */
    size_t           heap_room;
    int              global_on;     /* the pool-wide bucket is set */
    struct fp_bucket global;
    struct fp_groupq held;          /* groups held now */
    size_t           nheld;         /* waiting jobs of those groups */
    size_t           nheld_common;  /* of which in the common lane */
    struct fp_key  **table;         /* key records by name */
    size_t           tsize;         /* a power of two, or 0 */
    size_t           nkeys;
    uint64_t         seed;
};

void fp_queue_init(struct fp_queue *q, uint64_t seed);
/* Free the key records and the heaps; the lanes must be empty. */
void fp_queue_free(struct fp_queue *q);

/* The record of key `name` with one more reference (created if need be),
 * or NULL if out of memory. */
struct fp_key *fp_queue_key_hold(struct fp_queue *q, const char *name);
/* One reference fewer; the record goes once nothing holds it. */
void fp_queue_key_drop(struct fp_queue *q, struct fp_key *k);
/* How many key records exist (a test's window on leaks). */
size_t fp_queue_nkeys(const struct fp_queue *q);

/* Add a job at the tail of its lane (new jobs: the highest id yet). */
void fp_queue_push(struct fp_queue *q, struct fp_job *job);
/* Put a job back in its lane at its place by id (a dead worker's jobs). */
void fp_queue_put_back(struct fp_queue *q, struct fp_job *job);
/* Remove a waiting job. */
void fp_queue_remove(struct fp_queue *q, struct fp_job *job);
/* The waiting job `id`, or NULL. */
struct fp_job *fp_queue_find(const struct fp_queue *q, uint64_t id);
/* Remove and return the earliest waiting job, buckets aside (for a pool
 * that cancels what is left), or NULL. */
struct fp_job *fp_queue_pop_any(struct fp_queue *q);
/* Remove and return the earliest job allowed to start at `now`, taking its
 * tokens; or NULL, with *wait the seconds until a throttled job may earn
 * its tokens (< 0: none will without a change of limits).  O(log L) for L
 * lanes with jobs, amortised. */
struct fp_job *fp_queue_next(struct fp_queue *q, double now, double *wait);

/* How many waiting jobs could start at `now` as far as their buckets and
 * groups go (the rest wait for tokens or a release, not for workers),
 * counting no further than `enough`: the cost grows with the answer, not
 * with the keys.  A held job never counts; one of a held group not yet
 * parked in a throttled key's lane may take a place of that key's tokens
 * in the count until it reaches the lane's head (it is parked then). */
size_t fp_queue_ready(const struct fp_queue *q, double now, size_t enough);

/* Set or change the bucket of `name` ("" or NULL: the pool-wide one):
 * rate and burst as fp_limit_rate_valid/fp_limit_burst_valid (wire.h),
 * burst 0 = max(1, rate).  A new bucket starts full.  Returns 0, or -1
 * with errno EINVAL, ENOSPC (FP_LIMIT_KEYS_MAX keys have one already) or
 * ENOMEM. */
int  fp_queue_limit(struct fp_queue *q, const char *name, double rate,
                    double burst, double now);
/* Remove the bucket of `name` ("" or NULL: the pool-wide one): its jobs
 * rejoin the common lane.  Returns 1 if there was one, else 0. */
int  fp_queue_unlimit(struct fp_queue *q, const char *name);

/* Hold group g: none of its waiting jobs is picked until it is released. */
void fp_queue_hold(struct fp_queue *q, struct fp_group *g);
/* Release group g: its jobs may be picked again, each at its place by id. */
void fp_queue_release(struct fp_queue *q, struct fp_group *g);
/* Remove every waiting job of group g into `out` (in no particular order);
 * returns how many. */
size_t fp_queue_take_group(struct fp_queue *q, struct fp_group *g,
                           struct fp_jobq *out);

/* Fill up to `max` rows (the pool-wide bucket first); returns how many
 * buckets exist. */
size_t fp_queue_limits(const struct fp_queue *q, double now,
                       fp_limit_info *rows, size_t max);

#endif
