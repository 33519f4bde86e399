/*
 * forkpoold.c — the daemon: options, the control socket, signals.
 * All the work is in libforkpool (pool) and control.c (the socket).
 *
 * Exit status: 0 after a clean drain, 1 when the drain was cut off or the
 * daemon could not start, 2 for bad flags or values.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <ev.h>

#include "forkpool.h"
#include "control.h"
#include "daemon_opts.h"
#include "daemonize.h"
#include "engine/log.h"
#include "engine/timer.h"
#include "ev_alloc.h"
#include "logbuf.h"
#include "proctitle.h"
#include "sdnotify.h"
#include "common/sockpath.h"
#include "redis/redis_source.h"

/* How long an exiting daemon waits for its last Redis outcomes. */
#define REDIS_FLUSH_S 5.0


struct daemon {
    struct ev_loop    *loop;
    fp_pool           *pool;
    struct fp_control *ctl;
    struct fp_redis_source *redis;      /* --redis, or NULL */
    ev_timer           redis_flush_timer;   /* bounds the wait for it */
    struct fp_logger   log;
    struct fp_logbuf   logbuf;          /* stderr, unless logging to syslog */
    double             drain_timeout;
    unsigned           stop_signals;    /* SIGTERM/SIGINT received */
    int                exit_code;
    ev_signal          sig_term, sig_int, sig_hup, sig_ttin, sig_ttou;
    ev_timer           status_timer;    /* STATUS= for systemd, each second */
    int                reloading;       /* as last told to systemd */
};

/* Big jobs pass through the master in blocks of their size: the request
 * read, the job, the worker's result, the reply.  Left to its defaults,
 * glibc gives such blocks back to the kernel as soon as a few megabytes
 * of them are free (mmap'ed, or trimmed off the heap), and every job pays
 * again for faulting fresh pages in -- for a 1 MiB job that cost as much
 * as copying it.  Kept in the heap instead, freed blocks are reused; at
 * most HEAP_KEEP bytes of them stay resident while unused.  (The workers
 * inherit the setting: an echo of a big job builds its result the same
 * way.) */
#define MMAP_ABOVE ((size_t)32 << 20)  /* glibc's ceiling for the threshold */
#define HEAP_KEEP  ((size_t)32 << 20)

static void
keep_freed_blocks(void)
{
    mallopt(M_MMAP_THRESHOLD, (int)MMAP_ABOVE);
    mallopt(M_TRIM_THRESHOLD, (int)HEAP_KEEP);
}

/* Daemons must not hand out fds 0-2 by accident: make sure they are open. */
static void
ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            exit(1);
}

/* ------------------------------------------------------------------------
 * Drain and signals
 * ------------------------------------------------------------------------ */

static void
flushed_cb(void *arg)
{
    struct daemon *d = arg;
    ev_break(d->loop, EVBREAK_ALL);
}

static void
shut_down(struct daemon *d)
{
    fp_logf(&d->log, FP_LOG_INFO, "drained%s; exiting",
            d->exit_code != 0 ? " (cut off by the drain timeout)" : "");
    fp_control_shutdown(d->ctl, 5.0, flushed_cb, d);
}

/* Every outcome of a Redis job is recorded (or known lost). */
static void
redis_flushed_cb(void *arg)
{
    struct daemon *d = arg;

    ev_timer_stop(d->loop, &d->redis_flush_timer);
    shut_down(d);
}

static void
redis_flush_timeout_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct daemon *d = tw->data;
    (void)loop; (void)revents;

    fp_redis_source_give_up(d->redis);
    shut_down(d);
}

static void
drained_cb(fp_pool *pool, int cut_off, void *arg)
{
    struct daemon *d = arg;
    (void)pool;

    d->exit_code = cut_off ? 1 : 0;
    if (d->redis != NULL) {
        /* The last outcomes may still be on their way to Redis (or
         * waiting for it to come back): give them a few seconds. */
        ev_timer_init(&d->redis_flush_timer, redis_flush_timeout_cb, 0., 0.);
        d->redis_flush_timer.data = d;
        fp_timer_after(d->loop, &d->redis_flush_timer, REDIS_FLUSH_S);
        fp_redis_source_drain(d->redis, redis_flushed_cb, d);
        return;
    }
    shut_down(d);
}

