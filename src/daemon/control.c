/*
 * control.c — the control socket server (see control.h): the listening
 * socket, accepting connections, limits, shutdown.  Each connection is
 * control_client.c's; the methods are control_methods.c's.
 *
 * A failing accept() (out of fds, out of memory) pauses accepting for
 * ACCEPT_PAUSE and tries again, logging the first failure of a streak and
 * the recovery, never each retry.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec/buf.h"
#include "control.h"
#include "control_int.h"
#include "codec/wire.h"
#include "codec/frame.h"
#include "common/sockpath.h"
#include "engine/timer.h"

#define REQ_OVERHEAD    (64 * 1024) /* bytes of envelope and options around a job */
#define REQ_OBJECTS     64          /* msgpack objects of the same */
#define ACCEPT_PAUSE    0.1         /* s to wait after accept() fails */

static void flush_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents);

/* ------------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------------ */

static int
peer_allowed(struct fp_control *ctl, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return 0;
    if (cred.uid == 0 || cred.uid == getuid())
        return 1;
    fp_logf(ctl->log, FP_LOG_WARN, "refused a connection from uid %lu (pid %ld)",
            (unsigned long)cred.uid, (long)cred.pid);
    return 0;
}

/* accept() failed (out of fds or memory, or anything else that would only
 * fail again at once): stop listening for ACCEPT_PAUSE and try again.  The
 * first failure of a streak is logged, the retries are not. */
static void
accept_failed(struct fp_control *ctl, int err)
{
    if (ctl->accept_failures++ == 0)
        fp_logf(ctl->log, FP_LOG_ERR, "accept: %s; not accepting connections "
                "for %g s at a time until it works again (retries not logged)",
                strerror(err), ACCEPT_PAUSE);
    ev_io_stop(ctl->loop, &ctl->accept_io);
    fp_timer_after(ctl->loop, &ctl->accept_pause, ACCEPT_PAUSE);
}

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_control *ctl = io->data;
    (void)loop; (void)revents;

    for (;;) {
        int fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                accept_failed(ctl, errno);
            return;
        }
        if (ctl->accept_failures > 0) {
            fp_logf(ctl->log, FP_LOG_INFO, "accepting connections again (after "
                    "%lu failed tries)", ctl->accept_failures);
            ctl->accept_failures = 0;
        }
        if (!peer_allowed(ctl, fd)) {
            close(fd);
            continue;
        }
        if (ctl_client_new(ctl, fd) < 0) {
            close(fd);
            accept_failed(ctl, ENOMEM);
            return;
        }
    }
}

static void
accept_pause_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_control *ctl = tw->data;
    (void)revents;

    if (!ctl->shutting_down)
        ev_io_start(loop, &ctl->accept_io);
}

/* ------------------------------------------------------------------------
 * Open, shut down, close
 * ------------------------------------------------------------------------ */

/* Refuse a live socket; remove a stale one.  Returns 0 or -1 with err. */
static int
claim_path(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; not replacing it", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || fp_sockaddr_un(&sa, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        snprintf(err, errlen, "another forkpoold is already listening on %s", path);
        return -1;
    }
    int e = errno;
    close(fd);
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
                 strerror(e));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The server around a listening socket; `owned`: the socket file is ours
 * to remove at close. */
static struct fp_control *
control_new(struct ev_loop *loop, fp_pool *pool, int lfd, const char *path,
            int owned, const struct fp_control_hooks *hooks,
            const struct fp_logger *log, char *err, size_t errlen)
{
    struct fp_control *ctl = calloc(1, sizeof(*ctl));
    struct stat st;

    if (ctl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (owned && stat(path, &st) == 0) {
        ctl->dev = st.st_dev;
        ctl->ino = st.st_ino;
    }
    ctl->owns_path = owned;
    ctl->lfd = lfd;
    snprintf(ctl->path, sizeof(ctl->path), "%s", path);
    ctl->loop = loop;
    ctl->pool = pool;
    if (hooks != NULL)
        ctl->hooks = *hooks;
    ctl->log = log;
    ctl->methods = ctl_methods;
    ctl->nmethods = ctl_nmethods;
    fp_control_set_job_limits(ctl, 0, 0, FP_DEFAULT_MAX_WORKERS);
    fp_control_set_reply_limits(ctl, 0, 0, 0);
    LIST_INIT(&ctl->clients);
    ctl_events_init(ctl);
    ev_io_init(&ctl->accept_io, accept_cb, ctl->lfd, EV_READ);
    ctl->accept_io.data = ctl;
    ev_timer_init(&ctl->accept_pause, accept_pause_cb, ACCEPT_PAUSE, 0.);
    ctl->accept_pause.data = ctl;
    ev_timer_init(&ctl->flush_timer, flush_timer_cb, 0., 0.);
    ctl->flush_timer.data = ctl;
    ev_io_start(loop, &ctl->accept_io);
    return ctl;
}

struct fp_control *
fp_control_open(struct ev_loop *loop, fp_pool *pool, const char *path,
                const struct fp_control_hooks *hooks,
                const struct fp_logger *log, char *err, size_t errlen)
{
    struct fp_control *ctl;
    struct sockaddr_un sa;
    int lfd;

    if (fp_sockaddr_un(&sa, path) < 0) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return NULL;
    }
    if (claim_path(path, err, errlen) < 0)
        return NULL;
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    /* 0600 from the first instant, whatever the umask. */
    mode_t old = umask(0177);
    int rc = bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(lfd, 128) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        if (rc == 0)
            unlink(path);
        close(lfd);
        return NULL;
    }
    ctl = control_new(loop, pool, lfd, path, 1, hooks, log, err, errlen);
    if (ctl == NULL) {
        unlink(path);
        close(lfd);
    }
    return ctl;
}

