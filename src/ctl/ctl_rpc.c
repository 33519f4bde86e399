/* ctl_rpc.c — forkpoolctl's MessagePack-RPC client and outcome lines. */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <fcntl.h>
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

#include <msgpack.h>

#include "ctl.h"
#include "common/jsonmp.h"
#include "common/sockpath.h"

#define READ_CHUNK   ((size_t)64 << 10)
#define KEEP_BUFFER  ((size_t)1 << 20)  /* read buffer kept after a frame */
#define WRITE_IOV    64                 /* segments per sendmsg */

static const struct fp_limits response_limits = {
    .max_bytes = CTL_MAX_FRAME,
    .max_objects = CTL_MAX_OBJECTS,
    .max_depth = CTL_MAX_DEPTH,
};

/* Record what went wrong; returns -1. */
static int
conn_err(struct ctl_conn *c, int unreachable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->unreachable = unreachable;
    return -1;
}

/* ---- connection --------------------------------------------------------- */

int64_t
ctl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
ctl_wait_ms(const struct ctl_conn *c, int64_t since_ms)
{
    if (c->timeout_ms <= 0)
        return -1;
    int64_t left = since_ms + c->timeout_ms - ctl_now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

int
ctl_timeout(struct ctl_conn *c)
{
    c->timed_out = 1;
    return conn_err(c, 1, "within %g s (--rpc-timeout)",
                    (double)c->timeout_ms / 1000);
}

int
ctl_connect(struct ctl_conn *c, const struct ctl_target *t)
{
    struct sockaddr_un sa;

    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->path = t->path;
    /* Whole milliseconds, at least one: a timeout given is never "none". */
    if (t->rpc_timeout > 0)
        c->timeout_ms = t->rpc_timeout >= 1e12 ? (int64_t)1e15
                        : (int64_t)(t->rpc_timeout * 1000 + 0.999);
    fp_scanner_reset(&c->scan);
    if (fp_sockaddr_un(&sa, t->path) < 0)
        return conn_err(c, 1, "%s", strerror(errno));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return conn_err(c, 1, "%s", strerror(errno));
    /* Connect blocking: a UNIX socket connect completes or fails at once,
     * unless the daemon's backlog is full (a wedged daemon): then it waits,
     * for as long as the send timeout lets it, and fails with EAGAIN. */
    if (c->timeout_ms > 0) {
        struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
                              .tv_usec = (c->timeout_ms % 1000) * 1000 };
        (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno == EAGAIN && c->timeout_ms > 0) {
            ctl_timeout(c);
            close(c->fd);
            c->fd = -1;
            return -1;
        }
        goto fail;
    }
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    return 0;
fail:
    conn_err(c, 1, "%s", strerror(errno));
    close(c->fd);
    c->fd = -1;
    return -1;
}

void
ctl_close(struct ctl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    fp_buf_free(&c->in);
    fp_outq_free(&c->out);
}

int
ctl_queue_parts(struct ctl_conn *c, uint32_t msgid, const char *method,
                const struct ctl_part *parts, int nparts)
{
    struct fp_outq_mark mark;
    msgpack_packer pk;
    int i = 0;

    fp_outq_mark(&c->out, &mark);
    msgpack_packer_init(&pk, &c->out, fp_outq_pack_write);
    if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_uint8(&pk, 0) != 0
        || msgpack_pack_uint32(&pk, msgid) != 0
        || msgpack_pack_str_with_body(&pk, method, strlen(method)) != 0)
        goto fail;
    for (; i < nparts; i++) {
        const struct ctl_part *pt = &parts[i];
        if (pt->release != NULL && pt->len >= FP_OUTQ_BIG) {
            if (fp_outq_append_ref(&c->out, pt->p, pt->len, pt->release, pt->arg) != 0)
                goto fail;
            continue;
        }
        if (fp_outq_append(&c->out, pt->p, pt->len) != 0)
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
    return conn_err(c, 0, "out of memory");
}