static int
draining(struct daemon *d)
{
    fp_stats st;

    fp_pool_stats(d->pool, &st);
    return st.draining;
}

/* A drain request: the drain method, or the first SIGTERM/SIGINT.  It
 * starts the drain; while one runs, another request changes nothing (a
 * retried `forkpoolctl drain` must not cut running jobs off: only a second
 * signal does, term_cb). */
static void
request_drain(void *arg)
{
    struct daemon *d = arg;

    if (draining(d)) {
        fp_logf(&d->log, FP_LOG_INFO, "drain requested: already draining");
        return;
    }
    fp_sd_notify("STOPPING=1");
    if (d->redis != NULL)
        fp_redis_source_drain(d->redis, NULL, NULL);    /* hand back first */
    fp_pool_drain(d->pool, d->drain_timeout, drained_cb, d);
}

static void
term_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    (void)loop; (void)revents;

    fp_logf(&d->log, FP_LOG_INFO, "%s received", strsignal(sw->signum));
    if (++d->stop_signals > 1 && draining(d)) {
        fp_logf(&d->log, FP_LOG_WARN, "second stop signal: cutting the drain off");
        fp_pool_drain(d->pool, d->drain_timeout, drained_cb, d);    /* forces it */
        return;
    }
    request_drain(d);
}

static void
hup_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    (void)loop; (void)revents;

    fp_pool_reload(d->pool);    /* logs that it is ignored while draining */
    if (!d->reloading && !draining(d)) {
        d->reloading = 1;
        fp_sd_notify("RELOADING=1");
    }
}

/* SIGTTIN: one worker more; SIGTTOU: one fewer (never below one, nor
 * outside the --autoscale range). */
static void
scale_signal_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    fp_stats st;
    unsigned n;
    (void)loop; (void)revents;

    fp_pool_stats(d->pool, &st);
    n = sw->signum == SIGTTIN ? st.workers + 1 : st.workers - 1;
    if (n < 1 || fp_pool_scale(d->pool, n) < 0)
        fp_logf(&d->log, FP_LOG_WARN, "%s: staying at %u workers",
                strsignal(sw->signum), st.workers);
}

static void
watch_signal(struct daemon *d, ev_signal *sw, int sig,
             void (*cb)(struct ev_loop *, ev_signal *, int))
{
    ev_signal_init(sw, cb, sig);
    sw->data = d;
    ev_signal_start(d->loop, sw);
}

/* The signals forkpoold acts on.  They are blocked from the first line of
 * main until their watchers exist: one that comes before (a SIGTERM right
 * after the start) then waits, and is handled as any other, instead of
 * killing the daemon with the default action.  Unblocking them also undoes
 * a mask inherited from whoever started us. */
static void
mask_handled_signals(int how)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGTTIN, SIGTTOU };
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(how, &set, NULL);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* For the metrics: log lines the log's reader did not take (syslog and a
 * plain stderr drop none that we know of). */
static uint64_t
log_lines_dropped(void *arg)
{
    struct daemon *d = arg;

    return d->log.fn == fp_logbuf_sink ? d->logbuf.dropped_total : 0;
}

static void
status_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct daemon *d = tw->data;
    fp_stats st;
    (void)loop; (void)revents;

    fp_pool_stats(d->pool, &st);
    if (st.reloading != d->reloading) {
        d->reloading = st.reloading;
        fp_sd_notify(st.reloading ? "RELOADING=1" : "READY=1");
    }
    fp_sd_notify("STATUS=%s: %u workers (%u busy, %u idle, %u starting), "
                 "%zu queued; %llu ok, %llu failed, %llu crashed, %llu timed out",
                 st.draining ? "draining" : st.reloading ? "reloading" : "running",
                 st.workers, st.busy, st.idle, st.starting, st.queued,
                 (unsigned long long)st.completed, (unsigned long long)st.failed,
                 (unsigned long long)st.crashed, (unsigned long long)st.timed_out);
}

