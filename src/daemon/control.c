/*
 * control.c — the control socket server (see control.h).
 *
 * Layers as in imsg: a per-client read buffer bounded by fp_scan, a write
 * queue drained by an EV_WRITE watcher armed only while it holds bytes, and
 * a dispatcher on top.  A request whose msgid cannot be read closes the
 * connection; any other bad request gets an error response.  Neither touches
 * other clients.  A client that disconnects with jobs in flight stays
 * allocated (closed) until their outcomes arrive and are dropped.
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

#define READ_CHUNK      (64 * 1024)
#define REQ_OVERHEAD    (64 * 1024) /* bytes of envelope and options around a job */
#define REQ_OBJECTS     64          /* msgpack objects of the same */
#define ACCEPT_PAUSE    0.1         /* s to wait after EMFILE */

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void check_flushed(struct fp_control *ctl);
static int  client_refuse_frame(struct client *c, const char *why);
static int  client_skip(struct client *c);

/* ------------------------------------------------------------------------
 * Packing helpers
 * ------------------------------------------------------------------------ */

void
ctl_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    fp_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* Start a response [1, msgid, ...]; the caller packs error and result. */
void
ctl_begin_response(struct client *c, msgpack_packer *pk, uint32_t msgid)
{
    msgpack_packer_init(pk, &c->out, fp_buf_pack_write);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint32(pk, msgid);
}

/* Reading a client pauses while it owes us reading (its responses pile
 * up) or its jobs wait in bulk; it resumes once neither holds. */
static int
client_backlogged(const struct client *c)
{
    return c->out.len >= OUT_HIGH || c->pending_bytes >= PENDING_HIGH;
}

void
ctl_flush_soon(struct client *c)
{
    struct ev_loop *loop = c->ctl->loop;

    if (c->fd < 0)
        return;
    if (c->out.len > 0)
        ev_io_start(loop, &c->wio);
    if (client_backlogged(c)) {
        ev_io_stop(loop, &c->rio);
    } else if (!ev_is_active(&c->rio) && !ev_is_active(&c->wio)
               && !c->ctl->shutting_down) {
        /* Its jobs ended: read on (frames may wait from before). */
        ev_io_start(loop, &c->rio);
        if (c->in.len > 0)
            ev_feed_event(loop, &c->rio, EV_READ);
    }
}

void
ctl_respond_error_str(struct client *c, uint32_t msgid, const char *msg)
{
    msgpack_packer pk;

    ctl_begin_response(c, &pk, msgid);
    fp_pack_cstr(&pk, msg);
    msgpack_pack_nil(&pk);
    ctl_flush_soon(c);
}

/* A submit that was not accepted: error {"id": nil, "kind": "rejected", ...} */
void
ctl_respond_rejected(struct client *c, uint32_t msgid, const char *detail)
{
    msgpack_packer pk;

    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_map(&pk, 3);
    fp_pack_cstr(&pk, "id");
    msgpack_pack_nil(&pk);
    fp_pack_cstr(&pk, "kind");
    fp_pack_cstr(&pk, fp_kind_name(FP_REJECTED));
    fp_pack_cstr(&pk, "detail");
    fp_pack_cstr(&pk, detail);
    msgpack_pack_nil(&pk);
    ctl_flush_soon(c);
}

/* ------------------------------------------------------------------------
 * Client lifetime
 * ------------------------------------------------------------------------ */

void
ctl_client_free(struct client *c)
{
    LIST_REMOVE(c, link);
    fp_buf_free(&c->in);
    fp_buf_free(&c->out);
    free(c);
}

/* Close the connection; the struct lives on while outcomes are owed to it. */
static void
client_close(struct client *c)
{
    struct fp_control *ctl = c->ctl;

    if (c->fd >= 0) {
        ev_io_stop(ctl->loop, &c->rio);
        ev_io_stop(ctl->loop, &c->wio);
        close(c->fd);
        c->fd = -1;
    }
    fp_buf_free(&c->in);
    fp_buf_free(&c->out);
    if (c->pending == 0)
        ctl_client_free(c);
    check_flushed(ctl);
}

/* ------------------------------------------------------------------------
 * I/O
 * ------------------------------------------------------------------------ */

