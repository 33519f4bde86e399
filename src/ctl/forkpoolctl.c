/* forkpoolctl.c — the control-socket CLI (SPEC §8): options and commands,
 * one row per command in the table at the end.  The RPC client is in
 * ctl_rpc.c, the map command in ctl_map.c, top in ctl_top.c, events in
 * ctl_events.c. */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <msgpack.h>

#include "ctl.h"
#include "common/jsonmp.h"
#include "common/sockpath.h"
#include "redis/redis_source.h"
#include "redis/redis_url.h"

static const char usage_text[] =
"Usage: forkpoolctl [-s SOCKET] [--rpc-timeout S] COMMAND [ARGS...]\n"
"       forkpoolctl --redis URL [--redis-queue NAME] submit|map [ARGS...]\n"
"\n"
"Control a running forkpoold through its socket.  JSON in, JSON out: msgpack\n"
"binary values appear as {\"$bin\": \"<base64>\"}, ext values as\n"
"{\"$ext\": [type, \"<base64>\"]}.\n"
"\n"
"Commands:\n"
"  submit [--timeout S] [--retries N] [--key K] [--expires S] [--ids]\n"
"      [--progress] JSON\n"
"      Run one job and print its outcome line, e.g.\n"
"        {\"id\": 7, \"ok\": true, \"result\": ...}\n"
"        {\"id\": 7, \"ok\": false, \"kind\": \"crashed\", "
"\"detail\": \"killed by SIGSEGV\"}\n"
"  map [--keep-order] [--fail-fast] [--timeout S] [--retries N] [--window N]\n"
"      [--key K] [--expires S] [--ids] [--progress]\n"
"      Run each line of stdin (one JSON job per line), up to N at once\n"
"      (default 256), and print one outcome line per job as it completes,\n"
"      with \"index\" first: the 0-based number of the job's line, where\n"
"      blank lines are skipped and not counted.  A line that is not valid\n"
"      JSON gets a \"rejected\" outcome.  Jobs refused because the daemon's\n"
"      queue is full are sent again later, not reported.\n"
"        --keep-order   print outcomes in input order\n"
"        --fail-fast    after the first job that fails, read and send no\n"
"                       more; report those in flight, then exit 1\n"
"      With stdin a file and stderr a terminal (and neither --ids nor\n"
"      --progress), a progress bar (jobs done/total, rate, ETA) is kept on\n"
"      stderr.\n"
"  status [--json]    the pool's state as a table, or as a JSON map\n"
"  top [--interval S] [--count N]\n"
"      The pool's state, refreshed every S seconds (default 1): on a\n"
"      terminal a full-screen view (q quits), else one line per refresh;\n"
"      with --count, N refreshes.  See 'forkpoolctl top --help'.\n"
"  scale N            set the number of workers\n"
"  cancel ID          cancel a queued or running job (exit 1 if not found)\n"
"  drain              stop taking jobs, finish those accepted, then exit\n"
"  reload             replace every worker, one at a time\n"
"  metrics            print the Prometheus metrics text\n"
"  limit KEY RATE [BURST]\n"
"      Let jobs of KEY start at most RATE times a second, in bursts of up\n"
"      to BURST (default max(1, RATE)); KEY \"\" or - is the pool-wide limit\n"
"  limit --remove KEY remove the limit of KEY\n"
"  events [--count N]\n"
"      Print the daemon's events as they happen, one JSON object per line\n"
"      (job outcomes with their stats; workers spawned, ready, retired,\n"
"      exited; scale, reload, drain); with --count, exit after N.  See\n"
"      'forkpoolctl events --help'.\n"
"\n"
"Job options: --timeout S (seconds, 0 = none), --retries N (attempts\n"
"after a crash), --key K (the job's rate-limit key), --expires S (a job\n"
"not started S seconds after the daemon accepted it ends \"cancelled\",\n"
"\"expired before it started\"), --ids (as soon as the daemon accepts a job, print\n"
"{\"id\": N, \"accepted\": true} on stderr -- with \"index\" for map -- so it\n"
"can be cancelled while it runs), --progress (print each progress report\n"
"of a job, {\"id\": N, \"progress\": value}, on stderr as it comes; with map\n"
"it replaces the progress bar).  A JSON argument that starts with '-'\n"
"goes after \"--\".\n"
"\n"
"Options:\n"
"  -s, --socket PATH  control socket (default: $FORKPOOL_SOCKET, else\n"
"                     $XDG_RUNTIME_DIR/forkpool.sock, else\n"
"                     /tmp/forkpool-UID.sock)\n"
"  --rpc-timeout S    wait at most S seconds for the daemon to answer, then\n"
"                     exit 3 (0 = no limit).  Default: 10 for the commands\n"
"                     that run no jobs; none for submit and map, whose jobs\n"
"                     have their own --timeout (given, it bounds submit's\n"
"                     wait and map's longest silence while jobs are out)\n"
"  --redis URL        submit and map put jobs into the Redis queue that\n"
"                     forkpoold --redis hosts drain, and print the outcomes\n"
"                     they record: unix:/path/redis.sock or\n"
"                     redis://host:port[/db] (forkpool-protocol(7)).  Job\n"
"                     ids are then stream entry ids (\"1733050000000-0\");\n"
"                     submit also takes --idempotency-key K (a repeat\n"
"                     within a day returns the first job's id and outcome)\n"
"  --redis-queue NAME the queue (default forkpool)\n"
"  -h, --help         show this help\n"
"  -V, --version      show the version\n"
"\n"
"Exit status: 0 done (every job ok); 1 a job did not end ok, or the daemon\n"
"refused the command; 2 usage error; 3 cannot reach the daemon, or it did\n"
"not answer within --rpc-timeout.\n";

