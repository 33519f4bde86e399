/*
 * worker.h — the master's side of one worker process: the mechanism.
 *
 * worker_io.c spawns the process, writes the jobs of its window, reads and
 * checks what it sends, enforces the running job's deadline, notices its
 * death and reads its last words.  It decides nothing about jobs or slots:
 * it reports events up through the fp_worker_ops table its owner (the pool)
 * installs, and the owner decides (outcomes, retries, respawn, backoff).
 *
 * Reporting rule: an event goes up only once the worker is consistent (its
 * state set, its I/O for the event done), and the mechanism touches nothing
 * of the worker after a report that may end its life (exited).
 */
#ifndef FP_WORKER_H
#define FP_WORKER_H

#include <sys/types.h>
#include <ev.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "job.h"
#include "log.h"
#include "meter.h"
#include "stderr_budget.h"
#include "worker_life.h"

struct fp_worker;
struct fp_spawn_req;
struct fp_hold_area;

/* Why the master killed a worker: decides the outcome of the job it held. */
enum fp_kill_cause {
    KILL_NONE = 0,  /* not killed by us */
    KILL_PROTOCOL,  /* crashed, "protocol error" */
    KILL_TIMEOUT,   /* timeout */
    KILL_CANCEL,    /* cancelled */
    KILL_CUTOFF,    /* cancelled by the drain cut-off */
    KILL_BROKEN,    /* its socket broke or closed: it is dying */
    KILL_CLOSED,    /* it closed its socket while alive (not dying) */
    KILL_GRACE,     /* it did not exit within its grace after a stop */
    KILL_START,     /* not ready within --start-timeout: a failed start */
    KILL_HEARTBEAT, /* timeout: no progress within --heartbeat-timeout */
};

/* How a worker ended, for the exited report. */
struct fp_worker_exit {
    int                 status;     /* as from waitpid */
    char                death[96];  /* "killed by SIGSEGV", ... */
    enum fp_wstate      from;       /* its state when it died */
    enum fp_kill_cause  cause;      /* KILL_NONE: it died on its own */
    uint64_t            kill_job;   /* the job a kill was aimed at */
    const char         *why;        /* KILL_PROTOCOL: what it did wrong */
    int                 head_started; /* the window's first job not cancelled
                                       had started at the worker (its claim,
                                       or its bytes went out where there is
                                       none) */
    int                 was_ready;  /* it said "ready" at some point */
    /* The running job's run_ms, cpu_ms and maxrss_kb up to the death
     * (meter.h; wait_ms is the job's own), and what the worker wrote to
     * stderr during it, the last lines (worker_stderr.c). */
    fp_receipt          cost;
    size_t              stderr_len;
    char                stderr_tail[FP_STDERR_TAIL];
};

/* The events a worker reports to its owner. */
struct fp_worker_ops {
    /* It said "ready" and takes jobs. */
    void (*ready)(struct fp_worker *w);
    /* The running job ended: it has left the window, the next one (if any)
     * is running, and its outcome is recorded in the job (unless the job
     * had been cancelled while sent ahead: then it has one already). */
    void (*result)(struct fp_worker *w, struct fp_job *job);
    /* The running job reported progress: value/len (one msgpack value)
     * lies in the worker's read buffer, valid only during the call.  Not
     * reported for a job cancelled while sent ahead. */
    void (*progress)(struct fp_worker *w, struct fp_job *job, const char *value,
                     size_t len);
    /* It asks to be replaced after its window (e.g. near its CPU
     * backstop); it has already stopped taking jobs. */
    void (*retire)(struct fp_worker *w, const char *why);
    /* Its restart backoff is over: the owner starts it (or not). */
    void (*start_due)(struct fp_worker *w);
    /* Its process is gone.  `window` holds the jobs it still had, the
     * running one first (its window is empty now): the owner takes them. */
    void (*exited)(struct fp_worker *w, const struct fp_worker_exit *x,
                   struct fp_jobq *window);
};

