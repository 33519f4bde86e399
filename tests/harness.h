/*
 * harness.h — helpers for the integration tests (check_daemon_*, check_ctl*,
 * check_sandbox, check_service, check_soak): run the real forkpoold and
 * forkpoolctl, talk MessagePack-RPC to the daemon, and wait for processes
 * without sleeping.  Implemented in harness.c and harness_*.c.
 *
 * Every wait has a deadline and is event-driven (poll on pipes, sockets and
 * pidfds).  While the harness waits for anything, it also keeps reading the
 * stderr of the daemon it was given, so tests can assert log lines (a
 * daemon whose log pipe stays full drops lines, check_fault_log.c).
 *
 * Failures that mean the test environment is broken (a pipe cannot be
 * created, a request cannot be packed) fail the current Check test from
 * inside the harness; outcomes a test asserts on are returned.
 *
 * Everything the harness starts is registered and killed by h_teardown(),
 * which the suite installs as a checked fixture (and which also runs at
 * exit), so no test leaks processes or temp dirs.
 */
#ifndef FP_TESTS_HARNESS_H
#define FP_TESTS_HARNESS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <msgpack.h>

#define H_FORKPOOLD   TOP_BUILDDIR "/src/daemon/forkpoold"
#define H_FORKPOOLCTL TOP_BUILDDIR "/src/ctl/forkpoolctl"
#define H_TESTMOD     TOP_BUILDDIR "/tests/.libs/testmod.so"
#define H_EXEC_WORKER TOP_BUILDDIR "/tests/exec_worker"
/* forkpoold's flags to load the test module (testmod.h). */
#define H_MOD         "--module", H_TESTMOD

/* Deadlines in milliseconds. */
#define H_READY_MS    5000      /* daemon start to "listening on" */
#define H_REPLY_MS    5000      /* a response that should come promptly */

/* ---- time, temp dirs, pids ------------------------------------------------ */

/* CLOCK_MONOTONIC in milliseconds. */
int64_t h_now_ms(void);
/* Milliseconds left until deadline (never negative). */
int  h_left_ms(int64_t deadline);

/* A fresh, registered (removed at teardown) directory under /tmp; the path
 * is short enough for a socket name inside it. */
const char *h_tempdir(void);

struct h_daemon;

/* A pidfd for pid, or -1 if the process is already gone (ESRCH). */
int h_pidfd(pid_t pid);
/* Wait until fd is readable (for a pidfd: the process has exited).
 * Drains d's stderr meanwhile if d is not NULL.  Returns 1, or 0 on
 * timeout. */
int h_wait_readable(int fd, int timeout_ms, struct h_daemon *d);
/* 1 if the process behind the pidfd has exited, without waiting. */
int h_pidfd_exited(int pidfd);

/* ---- the daemon ------------------------------------------------------------ */

struct h_daemon {
    pid_t  pid;
    int    pidfd;
    int    errfd;           /* read end of its stderr; -1 once at EOF */
    char   sock[108];       /* its control socket path */
    char  *log;             /* everything read from its stderr, NUL-ended */
    size_t loglen, logcap;
    int    reaped;
    int    status;          /* wait status once reaped */
};

struct h_opts {
    const char *sock;       /* socket path; NULL: <fresh temp dir>/s */
    int         umask;      /* umask to exec with; -1: inherit */
    int         core_unlimited; /* raise RLIMIT_CORE's soft limit to hard */
    int         no_wait;    /* do not wait for "listening on" */
    int         env_sock;   /* pass no -s: the daemon takes the socket from
                               $FORKPOOL_SOCKET (which must equal sock) */
    char *const *env;       /* more "NAME=value" for its environment */
    int         listen_fd;  /* > 0: hand this listening socket over as
                               systemd does (fd 3, LISTEN_FDS, LISTEN_PID) */
    int         no_sock;    /* pass no -s at all */
};