#define DEFAULT_WINDOW 256
#define MAX_WINDOW     65536

/* Option values that the job-taking commands share. */
enum { OPT_TIMEOUT = 0x100, OPT_RETRIES, OPT_WINDOW, OPT_KEEP, OPT_FAST,
       OPT_JSON, OPT_IDS, OPT_KEY, OPT_EXPIRES, OPT_RPC_TIMEOUT, OPT_REDIS,
       OPT_REDIS_QUEUE, OPT_IDEM, OPT_PROGRESS };

/* An integer operand: what it is, for messages, and its largest value. */
struct operand {
    const char *what;
    uint64_t    max;
};

/* One command: its name and how it runs; cmd_simple's rows also say what
 * operand the method takes and what becomes of its result. */
struct command {
    const char *name;
    int       (*run)(const struct command *cmd, const struct ctl_target *to,
                     int argc, char **argv);
    const struct operand *operand;  /* cmd_simple: its one operand, or NULL */
    enum {
        RESULT_IGNORED,             /* cmd_simple: print nothing, exit 0 */
        RESULT_PRINTED,             /* print the result, exit 0 */
        RESULT_PRINTED_TRUE_OK,     /* print the result, exit 0 only if true */
    } result;
    int         runs_jobs;          /* no --rpc-timeout unless given */
};

/* ---- argument helpers ---------------------------------------------------- */

/* Print a usage error for `cmd` and return the usage exit status. */
static int
usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "forkpoolctl: %s%s", cmd != NULL ? cmd : "",
            cmd != NULL ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'forkpoolctl --help'.\n");
    return CTL_EXIT_USAGE;
}

/* Non-negative decimal integer up to max, the whole string. */
static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Finite, non-negative seconds, the whole string. */
static int
parse_seconds(const char *s, double *out)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Report a getopt failure (opterr is off, so getopt said nothing). */
static int
bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return usage_error(cmd, "option '%s' needs a value", arg);
    if (optopt != 0 && arg[0] == '-' && arg[1] != '-')
        return usage_error(cmd, "unknown option '-%c'", optopt);
    return usage_error(cmd, "unknown option '%s'", arg);
}

