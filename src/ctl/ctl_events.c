/*
 * ctl_events.c — `forkpoolctl events [--count N]`: subscribe to the
 * daemon's event stream (SPEC §7 `subscribe`) and print each event as one
 * JSON object per line, as it comes (like `docker events`).
 *
 * --rpc-timeout bounds the connect and the answer to subscribe; the wait
 * for events has no limit.  Exit status: 0 after N events (--count), or
 * when the daemon closes the connection (it exited, or dropped us for not
 * reading), or when stdout's reader has gone; 1 if the daemon refused or
 * sent something unreadable; 3 if it cannot be reached or does not answer.
 */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "common/jsonmp.h"

static const char events_usage[] =
"Usage: forkpoolctl [-s SOCKET] [--rpc-timeout S] events [--count N]\n"
"\n"
"Subscribe to the daemon's events and print each as one JSON object per\n"
"line, as it happens:\n"
"  {\"event\": \"job\", \"id\": 7, \"kind\": \"ok\", \"stats\": {...}}\n"
"  {\"event\": \"worker\", \"pid\": 4242, \"what\": \"exited\",\n"
"   \"detail\": \"killed by SIGSEGV\"}\n"
"      what: spawned, ready, retired (detail: scale, reload, idle,\n"
"      max-jobs, max-rss, rlimit-cpu, drain) or exited (detail: how)\n"
"  {\"event\": \"pool\", \"what\": \"scale\", \"workers\": 4}\n"
"      what: scale, reload or drain\n"
"\n"
"  --count N   exit after N events\n"
"\n"
"Ends with status 0 after N events, or when the daemon closes the\n"
"connection (it exits, or drops a subscriber that does not read).\n";

static int
usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "forkpoolctl: events: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'forkpoolctl events --help'.\n");
    return CTL_EXIT_USAGE;
}

/* Options into *count (0 = no limit).  Returns -1 to go on, or an exit
 * status. */
static int
parse_options(int argc, char **argv, uint64_t *count)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(events_usage, stdout);
            return CTL_EXIT_OK;
        case 'n':
            errno = 0;
            *count = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0'
                || errno != 0 || *count == 0)
                return usage("--count: '%s' is not a count >= 1", optarg);
            break;
        case ':':
            return usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt != 0 && argv[optind - 1][1] != '-')
                return usage("unknown option '-%c'", optopt);
            return usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 0)
        return usage("takes no arguments");
    return -1;
}

/* Print one event map.  Returns 0, 1 if stdout's reader has gone, or -1
 * (the map is not JSON-able, or stdout failed; said on stderr). */
static int
print_event(const struct fp_client_msg *r)
{
    char err[256];
    json_t *v = fp_json_from_msgpack(r->result, r->result_len, err, sizeof err);
    int rc = 0;

    if (v == NULL) {
        fprintf(stderr, "forkpoolctl: events: bad event: %s\n", err);
        return -1;
    }
    if (ctl_print_json(stdout, v) < 0) {
        if (errno == EPIPE)
            rc = 1;
        else {
            fprintf(stderr, "forkpoolctl: stdout: %s\n", strerror(errno));
            rc = -1;
        }
    }
    json_decref(v);
    return rc;
}

/* Print events until `count` (0: no limit) or EOF.  Returns the exit
 * status. */
static int
stream(const struct ctl_target *to, fp_client *c, uint64_t count)
{
    struct fp_client_msg r;
    uint64_t shown = 0;
    int rc;

    for (;;) {
        while ((rc = fp_client_next(c, &r)) == 1) {
            if (r.type != FP_CLIENT_MSG_EVENT)
                continue;       /* nothing else is asked for: ignored */
            if ((rc = print_event(&r)) != 0)
                return rc > 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
            if (count != 0 && ++shown >= count)
                return CTL_EXIT_OK;
        }
        if (rc < 0)
            return ctl_fail(to, c, rc, "events");
        struct pollfd pfd = { .fd = fp_client_fd(c), .events = POLLIN };
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "forkpoolctl: events: poll: %s\n", strerror(errno));
            return CTL_EXIT_FAIL;
        }
        rc = fp_client_read(c);
        if (rc == 0)
            return CTL_EXIT_OK;     /* the daemon closed: the stream ends */
        if (rc < 0)
            return ctl_fail(to, c, rc, "events");
    }
}

int
ctl_events(const struct ctl_target *to, int argc, char **argv)
{
    fp_client *c;
    uint64_t count = 0;
    int rc;

    if ((rc = parse_options(argc, argv, &count)) >= 0)
        return rc;
    if ((rc = ctl_connect(&c, to)) < 0 || (rc = fp_client_subscribe(c)) < 0) {
        if (rc == FP_CLIENT_EREFUSED) {
            fprintf(stderr, "forkpoolctl: events: %s\n", fp_client_error(c));
            rc = CTL_EXIT_FAIL;
        } else {
            rc = ctl_fail(to, c, rc, "events");
        }
    } else {
        rc = stream(to, c, count);  /* events come when they come */
    }
    fp_client_close(c);
    return rc;
}
