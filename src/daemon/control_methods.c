/*
 * control_methods.c — the control protocol's methods (SPEC §7): submit,
 * submit_batch, status, cancel, scale, reload, drain, metrics.
 */
#include "config.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_int.h"
#include "codec/wire.h"

/* ------------------------------------------------------------------------
 * Methods
 * ------------------------------------------------------------------------ */

/* An outcome as a response's error and result (SPEC §7): result {"id",
 * "result"} for ok, error {"id", "kind", "detail"} otherwise, both with
 * "attempts" when the job ran more than once. */
static void
pack_outcome(struct client *c, msgpack_packer *pk, const fp_outcome *o)
{
    if (o->kind == FP_OK) {
        msgpack_pack_nil(pk);
        msgpack_pack_map(pk, o->attempts > 1 ? 3 : 2);
        ctl_pack_kv_u64(pk, "id", o->id);
        fp_pack_cstr(pk, "result");
        fp_buf_append(&c->out, o->data, o->len);
    } else {
        msgpack_pack_map(pk, o->attempts > 1 ? 4 : 3);
        ctl_pack_kv_u64(pk, "id", o->id);
        fp_pack_cstr(pk, "kind");
        fp_pack_cstr(pk, fp_kind_name(o->kind));
        fp_pack_cstr(pk, "detail");
        fp_buf_append(&c->out, o->data, o->len);
    }
    if (o->attempts > 1)
        ctl_pack_kv_u64(pk, "attempts", o->attempts);
    if (o->kind != FP_OK)
        msgpack_pack_nil(pk);
}

/* One outcome has been delivered to c: 1 if c is gone (freed or closed),
 * so nothing is to be written. */
static int
client_outcome_done(struct client *c)
{
    c->pending--;
    if (c->fd >= 0)
        return 0;
    if (c->pending == 0)
        ctl_client_free(c);
    return 1;
}

#define FREE_REPLIES_MAX 4096

static struct reply_to *
reply_get(struct fp_control *ctl)
{
    struct reply_to *rt = ctl->free_replies;

    if (rt == NULL)
        return malloc(sizeof(*rt));
    ctl->free_replies = rt->next_free;
    ctl->nfree_replies--;
    return rt;
}

static void
reply_put(struct fp_control *ctl, struct reply_to *rt)
{
    if (ctl->nfree_replies >= FREE_REPLIES_MAX) {
        free(rt);
        return;
    }
    rt->next_free = ctl->free_replies;
    ctl->free_replies = rt;
    ctl->nfree_replies++;
}

void
ctl_free_replies(struct fp_control *ctl)
{
    struct reply_to *rt;

    while ((rt = ctl->free_replies) != NULL) {
        ctl->free_replies = rt->next_free;
        free(rt);
    }
    ctl->nfree_replies = 0;
}

static void
job_done_cb(const fp_outcome *o, void *arg)
{
    struct reply_to *rt = arg;
    struct client *c = rt->c;
    uint32_t msgid = rt->msgid;
    msgpack_packer pk;

    reply_put(c->ctl, rt);
    if (client_outcome_done(c))
        return;
    ctl_begin_response(c, &pk, msgid);
    pack_outcome(c, &pk, o);
    ctl_flush_soon(c);
}

/* A batch job's outcome: [2, "outcome", [msgid, index, error, result]]. */
static void
batch_done_cb(const fp_outcome *o, void *arg)
{
    struct batch_reply *b = arg;
    struct client *c = b->c;
    msgpack_packer pk;

    if (!client_outcome_done(c)) {
        msgpack_packer_init(&pk, &c->out, fp_buf_pack_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, 2);
        fp_pack_cstr(&pk, "outcome");
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, b->msgid);
        msgpack_pack_uint64(&pk, o->id - b->first_id);
        pack_outcome(c, &pk, o);
        ctl_flush_soon(c);
    }
    if (--b->left == 0)
        free(b);
}

/* submit_batch [[job, ...]] or [[job, ...], {"timeout", "retries"}]: all
 * jobs accepted or none.  The response comes at once, {"first_id": id,
 * "count": n}; each job's outcome follows as an "outcome" notification. */
