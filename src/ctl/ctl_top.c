/* ctl_top.c — `forkpoolctl top`: the daemon's status, refreshed.
 *
 * One connection; a "status" request every `interval` seconds.  With
 * stdout on a terminal the view is a full screen redrawn in place with
 * plain ANSI escapes (alternate screen, cursor hidden), cut to the
 * terminal's height; 'q' or Ctrl-C ends it and the terminal is put back
 * as it was.  Otherwise each refresh prints one key=value line.
 *
 * The throughput is the growth of the finished-job counters (completed,
 * failed, crashed, timed_out, cancelled) between two refreshes, over the
 * daemon's own uptime between them.
 *
 * Signals only set flags; the loop waits in ppoll() with them unblocked,
 * so none is missed between a check and the wait. */
#include "config.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "common/jsonmp.h"

#define MIN_INTERVAL  0.01
#define MAX_INTERVAL  86400.0
#define HEADER_LINES  6             /* above the first worker row */
#define LINE_MAX_COLS 512

static const char top_usage[] =
"Usage: forkpoolctl [-s SOCKET] top [--interval S] [--count N]\n"
"\n"
"Show the pool's status, refreshed every S seconds (default 1).\n"
"\n"
"On a terminal: a full-screen view (state, uptime, workers, queue,\n"
"throughput, outcome counters, then one row per worker); q or Ctrl-C\n"
"quits.  Otherwise: one line per refresh, e.g.\n"
"  time=2025-01-02T03:04:05+0000 state=running uptime=12.5 workers=2\n"
"  target=2 busy=1 idle=1 starting=0 queued=0 rate=123.4/s completed=...\n"
"  failed=... crashed=... timed_out=... cancelled=... restarts=...\n"
"\"workers\" counts the worker processes alive, \"target\" the number asked\n"
"for (-w, scale); \"rate\" is jobs finished per second since the previous\n"
"line (\"-\" on the first).\n"
"\n"
"  --interval S   seconds between refreshes (0.01 to 86400)\n"
"  --count N      stop after N refreshes\n";

/* The one exception to "no globals": what the signal handlers saw. */
static volatile sig_atomic_t got_quit, got_winch, got_tstp;

enum { OPT_INTERVAL = 0x200, OPT_COUNT };

struct top {
    fp_client *c;
    const struct ctl_target *to;
    double   interval;
    uint64_t count;         /* refreshes to show; 0 = until stopped */
    uint64_t shown;
    int      screen;        /* stdout is a terminal: full-screen view */
    int      keys;          /* stdin is a terminal we put in raw-ish mode */
    int      entered;       /* terminal state changed, to undo */
    int      alt;           /* on the alternate screen (no --count): the
                               view goes when top ends, as with top(1) */
    struct termios saved;
    int      clear_all;     /* next frame starts with a full clear */
    json_t  *last;          /* last status, redrawn on SIGWINCH */
    uint32_t msgid;         /* of the request in flight, 0 = none */
    int64_t  asked_ms;      /* when it was sent (--rpc-timeout) */
    int64_t  due_ms;        /* next request */
    /* previous sample, for the rate */
    int      have_prev;
    uint64_t prev_done;
    double   prev_uptime;
    int64_t  prev_ms;
    int      have_rate;
    double   rate;
    struct fp_buf out;      /* the text of one refresh */
};

/* ---- small helpers ----------------------------------------------------- */

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "forkpoolctl: top: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'forkpoolctl top --help'.\n");
    return CTL_EXIT_USAGE;
}

/* Append printf-style text to b.  Returns 0 or -1 (ENOMEM). */
static int __attribute__((format(printf, 2, 3)))
out_printf(struct fp_buf *b, const char *fmt, ...)
{
    char line[LINE_MAX_COLS * 2];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return fp_buf_append(b, line, (size_t)n < sizeof line ? (size_t)n
                                                          : sizeof line - 1);
}

