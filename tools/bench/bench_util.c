/* bench_util.c — fpbench's shared helpers (see bench.h). */
#include "config.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Busy and total jiffies of all CPUs from /proc/stat. */
static int
cpu_jiffies(double *busy, double *total)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "re");
    int n;

    if (f == NULL)
        return -1;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += (double)v[i];
    *busy = *total - (double)v[3] - (double)v[4];     /* less idle, iowait */
    return 0;
}

/* CPU seconds used by this process and its reaped descendants. */
static double
tree_cpu_s(void)
{
    struct rusage self, kids;

    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec
                    + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec)
         + (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec
                    + kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) * 1e-6;
}

/* ------------------------------------------------------------------------
 * Runner processes
 * ------------------------------------------------------------------------ */

void
bench_fail(struct bench_result *r, const char *fmt, ...)
{
    va_list ap;

    r->ok = 0;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof(r->note), fmt, ap);
    va_end(ap);
}

int
run_isolated(bench_fn fn, const struct bench_args *a, struct bench_result *r,
             double timeout_s)
{
    struct bench_result *shared;
    int status;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        bench_fail(r, "mmap: %s", strerror(errno));
        return -1;
    }
    memset(shared, 0, sizeof(*shared));
    shared->p50_us = shared->p99_us = shared->cpu_us_per_job = -1;
    shared->rss_before_kb = shared->rss_after_kb = -1;
    fflush(NULL);
    /* To tell how busy the machine was with work that is not ours. */
    double busy0 = 0, total0 = 0, busy1 = 0, total1 = 0;
    double ours0 = tree_cpu_s(), wall0 = now_s();
    int have_stat = cpu_jiffies(&busy0, &total0) == 0;
    pid = fork();
    if (pid < 0) {
        bench_fail(r, "fork: %s", strerror(errno));
        munmap(shared, sizeof(*shared));
        return -1;
    }
    if (pid == 0) {
        /* A runner that hangs dies here instead of stalling the run. */
        alarm((unsigned)(timeout_s + 1));
        fn(a, shared);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *r = *shared;
    munmap(shared, sizeof(*shared));
    double wall = now_s() - wall0;
    if (have_stat && cpu_jiffies(&busy1, &total1) == 0 && wall > 0) {
        double hz = (double)sysconf(_SC_CLK_TCK);
        double foreign = ((busy1 - busy0) / hz - (tree_cpu_s() - ours0)) / wall;
        r->foreign_cpus = foreign > 0 ? foreign : 0;
    }
    if (WIFSIGNALED(status)) {
        bench_fail(r, "runner killed by signal %d%s", WTERMSIG(status),
                   WTERMSIG(status) == SIGALRM ? " (took too long)" : "");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench_fail(r, "runner exited with status %d", WEXITSTATUS(status));
        return -1;
    }
    return r->ok ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Clocks, CPU and /proc
 * ------------------------------------------------------------------------ */

double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double
self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

double
proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime, stime;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "re")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip past the last
     * ')'; then state is field 3, utime field 14, stime field 15. */
    char *p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                            "%*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The value of the first line of `path` that starts with `key`, in kB. */
static double
proc_kb_field(const char *path, const char *key)
{
    char line[256];
    size_t klen = strlen(key);
    double kb = -1;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0) {
            kb = strtod(line + klen, NULL);
            break;
        }
    }
    fclose(f);
    return kb;
}

double
proc_rss_kb(pid_t pid)
{
    char path[64];

    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    return proc_kb_field(path, "VmRSS:");
}

double
proc_private_kb(pid_t pid)
{
    char path[64];
    double clean, dirty;

    snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", (long)pid);
    clean = proc_kb_field(path, "Private_Clean:");
    dirty = proc_kb_field(path, "Private_Dirty:");
    return clean < 0 || dirty < 0 ? -1 : clean + dirty;
}

double
worst_private_kb(const pid_t *pids, size_t n)
{
    double worst = -1;

    for (size_t i = 0; i < n; i++) {
        double kb = proc_private_kb(pids[i]);
        if (kb > worst)
            worst = kb;
    }
    return worst;
}

size_t
proc_children(pid_t parent, pid_t *pids, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[512];
        long ppid;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[got] = '\0';
        char *p = strrchr(buf, ')');
        if (p != NULL && sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == parent) {
            if (n < max)
                pids[n] = (pid_t)atol(de->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

double
background_cpus(double secs)
{
    double b0, t0, b1, t1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (cpu_jiffies(&b0, &t0) < 0)
        return -1;
    usleep((useconds_t)(secs * 1e6));
    if (cpu_jiffies(&b1, &t1) < 0 || t1 <= t0)
        return -1;
    return (b1 - b0) / (t1 - t0) * (double)(ncpu > 0 ? ncpu : 1);
}

void
remove_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) < 0)
        fprintf(stderr, "fpbench: cannot remove %s: %s\n", dir, strerror(errno));
}

/* ------------------------------------------------------------------------
 * Latency histogram.  Values in ns: below 64 one bucket each; above, 32
 * buckets per power of two (each ~3% wide).  Quantiles report the bucket's
 * middle.
 * ------------------------------------------------------------------------ */

void
hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

