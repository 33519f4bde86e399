/* log.c — log lines and wait-status descriptions. */
#include "config.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static const char *const level_names[] = { "error", "warning", "info", "debug" };

size_t
fp_log_format(char *buf, size_t len, const char *ident, int level,
              const char *msg)
{
    int n;

    if (level < 0 || level > FP_LOG_DEBUG)
        level = FP_LOG_ERR;
    n = snprintf(buf, len, "%s[%ld]: %s: %s\n", ident != NULL ? ident : "forkpool",
                 (long)getpid(), level_names[level], msg);
    if (n < 0)
        n = 0;
    if ((size_t)n >= len) {         /* cut: keep the line a line */
        n = (int)len - 1;
        buf[n - 1] = '\n';
    }
    return (size_t)n;
}

void
fp_log_stderr(int level, const char *msg, void *arg)
{
    char line[FP_LOG_LINE_MAX];
    size_t len = fp_log_format(line, sizeof(line), arg, level, msg), off = 0;

    while (off < len) {
        ssize_t n = write(2, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

void
fp_log_syslog(int level, const char *msg, void *arg)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    (void)arg;

    if (level < 0 || level > FP_LOG_DEBUG)
        level = FP_LOG_ERR;
    syslog(prio[level], "%s: %s", level_names[level], msg);
}

void
fp_logf(const struct fp_logger *lg, int level, const char *fmt, ...)
{
    char msg[FP_LOG_MSG_MAX];
    va_list ap;

    if (level > lg->level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lg->fn != NULL)
        lg->fn(level, msg, lg->arg);
    else
        fp_log_stderr(level, msg, NULL);
}

const char *
fp_signame(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev != NULL)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

const char *
fp_describe_status(int status, char *buf, size_t len)
{
    char sig[32];

    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by %s%s",
                 fp_signame(WTERMSIG(status), sig, sizeof(sig)),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        snprintf(buf, len, "exited normally");
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, len, "stopped (status 0x%x)", status);
    return buf;
}
