/*
 * spawn.h — start a worker process tied to the caller by one socketpair.
 *
 * No libev here: the parent side gets a pid and a nonblocking, close-on-exec
 * socket; the child side is scrubbed (every other fd closed, signals reset,
 * parent-death signal armed) before it runs the worker code or execs.
 */
#ifndef FP_SPAWN_H
#define FP_SPAWN_H

#include <sys/types.h>

struct fp_sandbox;

/* The fd a module worker's socket lives on after fp_spawn (an exec worker
 * talks on stdin/stdout instead). */
#define FP_WORKER_FD 3

/* Runs in the child with its socket on FP_WORKER_FD; returns the exit code. */
typedef int (*fp_child_fn)(int fd, void *arg);
/* Runs in the child before the sandbox is entered (before any switch of
 * user); returns 0, or the exit code to leave with.  It may open one fd
 * that child_main needs and could not open itself once confined (close-on-
 * exec, stored in *keep_fd; -1 = none): the sweep of inherited fds spares
 * it, and child_main finds it at FP_WORKER_KEEP_FD. */
typedef int (*fp_child_prepare_fn)(void *arg, int *keep_fd);

/* Where a module worker finds the fd its child_prepare kept. */
#define FP_WORKER_KEEP_FD (FP_WORKER_FD + 1)

struct fp_spawn_req {
    char *const *exec_argv;  /* exec this with socket on stdin+stdout, or */
    fp_child_fn  child_main; /* run this in the forked child */
    fp_child_prepare_fn child_prepare;  /* with child_main: first, with the
                                           parent's rights; or NULL */
    void        *child_arg;
    int          sockbuf;    /* SO_SNDBUF/SO_RCVBUF for both ends; 0 = default */
    const struct fp_sandbox *sandbox;   /* entered in the child, or NULL */
    int          batch_sched;/* SCHED_BATCH in the child, if the parent runs
                                under SCHED_OTHER (FP_WORKER_SCHED_BATCH) */
};

/* Fork one worker.  Returns its pid and stores the parent's end of its
 * socket in *fd and the read end of a pipe carrying its stderr (and a module
 * worker's stdout) in *errfd, both nonblocking and close-on-exec; or returns
 * -1 with errno set (nothing is left open). */
pid_t fp_spawn(const struct fp_spawn_req *req, int *fd, int *errfd);

/* Child hygiene, also used by the cmd builtin for its own children: reset
 * every signal disposition to default and unblock all signals. */
void fp_reset_signals(void);

/* Close every fd >= lowfd. */
void fp_close_fds_from(int lowfd);

#endif
