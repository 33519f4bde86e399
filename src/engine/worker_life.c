/*
 * worker_life.c — the worker lifecycle table (see worker_life.h).
 *
 * Read a row as "in this state, on this event, go there and do that".
 * WA_IGNORE marks what cannot happen in a state (no process, no socket) or
 * what needs nothing (a second stop); a message the protocol forbids in a
 * state is WA_PROTOCOL_ERROR, and it always leads to WS_KILLED.
 */
#include "config.h"
#include <stddef.h>

#include "worker_life.h"

#define CELL(s, a)  { WS_##s, WA_##a }
#define IGN(s)      { WS_##s, WA_IGNORE }

static const struct fp_wcell table[WS_COUNT][WE_COUNT] = {
    [WS_WAITING] = {
        [WE_SPAWNED]         = CELL(STARTING, ENTER),
        [WE_SPAWN_FAILED]    = CELL(WAITING, ENTER),
        [WE_READY]           = IGN(WAITING),
        [WE_RESULT]          = IGN(WAITING),
        [WE_RETIRE]          = CELL(WAITING, CANCEL_BACKOFF),
        [WE_WINDOW_EMPTY]    = IGN(WAITING),
        [WE_STOP]            = CELL(WAITING, CANCEL_BACKOFF),
        [WE_KILL]            = IGN(WAITING),
        [WE_GRACE_EXPIRED]   = IGN(WAITING),
        [WE_EXITED]          = IGN(WAITING),
        [WE_BACKOFF_EXPIRED] = CELL(WAITING, START_DUE),
        [WE_START_EXPIRED]   = IGN(WAITING),
        [WE_PROGRESS]        = IGN(WAITING),
    },
    [WS_STARTING] = {
        [WE_SPAWNED]         = IGN(STARTING),
        [WE_SPAWN_FAILED]    = IGN(STARTING),
        [WE_READY]           = CELL(READY, NOTE_READY),
        [WE_RESULT]          = CELL(KILLED, PROTOCOL_ERROR),
        [WE_RETIRE]          = CELL(STOPPING, SEND_EOF),    /* nothing to finish */
        [WE_WINDOW_EMPTY]    = IGN(STARTING),
        [WE_STOP]            = CELL(STOPPING, SEND_EOF),
        [WE_KILL]            = CELL(KILLED, SIGKILL),
        [WE_GRACE_EXPIRED]   = IGN(STARTING),
        [WE_EXITED]          = CELL(DEAD, REAP),
        [WE_BACKOFF_EXPIRED] = IGN(STARTING),
        [WE_START_EXPIRED]   = CELL(KILLED, START_TIMEOUT),
        [WE_PROGRESS]        = CELL(KILLED, PROTOCOL_ERROR),
    },
    [WS_READY] = {
        [WE_SPAWNED]         = IGN(READY),
        [WE_SPAWN_FAILED]    = IGN(READY),
        [WE_READY]           = CELL(KILLED, PROTOCOL_ERROR),
        [WE_RESULT]          = CELL(READY, DELIVER),
        [WE_RETIRE]          = CELL(RETIRING, WIND_DOWN),
        [WE_WINDOW_EMPTY]    = IGN(READY),                  /* idle */
        [WE_STOP]            = CELL(STOPPING, SEND_EOF),
        [WE_KILL]            = CELL(KILLED, SIGKILL),
        [WE_GRACE_EXPIRED]   = IGN(READY),
        [WE_EXITED]          = CELL(DEAD, REAP),
        [WE_BACKOFF_EXPIRED] = IGN(READY),
        [WE_START_EXPIRED]   = IGN(READY),
        [WE_PROGRESS]        = CELL(READY, PROGRESS),
    },
    [WS_RETIRING] = {
        [WE_SPAWNED]         = IGN(RETIRING),
        [WE_SPAWN_FAILED]    = IGN(RETIRING),
        [WE_READY]           = CELL(KILLED, PROTOCOL_ERROR),
        [WE_RESULT]          = CELL(RETIRING, DELIVER),
        [WE_RETIRE]          = IGN(RETIRING),
        [WE_WINDOW_EMPTY]    = CELL(STOPPING, SEND_EOF),
        [WE_STOP]            = CELL(STOPPING, SEND_EOF),
        [WE_KILL]            = CELL(KILLED, SIGKILL),
        [WE_GRACE_EXPIRED]   = IGN(RETIRING),
        [WE_EXITED]          = CELL(DEAD, REAP),
        [WE_BACKOFF_EXPIRED] = IGN(RETIRING),
        [WE_START_EXPIRED]   = IGN(RETIRING),
        [WE_PROGRESS]        = CELL(RETIRING, PROGRESS),
    },
    [WS_STOPPING] = {
        [WE_SPAWNED]         = IGN(STOPPING),
        [WE_SPAWN_FAILED]    = IGN(STOPPING),
        /* Stopped while starting: it may still say so before it exits. */
        [WE_READY]           = IGN(STOPPING),
        [WE_RESULT]          = CELL(STOPPING, DELIVER),
        [WE_RETIRE]          = IGN(STOPPING),
        [WE_WINDOW_EMPTY]    = IGN(STOPPING),
        [WE_STOP]            = IGN(STOPPING),
        [WE_KILL]            = CELL(KILLED, SIGKILL),
        [WE_GRACE_EXPIRED]   = CELL(KILLED, SIGKILL),
        [WE_EXITED]          = CELL(DEAD, REAP),
        [WE_BACKOFF_EXPIRED] = IGN(STOPPING),
        /* Stopped before it was ready (a drain, a scale-down): there is
         * nothing to finish, and --start-timeout bounds its start still. */
        [WE_START_EXPIRED]   = CELL(KILLED, STOP_OVERDUE),
        [WE_PROGRESS]        = CELL(STOPPING, PROGRESS),
    },
    /* Killed: its socket is no longer read until it has exited. */
    [WS_KILLED] = {
        [WE_SPAWNED]         = IGN(KILLED),
        [WE_SPAWN_FAILED]    = IGN(KILLED),
        [WE_READY]           = IGN(KILLED),
        [WE_RESULT]          = IGN(KILLED),
        [WE_RETIRE]          = IGN(KILLED),
        [WE_WINDOW_EMPTY]    = IGN(KILLED),
        [WE_STOP]            = IGN(KILLED),
        [WE_KILL]            = IGN(KILLED),     /* the first cause stands */
        [WE_GRACE_EXPIRED]   = IGN(KILLED),
        [WE_EXITED]          = CELL(DEAD, REAP),
        [WE_BACKOFF_EXPIRED] = IGN(KILLED),
        [WE_START_EXPIRED]   = IGN(KILLED),
        [WE_PROGRESS]        = IGN(KILLED),
    },
    /* Dead: what it wrote before dying is read now (results count; a late
     * "ready" changes nothing); then the pool respawns or removes it. */
    [WS_DEAD] = {
        [WE_SPAWNED]         = CELL(STARTING, ENTER),
        [WE_SPAWN_FAILED]    = CELL(WAITING, ENTER),
        [WE_READY]           = IGN(DEAD),
        [WE_RESULT]          = CELL(DEAD, DELIVER),
        [WE_RETIRE]          = IGN(DEAD),
        [WE_WINDOW_EMPTY]    = IGN(DEAD),
        [WE_STOP]            = IGN(DEAD),
        [WE_KILL]            = IGN(DEAD),       /* its pid may be reused */
        [WE_GRACE_EXPIRED]   = IGN(DEAD),
        [WE_EXITED]          = IGN(DEAD),
        [WE_BACKOFF_EXPIRED] = IGN(DEAD),
        [WE_START_EXPIRED]   = IGN(DEAD),
        [WE_PROGRESS]        = CELL(DEAD, PROGRESS),
    },
};

