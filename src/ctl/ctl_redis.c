/*
 * ctl_redis.c — `forkpoolctl --redis URL submit|map`: a producer of the
 * Redis queue (SPEC 10, forkpool-protocol(7)).  Jobs go into the queue
 * with fp_submit, each naming this run's own reply stream; outcomes come
 * back on that stream, written there by whichever host ran each job, and
 * print as the same outcome lines as through a daemon.
 *
 * A plain blocking client (hiredis): forkpoolctl has no event loop.
 * `map` keeps up to `window` jobs in flight, submitting lines in pipelined
 * batches and reading outcomes between batches.
 */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>

#include "ctl.h"
#include "common/jsonmp.h"
#include "redis/redis_functions.h"
#include "redis/redis_url.h"

#define READ_COUNT   "1000"     /* outcomes taken per XREAD */
#define BLOCK_MS     1000       /* one XREAD waits this long at most */
#define BATCH_LINES  256        /* lines submitted per pipelined batch */

struct producer {
    redisContext *rc;
    const struct ctl_redis_target *t;
    char  k_jobs[300];
    char  reply[400];           /* this run's reply stream */
    char  last[48];             /* the last reply entry read */
    char  progress[400];        /* its progress stream (--progress) */
    char  plast[48];            /* the last progress entry read */
    int   show_progress;
    char  retention[24];
    char  err[512];
};

/* ---- connection ----------------------------------------------------------- */

static int
fail(struct producer *p, const char *fmt, const char *arg)
{
    snprintf(p->err, sizeof(p->err), fmt, arg);
    return -1;
}

static int
connect_redis(struct producer *p)
{
    struct fp_redis_url u;
    struct timeval tv = { .tv_sec = 5 };

    if (fp_redis_url_parse(p->t->url, &u, p->err, sizeof(p->err)) < 0)
        return -1;
    p->rc = u.path[0] != '\0' ? redisConnectUnixWithTimeout(u.path, tv)
                              : redisConnectWithTimeout(u.host, (int)u.port, tv);
    if (p->rc == NULL)
        return fail(p, "cannot reach Redis at %s: out of memory", p->t->url);
    if (p->rc->err != 0) {
        snprintf(p->err, sizeof(p->err), "cannot reach Redis at %s: %s",
                 p->t->url, p->rc->errstr);
        return -1;
    }
    if (u.db != 0) {
        redisReply *r = redisCommand(p->rc, "SELECT %u", u.db);
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok)
            return fail(p, "cannot select database of %s", p->t->url);
    }
    return 0;
}

/* A reply stream name unique to this run: host, pid, time. */
static void
name_reply_stream(struct producer *p)
{
    char host[64];
    struct timespec ts;

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(p->reply, sizeof(p->reply), "fp:{%s}:reply:%s:%ld:%lx%05lx",
             p->t->queue, host, (long)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)(ts.tv_nsec / 10000));
    snprintf(p->progress, sizeof(p->progress), "fp:{%s}:progress:%s",
             p->t->queue, p->reply + strlen(p->t->queue) + 12);
    snprintf(p->k_jobs, sizeof(p->k_jobs), "fp:{%s}:jobs", p->t->queue);
    snprintf(p->last, sizeof(p->last), "0");
    snprintf(p->plast, sizeof(p->plast), "0");
    snprintf(p->retention, sizeof(p->retention), "%.0f", p->t->retention);
}

