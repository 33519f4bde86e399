/*
 * pool_int.h — the master's state, shared by pool.c (jobs, queue, outcomes,
 * drain) and workers.c (the worker table: spawn, I/O, death, respawn).
 */
#ifndef FP_POOL_INT_H
#define FP_POOL_INT_H

#include <sys/queue.h>
#include <ev.h>

#include "forkpool.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "log.h"
#include "sandbox.h"
#include "worker_loop.h"
#include "worker_hold.h"

struct fp_worker;

struct fp_job {
    TAILQ_ENTRY(fp_job) link;   /* in the pool queue or a worker's window */
    uint64_t          id;
    char             *payload;  /* msgpack bytes of the job value */
    size_t            len;
    double            timeout;  /* seconds; 0 = none */
    unsigned          retries_left;
    unsigned          attempts; /* times started */
    fp_done_fn        done;
    void             *arg;
    struct fp_worker *worker;   /* holding it, or NULL while queued */
    int               settled;  /* outcome delivered (a cancelled ghost
                                   still in a worker's window) */
    unsigned char     hdrlen;   /* ["job", id, ...]'s envelope in hdr: sent */
    char              hdr[16];  /* with the payload, by writev, uncopied */
    size_t            cap;      /* bytes `payload` can hold */
    char              inline_payload[]; /* small jobs: payload lives here */
};
TAILQ_HEAD(fp_jobq, fp_job);

enum fp_wstate {
    W_WAITING,      /* no process: waiting out a restart backoff */
    W_STARTING,     /* forked, no "ready" yet */
    W_READY,        /* takes jobs */
    W_STOPPING,     /* told to exit (EOF sent, or killed); awaiting reap */
};

/* Why the master killed a worker; decides the outcome of the job it held. */
enum fp_kill_cause {
    KILL_NONE = 0,
    KILL_PROTOCOL,  /* crashed, "protocol error" */
    KILL_TIMEOUT,   /* timeout */
    KILL_CANCEL,    /* cancelled */
    KILL_CUTOFF,    /* cancelled by the drain cut-off */
};

struct fp_worker {
    struct fp_pool    *pool;
    unsigned           slot;        /* index in pool->workers */
    enum fp_wstate     state;
    pid_t              pid;         /* 0 when no process */
    int                fd;          /* -1 when closed */
    int                errfd;       /* its stderr, -1 when closed */
    ev_io              rio, wio, eio;
    struct fp_buf      errline;     /* a stderr line not yet complete */
    ev_child           child;
    ev_timer           job_timer;   /* the running job's deadline */
    ev_timer           slow_timer;  /* --slow-log for the running job */
    ev_timer           restart_timer;
    ev_timer           stop_timer;  /* SIGKILL if a stop takes too long */
    struct fp_buf      in;
    struct fp_hold_area *hold_area; /* results the worker holds (shared) */
    uint64_t           received;    /* bytes read from it since its fork */
    struct fp_job     *send_next;   /* first job in window not fully sent */
    size_t             send_off;    /* bytes of it (hdr + payload) sent */
    struct fp_scanner  scan;
    struct fp_jobq     window;      /* jobs sent; the first one is running */
    unsigned           nwindow;
    ev_tstamp          job_started; /* when the first job in window began */
    ev_tstamp          spawned_at;
    unsigned           jobs_done;   /* by this process */
    unsigned           job_budget;  /* recycle after this many (0 = never) */
    unsigned           fail_streak; /* consecutive deaths before "ready" */
    enum fp_kill_cause kill_cause;
    uint64_t           kill_job;    /* the job the kill was aimed at */
    int                ever_ready;  /* this process said "ready" */
    int                shutdown_pending; /* EOF it once `out` is flushed */
    int                stop_requested;   /* fp_worker_stop asked it to exit */
    int                reaped;      /* its pid is gone: never signal it */
    int                retiring;    /* remove the slot once it exits */
    unsigned           generation;  /* pool->generation when spawned */
    const char        *recycle_why; /* set: stop once the window is empty */
};

struct fp_pool {
    struct ev_loop    *loop;
    fp_config          cfg;
    struct fp_logger   log;
    struct fp_limits   worker_limits;   /* frames from workers */
    struct fp_worker_args wargs;        /* what module workers run */
    struct fp_sandbox  sandbox;         /* how workers are confined */
    char              *module_config;   /* our copy of cfg.module_config */

    struct fp_worker **workers;     /* slot table */
    unsigned           nworkers;    /* slots in use */
    unsigned           target;      /* desired worker count */

    struct fp_jobq     queue;       /* accepted, not yet sent to a worker */
    size_t             nqueued;
    size_t             held_bytes;  /* payloads of every unfinished job */
    uint64_t           next_id;

    unsigned           generation;  /* bumped by each reload */
    int                reloading;   /* a rolling reload is under way */
    struct fp_worker  *reload_new;  /* replacement not yet ready, or NULL */
    struct fp_worker  *reload_old;  /* the worker it replaces */

    int                started;
    int                draining;
    int                cut_off;
    fp_drained_fn      drained;
    void              *drained_arg;
    ev_timer           drain_timer;
    ev_idle            drained_idle; /* reports the drain from a fresh stack */
    ev_prepare         flush_prepare; /* sends what was assigned, per iteration */

    ev_tstamp          started_at;
    uint64_t           rng;         /* xorshift state for --max-jobs jitter */
    fp_stats           counters;    /* the monotonic counters only */
    struct fp_job     *free_jobs;   /* small job blocks kept for reuse */
    unsigned           nfree_jobs;
    struct fp_buf      scratch;     /* packs pool-made details */
    msgpack_packer     scratch_pk;
};

/* pool.c */
void fp_job_finish(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                   const char *data, size_t len);
void fp_job_finish_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                       const char *detail);
/* Deliver a str outcome now but keep the job (a ghost in a window). */
void fp_job_settle_str(struct fp_pool *p, struct fp_job *job, fp_kind kind,
                       const char *detail);
void pool_dispatch(struct fp_pool *p);
void pool_check_drained(struct fp_pool *p);
/* A job ran for `secs` and finished (ok or error). */
void pool_record_latency(struct fp_pool *p, double secs);
/* A worker said "ready": lets a rolling reload move on. */
void pool_worker_ready(struct fp_pool *p, struct fp_worker *w);
/* A retiring worker's process is gone: drop its slot (frees w). */
void pool_remove_slot(struct fp_pool *p, struct fp_worker *w);

/* workers.c */
struct fp_worker *fp_worker_new(struct fp_pool *p, unsigned slot);
void fp_worker_free(struct fp_worker *w);
int  fp_worker_spawn(struct fp_worker *w);
void fp_worker_assign(struct fp_worker *w, struct fp_job *job);
/* Write what was assigned (once per loop iteration). */
void fp_worker_flush(struct fp_worker *w);
void fp_worker_kill(struct fp_worker *w, enum fp_kill_cause cause, uint64_t job);
void fp_worker_stop(struct fp_worker *w);
/* Resident bytes of the worker process, or 0 if unknown. */
size_t fp_worker_rss(const struct fp_worker *w);
/* How many more jobs the worker's window takes now. */
unsigned fp_worker_room(const struct fp_worker *w);

#endif
