/*
 * daemon_opts.h — forkpoold's options: the command line and the optional
 * config file (--config: one option per line, the same names as the
 * flags; flags given on the command line override it).
 *
 * Everything that can make the daemon exit 2 (a bad flag or value) is
 * checked here, before anything is started.  The parser never exits and
 * never prints: it says what it found, and main() acts on it.
 */
#ifndef FP_DAEMON_OPTS_H
#define FP_DAEMON_OPTS_H

#include <limits.h>
#include <stdio.h>
#include <msgpack.h>
#include <wordexp.h>
#include "forkpool.h"
#include "redis/redis_source.h"

#define EXIT_USAGE 2

/* What fp_daemon_opts_parse() found. */
enum fp_opts_result {
    FP_OPTS_ERROR = -1,     /* a bad flag or value: one line in o->err */
    FP_OPTS_RUN = 0,        /* all read and checked: run the daemon */
    FP_OPTS_HELP,           /* --help: print fp_daemon_usage(), exit 0 */
    FP_OPTS_VERSION,        /* --version */
};

struct fp_daemon_opts {
    fp_config       cfg;            /* for fp_pool_new (log fields aside) */
    unsigned        max_workers;
    const char     *socket;         /* -s, or NULL: the default rule */
    const char     *handler;        /* what runs in the workers, for the log */
    double          drain_timeout;
    size_t          reply_soft;     /* --reply-soft-limit (0: the default) */
    size_t          reply_hard;     /* --reply-hard-limit (0: the default) */
    size_t          reply_total;    /* --reply-max-bytes (0: the default) */
    int             log_level;      /* FP_LOG_*: most verbose emitted */
    int             log_syslog;     /* --log syslog */
    int             log_stderr;     /* --log stderr, said explicitly */
    int             daemonize;      /* --daemon */
    const char     *pidfile;        /* --pidfile, or NULL */
    const char     *config_file;    /* --config, or NULL */
    int             idle_timeout_set; /* --idle-timeout given */
    /* --redis and its companions (SPEC 10); redis.url_text NULL = none. */
    struct fp_redis_source_cfg redis;
    const char     *redis_only_flag;/* a --redis-* flag given, for the
                                       "needs --redis" error */
    /* FP_OPTS_ERROR: what is wrong, naming the flag (and FILE:LINE for the
     * config file), without the program name or a newline. */
    char            err[1024];

    /* Storage the pointers above may point into. */
    char            module_abs[PATH_MAX + 2];
    char            socket_abs[PATH_MAX + 2];
    char            pidfile_abs[PATH_MAX + 2];
    msgpack_sbuffer module_config;
    wordexp_t       exec_words;
    int             have_exec_words;
    char           *conf_text;      /* the config file, split in place */
};

/* Read the config file (if --config names one, in any spelling getopt
 * accepts), then the command line, into o, and check it all.  Returns an
 * enum fp_opts_result; -1 (FP_OPTS_ERROR) with o->err set on a bad flag or
 * value.  Call fp_daemon_opts_free() whatever it returned. */
int  fp_daemon_opts_parse(struct fp_daemon_opts *o, int argc, char **argv);

void fp_daemon_opts_free(struct fp_daemon_opts *o);

/* The --help text, defaults included. */
void fp_daemon_usage(FILE *out);

#endif
