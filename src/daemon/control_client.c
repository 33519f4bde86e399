/*
 * control_client.c — one control connection: its requests in, its replies
 * out, and the rules that keep it from costing the daemon unbounded memory
 * (control_int.h; README "Reply memory").
 *
 * Layers as in imsg: a read buffer bounded by fp_scan, a write queue of
 * segments (codec/outq.h) drained with writev by an EV_WRITE watcher armed
 * only while it holds bytes, and the dispatcher on top.  Every reply is built whole in the write queue or not
 * at all (ctl_reply_*).  What a client may do next -- read, run what it
 * sent, have its jobs start, close -- follows from a few facts (its unread
 * replies, its input state, its jobs) in one place, client_update, called
 * after anything that changes them.
 *
 * Its input is two independent facts (control_int.h): whether its socket
 * is read (open, or half-closed), and whether its read buffer holds
 * requests or the rest of one refused for its size, which is skipped as it
 * arrives while the connection goes on.  A client that half-closes (EOF)
 * is read no more but stays connected until every request it sent is
 * answered and every outcome it is owed is written.  One that disconnects with jobs in flight stays allocated,
 * closed, until their outcomes arrive and are dropped.
 */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "control_int.h"
#include "engine/timer.h"
#include "codec/wire.h"

#define READ_CHUNK      (64 * 1024)
/* Requests one client may run in one turn: a client that pipelines
 * thousands of them (each maybe a status map) gets through them a turn at
 * a time, and every other client and the workers are served in between. */
#define REQUESTS_PER_TURN 64
#define READ_MAX        (256 * 1024)    /* one read, into a buffer grown for
                                           a big request */
#define WRITE_IOV       64          /* segments per writev */

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void client_update(struct client *c);
static void client_close(struct client *c);

/* ------------------------------------------------------------------------
 * Replies, whole or not at all
 * ------------------------------------------------------------------------ */

/* The packer's sink: into c->out, until the first append that fails. */
static int
reply_write(void *data, const char *p, size_t n)
{
    struct ctl_reply *r = data;

    if (r->failed || r->closed)
        return r->failed ? -1 : 0;
    if (fp_outq_append(&r->c->out, p, n) < 0) {
        r->failed = 1;
        return -1;
    }
    return 0;
}

void
ctl_reply_begin(struct ctl_reply *r, struct client *c)
{
    r->c = c;
    fp_outq_mark(&c->out, &r->mark);
    r->failed = 0;
    r->closed = c->fd < 0;
    msgpack_packer_init(&r->pk, r, reply_write);
}

void
ctl_reply_begin_response(struct ctl_reply *r, struct client *c, uint32_t msgid)
{
    ctl_reply_begin(r, c);
    msgpack_pack_array(&r->pk, 4);
    msgpack_pack_int(&r->pk, 1);
    msgpack_pack_uint32(&r->pk, msgid);
}

void
ctl_reply_raw(struct ctl_reply *r, const char *p, size_t n)
{
    (void)reply_write(r, p, n);
}

void
ctl_reply_ref(struct ctl_reply *r, const char *p, size_t n,
              fp_outq_release_fn *release, void *arg)
{
    if (r->failed || r->closed) {
        release(arg);
        return;
    }
    if (fp_outq_append_ref(&r->c->out, p, n, release, arg) < 0) {
        r->failed = 1;
        release(arg);
    }
}

/* Past its hard limit: disconnected, its jobs that have not started
 * cancelled (nobody is left to want them), those running left to finish
 * with their results dropped (killing them would cost a worker each). */
static void
client_cut_off(struct client *c)
{
    struct fp_control *ctl = c->ctl;
    size_t unread = c->out.len;
    size_t cancelled = fp_group_cancel_queued(c->group, "cancelled: its client "
                                              "was disconnected (replies unread "
                                              "past the hard limit)");

    fp_logf(ctl->log, FP_LOG_WARN, "client %lu: %zu bytes of replies unread, past "
            "the hard limit of %zu; disconnecting it (%zu jobs not started "
            "cancelled, %zu running finish unseen)", c->serial, unread,
            ctl->reply.hard, cancelled,
            (size_t)c->pending > cancelled ? (size_t)c->pending - cancelled : 0);
    client_close(c);
}