/* Write all of p[0..len) to stdout.  Returns 0, or -1 (errno). */
static int
write_out(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
out_flush(struct fp_buf *b)
{
    int rc = write_out(fp_buf_head(b), b->len);
    fp_buf_clear(b);
    return rc;
}

/* A status field as text: integers and reals plainly, strings as
 * themselves, "-" when the daemon left it out. */
static const char *
field(const json_t *st, const char *key, char *buf, size_t n)
{
    const json_t *v = json_object_get(st, key);

    if (json_is_integer(v))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, n, "%.1f", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(buf, n, "-");
    return buf;
}

static uint64_t
counter(const json_t *st, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(st, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* Workers alive now: the rows of "worker_list" ("workers" is the target). */
static const char *
live_workers(const json_t *st, char *buf, size_t n)
{
    const json_t *rows = json_object_get(st, "worker_list");

    if (!json_is_array(rows))
        rows = json_object_get(st, "pids");
    if (json_is_array(rows))
        snprintf(buf, n, "%zu", json_array_size(rows));
    else
        snprintf(buf, n, "-");
    return buf;
}


static void
format_bytes(double b, char *buf, size_t n)
{
    static const char units[] = "KMGT";
    double v = b / 1024;
    int u = 0;

    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f%c", v, units[u]);
}

/* ---- the rate ---------------------------------------------------------- */

/* Take a sample of the finished-job counters; set the rate from the
 * previous one.  The daemon's uptime is the clock when it is there. */
static void
sample(struct top *t, const json_t *st)
{
    static const char *const done_keys[] = {
        "completed", "failed", "crashed", "timed_out", "cancelled",
    };
    uint64_t done = 0;
    const json_t *up = json_object_get(st, "uptime_s");
    double uptime = json_is_number(up) ? json_number_value(up) : -1;
    int64_t now = mono_ms();

    for (size_t i = 0; i < sizeof done_keys / sizeof done_keys[0]; i++)
        done += counter(st, done_keys[i]);
    t->have_rate = 0;
    if (t->have_prev && done >= t->prev_done) {
        double dt = uptime >= 0 && t->prev_uptime >= 0
                        ? uptime - t->prev_uptime
                        : (double)(now - t->prev_ms) / 1000;
        if (dt > 0) {
            t->rate = (double)(done - t->prev_done) / dt;
            t->have_rate = 1;
        }
    }
    t->have_prev = 1;
    t->prev_done = done;
    t->prev_uptime = uptime;
    t->prev_ms = now;
}

static const char *
rate_text(const struct top *t, char *buf, size_t n)
{
    if (t->have_rate)
        snprintf(buf, n, "%.1f", t->rate);
    else
        snprintf(buf, n, "-");
    return buf;
}

/* ---- plain lines ------------------------------------------------------- */

static int
plain_line(struct top *t, const json_t *st)
{
    static const char *const counters[] = {
        "completed", "failed", "crashed", "timed_out", "cancelled", "restarts",
    };
    char when[64], v[9][64];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (localtime_r(&ts.tv_sec, &tm) == NULL
        || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
        snprintf(when, sizeof when, "%lld", (long long)ts.tv_sec);
    if (out_printf(&t->out, "time=%s state=%s uptime=%s workers=%s target=%s "
                   "busy=%s idle=%s starting=%s queued=%s rate=%s%s", when,
                   field(st, "state", v[0], sizeof v[0]),
                   field(st, "uptime_s", v[1], sizeof v[1]),
                   live_workers(st, v[2], sizeof v[2]),
                   field(st, "workers", v[3], sizeof v[3]),
                   field(st, "busy", v[4], sizeof v[4]),
                   field(st, "idle", v[5], sizeof v[5]),
                   field(st, "starting", v[6], sizeof v[6]),
                   field(st, "queued", v[7], sizeof v[7]),
                   rate_text(t, v[8], sizeof v[8]), t->have_rate ? "/s" : "") < 0)
        return -1;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        if (out_printf(&t->out, " %s=%s", counters[i],
                       field(st, counters[i], v[0], sizeof v[0])) < 0)
            return -1;
    const json_t *redis = json_object_get(st, "redis");
    if (json_is_object(redis)) {
        static const char *const rfields[] = {
            "connected", "leased", "claimed", "recorded", "lost_leases",
        };
        for (size_t i = 0; i < sizeof rfields / sizeof rfields[0]; i++)
            if (out_printf(&t->out, " redis_%s=%s", rfields[i],
                           field(redis, rfields[i], v[0], sizeof v[0])) < 0)
                return -1;
    }
    return fp_buf_append(&t->out, "\n", 1);
}

/* ---- the full screen --------------------------------------------------- */

static void
term_size(int *rows, int *cols)
{
    struct winsize ws;

    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_row > 0)
            *rows = ws.ws_row;
        if (ws.ws_col > 0)
            *cols = ws.ws_col;
    }
}

/* Add one screen line, cut to the width; `inverse` shows it highlighted.
 * Lines after the first start on a new row; nothing scrolls, since the
 * caller never adds more lines than the screen has rows. */
static int
screen_line(struct fp_buf *b, int first, int cols, int inverse,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
screen_line(struct fp_buf *b, int first, int cols, int inverse,
            const char *fmt, ...)
{
    char line[LINE_MAX_COLS + 1];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > cols)
        n = cols;
    if (n > LINE_MAX_COLS)
        n = LINE_MAX_COLS;
    line[n] = '\0';
    return out_printf(b, "%s%s%s%s\033[K", first ? "" : "\r\n",
                      inverse ? "\033[7m" : "", line,
                      inverse ? "\033[0m" : "");
}

/* One worker row: pid, state, running job and its age, prefetched jobs,
 * jobs done, resident memory. */
static int
worker_row(struct fp_buf *b, int cols, const json_t *r)
{
    const json_t *job = json_object_get(r, "job");
    const json_t *rss = json_object_get(r, "rss");
    char pid[32], state[32], jobtxt[32] = "-", age[32] = "-", pre[32],
         done[32], mem[32] = "-";

    if (json_is_integer(job)) {
        snprintf(jobtxt, sizeof jobtxt, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(job));
        snprintf(age, sizeof age, "%.1fs",
                 json_number_value(json_object_get(r, "job_age_s")));
    }
    if (json_is_integer(rss) && json_integer_value(rss) > 0)
        format_bytes((double)json_integer_value(rss), mem, sizeof mem);
    return screen_line(b, 0, cols, 0, "%8s  %-8s  %10s  %8s  %8s  %9s  %8s",
                       field(r, "pid", pid, sizeof pid),
                       field(r, "state", state, sizeof state), jobtxt, age,
                       field(r, "queued", pre, sizeof pre),
                       field(r, "jobs_done", done, sizeof done), mem);
}

/* The header lines and as many worker rows as the terminal has room for. */
static int
screen_frame(struct top *t, const json_t *st)
{
    struct fp_buf *b = &t->out;
    const json_t *rows = json_object_get(st, "worker_list");
    const json_t *up = json_object_get(st, "uptime_s");
    char clock[16], uptime[64], v[12][64];
    struct tm tm;
    time_t now = time(NULL);
    int nrows, cols, rc = 0;

    term_size(&nrows, &cols);
    if (localtime_r(&now, &tm) == NULL
        || strftime(clock, sizeof clock, "%H:%M:%S", &tm) == 0)
        clock[0] = '\0';
    if (json_is_number(up))
        ctl_format_duration(json_number_value(up), uptime, sizeof uptime);
    else
        snprintf(uptime, sizeof uptime, "-");

    rc |= out_printf(b, "%s\033[H", t->clear_all ? "\033[2J" : "");
    t->clear_all = 0;
    /* Header lines beyond the screen's height are dropped too. */
    int left = nrows;
#define LINE(...) (left-- > 0 ? screen_line(b, left == nrows - 1, cols, __VA_ARGS__) : 0)
    rc |= LINE(0, "forkpool top - %s   %s   (every %gs, q quits)",
               fp_client_path(t->c), clock, t->interval);
    rc |= LINE(0, "State: %s   Uptime: %s   Workers: %s/%s live (busy %s, "
               "idle %s, starting %s)",
               field(st, "state", v[0], sizeof v[0]), uptime,
               live_workers(st, v[1], sizeof v[1]),
               field(st, "workers", v[2], sizeof v[2]),
               field(st, "busy", v[3], sizeof v[3]),
               field(st, "idle", v[4], sizeof v[4]),
               field(st, "starting", v[5], sizeof v[5]));
    rc |= LINE(0, "Queued: %s   Rate: %s jobs/s   Submitted: %s   "
               "Restarts: %s   Start failures: %s",
               field(st, "queued", v[0], sizeof v[0]),
               rate_text(t, v[1], sizeof v[1]),
               field(st, "submitted", v[2], sizeof v[2]),
               field(st, "restarts", v[3], sizeof v[3]),
               field(st, "start_failures", v[4], sizeof v[4]));
    rc |= LINE(0, "Jobs: %s completed, %s failed, %s crashed, %s timed out, "
               "%s cancelled",
               field(st, "completed", v[0], sizeof v[0]),
               field(st, "failed", v[1], sizeof v[1]),
               field(st, "crashed", v[2], sizeof v[2]),
               field(st, "timed_out", v[3], sizeof v[3]),
               field(st, "cancelled", v[4], sizeof v[4]));
    const json_t *redis = json_object_get(st, "redis");
    if (json_is_object(redis))
        rc |= LINE(0, "Redis: %s queue %s, %s   Leased: %s   Claimed: %s   "
                   "Recorded: %s   Lost leases: %s",
                   field(redis, "url", v[0], sizeof v[0]),
                   field(redis, "queue", v[1], sizeof v[1]),
                   json_is_true(json_object_get(redis, "connected"))
                       ? "connected" : "DISCONNECTED",
                   field(redis, "leased", v[2], sizeof v[2]),
                   field(redis, "claimed", v[3], sizeof v[3]),
                   field(redis, "recorded", v[4], sizeof v[4]),
                   field(redis, "lost_leases", v[5], sizeof v[5]));
    rc |= LINE(0, "%s", "");
    rc |= LINE(1, "%8s  %-8s  %10s  %8s  %8s  %9s  %8s", "PID", "STATE",
               "JOB", "AGE", "PREFETCH", "JOBS", "RSS");
#undef LINE
    size_t n = json_is_array(rows) ? json_array_size(rows) : 0;
    for (size_t i = 0; i < n && left > 0; i++, left--) {
        if (left == 1 && i + 1 < n) {
            rc |= screen_line(b, 0, cols, 0, "  ... %zu more", n - i);
            break;
        }
        rc |= worker_row(b, cols, json_array_get(rows, i));
    }
    rc |= out_printf(b, "\033[J");
    return rc != 0 ? -1 : 0;
}

/* ---- the terminal ------------------------------------------------------ */

static void
on_signal(int sig)
{
    if (sig == SIGWINCH)
        got_winch = 1;
    else if (sig == SIGTSTP)
        got_tstp = 1;
    else
        got_quit = 1;
}

static void
catch(int sig)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);      /* no SA_RESTART: wake ppoll */
}

