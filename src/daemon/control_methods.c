/*
 * control_methods.c — the control protocol's methods (SPEC §7): submit,
 * submit_batch, status, cancel, scale, reload, drain, metrics, limit (and
 * subscribe, in control_events.c); and the method table at the end, one
 * row per method.  Each handler runs only
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

/* A duration in ms, to the microsecond (a receipt's figures are no finer,
 * and fewer digits read better). */
static void
pack_ms(msgpack_packer *pk, const char *key, double ms)
{
    fp_pack_cstr(pk, key);
    msgpack_pack_double(pk, ms > 0 ? (double)(uint64_t)(ms * 1e3 + 0.5) / 1e3 : 0);
}

/* "stats": the job's receipt (SPEC §3). */
static void
pack_stats(msgpack_packer *pk, const fp_outcome *o)
{
    fp_pack_cstr(pk, "stats");
    msgpack_pack_map(pk, 5);
    pack_ms(pk, "wait_ms", o->stats.wait_ms);
    pack_ms(pk, "run_ms", o->stats.run_ms);
    pack_ms(pk, "cpu_ms", o->stats.cpu_ms);
    ctl_pack_kv_u64(pk, "maxrss_kb", o->stats.maxrss_kb);
    ctl_pack_kv_u64(pk, "attempts", o->attempts);
}

/* The length of the UTF-8 character at p[0..n) (p[0] >= 0x80), or 0 if
 * the bytes there are not one. */
static size_t
utf8_len(const char *p, size_t n)
{
    for (size_t len = 2; len <= 4 && len <= n; len++)
        if (fp_utf8_valid(p, len))
            return len;
    return 0;
}

/* Pass over s[0..n) as it goes out, each byte that is not part of a UTF-8
 * character as U+FFFD: packed through pk if not NULL; returns the length. */
static size_t
as_utf8(msgpack_packer *pk, const char *s, size_t n)
{
    size_t out = 0, len;

    for (const char *p = s, *end = s + n; p < end; p += len) {
        const char *piece = p;
        size_t plen;
        len = (unsigned char)*p < 0x80 ? 1 : utf8_len(p, (size_t)(end - p));
        if (len > 0) {
            plen = len;
        } else {
            len = 1;
            piece = "\xef\xbf\xbd";       /* U+FFFD */
            plen = 3;
        }
        if (pk != NULL)
            msgpack_pack_str_body(pk, piece, plen);
        out += plen;
    }
    return out;
}

/* "stderr": what a crashed job's worker wrote to stderr during it, as a
 * str: the bytes that are not UTF-8 (a tail cut inside a character, binary
 * output) each become U+FFFD. */
static void
pack_stderr(msgpack_packer *pk, const fp_outcome *o)
{
    fp_pack_cstr(pk, "stderr");
    msgpack_pack_str(pk, (uint32_t)as_utf8(NULL, o->stderr_tail, o->stderr_len));
    as_utf8(pk, o->stderr_tail, o->stderr_len);
}

/* The outcome's result or detail into the reply.  A big one is kept
 * where the pool put it (fp_outcome_keep) and written from there, never
 * copied; if the reply then cannot be queued, it is released with the
 * reply, so o->data must not be read after a failed ctl_reply_end. */
static void
pack_outcome_data(struct ctl_reply *r, const fp_outcome *o)
{
    void *kept;

    if (o->len >= FP_OUTQ_BIG && !r->failed && !r->closed
        && (kept = fp_outcome_keep(r->c->ctl->pool, o)) != NULL)
        ctl_reply_ref(r, o->data, o->len, fp_outcome_release, kept);
    else
        ctl_reply_raw(r, o->data, o->len);
}

/* An outcome as a response's error and result (SPEC §7): result {"id",
 * "result", "stats"} for ok, error {"id", "kind", "detail", "stats"}
 * otherwise, with "stderr" when it crashed; both with "attempts" when the
 * job ran more than once. */
