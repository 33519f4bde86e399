/*
 * control_int.h — internals shared by the control server's connection
 * handling (control.c) and its methods (control_methods.c).
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

struct client {
    LIST_ENTRY(client) link;
    struct fp_control *ctl;
    int                fd;          /* -1 once closed */
    ev_io              rio, wio;
    struct fp_buf      in, out;
    struct fp_scanner  scan;
    unsigned           pending;     /* submitted jobs without an outcome */
    unsigned long      serial;      /* for log lines */
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
    struct fp_limits   limits;
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
};

/* One submitted job's way back to its client. */
struct reply_to {
    struct client   *c;
    uint32_t         msgid;
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

/* control_methods.c: release the reply records kept for reuse. */
void ctl_free_replies(struct fp_control *ctl);

/* control_methods.c: handle one request frame.  Returns -1 if the
 * connection must close. */
int ctl_handle_request(struct client *c, const char *frame, size_t len);

#endif
