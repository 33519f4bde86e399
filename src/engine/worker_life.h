/*
 * worker_life.h — a worker's lifecycle as a state x event table (after
 * s6-supervise): each cell names the next state and one small action.
 *
 * The table is pure data; worker_io.c carries the actions out.  Every cell
 * either acts or is explicitly ignored (tests/check_worker_life.c checks
 * that no cell is left undecided).
 */
#ifndef FP_WORKER_LIFE_H
#define FP_WORKER_LIFE_H

enum fp_wstate {
    WS_WAITING,     /* no process: waiting out a restart backoff, or parked */
    WS_STARTING,    /* forked, no "ready" yet */
    WS_READY,       /* takes jobs */
    WS_RETIRING,    /* runs its window, takes no more; stops when empty */
    WS_STOPPING,    /* told to exit (EOF); killed if it overstays its grace */
    WS_KILLED,      /* sent SIGKILL; waiting for its exit */
    WS_DEAD,        /* exited and reaped; the pool decides what follows */
    WS_COUNT
};

enum fp_wevent {
    WE_SPAWNED,         /* fork succeeded */
    WE_SPAWN_FAILED,    /* fork failed */
    WE_READY,           /* it said "ready" */
    WE_RESULT,          /* it sent a result */
    WE_RETIRE,          /* finish the window, take no more, then stop */
    WE_WINDOW_EMPTY,    /* its last job ended */
    WE_STOP,            /* exit cleanly now (EOF) */
    WE_KILL,            /* SIGKILL, with a cause */
    WE_GRACE_EXPIRED,   /* a stop took too long */
    WE_EXITED,          /* its process is gone */
    WE_BACKOFF_EXPIRED, /* time to try starting it again */
    WE_START_EXPIRED,   /* --start-timeout passed without "ready" */
    WE_PROGRESS,        /* it reported progress of a job */
    WE_COUNT
};

enum fp_waction {
    WA_UNDECIDED = 0,   /* never in the table: a hole the tests catch */
    WA_IGNORE,          /* nothing to do, on purpose */
    WA_ENTER,           /* only the state changes */
    WA_PROTOCOL_ERROR,  /* a message the protocol forbids now: kill it */
    WA_NOTE_READY,      /* record readiness, report it */
    WA_DELIVER,         /* match the result to the running job, report it */
    WA_WIND_DOWN,       /* stop taking jobs; stop at once if idle */
    WA_SEND_EOF,        /* shut our end for writing, arm the grace timer */
    WA_SIGKILL,         /* kill its process group */
    WA_REAP,            /* read it dry, close, report the exit */
    WA_START_DUE,       /* report that it may be started again */
    WA_CANCEL_BACKOFF,  /* drop a pending restart */
    WA_START_TIMEOUT,   /* a failed start: note why, kill its process group */
    WA_STOP_OVERDUE,    /* stopped, yet neither ready nor gone by its start
                           deadline: killed as if its grace ran out */
    WA_PROGRESS,        /* match it to the running job, note the heartbeat,
                           report it */
    WA_COUNT
};

struct fp_wcell {
    enum fp_wstate  next;
    enum fp_waction action;
};

/* The cell for `event` in `state`. */
const struct fp_wcell *fp_wlife_cell(enum fp_wstate state, enum fp_wevent event);

const char *fp_wstate_name(enum fp_wstate state);
const char *fp_wevent_name(enum fp_wevent event);
const char *fp_waction_name(enum fp_waction action);

#endif
