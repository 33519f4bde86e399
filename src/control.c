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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "control.h"
#include "wire.h"
#include "frame.h"
#include "sockpath.h"

#define READ_CHUNK      (64 * 1024)
#define OUT_HIGH        (8u << 20)  /* stop reading a client that does not read */
#define REQ_OVERHEAD    (64 * 1024) /* envelope and options around a job */
#define ACCEPT_PAUSE    0.1         /* s to wait after EMFILE */

struct client {
    LIST_ENTRY(client) link;
    struct fp_control *ctl;
    int                fd;          /* -1 once closed */
    ev_io              rio, wio;
    struct fp_buf      in, out;
    struct fp_scanner  scan;
    unsigned           pending;     /* submitted jobs without an outcome */
    unsigned long      serial;      /* for log lines */
};

struct fp_control {
    struct ev_loop    *loop;
    fp_pool           *pool;
    struct fp_control_hooks hooks;
    const struct fp_logger *log;
    char               path[108];
    dev_t              dev;         /* to remove only our own socket file */
    ino_t              ino;
    int                lfd;
    ev_io              accept_io;
    ev_timer           accept_pause;
    struct fp_limits   limits;
    LIST_HEAD(, client) clients;
    unsigned long      next_serial;
    unsigned           max_workers;     /* for error messages */
    int                shutting_down;
    ev_timer           flush_timer;
    void             (*flushed)(void *arg);
    void              *flushed_arg;
};

/* One submitted job's way back to its client. */
struct reply_to {
    struct client *c;
    uint32_t       msgid;
};

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void check_flushed(struct fp_control *ctl);
static void client_refuse_frame(struct client *c, const char *why);

/* ------------------------------------------------------------------------
 * Packing helpers
 * ------------------------------------------------------------------------ */

static void
pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    fp_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* Start a response [1, msgid, ...]; the caller packs error and result. */
static void
begin_response(struct client *c, msgpack_packer *pk, uint32_t msgid)
{
    msgpack_packer_init(pk, &c->out, fp_buf_pack_write);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint32(pk, msgid);
}

static void
flush_soon(struct client *c)
{
    if (c->fd >= 0 && c->out.len > 0)
        ev_io_start(c->ctl->loop, &c->wio);
    if (c->out.len >= OUT_HIGH)
        ev_io_stop(c->ctl->loop, &c->rio);
}

static void
respond_error_str(struct client *c, uint32_t msgid, const char *msg)
{
    msgpack_packer pk;

    begin_response(c, &pk, msgid);
    fp_pack_cstr(&pk, msg);
    msgpack_pack_nil(&pk);
    flush_soon(c);
}

/* A submit that was not accepted: error {"id": nil, "kind": "rejected", ...} */
static void
respond_rejected(struct client *c, uint32_t msgid, const char *detail)
{
    msgpack_packer pk;

    begin_response(c, &pk, msgid);
    msgpack_pack_map(&pk, 3);
    fp_pack_cstr(&pk, "id");
    msgpack_pack_nil(&pk);
    fp_pack_cstr(&pk, "kind");
    fp_pack_cstr(&pk, fp_kind_name(FP_REJECTED));
    fp_pack_cstr(&pk, "detail");
    fp_pack_cstr(&pk, detail);
    msgpack_pack_nil(&pk);
    flush_soon(c);
}

/* ------------------------------------------------------------------------
 * Client lifetime
 * ------------------------------------------------------------------------ */

static void
client_free(struct client *c)
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
        client_free(c);
    check_flushed(ctl);
}

/* ------------------------------------------------------------------------
 * Methods
 * ------------------------------------------------------------------------ */

