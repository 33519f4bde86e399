/*
 * ctl.h — forkpoolctl internals: the MessagePack-RPC client connection
 * (ctl_rpc.c), outcome lines (ctl_rpc.c) and the map command (ctl_map.c).
 */
#ifndef FP_CTL_H
#define FP_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "forkpool.h"
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

/* Responses are bounded like any untrusted frame: a result of the default
 * largest job size plus room for the envelope, nested two levels inside it. */
#define CTL_MAX_FRAME   (FP_DEFAULT_MAX_JOB_BYTES + ((size_t)64 << 10))
#define CTL_MAX_OBJECTS ((size_t)1 << 22)
#define CTL_MAX_DEPTH   (FP_MAX_DEPTH + 2)

/* One client connection (nonblocking socket). */
struct ctl_conn {
    int                fd;
    const char        *path;        /* for messages */
    struct fp_buf      in;          /* received, not yet parsed */
    struct fp_outq     out;         /* requests not yet written */
    struct fp_scanner  scan;        /* over the frame at the head of `in` */
    size_t             last;        /* bytes of the frame last returned */
    int                write_errno; /* a failed write, reported at EOF */
    int                unreachable; /* err is an I/O problem (exit 3) */
    int                timed_out;   /* no answer within timeout_ms (exit 3) */
    int64_t            timeout_ms;  /* --rpc-timeout; 0 = none */
    int                show_ids;    /* ctl_call prints accepted ids on stderr */
    int                show_progress; /* ctl_call prints progress on stderr */
    char               err[256];    /* what went wrong */
};

/* One response; the raw msgpack pointers lie inside conn->in and stay valid
 * only until the next ctl_* call on that connection. */
struct ctl_response {
    uint32_t    msgid;
    int         accepted;   /* an ["accepted", [msgid, id]] notification:
                               only msgid and id are set */
    int         outcome;    /* an ["outcome", [msgid, index, error, result]]
                               notification (submit_batch): msgid, index,
                               error and result are set */
    int         progress;   /* a ["progress", [msgid, id, value]]
                               notification: msgid, id and result (the
                               value) are set */
    int         event;      /* an ["event", [map]] notification (after
                               subscribe): only result (the map) is set */
    uint64_t    index;
    uint64_t    id;
    const char *error;      /* NULL when the error is nil */
    size_t      error_len;
    const char *result;
    size_t      result_len;
};

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

/* Connect to the daemon's socket (within the target's timeout, should its
 * backlog be full).  Returns 0, or -1 with c->err set. */
int  ctl_connect(struct ctl_conn *c, const struct ctl_target *t);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t ctl_now_ms(void);
/* How long poll() may wait for an answer asked for at `since_ms`: -1
 * without a timeout, else what is left of it (0 once it has passed). */
int  ctl_wait_ms(const struct ctl_conn *c, int64_t since_ms);
/* Record that the daemon did not answer within c->timeout_ms.  Returns -1. */
int  ctl_timeout(struct ctl_conn *c);
void ctl_close(struct ctl_conn *c);
/* Queue [0, msgid, method, params] where params is one packed array.
 * Returns 0, or -1 (ENOMEM) with c->err set. */
int  ctl_queue(struct ctl_conn *c, uint32_t msgid, const char *method,
               const char *params, size_t plen);
/* One piece of a request's params.  A piece with `release` set and of
 * FP_OUTQ_BIG bytes or more is queued by reference, not copied: its bytes
 * must stay unchanged until release(arg) is called. */
struct ctl_part {
    const void         *p;
    size_t              len;
    fp_outq_release_fn *release;    /* NULL: copy it */
    void               *arg;
};
/* ctl_queue with params in pieces: parts[0..nparts) make one packed array
 * together.  The request is queued whole or not at all; either way each
 * piece given with `release` is released exactly once (at once if the
 * request could not be queued, or was not queued by reference).  Returns 0,
 * or -1 (ENOMEM) with c->err set. */
int  ctl_queue_parts(struct ctl_conn *c, uint32_t msgid, const char *method,
                     const struct ctl_part *parts, int nparts);
/* Write what the socket takes now.  Returns 0, or -1 with c->err set. */
int  ctl_write_some(struct ctl_conn *c);
/* Read what the socket has now.  Returns 1 (maybe nothing new), or 0 at
 * EOF / -1 on error, both with c->err set and c->unreachable. */
int  ctl_read_some(struct ctl_conn *c);
/* Take the next complete response from what was read: 1 and *r set, 0 if
 * more bytes are needed, -1 on a malformed frame with c->err set. */
int  ctl_next_response(struct ctl_conn *c, struct ctl_response *r);
/* Send one request and block until its response arrives (other responses
 * are dropped), at most c->timeout_ms if set.  Returns 0, or -1 with c->err
 * set. */
int  ctl_call(struct ctl_conn *c, const char *method, const char *params,
              size_t plen, struct ctl_response *r);
/* Report c->err on stderr for `method`; returns the exit status to use
 * (CTL_EXIT_NODAEMON when unreachable or timed out). */
int  ctl_fail(const struct ctl_conn *c, const char *method);

/* Pack submit params, [job] or [job, {opts}], into out (appended).
 * Returns 0 or -1 (ENOMEM). */
int  ctl_pack_params(struct fp_buf *out, const char *job, size_t joblen,
                     const struct ctl_jobopts *o);

/* Pack submit_batch params, [[job, ...]] or [[job, ...], {opts}], into out
 * (appended); `jobs` holds `count` packed jobs back to back.  Returns 0 or
 * -1 (ENOMEM). */
int  ctl_pack_batch_params(struct fp_buf *out, const char *jobs, size_t len,
                           uint32_t count, const struct ctl_jobopts *o);

/* The (non-nil) error of a response as text: a str as itself, anything
 * else as its JSON. */
void ctl_error_text(const struct ctl_response *r, char *err, size_t errlen);
/* Add {"id": null, "ok": false, "kind": "rejected", "detail": detail}.
 * Returns 0 or -1 (ENOMEM). */
int  ctl_outcome_rejected(json_t *o, const char *detail);
/* A submit response's outcome as one JSON line's text appended to out
 * (no tree): {"index": index (none if index is CTL_NO_INDEX: submit's
 * line), "id", "ok", then "result" or "kind"/"detail", then "stats",
 * "stderr" and "attempts" as far as the daemon sent them; printed as
 * ctl_print_json would print them, but for the receipt's milliseconds,
 * written to the microsecond they are ("200.472", not json_dumps's
 * "200.47200000000001").  Returns 0 with *ok set; 1 when the error is a
 * plain string (a protocol-level refusal: message in err, nothing added);
 * -1 on a malformed response (err; out is as it was). */
#define CTL_NO_INDEX UINT64_MAX
int  ctl_outcome_write(struct fp_buf *out, uint64_t index,
                       const struct ctl_response *r, int *ok, char *err,
                       size_t errlen);
/* ctl_outcome_rejected as text: {"index": index, "id": null, ...}.
 * Returns 0 or -1 (ENOMEM). */
int  ctl_outcome_write_rejected(struct fp_buf *out, uint64_t index,
                                const char *detail);
/* 1 if the response is the daemon's {"kind": "rejected", "detail": "queue
 * full"} error map. */
int  ctl_outcome_queue_full(const struct ctl_response *r);
/* A "progress" notification as {"id": 7, "progress": value} on stderr
 * (--progress).  A value JSON cannot show is reported instead, and the
 * command goes on. */
void ctl_print_progress(const struct ctl_response *r);
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
int  ctl_map(struct ctl_conn *c, const struct ctl_map_opts *o);
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
