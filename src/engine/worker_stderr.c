/*
 * worker_stderr.c — a worker's stderr (and a module worker's stdout): read
 * from its pipe and logged line by line with the worker's pid.
 */
#include "config.h"
#include <errno.h>
#include <unistd.h>

#include "worker.h"

#define ERRLINE_MAX 2048    /* a longer line is logged in pieces */

static void
log_stderr_line(struct fp_worker *w, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    fp_logf(w->env->log, FP_LOG_INFO, "worker %ld: %.*s", (long)w->pid,
            (int)len, line);
}

/* Log the unfinished rest of a line and close the pipe. */
void
fp_worker_stderr_close(struct fp_worker *w)
{
    if (w->errline.len > 0)
        log_stderr_line(w, fp_buf_head(&w->errline), w->errline.len);
    fp_buf_free(&w->errline);
    ev_io_stop(w->env->loop, &w->eio);
    close(w->errfd);
    w->errfd = -1;
}

/* Read what the pipe holds; log complete lines; close it at EOF. */
void
fp_worker_stderr_read(struct fp_worker *w)
{
    char chunk[4096];

    for (;;) {
        ssize_t n = read(w->errfd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n' || w->errline.len >= ERRLINE_MAX) {
                log_stderr_line(w, fp_buf_head(&w->errline), w->errline.len);
                fp_buf_clear(&w->errline);
                if (chunk[i] == '\n')
                    continue;
            }
            fp_buf_append(&w->errline, &chunk[i], 1);
        }
    }
    fp_worker_stderr_close(w);
}

void
fp_worker_stderr_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)revents;
    fp_worker_stderr_read(io->data);
}