static void
client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    struct fp_control *ctl = c->ctl;
    const char *why;
    (void)loop; (void)revents;

    char *room = fp_buf_reserve(&c->in, READ_CHUNK);
    if (room == NULL) {
        client_close(c);
        return;
    }
    ssize_t got = read(c->fd, room, READ_CHUNK);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        got = 0;    /* nothing new: frames kept from a pause may still wait */
    else if (got <= 0) {
        client_close(c);
        return;
    }
    c->in.len += (size_t)got;
    while (c->fd >= 0 && c->in.len > 0) {
        if (c->input == INPUT_SKIPPING) {
            int rc = client_skip(c);
            if (rc < 0)
                return;
            if (rc == 0)
                break;
            continue;
        }
        ssize_t n = fp_scan(&c->scan, fp_buf_head(&c->in), c->in.len,
                            &ctl->limits, &why);
        if (n == 0)
            break;
        if (n < 0) {
            if (client_refuse_frame(c, why) < 0)
                return;
            continue;
        }
        int rc = ctl_dispatch(c, fp_buf_head(&c->in), (size_t)n);
        fp_buf_consume(&c->in, (size_t)n);
        fp_scanner_reset(&c->scan);
        if (rc < 0) {
            fp_logf(ctl->log, FP_LOG_WARN, "client %lu: request without a "
                    "readable msgid; closing the connection", c->serial);
            client_close(c);
            return;
        }
        if (client_backlogged(c)) {
            ev_io_stop(ctl->loop, &c->rio);
            break;      /* resume once it reads or its jobs end */
        }
    }
    if (c->fd >= 0)
        fp_buf_shrink(&c->in, 1 << 20);
}

/* A frame broke a limit or the format.  Over the size limits (bytes or
 * objects) its structure is still sound: its request is answered (a
 * submit's outcome is "rejected", "job too large") and the rest of it is
 * dropped as it arrives, so the client's other requests and outcomes go
 * on.  Invalid msgpack or nesting past the limit leaves no way to find the
 * frame's end: its msgid, if the bytes so far show one, gets an error
 * naming the problem, and the connection closes.  That error is written
 * with one nonblocking attempt (what is already queued goes first): the
 * master never waits on a client it is dropping.  Returns 0 if the
 * connection goes on, -1 if it was closed. */
static int
client_refuse_frame(struct client *c, const char *why)
{
    struct fp_control *ctl = c->ctl;
    const char *method;
    uint32_t msgid, method_len;
    char msg[128];
    int have_msgid = fp_wire_request_head(fp_buf_head(&c->in), c->in.len, &msgid,
                                          &method, &method_len) == 0;
    int oversized = strcmp(why, "frame too large") == 0
                    || strcmp(why, "too many objects") == 0;

    if (have_msgid && oversized) {
        fp_logf(ctl->log, FP_LOG_WARN, "client %lu: request %lu: %s (limit "
                "%zu bytes, %zu objects); refused, its bytes skipped",
                c->serial, (unsigned long)msgid, why, ctl->limits.max_bytes,
                ctl->limits.max_objects);
        ctl_refuse_oversized(c, msgid, method, method_len, why);
        fp_skip_start(&c->skip, &c->scan);
        fp_buf_consume(&c->in, c->scan.pos);
        fp_scanner_reset(&c->scan);
        c->input = INPUT_SKIPPING;
        return 0;
    }
    fp_logf(ctl->log, FP_LOG_WARN, "client %lu: bad request frame: %s; "
            "closing the connection", c->serial, why);
    if (have_msgid) {
        snprintf(msg, sizeof(msg), "bad request: %s", why);
        ctl_respond_error_str(c, msgid, msg);
        ssize_t n = write(c->fd, fp_buf_head(&c->out), c->out.len);
        (void)n;
    }
    client_close(c);
    return -1;
}

/* INPUT_SKIPPING: drop what is read of the refused frame.  Returns 1 when
 * it has ended (frames follow), 0 when more bytes are needed, -1 if the
 * connection was closed (bytes that are not msgpack). */
static int
client_skip(struct client *c)
{
    int done;
    ssize_t n = fp_skip(&c->skip, fp_buf_head(&c->in), c->in.len, &done);

    if (n < 0) {
        fp_logf(c->ctl->log, FP_LOG_WARN, "client %lu: bad bytes in a refused "
                "request frame; closing the connection", c->serial);
        client_close(c);
        return -1;
    }
    fp_buf_consume(&c->in, (size_t)n);
    if (!done)
        return 0;
    c->input = INPUT_FRAMES;
    return 1;
}

static void
client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    (void)revents;

    while (c->out.len > 0) {
        ssize_t n = write(c->fd, fp_buf_head(&c->out), c->out.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            client_close(c);
            return;
        }
        fp_buf_consume(&c->out, (size_t)n);
    }
    ev_io_stop(loop, &c->wio);
    fp_buf_shrink(&c->out, 1 << 20);
    if (!c->ctl->shutting_down && !client_backlogged(c)) {
        ev_io_start(loop, &c->rio);
        /* Frames may be waiting from when reading was paused. */
        if (c->in.len > 0)
            ev_feed_event(loop, &c->rio, EV_READ);
    }
    check_flushed(c->ctl);
}

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

