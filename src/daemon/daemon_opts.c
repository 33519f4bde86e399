/* daemon_opts.c — forkpoold's flags and config file (see daemon_opts.h). */
#include "config.h"
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "control.h"
#include "daemon_opts.h"
#include "codec/wire.h"
#include "common/jsonmp.h"

/* The ranges of the numeric flags.  Each default (FP_DEFAULT_*, the one
 * home of each) must lie inside its flag's range. */
#define MAX_WORKERS_CAP  65536u         /* the most --workers/--max-workers say */
#define QUEUE_MAX_CAP    100000000u
#define QUEUE_BYTES_MIN  1024u
#define QUEUE_BYTES_CAP  (1ULL << 40)
#define JOB_BYTES_MIN    16u
#define JOB_BYTES_CAP    (1ULL << 30)
#define PREFETCH_CAP     1024u
#define REPLY_BYTES_MIN  4096u
#define REPLY_BYTES_CAP  (1ULL << 40)
#define CONFIG_MAX (1 << 20)            /* largest config file */

_Static_assert(FP_DEFAULT_MAX_WORKERS <= MAX_WORKERS_CAP, "--max-workers range");
_Static_assert(FP_DEFAULT_QUEUE_MAX <= QUEUE_MAX_CAP, "--queue-max range");
_Static_assert(FP_DEFAULT_QUEUE_MAX_BYTES >= QUEUE_BYTES_MIN
               && FP_DEFAULT_QUEUE_MAX_BYTES <= QUEUE_BYTES_CAP, "--queue-max-bytes range");
_Static_assert(FP_DEFAULT_MAX_JOB_BYTES >= JOB_BYTES_MIN
               && FP_DEFAULT_MAX_JOB_BYTES <= JOB_BYTES_CAP, "--max-job-bytes range");
_Static_assert(FP_REPLY_SOFT_DEFAULT >= REPLY_BYTES_MIN
               && FP_REPLY_TOTAL_DEFAULT <= REPLY_BYTES_CAP, "--reply-* ranges");
_Static_assert(FP_DEFAULT_PREFETCH >= 1 && FP_DEFAULT_PREFETCH <= PREFETCH_CAP,
               "--prefetch range");

/* Which handler flags were given, to refuse two of them. */
struct handlers {
    const char *module, *module_config, *exec, *builtin;
    int         count;
};

/* One parse: the options being filled, the handler flags seen, and where
 * in the config file we are (for error messages). */
struct parse {
    struct fp_daemon_opts *o;
    struct handlers        h;
    char                   where[512];  /* "FILE:LINE" while a config line
                                           is applied, else "" */
};

/* "64 MiB", "1 GiB", or "1000 bytes", for the help text. */
static const char *
size_text(unsigned long long bytes, char *buf, size_t len)
{
    static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;

    while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, "%llu %s", bytes, units[u]);
    return buf;
}