static int
load_functions(struct producer *p)
{
    const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", fp_redis_functions };
    redisReply *r = redisCommandArgv(p->rc, 4, argv, NULL);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING;

    if (!ok)
        snprintf(p->err, sizeof(p->err), "loading forkpool's functions: %s",
                 r != NULL && r->type == REDIS_REPLY_ERROR ? r->str
                 : p->rc->errstr);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Load the library if this Redis has none yet (no daemon has connected
 * since it started empty).  Never replaces one: a newer daemon's stays. */
static int
ensure_functions(struct producer *p)
{
    redisReply *r = redisCommand(p->rc, "FUNCTION LIST LIBRARYNAME forkpool");
    int have = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0;

    if (r == NULL) {
        snprintf(p->err, sizeof(p->err), "Redis at %s: %s", p->t->url,
                 p->rc->errstr);
        return -1;
    }
    freeReplyObject(r);
    return have ? 0 : load_functions(p);
}

/* ---- jobs in ---------------------------------------------------------------- */

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* The job's options as the "o" field: a msgpack map, or empty. */
static void
pack_opts(struct fp_buf *out, const struct ctl_jobopts *o)
{
    msgpack_packer pk;
    int n = o->has_timeout + o->has_retries + (o->key != NULL) + o->has_expires
            + !!o->progress;

    fp_buf_clear(out);
    if (n == 0)
        return;
    msgpack_packer_init(&pk, out, fp_buf_pack_write);
    msgpack_pack_map(&pk, (size_t)n);
    if (o->has_timeout) {
        pack_cstr(&pk, "timeout");
        msgpack_pack_double(&pk, o->timeout);
    }
    if (o->has_retries) {
        pack_cstr(&pk, "retries");
        msgpack_pack_uint32(&pk, o->retries);
    }
    if (o->key != NULL) {
        pack_cstr(&pk, "key");
        pack_cstr(&pk, o->key);
    }
    if (o->has_expires) {
        pack_cstr(&pk, "expires");
        msgpack_pack_double(&pk, o->expires);
    }
    if (o->progress) {          /* the host reports on p->progress */
        pack_cstr(&pk, "progress");
        msgpack_pack_true(&pk);
    }
}

/* Queue one fp_submit (pipelined: its reply is read by take_submitted). */
static int
append_submit(struct producer *p, const char *job, size_t joblen,
              const struct fp_buf *opts, const char *idem_key)
{
    char idem[600];
    const char *argv[10];
    size_t argvlen[10];
    int argc = 0;

#define ARG(s, n) (argv[argc] = (s), argvlen[argc++] = (n))
    ARG("FCALL", 5);
    ARG("fp_submit", 9);
    ARG(idem_key != NULL ? "2" : "1", 1);
    ARG(p->k_jobs, strlen(p->k_jobs));
    if (idem_key != NULL) {
        snprintf(idem, sizeof(idem), "fp:{%s}:idem:%s", p->t->queue, idem_key);
        ARG(idem, strlen(idem));
    }
    ARG(job, joblen);
    ARG(opts->len > 0 ? fp_buf_head(opts) : "", opts->len);
    ARG(p->reply, strlen(p->reply));
    ARG(p->retention, strlen(p->retention));
#undef ARG
    return redisAppendCommandArgv(p->rc, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

/* The reply of one appended fp_submit: the job's id into id, *fresh 0 for
 * a repeated idempotency key.  Returns 0, or -1 on error (p->err). */
static int
take_submitted(struct producer *p, char *id, size_t idlen, int *fresh)
{
    redisReply *r = NULL;
    int rc = -1;

    if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || r == NULL) {
        snprintf(p->err, sizeof(p->err), "Redis at %s: %s", p->t->url,
                 p->rc->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(p->err, sizeof(p->err), "submit: %s", r->str);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2
               && r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(id, idlen, "%s", r->element[0]->str);
        *fresh = (int)r->element[1]->integer;
        rc = 0;
    } else {
        snprintf(p->err, sizeof(p->err), "submit: unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

/* ---- outcomes out ------------------------------------------------------------ */

/* The outcome line of a record: its id, ok, result or kind and detail,
 * stats and stderr, as a daemon's outcome line has them; `index` >= 0
 * adds "index". */
static json_t *
outcome_line(const char *rec, size_t len, long long index, char *err,
             size_t errlen)
{
    json_t *r = fp_json_from_msgpack(rec, len, err, errlen);
    json_t *line;

    if (r == NULL || !json_is_object(r)) {
        json_decref(r);
        snprintf(err, errlen, "malformed outcome record");
        return NULL;
    }
    line = json_object();
    if (line == NULL) {
        json_decref(r);
        return NULL;
    }
    json_object_set(line, "id", json_object_get(r, "id"));
    if (index >= 0)
        json_object_set_new(line, "index", json_integer(index));
    json_t *ok = json_object_get(r, "ok");
    json_object_set(line, "ok", ok != NULL ? ok : json_false());
    if (json_is_true(ok)) {
        json_object_set(line, "result", json_object_get(r, "result"));
    } else {
        json_object_set(line, "kind", json_object_get(r, "kind"));
        json_object_set(line, "detail", json_object_get(r, "detail"));
    }
    static const char *const extra[] = { "stats", "stderr" };
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(r, extra[i]);
        if (v != NULL)
            json_object_set(line, extra[i], v);
    }
    json_decref(r);
    return line;
}

/* The values of a stream entry's fields "id" and `name` (f: its field
 * list), each NULL if the entry lacks it. */
static void
entry_fields(const redisReply *f, const char *name, const redisReply **id,
             const redisReply **val)
{
    *id = *val = NULL;
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
        if (strcmp(f->element[k]->str, "id") == 0)
            *id = f->element[k + 1];
        else if (strcmp(f->element[k]->str, name) == 0)
            *val = f->element[k + 1];
    }
}

/* Progress entries {"id", "v"}: one line each on stderr, as the daemon's
 * control socket gives them but for the id, a string here. */
static void
show_progress(struct producer *p, const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i], *f = e->element[1];
        const redisReply *id, *v;
        char idjson[64];
        snprintf(p->plast, sizeof(p->plast), "%s", e->element[0]->str);
        entry_fields(f, "v", &id, &v);
        /* A stream id (digits and one '-'); anything else did not come from
         * a host, and is not printed into JSON. */
        if (id == NULL || v == NULL || id->len == 0 || id->len > 48
            || strspn(id->str, "0123456789-") != id->len)
            continue;
        snprintf(idjson, sizeof(idjson), "\"%s\"", id->str);
        ctl_print_progress_json(idjson, v->str, v->len);
    }
}

/* Read the next outcomes from the reply stream (waiting up to BLOCK_MS);
 * calls got(id, record) for each.  Returns how many, or -1 (p->err). */
static int
read_outcomes(struct producer *p,
              int (*got)(void *arg, const char *id, const char *rec, size_t len),
              void *arg)
{
    char block[16];
    /* With --progress, the progress stream first: a job's reports are
     * added before its outcome, so in one read they come first too. */
    const char *argv[] = { "XREAD", "COUNT", READ_COUNT, "BLOCK", block,
                           "STREAMS", p->progress, p->reply, p->plast, p->last };
    const char *plain[] = { "XREAD", "COUNT", READ_COUNT, "BLOCK", block,
                            "STREAMS", p->reply, p->last };
    redisReply *r;
    int n = 0;

    snprintf(block, sizeof(block), "%d", BLOCK_MS);
    r = p->show_progress ? redisCommandArgv(p->rc, 10, argv, NULL)
                         : redisCommandArgv(p->rc, 8, plain, NULL);
    if (r == NULL) {
        snprintf(p->err, sizeof(p->err), "Redis at %s: %s", p->t->url,
                 p->rc->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(p->err, sizeof(p->err), "reading outcomes: %s", r->str);
        freeReplyObject(r);
        return -1;
    }
    /* A full batch of reports may have more behind it: the outcomes read
     * with it wait for the next read (p->last stays), so that a job's
     * reports all come before its outcome. */
    int more_progress = 0;
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
        redisReply *entries = r->element[s]->element[1];
        if (strcmp(r->element[s]->element[0]->str, p->progress) == 0) {
            show_progress(p, entries);
            more_progress = entries->elements >= (size_t)atoi(READ_COUNT);
            continue;
        }
        if (more_progress)
            continue;
        for (size_t i = 0; i < entries->elements; i++) {
            redisReply *e = entries->element[i], *f = e->element[1];
            const redisReply *id, *o;
            snprintf(p->last, sizeof(p->last), "%s", e->element[0]->str);
            entry_fields(f, "o", &id, &o);
            if (id == NULL || o == NULL)
                continue;
            if (got(arg, id->str, o->str, o->len) < 0) {
                freeReplyObject(r);
                return -1;
            }
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}

/* The recorded outcome of job id, if there is one (an idempotent repeat of
 * a job that already ended).  Returns 1 and *line, 0 if none yet, -1. */
static int
recorded_outcome(struct producer *p, const char *id, json_t **line)
{
    char err[256];
    redisReply *r = redisCommand(p->rc, "HGET fp:{%s}:out:%s o", p->t->queue, id);

    if (r == NULL) {
        snprintf(p->err, sizeof(p->err), "Redis at %s: %s", p->t->url,
                 p->rc->errstr);
        return -1;
    }
    int found = r->type == REDIS_REPLY_STRING;
    if (found && (*line = outcome_line(r->str, r->len, -1, err, sizeof(err))) == NULL) {
        snprintf(p->err, sizeof(p->err), "job %s: %s", id, err);
        found = -1;
    }
    freeReplyObject(r);
    return found;
}

static void
drop_reply_stream(struct producer *p)
{
    if (p->rc != NULL && p->rc->err == 0)
        freeReplyObject(redisCommand(p->rc, "DEL %s %s", p->reply, p->progress));
}

static int
finish(struct producer *p, int rc)
{
    if (rc == CTL_EXIT_NODAEMON || (rc != CTL_EXIT_OK && p->err[0] != '\0'))
        fprintf(stderr, "forkpoolctl: %s\n", p->err);
    drop_reply_stream(p);
    if (p->rc != NULL)
        redisFree(p->rc);
    return rc;
}

/* ---- submit --------------------------------------------------------------- */

struct one {
    const char *id;
    json_t     *line;
};

static int
got_one(void *arg, const char *id, const char *rec, size_t len)
{
    struct one *w = arg;
    char err[256];

    if (strcmp(id, w->id) != 0 || w->line != NULL)
        return 0;
    w->line = outcome_line(rec, len, -1, err, sizeof(err));
    return 0;
}

static int
print_line(json_t *line)
{
    int ok = json_is_true(json_object_get(line, "ok"));
    int rc = ctl_print_json(stdout, line) < 0 ? CTL_EXIT_FAIL
             : ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    json_decref(line);
    return rc;
}

int
ctl_redis_submit(const struct ctl_redis_target *t, const char *job, size_t joblen,
                 const struct ctl_jobopts *o, const char *idem_key)
{
    struct producer p = { .t = t, .show_progress = o->progress };
    struct fp_buf opts = FP_BUF_INIT;
    char id[48];
    int fresh = 1, rc;

    name_reply_stream(&p);
    if (connect_redis(&p) < 0 || ensure_functions(&p) < 0)
        return finish(&p, CTL_EXIT_NODAEMON);
    pack_opts(&opts, o);
    if (append_submit(&p, job, joblen, &opts, idem_key) < 0) {
        snprintf(p.err, sizeof(p.err), "out of memory");
        fp_buf_free(&opts);
        return finish(&p, CTL_EXIT_FAIL);
    }
    rc = take_submitted(&p, id, sizeof(id), &fresh);
    fp_buf_free(&opts);
    if (rc != 0)
        return finish(&p, p.rc->err != 0 ? CTL_EXIT_NODAEMON : CTL_EXIT_FAIL);
    if (o->ids)
        fprintf(stderr, "{\"id\": \"%s\"}\n", id);

    struct one w = { .id = id };
    int64_t deadline = t->rpc_timeout > 0
                       ? ctl_now_ms() + (int64_t)(t->rpc_timeout * 1000) : 0;
    while (w.line == NULL) {
        /* A repeat of an idempotency key may name a job that has ended,
         * or that reports to another producer's stream: look at its
         * record too. */
        if (!fresh && recorded_outcome(&p, id, &w.line) != 0)
            break;
        if (read_outcomes(&p, got_one, &w) < 0)
            return finish(&p, CTL_EXIT_NODAEMON);
        if (deadline != 0 && ctl_now_ms() >= deadline && w.line == NULL) {
            snprintf(p.err, sizeof(p.err), "no outcome for job %s within "
                     "--rpc-timeout", id);
            return finish(&p, CTL_EXIT_NODAEMON);
        }
    }
    if (w.line == NULL)
        return finish(&p, CTL_EXIT_FAIL);
    p.err[0] = '\0';
    return finish(&p, print_line(w.line));
}

/* ---- map ------------------------------------------------------------------- */

struct mapping {
    struct producer *p;
    json_t   *pending;      /* id -> index of jobs in flight */
    json_t  **held;         /* --keep-order: lines waiting for earlier ones */
    size_t    nheld_cap;
    long long next_print;   /* --keep-order: the next index to print */
    size_t    inflight;
    int       any_failed;
    int       keep_order;
};

static int
emit(struct mapping *m, long long index, json_t *line)
{
    if (!json_is_true(json_object_get(line, "ok")))
        m->any_failed = 1;
    if (!m->keep_order) {
        int rc = ctl_print_json(stdout, line);
        json_decref(line);
        return rc < 0 ? -1 : 0;
    }
    if ((size_t)index >= m->nheld_cap) {
        size_t cap = m->nheld_cap ? m->nheld_cap * 2 : 1024;
        while (cap <= (size_t)index)
            cap *= 2;
        json_t **h = realloc(m->held, cap * sizeof(*h));
        if (h == NULL)
            return -1;
        memset(h + m->nheld_cap, 0, (cap - m->nheld_cap) * sizeof(*h));
        m->held = h;
        m->nheld_cap = cap;
    }
    m->held[index] = line;
    while ((size_t)m->next_print < m->nheld_cap && m->held[m->next_print] != NULL) {
        int rc = ctl_print_json(stdout, m->held[m->next_print]);
        json_decref(m->held[m->next_print]);
        m->held[m->next_print++] = NULL;
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int
got_mapped(void *arg, const char *id, const char *rec, size_t len)
{
    struct mapping *m = arg;
    json_t *idx = json_object_get(m->pending, id);
    char err[256];

    if (idx == NULL)
        return 0;               /* not ours, or a repeat */
    long long index = json_integer_value(idx);
    json_object_del(m->pending, id);
    m->inflight--;
    json_t *line = outcome_line(rec, len, index, err, sizeof(err));
    if (line == NULL) {
        snprintf(m->p->err, sizeof(m->p->err), "job %s: %s", id, err);
        return -1;
    }
    return emit(m, index, line);
}

/* A line that is answered here, never sent (bad JSON). */
static int
reject_line(struct mapping *m, long long index, const char *why)
{
    json_t *line = json_pack("{s:n, s:I, s:b, s:s, s:s}", "id", "index",
                             (json_int_t)index, "ok", 0, "kind", "rejected",
                             "detail", why);
    return line != NULL ? emit(m, index, line) : -1;
}

int
ctl_redis_map(const struct ctl_redis_target *t, const struct ctl_map_opts *mo)
{
    struct producer p = { .t = t, .show_progress = mo->job.progress };
    struct mapping m = { .p = &p, .keep_order = mo->keep_order };
    struct fp_buf opts = FP_BUF_INIT, job = FP_BUF_INIT;
    char *line = NULL, err[512];
    size_t cap = 0;
    long long index = 0;
    long long batch_index[BATCH_LINES];
    int eof = 0, stop = 0, rc = CTL_EXIT_OK;
    msgpack_packer pk;

    name_reply_stream(&p);
    if (connect_redis(&p) < 0 || ensure_functions(&p) < 0)
        return finish(&p, CTL_EXIT_NODAEMON);
    m.pending = json_object();
    pack_opts(&opts, &mo->job);
    msgpack_packer_init(&pk, &job, fp_buf_pack_write);

    while (!eof || m.inflight > 0) {
        /* Submit a batch of lines while the window has room. */
        int nbatch = 0;
        while (!eof && !stop && nbatch < BATCH_LINES
               && m.inflight + (size_t)nbatch < mo->window) {
            ssize_t n = getline(&line, &cap, stdin);
            if (n < 0) {
                eof = 1;
                break;
            }
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (strspn(line, " \t") == (size_t)n)
                continue;       /* blank lines are not jobs */
            fp_buf_clear(&job);
            if (fp_json_text_pack(line, (size_t)n, &pk, err, sizeof(err)) < 0) {
                char why[600];
                snprintf(why, sizeof(why), "malformed: %s", err);
                if (reject_line(&m, index++, why) < 0)
                    goto io_error;
                continue;
            }
            if (append_submit(&p, fp_buf_head(&job), job.len, &opts, NULL) < 0)
                goto io_error;
            batch_index[nbatch++] = index++;
        }
        if (eof)
            stop = 1;
        for (int i = 0; i < nbatch; i++) {
            char id[48];
            int fresh;
            if (take_submitted(&p, id, sizeof(id), &fresh) != 0) {
                rc = p.rc->err != 0 ? CTL_EXIT_NODAEMON : CTL_EXIT_FAIL;
                goto out;
            }
            json_object_set_new(m.pending, id, json_integer(batch_index[i]));
            m.inflight++;
        }
        if (eof && m.inflight == 0)
            break;
        /* Collect what has finished (waiting only when the window is full
         * or the input is done). */
        if (m.inflight >= mo->window || eof || nbatch == 0) {
            if (read_outcomes(&p, got_mapped, &m) < 0) {
                rc = CTL_EXIT_NODAEMON;
                goto out;
            }
        }
        if (mo->fail_fast && m.any_failed)
            eof = stop = 1;
    }
    rc = m.any_failed ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    p.err[0] = '\0';
    goto out;
io_error:
    snprintf(p.err, sizeof(p.err), "%s", errno == EPIPE ? "stdout closed"
             : "out of memory");
    rc = CTL_EXIT_FAIL;
out:
    free(line);
    fp_buf_free(&opts);
    fp_buf_free(&job);
    json_decref(m.pending);
    for (size_t i = 0; i < m.nheld_cap; i++)
        json_decref(m.held[i]);
    free(m.held);
    return finish(&p, rc);
}
