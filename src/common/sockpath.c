/* sockpath.c — the default control socket path rule. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockpath.h"

int
fp_default_socket_path(char *buf, size_t len)
{
    const char *env = getenv("FORKPOOL_SOCKET");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (env != NULL && env[0] != '\0')
        n = snprintf(buf, len, "%s", env);
    else if (xdg != NULL && xdg[0] != '\0')
        n = snprintf(buf, len, "%s/forkpool.sock", xdg);
    else
        n = snprintf(buf, len, "/tmp/forkpool-%lu.sock", (unsigned long)getuid());
    if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

void
fp_sock_widen(int fd)
{
    int size = FP_SOCK_BUFFER;

    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

int
fp_sockaddr_un(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof(sa->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}