static unsigned
hist_index(uint64_t ns)
{
    if (ns < 64)
        return (unsigned)ns;
    unsigned e = 63u - (unsigned)__builtin_clzll(ns);      /* >= 6 */
    unsigned m = (unsigned)(ns >> (e - 5)) & 31u;
    unsigned i = 64 + (e - 6) * 32 + m;
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static double
hist_value_ns(unsigned i)
{
    if (i < 64)
        return i;
    unsigned e = (i - 64) / 32 + 6, m = (i - 64) % 32;
    double lo = (double)((32ull + m) << (e - 5));
    return lo + (double)(1ull << (e - 5)) / 2;
}

void
hist_add(struct hist *h, double secs)
{
    uint64_t ns = secs <= 0 ? 0 : (uint64_t)(secs * 1e9);

    h->b[hist_index(ns)]++;
    h->n++;
}

double
hist_quantile_us(const struct hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->n == 0)
        return -1;
    want = (uint64_t)(q * (double)(h->n - 1)) + 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return hist_value_ns(i) / 1000.0;
    }
    return hist_value_ns(HIST_BUCKETS - 1) / 1000.0;
}

/* ------------------------------------------------------------------------
 * Payloads
 * ------------------------------------------------------------------------ */

char *
make_bin_payload(size_t n, size_t *len)
{
    size_t hs = n < 256 ? 2 : n < 65536 ? 3 : 5;
    unsigned char *p = malloc(hs + n);
    uint32_t x = 2463534242u;

    if (p == NULL)
        return NULL;
    if (hs == 2) {
        p[0] = 0xc4;
        p[1] = (unsigned char)n;
    } else if (hs == 3) {
        p[0] = 0xc5;
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
    } else {
        p[0] = 0xc6;
        p[1] = (unsigned char)(n >> 24);
        p[2] = (unsigned char)(n >> 16);
        p[3] = (unsigned char)(n >> 8);
        p[4] = (unsigned char)n;
    }
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[hs + i] = (unsigned char)x;
    }
    *len = hs + n;
    return (char *)p;
}

/* ------------------------------------------------------------------------
 * Mixed durations
 * ------------------------------------------------------------------------ */

const unsigned mixed_long_at[MIXED_LONGS] = { 0, 2, 4, 6 };

unsigned
mixed_job_us(unsigned i)
{
    for (unsigned k = 0; k < MIXED_LONGS; k++)
        if (mixed_long_at[k] == i)
            return MIXED_LONG_US;
    return MIXED_SHORT_US;
}

double
mixed_ideal_s(void)
{
    double total = 0, longest = 0;

    for (unsigned i = 0; i < MIXED_JOBS; i++) {
        double d = mixed_job_us(i) * 1e-6;
        total += d;
        if (d > longest)
            longest = d;
    }
    return total / 2 > longest ? total / 2 : longest;
}

void
mixed_finish(const char *who, const struct mixed_timeline *tl,
             struct bench_result *r)
{
    long pids[8];
    unsigned npids = 0;
    double makespan = tl->t_last - tl->t0, ideal = mixed_ideal_s();
    double last_long = 0;

    r->ok = 1;
    r->jobs = MIXED_JOBS;
    r->secs = makespan;
    r->jobs_s = MIXED_JOBS / makespan;
    r->aux[0] = makespan;
    r->aux[1] = ideal;
    r->aux[2] = makespan / ideal;
    for (unsigned i = 0; i < MIXED_JOBS; i++) {
        unsigned k;
        for (k = 0; k < npids && pids[k] != tl->pid[i]; k++)
            ;
        if (k == npids && npids < 8)
            pids[npids++] = tl->pid[i];
        if (mixed_job_us(i) == MIXED_LONG_US && tl->start[i] - tl->t0 > last_long)
            last_long = tl->start[i] - tl->t0;
    }
    r->aux[3] = last_long;
    fprintf(stderr, "fpbench: %s: makespan %.3f s = %.3f x ideal %.3f s\n",
            who, makespan, makespan / ideal, ideal);
    /* FPBENCH_TIMELINE set: every job, in submission order. */
    if (getenv("FPBENCH_TIMELINE") != NULL)
        for (unsigned i = 0; i < MIXED_JOBS; i++)
            fprintf(stderr, "fpbench:   job %3u %s worker %ld  start %.4f  "
                    "end %.4f\n", i, mixed_job_us(i) == MIXED_LONG_US ? "LONG "
                    : "short", tl->pid[i], tl->start[i] - tl->t0,
                    tl->end[i] - tl->t0);
    for (unsigned k = 0; k < npids; k++) {
        unsigned nshort = 0;
        double busy = 0, first = -1, last = 0, shorts_end = 0;
        char longs[256] = "";
        size_t used = 0;
        for (unsigned i = 0; i < MIXED_JOBS; i++) {
            if (tl->pid[i] != pids[k])
                continue;
            double s = tl->start[i] - tl->t0, e = tl->end[i] - tl->t0;
            busy += e - s;
            if (first < 0 || s < first)
                first = s;
            if (e > last)
                last = e;
            if (mixed_job_us(i) == MIXED_LONG_US) {
                if (used < sizeof(longs))
                    used += (size_t)snprintf(longs + used, sizeof(longs) - used,
                                             " #%u %.3f-%.3f", i, s, e);
            } else {
                nshort++;
                if (e > shorts_end)
                    shorts_end = e;
            }
        }
        fprintf(stderr, "fpbench:   worker %ld: long jobs (start-end s):%s;"
                " %u short (last ends %.3f s); busy %.3f s, idle after %.3f s\n",
                pids[k], longs[0] ? longs : " none", nshort, shorts_end, busy,
                last);
    }
}
