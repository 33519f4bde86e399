/* sdnotify.c — systemd notification and socket activation (sdnotify.h). */
#include "config.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "sdnotify.h"

int
fp_sd_notify_enabled(void)
{
#ifdef HAVE_LIBSYSTEMD
    const char *e = getenv("NOTIFY_SOCKET");
    return e != NULL && e[0] != '\0';
#else
    return 0;
#endif
}

void
fp_sd_notify(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
    char msg[512];
    va_list ap;

    if (!fp_sd_notify_enabled())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)sd_notify(0, msg);
#else
    (void)fmt;
#endif
}

int
fp_sd_listen_fd(char *err, size_t errlen)
{
#ifdef HAVE_LIBSYSTEMD
    int n = sd_listen_fds(1);

    if (n == 0)
        return -1;
    if (n < 0) {
        snprintf(err, errlen, "socket activation: bad LISTEN_FDS");
        return -2;
    }
    if (n != 1) {
        snprintf(err, errlen, "socket activation: %d sockets passed, expected one", n);
        return -2;
    }
    if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
        snprintf(err, errlen, "socket activation: fd %d is not a listening UNIX "
                 "stream socket", SD_LISTEN_FDS_START);
        return -2;
    }
    return SD_LISTEN_FDS_START;
#else
    if (getenv("LISTEN_FDS") != NULL) {
        snprintf(err, errlen, "socket activation: this forkpoold was built "
                 "without libsystemd");
        return -2;
    }
    return -1;
#endif
}
