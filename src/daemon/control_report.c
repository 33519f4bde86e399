/*
 * control_report.c — the bodies of the status and metrics methods, built
 * from figures the caller took from the pool: however many workers and
 * rate limits there are, and without a pool (the tests feed their own).
 */
#include "config.h"
#include <stdio.h>
#include <string.h>

#include "control_int.h"
#include "redis/redis_source.h"
#include "codec/wire.h"
#include "common/jsonmp.h"

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

/* "clients": the control connections and the replies they leave unread
 * (README "Reply memory"). */
static void
pack_clients(msgpack_packer *pk, const struct ctl_status_input *in)
{
    fp_pack_cstr(pk, "clients");
    msgpack_pack_map(pk, 4);
    ctl_pack_kv_u64(pk, "connected", in->clients.connected);
    ctl_pack_kv_u64(pk, "behind", in->clients.behind);
    ctl_pack_kv_u64(pk, "reply_bytes", in->clients.reply_bytes);
    ctl_pack_kv_u64(pk, "subscribers", in->clients.subscribers);
}

/* "redis" (SPEC 10): where the queue is and how this host fares with it. */
static void
pack_redis(msgpack_packer *pk, const struct fp_redis_source *src)
{
    struct fp_redis_source_stats rs;

    fp_redis_source_stats(src, &rs);
    fp_pack_cstr(pk, "redis");
    msgpack_pack_map(pk, 9);
    fp_pack_cstr(pk, "url");
    fp_pack_cstr(pk, fp_redis_source_url(src));
    fp_pack_cstr(pk, "queue");
    fp_pack_cstr(pk, fp_redis_source_queue(src));
    fp_pack_cstr(pk, "connected");
    if (rs.connected) msgpack_pack_true(pk); else msgpack_pack_false(pk);
    ctl_pack_kv_u64(pk, "leased", rs.leased);
    ctl_pack_kv_u64(pk, "claimed", rs.claimed);
    ctl_pack_kv_u64(pk, "recorded", rs.recorded);
    ctl_pack_kv_u64(pk, "lost_leases", rs.lost_leases);
    ctl_pack_kv_u64(pk, "dead_lettered", rs.dead_lettered);
    ctl_pack_kv_u64(pk, "handed_back", rs.handed_back);
}

int
ctl_redis_metrics(struct fp_buf *out, const struct fp_redis_source *src)
{
    struct fp_redis_source_stats rs;

    if (src == NULL)
        return 0;
    fp_redis_source_stats(src, &rs);
    return fp_buf_printf(out,
        "# HELP forkpool_redis_connected 1 while the Redis queue is reachable.\n"
        "# TYPE forkpool_redis_connected gauge\n"
        "forkpool_redis_connected %d\n"
        "# HELP forkpool_redis_leased Redis jobs this host holds now.\n"
        "# TYPE forkpool_redis_leased gauge\n"
        "forkpool_redis_leased %llu\n"
        "# HELP forkpool_redis_claimed_total Redis jobs this host claimed.\n"
        "# TYPE forkpool_redis_claimed_total counter\n"
        "forkpool_redis_claimed_total %llu\n"
        "# HELP forkpool_redis_recorded_total Outcomes recorded in Redis.\n"
        "# TYPE forkpool_redis_recorded_total counter\n"
        "forkpool_redis_recorded_total %llu\n"
        "# HELP forkpool_redis_lost_leases_total Outcomes refused: the lease had lapsed.\n"
        "# TYPE forkpool_redis_lost_leases_total counter\n"
        "forkpool_redis_lost_leases_total %llu\n"
        "# HELP forkpool_redis_dead_lettered_total Jobs dead-lettered after too many lost hosts.\n"
        "# TYPE forkpool_redis_dead_lettered_total counter\n"
        "forkpool_redis_dead_lettered_total %llu\n"
        "# HELP forkpool_redis_handed_back_total Unstarted jobs handed back to the queue.\n"
        "# TYPE forkpool_redis_handed_back_total counter\n"
        "forkpool_redis_handed_back_total %llu\n",
        rs.connected, (unsigned long long)rs.leased,
        (unsigned long long)rs.claimed, (unsigned long long)rs.recorded,
        (unsigned long long)rs.lost_leases, (unsigned long long)rs.dead_lettered,
        (unsigned long long)rs.handed_back) < 0 ? -1 : 0;
}

