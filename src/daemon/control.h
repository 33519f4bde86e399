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

struct fp_control_hooks {
    void (*drain)(void *arg);   /* the "drain" method: start the daemon's drain */
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

/* Stop accepting and reading; once every client's queued responses are
 * written (or `timeout` s have passed) call `flushed`. */
void fp_control_shutdown(struct fp_control *c, double timeout,
                         void (*flushed)(void *arg), void *arg);

/* Close every connection and the listener, and remove the socket file. */
void fp_control_close(struct fp_control *c);

#endif
