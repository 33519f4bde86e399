/*
 * control_int.h — internals shared by the control server's listening
 * socket (control.c), its connections (control_client.c: framing,
 * replies), its method table mechanism (control_dispatch.c), the methods
 * (control_methods.c) and the status and metrics bodies (control_report.c).
 */
#ifndef FP_CONTROL_INT_H
#define FP_CONTROL_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <ev.h>
#include <msgpack.h>

#include "codec/buf.h"
#include "codec/outq.h"
#include "control.h"
#include "codec/frame.h"

/* Stop reading a client while its unfinished jobs hold this many payload
 * bytes: one client cannot fill the daemon's memory through the queue
 * faster than the workers empty it. */
#define PENDING_HIGH    (16u << 20)

/* A client's input is two independent facts: whether its socket is still
 * read (input), and what the bytes at the head of its read buffer are
 * (framing).  A client may half-close in the middle of a refused frame;
 * each fact then runs its course on its own. */

/* Whether a client's socket is read. */
enum client_input {
    INPUT_OPEN,         /* reading, unless it is behind (below) */
    INPUT_EOF,          /* it half-closed: what it sent is answered, every
                           outcome it is owed is written, then it closes */
};

/* What the bytes at the head of a client's read buffer are. */
enum client_framing {
    FRAMING_REQUESTS,   /* requests: `scan` finds where each one ends */
    FRAMING_SKIPPING,   /* the rest of a request over the size limits,
                           answered already: dropped as it arrives, `skip`
                           finds where it ends; requests follow */
};

/* Whether a client keeps up with its replies (README "Reply memory"). */
enum client_flow {
    FLOW_OK,
    FLOW_BEHIND,        /* past its soft limit of unread replies (or holding
                           some while all clients together are past theirs):
                           none of its requests is read and none of its jobs
                           starts until it has read half of them */
};

struct client {
    LIST_ENTRY(client) link;
    struct fp_control *ctl;
    int                fd;          /* -1 once closed */
    enum client_input  input;
    enum client_flow   flow;
    ev_io              rio, wio;
    struct fp_buf      in;          /* its requests, read */
    struct fp_outq     out;         /* its replies; out.len: bytes of them
                                       not yet written */
    enum client_framing framing;
    struct fp_scanner  scan;        /* FRAMING_REQUESTS: the request at in's
                                       head */
    struct fp_skipper  skip;        /* FRAMING_SKIPPING: what is left of the
                                       refused one */
    int                stalled;     /* complete requests wait in `in` until
                                       it may run them again */
    ev_timer           turn;        /* its next turn, when it used up one
                                       (REQUESTS_PER_TURN) with requests
                                       left: the loop serves others first */
    fp_group          *group;       /* its jobs, held while it is behind */
    int                subscribed;  /* receives the event stream */
    LIST_ENTRY(client) sub_link;    /* on ctl->events.subs while it does */
    unsigned           pending;     /* submitted jobs without an outcome */
    size_t             pending_bytes;   /* their payload bytes */
    unsigned           busy;        /* > 0 while its requests run: the
                                       struct and its read buffer stay */
    unsigned long      serial;      /* for log lines */
};

/* How much reply memory clients may hold (fp_control_set_reply_limits). */
struct ctl_reply_limits {
    size_t soft;        /* one client: past it, it is behind */
    size_t hard;        /* one client: past it, it is disconnected */
    size_t total;       /* all clients: past it, each with replies unread is
                           behind until the total is back under 7/8 of it */
    int    hard_set;    /* hard was given (else it follows soft and the
                           largest result) */
};

struct ctl_method;

/* The event stream's subscribers (control_events.c). */
struct ctl_events {
    LIST_HEAD(, client) subs;
    unsigned           n;
    uint64_t           dropped;     /* subscribers dropped for not reading */
    struct fp_buf      batch;       /* this iteration's events, packed once
                                       for all */
    msgpack_packer     pk;          /* into batch */
    int                failed;      /* packing one ran out of memory */
    ev_timer           flush_timer; /* the batch goes out */
};

struct fp_control {
    struct ev_loop    *loop;
    fp_pool           *pool;
    struct fp_control_hooks hooks;
    const struct fp_logger *log;
    char               path[108];
    dev_t              dev;         /* to remove only our own socket file */
    ino_t              ino;
    int                lfd;
    int                owns_path;   /* we bound it: remove it at close */
    ev_io              accept_io;
    ev_timer           accept_pause;
    unsigned long      accept_failures; /* failed accepts since the last
                                           success (the first is logged) */
    struct fp_limits   limits;
    size_t             max_job_bytes;   /* --max-job-bytes: the limits, and
                                           status */
    const struct ctl_method *methods;   /* what requests may call */
    size_t             nmethods;
    LIST_HEAD(, client) clients;
    unsigned long      next_serial;
    unsigned           nclients;        /* connections open */
    unsigned           nbehind;         /* of those, behind */
    struct ctl_reply_limits reply;
    size_t             out_total;       /* replies unwritten, all clients */
    int                total_over;      /* out_total passed reply.total and
                                           has not yet fallen to 7/8 of it */
    unsigned           max_workers;     /* for error messages */
    int                shutting_down;
    struct fp_redis_source *redis;      /* fp_control_set_redis, or NULL */
    ev_timer           flush_timer;
    void             (*flushed)(void *arg);
    void              *flushed_arg;
    fp_job_buf        *batch_jobs;      /* scratch for submit_batch */
    struct reply_to   *free_replies;    /* reused: no malloc per submit */
    unsigned           nfree_replies;
    size_t             batch_cap;
    struct ctl_events  events;
};

