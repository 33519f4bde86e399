/*
 * check_pool_spares.c — spare workers (fp_config.spare_workers) in an
 * embedded pool: a ready spare takes a dead or recycled worker's place at
 * once and another is started behind it; spares never get a job; a reload
 * renews them; a drain and the pool's end stop them; a spare that dies is
 * replaced.
 *
 * The pool runs in-process with the test module (pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "pool_harness.h"

#define MAX_ROWS 16

/* The pid of the first worker shown in `state` ("spare", "idle", ...), or 0. */
static pid_t
pid_in_state(const char *state)
{
    fp_worker_info rows[MAX_ROWS];
    size_t n = fp_pool_worker_info(H.pool, rows, MAX_ROWS);

    for (size_t i = 0; i < n && i < MAX_ROWS; i++)
        if (strcmp(rows[i].state, state) == 0)
            return rows[i].pid;
    return 0;
}

static unsigned want_workers, want_spares;

/* Every worker idle and every spare ready, nothing starting. */
static int
settled(void)
{
    fp_stats st = stats();
    return st.idle == want_workers && st.spares == want_spares
           && st.starting == 0 && st.live == want_workers + want_spares;
}

/* Start the pool and wait until its workers are idle and its spares ready. */
static void
start_settled(const fp_config *cfg)
{
    start_pool(cfg);
    want_workers = cfg->workers;
    want_spares = cfg->spare_workers;
    run_until(settled, 20, "workers idle and spares ready");
}

static void
start_with_spares(unsigned workers, unsigned spares)
{
    fp_config cfg;

    base_config(&cfg, workers);
    cfg.spare_workers = spares;
    start_settled(&cfg);
}

/* Pids the spare wait_new_spare waits for must not have: it is one
 * started since they were seen. */
static pid_t new_spare_not[3];

static int
a_new_spare_is_ready(void)
{
    pid_t s = pid_in_state("spare");
    return settled() && s != 0 && s != new_spare_not[0] && s != new_spare_not[1]
           && s != new_spare_not[2];
}

static void
wait_new_spare(pid_t a, pid_t b, pid_t c)
{
    new_spare_not[0] = a;
    new_spare_not[1] = b;
    new_spare_not[2] = c;
    run_until(a_new_spare_is_ready, 20, "a new spare ready");
}

/* The crashed outcome is delivered once the dead worker is reaped; by then
 * its place is taken by the spare, ready for the next job -- no worker is
 * starting. */
