/*
 * worker_hold.h — a worker's results, held while more jobs wait and
 * written together, in memory shared with the master so that no death of
 * the worker can lose one.
 *
 * One write per result would cost a system call and a wake-up of the
 * master per job.  So while more jobs are already buffered, the worker
 * appends each result to a small area it shares with the master (an
 * anonymous MAP_SHARED mapping the master makes before it forks the
 * worker, and that no other process inherits) and goes on; the area goes
 * down the socket when the burst ends, when it is full or holds the most
 * results it may (a quarter of the window: fp_hold_start), or when its
 * oldest result is HOLD_NS old (a flusher thread sees to that, so a long
 * job never delays the results before it; it starts with the first result
 * held).
 *
 * The area records which bytes of the worker's stream it holds: `base` is
 * the stream offset of data[0], `len` the bytes held.  When a worker dies
 * — by any signal, SIGKILL included, or by _exit() — the master reads its
 * socket dry and then takes from the area whatever of [base, base+len) it
 * has not received: every result the worker finished reaches the master,
 * and only the job that was running is blamed.  The area is as untrusted
 * as the socket: the master bounds-checks it and scans what it takes like
 * any frame.
 */
#ifndef FP_WORKER_HOLD_H
#define FP_WORKER_HOLD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "worker_claim.h"

/* The longest a worker holds a finished job's result before writing it
 * (seconds): the master may hear of a job's end this much late. */
#define FP_HOLD_MAX_WAIT 0.001

/* Size of the shared area, header included. */
#define FP_HOLD_AREA (144 * 1024)    /* 16 KiB of it claims */

/* The shared area.  The worker appends to data[] and then publishes len;
 * after writing data[0..len) to its socket it sets len to 0 first and then
 * advances base, so that at any instant [base, base+len) are bytes of its
 * stream that it may not have written yet. */
struct fp_hold_area {
    uint64_t base;      /* stream offset of data[0] */
    uint32_t len;       /* bytes held in data[] */
    uint32_t pad;
    uint64_t claims[FP_CLAIM_RING]; /* who starts each job (worker_claim.h) */
    char     data[];
};

/* Bytes data[] can hold in an area of FP_HOLD_AREA bytes. */
#define FP_HOLD_CAP (FP_HOLD_AREA - offsetof(struct fp_hold_area, data))

enum fp_flusher_state {
    FLUSHER_NONE,               /* nothing is ever held (no area) */
    FLUSHER_LATER,              /* starts with the first result held */
    FLUSHER_RUNS,
    FLUSHER_FAILED,             /* could not start: each result goes at once */
};

struct fp_hold {
    struct fp_hold_area *area;  /* NULL: nothing is held */
    int             fd;         /* the worker's socket */
    enum fp_flusher_state flusher_state;    /* FLUSHER_RUNS: results may wait */
    unsigned        held;       /* results in the area */
    unsigned        max_held;   /* results it may hold */
    int             owner;      /* atomic: main loop or flusher */
    uint64_t        held_since; /* atomic: ns of the oldest held result */
    uint64_t        last_held;  /* atomic: held_since as last set */
    int             flusher_idle;   /* atomic: in its long wait */
    pthread_mutex_t idle_lock;
    pthread_cond_t  idle_cond;
    pthread_t       flusher;
};

/* Set up holding over `area` (which may be NULL: then every message is
 * written at once) for the worker's socket `fd`, at most `max_held`
 * results at a time (at least 1).  The flusher thread starts with the
 * first result held; if it cannot, nothing is held (flusher_state says
 * FLUSHER_FAILED).  Returns 0. */
int  fp_hold_start(struct fp_hold *h, struct fp_hold_area *area, int fd,
                   unsigned max_held);

/* Send the complete messages msg[0..n) of the main loop: into the area when
 * `may_wait` (another job is already buffered) and there is room, else
 * down the socket with everything held before them.  Returns 0, or -1 if
 * the master is gone. */
int  fp_hold_send(struct fp_hold *h, const char *msg, size_t n, int may_wait);

/* Write everything held now.  Returns 0, or -1 if the master is gone. */
int  fp_hold_flush(struct fp_hold *h);

/* Before the worker exits: holding ends for good. */
void fp_hold_stop(struct fp_hold *h);

#endif