static void
pack_outcome(struct ctl_reply *r, const fp_outcome *o)
{
    msgpack_packer *pk = &r->pk;
    int crashed = o->kind == FP_CRASHED;

    if (o->kind == FP_OK) {
        msgpack_pack_nil(pk);
        msgpack_pack_map(pk, o->attempts > 1 ? 4 : 3);
        ctl_pack_kv_u64(pk, "id", o->id);
        fp_pack_cstr(pk, "result");
        pack_outcome_data(r, o);
        pack_stats(pk, o);
    } else {
        msgpack_pack_map(pk, (o->attempts > 1 ? 5 : 4) + crashed);
        ctl_pack_kv_u64(pk, "id", o->id);
        fp_pack_cstr(pk, "kind");
        fp_pack_cstr(pk, fp_kind_name(o->kind));
        fp_pack_cstr(pk, "detail");
        pack_outcome_data(r, o);
        pack_stats(pk, o);
        if (crashed)
            pack_stderr(pk, o);
    }
    if (o->attempts > 1)
        ctl_pack_kv_u64(pk, "attempts", o->attempts);
    if (o->kind != FP_OK)
        msgpack_pack_nil(pk);
}

/* In place of an outcome there was no memory to queue: error {"id",
 * "kind": "error", "detail": "..."} (a few dozen bytes, where the outcome
 * may have been megabytes).  Reads none of o->data (it may be gone). */
static void
pack_outcome_lost(struct ctl_reply *r, const fp_outcome *o)
{
    char detail[160];

    snprintf(detail, sizeof(detail), "forkpoold had no memory to send this "
             "outcome (%s, %zu bytes); it is lost", fp_kind_name(o->kind), o->len);
    msgpack_pack_map(&r->pk, 3);
    ctl_pack_kv_u64(&r->pk, "id", o->id);
    fp_pack_cstr(&r->pk, "kind");
    fp_pack_cstr(&r->pk, fp_kind_name(FP_ERROR));
    fp_pack_cstr(&r->pk, "detail");
    fp_pack_cstr(&r->pk, detail);
    msgpack_pack_nil(&r->pk);
}

/* Queue the outcome reply begun in r -- or the small error in its place
 * (begun again by `begin`), or, failing that too, disconnect the client.
 * Either way the client is not left waiting, and the stream stays whole. */