void
fp_daemon_usage(FILE *out)
{
    char queue_bytes[32], job_bytes[32], soft[32], total[32];

    fprintf(out,
"Usage: forkpoold [options]\n"
"Run a crash-isolating pool of worker processes, controlled over a UNIX socket.\n"
"\n"
"  -w, --workers N          worker processes (default: online CPUs)\n"
"      --max-workers N      upper bound for scale, SIGTTIN and -w (default %u)\n"
"      --autoscale MIN-MAX  dynamic pool: start MIN workers (or -w, within the\n"
"                           range), add more while jobs wait, up to MAX\n"
"      --idle-timeout S     with --autoscale: retire a worker idle S seconds\n"
"                           while more than MIN run (default %g)\n"
"      --spare-workers N    keep N more workers started but idle, to take a\n"
"                           dead or recycled worker's place at once\n"
"                           (default 0, at most %u)\n"
"  -s, --socket PATH        control socket (default: $FORKPOOL_SOCKET, else\n"
"                           $XDG_RUNTIME_DIR/forkpool.sock, else\n"
"                           /tmp/forkpool-<uid>.sock)\n"
"      --module PATH.so     handler module exporting forkpool_module\n"
"      --module-config JSON value handed to the module's init\n"
"      --exec \"CMD ARGS...\" run this program as each worker (worker protocol\n"
"                           on its stdin/stdout; split like a shell, no $(...))\n"
"      --builtin NAME       builtin handler: %s (default: cmd)\n"
"      --job-timeout S      default per-job timeout in seconds (0 = none)\n"
"      --queue-max N        queued jobs before submissions are rejected\n"
"                           (default %u)\n"
"      --queue-max-bytes N  payload bytes held for unfinished jobs before\n"
"                           submissions are rejected (default %s)\n"
"      --max-job-bytes N    largest job or result in bytes (default %s)\n"
"      --reply-soft-limit N one client's unread reply bytes past which its\n"
"                           requests are not read and its jobs wait unstarted\n"
"                           until it has read half of them (default %s)\n"
"      --reply-hard-limit N one client's unread reply bytes past which it is\n"
"                           disconnected (default: the soft limit plus %d\n"
"                           times --max-job-bytes)\n"
"      --reply-max-bytes N  unread reply bytes of all clients together past\n"
"                           which every client with replies unread waits\n"
"                           (default %s)\n"
"      --max-jobs N         recycle a worker after N jobs, plus up to 10%%\n"
"                           jitter (0 = never)\n"
"      --max-rss MiB        recycle a worker, between jobs, once its resident\n"
"                           memory passes MiB (0 = never)\n"
"      --slow-log S         log each job still running after S seconds\n"
"      --prefetch N         most jobs sent ahead to one busy worker\n"
"                           (default %u)\n"
"      --drain-timeout S    how long a drain may take (default %g; 0 = no limit)\n"
"      --start-timeout S    kill a worker not ready S seconds after its start\n"
"                           (init hung, program silent): a failed start,\n"
"                           retried with backoff (default %g; 0 = no limit)\n"
"      --heartbeat-timeout S\n"
"                           kill a job that reports no progress for S seconds\n"
"                           (fp_progress, or [\"progress\", id, value]): outcome\n"
"                           timeout, \"no heartbeat for S s\" (default 0 = off)\n"
"      --rate-limit R[:B]   pool-wide: at most R job starts per second, in\n"
"                           bursts of up to B (default max(1, R)); per-key\n"
"                           limits: forkpoolctl limit\n"
"      --redis URL          also run jobs from a queue in Redis shared by many\n"
"                           hosts: unix:/path/redis.sock or\n"
"                           redis://host:port[/db] (forkpool-protocol(7))\n"
"      --redis-queue NAME   the queue (default %s)\n"
"      --lease S            hold each Redis job under a lease of S seconds,\n"
"                           renewed while it runs (default %g)\n"
"      --max-deliveries N   dead-letter a Redis job after N lost hosts\n"
"                           (default %u)\n"
"      --redis-retention S  keep outcome records, idempotency keys and reply\n"
"                           streams S seconds (default %g)\n"
"      --poison-after K     refuse a job whose payload crashed K workers in\n"
"                           the last hour (\"poison: crashed K workers\");\n"
"                           0 = off (default)\n"
"      --sandbox LEVEL      worker confinement: none, basic (default) or strict\n"
"                           (strict: seccomp allowlist after init, own network\n"
"                           namespace; needs --module or --builtin echo)\n"
"      --rlimit-as MiB      address space of each worker\n"
"      --rlimit-cpu S       CPU seconds each job may use (SIGXCPU past it)\n"
"      --rlimit-nofile N    open files per worker\n"
"      --user USER          when started as root, run workers as USER\n"
"      --worker-sched batch|inherit\n"
"                           workers' scheduling policy: batch (default):\n"
"                           SCHED_BATCH, so that a worker the daemon wakes\n"
"                           does not preempt it; inherit: the daemon's own\n"
"                           policy\n"
"  -c, --config FILE        read options from FILE first (one per line:\n"
"                           NAME VALUE, the long flag names; # comments)\n"
"  -d, --daemon             detach: double fork, setsid, chdir /, stdio to\n"
"                           /dev/null; returns once the daemon is listening\n"
"      --pidfile PATH       write the daemon's pid there, locked while it runs\n"
"      --log stderr|syslog  where log lines go (default stderr)\n"
"      --log-level LEVEL    err, warning, info (default) or debug\n"
"  -v, --verbose            log debug lines too (--log-level debug)\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Signals: SIGTERM/SIGINT drain gracefully (a second one cuts the drain off);\n"
"SIGHUP replaces every worker, one at a time, after its current job;\n"
"SIGTTIN/SIGTTOU add/remove one worker.\n",
            FP_DEFAULT_MAX_WORKERS, FP_DEFAULT_IDLE_TIMEOUT, FP_MAX_SPARE_WORKERS,
            fp_builtin_names(),
            FP_DEFAULT_QUEUE_MAX,
            size_text(FP_DEFAULT_QUEUE_MAX_BYTES, queue_bytes, sizeof(queue_bytes)),
            size_text(FP_DEFAULT_MAX_JOB_BYTES, job_bytes, sizeof(job_bytes)),
            size_text(FP_REPLY_SOFT_DEFAULT, soft, sizeof(soft)), FP_REPLY_HARD_RESULTS,
            size_text(FP_REPLY_TOTAL_DEFAULT, total, sizeof(total)),
            FP_DEFAULT_PREFETCH, FP_DEFAULT_DRAIN_TIMEOUT, FP_DEFAULT_START_TIMEOUT,
            FP_REDIS_DEFAULT_QUEUE, FP_REDIS_DEFAULT_LEASE, FP_REDIS_DEFAULT_DELIVERIES,
            FP_REDIS_DEFAULT_RETENTION);
}

/* Record a usage error (prefixed with FILE:LINE inside the config file)
 * in p->o->err.  Returns -1. */
