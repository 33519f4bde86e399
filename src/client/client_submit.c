/*
 * client_submit.c — jobs: packing submit and submit_batch requests, and
 * decoding the outcome a response or an "outcome" notification carries.
 */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* ---- requests ----------------------------------------------------------- */

int
fpc_count_opts(const struct fp_client_jobopts *o, int batch)
{
    if (o == NULL)
        return 0;
    /* "notify" means nothing to submit_batch: its response carries ids. */
    return !!o->has_timeout + !!(o->retries > 0) + !!(o->key != NULL)
           + !!o->has_expires + !!o->progress + (!batch && o->notify_id);
}

int
fpc_pack_opts(msgpack_packer *pk, const struct fp_client_jobopts *o, int batch)
{
    int n = fpc_count_opts(o, batch);

    if (n == 0)
        return 0;
    if (msgpack_pack_map(pk, (size_t)n) != 0)
        return -1;
    if (o->has_timeout
        && (msgpack_pack_str_with_body(pk, "timeout", 7) != 0
            || msgpack_pack_double(pk, o->timeout) != 0))
        return -1;
    if (o->retries > 0
        && (msgpack_pack_str_with_body(pk, "retries", 7) != 0
            || msgpack_pack_unsigned_int(pk, o->retries) != 0))
        return -1;
    if (o->has_expires
        && (msgpack_pack_str_with_body(pk, "expires", 7) != 0
            || msgpack_pack_double(pk, o->expires) != 0))
        return -1;
    if (o->key != NULL
        && (msgpack_pack_str_with_body(pk, "key", 3) != 0
            || msgpack_pack_str_with_body(pk, o->key, strlen(o->key)) != 0))
        return -1;
    if (!batch && o->notify_id
        && (msgpack_pack_str_with_body(pk, "notify", 6) != 0
            || msgpack_pack_true(pk) != 0))
        return -1;
    if (o->progress
        && (msgpack_pack_str_with_body(pk, "progress", 8) != 0
            || msgpack_pack_true(pk) != 0))
        return -1;
    return 0;
}

/* Release every job given by reference; for the paths that queue nothing. */
static void
release_all(const struct fp_client_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (jobs[i].release != NULL)
            jobs[i].release(jobs[i].arg);
}

/* The bytes before and after the job(s) in a request's params, packed
 * into c->scratch: [ (array head) | jobs | opts ]. *head is the length of
 * the first part. */
static int
pack_around(struct fp_client *c, const struct fp_client_jobopts *o, int batch,
            size_t njobs, size_t *head)
{
    msgpack_packer pk;
    int nopts = fpc_count_opts(o, batch);

    fp_buf_clear(&c->scratch);
    msgpack_packer_init(&pk, &c->scratch, fp_buf_pack_write);
    if (msgpack_pack_array(&pk, nopts > 0 ? 2 : 1) != 0
        || (batch && msgpack_pack_array(&pk, njobs) != 0))
        return -1;
    *head = c->scratch.len;
    return fpc_pack_opts(&pk, o, batch);
}

int
fp_client_submit_job(fp_client *c, const struct fp_client_job *job,
                     const struct fp_client_jobopts *opts, uint32_t *tag)
{
    size_t head;

    if (job->data == NULL || job->len == 0) {
        release_all(job, 1);
        return fpc_fail(c, FP_CLIENT_EINVAL, "a job is one msgpack value, not nothing");
    }
    if (pack_around(c, opts, 0, 1, &head) < 0) {
        release_all(job, 1);
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    }
    const char *s = fp_buf_head(&c->scratch);
    struct fp_client_job parts[3] = {
        { s, head, NULL, NULL },
        *job,
        { s + head, c->scratch.len - head, NULL, NULL },
    };
    uint32_t t;
    int rc = fpc_tag(c, tag, &t);
    if (rc < 0) {
        release_all(job, 1);
        return rc;
    }
    rc = fpc_queue(c, t, "submit", parts, 3);
    if (rc == 0 && tag != NULL)
        *tag = t;
    return rc;
}

int
fp_client_submit_async(fp_client *c, const void *job, size_t len,
                       const struct fp_client_jobopts *opts, uint32_t *tag)
{
    struct fp_client_job j = { job, len, NULL, NULL };

    return fp_client_submit_job(c, &j, opts, tag);
}

int
fp_client_submit_batch(fp_client *c, const struct fp_client_job *jobs,
                       size_t n, const struct fp_client_jobopts *opts,
                       uint32_t *tag)
{
    size_t head;

    if (n == 0 || n > UINT32_MAX - 2) {
        release_all(jobs, n);
        return fpc_fail(c, FP_CLIENT_EINVAL, "a batch holds 1 to 2^32-3 jobs");
    }
    for (size_t i = 0; i < n; i++)
        if (jobs[i].data == NULL || jobs[i].len == 0) {
            release_all(jobs, n);
            return fpc_fail(c, FP_CLIENT_EINVAL, "job %zu of the batch is empty", i);
        }
    struct fp_client_job *parts = malloc((n + 2) * sizeof *parts);
    if (parts == NULL || pack_around(c, opts, 1, n, &head) < 0) {
        free(parts);
        release_all(jobs, n);
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    }
    const char *s = fp_buf_head(&c->scratch);
    parts[0] = (struct fp_client_job){ s, head, NULL, NULL };
    memcpy(parts + 1, jobs, n * sizeof *parts);
    parts[n + 1] = (struct fp_client_job){ s + head, c->scratch.len - head,
                                           NULL, NULL };
    uint32_t t;
    int rc = fpc_tag(c, tag, &t);
    if (rc < 0)
        release_all(jobs, n);
    else
        rc = fpc_queue(c, t, "submit_batch", parts, n + 2);
    free(parts);
    if (rc == 0 && tag != NULL)
        *tag = t;
    return rc;
}