int
ctl_queue(struct ctl_conn *c, uint32_t msgid, const char *method,
          const char *params, size_t plen)
{
    struct ctl_part part = { params, plen, NULL, NULL };

    return ctl_queue_parts(c, msgid, method, &part, 1);
}

/* After a failed write the daemon may still have answered (it can refuse a
 * request and close): keep reading, drop what was queued, and report the
 * write error only if EOF comes without the answer. */
int
ctl_write_some(struct ctl_conn *c)
{
    while (c->out.len > 0) {
        struct iovec iov[WRITE_IOV];
        struct msghdr mh = { .msg_iov = iov,
                             .msg_iovlen = (size_t)fp_outq_iov(&c->out, iov, WRITE_IOV) };
        /* sendmsg, for MSG_NOSIGNAL: a daemon gone is an error, not a
         * SIGPIPE. */
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
ctl_read_some(struct ctl_conn *c)
{
    /* The frame handed out last is dropped only now: reserving may move
     * the buffer under the pointers the caller was using. */
    fp_buf_consume(&c->in, c->last);
    c->last = 0;
    char *p = fp_buf_reserve(&c->in, READ_CHUNK);
    if (p == NULL)
        return conn_err(c, 0, "out of memory");
    size_t room = c->in.cap - c->in.off - c->in.len;
    ssize_t n = read(c->fd, p, room);
    if (n > 0) {
        c->in.len += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return 1;
    if (n < 0)
        return conn_err(c, 1, "%s", strerror(errno));
    if (c->write_errno != 0)
        conn_err(c, 1, "%s", strerror(c->write_errno));
    else
        conn_err(c, 1, "connection closed by the daemon");
    return 0;
}

/* Read the envelope [1, msgid, error, result] of a scanned frame. */
static int
parse_response(struct ctl_conn *c, const char *frame, size_t len,
               struct ctl_response *r)
{
    struct fp_reader rd;
    uint32_t n;
    uint64_t type, msgid;

    fp_reader_init(&rd, frame, len);
    r->accepted = 0;
    r->outcome = 0;
    r->progress = 0;
    r->event = 0;
    /* Notifications: [2, "accepted", [msgid, id]] (a job was queued),
     * [2, "outcome", [msgid, index, error, result]] (a batch job ended),
     * [2, "progress", [msgid, id, value]] (a job reported progress) and
     * [2, "event", [map]] (the event stream, after subscribe). */
    if (fp_read_array(&rd, &n) == 0 && n == 3 && fp_read_uint(&rd, &type) == 0
        && type == 2) {
        uint32_t np;
        if (fp_read_str_eq(&rd, "accepted")) {
            if (fp_read_array(&rd, &np) < 0 || np != 2
                || fp_read_uint(&rd, &msgid) < 0 || msgid > UINT32_MAX
                || fp_read_uint(&rd, &r->id) < 0)
                return conn_err(c, 0, "malformed accepted notification");
            r->accepted = 1;
        } else if (fp_read_str_eq(&rd, "outcome")) {
            if (fp_read_array(&rd, &np) < 0 || np != 4
                || fp_read_uint(&rd, &msgid) < 0 || msgid > UINT32_MAX
                || fp_read_uint(&rd, &r->index) < 0)
                return conn_err(c, 0, "malformed outcome notification");
            r->outcome = 1;
        } else if (fp_read_str_eq(&rd, "progress")) {
            if (fp_read_array(&rd, &np) < 0 || np != 3
                || fp_read_uint(&rd, &msgid) < 0 || msgid > UINT32_MAX
                || fp_read_uint(&rd, &r->id) < 0
                || fp_read_skip(&rd, &r->result, &r->result_len) < 0)
                return conn_err(c, 0, "malformed progress notification");
            r->progress = 1;
        } else if (fp_read_str_eq(&rd, "event")) {
            if (fp_read_array(&rd, &np) < 0 || np != 1
                || fp_read_skip(&rd, &r->result, &r->result_len) < 0)
                return conn_err(c, 0, "malformed event notification");
            r->event = 1;
            r->msgid = 0;
            r->error = NULL;
            r->error_len = 0;
            return 0;
        } else {
            return conn_err(c, 0, "unknown notification from the daemon");
        }
        r->msgid = (uint32_t)msgid;
        if (!r->outcome)
            return 0;
    } else {
        fp_reader_init(&rd, frame, len);
        if (fp_read_array(&rd, &n) < 0 || n != 4 || fp_read_uint(&rd, &type) < 0
            || type != 1 || fp_read_uint(&rd, &msgid) < 0 || msgid > UINT32_MAX)
            return conn_err(c, 0, "not a MessagePack-RPC response");
        r->msgid = (uint32_t)msgid;
    }
    if (fp_read_nil(&rd) == 0) {
        r->error = NULL;
        r->error_len = 0;
    } else if (fp_read_skip(&rd, &r->error, &r->error_len) < 0) {
        return conn_err(c, 0, "malformed response");
    }
    if (fp_read_skip(&rd, &r->result, &r->result_len) < 0)
        return conn_err(c, 0, "malformed response");
    return 0;
}

int
ctl_next_response(struct ctl_conn *c, struct ctl_response *r)
{
    const char *why = "invalid msgpack";

    fp_buf_consume(&c->in, c->last);
    c->last = 0;
    if (c->in.len == 0) {
        fp_buf_shrink(&c->in, KEEP_BUFFER);
        return 0;
    }
    ssize_t n = fp_scan(&c->scan, fp_buf_head(&c->in), c->in.len,
                        &response_limits, &why);
    if (n < 0)
        return conn_err(c, 0, "bad response frame: %s", why);
    if (n == 0)
        return 0;
    fp_scanner_reset(&c->scan);
    c->last = (size_t)n;
    if (parse_response(c, fp_buf_head(&c->in), (size_t)n, r) < 0)
        return -1;
    return 1;
}

int
ctl_call(struct ctl_conn *c, const char *method, const char *params,
         size_t plen, struct ctl_response *r)
{
    const uint32_t msgid = 1;
    const int64_t asked = ctl_now_ms();

    if (ctl_queue(c, msgid, method, params, plen) < 0)
        return -1;
    for (;;) {
        int rc;
        while ((rc = ctl_next_response(c, r)) == 1) {
            if (r->outcome || r->event)
                continue;
            if (r->progress) {
                if (c->show_progress && r->msgid == msgid)
                    ctl_print_progress(r);
                continue;
            }
            if (r->accepted) {
                if (c->show_ids && r->msgid == msgid)
                    fprintf(stderr, "{\"id\": %" PRIu64 ", \"accepted\": true}\n", r->id);
                continue;
            }
            if (r->msgid == msgid)
                return 0;
        }
        if (rc < 0)
            return -1;
        if (ctl_write_some(c) < 0)
            return -1;
        struct pollfd pfd = {
            .fd = c->fd,
            .events = POLLIN | (c->out.len > 0 ? POLLOUT : 0),
        };
        int n = poll(&pfd, 1, ctl_wait_ms(c, asked));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return conn_err(c, 0, "poll: %s", strerror(errno));
        }
        if (n == 0)
            return ctl_timeout(c);
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR))
            && ctl_read_some(c) <= 0)
            return -1;
    }
}

