/*
 * wire.h — decode the messages of the two protocols from one complete frame.
 *
 * Pure functions over bytes that fp_scan() accepted: no sockets, no libev,
 * no allocation.  The master's worker I/O (workers.c) and the control server
 * (control.c) act on what these return; the fuzzers drive them directly.
 */
#ifndef FP_WIRE_H
#define FP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "forkpool.h"
#include "frame.h"

/* Most retries a client may ask for. */
#define FP_MAX_RETRIES 100
/* Longest rate-limit key a client may name, in bytes. */
#define FP_MAX_KEY_BYTES 256

/* A message from a worker (SPEC §6). */
enum fp_worker_msg_type { FP_WMSG_READY, FP_WMSG_OK, FP_WMSG_ERROR, FP_WMSG_RETIRE,
                          FP_WMSG_PROGRESS };

struct fp_worker_msg {
    enum fp_worker_msg_type type;
    uint64_t    id;         /* ok/error/progress: the job's id */
    const char *value;      /* ok/error/progress: the result, detail or
                               progress value, raw msgpack */
    size_t      value_len;
    const char *cost;       /* ok/error: the fourth element (raw msgpack)
                               of fp_wire_worker_msg_costed, or NULL */
    size_t      cost_len;
};

/* What a job cost, as forkpool's own module workers report it: the fourth
 * element of their results (an internal extension: the master takes it
 * only from workers that run forkpool's job loop; SPEC §6 results have
 * three elements).  Either [run_us, cpu_us, maxrss_kb, total_cpu_us,
 * rss_kb], a job measured on its own (meter.h), or just run_us, a short
 * one that took no sample: its CPU is its run time, its peak the rss_kb of
 * the last full form (one small integer, for the many trivial jobs). */
struct fp_job_cost {
    int      measured;      /* the full form */
    uint64_t run_us;        /* its run in the worker */
    uint64_t cpu_us;        /* its CPU, waited-for children included */
    uint64_t maxrss_kb;     /* the worker's peak resident size during it */
    uint64_t total_cpu_us;  /* the worker's CPU so far (at its last
                               sample: meter.h) */
    uint64_t rss_kb;        /* its resident size then */
};

/* Decode ["ready", {...}], ["ok", id, v], ["error", id, v],
 * ["progress", id, v] or ["retire", {...}] (replace me once my window is
 * done).  Returns 0, or -1 with *why set to a static message. */
int fp_wire_worker_msg(const char *frame, size_t len, struct fp_worker_msg *m,
                       const char **why);

/* The same, from a worker that runs forkpool's own job loop: a result may
 * also be ["ok", id, v, cost] or ["error", id, v, cost] (m->cost). */
int fp_wire_worker_msg_costed(const char *frame, size_t len,
                              struct fp_worker_msg *m, const char **why);

/* The common case of the above, in one pass over bytes fp_scan has not
 * seen: a complete ["ok", id, v, run_us] at the start of buf[0..len), with
 * v a scalar (not a container or an ext) and every limit of `lim` kept.
 * Returns the frame's length with *m set exactly as fp_scan and
 * fp_wire_worker_msg_costed would have set it; 0 for anything else
 * (another message, a measured cost, a container, an incomplete or
 * oversized frame, invalid msgpack), which then takes the general path.
 * A stream of trivial jobs spends a fifth of the master's time parsing
 * results otherwise: every element decoded three times over. */
size_t fp_wire_worker_ok_quick(const char *buf, size_t len,
                               const struct fp_limits *lim,
                               struct fp_worker_msg *m);

/* Decode a result's fourth element (m->cost) into *c (only run_us and
 * measured for the short form).  Returns 0, or -1 if it is neither an
 * unsigned integer nor an array of five. */
int fp_wire_job_cost(const char *p, size_t len, struct fp_job_cost *c);

/* A MessagePack-RPC request [0, msgid, method, params] (SPEC §7). */
struct fp_request {
    uint32_t         msgid;
    const char      *method;    /* not NUL-terminated */
    uint32_t         method_len;
    struct fp_reader params;    /* positioned at the first param */
    uint32_t         nparams;
};

/* Decode a request.  Returns 0 when it is well formed; 1 when its msgid is
 * known but the rest is wrong (answer *why to that msgid); -1 when no msgid
 * can be read (close the connection). */
int fp_wire_request(const char *frame, size_t len, struct fp_request *rq,
                    const char **why);

/* The msgid of a request from its first bytes (a frame that may be
 * incomplete or broken further on).  Returns 0, or -1 if none is there. */
int fp_wire_request_msgid(const char *buf, size_t len, uint32_t *msgid);

/* The msgid and, when its bytes are there, the method of a request from
 * its first bytes (as fp_wire_request_msgid); *method is NULL when it
 * cannot be read.  Returns 0, or -1 if no msgid is there. */
int fp_wire_request_head(const char *buf, size_t len, uint32_t *msgid,
                         const char **method, uint32_t *method_len);

/* 1 if the request's method is `name`. */
int fp_wire_method_is(const struct fp_request *rq, const char *name);

/* Read a rate-limit key (a string of at most FP_MAX_KEY_BYTES, no NUL)
 * into `key`, NUL-terminated (room for FP_MAX_KEY_BYTES + 1).  Returns 0;
 * FP_KEY_NOT_SHORT_STRING if the value is not a string of at most
 * FP_MAX_KEY_BYTES; FP_KEY_HAS_NUL if it holds a NUL byte (a key is a C
 * string in the library). */
#define FP_KEY_NOT_SHORT_STRING (-1)
#define FP_KEY_HAS_NUL          (-2)
int fp_wire_read_key(struct fp_reader *r, char *key);

/* A rate limit's parameters, one rule for the library, the limit method,
 * forkpoolctl and --rate-limit (SPEC 5.3): a rate is finite, 0 to
 * FP_LIMIT_MAX; a burst finite, 1 to FP_LIMIT_MAX.  1 if valid. */
int fp_limit_rate_valid(double rate);
int fp_limit_burst_valid(double burst);

/* What a submit asks of the daemon beyond the job's own options. */
struct fp_wire_submit_flags {
    int notify;     /* "notify": an "accepted" notification with the id */
    int progress;   /* "progress": the job's progress as notifications */
};

/* Read submit's optional options map {"timeout", "retries", "key",
 * "expires", "notify", "progress"} into *opts and *flags; a key is copied,
 * NUL-terminated, into `key` (room for FP_MAX_KEY_BYTES + 1) and opts->key
 * points to it.  Returns NULL, or a static message saying what is wrong. */
const char *fp_wire_job_opts(struct fp_reader *r, fp_job_opts *opts,
                             struct fp_wire_submit_flags *flags, char *key);

#endif
