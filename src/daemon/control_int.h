/*
 * control_int.h — internals shared by the control server's connection
 * handling (control.c: clients, framing, replies), its method table
 * mechanism (control_dispatch.c) and the methods (control_methods.c).
 */
#ifndef FP_CONTROL_INT_H
#define FP_CONTROL_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <ev.h>
#include <msgpack.h>

#include "codec/buf.h"
#include "control.h"
#include "codec/frame.h"

#define OUT_HIGH        (8u << 20)  /* stop reading a client that does not read */
/* Stop reading a client while its unfinished jobs hold this many payload
 * bytes: one client cannot fill the daemon's memory through the queue
 * faster than the workers empty it. */
#define PENDING_HIGH    (16u << 20)

/* What a client's incoming bytes are: frames, or the rest of a frame over
 * the size limits, dropped as it arrives (its request was answered). */
enum client_input {
    INPUT_FRAMES = 0,
    INPUT_SKIPPING,
};

struct client {
    LIST_ENTRY(client) link;
    struct fp_control *ctl;
    int                fd;          /* -1 once closed */
    ev_io              rio, wio;
    struct fp_buf      in, out;
    enum client_input  input;
    struct fp_scanner  scan;        /* INPUT_FRAMES: the frame at in's head */
    struct fp_skipper  skip;        /* INPUT_SKIPPING: what is left of it */
    unsigned           pending;     /* submitted jobs without an outcome */
    size_t             pending_bytes;   /* their payload bytes */
    unsigned long      serial;      /* for log lines */
};

struct ctl_method;

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
    struct fp_limits   limits;
    size_t             max_job_bytes;   /* --max-job-bytes, for status */
    const struct ctl_method *methods;   /* what requests may call */
    size_t             nmethods;
    LIST_HEAD(, client) clients;
    unsigned long      next_serial;
    unsigned           max_workers;     /* for error messages */
    int                shutting_down;
    ev_timer           flush_timer;
    void             (*flushed)(void *arg);
    void              *flushed_arg;
    fp_job_buf        *batch_jobs;      /* scratch for submit_batch */
    struct reply_to   *free_replies;    /* reused: no malloc per submit */
    unsigned           nfree_replies;
    size_t             batch_cap;
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


/* control.c: responses and clients. */
void ctl_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v);
/* Start a response [1, msgid, ...]; the caller packs error and result. */
void ctl_begin_response(struct client *c, msgpack_packer *pk, uint32_t msgid);
/* Arm the writer for what is queued (and stop reading past OUT_HIGH). */
void ctl_flush_soon(struct client *c);
void ctl_respond_error_str(struct client *c, uint32_t msgid, const char *msg);
/* A submit that was not accepted: error {"id": nil, "kind": "rejected", ...} */
void ctl_respond_rejected(struct client *c, uint32_t msgid, const char *detail);
/* Free a closed client once nothing more is owed to it. */
void ctl_client_free(struct client *c);

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
};
/* Pack the status result map. */
void ctl_pack_status(msgpack_packer *pk, const struct ctl_status_input *in);
/* Append the metrics text to out.  Returns 0, or -1 (ENOMEM). */
int  ctl_metrics_text(struct fp_buf *out, const fp_stats *st,
                      const fp_limit_info *limits, size_t nlimits);

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
