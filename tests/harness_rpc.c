/*
 * harness_rpc.c — a MessagePack-RPC client of forkpoold for the integration
 * tests (see harness.h).
 */
#include "config.h"
#include <check.h>
#include <msgpack.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "harness_int.h"

/* The connections of this test, closed at teardown. */
static struct h_rpc *clients[MAX_TRACKED];
static size_t nclients;

struct h_rpc *
h_rpc_open_path(const char *path, struct h_daemon *pump)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct h_rpc *c;
    int fd;

    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->fd = fd;
    c->d = pump;
    c->next_msgid = 1;
    ck_assert(msgpack_unpacker_init(&c->up, READ_CHUNK));
    msgpack_unpacked_init(&c->pending);
    msgpack_sbuffer_init(&c->cork);
    ck_assert_uint_lt(nclients, MAX_TRACKED);
    h_track_exit();
    clients[nclients++] = c;
    return c;
}

struct h_rpc *
h_rpc_open(struct h_daemon *d)
{
    return h_rpc_open_path(d->sock, d);
}

static void
resp_destroy(struct h_resp *r)
{
    msgpack_unpacked_destroy(&r->u);
    free(r);
}

/* Responses handed to a test; freed in teardown unless freed earlier. */
static struct h_resp **handed;
static size_t nhanded, caphanded;

static struct h_resp *
hand_out(struct h_resp *r)
{
    if (r == NULL)
        return NULL;
    if (nhanded == caphanded) {
        caphanded = caphanded ? caphanded * 2 : 64;
        handed = realloc(handed, caphanded * sizeof(*handed));
        ck_assert_ptr_nonnull(handed);
    }
    handed[nhanded++] = r;
    return r;
}

void
h_resp_free(struct h_resp *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < nhanded; i++) {
        if (handed[i] == r) {
            handed[i] = handed[--nhanded];
            break;
        }
    }
    resp_destroy(r);
}

static void
rpc_free(struct h_rpc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->nstash; i++)
        resp_destroy(c->stash[i]);
    free(c->stash);
    msgpack_unpacked_destroy(&c->pending);
    msgpack_unpacker_destroy(&c->up);
    msgpack_sbuffer_destroy(&c->cork);
    free(c);
}

void
h_rpc_close(struct h_rpc *c)
{
    for (size_t i = 0; i < nclients; i++) {
        if (clients[i] == c) {
            clients[i] = clients[--nclients];
            break;
        }
    }
    rpc_free(c);
}

static int
is_str(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s)
           && memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void
stash_add(struct h_rpc *c, struct h_resp *r)
{
    if (c->nstash == c->capstash) {
        c->capstash = c->capstash ? c->capstash * 2 : 32;
        c->stash = realloc(c->stash, c->capstash * sizeof(*c->stash));
        ck_assert_ptr_nonnull(c->stash);
    }
    c->stash[c->nstash++] = r;
}

/* [2, "event", [map]] (after subscribe): stashed, in order, as a response
 * with is_event set and the map as its result.  Returns 1 if o was one. */
static int
event_stashed(struct h_rpc *c, const msgpack_object *o)
{
    const msgpack_object *top = o->via.array.ptr;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3
        || top[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || top[0].via.u64 != 2
        || top[1].type != MSGPACK_OBJECT_STR || top[1].via.str.size != 5
        || memcmp(top[1].via.str.ptr, "event", 5) != 0)
        return 0;
    ck_assert_msg(top[2].type == MSGPACK_OBJECT_ARRAY && top[2].via.array.size == 1
                  && top[2].via.array.ptr[0].type == MSGPACK_OBJECT_MAP,
                  "malformed event notification: %s", h_json(o));
    struct h_resp *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->u = c->pending;                  /* takes the zone */
    msgpack_unpacked_init(&c->pending);
    r->is_event = 1;
    r->result = &r->u.data.via.array.ptr[2].via.array.ptr[0];
    stash_add(c, r);
    return 1;
}

