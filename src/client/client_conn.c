/*
 * client_conn.c — one connection to forkpoold: connect, the write queue,
 * the read buffer, message framing and the blocking waits.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_int.h"
#include "common/sockpath.h"
#include "forkpool.h"

#define READ_CHUNK   ((size_t)64 << 10)
#define KEEP_BUFFER  ((size_t)1 << 20)  /* read buffer kept after a frame */
#define WRITE_IOV    64                 /* segments per sendmsg */

_Static_assert(FP_CLIENT_BY_REFERENCE == FP_OUTQ_BIG,
               "the header's by-reference size is the write queue's");
_Static_assert(FP_CLIENT_DEFAULT_MAX_BYTES
               == FP_DEFAULT_MAX_JOB_BYTES + ((size_t)64 << 10),
               "the header's default is the daemon's plus an envelope");

/* Messages are bounded like any untrusted frame: by size (settable), by
 * objects, and nested two levels deeper than a job may be. */
static const struct fp_limits default_limits = {
    .max_bytes = FP_CLIENT_DEFAULT_MAX_BYTES,
    .max_objects = (size_t)1 << 22,
    .max_depth = FP_MAX_DEPTH + 2,
};

/* Every call but connect, close and the accessors starts here. */
static int
connected(struct fp_client *c)
{
    if (c->fd >= 0)
        return 0;
    if (c->lost[0] != '\0')
        return fpc_fail(c, FP_CLIENT_EPROTO, "%s", c->lost);
    return fpc_fail(c, FP_CLIENT_ECONNECT, "not connected");
}

/* Nothing more will come: the daemon closed (ECONNECT, its message kept),
 * or the stream was given up (EPROTO, with why). */
static int
ended(struct fp_client *c)
{
    if (c->lost[0] != '\0')
        return fpc_fail(c, FP_CLIENT_EPROTO, "%s", c->lost);
    return FP_CLIENT_ECONNECT;
}

/* A frame that cannot be read (not msgpack, or larger than the bound):
 * nothing after it can be found either.  The connection ends here: the
 * socket is closed and what is left unread dropped; messages set aside
 * before it are still handed out. */
static int
lose_sync(struct fp_client *c, const char *why)
{
    snprintf(c->lost, sizeof c->lost, "bad response frame: %s", why);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->eof = 1;
    c->last = 0;
    fp_buf_clear(&c->in);
    fp_scanner_reset(&c->scan);
    return fpc_fail(c, FP_CLIENT_EPROTO, "%s", c->lost);
}

/* Remember a blocking call's tag that gave up. */
static void
abandon(struct fp_client *c, uint32_t tag)
{
    c->abandoned[c->abandoned_next] = tag;
    c->abandoned_next = (c->abandoned_next + 1) % ABANDONED;
    if (c->nabandoned < ABANDONED)
        c->nabandoned++;
}

/* Is m for a blocking call that gave up?  Its final response also
 * forgets the tag. */
static int
is_abandoned(struct fp_client *c, const struct fp_client_msg *m)
{
    if (m->type == FP_CLIENT_MSG_EVENT || m->tag <= FP_CLIENT_TAG_MAX)
        return 0;
    for (unsigned i = 0; i < c->nabandoned; i++)
        if (c->abandoned[i] == m->tag) {
            if (m->type == FP_CLIENT_MSG_RESPONSE)
                c->abandoned[i] = 0;    /* 0 is never a tag */
            return 1;
        }
    return 0;
}

int
fpc_fail(struct fp_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return rc;
}

int64_t
fpc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
fpc_tag(struct fp_client *c, uint32_t *tag, uint32_t *out)
{
    if (tag != NULL && *tag != 0) {
        if (*tag > FP_CLIENT_TAG_MAX)
            return fpc_fail(c, FP_CLIENT_EINVAL, "a caller's tag is 1 to %u",
                            FP_CLIENT_TAG_MAX);
        *out = *tag;
        return 0;
    }
    /* The library's own: above the callers' range, wrapping within it. */
    if (++c->next_tag <= FP_CLIENT_TAG_MAX)
        c->next_tag = FP_CLIENT_TAG_MAX + 1;
    *out = c->next_tag;
    return 0;
}

