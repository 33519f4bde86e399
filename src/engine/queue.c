/* queue.c — waiting jobs in lanes, key records, their buckets (queue.h). */
#include "config.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

void
fp_queue_init(struct fp_queue *q, uint64_t seed)
{
    memset(q, 0, sizeof(*q));
    TAILQ_INIT(&q->lane);
    TAILQ_INIT(&q->limited);
    TAILQ_INIT(&q->held);
    q->seed = seed | 1;
}

void
fp_queue_free(struct fp_queue *q)
{
    for (size_t i = 0; i < q->tsize; i++) {
        struct fp_key *k, *next;
        for (k = q->table[i]; k != NULL; k = next) {
            next = k->hnext;
            free(k);
        }
    }
    free(q->table);
    q->table = NULL;
    q->tsize = q->nkeys = 0;
    TAILQ_INIT(&q->limited);
    TAILQ_INIT(&q->held);
}

/* ------------------------------------------------------------------------
 * Key records
 * ------------------------------------------------------------------------ */

/* FNV-1a, seeded per pool so that clients cannot aim keys at one chain. */
static uint64_t
key_hash(const struct fp_queue *q, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull ^ q->seed;

    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        h ^= *s;
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static struct fp_key *
key_find(const struct fp_queue *q, const char *name, uint64_t h)
{
    if (q->tsize == 0)
        return NULL;
    for (struct fp_key *k = q->table[h & (q->tsize - 1)]; k != NULL; k = k->hnext)
        if (k->hash == h && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* Double the table (or make the first one).  Returns 0 or -1. */
static int
table_grow(struct fp_queue *q)
{
    size_t nsize = q->tsize ? q->tsize * 2 : 64;
    struct fp_key **nt = calloc(nsize, sizeof(*nt));

    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < q->tsize; i++) {
        struct fp_key *k, *next;
        for (k = q->table[i]; k != NULL; k = next) {
            next = k->hnext;
            k->hnext = nt[k->hash & (nsize - 1)];
            nt[k->hash & (nsize - 1)] = k;
        }
    }
    free(q->table);
    q->table = nt;
    q->tsize = nsize;
    return 0;
}

/* The record of `name`, created (with no reference) if need be. */
static struct fp_key *
key_get(struct fp_queue *q, const char *name)
{
    uint64_t h = key_hash(q, name);
    struct fp_key *k = key_find(q, name, h);
    size_t len = strlen(name);

    if (k != NULL)
        return k;
    if (q->nkeys >= q->tsize && table_grow(q) < 0)
        return NULL;
    if ((k = calloc(1, sizeof(*k) + len + 1)) == NULL)
        return NULL;
    memcpy(k->name, name, len + 1);
    k->hash = h;
    TAILQ_INIT(&k->lane);
    k->hnext = q->table[h & (q->tsize - 1)];
    q->table[h & (q->tsize - 1)] = k;
    q->nkeys++;
    return k;
}

/* Free `k` if nothing keeps it. */
static void
key_maybe_free(struct fp_queue *q, struct fp_key *k)
{
    struct fp_key **pp;

    if (k->refs > 0 || k->limited)
        return;
    for (pp = &q->table[k->hash & (q->tsize - 1)]; *pp != k; pp = &(*pp)->hnext)
        ;
    *pp = k->hnext;
    q->nkeys--;
    free(k);
}

struct fp_key *
fp_queue_key_hold(struct fp_queue *q, const char *name)
{
    struct fp_key *k = key_get(q, name);

    if (k != NULL)
        k->refs++;
    return k;
}

void
fp_queue_key_drop(struct fp_queue *q, struct fp_key *k)
{
    if (k == NULL)
        return;
    k->refs--;
    key_maybe_free(q, k);
}

size_t
fp_queue_nkeys(const struct fp_queue *q)
{
    return q->nkeys;
}

/* ------------------------------------------------------------------------
 * Lanes
 * ------------------------------------------------------------------------ */

/* Where a waiting job is: its held group's parked list, its key's lane,
 * or the common lane. */
static struct fp_jobq *
lane_of(struct fp_queue *q, const struct fp_job *job)
{
    if (job->parked)
        return &job->group->parked;
    return job->key != NULL && job->key->limited ? &job->key->lane : &q->lane;
}

/* A key's nwaiting counts the jobs in its lane (parked ones are not). */
static int
in_key_lane(const struct fp_job *job)
{
    return job->key != NULL && job->key->limited && !job->parked;
}

static void
count_in(struct fp_queue *q, struct fp_job *job, long d)
{
    q->n += d;
    if (in_key_lane(job))
        job->key->nwaiting += d;
    if (job->group != NULL) {
        job->group->nqueued += d;
        if (job->group->held)
            q->nheld += d;
    }
}

void
fp_queue_push(struct fp_queue *q, struct fp_job *job)
{
    TAILQ_INSERT_TAIL(lane_of(q, job), job, link);
    count_in(q, job, 1);
}

/* Insert `job` into `lane` at its place by id, looking from the head (a
 * job put back is older than nearly all). */
static void
insert_by_id(struct fp_jobq *lane, struct fp_job *job)
{
    struct fp_job *at;

    TAILQ_FOREACH(at, lane, link)
        if (at->id > job->id)
            break;
    if (at != NULL)
        TAILQ_INSERT_BEFORE(at, job, link);
    else
        TAILQ_INSERT_TAIL(lane, job, link);
}

void
fp_queue_put_back(struct fp_queue *q, struct fp_job *job)
{
    insert_by_id(lane_of(q, job), job);
    count_in(q, job, 1);
}

void
fp_queue_remove(struct fp_queue *q, struct fp_job *job)
{
    TAILQ_REMOVE(lane_of(q, job), job, link);
    count_in(q, job, -1);
    job->parked = 0;
}

/* ------------------------------------------------------------------------
 * Held groups
 * ------------------------------------------------------------------------ */

/* Move `job`, at the head of its lane, onto its held group's parked list
 * (kept by id: jobs arrive there from several lanes). */
static void
park(struct fp_queue *q, struct fp_job *job)
{
    struct fp_jobq *parked = &job->group->parked;
    struct fp_job *at;

    TAILQ_REMOVE(lane_of(q, job), job, link);
    if (in_key_lane(job))
        job->key->nwaiting--;
    job->parked = 1;
    TAILQ_FOREACH_REVERSE(at, parked, fp_jobq, link)
        if (at->id < job->id)
            break;
    if (at != NULL)
        TAILQ_INSERT_AFTER(parked, at, job, link);
    else
        TAILQ_INSERT_HEAD(parked, job, link);
}

/* The head of `lane` that may be picked, parking the held jobs before it. */
static struct fp_job *
lane_head(struct fp_queue *q, struct fp_jobq *lane)
{
    struct fp_job *job;

    while ((job = TAILQ_FIRST(lane)) != NULL && job->group != NULL
           && job->group->held)
        park(q, job);
    return job;
}

void
fp_queue_hold(struct fp_queue *q, struct fp_group *g)
{
    if (g->held)
        return;
    g->held = 1;
    q->nheld += g->nqueued;
    TAILQ_INSERT_TAIL(&q->held, g, held_link);
}

void
fp_queue_release(struct fp_queue *q, struct fp_group *g)
{
    struct fp_job *job;

    if (!g->held)
        return;
    g->held = 0;
    q->nheld -= g->nqueued;
    TAILQ_REMOVE(&q->held, g, held_link);
    /* Youngest first: each goes in at (or next to) the head of its lane,
     * before the one put back just before it. */
    while ((job = TAILQ_LAST(&g->parked, fp_jobq)) != NULL) {
        TAILQ_REMOVE(&g->parked, job, link);
        job->parked = 0;
        insert_by_id(lane_of(q, job), job);
        if (in_key_lane(job))
            job->key->nwaiting++;
    }
}

/* Move the jobs of group g in `lane` to `out`. */
static size_t
take_from_lane(struct fp_queue *q, struct fp_jobq *lane, struct fp_group *g,
               struct fp_jobq *out)
{
    struct fp_job *job, *next;
    size_t n = 0;

    for (job = TAILQ_FIRST(lane); job != NULL; job = next) {
        next = TAILQ_NEXT(job, link);
        if (job->group == g) {
            fp_queue_remove(q, job);
            TAILQ_INSERT_TAIL(out, job, link);
            n++;
        }
    }
    return n;
}

size_t
fp_queue_take_group(struct fp_queue *q, struct fp_group *g, struct fp_jobq *out)
{
    struct fp_key *k;
    size_t n = 0;

    if (g->nqueued == 0)
        return 0;
    n += take_from_lane(q, &g->parked, g, out);
    n += take_from_lane(q, &q->lane, g, out);
    TAILQ_FOREACH(k, &q->limited, limited_link)
        n += take_from_lane(q, &k->lane, g, out);
    return n;
}

struct fp_job *
fp_queue_find(const struct fp_queue *q, uint64_t id)
{
    struct fp_job *job;
    struct fp_key *k;

    struct fp_group *g;

    TAILQ_FOREACH(job, &q->lane, link)
        if (job->id == id)
            return job;
    TAILQ_FOREACH(k, &q->limited, limited_link)
        TAILQ_FOREACH(job, &k->lane, link)
            if (job->id == id)
                return job;
    TAILQ_FOREACH(g, &q->held, held_link)
        TAILQ_FOREACH(job, &g->parked, link)
            if (job->id == id)
                return job;
    return NULL;
}

struct fp_job *
fp_queue_pop_any(struct fp_queue *q)
{
    struct fp_job *best = TAILQ_FIRST(&q->lane), *head;
    struct fp_key *k;
    struct fp_group *g;

    TAILQ_FOREACH(k, &q->limited, limited_link)
        if ((head = TAILQ_FIRST(&k->lane)) != NULL
            && (best == NULL || head->id < best->id))
            best = head;
    TAILQ_FOREACH(g, &q->held, held_link)
        if ((head = TAILQ_FIRST(&g->parked)) != NULL
            && (best == NULL || head->id < best->id))
            best = head;
    if (best != NULL)
        fp_queue_remove(q, best);
    return best;
}

/* ------------------------------------------------------------------------
 * Buckets
 * ------------------------------------------------------------------------ */

/* The sooner of two waits, where < 0 means never. */
static double
sooner(double a, double b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

struct fp_job *
fp_queue_next(struct fp_queue *q, double now, double *wait)
{
    struct fp_job *best, *head;
    struct fp_key *k, *best_key = NULL;
    double gw = 0, w = -1;

    *wait = -1;
    if (q->n <= q->nheld)
        return NULL;        /* nothing, or only held jobs */
    if (q->global_on && (gw = fp_bucket_wait(&q->global, 1, now)) != 0) {
        *wait = gw;
        return NULL;
    }
    best = lane_head(q, &q->lane);
    TAILQ_FOREACH(k, &q->limited, limited_link) {
        double kw;
        if ((head = lane_head(q, &k->lane)) == NULL
            || (best != NULL && head->id > best->id))
            continue;
        if ((kw = fp_bucket_wait(&k->bucket, 1, now)) != 0) {
            w = sooner(w, kw);
            continue;
        }
        best = head;
        best_key = k;
    }
    if (best == NULL) {
        *wait = w;
        return NULL;
    }
    if (best_key != NULL)
        fp_bucket_take(&best_key->bucket, 1);
    if (q->global_on)
        fp_bucket_take(&q->global, 1);
    fp_queue_remove(q, best);
    return best;
}

/* Is rate/burst a bucket?  Fills in the default burst. */
static int
bucket_valid(double rate, double *burst)
{
    if (!isfinite(rate) || rate < 0 || !isfinite(*burst))
        return 0;
    if (*burst == 0)
        *burst = rate > 1 ? rate : 1;
    return *burst >= 1;
}

static void
bucket_set(struct fp_bucket *b, int existed, double rate, double burst,
           double now)
{
    if (existed)
        fp_bucket_refill(b, now);
    else
        b->tokens = burst;
    b->rate = rate;
    b->burst = burst;
    if (b->tokens > burst)
        b->tokens = burst;
    b->stamp = now;
}

/* Move the jobs of `k` from the common lane into its own. */
static void
lane_split(struct fp_queue *q, struct fp_key *k)
{
    struct fp_job *job, *next;

    for (job = TAILQ_FIRST(&q->lane); job != NULL; job = next) {
        next = TAILQ_NEXT(job, link);
        if (job->key == k) {
            TAILQ_REMOVE(&q->lane, job, link);
            TAILQ_INSERT_TAIL(&k->lane, job, link);
            k->nwaiting++;
        }
    }
}

/* Merge the jobs of `k`'s lane back into the common lane, by id. */
static void
lane_merge(struct fp_queue *q, struct fp_key *k)
{
    struct fp_job *job, *at = TAILQ_FIRST(&q->lane);

    while ((job = TAILQ_FIRST(&k->lane)) != NULL) {
        TAILQ_REMOVE(&k->lane, job, link);
        while (at != NULL && at->id < job->id)
            at = TAILQ_NEXT(at, link);
        if (at != NULL)
            TAILQ_INSERT_BEFORE(at, job, link);
        else
            TAILQ_INSERT_TAIL(&q->lane, job, link);
    }
    k->nwaiting = 0;
}

int
fp_queue_limit(struct fp_queue *q, const char *name, double rate,
               double burst, double now)
{
    struct fp_key *k;

    if (!bucket_valid(rate, &burst)) {
        errno = EINVAL;
        return -1;
    }
    if (name == NULL || name[0] == '\0') {
        bucket_set(&q->global, q->global_on, rate, burst, now);
        q->global_on = 1;
        return 0;
    }
    if ((k = key_get(q, name)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    bucket_set(&k->bucket, k->limited, rate, burst, now);
    if (!k->limited) {
        k->limited = 1;
        TAILQ_INSERT_TAIL(&q->limited, k, limited_link);
        lane_split(q, k);
    }
    return 0;
}

int
fp_queue_unlimit(struct fp_queue *q, const char *name)
{
    struct fp_key *k;

    if (name == NULL || name[0] == '\0') {
        int was = q->global_on;
        q->global_on = 0;
        return was;
    }
    if ((k = key_find(q, name, key_hash(q, name))) == NULL || !k->limited)
        return 0;
    lane_merge(q, k);
    TAILQ_REMOVE(&q->limited, k, limited_link);
    k->limited = 0;
    key_maybe_free(q, k);
    return 1;
}

size_t
fp_queue_ready(const struct fp_queue *q, double now)
{
    size_t n = q->n - q->nheld, can, over;
    const struct fp_key *k;

    /* (A key's lane may still hold held jobs not yet parked: never below 0.) */
    TAILQ_FOREACH(k, &q->limited, limited_link) {
        can = (size_t)(fp_bucket_tokens_at(&k->bucket, now) + FP_TOKEN_SLACK);
        over = k->nwaiting > can ? k->nwaiting - can : 0;
        n = n > over ? n - over : 0;
    }
    if (q->global_on) {
        can = (size_t)(fp_bucket_tokens_at(&q->global, now) + FP_TOKEN_SLACK);
        if (n > can)
            n = can;
    }
    return n;
}

static void
fill_row(fp_limit_info *r, const char *key, const struct fp_bucket *b,
         size_t waiting, double now)
{
    r->key = key;
    r->rate = b->rate;
    r->burst = b->burst;
    r->tokens = fp_bucket_tokens_at(b, now);
    r->waiting = waiting;
}

size_t
fp_queue_limits(const struct fp_queue *q, double now, fp_limit_info *rows,
                size_t max)
{
    size_t n = 0;
    const struct fp_key *k;

    if (q->global_on) {
        if (n < max)
            fill_row(&rows[n], "", &q->global, q->n, now);
        n++;
    }
    TAILQ_FOREACH(k, &q->limited, limited_link) {
        if (n < max)
            fill_row(&rows[n], k->name, &k->bucket, k->nwaiting, now);
        n++;
    }
    return n;
}