/* One submit_batch request's way back to its client: each job's outcome
 * goes out as a notification; freed after the last one. */
struct batch_reply {
    struct client *c;
    uint32_t       msgid;
    uint64_t       first_id;
    size_t         left;        /* outcomes still to come */
    size_t         bytes_left;  /* payload bytes of those */
};

/* One submitted job's way back to its client. */
struct reply_to {
    struct client   *c;
    uint32_t         msgid;
    size_t           bytes;         /* the job's payload */
    struct reply_to *next_free;     /* on the control's free list */
};

/* ------------------------------------------------------------------------
 * Replies (control.c)
 *
 * A reply is packed straight into its client's write queue (codec/outq.h:
 * small replies share chunks, a big result gets a segment of its own and
 * is never copied again) and is kept whole or not at all: if memory runs
 * out halfway, every byte of it is taken back (a stream never carries
 * half a message), and the caller
 * answers with a small error instead -- or, if even that cannot be
 * queued, the client is disconnected and the log says so.  Nobody is left
 * waiting for an answer that will not come.
 * ------------------------------------------------------------------------ */

struct ctl_reply {
    struct client  *c;
    struct fp_outq_mark mark;   /* the end of c->out when it began */
    int             failed;     /* an append failed: it will be dropped */
    int             closed;     /* the client is gone: it goes nowhere */
    msgpack_packer  pk;
};

/* Begin a reply to c (any message); pack it through r->pk. */
void ctl_reply_begin(struct ctl_reply *r, struct client *c);
/* Begin a response [1, msgid, ...]; the caller packs error and result. */
void ctl_reply_begin_response(struct ctl_reply *r, struct client *c, uint32_t msgid);
/* Append raw msgpack bytes (a result passed through). */
void ctl_reply_raw(struct ctl_reply *r, const char *p, size_t n);
/* The same without a copy: p[0..n) is written from where it is, and must
 * stay unchanged until release(arg) is called -- exactly once, whatever
 * becomes of the reply (at once if it is not built, or when it is taken
 * back: the caller must not touch p after a failed ctl_reply_end). */
void ctl_reply_ref(struct ctl_reply *r, const char *p, size_t n,
                   fp_outq_release_fn *release, void *arg);
/* Queue the reply.  Returns 0 once it is queued (or the client is gone) --
 * the client may then have been closed and freed: do not touch it again;
 * or -1 if it could not be built: nothing of it is queued, the client is
 * as it was, and the caller answers otherwise. */
int  ctl_reply_end(struct ctl_reply *r);

/* control_client.c: a connection.  A new client on fd (0, or -1 if out of
 * memory: the caller closes fd); free one (closing it if still open). */
int  ctl_client_new(struct fp_control *ctl, int fd);
void ctl_client_free(struct client *c);
/* control.c: during a shutdown, report once every client's replies are
 * written. */
void ctl_check_flushed(struct fp_control *ctl);

void ctl_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v);
/* An error string as the response to msgid. */
void ctl_respond_error_str(struct client *c, uint32_t msgid, const char *msg);
/* A submit that was not accepted: error {"id": nil, "kind": "rejected", ...} */
void ctl_respond_rejected(struct client *c, uint32_t msgid, const char *detail);
/* Disconnect c, logging why ("out of memory for a reply"). */
void ctl_client_fail(struct client *c, const char *why);
/* One of c's jobs has its outcome (its payload was `bytes`).  Returns 1 if
 * c is closed (then it may have been freed: touch it no more), else 0. */
int  ctl_client_outcome(struct client *c, size_t bytes);

/* ------------------------------------------------------------------------
 * The method table (control_dispatch.c; the rows are in control_methods.c)
 *
 * One row per method: its name, the rule its params must follow, checked
 * before the handler runs, and the handler.  Adding a method is one row
 * plus its handler.
 * ------------------------------------------------------------------------ */

#define CTL_MAX_PARAMS  3           /* most params a handler reads */
#define CTL_ANY_COUNT   UINT32_MAX  /* max_params of a method that ignores them */

