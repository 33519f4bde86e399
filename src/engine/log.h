/* log.h — the pool's logging: one line per event through the user's sink. */
#ifndef FP_LOG_H
#define FP_LOG_H

#include "forkpool.h"

/* The longest message fp_logf passes to a sink (longer ones are cut). */
#define FP_LOG_MSG_MAX 1024
/* The longest line fp_log_format makes of one. */
#define FP_LOG_LINE_MAX (FP_LOG_MSG_MAX + 128)

struct fp_logger {
    fp_log_fn fn;
    void     *arg;
    int       level;    /* most verbose level emitted */
};

void fp_logf(const struct fp_logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "IDENT[pid]: level: msg\n" into buf (ident NULL: "forkpool"), cut to
 * fit but always ending in a newline; returns its length.  len must be at
 * least 2. */
size_t fp_log_format(char *buf, size_t len, const char *ident, int level,
                     const char *msg);

/* The default sink: "forkpool[pid]: level: msg" on stderr (arg: the ident,
 * or NULL), written at once and blocking: for embedding programs and
 * children; forkpoold's master queues its lines instead (daemon/logbuf.h). */
void fp_log_stderr(int level, const char *msg, void *arg);

/* A sink for syslog(3) (the caller opens it with openlog). */
void fp_log_syslog(int level, const char *msg, void *arg);

/* "SIGSEGV" for SIGSEGV; "signal 42" for unnamed ones (static or buf). */
const char *fp_signame(int sig, char *buf, size_t len);

/* "killed by SIGSEGV", "exited with status 3", "exited normally" into buf. */
const char *fp_describe_status(int status, char *buf, size_t len);

#endif