/* Whole milliseconds, at least one: a timeout given is never "none". */
static int64_t
timeout_ms(double s)
{
    if (!(s > 0))
        return 0;
    return s >= 1e12 ? (int64_t)1e15 : (int64_t)(s * 1000 + 0.999);
}

/* ---- connection --------------------------------------------------------- */

int
fp_client_default_path(char *buf, size_t len)
{
    return fp_default_socket_path(buf, len) == 0 ? 0 : FP_CLIENT_EINVAL;
}

int
fp_client_connect(fp_client **out, const char *path, double timeout)
{
    char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct sockaddr_un sa;
    struct fp_client *c;

    *out = c = calloc(1, sizeof *c);
    if (c == NULL)
        return FP_CLIENT_ENOMEM;
    c->fd = -1;
    c->parked_tail = &c->parked;
    c->limits = default_limits;
    c->timeout_ms = timeout_ms(timeout);
    fp_scanner_reset(&c->scan);
    if (path == NULL) {
        if (fp_default_socket_path(def, sizeof def) < 0)
            return fpc_fail(c, FP_CLIENT_EINVAL,
                            "the default socket path is too long");
        path = def;
    }
    if ((c->path = strdup(path)) == NULL)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    if (fp_sockaddr_un(&sa, path) < 0)
        return fpc_fail(c, FP_CLIENT_EINVAL, "socket path too long");
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fpc_fail(c, FP_CLIENT_ECONNECT, "%s", strerror(errno));
    fp_sock_widen(c->fd);
    /* Connect blocking: a UNIX socket connect completes or fails at once,
     * unless the daemon's backlog is full (a wedged daemon): then it waits,
     * for as long as the send timeout lets it, and fails with EAGAIN. */
    if (c->timeout_ms > 0) {
        struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
                              .tv_usec = (c->timeout_ms % 1000) * 1000 };
        (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        if (e == EAGAIN && c->timeout_ms > 0)
            return fpc_fail(c, FP_CLIENT_ETIMEDOUT, "connect: no answer within %g s",
                            (double)c->timeout_ms / 1000);
        return fpc_fail(c, FP_CLIENT_ECONNECT, "%s", strerror(e));
    }
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return fpc_fail(c, FP_CLIENT_ECONNECT, "%s", strerror(e));
    }
    return 0;
}

void
fp_client_close(fp_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    while (c->parked != NULL) {
        struct parked *p = c->parked;
        c->parked = p->next;
        free(p);
    }
    free(c->handed);
    fp_buf_free(&c->in);
    fp_buf_free(&c->scratch);
    fp_outq_free(&c->out);      /* releases what was queued by reference */
    free(c->path);
    free(c);
}

const char *
fp_client_error(const fp_client *c)
{
    return c == NULL ? "out of memory" : c->err;
}

const char *
fp_client_path(const fp_client *c)
{
    return c != NULL && c->path != NULL ? c->path : "";
}

void
fp_client_set_max_bytes(fp_client *c, size_t max)
{
    c->limits.max_bytes = max > 0 ? max : FP_CLIENT_DEFAULT_MAX_BYTES;
}

void
fp_client_set_timeout(fp_client *c, double timeout)
{
    c->timeout_ms = timeout_ms(timeout);
}

int
fp_client_fd(const fp_client *c)
{
    return c->fd;
}

size_t
fp_client_want_write(const fp_client *c)
{
    return c->out.len;
}

/* ---- requests ----------------------------------------------------------- */

int
fpc_queue(struct fp_client *c, uint32_t tag, const char *method,
          const struct fp_client_job *parts, size_t nparts)
{
    struct fp_outq_mark mark;
    msgpack_packer pk;
    size_t i = 0;

    if (c->fd < 0)
        goto refused;
    fp_outq_mark(&c->out, &mark);
    msgpack_packer_init(&pk, &c->out, fp_outq_pack_write);
    if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_uint8(&pk, 0) != 0
        || msgpack_pack_uint32(&pk, tag) != 0
        || msgpack_pack_str_with_body(&pk, method, strlen(method)) != 0)
        goto fail;
    for (; i < nparts; i++) {
        const struct fp_client_job *pt = &parts[i];
        if (pt->release != NULL && pt->len >= FP_OUTQ_BIG) {
            if (fp_outq_append_ref(&c->out, pt->data, pt->len, pt->release,
                                   pt->arg) != 0)
                goto fail;
            continue;
        }
        if (fp_outq_append(&c->out, pt->data, pt->len) != 0)
            goto fail;
        if (pt->release != NULL)
            pt->release(pt->arg);   /* copied: done with */
    }
    return 0;
