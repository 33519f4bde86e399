/*
 * forkpool_client.h — talk to a running forkpoold from C.
 *
 * libforkpoolclient speaks the daemon's control protocol (MessagePack-RPC
 * over its UNIX socket, forkpool-protocol(7)): submit jobs one at a time or
 * pipelined, in batches, and run the control methods.  It needs neither
 * libev nor libforkpool; build with `pkg-config --cflags --libs
 * forkpool-client`.  The manual is forkpool_client(3).
 *
 * Two ways to use one connection:
 *
 *   - blocking calls (fp_client_submit, fp_client_status, ...): each waits
 *     for its answer, at most the client's timeout;
 *   - pipelined: queue many requests (fp_client_submit_async, _batch), then
 *     take what comes back with fp_client_wait (blocking, with a timeout),
 *     or from your own event loop with fp_client_fd, fp_client_flush,
 *     fp_client_read and fp_client_next, which never block.
 *
 * They mix: a blocking call that meets messages for other requests keeps
 * them, in order, for the next fp_client_next/fp_client_wait (as many
 * bytes of them as the message bound, fp_client_set_max_bytes; past that
 * the call fails with FP_CLIENT_ENOMEM until they are taken).  The late
 * answer of a blocking call that failed (timed out, say) is dropped.
 *
 * Errors are return codes (FP_CLIENT_E*, all negative), with a message from
 * fp_client_error(); the library never exits and never raises a signal
 * (a daemon gone away is an error, not a SIGPIPE).  One client is one
 * connection and is not thread-safe; use one per thread.
 */
#ifndef FORKPOOL_CLIENT_H
#define FORKPOOL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FP_CLIENT_API 1

typedef struct fp_client fp_client;

/* Return codes.  0 is success; a job that ended but not `ok` is
 * FP_CLIENT_EJOB, with its outcome filled in. */
enum {
    FP_CLIENT_OK        =  0,
    FP_CLIENT_EJOB      = -1,   /* the job ended, not ok: see the outcome */
    FP_CLIENT_ECONNECT  = -2,   /* cannot reach the daemon, or it went away */
    FP_CLIENT_ETIMEDOUT = -3,   /* no answer within the timeout */
    FP_CLIENT_EREFUSED  = -4,   /* the daemon answered with an error (an
                                   unknown method, bad params, ...) */
    FP_CLIENT_EPROTO    = -5,   /* the daemon's answer is malformed */
    FP_CLIENT_ENOMEM    = -6,   /* out of memory */
    FP_CLIENT_EINVAL    = -7    /* a bad argument */
};

/* ---- connection --------------------------------------------------------- */

/* Connect to the daemon at `path`, or, when path is NULL, at the default
 * path: $FORKPOOL_SOCKET if set, else $XDG_RUNTIME_DIR/forkpool.sock, else
 * /tmp/forkpool-<uid>.sock.  `timeout` (seconds; 0 = none) bounds the
 * connect and becomes the client's timeout for every blocking call.
 * *out is set whenever memory allows, even on failure, so that
 * fp_client_error can say why; close it either way (every other call on a
 * client that did not connect returns FP_CLIENT_ECONNECT).  Returns 0 or
 * FP_CLIENT_ECONNECT, _ETIMEDOUT, _ENOMEM (then *out is NULL), _EINVAL. */
int  fp_client_connect(fp_client **out, const char *path, double timeout);
/* Close the connection and free everything (NULL is fine).  Requests still
 * queued are dropped; jobs already accepted still run to their end. */
void fp_client_close(fp_client *c);
/* What the last failing call went wrong with ("out of memory" for NULL). */
const char *fp_client_error(const fp_client *c);
/* The socket path this client connected (or tried) to ("" for NULL). */
const char *fp_client_path(const fp_client *c);
/* Set the timeout of the blocking calls (seconds; 0 = wait as long as it
 * takes).  fp_client_wait takes its own. */
void fp_client_set_timeout(fp_client *c, double timeout);
/* The largest message accepted from the daemon (default
 * FP_CLIENT_DEFAULT_MAX_BYTES: a result as large as the daemon's default
 * --max-job-bytes, plus room for the envelope).  Raise it to match a
 * daemon that takes larger jobs.  A larger message, or bytes that are not
 * MessagePack, end the connection: that call and every later one return
 * FP_CLIENT_EPROTO (messages read before it are still handed out). */
#define FP_CLIENT_DEFAULT_MAX_BYTES (((size_t)64 << 20) + ((size_t)64 << 10))
void fp_client_set_max_bytes(fp_client *c, size_t max);
/* The default socket path (see fp_client_connect) into buf.  Returns 0,
 * or FP_CLIENT_EINVAL if it does not fit. */