/* Start forkpoold with `-s SOCK` followed by args (NULL-terminated), its
 * stderr on a pipe, cwd in its temp dir, and wait up to H_READY_MS for its
 * "listening on" log line.  Returns the registered daemon, or NULL if it
 * exited or timed out first (the test should assert). */
struct h_daemon *h_daemon_start(const char *arg, ...)
    __attribute__((sentinel));
struct h_daemon *h_daemon_startv(const struct h_opts *o, char *const args[]);

/* Read whatever the daemon has written to stderr, waiting at most
 * timeout_ms for more (0: only what is there). */
void h_daemon_pump(struct h_daemon *d, int timeout_ms);
/* Wait until the log holds a complete line containing needle, starting the
 * search at byte `from` of the log.  Returns 1, or 0 on timeout or exit. */
int  h_daemon_wait_log(struct h_daemon *d, const char *needle, size_t from,
                       int timeout_ms);
/* How many complete log lines contain needle. */
int  h_log_count(const struct h_daemon *d, const char *needle);
/* Send sig to the daemon. */
void h_daemon_kill(struct h_daemon *d, int sig);
/* Wait for the daemon to exit and reap it.  Returns its wait status, or -1
 * on timeout. */
int  h_daemon_wait(struct h_daemon *d, int timeout_ms);
/* 1 while the daemon has not exited. */
int  h_daemon_alive(struct h_daemon *d);
/* Worker processes forked so far, from the -v debug log. */
int  h_spawns(const struct h_daemon *d);

/* ---- MessagePack-RPC client ----------------------------------------------- */

/* One response [1, msgid, error, result]; error is NULL when nil. */
struct h_resp {
    uint32_t               msgid;
    int                    is_outcome;  /* a submit_batch "outcome" notification */
    int                    is_event;    /* an "event" notification: result is
                                           its map (msgid 0, error NULL) */
    uint64_t               index;       /* its job's index in the batch */
    int                    is_progress; /* a "progress" notification: result
                                           is the value */
    uint64_t               id;          /* its job's id */
    uint64_t               seq;         /* arrival order on the connection */
    msgpack_unpacked       u;
    const msgpack_object  *error;
    const msgpack_object  *result;
};

struct h_rpc {
    int               fd;
    struct h_daemon  *d;            /* whose stderr to drain while waiting */
    msgpack_unpacker  up;
    msgpack_unpacked  pending;
    uint32_t          next_msgid;
    struct h_resp   **stash;        /* received, not yet claimed */
    size_t            nstash, capstash;
    size_t            got;          /* responses received in total */
    int               eof;
    int               corked;       /* h_rpc_send collects into cork */
    msgpack_sbuffer   cork;
};

/* Connect to d's socket (or to path).  Returns NULL if connect fails. */
struct h_rpc *h_rpc_open(struct h_daemon *d);
struct h_rpc *h_rpc_open_path(const char *path, struct h_daemon *pump);
void h_rpc_close(struct h_rpc *c);

/* Write raw bytes (reading responses meanwhile if the socket is full).
 * Returns 0, or -1 if the daemon closed the connection. */
int h_rpc_send_raw(struct h_rpc *c, const void *buf, size_t len);
/* Send [0, msgid, method, params], params given as JSON text (an array, or
 * anything else for malformed-request tests).  Returns the msgid. */
uint32_t h_rpc_send(struct h_rpc *c, const char *method, const char *params_json);
/* Between cork and uncork, requests are collected and then written with
 * one send(), so the daemon finds them all in one read. */
void h_rpc_cork(struct h_rpc *c);
void h_rpc_uncork(struct h_rpc *c);
/* submit [job] or [job, opts] (opts_json may be NULL). */
uint32_t h_rpc_submit(struct h_rpc *c, const char *job_json, const char *opts_json);
/* The response to msgid: from the stash or read with a deadline.  NULL on
 * timeout or EOF (the test asserts). */