/* Escapes for the terminal; a failure shows at the next frame. */
static void
write_all(const char *s)
{
    (void)write_out(s, strlen(s));
}

/* Keys without Enter, no echo (Ctrl-C still signals); cursor hidden; the
 * alternate screen unless the view should stay when top ends (--count). */
static void
term_enter(struct top *t)
{
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        t->keys = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    t->alt = t->count == 0;
    write_all(t->alt ? "\033[?1049h\033[?25l" : "\033[?25l");
    t->entered = 1;
    t->clear_all = 1;
}

/* Undo term_enter; safe to call twice. */
static void
term_leave(struct top *t)
{
    if (!t->entered)
        return;
    /* Off the alternate screen, the last frame stays: end its line. */
    write_all(t->alt ? "\033[?25h\033[?1049l" : "\033[?25h\r\n");
    if (t->keys)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    t->keys = 0;
    t->entered = 0;
}

/* Ctrl-Z: give the terminal back, stop, and take it again on SIGCONT. */
static void
suspend(struct top *t)
{
    sigset_t tstp;

    got_tstp = 0;
    term_leave(t);
    sigemptyset(&tstp);
    sigaddset(&tstp, SIGTSTP);
    signal(SIGTSTP, SIG_DFL);
    kill(getpid(), SIGTSTP);
    sigprocmask(SIG_UNBLOCK, &tstp, NULL);     /* stops here */
    sigprocmask(SIG_BLOCK, &tstp, NULL);
    catch(SIGTSTP);
    term_enter(t);
}

