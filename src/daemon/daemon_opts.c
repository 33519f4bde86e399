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
#include "daemon_opts.h"
#include "common/jsonmp.h"

#define MAX_WORKERS 1024           /* default --max-workers */
#define MAX_WORKERS_CAP 65536      /* the most --max-workers may say */
#define CONFIG_MAX (1 << 20)       /* largest config file */

/* "FILE:LINE" while a config file line is applied, for error messages: the
 * one piece of state the error path needs besides its arguments. */
static char conf_where[512];

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
"                           (default 128)\n"
"      --drain-timeout S    how long a drain may take (default 30; 0 = no limit)\n"
"      --sandbox LEVEL      worker confinement: none, basic (default) or strict\n"
"                           (strict: seccomp allowlist after init, own network\n"
"                           namespace; needs --module or --builtin echo)\n"
"      --rlimit-as MiB      address space of each worker\n"
"      --rlimit-cpu S       CPU seconds each job may use (SIGXCPU past it)\n"
"      --rlimit-nofile N    open files per worker\n"
"      --user USER          when started as root, run workers as USER\n"
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
            fp_builtin_names());
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("forkpoold: ", stderr);
    if (conf_where[0] != '\0')
        fprintf(stderr, "%s: ", conf_where);
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

enum {
    OPT_MODULE = 256, OPT_MODULE_CONFIG, OPT_EXEC, OPT_BUILTIN, OPT_JOB_TIMEOUT,
    OPT_QUEUE_MAX, OPT_MAX_JOB_BYTES, OPT_MAX_JOBS, OPT_DRAIN_TIMEOUT, OPT_PREFETCH,
    OPT_MAX_RSS, OPT_SLOW_LOG, OPT_QUEUE_MAX_BYTES, OPT_MAX_WORKERS,
    OPT_SANDBOX, OPT_RLIMIT_AS, OPT_RLIMIT_CPU, OPT_RLIMIT_NOFILE, OPT_USER,
    OPT_PIDFILE, OPT_LOG, OPT_LOG_LEVEL,
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
parse_log_level(const char *s)
{
    static const char *const names[] = { "err", "warning", "info", "debug" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (strcmp(s, "error") == 0 || strcmp(s, "warn") == 0)
        return s[0] == 'e' ? FP_LOG_ERR : FP_LOG_WARN;
    usage_error("--log-level: expected err, warning, info or debug, got '%s'", s);
}

/* Which handler flags were given, to refuse two of them. */
struct handlers {
    const char *module, *module_config, *exec, *builtin;
    int         count;
};

/* Apply one option (from the command line or the config file). */
static void
apply_option(struct fp_daemon_opts *o, struct handlers *h, int opt, const char *arg)
{
    fp_config *cfg = &o->cfg;

    switch (opt) {
    case 'w': cfg->workers = (unsigned)parse_uint("--workers", arg, 1, MAX_WORKERS_CAP); break;
    case OPT_MAX_WORKERS:
        o->max_workers = (unsigned)parse_uint("--max-workers", arg, 1, MAX_WORKERS_CAP); break;
    case 's': o->socket = arg; break;
    case OPT_MODULE: h->module = arg; h->count++; break;
    case OPT_MODULE_CONFIG: h->module_config = arg; break;
    case OPT_EXEC: h->exec = arg; h->count++; break;
    case OPT_BUILTIN: h->builtin = arg; h->count++; break;
    case OPT_JOB_TIMEOUT: cfg->job_timeout = parse_seconds("--job-timeout", arg); break;
    case OPT_QUEUE_MAX:
        cfg->queue_max = parse_uint("--queue-max", arg, 1, 100000000); break;
    case OPT_QUEUE_MAX_BYTES:
        cfg->queue_max_bytes = parse_uint("--queue-max-bytes", arg, 1024, 1ULL << 40); break;
    case OPT_MAX_JOB_BYTES:
        cfg->max_job_bytes = parse_uint("--max-job-bytes", arg, 16, 1ULL << 30); break;
    case OPT_MAX_JOBS:
        cfg->max_jobs = (unsigned)parse_uint("--max-jobs", arg, 0, UINT_MAX); break;
    case OPT_PREFETCH:
        cfg->prefetch = (unsigned)parse_uint("--prefetch", arg, 1, 1024); break;
    case OPT_MAX_RSS:
        cfg->max_rss = (size_t)parse_uint("--max-rss", arg, 0, 1u << 20) << 20; break;
    case OPT_SLOW_LOG: cfg->slow_log = parse_seconds("--slow-log", arg); break;
    case OPT_DRAIN_TIMEOUT: o->drain_timeout = parse_seconds("--drain-timeout", arg); break;
    case OPT_SANDBOX: cfg->sandbox = parse_sandbox(arg); break;
    case OPT_RLIMIT_AS:
        cfg->rlimit_as = (size_t)parse_uint("--rlimit-as", arg, 16, 1u << 30) << 20; break;
    case OPT_RLIMIT_CPU:
        cfg->rlimit_cpu = (unsigned)parse_uint("--rlimit-cpu", arg, 1, 1000000); break;
    case OPT_RLIMIT_NOFILE:
        cfg->rlimit_nofile = (unsigned)parse_uint("--rlimit-nofile", arg, 8, 1u << 20); break;
    case OPT_USER: cfg->user = arg; break;
    case 'c': break;                /* read before everything else */
    case 'd': o->daemonize = 1; break;
    case OPT_PIDFILE:
        if (arg[0] == '\0')
            usage_error("--pidfile: empty path");
        o->pidfile = arg;
        break;
    case OPT_LOG:
        if (strcmp(arg, "syslog") != 0 && strcmp(arg, "stderr") != 0)
            usage_error("--log: expected stderr or syslog, got '%s'", arg);
        o->log_syslog = strcmp(arg, "syslog") == 0;
        o->log_stderr = !o->log_syslog;
        break;
    case OPT_LOG_LEVEL: o->log_level = parse_log_level(arg); break;
    case 'v': o->log_level = FP_LOG_DEBUG; break;
    }
}

/* ------------------------------------------------------------------------
 * The config file
 * ------------------------------------------------------------------------ */

/* The config file named on the command line, if any (it is read first so
 * that every flag overrides it). */
static const char *
find_config_flag(int argc, char **argv)
{
    const char *found = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)) {
            if (i + 1 >= argc)
                usage_error("%s: missing value", argv[i]);
            found = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            found = argv[i] + 9;
        } else if (strncmp(argv[i], "-c", 2) == 0) {
            found = argv[i] + 2;
        }
    }
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

