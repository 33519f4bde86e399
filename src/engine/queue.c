/* queue.c — waiting jobs in lanes, key records, their buckets (queue.h). */
#include "config.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/wire.h"
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
    free(q->ready.v);
    free(q->due.v);
    q->table = NULL;
    q->ready.v = q->due.v = NULL;
    q->tsize = q->nkeys = q->nlimited = q->heap_room = 0;
    q->ready.n = q->due.n = 0;
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
 * Heaps of lanes: `ready` by head id, `due` by due time
 * ------------------------------------------------------------------------ */

typedef int (*lane_before_fn)(const struct fp_key *a, const struct fp_key *b);

static int
ready_before(const struct fp_key *a, const struct fp_key *b)
{
    return TAILQ_FIRST(&a->lane)->id < TAILQ_FIRST(&b->lane)->id;
}

static int
due_before(const struct fp_key *a, const struct fp_key *b)
{
    return a->due < b->due;
}

static void
heap_set(struct fp_lane_heap *h, size_t i, struct fp_key *k)
{
    h->v[i] = k;
    k->heap_at = i;
}

static void
heap_up(struct fp_lane_heap *h, size_t i, lane_before_fn before)
{
    struct fp_key *k = h->v[i];

    while (i > 0 && before(k, h->v[(i - 1) / 2])) {
        heap_set(h, i, h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, k);
}

static void
heap_down(struct fp_lane_heap *h, size_t i, lane_before_fn before)
{
    struct fp_key *k = h->v[i];
    size_t c;

    while ((c = 2 * i + 1) < h->n) {
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], k))
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, k);
}

/* The caller made room (q->heap_room covers every limited key). */
static void
heap_push(struct fp_lane_heap *h, struct fp_key *k, lane_before_fn before)
{
    heap_set(h, h->n++, k);
    heap_up(h, h->n - 1, before);
}

static void
heap_remove(struct fp_lane_heap *h, struct fp_key *k, lane_before_fn before)
{
    size_t i = k->heap_at;
    struct fp_key *last = h->v[--h->n];

    if (last != k) {
        heap_set(h, i, last);
        heap_up(h, i, before);
        heap_down(h, last->heap_at, before);
    }
}

/* Room in both heaps for `n` lanes.  Returns 0 or -1. */
static int
heap_reserve(struct fp_queue *q, size_t n)
{
    size_t room = q->heap_room ? q->heap_room : 16;
    struct fp_key **v;

    if (n <= q->heap_room)
        return 0;
    while (room < n)
        room *= 2;
    if ((v = realloc(q->ready.v, room * sizeof(*v))) == NULL)
        return -1;
    q->ready.v = v;
    if ((v = realloc(q->due.v, room * sizeof(*v))) == NULL)
        return -1;
    q->due.v = v;
    q->heap_room = room;
    return 0;
}

/* ------------------------------------------------------------------------
 * Where a lane waits
 * ------------------------------------------------------------------------ */

/* Take `k`'s lane out of whichever heap holds it. */
static void
lane_unplace(struct fp_queue *q, struct fp_key *k)
{
    if (k->place == LANE_READY)
        heap_remove(&q->ready, k, ready_before);
    else if (k->place == LANE_DUE)
        heap_remove(&q->due, k, due_before);
    k->place = LANE_IDLE;
}

/* `k`'s lane, which has jobs, waits for its next token: in `due`, for the
 * moment its bucket says (now or earlier, if it holds one already: the
 * next pick moves it on). */
static void
lane_place(struct fp_queue *q, struct fp_key *k)
{
    lane_unplace(q, k);
    k->due = fp_bucket_due(&k->bucket, 1);
    heap_push(&q->due, k, due_before);
    k->place = LANE_DUE;
}

/* `k`'s token is due: it competes by the id of its head. */
static void
lane_make_ready(struct fp_queue *q, struct fp_key *k)
{
    lane_unplace(q, k);
    heap_push(&q->ready, k, ready_before);
    k->place = LANE_READY;
}

