/*
 * daemonize.h — classic daemon conventions: detaching from the terminal
 * (--daemon) and a locked pid file (--pidfile).
 */
#ifndef FP_DAEMONIZE_H
#define FP_DAEMONIZE_H

#include <stddef.h>

/* Detach: fork, setsid, fork again, chdir /.  Returns in the daemon (the
 * grandchild) with the write end of a pipe to report readiness through
 * fp_daemon_ready(); stdio is left alone until then so that start-up
 * errors still reach the terminal.  The original process never returns:
 * it waits on the pipe and exits 0 once the daemon is ready, or 1 if the
 * daemon exited first.  Returns -1 with a message in err if it cannot fork. */
int fp_daemonize(char *err, size_t errlen);

/* The daemon is up: point stdin, stdout and stderr at /dev/null and let
 * the original process exit 0. */
void fp_daemon_ready(int fd);

/* Open and lock `path` (flock, so a crashed daemon's lock goes with it).
 * A file nobody holds is stale and taken over.  Returns the fd, which
 * holds the lock for as long as it stays open; or -1 with a message in err
 * ("already running as pid N" when another process holds it). */
int fp_pidfile_open(const char *path, char *err, size_t errlen);

/* Write the calling process's pid into the locked file.  Returns 0 or -1. */
int fp_pidfile_write(int fd);

/* Remove the file (ours: we hold the lock) and close it. */
void fp_pidfile_remove(const char *path, int fd);

#endif
