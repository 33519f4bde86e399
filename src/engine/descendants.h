/*
 * descendants.h — in a module worker: nothing a job started outlives the
 * job.
 *
 * The worker is a child subreaper (PR_SET_CHILD_SUBREAPER), so whatever a
 * handler starts stays below it: a process whose parent dies (a shell's
 * `sleep 300 &` once the shell has exited, a double fork, a setsid()
 * "daemon") becomes the worker's own child rather than init's.  When a
 * job ends, every child of the worker is killed (SIGKILL, with its
 * process group if it leads one) and reaped, round after round as the
 * orphans of the killed come up, until none is left: then the job's
 * result goes out.  Children the module's init started are spared (a
 * helper process that serves every job); they go when the worker stops.
 *
 * Cost: a job too quick to have created a process (creating one takes
 * the kernel several microseconds at the very least) costs two reads of
 * the vDSO clock, and is swept with the rest of its burst, once, before
 * the worker waits for more work; any other job costs one
 * waitpid(WNOHANG) when it leaves nothing behind.  Children are found
 * through /proc (the kernel's children lists where it has them, else the
 * parent field of every process).  Not under the strict sandbox: its
 * seccomp filter allows none of this, and no handler can fork there.
 */
#ifndef FP_DESCENDANTS_H
#define FP_DESCENDANTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fp_descendants {
    pid_t   *spared;    /* children of init, alive at the first job */
    size_t   nspared;
    int      on;        /* 0: do nothing (strict sandbox) */
    int      due;       /* quick jobs ran since the last sweep */
};

/* At the worker's start, before the module's init: orphans below the
 * worker become its children from now on.  Returns 0, or -1 (errno set:
 * the sweeps then reach only what the worker itself started). */
int  fp_descendants_start(struct fp_descendants *d);
/* After init: its children, alive now, are spared by the sweeps of
 * fp_descendants_job_end. */
void fp_descendants_spare_current(struct fp_descendants *d);
/* A job has ended after running `ran_ns` (the caller times its jobs
 * anyway, and a clock read costs a tenth of a trivial job: meter.h): kill
 * and reap every child of the worker but the spared ones, and their
 * descendants -- now, or, after a job too quick to have started a process,
 * at fp_descendants_idle. */
void fp_descendants_job_end(struct fp_descendants *d, uint64_t ran_ns);
/* The worker is about to write what it holds and wait for more work: the
 * sweep the quick jobs before put off. */
void fp_descendants_idle(struct fp_descendants *d);
/* The worker stops: kill and reap every child, spared ones too; free d. */
void fp_descendants_stop(struct fp_descendants *d);

/* The children of process `parent` (zombies included) into out (at most
 * max; NULL to count only).  Returns how many there are, or -1 if /proc
 * cannot tell. */
int  fp_children_of(pid_t parent, pid_t *out, size_t max);
/* Process `pid`'s state letter in /proc (R, S, D, Z, T...), or -1 if it
 * cannot be read (gone, or no /proc). */
int  fp_process_state(pid_t pid);

#endif