/* A job joined or left `k`'s lane: an emptied lane leaves its heap, a lane
 * that was empty enters one, a ready lane's head may have moved. */
static void
lane_changed(struct fp_queue *q, struct fp_key *k)
{
    if (TAILQ_EMPTY(&k->lane))
        lane_unplace(q, k);
    else if (k->place == LANE_IDLE)
        lane_place(q, k);
    else if (k->place == LANE_READY) {
        heap_up(&q->ready, k->heap_at, ready_before);
        heap_down(&q->ready, k->heap_at, ready_before);
    }
}

/* The lanes whose token is due by `now` (a timer set for that moment may
 * see a clock a hair behind it) compete by their heads. */
static void
promote_due(struct fp_queue *q, double now)
{
    while (q->due.n > 0 && q->due.v[0]->due <= now + FP_DUE_SLACK)
        lane_make_ready(q, q->due.v[0]);
}

/* ------------------------------------------------------------------------
 * Lanes
 * ------------------------------------------------------------------------ */

/* The key whose lane `job` belongs in, or NULL: the common lane. */
static struct fp_key *
limited_key(const struct fp_job *job)
{
    return job->key != NULL && job->key->limited ? job->key : NULL;
}

/* Where a waiting job is: its held group's parked list, its key's lane,
 * or the common lane. */
static struct fp_jobq *
lane_of(struct fp_queue *q, const struct fp_job *job)
{
    struct fp_key *k;

    if (job->parked)
        return &job->group->parked;
    k = limited_key(job);
    return k != NULL ? &k->lane : &q->lane;
}

/* Count `job` in (d = 1) or out (d = -1) of the common lane. */
static void
count_common(struct fp_queue *q, struct fp_job *job, int d)
{
    q->ncommon += (size_t)d;
    if (job->group != NULL) {
        job->group->ncommon += (size_t)d;
        if (job->group->held)
            q->nheld_common += (size_t)d;
    }
}

/* Count `job` in or out of the lane it is in (not a parked list): a key's
 * lane moves in the heaps as its count changes. */
static void
count_in_lane(struct fp_queue *q, struct fp_job *job, int d)
{
    struct fp_key *k = limited_key(job);

    if (k != NULL) {
        k->nwaiting += (size_t)d;
        lane_changed(q, k);
    } else {
        count_common(q, job, d);
    }
}

