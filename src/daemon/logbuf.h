/*
 * logbuf.h — forkpoold's log lines on stderr without ever blocking the
 * master.  A reader that stalls (a log shipper that stopped reading, a
 * terminal on hold, `forkpoold 2>&1 | sleep 1000`) must not stop the loop:
 * a blocking write there would leave every client unanswered.
 *
 * Lines are queued, at most `max` bytes, and written nonblocking: at once
 * while the descriptor takes them, otherwise by an EV_WRITE watcher armed
 * only while bytes wait.  A line that does not fit is dropped, and so is
 * every line after it until the queue has drained to half; then one
 * warning, "N log lines dropped ...", is queued and lines flow again.  A
 * line is queued whole or not at all: dropping never cuts one.
 *
 * The descriptor written is one of our own, nonblocking, for the same
 * pipe, terminal or socket (logbuf.c says how), so the flags of stderr's
 * file description, shared with whoever started the daemon, stay as they
 * were.  In a forked child (a worker) the sink writes the line straight to
 * the child's own stderr instead, blocking, as a worker may.
 */
#ifndef FP_LOGBUF_H
#define FP_LOGBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#include "codec/buf.h"

#define FP_LOGBUF_MAX       (1024 * 1024)   /* bytes queued, at most */
#define FP_LOGBUF_EXIT_MS   2000            /* the final flush waits this long */

struct fp_logbuf {
    struct ev_loop *loop;       /* NULL until attached: writes only at once */
    ev_io           wio;        /* armed while bytes are queued */
    int             fd;         /* ours, nonblocking (see logbuf.c) */
    int             is_socket;  /* written with send(MSG_DONTWAIT) */
    pid_t           owner;      /* the process whose lines are queued */
    const char     *ident;      /* "forkpoold" in "forkpoold[pid]: ..." */
    struct fp_buf   queue;      /* whole lines not yet written */
    size_t          max;
    int             dropping;   /* dropping every line until half drained */
    uint64_t        dropped;    /* lines dropped since the last notice */
    uint64_t        dropped_total; /* lines dropped since the start */
};

/* Log to what `fd` writes to (2: stderr), queueing at most `max` bytes.
 * Returns 0, or -1 with errno (then nothing is held open). */
int  fp_logbuf_open(struct fp_logbuf *lb, int fd, const char *ident, size_t max);
/* From now on, what the descriptor does not take at once is written by a
 * watcher on `loop`. */
void fp_logbuf_attach(struct fp_logbuf *lb, struct ev_loop *loop);
/* An fp_log_fn; arg is the struct fp_logbuf. */
void fp_logbuf_sink(int level, const char *msg, void *arg);
/* Write what is queued, waiting for the descriptor at most timeout_ms (at
 * exit, or before a startup error is printed).  Returns the bytes still
 * queued (0: all written). */
size_t fp_logbuf_flush(struct fp_logbuf *lb, int timeout_ms);
/* Stop the watcher and close our descriptor; what is queued is lost. */
void fp_logbuf_close(struct fp_logbuf *lb);

#endif
