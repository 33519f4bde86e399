/*
 * redis_source.c — a daemon's share of a Redis queue (redis_source.h).
 *
 * Two connections: `conn` for every short command (join, claim, renew,
 * record, hand back) and `reader` for the one blocking XREADGROUP, which
 * would otherwise hold the short ones up behind it.
 *
 * Each claimed job is a `lease` on the `held` list from its claim until
 * its outcome is recorded or its lease is found lost:
 *
 *   RUNNING     in the pool (queued or running); `job` is its local id
 *   UNRECORDED  its outcome is packed in `record`, waiting for Redis
 *   RECORDING   fp_record is in flight
 *
 * `lost` marks a lease another host now holds (fp_renew said so): its job
 * is cancelled here if it still runs, and its outcome is never sent.
 *
 * Everything that can change what to do next (a reply, a timer, a job's
 * end, a connection coming up) ends in pump(), which claims what the pool
 * has room for; nothing else decides that.
 */
#include "config.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include <msgpack.h>

#include "codec/frame.h"
#include "codec/wire.h"
#include "engine/log.h"
#include "redis_conn.h"
#include "redis_functions.h"
#include "redis_source.h"

#define READ_BLOCK_MS    1000   /* one XREADGROUP waits this long at most */
#define COMMAND_TIMEOUT  5.0    /* seconds, beyond a command's own block */
#define BACKOFF_MIN      0.1
#define BACKOFF_MAX      5.0
#define REPLY_MAXLEN     "10000"/* entries kept in a reply stream (about) */
#define SHORT_JOB_S      0.002  /* jobs shorter than this get prefetch */
#define HANDED_BACK      "handed back to the queue"
#define CLAIM_EVERY_MAX  0.5    /* seconds between looks for lapsed leases */

enum lease_state { L_RUNNING, L_UNRECORDED, L_RECORDING };

struct lease {
    TAILQ_ENTRY(lease)      link;
    struct fp_redis_source *s;
    char                    id[48];     /* its stream entry id */
    unsigned                deliveries; /* the fencing token */
    char                   *reply;      /* its producer's reply stream */
    char                   *progress;   /* its producer's progress stream,
                                           if the job asked for progress */
    uint64_t                job;        /* RUNNING: its id in the pool */
    enum lease_state        state;
    int                     lost;
    int                     dead;       /* record to the dead letters too */
    char                   *record;     /* the packed outcome */
    size_t                  record_len;
};

struct fp_redis_source {
    struct ev_loop             *loop;
    fp_pool                    *pool;
    const struct fp_logger     *log;
    struct fp_redis_source_cfg  cfg;
    char                        url_text[512];
    char                        queue[256];
    char                        k_jobs[300], k_dead[300];
    char                        consumer[128];
    char                        lease_ms[24], retention_s[24];
    struct fp_redis_conn       *conn, *reader;
    fp_group                   *group;
    int                         joined;     /* fp_join answered on `conn` */
    int                         reading, claiming, renewing;
    char                        claim_cursor[48];
    TAILQ_HEAD(, lease)         held;
    struct fp_redis_source_stats st;
    ev_timer                    claim_timer, renew_timer;
    ev_prepare                  record_prep;    /* sends this iteration's
                                                   outcomes together */
    int                         draining;
    int                         closing;    /* being freed: the pool may be
                                               gone, claim nothing */
    void                      (*drained)(void *);
    void                       *drained_arg;
    msgpack_sbuffer             sb;
    msgpack_packer              pk;
};

static void pump(struct fp_redis_source *s);
static void send_record(struct lease *l);
static size_t send_records(struct fp_redis_source *s);
static void schedule_records(struct fp_redis_source *s);

/* ------------------------------------------------------------------------
 * Leases
 * ------------------------------------------------------------------------ */

static struct lease *
lease_new(struct fp_redis_source *s, const char *id, size_t idlen,
          unsigned deliveries)
{
    struct lease *l = calloc(1, sizeof(*l));

    if (l == NULL || idlen >= sizeof(l->id)) {
        free(l);
        return NULL;
    }
    l->s = s;
    memcpy(l->id, id, idlen);
    l->deliveries = deliveries;
    TAILQ_INSERT_TAIL(&s->held, l, link);
    s->st.leased++;
    return l;
}