int
ctl_reply_end(struct ctl_reply *r)
{
    struct client *c = r->c;

    if (r->closed)
        return 0;
    if (r->failed) {
        fp_outq_rollback(&c->out, &r->mark);    /* every byte of it */
        return -1;
    }
    c->ctl->out_total += fp_outq_since(&c->out, &r->mark);
    if (c->ctl->out_total >= c->ctl->reply.total)
        c->ctl->total_over = 1;
    if (c->out.len > c->ctl->reply.hard)
        client_cut_off(c);
    else
        client_update(c);
    return 0;
}

void
ctl_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    fp_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

void
ctl_respond_error_str(struct client *c, uint32_t msgid, const char *msg)
{
    struct ctl_reply r;

    ctl_reply_begin_response(&r, c, msgid);
    fp_pack_cstr(&r.pk, msg);
    msgpack_pack_nil(&r.pk);
    if (ctl_reply_end(&r) < 0)
        ctl_client_fail(c, "no memory to queue a reply");
}

void
ctl_respond_rejected(struct client *c, uint32_t msgid, const char *detail)
{
    struct ctl_reply r;

    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_map(&r.pk, 3);
    fp_pack_cstr(&r.pk, "id");
    msgpack_pack_nil(&r.pk);
    fp_pack_cstr(&r.pk, "kind");
    fp_pack_cstr(&r.pk, fp_kind_name(FP_REJECTED));
    fp_pack_cstr(&r.pk, "detail");
    fp_pack_cstr(&r.pk, detail);
    msgpack_pack_nil(&r.pk);
    if (ctl_reply_end(&r) < 0)
        ctl_client_fail(c, "no memory to queue a reply");
}

/* ------------------------------------------------------------------------
 * What a client may do: the one place that decides
 * ------------------------------------------------------------------------ */

/* Is c behind with its replies?  Behind at its soft limit, it catches up
 * at half of it (so a client reading a stream of big results is not held
 * and let go at every one); while all clients together are past their
 * total, any client with replies unread is behind. */
static int
client_behind(const struct client *c)
{
    const struct ctl_reply_limits *lim = &c->ctl->reply;

    if (c->out.len == 0)
        return 0;
    if (c->ctl->total_over)
        return 1;
    return c->out.len >= (c->flow == FLOW_BEHIND ? lim->soft / 2 : lim->soft);
}

/* May c's requests run (and be read)? */
static int
client_may_run(const struct client *c)
{
    return c->fd >= 0 && c->flow == FLOW_OK && !c->ctl->shutting_down
        && c->pending_bytes < PENDING_HIGH;
}

static void
client_set_flow(struct client *c, enum client_flow flow)
{
    struct fp_control *ctl = c->ctl;

    if (c->flow == flow)
        return;
    c->flow = flow;
    if (flow == FLOW_BEHIND)
        ctl->nbehind++;
    else
        ctl->nbehind--;
    fp_group_hold(c->group, flow == FLOW_BEHIND);
    fp_logf(ctl->log, FP_LOG_DEBUG, "client %lu: %s (%zu bytes of replies unread)",
            c->serial, flow == FLOW_BEHIND ? "behind: its requests and jobs wait"
                                           : "caught up", c->out.len);
}

/* Free a closed client once nothing more is owed to it and no request of
 * its is running.  Returns 1 if it was freed. */
static int
client_release(struct client *c)
{
    if (c->fd >= 0 || c->pending > 0 || c->busy > 0)
        return 0;
    ctl_client_free(c);
    return 1;
}

static void client_turn_cb(struct ev_loop *loop, ev_timer *tw, int revents);