int
ctl_fail(const struct ctl_conn *c, const char *method)
{
    if (c->timed_out) {
        fprintf(stderr, "forkpoolctl: %s: forkpoold at %s did not answer %s\n",
                method, c->path, c->err);
        return CTL_EXIT_NODAEMON;
    }
    if (c->unreachable) {
        fprintf(stderr, "forkpoolctl: cannot reach forkpoold at %s: %s\n",
                c->path, c->err);
        return CTL_EXIT_NODAEMON;
    }
    fprintf(stderr, "forkpoolctl: %s: %s\n", method, c->err);
    return CTL_EXIT_FAIL;
}

/* ---- requests and outcomes ---------------------------------------------- */

/* The options map, if any option is given. */
static int
pack_opts(msgpack_packer *pk, const struct ctl_jobopts *o, int nopts)
{
    if (nopts == 0)
        return 0;
    if (msgpack_pack_map(pk, nopts) != 0)
        return -1;
    if (o->has_timeout
        && (msgpack_pack_str_with_body(pk, "timeout", 7) != 0
            || msgpack_pack_double(pk, o->timeout) != 0))
        return -1;
    if (o->has_retries
        && (msgpack_pack_str_with_body(pk, "retries", 7) != 0
            || msgpack_pack_uint32(pk, o->retries) != 0))
        return -1;
    if (o->has_expires
        && (msgpack_pack_str_with_body(pk, "expires", 7) != 0
            || msgpack_pack_double(pk, o->expires) != 0))
        return -1;
    if (o->key != NULL
        && (msgpack_pack_str_with_body(pk, "key", 3) != 0
            || msgpack_pack_str_with_body(pk, o->key, strlen(o->key)) != 0))
        return -1;
    if (o->ids
        && (msgpack_pack_str_with_body(pk, "notify", 6) != 0
            || msgpack_pack_true(pk) != 0))
        return -1;
    if (o->progress
        && (msgpack_pack_str_with_body(pk, "progress", 8) != 0
            || msgpack_pack_true(pk) != 0))
        return -1;
    return 0;
}