static void
lease_free(struct lease *l)
{
    struct fp_redis_source *s = l->s;

    TAILQ_REMOVE(&s->held, l, link);
    s->st.leased--;
    free(l->reply);
    free(l->progress);
    free(l->record);
    free(l);
    if (s->draining && TAILQ_EMPTY(&s->held) && s->drained != NULL) {
        void (*done)(void *) = s->drained;
        s->drained = NULL;
        done(s->drained_arg);
    }
}

/* ------------------------------------------------------------------------
 * Outcome records (forkpool-protocol(7), "Outcome record")
 * ------------------------------------------------------------------------ */

static void
pack_str(msgpack_packer *pk, const char *str)
{
    size_t n = strlen(str);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, str, n);
}

/* Pack the record of an outcome into l->record; 0 or -1 (no memory). */
static int
pack_record(struct lease *l, fp_kind kind, const char *data, size_t len,
            const fp_outcome *o)
{
    struct fp_redis_source *s = l->s;
    msgpack_packer *pk = &s->pk;
    int with_stats = kind != FP_REJECTED && o != NULL;
    int with_stderr = o != NULL && o->stderr_len > 0;

    msgpack_sbuffer_clear(&s->sb);
    msgpack_pack_map(pk, 6 + with_stats + with_stderr);
    pack_str(pk, "id");
    pack_str(pk, l->id);
    pack_str(pk, "ok");
    if (kind == FP_OK) msgpack_pack_true(pk); else msgpack_pack_false(pk);
    pack_str(pk, "kind");
    pack_str(pk, fp_kind_name(kind));
    pack_str(pk, kind == FP_OK ? "result" : "detail");
    if (msgpack_sbuffer_write(&s->sb, data, len) != 0)  /* one packed value */
        return -1;
    if (with_stats) {
        pack_str(pk, "stats");
        msgpack_pack_map(pk, 5);
        pack_str(pk, "wait_ms");   msgpack_pack_double(pk, o->stats.wait_ms);
        pack_str(pk, "run_ms");    msgpack_pack_double(pk, o->stats.run_ms);
        pack_str(pk, "cpu_ms");    msgpack_pack_double(pk, o->stats.cpu_ms);
        pack_str(pk, "maxrss_kb"); msgpack_pack_uint64(pk, o->stats.maxrss_kb);
        pack_str(pk, "attempts");  msgpack_pack_unsigned_int(pk, o->attempts);
    }
    if (with_stderr) {
        pack_str(pk, "stderr");
        msgpack_pack_str(pk, o->stderr_len);
        msgpack_pack_str_body(pk, o->stderr_tail, o->stderr_len);
    }
    pack_str(pk, "host");
    pack_str(pk, s->consumer);
    pack_str(pk, "deliveries");
    msgpack_pack_unsigned_int(pk, l->deliveries);
    if (s->sb.data == NULL)
        return -1;
    free(l->record);
    l->record = malloc(s->sb.size);
    if (l->record == NULL)
        return -1;
    memcpy(l->record, s->sb.data, s->sb.size);
    l->record_len = s->sb.size;
    return 0;
}

/* An outcome this host makes itself (rejected, dead-lettered): a string
 * detail. */
static int
pack_record_str(struct lease *l, fp_kind kind, const char *detail)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_str(&pk, detail);
    rc = sb.data != NULL ? pack_record(l, kind, sb.data, sb.size, NULL) : -1;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ------------------------------------------------------------------------
 * Talking to Redis
 * ------------------------------------------------------------------------ */

/* Outcomes go to Redis in batches: every outcome that ends in one loop
 * iteration waits for the prepare watcher, which sends them in as few
 * fp_record_many calls as RECORD_BATCH allows. */
#define RECORD_BATCH 256

struct record_batch {
    struct fp_redis_source *s;
    size_t                  n;
    struct lease           *l[];
};

