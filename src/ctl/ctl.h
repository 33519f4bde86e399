/*
 * ctl.h — forkpoolctl internals.  The daemon is reached through
 * libforkpoolclient (include/forkpool_client.h); here: its use by the
 * commands (ctl_conn.c), outcome lines (ctl_outcome.c), and the commands
 * that need more than one call (ctl_map.c, ctl_top.c, ctl_events.c, ...).
 */
#ifndef FP_CTL_H
#define FP_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "forkpool.h"
#include "forkpool_client.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "codec/outq.h"

/* Exit statuses (SPEC §8). */
#define CTL_EXIT_OK      0      /* done; every job ended ok */
#define CTL_EXIT_FAIL    1      /* a job did not end ok, or a method error */
#define CTL_EXIT_USAGE   2      /* bad flag, argument or JSON */
#define CTL_EXIT_NODAEMON 3     /* cannot reach the daemon, or it did not
                                   answer within --rpc-timeout */

/* --rpc-timeout's default for the commands that run no jobs (status,
 * metrics, scale, ...); submit and map wait as long as their jobs take. */
#define CTL_DEFAULT_RPC_TIMEOUT 10.0

/* The daemon a command talks to, and how long it waits for an answer. */
struct ctl_redis_target;
struct ctl_target {
    const char *path;           /* control socket */
    double      rpc_timeout;    /* seconds; 0 = wait as long as it takes */
    const struct ctl_redis_target *redis;   /* --redis: submit and map go
                                               to the queue instead */
};

/* Output JSON: one line, with the ", " / ": " separators of the SPEC's
 * examples ({"id": 7, "ok": true, ...}), keys in insertion order. */
#define CTL_JSON_FLAGS (JSON_INDENT(0) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

/* Job options for submit/map; only those given are sent. */
struct ctl_jobopts {
    int      has_timeout;
    double   timeout;
    int      has_retries;
    uint32_t retries;
    int      ids;       /* --ids: ask for "accepted" notifications */
    const char *key;    /* --key: rate-limit key, or NULL */
    int      has_expires;
    double   expires;   /* --expires: seconds to start by */
    int      progress;  /* --progress: ask for "progress" notifications */
};

/* Connect to the daemon of t (libforkpoolclient), its timeout being
 * t->rpc_timeout.  Returns 0, or FP_CLIENT_E* with *c set for ctl_fail
 * (close it either way). */
int  ctl_connect(fp_client **c, const struct ctl_target *t);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t ctl_now_ms(void);
/* t->rpc_timeout in whole milliseconds (0 = none). */
int64_t ctl_timeout_ms(const struct ctl_target *t);
/* How long poll() may wait for an answer asked for at `since_ms`: -1
 * without a timeout, else what is left of it (0 once it has passed). */
int  ctl_wait_ms(const struct ctl_target *t, int64_t since_ms);
/* Report a failure rc of the client library on stderr for `method`
 * (c may be NULL when memory ran out), as one line ending in `note` if
 * given; returns the exit status to use (CTL_EXIT_NODAEMON when the daemon
 * is unreachable or did not answer in time). */
int  ctl_fail(const struct ctl_target *t, const fp_client *c, int rc,
              const char *method);
int  ctl_fail_note(const struct ctl_target *t, const fp_client *c, int rc,
                   const char *method, const char *note);
/* The largest answer forkpoolctl takes: a result as large as any daemon
 * may be told to take (forkpoold's --max-job-bytes cap, 1 GiB,
 * src/daemon/daemon_opts.c), and its envelope.  The daemon is the user's
 * own (same uid), and bounds its results by its own limit. */
#define CTL_MAX_ANSWER_BYTES (((size_t)1 << 30) + ((size_t)64 << 10))
/* The job options as the client library takes them. */
void ctl_client_opts(const struct ctl_jobopts *o, struct fp_client_jobopts *co);