struct h_resp *h_rpc_wait(struct h_rpc *c, uint32_t msgid, int timeout_ms);
/* The "outcome" notification of job `index` of the submit_batch request
 * msgid; NULL on timeout or EOF. */
struct h_resp *h_rpc_wait_outcome(struct h_rpc *c, uint32_t msgid, uint64_t index,
                                  int timeout_ms);
/* The "progress" notifications of request msgid received so far, in
 * arrival order (at most max of them, taken out of the stash).  Returns
 * how many. */
size_t h_rpc_take_progress(struct h_rpc *c, uint32_t msgid, struct h_resp **out,
                           size_t max);
/* The next "event" notification [2, "event", [map]] (after subscribe), in
 * the order they came: r->result is the map.  NULL on timeout or EOF. */
struct h_resp *h_rpc_next_event(struct h_rpc *c, int timeout_ms);
/* send + wait with H_REPLY_MS. */
struct h_resp *h_rpc_call(struct h_rpc *c, const char *method, const char *params_json);
/* Read until the daemon closes the connection.  Returns the number of
 * responses that arrived before EOF, or -1 on timeout. */
int h_rpc_wait_eof(struct h_rpc *c, int timeout_ms);
void h_resp_free(struct h_resp *r);

/* status: the result map (fails the test if there is no answer). */
struct h_resp *h_status(struct h_rpc *c);
/* Worker pids from a status result; returns how many (<= max). */
int h_status_pids(const struct h_resp *st, pid_t *pids, int max);

/* ---- msgpack objects --------------------------------------------------- */

/* Canonical compact JSON of o (keys sorted; "null" for NULL or nil; bin as
 * {"$bin": "<hex>"}).  An outcome map (with "id" and "result" or "detail")
 * is printed without its receipt, "stats" and "stderr": figures that vary
 * from run to run (tests that check them read them with h_get).  The
 * string lives until teardown. */
const char *h_json(const msgpack_object *o);
/* map[key], or NULL. */
const msgpack_object *h_get(const msgpack_object *map, const char *key);
/* map[key] as an integer / a string (fail the test if missing or of
 * another type).  Strings live until teardown. */
int64_t h_get_int(const msgpack_object *map, const char *key);
const char *h_get_str(const msgpack_object *map, const char *key);

/* ---- running programs ------------------------------------------------------ */

struct h_run {
    int    status;          /* wait status; -1 if it had to be killed */
    char  *out, *err;       /* NUL-ended; live until teardown */
    size_t outlen, errlen;
    /* stdout as it came.  For forkpoolctl, `out` has its outcome lines
     * without their receipts (h_strip_receipts), as h_json prints outcome
     * maps; out_raw has them. */
    char  *out_raw;
    size_t outlen_raw;
};

/* Take the receipt out of each outcome line (one with "ok": ...) in text:
 * its ", \"stats\": {...}" and ", \"stderr\": \"...\"".  In place; returns
 * the new length. */
size_t h_strip_receipts(char *text);

/* Run argv with stdin_text on stdin (NULL: /dev/null), capture stdout and
 * stderr, wait at most timeout_ms (then SIGKILL, status -1).  Drains d's
 * stderr meanwhile if d is not NULL.  Returns the wait status. */
int h_run_argv(struct h_run *r, struct h_daemon *d, const char *stdin_text,
               int timeout_ms, char *const argv[]);
/* The same in two halves: start argv (stdin_text on its stdin) and go on;
 * then wait for it as h_run_argv does.  Finish what you start (one left
 * running is killed and reaped only at the suite's end). */
struct h_proc;
struct h_proc *h_run_start(const char *stdin_text, char *const argv[]);
int h_run_finish(struct h_run *r, struct h_proc *p, struct h_daemon *d,
                 int timeout_ms);
/* forkpoolctl -s d->sock ARGS... started in the background (h_run_start). */
struct h_proc *h_ctl_start(struct h_daemon *d, const char *arg, ...)
    __attribute__((sentinel));