static int __attribute__((format(printf, 2, 3)))
fail(struct parse *p, const char *fmt, ...)
{
    char *err = p->o->err;
    size_t n = 0;
    va_list ap;

    if (p->where[0] != '\0')
        n = (size_t)snprintf(err, sizeof(p->o->err), "%s: ", p->where);
    va_start(ap, fmt);
    vsnprintf(err + n, sizeof(p->o->err) - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal integer in [min, max] into *v.  Returns 0, or -1 (p->o->err). */
static int
parse_uint(struct parse *p, const char *flag, const char *s, unsigned long long min,
           unsigned long long max, unsigned long long *v)
{
    char *end;

    errno = 0;
    if (s[0] == '-' || s[0] == '\0')
        goto bad;
    *v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *v < min || *v > max)
        goto bad;
    return 0;
bad:
    return fail(p, "%s: expected an integer from %llu to %llu, got '%s'", flag,
                min, max, s);
}

static int
parse_worker_sched(struct parse *p, const char *s, int *policy)
{
    if (strcmp(s, "batch") == 0)
        *policy = FP_WORKER_SCHED_BATCH;
    else if (strcmp(s, "inherit") == 0)
        *policy = FP_WORKER_SCHED_INHERIT;
    else
        return fail(p, "--worker-sched: expected batch or inherit, got '%s'", s);
    return 0;
}

static int
parse_sandbox(struct parse *p, const char *s, int *level)
{
    if (strcmp(s, "none") == 0)
        *level = FP_SANDBOX_NONE;
    else if (strcmp(s, "basic") == 0)
        *level = FP_SANDBOX_BASIC;
    else if (strcmp(s, "strict") == 0)
        *level = FP_SANDBOX_STRICT;
    else
        return fail(p, "--sandbox: expected none, basic or strict, got '%s'", s);
    return 0;
}

/* Seconds >= 0 into *v.  Returns 0, or -1 (p->o->err). */
static int
parse_seconds(struct parse *p, const char *flag, const char *s, double *v)
{
    char *end;

    errno = 0;
    *v = strtod(s, &end);
    if (s[0] == '\0' || errno != 0 || *end != '\0' || !isfinite(*v) || *v < 0
        || *v > 1e9)
        return fail(p, "%s: expected a number of seconds >= 0, got '%s'", flag, s);
    return 0;
}

/* --rate-limit R[:B]: R and B as the limit method takes them
 * (fp_limit_rate_valid, fp_limit_burst_valid; R 0 = none).  Returns 0, or
 * -1 (p->o->err). */
static int
parse_rate(struct parse *p, const char *s, double *rate, double *burst)
{
    char *end;

    errno = 0;
    *rate = strtod(s, &end);
    *burst = 0;
    if (s[0] == '\0' || errno != 0 || !fp_limit_rate_valid(*rate))
        goto bad;
    if (*end == ':') {
        const char *b = end + 1;
        *burst = strtod(b, &end);
        if (b[0] == '\0' || errno != 0 || !fp_limit_burst_valid(*burst))
            goto bad;
    }
    if (*end == '\0')
        return 0;
bad:
    return fail(p, "--rate-limit: expected R[:B], a rate from 0 to %g per "
                "second and a burst from 1 to %g, got '%s'", FP_LIMIT_MAX,
                FP_LIMIT_MAX, s);
}

enum {
    OPT_MODULE = 256, OPT_MODULE_CONFIG, OPT_EXEC, OPT_BUILTIN, OPT_JOB_TIMEOUT,
    OPT_QUEUE_MAX, OPT_MAX_JOB_BYTES, OPT_MAX_JOBS, OPT_DRAIN_TIMEOUT, OPT_PREFETCH,
    OPT_MAX_RSS, OPT_SLOW_LOG, OPT_QUEUE_MAX_BYTES, OPT_MAX_WORKERS,
    OPT_SANDBOX, OPT_RLIMIT_AS, OPT_RLIMIT_CPU, OPT_RLIMIT_NOFILE, OPT_USER, OPT_WORKER_SCHED,
    OPT_PIDFILE, OPT_LOG, OPT_LOG_LEVEL, OPT_AUTOSCALE, OPT_IDLE_TIMEOUT,
    OPT_RATE_LIMIT, OPT_REPLY_SOFT, OPT_REPLY_HARD, OPT_REPLY_TOTAL, OPT_START_TIMEOUT,
    OPT_REDIS, OPT_REDIS_QUEUE, OPT_LEASE, OPT_MAX_DELIVERIES, OPT_REDIS_RETENTION,
    OPT_HEARTBEAT_TIMEOUT,
    OPT_POISON_AFTER, OPT_SPARE_WORKERS,
};

#define OPTSTRING ":w:s:c:dvhV"

static const struct option long_options[] = {
    { "workers",       required_argument, NULL, 'w' },
    { "max-workers",   required_argument, NULL, OPT_MAX_WORKERS },
    { "autoscale",     required_argument, NULL, OPT_AUTOSCALE },
    { "idle-timeout",  required_argument, NULL, OPT_IDLE_TIMEOUT },
    { "spare-workers", required_argument, NULL, OPT_SPARE_WORKERS },
    { "socket",        required_argument, NULL, 's' },
    { "module",        required_argument, NULL, OPT_MODULE },
    { "module-config", required_argument, NULL, OPT_MODULE_CONFIG },
    { "exec",          required_argument, NULL, OPT_EXEC },
    { "builtin",       required_argument, NULL, OPT_BUILTIN },
    { "job-timeout",   required_argument, NULL, OPT_JOB_TIMEOUT },
    { "queue-max",     required_argument, NULL, OPT_QUEUE_MAX },
    { "queue-max-bytes", required_argument, NULL, OPT_QUEUE_MAX_BYTES },
    { "max-job-bytes", required_argument, NULL, OPT_MAX_JOB_BYTES },
    { "reply-soft-limit", required_argument, NULL, OPT_REPLY_SOFT },
    { "reply-hard-limit", required_argument, NULL, OPT_REPLY_HARD },
    { "reply-max-bytes", required_argument, NULL, OPT_REPLY_TOTAL },
    { "max-jobs",      required_argument, NULL, OPT_MAX_JOBS },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
    { "start-timeout", required_argument, NULL, OPT_START_TIMEOUT },
    { "heartbeat-timeout", required_argument, NULL, OPT_HEARTBEAT_TIMEOUT },
    { "prefetch",      required_argument, NULL, OPT_PREFETCH },
    { "rate-limit",    required_argument, NULL, OPT_RATE_LIMIT },
    { "redis",         required_argument, NULL, OPT_REDIS },
    { "redis-queue",   required_argument, NULL, OPT_REDIS_QUEUE },
    { "lease",         required_argument, NULL, OPT_LEASE },
    { "max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES },
    { "redis-retention", required_argument, NULL, OPT_REDIS_RETENTION },
    { "poison-after",  required_argument, NULL, OPT_POISON_AFTER },
    { "max-rss",       required_argument, NULL, OPT_MAX_RSS },
    { "slow-log",      required_argument, NULL, OPT_SLOW_LOG },
    { "sandbox",       required_argument, NULL, OPT_SANDBOX },
    { "worker-sched",  required_argument, NULL, OPT_WORKER_SCHED },
    { "rlimit-as",     required_argument, NULL, OPT_RLIMIT_AS },
    { "rlimit-cpu",    required_argument, NULL, OPT_RLIMIT_CPU },
    { "rlimit-nofile", required_argument, NULL, OPT_RLIMIT_NOFILE },
    { "user",          required_argument, NULL, OPT_USER },
    { "config",        required_argument, NULL, 'c' },
    { "daemon",        no_argument,       NULL, 'd' },
    { "pidfile",       required_argument, NULL, OPT_PIDFILE },
    { "log",           required_argument, NULL, OPT_LOG },
    { "log-level",     required_argument, NULL, OPT_LOG_LEVEL },
    { "verbose",       no_argument,       NULL, 'v' },
    { "help",          no_argument,       NULL, 'h' },
    { "version",       no_argument,       NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static int
parse_log_level(struct parse *p, const char *s, int *level)
{
    static const char *const names[] = { "err", "warning", "info", "debug" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *level = i;
            return 0;
        }
    if (strcmp(s, "error") == 0 || strcmp(s, "warn") == 0) {
        *level = s[0] == 'e' ? FP_LOG_ERR : FP_LOG_WARN;
        return 0;
    }
    return fail(p, "--log-level: expected err, warning, info or debug, got '%s'", s);
}

/* --redis-queue NAME: it goes inside the keys' hash tag {NAME}, so no
 * braces, and nothing a log line or a key listing would garble. */
static int
parse_queue_name(struct parse *p, const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 200)
        return fail(p, "--redis-queue: expected a name of 1 to 200 characters");
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)s[i]) || s[i] == '{' || s[i] == '}')
            return fail(p, "--redis-queue: '%s': only printable characters, no "
                        "spaces or braces", s);
    p->o->redis.queue = s;
    return 0;
}