static void
record_many_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct record_batch *b = arg;
    struct fp_redis_source *s = b->s;
    int answered = r != NULL && r->type == REDIS_REPLY_ARRAY
                   && r->elements == b->n;
    (void)c;

    if (!answered && r != NULL)
        fp_logf(s->log, FP_LOG_WARN, "redis: recording %zu outcome%s: %s",
                b->n, b->n == 1 ? "" : "s",
                r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    for (size_t i = 0; i < b->n; i++) {
        struct lease *l = b->l[i];
        if (!answered) {
            /* No answer: recorded or not, the retry tells (fp_record
             * answers 1 again for its own record). */
            l->state = L_UNRECORDED;
            continue;
        }
        if (r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1) {
            s->st.recorded++;
        } else {
            s->st.lost_leases++;
            fp_logf(s->log, FP_LOG_WARN, "redis: job %s: its lease had lapsed "
                    "(another host has it); this outcome is not recorded", l->id);
        }
        lease_free(l);
    }
    free(b);
    pump(s);
}

/* Send up to RECORD_BATCH waiting outcomes in one call; returns how many
 * went (0: none waiting, or Redis is not there). */
static size_t
send_records(struct fp_redis_source *s)
{
    struct lease *l;
    size_t n = 0;

    if (s->closing || !fp_redis_conn_up(s->conn) || !s->joined)
        return 0;
    TAILQ_FOREACH(l, &s->held, link)
        if (l->state == L_UNRECORDED && !l->lost && ++n == RECORD_BATCH)
            break;
    if (n == 0)
        return 0;

    struct record_batch *b = malloc(sizeof(*b) + n * sizeof(b->l[0]));
    size_t argc = 5 + 2 * n + 3 + 4 * n, k = 0;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    char (*outs)[400] = malloc(n * sizeof(*outs));
    char (*nums)[16] = malloc(n * sizeof(*nums));
    char numkeys[16];
    if (b == NULL || argv == NULL || lens == NULL || outs == NULL || nums == NULL) {
        free(b); free(argv); free(lens); free(outs); free(nums);
        return 0;               /* tried again on the next beat */
    }
    b->s = s;
    b->n = 0;
    TAILQ_FOREACH(l, &s->held, link)
        if (l->state == L_UNRECORDED && !l->lost && b->n < n)
            b->l[b->n++] = l;

#define ARG(str, len) (argv[k] = (str), lens[k++] = (len))
#define SARG(str)     ARG(str, strlen(str))
    snprintf(numkeys, sizeof(numkeys), "%zu", 2 + 2 * n);
    SARG("FCALL"); SARG("fp_record_many"); SARG(numkeys);
    SARG(s->k_jobs); SARG(s->k_dead);
    for (size_t i = 0; i < n; i++) {
        l = b->l[i];
        snprintf(outs[i], sizeof(outs[i]), "fp:{%s}:out:%s", s->queue, l->id);
        SARG(outs[i]);
        SARG(l->reply != NULL ? l->reply : outs[i]);
    }
    SARG(s->consumer); SARG(s->retention_s); SARG(REPLY_MAXLEN);
    for (size_t i = 0; i < n; i++) {
        l = b->l[i];
        snprintf(nums[i], sizeof(nums[i]), "%u", l->deliveries);
        SARG(l->id); SARG(nums[i]);
        ARG(l->record, l->record_len);
        SARG(l->reply != NULL ? (l->dead ? "rd" : "r") : (l->dead ? "d" : "-"));
    }
#undef ARG
#undef SARG
    int sent = fp_redis_command(s->conn, record_many_cb, b, 0, (int)k, argv,
                                lens) == 0;
    free(argv); free(lens); free(outs); free(nums);
    if (!sent) {
        free(b);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        b->l[i]->state = L_RECORDING;
    return n;
}

static void
record_prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct fp_redis_source *s = w->data;
    (void)revents;

    ev_prepare_stop(loop, w);
    while (send_records(s) == RECORD_BATCH)
        ;
}

/* Send what waits with this iteration's batch. */
static void
schedule_records(struct fp_redis_source *s)
{
    if (!s->closing && !ev_is_active(&s->record_prep))
        ev_prepare_start(s->loop, &s->record_prep);
}

/* l's outcome is ready. */
static void
send_record(struct lease *l)
{
    l->state = L_UNRECORDED;
    schedule_records(l->s);
}