/* forkpoolctl -s d->sock ARGS... (NULL-terminated), 10 s deadline. */
int h_ctl(struct h_run *r, struct h_daemon *d, const char *stdin_text,
          const char *arg, ...) __attribute__((sentinel));
/* 1 if the forkpoolctl binary has been built. */
int h_have_ctl(void);
/* Fail the test unless the forkpoolctl binary has been built. */
void h_need_ctl(void);
/* Exit code of a wait status, or -1 if it did not exit normally. */
int h_exit_code(int status);
/* Lines in text (a final line without '\n' counts). */
int h_count_lines(const char *text);

/* Kill and reap everything the harness started; remove temp dirs.  The
 * per-test checked teardown.  A failing Check test exits without running
 * it, which is what h_suite_begin/h_suite_end are for. */
void h_teardown(void);

/* Around srunner_run_all in main(): make the runner a child subreaper (so
 * the processes of a failed test, killed by Check, are reaped by it rather
 * than left to init) and create the one directory every test's temp dirs
 * live in; at the end reap and kill what is left and remove the tree. */
void h_suite_begin(void);
void h_suite_end(void);
/* Run every test of s in fork mode between h_suite_begin/h_suite_end;
 * returns main's exit status. */
int h_run_suite(Suite *s);
/* A tcase with h_teardown as its checked teardown and a per-case timeout
 * of timeout_s seconds. */
TCase *h_tcase(const char *name, int timeout_s);

/* Processes whose parent is `parent` (zombies included), from /proc; their
 * pids go into out (at most max) unless out is NULL.  Returns how many. */
int h_children_of(pid_t parent, pid_t *out, int max);

/* ---- assertions around the daemon (fail the test when they do not hold) -- */

/* Compact JSON with sorted keys, as h_json() prints msgpack values (a
 * buffer that lives for eight calls). */
const char *h_canon(const char *json);
/* d, after asserting h_daemon_start gave one. */
struct h_daemon *h_started(struct h_daemon *d);
/* A connection to d (asserted). */
struct h_rpc *h_connected(struct h_daemon *d);
/* Submit one job and wait for its response (which must come). */
struct h_resp *h_submit(struct h_rpc *c, const char *job, const char *opts);
/* Submit a job that must end ok; returns its result. */
const msgpack_object *h_submit_ok(struct h_rpc *c, const char *job);
/* The worker pid a job runs on (testmod's "pid" op; for -w 1 daemons). */
pid_t h_worker_pid(struct h_rpc *c);

/* Built with AddressSanitizer: its quarantine keeps freed memory resident
 * and its shadow takes terabytes of address space, so RSS bounds and
 * address-space limits measure ASan, not forkpool. */
#if defined(__SANITIZE_ADDRESS__)
# define H_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define H_ASAN 1
# endif
#endif
#ifndef H_ASAN
# define H_ASAN 0
#endif

/* ---- Redis (harness_redis.c) ------------------------------------------- */

/* A redis-server of the test's own: UNIX socket in a temp dir, AOF with
 * appendfsync always, no TCP port; killed at teardown. */
struct h_redis {
    pid_t pid;              /* -1 while it is down */
    char  dir[64];
    char  sock[108];
    char  url[120];         /* "unix:<sock>", for --redis */
};

/* 1 if redis-server is on PATH (suites skip, exit 77, without it). */
int h_redis_available(void);
/* Start one and wait until it answers PING; fails the test otherwise. */
struct h_redis *h_redis_start(void);
/* Send sig; for SIGKILL and SIGTERM also reap it (it is then down). */
void h_redis_kill(struct h_redis *r, int sig);
/* kill -9 and start again on the same dir and AOF. */
void h_redis_restart(struct h_redis *r);
/* A blocking hiredis connection (redisContext *), for the test's own
 * commands; the caller frees it with redisFree. */
void *h_redis_connect(struct h_redis *r);

#endif /* FP_TESTS_HARNESS_H */