static void
client_update(struct client *c)
{
    struct ev_loop *loop = c->ctl->loop;

    if (c->fd < 0) {
        client_release(c);
        return;
    }
    client_set_flow(c, client_behind(c) ? FLOW_BEHIND : FLOW_OK);
    if (c->out.len > 0)
        ev_io_start(loop, &c->wio);
    /* Nothing more is read while requests already read wait for their
     * turn: a client's read buffer never outgrows one read. */
    if (client_may_run(c) && c->input == INPUT_OPEN && !ev_is_active(&c->turn))
        ev_io_start(loop, &c->rio);
    else
        ev_io_stop(loop, &c->rio);
    /* Requests read before it fell behind: run them from the loop, not
     * from inside whatever called us. */
    if (c->stalled && client_may_run(c) && c->busy == 0)
        ev_feed_event(loop, &c->rio, EV_READ);
    /* Half-closed and nothing more owed either way: goodbye. */
    if (c->input == INPUT_EOF && c->in.len == 0 && c->pending == 0
        && c->out.len == 0)
        client_close(c);
}

/* All clients together fell back under their total: the clients it held
 * back may go on. */
static void
total_recheck(struct fp_control *ctl)
{
    struct client *c, *next;

    if (!ctl->total_over || ctl->out_total >= ctl->reply.total / 8 * 7)
        return;
    ctl->total_over = 0;
    for (c = LIST_FIRST(&ctl->clients); c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (c->fd >= 0 && c->flow == FLOW_BEHIND)
            client_update(c);   /* may close (and free) c, never another */
    }
}

/* ------------------------------------------------------------------------
 * Client lifetime
 * ------------------------------------------------------------------------ */

int
ctl_client_new(struct fp_control *ctl, int fd)
{
    struct client *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->group = fp_group_new(ctl->pool)) == NULL) {
        free(c);
        return -1;
    }
    c->ctl = ctl;
    c->fd = fd;
    c->input = INPUT_OPEN;
    c->framing = FRAMING_REQUESTS;
    c->flow = FLOW_OK;
    c->serial = ++ctl->next_serial;
    ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
    ev_timer_init(&c->turn, client_turn_cb, 0., 0.);
    c->rio.data = c->wio.data = c->turn.data = c;
    LIST_INSERT_HEAD(&ctl->clients, c, link);
    ctl->nclients++;
    ev_io_start(ctl->loop, &c->rio);
    return 0;
}

void
ctl_client_free(struct client *c)
{
    ctl_events_forget(c);
    if (c->fd >= 0) {
        c->ctl->nclients--;
        close(c->fd);
    }
    ev_io_stop(c->ctl->loop, &c->rio);  /* also drops a fed event */
    ev_io_stop(c->ctl->loop, &c->wio);
    ev_timer_stop(c->ctl->loop, &c->turn);
    LIST_REMOVE(c, link);
    fp_buf_free(&c->in);
    fp_outq_free(&c->out);
    fp_group_free(c->group);
    free(c);
}

/* Close the connection; the struct lives on while outcomes are owed to it
 * (they are dropped) or one of its requests runs.  Its jobs not yet
 * started are no longer held: they run, unseen, like those of any client
 * that leaves. */
static void
client_close(struct client *c)
{
    struct fp_control *ctl = c->ctl;

    if (c->fd < 0)
        return;
    ctl_events_forget(c);
    ev_io_stop(ctl->loop, &c->rio);
    ev_io_stop(ctl->loop, &c->wio);
    ev_timer_stop(ctl->loop, &c->turn);
    close(c->fd);
    c->fd = -1;
    ctl->nclients--;
    client_set_flow(c, FLOW_OK);
    ctl->out_total -= c->out.len;
    fp_outq_free(&c->out);
    if (c->busy == 0)           /* else a request still reads from it */
        fp_buf_free(&c->in);
    c->stalled = 0;
    total_recheck(ctl);
    ctl_check_flushed(ctl);
    client_release(c);
}

