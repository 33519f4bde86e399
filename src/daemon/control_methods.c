/*
 * control_methods.c — the control protocol's methods (SPEC §7): submit,
 * submit_batch, status, cancel, scale, reload, drain, metrics; and the
 * method table at the end, one row per method.  Each handler runs only
 * once its params passed the row's rule (control_dispatch.c).
 */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_int.h"
#include "codec/wire.h"
#include "common/jsonmp.h"

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
client_outcome_done(struct client *c, size_t bytes)
{
    c->pending--;
    c->pending_bytes -= bytes;
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
    size_t bytes = rt->bytes;
    msgpack_packer pk;

    reply_put(c->ctl, rt);
    if (client_outcome_done(c, bytes))
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
    /* The batch's bytes, spread over its outcomes (the last takes the
     * rest, so they add up). */
    size_t bytes = b->left == 1 ? b->bytes_left : b->bytes_left / b->left;

    b->bytes_left -= bytes;
    if (!client_outcome_done(c, bytes)) {
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
method_submit_batch(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    struct fp_control *ctl = c->ctl;
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1];
    int notify = 0;
    struct fp_reader *jobs = &p->v[0].r;
    uint32_t n = 0;
    uint64_t first;
    const char *why;
    struct batch_reply *b;
    msgpack_packer pk;

    (void)fp_read_array(jobs, &n);      /* an array: checked by the rule */
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
        if (fp_read_skip(jobs, &ctl->batch_jobs[i].data, &ctl->batch_jobs[i].len) < 0) {
            ctl_respond_rejected(c, msgid, "malformed");
            return;
        }
    if (p->n == 2 && (why = fp_wire_job_opts(&p->v[1].r, &opts, &notify, key)) != NULL) {
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
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += ctl->batch_jobs[i].len;
    *b = (struct batch_reply){ .c = c, .msgid = msgid, .first_id = first, .left = n,
                               .bytes_left = bytes };
    c->pending += n;
    c->pending_bytes += bytes;
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 2);
    ctl_pack_kv_u64(&pk, "first_id", first);
    ctl_pack_kv_u64(&pk, "count", n);
    ctl_flush_soon(c);
}

/* submit [job] or [job, {"timeout", "retries", "notify"}]: the response
 * is the job's outcome, when it has one. */
static void
method_submit(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1];
    int notify = 0;
    uint64_t id;
    const char *why;
    struct reply_to *rt;

    if (p->n == 2 && (why = fp_wire_job_opts(&p->v[1].r, &opts, &notify, key)) != NULL) {
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
    rt->bytes = p->v[0].len;
    if (fp_pool_submit(c->ctl->pool, p->v[0].raw, p->v[0].len, &opts, job_done_cb, rt,
                       &id, &why) < 0) {
        reply_put(c->ctl, rt);
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    c->pending++;
    c->pending_bytes += rt->bytes;
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
pack_worker_rows(msgpack_packer *pk, const fp_worker_info *rows, size_t n)
{
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

/* "limits": key -> {"rate", "burst", "tokens", "waiting"}, the pool-wide
 * bucket under "". */
static void
pack_limits(msgpack_packer *pk, const fp_limit_info *rows, size_t n)
{
    fp_pack_cstr(pk, "limits");
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        fp_pack_cstr(pk, rows[i].key);
        msgpack_pack_map(pk, 4);
        fp_pack_cstr(pk, "rate");
        msgpack_pack_double(pk, rows[i].rate);
        fp_pack_cstr(pk, "burst");
        msgpack_pack_double(pk, rows[i].burst);
        fp_pack_cstr(pk, "tokens");
        msgpack_pack_double(pk, rows[i].tokens);
        ctl_pack_kv_u64(pk, "waiting", rows[i].waiting);
    }
}

/* status []: the pool's counters, its workers' pids, one row per worker
 * and one per rate limit, however many there are. */
static void
method_status(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_pool *pool = c->ctl->pool;
    fp_stats st;
    msgpack_packer pk;
    size_t n = fp_pool_worker_info(pool, NULL, 0);
    fp_worker_info *rows = malloc((n > 0 ? n : 1) * sizeof(*rows));
    size_t nlim = fp_pool_limits(pool, NULL, 0);
    fp_limit_info *lims = malloc((nlim > 0 ? nlim : 1) * sizeof(*lims));
    (void)p;

    if (rows == NULL || lims == NULL) {
        free(rows);
        free(lims);
        ctl_respond_error_str(c, msgid, "out of memory");
        return;
    }
    nlim = fp_pool_limits(pool, lims, nlim);
    n = fp_pool_worker_info(pool, rows, n);
    fp_pool_stats(pool, &st);
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 18 + (st.autoscale_max > 0));
    fp_pack_cstr(&pk, "state");
    fp_pack_cstr(&pk, st.draining ? "draining" : "running");
    ctl_pack_kv_u64(&pk, "workers", st.workers);
    if (st.autoscale_max > 0) {
        fp_pack_cstr(&pk, "autoscale");
        msgpack_pack_map(&pk, 2);
        ctl_pack_kv_u64(&pk, "min", st.autoscale_min);
        ctl_pack_kv_u64(&pk, "max", st.autoscale_max);
    }
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
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int64(&pk, rows[i].pid);
    pack_worker_rows(&pk, rows, n);
    pack_limits(&pk, lims, nlim);
    ctl_flush_soon(c);
    free(rows);
    free(lims);
}

/* cancel [id]: true if the job was found. */
static void
method_cancel(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    uint64_t id = 0;
    msgpack_packer pk;

    (void)fp_read_uint(&p->v[0].r, &id);    /* checked by the rule */
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

/* scale [n]: {"workers": n}, or an error saying why not. */
static void
method_scale(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    uint64_t n = 0;
    msgpack_packer pk;
    char msg[128];
    fp_stats st;

    (void)fp_read_uint(&p->v[0].r, &n);     /* up to UINT32_MAX: the rule */
    if (fp_pool_scale(c->ctl->pool, (unsigned)n) < 0) {
        fp_pool_stats(c->ctl->pool, &st);
        if (errno == EBUSY)
            snprintf(msg, sizeof(msg), "cannot scale while draining");
        else if (st.autoscale_max > 0)
            snprintf(msg, sizeof(msg), "cannot scale to %llu workers: autoscale "
                     "keeps %u to %u", (unsigned long long)n, st.autoscale_min,
                     st.autoscale_max);
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

/* The length of the UTF-8 character at p[0..n) (p[0] >= 0x80), or 0 if
 * the bytes there are not one. */
static size_t
utf8_char_len(const char *p, size_t n)
{
    /* A lead byte >= 0x80 is valid with exactly its sequence behind it, so
     * the shortest valid prefix is that one character. */
    for (size_t len = 2; len <= 4 && len <= n; len++)
        if (fp_utf8_valid(p, len))
            return len;
    return 0;
}

/* Append `key` as the value of a Prometheus label: backslash, double quote
 * and newline escaped (\\ \" \n) as the text format says, and -- a key is
 * any bytes but NUL, the exposition must be UTF-8 -- each byte that is not
 * part of a valid UTF-8 character replaced by U+FFFD.  Returns 0 or -1. */
static int
append_label_value(struct fp_buf *out, const char *key)
{
    size_t n = strlen(key), len;
    int rc = 0;

    for (const char *p = key, *end = key + n; p < end; p += len) {
        unsigned char c = (unsigned char)*p;
        len = 1;
        if (c == '\\' || c == '"')
            rc |= fp_buf_append(out, c == '"' ? "\\\"" : "\\\\", 2);
        else if (c == '\n')
            rc |= fp_buf_append(out, "\\n", 2);
        else if (c < 0x80)
            rc |= fp_buf_append(out, p, 1);
        else if ((len = utf8_char_len(p, (size_t)(end - p))) > 0)
            rc |= fp_buf_append(out, p, len);
        else {
            len = 1;
            rc |= fp_buf_append(out, "\xef\xbf\xbd", 3);     /* U+FFFD */
        }
    }
    return rc;
}

/* One gauge series per rate limit into `out`, keys as label values
 * (append_label_value).  Returns 0, or -1 when out of memory. */
static int
limit_metrics(const fp_limit_info *rows, size_t n, struct fp_buf *out)
{
    static const char *const help[2] = {
        "# HELP forkpool_rate_limit_tokens Tokens in each rate limit's bucket "
        "(key \"\" = pool-wide).\n# TYPE forkpool_rate_limit_tokens gauge\n",
        "# HELP forkpool_rate_limit_waiting Jobs queued that each rate limit "
        "governs.\n# TYPE forkpool_rate_limit_waiting gauge\n",
    };
    char value[64];
    int rc = 0;

    for (int g = 0; g < 2 && n > 0; g++) {
        rc |= fp_buf_append(out, help[g], strlen(help[g]));
        for (size_t i = 0; i < n; i++) {
            const char *name = g == 0 ? "forkpool_rate_limit_tokens{key=\""
                                      : "forkpool_rate_limit_waiting{key=\"";
            int len = g == 0 ? snprintf(value, sizeof(value), "\"} %g\n", rows[i].tokens)
                             : snprintf(value, sizeof(value), "\"} %zu\n", rows[i].waiting);
            rc |= fp_buf_append(out, name, strlen(name));
            rc |= append_label_value(out, rows[i].key);
            rc |= fp_buf_append(out, value, (size_t)len);
        }
    }
    return rc;
}

/* metrics []: Prometheus text exposition of the pool's counters and gauges. */
static void
method_metrics(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_stats st;
    char text[4096];
    msgpack_packer pk;
    struct fp_buf more = FP_BUF_INIT;
    fp_limit_info *lims;
    size_t nlim;
    int n;
    (void)p;

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
    nlim = fp_pool_limits(c->ctl->pool, NULL, 0);
    if ((lims = malloc((nlim > 0 ? nlim : 1) * sizeof(*lims))) == NULL
        || limit_metrics(lims, fp_pool_limits(c->ctl->pool, lims, nlim), &more) < 0) {
        free(lims);
        fp_buf_free(&more);
        ctl_respond_error_str(c, msgid, "out of memory");
        return;
    }
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, (size_t)n + more.len);
    msgpack_pack_str_body(&pk, text, (size_t)n);
    msgpack_pack_str_body(&pk, fp_buf_head(&more), more.len);
    ctl_flush_soon(c);
    free(lims);
    fp_buf_free(&more);
}

/* limit [key, rate, burst], [key, rate] or [key, nil]: true; sets,
 * changes or removes the bucket of key ("" = pool-wide). */
static void
method_limit(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    char key[FP_MAX_KEY_BYTES + 1], text[96];
    double rate, burst = 0;
    msgpack_packer pk;
    int rc;

    if ((rc = fp_wire_read_key(&p->v[0].r, key)) < 0) {
        ctl_respond_error_str(c, msgid, rc == FP_KEY_HAS_NUL
                              ? "bad params: key must not contain a NUL byte"
                              : "bad params: key must be a string of at most "
                                "256 bytes");
        return;
    }
    if (fp_read_nil(&p->v[1].r) == 0) {
        if (p->n == 3) {
            ctl_respond_error_str(c, msgid, "bad params: expected [key, nil] "
                                  "to remove a limit");
            return;
        }
        (void)fp_pool_limit_remove(c->ctl->pool, key);
        rc = 0;
    } else if (fp_read_double(&p->v[1].r, &rate) < 0
               || !fp_limit_rate_valid(rate)) {
        snprintf(text, sizeof(text), "bad params: rate must be a number from "
                 "0 to %g (or nil to remove the limit)", FP_LIMIT_MAX);
        ctl_respond_error_str(c, msgid, text);
        return;
    } else if (p->n == 3 && (fp_read_double(&p->v[2].r, &burst) < 0
                             || !fp_limit_burst_valid(burst))) {
        snprintf(text, sizeof(text), "bad params: burst must be a number from "
                 "1 to %g", FP_LIMIT_MAX);
        ctl_respond_error_str(c, msgid, text);
        return;
    } else {
        rc = fp_pool_limit(c->ctl->pool, key, rate, burst);
    }
    if (rc < 0) {
        if (errno == ENOSPC)
            snprintf(text, sizeof(text), "too many rate-limit keys (max %u)",
                     FP_LIMIT_KEYS_MAX);
        else
            snprintf(text, sizeof(text), "%s", strerror(errno));
        ctl_respond_error_str(c, msgid, text);
        return;
    }
    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    ctl_flush_soon(c);
}

/* A response with nil error and nil result. */
static void
respond_nil(struct client *c, uint32_t msgid)
{
    msgpack_packer pk;

    ctl_begin_response(c, &pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    ctl_flush_soon(c);
}

/* reload []: nil; a rolling reload starts, as on SIGHUP. */
static void
method_reload(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    (void)p;
    fp_pool_reload(c->ctl->pool);
    respond_nil(c, msgid);
}

/* drain []: nil at once; the daemon then drains, as on SIGTERM. */
static void
method_drain(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    (void)p;
    respond_nil(c, msgid);
    if (c->ctl->hooks.drain != NULL)
        c->ctl->hooks.drain(c->ctl->hooks.arg);
}

/* ------------------------------------------------------------------------
 * The method table
 * ------------------------------------------------------------------------ */

/* One row per method: its params' rule (checked before the handler runs)
 * and its handler.  Methods that read no params take any, as they always
 * have. */
const struct ctl_method ctl_methods[] = {
    { .name = "submit", .min_params = 1, .max_params = 2,
      .shape = { CTL_ANY, CTL_MAP }, .outcome_errors = 1,
      .usage = "malformed: params must be [job] or [job, options]",
      .handler = method_submit },
    { .name = "submit_batch", .min_params = 1, .max_params = 2,
      .shape = { CTL_ARRAY, CTL_MAP }, .outcome_errors = 1,
      .usage = "malformed: params must be [[job, ...]] or [[job, ...], options]",
      .handler = method_submit_batch },
    { .name = "status", .max_params = CTL_ANY_COUNT, .handler = method_status },
    { .name = "cancel", .min_params = 1, .max_params = 1, .shape = { CTL_UINT },
      .usage = "bad params: expected [id]", .handler = method_cancel },
    { .name = "scale", .min_params = 1, .max_params = 1, .shape = { CTL_U32 },
      .usage = "bad params: expected [n]", .handler = method_scale },
    { .name = "reload", .max_params = CTL_ANY_COUNT, .handler = method_reload },
    { .name = "drain", .max_params = CTL_ANY_COUNT, .handler = method_drain },
    { .name = "metrics", .max_params = CTL_ANY_COUNT, .handler = method_metrics },
    { .name = "limit", .min_params = 2, .max_params = 3,
      .shape = { CTL_STR, CTL_ANY, CTL_ANY },
      .usage = "bad params: expected [key, rate, burst], [key, rate] or [key, nil]",
      .handler = method_limit },
};
const size_t ctl_nmethods = sizeof(ctl_methods) / sizeof(ctl_methods[0]);