static void
handback_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    (void)c; (void)r; (void)arg;
    /* Nothing to do either way: a job not handed back lapses like any
     * lease and goes to another host. */
}

/* Give l back to the queue (it has not started here) and forget it. */
static void
hand_back(struct lease *l)
{
    struct fp_redis_source *s = l->s;
    char deliveries[16];

    snprintf(deliveries, sizeof(deliveries), "%u", l->deliveries);
    const char *argv[] = { "FCALL", "fp_handback", "1", s->k_jobs,
                           s->consumer, l->id, deliveries };
    if (s->conn != NULL)
        fp_redis_command(s->conn, handback_cb, NULL, 0, 7, argv, NULL);
    s->st.handed_back++;
    lease_free(l);
}

/* ------------------------------------------------------------------------
 * Jobs into the pool
 * ------------------------------------------------------------------------ */

static void
job_done(const fp_outcome *o, void *arg)
{
    struct lease *l = arg;
    struct fp_redis_source *s = l->s;

    if (l->lost) {
        s->st.lost_leases++;
        lease_free(l);
        pump(s);
        return;
    }
    if (s->draining && o->kind == FP_CANCELLED && o->attempts == 0) {
        hand_back(l);           /* fp_redis_source_drain took it back */
        return;
    }
    if (pack_record(l, o->kind, o->data, o->len, o) < 0) {
        fp_logf(s->log, FP_LOG_ERR, "redis: job %s: no memory for its "
                "outcome; it will run again elsewhere", l->id);
        lease_free(l);
        return;
    }
    send_record(l);
    pump(s);
}

/* field `name` of a stream entry's [f, v, f, v ...], or NULL. */
static const redisReply *
field(const redisReply *fields, const char *name)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING
            && strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

static void
reject(struct lease *l, const char *why)
{
    if (pack_record_str(l, FP_REJECTED, why) < 0) {
        lease_free(l);
        return;
    }
    send_record(l);
}

/* The producer's progress stream beside its reply stream: fp:{Q}:reply:C
 * -> fp:{Q}:progress:C (forkpool-protocol(7)); NULL if reply is not named
 * so, or no memory. */
static char *
progress_stream_of(const char *reply)
{
    const char *at = strstr(reply, "}:reply:");
    char *k;

    if (strncmp(reply, "fp:{", 4) != 0 || at == NULL)
        return NULL;
    /* "fp:{Q}" + ":progress:" + C */
    int head = (int)(at - reply) + 1;
    size_t size = (size_t)head + strlen(":progress:") + strlen(at + 8) + 1;
    if ((k = malloc(size)) == NULL)
        return NULL;
    snprintf(k, size, "%.*s:progress:%s", head, reply, at + 8);
    return k;
}

static void
progress_sent(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct fp_redis_source *s = arg;
    (void)c;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        fp_logf(s->log, FP_LOG_DEBUG, "redis: a progress report: %s", r->str);
}

/* A job's progress report, for a producer that asked ("progress": true in
 * the job's options): an entry {"id", "v"} on its progress stream, capped
 * like the reply stream and expiring with it.  Best effort, as progress is
 * on a control connection: a report while Redis is down is dropped. */
static void
job_progress(uint64_t job, const char *value, size_t len, void *arg)
{
    struct lease *l = arg;
    struct fp_redis_source *s = l->s;
    const char *xadd[] = { "XADD", l->progress, "MAXLEN", "~", REPLY_MAXLEN,
                           "*", "id", l->id, "v", value };
    size_t lens[10];
    (void)job;

    if (!fp_redis_conn_up(s->conn))
        return;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(xadd[i]);
    lens[9] = len;
    if (fp_redis_command(s->conn, progress_sent, s, 0, 10, xadd, lens) < 0)
        return;
    /* Every time, as fp_record does for the reply stream: the producer
     * deletes its streams when it leaves, and a report after that makes
     * the stream anew. */
    const char *expire[] = { "EXPIRE", l->progress, s->retention_s };
    (void)fp_redis_command(s->conn, progress_sent, s, 0, 3, expire, NULL);
}