int
ctl_pack_params(struct fp_buf *out, const char *job, size_t joblen,
                const struct ctl_jobopts *o)
{
    msgpack_packer pk;
    int nopts = !!o->has_timeout + !!o->has_retries + !!o->key + !!o->ids
                + !!o->has_expires + !!o->progress;

    msgpack_packer_init(&pk, out, fp_buf_pack_write);
    if (msgpack_pack_array(&pk, nopts > 0 ? 2 : 1) != 0
        || fp_buf_append(out, job, joblen) != 0)
        return -1;
    return pack_opts(&pk, o, nopts);
}

int
ctl_pack_batch_params(struct fp_buf *out, const char *jobs, size_t len,
                      uint32_t count, const struct ctl_jobopts *o)
{
    msgpack_packer pk;
    /* "notify" means nothing to submit_batch: its response carries ids. */
    int nopts = !!o->has_timeout + !!o->has_retries + !!o->key
                + !!o->has_expires + !!o->progress;
    struct ctl_jobopts plain = *o;

    plain.ids = 0;
    msgpack_packer_init(&pk, out, fp_buf_pack_write);
    if (msgpack_pack_array(&pk, nopts > 0 ? 2 : 1) != 0
        || msgpack_pack_array(&pk, count) != 0
        || fp_buf_append(out, jobs, len) != 0)
        return -1;
    return pack_opts(&pk, &plain, nopts);
}

/* The fields of a submit result or error map, as raw msgpack. */
struct outcome_fields {
    const char *id, *result, *kind, *detail, *attempts, *stats, *errtail;
    size_t id_len, result_len, kind_len, detail_len, attempts_len, stats_len,
           errtail_len;
};