static void
accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct fp_control *ctl = io->data;
    (void)revents;

    for (;;) {
        int fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM) {
                fp_logf(ctl->log, FP_LOG_ERR, "accept: %s; pausing", strerror(errno));
                ev_io_stop(loop, &ctl->accept_io);
                ev_timer_start(loop, &ctl->accept_pause);
            }
            return;
        }
        if (!peer_allowed(ctl, fd)) {
            close(fd);
            continue;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->ctl = ctl;
        c->fd = fd;
        c->serial = ++ctl->next_serial;
        ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
        ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
        c->rio.data = c->wio.data = c;
        LIST_INSERT_HEAD(&ctl->clients, c, link);
        ev_io_start(loop, &c->rio);
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
    LIST_INIT(&ctl->clients);
    ev_io_init(&ctl->accept_io, accept_cb, ctl->lfd, EV_READ);
    ctl->accept_io.data = ctl;
    ev_timer_init(&ctl->accept_pause, accept_pause_cb, ACCEPT_PAUSE, 0.);
    ctl->accept_pause.data = ctl;
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

void
fp_control_set_job_limits(struct fp_control *ctl, size_t max_job_bytes,
                          size_t max_job_objects, unsigned max_workers)
{
    ctl->max_workers = max_workers;
    ctl->max_job_bytes = max_job_bytes != 0 ? max_job_bytes : FP_DEFAULT_MAX_JOB_BYTES;
    /* Requests carry one job plus a small envelope and options. */
    ctl->limits.max_bytes = (max_job_bytes != 0 ? max_job_bytes
                                                : FP_DEFAULT_MAX_JOB_BYTES) + REQ_OVERHEAD;
    ctl->limits.max_objects = (max_job_objects != 0 ? max_job_objects
                                                    : FP_DEFAULT_MAX_JOB_OBJECTS) + REQ_OBJECTS;
    ctl->limits.max_depth = FP_MAX_DEPTH + 2;
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

static void
check_flushed(struct fp_control *ctl)
{
    struct client *c;

    if (!ctl->shutting_down || ctl->flushed == NULL)
        return;
    LIST_FOREACH(c, &ctl->clients, link)
        if (c->fd >= 0 && c->out.len > 0)
            return;
    /* Report from the timer so no caller's stack is under the callback. */
    ev_timer_stop(ctl->loop, &ctl->flush_timer);
    ev_timer_set(&ctl->flush_timer, 0., 0.);
    ev_timer_start(ctl->loop, &ctl->flush_timer);
}

void
fp_control_shutdown(struct fp_control *ctl, double timeout,
                    void (*flushed)(void *arg), void *arg)
{
    struct client *c;

    ctl->shutting_down = 1;
    ctl->flushed = flushed;
    ctl->flushed_arg = arg;
    ev_io_stop(ctl->loop, &ctl->accept_io);
    ev_timer_stop(ctl->loop, &ctl->accept_pause);
    LIST_FOREACH(c, &ctl->clients, link)
        ev_io_stop(ctl->loop, &c->rio);
    ev_timer_init(&ctl->flush_timer, flush_timer_cb, timeout, 0.);
    ctl->flush_timer.data = ctl;
    ev_timer_start(ctl->loop, &ctl->flush_timer);
    check_flushed(ctl);
}

void
fp_control_close(struct fp_control *ctl)
{
    struct client *c;
    struct stat st;

    if (ctl == NULL)
        return;
    while ((c = LIST_FIRST(&ctl->clients)) != NULL) {
        if (c->fd >= 0) {
            ev_io_stop(ctl->loop, &c->rio);
            ev_io_stop(ctl->loop, &c->wio);
            close(c->fd);
        }
        ctl_client_free(c);     /* outcomes still owed go nowhere: pool is done */
    }
    ev_io_stop(ctl->loop, &ctl->accept_io);
    ev_timer_stop(ctl->loop, &ctl->accept_pause);
    ev_timer_stop(ctl->loop, &ctl->flush_timer);
    close(ctl->lfd);
    if (ctl->owns_path && stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev
        && st.st_ino == ctl->ino)
        unlink(ctl->path);
    free(ctl->batch_jobs);
    ctl_free_replies(ctl);
    free(ctl);
}