/* --timeout / --retries / --key / --expires / --ids, shared by submit and
 * map.  Returns 0 or the usage exit status. */
static int
job_option(const char *cmd, int c, const char *arg, struct ctl_jobopts *o)
{
    uint64_t n;

    if (c == OPT_TIMEOUT) {
        if (parse_seconds(arg, &o->timeout) < 0)
            return usage_error(cmd, "--timeout: '%s' is not a number of "
                               "seconds >= 0", arg);
        o->has_timeout = 1;
    } else if (c == OPT_EXPIRES) {
        if (parse_seconds(arg, &o->expires) < 0)
            return usage_error(cmd, "--expires: '%s' is not a number of "
                               "seconds >= 0", arg);
        o->has_expires = 1;
    } else if (c == OPT_IDS) {
        o->ids = 1;
    } else if (c == OPT_PROGRESS) {
        o->progress = 1;
    } else if (c == OPT_KEY) {
        if (strlen(arg) > 256)
            return usage_error(cmd, "--key: longer than 256 bytes");
        o->key = arg;
    } else {
        if (parse_uint(arg, UINT32_MAX, &n) < 0)
            return usage_error(cmd, "--retries: '%s' is not a count", arg);
        o->retries = (uint32_t)n;
        o->has_retries = 1;
    }
    return 0;
}

/* Commands with no options of their own still take --help; `nargs` is how
 * many operands they need.  Returns -1 to go on, or an exit status. */
static int
plain_args(const char *cmd, int argc, char **argv, int nargs,
           const char *what)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c != 'h')
            return bad_option(cmd, c, argv);
        fputs(usage_text, stdout);
        return CTL_EXIT_OK;
    }
    if (argc - optind != nargs)
        return nargs == 0 ? usage_error(cmd, "takes no arguments")
                          : usage_error(cmd, "expects %s", what);
    return -1;
}

/* ---- talking to the daemon ----------------------------------------------- */

/* A result (msgpack) as JSON; on failure print why.  Returns -1 with
 * *result set, or an exit status. */
static int
to_json(const char *method, const char *raw, size_t len, json_t **result)
{
    char text[1024];

    *result = fp_json_from_msgpack(raw, len, text, sizeof text);
    if (*result == NULL) {
        fprintf(stderr, "forkpoolctl: %s: bad result: %s\n", method, text);
        return CTL_EXIT_FAIL;
    }
    return -1;
}

/* Connect, run one method with params packed by the caller, and hand back
 * the result as JSON (NULL on failure, with *status set): `status` through
 * fp_client_status, the others by name. */
static json_t *
run_method(const struct ctl_target *to, const char *method,
           const struct fp_buf *params, int *status)
{
    struct fp_client_msg r;
    fp_client *c;
    json_t *result = NULL;
    const char *raw;
    size_t len;
    char text[1024];
    int rc = ctl_connect(&c, to);

    if (rc == 0 && strcmp(method, "status") == 0) {
        if ((rc = fp_client_status(c, &raw, &len)) == 0)
            *status = to_json(method, raw, len, &result);
    } else if (rc == 0
               && (rc = fp_client_call(c, method, fp_buf_head(params),
                                       params->len, &r)) == 0) {
        if (r.error != NULL) {
            ctl_error_text(&r, text, sizeof text);
            fprintf(stderr, "forkpoolctl: %s: %s\n", method, text);
            *status = CTL_EXIT_FAIL;
        } else {
            *status = to_json(method, r.result, r.result_len, &result);
        }
    }
    if (rc < 0)
        *status = ctl_fail(to, c, rc, method);
    fp_client_close(c);
    return *status == -1 ? result : NULL;
}