/* What every worker of a pool shares. */
struct fp_worker_env {
    struct ev_loop             *loop;
    const struct fp_logger     *log;
    const struct fp_worker_ops *ops;
    void                       *owner;      /* the pool, for the ops */
    const struct fp_limits     *limits;     /* frames from workers */
    double                      slow_log;   /* seconds; 0 = off */
    double                      start_timeout; /* s from fork to "ready"
                                               before it is killed; 0 = none */
    double                      heartbeat_timeout; /* s a running job may go
                                               without progress; 0 = none */
    size_t                     *ahead;      /* kept up to date: jobs in all
                                               windows behind their head */
};

/* A worker's stderr as the running job's (worker_stderr.c): every byte
 * read from its pipe, numbered from its fork, the last FP_STDERR_TAIL of
 * them kept. */
struct fp_errtail {
    char     ring[FP_STDERR_TAIL];  /* byte i at ring[i % FP_STDERR_TAIL] */
    uint64_t total;         /* bytes read from this process's pipe */
    uint64_t synced;        /* bytes its pipe had taken, read or not, at the
                               last look (a result came: all it wrote
                               before it is in there) */
    uint64_t synced_at;     /* w->received at that look */
    uint64_t mark;          /* where the running job's bytes begin */
    int      cut_short;     /* the last read stopped at the budget's chunk */
    int      in_order;      /* the socket bytes at hand were read right
                               after this loop iteration's stderr read */
};

struct fp_worker {
    const struct fp_worker_env *env;
    unsigned           slot;        /* index in the owner's table */
    enum fp_wstate     state;
    pid_t              pid;         /* 0 before its first fork */
    int                fd;          /* -1 when closed */
    int                errfd;       /* its stderr, -1 when closed */
    ev_io              rio, wio, eio;
    ev_timer           err_resume;  /* reading its stderr paced: when to go on */
    ev_timer           err_summary; /* while lines of its stderr are suppressed */
    struct fp_stderr_budget errbudget; /* the slot's, kept across respawns */
    struct fp_errtail  errtail;     /* its stderr, for a crashed job */
    ev_child           child;
    ev_timer           job_timer;   /* the running job's deadline */
    ev_timer           slow_timer;  /* --slow-log for the running job */
    ev_timer           heartbeat_timer; /* --heartbeat-timeout: looks at
                                       beat_at, re-armed from it */
    ev_tstamp          beat_at;     /* the running job's last sign of life
                                       (its start, or its last progress) */
    ev_timer           backoff_timer;
    ev_timer           grace_timer; /* SIGKILL if a stop takes too long */
    ev_timer           start_timer; /* SIGKILL if "ready" takes too long */
    struct fp_buf      in;
    struct fp_buf      errline;     /* a stderr line not yet complete */
    struct fp_scanner  scan;
    struct fp_hold_area *hold_area; /* results the worker holds (shared) */
    uint64_t           received;    /* bytes read from it since its fork */
    struct fp_jobq     window;      /* jobs sent; the first one runs */
    unsigned           nwindow;
    struct fp_job     *send_next;   /* first job in window not fully sent */
    size_t             send_off;    /* bytes of it (hdr + payload) sent */
    uint64_t           next_seq;    /* number of the next job written */
    uint64_t           read_seq;    /* every job numbered below it has been
                                       read by the worker (worker_claim.h) */
    ev_tstamp          spawned_at;
    ev_tstamp          ready_at;    /* 0 until it says "ready" */
    ev_tstamp          job_started; /* when the window's head began */
    unsigned           jobs_done;   /* by this process */
    const char        *retire_why;  /* WS_RETIRING: why (for the log) */
    /* What its process's CPU was as its running job started, as far as
     * we know (meter.h): from the cost its results report (own_loop), or
     * read from /proc between the jobs of an --exec program; and its usage
     * read just before we killed it. */
    struct {
        int                  own_loop;  /* runs forkpool's job loop */
        uint64_t             base_cpu_us;
        uint64_t             base_rss_kb;   /* its resident size then */
        int                  killed_read;
        struct fp_proc_usage at_kill;
    } meter;
    struct {
        enum fp_kill_cause cause;   /* WS_KILLED (or a late protocol error) */
        uint64_t           job;     /* the job it was aimed at */
        char               why[96]; /* a protocol error's reason */
        int                dying;   /* KILL_BROKEN: /proc said it was exiting
                                       already (the SIGKILL that ended it, if
                                       any, was not ours) */
    } kill;