static void
job_done_cb(const fp_outcome *o, void *arg)
{
    struct reply_to *rt = arg;
    struct client *c = rt->c;
    uint32_t msgid = rt->msgid;
    msgpack_packer pk;

    free(rt);
    c->pending--;
    if (c->fd < 0) {
        if (c->pending == 0)
            client_free(c);
        return;
    }
    begin_response(c, &pk, msgid);
    if (o->kind == FP_OK) {
        msgpack_pack_nil(&pk);
        msgpack_pack_map(&pk, o->attempts > 1 ? 3 : 2);
        pack_kv_u64(&pk, "id", o->id);
        fp_pack_cstr(&pk, "result");
        fp_buf_append(&c->out, o->data, o->len);
    } else {
        msgpack_pack_map(&pk, o->attempts > 1 ? 4 : 3);
        pack_kv_u64(&pk, "id", o->id);
        fp_pack_cstr(&pk, "kind");
        fp_pack_cstr(&pk, fp_kind_name(o->kind));
        fp_pack_cstr(&pk, "detail");
        fp_buf_append(&c->out, o->data, o->len);
    }
    if (o->attempts > 1)
        pack_kv_u64(&pk, "attempts", o->attempts);
    if (o->kind != FP_OK)
        msgpack_pack_nil(&pk);
    flush_soon(c);
}

static void
method_submit(struct client *c, uint32_t msgid, struct fp_reader *r, uint32_t nparams)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    int notify = 0;
    uint64_t id;
    const char *job, *why;
    size_t len;
    struct reply_to *rt;

    if (nparams < 1 || nparams > 2) {
        respond_rejected(c, msgid, "malformed: params must be [job] or [job, options]");
        return;
    }
    if (fp_read_skip(r, &job, &len) < 0) {
        respond_rejected(c, msgid, "malformed");
        return;
    }
    if (nparams == 2 && (why = fp_wire_job_opts(r, &opts, &notify)) != NULL) {
        respond_rejected(c, msgid, why);
        return;
    }
    rt = malloc(sizeof(*rt));
    if (rt == NULL) {
        respond_rejected(c, msgid, "out of memory");
        return;
    }
    rt->c = c;
    rt->msgid = msgid;
    if (fp_pool_submit(c->ctl->pool, job, len, &opts, job_done_cb, rt, &id, &why) < 0) {
        free(rt);
        respond_rejected(c, msgid, why);
        return;
    }
    c->pending++;
    if (notify) {
        /* [2, "accepted", [msgid, id]]: the id, early enough to cancel. */
        msgpack_packer pk;
        msgpack_packer_init(&pk, &c->out, fp_buf_pack_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, 2);
        fp_pack_cstr(&pk, "accepted");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, msgid);
        msgpack_pack_uint64(&pk, id);
        flush_soon(c);
    }
}

/* "worker_list": one map per live worker (SPEC's "workers" is the count). */
static void
pack_worker_rows(msgpack_packer *pk, fp_pool *pool)
{
    fp_worker_info rows[1024];
    size_t n = fp_pool_worker_info(pool, rows, sizeof(rows) / sizeof(rows[0]));

    if (n > sizeof(rows) / sizeof(rows[0]))
        n = sizeof(rows) / sizeof(rows[0]);
    fp_pack_cstr(pk, "worker_list");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 7);
        pack_kv_u64(pk, "pid", (uint64_t)rows[i].pid);
        fp_pack_cstr(pk, "state");
        fp_pack_cstr(pk, rows[i].state);
        fp_pack_cstr(pk, "job");
        if (rows[i].job != 0)
            msgpack_pack_uint64(pk, rows[i].job);
        else
            msgpack_pack_nil(pk);
        fp_pack_cstr(pk, "job_age_s");
        msgpack_pack_double(pk, rows[i].job_age_s);
        pack_kv_u64(pk, "queued", rows[i].queued);
        pack_kv_u64(pk, "jobs_done", rows[i].jobs_done);
        pack_kv_u64(pk, "rss", rows[i].rss);
    }
}