/* A job just claimed: run it here, or record why not. */
static void
accept_entry(struct fp_redis_source *s, const redisReply *id,
             unsigned deliveries, const redisReply *fields)
{
    if (id == NULL || id->type != REDIS_REPLY_STRING)
        return;
    struct lease *l = lease_new(s, id->str, id->len, deliveries);
    if (l == NULL) {
        fp_logf(s->log, FP_LOG_ERR, "redis: no memory for job %s", id->str);
        return;
    }
    s->st.claimed++;
    if (s->draining) {
        hand_back(l);
        return;
    }
    const redisReply *reply = field(fields, "r");
    if (reply != NULL && reply->type == REDIS_REPLY_STRING)
        l->reply = strndup(reply->str, reply->len);

    if (deliveries > s->cfg.max_deliveries) {
        char why[64];
        snprintf(why, sizeof(why), "lost %u hosts", deliveries - 1);
        fp_logf(s->log, FP_LOG_WARN, "redis: job %s: %s; dead-lettered",
                l->id, why);
        l->dead = 1;
        s->st.dead_lettered++;
        if (pack_record_str(l, FP_CRASHED, why) < 0) {
            lease_free(l);
            return;
        }
        send_record(l);
        return;
    }

    const redisReply *payload = field(fields, "p");
    if (payload == NULL || payload->type != REDIS_REPLY_STRING) {
        reject(l, "malformed job: no payload field 'p'");
        return;
    }
    fp_job_opts opts = { .timeout = -1, .group = s->group };
    char key[FP_MAX_KEY_BYTES + 1];
    const redisReply *o = field(fields, "o");
    if (o != NULL && o->type == REDIS_REPLY_STRING && o->len > 0) {
        struct fp_reader r;
        struct fp_wire_submit_flags flags;     /* no client to notify */
        const char *why;
        fp_reader_init(&r, o->str, o->len);
        if ((why = fp_wire_job_opts(&r, &opts, &flags, key)) != NULL) {
            reject(l, why);
            return;
        }
        opts.group = s->group;
        if (flags.progress && l->reply != NULL
            && (l->progress = progress_stream_of(l->reply)) != NULL) {
            opts.progress = job_progress;
            opts.progress_arg = l;
        }
    }
    const char *reason = NULL;
    if (fp_pool_submit(s->pool, payload->str, payload->len, &opts, job_done, l,
                       &l->job, &reason) != 0) {
        if (reason != NULL && (strcmp(reason, "queue full") == 0
                               || strcmp(reason, "draining") == 0)) {
            hand_back(l);       /* no room here: another host's turn */
            return;
        }
        reject(l, reason != NULL ? reason : "rejected");
        return;
    }
    l->state = L_RUNNING;
}

/* ------------------------------------------------------------------------
 * Claiming: new jobs (XREADGROUP) and lapsed ones (fp_claim)
 * ------------------------------------------------------------------------ */

/* How many more jobs the pool has room for: its live workers, plus a
 * prefetch while jobs are measured short (a few ms of work queued per
 * worker at most), less what it holds already. */
static unsigned
room(const struct fp_redis_source *s)
{
    fp_stats st;
    uint64_t n = 0;
    double mean;

    fp_pool_stats(s->pool, &st);
    if (st.draining || s->draining)
        return 0;
    for (unsigned i = 0; i < FP_LATENCY_BUCKETS; i++)
        n += st.latency_count[i];
    unsigned cap = st.live;
    if (n > 0 && (mean = st.latency_sum / (double)n) < SHORT_JOB_S) {
        double per = mean > 0 ? SHORT_JOB_S / mean : s->cfg.prefetch;
        if (per > s->cfg.prefetch)
            per = s->cfg.prefetch;
        cap += (unsigned)(per * st.live);
    }
    uint64_t inside = st.busy + st.queued;
    return cap > inside ? (unsigned)(cap - inside) : 0;
}

static void
read_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct fp_redis_source *s = arg;
    (void)c;

    s->reading = 0;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0)
            s->joined = 0;      /* Redis lost its data: join again */
        else
            fp_logf(s->log, FP_LOG_WARN, "redis: reading jobs: %s", r->str);
    } else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            accept_entry(s, e->element[0], 1, e->element[1]);
        }
    }
    pump(s);
}