    /* The owner's bookkeeping; the mechanism never reads these. */
    unsigned           fail_streak; /* consecutive failed starts */
    unsigned           job_budget;  /* recycle after this many (0 = never) */
    unsigned           generation;  /* the owner's reload generation */
    ev_tstamp          idle_since;  /* when its window last became empty */
    TAILQ_ENTRY(fp_worker) retiring_link;
};

struct fp_worker *fp_worker_new(const struct fp_worker_env *env, unsigned slot);
/* Release the worker (its process must be gone, or be killed and reaped by
 * the caller); its window must be empty. */
void fp_worker_free(struct fp_worker *w);

/* Fork it (from WS_WAITING or WS_DEAD): WS_STARTING, or WS_WAITING if the
 * fork failed (errno set, -1 returned).  A module worker (req->child_main
 * set, req->child_arg a struct fp_worker_args) gets its slot number and a
 * results area shared with us. */
int  fp_worker_spawn(struct fp_worker *w, const struct fp_spawn_req *req);
/* Try a fork again after `delay` seconds (WS_WAITING meanwhile). */
void fp_worker_backoff(struct fp_worker *w, double delay);

/* Append a job to its window (only while it takes jobs). */
void fp_worker_assign(struct fp_worker *w, struct fp_job *job);
/* Write what was assigned (once per loop iteration). */
void fp_worker_flush(struct fp_worker *w);
/* True while it takes new jobs. */
int  fp_worker_takes_jobs(const struct fp_worker *w);
/* True if jobs sent ahead to it can be taken back (it shares the claims
 * of worker_claim.h with us); else it should get only what it can start. */
int  fp_worker_can_take_back(const struct fp_worker *w);
/* Take `job`, sent ahead and not started, out of its window (the worker
 * will skip it).  Returns 1, or 0 if it cannot be had: it is running, its
 * bytes are half written, or the worker has just started it. */
int  fp_worker_take_back(struct fp_worker *w, struct fp_job *job);
/* Withdraw `job`, sent ahead and not started, whatever became of its
 * bytes.  Returns 1 if it is taken back (as fp_worker_take_back); 2 if its
 * bytes are half written: the worker will skip it, but the rest must still
 * go out, so it stays in the window until they have -- the caller gives it
 * its outcome now (it is then handed back through ops->result, as a job
 * cancelled while sent ahead); 0 if the worker has started it (or it
 * runs). */
int  fp_worker_withdraw(struct fp_worker *w, struct fp_job *job);

/* The lifecycle events an owner sends (see worker_life.h). */
void fp_worker_retire(struct fp_worker *w, const char *why);
void fp_worker_stop(struct fp_worker *w);
void fp_worker_kill(struct fp_worker *w, enum fp_kill_cause cause, uint64_t job);
/* Its socket closed (EOF, or a write failed) when we had not stopped it:
 * kill it, as KILL_BROKEN if it is dying anyway, else as KILL_CLOSED (its
 * death then reads "closed its socket", not the SIGKILL we sent). */
void fp_worker_socket_gone(struct fp_worker *w);

/* A job in its window: cancelled.  Returns 1 if it was running (the worker
 * is killed), 2 if it was sent ahead and is taken back (it has left the
 * window, not started), 0 if it was sent ahead and stays in place: the
 * worker has started it (its result, if one comes, is dropped) or will skip
 * it (fp_worker_withdraw's 2). */
