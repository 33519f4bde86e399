/*
 * bench_cclient.c — the C client's rows beside tools/bench/bench_pyclient.py:
 * trivial jobs ("x") through a running forkpoold, with libforkpoolclient,
 * the same three ways the Python client is measured:
 *
 *   C map          submit_batch requests of up to 256 jobs, at most
 *                  `window` jobs without an outcome (what Client.map does)
 *   C submit_async one submit request per job, `window` in flight
 *   C submit       one blocking submit at a time (round trips; N/10 jobs)
 *
 *   bench_cclient -s SOCKET [-n JOBS] [--window W]
 *
 * Prints "row<TAB>jobs<TAB>seconds<TAB>jobs/s" lines, as the Python one.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forkpool_client.h"

#define BATCH 256
static const char job[] = "\xa1x";     /* "x" */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(fp_client *c, const char *what)
{
    fprintf(stderr, "bench_cclient: %s: %s\n", what, fp_client_error(c));
    exit(1);
}

/* Take one message; count the jobs it ends (a batch's own response ends
 * none). */
static long
take(fp_client *c)
{
    struct fp_client_msg m;
    struct fp_client_outcome o;

    if (fp_client_wait(c, &m, 30) != 1)
        die(c, "wait");
    if (m.type == FP_CLIENT_MSG_OUTCOME
        || (m.type == FP_CLIENT_MSG_RESPONSE && m.error == NULL
            && fp_client_outcome(c, &m, &o) == 0))
        return 1;
    if (m.type == FP_CLIENT_MSG_RESPONSE && m.error != NULL)
        die(c, "a job was refused");
    return 0;
}

static void
run_map(fp_client *c, long n, long window)
{
    struct fp_client_job jobs[BATCH];
    long sent = 0, done = 0;

    for (int i = 0; i < BATCH; i++)
        jobs[i] = (struct fp_client_job){ job, sizeof job - 1, NULL, NULL };
    while (done < n) {
        while (sent < n && sent - done < window) {
            long k = n - sent < BATCH ? n - sent : BATCH;
            if (k > window - (sent - done))
                k = window - (sent - done);
            if (fp_client_submit_batch(c, jobs, (size_t)k, NULL, NULL) != 0)
                die(c, "submit_batch");
            sent += k;
        }
        done += take(c);
    }
}

static void
run_async(fp_client *c, long n, long window)
{
    long sent = 0, done = 0;

    while (done < n) {
        while (sent < n && sent - done < window) {
            if (fp_client_submit_async(c, job, sizeof job - 1, NULL, NULL) != 0)
                die(c, "submit_async");
            sent++;
        }
        done += take(c);
    }
}

static void
run_submit(fp_client *c, long n, long window)
{
    struct fp_client_outcome o;

    (void)window;
    for (long i = 0; i < n; i++)
        if (fp_client_submit(c, job, sizeof job - 1, NULL, &o) != 0)
            die(c, "submit");
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void      (*run)(fp_client *, long, long);
        long        div;
    } rows[] = {
        { "C map", run_map, 1 },
        { "C submit_async", run_async, 1 },
        { "C submit", run_submit, 10 },
    };
    const char *sock = NULL;
    long n = 100000, window = 256;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
            window = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cclient [-s SOCKET] [-n JOBS] [--window W]\n");
            return 2;
        }
    }
    if (n < 1 || window < 1) {
        fprintf(stderr, "bench_cclient: -n and --window are counts >= 1\n");
        return 2;
    }
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        long jobs = n / rows[r].div > 0 ? n / rows[r].div : 1;
        fp_client *c;
        if (fp_client_connect(&c, sock, 30) != 0)
            die(c, "connect");
        rows[r].run(c, jobs < 1000 ? jobs : 1000, window);     /* warm up */
        double t = now_s();
        rows[r].run(c, jobs, window);
        t = now_s() - t;
        printf("%s\t%ld\t%.3f\t%.0f\n", rows[r].name, jobs, t, (double)jobs / t);
        fflush(stdout);
        fp_client_close(c);
    }
    return 0;
}
