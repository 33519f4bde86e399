/*
 * worker.h — the worker side of the protocol: a plain blocking loop that
 * runs an fp_module's handler on each job the master sends (SPEC §6).
 */
#ifndef FP_WORKER_LOOP_H
#define FP_WORKER_LOOP_H

#include <stddef.h>
#include "forkpool.h"
#include "codec/frame.h"

struct fp_sandbox;
struct fp_hold_area;

/* fp_worker_args.slot of a worker started outside the slots (a spare):
 * its title carries no number, since the slot it may take is not known
 * when it starts. */
#define FP_WORKER_UNNUMBERED ((unsigned)-2)

struct fp_worker_args {
    const fp_module *module;     /* or NULL: load module_path first */
    const char      *module_path;
    const char      *config;     /* msgpack bytes for init, or NULL */
    size_t           config_len;
    struct fp_limits limits;     /* for jobs read and results written */
    void           (*title)(const char *title, void *arg);  /* or NULL */
    void            *title_arg;
    unsigned         slot;       /* shown in the title, unless
                                    FP_WORKER_UNNUMBERED */
    const struct fp_sandbox *sandbox;  /* locked down after init, or NULL */
    struct fp_hold_area *hold_area;    /* shared with the master, or NULL */
    unsigned         hold_results;     /* results held at most before they
                                          go out: a quarter of the window
                                          (pool.c says why) */
    /* Report what each job cost (meter.h) with its result, as a fourth
     * element the master reads from its own module workers only: SPEC §6
     * results stay ["ok", id, result] for any other reader. */
    int              receipts;
    int              peak_kept;  /* set by fp_worker_prepare: the worker's
                                    /proc/self/clear_refs is open at
                                    FP_WORKER_KEEP_FD */
};

/* In the forked worker, before it is confined or switches user (so with
 * the master's own rights, SPEC §4): load the module file, if that is
 * where its code comes from; open what measures each job's memory peak
 * (fp_meter_open_peak: a process that is no longer root cannot, SPEC §3
 * "Receipt"), kept in *keep_fd.  Returns 0, or an exit status after logging
 * why.  Matches fp_child_prepare_fn. */
int fp_worker_prepare(void *args, int *keep_fd);

/* Announce "ready", then serve jobs on `fd` until EOF.  Returns the process
 * exit status: 0 after a clean EOF, nonzero if init failed or the stream
 * broke.  Matches fp_child_fn. */
int fp_worker_main(int fd, void *args);

#endif