void
ctl_pack_status(msgpack_packer *pk, const struct ctl_status_input *in)
{
    const fp_stats *st = in->stats;

    msgpack_pack_map(pk, 22 + (st->autoscale_max > 0) + (in->redis != NULL));
    fp_pack_cstr(pk, "state");
    fp_pack_cstr(pk, st->draining ? "draining" : "running");
    ctl_pack_kv_u64(pk, "workers", st->workers);
    if (st->autoscale_max > 0) {
        fp_pack_cstr(pk, "autoscale");
        msgpack_pack_map(pk, 2);
        ctl_pack_kv_u64(pk, "min", st->autoscale_min);
        ctl_pack_kv_u64(pk, "max", st->autoscale_max);
    }
    ctl_pack_kv_u64(pk, "busy", st->busy);
    ctl_pack_kv_u64(pk, "idle", st->idle);
    ctl_pack_kv_u64(pk, "starting", st->starting);
    ctl_pack_kv_u64(pk, "spares", st->spares);
    ctl_pack_kv_u64(pk, "queued", st->queued);
    ctl_pack_kv_u64(pk, "submitted", st->submitted);
    ctl_pack_kv_u64(pk, "completed", st->completed);
    ctl_pack_kv_u64(pk, "failed", st->failed);
    ctl_pack_kv_u64(pk, "crashed", st->crashed);
    ctl_pack_kv_u64(pk, "timed_out", st->timed_out);
    ctl_pack_kv_u64(pk, "cancelled", st->cancelled);
    ctl_pack_kv_u64(pk, "restarts", st->restarts);
    ctl_pack_kv_u64(pk, "start_failures", st->start_failures);
    /* Payloads quarantined by --poison-after (0 when it is off). */
    ctl_pack_kv_u64(pk, "poisoned", st->poisoned);
    fp_pack_cstr(pk, "uptime_s");
    msgpack_pack_double(pk, st->uptime_s);
    /* The largest job a client may send (forkpoolctl map checks its lines
     * against it before sending). */
    ctl_pack_kv_u64(pk, "max_job_bytes", in->max_job_bytes);
    fp_pack_cstr(pk, "pids");
    msgpack_pack_array(pk, in->nworkers);
    for (size_t i = 0; i < in->nworkers; i++)
        msgpack_pack_int64(pk, in->workers[i].pid);
    pack_worker_rows(pk, in->workers, in->nworkers);
    pack_limits(pk, in->limits, in->nlimits);
    pack_clients(pk, in);
    if (in->redis != NULL)
        pack_redis(pk, in->redis);
}

/* The length of the UTF-8 character at p[0..n) (p[0] >= 0x80), or 0 if
 * the bytes there are not one. */
static size_t
utf8_char_len(const char *p, size_t n)
{
    for (size_t len = 2; len <= 4 && len <= n; len++)
        if (fp_utf8_valid(p, len))
            return len;
    return 0;
}

/* A Prometheus label value: backslash, double quote and newline escaped
 * (\\ \" \n) as the text format says, and -- a key is any bytes but NUL,
 * the exposition must be UTF-8 -- each byte that is not part of a valid
 * UTF-8 character replaced by U+FFFD. */
static int
append_label(struct fp_buf *out, const char *key)
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
    return rc < 0 ? -1 : 0;
}

/* One gauge series per rate limit, keys escaped as label values. */
static int
limit_metrics(struct fp_buf *out, const fp_limit_info *rows, size_t n)
{
    static const char *const help[2] = {
        "# HELP forkpool_rate_limit_tokens Tokens in each rate limit's bucket "
        "(key \"\" = pool-wide).\n# TYPE forkpool_rate_limit_tokens gauge\n",
        "# HELP forkpool_rate_limit_waiting Jobs queued that each rate limit "
        "governs.\n# TYPE forkpool_rate_limit_waiting gauge\n",
    };
    int rc = 0;

    for (int g = 0; g < 2 && n > 0; g++) {
        rc |= fp_buf_append(out, help[g], strlen(help[g]));
        for (size_t i = 0; i < n; i++) {
            rc |= fp_buf_printf(out, "forkpool_rate_limit_%s{key=\"",
                                g == 0 ? "tokens" : "waiting");
            rc |= append_label(out, rows[i].key);
            if (g == 0)
                rc |= fp_buf_printf(out, "\"} %g\n", rows[i].tokens);
            else
                rc |= fp_buf_printf(out, "\"} %zu\n", rows[i].waiting);
        }
    }
    return rc < 0 ? -1 : 0;
}

/* One histogram in seconds over fp_latency_bounds: HELP, TYPE, each
 * cumulative bucket, +Inf, _sum, _count. */
