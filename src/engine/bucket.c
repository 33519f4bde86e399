/* bucket.c — a token bucket (bucket.h). */
#include "config.h"
#include <math.h>
#include <stdint.h>

#include "bucket.h"

void
fp_bucket_init(struct fp_bucket *b, double rate, double burst, double now)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->stamp = now;
}

void
fp_bucket_refill(struct fp_bucket *b, double now)
{
    if (now > b->stamp) {
        b->tokens += (now - b->stamp) * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->stamp = now;
}

/* The part of a token that may be taken early: what FP_DUE_SLACK seconds
 * bring, at most FP_LEND_MAX. */
static double
lendable(const struct fp_bucket *b)
{
    double d = b->rate * FP_DUE_SLACK;

    return d < FP_LEND_MAX ? d : FP_LEND_MAX;
}

double
fp_bucket_wait(struct fp_bucket *b, double n, double now)
{
    fp_bucket_refill(b, now);
    if (b->tokens >= n - lendable(b))
        return 0;
    if (b->rate <= 0 || n > b->burst)
        return -1;
    return (n - b->tokens) / b->rate;
}

void
fp_bucket_take(struct fp_bucket *b, double n)
{
    b->tokens -= n;
    if (b->tokens < -lendable(b))
        b->tokens = 0;
}

double
fp_bucket_due(const struct fp_bucket *b, double n)
{
    if (b->tokens >= n - lendable(b))
        return b->stamp;
    if (b->rate <= 0 || n > b->burst)
        return INFINITY;
    return b->stamp + (n - b->tokens) / b->rate;
}

double
fp_bucket_tokens_at(const struct fp_bucket *b, double now)
{
    double tokens = b->tokens;

    if (now > b->stamp)
        tokens += (now - b->stamp) * b->rate;
    return tokens < b->burst ? tokens : b->burst;
}

size_t
fp_bucket_whole_at(const struct fp_bucket *b, double now)
{
    double t = fp_bucket_tokens_at(b, now) + lendable(b);

    /* A cast of a double at or past 2^64 (or of a NaN) is undefined; the
     * comparisons are written so that a NaN lands on 0. */
    if (!(t >= 1))
        return 0;
    if (t >= (double)SIZE_MAX)
        return SIZE_MAX;
    return (size_t)t;
}