static void
setup_logging(struct daemon *d, const struct fp_daemon_opts *o)
{
    d->log.level = o->log_level;
    /* A detached daemon has no stderr to speak of: it logs to syslog
     * unless told otherwise.  syslog(3) is left as it is: it writes a
     * datagram, which a stalled syslog daemon could make wait. */
    if (o->log_syslog || (o->daemonize && !o->log_stderr)) {
        openlog("forkpoold", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        d->log.fn = fp_log_syslog;
        d->log.arg = NULL;
    } else if (fp_logbuf_open(&d->logbuf, 2, "forkpoold", FP_LOGBUF_MAX) == 0) {
        d->log.fn = fp_logbuf_sink;
        d->log.arg = &d->logbuf;
    } else {
        d->log.fn = fp_log_stderr;      /* no descriptor of our own: as ever */
        d->log.arg = "forkpoold";
    }
}

/* Write what the log still holds (waiting at most FP_LOGBUF_EXIT_MS for a
 * stalled reader) and let go of it: at exit, and before a startup error
 * goes to stderr directly, so the lines stay in order. */
static void
finish_logging(struct daemon *d)
{
    if (d->log.fn != fp_logbuf_sink)
        return;
    fp_logbuf_flush(&d->logbuf, FP_LOGBUF_EXIT_MS);
    fp_logbuf_close(&d->logbuf);
    d->log.fn = fp_log_stderr;
    d->log.arg = "forkpoold";
}

int
main(int argc, char **argv)
{
    struct daemon d;
    struct fp_daemon_opts o;
    fp_config *cfg = &o.cfg;
    char err[512], sockpath[108];
    int ready_fd = -1, pid_fd = -1, listen_fd;

    mask_handled_signals(SIG_BLOCK);
    keep_freed_blocks();
    argv = fp_proctitle_init(argc, argv);
    memset(&d, 0, sizeof(d));
    switch (fp_daemon_opts_parse(&o, argc, argv)) {
    case FP_OPTS_RUN:
        break;
    case FP_OPTS_HELP:
        fp_daemon_usage(stdout);
        fp_daemon_opts_free(&o);
        return 0;
    case FP_OPTS_VERSION:
        printf("forkpoold %s\n", PACKAGE_VERSION);
        fp_daemon_opts_free(&o);
        return 0;
    default:
        fprintf(stderr, "forkpoold: %s (see forkpoold --help)\n", o.err);
        fp_daemon_opts_free(&o);
        return EXIT_USAGE;
    }
    d.drain_timeout = o.drain_timeout;
    if (o.socket != NULL) {
        if (snprintf(sockpath, sizeof(sockpath), "%s", o.socket) >= (int)sizeof(sockpath)) {
            fprintf(stderr, "forkpoold: --socket: path too long (at most %zu bytes) "
                    "(see forkpoold --help)\n", sizeof(sockpath) - 1);
            fp_daemon_opts_free(&o);
            return EXIT_USAGE;
        }
    } else if (fp_default_socket_path(sockpath, sizeof(sockpath)) < 0) {
        fprintf(stderr, "forkpoold: default socket path is too long; use --socket "
                "(see forkpoold --help)\n");
        return EXIT_USAGE;
    }

    ensure_stdio();
    if (o.pidfile != NULL && (pid_fd = fp_pidfile_open(o.pidfile, err, sizeof(err))) < 0) {
        fprintf(stderr, "forkpoold: %s\n", err);
        return 1;
    }
    if (o.daemonize && (ready_fd = fp_daemonize(err, sizeof(err))) < 0) {
        fprintf(stderr, "forkpoold: cannot detach: %s\n", err);
        return 1;
    }
    if (pid_fd >= 0 && fp_pidfile_write(pid_fd) < 0) {
        fprintf(stderr, "forkpoold: cannot write pid file %s: %s\n", o.pidfile,
                strerror(errno));
        return 1;
    }
    setup_logging(&d, &o);
    signal(SIGPIPE, SIG_IGN);
    cfg->log = d.log.fn;
    cfg->log_arg = d.log.arg;
    cfg->log_level = d.log.level;
    cfg->title = fp_proctitle_set;
    fp_ev_alloc_install(&d.log);        /* before libev's first allocation */
    d.loop = ev_default_loop(0);
    if (d.log.fn == fp_logbuf_sink)
        fp_logbuf_attach(&d.logbuf, d.loop);
    d.pool = fp_pool_new(d.loop, cfg, err, sizeof(err));
    if (d.pool == NULL) {
        finish_logging(&d);
        fprintf(stderr, "forkpoold: %s\n", err);
        fp_pidfile_remove(o.pidfile, pid_fd);
        return 1;
    }
    struct fp_control_hooks hooks = { .drain = request_drain,
                                      .log_lines_dropped = log_lines_dropped,
                                      .arg = &d };
    listen_fd = fp_sd_listen_fd(err, sizeof(err));
    if (listen_fd >= 0)
        d.ctl = fp_control_adopt(d.loop, d.pool, listen_fd, &hooks, &d.log, err, sizeof(err));
    else if (listen_fd == -1)
        d.ctl = fp_control_open(d.loop, d.pool, sockpath, &hooks, &d.log, err, sizeof(err));
    if (d.ctl == NULL) {
        fp_pool_free(d.pool);
        finish_logging(&d);             /* after the pool's last lines */
        fprintf(stderr, "forkpoold: %s\n", err);
        fp_pidfile_remove(o.pidfile, pid_fd);
        return 1;
    }
    fp_control_set_job_limits(d.ctl, cfg->max_job_bytes, cfg->max_job_objects,
                              o.max_workers);
    fp_control_set_reply_limits(d.ctl, o.reply_soft, o.reply_hard, o.reply_total);
    watch_signal(&d, &d.sig_term, SIGTERM, term_cb);
    watch_signal(&d, &d.sig_int, SIGINT, term_cb);
    watch_signal(&d, &d.sig_hup, SIGHUP, hup_cb);
    watch_signal(&d, &d.sig_ttin, SIGTTIN, scale_signal_cb);
    watch_signal(&d, &d.sig_ttou, SIGTTOU, scale_signal_cb);
    /* Before the workers fork: they start with the signals unblocked. */
    mask_handled_signals(SIG_UNBLOCK);
    if (fp_pool_start(d.pool) < 0) {
        int e = errno;
        fp_control_close(d.ctl);
        fp_pool_free(d.pool);
        finish_logging(&d);
        fprintf(stderr, "forkpoold: cannot start workers: %s\n", strerror(e));
        fp_pidfile_remove(o.pidfile, pid_fd);
        return 1;
    }
    if (o.redis.url_text != NULL) {
        o.redis.prefetch = cfg->prefetch != 0 ? cfg->prefetch : FP_DEFAULT_PREFETCH;
        d.redis = fp_redis_source_new(d.loop, d.pool, &o.redis, &d.log);
        if (d.redis == NULL) {
            fp_control_close(d.ctl);
            fp_pool_free(d.pool);
            finish_logging(&d);
            fprintf(stderr, "forkpoold: --redis: out of memory\n");
            fp_pidfile_remove(o.pidfile, pid_fd);
            return 1;
        }
        fp_control_set_redis(d.ctl, d.redis);
    }
    fp_stats st;
    fp_pool_stats(d.pool, &st);
    fp_logf(&d.log, FP_LOG_INFO, "listening on %s with %u worker%s (%s)",
            fp_control_path(d.ctl), st.workers, st.workers == 1 ? "" : "s", o.handler);
    if (fp_sd_notify_enabled()) {
        fp_sd_notify("READY=1\nMAINPID=%ld", (long)getpid());
        ev_timer_init(&d.status_timer, status_timer_cb, 0., 1.);
        d.status_timer.data = &d;
        ev_timer_start(d.loop, &d.status_timer);    /* a repeating timer */
    }
    if (ready_fd >= 0)
        fp_daemon_ready(ready_fd);

    char title[160];
    snprintf(title, sizeof(title), "forkpool: master %s", fp_control_path(d.ctl));
    fp_proctitle_set(title, NULL);
    ev_run(d.loop, 0);

    ev_timer_stop(d.loop, &d.status_timer);
    fp_pool_free(d.pool);       /* first: it may still owe clients outcomes */
    fp_redis_source_free(d.redis);  /* after: the pool's last callbacks */
    fp_control_close(d.ctl);
    fp_pidfile_remove(o.pidfile, pid_fd);
    fp_daemon_opts_free(&o);
    finish_logging(&d);
    ev_loop_destroy(d.loop);
    if (o.log_syslog || d.log.fn == fp_log_syslog)
        closelog();
    return d.exit_code;
}