int  fp_client_default_path(char *buf, size_t len);

/* ---- jobs --------------------------------------------------------------- */

/* A job's options (SPEC §3); zero-initialise, then set what you need. */
struct fp_client_jobopts {
    double      timeout;        /* seconds; used if has_timeout (0 = none) */
    int         has_timeout;    /* else the daemon's --job-timeout */
    unsigned    retries;        /* more attempts after a crash */
    const char *key;            /* rate-limit class, or NULL */
    double      expires;        /* seconds to start by; used if has_expires */
    int         has_expires;
    int         progress;       /* receive the job's progress messages */
    int         notify_id;      /* receive FP_CLIENT_MSG_ACCEPTED with the
                                   job's id as soon as it is queued (single
                                   submits; a batch's response has them) */
    /* Blocking fp_client_submit only: called for each progress message
     * (value: one msgpack value) and each accepted id, while it waits. */
    void      (*on_progress)(void *arg, uint64_t id, const char *value,
                             size_t len);
    void      (*on_accepted)(void *arg, uint64_t id);
    void       *arg;
};

/* One job's bytes: one msgpack value.  With `release` set, a job of
 * FP_CLIENT_BY_REFERENCE bytes or more is sent from its own memory instead
 * of being copied: it must stay unchanged until release(arg) is called,
 * which happens exactly once (at once when the job is copied or could not
 * be queued, else once it is written or the client is closed). */
#define FP_CLIENT_BY_REFERENCE (16u << 10)
struct fp_client_job {
    const void *data;
    size_t      len;
    void      (*release)(void *arg);
    void       *arg;
};

/* A job's final outcome, decoded.  The pointers lie in the client's buffer
 * and stay valid until the next call on the client. */
struct fp_client_outcome {
    uint32_t    tag;        /* the request's tag */
    uint64_t    index;      /* a batch job's index in its batch, else 0 */
    int         has_id;     /* 0 when no id was given (rejected) */
    uint64_t    id;
    int         ok;
    const char *kind;       /* "ok", "error", "crashed", "timeout",
                               "cancelled", "rejected" (a static string; an
                               unknown kind reads "unknown") */
    /* msgpack values: the result when ok, the detail otherwise */
    const char *value;
    size_t      value_len;
    const char *stats;      /* the receipt map (SPEC §3), or NULL */
    size_t      stats_len;
    const char *stderr_tail;    /* crashed: msgpack str, or NULL */
    size_t      stderr_len;
    const char *attempts;   /* msgpack uint, or NULL */
    size_t      attempts_len;
};

/* Submit one job and wait for its outcome (at most the client's timeout).
 * `job` is one msgpack value of `len` bytes; opts may be NULL.  Returns 0
 * (ok), FP_CLIENT_EJOB (ended otherwise, `rejected` included), or another
 * FP_CLIENT_E* with no outcome. */
int  fp_client_submit(fp_client *c, const void *job, size_t len,
                      const struct fp_client_jobopts *opts,
                      struct fp_client_outcome *out);

/* Tags name requests, so that their answers can be told apart.  Where a
 * call takes `uint32_t *tag`: NULL, or *tag == 0, lets the library pick a
 * fresh tag (above FP_CLIENT_TAG_MAX) and store it in *tag; a caller that
 * names its own requests sets *tag to a number from 1 to FP_CLIENT_TAG_MAX,
 * unique among its requests still in flight. */
#define FP_CLIENT_TAG_MAX 0x7fffffffu

/* Queue one job without waiting.  Nothing is written until fp_client_flush
 * or a wait.  Returns 0 or FP_CLIENT_ENOMEM/_EINVAL (nothing queued). */
int  fp_client_submit_async(fp_client *c, const void *job, size_t len,
                            const struct fp_client_jobopts *opts,
                            uint32_t *tag);
/* The same, for a job given as fp_client_job (by reference if big). */
int  fp_client_submit_job(fp_client *c, const struct fp_client_job *job,
                          const struct fp_client_jobopts *opts, uint32_t *tag);
/* Queue `n` jobs as one request: all are accepted or none.  Its response
 * (FP_CLIENT_MSG_RESPONSE) is {"first_id": id, "count": n} (the jobs have
 * ids first_id, first_id+1, ...), or an error; then one
 * FP_CLIENT_MSG_OUTCOME per job, in completion order, with its index.
 * Returns 0 or FP_CLIENT_ENOMEM/_EINVAL (nothing queued; each release
 * still called once). */
int  fp_client_submit_batch(fp_client *c, const struct fp_client_job *jobs,
                            size_t n, const struct fp_client_jobopts *opts,
                            uint32_t *tag);