/* 1 if the keys waiting on stdin ask to quit (q, or the terminal went). */
static int
read_keys(void)
{
    char k[64];
    ssize_t n = read(STDIN_FILENO, k, sizeof k);

    if (n < 0)
        return errno != EINTR && errno != EAGAIN;
    if (n == 0)
        return 1;
    return memchr(k, 'q', (size_t)n) != NULL || memchr(k, 'Q', (size_t)n) != NULL;
}

/* ---- the loop ---------------------------------------------------------- */

/* Draw the last status again: a new frame, or a line in plain mode.
 * Returns 0 or -1 (errno). */
static int
show(struct top *t)
{
    int rc = t->screen ? screen_frame(t, t->last) : plain_line(t, t->last);
    if (rc < 0) {
        errno = ENOMEM;
        return -1;
    }
    return out_flush(&t->out);
}

/* A response arrived: keep and show it.  Returns -1 to go on, or an exit
 * status. */
static int
handle_status(struct top *t, const struct fp_client_msg *r)
{
    char text[1024];

    if (r->error != NULL) {
        term_leave(t);
        ctl_error_text(r, text, sizeof text);
        fprintf(stderr, "forkpoolctl: top: status: %s\n", text);
        return CTL_EXIT_FAIL;
    }
    json_t *st = fp_json_from_msgpack(r->result, r->result_len, text,
                                      sizeof text);
    if (!json_is_object(st)) {
        json_decref(st);
        term_leave(t);
        fprintf(stderr, "forkpoolctl: top: bad status result%s%s\n",
                st == NULL ? ": " : "", st == NULL ? text : "");
        return CTL_EXIT_FAIL;
    }
    json_decref(t->last);
    t->last = st;
    sample(t, st);
    if (show(t) < 0) {
        int err = errno;
        term_leave(t);
        if (err != EPIPE)
            fprintf(stderr, "forkpoolctl: top: stdout: %s\n", strerror(err));
        return CTL_EXIT_FAIL;
    }
    t->shown++;
    return t->count != 0 && t->shown >= t->count ? CTL_EXIT_OK : -1;
}