static void
claim_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct fp_redis_source *s = arg;
    (void)c;

    s->claiming = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1
        && r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(s->claim_cursor, sizeof(s->claim_cursor), "%s",
                 r->element[0]->str);
        for (size_t i = 1; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
                continue;
            /* {id, deliveries, field, value, ...}: the fields from 2 on. */
            redisReply fields = { .type = REDIS_REPLY_ARRAY,
                                  .elements = e->elements - 2,
                                  .element = e->element + 2 };
            accept_entry(s, e->element[0], (unsigned)e->element[1]->integer,
                         &fields);
        }
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        fp_logf(s->log, FP_LOG_WARN, "redis: claiming lapsed jobs: %s", r->str);
        if (strncmp(r->str, "NOGROUP", 7) == 0 || strstr(r->str, "NOGROUP"))
            s->joined = 0;
    }
    pump(s);
}

static void
claim_lapsed(struct fp_redis_source *s, unsigned want)
{
    char count[16];

    snprintf(count, sizeof(count), "%u", want);
    const char *argv[] = { "FCALL", "fp_claim", "1", s->k_jobs, s->consumer,
                           s->lease_ms, count, s->claim_cursor };
    if (fp_redis_command(s->conn, claim_cb, s, 0, 8, argv, NULL) == 0)
        s->claiming = 1;
}

static void
join_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct fp_redis_source *s = arg;
    (void)c;

    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        if (r != NULL)
            fp_logf(s->log, FP_LOG_ERR, "redis: joining queue '%s': %s",
                    s->queue, r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        return;
    }
    s->joined = 1;
    /* What finished while Redis was away is recorded now (each subject to
     * its lease check). */
    schedule_records(s);
    pump(s);
}

static void
join(struct fp_redis_source *s)
{
    const char *argv[] = { "FCALL", "fp_join", "1", s->k_jobs };
    fp_redis_command(s->conn, join_cb, s, 0, 4, argv, NULL);
}

/* Decide what to ask Redis for next. */
static void
pump(struct fp_redis_source *s)
{
    if (s->closing || s->conn == NULL || !fp_redis_conn_up(s->conn))
        return;
    if (!s->joined) {
        return;                 /* join_cb pumps */
    }
    unsigned want = room(s);
    if (want == 0 || s->reading)
        return;
    if (fp_redis_conn_up(s->reader)) {
        char count[16], block[16];
        snprintf(count, sizeof(count), "%u", want);
        snprintf(block, sizeof(block), "%d", READ_BLOCK_MS);
        const char *argv[] = { "XREADGROUP", "GROUP", FP_REDIS_GROUP,
                               s->consumer, "COUNT", count, "BLOCK", block,
                               "STREAMS", s->k_jobs, ">" };
        if (fp_redis_command(s->reader, read_cb, s, READ_BLOCK_MS / 1000.0,
                             11, argv, NULL) == 0)
            s->reading = 1;
    }
}

static void
claim_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_redis_source *s = tw->data;
    unsigned want;
    (void)loop; (void)revents;

    if (!s->joined && fp_redis_conn_up(s->conn))
        join(s);
    if (s->joined && !s->claiming && (want = room(s)) > 0)
        claim_lapsed(s, want);
    pump(s);
}

/* ------------------------------------------------------------------------
 * Renewing leases
 * ------------------------------------------------------------------------ */

static void
renew_cb(struct fp_redis_conn *c, redisReply *r, void *arg)
{
    struct fp_redis_source *s = arg;
    (void)c;

    s->renewing = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *id = r->element[i];
        struct lease *l;
        if (id->type != REDIS_REPLY_STRING)
            continue;
        TAILQ_FOREACH(l, &s->held, link)
            if (strcmp(l->id, id->str) == 0)
                break;
        if (l == NULL || l->lost)
            continue;
        l->lost = 1;
        fp_logf(s->log, FP_LOG_WARN, "redis: lost the lease of job %s "
                "(another host has it)%s", l->id,
                l->state == L_RUNNING ? "; cancelling it here" : "");
        if (l->state == L_RUNNING) {
            fp_pool_cancel(s->pool, l->job);    /* job_done frees it */
        } else if (l->state == L_UNRECORDED) {
            s->st.lost_leases++;
            lease_free(l);
        }
        /* L_RECORDING: record_cb learns it from fp_record's answer. */
    }
    pump(s);
}