/* Take every complete response out of the unpacker into the stash. */
static void
rpc_parse(struct h_rpc *c)
{
    for (;;) {
        msgpack_unpack_return rc = msgpack_unpacker_next(&c->up, &c->pending);
        if (rc == MSGPACK_UNPACK_CONTINUE)
            return;
        ck_assert_msg(rc == MSGPACK_UNPACK_SUCCESS,
                      "the daemon sent bytes that are not msgpack (%d)", rc);
        const msgpack_object *o = &c->pending.data;
        if (event_stashed(c, o))
            continue;
        /* [2, "outcome", [msgid, index, error, result]]: a batch job ended;
         * kept like a response, with its index.  f: msgid, then (index,)
         * error, result. */
        const msgpack_object *top = o->via.array.ptr, *f;
        int note = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3
                   && top[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                   && top[0].via.u64 == 2 && top[2].type == MSGPACK_OBJECT_ARRAY
                   && top[2].via.array.size >= 2
                   && top[2].via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        int outcome = note && top[2].via.array.size == 4;
        /* [2, "progress", [msgid, id, value]]: a job's progress. */
        int progress = note && top[2].via.array.size == 3 && is_str(&top[1], "progress");
        if (!outcome && !progress)
            ck_assert_msg(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4
                          && top[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                          && top[0].via.u64 == 1,
                          "not a MessagePack-RPC response: %s", h_json(o));
        f = outcome || progress ? top[2].via.array.ptr : top + 1;
        ck_assert_msg(f[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                      && f[0].via.u64 <= UINT32_MAX, "no msgid in %s", h_json(o));
        struct h_resp *r = calloc(1, sizeof(*r));
        ck_assert_ptr_nonnull(r);
        r->u = c->pending;              /* takes the zone: f stays valid */
        msgpack_unpacked_init(&c->pending);
        r->msgid = (uint32_t)f[0].via.u64;
        r->seq = c->got;
        if (progress) {
            r->is_progress = 1;
            r->id = f[1].via.u64;
            r->result = &f[2];
        } else if (outcome) {
            r->is_outcome = 1;
            r->index = f[1].via.u64;
            f++;
        }
        if (!progress) {
            r->error = f[1].type == MSGPACK_OBJECT_NIL ? NULL : &f[1];
            r->result = &f[2];
        }
        stash_add(c, r);
        c->got++;
    }
}

/* Read what the socket has.  Returns 0, or -1 at EOF. */
static int
rpc_read(struct h_rpc *c)
{
    for (;;) {
        ck_assert(msgpack_unpacker_reserve_buffer(&c->up, READ_CHUNK));
        ssize_t n = read(c->fd, msgpack_unpacker_buffer(&c->up),
                         msgpack_unpacker_buffer_capacity(&c->up));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {       /* EOF, or ECONNRESET after the daemon closed */
            c->eof = 1;
            return -1;
        }
        msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
        rpc_parse(c);
    }
}

/* Wait for the socket (and the daemon's log) with a deadline; read what
 * arrives.  want_out: also wake when writable.  Returns the poll revents
 * of the socket (0 on timeout). */
static short
rpc_poll(struct h_rpc *c, int want_out, int timeout_ms)
{
    struct pollfd pfd[2] = {
        { .fd = c->fd, .events = POLLIN | (want_out ? POLLOUT : 0) },
        { .fd = c->d != NULL ? c->d->errfd : -1, .events = POLLIN },
    };
    int n = poll(pfd, 2, timeout_ms);

    if (n < 0) {
        ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
        return 0;
    }
    if (pfd[1].revents != 0)
        h_log_read(c->d);
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
        rpc_read(c);
    return pfd[0].revents;
}

int
h_rpc_send_raw(struct h_rpc *c, const void *buf, size_t len)
{
    const char *p = buf;
    int64_t deadline = h_now_ms() + H_REPLY_MS;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ck_assert_msg(h_left_ms(deadline) > 0, "the daemon stopped reading");
            rpc_poll(c, 1, h_left_ms(deadline));
            continue;
        }
        return -1;      /* EPIPE, ECONNRESET: the daemon closed it */
    }
    return 0;
}

uint32_t
h_rpc_send(struct h_rpc *c, const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t msgid = c->next_msgid++;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    h_pack_json_text(&pk, params_json);
    if (c->corked)
        msgpack_sbuffer_write(&c->cork, sb.data, sb.size);
    else
        ck_assert_msg(h_rpc_send_raw(c, sb.data, sb.size) == 0,
                      "the daemon closed the connection (sending %s)", method);
    msgpack_sbuffer_destroy(&sb);
    return msgid;
}

void
h_rpc_cork(struct h_rpc *c)
{
    c->corked = 1;
    msgpack_sbuffer_clear(&c->cork);
}

void
h_rpc_uncork(struct h_rpc *c)
{
    c->corked = 0;
    ck_assert_msg(h_rpc_send_raw(c, c->cork.data, c->cork.size) == 0,
                  "the daemon closed the connection");
    msgpack_sbuffer_clear(&c->cork);
}

uint32_t
h_rpc_submit(struct h_rpc *c, const char *job_json, const char *opts_json)
{
    size_t len = strlen(job_json) + (opts_json != NULL ? strlen(opts_json) : 0) + 8;
    char *params = malloc(len);     /* a job of any size */

    ck_assert_ptr_nonnull(params);
    if (opts_json != NULL)
        snprintf(params, len, "[%s, %s]", job_json, opts_json);
    else
        snprintf(params, len, "[%s]", job_json);
    uint32_t msgid = h_rpc_send(c, "submit", params);
    free(params);
    return msgid;
}

/* Take msgid's response out of the stash, or NULL. */
static struct h_resp *
stash_take(struct h_rpc *c, uint32_t msgid)
{
    for (size_t i = 0; i < c->nstash; i++) {
        struct h_resp *r = c->stash[i];
        if (r->msgid == msgid && !r->is_outcome && !r->is_progress && !r->is_event) {
            memmove(&c->stash[i], &c->stash[i + 1],
                    (c->nstash - i - 1) * sizeof(c->stash[0]));
            c->nstash--;
            return r;
        }
    }
    return NULL;
}

struct h_resp *
h_rpc_wait(struct h_rpc *c, uint32_t msgid, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    struct h_resp *r;

    rpc_read(c);
    while ((r = stash_take(c, msgid)) == NULL) {
        if (c->eof || h_left_ms(deadline) == 0)
            return NULL;
        rpc_poll(c, 0, h_left_ms(deadline));
    }
    return hand_out(r);
}

struct h_resp *
h_rpc_wait_outcome(struct h_rpc *c, uint32_t msgid, uint64_t index, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        rpc_read(c);
        for (size_t i = 0; i < c->nstash; i++) {
            struct h_resp *r = c->stash[i];
            if (r->is_outcome && !r->is_event && r->msgid == msgid
                && r->index == index) {
                memmove(&c->stash[i], &c->stash[i + 1],
                        (c->nstash - i - 1) * sizeof(c->stash[0]));
                c->nstash--;
                return hand_out(r);
            }
        }
        if (c->eof || h_left_ms(deadline) == 0)
            return NULL;
        rpc_poll(c, 0, h_left_ms(deadline));
    }
}