/* Request, wait, show, until stopped.  Returns the exit status. */
static int
run(struct top *t, const sigset_t *waitmask)
{
    struct fp_client_msg r;
    int rc = 0;

    for (;;) {
        if (got_quit)
            return CTL_EXIT_OK;
        if (got_tstp && t->screen) {
            suspend(t);
            got_winch = 1;      /* draw the last view again at once */
        }
        if (got_winch) {
            got_winch = 0;
            t->clear_all = 1;
            if (t->screen && t->last != NULL && show(t) < 0)
                return CTL_EXIT_FAIL;
        }
        int64_t now = mono_ms();
        if (t->msgid == 0 && now >= t->due_ms) {
            t->asked_ms = now;
            if ((rc = fp_client_request(t->c, "status", "\x90", 1, &t->msgid)) < 0)
                goto conn_failed;
            t->due_ms += (int64_t)(t->interval * 1000);
            if (t->due_ms < now)
                t->due_ms = now;
        }
        if ((rc = fp_client_flush(t->c)) < 0)
            goto conn_failed;

        struct pollfd pfd[2] = {
            { .fd = fp_client_fd(t->c),
              .events = POLLIN | (fp_client_want_write(t->c) ? POLLOUT : 0) },
            { .fd = t->keys ? STDIN_FILENO : -1, .events = POLLIN },
        };
        struct timespec ts, *tsp = NULL;
        /* Waiting for the next refresh, or for the daemon's answer (as
         * long as --rpc-timeout allows). */
        int64_t wait = t->msgid == 0 ? t->due_ms - now
                                     : ctl_wait_ms(t->to, t->asked_ms);
        if (wait >= 0) {
            ts.tv_sec = wait / 1000;
            ts.tv_nsec = (long)(wait % 1000) * 1000000;
            tsp = &ts;
        }
        int n = ppoll(pfd, 2, tsp, waitmask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            term_leave(t);
            fprintf(stderr, "forkpoolctl: top: poll: %s\n", strerror(errno));
            return CTL_EXIT_FAIL;
        }
        if (n == 0 && t->msgid != 0 && ctl_wait_ms(t->to, t->asked_ms) == 0) {
            rc = FP_CLIENT_ETIMEDOUT;
            goto conn_failed;
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_keys())
            return CTL_EXIT_OK;
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if ((rc = fp_client_read(t->c)) <= 0) {
                rc = rc == 0 ? FP_CLIENT_ECONNECT : rc;
                goto conn_failed;
            }
            while ((rc = fp_client_next(t->c, &r)) == 1) {
                if (r.type != FP_CLIENT_MSG_RESPONSE || r.tag != t->msgid)
                    continue;
                t->msgid = 0;
                if ((rc = handle_status(t, &r)) >= 0)
                    return rc;
            }
            if (rc < 0)
                goto conn_failed;
        }
    }