fail:
    fp_outq_rollback(&c->out, &mark);   /* no request half queued; the
                                           pieces queued are released */
    for (; i < nparts; i++)
        if (parts[i].release != NULL)
            parts[i].release(parts[i].arg);
    return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
refused:
    for (; i < nparts; i++)
        if (parts[i].release != NULL)
            parts[i].release(parts[i].arg);
    return connected(c);
}

/* After a failed write the daemon may still have answered (it can refuse a
 * request and close): keep reading, drop what was queued, and report the
 * write error only if EOF comes without the answer. */
int
fp_client_flush(fp_client *c)
{
    if (c->fd < 0)
        return connected(c);
    while (c->out.len > 0) {
        struct iovec iov[WRITE_IOV];
        struct msghdr mh = { .msg_iov = iov,
                             .msg_iovlen = (size_t)fp_outq_iov(&c->out, iov, WRITE_IOV) };
        /* sendmsg, for MSG_NOSIGNAL: a daemon gone is an error, not a
         * SIGPIPE in the caller's process. */
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            fp_outq_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        c->write_errno = n < 0 ? errno : EPIPE;
        fp_outq_clear(&c->out);
    }
    return 0;
}

int
fp_client_read(fp_client *c)
{
    if (c->fd < 0)
        return connected(c);
    if (c->eof)
        return 0;
    /* The frame handed out last is dropped only now: reserving may move
     * the buffer under the pointers the caller was using. */
    fp_buf_consume(&c->in, c->last);
    c->last = 0;
    char *p = fp_buf_reserve(&c->in, READ_CHUNK);
    if (p == NULL)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    size_t room = c->in.cap - c->in.off - c->in.len;
    ssize_t n = read(c->fd, p, room);
    if (n > 0) {
        c->in.len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return 1;
    if (n < 0)
        return fpc_fail(c, FP_CLIENT_ECONNECT, "%s", strerror(errno));
    c->eof = 1;     /* what was read is still handed out */
    if (c->write_errno != 0)
        fpc_fail(c, FP_CLIENT_ECONNECT, "%s", strerror(c->write_errno));
    else
        fpc_fail(c, FP_CLIENT_ECONNECT, "connection closed by the daemon");
    return 0;
}

/* ---- messages ----------------------------------------------------------- */

/* Read a notification's params after [2, name: msgid, and what follows. */
static int
parse_notification(struct fp_client *c, struct fp_reader *rd,
                   struct fp_client_msg *m)
{
    uint32_t np;
    uint64_t tag;

    if (fp_read_str_eq(rd, "event")) {
        if (fp_read_array(rd, &np) < 0 || np != 1
            || fp_read_skip(rd, &m->result, &m->result_len) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed event notification");
        m->type = FP_CLIENT_MSG_EVENT;
        return 0;
    }
    if (fp_read_str_eq(rd, "accepted")) {
        if (fp_read_array(rd, &np) < 0 || np != 2
            || fp_read_uint(rd, &tag) < 0 || tag > UINT32_MAX
            || fp_read_uint(rd, &m->id) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed accepted notification");
        m->type = FP_CLIENT_MSG_ACCEPTED;
    } else if (fp_read_str_eq(rd, "progress")) {
        if (fp_read_array(rd, &np) < 0 || np != 3
            || fp_read_uint(rd, &tag) < 0 || tag > UINT32_MAX
            || fp_read_uint(rd, &m->id) < 0
            || fp_read_skip(rd, &m->result, &m->result_len) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed progress notification");
        m->type = FP_CLIENT_MSG_PROGRESS;
    } else if (fp_read_str_eq(rd, "outcome")) {
        if (fp_read_array(rd, &np) < 0 || np != 4
            || fp_read_uint(rd, &tag) < 0 || tag > UINT32_MAX
            || fp_read_uint(rd, &m->index) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed outcome notification");
        m->type = FP_CLIENT_MSG_OUTCOME;
        if (fp_read_nil(rd) < 0
            && fp_read_skip(rd, &m->error, &m->error_len) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed outcome notification");
        if (fp_read_skip(rd, &m->result, &m->result_len) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "malformed outcome notification");
    } else {
        return fpc_fail(c, FP_CLIENT_EPROTO, "unknown notification from the daemon");
    }
    m->tag = (uint32_t)tag;
    return 0;
}

/* Read a frame's envelope: [1, msgid, error, result] or [2, name, params]. */
static int
parse_message(struct fp_client *c, const char *frame, size_t len,
              struct fp_client_msg *m)
{
    struct fp_reader rd;
    uint32_t n;
    uint64_t type, tag;

    memset(m, 0, sizeof *m);
    fp_reader_init(&rd, frame, len);
    if (fp_read_array(&rd, &n) < 0 || fp_read_uint(&rd, &type) < 0)
        return fpc_fail(c, FP_CLIENT_EPROTO, "not a MessagePack-RPC message");
    if (type == 2 && n == 3)
        return parse_notification(c, &rd, m);
    if (type != 1 || n != 4 || fp_read_uint(&rd, &tag) < 0 || tag > UINT32_MAX)
        return fpc_fail(c, FP_CLIENT_EPROTO, "not a MessagePack-RPC response");
    m->type = FP_CLIENT_MSG_RESPONSE;
    m->tag = (uint32_t)tag;
    if (fp_read_nil(&rd) < 0 && fp_read_skip(&rd, &m->error, &m->error_len) < 0)
        return fpc_fail(c, FP_CLIENT_EPROTO, "malformed response");
    if (fp_read_skip(&rd, &m->result, &m->result_len) < 0)
        return fpc_fail(c, FP_CLIENT_EPROTO, "malformed response");
    return 0;
}

/* The next complete frame of the read buffer: 1 (*frame, *len), 0 if
 * more bytes are needed, or FP_CLIENT_EPROTO. */
static int
next_frame(struct fp_client *c, const char **frame, size_t *len)
{
    const char *why = "invalid msgpack";

    fp_buf_consume(&c->in, c->last);
    c->last = 0;
    if (c->in.len == 0) {
        fp_buf_shrink(&c->in, KEEP_BUFFER);
        return 0;
    }
    ssize_t n = fp_scan(&c->scan, fp_buf_head(&c->in), c->in.len,
                        &c->limits, &why);
    if (n < 0)
        return lose_sync(c, why);
    if (n == 0)
        return 0;
    fp_scanner_reset(&c->scan);
    c->last = (size_t)n;
    *frame = fp_buf_head(&c->in);
    *len = (size_t)n;
    return 1;
}

int
fp_client_next(fp_client *c, struct fp_client_msg *m)
{
    const char *frame;
    size_t len;
    int rc;

    for (;;) {
        free(c->handed);
        c->handed = NULL;
        if (c->parked != NULL) {
            struct parked *p = c->parked;
            if ((c->parked = p->next) == NULL)
                c->parked_tail = &c->parked;
            c->parked_bytes -= p->len;
            c->handed = p;      /* freed at the next call: m points into it */
            rc = parse_message(c, p->frame, p->len, m);
        } else {
            if ((rc = next_frame(c, &frame, &len)) <= 0)
                return rc;
            rc = parse_message(c, frame, len, m);
        }
        if (rc < 0)
            return rc;
        if (!is_abandoned(c, m))
            return 1;
    }
}

/* Set the frame last taken from the read buffer aside for fp_client_next.
 * What is set aside is bounded (a subscriber's events pile up while it
 * waits for an answer): past the bound the frame stays where it is, to be
 * read in its turn, and the wait fails. */
static int
park_last(struct fp_client *c)
{
    size_t bound = c->limits.max_bytes;     /* one message always fits */
    int over = c->parked_bytes > 0 && c->parked_bytes + c->last > bound;
    struct parked *p = over ? NULL : malloc(sizeof *p + c->last);

    if (p == NULL) {
        c->last = 0;                /* not consumed: read again later */
        fp_scanner_reset(&c->scan);
        if (!over)
            return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
        return fpc_fail(c, FP_CLIENT_ENOMEM, "more than %zu bytes of other "
                        "messages set aside while waiting: take them with "
                        "fp_client_wait", bound);
    }
    p->next = NULL;
    p->len = c->last;
    memcpy(p->frame, fp_buf_head(&c->in), c->last);
    *c->parked_tail = p;
    c->parked_tail = &p->next;
    c->parked_bytes += p->len;
    return 0;
}

/* How long poll() may wait until `deadline_ms` (-1: none). */
static int
wait_left(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - fpc_now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Write what can be written, and wait until the socket has something to
 * read (1), the deadline passes (0), or an error (FP_CLIENT_E*). */
static int
wait_readable(struct fp_client *c, int64_t deadline_ms)
{
    for (;;) {
        if (fp_client_flush(c) < 0)
            return FP_CLIENT_ECONNECT;
        struct pollfd pfd = {
            .fd = c->fd,
            .events = POLLIN | (c->out.len > 0 ? POLLOUT : 0),
        };
        int n = poll(&pfd, 1, wait_left(deadline_ms));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fpc_fail(c, FP_CLIENT_ECONNECT, "poll: %s", strerror(errno));
        if (n == 0)
            return 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            int rc = fp_client_read(c);
            if (rc <= 0)
                return rc == 0 ? FP_CLIENT_ECONNECT : rc;
            return 1;
        }
    }
}

int
fp_client_wait(fp_client *c, struct fp_client_msg *m, double timeout)
{
    int64_t deadline = timeout < 0 ? -1 : fpc_now_ms() + timeout_ms(timeout);

    if (c->awaiting)
        return fpc_fail(c, FP_CLIENT_EINVAL, "a wait inside a blocking call's callback");
    for (;;) {
        int rc = fp_client_next(c, m);
        if (rc != 0)
            return rc;
        if (c->eof)
            return ended(c);
        rc = wait_readable(c, deadline);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            (void)fp_client_flush(c);
            return 0;
        }
    }
}

/* fpc_await, but for the flag that keeps its callbacks from waiting. */
static int
await_response(struct fp_client *c, uint32_t tag,
               const struct fp_client_jobopts *opts, struct fp_client_msg *m);

int
fpc_await(struct fp_client *c, uint32_t tag,
          const struct fp_client_jobopts *opts, struct fp_client_msg *m)
{
    int rc;

    if (c->awaiting) {  /* its answer is set aside by the wait under way */
        abandon(c, tag);
        return fpc_fail(c, FP_CLIENT_EINVAL,
                        "a blocking call inside a blocking call's callback");
    }
    c->awaiting = 1;
    rc = await_response(c, tag, opts, m);
    c->awaiting = 0;
    if (rc < 0)
        abandon(c, tag);    /* its answer may still come: not for anyone */
    return rc;
}

static int
await_response(struct fp_client *c, uint32_t tag,
               const struct fp_client_jobopts *opts, struct fp_client_msg *m)
{
    int64_t deadline = c->timeout_ms > 0 ? fpc_now_ms() + c->timeout_ms : -1;

    for (;;) {
        const char *frame;
        size_t len;
        int rc;
        /* Only what is read from now on: what was parked earlier belongs
         * to other requests. */
        while ((rc = next_frame(c, &frame, &len)) == 1) {
            if ((rc = parse_message(c, frame, len, m)) < 0)
                return rc;
            if (is_abandoned(c, m))
                continue;
            if (m->tag != tag || m->type == FP_CLIENT_MSG_EVENT
                || m->type == FP_CLIENT_MSG_OUTCOME) {
                if ((rc = park_last(c)) < 0)
                    return rc;
                continue;
            }
            if (m->type == FP_CLIENT_MSG_RESPONSE)
                return 0;
            if (m->type == FP_CLIENT_MSG_PROGRESS && opts != NULL
                && opts->on_progress != NULL)
                opts->on_progress(opts->arg, m->id, m->result, m->result_len);
            if (m->type == FP_CLIENT_MSG_ACCEPTED && opts != NULL
                && opts->on_accepted != NULL)
                opts->on_accepted(opts->arg, m->id);
        }
        if (rc < 0)
            return rc;
        if (c->eof)
            return ended(c);
        rc = wait_readable(c, deadline);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return fpc_fail(c, FP_CLIENT_ETIMEDOUT, "no answer within %g s",
                            (double)c->timeout_ms / 1000);
    }
}
