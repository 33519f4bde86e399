/* ctl_conn.c — how forkpoolctl uses libforkpoolclient: connecting with
 * the global options, the --rpc-timeout arithmetic of its own loops, and
 * what a failure prints and exits with. */
#include "config.h"
#include <limits.h>
#include <stdio.h>
#include <time.h>

#include "ctl.h"

int64_t
ctl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
ctl_timeout_ms(const struct ctl_target *t)
{
    /* Whole milliseconds, at least one: a timeout given is never "none". */
    if (!(t->rpc_timeout > 0))
        return 0;
    return t->rpc_timeout >= 1e12 ? (int64_t)1e15
                                  : (int64_t)(t->rpc_timeout * 1000 + 0.999);
}

int
ctl_wait_ms(const struct ctl_target *t, int64_t since_ms)
{
    int64_t ms = ctl_timeout_ms(t);

    if (ms <= 0)
        return -1;
    int64_t left = since_ms + ms - ctl_now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

int
ctl_connect(fp_client **c, const struct ctl_target *t)
{
    int rc = fp_client_connect(c, t->path, t->rpc_timeout);

    if (rc == 0)
        fp_client_set_max_bytes(*c, CTL_MAX_ANSWER_BYTES);
    return rc;
}

int
ctl_fail_note(const struct ctl_target *t, const fp_client *c, int rc,
              const char *method, const char *note)
{
    const char *sep = note != NULL ? "; " : "";

    if (note == NULL)
        note = "";
    switch (rc) {
    case FP_CLIENT_ETIMEDOUT:
        fprintf(stderr, "forkpoolctl: %s: forkpoold at %s did not answer "
                "within %g s (--rpc-timeout)%s%s\n", method, t->path,
                (double)ctl_timeout_ms(t) / 1000, sep, note);
        return CTL_EXIT_NODAEMON;
    case FP_CLIENT_ECONNECT:
        fprintf(stderr, "forkpoolctl: cannot reach forkpoold at %s: %s%s%s\n",
                t->path, fp_client_error(c), sep, note);
        return CTL_EXIT_NODAEMON;
    default:
        break;
    }
    fprintf(stderr, "forkpoolctl: %s: %s%s%s\n", method, fp_client_error(c),
            sep, note);
    return CTL_EXIT_FAIL;
}

int
ctl_fail(const struct ctl_target *t, const fp_client *c, int rc,
         const char *method)
{
    return ctl_fail_note(t, c, rc, method, NULL);
}

void
ctl_client_opts(const struct ctl_jobopts *o, struct fp_client_jobopts *co)
{
    *co = (struct fp_client_jobopts){
        .timeout = o->timeout, .has_timeout = o->has_timeout,
        .retries = o->has_retries ? o->retries : 0, .key = o->key,
        .expires = o->expires, .has_expires = o->has_expires,
        .progress = o->progress, .notify_id = o->ids,
    };
}
