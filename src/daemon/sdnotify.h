/*
 * sdnotify.h — the two things a daemon does with systemd: report its state
 * (sd_notify: READY, RELOADING, STOPPING, STATUS) and take its listening
 * socket from the service manager (socket activation, LISTEN_FDS).
 *
 * Both are no-ops unless systemd (or a test) set the environment; without
 * libsystemd at build time they are no-ops always.
 */
#ifndef FP_SDNOTIFY_H
#define FP_SDNOTIFY_H

#include <stddef.h>

/* Send one notification ("READY=1", "STATUS=..."); printf-style. */
void fp_sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 if a notification socket was given (NOTIFY_SOCKET). */
int fp_sd_notify_enabled(void);

/* The listening socket passed by socket activation: returns the fd (>= 3),
 * -1 if none was passed, or -2 with a message in err if what was passed is
 * not one listening UNIX stream socket.  Clears LISTEN_* from the
 * environment so workers never see them. */
int fp_sd_listen_fd(char *err, size_t errlen);

#endif