START_TEST(a_spare_takes_a_crashed_workers_place_at_once)
{
    start_with_spares(1, 1);
    pid_t worker = worker_pid_by_job(), spare = pid_in_state("spare");
    ck_assert_int_gt(spare, 0);
    ck_assert_int_ne(spare, worker);

    const struct rec *r = wait_job(submit_op("crash", NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    fp_stats st = stats();
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_uint_eq(st.busy, 0);
    ck_assert_int_eq(pid_in_state("idle"), spare);
    ck_assert_uint_eq(st.restarts, 1);

    ck_assert_int_eq(worker_pid_by_job(), spare);
    wait_new_spare(worker, spare, 0);
    ck_assert_uint_eq(stats().restarts, 1);     /* a new spare is no restart */
}
END_TEST

/* ---- gated starts: testmod's init waits until the test writes
 * GATE/PID ("init_gate"), so the test decides which worker is ready when. */

static char gate[64];

static void
open_gate(pid_t pid)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%ld", gate, (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("go", f);
    fclose(f);
}

/* The pids of the workers now starting (slots first, then spares, as
 * fp_pool_worker_info lists them); returns how many. */
static size_t
starting(pid_t *pids, size_t max)
{
    fp_worker_info rows[MAX_ROWS];
    size_t n = fp_pool_worker_info(H.pool, rows, MAX_ROWS), k = 0;

    for (size_t i = 0; i < n && i < MAX_ROWS; i++)
        if (strcmp(rows[i].state, "starting") == 0 && k < max)
            pids[k++] = rows[i].pid;
    return k;
}

static int
gates_open_and_settled(void)
{
    pid_t pids[MAX_ROWS];
    size_t n = starting(pids, MAX_ROWS);

    for (size_t i = 0; i < n; i++)
        open_gate(pids[i]);
    return settled();
}

static int
two_starting(void)
{
    pid_t pids[2];
    return starting(pids, 2) == 2;
}

static void
remove_gate(void)
{
    DIR *d = opendir(gate);
    struct dirent *e;
    char path[320];

    while (d != NULL && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", gate, e->d_name);
            unlink(path);
        }
    if (d != NULL)
        closedir(d);
    rmdir(gate);
}

/* The slot's replacement is still starting when a spare becomes ready: the
 * spare takes the slot and the job waiting runs on it at once, and the
 * process still starting becomes the spare.  (Before, the job waited for
 * that start, however long the module's init took, beside a ready spare.) */
START_TEST(a_spare_ready_first_takes_the_place_of_a_starting_worker)
{
    fp_config cfg;
    size_t len;
    pid_t pids[2];

    strcpy(gate, "/tmp/fp-gate-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(gate));
    base_config(&cfg, 1);
    cfg.spare_workers = 1;
    cfg.module_config = config_map("init_gate", gate, &len);
    cfg.module_config_len = len;
    start_pool(&cfg);
    want_workers = 1;
    want_spares = 1;
    run_until(gates_open_and_settled, 20, "workers idle and spares ready");
    pid_t spare = pid_in_state("spare");

    /* The worker crashes: the spare takes its place; a new spare starts,
     * held at its gate. */
    ck_assert_int_eq(wait_job(submit_op("crash", NULL), 20)->kind, FP_CRASHED);
    ck_assert_int_eq(pid_in_state("idle"), spare);
    /* That one crashes too: no spare is ready, so the slot starts its own
     * replacement, held at its gate as well. */
    ck_assert_int_eq(wait_job(submit_op("crash", NULL), 20)->kind, FP_CRASHED);
    run_until(two_starting, 20, "the slot's replacement and a spare starting");
    ck_assert_uint_eq(starting(pids, 2), 2);
    pid_t own = pids[0], new_spare = pids[1];

    uint64_t id = submit_op("pid", NULL);
    open_gate(new_spare);
    const struct rec *r = wait_job(id, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_int_eq(r->ival, new_spare);
    ck_assert_uint_eq(starting(pids, 2), 1);
    ck_assert_int_eq(pids[0], own);

    open_gate(own);
    run_until(settled, 20, "the slot's own replacement ready, as the spare");
    ck_assert_int_eq(pid_in_state("spare"), own);
    ck_assert_int_eq(pid_in_state("idle"), new_spare);
    ck_assert_uint_eq(stats().restarts, 2);
    free((void *)cfg.module_config);
    remove_gate();
}
END_TEST

/* However many jobs wait, only the active slot runs them. */
START_TEST(spares_are_given_no_jobs)
{
    start_with_spares(1, 2);
    pid_t worker = worker_pid_by_job();

    for (int i = 0; i < 30; i++)
        submit_op("pid", NULL);
    wait_outcomes(31, 20);
    for (size_t i = 0; i < H.nrecs; i++) {
        ck_assert_int_eq(H.recs[i].kind, FP_OK);
        ck_assert_int_eq(H.recs[i].ival, worker);
    }
    ck_assert_uint_eq(stats().spares, 2);
}
END_TEST

/* A worker recycled by max_jobs is replaced by the spare too. */
START_TEST(a_recycled_worker_is_replaced_by_the_spare)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.max_jobs = 3;
    cfg.spare_workers = 1;
    start_settled(&cfg);
    pid_t spare = pid_in_state("spare");

    for (int i = 0; i < 3; i++)
        submit_op("pid", NULL);
    wait_outcomes(3, 20);
    pid_t first = (pid_t)rec_for(1)->ival;
    ck_assert_int_eq(rec_for(3)->ival, first);
    ck_assert_int_eq(worker_pid_by_job(), spare);
    wait_new_spare(first, spare, 0);
    ck_assert_uint_eq(stats().restarts, 0);     /* recycled, not died */
}
END_TEST

/* A reload stops the old code's spare and starts one of the new. */
START_TEST(a_reload_renews_the_spares)
{
    start_with_spares(1, 1);
    pid_t worker = worker_pid_by_job(), spare = pid_in_state("spare");

    fp_pool_reload(H.pool);
    uint64_t id = submit_op("pid", NULL);
    ck_assert_int_eq(wait_job(id, 20)->kind, FP_OK);
    wait_new_spare(worker, spare, 0);
    ck_assert_uint_eq(stats().live, 2);
}
END_TEST

/* A spare that dies is replaced by another; the slots are untouched. */
START_TEST(a_dead_spare_is_replaced)
{
    start_with_spares(1, 1);
    pid_t worker = worker_pid_by_job(), spare = pid_in_state("spare");

    ck_assert_int_eq(kill(spare, SIGKILL), 0);
    wait_new_spare(worker, spare, 0);
    ck_assert_int_eq(worker_pid_by_job(), worker);
    ck_assert_msg(log_count("spare worker") == 1, "log: %s", H.log);
}
END_TEST

/* A drain stops the spares with the workers; nothing is left. */
START_TEST(a_drain_stops_the_spares)
{
    start_with_spares(1, 2);
    pid_t pids[4];
    size_t n = fp_pool_pids(H.pool, pids, 4);
    ck_assert_uint_eq(n, 3);

    fp_pool_drain(H.pool, 10, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_uint_eq(fp_pool_pids(H.pool, NULL, 0), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert(kill(pids[i], 0) < 0 && errno == ESRCH);
}
END_TEST

START_TEST(too_many_spares_is_refused)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    cfg.spare_workers = FP_MAX_SPARE_WORKERS + 1;
    ck_assert_ptr_null(fp_pool_new(H.loop, &cfg, err, sizeof err));
    ck_assert_str_eq(err, "65 spare workers: at most 64");
}
END_TEST

static Suite *
pool_spares_suite(void)
{
    Suite *s = suite_create("pool_spares");
    TCase *tc = ph_tcase("spares");

    tcase_add_test(tc, a_spare_takes_a_crashed_workers_place_at_once);
    tcase_add_test(tc, a_spare_ready_first_takes_the_place_of_a_starting_worker);
    tcase_add_test(tc, spares_are_given_no_jobs);
    tcase_add_test(tc, a_recycled_worker_is_replaced_by_the_spare);
    tcase_add_test(tc, a_reload_renews_the_spares);
    tcase_add_test(tc, a_dead_spare_is_replaced);
    tcase_add_test(tc, a_drain_stops_the_spares);
    tcase_add_test(tc, too_many_spares_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ph_run_suite(pool_spares_suite());
}
