/*
 * bench_ext.c — the cases that drive other programs:
 *
 *   bench_daemon           forkpoold --builtin echo as a child, and the C
 *                          client (libforkpoolclient, pipelined) keeping a
 *                          window of `submit` requests in flight
 *                          (a->count > 0: with that many subscribers to
 *                          the event stream reading meanwhile);
 *   bench_ctl              `forkpoolctl map` fed JSON lines through a pipe,
 *                          output to /dev/null, wall time;
 *   bench_python           tools/bench_py.py (multiprocessing.Pool);
 *   bench_python_mixed     the same, --mode mixed (a burst of sleeps);
 *   bench_daemon_idle_mem  a daemon worker's private memory.
 *
 * The daemon's CPU is read from /proc/PID/stat (clock ticks), its RSS from
 * /proc/PID/status.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "forkpool_client.h"
#include "bench.h"

#define CHUNK       (256 * 1024)
#define WARM_SECS   0.1
#define RING        65536u          /* send times by msgid; > any window */

/* ------------------------------------------------------------------------
 * The daemon as a child process
 * ------------------------------------------------------------------------ */

struct daemon {
    pid_t pid;
    char  sock[200];
    char  log[200];
};

static void
daemon_stop(struct daemon *d)
{
    int status;

    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {         /* 5 s for a clean drain */
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
}

static int
connect_unix(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    size_t len = strlen(path);

    if (fd < 0)
        return -1;
    if (len >= sizeof(sa.sun_path)) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A row of cmd jobs (the cmd builtin running true), not echoes. */
static int
is_cmd(const struct bench_args *a)
{
    return a->mode != NULL && strcmp(a->mode, "cmd") == 0;
}

/* The builtin the daemon runs: cmd for the cmd rows, else echo. */
static const char *
daemon_builtin(const struct bench_args *a)
{
    return is_cmd(a) ? "cmd" : "echo";
}

/* Start `forkpoold --builtin echo|cmd -w N -s SOCK` and connect to it.  Returns
 * the connected (nonblocking) fd, or -1 with the reason in r. */
static int
daemon_start(const struct bench_args *a, struct daemon *d,
             struct bench_result *r)
{
    char workers[16];
    int fd = -1;

    memset(d, 0, sizeof(*d));
    snprintf(d->sock, sizeof(d->sock), "%s/fp-%ld.sock", a->tmpdir, (long)getpid());
    snprintf(d->log, sizeof(d->log), "%s/forkpoold-%ld.log", a->tmpdir, (long)getpid());
    snprintf(workers, sizeof(workers), "%u", a->workers);
    d->pid = fork();
    if (d->pid < 0) {
        bench_fail(r, "fork: %s", strerror(errno));
        return -1;
    }
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the runner */
        int lfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nfd = open("/dev/null", O_RDONLY);
        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
        }
        if (nfd >= 0)
            dup2(nfd, 0);
        execl(a->forkpoold, a->forkpoold, "--builtin", daemon_builtin(a), "-w", workers,
              "-s", d->sock, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", a->forkpoold, strerror(errno));
        _exit(127);
    }
    double give_up = now_s() + 10;
    while ((fd = connect_unix(d->sock)) < 0) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            bench_fail(r, "forkpoold exited at start (see %s)", d->log);
            return -1;
        }
        if (now_s() > give_up) {
            bench_fail(r, "forkpoold's socket did not appear (see %s)", d->log);
            daemon_stop(d);
            return -1;
        }
        usleep(2000);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* ------------------------------------------------------------------------
 * Subscribers to the event stream
 * ------------------------------------------------------------------------ */

/* The subscribers' process: subscribe n connections, say so on `ready`,
 * then read them all (discarding what comes) until the daemon closes one
 * or we are killed. */
static void
subscribers_main(const struct daemon *d, unsigned n, int ready)
{
    static const char req[] = "\x94\x00\x01\xa9subscribe\x90";
    static char buf[CHUNK];
    struct epoll_event ev, evs[64];
    int ep = epoll_create1(0);

    prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the runner */
    for (unsigned i = 0; i < n; i++) {
        int fd = connect_unix(d->sock);
        size_t got = 0;
        if (fd < 0 || write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
            _exit(1);
        /* Its answer, [1, 1, nil, true], before any event can come. */
        while (got < 5) {
            ssize_t k = read(fd, buf, 5 - got);
            if (k <= 0)
                _exit(1);
            got += (size_t)k;
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            _exit(1);
    }
    if (write(ready, "r", 1) != 1)
        _exit(1);
    for (;;) {
        int k = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < k; i++)
            for (;;) {
                ssize_t got = read(evs[i].data.fd, buf, sizeof(buf));
                if (got == 0)
                    _exit(0);
                if (got < 0)
                    break;      /* EAGAIN: read dry */
            }
    }
}

/* Start the subscribers' process; returns its pid once every subscription
 * is answered, or -1 with the reason in r. */
static pid_t
subscribers_start(const struct daemon *d, unsigned n, struct bench_result *r)
{
    int ready[2];
    char c;

    if (pipe(ready) < 0) {
        bench_fail(r, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        bench_fail(r, "fork: %s", strerror(errno));
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    if (pid == 0) {
        close(ready[0]);
        subscribers_main(d, n, ready[1]);
        _exit(0);
    }
    close(ready[1]);
    struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
    int ok = poll(&pfd, 1, 10000) == 1 && read(ready[0], &c, 1) == 1;
    close(ready[0]);
    if (!ok) {
        bench_fail(r, "%u subscribers could not subscribe", n);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* ------------------------------------------------------------------------
 * The pipelined client
 * ------------------------------------------------------------------------ */

struct rpc_run {
    fp_client        *c;
    pid_t             daemon;
    const char       *job;
    size_t            len;
    unsigned          window, outstanding;
    uint32_t          next_msgid;
    double           *sent;
    uint32_t         *sent_id;
    int               phase;
    double            started, seconds, t0, t1, cpu0, cpu1;
    uint64_t          total, submitted, completed, bad, c0, c1;
    struct hist       hist;
};

/* Queue one submit of the job, under our own tag (its msgid). */
static int
queue_submit(struct rpc_run *run)
{
    uint32_t id = run->next_msgid;

    run->next_msgid = id == FP_CLIENT_TAG_MAX ? 1 : id + 1;
    if (fp_client_submit_async(run->c, run->job, run->len, NULL, &id) != 0)
        return -1;
    run->sent[id % RING] = now_s();
    run->sent_id[id % RING] = id;
    run->outstanding++;
    run->submitted++;
    return 0;
}

static void
rpc_refill(struct rpc_run *run)
{
    if (run->phase >= 2)
        return;
    while (run->outstanding < run->window
           && (run->total == 0 || run->submitted < run->total))
        if (queue_submit(run) < 0)
            return;
}

static void
on_response(struct rpc_run *run, const struct fp_client_msg *m)
{
    double t = now_s();
    uint32_t msgid = m->tag;

    if (m->type != FP_CLIENT_MSG_RESPONSE)
        return;
    if (m->error != NULL || m->result_len < run->len) {
        run->bad++;             /* not {"id", "result": the job} */
    } else if (run->phase == 1 && run->sent_id[msgid % RING] == msgid) {
        hist_add(&run->hist, t - run->sent[msgid % RING]);
    }
    run->outstanding--;
    run->completed++;
    if (run->phase == 0 && t - run->started >= WARM_SECS
        && run->completed >= 2 * (uint64_t)run->window) {
        run->phase = 1;
        run->t0 = t;
        run->cpu0 = proc_cpu_s(run->daemon);
        run->c0 = run->completed;
    } else if ((run->phase == 1 && (run->total != 0 ? run->completed >= run->total
                                                   : t - run->t0 >= run->seconds))
               || (run->phase == 0 && run->total != 0
                   && run->completed >= run->total)) {
        if (run->phase == 0) {
            run->t0 = run->started;
            run->c0 = 0;
        }
        run->phase = 2;
        run->t1 = t;
        run->cpu1 = proc_cpu_s(run->daemon);
        run->c1 = run->completed;
    }
    rpc_refill(run);
}

/* Read what the daemon sent and handle each complete response.  Returns
 * -1 at EOF or on a bad frame. */
static int
rpc_read(struct rpc_run *run)
{
    struct fp_client_msg m;
    int rc;

    if (fp_client_read(run->c) <= 0)
        return -1;
    while ((rc = fp_client_next(run->c, &m)) == 1)
        on_response(run, &m);
    return rc < 0 ? -1 : 0;
}

/* Drive the stream to the end (by time, or run->total jobs); fills r. */
static void
rpc_stream(struct rpc_run *run, struct bench_result *r)
{
    const char *fail = NULL;

    run->sent = calloc(RING, sizeof(double));
    run->sent_id = calloc(RING, sizeof(uint32_t));
    if (run->sent == NULL || run->sent_id == NULL) {
        bench_fail(r, "out of memory");
        goto out;
    }
    run->next_msgid = 1;
    hist_reset(&run->hist);
    run->started = now_s();
    run->cpu0 = proc_cpu_s(run->daemon);
    rpc_refill(run);
    while (fail == NULL && (run->phase < 2 || run->outstanding > 0)) {
        if (fp_client_flush(run->c) < 0) {
            fail = "write to the daemon failed";
            break;
        }
        struct pollfd pfd = {
            .fd = fp_client_fd(run->c),
            .events = POLLIN | (fp_client_want_write(run->c) ? POLLOUT : 0),
        };
        int n = poll(&pfd, 1, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail = "the daemon stalled (10 s without a response)";
        else if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && rpc_read(run) < 0)
            fail = "the daemon closed the connection or sent a bad frame";
    }
    if (fail != NULL) {
        bench_fail(r, "%s", fail);
    } else if (run->bad > 0) {
        bench_fail(r, "%llu responses were not ok", (unsigned long long)run->bad);
    } else {
        r->ok = 1;
        r->jobs = run->c1 - run->c0;
        r->secs = run->t1 - run->t0;
        r->jobs_s = (double)r->jobs / r->secs;
        r->p50_us = hist_quantile_us(&run->hist, 0.50);
        r->p99_us = hist_quantile_us(&run->hist, 0.99);
        r->cpu_us_per_job = (run->cpu1 - run->cpu0) * 1e6 / (double)r->jobs;
    }
out:
    free(run->sent);
    free(run->sent_id);
}

/* Ready rpc_stream for another stream on the same connection. */
static void
rpc_restart(struct rpc_run *run)
{
    run->phase = 0;
    run->submitted = run->completed = run->bad = 0;
    run->outstanding = 0;
}

/* The cmd builtin's job {"argv": ["true"]}, packed; the caller frees. */
static char *
make_cmd_true_job(size_t *len)
{
    static const char job[] = "\x81\xa4" "argv" "\x91\xa4" "true";
    char *p = malloc(sizeof job - 1);

    if (p != NULL)
        memcpy(p, job, sizeof job - 1);
    *len = sizeof job - 1;
    return p;
}

void
bench_daemon(const struct bench_args *a, struct bench_result *r)
{
    struct daemon d;
    struct rpc_run run;
    size_t len;
    char *job = is_cmd(a) ? make_cmd_true_job(&len)
                          : make_bin_payload(a->payload, &len);

    memset(&run, 0, sizeof(run));
    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    int fd = daemon_start(a, &d, r);
    if (fd >= 0) {
        close(fd);      /* it is up: the client connects on its own */
        if (fp_client_connect(&run.c, d.sock, 10) != 0) {
            bench_fail(r, "libforkpoolclient: %s", fp_client_error(run.c));
            fp_client_close(run.c);
            daemon_stop(&d);
            fd = -1;
        }
    }
    /* a->count > 0: that many subscribers read every event meanwhile.  On
     * cmd jobs, whose rate moves +-10% from one daemon to the next here,
     * the same daemon also streams without them just before and just
     * after: aux[0] is the rate with them over the mean of those two. */
    int paired = a->count > 0 && is_cmd(a);
    struct bench_result before, after;
    memset(&before, 0, sizeof(before));
    memset(&after, 0, sizeof(after));
    if (fd >= 0) {
        run.daemon = d.pid;
        run.job = job;
        run.len = len;
        run.window = a->window;
        run.seconds = a->seconds;
        if (paired)
            rpc_stream(&run, &before);
    }
    pid_t subs = fd >= 0 && a->count > 0 ? subscribers_start(&d, a->count, r) : 0;
    if (subs < 0) {
        fp_client_close(run.c);
        daemon_stop(&d);
    } else if (fd >= 0) {
        r->rss_before_kb = proc_rss_kb(d.pid);
        rpc_restart(&run);
        rpc_stream(&run, r);
        r->rss_after_kb = proc_rss_kb(d.pid);
        if (subs > 0) {
            kill(subs, SIGKILL);
            waitpid(subs, NULL, 0);
        }
        if (paired) {
            rpc_restart(&run);
            rpc_stream(&run, &after);
            if (r->ok && before.ok && after.ok)
                r->aux[0] = r->jobs_s / ((before.jobs_s + after.jobs_s) / 2);
            else
                bench_fail(r, "the stream without subscribers failed");
        }
        fp_client_close(run.c);
        daemon_stop(&d);
    }
    free(job);
}

/* ------------------------------------------------------------------------
 * forkpoolctl map
 * ------------------------------------------------------------------------ */

static char *
base64(const unsigned char *p, size_t n, size_t *outlen)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    *outlen = (size_t)(o - out);
    return out;
}

/* Run `forkpoolctl -s SOCK map` on `n` copies of `line`, output to
 * /dev/null.  Returns its wall time in seconds (fork to exit) and its own
 * CPU in *cpu, or -1 if it failed. */
static double
run_ctl(const struct bench_args *a, const struct daemon *d, const char *line,
        size_t linelen, uint64_t n, double *cpu)
{
    int pfd[2];
    struct rusage ru;
    int status;
    double t0 = now_s();

    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int nfd = open("/dev/null", O_WRONLY);
        int lfd = open(d->log, O_WRONLY | O_APPEND);
        dup2(pfd[0], 0);
        if (nfd >= 0)
            dup2(nfd, 1);
        if (lfd >= 0)
            dup2(lfd, 2);
        close(pfd[0]);
        close(pfd[1]);
        execl(a->forkpoolctl, a->forkpoolctl, "-s", d->sock, "map", (char *)NULL);
        _exit(127);
    }
    close(pfd[0]);
    signal(SIGPIPE, SIG_IGN);
    int ok = 1;
    for (uint64_t i = 0; i < n && ok; i++) {
        const char *p = line;
        size_t left = linelen;
        while (left > 0) {
            ssize_t w = write(pfd[1], p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                ok = 0;
                break;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    close(pfd[1]);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    double t1 = now_s();
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    *cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    return t1 - t0;
}

void
bench_ctl(const struct bench_args *a, struct bench_result *r)
{
    struct daemon d;
    size_t plen, blen;
    char *payload = make_bin_payload(a->payload, &plen);
    char *b64 = NULL, *line = NULL;
    int fd;

    if (payload == NULL)
        goto oom;
    /* The body only: the header is msgpack's, $bin is the JSON spelling. */
    b64 = base64((unsigned char *)payload + (plen - a->payload), a->payload, &blen);
    if (b64 == NULL || (line = malloc(blen + 16)) == NULL)
        goto oom;
    int linelen = snprintf(line, blen + 16, "{\"$bin\": \"%s\"}\n", b64);

    if ((fd = daemon_start(a, &d, r)) < 0)
        goto out;
    close(fd);
    r->rss_before_kb = proc_rss_kb(d.pid);
    /* Start-up alone (no jobs), a warm-up, and from the two a rate to size
     * the timed run by, so that start-up is a small part of it. */
    uint64_t n0 = ((size_t)32 << 20) / (size_t)linelen;
    n0 = n0 > 5000 ? 5000 : n0 < 10 ? 10 : n0;
    double cpu;
    double w_empty = run_ctl(a, &d, line, (size_t)linelen, 0, &cpu);
    double w0 = run_ctl(a, &d, line, (size_t)linelen, n0, &cpu);
    if (w_empty <= 0 || w0 <= 0) {
        bench_fail(r, "forkpoolctl map failed (see %s)", d.log);
        daemon_stop(&d);
        goto out;
    }
    /* At least CTL_SECONDS: with big jobs a shorter run is a few dozen
     * jobs, mostly the command's start-up and the pipeline filling and
     * draining (start-up stays in: it is printed on its own as well). */
    double per_job = (w0 - w_empty) / (double)n0;
    double secs = a->seconds > CTL_SECONDS ? a->seconds : CTL_SECONDS;
    uint64_t n = (uint64_t)(secs / (per_job > 1e-7 ? per_job : 1e-7));
    if (n < n0)
        n = n0;
    r->aux[1] = w_empty * 1e3;
    /* The warm-up ran on a cold daemon (each of its buffers faulted in
     * for the first time), so its rate can be a third of the steady one:
     * a run that ends well short of `secs` is run again, longer, and the
     * longer run is the measurement (at most twice more). */
    double wall, dcpu0, dcpu1;
    for (int tries = 0; ; tries++) {
        dcpu0 = proc_cpu_s(d.pid);
        wall = run_ctl(a, &d, line, (size_t)linelen, n, &cpu);
        dcpu1 = proc_cpu_s(d.pid);
        if (wall <= 0 || wall >= 0.8 * secs || tries == 2)
            break;
        n = (uint64_t)((double)n * secs / wall * 1.1) + 1;
    }
    r->rss_after_kb = proc_rss_kb(d.pid);
    daemon_stop(&d);
    if (wall <= 0) {
        bench_fail(r, "forkpoolctl map failed (see %s)", d.log);
        goto out;
    }
    r->ok = 1;
    r->jobs = n;
    r->secs = wall;
    r->jobs_s = (double)n / wall;
    r->cpu_us_per_job = (dcpu1 - dcpu0) * 1e6 / (double)n;
    r->aux[0] = cpu * 1e6 / (double)n;
    goto out;
oom:
    bench_fail(r, "out of memory");
out:
    free(payload);
    free(b64);
    free(line);
}

/* ------------------------------------------------------------------------
 * Python multiprocessing, through tools/bench_py.py
 * ------------------------------------------------------------------------ */

void
bench_python(const struct bench_args *a, struct bench_result *r)
{
    char size[32], secs[32], workers[16], cmd[1024], line[512];
    FILE *f;

    snprintf(size, sizeof(size), "%zu", a->payload);
    snprintf(secs, sizeof(secs), "%g", a->seconds);
    snprintf(workers, sizeof(workers), "%u", a->workers);
    snprintf(cmd, sizeof(cmd), "python3 '%s' --size %s --mode %s --seconds %s "
             "--workers %s 2>&1", a->python, size, a->mode, secs, workers);
    if ((f = popen(cmd, "r")) == NULL) {
        bench_fail(r, "cannot run python3");
        return;
    }
    bench_fail(r, "bench_py.py printed no result");
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long jobs;
        double wall, cpu, rss0, rss1;
        if (sscanf(line, "fpbench-py jobs=%llu secs=%lf cpu=%lf rss0=%lf rss1=%lf",
                   &jobs, &wall, &cpu, &rss0, &rss1) == 5 && wall > 0) {
            r->ok = 1;
            r->note[0] = '\0';
            r->jobs = jobs;
            r->secs = wall;
            r->jobs_s = (double)jobs / wall;
            r->cpu_us_per_job = cpu * 1e6 / (double)jobs;
            r->rss_before_kb = rss0;
            r->rss_after_kb = rss1;
        } else if (!r->ok) {
            line[strcspn(line, "\n")] = '\0';
            bench_fail(r, "python: %.140s", line);
        }
    }
    int st = pclose(f);
    if (!r->ok && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        bench_fail(r, "python3 not found: skipped");
}

void
bench_python_mixed(const struct bench_args *a, struct bench_result *r)
{
    static struct mixed_timeline tl;
    char cmd[1024], line[512], long_at[128] = "";
    size_t used = 0;
    unsigned seen = 0;
    int summary = 0;
    FILE *f;

    for (unsigned k = 0; k < MIXED_LONGS; k++)
        used += (size_t)snprintf(long_at + used, sizeof(long_at) - used, "%s%u",
                                 k ? "," : "", mixed_long_at[k]);
    snprintf(cmd, sizeof(cmd), "python3 '%s' --mode mixed --workers %u --jobs %u "
             "--long-at %s --long-us %u --short-us %u 2>&1", a->python,
             a->workers, MIXED_JOBS, long_at, MIXED_LONG_US, MIXED_SHORT_US);
    if ((f = popen(cmd, "r")) == NULL) {
        bench_fail(r, "cannot run python3");
        return;
    }
    bench_fail(r, "bench_py.py printed no result");
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned i;
        long pid;
        double s, e, wall, cpu, rss0, rss1, t0, tlast;
        unsigned long long jobs;
        if (sscanf(line, "fpbench-py-job %u %ld %lf %lf", &i, &pid, &s, &e) == 4
            && i < MIXED_JOBS) {
            tl.pid[i] = pid;
            tl.start[i] = s;
            tl.end[i] = e;
            seen++;
        } else if (sscanf(line, "fpbench-py jobs=%llu secs=%lf cpu=%lf rss0=%lf "
                          "rss1=%lf t0=%lf tlast=%lf", &jobs, &wall, &cpu, &rss0,
                          &rss1, &t0, &tlast) == 7 && jobs == MIXED_JOBS) {
            tl.t0 = t0;
            tl.t_last = tlast;
            r->cpu_us_per_job = cpu * 1e6 / (double)jobs;
            r->rss_before_kb = rss0;
            r->rss_after_kb = rss1;
            summary = 1;
        } else if (!summary) {
            line[strcspn(line, "\n")] = '\0';
            bench_fail(r, "python: %.140s", line);
        }
    }
    int st = pclose(f);
    if (summary && seen == MIXED_JOBS) {
        r->note[0] = '\0';
        mixed_finish("mixed, python imap_unordered", &tl, r);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        bench_fail(r, "python3 not found: skipped");
    }
}

/* ------------------------------------------------------------------------
 * A daemon worker's private memory
 * ------------------------------------------------------------------------ */

/* The "idle" count from a status call, or -1. */
static long
daemon_idle(fp_client *c)
{
    struct fp_reader rd;
    const char *st;
    size_t len;
    uint32_t nm;
    uint64_t v;

    if (fp_client_status(c, &st, &len) != 0)
        return -1;
    fp_reader_init(&rd, st, len);
    if (fp_read_map(&rd, &nm) < 0)
        return -1;
    for (uint32_t i = 0; i < nm; i++) {
        if (fp_read_str_eq(&rd, "idle"))
            return fp_read_uint(&rd, &v) == 0 ? (long)v : -1;
        if (fp_read_skip(&rd, NULL, NULL) < 0 || fp_read_skip(&rd, NULL, NULL) < 0)
            break;
    }
    return -1;
}

static int
wait_daemon_idle(fp_client *c, unsigned workers)
{
    double give_up = now_s() + 10;

    while (now_s() < give_up) {
        if (daemon_idle(c) == (long)workers)
            return 0;
        usleep(5000);
    }
    return -1;
}

static double
max_worker_private_kb(pid_t daemon)
{
    pid_t pids[64];
    size_t n = proc_children(daemon, pids, 64);

    return worst_private_kb(pids, n < 64 ? n : 64);
}

void
bench_daemon_idle_mem(const struct bench_args *a, struct bench_result *r)
{
    struct daemon d;
    struct rpc_run run;
    struct bench_result tmp;
    size_t len;
    char *job = make_bin_payload(a->payload, &len);

    memset(&run, 0, sizeof(run));
    memset(&tmp, 0, sizeof(tmp));
    if (job == NULL) {
        bench_fail(r, "out of memory");
        return;
    }
    int fd = daemon_start(a, &d, r);
    if (fd < 0)
        goto out;
    close(fd);      /* it is up: the client connects on its own */
    if (fp_client_connect(&run.c, d.sock, 10) != 0) {
        bench_fail(r, "libforkpoolclient: %s", fp_client_error(run.c));
        goto stop;
    }
    if (wait_daemon_idle(run.c, a->workers) < 0) {
        bench_fail(r, "the daemon's workers did not become idle");
        goto stop;
    }
    r->aux[0] = max_worker_private_kb(d.pid);
    run.daemon = d.pid;
    run.job = job;
    run.len = len;
    run.window = a->window;
    run.total = a->count;
    rpc_stream(&run, &tmp);
    if (!tmp.ok) {
        bench_fail(r, "%s", tmp.note);
        goto stop;
    }
    if (wait_daemon_idle(run.c, a->workers) < 0) {
        bench_fail(r, "the daemon's workers did not become idle");
        goto stop;
    }
    r->aux[1] = max_worker_private_kb(d.pid);
    r->ok = r->aux[0] >= 0 && r->aux[1] >= 0;
    if (!r->ok)
        bench_fail(r, "cannot read the workers' /proc/PID/smaps_rollup");
stop:
    fp_client_close(run.c);
    daemon_stop(&d);
out:
    free(job);
}
