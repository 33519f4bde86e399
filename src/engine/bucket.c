/* bucket.c — a token bucket (bucket.h). */
#include "config.h"

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

double
fp_bucket_wait(struct fp_bucket *b, double n, double now)
{
    fp_bucket_refill(b, now);
    if (b->tokens >= n - FP_TOKEN_SLACK)
        return 0;
    if (b->rate <= 0 || n > b->burst)
        return -1;
    return (n - b->tokens) / b->rate;
}

void
fp_bucket_take(struct fp_bucket *b, double n)
{
    b->tokens -= n;
    if (b->tokens < 0)
        b->tokens = 0;
}

double
fp_bucket_tokens_at(const struct fp_bucket *b, double now)
{
    double tokens = b->tokens;

    if (now > b->stamp)
        tokens += (now - b->stamp) * b->rate;
    return tokens < b->burst ? tokens : b->burst;
}