/* ---- outcomes ----------------------------------------------------------- */

static const char *const kinds[] = {
    "ok", "error", "crashed", "timeout", "cancelled", "rejected",
};

/* The static name of a kind read as a msgpack str. */
static const char *
kind_name(const char *raw, size_t len)
{
    struct fp_reader rd;
    const char *s;
    uint32_t n;

    fp_reader_init(&rd, raw, len);
    if (fp_read_str(&rd, &s, &n) < 0)
        return "unknown";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i]) == n && memcmp(kinds[i], s, n) == 0)
            return kinds[i];
    return "unknown";
}

/* Walk a result or error map, picking the known keys; others are
 * stepped over.  Returns 0, or -1 if it is not such a map. */
static int
read_fields(const char *raw, size_t len, struct fp_client_outcome *o,
            const char **kind, size_t *kind_len)
{
    struct fp_reader rd;
    uint32_t n;

    fp_reader_init(&rd, raw, len);
    if (fp_read_map(&rd, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char **p = NULL;
        size_t *plen = NULL;
        if (fp_read_str_eq(&rd, "id")) {
            if (fp_read_nil(&rd) == 0)
                continue;
            if (fp_read_uint(&rd, &o->id) < 0)
                return -1;
            o->has_id = 1;
            continue;
        }
        if (fp_read_str_eq(&rd, "result") || fp_read_str_eq(&rd, "detail"))
            p = &o->value, plen = &o->value_len;
        else if (fp_read_str_eq(&rd, "kind"))
            p = kind, plen = kind_len;
        else if (fp_read_str_eq(&rd, "attempts"))
            p = &o->attempts, plen = &o->attempts_len;
        else if (fp_read_str_eq(&rd, "stats"))
            p = &o->stats, plen = &o->stats_len;
        else if (fp_read_str_eq(&rd, "stderr"))
            p = &o->stderr_tail, plen = &o->stderr_len;
        else if (fp_read_skip(&rd, NULL, NULL) < 0)
            return -1;
        if (fp_read_skip(&rd, p, plen) < 0)
            return -1;
    }
    return 0;
}

int
fp_client_outcome(fp_client *c, const struct fp_client_msg *m,
                  struct fp_client_outcome *o)
{
    const char *kind = NULL;
    size_t kind_len = 0;

    memset(o, 0, sizeof *o);
    o->tag = m->tag;
    o->index = m->index;
    if (m->type != FP_CLIENT_MSG_RESPONSE && m->type != FP_CLIENT_MSG_OUTCOME)
        return fpc_fail(c, FP_CLIENT_EINVAL, "not a response or an outcome");
    if (m->error == NULL) {
        if (read_fields(m->result, m->result_len, o, &kind, &kind_len) < 0
            || !o->has_id || o->value == NULL) {
            memset(o, 0, sizeof *o);
            o->tag = m->tag;
            o->index = m->index;
            return fpc_fail(c, FP_CLIENT_EPROTO, "not a job's outcome");
        }
        o->ok = 1;
        o->kind = "ok";
        return 0;
    }
    if (read_fields(m->error, m->error_len, o, &kind, &kind_len) < 0
        || kind == NULL) {
        /* A plain error: the request itself was refused. */
        struct fp_reader rd;
        const char *s;
        uint32_t n;
        memset(o, 0, sizeof *o);
        o->tag = m->tag;
        o->index = m->index;
        fp_reader_init(&rd, m->error, m->error_len);
        if (fp_read_str(&rd, &s, &n) == 0)
            return fpc_fail(c, FP_CLIENT_EREFUSED, "%.*s", (int)n, s);
        return fpc_fail(c, FP_CLIENT_EREFUSED, "refused by the daemon");
    }
    o->kind = kind_name(kind, kind_len);
    return FP_CLIENT_EJOB;
}

int
fp_client_submit(fp_client *c, const void *job, size_t len,
                 const struct fp_client_jobopts *opts,
                 struct fp_client_outcome *out)
{
    struct fp_client_msg m;
    uint32_t tag;
    int rc;

    memset(out, 0, sizeof *out);
    tag = 0;
    if ((rc = fp_client_submit_async(c, job, len, opts, &tag)) < 0)
        return rc;
    if ((rc = fpc_await(c, tag, opts, &m)) < 0)
        return rc;
    return fp_client_outcome(c, &m, out);
}