struct fp_control *
fp_control_adopt(struct ev_loop *loop, fp_pool *pool, int lfd,
                 const struct fp_control_hooks *hooks,
                 const struct fp_logger *log, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    char path[sizeof(sa.sun_path) + 1] = "(socket activation)";

    if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0
        || fcntl(lfd, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "socket activation: fd %d: %s", lfd, strerror(errno));
        return NULL;
    }
    memset(&sa, 0, sizeof(sa));
    if (getsockname(lfd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_path[0] != '\0')
        snprintf(path, sizeof(path), "%s", sa.sun_path);
    return control_new(loop, pool, lfd, path, 0, hooks, log, err, errlen);
}

const char *
fp_control_path(const struct fp_control *ctl)
{
    return ctl->path;
}

/* The hard limit that follows the others when it was not given: room for
 * a few of the largest results beyond the soft limit, so that a client
 * reading its replies is not cut off by results that arrive together. */
static void
default_hard_limit(struct fp_control *ctl)
{
    if (!ctl->reply.hard_set)
        ctl->reply.hard = ctl->reply.soft + FP_REPLY_HARD_RESULTS * ctl->max_job_bytes;
}

void
fp_control_set_job_limits(struct fp_control *ctl, size_t max_job_bytes,
                          size_t max_job_objects, unsigned max_workers)
{
    ctl->max_workers = max_workers;
    ctl->max_job_bytes = max_job_bytes != 0 ? max_job_bytes : FP_DEFAULT_MAX_JOB_BYTES;
    /* Requests carry one job plus a small envelope and options. */
    ctl->limits.max_bytes = ctl->max_job_bytes + REQ_OVERHEAD;
    ctl->limits.max_objects = (max_job_objects != 0 ? max_job_objects
                                                    : FP_DEFAULT_MAX_JOB_OBJECTS) + REQ_OBJECTS;
    ctl->limits.max_depth = FP_MAX_DEPTH + 2;
    default_hard_limit(ctl);
}

void
fp_control_set_redis(struct fp_control *ctl, struct fp_redis_source *src)
{
    ctl->redis = src;
}

void
fp_control_set_reply_limits(struct fp_control *ctl, size_t soft, size_t hard,
                            size_t total)
{
    ctl->reply.soft = soft != 0 ? soft : FP_REPLY_SOFT_DEFAULT;
    ctl->reply.total = total != 0 ? total : FP_REPLY_TOTAL_DEFAULT;
    ctl->reply.hard = hard;
    ctl->reply.hard_set = hard != 0;
    default_hard_limit(ctl);
}

static void
flush_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_control *ctl = tw->data;
    void (*flushed)(void *) = ctl->flushed;
    (void)loop; (void)revents;

    ctl->flushed = NULL;
    if (flushed != NULL)
        flushed(ctl->flushed_arg);
}

void
ctl_check_flushed(struct fp_control *ctl)
{
    struct client *c;

    if (!ctl->shutting_down || ctl->flushed == NULL)
        return;
    LIST_FOREACH(c, &ctl->clients, link)
        if (c->fd >= 0 && c->out.len > 0)
            return;
    /* Report from the timer so no caller's stack is under the callback. */
    fp_timer_after(ctl->loop, &ctl->flush_timer, 0.);
}

void
fp_control_shutdown(struct fp_control *ctl, double timeout,
                    void (*flushed)(void *arg), void *arg)
{
    struct client *c;

    ctl->shutting_down = 1;
    ctl_events_shutdown(ctl);
    ctl->flushed = flushed;
    ctl->flushed_arg = arg;
    ev_io_stop(ctl->loop, &ctl->accept_io);
    ev_timer_stop(ctl->loop, &ctl->accept_pause);
    LIST_FOREACH(c, &ctl->clients, link)
        ev_io_stop(ctl->loop, &c->rio);
    fp_timer_after(ctl->loop, &ctl->flush_timer, timeout);
    ctl_check_flushed(ctl);
}

void
fp_control_close(struct fp_control *ctl)
{
    struct client *c;
    struct stat st;

    if (ctl == NULL)
        return;
    while ((c = LIST_FIRST(&ctl->clients)) != NULL)
        ctl_client_free(c);     /* outcomes still owed go nowhere: pool is done */
    ev_io_stop(ctl->loop, &ctl->accept_io);
    ev_timer_stop(ctl->loop, &ctl->accept_pause);
    ev_timer_stop(ctl->loop, &ctl->flush_timer);
    close(ctl->lfd);
    if (ctl->owns_path && stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev
        && st.st_ino == ctl->ino)
        unlink(ctl->path);
    free(ctl->batch_jobs);
    ctl_free_replies(ctl);
    ctl_events_free(ctl);
    free(ctl);
}