struct h_resp *
h_rpc_next_event(struct h_rpc *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        rpc_read(c);
        for (size_t i = 0; i < c->nstash; i++) {
            struct h_resp *r = c->stash[i];
            if (r->is_event) {
                memmove(&c->stash[i], &c->stash[i + 1],
                        (c->nstash - i - 1) * sizeof(c->stash[0]));
                c->nstash--;
                return hand_out(r);
            }
        }
        if (c->eof || h_left_ms(deadline) == 0)
            return NULL;
        rpc_poll(c, 0, h_left_ms(deadline));
    }
}

size_t
h_rpc_take_progress(struct h_rpc *c, uint32_t msgid, struct h_resp **out, size_t max)
{
    size_t n = 0;

    rpc_read(c);
    for (size_t i = 0; i < c->nstash && n < max;) {
        struct h_resp *r = c->stash[i];
        if (!r->is_progress || r->msgid != msgid) {
            i++;
            continue;
        }
        memmove(&c->stash[i], &c->stash[i + 1],
                (c->nstash - i - 1) * sizeof(c->stash[0]));
        c->nstash--;
        out[n++] = hand_out(r);
    }
    return n;
}

struct h_resp *
h_rpc_call(struct h_rpc *c, const char *method, const char *params_json)
{
    return h_rpc_wait(c, h_rpc_send(c, method, params_json), H_REPLY_MS);
}