static void
method_submit_batch(struct client *c, uint32_t msgid, struct fp_reader *r,
                    uint32_t nparams)
{
    struct fp_control *ctl = c->ctl;
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    int notify = 0;
    uint32_t n;
    uint64_t first;
    const char *why;
    struct batch_reply *b;
    msgpack_packer pk;

    if (nparams < 1 || nparams > 2 || fp_read_array(r, &n) < 0) {
        ctl_respond_rejected(c, msgid, "malformed: params must be [[job, ...]] "
                             "or [[job, ...], options]");
        return;
    }
    /* n is bounded by the frame's object limit, like the scratch array. */
    if (n > ctl->batch_cap) {
        fp_job_buf *t = realloc(ctl->batch_jobs, n * sizeof(*t));
        if (t == NULL) {
            ctl_respond_rejected(c, msgid, "out of memory");
            return;
        }
        ctl->batch_jobs = t;
        ctl->batch_cap = n;
    }
    for (uint32_t i = 0; i < n; i++)
        if (fp_read_skip(r, &ctl->batch_jobs[i].data, &ctl->batch_jobs[i].len) < 0) {
            ctl_respond_rejected(c, msgid, "malformed");
            return;
        }
    if (nparams == 2 && (why = fp_wire_job_opts(r, &opts, &notify)) != NULL) {
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    if ((b = malloc(sizeof(*b))) == NULL) {
        ctl_respond_rejected(c, msgid, "out of memory");
        return;
    }
    if (fp_pool_submit_batch(ctl->pool, ctl->batch_jobs, n, &opts, batch_done_cb,
                             b, &first, &why) < 0) {
        free(b);
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    *b = (struct batch_reply){ .c = c, .msgid = msgid, .first_id = first, .left = n };
    c->pending += n;
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 2);
    ctl_pack_kv_u64(&pk, "first_id", first);
    ctl_pack_kv_u64(&pk, "count", n);
    ctl_flush_soon(c);
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
        ctl_respond_rejected(c, msgid, "malformed: params must be [job] or [job, options]");
        return;
    }
    if (fp_read_skip(r, &job, &len) < 0) {
        ctl_respond_rejected(c, msgid, "malformed");
        return;
    }
    if (nparams == 2 && (why = fp_wire_job_opts(r, &opts, &notify)) != NULL) {
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    rt = reply_get(c->ctl);
    if (rt == NULL) {
        ctl_respond_rejected(c, msgid, "out of memory");
        return;
    }
    rt->c = c;
    rt->msgid = msgid;
    if (fp_pool_submit(c->ctl->pool, job, len, &opts, job_done_cb, rt, &id, &why) < 0) {
        reply_put(c->ctl, rt);
        ctl_respond_rejected(c, msgid, why);
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
        ctl_flush_soon(c);
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
        ctl_pack_kv_u64(pk, "pid", (uint64_t)rows[i].pid);
        fp_pack_cstr(pk, "state");
        fp_pack_cstr(pk, rows[i].state);
        fp_pack_cstr(pk, "job");
        if (rows[i].job != 0)
            msgpack_pack_uint64(pk, rows[i].job);
        else
            msgpack_pack_nil(pk);
        fp_pack_cstr(pk, "job_age_s");
        msgpack_pack_double(pk, rows[i].job_age_s);
        ctl_pack_kv_u64(pk, "queued", rows[i].queued);
        ctl_pack_kv_u64(pk, "jobs_done", rows[i].jobs_done);
        ctl_pack_kv_u64(pk, "rss", rows[i].rss);
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
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 17);
    fp_pack_cstr(&pk, "state");
    fp_pack_cstr(&pk, st.draining ? "draining" : "running");
    ctl_pack_kv_u64(&pk, "workers", st.workers);
    ctl_pack_kv_u64(&pk, "busy", st.busy);
    ctl_pack_kv_u64(&pk, "idle", st.idle);
    ctl_pack_kv_u64(&pk, "starting", st.starting);
    ctl_pack_kv_u64(&pk, "queued", st.queued);
    ctl_pack_kv_u64(&pk, "submitted", st.submitted);
    ctl_pack_kv_u64(&pk, "completed", st.completed);
    ctl_pack_kv_u64(&pk, "failed", st.failed);
    ctl_pack_kv_u64(&pk, "crashed", st.crashed);
    ctl_pack_kv_u64(&pk, "timed_out", st.timed_out);
    ctl_pack_kv_u64(&pk, "cancelled", st.cancelled);
    ctl_pack_kv_u64(&pk, "restarts", st.restarts);
    ctl_pack_kv_u64(&pk, "start_failures", st.start_failures);
    fp_pack_cstr(&pk, "uptime_s");
    msgpack_pack_double(&pk, st.uptime_s);
    fp_pack_cstr(&pk, "pids");
    msgpack_pack_array(&pk, npids);
    for (size_t i = 0; i < npids; i++)
        msgpack_pack_int64(&pk, pids[i]);
    pack_worker_rows(&pk, pool);
    ctl_flush_soon(c);
}

static void
method_cancel(struct client *c, uint32_t msgid, struct fp_reader *r, uint32_t nparams)
{
    uint64_t id;
    msgpack_packer pk;

    if (nparams != 1 || fp_read_uint(r, &id) < 0) {
        ctl_respond_error_str(c, msgid, "bad params: expected [id]");
        return;
    }
    int found = fp_pool_cancel(c->ctl->pool, id);
    if (c->fd < 0)
        return;     /* closed by an outcome delivered in the cancel */
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    if (found)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    ctl_flush_soon(c);
}

static void
method_scale(struct client *c, uint32_t msgid, struct fp_reader *r, uint32_t nparams)
{
    uint64_t n;
    msgpack_packer pk;
    char msg[128];

    if (nparams != 1 || fp_read_uint(r, &n) < 0 || n > UINT32_MAX) {
        ctl_respond_error_str(c, msgid, "bad params: expected [n]");
        return;
    }
    if (fp_pool_scale(c->ctl->pool, (unsigned)n) < 0) {
        if (errno == EBUSY)
            snprintf(msg, sizeof(msg), "cannot scale while draining");
        else
            snprintf(msg, sizeof(msg), "cannot scale to %llu workers: the "
                     "limit is 1 to %u", (unsigned long long)n, c->ctl->max_workers);
        ctl_respond_error_str(c, msgid, msg);
        return;
    }
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 1);
    ctl_pack_kv_u64(&pk, "workers", n);
    ctl_flush_soon(c);
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
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, (size_t)n);
    msgpack_pack_str_body(&pk, text, (size_t)n);
    ctl_flush_soon(c);
}