static void
renew_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_redis_source *s = tw->data;
    struct lease *l;
    size_t n = 0, i;
    (void)loop; (void)revents;

    if (s->renewing || !s->joined || !fp_redis_conn_up(s->conn))
        return;
    TAILQ_FOREACH(l, &s->held, link)
        if (!l->lost)
            n++;
    if (n == 0)
        return;
    const char **argv = calloc(5 + 2 * n, sizeof(*argv));
    char (*counts)[16] = calloc(n, sizeof(*counts));
    if (argv == NULL || counts == NULL) {
        free(argv);
        free(counts);
        return;
    }
    argv[0] = "FCALL"; argv[1] = "fp_renew"; argv[2] = "1";
    argv[3] = s->k_jobs; argv[4] = s->consumer;
    i = 0;
    TAILQ_FOREACH(l, &s->held, link) {
        if (l->lost)
            continue;
        snprintf(counts[i], sizeof(counts[i]), "%u", l->deliveries);
        argv[5 + 2 * i] = l->id;
        argv[6 + 2 * i] = counts[i];
        i++;
    }
    if (fp_redis_command(s->conn, renew_cb, s, 0, (int)(5 + 2 * n), argv,
                         NULL) == 0)
        s->renewing = 1;
    free(argv);
    free(counts);
    /* Outcomes whose recording failed are sent again on this beat. */
    schedule_records(s);
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void
conn_state(struct fp_redis_conn *c, int up, const char *why, void *arg)
{
    struct fp_redis_source *s = arg;

    if (c == s->conn) {
        s->joined = 0;
        s->claiming = s->renewing = 0;
        s->st.connected = up;
        if (up) {
            fp_logf(s->log, FP_LOG_INFO, "redis: connected to %s, queue '%s' "
                    "as consumer %s", s->url_text, s->queue, s->consumer);
            join(s);
        } else {
            fp_logf(s->log, FP_LOG_WARN, "redis: %s: %s; local jobs go on, "
                    "retrying", s->url_text, why);
        }
    } else if (up) {
        pump(s);
    }
}

static struct fp_redis_conn *
open_conn(struct fp_redis_source *s, const char *name, int functions)
{
    struct fp_redis_conn_cfg cc = {
        .url = s->cfg.url, .name = name, .timeout = COMMAND_TIMEOUT,
        .backoff_min = BACKOFF_MIN, .backoff_max = BACKOFF_MAX,
        .load_functions = functions, .on_state = conn_state, .arg = s,
    };
    return fp_redis_conn_new(s->loop, &cc);
}