static int
print_or_fail(const json_t *v)
{
    if (ctl_print_json(stdout, v) < 0) {
        if (errno != EPIPE)
            fprintf(stderr, "forkpoolctl: stdout: %s\n", strerror(errno));
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

static int
print_text_or_fail(const char *text, size_t len)
{
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) == EOF) {
        if (errno != EPIPE)
            fprintf(stderr, "forkpoolctl: stdout: %s\n", strerror(errno));
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

/* ---- commands ------------------------------------------------------------ */

/* submit --progress / --ids: the lines on stderr while the job runs. */
static void
show_progress(void *arg, uint64_t id, const char *value, size_t len)
{
    (void)arg;
    ctl_print_progress(id, value, len);
}

static void
show_accepted(void *arg, uint64_t id)
{
    (void)arg;
    fprintf(stderr, "{\"id\": %" PRIu64 ", \"accepted\": true}\n", id);
}

static int
cmd_submit(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    static const struct option opts[] = {
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "retries", required_argument, NULL, OPT_RETRIES },
        { "key", required_argument, NULL, OPT_KEY },
        { "expires", required_argument, NULL, OPT_EXPIRES },
        { "ids", no_argument, NULL, OPT_IDS },
        { "idempotency-key", required_argument, NULL, OPT_IDEM },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl_jobopts jo = { 0 };
    const char *idem = NULL;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return CTL_EXIT_OK;
        }
        if (c == OPT_IDEM) {
            if (optarg[0] == '\0' || strlen(optarg) > 256)
                return usage_error(cmd->name, "--idempotency-key: 1 to 256 bytes");
            idem = optarg;
            continue;
        }
        if (c != OPT_TIMEOUT && c != OPT_RETRIES && c != OPT_IDS && c != OPT_KEY
            && c != OPT_EXPIRES && c != OPT_PROGRESS)
            return bad_option(cmd->name, c, argv);
        if ((rc = job_option(cmd->name, c, optarg, &jo)) != 0)
            return rc;
    }
    if (argc - optind != 1)
        return usage_error(cmd->name, "expects one JSON job");
    if (idem != NULL && to->redis == NULL)
        return usage_error(cmd->name, "--idempotency-key: needs --redis");

    struct fp_buf job = FP_BUF_INIT, line = FP_BUF_INIT;
    struct fp_client_jobopts co;
    struct fp_client_outcome o;
    fp_client *conn = NULL;
    msgpack_packer pk;
    char err[1024];

    msgpack_packer_init(&pk, &job, fp_buf_pack_write);
    if (fp_json_text_pack(argv[optind], strlen(argv[optind]), &pk, err,
                          sizeof err) < 0) {
        rc = usage_error(cmd->name, "invalid JSON job: %s", err);
        goto out;
    }
    if (to->redis != NULL) {
        rc = ctl_redis_submit(to->redis, fp_buf_head(&job), job.len, &jo, idem);
        goto out;
    }
    ctl_client_opts(&jo, &co);
    co.on_progress = jo.progress ? show_progress : NULL;
    co.on_accepted = jo.ids ? show_accepted : NULL;
    if ((rc = ctl_connect(&conn, to)) == 0)
        rc = fp_client_submit(conn, fp_buf_head(&job), job.len, &co, &o);
    if (rc == FP_CLIENT_EREFUSED) {     /* the request itself was refused */
        fprintf(stderr, "forkpoolctl: submit: %s\n", fp_client_error(conn));
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    if (rc != 0 && rc != FP_CLIENT_EJOB) {
        rc = ctl_fail(to, conn, rc, cmd->name);
        goto out;
    }
    if (ctl_outcome_write(&line, CTL_NO_INDEX, &o, err, sizeof err) < 0
        || fp_buf_append(&line, "\n", 1) < 0) {
        fprintf(stderr, "forkpoolctl: submit: bad response: %s\n",
                err[0] != '\0' ? err : "out of memory");
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    rc = print_text_or_fail(fp_buf_head(&line), line.len);
    if (rc == CTL_EXIT_OK && !o.ok)
        rc = CTL_EXIT_FAIL;
out:
    fp_buf_free(&line);
    fp_client_close(conn);
    fp_buf_free(&job);
    return rc;
}

static int
cmd_map(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    static const struct option opts[] = {
        { "keep-order", no_argument, NULL, OPT_KEEP },
        { "fail-fast", no_argument, NULL, OPT_FAST },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "retries", required_argument, NULL, OPT_RETRIES },
        { "window", required_argument, NULL, OPT_WINDOW },
        { "key", required_argument, NULL, OPT_KEY },
        { "expires", required_argument, NULL, OPT_EXPIRES },
        { "ids", no_argument, NULL, OPT_IDS },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl_map_opts mo = { .window = DEFAULT_WINDOW };
    uint64_t n;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return CTL_EXIT_OK;
        case OPT_KEEP:
            mo.keep_order = 1;
            break;
        case OPT_FAST:
            mo.fail_fast = 1;
            break;
        case OPT_WINDOW:
            if (parse_uint(optarg, MAX_WINDOW, &n) < 0 || n == 0)
                return usage_error(cmd->name, "--window: '%s' is not a count "
                                   "from 1 to %d", optarg, MAX_WINDOW);
            mo.window = (unsigned)n;
            break;
        case OPT_TIMEOUT:
        case OPT_RETRIES:
        case OPT_IDS:
        case OPT_KEY:
        case OPT_EXPIRES:
        case OPT_PROGRESS:
            if ((rc = job_option(cmd->name, c, optarg, &mo.job)) != 0)
                return rc;
            break;
        default:
            return bad_option(cmd->name, c, argv);
        }
    }
    if (argc - optind != 0)
        return usage_error(cmd->name, "takes no arguments (jobs come on stdin)");

    if (to->redis != NULL)
        return ctl_redis_map(to->redis, &mo);
    return ctl_map(to, &mo);
}