/* Count a job in (d = 1) or out (d = -1) of the queue, where it is. */
static void
count_in(struct fp_queue *q, struct fp_job *job, int d)
{
    q->n += (size_t)d;
    if (job->group != NULL) {
        job->group->nqueued += (size_t)d;
        if (job->group->held)
            q->nheld += (size_t)d;
    }
    if (!job->parked)
        count_in_lane(q, job, d);
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

static int
is_held(const struct fp_job *job)
{
    return job->group != NULL && job->group->held;
}

/* Move `job`, at the head of its lane, onto its held group's parked list
 * (kept by id: jobs arrive there from several lanes).  Its key's lane
 * takes its new head, or leaves the heaps. */
static void
park(struct fp_queue *q, struct fp_job *job)
{
    struct fp_jobq *parked = &job->group->parked;
    struct fp_job *at;

    TAILQ_REMOVE(lane_of(q, job), job, link);
    count_in_lane(q, job, -1);
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

    while ((job = TAILQ_FIRST(lane)) != NULL && is_held(job))
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
    q->nheld_common += g->ncommon;
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
    q->nheld_common -= g->ncommon;
    TAILQ_REMOVE(&q->held, g, held_link);
    /* Youngest first: each goes in at (or next to) the head of its lane,
     * before the one put back just before it. */
    while ((job = TAILQ_LAST(&g->parked, fp_jobq)) != NULL) {
        TAILQ_REMOVE(&g->parked, job, link);
        job->parked = 0;
        insert_by_id(lane_of(q, job), job);
        count_in_lane(q, job, 1);
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
    if (g->ncommon > 0)
        n += take_from_lane(q, &q->lane, g, out);
    /* The keys' list, not the heaps: taking jobs moves lanes in them.
     * (Not a dispatch path: a group is cancelled once.) */
    TAILQ_FOREACH(k, &q->limited, limited_link) {
        if (g->nqueued == 0)
            break;
        if (k->nwaiting > 0)
            n += take_from_lane(q, &k->lane, g, out);
    }
    return n;
}

/* ------------------------------------------------------------------------
 * Finding
 * ------------------------------------------------------------------------ */

static struct fp_job *
find_in(const struct fp_jobq *lane, uint64_t id)
{
    struct fp_job *job;

    TAILQ_FOREACH(job, lane, link)
        if (job->id == id)
            return job;
    return NULL;
}

struct fp_job *
fp_queue_find(const struct fp_queue *q, uint64_t id)
{
    const struct fp_lane_heap *heaps[2] = { &q->ready, &q->due };
    struct fp_job *job = find_in(&q->lane, id);
    const struct fp_group *g;

    /* Only lanes with jobs are in the heaps; parked jobs are in no lane. */
    for (int h = 0; h < 2 && job == NULL; h++)
        for (size_t i = 0; i < heaps[h]->n && job == NULL; i++)
            job = find_in(&heaps[h]->v[i]->lane, id);
    for (g = TAILQ_FIRST(&q->held); g != NULL && job == NULL;
         g = TAILQ_NEXT(g, held_link))
        job = find_in(&g->parked, id);
    return job;
}

struct fp_job *
fp_queue_pop_any(struct fp_queue *q)
{
    struct fp_job *best = TAILQ_FIRST(&q->lane), *head;
    struct fp_group *g;

    /* Buckets and holds aside, every lane and parked list competes by its
     * head (the next pick looks at the buckets again). */
    while (q->due.n > 0)
        lane_make_ready(q, q->due.v[0]);
    if (q->ready.n > 0) {
        head = TAILQ_FIRST(&q->ready.v[0]->lane);
        if (best == NULL || head->id < best->id)
            best = head;
    }
    TAILQ_FOREACH(g, &q->held, held_link)
        if ((head = TAILQ_FIRST(&g->parked)) != NULL
            && (best == NULL || head->id < best->id))
            best = head;
    if (best != NULL)
        fp_queue_remove(q, best);
    return best;
}

/* ------------------------------------------------------------------------
 * Picking
 * ------------------------------------------------------------------------ */

/* Start `job`: its key's token (if its lane has a bucket) and the
 * pool-wide one are taken by the caller's check; out of the queue. */
static struct fp_job *
start(struct fp_queue *q, struct fp_job *job)
{
    if (q->global_on)
        fp_bucket_take(&q->global, 1);
    fp_queue_remove(q, job);
    return job;
}

struct fp_job *
fp_queue_next(struct fp_queue *q, double now, double *wait)
{
    struct fp_job *common, *head;
    struct fp_key *k;
    double gw;

    *wait = -1;
    if (q->n <= q->nheld)
        return NULL;        /* nothing, or only held jobs */
    if (q->global_on && (gw = fp_bucket_wait(&q->global, 1, now)) != 0) {
        *wait = gw;
        return NULL;
    }
    promote_due(q, now);
    common = lane_head(q, &q->lane);
    while (q->ready.n > 0) {
        k = q->ready.v[0];
        head = TAILQ_FIRST(&k->lane);
        if (is_held(head)) {
            park(q, head);      /* the lane takes its next head (or goes) */
            continue;
        }
        if (common != NULL && common->id < head->id)
            break;              /* the oldest job is in the common lane */
        if (fp_bucket_wait(&k->bucket, 1, now) != 0) {
            lane_place(q, k);   /* no token after all: wait for it */
            continue;
        }
        fp_bucket_take(&k->bucket, 1);
        start(q, head);
        /* Out of tokens: off to `due` at once, so that `ready` holds only
         * lanes that can go (fp_queue_ready counts on it). */
        if (k->place == LANE_READY && fp_bucket_wait(&k->bucket, 1, now) != 0)
            lane_place(q, k);
        return head;
    }
    if (common != NULL)
        return start(q, common);
    /* (A lane in `due` may hold only held jobs not yet parked: its timer
     * then finds them at the head, parks them and arms no more.) */
    if (q->due.n > 0 && isfinite(q->due.v[0]->due))
        *wait = q->due.v[0]->due > now ? q->due.v[0]->due - now : 0;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Buckets
 * ------------------------------------------------------------------------ */

/* Is rate/burst a bucket?  Fills in the default burst. */
static int
bucket_valid(double rate, double *burst)
{
    if (!fp_limit_rate_valid(rate))
        return 0;
    if (*burst == 0)
        *burst = rate > 1 ? rate : 1;
    return fp_limit_burst_valid(*burst);
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
            count_common(q, job, -1);
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
        count_common(q, job, 1);
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
    k = key_find(q, name, key_hash(q, name));
    if (k == NULL || !k->limited) {
        if (q->nlimited >= FP_LIMIT_KEYS_MAX) {
            errno = ENOSPC;
            return -1;
        }
        if (heap_reserve(q, q->nlimited + 1) < 0
            || (k == NULL && (k = key_get(q, name)) == NULL)) {
            errno = ENOMEM;
            return -1;
        }
    }
    bucket_set(&k->bucket, k->limited, rate, burst, now);
    if (!k->limited) {
        k->limited = 1;
        q->nlimited++;
        TAILQ_INSERT_TAIL(&q->limited, k, limited_link);
        lane_split(q, k);
    }
    /* Its token may be due sooner or later than it was. */
    if (k->nwaiting > 0)
        lane_place(q, k);
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
    lane_unplace(q, k);
    lane_merge(q, k);
    TAILQ_REMOVE(&q->limited, k, limited_link);
    q->nlimited--;
    k->limited = 0;
    key_maybe_free(q, k);
    return 1;
}

/* ------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------ */

/* The jobs of `k` that its tokens let start at `now`. */
static size_t
lane_ready(const struct fp_key *k, double now)
{
    size_t can = fp_bucket_whole_at(&k->bucket, now);

    return k->nwaiting < can ? k->nwaiting : can;
}

/* Add to *n the ready jobs of the lanes in `due` from index i down whose
 * token is due by `now` (a heap: below a lane not due, none is), until
 * *n reaches `enough`. */
static void
count_due(const struct fp_lane_heap *h, size_t i, double now, size_t enough,
          size_t *n)
{
    if (i >= h->n || *n >= enough || h->v[i]->due > now + FP_DUE_SLACK)
        return;
    *n += lane_ready(h->v[i], now);
    count_due(h, 2 * i + 1, now, enough, n);
    count_due(h, 2 * i + 2, now, enough, n);
}

size_t
fp_queue_ready(const struct fp_queue *q, double now, size_t enough)
{
    /* Held jobs never start: the common lane's are counted out exactly,
     * and no count goes past the jobs not held (held ones not yet parked
     * in a key's lane are in its nwaiting). */
    size_t n = q->ncommon - q->nheld_common, unheld = q->n - q->nheld;

    if (unheld < enough)
        enough = unheld;
    if (q->global_on) {
        size_t can = fp_bucket_whole_at(&q->global, now);
        if (can < enough)
            enough = can;
    }
    /* A lane in `ready` holds a token; one in `due` does not before its
     * due time. */
    for (size_t i = 0; i < q->ready.n && n < enough; i++)
        n += lane_ready(q->ready.v[i], now);
    count_due(&q->due, 0, now, enough, &n);
    return n < enough ? n : enough;
}

static void
fill_row(fp_limit_info *r, const char *key, const struct fp_bucket *b,
         size_t waiting, double now)
{
    double tokens = fp_bucket_tokens_at(b, now);

    r->key = key;
    r->rate = b->rate;
    r->burst = b->burst;
    r->tokens = tokens > 0 ? tokens : 0;    /* a hair lent early */
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
