/*
 * testmod.h — the test handler module: one implementation (testmod_impl.c)
 * that the daemon loads as tests/.libs/testmod.so (testmod.c) and that the
 * in-process pool suites link directly (pool_harness.c).
 *
 * Job: any value is echoed back, except a map with an "op" key:
 *   {"op": "crash"}            SIGSEGV (a real invalid write); first, with
 *                              "say": s, the lines "s 0000", "s 0001"...
 *                              ("n" of them, default 1) on stderr, and
 *                              with "burn": f, f seconds of CPU burnt
 *   {"op": "assert"}           a failed assert() (its message on stderr,
 *                              then SIGABRT)
 *   {"op": "abort"}            abort()
 *   {"op": "sigkill"}          SIGKILL itself (no handler can run)
 *   {"op": "exit", "code": n}  _exit(n) mid-job
 *   {"op": "fail", "detail": v} error outcome with detail v
 *                              (default "failed on purpose")
 *   {"op": "sleep", "s": f}    sleep f seconds, result "slept"
 *   {"op": "hang"}             never return
 *   {"op": "spin"}             burn CPU forever
 *   {"op": "burn", "s": f}     burn f seconds of CPU time, result "burnt"
 *   {"op": "burn_child", "s": f}
 *                              the same, in a child the job waits for
 *   {"op": "touch", "mib": n}  touch n MiB of fresh memory and give it back;
 *                              result "touched"
 *   {"op": "pid"}              result: the worker's pid
 *   {"op": "threads"}          result: how many threads the worker has
 *   {"op": "fds"}              result: ["fd -> target", ...] of /proc/self/fd
 *   {"op": "none"}             pack nothing (a handler bug)
 *   {"op": "grow", "mib": n}   allocate and touch n MiB, and keep it
 *   {"op": "say", "text": s}   write s to stderr and "stdout: s" to stdout
 *   {"op": "chatter", "text": s, "n": k, "s": f}
 *                              write the line s to stderr k times (default
 *                              1), then sleep f seconds; result: the pid
 *   {"op": "flood", "s": f}    write "y" lines to stderr as fast as they go
 *                              for f seconds (default 1); result "flooded"
 *   {"op": "yes"}              leave a child writing "y" lines to stderr
 *                              until a write fails; result: its pid
 *   {"op": "garbage"}          write bytes that are not msgpack to the master
 *   {"op": "extra"}            send a second, unsolicited result
 *   {"op": "raw", "hex": h}    write the bytes h to the master, then hang
 *   {"op": "greet"}            result: init's config "greeting", or nil
 *   {"op": "fork_abort"}       fork a child that abort()s, wait for it;
 *                              result "child aborted"
 *   {"op": "trapped_fault"}    a NULL write that init's own SIGSEGV handler
 *                              recovers from (config "trap_segv"); result
 *                              "recovered"
 *   {"op": "count", "n": n, "path": p, "s": f}
 *                              append "n pid\n" to file p, sleep f seconds
 *                              (a float; default none), then echo the job
 *   {"op": "kill_master"}      SIGKILL the worker's master, then hang
 *   {"op": "crash_once", "path": p}
 *                              crash if p did not exist yet (and create
 *                              it), otherwise echo the job
 *   {"op": "spawn", "how": h}  start a process that sleeps forever and
 *                              leave it behind; result: its pid.  h is
 *                              "child" (the default: a child of the
 *                              worker), "setsid" (a child in a session of
 *                              its own) or "orphan" (a grandchild whose
 *                              parent has exited); with "path": p, its pid
 *                              written to file p too; with "then": "hang",
 *                              the job then never returns
 *   {"op": "helper"}           result: the pid of the helper init started
 *                              (config "helper"), or nil
 *   {"op": "progress", "values": [v, ...], "every": f, "after": g}
 *                              report each v through fp_progress (or, with
 *                              "n": k instead of "values", the integers 1 to
 *                              k; with "pad": p, a str of p bytes in place
 *                              of each integer), sleeping f seconds
 *                              (default 0) before each and g seconds
 *                              (default 0) after the last; result: how
 *                              many; error outcome
 *                              "fp_progress failed: ..." if one is refused
 *   {"op": "progress_bad", "bytes": n}
 *                              result: what fp_progress says (errno names,
 *                              "0" = taken) to bytes that are not msgpack,
 *                              to two values, to nothing, to a bin of n
 *                              bytes (default 1 MiB), then to a good value
 *   {"op": "progress_thread"}  leave a thread that calls fp_progress in a
 *                              tight loop, across every later job of the
 *                              worker (once per worker); result "started"
 *   {"op": "progress_outside"} result: what fp_progress said when init
 *                              called it ("ESRCH": no job was running)
 * Any other op is an error outcome, detail "unknown op".
 *
 * Config (--module-config, fp_config.module_config), a map:
 *   "fail_init": true          init fails
 *   "fail_init_if": "/path"    init fails while that file exists
 *   "trap_segv": true          init installs a SIGSEGV handler of its own
 *                              (a runtime trapping its faults)
 *   "greeting": s              what "greet" answers
 *   "hang_init": true          init never returns
 *   "helper": true             init starts a helper process that sleeps
 *                              for the life of the worker
 */
#ifndef FP_TESTS_TESTMOD_H
#define FP_TESTS_TESTMOD_H

#include "forkpool.h"

int  testmod_init(void **state, const msgpack_object *config);
int  testmod_handle(void *state, const msgpack_object *job, msgpack_packer *out);
void testmod_fini(void *state);

#endif