/* A status field as text: numbers plainly, strings as themselves. */
static const char *
field_text(const json_t *v, char *buf, size_t n)
{
    if (json_is_integer(v))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, n, "%g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, n, "%s", json_string_value(v));
    else {
        char *s = json_dumps(v, CTL_JSON_FLAGS);
        snprintf(buf, n, "%s", s != NULL ? s : "?");
        free(s);
    }
    return buf;
}


/* "4 (busy 1, idle 3, starting 0)" from whichever of them are present,
 * and ", spares 1" when the daemon keeps spare workers. */
static void
format_workers(json_t *st, char *buf, size_t n)
{
    static const char *const parts[] = { "busy", "idle", "starting", "spares" };
    char v[64];
    size_t len = 0;
    const char *sep = " (";

    json_t *w = json_object_get(st, "workers");
    len += (size_t)snprintf(buf, n, "%s", w != NULL ? field_text(w, v, sizeof v)
                                                    : "?");
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && len < n; i++) {
        json_t *x = json_object_get(st, parts[i]);
        if (x == NULL || (strcmp(parts[i], "spares") == 0
                          && json_is_integer(x) && json_integer_value(x) == 0))
            continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s %s", sep, parts[i],
                                field_text(x, v, sizeof v));
        sep = ", ";
    }
    if (sep[0] == ',' && len < n)
        snprintf(buf + len, n - len, ")");
}

static void
print_pids(const json_t *pids)
{
    size_t i;
    json_t *p;
    char v[64];

    printf("%-15s", "pids");
    if (!json_is_array(pids)) {
        printf(" %s\n", field_text(pids, v, sizeof v));
        return;
    }
    json_array_foreach(pids, i, p)
        printf(" %s", field_text(p, v, sizeof v));
    printf("\n");
}