/* ---- what comes back ---------------------------------------------------- */

enum fp_client_msg_type {
    FP_CLIENT_MSG_RESPONSE = 1, /* the answer to a request */
    FP_CLIENT_MSG_OUTCOME,      /* one job of a batch ended */
    FP_CLIENT_MSG_ACCEPTED,     /* a job was queued (notify_id): id */
    FP_CLIENT_MSG_PROGRESS,     /* a job's progress: id, result = value */
    FP_CLIENT_MSG_EVENT         /* after subscribe: result = event map */
};

/* One message from the daemon, raw.  error/result are msgpack values (error
 * NULL when nil); they lie in the client's buffer and stay valid until the
 * next call on the client. */
struct fp_client_msg {
    enum fp_client_msg_type type;
    uint32_t    tag;        /* the request it answers (0 for events) */
    uint64_t    id;         /* ACCEPTED, PROGRESS */
    uint64_t    index;      /* OUTCOME */
    const char *error;
    size_t      error_len;
    const char *result;
    size_t      result_len;
};

/* Wait for the next message, writing queued requests meanwhile; at most
 * `timeout` seconds (0 = do not wait, < 0 = as long as it takes).  Returns
 * 1 with *m set, 0 when none came in time, or FP_CLIENT_E*. */
int  fp_client_wait(fp_client *c, struct fp_client_msg *m, double timeout);
/* Decode the outcome a submit response or a batch's OUTCOME carries (its
 * pointers stay valid as long as the message's).  Returns 0 (ok),
 * FP_CLIENT_EJOB (ended otherwise), FP_CLIENT_EREFUSED (a plain error: the
 * request itself was refused; fp_client_error says why) or FP_CLIENT_EPROTO
 * (not a job's outcome: a batch's own response, say).  out->tag and
 * out->index are set in every case. */
int  fp_client_outcome(fp_client *c, const struct fp_client_msg *m,
                       struct fp_client_outcome *out);

/* For event loops: the nonblocking socket, whether requests wait to be
 * written (watch for writability only then), write what the socket takes,
 * read what it has, and take the next complete message from what was read
 * (1 and *m set, 0 if none is complete yet).  fp_client_read returns 0 at
 * EOF (FP_CLIENT_ECONNECT in fp_client_error); call fp_client_next until it
 * returns 0 after each read.  None of these blocks. */
int  fp_client_fd(const fp_client *c);
size_t fp_client_want_write(const fp_client *c);  /* bytes not yet written */
int  fp_client_flush(fp_client *c);
int  fp_client_read(fp_client *c);
int  fp_client_next(fp_client *c, struct fp_client_msg *m);

/* ---- control methods (blocking, bounded by the client's timeout) -------- */

/* No blocking call may be made from inside another's on_progress or
 * on_accepted callback on the same client: it returns FP_CLIENT_EINVAL. */

/* Queue a request for any method without waiting (params: one packed
 * msgpack array); its FP_CLIENT_MSG_RESPONSE carries the tag. */
int  fp_client_request(fp_client *c, const char *method, const void *params,
                       size_t plen, uint32_t *tag);

/* Any method: params is one packed msgpack array.  Returns 0 with *resp
 * the response (its error may be set: the caller judges it), or
 * FP_CLIENT_E*. */
int  fp_client_call(fp_client *c, const char *method, const void *params,
                    size_t plen, struct fp_client_msg *resp);
/* status: *map (msgpack map, valid until the next call) */
int  fp_client_status(fp_client *c, const char **map, size_t *len);
/* scale to n workers; *workers (may be NULL) as the daemon answered */
int  fp_client_scale(fp_client *c, unsigned n, unsigned *workers);
/* cancel job id; *found (may be NULL) 1 if it was queued or running */
int  fp_client_cancel(fp_client *c, uint64_t id, int *found);
int  fp_client_drain(fp_client *c);
int  fp_client_reload(fp_client *c);
/* metrics: Prometheus text (not NUL-terminated, valid until next call) */
int  fp_client_metrics(fp_client *c, const char **text, size_t *len);
/* set the bucket of key ("" = pool-wide): rate job starts per second, in
 * bursts of at most `burst` (0: the daemon's default, one second's worth) */
int  fp_client_limit(fp_client *c, const char *key, double rate, double burst);
int  fp_client_limit_remove(fp_client *c, const char *key);
/* From now on this connection receives every event as FP_CLIENT_MSG_EVENT
 * (fp_client_wait / fp_client_next). */
int  fp_client_subscribe(fp_client *c);

#ifdef __cplusplus
}
#endif
#endif /* FORKPOOL_CLIENT_H */