/* Apply every "NAME [VALUE]" line of the config file.  Its text stays in
 * o->conf_text: the options point into it. */
static void
read_config(struct fp_daemon_opts *o, struct handlers *h, const char *path)
{
    FILE *f = fopen(path, "re");
    char *line, *next;
    unsigned lineno = 0;

    if (f == NULL)
        usage_error("--config: cannot read %s: %s", path, strerror(errno));
    o->conf_text = malloc(CONFIG_MAX + 1);
    if (o->conf_text == NULL)
        usage_error("--config: out of memory");
    size_t n = fread(o->conf_text, 1, CONFIG_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        usage_error("--config: cannot read %s", path);
    if (n > CONFIG_MAX)
        usage_error("--config: %s is larger than %d bytes", path, CONFIG_MAX);
    o->conf_text[n] = '\0';
    if (memchr(o->conf_text, '\0', n) != NULL)
        usage_error("--config: %s is not a text file", path);

    for (line = o->conf_text; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *name = trim(line);
        if (*name == '\0')
            continue;
        snprintf(conf_where, sizeof(conf_where), "%s:%u", path, lineno);
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
        const struct option *opt = NULL;
        for (const struct option *p = long_options; p->name != NULL; p++)
            if (strcmp(p->name, name) == 0)
                opt = p;
        if (opt == NULL)
            usage_error("unknown option '%s'", name);
        if (opt->val == 'c' || opt->val == 'h' || opt->val == 'V')
            usage_error("'%s' cannot be used in a config file", name);
        if (opt->has_arg == required_argument && *value == '\0')
            usage_error("--%s: missing value", name);
        if (opt->has_arg == no_argument && *value != '\0')
            usage_error("--%s takes no value", name);
        apply_option(o, h, opt->val, value);
    }
    conf_where[0] = '\0';
}

/* ------------------------------------------------------------------------
 * Checks across options
 * ------------------------------------------------------------------------ */

/* `path` made absolute in buf (the daemon may chdir /). */
static const char *
absolute(const char *flag, const char *path, char *buf, size_t len)
{
    char cwd[PATH_MAX];

    if (path[0] == '/')
        return path;
    if (getcwd(cwd, sizeof(cwd)) == NULL
        || snprintf(buf, len, "%s/%s", cwd, path) >= (int)len)
        usage_error("%s: path too long", flag);
    return buf;
}

static void
check_handler(struct fp_daemon_opts *o, const struct handlers *h)
{
    fp_config *cfg = &o->cfg;
    char err[512];
    void *handle;

    if (h->count > 1)
        usage_error("--module, --exec and --builtin are exclusive: choose one");
    if (h->module_config != NULL && h->module == NULL)
        usage_error("--module-config: needs --module");
    if (cfg->sandbox == FP_SANDBOX_STRICT && h->exec != NULL)
        usage_error("--sandbox strict: not with --exec (the seccomp filter is "
                    "loaded by forkpool's own job loop); use --module");
    if (cfg->sandbox == FP_SANDBOX_STRICT && h->module == NULL
        && (h->builtin == NULL || strcmp(h->builtin, "cmd") == 0))
        usage_error("--sandbox strict: the cmd builtin forks and execs, which "
                    "strict forbids; use --module or --builtin echo");
    if (h->module != NULL) {
        /* Checked here, before anything forks; each worker then loads the
         * file itself, so a reload picks up a new build of it. */
        if (fp_module_load(h->module, &handle, err, sizeof(err)) == NULL)
            usage_error("--module: %s", err);
        dlclose(handle);
        cfg->module_path = absolute("--module", h->module, o->module_abs,
                                    sizeof(o->module_abs));
        o->handler = h->module;
        if (h->module_config != NULL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &o->module_config, msgpack_sbuffer_write);
            if (fp_json_text_pack(h->module_config, strlen(h->module_config), &pk,
                                  err, sizeof(err)) < 0)
                usage_error("--module-config: invalid JSON: %s", err);
            cfg->module_config = o->module_config.data;
            cfg->module_config_len = o->module_config.size;
        }
    } else if (h->exec != NULL) {
        int rc = wordexp(h->exec, &o->exec_words, WRDE_NOCMD);
        o->have_exec_words = rc == 0;
        if (rc != 0 || o->exec_words.we_wordc == 0)
            usage_error("--exec: cannot split '%s' into a command and arguments", h->exec);
        cfg->exec_argv = o->exec_words.we_wordv;
        o->handler = h->exec;
    } else {
        o->handler = h->builtin != NULL ? h->builtin : "cmd";
        cfg->module = fp_builtin_find(o->handler);
        if (cfg->module == NULL)
            usage_error("--builtin: unknown handler '%s' (choose from %s)",
                        h->builtin, fp_builtin_names());
    }
}