static void
method_status(struct client *c, uint32_t msgid)
{
    fp_pool *pool = c->ctl->pool;
    fp_stats st;
    pid_t pids[1024];
    msgpack_packer pk;
    size_t npids = fp_pool_pids(pool, pids, sizeof(pids) / sizeof(pids[0]));

    if (npids > sizeof(pids) / sizeof(pids[0]))
        npids = sizeof(pids) / sizeof(pids[0]);
    fp_pool_stats(pool, &st);
    begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 17);
    fp_pack_cstr(&pk, "state");
    fp_pack_cstr(&pk, st.draining ? "draining" : "running");
    pack_kv_u64(&pk, "workers", st.workers);
    pack_kv_u64(&pk, "busy", st.busy);
    pack_kv_u64(&pk, "idle", st.idle);
    pack_kv_u64(&pk, "starting", st.starting);
    pack_kv_u64(&pk, "queued", st.queued);
    pack_kv_u64(&pk, "submitted", st.submitted);
    pack_kv_u64(&pk, "completed", st.completed);
    pack_kv_u64(&pk, "failed", st.failed);
    pack_kv_u64(&pk, "crashed", st.crashed);
    pack_kv_u64(&pk, "timed_out", st.timed_out);
    pack_kv_u64(&pk, "cancelled", st.cancelled);
    pack_kv_u64(&pk, "restarts", st.restarts);
    pack_kv_u64(&pk, "start_failures", st.start_failures);
    fp_pack_cstr(&pk, "uptime_s");
    msgpack_pack_double(&pk, st.uptime_s);
    fp_pack_cstr(&pk, "pids");
    msgpack_pack_array(&pk, npids);
    for (size_t i = 0; i < npids; i++)
        msgpack_pack_int64(&pk, pids[i]);
    pack_worker_rows(&pk, pool);
    flush_soon(c);
}

static void
method_cancel(struct client *c, uint32_t msgid, struct fp_reader *r, uint32_t nparams)
{
    uint64_t id;
    msgpack_packer pk;

    if (nparams != 1 || fp_read_uint(r, &id) < 0) {
        respond_error_str(c, msgid, "bad params: expected [id]");
        return;
    }
    int found = fp_pool_cancel(c->ctl->pool, id);
    if (c->fd < 0)
        return;     /* closed by an outcome delivered in the cancel */
    begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    if (found)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    flush_soon(c);
}

static void
method_scale(struct client *c, uint32_t msgid, struct fp_reader *r, uint32_t nparams)
{
    uint64_t n;
    msgpack_packer pk;
    char msg[128];

    if (nparams != 1 || fp_read_uint(r, &n) < 0 || n > UINT32_MAX) {
        respond_error_str(c, msgid, "bad params: expected [n]");
        return;
    }
    if (fp_pool_scale(c->ctl->pool, (unsigned)n) < 0) {
        if (errno == EBUSY)
            snprintf(msg, sizeof(msg), "cannot scale while draining");
        else
            snprintf(msg, sizeof(msg), "cannot scale to %llu workers: the "
                     "limit is 1 to %u", (unsigned long long)n, c->ctl->max_workers);
        respond_error_str(c, msgid, msg);
        return;
    }
    begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 1);
    pack_kv_u64(&pk, "workers", n);
    flush_soon(c);
}