/* The (non-nil) error of a response as text: a str as itself, anything
 * else as its JSON. */
void ctl_error_text(const struct fp_client_msg *r, char *err, size_t errlen);
/* A job's outcome (fp_client_outcome) as one JSON line's text appended
 * to out (no tree): {"index": index (none if index is CTL_NO_INDEX:
 * submit's line), "id", "ok", then "result" or "kind"/"detail", then
 * "stats", "stderr" and "attempts" as far as the daemon sent them; printed
 * as ctl_print_json would print them, but for the receipt's milliseconds,
 * written to the microsecond they are ("200.472", not json_dumps's
 * "200.47200000000001").  Returns 0, or -1 on a value JSON cannot show or
 * no memory (err; out is as it was). */
#define CTL_NO_INDEX UINT64_MAX
int  ctl_outcome_write(struct fp_buf *out, uint64_t index,
                       const struct fp_client_outcome *o, char *err,
                       size_t errlen);
/* A "rejected" outcome line: {"index": index, "id": null, "ok": false,
 * "kind": "rejected", "detail": detail}.
 * Returns 0 or -1 (ENOMEM). */
int  ctl_outcome_write_rejected(struct fp_buf *out, uint64_t index,
                                const char *detail);
/* 1 if the outcome is the daemon's "rejected", detail "queue full". */
int  ctl_outcome_queue_full(const struct fp_client_outcome *o);
/* A progress message (one msgpack value) as {"id": 7, "progress": value}
 * on stderr (--progress).  A value JSON cannot show is reported instead,
 * and the command goes on. */
void ctl_print_progress(uint64_t id, const char *value, size_t len);
/* The same with the id as a JSON token (a Redis job's is a string). */
void ctl_print_progress_json(const char *id, const char *value, size_t len);
/* Print v as one line on f and flush.  Returns 0, or -1 (errno). */
int  ctl_print_json(FILE *f, const json_t *v);

/* A duration for people: "2d 03h 04m 05s", "4m 05s", "12.5s" ("-" if
 * negative or NaN). */
void ctl_format_duration(double s, char *buf, size_t n);

/* `map`: see ctl_map.c.  Returns the exit status. */
struct ctl_map_opts {
    int                keep_order;
    int                fail_fast;
    unsigned           window;
    struct ctl_jobopts job;
};
/* Connects to the daemon of `t` itself. */
int  ctl_map(const struct ctl_target *t, const struct ctl_map_opts *o);
/* forkpoolctl --redis: a producer of the Redis queue (ctl_redis.c). */
struct ctl_redis_target {
    const char *url;            /* --redis */
    const char *queue;          /* --redis-queue */
    double      retention;      /* seconds an idempotency key is kept */
    double      rpc_timeout;    /* --rpc-timeout; 0 = wait as long as it takes */
};
/* submit one packed job (idem_key: --idempotency-key, or NULL) and print
 * its outcome line; map: as ctl_map, through the queue.  Return the exit
 * status. */
int  ctl_redis_submit(const struct ctl_redis_target *t, const char *job,
                      size_t joblen, const struct ctl_jobopts *o,
                      const char *idem_key);
int  ctl_redis_map(const struct ctl_redis_target *t, const struct ctl_map_opts *mo);

/* `events`: see ctl_events.c (parses its own options).  Returns the exit
 * status. */
int  ctl_events(const struct ctl_target *t, int argc, char **argv);
/* `top`: see ctl_top.c (parses its own options).  Returns the exit status. */
int  ctl_top(const struct ctl_target *t, int argc, char **argv);
/* `limit`: see ctl_limit.c (`usage` is the --help text).  Returns the exit
 * status. */
int  ctl_limit(const struct ctl_target *t, const char *usage, int argc,
                char **argv);
/* The status table's rows of rate limits (status "limits"), if any. */
void ctl_print_limit_rows(const json_t *limits);

#endif /* FP_CTL_H */