/* The shape a param must have. */
enum ctl_shape {
    CTL_ANY = 0,        /* any one value */
    CTL_UINT,           /* a non-negative integer */
    CTL_U32,            /* a non-negative integer up to UINT32_MAX */
    CTL_ARRAY,
    CTL_MAP,
    CTL_STR,
};

/* One param that passed its rule. */
struct ctl_param {
    const char      *raw;           /* its encoded bytes */
    size_t           len;
    struct fp_reader r;             /* a cursor over exactly those bytes */
};

/* A request's params (the first CTL_MAX_PARAMS of them). */
struct ctl_params {
    uint32_t         n;             /* how many the request carried */
    struct ctl_param v[CTL_MAX_PARAMS];
};

/* Answer the request msgid of client c (now, or later from a callback). */
typedef void ctl_method_fn(struct client *c, uint32_t msgid, struct ctl_params *p);

struct ctl_method {
    const char     *name;
    uint32_t        min_params, max_params;
    enum ctl_shape  shape[CTL_MAX_PARAMS];  /* of each param given */
    const char     *usage;      /* the error when the params break the rule */
    int             outcome_errors;     /* errors are "rejected" outcome maps
                                           (the submit methods), not strings */
    ctl_method_fn  *handler;
};

/* control_dispatch.c: answer a request whose frame broke the size limits
 * (`why`: fp_scan's "frame too large" or "too many objects"), from what its
 * first bytes show: a submit method's rejected outcome ("job too large"),
 * else an error string naming the limit. */
void ctl_refuse_oversized(struct client *c, uint32_t msgid, const char *method,
                          uint32_t method_len, const char *why);

/* control_report.c: the bodies of status and metrics, built from the
 * pool's figures (no pool needed: the tests build them from their own). */
struct ctl_status_input {
    const fp_stats       *stats;
    const fp_worker_info *workers;      /* every live worker */
    size_t                nworkers;
    const fp_limit_info  *limits;       /* every rate limit */
    size_t                nlimits;
    size_t                max_job_bytes;
    const struct fp_redis_source *redis;/* --redis, or NULL */
    struct {                            /* the control connections */
        unsigned connected;             /* open */
        unsigned behind;                /* of those, behind with replies */
        size_t   reply_bytes;           /* replies unwritten, all clients */
        unsigned subscribers;           /* of those, subscribed to events */
    } clients;
};
/* The daemon's own figures for the metrics (beside the pool's). */
struct ctl_daemon_figures {
    uint64_t log_lines_dropped;         /* the log's reader fell behind */
    unsigned subscribers;               /* to the event stream, now */
    uint64_t subscribers_dropped;       /* for not reading */
};
/* Pack the status result map. */
void ctl_pack_status(msgpack_packer *pk, const struct ctl_status_input *in);
/* Append the metrics text to out.  Returns 0, or -1 (ENOMEM). */
int  ctl_metrics_text(struct fp_buf *out, const fp_stats *st,
                      const fp_limit_info *limits, size_t nlimits);
/* Append the daemon's own metrics.  Returns 0, or -1 (ENOMEM). */
int  ctl_metrics_daemon_text(struct fp_buf *out, const struct ctl_daemon_figures *f);

/* control_events.c: the event stream.  Set up; c closes (it receives no
 * more events); the daemon shuts down (the pool's listener goes, as the
 * pool may be freed before the control); free.  The subscribe method. */
void ctl_events_init(struct fp_control *ctl);
void ctl_events_forget(struct client *c);
void ctl_events_shutdown(struct fp_control *ctl);
void ctl_events_free(struct fp_control *ctl);
ctl_method_fn ctl_method_subscribe;
/* control_client.c: bytes of replies queued to c and not yet written. */
size_t ctl_client_unread(const struct client *c);

/* The Redis source's counters as metrics text (nothing without one).
 * Returns 0, or -1 (ENOMEM). */
int  ctl_redis_metrics(struct fp_buf *out, const struct fp_redis_source *src);

/* control_progress.c: fp_job_opts.progress of a submit ("progress":
 * true; arg: its reply_to) and of a submit_batch (arg: its batch_reply):
 * each report as a "progress" notification to the job's client. */
void ctl_submit_progress_cb(uint64_t id, const char *value, size_t len, void *arg);
void ctl_batch_progress_cb(uint64_t id, const char *value, size_t len, void *arg);

/* control_methods.c: the methods forkpoold serves. */
extern const struct ctl_method ctl_methods[];
extern const size_t ctl_nmethods;

/* control_methods.c: release the reply records kept for reuse. */
void ctl_free_replies(struct fp_control *ctl);

/* control_dispatch.c: decode one request frame, check its params against
 * its row of c->ctl->methods and run the handler; a bad request, unknown
 * method or params that break the rule get an error response.  Returns -1
 * if the connection must close (no msgid could be read), else 0. */
int ctl_dispatch(struct client *c, const char *frame, size_t len);

#endif