static void
end_outcome(struct ctl_reply *r, const fp_outcome *o,
            void (*begin)(struct ctl_reply *r, struct client *c, const void *arg),
            const void *arg)
{
    struct client *c = r->c;

    if (ctl_reply_end(r) == 0)
        return;
    fp_logf(c->ctl->log, FP_LOG_WARN, "client %lu: no memory to queue the outcome "
            "of job %llu (%zu bytes); answered with an error", c->serial,
            (unsigned long long)o->id, o->len);
    begin(r, c, arg);
    pack_outcome_lost(r, o);
    if (ctl_reply_end(r) < 0)
        ctl_client_fail(c, "no memory to queue a reply");
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

/* [1, msgid, ...: the response to a submit. */
static void
begin_submit_response(struct ctl_reply *r, struct client *c, const void *arg)
{
    ctl_reply_begin_response(r, c, *(const uint32_t *)arg);
}

static void
job_done_cb(const fp_outcome *o, void *arg)
{
    struct reply_to *rt = arg;
    struct client *c = rt->c;
    uint32_t msgid = rt->msgid;
    size_t bytes = rt->bytes;
    struct ctl_reply r;

    reply_put(c->ctl, rt);
    if (ctl_client_outcome(c, bytes))
        return;
    begin_submit_response(&r, c, &msgid);
    pack_outcome(&r, o);
    end_outcome(&r, o, begin_submit_response, &msgid);
}

/* [2, "outcome", [msgid, index, ...: a batch job's outcome notification. */
struct batch_at {
    const struct batch_reply *b;
    uint64_t                  index;
};

static void
begin_batch_outcome(struct ctl_reply *r, struct client *c, const void *arg)
{
    const struct batch_at *at = arg;

    ctl_reply_begin(r, c);
    msgpack_pack_array(&r->pk, 3);
    msgpack_pack_int(&r->pk, 2);
    fp_pack_cstr(&r->pk, "outcome");
    msgpack_pack_array(&r->pk, 4);
    msgpack_pack_uint32(&r->pk, at->b->msgid);
    msgpack_pack_uint64(&r->pk, at->index);
}

static void
batch_done_cb(const fp_outcome *o, void *arg)
{
    struct batch_reply *b = arg;
    struct client *c = b->c;
    struct batch_at at = { b, o->id - b->first_id };
    struct ctl_reply r;
    /* The batch's bytes, spread over its outcomes (the last takes the
     * rest, so they add up). */
    size_t bytes = b->left == 1 ? b->bytes_left : b->bytes_left / b->left;

    b->bytes_left -= bytes;
    if (!ctl_client_outcome(c, bytes)) {
        begin_batch_outcome(&r, c, &at);
        pack_outcome(&r, o);
        end_outcome(&r, o, begin_batch_outcome, &at);
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
    fp_job_opts opts = { .timeout = -1, .retries = 0, .group = c->group };
    char key[FP_MAX_KEY_BYTES + 1];
    struct fp_wire_submit_flags flags = { 0, 0 };
    struct fp_reader *jobs = &p->v[0].r;
    uint32_t n = 0;
    uint64_t first;
    const char *why;
    struct batch_reply *b;
    struct ctl_reply r;

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
    if (p->n == 2 && (why = fp_wire_job_opts(&p->v[1].r, &opts, &flags, key)) != NULL) {
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    if ((b = malloc(sizeof(*b))) == NULL) {
        ctl_respond_rejected(c, msgid, "out of memory");
        return;
    }
    if (flags.progress) {
        opts.progress = ctl_batch_progress_cb;
        opts.progress_arg = b;
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
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_map(&r.pk, 2);
    ctl_pack_kv_u64(&r.pk, "first_id", first);
    ctl_pack_kv_u64(&r.pk, "count", n);
    if (ctl_reply_end(&r) < 0)
        ctl_client_fail(c, "no memory to queue a reply");
}

/* submit [job] or [job, {"timeout", "retries", "notify", "progress", ...}]:
 * the response is the job's outcome, when it has one (its progress reports,
 * with "progress", come first as notifications). */
static void
method_submit(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0, .group = c->group };
    char key[FP_MAX_KEY_BYTES + 1];
    struct fp_wire_submit_flags flags = { 0, 0 };
    uint64_t id;
    const char *why;
    struct reply_to *rt;

    if (p->n == 2 && (why = fp_wire_job_opts(&p->v[1].r, &opts, &flags, key)) != NULL) {
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
    if (flags.progress) {
        opts.progress = ctl_submit_progress_cb;
        opts.progress_arg = rt;
    }
    if (fp_pool_submit(c->ctl->pool, p->v[0].raw, p->v[0].len, &opts, job_done_cb, rt,
                       &id, &why) < 0) {
        reply_put(c->ctl, rt);
        ctl_respond_rejected(c, msgid, why);
        return;
    }
    c->pending++;
    c->pending_bytes += rt->bytes;
    if (flags.notify) {
        /* [2, "accepted", [msgid, id]]: the id, early enough to cancel. */
        struct ctl_reply r;
        ctl_reply_begin(&r, c);
        msgpack_pack_array(&r.pk, 3);
        msgpack_pack_int(&r.pk, 2);
        fp_pack_cstr(&r.pk, "accepted");
        msgpack_pack_array(&r.pk, 2);
        msgpack_pack_uint32(&r.pk, msgid);
        msgpack_pack_uint64(&r.pk, id);
        if (ctl_reply_end(&r) < 0)
            ctl_client_fail(c, "no memory to queue a reply");
    }
}

/* Queue the reply begun in r, or answer msgid with an error if it could not
 * be built (no memory for it). */
static void
end_reply(struct ctl_reply *r, uint32_t msgid)
{
    struct client *c = r->c;

    if (ctl_reply_end(r) < 0)
        ctl_respond_error_str(c, msgid, "out of memory: the reply could not be "
                              "queued");
}

/* status []: the pool's counters, its workers' pids, one row per worker
 * and one per rate limit, however many there are, and the clients. */
static void
method_status(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_pool *pool = c->ctl->pool;
    fp_stats st;
    struct ctl_reply r;
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
    fp_pool_stats(pool, &st);
    /* Nothing changes between counting and filling: the same n come back. */
    n = fp_pool_worker_info(pool, rows, n);
    nlim = fp_pool_limits(pool, lims, nlim);
    struct ctl_status_input in = {
        .stats = &st, .workers = rows, .nworkers = n, .limits = lims,
        .nlimits = nlim, .max_job_bytes = c->ctl->max_job_bytes,
        .redis = c->ctl->redis,
        .clients = { .connected = c->ctl->nclients, .behind = c->ctl->nbehind,
                     .reply_bytes = c->ctl->out_total,
                     .subscribers = c->ctl->events.n },
    };
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    ctl_pack_status(&r.pk, &in);
    end_reply(&r, msgid);
    free(rows);
    free(lims);
}

/* cancel [id]: true if the job was found. */
static void
method_cancel(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    uint64_t id = 0;
    struct ctl_reply r;

    (void)fp_read_uint(&p->v[0].r, &id);    /* checked by the rule */
    int found = fp_pool_cancel(c->ctl->pool, id);
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    if (found)
        msgpack_pack_true(&r.pk);
    else
        msgpack_pack_false(&r.pk);
    end_reply(&r, msgid);
}

/* scale [n]: {"workers": n}, or an error saying why not. */
static void
method_scale(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    uint64_t n = 0;
    struct ctl_reply r;
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
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_map(&r.pk, 1);
    ctl_pack_kv_u64(&r.pk, "workers", n);
    end_reply(&r, msgid);
}

/* metrics []: Prometheus text exposition of the pool's counters and gauges. */
static void
method_metrics(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    fp_stats st;
    struct ctl_reply r;
    struct fp_buf text = FP_BUF_INIT;
    size_t nlim = fp_pool_limits(c->ctl->pool, NULL, 0);
    fp_limit_info *lims = malloc((nlim > 0 ? nlim : 1) * sizeof(*lims));
    (void)p;

    struct fp_control *ctl = c->ctl;
    struct ctl_daemon_figures fig = {
        .log_lines_dropped = ctl->hooks.log_lines_dropped != NULL
                             ? ctl->hooks.log_lines_dropped(ctl->hooks.arg) : 0,
        .subscribers = ctl->events.n,
        .subscribers_dropped = ctl->events.dropped,
    };
    fp_pool_stats(c->ctl->pool, &st);
    if (lims == NULL
        || ctl_metrics_text(&text, &st, lims,
                            fp_pool_limits(c->ctl->pool, lims, nlim)) < 0
        || ctl_metrics_daemon_text(&text, &fig) < 0
        || ctl_redis_metrics(&text, c->ctl->redis) < 0) {
        free(lims);
        fp_buf_free(&text);
        ctl_respond_error_str(c, msgid, "out of memory");
        return;
    }
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_str_with_body(&r.pk, fp_buf_head(&text), text.len);
    end_reply(&r, msgid);
    free(lims);
    fp_buf_free(&text);
}

/* limit [key, rate, burst], [key, rate] or [key, nil]: true; sets,
 * changes or removes the bucket of key ("" = pool-wide). */
static void
method_limit(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    char key[FP_MAX_KEY_BYTES + 1], text[96];
    double rate, burst = 0;
    struct ctl_reply r;
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
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_true(&r.pk);
    end_reply(&r, msgid);
}

/* A response with nil error and nil result. */
static void
respond_nil(struct client *c, uint32_t msgid)
{
    struct ctl_reply r;

    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_nil(&r.pk);
    end_reply(&r, msgid);
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
    { .name = "subscribe", .max_params = CTL_ANY_COUNT,
      .handler = ctl_method_subscribe },
    { .name = "limit", .min_params = 2, .max_params = 3,
      .shape = { CTL_STR, CTL_ANY, CTL_ANY },
      .usage = "bad params: expected [key, rate, burst], [key, rate] or [key, nil]",
      .handler = method_limit },
};
const size_t ctl_nmethods = sizeof(ctl_methods) / sizeof(ctl_methods[0]);
