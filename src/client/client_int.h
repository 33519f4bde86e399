/*
 * client_int.h — libforkpoolclient's insides: one connection to the
 * daemon, its write queue, its read buffer, and the messages a blocking
 * call set aside for later.
 */
#ifndef FP_CLIENT_INT_H
#define FP_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "forkpool_client.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "codec/outq.h"

/* A message a blocking call read but did not answer: a copy of its frame,
 * handed out by fp_client_next before anything read later. */
struct parked {
    struct parked *next;
    size_t         len;
    char           frame[];
};

struct fp_client {
    int               fd;
    char             *path;
    struct fp_buf     in;           /* received, not yet parsed */
    struct fp_outq    out;          /* requests not yet written */
    struct fp_scanner scan;         /* over the frame at the head of `in` */
    size_t            last;         /* bytes of the frame last handed out */
    struct parked    *parked, **parked_tail;
    struct parked    *handed;       /* the parked frame last handed out */
    struct fp_buf     scratch;      /* params being packed */
    uint32_t          next_tag;
    int               write_errno;  /* a failed write, reported at EOF */
    int               eof;          /* the daemon closed the connection */
    int               awaiting;     /* inside fpc_await (its callbacks) */
    size_t            parked_bytes; /* of the frames set aside */
    /* The library's own tags of blocking calls that gave up (timed out,
     * failed): their late answers are dropped, not handed out.  A ring:
     * past ABANDONED of them, the oldest is forgotten. */
#define ABANDONED 64
    uint32_t          abandoned[ABANDONED];
    unsigned          nabandoned, abandoned_next;
    char              lost[200];    /* why the stream was given up, or "" */
    struct fp_limits  limits;       /* on messages from the daemon */
    int64_t           timeout_ms;   /* blocking calls; 0 = none */
    char              err[256];
};

/* Record what went wrong; returns rc. */
int  fpc_fail(struct fp_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC in milliseconds. */
int64_t fpc_now_ms(void);
/* The tag of a new request (see FP_CLIENT_TAG_MAX): the caller's *tag if
 * given, else a fresh one.  Returns 0 with *out set, or FP_CLIENT_EINVAL.
 * The caller stores *out in *tag once the request is queued. */
int  fpc_tag(struct fp_client *c, uint32_t *tag, uint32_t *out);
/* Queue [0, tag, method, params] with params in pieces that together make
 * one packed array; a piece with `release` is queued by reference when big
 * (struct fp_client_job's rule).  Whole or not at all.  Returns 0 or
 * FP_CLIENT_ENOMEM. */
int  fpc_queue(struct fp_client *c, uint32_t tag, const char *method,
               const struct fp_client_job *parts, size_t nparts);
/* Block until the response to `tag` arrives (other messages are parked;
 * notifications for `tag` go to opts' callbacks), at most the client's
 * timeout.  Returns 0 with *m set, or FP_CLIENT_E*. */
int  fpc_await(struct fp_client *c, uint32_t tag,
               const struct fp_client_jobopts *opts, struct fp_client_msg *m);
/* Pack a job options map (nothing when no option is set); for a batch,
 * notify_id is left out.  Returns the number of entries, or -1. */
int  fpc_count_opts(const struct fp_client_jobopts *o, int batch);
int  fpc_pack_opts(msgpack_packer *pk, const struct fp_client_jobopts *o,
                   int batch);

#endif /* FP_CLIENT_INT_H */