/* Handle one request frame.  Returns -1 if the connection must close. */
int
ctl_handle_request(struct client *c, const char *frame, size_t len)
{
    struct fp_request rq;
    const char *why;
    char msg[160];
    int rc = fp_wire_request(frame, len, &rq, &why);

    if (rc < 0)
        return -1;
    if (rc > 0) {
        ctl_respond_error_str(c, rq.msgid, why);
        return 0;
    }
    if (fp_wire_method_is(&rq, "submit"))
        method_submit(c, rq.msgid, &rq.params, rq.nparams);
    else if (fp_wire_method_is(&rq, "submit_batch"))
        method_submit_batch(c, rq.msgid, &rq.params, rq.nparams);
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
        ctl_begin_response(c, &pk, rq.msgid);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        ctl_flush_soon(c);
    } else if (fp_wire_method_is(&rq, "drain")) {
        msgpack_packer pk;
        ctl_begin_response(c, &pk, rq.msgid);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        ctl_flush_soon(c);
        if (c->ctl->hooks.drain != NULL)
            c->ctl->hooks.drain(c->ctl->hooks.arg);
    } else {
        snprintf(msg, sizeof(msg), "unknown method: %.*s",
                 (int)(rq.method_len > 64 ? 64 : rq.method_len), rq.method);
        ctl_respond_error_str(c, rq.msgid, msg);
    }
    return 0;
}

