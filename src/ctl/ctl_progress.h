/*
 * ctl_progress.h — map's progress line on stderr: jobs done of the total
 * (estimated from the bytes of stdin taken, exact once all are), the rate
 * and the time left.  Shown only when stderr is a terminal and stdin a
 * regular file (its size is known); otherwise every call does nothing, so
 * output to pipes and files is unchanged.
 */
#ifndef FP_CTL_PROGRESS_H
#define FP_CTL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ctl_progress {
    int      on;            /* stderr a tty, stdin a regular file */
    int      shares_tty;    /* stdout is that same terminal */
    int      shown;         /* the line is on the screen now */
    off_t    start;         /* stdin's offset when map began */
    off_t    size;          /* bytes from there to the end */
    uint64_t done;          /* outcomes printed (or held, --keep-order) */
    int64_t  t0_ms;         /* map began */
    int64_t  next_ms;       /* the line may be redrawn from then */
    char     line[128];     /* the text last drawn */
};

/* Decide whether to show the line at all (never when `quiet`, e.g. while
 * stderr carries --ids lines). */
void ctl_progress_start(struct ctl_progress *p, int quiet);
/* Before an outcome line goes to stdout: if stdout is the same terminal,
 * take the progress line off it so the outcome starts on a clean row. */
void ctl_progress_before_output(struct ctl_progress *p);
/* One more job is done.  `taken` jobs have been read from stdin so far,
 * `unread` bytes of it wait in map's buffer, `eof`: stdin is at its end.
 * Redraws at most every 200 ms (at once if the line was taken off). */
void ctl_progress_done(struct ctl_progress *p, uint64_t taken, size_t unread,
                       int eof);
/* Before a message on stderr, and at the end: clear the line. */
void ctl_progress_clear(struct ctl_progress *p);

#endif /* FP_CTL_PROGRESS_H */