void
ctl_client_fail(struct client *c, const char *why)
{
    if (c->fd < 0)
        return;
    fp_logf(c->ctl->log, FP_LOG_WARN, "client %lu: %s; disconnecting it", c->serial,
            why);
    client_close(c);
}

size_t
ctl_client_unread(const struct client *c)
{
    return c->out.len;
}

int
ctl_client_outcome(struct client *c, size_t bytes)
{
    c->pending--;
    c->pending_bytes -= bytes;
    if (c->fd >= 0)
        return 0;
    client_release(c);
    return 1;
}

/* ------------------------------------------------------------------------
 * Requests in
 * ------------------------------------------------------------------------ */

/* A frame broke a limit or the format.  Over the size limits (bytes or
 * objects) its structure is still sound: its request is answered from its
 * first bytes (a submit's outcome is "rejected", "job too large") and the
 * rest of it is dropped as it arrives (FRAMING_SKIPPING), so the client's
 * other requests and outcomes go on.  Invalid msgpack or nesting past the
 * limit leaves no way to find the frame's end: its msgid, if the bytes so
 * far show one, gets an error naming the problem, and the connection
 * closes.  That error is written with one nonblocking attempt (what is
 * already queued goes first): the master never waits on a client it is
 * dropping.  Returns 0 if the connection goes on, -1 if it was closed. */
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
        if (c->fd < 0)
            return -1;          /* the reply closed it (past its hard limit) */
        /* The rest of the frame from where the scan stopped. */
        fp_skip_start(&c->skip, &c->scan);
        fp_buf_consume(&c->in, c->scan.pos);
        fp_scanner_reset(&c->scan);
        c->framing = FRAMING_SKIPPING;
        return 0;
    }
    fp_logf(ctl->log, FP_LOG_WARN, "client %lu: bad request frame: %s; closing "
            "the connection", c->serial, why);
    if (have_msgid) {
        struct ctl_reply r;
        snprintf(msg, sizeof(msg), "bad request: %s", why);
        ctl_reply_begin_response(&r, c, msgid);
        fp_pack_cstr(&r.pk, msg);
        msgpack_pack_nil(&r.pk);
        if (!r.failed) {
            struct iovec iov[WRITE_IOV];
            ssize_t n = writev(c->fd, iov, fp_outq_iov(&c->out, iov, WRITE_IOV));
            (void)n;
        }
        fp_outq_rollback(&c->out, &r.mark); /* never queued: not accounted */
    }
    client_close(c);
    return -1;
}

/* FRAMING_SKIPPING: drop what c->in holds of the refused frame.  Returns 1
 * once the frame has ended (requests follow), 0 if more bytes are needed
 * (at EOF they never come: what is left, a header cut off, is dropped), -1
 * if c was closed (bytes that are not msgpack). */
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
    if (done) {
        c->framing = FRAMING_REQUESTS;
        return 1;
    }
    if (c->input == INPUT_EOF && c->in.len > 0) {
        fp_logf(c->ctl->log, FP_LOG_DEBUG, "client %lu: its refused request "
                "ends cut short; its last %zu bytes dropped", c->serial,
                c->in.len);
        fp_buf_clear(&c->in);
    }
    return 0;
}

/* Read what the socket holds into c->in.  Returns 0, or -1 if c was
 * closed. */
static int
client_read(struct client *c)
{
    char *room = fp_buf_reserve(&c->in, READ_CHUNK);

    if (room == NULL) {
        ctl_client_fail(c, "no memory to read its requests");
        return -1;
    }
    /* All the room the buffer has, up to READ_MAX: a big request then
     * comes in as few reads as the socket allows, not 64 KiB per turn of
     * the loop. */
    size_t want = c->in.cap - c->in.off - c->in.len;
    ssize_t got = read(c->fd, room, want < READ_MAX ? want : READ_MAX);
    if (got > 0) {
        c->in.len += (size_t)got;
    } else if (got == 0) {
        /* Half-closed (or gone): answer what it sent, then close. */
        c->input = INPUT_EOF;
        ev_io_stop(c->ctl->loop, &c->rio);
        fp_logf(c->ctl->log, FP_LOG_DEBUG, "client %lu: end of its requests "
                "(%u jobs still to answer)", c->serial, c->pending);
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        client_close(c);
        return -1;
    }
    return 0;
}