struct fp_redis_source *
fp_redis_source_new(struct ev_loop *loop, fp_pool *pool,
                    const struct fp_redis_source_cfg *cfg,
                    const struct fp_logger *log)
{
    struct fp_redis_source *s = calloc(1, sizeof(*s));
    char host[64];
    struct timespec ts;

    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->pool = pool;
    s->log = log;
    s->cfg = *cfg;
    snprintf(s->url_text, sizeof(s->url_text), "%s", cfg->url_text);
    snprintf(s->queue, sizeof(s->queue), "%s",
             cfg->queue != NULL ? cfg->queue : FP_REDIS_DEFAULT_QUEUE);
    s->cfg.url_text = s->url_text;
    s->cfg.queue = s->queue;
    snprintf(s->k_jobs, sizeof(s->k_jobs), "fp:{%s}:jobs", s->queue);
    snprintf(s->k_dead, sizeof(s->k_dead), "fp:{%s}:dead", s->queue);
    snprintf(s->lease_ms, sizeof(s->lease_ms), "%.0f", cfg->lease * 1000);
    snprintf(s->retention_s, sizeof(s->retention_s), "%.0f", cfg->retention);
    snprintf(s->claim_cursor, sizeof(s->claim_cursor), "0-0");
    /* A consumer name unique per host and boot: host, pid, start time. */
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(s->consumer, sizeof(s->consumer), "%s:%ld:%lx%05lx", host,
             (long)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)(ts.tv_nsec / 10000));
    TAILQ_INIT(&s->held);
    msgpack_sbuffer_init(&s->sb);
    msgpack_packer_init(&s->pk, &s->sb, msgpack_sbuffer_write);
    s->group = fp_group_new(pool);
    /* Lapsed leases are looked for four times per lease, and at least
     * every half second, so a lost host's jobs move on within the lease
     * and a second (SPEC 9); leases are renewed three times per lease, so
     * one late beat costs nothing. */
    double claim_every = cfg->lease / 4;
    if (claim_every > CLAIM_EVERY_MAX)
        claim_every = CLAIM_EVERY_MAX;
    if (claim_every < 0.05)
        claim_every = 0.05;
    ev_timer_init(&s->claim_timer, claim_timer_cb, claim_every, claim_every);
    s->claim_timer.data = s;
    ev_timer_init(&s->renew_timer, renew_timer_cb, cfg->lease / 3, cfg->lease / 3);
    s->renew_timer.data = s;
    ev_prepare_init(&s->record_prep, record_prep_cb);
    s->record_prep.data = s;
    if (s->group == NULL) {
        free(s);
        return NULL;
    }
    s->conn = open_conn(s, "redis", 1);
    s->reader = open_conn(s, "redis reader", 0);
    if (s->conn == NULL || s->reader == NULL) {
        fp_redis_source_free(s);
        return NULL;
    }
    ev_timer_start(loop, &s->claim_timer);     /* a repeating timer */
    ev_timer_start(loop, &s->renew_timer);     /* a repeating timer */
    return s;
}

void
fp_redis_source_free(struct fp_redis_source *s)
{
    struct lease *l;

    if (s == NULL)
        return;
    s->closing = 1;
    ev_timer_stop(s->loop, &s->claim_timer);
    ev_timer_stop(s->loop, &s->renew_timer);
    ev_prepare_stop(s->loop, &s->record_prep);
    s->drained = NULL;
    /* Closing runs the callbacks in flight (with no reply) first. */
    fp_redis_conn_free(s->reader);
    s->reader = NULL;
    fp_redis_conn_free(s->conn);
    s->conn = NULL;
    while ((l = TAILQ_FIRST(&s->held)) != NULL) {
        TAILQ_REMOVE(&s->held, l, link);
        free(l->reply);
        free(l->record);
        free(l);
    }
    fp_group_free(s->group);
    msgpack_sbuffer_destroy(&s->sb);
    free(s);
}

void
fp_redis_source_stats(const struct fp_redis_source *s,
                      struct fp_redis_source_stats *st)
{
    *st = s->st;
}

const char *
fp_redis_source_url(const struct fp_redis_source *s)
{
    return s->url_text;
}

const char *
fp_redis_source_queue(const struct fp_redis_source *s)
{
    return s->queue;
}

void
fp_redis_source_drain(struct fp_redis_source *s, void (*done)(void *),
                      void *arg)
{
    if (!s->draining) {
        s->draining = 1;
        ev_timer_stop(s->loop, &s->claim_timer);
        size_t n = fp_group_cancel_queued(s->group, HANDED_BACK);
        if (n > 0)
            fp_logf(s->log, FP_LOG_INFO, "redis: draining: handing back %zu "
                    "job%s not started", n, n == 1 ? "" : "s");
    }
    s->drained = done;
    s->drained_arg = arg;
    if (TAILQ_EMPTY(&s->held) && done != NULL) {
        s->drained = NULL;
        done(arg);
    }
}

void
fp_redis_source_give_up(struct fp_redis_source *s)
{
    size_t n = 0;
    struct lease *l;

    TAILQ_FOREACH(l, &s->held, link)
        n++;
    if (n > 0)
        fp_logf(s->log, FP_LOG_WARN, "redis: exiting with %zu outcome%s not "
                "recorded; %s will run again on another host once %s lease "
                "lapses", n, n == 1 ? "" : "s", n == 1 ? "its job" : "their jobs",
                n == 1 ? "its" : "their");
    s->drained = NULL;
}