/* One row per worker: pid, state, running job and its age, jobs, RSS. */
static void
print_worker_rows(json_t *rows)
{
    size_t i;
    json_t *r;

    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return;
    printf("\n%8s  %-8s  %10s  %8s  %7s  %9s  %9s\n", "PID", "STATE", "JOB",
           "AGE", "QUEUED", "JOBS", "RSS");
    json_array_foreach(rows, i, r) {
        json_t *job = json_object_get(r, "job");
        char jobtxt[32] = "-", age[32] = "-";
        if (json_is_integer(job)) {
            snprintf(jobtxt, sizeof jobtxt, "%" JSON_INTEGER_FORMAT, json_integer_value(job));
            snprintf(age, sizeof age, "%.1fs",
                     json_number_value(json_object_get(r, "job_age_s")));
        }
        printf("%8" JSON_INTEGER_FORMAT "  %-8s  %10s  %8s  %7" JSON_INTEGER_FORMAT
               "  %9" JSON_INTEGER_FORMAT "  %7.1fMi\n",
               json_integer_value(json_object_get(r, "pid")),
               json_string_value(json_object_get(r, "state")) ?: "?", jobtxt, age,
               json_integer_value(json_object_get(r, "queued")),
               json_integer_value(json_object_get(r, "jobs_done")),
               (double)json_integer_value(json_object_get(r, "rss")) / (1 << 20));
    }
}

/* The readable status table; fields the daemon leaves out are skipped, ones
 * this tool does not know are listed at the end. */
static void
print_status_table(json_t *st)
{
    static const char *const counters[] = {
        "queued", "submitted", "completed", "failed", "crashed",
        "timed_out", "cancelled", "restarts", "start_failures",
    };
    static const char *const shown[] = {
        "state", "uptime_s", "workers", "busy", "idle", "starting", "spares", "pids",
        "worker_list", "autoscale", "limits", "clients",
    };
    char buf[512];
    json_t *v;
    const char *key;

    if ((v = json_object_get(st, "state")) != NULL)
        printf("%-15s %s\n", "state", field_text(v, buf, sizeof buf));
    if ((v = json_object_get(st, "uptime_s")) != NULL && json_is_number(v)) {
        ctl_format_duration(json_number_value(v), buf, sizeof buf);
        printf("%-15s %s\n", "uptime", buf);
    }
    if (json_object_get(st, "workers") != NULL
        || json_object_get(st, "busy") != NULL) {
        format_workers(st, buf, sizeof buf);
        printf("%-15s %s\n", "workers", buf);
    }
    if ((v = json_object_get(st, "autoscale")) != NULL)
        printf("%-15s %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT " workers\n",
               "autoscale", json_integer_value(json_object_get(v, "min")),
               json_integer_value(json_object_get(v, "max")));
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        if ((v = json_object_get(st, counters[i])) != NULL)
            printf("%-15s %s\n", counters[i], field_text(v, buf, sizeof buf));
    if ((v = json_object_get(st, "clients")) != NULL)
        printf("%-15s %" JSON_INTEGER_FORMAT " connected, %" JSON_INTEGER_FORMAT
               " behind, %" JSON_INTEGER_FORMAT " bytes of replies unread\n", "clients",
               json_integer_value(json_object_get(v, "connected")),
               json_integer_value(json_object_get(v, "behind")),
               json_integer_value(json_object_get(v, "reply_bytes")));
    if ((v = json_object_get(st, "pids")) != NULL)
        print_pids(v);
    json_object_foreach(st, key, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
            known |= strcmp(key, counters[i]) == 0;
        for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
            known |= strcmp(key, shown[i]) == 0;
        if (!known)
            printf("%-15s %s\n", key, field_text(v, buf, sizeof buf));
    }
    print_worker_rows(json_object_get(st, "worker_list"));
    ctl_print_limit_rows(json_object_get(st, "limits"));
}

/* Params [] or [n]. */
static int
pack_params(struct fp_buf *b, int has_arg, uint64_t arg)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, fp_buf_pack_write);
    if (msgpack_pack_array(&pk, has_arg ? 1 : 0) != 0
        || (has_arg && msgpack_pack_uint64(&pk, arg) != 0)) {
        fprintf(stderr, "forkpoolctl: out of memory\n");
        return -1;
    }
    return 0;
}