const struct fp_wcell *
fp_wlife_cell(enum fp_wstate state, enum fp_wevent event)
{
    static const struct fp_wcell hole = { WS_COUNT, WA_UNDECIDED };

    if ((unsigned)state >= WS_COUNT || (unsigned)event >= WE_COUNT)
        return &hole;
    return &table[state][event];
}

const char *
fp_wstate_name(enum fp_wstate s)
{
    static const char *const names[WS_COUNT] = {
        "waiting", "starting", "ready", "retiring", "stopping", "killed", "dead",
    };
    return (unsigned)s < WS_COUNT ? names[s] : "?";
}

const char *
fp_wevent_name(enum fp_wevent e)
{
    static const char *const names[WE_COUNT] = {
        "spawned", "spawn failed", "ready", "result", "retire", "window empty",
        "stop", "kill", "grace expired", "exited", "backoff expired",
        "start expired", "progress",
    };
    return (unsigned)e < WE_COUNT ? names[e] : "?";
}

const char *
fp_waction_name(enum fp_waction a)
{
    static const char *const names[WA_COUNT] = {
        "undecided", "ignore", "enter", "protocol error", "note ready",
        "deliver", "wind down", "send EOF", "SIGKILL", "reap", "start due",
        "cancel backoff", "start timeout", "stop overdue", "progress",
    };
    return (unsigned)a < WA_COUNT ? names[a] : "?";
}
