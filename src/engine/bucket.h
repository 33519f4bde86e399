/*
 * bucket.h — a token bucket: `rate` tokens a second, at most `burst` held.
 * Used for the rate limits of job starts (queue.c) and for the budget of a
 * worker's stderr (stderr_budget.c).
 *
 * Pure data: times are passed in (seconds, any monotonic origin).
 */
#ifndef FP_BUCKET_H
#define FP_BUCKET_H

struct fp_bucket {
    double rate;        /* tokens per second (0: never refills) */
    double burst;       /* most tokens held */
    double tokens;
    double stamp;       /* when tokens was last brought up to date */
};

/* A timer set for the moment a token is due may fire a hair early. */
#define FP_TOKEN_SLACK 1e-9

/* A full bucket at `now`. */
void   fp_bucket_init(struct fp_bucket *b, double rate, double burst, double now);
/* Bring its tokens up to `now`. */
void   fp_bucket_refill(struct fp_bucket *b, double now);
/* Seconds until it holds `n` tokens: 0 now, < 0 never. */
double fp_bucket_wait(struct fp_bucket *b, double n, double now);
/* Take `n` tokens (never below zero). */
void   fp_bucket_take(struct fp_bucket *b, double n);
/* The tokens it holds at `now`, leaving it as it is. */
double fp_bucket_tokens_at(const struct fp_bucket *b, double now);

#endif
