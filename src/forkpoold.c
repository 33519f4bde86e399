/*
 * forkpoold.c — the daemon: options, the control socket, signals.
 * All the work is in libforkpool (pool) and control.c (the socket).
 *
 * Exit status: 0 after a clean drain, 1 when the drain was cut off or the
 * daemon could not start, 2 for bad flags or values.
 */
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wordexp.h>
#include <ev.h>

#include "forkpool.h"
#include "builtin.h"
#include "control.h"
#include "jsonmp.h"
#include "log.h"
#include "proctitle.h"
#include "sockpath.h"

#define EXIT_USAGE 2
#define MAX_WORKERS 1024           /* default --max-workers */
#define MAX_WORKERS_CAP 65536      /* the most --max-workers may say */

struct daemon {
    struct ev_loop    *loop;
    fp_pool           *pool;
    struct fp_control *ctl;
    struct fp_logger   log;
    double             drain_timeout;
    int                exit_code;
    ev_signal          sig_term, sig_int, sig_hup, sig_ttin, sig_ttou;
};

static void
usage(FILE *out)
{
    fprintf(out,
"Usage: forkpoold [options]\n"
"Run a crash-isolating pool of worker processes, controlled over a UNIX socket.\n"
"\n"
"  -w, --workers N          worker processes (default: online CPUs)\n"
"      --max-workers N      upper bound for scale, SIGTTIN and -w (default 1024)\n"
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
"                           (default 65536)\n"
"      --queue-max-bytes N  payload bytes held for unfinished jobs before\n"
"                           submissions are rejected (default 1 GiB)\n"
"      --max-job-bytes N    largest job or result in bytes (default 64 MiB)\n"
"      --max-jobs N         recycle a worker after N jobs, plus up to 10%%\n"
"                           jitter (0 = never)\n"
"      --max-rss MiB        recycle a worker, between jobs, once its resident\n"
"                           memory passes MiB (0 = never)\n"
"      --slow-log S         log each job still running after S seconds\n"
"      --prefetch N         jobs queued at one worker when the queue is deep\n"
"                           (default 16)\n"
"      --drain-timeout S    how long a drain may take (default 30; 0 = no limit)\n"
"      --sandbox LEVEL      worker confinement: none, basic (default) or strict\n"
"                           (strict: seccomp allowlist after init, own network\n"
"                           namespace; needs --module or --builtin echo)\n"
"      --rlimit-as MiB      address space of each worker\n"
"      --rlimit-cpu S       CPU seconds each job may use (SIGXCPU past it)\n"
"      --rlimit-nofile N    open files per worker\n"
"      --user USER          when started as root, run workers as USER\n"
"  -v, --verbose            log debug lines too\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Signals: SIGTERM/SIGINT drain gracefully (a second one cuts the drain off);\n"
"SIGHUP replaces every worker, one at a time, after its current job;\n"
"SIGTTIN/SIGTTOU add/remove one worker.\n",
            fp_builtin_names());
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("forkpoold: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see forkpoold --help)\n", stderr);
    exit(EXIT_USAGE);
}

static unsigned long long
parse_uint(const char *flag, const char *s, unsigned long long min,
           unsigned long long max)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (s[0] == '-' || s[0] == '\0')
        goto bad;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        goto bad;
    return v;
bad:
    usage_error("%s: expected an integer from %llu to %llu, got '%s'", flag, min, max, s);
}

static int
parse_sandbox(const char *s)
{
    if (strcmp(s, "none") == 0)
        return FP_SANDBOX_NONE;
    if (strcmp(s, "basic") == 0)
        return FP_SANDBOX_BASIC;
    if (strcmp(s, "strict") == 0)
        return FP_SANDBOX_STRICT;
    usage_error("--sandbox: expected none, basic or strict, got '%s'", s);
}

static double
parse_seconds(const char *flag, const char *s)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > 1e9)
        usage_error("%s: expected a number of seconds >= 0, got '%s'", flag, s);
    return v;
}

/* Daemons must not hand out fds 0-2 by accident: make sure they are open. */
static void
ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            exit(1);
}

/* ------------------------------------------------------------------------
 * Drain and signals
 * ------------------------------------------------------------------------ */

static void
flushed_cb(void *arg)
{
    struct daemon *d = arg;
    ev_break(d->loop, EVBREAK_ALL);
}

static void
drained_cb(fp_pool *pool, int cut_off, void *arg)
{
    struct daemon *d = arg;
    (void)pool;

    d->exit_code = cut_off ? 1 : 0;
    fp_logf(&d->log, FP_LOG_INFO, "drained%s; exiting",
            cut_off ? " (cut off by the drain timeout)" : "");
    fp_control_shutdown(d->ctl, 5.0, flushed_cb, d);
}

