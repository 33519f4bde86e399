/*
 * ctl_limit.c — `forkpoolctl limit KEY RATE [BURST]` and
 * `forkpoolctl limit --remove KEY`: the `limit` method (SPEC 5.3, 7).
 * KEY "" or "-" names the pool-wide bucket.  Also the limits part of the
 * status table.
 */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "codec/wire.h"

static int
limit_usage(const char *fmt, const char *arg)
{
    fputs("forkpoolctl: limit: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'forkpoolctl --help'.\n", stderr);
    return CTL_EXIT_USAGE;
}

/* A number, the whole string, that valid() takes (wire.h: the rule the
 * daemon and the library apply). */
static int
parse_number(const char *s, int (*valid)(double), double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return end == s || *end != '\0' || errno != 0 || !valid(*out) ? -1 : 0;
}

int
ctl_limit(const struct ctl_target *to, const char *usage, int argc, char **argv)
{
    static const struct option opts[] = {
        { "remove", no_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    fp_client *conn;
    double rate = 0, burst = 0;
    const char *key;
    char text[1024];
    int c, remove = 0, nargs, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return CTL_EXIT_OK;
        }
        if (c != 'r')
            return limit_usage("unknown option '%s'", argv[optind - 1]);
        remove = 1;
    }
    nargs = argc - optind;
    if (remove ? nargs != 1 : nargs < 2 || nargs > 3)
        return limit_usage("%s", remove ? "expects --remove KEY"
                                        : "expects KEY RATE [BURST]");
    key = argv[optind];
    if (strcmp(key, "-") == 0)
        key = "";
    if (strlen(key) > 256)
        return limit_usage("%s", "KEY is longer than 256 bytes");
    if (!remove && parse_number(argv[optind + 1], fp_limit_rate_valid, &rate) < 0) {
        snprintf(text, sizeof(text), "RATE: '%s' is not a number from 0 to %g",
                 argv[optind + 1], FP_LIMIT_MAX);
        return limit_usage("%s", text);
    }
    if (nargs == 3 && parse_number(argv[optind + 2], fp_limit_burst_valid, &burst) < 0) {
        snprintf(text, sizeof(text), "BURST: '%s' is not a number from 1 to %g",
                 argv[optind + 2], FP_LIMIT_MAX);
        return limit_usage("%s", text);
    }

    if ((rc = ctl_connect(&conn, to)) == 0)
        rc = remove ? fp_client_limit_remove(conn, key)
                    : fp_client_limit(conn, key, rate, nargs == 3 ? burst : 0);
    if (rc == FP_CLIENT_EREFUSED || rc == FP_CLIENT_EINVAL) {
        fprintf(stderr, "forkpoolctl: %s\n", fp_client_error(conn));
        rc = CTL_EXIT_FAIL;
    } else if (rc < 0) {
        rc = ctl_fail(to, conn, rc, "limit");
    } else {
        rc = puts("true") == EOF || fflush(stdout) == EOF ? CTL_EXIT_FAIL
                                                        : CTL_EXIT_OK;
    }
    fp_client_close(conn);
    return rc;
}

/* One number of a status "limits" row, or 0. */
static double
row_number(const json_t *row, const char *name)
{
    const json_t *v = json_object_get(row, name);

    return json_is_number(v) ? json_number_value(v) : 0;
}

void
ctl_print_limit_rows(const json_t *limits)
{
    const char *key;
    json_t *row;

    if (!json_is_object(limits) || json_object_size(limits) == 0)
        return;
    printf("\n%-24s %10s %8s %8s %8s\n", "LIMIT", "RATE/S", "BURST", "TOKENS",
           "WAITING");
    /* %g, not %f: whatever a daemon reports, a row stays one short line. */
    json_object_foreach((json_t *)limits, key, row)
        printf("%-24.*s %10.6g %8.6g %8.4g %8.0f\n", key[0] ? 256 : 6,
               key[0] ? key : "(pool)", row_number(row, "rate"),
               row_number(row, "burst"), row_number(row, "tokens"),
               row_number(row, "waiting"));
}