/* Prometheus text exposition of the pool's counters and gauges. */
static void
method_metrics(struct client *c, uint32_t msgid)
{
    fp_stats st;
    char text[4096];
    msgpack_packer pk;
    int n;

    fp_pool_stats(c->ctl->pool, &st);
    n = snprintf(text, sizeof(text),
        "# HELP forkpool_jobs_total Jobs that reached a final outcome, by kind.\n"
        "# TYPE forkpool_jobs_total counter\n"
        "forkpool_jobs_total{kind=\"ok\"} %llu\n"
        "forkpool_jobs_total{kind=\"error\"} %llu\n"
        "forkpool_jobs_total{kind=\"crashed\"} %llu\n"
        "forkpool_jobs_total{kind=\"timeout\"} %llu\n"
        "forkpool_jobs_total{kind=\"cancelled\"} %llu\n"
        "# HELP forkpool_jobs_submitted_total Jobs accepted.\n"
        "# TYPE forkpool_jobs_submitted_total counter\n"
        "forkpool_jobs_submitted_total %llu\n"
        "# HELP forkpool_worker_restarts_total Workers replaced after dying.\n"
        "# TYPE forkpool_worker_restarts_total counter\n"
        "forkpool_worker_restarts_total %llu\n"
        "# HELP forkpool_queue_depth Jobs waiting for a worker.\n"
        "# TYPE forkpool_queue_depth gauge\n"
        "forkpool_queue_depth %zu\n"
        "# HELP forkpool_workers Workers by state.\n"
        "# TYPE forkpool_workers gauge\n"
        "forkpool_workers{state=\"busy\"} %u\n"
        "forkpool_workers{state=\"idle\"} %u\n"
        "forkpool_workers{state=\"starting\"} %u\n"
        "# HELP forkpool_draining 1 while the pool drains.\n"
        "# TYPE forkpool_draining gauge\n"
        "forkpool_draining %d\n",
        (unsigned long long)st.completed, (unsigned long long)st.failed,
        (unsigned long long)st.crashed, (unsigned long long)st.timed_out,
        (unsigned long long)st.cancelled, (unsigned long long)st.submitted,
        (unsigned long long)st.restarts, st.queued, st.busy, st.idle,
        st.starting, st.draining);
    n += snprintf(text + n, sizeof(text) - (size_t)n,
        "# HELP forkpool_job_duration_seconds Run time of jobs that ended ok or error.\n"
        "# TYPE forkpool_job_duration_seconds histogram\n");
    for (unsigned i = 0; i < FP_LATENCY_BUCKETS; i++) {
        char le[32];
        if (i < FP_LATENCY_BUCKETS - 1)
            snprintf(le, sizeof(le), "%g", fp_latency_bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        n += snprintf(text + n, sizeof(text) - (size_t)n,
                      "forkpool_job_duration_seconds_bucket{le=\"%s\"} %llu\n",
                      le, (unsigned long long)st.latency_count[i]);
    }
    n += snprintf(text + n, sizeof(text) - (size_t)n,
                  "forkpool_job_duration_seconds_sum %.6f\n"
                  "forkpool_job_duration_seconds_count %llu\n", st.latency_sum,
                  (unsigned long long)st.latency_count[FP_LATENCY_BUCKETS - 1]);
    begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, (size_t)n);
    msgpack_pack_str_body(&pk, text, (size_t)n);
    flush_soon(c);
}

/* Handle one request frame.  Returns -1 if the connection must close. */
static int
handle_request(struct client *c, const char *frame, size_t len)
{
    struct fp_request rq;
    const char *why;
    char msg[160];
    int rc = fp_wire_request(frame, len, &rq, &why);

    if (rc < 0)
        return -1;
    if (rc > 0) {
        respond_error_str(c, rq.msgid, why);
        return 0;
    }
    if (fp_wire_method_is(&rq, "submit"))
        method_submit(c, rq.msgid, &rq.params, rq.nparams);
    else if (fp_wire_method_is(&rq, "status"))
        method_status(c, rq.msgid);
    else if (fp_wire_method_is(&rq, "cancel"))
        method_cancel(c, rq.msgid, &rq.params, rq.nparams);
    else if (fp_wire_method_is(&rq, "metrics"))
        method_metrics(c, rq.msgid);
    else if (fp_wire_method_is(&rq, "scale"))
        method_scale(c, rq.msgid, &rq.params, rq.nparams);
    else if (fp_wire_method_is(&rq, "reload")) {
        msgpack_packer pk;
        fp_pool_reload(c->ctl->pool);
        begin_response(c, &pk, rq.msgid);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        flush_soon(c);
    } else if (fp_wire_method_is(&rq, "drain")) {
        msgpack_packer pk;
        begin_response(c, &pk, rq.msgid);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        flush_soon(c);
        if (c->ctl->hooks.drain != NULL)
            c->ctl->hooks.drain(c->ctl->hooks.arg);
    } else {
        snprintf(msg, sizeof(msg), "unknown method: %.*s",
                 (int)(rq.method_len > 64 ? 64 : rq.method_len), rq.method);
        respond_error_str(c, rq.msgid, msg);
    }
    return 0;
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
        return;
    if (got <= 0) {
        client_close(c);
        return;
    }
    c->in.len += (size_t)got;
    while (c->fd >= 0 && c->in.len > 0) {
        ssize_t n = fp_scan(&c->scan, fp_buf_head(&c->in), c->in.len,
                            &ctl->limits, &why);
        if (n == 0)
            break;
        if (n < 0) {
            fp_logf(ctl->log, FP_LOG_WARN, "client %lu: bad request frame: %s; "
                    "closing the connection", c->serial, why);
            client_refuse_frame(c, why);
            return;
        }
        int rc = handle_request(c, fp_buf_head(&c->in), (size_t)n);
        fp_buf_consume(&c->in, (size_t)n);
        fp_scanner_reset(&c->scan);
        if (rc < 0) {
            fp_logf(ctl->log, FP_LOG_WARN, "client %lu: request without a "
                    "readable msgid; closing the connection", c->serial);
            client_close(c);
            return;
        }
        if (c->out.len >= OUT_HIGH)
            break;      /* resume once it reads its responses */
    }
    if (c->fd >= 0)
        fp_buf_shrink(&c->in, 1 << 20);
}