static int
cmd_status(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c, as_json = 0, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return CTL_EXIT_OK;
        }
        if (c != OPT_JSON)
            return bad_option(cmd->name, c, argv);
        as_json = 1;
    }
    if (argc - optind != 0)
        return usage_error(cmd->name, "takes no arguments");

    struct fp_buf params = FP_BUF_INIT;
    if (pack_params(&params, 0, 0) < 0)
        return CTL_EXIT_FAIL;
    json_t *st = run_method(to, cmd->name, &params, &rc);
    fp_buf_free(&params);
    if (st == NULL)
        return rc;
    if (as_json) {
        rc = print_or_fail(st);
    } else if (json_is_object(st)) {
        print_status_table(st);
        rc = fflush(stdout) == EOF ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    } else {
        fprintf(stderr, "forkpoolctl: status: result is not a map\n");
        rc = CTL_EXIT_FAIL;
    }
    json_decref(st);
    return rc;
}

/* scale N, cancel ID, drain, reload: the method of the command's name,
 * with the row's operand if it has one; the row says what to do with the
 * result. */
static int
cmd_simple(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    const struct operand *op = cmd->operand;
    uint64_t arg = 0;
    int rc = plain_args(cmd->name, argc, argv, op != NULL,
                        op != NULL ? op->what : NULL);

    if (rc >= 0)
        return rc;
    if (op != NULL && parse_uint(argv[optind], op->max, &arg) < 0)
        return usage_error(cmd->name, "'%s' is not %s", argv[optind], op->what);

    struct fp_buf params = FP_BUF_INIT;
    if (pack_params(&params, op != NULL, arg) < 0)
        return CTL_EXIT_FAIL;
    json_t *res = run_method(to, cmd->name, &params, &rc);
    fp_buf_free(&params);
    if (res == NULL)
        return rc;
    switch (cmd->result) {
    case RESULT_IGNORED:
        rc = CTL_EXIT_OK;
        break;
    case RESULT_PRINTED:
        rc = print_or_fail(res);
        break;
    case RESULT_PRINTED_TRUE_OK:
        rc = print_or_fail(res) == CTL_EXIT_OK && json_is_true(res)
                 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
        break;
    }
    json_decref(res);
    return rc;
}

/* metrics: the result string, byte for byte. */
static int
cmd_metrics(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    int rc = plain_args(cmd->name, argc, argv, 0, NULL);
    if (rc >= 0)
        return rc;

    fp_client *c;
    const char *text;
    size_t n;

    if ((rc = ctl_connect(&c, to)) < 0
        || (rc = fp_client_metrics(c, &text, &n)) < 0) {
        if (rc == FP_CLIENT_EREFUSED || rc == FP_CLIENT_EPROTO) {
            fprintf(stderr, "forkpoolctl: %s\n", fp_client_error(c));
            rc = CTL_EXIT_FAIL;
        } else {
            rc = ctl_fail(to, c, rc, cmd->name);
        }
    } else if (fwrite(text, 1, n, stdout) != n || fflush(stdout) == EOF) {
        rc = CTL_EXIT_FAIL;
    } else {
        rc = CTL_EXIT_OK;
    }
    fp_client_close(c);
    return rc;
}

/* events: ctl_events.c parses its own options. */
static int
cmd_events(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    (void)cmd;
    return ctl_events(to, argc, argv);
}

/* top: ctl_top.c parses its own options. */
static int
cmd_top(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    (void)cmd;
    return ctl_top(to, argc, argv);
}

/* limit: ctl_limit.c parses its own options. */
static int
cmd_limit(const struct command *cmd, const struct ctl_target *to, int argc,
    char **argv)
{
    (void)cmd;
    return ctl_limit(to, usage_text, argc, argv);
}

/* ---- the command table and main ------------------------------------------ */

static const struct operand worker_count = { "a worker count", UINT32_MAX };
static const struct operand job_id = { "a job id", UINT64_MAX };