/* Walk a map of str keys, picking the known ones; others are ignored. */
static int
read_fields(const char *raw, size_t len, struct outcome_fields *f)
{
    struct fp_reader rd;
    uint32_t n;

    memset(f, 0, sizeof *f);
    fp_reader_init(&rd, raw, len);
    if (fp_read_map(&rd, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        /* An unknown key leaves p/plen NULL: its value is stepped over. */
        const char **p = NULL;
        size_t *plen = NULL;
        if (fp_read_str_eq(&rd, "id"))
            p = &f->id, plen = &f->id_len;
        else if (fp_read_str_eq(&rd, "result"))
            p = &f->result, plen = &f->result_len;
        else if (fp_read_str_eq(&rd, "kind"))
            p = &f->kind, plen = &f->kind_len;
        else if (fp_read_str_eq(&rd, "detail"))
            p = &f->detail, plen = &f->detail_len;
        else if (fp_read_str_eq(&rd, "attempts"))
            p = &f->attempts, plen = &f->attempts_len;
        else if (fp_read_str_eq(&rd, "stats"))
            p = &f->stats, plen = &f->stats_len;
        else if (fp_read_str_eq(&rd, "stderr"))
            p = &f->errtail, plen = &f->errtail_len;
        else if (fp_read_skip(&rd, NULL, NULL) < 0)
            return -1;
        if (fp_read_skip(&rd, p, plen) < 0)
            return -1;
    }
    return 0;
}

void
ctl_error_text(const struct ctl_response *r, char *err, size_t errlen)
{
    struct fp_reader rd;
    const char *s;
    uint32_t n;

    fp_reader_init(&rd, r->error, r->error_len);
    if (fp_read_str(&rd, &s, &n) == 0) {
        snprintf(err, errlen, "%.*s", (int)n, s);
        return;
    }
    char why[128];
    json_t *v = fp_json_from_msgpack(r->error, r->error_len, why, sizeof why);
    char *text = v != NULL ? json_dumps(v, CTL_JSON_FLAGS) : NULL;
    snprintf(err, errlen, "%s", text != NULL ? text : why);
    free(text);
    json_decref(v);
}

/* ---- outcome lines as text (map: no jansson tree per line) -------------- */

static int
append(struct fp_buf *out, const char *s)
{
    return fp_buf_append(out, s, strlen(s));
}

/* sep, "\"key\": " and a raw field converted (null when the daemon left
 * it out). */
static int
write_field(struct fp_buf *out, const char *sep, const char *key,
            const char *raw, size_t len, char *err, size_t errlen)
{
    char why[200];

    if (append(out, sep) < 0 || append(out, "\"") < 0 || append(out, key) < 0
        || append(out, "\": ") < 0
        || (raw == NULL && append(out, "null") < 0)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (raw != NULL
        && fp_json_write_msgpack(out, raw, len, FP_JSON_SPACED, why,
                                 sizeof why) < 0) {
        snprintf(err, errlen, "response \"%s\": %s", key, why);
        return -1;
    }
    return 0;
}

/* A receipt's duration: milliseconds the daemon rounds to the microsecond,
 * written as such ("200.472", where json_dumps would write the double's
 * 17 digits, "200.47200000000001").  Returns 0, -1 (no memory), or 1 if v
 * is not such a figure. */
static int
write_ms(struct fp_buf *out, double v)
{
    char buf[32], *p = buf + sizeof(buf);
    double us = v * 1e3;

    if (!(v >= 0 && us < 1e15))
        return 1;
    uint64_t n = (uint64_t)(us + 0.5);
    if (us - (double)n > 1e-3 || (double)n - us > 1e-3)
        return 1;
    /* Right to left, without printf: a map line writes three of these. */
    unsigned frac = (unsigned)(n % 1000), digits = 3;
    while (digits > 1 && frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    while (digits-- > 0) {
        *--p = (char)('0' + frac % 10);
        frac /= 10;
    }
    *--p = '.';
    n /= 1000;
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    return fp_buf_append(out, p, (size_t)(buf + sizeof(buf) - p)) < 0 ? -1 : 0;
}

/* An unsigned integer, as json_dumps writes it.  Returns 0 or -1. */
static int
write_uint(struct fp_buf *out, uint64_t n)
{
    char buf[24], *p = buf + sizeof(buf);

    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    return fp_buf_append(out, p, (size_t)(buf + sizeof(buf) - p));
}

/* sep, "\"stats\": " and the receipt: as write_field, but its reals as
 * write_ms writes them (and, being on every line of a map, its figures
 * without a pass through msgpack-c). */
static int
write_stats(struct fp_buf *out, const char *sep, const char *raw, size_t len,
            char *err, size_t errlen)
{
    struct fp_reader rd;
    uint32_t n;
    size_t base = out->len;

    fp_reader_init(&rd, raw, len);
    if (fp_read_map(&rd, &n) < 0 || append(out, sep) < 0
        || append(out, "\"stats\": {") < 0)
        goto general;
    for (uint32_t i = 0; i < n; i++) {
        const char *key, *value;
        uint32_t keylen;
        size_t vlen;
        double v;
        struct fp_reader at;
        if (fp_read_str(&rd, &key, &keylen) < 0 || !fp_utf8_valid(key, keylen)
            || (i > 0 && append(out, ", ") < 0)
            || fp_json_write_string(out, key, keylen) < 0 || append(out, ": ") < 0)
            goto general;
        at = rd;
        if (fp_read_skip(&rd, &value, &vlen) < 0)
            goto general;
        uint64_t u;
        int rc = fp_reader_type(&at) == FP_T_FLOAT && fp_read_double(&at, &v) == 0
                 ? write_ms(out, v)
                 : fp_reader_type(&at) == FP_T_UINT && fp_read_uint(&at, &u) == 0
                 ? write_uint(out, u) : 1;
        if (rc < 0 || (rc > 0 && fp_json_write_msgpack(out, value, vlen,
                                                       FP_JSON_SPACED, NULL, 0) < 0))
            goto general;
    }
    if (append(out, "}") == 0)
        return 0;
general:
    /* Not the map of figures the daemon sends: as any other field. */
    out->len = base;
    return write_field(out, sep, "stats", raw, len, err, errlen);
}

int
ctl_outcome_write(struct fp_buf *out, uint64_t index,
                  const struct ctl_response *r, int *ok, char *err,
                  size_t errlen)
{
    struct outcome_fields f;
    char head[48];
    size_t base = out->len;

    if (errlen > 0)
        err[0] = '\0';
    if (index == CTL_NO_INDEX)
        snprintf(head, sizeof head, "{");
    else
        snprintf(head, sizeof head, "{\"index\": %" PRIu64 ", ", index);
    if (r->error != NULL) {
        if (read_fields(r->error, r->error_len, &f) < 0 || f.kind == NULL) {
            ctl_error_text(r, err, errlen);
            return 1;
        }
        *ok = 0;
        if (append(out, head) < 0
            || write_field(out, "", "id", f.id, f.id_len, err, errlen) < 0
            || append(out, ", \"ok\": false") < 0
            || write_field(out, ", ", "kind", f.kind, f.kind_len, err, errlen) < 0
            || write_field(out, ", ", "detail", f.detail, f.detail_len, err,
                           errlen) < 0)
            goto fail;
    } else {
        if (read_fields(r->result, r->result_len, &f) < 0) {
            snprintf(err, errlen, "submit result is not a map");
            return -1;
        }
        *ok = 1;
        if (append(out, head) < 0
            || write_field(out, "", "id", f.id, f.id_len, err, errlen) < 0
            || append(out, ", \"ok\": true") < 0
            || write_field(out, ", ", "result", f.result, f.result_len, err,
                           errlen) < 0)
            goto fail;
    }
    if ((f.stats != NULL
         && write_stats(out, ", ", f.stats, f.stats_len, err, errlen) < 0)
        || (f.errtail != NULL
            && write_field(out, ", ", "stderr", f.errtail, f.errtail_len, err,
                           errlen) < 0))
        goto fail;
    if ((f.attempts != NULL
         && write_field(out, ", ", "attempts", f.attempts, f.attempts_len, err,
                        errlen) < 0)
        || append(out, "}") < 0)
        goto fail;
    return 0;
fail:
    if (errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    out->len = base;
    return -1;
}

/* A raw field that reads, as jansson's json_string_value would give it,
 * as the C string lit: a UTF-8 str equal to lit up to a NUL. */
static int
field_is(const char *raw, size_t len, const char *lit)
{
    struct fp_reader rd;
    const char *s;
    uint32_t n;
    size_t l = strlen(lit);

    fp_reader_init(&rd, raw, len);
    return raw != NULL && fp_read_str(&rd, &s, &n) == 0 && n >= l
           && memcmp(s, lit, l) == 0 && (n == l || s[l] == '\0')
           && fp_utf8_valid(s, n);
}

int
ctl_outcome_queue_full(const struct ctl_response *r)
{
    struct outcome_fields f;

    return r->error != NULL && read_fields(r->error, r->error_len, &f) == 0
           && field_is(f.kind, f.kind_len, "rejected")
           && field_is(f.detail, f.detail_len, "queue full");
}

/* A JSON string for text that may not be valid UTF-8 (a parser message
 * can quote the offending input): bytes >= 0x80 become '?' if needed. */
static json_t *
text_string(const char *text)
{
    json_t *s = json_string(text);
    if (s != NULL)
        return s;
    char *copy = strdup(text);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    s = json_string(copy);
    free(copy);
    return s;
}

int
ctl_outcome_rejected(json_t *o, const char *detail)
{
    if (json_object_set_new(o, "id", json_null()) != 0
        || json_object_set_new(o, "ok", json_false()) != 0
        || json_object_set_new(o, "kind", json_string("rejected")) != 0
        || json_object_set_new(o, "detail", text_string(detail)) != 0)
        return -1;
    return 0;
}

int
ctl_outcome_write_rejected(struct fp_buf *out, uint64_t index,
                           const char *detail)
{
    char head[64];
    size_t base = out->len, n = strlen(detail);
    char *copy = NULL;
    int rc = -1;

    /* text_string's rule: not UTF-8, then every byte >= 0x80 is '?'. */
    if (!fp_utf8_valid(detail, n)) {
        if ((copy = strdup(detail)) == NULL)
            return -1;
        for (char *p = copy; *p != '\0'; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        detail = copy;
    }
    snprintf(head, sizeof head, "{\"index\": %" PRIu64 ", \"id\": null, ",
             index);
    if (append(out, head) == 0
        && append(out, "\"ok\": false, \"kind\": \"rejected\", "
                       "\"detail\": ") == 0
        && fp_json_write_string(out, detail, n) == 0
        && append(out, "}") == 0)
        rc = 0;
    else
        out->len = base;
    free(copy);
    return rc;
}

void
ctl_print_progress(const struct ctl_response *r)
{
    struct fp_buf line = FP_BUF_INIT;
    char why[200] = "out of memory";

    if (fp_buf_printf(&line, "{\"id\": %" PRIu64 ", \"progress\": ", r->id) < 0
        || fp_json_write_msgpack(&line, r->result, r->result_len,
                                 FP_JSON_SPACED, why, sizeof why) < 0
        || fp_buf_append(&line, "}\n", 2) < 0) {
        fprintf(stderr, "forkpoolctl: progress of job %" PRIu64 " not shown: %s\n",
                r->id, why);
    } else {
        fwrite(fp_buf_head(&line), 1, line.len, stderr);
        fflush(stderr);
    }
    fp_buf_free(&line);
}

int
ctl_print_json(FILE *f, const json_t *v)
{
    if (json_dumpf(v, f, CTL_JSON_FLAGS) != 0 || fputc('\n', f) == EOF
        || fflush(f) == EOF)
        return -1;
    return 0;
}

/* "2d 03h 04m 05s", "4m 05s", "12.5s"; "-" for a negative or NaN time. */
void
ctl_format_duration(double s, char *buf, size_t n)
{
    unsigned long t = s >= 0 ? (unsigned long)s : 0;

    if (!(s >= 0)) {
        snprintf(buf, n, "-");
        return;
    }
    unsigned long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60,
                  sec = t % 60;
    if (d > 0)
        snprintf(buf, n, "%lud %02luh %02lum %02lus", d, h, m, sec);
    else if (h > 0)
        snprintf(buf, n, "%luh %02lum %02lus", h, m, sec);
    else if (m > 0)
        snprintf(buf, n, "%lum %02lus", m, sec);
    else
        snprintf(buf, n, "%.1fs", s);
}
