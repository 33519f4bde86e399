/*
 * stderr_budget.h — how much of a worker's stderr the master reads and how
 * much of it reaches the log.  Workers are untrusted: one that writes
 * without end (a handler leaving `yes >&2` behind) must cost the master a
 * bounded share of a CPU and the log a bounded number of bytes.
 *
 * - Reading: at most FP_STDERR_READ_CHUNK bytes per loop wakeup (so other
 *   clients are served between chunks), and FP_STDERR_READ_RATE bytes a
 *   second past a burst.  A worker writing faster than that waits in its
 *   write(2): slowed, never stopped, so a chatty job still finishes.
 * - Logging: a token bucket of lines and one of bytes.  A line either
 *   takes its tokens and is logged, or is suppressed and counted; the
 *   counts are summarised at most once every FP_STDERR_SUMMARY_EVERY
 *   seconds (worker_stderr.c logs "suppressed N lines (M bytes)").
 *
 * The budget belongs to a worker slot, not to one process, so a worker
 * that floods and dies is not refilled by its replacement.
 *
 * Pure data: times are passed in (seconds, any monotonic origin).
 */
#ifndef FP_STDERR_BUDGET_H
#define FP_STDERR_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "bucket.h"

/* Per worker; README "Operating forkpool" states them. */
#define FP_STDERR_LINES_BURST   1000
#define FP_STDERR_LINES_RATE    100                 /* lines a second */
#define FP_STDERR_BYTES_BURST   (128 * 1024)
#define FP_STDERR_BYTES_RATE    (16 * 1024)         /* bytes a second */
#define FP_STDERR_READ_CHUNK    (64 * 1024)         /* most read per wakeup */
#define FP_STDERR_READ_BURST    (256 * 1024)
#define FP_STDERR_READ_RATE     (4 * 1024 * 1024)   /* bytes read a second */
#define FP_STDERR_SUMMARY_EVERY 1.0                 /* seconds */

struct fp_stderr_budget {
    struct fp_bucket lines;         /* lines that may reach the log */
    struct fp_bucket bytes;         /* and their bytes */
    struct fp_bucket read;          /* bytes the master may read */
    uint64_t         held_lines;    /* suppressed since the last summary */
    uint64_t         held_bytes;
};

/* Full buckets at `now`, nothing suppressed. */
void   fp_stderr_budget_init(struct fp_stderr_budget *b, double now);

/* A line of `len` bytes at `now`: 1 if it may be logged (its tokens are
 * taken), 0 if it is suppressed (and counted). */
int    fp_stderr_budget_admit(struct fp_stderr_budget *b, size_t len, double now);

/* The lines and bytes suppressed since the last call: 1 and the counts
 * (then zero again), or 0 if there were none. */
int    fp_stderr_budget_summary(struct fp_stderr_budget *b, uint64_t *lines,
                                uint64_t *bytes);

/* Bytes the master may read now, at most FP_STDERR_READ_CHUNK. */
size_t fp_stderr_budget_readable(struct fp_stderr_budget *b, double now);
/* It read `n` bytes. */
void   fp_stderr_budget_read(struct fp_stderr_budget *b, size_t n);
/* Seconds until a whole chunk may be read (0: now). */
double fp_stderr_budget_read_wait(struct fp_stderr_budget *b, double now);

#endif
