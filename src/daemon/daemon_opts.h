/*
 * daemon_opts.h — forkpoold's options: the command line and the optional
 * config file (--config: one option per line, the same names as the
 * flags; flags given on the command line override it).
 *
 * Everything that can make the daemon exit 2 (a bad flag or value) is
 * checked here, before anything is started.
 */
#ifndef FP_DAEMON_OPTS_H
#define FP_DAEMON_OPTS_H

#include <msgpack.h>
#include <wordexp.h>
#include "forkpool.h"

#define EXIT_USAGE 2

struct fp_daemon_opts {
    fp_config       cfg;            /* for fp_pool_new (log fields aside) */
    unsigned        max_workers;
    const char     *socket;         /* -s, or NULL: the default rule */
    const char     *handler;        /* what runs in the workers, for the log */
    double          drain_timeout;
    int             log_level;      /* FP_LOG_*: most verbose emitted */
    int             log_syslog;     /* --log syslog */
    int             log_stderr;     /* --log stderr, said explicitly */
    int             daemonize;      /* --daemon */
    const char     *pidfile;        /* --pidfile, or NULL */
    const char     *config_file;    /* --config, or NULL */

    /* Storage the pointers above may point into. */
    char            module_abs[4096 + 2];
    msgpack_sbuffer module_config;
    wordexp_t       exec_words;
    int             have_exec_words;
    char           *conf_text;      /* the config file, split in place */
};

/* Read the config file (if --config names one), then the command line,
 * into o, and check it all.  Exits 2 with a one-line message naming the
 * flag (and FILE:LINE for the config file) on a bad flag or value, and 0
 * after --help or --version. */
void fp_daemon_opts_parse(struct fp_daemon_opts *o, int argc, char **argv);

void fp_daemon_opts_free(struct fp_daemon_opts *o);

#endif