/* --autoscale MIN-MAX, both in 1..MAX_WORKERS_CAP, MIN <= MAX (MAX is
 * checked against --max-workers once every option is in).  Returns 0, or
 * -1 (p->o->err). */
static int
parse_autoscale(struct parse *p, const char *s)
{
    fp_config *cfg = &p->o->cfg;
    unsigned long lo, hi;
    char *end;

    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        goto bad;
    lo = strtoul(s, &end, 10);
    if (errno != 0 || *end != '-' || !isdigit((unsigned char)end[1]))
        goto bad;
    hi = strtoul(end + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        goto bad;
    if (lo < 1 || lo > hi || hi > MAX_WORKERS_CAP)
        return fail(p, "--autoscale: need 1 <= MIN <= MAX <= %u, got '%s'",
                    MAX_WORKERS_CAP, s);
    cfg->autoscale_min = (unsigned)lo;
    cfg->autoscale_max = (unsigned)hi;
    return 0;
bad:
    return fail(p, "--autoscale: expected MIN-MAX (e.g. 2-8), got '%s'", s);
}

/* Apply one option (from the command line or the config file).  Returns 0,
 * or -1 (p->o->err). */
static int
apply_option(struct parse *p, int opt, const char *arg)
{
    struct fp_daemon_opts *o = p->o;
    struct handlers *h = &p->h;
    fp_config *cfg = &o->cfg;
    unsigned long long v = 0;
    int rc = 0;

    switch (opt) {
    case 'w':
        rc = parse_uint(p, "--workers", arg, 1, MAX_WORKERS_CAP, &v);
        cfg->workers = (unsigned)v;
        break;
    case OPT_MAX_WORKERS:
        rc = parse_uint(p, "--max-workers", arg, 1, MAX_WORKERS_CAP, &v);
        o->max_workers = (unsigned)v;
        break;
    case OPT_AUTOSCALE: rc = parse_autoscale(p, arg); break;
    case OPT_IDLE_TIMEOUT:
        rc = parse_seconds(p, "--idle-timeout", arg, &cfg->idle_timeout);
        if (rc == 0 && cfg->idle_timeout <= 0)
            rc = fail(p, "--idle-timeout: expected a number of seconds > 0, got '%s'",
                      arg);
        o->idle_timeout_set = 1;
        break;
    case OPT_SPARE_WORKERS:
        rc = parse_uint(p, "--spare-workers", arg, 0, FP_MAX_SPARE_WORKERS, &v);
        cfg->spare_workers = (unsigned)v;
        break;
    case 's': o->socket = arg; break;
    case OPT_MODULE: h->module = arg; h->count++; break;
    case OPT_MODULE_CONFIG: h->module_config = arg; break;
    case OPT_EXEC: h->exec = arg; h->count++; break;
    case OPT_BUILTIN: h->builtin = arg; h->count++; break;
    case OPT_JOB_TIMEOUT: rc = parse_seconds(p, "--job-timeout", arg, &cfg->job_timeout); break;
    case OPT_QUEUE_MAX:
        rc = parse_uint(p, "--queue-max", arg, 1, QUEUE_MAX_CAP, &v);
        cfg->queue_max = v;
        break;
    case OPT_QUEUE_MAX_BYTES:
        rc = parse_uint(p, "--queue-max-bytes", arg, QUEUE_BYTES_MIN, QUEUE_BYTES_CAP, &v);
        cfg->queue_max_bytes = v;
        break;
    case OPT_MAX_JOB_BYTES:
        rc = parse_uint(p, "--max-job-bytes", arg, JOB_BYTES_MIN, JOB_BYTES_CAP, &v);
        cfg->max_job_bytes = v;
        break;
    case OPT_REPLY_SOFT:
        rc = parse_uint(p, "--reply-soft-limit", arg, REPLY_BYTES_MIN, REPLY_BYTES_CAP, &v);
        o->reply_soft = v;
        break;
    case OPT_REPLY_HARD:
        rc = parse_uint(p, "--reply-hard-limit", arg, REPLY_BYTES_MIN, REPLY_BYTES_CAP, &v);
        o->reply_hard = v;
        break;
    case OPT_REPLY_TOTAL:
        rc = parse_uint(p, "--reply-max-bytes", arg, REPLY_BYTES_MIN, REPLY_BYTES_CAP, &v);
        o->reply_total = v;
        break;
    case OPT_MAX_JOBS:
        rc = parse_uint(p, "--max-jobs", arg, 0, UINT_MAX, &v);
        cfg->max_jobs = (unsigned)v;
        break;
    case OPT_PREFETCH:
        rc = parse_uint(p, "--prefetch", arg, 1, PREFETCH_CAP, &v);
        cfg->prefetch = (unsigned)v;
        break;
    case OPT_MAX_RSS:
        rc = parse_uint(p, "--max-rss", arg, 0, 1u << 20, &v);
        cfg->max_rss = (size_t)v << 20;
        break;
    case OPT_SLOW_LOG: rc = parse_seconds(p, "--slow-log", arg, &cfg->slow_log); break;
    case OPT_DRAIN_TIMEOUT:
        rc = parse_seconds(p, "--drain-timeout", arg, &o->drain_timeout);
        break;
    case OPT_START_TIMEOUT:
        rc = parse_seconds(p, "--start-timeout", arg, &cfg->start_timeout);
        if (rc == 0 && cfg->start_timeout == 0)
            cfg->start_timeout = -1;    /* the library's "no limit" */
        break;
    case OPT_HEARTBEAT_TIMEOUT:
        rc = parse_seconds(p, "--heartbeat-timeout", arg, &cfg->heartbeat_timeout);
        break;
    case OPT_RATE_LIMIT:
        rc = parse_rate(p, arg, &cfg->rate_limit, &cfg->rate_burst);
        break;
    case OPT_REDIS: {
        char why[600];
        if (fp_redis_url_parse(arg, &o->redis.url, why, sizeof(why)) < 0)
            rc = fail(p, "--redis: %s", why);
        o->redis.url_text = arg;
        break;
    }
    case OPT_REDIS_QUEUE:
        rc = parse_queue_name(p, arg);
        o->redis_only_flag = "--redis-queue";
        break;
    case OPT_LEASE:
        rc = parse_seconds(p, "--lease", arg, &o->redis.lease);
        if (rc == 0 && (o->redis.lease < 0.1 || o->redis.lease > 86400))
            rc = fail(p, "--lease: expected seconds from 0.1 to 86400, got '%s'", arg);
        o->redis_only_flag = "--lease";
        break;
    case OPT_MAX_DELIVERIES:
        rc = parse_uint(p, "--max-deliveries", arg, 1, 1000, &v);
        o->redis.max_deliveries = (unsigned)v;
        o->redis_only_flag = "--max-deliveries";
        break;
    case OPT_REDIS_RETENTION:
        rc = parse_seconds(p, "--redis-retention", arg, &o->redis.retention);
        if (rc == 0 && (o->redis.retention < 1 || o->redis.retention > 1e8))
            rc = fail(p, "--redis-retention: expected seconds from 1 to 1e8, got '%s'",
                      arg);
        o->redis_only_flag = "--redis-retention";
        break;
    case OPT_POISON_AFTER:
        rc = parse_uint(p, "--poison-after", arg, 0, FP_POISON_AFTER_MAX, &v);
        cfg->poison_after = (unsigned)v;
        break;
    case OPT_SANDBOX: rc = parse_sandbox(p, arg, &cfg->sandbox); break;
    case OPT_WORKER_SCHED: rc = parse_worker_sched(p, arg, &cfg->worker_sched); break;
    case OPT_RLIMIT_AS:
        rc = parse_uint(p, "--rlimit-as", arg, 16, 1u << 30, &v);
        cfg->rlimit_as = (size_t)v << 20;
        break;
    case OPT_RLIMIT_CPU:
        rc = parse_uint(p, "--rlimit-cpu", arg, 1, 1000000, &v);
        cfg->rlimit_cpu = (unsigned)v;
        break;
    case OPT_RLIMIT_NOFILE:
        rc = parse_uint(p, "--rlimit-nofile", arg, 8, 1u << 20, &v);
        cfg->rlimit_nofile = (unsigned)v;
        break;
    case OPT_USER: cfg->user = arg; break;
    case 'c': break;                /* read before everything else */
    case 'd': o->daemonize = 1; break;
    case OPT_PIDFILE:
        if (arg[0] == '\0')
            return fail(p, "--pidfile: empty path");
        o->pidfile = arg;
        break;
    case OPT_LOG:
        if (strcmp(arg, "syslog") != 0 && strcmp(arg, "stderr") != 0)
            return fail(p, "--log: expected stderr or syslog, got '%s'", arg);
        o->log_syslog = strcmp(arg, "syslog") == 0;
        o->log_stderr = !o->log_syslog;
        break;
    case OPT_LOG_LEVEL: rc = parse_log_level(p, arg, &o->log_level); break;
    case 'v': o->log_level = FP_LOG_DEBUG; break;
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * The config file
 * ------------------------------------------------------------------------ */

/* The config file named on the command line (the last -c wins), read first
 * so that every flag overrides it.  Found by a getopt_long pass of its own
 * over the same option table, so every spelling getopt takes counts:
 * "-cFILE", "-vc FILE", "--conf FILE", "--config=FILE"...  Errors are left
 * to the pass that applies the flags. */
static const char *
find_config_flag(int argc, char **argv)
{
    const char *found = NULL;
    int opt;

    optind = 0;                 /* GNU getopt: start afresh */
    while ((opt = getopt_long(argc, argv, OPTSTRING, long_options, NULL)) != -1)
        if (opt == 'c')
            found = optarg;
    return found;
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Apply one "NAME [VALUE]" line of the config file (comment stripped).
 * Returns 0, or -1 (p->o->err). */
static int
apply_config_line(struct parse *p, char *line)
{
    char *name = trim(line);
    const struct option *opt = NULL;

    if (*name == '\0')
        return 0;
    /* NAME VALUE, NAME = VALUE, or NAME alone; "--NAME" is accepted. */
    char *value = name + strcspn(name, " \t=");
    if (*value != '\0') {
        *value++ = '\0';
        value = trim(value);
        if (*value == '=')
            value = trim(value + 1);
    }
    if (strncmp(name, "--", 2) == 0)
        name += 2;
    for (const struct option *o = long_options; o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            opt = o;
    if (opt == NULL)
        return fail(p, "unknown option '%s'", name);
    if (opt->val == 'c' || opt->val == 'h' || opt->val == 'V')
        return fail(p, "'%s' cannot be used in a config file", name);
    if (opt->has_arg == required_argument && *value == '\0')
        return fail(p, "--%s: missing value", name);
    if (opt->has_arg == no_argument && *value != '\0')
        return fail(p, "--%s takes no value", name);
    return apply_option(p, opt->val, value);
}

/* Apply every line of the config file.  Its text stays in o->conf_text:
 * the options point into it.  Returns 0, or -1 (p->o->err). */
static int
read_config(struct parse *p, const char *path)
{
    struct fp_daemon_opts *o = p->o;
    FILE *f = fopen(path, "re");
    char *line, *next;
    unsigned lineno = 0;

    if (f == NULL)
        return fail(p, "--config: cannot read %s: %s", path, strerror(errno));
    o->conf_text = malloc(CONFIG_MAX + 1);
    if (o->conf_text == NULL) {
        fclose(f);
        return fail(p, "--config: out of memory");
    }
    size_t n = fread(o->conf_text, 1, CONFIG_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fail(p, "--config: cannot read %s", path);
    if (n > CONFIG_MAX)
        return fail(p, "--config: %s is larger than %d bytes", path, CONFIG_MAX);
    o->conf_text[n] = '\0';
    if (memchr(o->conf_text, '\0', n) != NULL)
        return fail(p, "--config: %s is not a text file", path);

    for (line = o->conf_text; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        snprintf(p->where, sizeof(p->where), "%s:%u", path, lineno);
        if (apply_config_line(p, line) < 0)
            return -1;
    }
    p->where[0] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------
 * Checks across options
 * ------------------------------------------------------------------------ */

/* `path` made absolute in buf (the daemon may chdir /) into *out.  Returns
 * 0, or -1 (p->o->err). */
static int
absolute(struct parse *p, const char *flag, const char **path, char *buf, size_t len)
{
    char cwd[PATH_MAX];

    if ((*path)[0] == '/')
        return 0;
    if (getcwd(cwd, sizeof(cwd)) == NULL
        || snprintf(buf, len, "%s/%s", cwd, *path) >= (int)len)
        return fail(p, "%s: path too long", flag);
    *path = buf;
    return 0;
}

/* The one handler the flags chose, checked (a module is loaded once here).
 * Returns 0, or -1 (p->o->err). */
static int
check_handler(struct parse *p)
{
    struct fp_daemon_opts *o = p->o;
    const struct handlers *h = &p->h;
    fp_config *cfg = &o->cfg;
    char err[512];
    void *handle;

    if (h->count > 1)
        return fail(p, "--module, --exec and --builtin are exclusive: choose one");
    if (h->module_config != NULL && h->module == NULL)
        return fail(p, "--module-config: needs --module");
    if (cfg->sandbox == FP_SANDBOX_STRICT && h->exec != NULL)
        return fail(p, "--sandbox strict: not with --exec (the seccomp filter is "
                    "loaded by forkpool's own job loop); use --module");
    if (cfg->sandbox == FP_SANDBOX_STRICT && h->module == NULL
        && (h->builtin == NULL || strcmp(h->builtin, "cmd") == 0))
        return fail(p, "--sandbox strict: the cmd builtin forks and execs, which "
                    "strict forbids; use --module or --builtin echo");
    if (h->module != NULL) {
        /* Checked here, before anything forks; each worker then loads the
         * file itself, so a reload picks up a new build of it. */
        if (fp_module_load(h->module, &handle, err, sizeof(err)) == NULL)
            return fail(p, "--module: %s", err);
        dlclose(handle);
        cfg->module_path = h->module;
        if (absolute(p, "--module", &cfg->module_path, o->module_abs,
                     sizeof(o->module_abs)) < 0)
            return -1;
        o->handler = h->module;
        if (h->module_config != NULL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &o->module_config, msgpack_sbuffer_write);
            if (fp_json_text_pack(h->module_config, strlen(h->module_config), &pk,
                                  err, sizeof(err)) < 0)
                return fail(p, "--module-config: invalid JSON: %s", err);
            cfg->module_config = o->module_config.data;
            cfg->module_config_len = o->module_config.size;
        }
    } else if (h->exec != NULL) {
        int rc = wordexp(h->exec, &o->exec_words, WRDE_NOCMD);
        o->have_exec_words = rc == 0;
        if (rc != 0 || o->exec_words.we_wordc == 0)
            return fail(p, "--exec: cannot split '%s' into a command and arguments",
                        h->exec);
        cfg->exec_argv = o->exec_words.we_wordv;
        o->handler = h->exec;
    } else {
        o->handler = h->builtin != NULL ? h->builtin : "cmd";
        cfg->module = fp_builtin_find(o->handler);
        if (cfg->module == NULL)
            return fail(p, "--builtin: unknown handler '%s' (choose from %s)",
                        h->builtin, fp_builtin_names());
    }
    return 0;
}

/* The checks that need every option: limits against each other, the
 * handler, the user, paths made absolute.  Returns 0, or -1. */
static int
check_all(struct parse *p)
{
    struct fp_daemon_opts *o = p->o;

    if (o->cfg.workers > o->max_workers)
        return fail(p, "--workers: %u is more than --max-workers (%u)", o->cfg.workers,
                    o->max_workers);
    if (o->cfg.autoscale_max > o->max_workers)
        return fail(p, "--autoscale: MAX %u is more than --max-workers (%u)",
                    o->cfg.autoscale_max, o->max_workers);
    if (o->idle_timeout_set && o->cfg.autoscale_max == 0)
        return fail(p, "--idle-timeout: needs --autoscale");
    if (o->redis_only_flag != NULL && o->redis.url_text == NULL)
        return fail(p, "%s: needs --redis", o->redis_only_flag);
    /* A client that reads its replies must never be cut off by one result
     * that lands on top of its soft limit. */
    size_t soft = o->reply_soft != 0 ? o->reply_soft : FP_REPLY_SOFT_DEFAULT;
    size_t job = o->cfg.max_job_bytes != 0 ? o->cfg.max_job_bytes
                                           : FP_DEFAULT_MAX_JOB_BYTES;
    if (o->reply_hard != 0 && o->reply_hard < soft + job)
        return fail(p, "--reply-hard-limit: %zu is less than the soft limit plus "
                    "--max-job-bytes (%zu + %zu): one result could cut off a "
                    "client that reads", o->reply_hard, soft, job);
    if (check_handler(p) < 0)
        return -1;
    if (o->cfg.user != NULL) {
        struct passwd *pw = getpwnam(o->cfg.user);
        if (pw == NULL)
            return fail(p, "--user: no such user '%s'", o->cfg.user);
        if (pw->pw_uid == 0)
            return fail(p, "--user: '%s' is root; workers need an unprivileged user",
                        o->cfg.user);
    }
    /* --daemon moves to /: relative paths are taken from here first. */
    if (o->daemonize && o->socket != NULL
        && absolute(p, "--socket", &o->socket, o->socket_abs, sizeof(o->socket_abs)) < 0)
        return -1;
    if (o->daemonize && o->pidfile != NULL
        && absolute(p, "--pidfile", &o->pidfile, o->pidfile_abs, sizeof(o->pidfile_abs)) < 0)
        return -1;
    o->cfg.max_workers = o->max_workers;
    return 0;
}

int
fp_daemon_opts_parse(struct fp_daemon_opts *o, int argc, char **argv)
{
    struct parse p = { .o = o };
    int opt;

    memset(o, 0, sizeof(*o));
    fp_config_init(&o->cfg);
    /* Every child of the daemon is a worker: what a killed job left
     * outside its worker's group is the daemon's to kill (pool_orphans.c). */
    o->cfg.reap_orphans = 1;
    o->max_workers = FP_DEFAULT_MAX_WORKERS;
    o->drain_timeout = FP_DEFAULT_DRAIN_TIMEOUT;
    o->log_level = FP_LOG_INFO;
    o->redis.queue = FP_REDIS_DEFAULT_QUEUE;
    o->redis.lease = FP_REDIS_DEFAULT_LEASE;
    o->redis.max_deliveries = FP_REDIS_DEFAULT_DELIVERIES;
    o->redis.retention = FP_REDIS_DEFAULT_RETENTION;
    msgpack_sbuffer_init(&o->module_config);

    opterr = 0;
    o->config_file = find_config_flag(argc, argv);
    if (o->config_file != NULL && read_config(&p, o->config_file) < 0)
        return FP_OPTS_ERROR;

    optind = 0;
    while ((opt = getopt_long(argc, argv, OPTSTRING, long_options, NULL)) != -1) {
        switch (opt) {
        case 'h': return FP_OPTS_HELP;
        case 'V': return FP_OPTS_VERSION;
        case ':': return fail(&p, "%s: missing value", argv[optind - 1]);
        case '?':
            if (optopt != 0)
                return fail(&p, "unknown option '-%c'", optopt);
            return fail(&p, "unknown option '%s'", argv[optind - 1]);
        default:
            if (apply_option(&p, opt, optarg) < 0)
                return FP_OPTS_ERROR;
        }
    }
    if (optind < argc)
        return fail(&p, "unexpected argument '%s'", argv[optind]);
    if (check_all(&p) < 0)
        return FP_OPTS_ERROR;
    return FP_OPTS_RUN;
}

void
fp_daemon_opts_free(struct fp_daemon_opts *o)
{
    if (o->have_exec_words)
        wordfree(&o->exec_words);
    msgpack_sbuffer_destroy(&o->module_config);
    free(o->conf_text);
}
