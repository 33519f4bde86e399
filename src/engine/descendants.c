/* descendants.c — what a job started dies with the job (descendants.h). */
#include "config.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "descendants.h"

#define SWEEP_BATCH   256   /* children killed per round */
/* A sweep follows orphans down as long as each round kills something
 * (every round kills at least one process, so the process table bounds
 * it), within this much time: a chain of setsid'd generations thousands
 * deep still dies whole, and a tree that outgrows the sweep cannot hold
 * the worker forever. */
#define SWEEP_MAX_NS  (5LL * 1000000000)
/* A job shorter than this cannot have created a process: clone(2) alone
 * takes the kernel longer (some 8 us for the lightest kind on the
 * development VM, tens to hundreds for fork and posix_spawn). */
#define QUICK_JOB_NS  2000

/* ------------------------------------------------------------------------
 * Finding children
 * ------------------------------------------------------------------------ */

static int
read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    while ((n = read(fd, buf, len - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static void
note(pid_t pid, pid_t *out, size_t max, int *n)
{
    if (out != NULL && (size_t)*n < max)
        out[*n] = pid;
    (*n)++;
}

/* From the kernel's lists (/proc/PID/task/TID/children, kernels built with
 * CONFIG_PROC_CHILDREN): -1 where there are none. */
/* Note every pid of the space-separated list in file `path`, however long
 * (a master of a thousand workers has some 7 KiB of them): read in
 * chunks, a pid cut between two carried over.  Returns 0, or -1 if the
 * file cannot be read. */
static int
note_pid_list(const char *path, pid_t *out, size_t max, int *n)
{
    char buf[4096];
    long pid = -1;      /* the digits read so far, or -1 between pids */
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++) {
            if (isdigit((unsigned char)buf[i])) {
                if (pid < 100000000)
                    pid = (pid < 0 ? 0 : pid * 10) + (buf[i] - '0');
            } else if (pid >= 0) {
                if (pid > 0)
                    note((pid_t)pid, out, max, n);
                pid = -1;
            }
        }
    }
    if (pid > 0)
        note((pid_t)pid, out, max, n);
    close(fd);
    return 0;
}

static int
children_from_tasks(pid_t parent, pid_t *out, size_t max)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    int n = 0, found = 0;

    snprintf(path, sizeof(path), "/proc/%ld/task", (long)parent);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/children",
                 (long)parent, de->d_name);
        if (note_pid_list(path, out, max, &n) == 0)
            found = 1;
    }
    closedir(d);
    return found ? n : -1;
}

/* From the parent field of every process in /proc. */
static int
children_from_scan(pid_t parent, pid_t *out, size_t max)
{
    char path[64], buf[1024];
    DIR *d;
    struct dirent *de;
    int n = 0;

    if ((d = opendir("/proc")) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/stat", de->d_name);
        if (read_small(path, buf, sizeof(buf)) < 0)
            continue;   /* gone meanwhile */
        /* "pid (comm) state ppid ...": comm may hold anything, ')' too. */
        char *rp = strrchr(buf, ')');
        char state;
        long ppid;
        if (rp != NULL && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2
            && ppid == (long)parent)
            note((pid_t)atol(de->d_name), out, max, &n);
    }
    closedir(d);
    return n;
}

int
fp_process_state(pid_t pid)
{
    char path[64], buf[1024], state;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    /* "pid (comm) state ...": comm may hold anything, ')' too. */
    char *rp = strrchr(buf, ')');
    if (rp == NULL || sscanf(rp + 1, " %c", &state) != 1)
        return -1;
    return (unsigned char)state;
}

int
fp_children_of(pid_t parent, pid_t *out, size_t max)
{
    int n = children_from_tasks(parent, out, max);

    return n >= 0 ? n : children_from_scan(parent, out, max);
}

/* ------------------------------------------------------------------------
 * Sweeping
 * ------------------------------------------------------------------------ */

static int
is_spared(const struct fp_descendants *d, pid_t pid)
{
    for (size_t i = 0; i < d->nspared; i++)
        if (d->spared[i] == pid)
            return 1;
    return 0;
}

/* A spared child was reaped: its pid may come back as someone else's. */
static void
forget(struct fp_descendants *d, pid_t pid)
{
    for (size_t i = 0; i < d->nspared; i++)
        if (d->spared[i] == pid) {
            d->spared[i] = d->spared[--d->nspared];
            return;
        }
}

/* Reap every child that has ended.  Returns 1 if a child is still alive,
 * else 0. */
static int
reap_ended(struct fp_descendants *d)
{
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG | __WALL);
        if (pid > 0)
            forget(d, pid);
        else if (pid == 0)
            return 1;
        else if (errno != EINTR)
            return 0;       /* ECHILD: none at all */
    }
}

/* Kill and reap every child (but the spared ones, if `spare`), then the
 * orphans that come up in their place, until there are none. */
static void
sweep(struct fp_descendants *d, int spare)
{
    pid_t kids[SWEEP_BATCH], victims[SWEEP_BATCH];
    struct timespec t0, now;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000000000LL + (now.tv_nsec - t0.tv_nsec)
            > SWEEP_MAX_NS)
            return;
        if (!reap_ended(d))
            return;
        int n = fp_children_of(getpid(), kids, SWEEP_BATCH);
        if (n > SWEEP_BATCH)
            n = SWEEP_BATCH;
        int nv = 0;
        for (int i = 0; i < n; i++) {
            if (spare && is_spared(d, kids[i]))
                continue;
            /* Its group too, if it leads one (a pipeline, a setsid
             * "daemon"): they go at once rather than a round later. */
            kill(-kids[i], SIGKILL);
            /* One we may not signal (a set-user-ID program, with no
             * no_new_privs) is not waited for: that could be forever. */
            if (kill(kids[i], SIGKILL) == 0)
                victims[nv++] = kids[i];
        }
        if (nv == 0)
            return;     /* only spared ones left (or none we may kill) */
        for (int i = 0; i < nv; i++)
            while (waitpid(victims[i], NULL, __WALL) < 0 && errno == EINTR)
                ;
    }
}

int
fp_descendants_start(struct fp_descendants *d)
{
    memset(d, 0, sizeof(*d));
    d->on = 1;
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -1;
}

void
fp_descendants_spare_current(struct fp_descendants *d)
{
    pid_t kids[SWEEP_BATCH];

    if (!d->on || !reap_ended(d))
        return;
    int n = fp_children_of(getpid(), kids, SWEEP_BATCH);
    if (n <= 0)
        return;
    if (n > SWEEP_BATCH)
        n = SWEEP_BATCH;
    if ((d->spared = calloc((size_t)n, sizeof(pid_t))) == NULL)
        return;
    memcpy(d->spared, kids, (size_t)n * sizeof(pid_t));
    d->nspared = (size_t)n;
}

void
fp_descendants_job_end(struct fp_descendants *d, uint64_t ran_ns)
{
    if (!d->on)
        return;
    if (ran_ns < QUICK_JOB_NS) {
        d->due = 1;
        return;
    }
    d->due = 0;
    sweep(d, 1);
}

void
fp_descendants_idle(struct fp_descendants *d)
{
    if (d->on && d->due) {
        d->due = 0;
        sweep(d, 1);
    }
}

void
fp_descendants_stop(struct fp_descendants *d)
{
    if (d->on)
        sweep(d, 0);
    free(d->spared);
    memset(d, 0, sizeof(*d));
}
