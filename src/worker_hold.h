/*
 * worker_hold.h — a worker's results, held while more jobs wait and
 * written together, without ever losing one to a later job's death.
 *
 * One write per result would cost a system call and a wake-up of the
 * master per job.  So while more jobs are already buffered, the worker
 * adds each result to its output buffer and goes on; the buffer goes out
 * when the burst ends, when HOLD_RESULTS or HOLD_BYTES are held, or when
 * the oldest held result is HOLD_NS old.  A held result must never be lost
 * to a later job, or the master would blame the wrong job for a death:
 *   - a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGXCPU) runs a
 *     handler, on its own stack, that writes them and dies of the signal;
 *   - a later job that runs long is not interrupted: a flusher thread
 *     writes them once they are HOLD_NS old;
 *   - deaths no handler sees (SIGKILL from outside, _exit() inside a job)
 *     can lose at most HOLD_NS worth of held results;
 *   - a module that catches these signals itself keeps its handlers, and
 *     then nothing is held; a child a job forks never sends them.
 * The buffer has one owner at a time (the main loop, the flusher, or the
 * crash handler), taken with an atomic flag.
 */
#ifndef FP_WORKER_HOLD_H
#define FP_WORKER_HOLD_H

#include <pthread.h>
#include <sys/types.h>
#include <stdint.h>
#include "buf.h"

struct fp_hold {
    struct fp_buf  *out;            /* the worker's output buffer */
    int             fd;             /* its socket */
    int             enabled;        /* fp_hold_start succeeded */
    unsigned        held;           /* results in out */
    int             owner;          /* atomic: who may touch out */
    uint64_t        held_since;     /* atomic: ns of the oldest held result */
    int             flusher_idle;   /* atomic: in its long wait */
    int             pending_signal; /* atomic: a crash signal to die of once
                                       the main loop gives the buffer back */
    pid_t           pid;            /* the worker (not a child of a job) */
    pthread_mutex_t idle_lock;
    pthread_cond_t  idle_cond;
    pthread_t       flusher;
};

/* Set up holding for this process's one worker: the crash handlers and the
 * flusher thread.  Returns 0; 1 when the module's init installed handlers
 * of its own for these signals (they are left alone, nothing is held); -1
 * when something failed (nothing is held).  Results are then written at
 * once. */
int  fp_hold_start(struct fp_hold *h, struct fp_buf *out, int fd);

/* Before the worker frees its buffer: holding ends for good. */
void fp_hold_stop(struct fp_hold *h);

/* The main loop takes the buffer before changing it, and gives it back. */
void fp_hold_lock(struct fp_hold *h);
void fp_hold_unlock(struct fp_hold *h);

/* A result was added (buffer given back): returns 1 if it may wait for
 * the next job's, 0 if the buffer must go out now (fp_hold_flush). */
int  fp_hold_result_added(struct fp_hold *h);

/* Write the whole buffer now.  Returns 0, or -1 if the master is gone. */
int  fp_hold_flush(struct fp_hold *h);

#endif
