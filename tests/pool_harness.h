/*
 * pool_harness.h — the pool embedded in-process, exactly as a library user
 * would embed it, for the check_pool_* suites.
 *
 * This is also the worked example of the embedding API: the test module
 * (testmod.h) linked in, libev's default loop, jobs in through
 * fp_pool_submit / fp_pool_submit_object, outcomes out through a callback.
 * The loop runs until the outcomes a test expects have arrived (the callback
 * breaks it); a deadline timer fails the test if that takes absurdly long.
 * Nothing waits by sleeping.
 *
 * One pool per test on the default loop; every outcome is recorded in H.
 * Check runs each test in a fresh forked process, so each gets a fresh
 * default loop and no worker outlives it.
 */
#ifndef FP_TESTS_POOL_HARNESS_H
#define FP_TESTS_POOL_HARNESS_H

#include <check.h>
#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkpool.h"

/* The --exec test worker (exec_worker.c); a check program, built by
 * `make check` before any suite runs. */
#define PH_EXEC_WORKER TOP_BUILDDIR "/tests/exec_worker"

/* One outcome, copied out of the done callback. */
struct rec {
    uint64_t  id;
    fp_kind   kind;
    unsigned  attempts;
    char     *data;         /* copy of the msgpack bytes */
    size_t    len;
    char     *str;          /* the value decoded, when it is a str */
    int       is_int;       /* the value decoded, when it is an integer */
    int64_t   ival;
    fp_receipt stats;       /* the outcome's receipt */
    char     *errtail;      /* its stderr tail (NUL added), or NULL */
    size_t    errtail_len;
};

struct harness {
    struct ev_loop *loop;
    fp_pool        *pool;

    struct rec     *recs;
    size_t          nrecs, caprecs;

    /* run_until's state */
    int           (*until)(void);
    int             expired;
    ev_timer        deadline, poll;

    /* what the waits look for */
    size_t          want_recs;
    uint64_t        want_id;

    int             drained_calls;
    int             drained_cut_off;
    size_t          recs_at_drained;
    ev_tstamp       drained_at;

    char            log[16384];
    size_t          loglen;
};

extern struct harness H;

/* The checked fixture: a fresh H on the default loop / free the pool and
 * every record. */
void setup(void);
void teardown(void);

/* A tcase with the fixture and the per-case timeout every pool test uses. */
TCase *ph_tcase(const char *name);
/* Run the suite (fork mode, as Check defaults to); main's exit status. */
int ph_run_suite(Suite *s);

/* ---- callbacks ---------------------------------------------------------- */

/* The done callback: copy the outcome (its bytes live only during the call). */
void record_cb(const fp_outcome *o, void *arg);
/* For rejected submissions: their callback must never run. */
void never_cb(const fp_outcome *o, void *arg);
/* fp_pool_drain's callback: counts calls, notes cut_off and the time. */
void drained_cb(fp_pool *pool, int cut_off, void *arg);

/* ---- waiting ------------------------------------------------------------ */

/* Run the loop until pred() holds; fail the test if `limit` seconds pass
 * first.  `what` names the condition in the failure message. */
void run_until(int (*pred)(void), double limit, const char *what);
/* Run the loop for `secs` seconds of loop time, whatever happens. */
void run_for(double secs);
/* Run until at least n outcomes in all have arrived. */
void wait_outcomes(size_t n, double limit);
/* Run until job `id` has its outcome; return it. */
const struct rec *wait_job(uint64_t id, double limit);

/* Conditions for run_until. */
int drained(void);
int one_busy(void);
int one_busy_nothing_queued(void);
int two_idle(void);

/* ---- what arrived --------------------------------------------------------- */

const struct rec *rec_for(uint64_t id);
/* How many outcomes job id got (exactly one, always, is the guarantee). */
unsigned count_for(uint64_t id);
/* The outcome's value when it is a str, or "<not a string>". */
const char *detail(const struct rec *r);
fp_stats stats(void);
/* How many captured log lines contain `needle`. */
int log_count(const char *needle);

/* ---- the pool and its jobs ---------------------------------------------- */

/* A config with the test module, `workers` workers and captured logs. */
void base_config(fp_config *cfg, unsigned workers);
/* fp_pool_new + fp_pool_start into H.pool (asserted). */
void start_pool(const fp_config *cfg);
/* argv of the exec worker in `mode` (exec_worker.c), for cfg->exec_argv. */
char **exec_worker_argv(const char *mode);

/* Submit raw msgpack bytes (asserted accepted); returns the id. */
uint64_t submit_bytes(const char *buf, size_t len, const fp_job_opts *opts);
/* Submit {"op": op}, or {"op": op, key: value}. */
uint64_t submit_op(const char *op, const fp_job_opts *opts);
uint64_t submit_op_num(const char *op, const char *key, double value,
                       const fp_job_opts *opts);
uint64_t submit_op_str(const char *op, const char *key, const char *value,
                       const fp_job_opts *opts);
/* Submit a plain integer (echoed back) through fp_pool_submit_object. */
uint64_t submit_int(int64_t v);
/* Run `n` quick jobs to their end, so that the pool knows jobs are quick
 * (and may send later ones ahead to a busy worker). */
void warm_up(int n);
/* The pid of the worker that runs the next job (a single-worker pool). */
pid_t worker_pid_by_job(void);
/* msgpack bytes of {key: true} or {key: "str"}; the caller frees. */
char *config_map(const char *key, const char *str, size_t *len);

#endif /* FP_TESTS_POOL_HARNESS_H */