static int
histogram(struct fp_buf *out, const char *name, const char *help,
          const uint64_t count[FP_LATENCY_BUCKETS], double sum)
{
    int rc = fp_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name,
                           help, name);

    for (unsigned i = 0; i < FP_LATENCY_BUCKETS; i++) {
        if (i < FP_LATENCY_BUCKETS - 1)
            rc |= fp_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                                fp_latency_bounds[i], (unsigned long long)count[i]);
        else
            rc |= fp_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                (unsigned long long)count[i]);
    }
    rc |= fp_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, sum, name,
                        (unsigned long long)count[FP_LATENCY_BUCKETS - 1]);
    return rc;
}

/* The figures from the receipts, timeouts by cause, poison payloads and
 * the event stream's losses. */
static int
receipt_metrics(struct fp_buf *out, const fp_stats *st)
{
    int rc = histogram(out, "forkpool_job_wait_seconds", "How long jobs waited "
                       "to start (accepted to started, last attempt), from "
                       "their receipts.", st->wait_count, st->wait_sum);

    rc |= histogram(out, "forkpool_job_run_seconds", "How long jobs ran "
                    "(started to ended, last attempt; any outcome), from their "
                    "receipts.", st->run_count, st->run_sum);
    rc |= fp_buf_printf(out,
        "# HELP forkpool_job_timeouts_total Jobs that ended timeout, by cause: "
        "their timeout, or no heartbeat for --heartbeat-timeout.\n"
        "# TYPE forkpool_job_timeouts_total counter\n"
        "forkpool_job_timeouts_total{cause=\"deadline\"} %llu\n"
        "forkpool_job_timeouts_total{cause=\"heartbeat\"} %llu\n"
        "# HELP forkpool_poison_rejected_total Submissions refused because "
        "their payload crashed --poison-after workers.\n"
        "# TYPE forkpool_poison_rejected_total counter\n"
        "forkpool_poison_rejected_total %llu\n"
        "# HELP forkpool_poisoned_payloads Payloads quarantined now "
        "(--poison-after).\n"
        "# TYPE forkpool_poisoned_payloads gauge\n"
        "forkpool_poisoned_payloads %zu\n"
        "# HELP forkpool_events_lost_total Pool events lost to a full event "
        "queue.\n"
        "# TYPE forkpool_events_lost_total counter\n"
        "forkpool_events_lost_total %llu\n",
        (unsigned long long)st->timeouts_deadline,
        (unsigned long long)st->timeouts_heartbeat,
        (unsigned long long)st->poison_rejected, st->poisoned,
        (unsigned long long)st->events_lost);
    return rc;
}

int
ctl_metrics_daemon_text(struct fp_buf *out, const struct ctl_daemon_figures *f)
{
    size_t base = out->len;
    int rc = fp_buf_printf(out,
        "# HELP forkpool_log_lines_dropped_total Log lines dropped because "
        "the log's reader did not keep up.\n"
        "# TYPE forkpool_log_lines_dropped_total counter\n"
        "forkpool_log_lines_dropped_total %llu\n"
        "# HELP forkpool_subscribers Connections subscribed to the event "
        "stream.\n"
        "# TYPE forkpool_subscribers gauge\n"
        "forkpool_subscribers %u\n"
        "# HELP forkpool_subscribers_dropped_total Subscribers disconnected "
        "for not reading their events.\n"
        "# TYPE forkpool_subscribers_dropped_total counter\n"
        "forkpool_subscribers_dropped_total %llu\n",
        (unsigned long long)f->log_lines_dropped, f->subscribers,
        (unsigned long long)f->subscribers_dropped);

    if (rc < 0) {
        out->len = base;
        return -1;
    }
    return 0;
}

int
ctl_metrics_text(struct fp_buf *out, const fp_stats *st,
                 const fp_limit_info *limits, size_t nlimits)
{
    size_t base = out->len;
    int rc = fp_buf_printf(out,
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
        "forkpool_workers{state=\"spare\"} %u\n"
        "# HELP forkpool_draining 1 while the pool drains.\n"
        "# TYPE forkpool_draining gauge\n"
        "forkpool_draining %d\n",
        (unsigned long long)st->completed, (unsigned long long)st->failed,
        (unsigned long long)st->crashed, (unsigned long long)st->timed_out,
        (unsigned long long)st->cancelled, (unsigned long long)st->submitted,
        (unsigned long long)st->restarts, st->queued, st->busy, st->idle,
        st->starting, st->spares, st->draining);

    rc |= histogram(out, "forkpool_job_duration_seconds", "Run time of jobs "
                    "that ended ok or error.", st->latency_count, st->latency_sum);
    rc |= receipt_metrics(out, st);
    rc |= limit_metrics(out, limits, nlimits);
    if (rc < 0) {
        out->len = base;
        return -1;
    }
    return 0;
}