int
h_rpc_wait_eof(struct h_rpc *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    rpc_read(c);
    while (!c->eof) {
        if (h_left_ms(deadline) == 0)
            return -1;
        rpc_poll(c, 0, h_left_ms(deadline));
    }
    return (int)c->got;
}

struct h_resp *
h_status(struct h_rpc *c)
{
    struct h_resp *r = h_rpc_call(c, "status", "[]");

    ck_assert_msg(r != NULL, "no answer to status");
    ck_assert_msg(r->error == NULL, "status failed: %s", h_json(r->error));
    ck_assert_msg(r->result->type == MSGPACK_OBJECT_MAP, "status is not a map: %s",
                  h_json(r->result));
    return r;
}

int
h_status_pids(const struct h_resp *st, pid_t *pids, int max)
{
    const msgpack_object *a = h_get(st->result, "pids");
    int n = 0;

    ck_assert_msg(a != NULL && a->type == MSGPACK_OBJECT_ARRAY,
                  "status has no pids array: %s", h_json(st->result));
    for (uint32_t i = 0; i < a->via.array.size && n < max; i++) {
        ck_assert_int_eq(a->via.array.ptr[i].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        pids[n++] = (pid_t)a->via.array.ptr[i].via.u64;
    }
    return n;
}

/* ---- assertions around the daemon -------------------------------------- */

struct h_rpc *
h_connected(struct h_daemon *d)
{
    struct h_rpc *c = h_rpc_open(d);
    ck_assert_msg(c != NULL, "cannot connect to %s: %s", d->sock, strerror(errno));
    return c;
}

/* Submit one job and wait for its response (which must come). */
struct h_resp *
h_submit(struct h_rpc *c, const char *job, const char *opts)
{
    uint32_t id = h_rpc_submit(c, job, opts);
    struct h_resp *r = h_rpc_wait(c, id, H_REPLY_MS);

    ck_assert_msg(r != NULL, "no response to submit %s", job);
    return r;
}

/* Submit a job that must end ok; returns its result. */
const msgpack_object *
h_submit_ok(struct h_rpc *c, const char *job)
{
    struct h_resp *r = h_submit(c, job, NULL);

    ck_assert_msg(r->error == NULL, "job %s failed: %s", job, h_json(r->error));
    const msgpack_object *res = h_get(r->result, "result");
    ck_assert_msg(res != NULL, "no \"result\" in %s", h_json(r->result));
    return res;
}

/* The worker pid a job runs on (-w 1 daemons with testmod). */
pid_t
h_worker_pid(struct h_rpc *c)
{
    const msgpack_object *res = h_submit_ok(c, "{\"op\": \"pid\"}");

    ck_assert_int_eq(res->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return (pid_t)res->via.u64;
}

void
h_rpc_teardown(void)
{
    while (nclients > 0)
        rpc_free(clients[--nclients]);
    while (nhanded > 0)
        resp_destroy(handed[--nhanded]);
    free(handed);
    handed = NULL;
    caphanded = 0;
}