int  fp_worker_cancel(struct fp_worker *w, struct fp_job *job);


/* Internal to the mechanism (worker_io.c, worker_send.c). */
void fp_worker_set_nwindow(struct fp_worker *w, unsigned n);
/* The window's head has left it: start the next one, or note the window
 * empty. */
void fp_worker_next_head(struct fp_worker *w);
/* Is `job` one the worker will skip (withdrawn half written)? */
int  fp_worker_skips(const struct fp_worker *w, const struct fp_job *job);
/* The head is such a job, all its bytes out: it leaves the window and goes
 * back to the owner (ops->result), and the next one starts. */
void fp_worker_drop_skipped_head(struct fp_worker *w);
void fp_worker_write_cb(struct ev_loop *loop, ev_io *io, int revents);
/* Kill it for breaking the protocol (`why`: for the log and the owner). */
void fp_worker_protocol_error(struct fp_worker *w, const char *why);
/* Has it moved past the window's head (which has then ended, its result on
 * the way)? */
int  fp_worker_moved_past_head(const struct fp_worker *w);

/* worker_beat.c: the running job's progress and heartbeat.  Set up its
 * timer (once); the window's head started (arms --heartbeat-timeout, when
 * set) or nothing runs any more; a ["progress", id, value] message
 * (WA_PROGRESS): checked against the running job, noted as its heartbeat,
 * reported.  Start and stop come with every job, so without a heartbeat
 * timeout they cost a test each. */
struct fp_worker_msg;
void fp_worker_beat_init(struct fp_worker *w);
void fp_worker_beat_arm(struct fp_worker *w);
void fp_worker_on_progress(struct fp_worker *w, const struct fp_worker_msg *m);

static inline void
fp_worker_beat_start(struct fp_worker *w)
{
    if (w->env->heartbeat_timeout > 0)
        fp_worker_beat_arm(w);
}

static inline void
fp_worker_beat_stop(struct fp_worker *w)
{
    if (ev_is_active(&w->heartbeat_timer))
        ev_timer_stop(w->env->loop, &w->heartbeat_timer);
}

/* worker_stderr.c: set up its stderr watchers and budget (once); watch a
 * freshly forked process's stderr pipe; read a dead one's last words (what
 * the pipe holds, bounded; closing it at EOF); close the pipe, logging an
 * unfinished line and what was suppressed. */
void fp_worker_stderr_init(struct fp_worker *w);
void fp_worker_stderr_open(struct fp_worker *w, int errfd);
void fp_worker_stderr_read(struct fp_worker *w);
void fp_worker_stderr_close(struct fp_worker *w);
/* A crashed job's stderr: a result (or "ready") came, so what the pipe
 * holds now was written before it (once per socket read: a FIONREAD);
 * the window's head starts, its bytes begin here; the running job's bytes,
 * the last lines of at most FP_STDERR_TAIL bytes, into out (returns how
 * many). */
void   fp_worker_stderr_sync(struct fp_worker *w);
void   fp_worker_stderr_job_start(struct fp_worker *w);
size_t fp_worker_stderr_tail(const struct fp_worker *w, char *out);

/* worker_meter.c: each job's receipt, the master's side (meter.h).  It is
 * about to be killed (its usage is read, if a job runs); a result came
 * for `job` (c: the cost it reports, or NULL); it said "ready"; it is
 * dead: the running job's figures and stderr into x. */
void fp_worker_measure_kill(struct fp_worker *w);
void fp_worker_measure_result(struct fp_worker *w, struct fp_job *job,
                              const struct fp_job_cost *c);
void fp_worker_measure_ready(struct fp_worker *w);
void fp_worker_measure_death(struct fp_worker *w, struct fp_worker_exit *x);

/* Its process is alive (not yet reaped). */
int  fp_worker_alive(const struct fp_worker *w);
/* Resident bytes of its process, or 0 if unknown. */
size_t fp_worker_rss(const struct fp_worker *w);

#endif