static void
start_drain(void *arg)
{
    struct daemon *d = arg;
    fp_pool_drain(d->pool, d->drain_timeout, drained_cb, d);
}

static void
term_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    (void)loop; (void)revents;

    fp_logf(&d->log, FP_LOG_INFO, "%s received", strsignal(sw->signum));
    start_drain(d);
}

static void
hup_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    (void)loop; (void)revents;

    fp_pool_reload(d->pool);
}

/* SIGTTIN: one worker more; SIGTTOU: one fewer (never below one). */
static void
scale_signal_cb(struct ev_loop *loop, ev_signal *sw, int revents)
{
    struct daemon *d = sw->data;
    fp_stats st;
    unsigned n;
    (void)loop; (void)revents;

    fp_pool_stats(d->pool, &st);
    n = sw->signum == SIGTTIN ? st.workers + 1 : st.workers - 1;
    if (n < 1 || fp_pool_scale(d->pool, n) < 0)
        fp_logf(&d->log, FP_LOG_WARN, "%s: staying at %u workers",
                strsignal(sw->signum), st.workers);
}

static void
watch_signal(struct daemon *d, ev_signal *sw, int sig,
             void (*cb)(struct ev_loop *, ev_signal *, int))
{
    ev_signal_init(sw, cb, sig);
    sw->data = d;
    ev_signal_start(d->loop, sw);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

enum {
    OPT_MODULE = 256, OPT_MODULE_CONFIG, OPT_EXEC, OPT_BUILTIN, OPT_JOB_TIMEOUT,
    OPT_QUEUE_MAX, OPT_MAX_JOB_BYTES, OPT_MAX_JOBS, OPT_DRAIN_TIMEOUT, OPT_PREFETCH,
    OPT_MAX_RSS, OPT_SLOW_LOG, OPT_QUEUE_MAX_BYTES, OPT_MAX_WORKERS,
    OPT_SANDBOX, OPT_RLIMIT_AS, OPT_RLIMIT_CPU, OPT_RLIMIT_NOFILE, OPT_USER,
};

static const struct option long_options[] = {
    { "workers",       required_argument, NULL, 'w' },
    { "max-workers",   required_argument, NULL, OPT_MAX_WORKERS },
    { "socket",        required_argument, NULL, 's' },
    { "module",        required_argument, NULL, OPT_MODULE },
    { "module-config", required_argument, NULL, OPT_MODULE_CONFIG },
    { "exec",          required_argument, NULL, OPT_EXEC },
    { "builtin",       required_argument, NULL, OPT_BUILTIN },
    { "job-timeout",   required_argument, NULL, OPT_JOB_TIMEOUT },
    { "queue-max",     required_argument, NULL, OPT_QUEUE_MAX },
    { "queue-max-bytes", required_argument, NULL, OPT_QUEUE_MAX_BYTES },
    { "max-job-bytes", required_argument, NULL, OPT_MAX_JOB_BYTES },
    { "max-jobs",      required_argument, NULL, OPT_MAX_JOBS },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
    { "prefetch",      required_argument, NULL, OPT_PREFETCH },
    { "max-rss",       required_argument, NULL, OPT_MAX_RSS },
    { "slow-log",      required_argument, NULL, OPT_SLOW_LOG },
    { "sandbox",       required_argument, NULL, OPT_SANDBOX },
    { "rlimit-as",     required_argument, NULL, OPT_RLIMIT_AS },
    { "rlimit-cpu",    required_argument, NULL, OPT_RLIMIT_CPU },
    { "rlimit-nofile", required_argument, NULL, OPT_RLIMIT_NOFILE },
    { "user",          required_argument, NULL, OPT_USER },
    { "verbose",       no_argument,       NULL, 'v' },
    { "help",          no_argument,       NULL, 'h' },
    { "version",       no_argument,       NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
    struct daemon d;
    fp_config cfg;
    char err[512], sockpath[108], module_abs[PATH_MAX + 1];
    const char *socket_opt = NULL, *module_path = NULL, *module_config = NULL;
    const char *exec_cmd = NULL, *builtin = NULL;
    msgpack_sbuffer config_mp;
    wordexp_t exec_words;
    void *module_handle = NULL;
    int handlers = 0, opt;
    unsigned max_workers = MAX_WORKERS;

    argv = fp_proctitle_init(argc, argv);
    memset(&d, 0, sizeof(d));
    d.drain_timeout = 30;
    d.log.fn = fp_log_stderr;
    d.log.arg = "forkpoold";
    d.log.level = FP_LOG_INFO;
    fp_config_init(&cfg);
    msgpack_sbuffer_init(&config_mp);
    memset(&exec_words, 0, sizeof(exec_words));

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":w:s:vhV", long_options, NULL)) != -1) {
        switch (opt) {
        case 'w': cfg.workers = (unsigned)parse_uint("--workers", optarg, 1, MAX_WORKERS_CAP); break;
        case OPT_MAX_WORKERS:
            max_workers = (unsigned)parse_uint("--max-workers", optarg, 1, MAX_WORKERS_CAP); break;
        case 's': socket_opt = optarg; break;
        case OPT_MODULE: module_path = optarg; handlers++; break;
        case OPT_MODULE_CONFIG: module_config = optarg; break;
        case OPT_EXEC: exec_cmd = optarg; handlers++; break;
        case OPT_BUILTIN: builtin = optarg; handlers++; break;
        case OPT_JOB_TIMEOUT: cfg.job_timeout = parse_seconds("--job-timeout", optarg); break;
        case OPT_QUEUE_MAX:
            cfg.queue_max = parse_uint("--queue-max", optarg, 1, 100000000); break;
        case OPT_QUEUE_MAX_BYTES:
            cfg.queue_max_bytes = parse_uint("--queue-max-bytes", optarg, 1024, 1ULL << 40); break;
        case OPT_MAX_JOB_BYTES:
            cfg.max_job_bytes = parse_uint("--max-job-bytes", optarg, 16, 1ULL << 30); break;
        case OPT_MAX_JOBS:
            cfg.max_jobs = (unsigned)parse_uint("--max-jobs", optarg, 0, UINT_MAX); break;
        case OPT_PREFETCH:
            cfg.prefetch = (unsigned)parse_uint("--prefetch", optarg, 1, 1024); break;
        case OPT_MAX_RSS:
            cfg.max_rss = (size_t)parse_uint("--max-rss", optarg, 0, 1u << 20) << 20; break;
        case OPT_SLOW_LOG: cfg.slow_log = parse_seconds("--slow-log", optarg); break;
        case OPT_DRAIN_TIMEOUT: d.drain_timeout = parse_seconds("--drain-timeout", optarg); break;
        case OPT_SANDBOX: cfg.sandbox = parse_sandbox(optarg); break;
        case OPT_RLIMIT_AS:
            cfg.rlimit_as = (size_t)parse_uint("--rlimit-as", optarg, 16, 1u << 30) << 20; break;
        case OPT_RLIMIT_CPU:
            cfg.rlimit_cpu = (unsigned)parse_uint("--rlimit-cpu", optarg, 1, 1000000); break;
        case OPT_RLIMIT_NOFILE:
            cfg.rlimit_nofile = (unsigned)parse_uint("--rlimit-nofile", optarg, 8, 1u << 20); break;
        case OPT_USER: cfg.user = optarg; break;
        case 'v': d.log.level = FP_LOG_DEBUG; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("forkpoold %s\n", PACKAGE_VERSION); return 0;
        case ':': usage_error("%s: missing value", argv[optind - 1]);
        default:
            if (optopt != 0)
                usage_error("unknown option '-%c'", optopt);
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (cfg.workers > max_workers)
        usage_error("--workers: %u is more than --max-workers (%u)", cfg.workers, max_workers);
    if (handlers > 1)
        usage_error("--module, --exec and --builtin are exclusive: choose one");
    if (module_config != NULL && module_path == NULL)
        usage_error("--module-config: needs --module");
    if (cfg.sandbox == FP_SANDBOX_STRICT && exec_cmd != NULL)
        usage_error("--sandbox strict: not with --exec (the seccomp filter is "
                    "loaded by forkpool's own job loop); use --module");
    if (cfg.sandbox == FP_SANDBOX_STRICT && module_path == NULL
        && (builtin == NULL || strcmp(builtin, "cmd") == 0))
        usage_error("--sandbox strict: the cmd builtin forks and execs, which "
                    "strict forbids; use --module or --builtin echo");
    if (cfg.user != NULL) {
        struct passwd *pw = getpwnam(cfg.user);
        if (pw == NULL)
            usage_error("--user: no such user '%s'", cfg.user);
        if (pw->pw_uid == 0)
            usage_error("--user: '%s' is root; workers need an unprivileged user",
                        cfg.user);
    }

    if (module_path != NULL) {
        /* Checked here, before anything forks; each worker then loads the
         * file itself, so a reload picks up a new build of it. */
        if (fp_module_load(module_path, &module_handle, err, sizeof(err)) == NULL)
            usage_error("--module: %s", err);
        dlclose(module_handle);
        module_handle = NULL;
        if (module_path[0] != '/') {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof(cwd)) == NULL
                || snprintf(module_abs, sizeof(module_abs), "%s/%s", cwd, module_path)
                   >= (int)sizeof(module_abs))
                usage_error("--module: path too long");
            cfg.module_path = module_abs;
        } else {
            cfg.module_path = module_path;
        }
        if (module_config != NULL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &config_mp, msgpack_sbuffer_write);
            if (fp_json_text_pack(module_config, strlen(module_config), &pk,
                                  err, sizeof(err)) < 0)
                usage_error("--module-config: invalid JSON: %s", err);
            cfg.module_config = config_mp.data;
            cfg.module_config_len = config_mp.size;
        }
    } else if (exec_cmd != NULL) {
        int rc = wordexp(exec_cmd, &exec_words, WRDE_NOCMD);
        if (rc != 0 || exec_words.we_wordc == 0)
            usage_error("--exec: cannot split '%s' into a command and arguments", exec_cmd);
        cfg.exec_argv = exec_words.we_wordv;
    } else {
        cfg.module = fp_builtin_find(builtin != NULL ? builtin : "cmd");
        if (cfg.module == NULL)
            usage_error("--builtin: unknown handler '%s' (choose from %s)",
                        builtin, fp_builtin_names());
    }
    if (socket_opt != NULL) {
        if (snprintf(sockpath, sizeof(sockpath), "%s", socket_opt) >= (int)sizeof(sockpath))
            usage_error("--socket: path too long (at most %zu bytes)", sizeof(sockpath) - 1);
    } else if (fp_default_socket_path(sockpath, sizeof(sockpath)) < 0) {
        usage_error("default socket path is too long; use --socket");
    }

    ensure_stdio();
    signal(SIGPIPE, SIG_IGN);
    cfg.log = d.log.fn;
    cfg.log_arg = d.log.arg;
    cfg.log_level = d.log.level;
    cfg.max_workers = max_workers;
    cfg.title = fp_proctitle_set;
    d.loop = ev_default_loop(0);
    d.pool = fp_pool_new(d.loop, &cfg, err, sizeof(err));
    if (d.pool == NULL) {
        fprintf(stderr, "forkpoold: %s\n", err);
        return 1;
    }
    struct fp_control_hooks hooks = { .drain = start_drain, .arg = &d };
    d.ctl = fp_control_open(d.loop, d.pool, sockpath, &hooks, &d.log, err, sizeof(err));
    if (d.ctl == NULL) {
        fprintf(stderr, "forkpoold: %s\n", err);
        fp_pool_free(d.pool);
        return 1;
    }
    fp_control_set_job_limits(d.ctl, cfg.max_job_bytes ? cfg.max_job_bytes : 64u << 20,
                              cfg.max_job_objects ? cfg.max_job_objects : 1u << 20,
                              max_workers);
    watch_signal(&d, &d.sig_term, SIGTERM, term_cb);
    watch_signal(&d, &d.sig_int, SIGINT, term_cb);
    watch_signal(&d, &d.sig_hup, SIGHUP, hup_cb);
    watch_signal(&d, &d.sig_ttin, SIGTTIN, scale_signal_cb);
    watch_signal(&d, &d.sig_ttou, SIGTTOU, scale_signal_cb);
    if (fp_pool_start(d.pool) < 0) {
        fprintf(stderr, "forkpoold: cannot start workers: %s\n", strerror(errno));
        fp_control_close(d.ctl);
        fp_pool_free(d.pool);
        return 1;
    }
    fp_stats st;
    fp_pool_stats(d.pool, &st);
    fp_logf(&d.log, FP_LOG_INFO, "listening on %s with %u worker%s (%s)", sockpath,
            st.workers, st.workers == 1 ? "" : "s", module_path ? module_path : exec_cmd ? exec_cmd
                                    : builtin ? builtin : "cmd");

    char title[160];
    snprintf(title, sizeof(title), "forkpool: master %s", sockpath);
    fp_proctitle_set(title, NULL);
    ev_run(d.loop, 0);

    fp_pool_free(d.pool);       /* first: it may still owe clients outcomes */
    fp_control_close(d.ctl);
    if (exec_cmd != NULL)
        wordfree(&exec_words);
    msgpack_sbuffer_destroy(&config_mp);
    ev_loop_destroy(d.loop);
    return d.exit_code;
}