static const struct command commands[] = {
    { .name = "submit", .run = cmd_submit, .runs_jobs = 1 },
    { .name = "map", .run = cmd_map, .runs_jobs = 1 },
    { .name = "status", .run = cmd_status },
    { .name = "metrics", .run = cmd_metrics },
    { .name = "top", .run = cmd_top },
    { .name = "events", .run = cmd_events },
    { .name = "scale", .run = cmd_simple, .operand = &worker_count,
      .result = RESULT_PRINTED },
    { .name = "cancel", .run = cmd_simple, .operand = &job_id,
      .result = RESULT_PRINTED_TRUE_OK },
    { .name = "drain", .run = cmd_simple },
    { .name = "reload", .run = cmd_simple },
    { .name = "limit", .run = cmd_limit },
};

/* The row of the command called `name`, or NULL. */
static const struct command *
find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "rpc-timeout", required_argument, NULL, OPT_RPC_TIMEOUT },
        { "redis", required_argument, NULL, OPT_REDIS },
        { "redis-queue", required_argument, NULL, OPT_REDIS_QUEUE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char defpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct ctl_target to = { .path = NULL };
    struct ctl_redis_target redis = {
        .queue = FP_REDIS_DEFAULT_QUEUE, .retention = FP_REDIS_DEFAULT_RETENTION,
    };
    int c, timeout_given = 0, queue_given = 0;

    signal(SIGPIPE, SIG_IGN);
    opterr = 0;
    /* '+': options end at the command; its own options follow it. */
    while ((c = getopt_long(argc, argv, "+:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            /* Checked here: a path that cannot be a socket address is a
             * usage error, not an unreachable daemon. */
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof defpath)
                return usage_error(NULL, "-s: socket path %s (1 to %zu bytes)",
                                   optarg[0] == '\0' ? "empty" : "too long",
                                   sizeof defpath - 1);
            to.path = optarg;
            break;
        case OPT_RPC_TIMEOUT:
            if (parse_seconds(optarg, &to.rpc_timeout) < 0)
                return usage_error(NULL, "--rpc-timeout: '%s' is not a number "
                                   "of seconds >= 0", optarg);
            timeout_given = 1;
            break;
        case OPT_REDIS: {
            struct fp_redis_url u;
            char why[600];
            if (fp_redis_url_parse(optarg, &u, why, sizeof why) < 0)
                return usage_error(NULL, "--redis: %s", why);
            redis.url = optarg;
            to.redis = &redis;
            break;
        }
        case OPT_REDIS_QUEUE:
            if (optarg[0] == '\0' || strlen(optarg) > 200
                || strpbrk(optarg, "{} \t\n") != NULL)
                return usage_error(NULL, "--redis-queue: '%s': 1 to 200 "
                                   "printable characters, no spaces or braces",
                                   optarg);
            redis.queue = optarg;
            queue_given = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CTL_EXIT_OK;
        case 'V':
            printf("forkpoolctl %s\n", PACKAGE_VERSION);
            return CTL_EXIT_OK;
        default:
            return bad_option(NULL, c, argv);
        }
    }
    if (optind >= argc)
        return usage_error(NULL, "no command given");
    if (to.path == NULL) {
        if (fp_default_socket_path(defpath, sizeof defpath) < 0)
            return usage_error(NULL, "default socket path too long; use -s");
        to.path = defpath;
    }

    const struct command *cmd = find_command(argv[optind]);
    if (cmd == NULL)
        return usage_error(NULL, "unknown command '%s'", argv[optind]);
    if (!timeout_given)
        to.rpc_timeout = cmd->runs_jobs ? 0 : CTL_DEFAULT_RPC_TIMEOUT;
    if (queue_given && to.redis == NULL)
        return usage_error(NULL, "--redis-queue: needs --redis");
    if (to.redis != NULL && cmd->run != cmd_submit && cmd->run != cmd_map)
        return usage_error(cmd->name, "--redis: only submit and map go "
                           "through Redis");
    redis.rpc_timeout = to.rpc_timeout;
    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0;                 /* GNU getopt: start over on the command */
    return cmd->run(cmd, &to, cargc, cargv);
}