/* A frame broke a limit or the format: answer its msgid, if the bytes so
 * far show one, with an error naming the limit; then disconnect.  The error
 * is written with one nonblocking attempt (what is already queued goes
 * first): the master never waits on a client it is dropping. */
static void
client_refuse_frame(struct client *c, const char *why)
{
    uint32_t msgid;
    char msg[128];

    if (fp_wire_request_msgid(fp_buf_head(&c->in), c->in.len, &msgid) == 0) {
        snprintf(msg, sizeof(msg), "bad request: %s", why);
        respond_error_str(c, msgid, msg);
        ssize_t n = write(c->fd, fp_buf_head(&c->out), c->out.len);
        (void)n;
    }
    client_close(c);
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
    if (!c->ctl->shutting_down) {
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

struct fp_control *
fp_control_open(struct ev_loop *loop, fp_pool *pool, const char *path,
                const struct fp_control_hooks *hooks,
                const struct fp_logger *log, char *err, size_t errlen)
{
    struct fp_control *ctl;
    struct sockaddr_un sa;
    struct stat st;
    mode_t old;

    if (fp_sockaddr_un(&sa, path) < 0) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return NULL;
    }
    if (claim_path(path, err, errlen) < 0)
        return NULL;
    ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->lfd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        free(ctl);
        return NULL;
    }
    /* 0600 from the first instant, whatever the umask. */
    old = umask(0177);
    int rc = bind(ctl->lfd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(ctl->lfd, 128) < 0
        || stat(path, &st) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        if (rc == 0)
            unlink(path);
        close(ctl->lfd);
        free(ctl);
        return NULL;
    }
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    snprintf(ctl->path, sizeof(ctl->path), "%s", path);
    ctl->loop = loop;
    ctl->pool = pool;
    if (hooks != NULL)
        ctl->hooks = *hooks;
    ctl->log = log;
    /* Requests carry one job plus a small envelope and options. */
    ctl->limits.max_bytes = (64u << 20) + REQ_OVERHEAD;
    ctl->limits.max_objects = (1u << 20) + 64;
    ctl->limits.max_depth = FP_MAX_DEPTH + 2;
    LIST_INIT(&ctl->clients);
    ev_io_init(&ctl->accept_io, accept_cb, ctl->lfd, EV_READ);
    ctl->accept_io.data = ctl;
    ev_timer_init(&ctl->accept_pause, accept_pause_cb, ACCEPT_PAUSE, 0.);
    ctl->accept_pause.data = ctl;
    ev_io_start(loop, &ctl->accept_io);
    return ctl;
}

void
fp_control_set_job_limits(struct fp_control *ctl, size_t max_job_bytes,
                          size_t max_job_objects, unsigned max_workers)
{
    ctl->max_workers = max_workers;
    ctl->limits.max_bytes = max_job_bytes + REQ_OVERHEAD;
    ctl->limits.max_objects = max_job_objects + 64;
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
        client_free(c);     /* outcomes still owed go nowhere: pool is done */
    }
    ev_io_stop(ctl->loop, &ctl->accept_io);
    ev_timer_stop(ctl->loop, &ctl->accept_pause);
    ev_timer_stop(ctl->loop, &ctl->flush_timer);
    close(ctl->lfd);
    if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
        unlink(ctl->path);
    free(ctl);
}