/* Run the complete requests c->in holds, while c may, stepping over the
 * rest of any refused for its size.  Stops (stalled) when c falls behind;
 * at EOF, a last request cut short is dropped. */
static void
client_run_requests(struct client *c)
{
    struct fp_control *ctl = c->ctl;
    const char *why;

    unsigned ran = 0;

    c->busy++;
    c->stalled = 0;
    while (c->fd >= 0 && c->in.len > 0) {
        if (ran == REQUESTS_PER_TURN) {
            fp_timer_after(ctl->loop, &c->turn, 0.);
            break;
        }
        if (c->framing == FRAMING_SKIPPING) {
            /* Dropping bytes runs nothing and frees memory: done even
             * while c is behind. */
            if (client_skip(c) <= 0)
                break;
            continue;
        }
        if (!client_may_run(c)) {
            c->stalled = 1;
            break;
        }
        ssize_t n = fp_scan(&c->scan, fp_buf_head(&c->in), c->in.len,
                            &ctl->limits, &why);
        if (n == 0) {
            if (c->input == INPUT_EOF) {
                fp_logf(ctl->log, FP_LOG_DEBUG, "client %lu: its last %zu bytes "
                        "are not a whole request; dropped", c->serial, c->in.len);
                fp_buf_clear(&c->in);
                fp_scanner_reset(&c->scan);
            }
            break;
        }
        if (n < 0) {
            if (client_refuse_frame(c, why) < 0)
                break;
            continue;
        }
        ran++;
        int rc = ctl_dispatch(c, fp_buf_head(&c->in), (size_t)n);
        if (c->fd < 0)
            break;              /* the request's reply closed it */
        fp_buf_consume(&c->in, (size_t)n);
        fp_scanner_reset(&c->scan);
        if (rc < 0) {
            fp_logf(ctl->log, FP_LOG_WARN, "client %lu: request without a "
                    "readable msgid; closing the connection", c->serial);
            client_close(c);
            break;
        }
    }
    c->busy--;
    if (c->fd < 0)
        fp_buf_free(&c->in);
    else if (c->in.len == 0)
        fp_buf_shrink(&c->in, 0);   /* an idle client holds no buffer */
}

/* Its next turn at the requests it has read (REQUESTS_PER_TURN). */
static void
client_turn_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct client *c = tw->data;
    (void)loop; (void)revents;

    client_run_requests(c);
    client_update(c);
}

static void
client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    (void)loop; (void)revents;

    /* Also fed by client_update for requests kept while it was behind. */
    if (c->input == INPUT_OPEN && client_may_run(c) && !ev_is_active(&c->turn)
        && client_read(c) < 0)
        return;
    client_run_requests(c);
    client_update(c);
}

/* ------------------------------------------------------------------------
 * Replies out
 * ------------------------------------------------------------------------ */

static void
client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct client *c = io->data;
    struct fp_control *ctl = c->ctl;
    (void)revents;

    while (c->out.len > 0) {
        struct iovec iov[WRITE_IOV];
        ssize_t n = writev(c->fd, iov, fp_outq_iov(&c->out, iov, WRITE_IOV));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            client_close(c);    /* gone: what it was owed is dropped */
            return;
        }
        fp_outq_consume(&c->out, (size_t)n);
        ctl->out_total -= (size_t)n;
    }
    if (c->out.len == 0)
        ev_io_stop(loop, &c->wio);
    client_update(c);           /* may close and free c: first */
    total_recheck(ctl);
    ctl_check_flushed(ctl);
}
