/*
 * bucket.h — a token bucket: `rate` tokens a second, at most `burst` held.
 * Used for the rate limits of job starts (queue.c) and for the budget of a
 * worker's stderr (stderr_budget.c).
 *
 * Pure data: times are passed in (seconds, any monotonic origin).
 */
#ifndef FP_BUCKET_H
#define FP_BUCKET_H

#include <stddef.h>

struct fp_bucket {
    double rate;        /* tokens per second (0: never refills) */
    double burst;       /* most tokens held */
    double tokens;
    double stamp;       /* when tokens was last brought up to date */
};

/* A timer set for the moment a token is due may find it due a hair later
 * (the loop's clock and the timer's round differently), and would then be
 * re-armed for a few nanoseconds.  So a token due within FP_DUE_SLACK
 * seconds counts as there -- but no more than FP_LEND_MAX of it: that
 * fraction is lent, and the bucket then holds less than zero until the
 * refill has repaid it.  Starts never outrun the rate; they may come that
 * hair early, never more than FP_LEND_MAX of a token beyond the burst. */
#define FP_DUE_SLACK 1e-6
#define FP_LEND_MAX  1e-3

/* A full bucket at `now`. */
void   fp_bucket_init(struct fp_bucket *b, double rate, double burst, double now);
/* Bring its tokens up to `now`. */
void   fp_bucket_refill(struct fp_bucket *b, double now);
/* Seconds until it holds `n` tokens (lending aside): 0 now, < 0 never. */
double fp_bucket_wait(struct fp_bucket *b, double n, double now);
/* Take `n` tokens.  What the slack lent stays owed; taking more than it
 * holds beyond that empties it (no debt). */
void   fp_bucket_take(struct fp_bucket *b, double n);
/* When it will hold `n` tokens: its stamp if it does (lending included),
 * INFINITY if never without a change.  Leaves it as it is. */
double fp_bucket_due(const struct fp_bucket *b, double n);
/* The tokens it holds at `now` (< 0 while a loan is owed), leaving it as
 * it is. */
double fp_bucket_tokens_at(const struct fp_bucket *b, double now);
/* How many whole tokens it holds at `now`, counting what the slack would
 * lend: the jobs it lets start now.  Saturates: defined for any bucket. */
size_t fp_bucket_whole_at(const struct fp_bucket *b, double now);

#endif
