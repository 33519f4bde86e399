/*
 * redis_source.h — a daemon's share of a queue kept in Redis (SPEC 10): it
 * claims jobs from the queue's stream as the pool has room, runs them
 * through the same pool as control-socket jobs, keeps their leases alive,
 * and records each outcome with the lease check (functions.lua).
 *
 * A job is held from its claim until its outcome is recorded (or its lease
 * is found lost).  Redis going away stops only the claiming: jobs in hand
 * run on, and their outcomes wait here until Redis is back.
 */
#ifndef FP_REDIS_SOURCE_H
#define FP_REDIS_SOURCE_H

#include <stdint.h>
#include "forkpool.h"
#include "redis_url.h"

struct ev_loop;
struct fp_logger;
struct fp_redis_source;

#define FP_REDIS_DEFAULT_QUEUE      "forkpool"
#define FP_REDIS_DEFAULT_LEASE      30.0        /* seconds */
#define FP_REDIS_DEFAULT_DELIVERIES 3u
#define FP_REDIS_DEFAULT_RETENTION  86400.0     /* seconds: a day */

struct fp_redis_source_cfg {
    const char         *url_text;   /* as given, for status and logs */
    struct fp_redis_url url;
    const char         *queue;      /* the queue's NAME */
    double              lease;      /* seconds */
    unsigned            max_deliveries; /* dead-letter after this many
                                           lost hosts */
    double              retention;  /* seconds outcome records, idempotency
                                       keys and reply streams are kept */
    unsigned            prefetch;   /* most jobs held beyond the live
                                       workers, for short jobs */
};

/* Counters for status and metrics (SPEC 10 "redis"). */
struct fp_redis_source_stats {
    int      connected;
    uint64_t leased;        /* jobs held now */
    uint64_t claimed;       /* jobs taken from the queue, in all */
    uint64_t recorded;      /* outcomes recorded */
    uint64_t lost_leases;   /* outcomes refused: the lease had lapsed */
    uint64_t dead_lettered;
    uint64_t handed_back;
};

struct fp_redis_source *fp_redis_source_new(struct ev_loop *loop, fp_pool *pool,
                                            const struct fp_redis_source_cfg *cfg,
                                            const struct fp_logger *log);
void fp_redis_source_free(struct fp_redis_source *s);

void fp_redis_source_stats(const struct fp_redis_source *s,
                           struct fp_redis_source_stats *st);
const char *fp_redis_source_url(const struct fp_redis_source *s);
const char *fp_redis_source_queue(const struct fp_redis_source *s);

/* Drain: claim nothing more and hand back the jobs not started yet (call
 * before fp_pool_drain, so they are not run here).  Then `done` runs once
 * every held job's outcome is recorded or its lease is known lost; a
 * second call (the drain's deadline) gives up on what is left, which the
 * queue will hand to another host once its lease lapses. */
void fp_redis_source_drain(struct fp_redis_source *s, void (*done)(void *),
                           void *arg);
void fp_redis_source_give_up(struct fp_redis_source *s);

#endif