conn_failed:
    term_leave(t);
    return ctl_fail(t->to, t->c, rc, "top");
}

/* Options.  Returns -1 to go on, or an exit status. */
static int
parse_options(struct top *t, int argc, char **argv)
{
    static const struct option opts[] = {
        { "interval", required_argument, NULL, OPT_INTERVAL },
        { "count", required_argument, NULL, OPT_COUNT },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(top_usage, stdout);
            return CTL_EXIT_OK;
        case OPT_INTERVAL:
            errno = 0;
            t->interval = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || errno != 0
                || !(t->interval >= MIN_INTERVAL && t->interval <= MAX_INTERVAL))
                return usage("--interval: '%s' is not a number of seconds "
                             "from %g to %g", optarg, MIN_INTERVAL, MAX_INTERVAL);
            break;
        case OPT_COUNT:
            errno = 0;
            t->count = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0'
                || errno != 0 || t->count == 0)
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

int
ctl_top(const struct ctl_target *to, int argc, char **argv)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP };
    struct top t = { .interval = 1.0, .out = FP_BUF_INIT };
    fp_client *conn;
    sigset_t block, waitmask;
    int rc;

    if ((rc = parse_options(&t, argc, argv)) >= 0)
        return rc;
    if ((rc = ctl_connect(&conn, to)) < 0) {
        rc = ctl_fail(to, conn, rc, "top");
        fp_client_close(conn);
        return rc;
    }
    t.c = conn;
    t.to = to;
    t.screen = isatty(STDOUT_FILENO);
    t.due_ms = mono_ms();

    /* Blocked except while waiting in ppoll.  Ctrl-Z is caught only to
     * give a full-screen terminal back before stopping. */
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&block, sigs[i]);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigs[i] != SIGTSTP || t.screen)
            catch(sigs[i]);
        sigdelset(&waitmask, sigs[i]);
    }
    if (t.screen)
        term_enter(&t);

    rc = run(&t, &waitmask);
    term_leave(&t);
    json_decref(t.last);
    fp_buf_free(&t.out);
    fp_client_close(conn);
    return rc;
}