void
fp_daemon_opts_parse(struct fp_daemon_opts *o, int argc, char **argv)
{
    static char socket_abs[PATH_MAX + 2], pidfile_abs[PATH_MAX + 2];
    struct handlers h = { 0 };
    int opt;

    memset(o, 0, sizeof(*o));
    fp_config_init(&o->cfg);
    o->max_workers = MAX_WORKERS;
    o->drain_timeout = 30;
    o->log_level = FP_LOG_INFO;
    msgpack_sbuffer_init(&o->module_config);

    o->config_file = find_config_flag(argc, argv);
    if (o->config_file != NULL)
        read_config(o, &h, o->config_file);

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":w:s:c:dvhV", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h': usage(stdout); exit(0);
        case 'V': printf("forkpoold %s\n", PACKAGE_VERSION); exit(0);
        case ':': usage_error("%s: missing value", argv[optind - 1]);
        case '?':
            if (optopt != 0)
                usage_error("unknown option '-%c'", optopt);
            usage_error("unknown option '%s'", argv[optind - 1]);
        default:
            apply_option(o, &h, opt, optarg);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (o->cfg.workers > o->max_workers)
        usage_error("--workers: %u is more than --max-workers (%u)", o->cfg.workers,
                    o->max_workers);
    check_handler(o, &h);
    if (o->cfg.user != NULL) {
        struct passwd *pw = getpwnam(o->cfg.user);
        if (pw == NULL)
            usage_error("--user: no such user '%s'", o->cfg.user);
        if (pw->pw_uid == 0)
            usage_error("--user: '%s' is root; workers need an unprivileged user",
                        o->cfg.user);
    }
    /* --daemon moves to /: relative paths are taken from here first. */
    if (o->daemonize && o->socket != NULL)
        o->socket = absolute("--socket", o->socket, socket_abs, sizeof(socket_abs));
    if (o->daemonize && o->pidfile != NULL)
        o->pidfile = absolute("--pidfile", o->pidfile, pidfile_abs, sizeof(pidfile_abs));
    o->cfg.max_workers = o->max_workers;
}

void
fp_daemon_opts_free(struct fp_daemon_opts *o)
{
    if (o->have_exec_words)
        wordfree(&o->exec_words);
    msgpack_sbuffer_destroy(&o->module_config);
    free(o->conf_text);
}
