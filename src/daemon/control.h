/*
 * control.h — forkpoold's control socket: MessagePack-RPC over a UNIX
 * stream socket (SPEC §7).  Any number of clients, each pipelining requests;
 * responses go out as they are ready, in any order.
 */
#ifndef FP_CONTROL_H
#define FP_CONTROL_H

#include <ev.h>
#include "forkpool.h"
#include "engine/log.h"

struct fp_control;

/* Reply memory (README "Reply memory"): the defaults of
 * fp_control_set_reply_limits. */
#define FP_REPLY_SOFT_DEFAULT   ((size_t)8 << 20)       /* per client */
#define FP_REPLY_TOTAL_DEFAULT  ((size_t)256 << 20)     /* all clients */
/* Per client, hard: the soft limit plus this many of the largest result. */
#define FP_REPLY_HARD_RESULTS   4

struct fp_control_hooks {
    void (*drain)(void *arg);   /* the "drain" method: start the daemon's drain */
    /* For the metrics: log lines dropped so far (NULL: none are). */
    uint64_t (*log_lines_dropped)(void *arg);
    void *arg;
};

/* Bind `path` (mode 0600; a stale socket is replaced, a live one is never
 * taken over) and start accepting.  Returns NULL with a message in err. */
struct fp_control *fp_control_open(struct ev_loop *loop, fp_pool *pool,
                                   const char *path,
                                   const struct fp_control_hooks *hooks,
                                   const struct fp_logger *log,
                                   char *err, size_t errlen);

/* Serve on a listening socket handed over by the service manager (socket
 * activation); its file is left alone at close.  Returns NULL with a
 * message in err. */
struct fp_control *fp_control_adopt(struct ev_loop *loop, fp_pool *pool, int lfd,
                                    const struct fp_control_hooks *hooks,
                                    const struct fp_logger *log,
                                    char *err, size_t errlen);

/* The socket's path (or "(socket activation)" if it has none). */
const char *fp_control_path(const struct fp_control *c);

/* Size request frames after the pool's job limits (as fp_config's: 0 =
 * FP_DEFAULT_MAX_JOB_BYTES, FP_DEFAULT_MAX_JOB_OBJECTS, which is also what
 * a server starts with); max_workers is quoted when scale is refused. */
void fp_control_set_job_limits(struct fp_control *c, size_t max_job_bytes,
                               size_t max_job_objects, unsigned max_workers);

/* Bound the replies clients leave unread (0: the default of each).  Past
 * `soft` unread bytes a client is behind: none of its requests is read
 * and none of its jobs starts until it has read half of them; past `hard`
 * it is disconnected (the log says so) and its jobs that have not started
 * are cancelled.  Past `total` unread bytes over all clients, every client
 * with replies unread is behind.  The default hard limit is soft plus
 * FP_REPLY_HARD_RESULTS times the largest result (it follows
 * fp_control_set_job_limits). */
/* The daemon's Redis queue source (SPEC 10), for status and metrics. */
struct fp_redis_source;
void fp_control_set_redis(struct fp_control *c, struct fp_redis_source *src);

void fp_control_set_reply_limits(struct fp_control *c, size_t soft, size_t hard,
                                 size_t total);

/* Stop accepting and reading; once every client's queued responses are
 * written (or `timeout` s have passed) call `flushed`. */
void fp_control_shutdown(struct fp_control *c, double timeout,
                         void (*flushed)(void *arg), void *arg);

/* Close every connection and the listener, and remove the socket file. */
void fp_control_close(struct fp_control *c);

#endif
