/* ctl_progress.c — map's progress line on stderr (see ctl_progress.h).
 *
 * The total is not known until stdin has been read to its end, so until
 * then it is estimated from the jobs taken so far and the share of the
 * file they came from ("~" marks it).  The line is one row rewritten in
 * place with '\r', cut to the terminal's width so it never wraps. */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl_progress.h"

#define REDRAW_MS 200           /* at most 5 redraws a second */

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
put(const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;             /* a progress line is not worth failing */
        s += n;
        len -= (size_t)n;
    }
}

void
ctl_progress_start(struct ctl_progress *p, int quiet)
{
    struct stat in, out, err;

    memset(p, 0, sizeof *p);
    if (quiet || !isatty(STDERR_FILENO) || fstat(STDIN_FILENO, &in) < 0
        || !S_ISREG(in.st_mode))
        return;
    p->start = lseek(STDIN_FILENO, 0, SEEK_CUR);
    if (p->start < 0 || in.st_size <= p->start)
        return;
    p->size = in.st_size - p->start;
    p->shares_tty = fstat(STDOUT_FILENO, &out) == 0
                    && fstat(STDERR_FILENO, &err) == 0
                    && S_ISCHR(out.st_mode) && out.st_rdev == err.st_rdev;
    p->t0_ms = mono_ms();
    p->next_ms = p->t0_ms + REDRAW_MS;
    p->on = 1;
}

void
ctl_progress_clear(struct ctl_progress *p)
{
    if (p->on && p->shown)
        put("\r\033[K", 4);
    p->shown = 0;
}

void
ctl_progress_before_output(struct ctl_progress *p)
{
    if (p->shares_tty)
        ctl_progress_clear(p);
}

static void
format_eta(double s, char *buf, size_t n)
{
    unsigned long t = (unsigned long)(s + 0.5);

    if (t >= 3600)
        snprintf(buf, n, "%luh%02lum", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%lum%02lus", t / 60, t % 60);
    else
        snprintf(buf, n, "%lus", t);
}

/* Compose the line from what is known now. */
static void
compose(struct ctl_progress *p, int64_t now, uint64_t taken, size_t unread,
        int eof)
{
    off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
    double used = at >= 0 ? (double)(at - p->start) - (double)unread : 0;
    double secs = (double)(now - p->t0_ms) / 1000;
    double rate = secs > 0 ? (double)p->done / secs : 0;
    int exact = eof && unread == 0;
    double total = -1;
    char tot[48], eta[32] = "?";

    if (exact)
        total = (double)taken;
    else if (used > 0 && taken > 0)
        total = (double)taken * (double)p->size / used;
    if (total >= 0 && total < (double)taken)
        total = (double)taken;
    if (total >= 0 && total < (double)p->done)
        total = (double)p->done;

    if (total < 0) {
        snprintf(tot, sizeof tot, "?");
    } else {
        snprintf(tot, sizeof tot, "%s%.0f", exact ? "" : "~", total);
        if (rate > 0)
            format_eta((total - (double)p->done) / rate, eta, sizeof eta);
    }
    int pct = total > 0 ? (int)(100.0 * (double)p->done / total) : 0;
    snprintf(p->line, sizeof p->line, "map: %" PRIu64 "/%s jobs (%d%%)  "
             "%.1f jobs/s  ETA %s", p->done, tot, pct, rate, eta);
}

static void
draw(struct ctl_progress *p)
{
    struct winsize ws;
    size_t len = strlen(p->line);

    /* A line that wrapped could not be rewritten in place. */
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1
        && len > (size_t)ws.ws_col - 1)
        len = (size_t)ws.ws_col - 1;
    put("\r", 1);
    put(p->line, len);
    put("\033[K", 3);
    p->shown = 1;
}

void
ctl_progress_done(struct ctl_progress *p, uint64_t taken, size_t unread,
                  int eof)
{
    if (!p->on)
        return;
    p->done++;
    int64_t now = mono_ms();
    /* Taken off for an outcome on the same terminal: back at once. */
    int back = !p->shown && p->line[0] != '\0';
    if (now < p->next_ms && !back)
        return;
    if (now >= p->next_ms)
        p->next_ms = now + REDRAW_MS;
    compose(p, now, taken, unread, eof);
    draw(p);
}
