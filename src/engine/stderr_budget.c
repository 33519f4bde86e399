/* stderr_budget.c — what of a worker's stderr is read and logged
 * (stderr_budget.h). */
#include "config.h"

#include "stderr_budget.h"

void
fp_stderr_budget_init(struct fp_stderr_budget *b, double now)
{
    fp_bucket_init(&b->lines, FP_STDERR_LINES_RATE, FP_STDERR_LINES_BURST, now);
    fp_bucket_init(&b->bytes, FP_STDERR_BYTES_RATE, FP_STDERR_BYTES_BURST, now);
    fp_bucket_init(&b->read, FP_STDERR_READ_RATE, FP_STDERR_READ_BURST, now);
    b->held_lines = 0;
    b->held_bytes = 0;
}

int
fp_stderr_budget_admit(struct fp_stderr_budget *b, size_t len, double now)
{
    /* Both buckets or neither: a refused line takes nothing, so the next,
     * shorter one may still fit. */
    if (fp_bucket_wait(&b->lines, 1, now) == 0
        && fp_bucket_wait(&b->bytes, (double)len, now) == 0) {
        fp_bucket_take(&b->lines, 1);
        fp_bucket_take(&b->bytes, (double)len);
        return 1;
    }
    b->held_lines++;
    b->held_bytes += len;
    return 0;
}

int
fp_stderr_budget_summary(struct fp_stderr_budget *b, uint64_t *lines,
                         uint64_t *bytes)
{
    if (b->held_lines == 0)
        return 0;
    *lines = b->held_lines;
    *bytes = b->held_bytes;
    b->held_lines = 0;
    b->held_bytes = 0;
    return 1;
}

size_t
fp_stderr_budget_readable(struct fp_stderr_budget *b, double now)
{
    fp_bucket_refill(&b->read, now);
    if (b->read.tokens >= FP_STDERR_READ_CHUNK)
        return FP_STDERR_READ_CHUNK;
    return (size_t)b->read.tokens;
}

void
fp_stderr_budget_read(struct fp_stderr_budget *b, size_t n)
{
    fp_bucket_take(&b->read, (double)n);
}

double
fp_stderr_budget_read_wait(struct fp_stderr_budget *b, double now)
{
    return fp_bucket_wait(&b->read, FP_STDERR_READ_CHUNK, now);
}
